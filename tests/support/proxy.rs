//! A TCP proxy in front of a real server that counts the HTTP requests and bytes clients send,
//! so tests can assert what crossed the wire rather than what the tool says it did.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What went through the proxy, client to server.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    /// Request lines (`PUT /v2/...`), in order.
    pub requests: Vec<String>,
    /// Bytes sent by clients.
    pub bytes: u64,
}

impl Traffic {
    /// Requests with this method whose path contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")) && r.contains(fragment))
            .count()
    }
}

/// A running proxy.
pub struct CountingProxy {
    /// `127.0.0.1:PORT`.
    pub address: String,
    traffic: Arc<Mutex<Traffic>>,
}

impl CountingProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let upstream = upstream.to_string();
        let shared = traffic.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let t = shared.clone();
                std::thread::spawn(move || pump(client, server, Some(t)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        CountingProxy { address, traffic }
    }

    /// A snapshot of the traffic so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Forgets the traffic so far.
    pub fn reset(&self) {
        if let Ok(mut t) = self.traffic.lock() {
            *t = Traffic::default();
        }
    }
}

/// Copies one direction; when counting, follows HTTP/1.1 framing (headers, then a body of
/// Content-Length bytes or chunks) to record each request line.
fn pump(mut from: TcpStream, mut to: TcpStream, traffic: Option<Arc<Mutex<Traffic>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut parser = Framing::default();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(traffic) = &traffic {
            let lines = parser.feed(&buf[..n]);
            if let Ok(mut t) = traffic.lock() {
                t.bytes += n as u64;
                t.requests.extend(lines);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Incremental HTTP/1.1 request framing.
#[derive(Default)]
struct Framing {
    pending: Vec<u8>,
    body_left: u64,
    chunked: bool,
}

impl Framing {
    fn feed(&mut self, data: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(data);
        let mut lines = Vec::new();
        loop {
            if self.body_left > 0 {
                let take = (self.body_left as usize).min(self.pending.len());
                self.pending.drain(..take);
                self.body_left -= take as u64;
                if self.body_left > 0 {
                    return lines;
                }
                continue;
            }
            if self.chunked {
                // A chunk: size line, data, CRLF; size 0 ends the body (no trailers expected).
                let Some(end) = find(&self.pending, b"\r\n") else {
                    return lines;
                };
                let size_text = String::from_utf8_lossy(&self.pending[..end]).to_string();
                let size =
                    u64::from_str_radix(size_text.trim().split(';').next().unwrap_or("0"), 16)
                        .unwrap_or(0);
                if self.pending.len() < end + 2 + size as usize + 2 {
                    return lines;
                }
                self.pending.drain(..end + 2 + size as usize + 2);
                if size == 0 {
                    self.chunked = false;
                }
                continue;
            }
            let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                return lines;
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).to_string();
            self.pending.drain(..end + 4);
            let mut head_lines = head.lines();
            lines.push(head_lines.next().unwrap_or_default().to_string());
            for line in head_lines {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    self.body_left = v.trim().parse().unwrap_or(0);
                } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                    self.chunked = true;
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
