//! Several commands on one function and architecture in one target directory at once: each must
//! go on with the image it built, whole, while the others write theirs (`image` with outputs,
//! `test` running the image, `push` uploading it), each on a base of its own.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cargo_lambda_image::oci::Layout;
use serde_json::Value;
use support::images::fake_provided_base_with_env;
use support::{cli, fixture_target_dir, fixture_workspace, service_env, texts};

/// The echo fixture for x86_64 musl, in the target directory the other tests build it in.
fn lambda_image(args: &[&str]) -> Command {
    let mut cmd = cli();
    cmd.args(args)
        .args([
            "-p",
            "echo",
            "--arch",
            "x86_64",
            "--locked",
            "--manifest-path",
        ])
        .arg(fixture_workspace().join("Cargo.toml"))
        .args(["--message-format", "json"])
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
        .env(
            "CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES",
            service_env("CLI_TEST_REGISTRY"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A provided-style base whose config says which one it is (`BASE=<n>` in its Env).
fn base(dir: &Path, n: usize) -> String {
    let layout =
        fake_provided_base_with_env(&dir.join(format!("base-{n}")), &[&format!("BASE={n}")]);
    format!("oci:{}:al2", layout.display())
}

/// The `BASE` its config's Env names.
fn base_of(config: &Value) -> String {
    config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.strip_prefix("BASE="))
        .collect()
}

enum Kind {
    /// `image --output oci=DIR`: the output copies the image out of its layout.
    Image(PathBuf),
    /// `test --event`: the image is unpacked and run.
    Test,
    /// `push`: the image's blobs and manifest are uploaded.
    Push,
}

struct Run {
    n: usize,
    kind: Kind,
    child: Child,
}

fn start(n: usize, base: &str, dir: &Path) -> Run {
    let registry = service_env("CLI_TEST_REGISTRY");
    let (kind, mut cmd) = match n % 4 {
        0 | 1 => {
            let out = dir.join(format!("out-{n}"));
            let output = format!("oci={}", out.display());
            let cmd = lambda_image(&["image", "--base-image", base, "--output", &output]);
            (Kind::Image(out), cmd)
        }
        2 => {
            let event = format!(r#"{{"run":{n}}}"#);
            (
                Kind::Test,
                lambda_image(&["test", "--base-image", base, "--event", &event]),
            )
        }
        _ => (
            Kind::Push,
            lambda_image(&["push", "--base-image", base, "--registry", &registry]),
        ),
    };
    let child = cmd.spawn().expect("the CLI starts");
    Run { n, kind, child }
}

/// The config of `reference` on the test registry, through skopeo.
fn registry_config(reference: &str) -> Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo runs");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "skopeo inspect {reference}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn eight_commands_on_one_function_with_bases_of_their_own_each_get_their_own_image() {
    // Built once first, so that the runs below race over images, not over cargo's lock.
    support::images::echo_bootstrap(cargo_lambda_image::target::Arch::X86_64);
    let dir = tempfile::tempdir().unwrap();
    let bases: Vec<String> = (0..8).map(|n| base(dir.path(), n)).collect();
    for round in 0..3 {
        let runs: Vec<Run> = (0..8)
            .map(|n| start(n, &bases[n], &dir.path().join(format!("round-{round}"))))
            .collect();
        for run in runs {
            let out = run.child.wait_with_output().unwrap();
            let (stdout, stderr) = texts(&out);
            let n = run.n;
            assert!(
                out.status.success(),
                "run {n} failed\nstdout: {stdout}\nstderr: {stderr}"
            );
            let events: Vec<Value> = stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let of = |reason: &str| -> Vec<&Value> {
                events.iter().filter(|e| e["reason"] == reason).collect()
            };
            match run.kind {
                Kind::Image(out) => {
                    let image = &of("image")[0]["image"];
                    let layout = Layout::open(&out).unwrap();
                    let manifest = layout.single_manifest().unwrap();
                    let config: Value =
                        serde_json::from_slice(&layout.read_blob(&manifest.config.digest).unwrap())
                            .unwrap();
                    assert_eq!(
                        base_of(&config),
                        n.to_string(),
                        "run {n} copied another's image"
                    );
                    assert_eq!(image["config_digest"], manifest.config.digest.as_str());
                    // Every blob of the copy is whole.
                    for layer in &manifest.layers {
                        layout.open_blob(&layer.digest).unwrap().verify().unwrap();
                    }
                }
                Kind::Test => {
                    let invocation = &of("invocation")[0]["invocation"];
                    assert_eq!(invocation["status"], 200, "{stdout}\n{stderr}");
                    assert_eq!(invocation["response"]["run"], n, "{stdout}");
                }
                Kind::Push => {
                    let reference = of("pushed")[0]["image"]["image_uri"].as_str().unwrap();
                    assert_eq!(
                        base_of(&registry_config(reference)),
                        n.to_string(),
                        "run {n} pushed another's image"
                    );
                }
            }
        }
    }
}
