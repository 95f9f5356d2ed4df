//! Background services the integration tests talk to (dockerd, an OCI
//! registry, moto), started as child processes and stopped by a drop guard.
//!
//! Each service has a readiness probe. The probe runs once before starting, so
//! that an instance left running by `cargo xtask services` in another shell is
//! reused instead of failing on a port that is already taken.

use std::{
    fmt, fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::cmd;

/// Tells whether a service is ready, or why it is not.
pub(crate) type Probe<'a> = &'a dyn Fn() -> Result<(), String>;

/// A running service. Dropping it stops the process, unless it was already
/// running before this task started.
pub(crate) struct Service {
    name: &'static str,
    /// `None` when a healthy instance was already running and is reused.
    child: Option<Child>,
    log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // A process that already exited needs no stopping; the code that
            // noticed the exit reports it.
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            let started = Instant::now();
            // dockerd may need a few seconds to stop containers and containerd.
            match cmd::stop(child, Duration::from_secs(20)) {
                Some(status) => say!(
                    "stopped {} ({status}, {:.1}s)",
                    self.name,
                    started.elapsed().as_secs_f64()
                ),
                None => say!("warning: could not stop {}", self.name),
            }
        }
    }
}

/// The services of one task; dropping it stops them in reverse start order.
#[derive(Default)]
pub(crate) struct Services {
    running: Vec<Service>,
}

impl Services {
    pub(crate) fn push(&mut self, service: Service) {
        self.running.push(service);
    }

    /// Describes the first service this task started that has exited since.
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        for service in &mut self.running {
            if let Some(child) = &mut service.child {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{} exited unexpectedly ({status}); last lines of {}:\n{}",
                        service.name,
                        service.log.display(),
                        tail(&service.log)
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        while let Some(service) = self.running.pop() {
            drop(service);
        }
    }
}

/// Why a service could not be started.
#[derive(Debug)]
pub(crate) struct StartError {
    /// The process exited on its own before it became ready, which usually
    /// means its configuration or the environment is wrong (as opposed to a
    /// slow start or a hang).
    pub(crate) exited_early: bool,
    message: String,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

/// Starts `command` as the service `name` with its output going to `log`, and
/// waits up to `timeout` for `probe` to report it ready. Reuses an instance
/// that already passes `probe` instead.
pub(crate) fn start(
    name: &'static str,
    mut command: Command,
    log: &Path,
    timeout: Duration,
    probe: Probe<'_>,
) -> Result<Service, StartError> {
    let fail = |exited_early, message: String| StartError {
        exited_early,
        message,
    };

    if probe().is_ok() {
        say!("{name} already running, reusing it");
        return Ok(Service {
            name,
            child: None,
            log: log.to_owned(),
        });
    }

    let shown = cmd::display(&command);
    let log_file = fs::File::create(log)
        .map_err(|err| fail(false, format!("failed to create {}: {err}", log.display())))?;
    let log_for_stderr = log_file.try_clone().map_err(|err| {
        fail(
            false,
            format!("failed to duplicate {}: {err}", log.display()),
        )
    })?;
    say!("starting {name}: `{shown}` (log: {})", log.display());
    let started = Instant::now();
    let child = cmd::spawn(
        command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_for_stderr),
    )
    .map_err(|err| fail(false, err.to_string()))?;
    // From here on the guard stops the process on every error path.
    let mut service = Service {
        name,
        child: Some(child),
        log: log.to_owned(),
    };

    let last_problem = loop {
        let problem = match probe() {
            Ok(()) => {
                say!("{name} ready ({:.1}s)", started.elapsed().as_secs_f64());
                return Ok(service);
            }
            Err(problem) => problem,
        };
        if let Some(status) = service.exited() {
            let message = format!(
                "{name} exited ({status}) before it was ready; last lines of {}:\n{}",
                log.display(),
                tail(log)
            );
            return Err(fail(true, message));
        }
        if cmd::interrupted() {
            return Err(fail(false, format!("interrupted while waiting for {name}")));
        }
        if started.elapsed() > timeout {
            break problem;
        }
        thread::sleep(Duration::from_millis(250));
    };
    // Stop it before reading the log so the tail includes its last words.
    drop(service);
    Err(fail(
        false,
        format!(
            "{name} was not ready after {}s ({last_problem}); last lines of {}:\n{}",
            timeout.as_secs(),
            log.display(),
            tail(log)
        ),
    ))
}

impl Service {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }
}

/// The last lines of `log`, indented, for error messages.
fn tail(log: &Path) -> String {
    const LINES: usize = 20;
    let text = match fs::read(log) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => return format!("    (cannot read the log: {err})"),
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "    (the log is empty)".to_owned();
    }
    lines[lines.len().saturating_sub(LINES)..]
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTTP response, just enough of it for readiness probes.
pub(crate) struct Response {
    pub(crate) status: u16,
    /// The status line and headers, lowercased.
    pub(crate) head: String,
}

/// `GET http://{addr}{path}` with short timeouts.
pub(crate) fn http_get(addr: &str, path: &str) -> Result<Response, String> {
    let socket_addr: SocketAddr = addr
        .parse()
        .map_err(|err| format!("invalid address {addr}: {err}"))?;
    let stream = TcpStream::connect_timeout(&socket_addr, Duration::from_secs(1))
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|err| format!("cannot set timeouts on {addr}: {err}"))?;
    request(stream, addr, path).map_err(|err| format!("GET http://{addr}{path}: {err}"))
}

/// `GET {path}` on the Docker API socket at `socket`.
pub(crate) fn unix_http_get(socket: &Path, path: &str) -> Result<Response, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|err| format!("cannot connect to {}: {err}", socket.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|err| format!("cannot set timeouts on {}: {err}", socket.display()))?;
    request(stream, "localhost", path)
        .map_err(|err| format!("GET {path} on {}: {err}", socket.display()))
}

fn request(mut stream: impl Read + Write, host: &str, path: &str) -> Result<Response, String> {
    // HTTP/1.0 makes the server close the connection after the response and
    // rules out chunked encoding, so reading to the end is all it takes.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: */*\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|err| err.to_string())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|err| err.to_string())?;
    let raw = String::from_utf8_lossy(&raw);
    let head = raw
        .split_once("\r\n\r\n")
        .map_or(&*raw, |(head, _body)| head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                head.lines().next().unwrap_or("")
            )
        })?;
    Ok(Response {
        status,
        head: head.to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A fake connection: reads come from `input`, writes go to `output`.
    struct Fake {
        input: Cursor<&'static [u8]>,
        output: Vec<u8>,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn temp_log(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xtask-test-{}-{name}.log", std::process::id()))
    }

    #[test]
    fn request_parses_status_and_lowercases_headers() {
        let raw = b"HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\r\n{}";
        let mut fake = Fake {
            input: Cursor::new(raw),
            output: Vec::new(),
        };
        let response = request(&mut fake, "127.0.0.1:5000", "/v2/").expect("valid response");
        assert_eq!(response.status, 200);
        assert!(response
            .head
            .contains("docker-distribution-api-version: registry/2.0"));
        let sent = String::from_utf8_lossy(&fake.output);
        assert!(
            sent.starts_with("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:5000\r\n"),
            "{sent}"
        );
    }

    #[test]
    fn request_rejects_a_non_http_answer() {
        let mut fake = Fake {
            input: Cursor::new(b"SSH-2.0-OpenSSH\r\n"),
            output: Vec::new(),
        };
        let err = request(&mut fake, "127.0.0.1:5000", "/v2/")
            .err()
            .expect("an error");
        assert!(err.contains("not an HTTP response"), "{err}");
    }

    #[test]
    fn start_reuses_an_instance_that_is_already_healthy() {
        // The program does not exist, so this only passes if it is not started.
        let command = Command::new("/nonexistent/xtask-test-service");
        let service = start(
            "fake",
            command,
            &temp_log("reuse"),
            Duration::from_secs(1),
            &|| Ok(()),
        )
        .map_err(|err| err.to_string())
        .expect("reused");
        assert!(service.child.is_none());
    }

    #[test]
    fn start_reports_a_process_that_exits_before_it_is_ready() {
        let log = temp_log("exit");
        let mut command = Command::new("sh");
        command.args(["-c", "echo bind: address already in use; exit 3"]);
        let not_ready = || Err("not ready".to_owned());
        let Err(err) = start("fake", command, &log, Duration::from_secs(10), &not_ready) else {
            panic!("a process that exits cannot become ready");
        };
        let _ = fs::remove_file(&log);
        assert!(err.exited_early);
        let message = err.to_string();
        assert!(
            message.contains("fake exited (exit status: 3) before it was ready"),
            "{message}"
        );
        assert!(
            message.contains("    bind: address already in use"),
            "{message}"
        );
    }

    #[test]
    fn start_gives_up_after_the_timeout_and_stops_the_process() {
        let log = temp_log("timeout");
        let mut command = Command::new("sh");
        command.args(["-c", "echo still starting; exec sleep 60"]);
        let not_ready = || Err("connection refused".to_owned());
        let started = Instant::now();
        let Err(err) = start("fake", command, &log, Duration::from_secs(1), &not_ready) else {
            panic!("the probe never succeeds");
        };
        let _ = fs::remove_file(&log);
        // The process is stopped with SIGTERM rather than waited for.
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(!err.exited_early);
        let message = err.to_string();
        assert!(
            message.contains("fake was not ready after 1s (connection refused)"),
            "{message}"
        );
        assert!(message.contains("    still starting"), "{message}");
    }
}
