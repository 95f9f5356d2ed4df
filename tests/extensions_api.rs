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

/// Waits until `file` holds every line of `wanted` (a moment after the extensions' deliveries),
/// then returns what it holds.
async fn wait_for_lines(file: &std::path::Path, wanted: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = recorded(file);
        if wanted.iter().all(|w| lines.contains(w)) || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What follows `prefix` on the first line of `file` that starts with it, waiting for the line
/// to be written (extensions write after the client has its answer).
async fn wait_for_prefix(file: &std::path::Path, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = recorded(file);
        if let Some(rest) = lines.iter().find_map(|l| l.strip_prefix(prefix)) {
            return rest.to_string();
        }
        assert!(Instant::now() < deadline, "no `{prefix}` line: {lines:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn example(name: &str) -> std::path::PathBuf {
    support::runner_images::extension_example(name)
}

/// aws-lambda-rust-runtime's extension examples, unchanged but for recording what reaches
/// them, beside the `behave` function (which prints what it gets). They listen on fixed ports
/// (9002 for the Logs API, 9003 for the Telemetry API), so one test runs them all, an
/// environment at a time.
#[tokio::test]
async fn the_rust_runtimes_extension_examples_get_their_events_and_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let behave =
        support::runner_images::behave_bin(cargo_lambda_image::target::Arch::X86_64, "behave");
    let (mut config, _logs) = config();
    config
        .env
        .insert("EXTENSION_RECORD_FILE".into(), record.display().to_string());
    let launcher = ProcessLauncher::new(&behave)
        .extension("extension-basic", example("extension-basic"))
        .extension(
            "extension-custom-events",
            example("extension-custom-events"),
        )
        .extension("extension-logs-basic", example("extension-logs-basic"))
        .extension(
            "extension-telemetry-basic",
            example("extension-telemetry-basic"),
        );
    let emulator = start(config.clone(), launcher).await;
    let (status, _, _) = invoke(&emulator.invoke_url(), json!({"echo": "hello"})).await;
    assert_eq!(status, StatusCode::OK);
    // The request id comes from the extension that sees every INVOKE.
    let id = wait_for_prefix(&record, "[extension-basic] event INVOKE ").await;
    let wanted = [
        "[extension-telemetry-basic] telemetry platform.initStart Init".to_string(),
        format!("[extension-telemetry-basic] telemetry platform.start {id}"),
        format!("[extension-telemetry-basic] telemetry platform.runtimeDone {id} Success"),
        format!("[extension-telemetry-basic] telemetry platform.report {id} Success"),
        format!("[extension-logs-basic] logs platform.start {id}"),
        format!("[extension-logs-basic] logs platform.report {id}"),
    ];
    let lines = wait_for_lines(&record, &wanted).await;
    for line in &wanted {
        assert!(lines.contains(line), "missing `{line}` in {lines:#?}");
    }
    assert!(
        lines.iter().any(
            |l| l.starts_with("[extension-telemetry-basic] telemetry function ")
                && l.contains("behave got")
        ),
        "the function's output reached the Telemetry API: {lines:#?}"
    );
    emulator.shutdown().await;
    let lines = recorded(&record);
    for name in ["extension-basic", "extension-custom-events"] {
        assert!(
            lines.contains(&format!("[{name}] event SHUTDOWN spindown")),
            "{name}: {lines:#?}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("[extension-custom-events] event INVOKE")),
        "custom-events subscribed to SHUTDOWN only: {lines:#?}"
    );

    // extension-combined: events and the Logs API in one extension.
    std::fs::remove_file(&record).ok();
    let launcher = ProcessLauncher::new(&behave)
        .extension("extension-combined", example("extension-combined"));
    let emulator = start(config.clone(), launcher).await;
    invoke(&emulator.invoke_url(), json!({"echo": "again"})).await;
    let id = wait_for_prefix(&record, "[extension-combined] event INVOKE ").await;
    let wanted = [format!("[extension-combined] logs platform.report {id}")];
    let lines = wait_for_lines(&record, &wanted).await;
    assert!(lines.contains(&wanted[0]), "{lines:#?}");
    emulator.shutdown().await;

    // extension-internal-flush: a function whose internal extension flushes after each
    // invocation the runtime tells it about.
    std::fs::remove_file(&record).ok();
    let emulator = start(
        config,
        ProcessLauncher::new(example("extension-internal-flush")),
    )
    .await;
    let event = json!({"Records": [{"body": "{\"a\": \"first\", \"b\": 1}"}]});
    let (status, error, body) = invoke(&emulator.invoke_url(), event).await;
    assert_eq!(status, StatusCode::OK);
    assert!(error.is_none(), "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let flushed = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.starts_with("[internal-flush] flushed "))
    };
    while !flushed(&recorded(&record)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = recorded(&record);
    assert!(
        lines.contains(&"[internal-flush] runtime first".to_string()),
        "{lines:#?}"
    );
    assert!(flushed(&lines), "{lines:#?}");
    emulator.shutdown().await;
}

/// `cargo lambda-image test` on `graceful`, whose image ships the `recorder` extension
/// (`image.extensions`), run by `runner`; returns stderr (with -v, the environment's log).
fn test_graceful(runner: &str) -> String {
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml");
    let mut cmd = support::cli();
    cmd.args([
        "test",
        "--locked",
        "--base-image",
        "scratch",
        "--manifest-path",
    ])
    .arg(manifest)
    .args([
        "-p",
        "lifecycle",
        "--bin",
        "graceful",
        "-v",
        "--runner",
        runner,
    ])
    .args(["-e", "{}"])
    .env("CARGO_TARGET_DIR", support::fixture_target_dir("musl"));
    let out = support::run(&mut cmd);
    let (stdout, stderr) = support::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stderr
}

#[test]
fn an_extension_shipped_in_the_image_runs_in_every_runner_and_shuts_down_with_the_function() {
    for runner in ["sandbox", "process"] {
        let stderr = test_graceful(runner);
        for needle in [
            "[recorder] started",
            "EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE,SHUTDOWN]",
            "EXTENSION\tName: _lambda-rust-runtime-no-op-graceful-shutdown-helper",
            "[recorder] invoke ",
            "[recorder] shutdown spindown",
            "[graceful] shutdown hook ran",
        ] {
            assert!(
                stderr.contains(needle),
                "{runner}: no `{needle}` in\n{stderr}"
            );
        }
        // The extension started before the runtime's init ended, and stopped after the
        // runtime's hook ran (SIGTERM first, then SHUTDOWN).
        let at = |needle: &str| stderr.find(needle).unwrap();
        assert!(
            at("[recorder] started") < at("EXTENSION\tName: recorder"),
            "{runner}"
        );
        assert!(
            at("[graceful] shutdown hook ran") < at("[recorder] shutdown spindown"),
            "{runner}: {stderr}"
        );
    }
}
