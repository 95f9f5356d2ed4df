//! Image assembly: `image --no-build` against `docker build --no-cache` of
//! the same files for a 5 MB and a 50 MB incompressible bootstrap, the
//! layer's size against `gzip -6`, and the parts of the time.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{
    docker::{docker_build, docker_context},
    helpers::{file_size, read, timed, write},
    layout,
    report::{info_row, Row},
    setup::Bench,
    stats::{kib, met, ms, show, speedup, yes_no},
};
use crate::Result;

/// The medians of the assembly measurements of one bootstrap.
struct Assembly {
    /// The bootstrap's size, as "5.0 MB".
    label: String,
    /// `image --no-build` on the busybox base, from a fresh cache.
    ours: std::result::Result<Duration, String>,
    /// `docker build --no-cache` of the same files.
    theirs: std::result::Result<Duration, String>,
    /// `image` (cargo's no-op included) on the busybox base, from a fresh cache.
    with_cargo: std::result::Result<Duration, String>,
    /// `build` with cargo up to date.
    noop: Duration,
    /// `image --no-build --base-image scratch`, from a fresh cache.
    scratch: Duration,
    /// The bootstrap layer's size and `gzip -6` of the same tar, in bytes.
    sizes: std::result::Result<(u64, u64), String>,
}

impl Bench {
    /// `image` vs `docker build` for a 5 MB and a 50 MB bootstrap.
    pub(super) fn assembly(&self) -> Result<Vec<Row>> {
        let pad = self.pad_workspace()?;
        let mut rows = Vec::new();
        for (bin, megabytes) in [("pad5", 5), ("pad50", 50)] {
            let measured = self.measure_assembly(&pad, bin)?;
            rows.extend(assembly_rows(&measured, megabytes));
        }
        Ok(rows)
    }

    /// `image --no-check` of the pad workspace's `bin` on `base`.
    pub(super) fn pad_image(&self, pad: &Path, bin: &str, base: &str, no_build: bool) -> Command {
        let mut command = self.tool(&["image", "--no-check", "-p", "pad", "--bin", bin]);
        command
            .arg("--manifest-path")
            .arg(pad.join("Cargo.toml"))
            .args(["--base-image", base]);
        if no_build {
            command.arg("--no-build");
        }
        command
    }

    /// Every timed run of a fresh assembly gets an empty cache directory, so
    /// that the layer is really compressed.
    fn measure_assembly(&self, pad: &Path, bin: &str) -> Result<Assembly> {
        // The first run compiles; every timed run finds cargo up to date.
        read(&mut self.pad_image(pad, bin, "scratch", false))?;
        let size = file_size(&self.bootstrap(bin))?;
        let noop = self.median(|_| {
            timed(
                self.tool(&["build", "-p", "pad", "--bin", bin])
                    .arg("--manifest-path")
                    .arg(pad.join("Cargo.toml")),
            )
        })?;
        let scratch =
            self.median(|_| self.timed_fresh(&mut self.pad_image(pad, bin, "scratch", true)))?;
        let on_base = |no_build: bool| -> std::result::Result<Duration, String> {
            let base = self.base().map_err(|err| err.to_string())?;
            self.median(|_| self.timed_fresh(&mut self.pad_image(pad, bin, base, no_build)))
                .map_err(|err| err.to_string())
        };
        // From an already-built bootstrap (`--no-build`), as `docker build` starts from one.
        let ours = on_base(true);
        // The last run's layout holds a layer compressed from scratch; the
        // bootstrap's layer is the same whatever the base.
        let sizes = layout::last_layer(&self.layout(bin))
            .and_then(|blob| Ok((file_size(&blob)?, layout::gzip6_size(&blob)?)))
            .map_err(|err| err.to_string());
        let with_cargo = on_base(false);
        let theirs = self.docker_build_median(&self.bootstrap(bin));
        Ok(Assembly {
            label: format!("{:.1} MB", size as f64 / 1_048_576.0),
            ours,
            theirs,
            with_cargo,
            noop,
            scratch,
            sizes,
        })
    }

    /// A workspace with two binaries padded with random bytes to about 5 and
    /// 50 MB, so that incompressible data dominates, as in a real big binary.
    pub(super) fn pad_workspace(&self) -> Result<PathBuf> {
        let dir = self.work.join("pad");
        let src = dir.join("src");
        fs::create_dir_all(&src)
            .map_err(|err| format!("failed to create {}: {err}", src.display()))?;
        let manifest = "\
[package]
name = \"pad\"
version = \"0.1.0\"
edition = \"2021\"
publish = false

[[bin]]
name = \"pad5\"
path = \"src/pad5.rs\"

[[bin]]
name = \"pad50\"
path = \"src/pad50.rs\"

[package.metadata.lambda]

[profile.release]
strip = true

[workspace]
";
        write(&dir.join("Cargo.toml"), manifest.as_bytes())?;
        for (name, megabytes) in [("pad5", 5u64), ("pad50", 50)] {
            // A std-only static binary is about 0.4 MB; the rest is padding.
            let padding = megabytes * 1_048_576 - 400 * 1024;
            let data = src.join(format!("{name}.bin"));
            if fs::metadata(&data).map(|m| m.len()).ok() != Some(padding) {
                write(&data, &random_bytes(padding as usize, megabytes))?;
            }
            let main = format!(
                "//! Generated by `cargo xtask bench`: a binary padded to about {megabytes} MB.\n\
                 static PAD: &[u8] = include_bytes!(\"{name}.bin\");\n\
                 fn main() {{\n    println!(\"{{}}\", std::hint::black_box(PAD).len());\n}}\n"
            );
            write(&src.join(format!("{name}.rs")), main.as_bytes())?;
        }
        Ok(dir)
    }

    /// The median of `docker build --no-cache` of the equivalent Dockerfile.
    fn docker_build_median(&self, bootstrap: &Path) -> std::result::Result<Duration, String> {
        self.docker_base.clone()?;
        let context = self.work.join("docker-context");
        let tag = format!("xtask-bench-build:{}", self.stamp);
        // Each image is removed after its (timed) build, so that no run
        // leaves an untagged image behind.
        let result = docker_context(&context, bootstrap).and_then(|()| {
            self.median(|_| {
                let time = timed(&mut docker_build(&context, &tag));
                let _ = read(Command::new("docker").args(["rmi", "--force", &tag]));
                time
            })
        });
        result.map_err(|err| format!("docker build failed: {err}"))
    }
}

/// The rows of one bootstrap size: against `docker build` (the first target,
/// and the per-size one), the absolute time, the layer's size against
/// `gzip -6`, and the parts.
fn assembly_rows(m: &Assembly, megabytes: u64) -> Vec<Row> {
    let label = &m.label;
    let against_docker = |what: String, target: &str, factor: f64| Row {
        what,
        ours: show(&m.ours),
        theirs: show(&m.theirs),
        ratio: speedup(&m.ours, &m.theirs),
        target: target.into(),
        met: met(&m.ours, &m.theirs, |o, t| t >= factor * o),
    };
    let what = format!("image assembly, {label} bootstrap, busybox base (`image --no-build` vs `docker build --no-cache`)");
    let again = format!("  the same medians, {label} bootstrap, against the issue's target");
    let mut rows = vec![against_docker(what, "≥ 20× faster", 20.0)];
    if megabytes == 5 {
        rows.push(against_docker(
            again,
            "5 MB bootstrap: ≥ 5× faster than `docker build --no-cache`",
            5.0,
        ));
        rows.push(Row {
            what: format!("image assembly, {label} bootstrap, absolute"),
            ours: show(&m.ours),
            theirs: "—".into(),
            ratio: "—".into(),
            target: "< 200 ms".into(),
            met: yes_no(
                m.ours
                    .as_ref()
                    .is_ok_and(|d| *d < Duration::from_millis(200)),
            ),
        });
    } else {
        rows.push(against_docker(
            again,
            "50 MB incompressible bootstrap: ≥ 3× faster",
            3.0,
        ));
    }
    rows.push(match &m.sizes {
        Ok((ours, gzip)) => Row {
            what: format!("layer size vs one-stream gzip level 6, {label} bootstrap layer (`gzip -6` of the same tar)"),
            ours: kib(*ours),
            theirs: kib(*gzip),
            ratio: format!("{:+.2}%", (*ours as f64 / *gzip as f64 - 1.0) * 100.0),
            target: "within 2%".into(),
            met: yes_no(*ours as f64 <= *gzip as f64 * 1.02),
        },
        Err(why) => Row::failed(&format!("layer size vs one-stream gzip level 6, {label}"), why),
    });
    rows.push(info_row(
        &format!("  `image` with the cargo no-op (no `--no-build`), fresh cache, {label}"),
        show(&m.with_cargo),
    ));
    rows.push(info_row(
        &format!("  of which: `build` no-op (cargo up to date), {label}"),
        ms(m.noop),
    ));
    rows.push(info_row(
        &format!("  `image --no-build --base-image scratch`, fresh cache, {label}"),
        ms(m.scratch),
    ));
    rows
}

/// `len` bytes from a xorshift generator: incompressible, and the same on
/// every run so that an existing file can be reused.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_reproducible_and_sized() {
        assert_eq!(random_bytes(13, 5), random_bytes(13, 5));
        assert_eq!(random_bytes(13, 5).len(), 13);
        assert_ne!(random_bytes(16, 5), random_bytes(16, 50));
    }
}
