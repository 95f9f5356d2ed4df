//! A TCP proxy in front of a real server that counts the HTTP requests and bytes clients send,
//! so tests can assert what crossed the wire rather than what the tool says it did. It can
//! also inject faults: a server that answers 500 at first, or one that goes away mid-transfer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Faults the proxy injects.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// The first this-many connections get `500 Internal Server Error` to their first request,
    /// and are closed.
    pub fail_first_connections: usize,
    /// Once clients have sent more than this many bytes, every connection is cut and new ones
    /// are closed at once: the server has gone away mid-transfer.
    pub cut_after_bytes: Option<u64>,
    /// Once clients have sent more than this many requests, the same as `cut_after_bytes`.
    pub cut_after_requests: Option<usize>,
    /// When the nth request (counting from 1) of this method whose path holds the fragment
    /// arrives, it is not forwarded, and the cut happens as with `cut_after_bytes`. The
    /// requests before it were answered, so the server is left in a well-defined state (a
    /// blob upload session at a chunk boundary, say).
    pub cut_before_request: Option<(&'static str, &'static str, usize)>,
    /// Cut only the connections of that moment, once: later connections go through. The
    /// connection broke; the server did not go away.
    pub cut_once: bool,
}

/// The shared state of a faulty proxy.
#[derive(Default)]
struct FaultState {
    faults: Faults,
    failed: AtomicUsize,
    /// Whether connections are being cut now.
    cut: AtomicBool,
    /// How many times connections were cut.
    cuts: AtomicUsize,
}

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
    state: Arc<FaultState>,
}

impl CountingProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> CountingProxy {
        CountingProxy::start_with_faults(upstream, Faults::default())
    }

    /// Starts a proxy to `upstream` that injects `faults`.
    pub fn start_with_faults(upstream: &str, faults: Faults) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let state = Arc::new(FaultState {
            faults,
            ..Default::default()
        });
        let upstream = upstream.to_string();
        let shared = traffic.clone();
        let shared_state = state.clone();
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().map_while(Result::ok).enumerate() {
                if shared_state.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if n < shared_state.faults.fail_first_connections {
                    shared_state.failed.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || answer_500(client));
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let t = shared.clone();
                let st = shared_state.clone();
                std::thread::spawn(move || pump(client, server, Some((t, st))));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        CountingProxy {
            address,
            traffic,
            state,
        }
    }

    /// How many connections were answered with 500.
    pub fn failed(&self) -> usize {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Whether the proxy has cut the connections.
    pub fn was_cut(&self) -> bool {
        self.state.cuts.load(Ordering::SeqCst) > 0
    }

    /// Lets connections through again after a cut: the server is back.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
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
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    counting: Option<(Arc<Mutex<Traffic>>, Arc<FaultState>)>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut parser = Framing::default();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((traffic, state)) = &counting {
            let lines = parser.feed(&buf[..n]);
            let faults = &state.faults;
            let (bytes, requests, reached) = match traffic.lock() {
                Ok(mut t) => {
                    t.bytes += n as u64;
                    let before = faults
                        .cut_before_request
                        .map(|(method, fragment, _)| t.count(method, fragment));
                    t.requests.extend(lines);
                    let reached = faults.cut_before_request.is_some_and(|(m, f, nth)| {
                        before.is_some_and(|b| b < nth) && t.count(m, f) >= nth
                    });
                    (t.bytes, t.requests.len(), reached)
                }
                Err(_) => (0, 0, false),
            };
            // A fault strikes once per proxy: after `heal` or a cut of its own, traffic flows.
            let spent = state.cuts.load(Ordering::SeqCst) > 0;
            if state.cut.load(Ordering::SeqCst)
                || (!spent
                    && (faults.cut_after_bytes.is_some_and(|limit| bytes > limit)
                        || faults
                            .cut_after_requests
                            .is_some_and(|limit| requests > limit)
                        || reached))
            {
                // Nothing more is forwarded, both sides are closed; unless the cut is once
                // only, the server has gone away for every later connection too.
                if !state.cut.load(Ordering::SeqCst) {
                    state.cuts.fetch_add(1, Ordering::SeqCst);
                    state.cut.store(!faults.cut_once, Ordering::SeqCst);
                }
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Reads a request head and answers 500, closing the connection.
fn answer_500(mut client: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&head, b"\r\n\r\n").is_none() {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = client.write_all(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let _ = client.shutdown(Shutdown::Both);
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
