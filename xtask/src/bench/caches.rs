//! Cache directories for timed runs, and the layer-cache section: `image`
//! with nothing changed against cargo's own no-op.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{
    helpers::{file_size, read, timed},
    report::{info_row, Row},
    setup::{Bench, TRIPLE},
    stats::{ms, yes_no},
};
use crate::Result;

/// An empty `CARGO_LAMBDA_IMAGE_CACHE_DIR` for one run, removed when dropped
/// (after the timed command, so the removal is not timed).
pub(super) struct FreshCache {
    dir: PathBuf,
}

impl FreshCache {
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for FreshCache {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Bench {
    /// A new, empty cache directory under the bench directory (on the same
    /// file system as the layouts, as the user's cache usually is).
    pub(super) fn fresh_cache(&self) -> Result<FreshCache> {
        let number = self.fresh.get();
        self.fresh.set(number + 1);
        let dir = self.work.join("fresh-caches").join(number.to_string());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
        Ok(FreshCache { dir })
    }

    /// Times `command` with a fresh, empty cache: every layer it makes is
    /// really compressed.
    pub(super) fn timed_fresh(&self, command: &mut Command) -> Result<Duration> {
        let cache = self.fresh_cache()?;
        command.env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache.path());
        timed(command)
    }

    /// A `cargo` command on the workspace of `manifest`, in the bench's
    /// target directory.
    pub(super) fn cargo(&self, manifest: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("cargo");
        command.args(args).arg("--manifest-path").arg(manifest);
        self.bench_env(&mut command);
        command
    }

    /// `image` with nothing changed (bootstrap built, layer cached) against
    /// `cargo build` finding everything up to date.
    pub(super) fn layer_cache(&self) -> Result<Vec<Row>> {
        let pad = self.pad_workspace()?;
        let manifest = pad.join("Cargo.toml");
        let base = self.base().unwrap_or("scratch").to_owned();
        let mut rows = Vec::new();
        for bin in ["pad5", "pad50"] {
            // Compiles if needed and puts the layer in the bench's cache; the second run is
            // the one that remembers the hash of the bootstrap the first one installed (a
            // file is remembered once it is 100 ms old), as any later `image` would find it.
            read(&mut self.pad_image(&pad, bin, &base, false))?;
            std::thread::sleep(std::time::Duration::from_millis(150));
            read(&mut self.pad_image(&pad, bin, &base, false))?;
            let label = format!(
                "{:.1} MB",
                file_size(&self.bootstrap(bin))? as f64 / 1_048_576.0
            );
            let warm = self.median(|_| timed(&mut self.pad_image(&pad, bin, &base, false)))?;
            let warm_no_build =
                self.median(|_| timed(&mut self.pad_image(&pad, bin, &base, true)))?;
            let cargo_noop = self.median(|_| {
                timed(&mut self.cargo(
                    &manifest,
                    &[
                        "build",
                        "--quiet",
                        "--release",
                        "--target",
                        TRIPLE,
                        "-p",
                        "pad",
                        "--bin",
                        bin,
                    ],
                ))
            })?;
            let over = warm.as_secs_f64() * 1000.0 - cargo_noop.as_secs_f64() * 1000.0;
            rows.push(Row {
                what: format!(
                    "layer cache: `image` with nothing changed, {label} bootstrap (cached layer, \
                     cargo up to date) vs the cargo no-op alone (`cargo build --release --target {TRIPLE}`)"
                ),
                ours: ms(warm),
                theirs: ms(cargo_noop),
                ratio: format!("{over:+.0} ms"),
                target: "cargo no-op + ≤ 30 ms".into(),
                met: yes_no(warm <= cargo_noop + Duration::from_millis(30)),
            });
            rows.push(info_row(
                &format!("  `image --no-build` with the layer cached, {label}"),
                ms(warm_no_build),
            ));
        }
        Ok(rows)
    }
}
