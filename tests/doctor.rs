//! `doctor` on this machine, against the real programs and services `cargo xtask ci` installs
//! and starts (rustup targets, cargo-zigbuild and zig from the venv, bubblewrap, binfmt/qemu,
//! dockerd, docker-registry, moto's STS), and with each of them taken away.

use crate::support;

use std::process::{Command, Output};

use serde_json::Value;
use support::images::fake_provided_base;
use support::{cli, fixture_workspace, json_lines, run, service_env, texts, unique};

/// A secret access key no real account has; it must never be printed.
const FAKE_SECRET: &str = "dOcToRsEcReT/ForTestsOnly+0123456789abcdEF";

/// `doctor --message-format json` on the fixture with `args`, fake AWS credentials and
/// nothing else of this machine's AWS settings.
fn doctor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = cli();
    cmd.args([
        "doctor",
        "--message-format",
        "json",
        "-vv",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .args(args)
    .env("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0002")
    .env("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    )
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env_remove("AWS_PROFILE")
    .env_remove("AWS_ENDPOINT_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The checks of a run, by name.
fn checks(out: &Output) -> Vec<Value> {
    json_lines(out)
        .into_iter()
        .filter(|e| e["reason"] == "doctor")
        .map(|e| e["check"].clone())
        .collect()
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {checks:#?}"))
}

/// PATH without the CI venv (where cargo-zigbuild, ziglang and moto live).
fn path_without_venv() -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .filter(|p| !p.to_string_lossy().contains("ci/venv"))
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn everything_the_fixture_needs_is_found_with_versions_and_no_secret_is_printed() {
    let docker_host = service_env("DOCKER_HOST");
    let registry = service_env("CLI_TEST_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    // A login for the test registry: doctor says where it is, never what it is.
    let auth = support::docker_config(&dir.path().join("docker"), &registry, "doc", "pa55-w0rd");
    // The base in the test registry, so that its manifest can be asked for.
    let layout = fake_provided_base(dir.path());
    let base = format!("{registry}/{}:al2", unique("doctor-base"));
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "doc:pa55-w0rd",
        ])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{base}"))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{:?}", texts(&copy));
    let out = doctor(
        &[
            "-p",
            "echo",
            "--arch",
            "x86_64,arm64",
            "--compiler",
            "zigbuild",
            "--base-image",
            &base,
            "--registry",
            &registry,
        ],
        &[
            ("DOCKER_HOST", &docker_host),
            (
                "DOCKER_CONFIG",
                &dir.path().join("docker").display().to_string(),
            ),
            ("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let all = checks(&out);
    for name in [
        "rust target x86_64-unknown-linux-musl",
        "rust target aarch64-unknown-linux-musl",
        "zig",
        "cargo-zigbuild",
        "bubblewrap",
        "arm64 emulation",
        "docker engine",
        "aws region",
        "aws credentials",
    ] {
        let c = check(&all, name);
        assert_eq!(c["ok"], true, "{c}");
    }
    assert!(check(&all, "cargo-zigbuild")["detail"]
        .as_str()
        .unwrap()
        .contains("cargo-zigbuild"));
    assert_eq!(check(&all, "cargo-zigbuild")["needed"], true);
    assert!(check(&all, "docker engine")["detail"]
        .as_str()
        .unwrap()
        .starts_with("Docker "));
    assert_eq!(check(&all, "aws region")["detail"], "eu-west-1");
    let base_check = check(&all, &format!("base image {base}"));
    assert_eq!(base_check["ok"], true, "{base_check}");
    assert!(base_check["detail"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let creds = check(&all, &format!("registry credentials for {registry}"));
    assert!(
        creds["detail"].as_str().unwrap().contains("config.json"),
        "{creds}"
    );
    for secret in [FAKE_SECRET, "pa55-w0rd", auth.as_str()] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "secret printed:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn a_missing_backend_fails_with_its_fix_and_exit_1_while_an_unneeded_engine_only_warns() {
    let out = doctor(
        &[
            "-p",
            "echo",
            "--compiler",
            "zigbuild",
            "--base-image",
            "scratch",
        ],
        &[
            ("PATH", &path_without_venv()),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let all = checks(&out);
    let zigbuild = check(&all, "cargo-zigbuild");
    assert_eq!(
        (zigbuild["ok"].clone(), zigbuild["needed"].clone()),
        (Value::Bool(false), Value::Bool(true))
    );
    assert!(
        zigbuild["fix"].as_str().unwrap().contains("pip install"),
        "{zigbuild}"
    );
    assert!(
        stderr.contains("cargo-zigbuild"),
        "the error names it: {stderr}"
    );
    let docker = check(&all, "docker engine");
    assert_eq!(docker["ok"], false);
    assert_eq!(
        docker["needed"], false,
        "only --builder/--runner docker need it"
    );
    assert!(docker["fix"].as_str().unwrap().contains("DOCKER_HOST"));

    // The same with the default compiler: nothing needed is missing, so exit 0.
    let fine = doctor(
        &["-p", "echo", "--base-image", "scratch"],
        &[
            ("PATH", &path_without_venv()),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    );
    let (stdout, stderr) = texts(&fine);
    assert!(fine.status.success(), "{stdout}\n{stderr}");
    // A base read from the engine makes the engine needed.
    let engine = doctor(
        &["-p", "echo", "--base-image", "docker-daemon:some/base:1"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let all = checks(&engine);
    assert_eq!(check(&all, "docker engine")["needed"], true);
    assert_eq!(engine.status.code(), Some(1));
    // Human output marks the unneeded failure with `!`.
    let human = {
        let mut cmd = cli();
        cmd.args([
            "doctor",
            "-p",
            "echo",
            "--base-image",
            "scratch",
            "--manifest-path",
        ])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
        run(&mut cmd)
    };
    let (stdout, _) = texts(&human);
    assert!(stdout.contains("! docker engine"), "{stdout}");
    assert!(stdout.contains("    fix: "), "{stdout}");
}

#[test]
fn aws_proves_the_credentials_with_sts_and_an_unreachable_base_is_needed() {
    let moto = service_env("CLI_TEST_MOTO_ENDPOINT");
    let out = doctor(
        &[
            "-p",
            "echo",
            "--aws",
            "--region",
            "us-east-1",
            "--endpoint-url",
            &moto,
            "--base-image",
            "127.0.0.1:9/nothing/here:1",
        ],
        &[("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", "127.0.0.1:9")],
    );
    let (stdout, stderr) = texts(&out);
    let all = checks(&out);
    let identity = check(&all, "aws identity");
    assert_eq!(identity["ok"], true, "{identity}");
    assert!(
        identity["detail"]
            .as_str()
            .unwrap()
            .contains("account 123456789012"),
        "{identity}"
    );
    let base = check(&all, "base image 127.0.0.1:9/nothing/here:1");
    assert_eq!(
        (base["ok"].clone(), base["needed"].clone()),
        (Value::Bool(false), Value::Bool(true))
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains(FAKE_SECRET) && !stderr.contains(FAKE_SECRET));

    // Without credentials at all, --aws fails the identity check, which is then needed.
    let mut cmd = cli();
    cmd.args([
        "doctor",
        "--message-format",
        "json",
        "-p",
        "echo",
        "--base-image",
        "scratch",
        "--aws",
    ])
    .args([
        "--region",
        "us-east-1",
        "--endpoint-url",
        &moto,
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env_remove("AWS_PROFILE")
    .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    .env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    )
    .env("AWS_EC2_METADATA_DISABLED", "true");
    let none = run(&mut cmd);
    let all = checks(&none);
    assert_eq!(check(&all, "aws credentials")["ok"], false);
    assert_eq!(check(&all, "aws credentials")["needed"], true);
    assert_eq!(none.status.code(), Some(1));
}
