//! Abuse of the local servers: `serve`'s Invoke API and its HTTP front, and `emulator`'s
//! Invoke API, each under 1,000 concurrent connections, slowloris clients, 7 MB payloads and
//! 10,000 malformed requests (bad JSON, bad HTTP, bad headers, unknown function names). Through
//! all of it a well-behaved client keeps invoking and must get the right answer every time; the
//! server answers Lambda's errors, stays up, and its peak memory stays under 200 MB.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::http::{self, Response};

/// Peak resident memory allowed to a server process.
const MAX_RSS_MB: u64 = 200;
const CONNECTIONS: usize = 1000;
const SLOWLORIS: usize = 100;
const MALFORMED: usize = 10_000;
const BIG_PAYLOADS: usize = 10;

/// A server process under test, killed when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` (with `--message-format json`) and returns it with the event of `reason`
    /// it printed first.
    fn start(mut cmd: Command, reason: &str) -> (Server, Value) {
        use std::io::BufRead;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("the CLI starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let event = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the server ended before `{reason}`"))
                .unwrap();
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["reason"] == reason {
                break event;
            }
        };
        // Keep reading, so that the server never blocks on a full pipe.
        thread::spawn(move || lines.for_each(drop));
        (Server { child }, event)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Peak resident memory (VmHWM), in MB.
    fn peak_rss_mb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb / 1024)
            .unwrap()
    }
}

/// The echo fixture's x86_64 musl bootstrap, copied under `dir`'s target directory so that
/// `--no-build` finds it there.
fn echo_target(case: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("abuse-{case}"));
    let bootstrap = target.join("lambda-image/fixture-echo/x86_64/bootstrap");
    std::fs::create_dir_all(bootstrap.parent().unwrap()).unwrap();
    std::fs::copy(
        support::images::echo_bootstrap(cargo_lambda_image::target::Arch::X86_64),
        &bootstrap,
    )
    .unwrap();
    target
}

/// What a well-behaved request is and what its answer must be.
#[derive(Clone)]
struct Endpoint {
    /// `host:port`.
    addr: String,
    /// A well-behaved request, whole.
    good: Vec<u8>,
    /// Checks a well-behaved request's answer.
    is_right: fn(&Response) -> bool,
    /// The path of the Invoke API of the served function, or `None` for an HTTP front.
    invoke_path: Option<String>,
}

/// A POST of `body` to `path`, closing the connection after the answer.
fn invoke_request(addr: &str, path: &str, body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn invoke_endpoint(url: &str) -> Endpoint {
    let (addr, path) = http::split(url);
    Endpoint {
        good: invoke_request(&addr, &path, br#"{"well":"behaved"}"#, ""),
        addr,
        is_right: |r| r.status == 200 && r.json() == json!({"well": "behaved"}),
        invoke_path: Some(path),
    }
}

fn front_endpoint(url: &str) -> Endpoint {
    let (addr, _) = http::split(url);
    Endpoint {
        good: format!(
            "GET /well/behaved?x=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        addr,
        // The echo function answers with the API Gateway event it was given: a well-formed
        // event of this very request.
        is_right: |r| r.status == 200 && r.json()["rawPath"] == "/well/behaved",
        invoke_path: None,
    }
}

/// A client that sends the well-behaved request over and over until stopped, counting the
/// answers and the wrong ones.
struct Behaved {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(usize, Vec<String>)>,
}

fn behaved(endpoint: &Endpoint) -> Behaved {
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, endpoint) = (stop.clone(), endpoint.clone());
    let handle = thread::spawn(move || {
        let (mut answered, mut wrong) = (0, Vec::new());
        while !flag.load(Ordering::Relaxed) {
            match http::send_raw(&endpoint.addr, &endpoint.good, Duration::from_secs(30)) {
                Ok(r) if (endpoint.is_right)(&r) => answered += 1,
                Ok(r) => wrong.push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body))),
                Err(e) => wrong.push(e.to_string()),
            }
            thread::sleep(Duration::from_millis(20));
        }
        (answered, wrong)
    });
    Behaved { stop, handle }
}

impl Behaved {
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Runs `jobs` on `threads` threads.
fn in_parallel(threads: usize, jobs: usize, job: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return;
                }
                job(i);
            });
        }
    });
}

/// 1,000 connections at once: all held open, and a fifth of them sending the well-behaved
/// request at the same time, which must be answered right.
fn many_connections(endpoint: &Endpoint) {
    let held: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| {
            TcpStream::connect(&endpoint.addr)
                .unwrap_or_else(|e| panic!("connection {i} of {CONNECTIONS}: {e}"))
        })
        .collect();
    let wrong = AtomicUsize::new(0);
    let held = std::sync::Mutex::new(held);
    in_parallel(50, CONNECTIONS / 5, |i| {
        let stream = held.lock().unwrap()[i].try_clone().unwrap();
        let mut stream = stream;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(&endpoint.good).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        if !http::parse(&answer).is_ok_and(|r| (endpoint.is_right)(&r)) {
            wrong.fetch_add(1, Ordering::Relaxed);
        }
    });
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "answers to concurrent requests were wrong"
    );
    drop(held);
}

/// Slowloris clients: each sends its request's head a line at a time, slower than the header
/// timeout allows. Returns once the server has closed every one of them.
fn slowloris(endpoint: &Endpoint) -> thread::JoinHandle<()> {
    let addr = endpoint.addr.clone();
    thread::spawn(move || {
        let started = Instant::now();
        let mut streams: Vec<Option<TcpStream>> = (0..SLOWLORIS)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n")
                    .unwrap();
                Some(s)
            })
            .collect();
        let limit = cargo_lambda_image::emulate::server::HEADER_TIMEOUT + Duration::from_secs(15);
        while streams.iter().any(Option::is_some) {
            assert!(
                started.elapsed() < limit,
                "slowloris connections were still open after {:?}",
                started.elapsed()
            );
            thread::sleep(Duration::from_secs(2));
            for slot in &mut streams {
                if let Some(stream) = slot {
                    if stream.write_all(b"X-Slow: 1\r\n").is_err() {
                        *slot = None;
                    }
                }
            }
        }
    })
}

/// 7 MB payloads: Lambda's 413 each time, and the connection is usable or closed, never hung.
fn big_payloads(endpoint: &Endpoint) {
    let body = vec![b'7'; 7 << 20];
    in_parallel(BIG_PAYLOADS, BIG_PAYLOADS, |_| {
        let path = endpoint.invoke_path.as_deref().unwrap_or("/big");
        let request = invoke_request(&endpoint.addr, path, &body, "");
        let answer = http::send_raw(&endpoint.addr, &request, Duration::from_secs(60)).unwrap();
        assert_eq!(
            answer.status,
            413,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        if endpoint.invoke_path.is_some() {
            assert_eq!(answer.json()["errorType"], "RequestEntityTooLargeException");
        }
    });
}

/// One malformed request of each kind in turn, [`MALFORMED`] in all, and the answer each must
/// get: (request, expected status, expected Lambda error type).
fn malformed_request(
    endpoint: &Endpoint,
    i: usize,
) -> (Vec<u8>, Option<u16>, Option<&'static str>) {
    let addr = &endpoint.addr;
    let Some(path) = endpoint.invoke_path.as_deref() else {
        // The HTTP front takes any path and body; what is malformed there is the HTTP itself.
        return match i % 3 {
            0 => (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(), None, None),
            1 => (
                format!("GET / HTTP/1.1\r\nHost: {addr}\r\nBad Header Name: x\r\nConnection: close\r\n\r\n").into_bytes(),
                Some(400),
                None,
            ),
            _ => (
                format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: nope\r\nConnection: close\r\n\r\n").into_bytes(),
                Some(400),
                None,
            ),
        };
    };
    match i % 5 {
        0 => (
            invoke_request(addr, path, b"{\"not json", ""),
            Some(400),
            Some("InvalidRequestContentException"),
        ),
        1 => (
            invoke_request(
                addr,
                &path.replace("/functions/", &format!("/functions/no-such-function-{i}-")),
                b"{}",
                "",
            ),
            Some(404),
            Some("ResourceNotFoundException"),
        ),
        2 => (
            invoke_request(
                addr,
                path,
                b"{}",
                "X-Amz-Client-Context: %%%not base64%%%\r\n",
            ),
            Some(400),
            Some("InvalidRequestContentException"),
        ),
        3 => (
            invoke_request(addr, path, b"{}", "X-Amz-Invocation-Type: Sometimes\r\n"),
            Some(400),
            Some("InvalidParameterValueException"),
        ),
        // Not HTTP at all: hyper answers 400 (or closes), and the server goes on.
        _ => (b"HELLO THERE\r\n\r\n".to_vec(), None, None),
    }
}

fn malformed(endpoint: &Endpoint) {
    let wrong = std::sync::Mutex::new(Vec::new());
    in_parallel(20, MALFORMED, |i| {
        let (request, status, error_type) = malformed_request(endpoint, i);
        let answer = http::send_raw(&endpoint.addr, &request, Duration::from_secs(30));
        let ok = match (answer, status) {
            (Ok(answer), Some(status)) => {
                answer.status == status
                    && error_type.is_none_or(|t| answer.json()["errorType"] == t)
            }
            // Not HTTP: an error answer, or the connection closed; never a hang (the read
            // timeout above) or a success.
            (Ok(answer), None) => answer.status >= 400,
            (Err(e), None) => e.kind() != std::io::ErrorKind::WouldBlock,
            (Err(_), Some(_)) => false,
        };
        if !ok {
            wrong
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&request[..60.min(request.len())]).into_owned());
        }
    });
    let wrong = wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{} malformed requests got the wrong answer, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
}

/// Everything above against `endpoints` of `server`, with a well-behaved client on each.
fn abuse(server: &mut Server, endpoints: &[Endpoint], what: &str) {
    let started = Instant::now();
    let clients: Vec<Behaved> = endpoints.iter().map(behaved).collect();
    let slow: Vec<_> = endpoints.iter().map(slowloris).collect();
    for endpoint in endpoints {
        many_connections(endpoint);
        big_payloads(endpoint);
        malformed(endpoint);
    }
    for handle in slow {
        handle
            .join()
            .expect("every slowloris connection was closed");
    }
    for (client, endpoint) in clients.into_iter().zip(endpoints) {
        let (answered, wrong) = client.finish();
        assert!(
            wrong.is_empty(),
            "{}: a well-behaved client got {wrong:?}",
            endpoint.addr
        );
        assert!(answered > 10, "{}: only {answered} answers", endpoint.addr);
    }
    assert!(server.alive(), "{what} died");
    let peak = server.peak_rss_mb();
    assert!(peak < MAX_RSS_MB, "{what} peaked at {peak} MB");
    // The figures README.md's Reliability section quotes.
    eprintln!(
        "abuse: {what}: {CONNECTIONS} connections, {SLOWLORIS} slowloris, {BIG_PAYLOADS} × 7 MB, \
         {MALFORMED} malformed requests per endpoint; peak RSS {peak} MB; {:?}",
        started.elapsed()
    );
}

#[test]
fn serve_and_its_http_front_stay_up_under_abuse() {
    let target = echo_target("serve");
    let mut cmd = support::cli();
    cmd.args([
        "serve",
        "-p",
        "echo",
        "--no-build",
        "--arch",
        "x86_64",
        "--libc",
        "musl",
    ])
    .args(["--base-image", "scratch", "--bind", "127.0.0.1:0"])
    .args([
        "--http",
        "fixture-echo=127.0.0.1:0",
        "--message-format",
        "json",
    ])
    .arg("--manifest-path")
    .arg(support::fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", &target);
    let (mut server, serving) = Server::start(cmd, "serving");
    let function = &serving["functions"][0];
    let endpoints = [
        invoke_endpoint(function["invoke_url"].as_str().unwrap()),
        front_endpoint(function["http"].as_str().unwrap()),
    ];
    abuse(&mut server, &endpoints, "serve");
}

#[test]
fn the_emulator_stays_up_under_abuse() {
    let target = echo_target("emulator");
    let bootstrap = target.join("lambda-image/fixture-echo/x86_64/bootstrap");
    let mut cmd = support::cli();
    cmd.args([
        "emulator",
        "--bind",
        "127.0.0.1:0",
        "--message-format",
        "json",
        "--",
    ])
    .arg(&bootstrap);
    let (mut server, started) = Server::start(cmd, "emulator");
    let endpoints = [invoke_endpoint(started["invoke_url"].as_str().unwrap())];
    abuse(&mut server, &endpoints, "emulator");
}
