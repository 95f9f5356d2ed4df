//! A minimal Lambda Runtime API server, just enough to prove that a compiled bootstrap starts,
//! fetches an event and posts its answer. (The full emulator is the product's own business;
//! this stays independent of it so the build tests do not depend on it.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the function posted back.
#[derive(Debug, Clone)]
pub struct Posted {
    /// `response`, `error` or `init/error`.
    pub kind: String,
    /// The request id in the path (empty for init errors).
    pub request_id: String,
    /// The body.
    pub body: Vec<u8>,
}

/// A running stub; it serves until the test process ends.
pub struct RuntimeApi {
    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    posted: Receiver<Posted>,
}

impl RuntimeApi {
    /// Starts a stub that hands out the given events (request id, JSON body) in order.
    pub fn start(events: Vec<(String, String)>) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let queue = Arc::new(Mutex::new(
            events
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let queue = queue.clone();
                let tx = tx.clone();
                std::thread::spawn(move || serve(stream, queue, tx));
            }
        });
        RuntimeApi {
            address,
            posted: rx,
        }
    }

    /// Waits for the next posted answer.
    pub fn next_posted(&self, timeout: Duration) -> Option<Posted> {
        self.posted.recv_timeout(timeout).ok()
    }
}

type Queue = Arc<Mutex<std::collections::VecDeque<(String, String)>>>;

fn serve(stream: TcpStream, queue: Queue, tx: Sender<Posted>) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut content_length = 0usize;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                    _ => {}
                }
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            let mut body = vec![0; content_length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            // With no event left, hold the request open, as Lambda does between invocations.
            let next = loop {
                if let Some(event) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    break event;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                + Duration::from_secs(60);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {}\r\nLambda-Runtime-Deadline-Ms: {}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n",
                next.0,
                deadline.as_millis(),
                next.1.len()
            );
            if writer
                .write_all(head.as_bytes())
                .and_then(|_| writer.write_all(next.1.as_bytes()))
                .is_err()
            {
                return;
            }
        } else if method == "POST" && path.starts_with("/2018-06-01/runtime/") {
            let rest = path.trim_start_matches("/2018-06-01/runtime/");
            let (kind, request_id) = if rest == "init/error" {
                ("init/error".to_string(), String::new())
            } else {
                let mut segments = rest.trim_start_matches("invocation/").splitn(2, '/');
                let id = segments.next().unwrap_or("").to_string();
                (segments.next().unwrap_or("").to_string(), id)
            };
            let _ = tx.send(Posted {
                kind,
                request_id,
                body,
            });
            let ok = "{\"status\":\"OK\"}";
            let reply = format!("HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ok}", ok.len());
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        } else {
            let _ = writer.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line).unwrap_or(0) == 0 {
            return body;
        }
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return body;
        }
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}
