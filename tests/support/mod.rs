//! Helpers shared by the integration tests: running the CLI, temporary workspaces and a
//! minimal Runtime API to prove compiled functions really execute.

#![allow(dead_code)]

pub mod aws_recorder;
pub mod http;
pub mod images;
pub mod moto;
pub mod proxy;
pub mod runner_images;
pub mod runtime_api;
pub mod serving;
pub mod tls_registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixture workspace checked into the repository.
pub fn fixture_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workspace")
}

/// A target directory for fixture builds, kept between runs (under cargo's target dir) so
/// that a second test run compiles nothing. `name` separates builds whose artifacts would
/// otherwise collide. Both fixture workspaces build their static musl functions in "musl":
/// their dependencies are the same crates with the same features, compiled once for both.
pub fn fixture_target_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fixture-target-{name}"))
}

/// A `cargo-lambda-image` command with a clean configuration environment.
pub fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-lambda-image"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_LAMBDA_IMAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Runs a command, returning its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the command starts")
}

/// stdout and stderr of an output, as text, for assertions and failure messages.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Parses stdout as JSON lines.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// A throwaway workspace with one package `func` (one binary `func`, plus the extra binaries
/// named) and the given metadata tables appended to its manifest.
pub struct TempWorkspace {
    pub dir: tempfile::TempDir,
}

impl TempWorkspace {
    pub fn new(
        package_toml_extra: &str,
        workspace_toml: &str,
        extra_bins: &[&str],
    ) -> TempWorkspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(
            root.join("Cargo.toml"),
            format!("[workspace]\nmembers = [\"func\"]\nresolver = \"2\"\n{workspace_toml}\n"),
        )
        .expect("write workspace manifest");
        std::fs::create_dir_all(root.join("func/src/bin")).expect("mkdir");
        let mut bins = String::new();
        for bin in extra_bins {
            std::fs::write(
                root.join(format!("func/src/bin/{bin}.rs")),
                "fn main() {}\n",
            )
            .expect("write bin");
            bins.push_str(&format!(
                "[[bin]]\nname = \"{bin}\"\npath = \"src/bin/{bin}.rs\"\n"
            ));
        }
        std::fs::write(root.join("func/src/main.rs"), "fn main() {}\n").expect("write main");
        std::fs::write(
            root.join("func/Cargo.toml"),
            format!(
                "[package]\nname = \"func\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"func\"\npath = \"src/main.rs\"\n{bins}\n[dependencies]\n\n{package_toml_extra}\n"
            ),
        )
        .expect("write package manifest");
        TempWorkspace { dir }
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("Cargo.toml")
    }

    pub fn package_manifest(&self) -> PathBuf {
        self.dir.path().join("func/Cargo.toml")
    }

    /// `build --dry-run` on this workspace with extra arguments.
    pub fn dry_run(&self, args: &[&str]) -> Output {
        let mut cmd = cli();
        cmd.arg("build")
            .arg("--dry-run")
            .arg("--manifest-path")
            .arg(self.manifest())
            .args(args);
        run(&mut cmd)
    }
}

/// Writes `dir/config.json`, a Docker config with a login for `registry`, and returns the
/// base64 `user:password` it holds (a secret tests check is never printed).
pub fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    std::fs::create_dir_all(dir).expect("mkdir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .expect("write the docker config");
    auth
}

/// Runs a shell script in `dir`, failing the test with its stderr when it fails.
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A variable `cargo xtask ci` sets for the services it starts; a clear failure without it.
pub fn service_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the tests with `cargo xtask ci` (or `cargo xtask services` and its exports)"))
}

/// `len` bytes that do not compress (xorshift64 from `seed`): the same bytes for the same
/// seed, so a test's layers are reproducible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A name no earlier run used, for registry repositories and functions.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// What the Docker engine says about an image (`docker image inspect --format FORMAT`),
/// through the Docker CLI, a third party.
pub fn docker_inspect(image: &str, format: &str) -> String {
    let out = run(Command::new("docker").args(["image", "inspect", "--format", format, image]));
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "docker image inspect {image}: {stderr}"
    );
    stdout.trim().to_string()
}

/// The JSON events of one `reason`.
pub fn events_of<'a>(events: &'a [serde_json::Value], reason: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["reason"] == reason).collect()
}
