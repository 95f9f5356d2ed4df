//! What a new user runs into, each against the real component: summaries that agree with what
//! ran, errors that come before anything is built and name the file, key or flag, registry
//! failures told apart with their cause, and output that is what the README says.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::serving::{emulator_manifest, fixture_command};
use support::{cli, fixture_target_dir, fixture_workspace, json_lines, run, service_env, texts};

fn failed(out: &Output) -> (String, String) {
    let (stdout, stderr) = texts(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// Nothing was compiled or imaged: the error came first.
fn nothing_built(stderr: &str) {
    assert!(
        !stderr.contains("Compiling") && !stderr.contains("Compiled"),
        "something was built before the error:\n{stderr}"
    );
}

#[test]
fn a_failed_invocation_makes_the_summary_say_failed_with_the_count() {
    let mut cmd = fixture_command("test", &emulator_manifest());
    cmd.args(["-p", "behave", "--event", r#"{"panic": true}"#]);
    let (_, stderr) = failed(&run(&mut cmd));
    assert!(
        stderr.contains("✗ behave (x86_64) inline -> 200 Unhandled"),
        "{stderr}"
    );
    let summary = stderr.split("Summary:").nth(1).expect("a summary");
    assert!(
        summary.contains("✗ behave") && summary.contains("failed to run: 1 of 1 invocation failed"),
        "{summary}"
    );
    assert!(!summary.contains("✓ behave"), "{summary}");
    // JSON says so too: the function's error, at the test stage.
    let mut cmd = fixture_command("test", &emulator_manifest());
    cmd.args([
        "-p",
        "behave",
        "--event",
        r#"{"panic": true}"#,
        "--message-format",
        "json",
    ]);
    let out = run(&mut cmd);
    let errors: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "error")
        .collect();
    assert_eq!(errors[0]["stage"], "test", "{errors:?}");
    assert_eq!(
        errors[0]["message"], "1 of 1 invocation failed",
        "{errors:?}"
    );
}

#[test]
fn quiet_still_shows_the_expectation_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expected.json");
    std::fs::write(&expect, r#"{"message":"something else"}"#).unwrap();
    let mut cmd = cli();
    cmd.args([
        "test",
        "-q",
        "--locked",
        "--base-image",
        "scratch",
        "-p",
        "greet",
        "--bin",
        "hello",
    ])
    .args(["--event", r#"{"name":"cli"}"#, "--expect"])
    .arg(&expect)
    .arg("--manifest-path")
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    let (stdout, stderr) = failed(&run(&mut cmd));
    assert!(stdout.contains("hello, cli"), "the response: {stdout}");
    assert!(
        stderr.contains("NOT as expected")
            && stderr.contains(r#"expected: {"message":"something else"}"#),
        "{stderr}"
    );
}

#[test]
fn an_event_file_that_is_not_json_is_refused_before_the_build_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("broken.json");
    std::fs::write(&event, "{\n  \"name\": ,\n}\n").unwrap();
    let mut cmd = cli();
    cmd.args(["test", "--locked", "-p", "echo", "--event"])
        .arg(&event)
        .arg("--manifest-path")
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.path().join("target"));
    let (_, stderr) = failed(&run(&mut cmd));
    assert!(
        stderr.contains(&event.display().to_string()) && stderr.contains("line 2 column"),
        "{stderr}"
    );
    nothing_built(&stderr);
}

/// A throwaway workspace with one (dependency-free) function, for errors of its metadata.
fn workspace(metadata: &str) -> support::TempWorkspace {
    support::TempWorkspace::new(
        &format!("[package.metadata.lambda]\n{metadata}"),
        "",
        &["helper"],
    )
}

fn build(ws: &support::TempWorkspace, args: &[&str]) -> Output {
    let mut cmd = cli();
    cmd.arg("build")
        .args(args)
        .arg("--manifest-path")
        .arg(ws.manifest())
        .env("CARGO_TARGET_DIR", ws.dir.path().join("target"));
    run(&mut cmd)
}

#[test]
fn an_unknown_tag_placeholder_is_refused_with_did_you_mean_before_the_build() {
    let ws = workspace("[package.metadata.lambda.image]\ntag = \"{versoin}-{arch}\"\n");
    let (_, stderr) = failed(&build(&ws, &[]));
    assert!(
        stderr.contains("image.tag") && stderr.contains("`{versoin}`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `{version}`"), "{stderr}");
    assert!(
        stderr.contains(&ws.package_manifest().display().to_string()),
        "{stderr}"
    );
    nothing_built(&stderr);
    // What a tag cannot hold, outside placeholders, is refused the same way.
    let ws = workspace("[package.metadata.lambda.image]\ntag = \"v1/{arch}\"\n");
    let (_, stderr) = failed(&build(&ws, &[]));
    assert!(
        stderr.contains("image.tag") && stderr.contains("`/`"),
        "{stderr}"
    );
}

#[test]
fn malformed_base_images_and_registries_are_refused_before_anything_compiles() {
    let ws = workspace("");
    let (_, stderr) = failed(&build(&ws, &["--base-image", "Foo Bar"]));
    assert!(
        stderr.contains("base-image") && stderr.contains("`Foo Bar` is not an image reference"),
        "{stderr}"
    );
    nothing_built(&stderr);
    let mut cmd = cli();
    cmd.args([
        "push",
        "--registry",
        "http://127.0.0.1:5000",
        "--manifest-path",
    ])
    .arg(ws.manifest());
    let (_, stderr) = failed(&run(&mut cmd));
    assert!(
        stderr.contains("--registry")
            && stderr.contains("`http://127.0.0.1:5000` is not a host name")
            && stderr.contains("HOST:PORT"),
        "{stderr}"
    );
    nothing_built(&stderr);
}

#[test]
fn a_bin_that_does_not_exist_is_named_with_did_you_mean() {
    let ws = workspace("");
    let (_, stderr) = failed(&build(&ws, &["--bin", "helpr"]));
    assert!(stderr.contains("`helpr`"), "{stderr}");
    assert!(stderr.contains("did you mean `--bin helper`?"), "{stderr}");
    assert!(
        stderr.contains("func") && stderr.contains("helper"),
        "{stderr}"
    );
}

fn push_scratch(registry: &str, extra: &[&str]) -> Output {
    let mut cmd = cli();
    cmd.args([
        "push",
        "-p",
        "echo",
        "--locked",
        "--registry",
        registry,
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .args(extra)
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
    .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", registry);
    run(&mut cmd)
}

#[test]
fn registry_failures_are_told_apart_with_their_cause() {
    // Nothing listens: a connection refused, not an authentication failure.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, stderr) = failed(&push_scratch(
        &free.to_string(),
        &["--base-image", "scratch"],
    ));
    assert!(
        stderr.contains("could not reach the registry of"),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing accepted the connection"),
        "{stderr}"
    );
    assert!(!stderr.contains("authenticate"), "{stderr}");

    // A base whose tag the registry does not have: 404, named.
    let registry = service_env("CLI_TEST_REGISTRY");
    let missing = format!("{registry}/no-such-base/provided:missing");
    let (_, stderr) = failed(&push_scratch(&registry, &["--base-image", &missing]));
    assert!(
        stderr.contains(&format!("the registry has no `{missing}`")),
        "{stderr}"
    );
    assert!(!stderr.contains("reachable"), "{stderr}");

    // A host name that does not resolve: the DNS answer is shown.
    let (_, stderr) = failed(&push_scratch(
        &registry,
        &["--base-image", "registry.invalid/x/y:1"],
    ));
    assert!(stderr.contains("does not resolve"), "{stderr}");

    // The default base, unreachable offline: the cause, once, and the way out for musl.
    let (_, stderr) = failed(&push_scratch(&registry, &[]));
    assert!(stderr.contains("--base-image scratch"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("✗ fixture-echo"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(
        line.matches("failed to build the image").count(),
        1,
        "{line}"
    );
}

#[test]
fn the_emulator_refuses_a_program_that_is_not_there() {
    let out = run(cli().args([
        "emulator",
        "--bind",
        "127.0.0.1:0",
        "--",
        "/nonexistent/bootstrap",
    ]));
    let (_, stderr) = failed(&out);
    assert!(
        stderr.contains("`/nonexistent/bootstrap`") && stderr.contains("cannot be read"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bootstrap");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let out = run(cli()
        .args(["emulator", "--bind", "127.0.0.1:0", "--"])
        .arg(&script));
    let (_, stderr) = failed(&out);
    assert!(stderr.contains("is not executable"), "{stderr}");
}

#[test]
fn event_example_in_json_is_one_line_with_a_reason() {
    let out = run(cli().args(["event-example", "sqs", "--message-format", "json"]));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let event: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(event["reason"], "event-example");
    assert_eq!(event["kind"], "sqs");
    assert_eq!(event["event"]["Records"][0]["eventSource"], "aws:sqs");
    // People get it pretty.
    let out = run(cli().args(["event-example", "sqs"]));
    assert!(texts(&out).0.lines().count() > 5);
}

#[test]
fn doctor_says_rustup_is_needed() {
    let mut cmd = cli();
    cmd.args([
        "doctor",
        "-p",
        "echo",
        "--message-format",
        "json",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"));
    let out = run(&mut cmd);
    let rustup = json_lines(&out)
        .into_iter()
        .find(|e| e["check"]["name"] == "rustup")
        .expect("a rustup check");
    assert_eq!(rustup["check"]["needed"], true, "{rustup}");
    assert_eq!(rustup["check"]["ok"], true, "{rustup}");
}

#[test]
fn new_inside_a_workspace_joins_its_members_and_builds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "# Ours.\n[workspace]\nmembers = [\n    \"tools\",\n]\nresolver = \"2\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("tools/src")).unwrap();
    std::fs::write(
        root.join("tools/Cargo.toml"),
        "[package]\nname = \"tools\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(root.join("tools/src/main.rs"), "fn main() {}\n").unwrap();
    let out = run(cli()
        .args(["new", "greeter", "--message-format", "json"])
        .current_dir(root));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let event: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        event["workspace"],
        root.join("Cargo.toml")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
        "# Ours.\n[workspace]\nmembers = [\n    \"tools\",\n    \"greeter\",\n]\nresolver = \"2\"\n"
    );
    // It builds as a member of the workspace (cargo would refuse a crate that is not).
    let out = run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(root.join("greeter/Cargo.toml")),
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    let members: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(members["workspace_members"].as_array().unwrap().len(), 2);
    // And it passes `test` at once there too.
    let out = run(cli()
        .args([
            "test",
            "-p",
            "greeter",
            "--base-image",
            "scratch",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("new"))
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0"));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Hello, world!"), "{stdout}");
    assert!(Path::new(&root.join("greeter/events/hello.json")).is_file());
}

#[test]
fn a_failed_remote_invoke_names_the_function_and_the_aws_error() {
    let moto = support::moto::Moto::start();
    let mut cmd = cli();
    cmd.args([
        "invoke",
        "no-such-function",
        "--remote",
        "--region",
        "us-east-1",
    ])
    .args(["--endpoint-url", &moto.endpoint])
    .env("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0001")
    .env(
        "AWS_SECRET_ACCESS_KEY",
        "fake-secret-for-the-remote-invoke-test",
    )
    .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    )
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env_remove("AWS_PROFILE");
    let (_, stderr) = failed(&run(&mut cmd));
    assert!(stderr.contains("Invoke of `no-such-function`"), "{stderr}");
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");
    assert!(!stderr.contains("local invocation"), "{stderr}");
    assert!(
        !stderr.contains("ServiceError(") && !stderr.contains("Unhandled("),
        "{stderr}"
    );
}
