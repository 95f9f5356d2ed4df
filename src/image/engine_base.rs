//! Bases that live only in the local Docker engine (`docker-daemon:IMAGE[:TAG]`, skopeo's name
//! for them): built or imported there (`docker build`, `docker import`), in no registry.
//!
//! The daemonless builder reads such a base as `docker save` writes it (bollard's
//! `export_image`), verifies it against its own digests and caches it like a pulled base: its
//! layers, gzipped, go to the content-addressed blob cache, and a record by image ID lets the
//! next build skip the save while the engine's image stays the same. The image must be for
//! the function's architecture; the engine holds one platform per name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::oci::{self, parse_json, Descriptor};
use crate::progress::Reporter;
use crate::target::Arch;

use super::base::{check_base, from_docker_archive, BaseLayer, ResolvedBase};

/// What is kept of a saved base, by image ID: enough to use it again without saving it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The image config.
    config: Value,
    /// The gzip layers in the blob cache, lowest first.
    layers: Vec<Descriptor>,
}

/// Reads the engine's image `name` for `arch` into the cache under `cache` (the blob cache is
/// `cache/blobs/sha256`); `reference` is the base as configured, for messages.
pub async fn from_engine(
    name: &str,
    arch: Arch,
    cache: &Path,
    reference: &str,
    reporter: &Reporter,
) -> Result<ResolvedBase> {
    let docker = crate::docker::connect()?;
    let name = crate::docker::with_default_tag(name);
    let inspect = crate::docker::inspect_image(&docker, &name)
        .await?
        .ok_or_else(|| missing(&name, reference))?;
    check_architecture(reference, inspect.architecture.as_deref(), arch)?;
    let blobs = cache.join("blobs/sha256");
    let id = inspect.id.unwrap_or_default();
    let record = cache
        .join("docker-daemon")
        .join(format!("{}.json", oci::digest_hex(&id)?));
    if let Some(base) = cached(&record, &blobs, reference)? {
        return Ok(base);
    }
    let task = reporter.task(format!("Reading {name} from the Docker engine"));
    let parent = record.parent().unwrap_or(Path::new("."));
    crate::store::sweep_once(parent);
    let (staging, _) = crate::store::Staging::file(parent, "docker-save")
        .map_err(|e| Error::io("could not create a file in", parent, e))?;
    let saved = match crate::docker::save(&docker, &name, staging.path()).await {
        Ok(()) => from_docker_archive(staging.path(), &blobs, reference),
        Err(e) => Err(e),
    };
    drop(staging);
    let base = match saved {
        Ok(base) => base,
        Err(e) => {
            task.fail(format!("Reading {name} from the Docker engine failed"));
            return Err(e);
        }
    };
    // The name may have moved to another image between the inspection and the save.
    check_architecture(reference, base.config["architecture"].as_str(), arch)?;
    let kept = Record {
        config: base.config.clone(),
        layers: base.layers.iter().map(|l| l.descriptor.clone()).collect(),
    };
    let bytes = serde_json::to_vec(&kept).map_err(|e| Error::InvalidImage {
        image: reference.to_string(),
        message: e.to_string(),
        help: "the image config cannot be stored; rebuild the image".into(),
    })?;
    oci::write_atomic(&record, &bytes)?;
    task.done(format!("Read {name} from the Docker engine"));
    Ok(base)
}

/// The base recorded at `record`, if there is one and all its layers are still in `blobs`.
fn cached(record: &Path, blobs: &Path, reference: &str) -> Result<Option<ResolvedBase>> {
    let Ok(bytes) = std::fs::read(record) else {
        return Ok(None);
    };
    let Ok(kept) = parse_json::<Record>(&bytes, reference) else {
        return Ok(None);
    };
    let mut layers = Vec::new();
    for descriptor in kept.layers {
        let path: PathBuf = blobs.join(oci::digest_hex(&descriptor.digest)?);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == descriptor.size => {
                layers.push(BaseLayer { descriptor, path })
            }
            _ => return Ok(None),
        }
    }
    check_base(&kept.config, &layers, reference)?;
    Ok(Some(ResolvedBase {
        reference: reference.to_string(),
        config: kept.config,
        layers,
        manifest_digest: None,
    }))
}

/// An image for another architecture than the function's is refused, naming both; an image
/// that does not say is taken as it is.
pub fn check_architecture(image: &str, have: Option<&str>, arch: Arch) -> Result<()> {
    match have {
        Some(have) if !have.is_empty() && have != arch.oci_name() => Err(Error::BaseArchitecture {
            image: image.to_string(),
            have: have.to_string(),
            have_arch: have
                .parse::<Arch>()
                .map_or_else(|_| have.to_string(), |a| a.lambda_name().to_string()),
            want: arch.oci_name().to_string(),
        }),
        _ => Ok(()),
    }
}

/// The engine has no image of that name.
pub fn missing(name: &str, reference: &str) -> Error {
    Error::InvalidImage {
        image: reference.to_string(),
        message: format!("the Docker engine has no image `{name}`"),
        help: format!(
            "`docker images` lists the engine's images: build, import or pull it under that name (`docker pull {name}`), or drop `docker-daemon:` to pull it from its registry"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_architecture_is_refused_naming_both() {
        let err = check_architecture("docker-daemon:b:1", Some("amd64"), Arch::Arm64).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("linux/amd64") && text.contains("linux/arm64"),
            "{text}"
        );
        let help = miette::Diagnostic::help(&err).unwrap().to_string();
        assert!(help.contains("--arch x86_64"), "{help}");
        assert!(check_architecture("b", Some("arm64"), Arch::Arm64).is_ok());
        assert!(check_architecture("b", None, Arch::X86_64).is_ok());
    }

    #[test]
    fn a_record_whose_blobs_are_gone_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let data = b"layer".to_vec();
        let digest = oci::sha256_digest(&data);
        let record = dir.path().join("r.json");
        let kept = Record {
            config: serde_json::json!({"rootfs": {"type": "layers", "diff_ids": ["sha256:x"]}}),
            layers: vec![Descriptor::new(oci::MEDIA_OCI_LAYER_GZIP, &digest, 5)],
        };
        std::fs::write(&record, serde_json::to_vec(&kept).unwrap()).unwrap();
        assert!(cached(&record, &blobs, "b").unwrap().is_none());
        std::fs::write(blobs.join(oci::digest_hex(&digest).unwrap()), &data).unwrap();
        let base = cached(&record, &blobs, "b").unwrap().unwrap();
        assert_eq!(base.layers[0].descriptor.digest, digest);
    }
}
