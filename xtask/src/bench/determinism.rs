//! Determinism: the same image built twice, recompiled in between, must have
//! the same manifest digest; Docker's image IDs are shown for comparison.

use std::process::Command;

use serde_json::Value;

use super::{
    docker::{docker_build, docker_context},
    events::event,
    helpers::read,
    report::Row,
    setup::{Bench, TRIPLE},
    stats::yes_no,
};
use crate::Result;

impl Bench {
    /// The same image built twice, the second time after `cargo clean -p
    /// echo`: equal manifest digests? And Docker's image IDs, for comparison.
    pub(super) fn determinism(&self) -> Result<Vec<Row>> {
        let base = self
            .base()
            .map(str::to_owned)
            .unwrap_or_else(|_| "scratch".into());
        // A fresh cache each time: a cached layer would make the digests equal
        // without the layer being made again.
        let image = || -> Result<String> {
            let cache = self.fresh_cache()?;
            let mut command = self.tool(&["image", "--message-format", "json", "-p", "echo"]);
            command
                .arg("--manifest-path")
                .arg(self.manifest())
                .args(["--base-image", &base])
                .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache.path());
            let stdout = read(&mut command)?;
            event(&stdout, "image")?
                .get("image")
                .and_then(|image| image.get("digest"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "the image event has no digest".into())
        };
        let first = image()?;
        read(
            Command::new("cargo")
                .args([
                    "clean",
                    "--quiet",
                    "-p",
                    "echo",
                    "--release",
                    "--target",
                    TRIPLE,
                ])
                .arg("--manifest-path")
                .arg(self.manifest())
                .env("CARGO_TARGET_DIR", &self.target),
        )?;
        let second = image()?;
        let docker = self.docker_ids_equal();
        Ok(vec![Row {
            what: format!("determinism: `image -p echo` twice, recompiled in between ({base_kind} base); docker: `docker build --no-cache` twice", base_kind = if base == "scratch" { "scratch" } else { "busybox" }),
            ours: if first == second {
                format!("equal ({})", short_digest(&first))
            } else {
                format!("differ ({} vs {})", short_digest(&first), short_digest(&second))
            },
            theirs: match docker {
                Ok(true) => "equal image IDs".into(),
                Ok(false) => "different image IDs".into(),
                Err(why) => why,
            },
            ratio: "—".into(),
            target: "equal digests".into(),
            met: yes_no(first == second),
        }])
    }

    /// Whether two `docker build --no-cache` of the same context give the same image ID.
    fn docker_ids_equal(&self) -> std::result::Result<bool, String> {
        self.docker_base.clone()?;
        let context = self.work.join("docker-determinism");
        let tag = format!("xtask-bench-determinism:{}", self.stamp);
        let build_id = || -> Result<String> {
            read(&mut docker_build(&context, &tag))?;
            let id = read(
                Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &tag]),
            )?;
            let _ = read(Command::new("docker").args(["rmi", "--force", &tag]));
            Ok(id.trim().to_owned())
        };
        let result = docker_context(&context, &self.bootstrap("fixture-echo"))
            .and_then(|()| Ok(build_id()? == build_id()?));
        result.map_err(|err| format!("docker build failed: {err}"))
    }
}

fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
