//! The state every section shares: [`Bench`], with its paths and settings,
//! made once by [`Bench::prepare`], and the commands of the tool it runs.

use std::{
    cell::{Cell, OnceCell},
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{
    docker::make_base,
    helpers::{copy_dir, read, write},
    net::CountingProxy,
    stats::median,
    Options,
};
use crate::{cmd, project_root, Result};

/// The registry the test services run.
pub(super) const REGISTRY: &str = "127.0.0.1:5000";
/// The target triple every measurement builds for.
pub(super) const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// Paths and settings shared by every section.
pub(super) struct Bench {
    pub(super) runs: usize,
    /// The release binary of cargo-lambda-image.
    pub(super) tool: PathBuf,
    /// `<target dir>/xtask-bench`.
    pub(super) work: PathBuf,
    /// The cargo target directory of the bench workspaces.
    pub(super) target: PathBuf,
    /// The copy of `tests/fixtures/workspace`.
    pub(super) fixture: PathBuf,
    /// The busybox base as an OCI layout, as `oci:DIR:latest`; `None` when it
    /// could not be made, with the reason.
    pub(super) base: std::result::Result<String, String>,
    /// Whether `DOCKER_BASE` exists in Docker, or why not.
    pub(super) docker_base: std::result::Result<(), String>,
    /// Makes repository names unique across bench invocations.
    pub(super) stamp: u64,
    /// `--quick`: one run of each slow big-image step.
    pub(super) quick: bool,
    /// The layer, blob and location cache every command uses unless a row
    /// needs a fresh one (`CARGO_LAMBDA_IMAGE_CACHE_DIR`); emptied by `prepare`.
    pub(super) cache: PathBuf,
    /// Numbers the fresh cache directories.
    pub(super) fresh: Cell<u64>,
    /// AWS's RIE, once looked for (or downloaded), or why it is missing.
    pub(super) rie: OnceCell<std::result::Result<PathBuf, String>>,
    /// The byte-counting proxy to the registry, one for the whole run: the
    /// tools remember where blobs are per registry address, as they would
    /// for a real registry.
    pub(super) proxy: OnceCell<CountingProxy>,
}

impl Bench {
    /// Builds the tool, copies the fixture, compiles it once and makes the base image.
    pub(super) fn prepare(options: &Options) -> Result<Bench> {
        let root = project_root();
        let target_dir =
            env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        cmd::run(
            Command::new("cargo")
                .args(["build", "--release", "--quiet"])
                .current_dir(&root),
        )?;
        let tool = target_dir.join("release/cargo-lambda-image");
        let work = target_dir.join("xtask-bench");
        let fixture = work.join("fixture");
        let _ = fs::remove_dir_all(&fixture);
        copy_dir(
            &root.join("tests/fixtures/workspace"),
            &fixture,
            &["target"],
        )?;
        optimized_like_users(&fixture.join("Cargo.toml"))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (base, docker_base) = make_base(&work);
        let cache = work.join("cache");
        let _ = fs::remove_dir_all(&cache);
        fs::create_dir_all(&cache)
            .map_err(|err| format!("failed to create {}: {err}", cache.display()))?;
        let bench = Bench {
            runs: options.runs,
            tool,
            target: work.join("target"),
            fixture,
            work,
            base,
            docker_base,
            stamp,
            quick: options.quick,
            cache,
            fresh: Cell::new(0),
            rie: OnceCell::new(),
            proxy: OnceCell::new(),
        };
        say!("bench: compiling the fixture workspace once");
        read(
            bench
                .tool(&["build", "--workspace"])
                .arg("--manifest-path")
                .arg(bench.manifest()),
        )?;
        Ok(bench)
    }

    /// A `cargo-lambda-image` command for x86_64 with the bench's environment.
    pub(super) fn tool(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.tool);
        command.args(args).args(["--arch", "x86_64", "--quiet"]);
        self.bench_env(&mut command);
        command
    }

    /// Points `command` at the bench target directory and cache, offline.
    pub(super) fn bench_env(&self, command: &mut Command) {
        command
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", &self.cache)
            .env("CARGO_NET_OFFLINE", "true")
            .env("CARGO_TERM_COLOR", "never");
    }

    pub(super) fn manifest(&self) -> PathBuf {
        self.fixture.join("Cargo.toml")
    }

    /// The compiled bootstrap of `function`.
    pub(super) fn bootstrap(&self, function: &str) -> PathBuf {
        self.target
            .join("lambda-image")
            .join(function)
            .join("x86_64/bootstrap")
    }

    /// The OCI layout `image` writes for `function`.
    pub(super) fn layout(&self, function: &str) -> PathBuf {
        self.target
            .join("lambda-image")
            .join(function)
            .join("x86_64/oci")
    }

    /// The counting proxy, started on first use.
    pub(super) fn proxy(&self) -> Result<&CountingProxy> {
        if let Some(proxy) = self.proxy.get() {
            return Ok(proxy);
        }
        let proxy = CountingProxy::start(REGISTRY)?;
        Ok(self.proxy.get_or_init(|| proxy))
    }

    pub(super) fn base(&self) -> Result<&str> {
        self.base
            .as_deref()
            .map_err(|why| format!("no base image: {why}").into())
    }

    /// The median of `self.runs` durations measured by `step`.
    pub(super) fn median(
        &self,
        mut step: impl FnMut(usize) -> Result<Duration>,
    ) -> Result<Duration> {
        let mut samples = Vec::with_capacity(self.runs);
        for run in 0..self.runs {
            cmd::check_interrupted()?;
            samples.push(step(run)?);
        }
        Ok(median(&mut samples))
    }
}

/// The line of the fixture's manifest that compiles it unoptimized for the tests.
const TESTS_OPT_LEVEL: &str = "opt-level = 0\n";

/// Removes the fixture's unoptimized release profile (a saving for the tests) from the bench's
/// copy, so every row measures the optimized build users make.
fn optimized_like_users(manifest: &Path) -> Result<()> {
    let text = fs::read_to_string(manifest)
        .map_err(|err| format!("failed to read {}: {err}", manifest.display()))?;
    if !text.contains(TESTS_OPT_LEVEL) {
        return Err(format!(
            "{} has no `{}` line to remove: update xtask's bench with the fixture",
            manifest.display(),
            TESTS_OPT_LEVEL.trim_end()
        )
        .into());
    }
    write(manifest, text.replacen(TESTS_OPT_LEVEL, "", 1).as_bytes())
}
