//! Stage 3: build a Lambda container image per (function, arch) from its compiled bootstrap.
//!
//! Two [`Builder`]s make images: [`Daemonless`] assembles them here (reproducible, no Docker
//! needed) and [`DockerBuilder`] has a Docker engine build them from a Dockerfile. Either way
//! the result is an OCI image layout directory ([`BuiltImage`]), which the later stages (check,
//! outputs, push, deploy, test) read alike.
//!
//! Layouts are never replaced while a process reads them: each is written whole under
//! `target/lambda-image/<function>/<arch>/images/<name>` (the name is the digest of its
//! `index.json`, so the same image is one directory), leased by the process that built it (see
//! [`crate::store`]), and `oci` beside it is a symlink switched in one step to the newest. Two
//! commands on one function and architecture (`watch` beside `deploy`, eight `image` runs with
//! different bases) each go on with the image they built; images no one points at or holds are
//! removed by the next build.
//! Base images are read or pulled here too ([`base`], [`pull`], [`engine_base`]), once per
//! (reference, arch).

mod assemble;
pub mod base;
pub mod docker_build;
pub mod engine_base;
pub mod gzip;
pub mod layer;
pub mod pull;
pub mod resolve;
pub mod sbom;

use std::path::Path;

use cargo_metadata::camino::Utf8PathBuf;
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::FunctionSpec;
use crate::error::Result;
use crate::lambda::{self, BOOTSTRAP_PATH};
use crate::oci::{Descriptor, RunConfig};
use crate::progress::Reporter;
use crate::target::Arch;

pub use assemble::{assemble, Daemonless};
pub use docker_build::{DockerBuildOptions, DockerBuilder};

/// Makes the image of one function from its compiled bootstrap, into the function's OCI
/// layout. The pipeline runs one builder for every function, several at once.
pub trait Builder: Send + Sync {
    /// A word for messages: `daemonless`, `docker`.
    fn name(&self) -> &'static str;

    /// Builds the image of `spec` from `bootstrap`.
    fn build<'a>(
        &'a self,
        spec: &'a FunctionSpec,
        bootstrap: &'a Path,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<BuiltImage>>;
}
/// Options of the image stage.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// The timestamp for every file and the config (`SOURCE_DATE_EPOCH`); 0 if unset.
    pub source_date_epoch: Option<u64>,
    /// Where layers are cached (`CARGO_LAMBDA_IMAGE_CACHE_DIR`); the user's cache directory
    /// when unset.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl ImageOptions {
    /// Options with `SOURCE_DATE_EPOCH` and `CARGO_LAMBDA_IMAGE_CACHE_DIR` from the process
    /// environment.
    pub fn from_env() -> ImageOptions {
        ImageOptions {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            cache_dir: std::env::var_os("CARGO_LAMBDA_IMAGE_CACHE_DIR").map(Into::into),
        }
    }

    /// The cache directory: the option, else the user's (see
    /// [`crate::registry::default_cache_dir`]).
    pub fn cache_dir(&self) -> std::path::PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(crate::registry::default_cache_dir)
    }
}

/// An assembled image, stored as an OCI layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuiltImage {
    /// The function.
    pub function: String,
    /// The architecture.
    pub arch: Arch,
    /// The OCI layout directory.
    pub layout: Utf8PathBuf,
    /// The repository name from the configuration.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The manifest digest (what a registry will report after push).
    pub digest: String,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    /// The config digest.
    pub config_digest: String,
    /// The layers, base first; the last is the function's.
    pub layers: Vec<Descriptor>,
    /// The base reference.
    pub base: String,
    /// The lease on `layout` this process holds while it uses the image.
    #[serde(skip)]
    pub lease: crate::store::Held,
}

impl BuiltImage {
    /// The line `image` prints for it: function, arch, `repository:tag`, digest and layout.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}:{}\t{}\t{}",
            self.function, self.arch, self.repository, self.tag, self.digest, self.layout
        )
    }

    /// The directory, as a std path.
    pub fn layout_dir(&self) -> &Path {
        self.layout.as_std_path()
    }
}

/// The directory of a function's files for one architecture: its bootstrap, its images and
/// the root filesystems they are run from (`target/lambda-image/<function>/<arch>`).
pub fn function_dir(spec: &FunctionSpec) -> Utf8PathBuf {
    spec.artifact
        .parent()
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|| Utf8PathBuf::from("."))
}

/// The symlink to the function's newest image layout (see the module's documentation).
pub fn layout_dir(spec: &FunctionSpec) -> Utf8PathBuf {
    function_dir(spec).join("oci")
}

/// The ENTRYPOINT and CMD of the new image, decided from the base's actual config rather than
/// its name, so a mirrored or locally stored provided.al2 is treated as what it is.
///
/// Configured values win. Otherwise the base's ENTRYPOINT is kept; under provided.*'s
/// `/lambda-entrypoint.sh`, which needs exactly one argument (the handler name, any string)
/// and then execs /var/runtime/bootstrap, CMD becomes `["bootstrap"]`. A base without an
/// ENTRYPOINT (scratch) gets the bootstrap itself.
pub fn entrypoint_and_command(
    spec: &FunctionSpec,
    base_run: &RunConfig,
) -> (Vec<String>, Option<Vec<String>>) {
    let base_entrypoint = base_run.entrypoint.clone();
    let base_command = base_run.cmd.clone();
    let (entrypoint, from_base) = match &spec.image.entrypoint {
        Some(e) => (e.clone(), false),
        None if !base_entrypoint.is_empty() => (base_entrypoint, true),
        None => (vec![format!("/{BOOTSTRAP_PATH}")], false),
    };
    let command = match &spec.image.command {
        Some(c) => Some(c.clone()),
        None if entrypoint.first().map(String::as_str) == Some(lambda::PROVIDED_ENTRYPOINT) => {
            Some(vec![lambda::DEFAULT_HANDLER.to_string()])
        }
        None if from_base && !base_command.is_empty() => Some(base_command),
        None => None,
    };
    (entrypoint, command.filter(|c| !c.is_empty()))
}
