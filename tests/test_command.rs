//! `cargo lambda-image test`: the fixture's image is built and its events are sent through the
//! built-in emulator; responses go to stdout, failures make the exit status non-zero.

mod support;

use serde_json::Value;
use support::{cli, fixture_target_dir, fixture_workspace, json_lines, run, texts};

fn test_cmd(args: &[&str]) -> std::process::Output {
    let mut cmd = cli();
    cmd.args([
        "test",
        "--locked",
        "--base-image",
        "scratch",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .args(args)
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    run(&mut cmd)
}

#[test]
fn configured_events_are_sent_and_compared_with_their_expectations() {
    let out = test_cmd(&[
        "-p",
        "echo",
        "--arch",
        "x86_64,arm64",
        "--message-format",
        "json",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let invocations: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "invocation")
        .map(|e| e["invocation"].clone())
        .collect();
    assert_eq!(invocations.len(), 4, "two events on two arches: {stdout}");
    for inv in &invocations {
        assert_eq!(inv["status"], 200);
        assert!(inv["function_error"].is_null());
        if inv["event"].as_str().unwrap().ends_with("ping.json") {
            assert_eq!(inv["matches_expected"], true);
            assert_eq!(inv["response"], serde_json::json!({"ping": "pong", "n": 1}));
        } else {
            assert_eq!(inv["response"], serde_json::json!([1, 2, 3]));
        }
    }
    assert!(invocations.iter().any(|i| i["arch"] == "arm64"));
}

#[test]
fn inline_event_prints_the_response_on_stdout() {
    let out = test_cmd(&[
        "-p",
        "greet",
        "--bin",
        "hello",
        "--event",
        r#"{"name":"cli"}"#,
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(response["message"], "hello, cli");
    assert_eq!(response["function"], "hello");
    assert!(
        stderr.contains("✓ hello (x86_64) inline -> 200"),
        "{stderr}"
    );
}

#[test]
fn a_response_that_differs_from_the_expectation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expected.json");
    std::fs::write(&expect, r#"{"message":"something else"}"#).unwrap();
    let out = test_cmd(&[
        "-p",
        "greet",
        "--bin",
        "hello",
        "--event",
        r#"{"name":"cli"}"#,
        "--expect",
        expect.to_str().unwrap(),
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NOT as expected") && stderr.contains("1 of 1 invocations failed"),
        "{stderr}"
    );
}

#[test]
fn an_event_that_is_neither_file_nor_json_is_refused() {
    let out = test_cmd(&["-p", "echo", "--event", "not json"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("neither a file nor valid JSON"), "{stderr}");
}

#[test]
fn the_docker_runner_invokes_the_image_in_the_engine() {
    support::service_env("DOCKER_HOST");
    let out = test_cmd(&[
        "-p",
        "greet",
        "--bin",
        "hello",
        "--runner",
        "docker",
        "--event",
        r#"{"name":"engine"}"#,
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(response["message"], "hello, engine");
}

#[test]
fn the_sandbox_runner_is_the_default_and_isolates() {
    // The sandbox runs the image's own filesystem: the function sees Lambda's environment.
    let out = test_cmd(&[
        "-p",
        "greet",
        "--bin",
        "hello",
        "-v",
        "--event",
        r#"{"name":"sandbox"}"#,
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("without isolation"),
        "bubblewrap is installed by `cargo xtask ci`: {stderr}"
    );
    assert!(stderr.contains("REPORT RequestId:"), "{stderr}");
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(response["message"], "hello, sandbox");
}
