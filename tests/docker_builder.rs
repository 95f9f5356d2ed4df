//! `--builder docker`: images built by the real dockerd (started by `cargo xtask ci`, arm64
//! through the binfmt/qemu handler it registers) from the rendered Dockerfile, exported back
//! as OCI layouts, then checked and run by `test` exactly like daemonless images.

use crate::support;

use std::process::Command;

use support::images::fake_provided_base;
use support::{
    cli, docker_inspect, events_of, fixture_target_dir, fixture_workspace, json_lines, run,
    service_env, texts,
};

#[test]
fn docker_built_scratch_images_pass_check_and_answer_under_test_for_both_arches() {
    service_env("DOCKER_HOST");
    let mut cmd = cli();
    cmd.args(["test", "--builder", "docker", "--runner", "unconfined"])
        .args([
            "-p",
            "echo",
            "--base-image",
            "scratch",
            "--arch",
            "x86_64,arm64",
        ])
        .args(["--message-format", "json", "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The build really went through Docker: its step output is streamed.
    assert!(stderr.contains("Step 1/"), "{stderr}");

    let events = json_lines(&out);
    let images = events_of(&events, "image");
    assert_eq!(images.len(), 2, "{stdout}");
    for check in events_of(&events, "check") {
        let findings = check["report"]["findings"].as_array().unwrap();
        assert!(findings.iter().all(|f| f["passed"] == true), "{check}");
    }
    let invocations = events_of(&events, "invocation");
    assert!(invocations.len() >= 2, "{stdout}");
    for invocation in &invocations {
        assert_eq!(invocation["invocation"]["status"], 200, "{invocation}");
        assert_ne!(
            invocation["invocation"]["matches_expected"], false,
            "{invocation}"
        );
    }

    // The engine holds each image under its tag, for its platform, with the bootstrap as the
    // entrypoint.
    for image in images {
        let arch = image["image"]["arch"].as_str().unwrap();
        let name = format!(
            "{}:{}",
            image["image"]["repository"].as_str().unwrap(),
            image["image"]["tag"].as_str().unwrap()
        );
        let expected = if arch == "arm64" { "arm64" } else { "amd64" };
        assert_eq!(docker_inspect(&name, "{{.Architecture}}"), expected);
        assert_eq!(
            docker_inspect(&name, "{{json .Config.Entrypoint}}"),
            r#"["/var/runtime/bootstrap"]"#
        );
    }
}

#[test]
fn docker_builds_on_a_provided_base_and_runs_through_its_entrypoint() {
    service_env("DOCKER_HOST");
    let registry = service_env("CLI_TEST_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let layout = fake_provided_base(dir.path());
    let base = format!("{registry}/docker-builder/provided:al2");
    let copy = Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:al2", layout.display()))
        .arg(format!("docker://{base}"))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{:?}", texts(&copy));

    let mut cmd = cli();
    cmd.args(["test", "--builder", "docker", "--runner", "docker"])
        .args(["-p", "greet", "--bin", "hello", "--base-image", &base])
        .args(["--event", r#"{"name":"docker builder"}"#])
        .args(["--message-format", "json", "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
        .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry);
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let events = json_lines(&out);
    let invocation = events_of(&events, "invocation")[0];
    assert_eq!(invocation["invocation"]["status"], 200, "{invocation}");
    assert_eq!(
        invocation["invocation"]["response"]["message"],
        "hello, docker builder"
    );
    let image = events_of(&events, "image")[0];
    let name = format!(
        "{}:{}",
        image["image"]["repository"].as_str().unwrap(),
        image["image"]["tag"].as_str().unwrap()
    );
    assert_eq!(
        docker_inspect(&name, "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"),
        r#"["/lambda-entrypoint.sh"] ["bootstrap"]"#
    );
}

#[test]
fn a_dockerfile_without_the_docker_builder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = dir.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\n").unwrap();
    let mut cmd = cli();
    cmd.args(["image", "-p", "echo", "--dockerfile"])
        .arg(&dockerfile)
        .arg("--manifest-path")
        .arg(fixture_workspace().join("Cargo.toml"));
    let out = run(&mut cmd);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--dockerfile") && stderr.contains("--builder docker"),
        "{stderr}"
    );
}
