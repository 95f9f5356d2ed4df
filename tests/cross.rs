//! The `cross` backend end to end: cross 0.2.5 compiles the fixture in a local image built
//! from Debian packages (`cargo xtask ci` builds it with debootstrap and imports it into Docker
//! and Podman as `CLI_TEST_CROSS_IMAGE`), for x86_64 musl and arm64 glibc; the results are
//! imaged and run by `test` (arm64 under qemu), the image's glibc is checked against the
//! base's, and cross's failures (no engine, an engine that does not answer, an image it cannot
//! pull, a failing build) are told apart with their fix.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cargo_lambda_image::compile::elf;
use cargo_lambda_image::oci::Layout;
use cargo_lambda_image::target::{Arch, GlibcVersion};
use serde_json::{json, Value};
use support::images::{provided_like_layer, write_one_layer_image, write_tagged_index};
use support::{cli, fixture_target_dir, fixture_workspace, json_lines, run, service_env, texts};

/// The image cross compiles in, built and imported by `cargo xtask ci`.
fn cross_image() -> String {
    service_env("CLI_TEST_CROSS_IMAGE")
}

/// The directory of the `cross` on PATH (`cargo xtask ci` puts its pinned one first).
fn cross_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("cross").is_file())
        .expect("`cross` is not on PATH: run the tests with `cargo xtask ci` (or export what `cargo xtask cross` prints)")
}

/// The fixture workspace, copied once to a fixed path (so cargo's fingerprints hold between
/// runs) with `cross-image` set in its `[workspace.metadata.lambda]` for the two targets.
fn workspace() -> &'static Path {
    static WORKSPACE: OnceLock<PathBuf> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross-workspace");
        copy_changed(&fixture_workspace(), &dir);
        let manifest = std::fs::read_to_string(fixture_workspace().join("Cargo.toml")).unwrap();
        let image = cross_image();
        let manifest = manifest.replacen(
            "[workspace.metadata.lambda]\n",
            &format!("[workspace.metadata.lambda]\ncross-image = {{ \"x86_64-unknown-linux-musl\" = \"{image}\", \"aarch64-unknown-linux-gnu\" = \"{image}\" }}\n"),
            1,
        );
        assert!(manifest.contains("cross-image"), "{manifest}");
        write_changed(&dir.join("Cargo.toml"), manifest.as_bytes());
        dir
    })
}

/// Copies `from` into `to`, writing only files whose content differs (mtimes are cargo's
/// fingerprints).
fn copy_changed(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_changed(&source, &dest);
            }
        } else {
            write_changed(&dest, &std::fs::read(&source).unwrap());
        }
    }
}

fn write_changed(path: &Path, data: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The CLI on the cross workspace, its builds in a target directory kept between runs.
fn lambda_image(args: &[&str]) -> Command {
    let mut cmd = cli();
    cmd.args(args)
        .args(["--locked", "--manifest-path"])
        .arg(workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("cross"));
    cmd
}

fn bootstrap(arch: &str) -> PathBuf {
    fixture_target_dir("cross").join(format!("lambda-image/fixture-echo/{arch}/bootstrap"))
}

fn assert_ok(out: &Output) -> (String, String) {
    let (stdout, stderr) = texts(out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

#[test]
fn x86_64_musl_compiled_by_cross_in_the_local_image_runs_under_test() {
    let _turn = X86_64_MUSL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(&mut x86_64_musl_test(r#"{"via":"cross"}"#));
    let (stdout, stderr) = assert_ok(&out);
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(response, json!({"via": "cross"}), "{stderr}");
    // -v says which image cross compiled in, and why.
    let said = format!(
        "cross image for x86_64-unknown-linux-musl: {} (`cross-image` in the metadata",
        cross_image()
    );
    assert!(stderr.contains(&said), "missing `{said}` in {stderr}");
    let info = elf::inspect(&bootstrap("x86_64")).unwrap();
    assert_eq!(info.arch, Some(Arch::X86_64));
    assert!(info.is_static(), "a musl build is static");
}

#[test]
fn arm64_gnu_compiled_by_cross_runs_under_test_on_a_base_with_a_new_enough_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let base = arm64_al2023_base(dir.path());
    let out = run(lambda_image(&[
        "test",
        "-p",
        "echo",
        "--compiler",
        "cross",
        "--arch",
        "arm64",
        "--libc",
        "gnu",
        "--event",
        r#"{"via":"cross","arch":"arm64"}"#,
        "--base-image",
        &format!("oci:{}:al2023", base.display()),
    ])
    .env("PATH", path_with_cross()));
    let (stdout, stderr) = assert_ok(&out);
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(
        response,
        json!({"via": "cross", "arch": "arm64"}),
        "{stderr}"
    );
    let info = elf::inspect(&bootstrap("arm64")).unwrap();
    assert_eq!(info.arch, Some(Arch::Arm64));
    assert!(!info.is_static(), "a glibc build is dynamic");
    let need = info.max_glibc.expect("a glibc build needs GLIBC_ symbols");
    assert!(
        need <= GlibcVersion {
            major: 2,
            minor: 34
        },
        "needs {need}"
    );
}

/// bookworm's glibc is 2.36: what cross links in that image needs more than provided.al2's
/// 2.26, so the build is refused with the ways out.
#[test]
fn arm64_gnu_from_a_bookworm_image_is_refused_for_provided_al2() {
    let out = run(lambda_image(&[
        "build",
        "-p",
        "echo",
        "--compiler",
        "cross",
        "--arch",
        "arm64",
        "--libc",
        "gnu",
    ])
    .env("PATH", path_with_cross()));
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "needs GLIBC_2.3",
        "provides glibc 2.26",
        "cross compiled it in an image with a newer glibc",
        "--compiler zigbuild",
        "--target aarch64-unknown-linux-gnu.2.26",
        "`cross-image`",
        "CROSS_TARGET_AARCH64_UNKNOWN_LINUX_GNU_IMAGE",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in {stderr}");
    }
}

#[test]
fn dry_run_says_which_image_cross_will_use_and_why() {
    let args = [
        "build",
        "--dry-run",
        "-p",
        "echo",
        "--compiler",
        "cross",
        "--arch",
        "arm64",
        "--libc",
        "gnu",
    ];
    let var = "CROSS_TARGET_AARCH64_UNKNOWN_LINUX_GNU_IMAGE";
    let (_, stderr) = assert_ok(&run(lambda_image(&args).env_remove(var)));
    let image = cross_image();
    // cross compiles with the workspace's toolchain, named by its path so that it never tries
    // to install it, and as a custom one so that it adds nothing to it.
    let sysroot = run(Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(workspace()));
    let sysroot = texts(&sysroot).0.trim().to_string();
    assert!(
        stderr.contains(&format!(
            "CROSS_CUSTOM_TOOLCHAIN=1 {var}={image} RUSTUP_TOOLCHAIN={sysroot} cross build --package echo"
        )),
        "{stderr}"
    );
    let said = format!("cross image for aarch64-unknown-linux-gnu: {image} (`cross-image` in the metadata, passed as {var})");
    assert!(stderr.contains(&said), "missing `{said}` in {stderr}");

    // The user's own variable wins, and is left to cross untouched.
    let (_, stderr) = assert_ok(&run(lambda_image(&args).env(var, "mine/cross:1")));
    assert!(
        stderr.contains(&format!(
            "  command: CROSS_CUSTOM_TOOLCHAIN=1 RUSTUP_TOOLCHAIN={sysroot} cross build"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cross image for aarch64-unknown-linux-gnu: mine/cross:1 ({var} in the environment)"
        )),
        "{stderr}"
    );
}

#[test]
fn without_a_container_engine_cross_is_not_run_and_the_engine_is_named() {
    let cargo = PathBuf::from(std::env::var("CARGO").expect("cargo sets CARGO"));
    let path = std::env::join_paths([cross_dir(), cargo.parent().unwrap().to_path_buf()]).unwrap();
    let args = ["build", "-p", "echo", "--compiler", "cross"];
    let out = run(lambda_image(&args)
        .env("PATH", &path)
        .env_remove("CROSS_CONTAINER_ENGINE"));
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "`cross` needs a container engine, but neither `docker` nor `podman` is on PATH",
        "apt-get install docker.io",
        "CROSS_CONTAINER_ENGINE=podman",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in {stderr}");
    }

    let out = run(lambda_image(&args)
        .env("PATH", path_with_cross())
        .env("CROSS_CONTAINER_ENGINE", "nerdctl"));
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CROSS_CONTAINER_ENGINE names `nerdctl`, which is not on PATH"),
        "{stderr}"
    );
}

#[test]
fn an_engine_that_does_not_answer_is_named_with_how_to_start_it() {
    let out = run(
        lambda_image(&["build", "-p", "echo", "--compiler", "cross"])
            .env("PATH", path_with_cross())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("CROSS_CONTAINER_ENGINE"),
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "cross's container engine, docker, could not run its build container",
        // docker's own words, quoted.
        "Cannot connect to the Docker daemon at unix:///nonexistent/docker.sock",
        "start the Docker daemon",
        "DOCKER_HOST (now unix:///nonexistent/docker.sock)",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in {stderr}");
    }
}

/// One target's image cannot be pulled: its function fails, naming the image and the settings
/// that choose another, while the other target is compiled all the same.
#[test]
fn an_image_cross_cannot_pull_fails_its_function_and_the_others_go_on() {
    let missing = "127.0.0.1:1/missing/cross:1";
    let out = run(lambda_image(&[
        "build",
        "-p",
        "echo",
        "--compiler",
        "cross",
        "--arch",
        "x86_64,arm64",
        "--libc",
        "musl",
        "--message-format",
        "json",
    ])
    .env("PATH", path_with_cross())
    .env("CROSS_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_IMAGE", missing));
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let events = json_lines(&out);
    let compiled: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "compiled")
        .collect();
    assert_eq!(compiled.len(), 1, "{stdout}");
    assert_eq!(compiled[0]["artifact"]["arch"], "x86_64");
    let all = format!("{stdout}\n{stderr}");
    for needle in [
        format!(
            "cross could not pull `{missing}`, the image it compiles aarch64-unknown-linux-musl in"
        ),
        // the engine's own words, quoted.
        format!("Unable to find image '{missing}' locally"),
        "in [package.metadata.lambda], or CROSS_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_IMAGE"
            .to_string(),
    ] {
        assert!(all.contains(&needle), "missing `{needle}` in {all}");
    }
}

/// A build that fails inside cross's container shows what the compiler said.
#[test]
fn a_failing_cross_build_shows_its_stderr() {
    let ws = support::TempWorkspace::new(
        &format!("[package.metadata.lambda]\ncross-image = {{ \"x86_64-unknown-linux-musl\" = \"{}\" }}\n", cross_image()),
        "",
        &[],
    );
    std::fs::write(
        ws.dir.path().join("func/src/main.rs"),
        "fn main() { let _ = undefined_thing; }\n",
    )
    .unwrap();
    let mut cmd = cli();
    cmd.args(["build", "--compiler", "cross", "--libc", "musl"])
        .args(["--base-image", "scratch", "--manifest-path"])
        .arg(ws.manifest())
        .env("CARGO_TARGET_DIR", ws.dir.path().join("target"))
        .env("PATH", path_with_cross());
    let out = run(&mut cmd);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "with cross failed (exit status: 101)",
        "cannot find value `undefined_thing`",
        "cross build --package func --bin func --target x86_64-unknown-linux-musl",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in {stderr}");
    }
}

/// Podman as cross's engine (`CROSS_CONTAINER_ENGINE=podman`, rootful, its own image store
/// into which `cargo xtask ci` imported the same image). Podman raises its containers' open
/// file and process limits by default, which needs CAP_SYS_RESOURCE; on machines without it
/// (this VM), lower limits are passed through cross's `CROSS_CONTAINER_OPTS`.
#[test]
fn podman_as_crosss_engine_compiles_a_function_that_runs_under_test() {
    let _turn = X86_64_MUSL.lock().unwrap_or_else(|e| e.into_inner());
    // A source newer than the last build: cargo in the Podman container compiles the function
    // again (its dependencies, built by either engine, are shared through the target directory).
    let source = workspace().join("crates/echo/src/main.rs");
    std::fs::File::options()
        .append(true)
        .open(&source)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .unwrap();
    let out = run(x86_64_musl_test(r#"{"via":"podman"}"#)
        .env("CROSS_CONTAINER_ENGINE", "podman")
        // Docker is out of reach for this run: only Podman can have compiled it.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env(
            "CROSS_CONTAINER_OPTS",
            "--ulimit nofile=1024:1024 --ulimit nproc=4096:4096",
        ));
    let (stdout, stderr) = assert_ok(&out);
    assert!(stderr.contains("Compiling echo"), "{stderr}");
    let response: Value = serde_json::from_str(stdout.trim()).expect("stdout is the response");
    assert_eq!(response, json!({"via": "podman"}), "{stderr}");
    let info = elf::inspect(&bootstrap("x86_64")).unwrap();
    assert_eq!(info.arch, Some(Arch::X86_64));
    assert!(info.is_static(), "a musl build is static");
}

/// `test -v` of fixture-echo compiled by cross for x86_64 musl on scratch, with `event`.
fn x86_64_musl_test(event: &str) -> Command {
    let mut cmd = lambda_image(&[
        "test",
        "-v",
        "-p",
        "echo",
        "--compiler",
        "cross",
        "--arch",
        "x86_64",
        "--libc",
        "musl",
        "--base-image",
        "scratch",
        "--event",
        event,
    ]);
    cmd.env("PATH", path_with_cross());
    cmd
}

/// The tests that build fixture-echo for x86_64 musl take turns: they share the cross target
/// directory (so the second build, whatever its engine, finds the first one's artefacts) and
/// the image layout under it.
static X86_64_MUSL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// PATH with cross's directory first (it already is under `cargo xtask ci`; this makes the
/// tests fail clearly when it is not there at all).
fn path_with_cross() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(cross_dir()).chain(std::env::split_paths(&path))).unwrap()
}

/// A stand-in for provided.al2023 on arm64, as an OCI layout under `.../lambda/provided` (so
/// its reference reads as that base, with glibc 2.34): the entrypoint script, and the arm64
/// glibc files the bootstrap needs, taken from the cross image (Debian's libc6-arm64-cross).
/// Its `/bin/sh` is the host's static busybox, which runs natively next to the arm64
/// bootstrap under qemu: the script is all it runs.
fn arm64_al2023_base(dir: &Path) -> PathBuf {
    let libs = [
        "ld-linux-aarch64.so.1",
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
    ];
    let out = run(Command::new("docker")
        .args(["run", "--rm", "--network", "none", &cross_image()])
        .args(["tar", "-C", "/usr/aarch64-linux-gnu/lib", "-c"])
        .args(libs));
    assert!(out.status.success(), "docker run tar: {:?}", texts(&out));
    let mut layer = provided_like_layer();
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        layer.file(&format!("lib/{name}"), 0o755, data).unwrap();
    }
    let (compressed, diff_id) = layer.compress(0).unwrap();
    let config = json!({
        "architecture": "arm64", "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LAMBDA_TASK_ROOT=/var/task", "LAMBDA_RUNTIME_DIR=/var/runtime"],
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "WorkingDir": "/var/task"
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "provided.al2023 stand-in for arm64 tests"}]
    });
    let layout_dir = dir.join("lambda/provided");
    let layout = Layout::create(&layout_dir).unwrap();
    let top = write_one_layer_image(&layout, &config, &compressed, "arm64");
    write_tagged_index(&layout, top, "al2023");
    layout_dir
}

/// The rustup home `cargo xtask ci` prepared with an older Rust as its `stable` (a newer stable
/// exists upstream, so `rustup toolchain add stable` there would be an update).
fn old_rustup_home() -> PathBuf {
    PathBuf::from(service_env("CLI_TEST_OLD_RUSTUP_HOME"))
}

/// What must not change in a rustup home: the toolchains it lists, and each one's compiler.
fn toolchains_of(home: &Path) -> String {
    let rustup = |args: &[&str]| {
        let out = run(Command::new("rustup").args(args).env("RUSTUP_HOME", home));
        assert!(out.status.success(), "rustup {args:?}: {}", texts(&out).1);
        texts(&out).0
    };
    let mut seen = rustup(&["toolchain", "list", "-v"]);
    for dir in std::fs::read_dir(home.join("toolchains")).unwrap() {
        let rustc = dir.unwrap().path().join("bin/rustc");
        let out = run(Command::new(&rustc).arg("-vV"));
        seen.push_str(&format!("{}: {}\n", rustc.display(), texts(&out).0));
    }
    seen
}

/// cross 0.2.5 runs `rustup toolchain add <toolchain>` on every build under rustup 1.28+, and
/// concurrent ones destroyed a toolchain. On a rustup home whose stable is older than the
/// newest, two cross builds at once: the missing target is added once (by us, under a lock,
/// never with --no-install-targets) and the toolchain itself is left exactly as it was.
#[test]
fn cross_on_an_older_stable_adds_only_the_target_and_never_touches_the_toolchain() {
    let home = old_rustup_home();
    let triple = "x86_64-unknown-linux-musl";
    let stable = "stable-x86_64-unknown-linux-gnu";
    let target_dir = fixture_target_dir("cross-old-stable");
    let build = |extra: &[&str]| {
        let mut cmd = lambda_image(&["build", "-p", "echo", "--compiler", "cross"]);
        cmd.args(["--arch", "x86_64", "--libc", "musl"])
            .args(extra)
            .env("PATH", path_with_cross())
            .env("RUSTUP_HOME", &home)
            .env("CARGO_TARGET_DIR", &target_dir);
        cmd
    };
    // Start from a toolchain without the target, so that adding it is part of every run.
    let std_dir = home.join(format!("toolchains/{stable}/lib/rustlib/{triple}"));
    if std_dir.exists() {
        let out = run(Command::new("rustup")
            .args(["target", "remove", triple, "--toolchain", stable])
            .env("RUSTUP_HOME", &home));
        assert!(out.status.success(), "{}", texts(&out).1);
    }
    assert!(!std_dir.exists());
    let before = toolchains_of(&home);
    assert!(before.contains("release: 1.94.1"), "{before}");

    let out = run(&mut build(&["--no-install-targets"]));
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("rustup target add {triple} --toolchain {stable}")),
        "{stderr}"
    );
    assert!(!std_dir.exists(), "--no-install-targets added the target");

    let children: Vec<_> = (0..2)
        .map(|_| {
            build(&[])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut said = String::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
        said.push_str(&stderr);
    }
    assert_eq!(
        said.matches("Adding the Rust target").count(),
        1,
        "the target is added by one of the two runs: {said}"
    );
    assert!(std_dir.join("lib").is_dir());
    assert_eq!(toolchains_of(&home), before, "the toolchain changed");
    let info =
        elf::inspect(&target_dir.join("lambda-image/fixture-echo/x86_64/bootstrap")).unwrap();
    assert!(info.is_static(), "a musl build is static");
}
