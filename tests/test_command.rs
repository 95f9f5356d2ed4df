//! `cargo lambda-image test`: the fixture's image is built and its events are sent through the
//! built-in emulator; responses go to stdout, failures make the exit status non-zero.

use crate::support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cargo_lambda_image::oci;
use serde_json::Value;
use support::images::fake_provided_base;
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
        stderr.contains("NOT as expected") && stderr.contains("1 of 1 invocation failed"),
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

/// Runtime containers of this process id, running or not.
fn containers_of(pid: u32) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=cargo-lambda-image.emulator.pid={pid}"))
        .output()
        .expect("docker (Debian docker.io) runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Ctrl-C while a function runs in a container under `test --runner docker`: the command
/// stops with status 130 and its container is removed.
#[test]
fn ctrl_c_during_test_with_the_docker_runner_removes_the_container() {
    support::service_env("DOCKER_HOST");
    let mut cmd = cli();
    cmd.args(["test", "--runner", "docker", "--base-image", "scratch"])
        .args(["-p", "behave", "--bin", "behave", "--manifest-path"])
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/emulator/Cargo.toml"),
        )
        .args(["--event", r#"{"sleep_ms": 60000}"#])
        .env("CARGO_LAMBDA_IMAGE_TIMEOUT", "120")
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("the command starts");
    let pid = child.id();
    let started = std::time::Instant::now();
    while containers_of(pid).is_empty() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the command ended ({status}) before a container ran:\n{stderr}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(600),
            "no container appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The invocation is under way (it sleeps a minute); interrupt as a terminal would.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Interrupted"), "{stderr}");
    assert_eq!(containers_of(pid), Vec::<String>::new(), "{stderr}");
}

/// Runs a tool of the test prerequisites and asserts it succeeded.
fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (installed by `cargo xtask ci`): {e}"));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{program} {args:?}: {stdout}{stderr}");
}

/// The first entry name of the top layer of the image in an OCI layout.
fn first_entry_of_top_layer(layout_dir: &Path) -> Vec<u8> {
    let layout = oci::Layout::open(layout_dir).unwrap();
    let manifest = layout.single_manifest().unwrap();
    let top = manifest.layers.last().unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layout.open_blob(&top.digest).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let name = &tar[..100];
    name[..name.iter().position(|b| *b == 0).unwrap_or(100)].to_vec()
}

/// A base that `umoci insert` wrote a layer into (whose first entry is `/`, the root itself,
/// and which stops without the blocks that close a tar archive) runs under the default runner,
/// as `docker run` runs it.
#[test]
fn a_base_written_by_umoci_runs_under_the_default_runner() {
    let dir = tempfile::tempdir().unwrap();
    let base = fake_provided_base(dir.path());
    let umoci_base = dir.path().join("umoci-base");
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:al2", base.display()),
            &format!("oci:{}:al2", umoci_base.display()),
        ],
    );
    // A tree inserted at `/`: umoci writes an entry for the root with the tree's own mode.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/umoci.txt"), b"inserted by umoci").unwrap();
    for path in [&tree, &tree.join("etc")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    tool(
        "umoci",
        &[
            "insert",
            "--rootless",
            "--image",
            &format!("{}:al2", umoci_base.display()),
            tree.to_str().unwrap(),
            "/",
        ],
    );
    assert_eq!(first_entry_of_top_layer(&umoci_base), b"/");

    let mut cmd = cli();
    cmd.args(["test", "--locked", "--base-image"])
        .arg(format!("oci:{}:al2", umoci_base.display()))
        .arg("--manifest-path")
        .arg(fixture_workspace().join("Cargo.toml"))
        .args(["-p", "echo", "--event", r#"{"base":"umoci"}"#])
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(response, serde_json::json!({"base": "umoci"}), "{stderr}");
}
