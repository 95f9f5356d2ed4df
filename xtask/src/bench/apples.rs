//! Pushing an image that is already built, against `skopeo copy` of the very
//! same OCI layout: to a new repository, and again to the same one.

use std::time::Duration;

use super::{
    helpers::{read, timed, write},
    net::CountingProxy,
    push::push_skopeo,
    report::Row,
    setup::{Bench, REGISTRY},
    stats::{kib, median, ms, yes_no},
};
use crate::{cmd, project_root, Result};

/// Medians are taken over these, per kind of push.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    bytes: Vec<u64>,
}

impl Samples {
    fn add(&mut self, (time, bytes): (Duration, u64)) {
        self.times.push(time);
        self.bytes.push(bytes);
    }

    fn medians(&mut self) -> (Duration, u64) {
        (median(&mut self.times), median(&mut self.bytes))
    }
}

impl Bench {
    /// `push --no-build` vs `skopeo copy oci:LAYOUT docker://...`, new
    /// repository and re-push.
    pub(super) fn push_vs_skopeo(&self) -> Result<Vec<Row>> {
        let base = self.base()?.to_owned();
        let proxy = self.proxy()?;
        // Untimed: builds the bootstrap if needed and writes the layout.
        self.set_echo_repository(&format!("xtask-bench-{}-apples", self.stamp))?;
        read(&mut self.echo_command("image", &base, proxy))?;
        // [ours new, ours again, skopeo new, skopeo again]
        let mut samples: [Samples; 4] = Default::default();
        for run in 0..self.runs {
            cmd::check_interrupted()?;
            let repository = format!("xtask-bench-{}-{run}-apples", self.stamp);
            self.set_echo_repository(&repository)?;
            for sample in &mut samples[..2] {
                let mut push = self.echo_command("push", &base, proxy);
                push.arg("--no-build").args(["--registry", &proxy.address]);
                proxy.reset();
                let time = timed(&mut push)?;
                sample.add((time, proxy.bytes()));
            }
            let layout = self.layout("fixture-echo");
            let reference = format!("{}/{repository}-skopeo:bench", proxy.address);
            for sample in &mut samples[2..] {
                let copied = push_skopeo(proxy, &layout, &reference)
                    .map_err(|err| format!("skopeo copy failed: {err}"))?;
                sample.add(copied);
            }
        }
        let [mut new, mut again, mut skopeo_new, mut skopeo_again] = samples;
        Ok(vec![
            apples_row("to a new repository", new.medians(), skopeo_new.medians()),
            apples_row(
                "again, the same image to the same repository",
                again.medians(),
                skopeo_again.medians(),
            ),
        ])
    }

    /// `cargo-lambda-image COMMAND -p echo` on `base` for the registry behind `proxy`.
    fn echo_command(
        &self,
        command: &str,
        base: &str,
        proxy: &CountingProxy,
    ) -> std::process::Command {
        let mut cmd = self.tool(&[command, "-p", "echo"]);
        cmd.arg("--manifest-path")
            .arg(self.manifest())
            .args(["--base-image", base])
            .env(
                "CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES",
                format!("{REGISTRY},{}", proxy.address),
            );
        cmd
    }

    /// Gives the copy's echo the repository `repository`, leaving its source alone.
    fn set_echo_repository(&self, repository: &str) -> Result<()> {
        let original = project_root().join("tests/fixtures/workspace/crates/echo/Cargo.toml");
        let manifest = std::fs::read_to_string(&original)
            .map_err(|err| format!("failed to read {}: {err}", original.display()))?;
        let manifest = format!(
            "{manifest}\n[package.metadata.lambda.image]\nrepository = \"{repository}\"\ntag = \"bench\"\n"
        );
        write(
            &self.fixture.join("crates/echo/Cargo.toml"),
            manifest.as_bytes(),
        )
    }
}

/// One row: ours against skopeo, with the target on time.
fn apples_row(
    kind: &str,
    (ours, our_bytes): (Duration, u64),
    (theirs, their_bytes): (Duration, u64),
) -> Row {
    let times = ours.as_secs_f64() / theirs.as_secs_f64();
    Row {
        what: format!(
            "push of a built image {kind} (`push --no-build` vs `skopeo copy oci:LAYOUT docker://…` of the same layout); time · bytes sent"
        ),
        ours: format!("{} · {}", ms(ours), kib(our_bytes)),
        theirs: format!("{} · {}", ms(theirs), kib(their_bytes)),
        ratio: format!("{times:.2}× skopeo's time"),
        target: "≤ 1.1× skopeo's time".into(),
        met: yes_no(times <= 1.1),
    }
}
