//! The compile stage for real: the fixture workspace is cross-compiled for x86_64 and arm64
//! musl, every bootstrap's ELF header is checked, and each one is run (arm64 under
//! `qemu-aarch64-static`) against a Runtime API to prove it answers an invocation.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use cargo_lambda_image::compile::elf;
use cargo_lambda_image::target::{Arch, GlibcVersion};
use serde_json::Value;
use support::runtime_api::RuntimeApi;
use support::{cli, fixture_target_dir, fixture_workspace, json_lines, run, texts, TempWorkspace};

/// The `compiled` events of one `build --workspace --arch x86_64,arm64` of the fixture, shared
/// by the tests of this file so the fixture is compiled once.
fn workspace_build() -> &'static Vec<Value> {
    static BUILD: OnceLock<Vec<Value>> = OnceLock::new();
    BUILD.get_or_init(|| {
        let mut cmd = cli();
        cmd.args([
            "build",
            "--workspace",
            "--arch",
            "x86_64,arm64",
            "--locked",
            "--message-format",
            "json",
            "--manifest-path",
        ])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
        let out = run(&mut cmd);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "build failed\nstdout: {stdout}\nstderr: {stderr}"
        );
        let events = json_lines(&out);
        assert_eq!(events[0]["reason"], "plan");
        events
            .into_iter()
            .filter(|e| e["reason"] == "compiled")
            .collect()
    })
}

fn artifact(function: &str, arch: &str) -> PathBuf {
    let event = workspace_build()
        .iter()
        .find(|e| e["artifact"]["function"] == function && e["artifact"]["arch"] == arch)
        .unwrap_or_else(|| panic!("no compiled event for {function}/{arch}"));
    PathBuf::from(event["artifact"]["path"].as_str().expect("path"))
}

#[test]
fn workspace_build_produces_six_static_bootstraps_of_the_right_arch() {
    let events = workspace_build();
    assert_eq!(events.len(), 6, "{events:?}");
    for event in events {
        let a = &event["artifact"];
        let path = Path::new(a["path"].as_str().unwrap());
        let expected_suffix = format!(
            "lambda-image/{}/{}/bootstrap",
            a["function"].as_str().unwrap(),
            a["arch"].as_str().unwrap()
        );
        assert!(path.ends_with(&expected_suffix), "{}", path.display());
        // Read the file ourselves rather than trusting the event.
        let info = elf::inspect(path).unwrap();
        let arch: Arch = a["arch"].as_str().unwrap().parse().unwrap();
        assert_eq!(info.arch, Some(arch), "{}", path.display());
        assert!(
            info.is_static(),
            "musl builds are static: {}",
            path.display()
        );
        assert_eq!(info.max_glibc, None);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{}", path.display());
    }
}

/// Runs a bootstrap against a Runtime API with one event and returns what it posted.
fn invoke(bootstrap: &Path, arch: Arch, function: &str, event: &str) -> (String, Value) {
    let api = RuntimeApi::start(vec![("req-1".to_string(), event.to_string())]);
    let mut cmd = match (arch, Arch::host()) {
        (a, Some(h)) if a == h => Command::new(bootstrap),
        _ => {
            let mut c = Command::new("qemu-aarch64-static");
            c.arg(bootstrap);
            c
        }
    };
    let mut child = cmd
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("GREETING", "hello")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); `cargo xtask ci` installs qemu-user-static",
                bootstrap.display()
            )
        });
    let posted = api.next_posted(Duration::from_secs(60));
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let posted = posted.unwrap_or_else(|| {
        panic!(
            "{} posted nothing; stderr: {}",
            bootstrap.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(posted.request_id, "req-1");
    let body = serde_json::from_slice(&posted.body).expect("the response is JSON");
    (posted.kind, body)
}

#[test]
fn x86_64_echo_answers_an_invocation() {
    let (kind, body) = invoke(
        &artifact("fixture-echo", "x86_64"),
        Arch::X86_64,
        "fixture-echo",
        r#"{"ping":1}"#,
    );
    assert_eq!(kind, "response");
    assert_eq!(body, serde_json::json!({"ping": 1}));
}

#[test]
fn arm64_binaries_run_under_qemu_and_answer() {
    let (kind, body) = invoke(
        &artifact("hello", "arm64"),
        Arch::Arm64,
        "hello",
        r#"{"name":"qemu"}"#,
    );
    assert_eq!(kind, "response");
    assert_eq!(body["message"], "hello, qemu");
    assert_eq!(body["function"], "hello");
    assert_eq!(body["request_id"], "req-1");
    let (kind, body) = invoke(
        &artifact("fixture-echo", "arm64"),
        Arch::Arm64,
        "fixture-echo",
        r#"[1,2,3]"#,
    );
    assert_eq!(kind, "response");
    assert_eq!(body, serde_json::json!([1, 2, 3]));
}

#[test]
fn a_rebuild_keeps_the_bootstraps_in_place() {
    // Building again must be a no-op for cargo and leave identical files behind.
    let before = std::fs::read(artifact("goodbye", "arm64")).unwrap();
    let mut cmd = cli();
    cmd.args([
        "build",
        "-p",
        "greet",
        "--bin",
        "goodbye",
        "--arch",
        "arm64",
        "--locked",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("goodbye\tarm64\t") && stdout.contains("static"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(artifact("goodbye", "arm64")).unwrap(), before);
}

/// Plain cargo links against this machine's glibc, which is newer than provided.al2's 2.26:
/// the tool must refuse the binary and say how to fix it. Any Rust program shows it (glibc
/// 2.34 moved `__libc_start_main`), so a function without dependencies stands in for the
/// fixture, saving a gnu build of its dependencies.
#[test]
fn gnu_build_needing_newer_glibc_than_the_base_is_refused() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\n", "", &[]);
    let mut cmd = cli();
    cmd.args([
        "build",
        "--libc",
        "gnu",
        "--arch",
        "x86_64",
        "--manifest-path",
    ])
    .arg(ws.manifest())
    .env("CARGO_TARGET_DIR", ws.dir.path().join("target"));
    let out = run(&mut cmd);
    let (_, stderr) = texts(&out);
    let host_glibc = host_glibc();
    if host_glibc
        <= (GlibcVersion {
            major: 2,
            minor: 26,
        })
    {
        // Only on an old build host would this be fine; this machine is not one.
        assert!(out.status.success(), "{stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "needs GLIBC_2.",
        "provides glibc 2.26",
        "--compiler zigbuild",
        "--libc musl",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in {stderr}");
    }
    let bootstrap = ws
        .dir
        .path()
        .join("target/lambda-image/func/x86_64/bootstrap");
    assert!(
        !bootstrap.exists(),
        "a refused binary must not be installed as the bootstrap"
    );
}

/// cargo-zigbuild pins glibc to the base's version, so the same build passes.
#[test]
fn zigbuild_gnu_build_stays_within_the_base_glibc() {
    let mut cmd = cli();
    cmd.args([
        "build",
        "-p",
        "echo",
        "--libc",
        "gnu",
        "--compiler",
        "zigbuild",
        "--arch",
        "x86_64,arm64",
        "--locked",
        "--message-format",
        "json",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("gnu-zig"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "needs cargo-zigbuild and ziglang on PATH (`cargo xtask ci` installs them)\nstdout: {stdout}\nstderr: {stderr}");
    let compiled: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "compiled")
        .collect();
    assert_eq!(compiled.len(), 2);
    for event in compiled {
        let path = PathBuf::from(event["artifact"]["path"].as_str().unwrap());
        let info = elf::inspect(&path).unwrap();
        assert!(!info.is_static(), "a gnu build is dynamic");
        let need = info.max_glibc.expect("a gnu build needs glibc symbols");
        assert!(
            need <= GlibcVersion {
                major: 2,
                minor: 26
            },
            "{} needs {need}",
            path.display()
        );
        let arch: Arch = event["artifact"]["arch"].as_str().unwrap().parse().unwrap();
        assert_eq!(info.arch, Some(arch));
    }
}

fn host_glibc() -> GlibcVersion {
    let out = Command::new("ldd").arg("--version").output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let version = first.rsplit(' ').next().unwrap_or_default();
    GlibcVersion::parse(version)
        .unwrap_or_else(|| panic!("cannot read glibc version from `{first}`"))
}

#[test]
fn missing_backend_tool_says_how_to_install_it() {
    let mut cmd = cli();
    cmd.args([
        "build",
        "-p",
        "echo",
        "--compiler",
        "cross",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("PATH", "/usr/bin:/bin");
    let out = run(&mut cmd);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`cross` is needed") && stderr.contains("cargo install cross"),
        "{stderr}"
    );
}

/// `--no-build` takes the bootstrap an earlier build left (another CI job's, say) and compiles
/// nothing; without one, it says what to run.
#[test]
fn no_build_uses_the_bootstrap_an_earlier_build_left_and_refuses_a_missing_one() {
    let image = |target_dir: &std::path::Path, extra: &[&str]| {
        let mut cmd = cli();
        cmd.args(["image", "-p", "echo", "--base-image", "scratch"])
            .args(["--message-format", "json", "--manifest-path"])
            .arg(fixture_workspace().join("Cargo.toml"))
            .args(extra)
            .env("CARGO_TARGET_DIR", target_dir);
        run(&mut cmd)
    };
    let digest = |out: &std::process::Output| {
        json_lines(out)
            .into_iter()
            .find(|e| e["reason"] == "image")
            .map(|e| e["image"]["digest"].as_str().unwrap().to_string())
            .expect("an image event")
    };

    let empty = tempfile::tempdir().unwrap();
    let out = image(empty.path(), &["--no-build"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no bootstrap of `fixture-echo`") && stderr.contains("--no-build"),
        "{stderr}"
    );
    assert!(
        !empty.path().join("x86_64-unknown-linux-musl").exists(),
        "--no-build compiled something"
    );

    let target = fixture_target_dir("musl");
    let built = image(&target, &[]);
    assert!(built.status.success(), "{:?}", texts(&built));
    let prebuilt = image(&target, &["--no-build"]);
    let (stdout, stderr) = texts(&prebuilt);
    assert!(prebuilt.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("Compiling"), "{stderr}");
    assert_eq!(digest(&prebuilt), digest(&built));
}
