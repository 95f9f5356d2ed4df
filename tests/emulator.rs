//! The Runtime API emulator against real runtimes and a real HTTP client: the `behave` fixture
//! (built with `lambda_runtime`), whose behaviour is chosen by its event, and a Python handler
//! run by AWS's own runtime interface client, `awslambdaric`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use cargo_lambda_image::emulate::{
    Emulator, EmulatorConfig, Launcher, LogSink, ProcessLauncher, RuntimeProcess,
};
use cargo_lambda_image::target::Arch;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;

const SIX_MB: usize = 6 * 1024 * 1024;

/// The `behave` package's binaries (`behave`, `stream`): the static x86_64 musl build the
/// runner tests use too, which runs on this machine as it does on Lambda.
fn fixture_bin(name: &str) -> PathBuf {
    support::runner_images::behave_bin(Arch::X86_64, name)
}

fn behave() -> ProcessLauncher {
    ProcessLauncher::new(fixture_bin("behave"))
}

/// A config on a free port, with logs captured.
fn config() -> (EmulatorConfig, UnboundedReceiver<String>) {
    let (logs, rx) = LogSink::channel();
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        function_name: "behave".into(),
        memory_mb: 256,
        timeout: Duration::from_secs(3),
        region: "eu-west-1".into(),
        account_id: "111122223333".into(),
        env: BTreeMap::from([("STAGE".to_string(), "test".to_string())]),
        logs,
        ..Default::default()
    };
    (config, rx)
}

async fn start(config: EmulatorConfig, launcher: impl Launcher) -> Emulator {
    Emulator::start(config, Arc::new(launcher))
        .await
        .expect("the emulator starts")
}

/// An answer of the Invoke API.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn function_error(&self) -> Option<&str> {
        self.header("x-amz-function-error")
    }
}

async fn post(url: &str, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("the emulator answers");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("a body").to_vec(),
    }
}

async fn invoke(emulator: &Emulator, event: Value) -> Answer {
    post(&emulator.invoke_url(), event.to_string(), &[]).await
}

/// Every log line so far.
fn drain(logs: &mut UnboundedReceiver<String>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = logs.try_recv() {
        lines.push(line);
    }
    lines
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[tokio::test]
async fn echo_roundtrip_and_every_next_header_reaches_the_function() {
    let (config, _logs) = config();
    let emulator = start(config, behave()).await;

    let answer = invoke(&emulator, json!({"hello": "world"})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), None);
    assert_eq!(answer.json(), json!({"hello": "world"}));
    assert_eq!(answer.header("x-amz-executed-version"), Some("$LATEST"));

    // The same function by name, partial and full ARN.
    let base = format!("http://{}/2015-03-31/functions", emulator.local_addr());
    for name in [
        "behave",
        "behave:$LATEST",
        "arn:aws:lambda:eu-west-1:111122223333:function:behave",
    ] {
        let answer = post(&format!("{base}/{name}/invocations"), "{\"n\":1}", &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        assert_eq!(answer.json(), json!({"n": 1}), "{name}");
    }

    let client_context = base64::engine::general_purpose::STANDARD.encode(
        r#"{"custom": {"team": "lambda"}, "environment": {},
                "client": {"installation_id": "i", "app_title": "t", "app_version_name": "1",
                           "app_version_code": "1", "app_package_name": "p"}}"#,
    );
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let answer = post(
        &emulator.invoke_url(),
        json!({"context": true}).to_string(),
        &[
            ("X-Amz-Client-Context", client_context.as_str()),
            ("X-Amzn-Trace-Id", trace),
            (
                "X-Amz-Cognito-Identity",
                r#"{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}"#,
            ),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let context = answer.json();
    assert_eq!(
        context["request_id"].as_str(),
        answer.header("x-amzn-requestid"),
        "{context}"
    );
    let deadline = context["deadline"].as_u64().unwrap();
    assert!(
        deadline >= before + 2_900 && deadline <= before + 4_000,
        "deadline {deadline} is not about 3 s after {before}"
    );
    assert_eq!(
        context["invoked_function_arn"],
        "arn:aws:lambda:eu-west-1:111122223333:function:behave"
    );
    assert_eq!(context["xray_trace_id"], trace);
    assert_eq!(context["trace_env"], trace);
    assert_eq!(context["client_context"]["custom"]["team"], "lambda");
    assert_eq!(context["client_context"]["client"]["appTitle"], "t");
    assert_eq!(context["identity"]["identityId"], "id-1");
    assert_eq!(context["identity"]["identityPoolId"], "pool-1");
    assert_eq!(context["function_name"], "behave");
    assert_eq!(context["memory"], 256);
    assert_eq!(context["version"], "$LATEST");
    assert_eq!(context["log_group"], "/aws/lambda/behave");
    assert!(
        context["log_stream"]
            .as_str()
            .unwrap()
            .contains("/[$LATEST]"),
        "{context}"
    );

    // A plain local process may write where it likes (a sandbox launcher would refuse).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.txt");
    let answer = invoke(&emulator, json!({"write": file})).await;
    assert_eq!(answer.json(), json!({"written": file}));
    assert_eq!(std::fs::read(&file).unwrap(), b"written");

    // Without a trace header the emulator makes one up.
    let answer = invoke(&emulator, json!({"context": true})).await;
    let generated = answer.json()["xray_trace_id"].as_str().unwrap().to_string();
    assert!(generated.starts_with("Root=1-"), "{generated}");

    for (name, expected) in [
        ("AWS_REGION", json!("eu-west-1")),
        ("AWS_DEFAULT_REGION", json!("eu-west-1")),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", json!("256")),
        ("_HANDLER", json!("bootstrap")),
        ("LAMBDA_TASK_ROOT", json!("/var/task")),
        ("LAMBDA_RUNTIME_DIR", json!("/var/runtime")),
        ("TZ", json!(":UTC")),
        ("STAGE", json!("test")),
        // Nothing leaks from the host environment.
        ("HOME", Value::Null),
        ("CARGO_MANIFEST_DIR", Value::Null),
        ("AWS_EXECUTION_ENV", Value::Null),
    ] {
        let answer = invoke(&emulator, json!({"env": name})).await;
        assert_eq!(answer.json(), expected, "{name}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn function_errors_and_panics_are_unhandled_errors_and_the_runtime_lives_on() {
    let (config, mut logs) = config();
    let emulator = start(config, behave()).await;

    let answer = invoke(&emulator, json!({"error": "boom"})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert_eq!(body["errorMessage"], "boom", "{body}");
    assert!(body["errorType"].is_string(), "{body}");

    let answer = invoke(&emulator, json!({"panic": true})).await;
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("asked to panic"),
        "{body}"
    );

    let answer = invoke(&emulator, json!({"after": "errors"})).await;
    assert_eq!(answer.function_error(), None);
    assert_eq!(answer.json(), json!({"after": "errors"}));
    emulator.shutdown().await;

    // One runtime served all three: only one cold start.
    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "Init Duration"), 1, "{lines:#?}");
    assert_eq!(count(&lines, "Status: error"), 2, "{lines:#?}");
}

#[tokio::test]
async fn timeout_kills_the_runtime_and_the_next_invoke_starts_a_fresh_one() {
    let (mut config, mut logs) = config();
    config.timeout = Duration::from_secs(1);
    let emulator = start(config, behave()).await;

    let started = Instant::now();
    let answer = invoke(&emulator, json!({"sleep_ms": 5000})).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    let request_id = answer.header("x-amzn-requestid").unwrap();
    assert!(
        message.ends_with(&format!("{request_id} Task timed out after 1.00 seconds")),
        "{message}"
    );
    // `<date> <id> ...`, the date being RFC 3339 in UTC.
    assert!(
        message.as_bytes()[4] == b'-' && message.contains("Z "),
        "{message}"
    );

    let answer = invoke(&emulator, json!({"sleep_ms": 10})).await;
    assert_eq!(answer.function_error(), None, "{}", answer.json());
    emulator.shutdown().await;

    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "Init Duration"), 2, "a re-init: {lines:#?}");
    assert_eq!(count(&lines, "Status: timeout"), 1, "{lines:#?}");
}

#[tokio::test]
async fn a_runtime_that_exits_is_a_runtime_exit_error_and_is_restarted() {
    let (config, mut logs) = config();
    let emulator = start(config, behave()).await;

    let answer = invoke(&emulator, json!({"exit": 3})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    let request_id = answer.header("x-amzn-requestid").unwrap();
    assert_eq!(
        body["errorMessage"],
        format!("RequestId: {request_id} Error: Runtime exited with error: exit status 3")
    );

    let answer = invoke(&emulator, json!({"back": true})).await;
    assert_eq!(answer.json(), json!({"back": true}));
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "Init Duration"), 2, "{lines:#?}");
}

#[tokio::test]
async fn payload_limits_are_lambdas_six_megabytes() {
    let (config, _logs) = config();
    let emulator = start(config, behave()).await;

    // A 7 MB response is replaced by Lambda's error.
    let answer = invoke(&emulator, json!({"big_bytes": 7 * 1024 * 1024})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("(7340032 bytes) exceeded maximum allowed payload size"),
        "{body}"
    );

    // Exactly 6 MB is fine both ways.
    let answer = invoke(&emulator, json!({"big_bytes": SIX_MB})).await;
    assert_eq!(answer.function_error(), None);
    assert_eq!(answer.body.len(), SIX_MB);

    // A 7 MB request is refused before it reaches the function.
    let big = Value::String("x".repeat(7 * 1024 * 1024)).to_string();
    let answer = post(&emulator.invoke_url(), big, &[]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["errorType"], "RequestEntityTooLargeException");

    let exact = Value::String("x".repeat(SIX_MB - 2)).to_string();
    assert_eq!(exact.len(), SIX_MB);
    let answer = post(&emulator.invoke_url(), exact, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), SIX_MB);
    emulator.shutdown().await;
}

#[tokio::test]
async fn invoke_api_errors_are_json_with_lambdas_status_codes() {
    let (config, _logs) = config();
    let emulator = start(config, behave()).await;
    let base = format!("http://{}/2015-03-31/functions", emulator.local_addr());

    let answer = post(&format!("{base}/other/invocations"), "{}", &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["errorType"], "ResourceNotFoundException");
    assert_eq!(
        answer.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );

    let answer = post(&emulator.invoke_url(), "not json", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["errorType"], "InvalidRequestContentException");

    let answer = post(
        &emulator.invoke_url(),
        "{}",
        &[("X-Amz-Client-Context", "%%%")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    let answer = post(
        &emulator.invoke_url(),
        "{}",
        &[("X-Amz-Invocation-Type", "DryRun")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    let answer = post(
        &emulator.invoke_url(),
        "{}",
        &[("X-Amz-Invocation-Type", "Event")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert!(answer.header("x-amzn-requestid").is_some());
    emulator.shutdown().await;
}

#[tokio::test]
async fn concurrent_invokes_run_on_separate_instances() {
    let (mut config, mut logs) = config();
    config.concurrency = 4;
    let emulator = Arc::new(start(config, behave()).await);
    let parallel = |n: usize, sleep_ms: u64| {
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let emulator = emulator.clone();
                tokio::spawn(async move {
                    (
                        i,
                        invoke(&emulator, json!({"sleep_ms": sleep_ms, "i": i})).await,
                    )
                })
            })
            .collect();
        async move {
            for call in calls {
                let (i, answer) = call.await.unwrap();
                assert_eq!(answer.function_error(), None);
                assert_eq!(answer.json(), json!({"sleep_ms": sleep_ms, "i": i}));
            }
        }
    };

    // Four overlapping invokes start four instances.
    parallel(4, 300).await;
    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "Init Duration"), 4, "{lines:#?}");

    // Warm, they run side by side: well under the 4 x 500 ms of one instance.
    let started = Instant::now();
    parallel(4, 500).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "4 x 500 ms in parallel took {elapsed:?}"
    );

    // More invokes than instances queue up instead of failing, and start nothing new.
    parallel(10, 100).await;
    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "Init Duration"), 0, "warm: {lines:#?}");
    assert_eq!(count(&lines, "REPORT RequestId"), 14);
}

#[tokio::test]
async fn one_instance_serves_concurrent_invokes_one_at_a_time() {
    let (config, _logs) = config();
    let emulator = Arc::new(start(config, behave()).await);
    let started = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let emulator = emulator.clone();
            tokio::spawn(async move { invoke(&emulator, json!({"sleep_ms": 300, "i": i})).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().json(), json!({"sleep_ms": 300, "i": i}));
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn logs_have_start_end_and_report_lines_and_the_runtime_output() {
    let (config, mut logs) = config();
    let emulator = start(config, behave()).await;
    let first = invoke(&emulator, json!({"a": 1})).await;
    let second = invoke(&emulator, json!({"error": "logged"})).await;
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    let id1 = first.header("x-amzn-requestid").unwrap();
    let id2 = second.header("x-amzn-requestid").unwrap();

    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with {needle:?} in {lines:#?}"))
    };
    let start = position(&format!("START RequestId: {id1} Version: $LATEST"));
    let end = position(&format!("END RequestId: {id1}"));
    let report = position(&format!("REPORT RequestId: {id1}\tDuration: "));
    assert!(start < end && end < report, "{lines:#?}");
    let report1 = &lines[report];
    assert!(report1.contains("\tBilled Duration: "), "{report1}");
    assert!(report1.contains("\tMemory Size: 256 MB"), "{report1}");
    assert!(report1.contains("\tInit Duration: "), "{report1}");
    #[cfg(target_os = "linux")]
    assert!(report1.contains("\tMax Memory Used: "), "{report1}");

    let report2 = &lines[position(&format!("REPORT RequestId: {id2}"))];
    assert!(!report2.contains("Init Duration"), "{report2}");
    assert!(
        report2.contains("\tStatus: error\tError Type: "),
        "{report2}"
    );
    // The function's own output is forwarded (read from its pipes concurrently, so its
    // position relative to START and END is not fixed).
    position(r#"behave got {"a":1}"#);
}

#[tokio::test]
async fn a_program_that_cannot_start_is_an_invalid_entrypoint() {
    let (config, _logs) = config();
    let emulator = start(config, ProcessLauncher::new("/nonexistent/bootstrap")).await;
    let answer = invoke(&emulator, json!({})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert_eq!(body["errorType"], "Runtime.InvalidEntrypoint");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("fork/exec /nonexistent/bootstrap"),
        "{body}"
    );
}

/// Launches `behave` but remembers the environment it got, so a test can talk to the
/// instance's Runtime API directly.
struct Recording {
    inner: ProcessLauncher,
    env: Arc<Mutex<Option<BTreeMap<String, String>>>>,
}

impl Launcher for Recording {
    fn launch(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        *self.env.lock().unwrap() = Some(env.clone());
        self.inner.launch(env, logs)
    }
}

#[tokio::test]
async fn the_runtime_api_rejects_unknown_request_ids() {
    let (config, _logs) = config();
    let env = Arc::new(Mutex::new(None));
    let launcher = Recording {
        inner: behave(),
        env: env.clone(),
    };
    let emulator = start(config, launcher).await;
    assert_eq!(
        invoke(&emulator, json!({"x": 1})).await.json(),
        json!({"x": 1})
    );
    let api = env.lock().unwrap().clone().unwrap()["AWS_LAMBDA_RUNTIME_API"].clone();
    for kind in ["response", "error"] {
        let answer = post(
            &format!("http://{api}/2018-06-01/runtime/invocation/not-a-request/{kind}"),
            "{}",
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{kind}");
        assert_eq!(answer.json()["errorType"], "InvalidRequestID");
    }
    // The runtime is unaffected.
    assert_eq!(
        invoke(&emulator, json!({"x": 2})).await.json(),
        json!({"x": 2})
    );
}

/// The body after `lambda_runtime`'s HTTP-integration prelude (JSON metadata, then eight NUL
/// bytes), which Lambda passes through as is on the Invoke API.
fn strip_prelude(body: &[u8]) -> &[u8] {
    let end = body
        .windows(8)
        .position(|w| w == [0; 8])
        .unwrap_or_else(|| panic!("no prelude in {:?}", String::from_utf8_lossy(body)));
    let prelude: Value = serde_json::from_slice(&body[..end]).expect("the prelude is JSON");
    assert_eq!(prelude["statusCode"], 200);
    &body[end + 8..]
}

#[tokio::test]
async fn streamed_responses_reach_the_client_as_they_are_produced() {
    let (config, mut logs) = config();
    let emulator = start(config, ProcessLauncher::new(fixture_bin("stream"))).await;
    // Warm up so that the timing below has no cold start in it.
    let warm = invoke(&emulator, json!({"chunks": ["warm"]})).await;
    assert_eq!(warm.status, StatusCode::OK);
    assert_eq!(strip_prelude(&warm.body), b"warm");

    let started = Instant::now();
    let mut response = reqwest::Client::new()
        .post(emulator.invoke_url())
        .body(json!({"chunks": ["one ", "two ", "three"], "delay_ms": 400}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = Vec::new();
    let mut first_chunk_at = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_chunk_at.get_or_insert_with(|| started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    assert_eq!(strip_prelude(&body), b"one two three");
    let first = first_chunk_at.unwrap();
    assert!(
        first + Duration::from_millis(600) < total,
        "the first chunk came at {first:?}, the end at {total:?}: not streamed"
    );
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "REPORT RequestId"), 2, "{lines:#?}");
}

/// A Python interpreter with `awslambdaric`: `python3` on `PATH` (where `cargo xtask ci` puts
/// its venv), else the CI venv itself. Fails the test when there is none.
fn python_with_ric() -> PathBuf {
    let mut candidates = vec![PathBuf::from("python3")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/cargo-lambda-image/ci/venv/bin/python3"));
    }
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", "import awslambdaric, sys; print(sys.executable)"])
            .output();
        if let Ok(out) = ok {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "no Python with awslambdaric (tried {candidates:?}); install it with \
         `python3 -m venv ~/.cache/cargo-lambda-image/ci/venv && \
         ~/.cache/cargo-lambda-image/ci/venv/bin/pip install awslambdaric`, or run `cargo xtask ci`"
    );
}

const PYTHON_HANDLER: &str = r#"
import os

def handler(event, context):
    print("python got", event)
    if "error" in event:
        raise ValueError(event["error"])
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "region": os.environ.get("AWS_REGION"),
    }
"#;

fn python_launcher(dir: &Path, handler: &str) -> ProcessLauncher {
    ProcessLauncher::new(python_with_ric())
        .args(["-m", "awslambdaric", handler])
        .cwd(dir)
}

#[tokio::test]
async fn python_echo_and_error_through_awslambdaric() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), PYTHON_HANDLER).unwrap();
    let (mut config, mut logs) = config();
    config.handler = "app.handler".into();
    let emulator = start(config, python_launcher(dir.path(), "app.handler")).await;

    let answer = invoke(&emulator, json!({"hello": "python"})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), None, "{}", answer.json());
    let body = answer.json();
    assert_eq!(body["event"], json!({"hello": "python"}));
    assert_eq!(
        body["request_id"].as_str(),
        answer.header("x-amzn-requestid")
    );
    assert_eq!(
        body["arn"],
        "arn:aws:lambda:eu-west-1:111122223333:function:behave"
    );
    let remaining = body["remaining_ms"].as_u64().unwrap();
    assert!(remaining > 2_000 && remaining <= 3_000, "{remaining}");
    assert_eq!(body["function_name"], "behave");
    assert_eq!(body["memory"], "256");
    assert_eq!(body["region"], "eu-west-1");

    let answer = invoke(&emulator, json!({"error": "bad input"})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.function_error(), Some("Unhandled"));
    let body = answer.json();
    assert_eq!(body["errorType"], "ValueError", "{body}");
    assert_eq!(body["errorMessage"], "bad input", "{body}");
    assert!(body["stackTrace"].is_array(), "{body}");
    emulator.shutdown().await;

    let lines = drain(&mut logs);
    assert!(
        lines.iter().any(|l| l.contains("python got")),
        "the handler's print is forwarded: {lines:#?}"
    );
    assert_eq!(count(&lines, "Init Duration"), 1, "{lines:#?}");
}

#[tokio::test]
async fn an_init_error_fails_the_invocation_and_the_runtime_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut logs) = config();
    // No such module: awslambdaric posts /init/error with Runtime.ImportModuleError.
    let emulator = start(config, python_launcher(dir.path(), "missing.handler")).await;
    for _ in 0..2 {
        let answer = invoke(&emulator, json!({})).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.function_error(), Some("Unhandled"));
        let body = answer.json();
        assert_eq!(body["errorType"], "Runtime.ImportModuleError", "{body}");
    }
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    assert_eq!(
        count(
            &lines,
            "Phase: init\tStatus: error\tError Type: Runtime.ImportModuleError"
        ),
        2,
        "each invoke re-inits: {lines:#?}"
    );
}

#[tokio::test]
async fn a_stream_that_outlives_the_timeout_is_cut_and_the_runtime_replaced() {
    let (mut config, mut logs) = config();
    config.timeout = Duration::from_secs(1);
    let emulator = start(config, ProcessLauncher::new(fixture_bin("stream"))).await;
    let mut response = reqwest::Client::new()
        .post(emulator.invoke_url())
        .body(json!({"chunks": ["early ", "too late"], "delay_ms": 3000}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started = Instant::now();
    let mut body = Vec::new();
    let cut = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(cut, "a stream cut by the timeout must not end cleanly");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(strip_prelude(&body), b"early ");

    let again = invoke(&emulator, json!({"chunks": ["fresh"]})).await;
    assert_eq!(strip_prelude(&again.body), b"fresh");
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    assert_eq!(
        count(&lines, "Task timed out after 1.00 seconds"),
        1,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "Init Duration"), 2, "{lines:#?}");
}

/// Peak resident memory of this test process, in MB (`VmHWM`).
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// A function that prints 512 MB without a newline before it starts (a runaway logger): the
/// emulator passes the output on in bounded pieces, keeps its memory bounded, and serves the
/// invocation.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_flooding_its_output_does_not_grow_the_emulators_memory() {
    const FLOOD_MB: u64 = 512;
    let lines = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let longest = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (mut config, _logs) = config();
    let (l, m) = (lines.clone(), longest.clone());
    config.logs = LogSink::new(move |line| {
        l.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.fetch_max(line.len(), std::sync::atomic::Ordering::Relaxed);
    });
    config.timeout = Duration::from_secs(60);
    let script = format!(
        "head -c {} /dev/zero | tr '\\0' x; exec {}",
        FLOOD_MB * 1024 * 1024,
        fixture_bin("behave").display()
    );
    let before = peak_rss_mb();
    let emulator = start(
        config,
        ProcessLauncher::new("sh").args(["-c".to_string(), script]),
    )
    .await;
    let answer = invoke(&emulator, json!({"after": "flood"})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"after": "flood"}));
    let after = peak_rss_mb();
    assert!(
        after < before + 128,
        "peak memory grew from {before} MB to {after} MB for {FLOOD_MB} MB of output"
    );
    let split = lines.load(std::sync::atomic::Ordering::Relaxed);
    assert!(split >= 2048, "the flood came as {split} lines");
    assert!(longest.load(std::sync::atomic::Ordering::Relaxed) <= 256 * 1024);
    emulator.shutdown().await;
}

/// A fast runtime can take an event and answer it before the invoking task runs again; every
/// one of many back-to-back invocations must still be a success (this once raced into
/// "Runtime.Unknown: the runtime answered before taking the event").
#[tokio::test(flavor = "multi_thread")]
async fn back_to_back_invocations_of_a_fast_runtime_all_succeed() {
    let (config, _logs) = config();
    let emulator = start(config, behave()).await;
    for n in 0..300 {
        let answer = invoke(&emulator, json!({"n": n})).await;
        assert_eq!(
            answer.function_error(),
            None,
            "invocation {n}: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json(), json!({"n": n}));
    }
    emulator.shutdown().await;
}

/// aws-config's real `credential_process` provider, running a script that hands out numbered
/// keys that expire `lifetime_s` seconds after they are issued.
fn expiring_credentials(dir: &Path, lifetime_s: u32) -> cargo_lambda_image::aws::AwsOptions {
    let counter = dir.join("issued");
    let script = dir.join("issue-credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(($(cat {counter} 2>/dev/null || echo 0) + 1))\necho $n > {counter}\n\
             printf '{{\"Version\":1,\"AccessKeyId\":\"AKIDLOCAL%s\",\"SecretAccessKey\":\"secret%s\",\
             \"SessionToken\":\"token%s\",\"Expiration\":\"%s\"}}' $n $n $n \
             \"$(date -u -d '+{lifetime_s} seconds' +%Y-%m-%dT%H:%M:%SZ)\"\n",
            counter = counter.display()
        ),
    )
    .unwrap();
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    let provider = aws_config::credential_process::CredentialProcessProvider::new(
        script.display().to_string(),
    );
    let sdk = aws_config::SdkConfig::builder()
        .credentials_provider(aws_sdk_lambda::config::SharedCredentialsProvider::new(
            provider,
        ))
        .region(aws_config::Region::new("eu-north-1"))
        .build();
    cargo_lambda_image::aws::AwsOptions {
        sdk_config: Some(sdk),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_get_credentials_only_when_given_and_fresh_ones_before_expiry() {
    let (plain, _logs) = config();
    let emulator = start(plain, behave()).await;
    let answer = invoke(&emulator, json!({"env": "AWS_ACCESS_KEY_ID"})).await;
    assert_eq!(answer.json(), Value::Null, "no credentials unless asked");
    emulator.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    // Keys live 65 s; a runtime must keep 60 s + the 1 s timeout, so it may serve for 4 s.
    let aws = expiring_credentials(dir.path(), 65);
    let source = cargo_lambda_image::aws::CredentialSource::load(&aws)
        .await
        .expect("the credential_process profile resolves");
    assert_eq!(source.region(), Some("eu-north-1"));
    let (mut with_keys, mut logs) = config();
    with_keys.timeout = Duration::from_secs(1);
    with_keys.credentials = Some(source);
    let emulator = start(with_keys, behave()).await;
    let key = |answer: Answer| answer.json().as_str().unwrap_or_default().to_string();
    let first = key(invoke(&emulator, json!({"env": "AWS_ACCESS_KEY_ID"})).await);
    assert_eq!(
        first, "AKIDLOCAL1",
        "the key resolved when the source loaded"
    );
    let token = invoke(&emulator, json!({"env": "AWS_SESSION_TOKEN"})).await;
    assert_eq!(token.json(), "token1");
    assert_eq!(
        invoke(&emulator, json!({"env": "AWS_SECRET_ACCESS_KEY"}))
            .await
            .json(),
        "secret1"
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let second = key(invoke(&emulator, json!({"env": "AWS_ACCESS_KEY_ID"})).await);
    assert_eq!(
        second, "AKIDLOCAL2",
        "an expiring runtime is replaced with fresh keys"
    );
    let lines = drain(&mut logs);
    assert_eq!(count(&lines, "restarting an idle runtime"), 1, "{lines:#?}");
    assert_eq!(
        count(&lines, "Init Duration"),
        2,
        "two runtimes: {lines:#?}"
    );
    for line in &lines {
        assert!(
            !line.contains("secret1") && !line.contains("token1"),
            "{line}"
        );
    }
    emulator.shutdown().await;
}
