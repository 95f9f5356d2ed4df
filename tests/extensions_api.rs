//! Lambda's extensions under the emulator, with real clients: `lambda_runtime` 1.5's graceful
//! shutdown (an internal extension) and an external extension written with `lambda-extension`
//! (tests/fixtures/emulator/lifecycle, `graceful` and `recorder`): init waits for them, the
//! client gets its answer before the extensions are done with the invocation, the next
//! invocation waits for them, and every way an environment ends (a stop, a timeout, a failed
//! extension) runs Lambda's shutdown phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, LogSink, ProcessLauncher};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;

fn bin(name: &str) -> std::path::PathBuf {
    support::runner_images::lifecycle_bin(name)
}

fn config() -> (EmulatorConfig, UnboundedReceiver<String>) {
    let (logs, rx) = LogSink::channel();
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        function_name: "lifecycle".into(),
        timeout: Duration::from_secs(5),
        logs,
        ..Default::default()
    };
    (config, rx)
}

async fn start(config: EmulatorConfig, launcher: ProcessLauncher) -> Emulator {
    Emulator::start(config, Arc::new(launcher))
        .await
        .expect("the emulator starts")
}

/// Status, function error and JSON body of one invocation.
async fn invoke(url: &str, event: Value) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .body(event.to_string())
        .send()
        .await
        .expect("the emulator answers");
    let status = response.status();
    let error = response
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, error, json)
}

fn drain(rx: &mut UnboundedReceiver<String>) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// The lines the recorder extension wrote.
fn recorded(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_function_with_graceful_shutdown_answers_and_its_hook_runs_when_the_emulator_stops() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hook");
    let (mut config, mut logs) = config();
    config
        .env
        .insert("GRACEFUL_MARKER".into(), marker.display().to_string());
    let emulator = start(config, ProcessLauncher::new(bin("graceful"))).await;
    let (status, error, body) = invoke(&emulator.invoke_url(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(error.is_none(), "{body}");
    assert!(!marker.exists(), "the hook runs at shutdown, not before");
    emulator.shutdown().await;
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some("hook ran\n"),
        "the runtime got SIGTERM and ran its hook"
    );
    // The hook's output comes through the runtime's pipe, a moment after it exited.
    let mut lines = drain(&mut logs);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !lines
        .iter()
        .any(|l| l.contains("[graceful] shutdown hook ran"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        lines.extend(drain(&mut logs));
    }
    assert!(
        lines.iter().any(|l| l
            == "EXTENSION\tName: _lambda-rust-runtime-no-op-graceful-shutdown-helper\tState: Ready\tEvents: []"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[graceful] shutdown hook ran")),
        "{lines:#?}"
    );
}

/// The recorder extension beside the `tenant` function (any function of the fixture will do).
fn with_recorder(
    record: &std::path::Path,
    delay_ms: u64,
) -> (EmulatorConfig, UnboundedReceiver<String>, ProcessLauncher) {
    let (mut config, logs) = config();
    config
        .env
        .insert("RECORD_FILE".into(), record.display().to_string());
    config
        .env
        .insert("EXTENSION_DELAY_MS".into(), delay_ms.to_string());
    let launcher = ProcessLauncher::new(bin("concurrent")).extension("recorder", bin("recorder"));
    (config, logs, launcher)
}

#[tokio::test]
async fn an_external_extension_starts_first_gets_every_invoke_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let (config, mut logs, launcher) = with_recorder(&record, 0);
    let emulator = start(config, launcher).await;
    let first = invoke(&emulator.invoke_url(), json!({})).await;
    let second = invoke(&emulator.invoke_url(), json!({})).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.2);
    assert_eq!(second.0, StatusCode::OK, "{}", second.2);
    emulator.shutdown().await;
    let ids: Vec<&str> = [&first.2, &second.2]
        .iter()
        .map(|b| b["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        recorded(&record),
        [
            "started".to_string(),
            format!("invoke {}", ids[0]),
            format!("invoke {}", ids[1]),
            "shutdown spindown".to_string(),
        ]
    );
    let lines = drain(&mut logs);
    assert!(
        lines
            .iter()
            .any(|l| l == "EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE,SHUTDOWN]"),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn the_client_gets_its_answer_before_the_extensions_finish_and_the_next_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let (config, mut logs, launcher) = with_recorder(&record, 600);
    let emulator = start(config, launcher).await;
    let url = emulator.invoke_url();
    // A cold start first, so that the timings below are of a warm environment.
    invoke(&url, json!({})).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sent = Instant::now();
    let (status, _, first) = invoke(&url, json!({})).await;
    let answered = sent.elapsed();
    let (_, _, second) = invoke(&url, json!({})).await;
    let second_answered = sent.elapsed();
    emulator.shutdown().await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answered < Duration::from_millis(400),
        "the answer waited for the extension: {answered:?}"
    );
    assert!(
        second_answered >= Duration::from_millis(600),
        "the second invocation ran while the extension was busy with the first: {second_answered:?}"
    );
    let lines = drain(&mut logs);
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}`: {lines:#?}"))
    };
    let first_id = first["request_id"].as_str().unwrap();
    let second_id = second["request_id"].as_str().unwrap();
    assert!(
        position(&format!("[recorder] invoke {first_id}"))
            < position(&format!("REPORT RequestId: {first_id}")),
        "the first invocation's REPORT comes when the extension is done"
    );
    assert!(
        position(&format!("REPORT RequestId: {first_id}"))
            < position(&format!("START RequestId: {second_id}")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_timeout_shuts_the_environment_down_with_the_reason_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let (mut config, _logs, launcher) = with_recorder(&record, 0);
    config.timeout = Duration::from_secs(1);
    let emulator = start(config, launcher).await;
    let (_, error, body) = invoke(&emulator.invoke_url(), json!({"sleep_ms": 1500})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    // The reset's shutdown phase takes a moment after the answer.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !recorded(&record).contains(&"shutdown timeout".to_string()) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recorded(&record).contains(&"shutdown timeout".to_string()),
        "{:?}",
        recorded(&record)
    );
    // The next invocation starts a new environment, with the extension started again.
    let (status, _, _) = invoke(&emulator.invoke_url(), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    emulator.shutdown().await;
    assert_eq!(
        recorded(&record).iter().filter(|l| *l == "started").count(),
        2,
        "{:?}",
        recorded(&record)
    );
}

#[tokio::test]
async fn extensions_that_fail_fail_the_invocation_with_lambdas_error_types() {
    // One that exits before registering: Extension.Crash.
    let (crasher_config, mut logs) = config();
    let launcher = ProcessLauncher::new(bin("concurrent")).extension("crasher", "false");
    let emulator = start(crasher_config, launcher).await;
    let (status, error, body) = invoke(&emulator.invoke_url(), json!({})).await;
    emulator.shutdown().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Extension.Crash", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ") && message.contains("exit status 1"),
        "{message}"
    );
    let lines = drain(&mut logs);
    assert!(
        lines.iter().any(|l| l.starts_with("INIT_REPORT")
            && l.contains("Status: error")
            && l.contains("Error Type: Extension.Crash")),
        "{lines:#?}"
    );

    // One that cannot start: Extension.LaunchError, naming the program.
    let (missing_config, _logs) = config();
    let launcher =
        ProcessLauncher::new(bin("concurrent")).extension("missing", "/nonexistent/extension");
    let emulator = start(missing_config, launcher).await;
    let (_, _, body) = invoke(&emulator.invoke_url(), json!({})).await;
    emulator.shutdown().await;
    assert_eq!(body["errorType"], "Extension.LaunchError", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/extension"),
        "{body}"
    );
}
