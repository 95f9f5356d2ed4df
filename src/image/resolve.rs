//! A base reference resolved to its config and layers, whatever its source: `scratch`, an
//! OCI layout or a docker-archive ([`super::base`]), an image of the local Docker engine
//! ([`super::engine_base`]) or a registry reference ([`super::pull`]). A [`BaseCache`] does it
//! once per (reference, architecture) for every function that uses the base.
//!
//! It sits above the readers of each source, which share [`super::base`]'s types.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use miette::Diagnostic;
use tokio::sync::OnceCell;

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::progress::{Reporter, Stage};
use crate::registry::RegistryOptions;
use crate::target::Arch;

use super::base::{from_docker_archive, from_layout, scratch, BaseSource, ResolvedBase};

/// Reads or pulls a base image for one architecture, whatever its source.
pub async fn resolve(
    reference: &str,
    arch: Arch,
    registry: &RegistryOptions,
    reporter: &Reporter,
) -> Result<ResolvedBase> {
    match BaseSource::parse(reference) {
        BaseSource::Scratch => Ok(scratch(arch)),
        BaseSource::Layout { dir, tag } => from_layout(&dir, tag.as_deref(), arch, reference),
        BaseSource::DockerArchive(file) => {
            let base =
                from_docker_archive(&file, &registry.cache().join("blobs/sha256"), reference)?;
            super::engine_base::check_architecture(
                reference,
                base.config["architecture"].as_str(),
                arch,
            )?;
            Ok(base)
        }
        BaseSource::DockerDaemon(image) => {
            super::engine_base::from_engine(&image, arch, &registry.cache(), reference, reporter)
                .await
        }
        BaseSource::Registry(r) => super::pull::pull_base(&r, arch, registry, reporter).await,
    }
}

/// The outcome of resolving one base, kept for every function that uses it; an error is kept
/// as its message and help, since the same failure is reported for each of those functions.
type Resolved = std::result::Result<Arc<ResolvedBase>, (String, String)>;

/// One base's cell: resolved by the first function that needs it.
type Cell = Arc<OnceCell<Resolved>>;

/// Bases resolved once per (reference, architecture), shared by the functions built at the
/// same time: the first function that needs a base pulls it, the others wait for it.
#[derive(Debug)]
pub struct BaseCache {
    registry: RegistryOptions,
    cells: Mutex<HashMap<(String, Arch), Cell>>,
}

impl BaseCache {
    /// An empty cache pulling with these registry options.
    pub fn new(registry: RegistryOptions) -> BaseCache {
        BaseCache {
            registry,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The base of `spec` for its architecture.
    pub async fn get(&self, spec: &FunctionSpec, reporter: &Reporter) -> Result<Arc<ResolvedBase>> {
        let key = (spec.base_image.reference.clone(), spec.arch);
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.entry(key.clone()).or_default().clone()
        };
        let resolved = cell
            .get_or_init(|| async {
                resolve(&key.0, key.1, &self.registry, reporter)
                    .await
                    .map(Arc::new)
                    .map_err(|e| {
                        (
                            e.to_string(),
                            e.help().map(|h| h.to_string()).unwrap_or_default(),
                        )
                    })
            })
            .await;
        resolved
            .clone()
            .map_err(|(message, help)| Error::FunctionFailed {
                function: spec.name.clone(),
                arch: spec.arch.to_string(),
                stage: Stage::Image,
                message,
                help,
            })
    }
}
