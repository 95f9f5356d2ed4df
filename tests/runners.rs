//! Running images' functions under the emulator: unpacking an OCI layout into a root
//! filesystem (refusing malicious layers), the bubblewrap sandbox (and its unconfined
//! fallback) and the Docker runner, with the `behave` fixture cross-compiled for Lambda and
//! real HTTP invocations.

use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cargo_lambda_image::emulate::docker_runner::{DockerLauncher, LABEL};
use cargo_lambda_image::emulate::rootfs::{self, ImageRuntime};
use cargo_lambda_image::emulate::sandbox::{Emulation, Isolation, SandboxLauncher};
use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, Launcher, LogSink};
use cargo_lambda_image::oci;
use cargo_lambda_image::progress::Reporter;
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::Error;
use serde_json::{json, Value};

use support::images::{config_for, craft_layout, gzip, mode, unpack_layers};
use support::runner_images::{behave_bootstrap, evil_tar, provided_image, scratch_image, Raw};
use support::{service_env, unique};

// ---------------------------------------------------------------------------------------------
// Unpacking

/// An unchanged image is not unpacked again for the read-only sandbox; another image is, into a
/// tree of its own, and the old tree goes once no runtime holds it. A tree left half-unpacked by
/// a killed process is never taken for a complete one, and is removed.
#[test]
fn the_sandbox_reuses_the_tree_of_an_unchanged_image_only() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &[u8]| {
        let tar = support::images::raw_tar(&[("var/", "d", 0o755, b""), (name, "f", 0o644, body)]);
        let layers = vec![(oci::MEDIA_OCI_LAYER_GZIP, gzip(&tar))];
        let config = config_for(Arch::Arm64, &["/var/runtime/bootstrap"], &[], &layers);
        let layout = dir.path().join("layout");
        let _ = std::fs::remove_dir_all(&layout);
        craft_layout(&layout, &config, &layers);
        layout
    };
    let trees = dir.path().join("rootfs");
    let layout = write("var/one", b"1");
    let first = rootfs::unpack_reusing(&layout, &trees).unwrap();
    // Something only a reused tree keeps.
    std::fs::write(first.rootfs.join("var/left-over"), b"x").unwrap();
    let again = rootfs::unpack_reusing(&layout, &trees).unwrap();
    assert_eq!(again.rootfs, first.rootfs);
    assert!(
        again.rootfs.join("var/left-over").exists(),
        "the same image was unpacked again"
    );
    assert_eq!(again.entrypoint, ["/var/runtime/bootstrap"]);
    // Another image: unpacked afresh, beside the tree the runtimes above still hold.
    let layout = write("var/two", b"2");
    let other = rootfs::unpack_reusing(&layout, &trees).unwrap();
    assert_ne!(other.rootfs, first.rootfs);
    assert!(other.rootfs.join("var/two").exists());
    assert!(
        first.rootfs.join("var/left-over").exists(),
        "a held tree was removed"
    );
    // Once nothing holds it, the next unpack removes it.
    let old = first.rootfs.clone();
    drop((first, again));
    let kept = rootfs::unpack_reusing(&layout, &trees).unwrap();
    assert_eq!(kept.rootfs, other.rootfs);
    assert!(!old.exists(), "an unused tree was kept");
    // A tree a killed process left half-unpacked (a staging directory nobody holds) is removed
    // and never used.
    let killed = trees.join(".staging-tree-999999-0");
    std::fs::create_dir_all(killed.join("var")).unwrap();
    drop((other, kept));
    let runtime = rootfs::unpack_reusing(&layout, &trees).unwrap();
    assert!(!killed.exists());
    assert_eq!(std::fs::read_dir(&trees).unwrap().count(), 1);
    assert!(runtime.rootfs.join("var/two").exists());
}

/// Asserts an unpack failed on an unsafe entry of the given layer, and returns the message.
fn refused(result: cargo_lambda_image::Result<ImageRuntime>, layer: &str, entry: &str) -> String {
    match result {
        Err(e @ Error::UnsafeLayer { .. }) => {
            let message = e.to_string();
            assert!(message.contains(layer), "{message} does not name {layer}");
            assert!(message.contains(entry), "{message} does not name {entry}");
            message
        }
        Err(other) => panic!("expected UnsafeLayer for {entry}, got {other}"),
        Ok(runtime) => panic!("{entry} was accepted: {runtime:?}"),
    }
}

#[test]
fn unpack_applies_layers_in_order_with_whiteouts_links_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let lower = evil_tar(&[
        Raw::Dir("var/", 0o755),
        Raw::Dir("var/runtime/", 0o755),
        Raw::File("var/runtime/bootstrap", 0o755, b"#!old"),
        Raw::File("var/runtime/readme", 0o644, b"read me"),
        Raw::Dir("etc/", 0o755),
        Raw::File("etc/gone", 0o644, b"x"),
        Raw::Dir("etc/opaque/", 0o755),
        Raw::File("etc/opaque/old", 0o644, b"old"),
        Raw::Dir("opt/locked/", 0o555),
        Raw::File("opt/locked/data", 0o600, b"secret"),
        Raw::Symlink("bin", "usr/bin"),
        Raw::Symlink("var/runtime/abs", "/etc/gone"),
        Raw::Symlink("var/runtime/rel", "../../etc/opaque/old"),
        Raw::HardLink("var/runtime/hard", "var/runtime/readme"),
    ]);
    let upper = evil_tar(&[
        Raw::File("var/runtime/bootstrap", 0o750, b"#!new"),
        Raw::File("etc/.wh.gone", 0o644, b""),
        Raw::File("etc/opaque/.wh..wh..opq", 0o644, b""),
        Raw::File("etc/opaque/new", 0o644, b"new"),
        Raw::Symlink("bin", "/usr/local/bin"),
    ]);
    let (_, result) = unpack_layers(dir.path(), &[lower, upper]);
    let runtime = result.expect("a well-formed image unpacks");
    let root = &runtime.rootfs;
    assert_eq!(
        std::fs::read(root.join("var/runtime/bootstrap")).unwrap(),
        b"#!new"
    );
    assert_eq!(mode(&root.join("var/runtime/bootstrap")), 0o750);
    assert_eq!(mode(&root.join("var/runtime/readme")), 0o644);
    assert!(!root.join("etc/gone").exists(), "whiteout applied");
    assert!(
        !root.join("etc/opaque/old").exists(),
        "opaque whiteout applied"
    );
    assert_eq!(std::fs::read(root.join("etc/opaque/new")).unwrap(), b"new");
    assert_eq!(mode(&root.join("opt/locked")), 0o555);
    assert_eq!(
        std::fs::read(root.join("opt/locked/data")).unwrap(),
        b"secret"
    );
    assert_eq!(
        std::fs::read_link(root.join("bin")).unwrap(),
        Path::new("/usr/local/bin")
    );
    assert_eq!(
        std::fs::read_link(root.join("var/runtime/abs")).unwrap(),
        Path::new("/etc/gone")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root.join("var/runtime/hard"))
            .unwrap()
            .ino(),
        std::fs::metadata(root.join("var/runtime/readme"))
            .unwrap()
            .ino()
    );
    assert_eq!(runtime.entrypoint, vec!["/var/runtime/bootstrap"]);
    assert_eq!(runtime.cmd, vec!["handler"]);
    assert_eq!(runtime.command(), vec!["/var/runtime/bootstrap", "handler"]);
    assert_eq!(runtime.workdir, "/var/task");
    assert_eq!(runtime.arch, Arch::Arm64);
    assert_eq!(runtime.env[0].0, "PATH");

    // Unpacking again starts from an empty directory.
    std::fs::write(root.join("stale"), b"x").unwrap();
    let (_, again) = unpack_layers(dir.path(), &[evil_tar(&[Raw::Dir("var/", 0o755)])]);
    let again = again.unwrap();
    assert!(!again.rootfs.join("stale").exists());
    assert!(!again.rootfs.join("etc").exists());
}

/// An absolute name lands inside the root filesystem, as containerd puts it; `..` that leaves
/// the root is refused.
#[test]
fn unpack_keeps_absolute_paths_inside_and_refuses_parent_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[Raw::File("/etc/evil", 0o644, b"x")])],
    );
    let root = result
        .expect("an absolute name is taken as relative")
        .rootfs;
    assert_eq!(std::fs::read(root.join("etc/evil")).unwrap(), b"x");

    let (digests, result) = unpack_layers(
        dir.path(),
        &[
            evil_tar(&[Raw::Dir("var/", 0o755)]),
            evil_tar(&[Raw::File("var/../../escaped", 0o644, b"x")]),
        ],
    );
    let message = refused(result, &digests[1], "var/../../escaped");
    assert!(message.contains(".."), "{message}");
    assert!(!dir.path().join("escaped").exists());
}

#[test]
fn unpack_refuses_writing_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // Even a symlink that is harmless inside the image (absolute, so inside the rootfs) must
    // not be followed on the host while writing.
    let (digests, result) = unpack_layers(
        dir.path(),
        &[
            evil_tar(&[Raw::Symlink("etc", "/"), Raw::Dir("var/", 0o755)]),
            evil_tar(&[Raw::File("etc/passwd", 0o644, b"root::0:0")]),
        ],
    );
    let message = refused(result, &digests[1], "etc/passwd");
    assert!(message.contains("symlink"), "{message}");

    // The same within one layer, for whiteouts too.
    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[
            Raw::Symlink("link", "sub"),
            Raw::File("link/.wh.x", 0o644, b""),
        ])],
    );
    refused(result, &digests[0], "link/.wh.x");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn unpack_refuses_symlinks_that_escape_the_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[
            Raw::Dir("var/", 0o755),
            Raw::Symlink("var/up", "../../outside"),
        ])],
    );
    let message = refused(result, &digests[0], "var/up");
    assert!(message.contains("outside"), "{message}");

    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[Raw::Symlink("abs", "/../../etc/shadow")])],
    );
    refused(result, &digests[0], "abs");
}

#[test]
fn unpack_refuses_hard_links_outside_or_not_yet_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[Raw::HardLink("shadow", "/etc/shadow")])],
    );
    refused(result, &digests[0], "shadow");

    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[Raw::HardLink("up", "../../../etc/passwd")])],
    );
    refused(result, &digests[0], "up");

    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[
            Raw::HardLink("early", "later"),
            Raw::File("later", 0o644, b"x"),
        ])],
    );
    let message = refused(result, &digests[0], "early");
    assert!(message.contains("not extracted"), "{message}");

    // Through a symlink to the host.
    let (digests, result) = unpack_layers(
        dir.path(),
        &[evil_tar(&[
            Raw::Symlink("etc", "/etc"),
            Raw::HardLink("passwd", "etc/passwd"),
        ])],
    );
    refused(result, &digests[0], "passwd");
}

#[test]
fn unpack_refuses_devices_and_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let (digests, result) = unpack_layers(dir.path(), &[evil_tar(&[Raw::CharDevice("dev/mem")])]);
    let message = refused(result, &digests[0], "dev/mem");
    assert!(message.contains("device"), "{message}");
    let (digests, result) = unpack_layers(dir.path(), &[evil_tar(&[Raw::Fifo("pipe")])]);
    let message = refused(result, &digests[0], "pipe");
    assert!(message.contains("FIFO"), "{message}");
}

#[test]
fn unpack_reads_images_built_by_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::X86_64, dir.path(), "unpack");
    let runtime = rootfs::unpack(image.layout_dir(), &dir.path().join("rootfs")).unwrap();
    let bootstrap = runtime.rootfs.join("var/runtime/bootstrap");
    assert_eq!(mode(&bootstrap), 0o755);
    assert_eq!(
        std::fs::read(&bootstrap).unwrap(),
        std::fs::read(behave_bootstrap(Arch::X86_64)).unwrap()
    );
    assert_eq!(runtime.entrypoint, vec!["/var/runtime/bootstrap"]);
    assert!(runtime.cmd.is_empty());
    assert!(runtime
        .env
        .contains(&("LAMBDA_TASK_ROOT".to_string(), "/var/task".to_string())));
    assert_eq!(runtime.arch, Arch::X86_64);
}

// ---------------------------------------------------------------------------------------------
// Running

/// A config on a free port, with logs captured, and a handler the provided entrypoint would
/// replace with its CMD.
fn config() -> (EmulatorConfig, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (logs, rx) = LogSink::channel();
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        function_name: "behave".into(),
        timeout: Duration::from_secs(20),
        init_timeout: Duration::from_secs(20),
        env: BTreeMap::from([("STAGE".to_string(), "test".to_string())]),
        handler: "from-emulator".into(),
        logs,
        ..Default::default()
    };
    (config, rx)
}

async fn invoke(emulator: &Emulator, event: Value) -> (Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(emulator.invoke_url())
        .body(event.to_string())
        .send()
        .await
        .expect("the emulator answers");
    let error = response
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (error, value)
}

fn drain(logs: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    let mut all = Vec::new();
    while let Ok(line) = logs.try_recv() {
        all.push(line);
    }
    all.join("\n")
}

/// What every runner must do like Lambda: run the function, as a non-root user, with a
/// read-only root, a writable /tmp, the image's working directory and environment plus the
/// emulator's, and nothing of the host's.
async fn assert_lambda_like(launcher: Arc<dyn Launcher>, isolated: bool) {
    let (config, mut logs) = config();
    let emulator = Emulator::start(config, launcher).await.unwrap();
    let (error, body) = invoke(&emulator, json!({"hello": "world"})).await;
    assert_eq!(error, None, "{body}\n{}", drain(&mut logs));
    assert_eq!(body, json!({"hello": "world"}));

    let (_, whoami) = invoke(&emulator, json!({"whoami": true})).await;
    let (_, task_root) = invoke(&emulator, json!({"env": "LAMBDA_TASK_ROOT"})).await;
    assert_eq!(task_root, json!("/var/task"), "the image's ENV");
    let (_, stage) = invoke(&emulator, json!({"env": "STAGE"})).await;
    assert_eq!(stage, json!("test"), "the function's env");
    let (_, api) = invoke(&emulator, json!({"env": "AWS_LAMBDA_RUNTIME_API"})).await;
    assert!(api.as_str().unwrap().starts_with("127.0.0.1:"), "{api}");
    let (_, home) = invoke(&emulator, json!({"env": "CARGO_MANIFEST_DIR"})).await;
    assert_eq!(home, Value::Null, "nothing of the host's environment");
    let (_, tmp) = invoke(&emulator, json!({"write": "/tmp/x"})).await;
    assert_eq!(tmp, json!({"written": "/tmp/x"}));
    if isolated {
        assert_eq!(whoami["uid"], json!(993), "{whoami}");
        assert_eq!(whoami["gid"], json!(990), "{whoami}");
        assert_eq!(whoami["cwd"], json!("/var/task"), "{whoami}");
        let (_, task) = invoke(&emulator, json!({"write": "/var/task/x"})).await;
        let message = task["error"].as_str().unwrap_or_else(|| panic!("{task}"));
        assert!(message.contains("Read-only file system"), "{message}");
    }
    let lines = drain(&mut logs);
    assert!(
        lines.contains("behave got {\"hello\":\"world\"}"),
        "{lines}"
    );
    emulator.shutdown().await;
}

fn sandbox_for(image: &cargo_lambda_image::image::BuiltImage, dir: &Path) -> SandboxLauncher {
    let runtime = rootfs::unpack(image.layout_dir(), &dir.join("rootfs")).unwrap();
    SandboxLauncher::new(runtime).unwrap_or_else(|e| {
        panic!("{e}: the sandbox needs bubblewrap (`cargo xtask ci` installs it)")
    })
}

/// Processes whose command line mentions `needle` (a unique temporary directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(text);
            }
        }
    }
    found
}

#[tokio::test]
async fn sandbox_runs_a_scratch_image_like_lambda_x86_64() {
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::X86_64, dir.path(), "sandbox-x86");
    let launcher = sandbox_for(&image, dir.path());
    assert!(matches!(launcher.isolation(), Isolation::Bubblewrap(_)));
    assert_lambda_like(Arc::new(launcher), true).await;
    // The sandbox does not outlive the emulator.
    let root = dir.path().join("rootfs").canonicalize().unwrap();
    let needle = root.display().to_string();
    let mut left = processes_mentioning(&needle);
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = processes_mentioning(&needle);
    }
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test]
async fn sandbox_runs_a_scratch_image_like_lambda_arm64() {
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::Arm64, dir.path(), "sandbox-arm64");
    let launcher = sandbox_for(&image, dir.path());
    if Arch::host() == Some(Arch::X86_64) {
        assert_eq!(
            launcher.emulation(),
            &Emulation::Binfmt,
            "`cargo xtask ci` registers qemu-aarch64 with the F flag"
        );
    }
    assert_lambda_like(Arc::new(launcher), true).await;
}

#[tokio::test]
async fn sandbox_runs_arm64_under_a_bound_qemu_without_binfmt() {
    let qemu = Path::new("/usr/bin/qemu-aarch64-static");
    assert!(qemu.exists(), "`cargo xtask ci` installs qemu-user-static");
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::Arm64, dir.path(), "sandbox-qemu");
    let launcher = sandbox_for(&image, dir.path()).qemu(qemu);
    let (config, _logs) = config();
    let emulator = Emulator::start(config, Arc::new(launcher)).await.unwrap();
    let (error, body) = invoke(&emulator, json!({"arch": "arm64"})).await;
    assert_eq!((error, body), (None, json!({"arch": "arm64"})));
    let (_, whoami) = invoke(&emulator, json!({"whoami": true})).await;
    assert_eq!(whoami["uid"], json!(993), "{whoami}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn sandbox_runs_a_provided_style_image_through_its_entrypoint_script() {
    let dir = tempfile::tempdir().unwrap();
    let image = provided_image(dir.path(), "sandbox-provided");
    let launcher = sandbox_for(&image, dir.path());
    assert_eq!(
        launcher.runtime().command(),
        vec!["/lambda-entrypoint.sh", "bootstrap"]
    );
    let (config, mut logs) = config();
    let emulator = Emulator::start(config, Arc::new(launcher)).await.unwrap();
    let (error, body) = invoke(&emulator, json!({"via": "script"})).await;
    assert_eq!(error, None, "{body}\n{}", drain(&mut logs));
    assert_eq!(body, json!({"via": "script"}));
    // The script exports its argument (CMD) as _HANDLER, replacing the emulator's.
    let (_, handler) = invoke(&emulator, json!({"env": "_HANDLER"})).await;
    assert_eq!(handler, json!("bootstrap"));
    let (_, lang) = invoke(&emulator, json!({"env": "LANG"})).await;
    assert_eq!(lang, json!("en_US.UTF-8"), "the base's ENV");
    let (_, whoami) = invoke(&emulator, json!({"whoami": true})).await;
    assert_eq!(whoami["uid"], json!(993), "{whoami}");
    let (_, task) = invoke(&emulator, json!({"write": "/var/task/x"})).await;
    assert!(task["error"].as_str().is_some(), "{task}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn sandbox_tmp_has_the_ephemeral_storage_size() {
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::X86_64, dir.path(), "sandbox-tmp");
    let launcher = sandbox_for(&image, dir.path()).ephemeral_storage_mb(1);
    let (config, _logs) = config();
    let emulator = Emulator::start(config, Arc::new(launcher)).await.unwrap();
    let (_, small) = invoke(&emulator, json!({"write": "/tmp/small", "size": 100_000})).await;
    assert_eq!(small, json!({"written": "/tmp/small"}));
    let (_, big) = invoke(&emulator, json!({"write": "/tmp/big", "size": 2_000_000})).await;
    let message = big["error"].as_str().unwrap_or_else(|| panic!("{big}"));
    assert!(message.contains("No space left"), "{message}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn unconfined_runs_a_scratch_image_without_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::X86_64, dir.path(), "unconfined");
    let runtime = rootfs::unpack(image.layout_dir(), &dir.path().join("rootfs")).unwrap();
    let launcher = SandboxLauncher::unconfined(runtime).unwrap();
    assert_eq!(launcher.isolation(), &Isolation::Unconfined);
    assert_lambda_like(Arc::new(launcher), false).await;
}

#[tokio::test]
async fn unconfined_runs_arm64_through_the_hosts_emulation() {
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::Arm64, dir.path(), "unconfined-arm64");
    let runtime = rootfs::unpack(image.layout_dir(), &dir.path().join("rootfs")).unwrap();
    let launcher = SandboxLauncher::unconfined(runtime).unwrap();
    let (config, _logs) = config();
    let emulator = Emulator::start(config, Arc::new(launcher)).await.unwrap();
    let (error, body) = invoke(&emulator, json!({"a": 1})).await;
    assert_eq!((error, body), (None, json!({"a": 1})));
    emulator.shutdown().await;
}

#[test]
fn unconfined_refuses_entrypoint_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let image = provided_image(dir.path(), "unconfined-script");
    let runtime = rootfs::unpack(image.layout_dir(), &dir.path().join("rootfs")).unwrap();
    let error = SandboxLauncher::unconfined(runtime).unwrap_err();
    assert!(matches!(error, Error::Sandbox { .. }), "{error}");
    assert!(
        error.to_string().contains("/lambda-entrypoint.sh"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Docker

/// Containers carrying the test's label, running or not.
async fn containers_labelled(label: &str) -> Vec<String> {
    let docker = cargo_lambda_image::docker::connect().unwrap();
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("the engine lists containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn docker_runs_like_lambda(arch: Arch) {
    service_env("DOCKER_HOST");
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(arch, dir.path(), &unique("docker"));
    let run_label = unique("runners-test");
    let launcher = DockerLauncher::load(&image, &Reporter::discard())
        .await
        .expect("the image loads into Docker")
        .label("cargo-lambda-image.test", run_label.clone());
    assert_eq!(launcher.platform(), format!("linux/{}", arch.oci_name()));
    assert_lambda_like(Arc::new(launcher), true).await;
    let filter = format!("cargo-lambda-image.test={run_label}");
    assert_no_containers_soon(&filter).await;
}

/// Shutting down kills the runtimes without waiting for them: their containers go within
/// seconds.
async fn assert_no_containers_soon(label: &str) {
    let mut left = containers_labelled(label).await;
    for _ in 0..50 {
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = containers_labelled(label).await;
    }
    panic!("containers left behind: {left:?}");
}

#[tokio::test]
async fn docker_runs_an_image_like_lambda_x86_64() {
    docker_runs_like_lambda(Arch::X86_64).await;
}

#[tokio::test]
async fn docker_runs_an_image_like_lambda_arm64() {
    docker_runs_like_lambda(Arch::Arm64).await;
}

#[tokio::test]
async fn docker_containers_are_removed_when_the_emulator_is_dropped() {
    service_env("DOCKER_HOST");
    let dir = tempfile::tempdir().unwrap();
    let image = scratch_image(Arch::X86_64, dir.path(), &unique("docker-drop"));
    let run_label = unique("runners-drop");
    let launcher = DockerLauncher::load(&image, &Reporter::discard())
        .await
        .unwrap()
        .label("cargo-lambda-image.test", run_label.clone());
    let filter = format!("cargo-lambda-image.test={run_label}");
    let (config, _logs) = config();
    let emulator = Emulator::start(config, Arc::new(launcher)).await.unwrap();
    let (error, _) = invoke(&emulator, json!({"x": 1})).await;
    assert_eq!(error, None);
    assert_eq!(containers_labelled(&filter).await.len(), 1);
    assert!(!containers_labelled(LABEL).await.is_empty());
    // No graceful shutdown: what happens when the program is interrupted.
    drop(emulator);
    assert_no_containers_soon(&filter).await;
}
