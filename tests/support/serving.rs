//! A `serve` or `watch` process for the tests: started with its output captured, read until
//! it reports what it serves, and stopped with Ctrl-C (SIGINT) when dropped, so that its
//! runtimes are cleaned up as a user's would be.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{cli, fixture_target_dir};

/// The emulator fixture workspace (behave, stream, web).
pub fn emulator_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml")
}

/// A `cargo lambda-image` command on the emulator fixtures, for x86_64 musl on scratch, with
/// the target directory the other runner tests share.
pub fn fixture_command(command: &str, manifest: &Path) -> Command {
    let mut cmd = cli();
    cmd.args([command, "--locked", "--arch", "x86_64", "--libc", "musl"])
        .args(["--base-image", "scratch", "--manifest-path"])
        .arg(manifest)
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    cmd
}

/// A running `serve`/`watch`.
pub struct Serving {
    child: Child,
    /// JSON events from stdout, as they come.
    pub events: Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    /// The Invoke API's base URL.
    pub endpoint: String,
    /// The `serving` event's functions.
    pub functions: Vec<Value>,
}

impl Serving {
    /// Starts `cmd` (which must print JSON: `--message-format json` is added) and waits until
    /// it serves; panics with its stderr if it ends first or takes over 10 minutes (a cold
    /// build).
    pub fn start(mut cmd: Command) -> Serving {
        cmd.args(["--message-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the command starts");
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut serving = Serving {
            child,
            events,
            stderr,
            endpoint: String::new(),
            functions: Vec::new(),
        };
        let event = serving.wait_for("serving", Duration::from_secs(600));
        serving.endpoint = event["endpoint"].as_str().unwrap().to_string();
        serving.functions = event["functions"].as_array().unwrap().clone();
        serving
    }

    /// The next event of `reason`, skipping others; panics after `timeout`.
    pub fn wait_for(&mut self, reason: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(event) if event["reason"] == reason => return event,
                Ok(_) => {}
                Err(_) => panic!(
                    "no `{reason}` event within {timeout:?} (exit: {:?}); stderr:\n{}",
                    self.child.try_wait(),
                    self.stderr()
                ),
            }
        }
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The served function named `lambda_name`.
    pub fn function(&self, lambda_name: &str) -> &Value {
        self.functions
            .iter()
            .find(|f| f["lambda_name"] == lambda_name)
            .unwrap_or_else(|| panic!("`{lambda_name}` is not served: {:?}", self.functions))
    }

    /// The address (`host:port`) of the Invoke API.
    pub fn addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
