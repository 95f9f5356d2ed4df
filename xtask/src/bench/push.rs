//! Pushing: `push` against `docker push` and `skopeo copy`, to a new
//! repository and again after a binary-only change, timed and with the bytes
//! sent counted by the proxy.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use super::{
    docker::{docker_build, docker_context},
    events::last_layer_size,
    helpers::{copy_dir, read, timed, write},
    net::CountingProxy,
    report::Row,
    setup::{Bench, REGISTRY},
    stats::{kib, median, met, ms, speedup, yes_no},
};
use crate::{cmd, project_root, Result};

/// Time and bytes of a first push and of a re-push after a binary change.
#[derive(Default)]
struct PushSamples {
    first: Vec<Duration>,
    first_bytes: Vec<u64>,
    again: Vec<Duration>,
    again_bytes: Vec<u64>,
}

impl PushSamples {
    fn add(&mut self, again: bool, (time, bytes): (Duration, u64)) {
        if again {
            self.again.push(time);
            self.again_bytes.push(bytes);
        } else {
            self.first.push(time);
            self.first_bytes.push(bytes);
        }
    }

    /// Median time and bytes.
    fn medians(&mut self, again: bool) -> (Duration, u64) {
        if again {
            (median(&mut self.again), median(&mut self.again_bytes))
        } else {
            (median(&mut self.first), median(&mut self.first_bytes))
        }
    }
}

impl Bench {
    /// `push` vs `docker push` and `skopeo copy`, through a byte-counting proxy.
    pub(super) fn push(&self) -> Result<Vec<Row>> {
        let base = self.base()?.to_owned();
        let proxy = self.proxy()?;
        let mut ours = PushSamples::default();
        let mut docker: std::result::Result<PushSamples, String> =
            self.docker_base.clone().map(|()| PushSamples::default());
        let mut skopeo: std::result::Result<PushSamples, String> = Ok(PushSamples::default());
        let mut changed_layers = Vec::new();
        for run in 0..self.runs {
            cmd::check_interrupted()?;
            let dir = self.work.join(format!("push/{run}"));
            let _ = fs::remove_dir_all(&dir);
            let repository = format!("xtask-bench-{}-{run}", self.stamp);
            for (revision, again) in [("a", false), ("b", true)] {
                self.set_echo_revision(&repository, &format!("{}-{run}-{revision}", self.stamp))?;
                read(
                    self.tool(&["build", "-p", "echo"])
                        .arg("--manifest-path")
                        .arg(self.manifest()),
                )?;
                let (sample, changed) = self.push_ours(proxy, &base)?;
                ours.add(again, sample);
                if again {
                    changed_layers.push(changed);
                }
                let saved = dir.join(revision);
                copy_dir(&self.layout("fixture-echo"), &saved.join("oci"), &[])?;
                let bootstrap = saved.join("bootstrap");
                fs::copy(self.bootstrap("fixture-echo"), &bootstrap)
                    .map_err(|err| format!("failed to copy to {}: {err}", bootstrap.display()))?;
                if let Ok(samples) = &mut docker {
                    let reference = format!("{}/{repository}-docker:{revision}", proxy.address);
                    match self.push_docker(proxy, &saved, &reference) {
                        Ok(sample) => samples.add(again, sample),
                        Err(err) => docker = Err(format!("docker failed: {err}")),
                    }
                }
                if let Ok(samples) = &mut skopeo {
                    let reference = format!("{}/{repository}-skopeo:{revision}", proxy.address);
                    match push_skopeo(proxy, &saved.join("oci"), &reference) {
                        Ok(sample) => samples.add(again, sample),
                        Err(err) => skopeo = Err(format!("skopeo failed: {err}")),
                    }
                }
            }
        }
        let changed = median(&mut changed_layers);
        let mut rows = Vec::new();
        for again in [false, true] {
            rows.extend(push_rows(
                again,
                &mut ours,
                &mut docker,
                &mut skopeo,
                changed,
            ));
        }
        Ok(rows)
    }

    /// Gives the copy's echo a unique repository and a binary that differs
    /// from every earlier one.
    fn set_echo_revision(&self, repository: &str, revision: &str) -> Result<()> {
        let original = project_root().join("tests/fixtures/workspace/crates/echo");
        let copy = self.fixture.join("crates/echo");
        let manifest = fs::read_to_string(original.join("Cargo.toml"))
            .map_err(|err| format!("failed to read the echo manifest: {err}"))?;
        let manifest = format!(
            "{manifest}\n[package.metadata.lambda.image]\nrepository = \"{repository}\"\ntag = \"bench\"\n"
        );
        write(&copy.join("Cargo.toml"), manifest.as_bytes())?;
        let main = fs::read_to_string(original.join("src/main.rs"))
            .map_err(|err| format!("failed to read the echo source: {err}"))?;
        let main = main.replace(
            "async fn main() -> Result<(), Error> {",
            &format!(
                "async fn main() -> Result<(), Error> {{\n    std::hint::black_box(\"{revision}\");"
            ),
        );
        write(&copy.join("src/main.rs"), main.as_bytes())
    }

    /// One timed `push`; returns (time, bytes sent) and the size of the
    /// image's own layer.
    fn push_ours(&self, proxy: &CountingProxy, base: &str) -> Result<((Duration, u64), u64)> {
        let mut push = self.tool(&["push", "--message-format", "json", "-p", "echo"]);
        push.arg("--manifest-path")
            .arg(self.manifest())
            .args(["--base-image", base, "--registry", &proxy.address])
            .env(
                "CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES",
                format!("{REGISTRY},{}", proxy.address),
            );
        proxy.reset();
        let started = Instant::now();
        let stdout = read(&mut push)?;
        let elapsed = started.elapsed();
        let bytes = proxy.bytes();
        let layer = last_layer_size(&stdout)?;
        Ok(((elapsed, bytes), layer))
    }

    /// `docker build` (not timed), then a timed `docker push` of `reference`.
    fn push_docker(
        &self,
        proxy: &CountingProxy,
        saved: &Path,
        reference: &str,
    ) -> Result<(Duration, u64)> {
        let context = saved.join("docker-context");
        docker_context(&context, &saved.join("bootstrap"))?;
        read(&mut docker_build(&context, reference))?;
        proxy.reset();
        let started = Instant::now();
        let pushed = read(Command::new("docker").args(["push", "--quiet", reference]));
        let sample = (started.elapsed(), proxy.bytes());
        let _ = read(Command::new("docker").args(["rmi", "--force", reference]));
        pushed.map(|_| sample)
    }
}

/// A timed `skopeo copy` of an OCI layout to `reference`.
pub(super) fn push_skopeo(
    proxy: &CountingProxy,
    layout: &Path,
    reference: &str,
) -> Result<(Duration, u64)> {
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{reference}"));
    proxy.reset();
    let elapsed = timed(&mut copy)?;
    Ok((elapsed, proxy.bytes()))
}

/// The rows of a first push (`again == false`) or a re-push.
fn push_rows(
    again: bool,
    ours: &mut PushSamples,
    docker: &mut std::result::Result<PushSamples, String>,
    skopeo: &mut std::result::Result<PushSamples, String>,
    changed_layer: u64,
) -> Vec<Row> {
    let (our_time, our_bytes) = ours.medians(again);
    let ours_shown = format!("{} · {}", ms(our_time), kib(our_bytes));
    let kind = if again {
        "re-push after a binary-only change"
    } else {
        "first push to a new repository"
    };
    let mut rows = Vec::new();
    for (tool, theirs) in [("docker push", docker), ("skopeo copy", skopeo)] {
        let theirs = match theirs {
            Ok(samples) => Ok(samples.medians(again)),
            Err(why) => Err(why.clone()),
        };
        let their_time = theirs.as_ref().map(|(time, _)| *time).map_err(Clone::clone);
        rows.push(Row {
            what: format!("push: {kind} (`push` incl. assembly vs `{tool}`); time · bytes sent"),
            ours: ours_shown.clone(),
            theirs: match &theirs {
                Ok((time, bytes)) => format!("{} · {}", ms(*time), kib(*bytes)),
                Err(why) => why.clone(),
            },
            ratio: speedup(&Ok(our_time), &their_time),
            target: if tool == "docker push" {
                "≥ 2× faster than docker push".into()
            } else {
                "—".into()
            },
            met: if tool == "docker push" {
                met(&Ok(our_time), &their_time, |o, t| t >= 2.0 * o)
            } else {
                "—".into()
            },
        });
    }
    if again {
        let limit = changed_layer + 8 * 1024;
        rows.push(Row {
            what: "push: bytes sent on re-push vs the changed layer".into(),
            ours: kib(our_bytes),
            theirs: format!("changed layer {}", kib(changed_layer)),
            ratio: format!(
                "{:+.1} KiB",
                (our_bytes as f64 - changed_layer as f64) / 1024.0
            ),
            target: "≤ changed layer + 8 KiB".into(),
            met: yes_no(our_bytes <= limit),
        });
    }
    rows
}
