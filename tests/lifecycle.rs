//! Lambda's newer execution models under the emulator, with functions written with
//! lambda_runtime 1.5 as users write them (tests/fixtures/emulator/lifecycle): Managed
//! Instances' concurrent invocations in one environment (`run_concurrent`), SnapStart's
//! restore lifecycle (`SnapStartResource`), and tenant isolation (`context.tenant_id`); then
//! the same through `cargo lambda-image test`, from the metadata's keys and from the flags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cargo_lambda_image::emulate::{
    Emulator, EmulatorConfig, ExecutionModel, LogSink, ProcessLauncher,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support;
use support::{cli, json_lines, run, texts};

/// A config for `bin` of the lifecycle fixture on a free port, with its logs captured.
fn config(model: ExecutionModel) -> (EmulatorConfig, UnboundedReceiver<String>) {
    let (logs, rx) = LogSink::channel();
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        function_name: "lifecycle".into(),
        timeout: Duration::from_secs(5),
        model,
        logs,
        ..Default::default()
    };
    (config, rx)
}

async fn start(config: EmulatorConfig, bin: &str) -> Emulator {
    let launcher = ProcessLauncher::new(support::runner_images::lifecycle_bin(bin));
    Emulator::start(config, Arc::new(launcher))
        .await
        .expect("the emulator starts")
}

/// An answer of the Invoke API: status, error type header and JSON body.
struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    function_error: Option<String>,
    json: Value,
}

async fn invoke(url: &str, event: Value, tenant: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().post(url).body(event.to_string());
    if let Some(tenant) = tenant {
        request = request.header("x-amz-tenant-id", tenant);
    }
    let response = request.send().await.expect("the emulator answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = response.status();
    let error_type = header("x-amzn-errortype");
    let function_error = header("x-amz-function-error");
    let body = response.bytes().await.expect("a body");
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    Answer {
        status,
        error_type,
        function_error,
        json,
    }
}

/// Every line logged so far.
fn drain(rx: &mut UnboundedReceiver<String>) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn pid(answer: &Answer) -> u64 {
    answer.json["environment"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {}", answer.json))
}

/// `n` invocations of `event` sent at once.
async fn at_once(url: &str, n: usize, event: Value) -> Vec<Answer> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (url, event) = (url.to_string(), event.clone());
            tokio::spawn(async move { invoke(&url, event, None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("the invocation task ends"));
    }
    answers
}

#[tokio::test]
async fn managed_instances_run_four_invocations_at_once_in_one_process() {
    let (config, mut logs) = config(ExecutionModel::ManagedInstances { max_concurrency: 4 });
    let emulator = start(config, "concurrent").await;
    let answers = at_once(&emulator.invoke_url(), 4, json!({"sleep_ms": 300})).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert!(answer.function_error.is_none(), "{}", answer.json);
    }
    let pids: BTreeSet<u64> = answers.iter().map(pid).collect();
    assert_eq!(pids.len(), 1, "one execution environment: {pids:?}");
    let starts: Vec<u128> = answers
        .iter()
        .map(|a| a.json["started_ms"].as_str().unwrap().parse().unwrap())
        .collect();
    let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(
        spread <= 150,
        "the four started {spread} ms apart: {starts:?}"
    );
    let environment = &answers[0].json["environment"];
    assert_eq!(
        environment["initialization_type"],
        "lambda-managed-instances"
    );
    assert_eq!(environment["max_concurrency"], "4");
    // Lambda does not set _X_AMZN_TRACE_ID for a runtime of several requests at once; each
    // invocation has its own trace id in its context instead.
    assert!(environment["trace_env"].is_null(), "{environment}");
    let ids: BTreeSet<&str> = answers
        .iter()
        .map(|a| a.json["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "each its own request id");
    assert!(answers.iter().all(|a| a.json["trace_id"].is_string()));
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    for id in &ids {
        let reports: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("REPORT RequestId: {id}\t")))
            .collect();
        assert_eq!(reports.len(), 1, "one REPORT for {id}: {lines:#?}");
    }
}

#[tokio::test]
async fn concurrency_adds_environments_of_max_concurrency_each() {
    let (mut config, _logs) = config(ExecutionModel::ManagedInstances { max_concurrency: 2 });
    config.concurrency = 2;
    let emulator = start(config, "concurrent").await;
    let answers = at_once(&emulator.invoke_url(), 4, json!({"sleep_ms": 400})).await;
    let mut per_pid = BTreeMap::<u64, usize>::new();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        *per_pid.entry(pid(answer)).or_default() += 1;
    }
    assert_eq!(
        per_pid.values().copied().collect::<Vec<_>>(),
        [2, 2],
        "two environments of two requests each: {per_pid:?}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_timeout_on_managed_instances_fails_that_request_and_the_environment_goes_on() {
    let (mut config, mut logs) = config(ExecutionModel::ManagedInstances { max_concurrency: 2 });
    config.timeout = Duration::from_secs(1);
    let emulator = start(config, "concurrent").await;
    let url = emulator.invoke_url();
    let slow = tokio::spawn({
        let url = url.clone();
        async move { invoke(&url, json!({"sleep_ms": 1600}), None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = invoke(&url, json!({"sleep_ms": 50}), None).await;
    let slow = slow.await.unwrap();
    assert_eq!(slow.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(slow.json["errorType"], "Sandbox.Timedout", "{}", slow.json);
    assert_eq!(quick.status, StatusCode::OK);
    // The timed-out request's worker posts its answer late (and gets InvokeTimeout); the
    // environment keeps serving.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = invoke(&url, json!({"sleep_ms": 0}), None).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.json);
    assert_eq!(pid(&after), pid(&quick), "the environment was kept");
    emulator.shutdown().await;
    let lines = drain(&mut logs);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Task timed out after 1.00 seconds")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn snapstart_hooks_run_once_before_the_first_invocation() {
    let (config, mut logs) = config(ExecutionModel::SnapStart { label: false });
    let emulator = start(config, "snapstart").await;
    let first = invoke(&emulator.invoke_url(), json!({}), None).await;
    let second = invoke(&emulator.invoke_url(), json!({}), None).await;
    emulator.shutdown().await;
    for answer in [&first, &second] {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let hooks: Vec<&str> = answer.json["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["hook"].as_str().unwrap())
            .collect();
        assert_eq!(
            hooks,
            ["before_snapshot", "after_restore"],
            "{}",
            answer.json
        );
    }
    let at = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
    let restored = at(&first.json["hooks"][1]["at_ms"]);
    assert!(restored <= at(&first.json["invoked_at_ms"]));
    assert_eq!(pid(&first), pid(&second));
    assert_eq!(
        first.json["environment"]["initialization_type"],
        "snap-start"
    );

    let lines = drain(&mut logs);
    let position = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line: {lines:#?}"))
    };
    assert!(position("RESTORE_START") < position("RESTORE_REPORT Restore Duration: "));
    assert!(position("RESTORE_REPORT") < position("START RequestId: "));
    let reports: Vec<&String> = lines.iter().filter(|l| l.starts_with("REPORT")).collect();
    assert_eq!(reports.len(), 2, "{lines:#?}");
    assert!(
        reports[0].contains("\tRestore Duration: "),
        "{}",
        reports[0]
    );
    assert!(
        reports[0].contains("\tBilled Restore Duration: "),
        "{}",
        reports[0]
    );
    assert!(!reports[0].contains("Init Duration"), "{}", reports[0]);
    assert!(!reports[1].contains("Restore Duration"), "{}", reports[1]);
}

#[tokio::test]
async fn a_failed_after_restore_hook_is_lambdas_snapstart_exception() {
    let (mut config, mut logs) = config(ExecutionModel::SnapStart { label: false });
    config.env.insert("FAIL_AFTER_RESTORE".into(), "1".into());
    let emulator = start(config, "snapstart").await;
    let answer = invoke(&emulator.invoke_url(), json!({}), None).await;
    emulator.shutdown().await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.error_type.as_deref(), Some("SnapStartException"));
    let message = answer.json["message"].as_str().unwrap();
    assert!(message.contains("afterRestore()"), "{message}");
    assert!(
        message.contains("the connection pool could not reconnect"),
        "{message}"
    );
    let lines = drain(&mut logs);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RESTORE_REPORT") && l.contains("Status: error")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_runtime_that_never_calls_restore_next_needs_the_snapstart_label() {
    let (unlabelled, _logs) = config(ExecutionModel::SnapStart { label: false });
    let emulator = start(unlabelled, "old_runtime").await;
    let refused = invoke(&emulator.invoke_url(), json!({}), None).await;
    emulator.shutdown().await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert_eq!(
        refused.error_type.as_deref(),
        Some("InvalidParameterValueException")
    );
    let message = refused.json["message"].as_str().unwrap();
    assert!(
        message.contains("com.amazonaws.lambda.feature.snapstart=Allow")
            && message.contains("restore/next"),
        "{message}"
    );

    let (labelled_config, mut logs) = config(ExecutionModel::SnapStart { label: true });
    let emulator = start(labelled_config, "old_runtime").await;
    let labelled = invoke(&emulator.invoke_url(), json!({}), None).await;
    emulator.shutdown().await;
    assert_eq!(labelled.status, StatusCode::OK, "{}", labelled.json);
    let lines = drain(&mut logs);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RESTORE_REPORT Restore Duration: ")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn tenants_get_environments_of_their_own_and_keep_them() {
    let (mut config, _logs) = config(ExecutionModel::OnDemand);
    config.tenant_isolation = true;
    config.concurrency = 2;
    let emulator = start(config, "tenant").await;
    let url = emulator.invoke_url();
    let blue = invoke(&url, json!({}), Some("blue")).await;
    let green = invoke(&url, json!({}), Some("green")).await;
    let blue_again = invoke(&url, json!({}), Some("blue")).await;
    let nobody = invoke(&url, json!({}), None).await;
    emulator.shutdown().await;
    assert_eq!(blue.json["tenant_id"], "blue", "{}", blue.json);
    assert_eq!(green.json["tenant_id"], "green");
    assert_ne!(
        pid(&blue),
        pid(&green),
        "tenants never share an environment"
    );
    assert_eq!(
        pid(&blue),
        pid(&blue_again),
        "a tenant's environment is reused"
    );
    assert_eq!(nobody.status, StatusCode::BAD_REQUEST, "{}", nobody.json);
    assert_eq!(
        nobody.error_type.as_deref(),
        Some("InvalidParameterValueException")
    );
}

#[tokio::test]
async fn with_one_environment_a_new_tenant_replaces_an_idle_one() {
    let (mut config, _logs) = config(ExecutionModel::OnDemand);
    config.tenant_isolation = true;
    let emulator = start(config, "tenant").await;
    let url = emulator.invoke_url();
    let blue = invoke(&url, json!({}), Some("blue")).await;
    let green = invoke(&url, json!({}), Some("green")).await;
    let blue_again = invoke(&url, json!({}), Some("blue")).await;
    emulator.shutdown().await;
    assert_eq!(green.json["tenant_id"], "green");
    assert_ne!(pid(&blue), pid(&green));
    assert_ne!(
        pid(&blue_again),
        pid(&green),
        "green's environment is not blue's"
    );
}

#[tokio::test]
async fn a_function_without_tenant_isolation_refuses_a_tenant_id() {
    let (config, _logs) = config(ExecutionModel::OnDemand);
    let emulator = start(config, "tenant").await;
    let url = emulator.invoke_url();
    let refused = invoke(&url, json!({}), Some("blue")).await;
    let plain = invoke(&url, json!({}), None).await;
    emulator.shutdown().await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert_eq!(
        refused.error_type.as_deref(),
        Some("InvalidParameterValueException")
    );
    assert!(refused.json["message"]
        .as_str()
        .unwrap()
        .contains("--tenant-isolation"));
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.json["tenant_id"].is_null());
}

/// `cargo lambda-image test` on a binary of the lifecycle fixture, on scratch.
fn test_cmd(bin: &str, args: &[&str]) -> std::process::Output {
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml");
    let mut cmd = cli();
    cmd.args([
        "test",
        "--locked",
        "--base-image",
        "scratch",
        "--manifest-path",
    ])
    .arg(manifest)
    .args(["-p", "lifecycle", "--bin", bin, "--message-format", "json"])
    .args(args)
    .env("CARGO_TARGET_DIR", support::fixture_target_dir("musl"));
    run(&mut cmd)
}

fn responses(out: &std::process::Output) -> Vec<Value> {
    json_lines(out)
        .into_iter()
        .filter(|e| e["reason"] == "invocation")
        .map(|e| e["invocation"].clone())
        .collect()
}

#[test]
fn test_takes_the_execution_model_from_the_metadata_and_the_flags_override_it() {
    // The fixture's metadata sets deploy.tenant-isolation for `tenant`.
    let out = test_cmd("tenant", &["--tenant-id", "blue", "-e", "{}"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let invocation = &responses(&out)[0];
    assert_eq!(invocation["response"]["tenant_id"], "blue", "{invocation}");

    let out = test_cmd(
        "tenant",
        &[
            "--tenant-isolation=false",
            "--tenant-id",
            "blue",
            "-e",
            "{}",
        ],
    );
    assert!(!out.status.success());
    let invocation = &responses(&out)[0];
    assert_eq!(invocation["status"], 400, "{invocation}");
    assert_eq!(
        invocation["response"]["errorType"], "InvalidParameterValueException",
        "{invocation}"
    );

    // deploy.snap-start for `snapstart`; --max-concurrency turns `concurrent` into Managed
    // Instances, and with --snap-start it is refused as Lambda refuses it.
    let out = test_cmd("snapstart", &["-e", "{}"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let invocation = &responses(&out)[0];
    assert_eq!(
        invocation["response"]["environment"]["initialization_type"], "snap-start",
        "{invocation}"
    );
    let out = test_cmd("concurrent", &["--max-concurrency", "3", "-e", "{}"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        responses(&out)[0]["response"]["environment"]["max_concurrency"],
        "3"
    );
    let out = test_cmd(
        "concurrent",
        &["--max-concurrency", "3", "--snap-start", "-e", "{}"],
    );
    let (_, stderr) = texts(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--snap-start") && stderr.contains("--max-concurrency"),
        "{stderr}"
    );
}
