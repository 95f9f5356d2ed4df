//! Six functions on one shared base, pushed to six new repositories in one
//! `push` against six `docker push`es of the same images: bytes sent (the
//! base should go up once, then be mounted) and time.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{
    docker::{busybox_tarball, docker_build, docker_context_from, oci_base},
    events::event_lines,
    helpers::{read, write},
    layout,
    net::CountingProxy,
    report::{info_row, Row},
    setup::{Bench, REGISTRY},
    stats::{kib, median, ms, yes_no},
};
use crate::{cmd, Result};

/// How many functions share the base.
const FUNCTIONS: usize = 6;

/// One run of either side: time, bytes sent, and how the layers went.
struct SharedRun {
    time: Duration,
    bytes: u64,
    /// Ours: how often the base layer was uploaded, mounted, found. Docker:
    /// how many layers were pushed, mounted, found (`docker push` output).
    counts: [usize; 3],
}

impl Bench {
    /// `push --no-build --workspace` of six functions vs six `docker push`.
    pub(super) fn shared_base(&self) -> Result<Vec<Row>> {
        self.docker_base.clone()?;
        let workspace = self.shared_workspace()?;
        let proxy = self.proxy()?;
        let (mut ours, mut docker) = (Vec::new(), Vec::new());
        for run in 0..self.runs {
            cmd::check_interrupted()?;
            let name = format!("{}-{run}", self.stamp);
            let dir = self.work.join("shared-base").join(&name);
            let docker_tag = format!("xtask-bench-shared-base:{name}");
            let base = self.unique_base(&dir, &docker_tag, &name)?;
            self.write_shared_manifest(&workspace, &name)?;
            ours.push(self.push_shared(&workspace, &base, proxy)?);
            let result = self.docker_push_shared(&dir, &docker_tag, &name, proxy);
            let _ = read(Command::new("docker").args(["rmi", "--force", &docker_tag]));
            let _ = fs::remove_dir_all(&dir);
            docker.push(result.map_err(|err| format!("docker failed: {err}")));
        }
        let docker: std::result::Result<Vec<SharedRun>, String> = docker.into_iter().collect();
        Ok(shared_rows(&mut ours, docker))
    }

    /// A busybox base with a layer of its own (no tool has seen it before):
    /// in Docker as `docker_tag`, and as an OCI layout; returns `oci:DIR:latest`.
    fn unique_base(&self, dir: &Path, docker_tag: &str, stamp: &str) -> Result<String> {
        let tarball = dir.join("rootfs.tar");
        fs::create_dir_all(dir)
            .map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
        busybox_tarball(&dir.join("rootfs"), &tarball, Some(stamp))?;
        read(
            Command::new("docker")
                .arg("import")
                .arg(&tarball)
                .arg(docker_tag),
        )?;
        Ok(oci_base(dir, docker_tag, &dir.join("oci"))?)
    }

    /// One `push --no-build --workspace` from a cache that has the layers
    /// (an untimed `image` made them) but knows of no repository.
    fn push_shared(
        &self,
        workspace: &Path,
        base: &str,
        proxy: &CountingProxy,
    ) -> Result<SharedRun> {
        let cache = self.fresh_cache()?;
        let command = |args: &[&str]| {
            let mut command = self.tool(args);
            command
                .args(["--no-build", "--workspace", "--base-image", base])
                .arg("--manifest-path")
                .arg(workspace.join("Cargo.toml"))
                .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache.path())
                .env(
                    "CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES",
                    format!("{REGISTRY},{}", proxy.address),
                );
            command
        };
        read(&mut command(&["image", "--no-check"]))?;
        let base_layer = base
            .strip_prefix("oci:")
            .and_then(|rest| rest.strip_suffix(":latest"))
            .map(PathBuf::from)
            .ok_or("the base is not an OCI layout")
            .and_then(|dir| layout::layer_digests(&dir).map_err(|_| "unreadable base"))?;
        let mut push = command(&["push", "--message-format", "json"]);
        push.args(["--registry", &proxy.address]);
        proxy.reset();
        let started = Instant::now();
        let stdout = read(&mut push)?;
        let (time, bytes) = (started.elapsed(), proxy.bytes());
        let mut counts = [0; 3];
        let pushed = event_lines(&stdout, "pushed");
        if pushed.len() != FUNCTIONS {
            return Err(format!("{} of {FUNCTIONS} images pushed", pushed.len()).into());
        }
        for image in pushed.iter().filter_map(|event| event.get("image")) {
            for (count, field) in counts.iter_mut().zip(["uploaded", "mounted", "existing"]) {
                let digests = image.get(field).and_then(Value::as_array);
                *count += digests.map_or(0, |digests| {
                    digests
                        .iter()
                        .filter(|d| base_layer.iter().any(|b| d.as_str() == Some(b)))
                        .count()
                });
            }
        }
        Ok(SharedRun {
            time,
            bytes,
            counts,
        })
    }

    /// Builds the six images with `docker build` on `docker_base` (untimed),
    /// then times six `docker push`es in a row.
    fn docker_push_shared(
        &self,
        dir: &Path,
        docker_base: &str,
        name: &str,
        proxy: &CountingProxy,
    ) -> Result<SharedRun> {
        let mut references = Vec::new();
        for n in 1..=FUNCTIONS {
            let context = dir.join(format!("docker-{n}"));
            let bootstrap = self.bootstrap(&function_name(n));
            docker_context_from(&context, &bootstrap, docker_base)?;
            let reference = format!("{}/{}-docker:bench", proxy.address, repository(name, n));
            read(&mut docker_build(&context, &reference))?;
            references.push(reference);
        }
        proxy.reset();
        let started = Instant::now();
        let mut outputs = Vec::new();
        let mut failure = None;
        for reference in &references {
            match read(Command::new("docker").args(["push", reference])) {
                Ok(out) => outputs.push(out),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        let (time, bytes) = (started.elapsed(), proxy.bytes());
        for reference in &references {
            let _ = read(Command::new("docker").args(["rmi", "--force", reference]));
        }
        if let Some(err) = failure {
            return Err(err);
        }
        let output = outputs.concat();
        let count = |what: &str| output.lines().filter(|l| l.contains(what)).count();
        Ok(SharedRun {
            time,
            bytes,
            counts: [
                count(": Pushed"),
                count(": Mounted from"),
                count(": Layer already exists"),
            ],
        })
    }

    /// A package with six small std-only binaries, each a function of its own;
    /// compiled once.
    fn shared_workspace(&self) -> Result<PathBuf> {
        let dir = self.work.join("shared");
        let src = dir.join("src");
        fs::create_dir_all(&src)
            .map_err(|err| format!("failed to create {}: {err}", src.display()))?;
        for n in 1..=FUNCTIONS {
            let main = format!(
                "//! Generated by `cargo xtask bench`: function {n} of {FUNCTIONS} on a shared base.\n\
                 fn main() {{\n    println!(\"{{}}\", std::hint::black_box(\"function {n}\"));\n}}\n"
            );
            write(&src.join(format!("f{n}.rs")), main.as_bytes())?;
        }
        self.write_shared_manifest(&dir, "build")?;
        read(
            self.tool(&["build", "--workspace"])
                .arg("--manifest-path")
                .arg(dir.join("Cargo.toml")),
        )?;
        Ok(dir)
    }

    /// The manifest, with repositories named after `name` (new per run).
    fn write_shared_manifest(&self, dir: &Path, name: &str) -> Result<()> {
        let mut manifest = String::from(
            "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [profile.release]\nstrip = true\n\n[workspace]\n\n[package.metadata.lambda]\n",
        );
        for n in 1..=FUNCTIONS {
            manifest.push_str(&format!(
                "\n[[bin]]\nname = \"f{n}\"\npath = \"src/f{n}.rs\"\n\n\
                 [package.metadata.lambda.bin.f{n}]\nfunction-name = \"{}\"\n\n\
                 [package.metadata.lambda.bin.f{n}.image]\nrepository = \"{}\"\ntag = \"bench\"\n",
                function_name(n),
                repository(name, n)
            ));
        }
        write(&dir.join("Cargo.toml"), manifest.as_bytes())
    }
}

fn function_name(n: usize) -> String {
    format!("xtask-bench-shared-{n}")
}

fn repository(name: &str, n: usize) -> String {
    format!("xtask-bench-{name}-shared-{n}")
}

/// The time and bytes row, and how the base layer went.
fn shared_rows(
    ours: &mut [SharedRun],
    docker: std::result::Result<Vec<SharedRun>, String>,
) -> Vec<Row> {
    let medians = |runs: &mut [SharedRun]| {
        let mut times: Vec<Duration> = runs.iter().map(|r| r.time).collect();
        let mut bytes: Vec<u64> = runs.iter().map(|r| r.bytes).collect();
        (median(&mut times), median(&mut bytes))
    };
    let (our_time, our_bytes) = medians(ours);
    let theirs = docker.map(|mut runs| (medians(&mut runs), runs.last().map(|r| r.counts)));
    let what = format!(
        "shared base: {FUNCTIONS} functions on one busybox base, `push --no-build --workspace` to {FUNCTIONS} new repositories vs {FUNCTIONS}× `docker push` in a row; time · bytes sent"
    );
    let mut rows = vec![match &theirs {
        Ok(((time, bytes), _)) => Row {
            what,
            ours: format!("{} · {}", ms(our_time), kib(our_bytes)),
            theirs: format!("{} · {}", ms(*time), kib(*bytes)),
            ratio: format!(
                "{:.2}× docker's bytes; {:.1}× faster",
                our_bytes as f64 / *bytes as f64,
                time.as_secs_f64() / our_time.as_secs_f64()
            ),
            target: "no more bytes than docker push".into(),
            met: yes_no(our_bytes <= *bytes),
        },
        Err(why) => Row {
            what,
            ours: format!("{} · {}", ms(our_time), kib(our_bytes)),
            theirs: why.clone(),
            ratio: "—".into(),
            target: "no more bytes than docker push".into(),
            met: "—".into(),
        },
    }];
    let per_run: Vec<String> = ours
        .iter()
        .map(|r| {
            let [up, mounted, existing] = r.counts;
            format!("uploaded {up}×, mounted {mounted}×, found {existing}×")
        })
        .collect();
    let mut row = info_row(
        "  shared base: the base layer in our pushes (per run), and docker's layers (last run)",
        per_run.join("; "),
    );
    if let Ok((_, Some([pushed, mounted, existing]))) = theirs {
        row.theirs = format!("{pushed} layers pushed, {mounted} mounted, {existing} found");
    }
    rows.push(row);
    rows
}
