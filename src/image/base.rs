//! Base images: `scratch`, an OCI layout directory (`oci:DIR[:TAG]`), a docker-archive tarball
//! (`docker-archive:FILE`), an image of the local Docker engine (`docker-daemon:IMAGE[:TAG]`,
//! saved by [`super::engine_base`]), or a registry reference (pulled by [`super::pull`]).
//!
//! Whatever the source, the result is the same: the base's config as JSON and its layers as
//! gzip blobs on disk with their diff_ids, for one platform. A
//! [`BaseCache`](super::resolve::BaseCache) resolves each (reference, architecture) once for
//! every function that uses it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::target::Arch;

use crate::oci::{self, parse_json, Descriptor, Index, Layout, Manifest};

pub use super::layer::BaseLayer;

/// A base image for one platform.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    /// The reference as configured.
    pub reference: String,
    /// The image config (`architecture`, `os`, `config`, `rootfs`, `history`, ...).
    pub config: Value,
    /// The layers, lowest first.
    pub layers: Vec<BaseLayer>,
    /// The base manifest's digest, if it had one (not for scratch).
    pub manifest_digest: Option<String>,
}

/// How a base reference is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSource {
    /// No base.
    Scratch,
    /// An OCI layout directory, optionally a tag in it.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick.
        tag: Option<String>,
    },
    /// A `docker save` tarball.
    DockerArchive(PathBuf),
    /// An image of the local Docker engine, by name or ID.
    DockerDaemon(String),
    /// A registry reference.
    Registry(String),
}

impl BaseSource {
    /// Classifies a base reference.
    pub fn parse(reference: &str) -> BaseSource {
        if reference == "scratch" {
            BaseSource::Scratch
        } else if let Some(rest) = reference.strip_prefix("oci:") {
            // `oci:DIR:TAG`, as skopeo writes it, unless the whole thing is a directory.
            match rest.rsplit_once(':') {
                Some((dir, tag)) if !Path::new(rest).is_dir() && !tag.contains('/') => {
                    BaseSource::Layout {
                        dir: PathBuf::from(dir),
                        tag: Some(tag.to_string()),
                    }
                }
                _ => BaseSource::Layout {
                    dir: PathBuf::from(rest),
                    tag: None,
                },
            }
        } else if let Some(file) = reference.strip_prefix("docker-archive:") {
            BaseSource::DockerArchive(PathBuf::from(file))
        } else if let Some(image) = reference.strip_prefix("docker-daemon:") {
            BaseSource::DockerDaemon(image.to_string())
        } else {
            BaseSource::Registry(reference.to_string())
        }
    }
}

/// The config of an empty base: what Lambda's runtime interface expects to find.
pub fn scratch(arch: Arch) -> ResolvedBase {
    ResolvedBase {
        reference: "scratch".into(),
        config: json!({
            "architecture": arch.oci_name(),
            "os": "linux",
            "config": {
                "Env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LAMBDA_TASK_ROOT=/var/task",
                    "LAMBDA_RUNTIME_DIR=/var/runtime",
                ],
            },
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }),
        layers: Vec::new(),
        manifest_digest: None,
    }
}

/// Reads a base from an OCI layout directory.
pub fn from_layout(
    dir: &Path,
    tag: Option<&str>,
    arch: Arch,
    reference: &str,
) -> Result<ResolvedBase> {
    let layout = Layout::open(dir)?;
    let index = layout.index()?;
    let invalid = |message: String, help: &str| Error::InvalidImage {
        image: reference.to_string(),
        message,
        help: help.to_string(),
    };
    let candidates: Vec<&Descriptor> = match tag {
        Some(tag) => index
            .manifests
            .iter()
            .filter(|d| d.annotations.get(oci::REF_NAME).map(String::as_str) == Some(tag))
            .collect(),
        None => index.manifests.iter().collect(),
    };
    let descriptor = match candidates.as_slice() {
        [] => {
            return Err(invalid(
                format!("no image tagged `{}` in the layout", tag.unwrap_or("")),
                "list the tags with `skopeo inspect oci:DIR` or omit the tag",
            ))
        }
        [one] => (*one).clone(),
        many => {
            let wanted = Index {
                schema_version: 2,
                media_type: None,
                manifests: many.iter().map(|d| (*d).clone()).collect(),
                annotations: Default::default(),
            };
            oci::select_platform(&wanted, arch.oci_name())
                .cloned()
                .ok_or_else(|| {
                    invalid(
                        format!(
                            "several images in the layout and none for linux/{}",
                            arch.oci_name()
                        ),
                        "name one with `oci:DIR:TAG`",
                    )
                })?
        }
    };
    let manifest_descriptor = if oci::is_index(&descriptor.media_type) {
        let nested: Index = parse_json(&layout.read_blob(&descriptor.digest)?, reference)?;
        oci::select_platform(&nested, arch.oci_name())
            .cloned()
            .ok_or_else(|| {
                invalid(
                    format!("the index has no linux/{} image", arch.oci_name()),
                    "use a base image that is published for this architecture",
                )
            })?
    } else {
        descriptor
    };
    let manifest: Manifest =
        parse_json(&layout.read_blob(&manifest_descriptor.digest)?, reference)?;
    let config: Value = parse_json(&layout.read_blob(&manifest.config.digest)?, reference)?;
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        if !oci::is_gzip_layer(&layer.media_type) {
            return Err(invalid(
                format!(
                    "layer {} has media type {}, but only gzip layers are supported in a base",
                    layer.digest, layer.media_type
                ),
                "re-compress the base with `skopeo copy --dest-compress-format gzip`",
            ));
        }
        let path = layout.blob_path(&layer.digest)?;
        if !path.is_file() {
            return Err(invalid(
                format!("layer blob {} is missing", layer.digest),
                "the layout is incomplete; copy it again",
            ));
        }
        let mut descriptor = Descriptor::new(oci::MEDIA_OCI_LAYER_GZIP, &layer.digest, layer.size);
        descriptor.annotations = layer.annotations.clone();
        layers.push(BaseLayer { descriptor, path });
    }
    check_base(&config, &layers, reference)?;
    Ok(ResolvedBase {
        reference: reference.to_string(),
        config,
        layers,
        manifest_digest: Some(manifest_descriptor.digest),
    })
}

/// Reads a base from a `docker save` tarball. Uncompressed layers are gzipped into `cache`.
/// The config must have the digest its name says (when it is named by digest, as Docker
/// names it) and every layer the diff_id the config lists for it.
pub fn from_docker_archive(file: &Path, cache: &Path, reference: &str) -> Result<ResolvedBase> {
    let invalid = |message: String| Error::InvalidImage {
        image: reference.to_string(),
        message,
        help: "create the archive with `docker save IMAGE -o FILE`".into(),
    };
    let read_member = |name: &str| -> Result<Vec<u8>> {
        let f = std::fs::File::open(file).map_err(|e| Error::io("could not open", file, e))?;
        let mut archive = tar::Archive::new(f);
        let entries = archive
            .entries()
            .map_err(|e| Error::io("could not read", file, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::io("could not read", file, e))?;
            let path = entry
                .path()
                .map_err(|e| Error::io("could not read", file, e))?
                .to_string_lossy()
                .into_owned();
            if path.trim_start_matches("./") == name {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| Error::io("could not read", file, e))?;
                return Ok(data);
            }
        }
        Err(invalid(format!("the archive has no `{name}`")))
    };
    let manifest: Value = parse_json(&read_member("manifest.json")?, reference)?;
    let entry = manifest
        .get(0)
        .ok_or_else(|| invalid("manifest.json lists no image".into()))?;
    let config_name = entry["Config"]
        .as_str()
        .ok_or_else(|| invalid("manifest.json has no Config".into()))?;
    let config_bytes = read_member(config_name)?;
    let config: Value = parse_json(&config_bytes, reference)?;
    let names: Vec<&str> = entry["Layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // One pass over the archive streams every layer into the cache, gzipped on the way when
    // it is not already: layers are never held in memory.
    let mut stored: HashMap<String, (BaseLayer, String)> = HashMap::new();
    let f = std::fs::File::open(file).map_err(|e| Error::io("could not open", file, e))?;
    let mut archive = tar::Archive::new(f);
    let read_err = |e| Error::io("could not read", file, e);
    for member in archive.entries().map_err(read_err)? {
        let member = member.map_err(read_err)?;
        let path = member
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        let name = path.trim_start_matches("./").to_string();
        if names.contains(&name.as_str()) && !stored.contains_key(&name) {
            let layer = super::layer::store_layer(member, cache).map_err(|e| match e {
                Error::Io { source, .. } => Error::io("could not read a layer of", file, source),
                other => other,
            })?;
            stored.insert(name, layer);
        }
    }
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for name in &names {
        let (layer, diff_id) = stored
            .get(*name)
            .ok_or_else(|| invalid(format!("the archive has no `{name}`")))?;
        layers.push(layer.clone());
        diff_ids.push(diff_id.as_str());
    }
    check_base(&config, &layers, reference)?;
    verify_saved(config_name, &config_bytes, &config, &names, &diff_ids).map_err(|message| {
        Error::InvalidImage {
            image: reference.to_string(),
            message,
            help: "the archive is corrupt or was altered; save the image again (`docker save IMAGE -o FILE`)".into(),
        }
    })?;
    Ok(ResolvedBase {
        reference: reference.to_string(),
        config,
        layers,
        manifest_digest: None,
    })
}

/// Checks a saved image against its own digests: the config's name (`<hex>.json` or
/// `blobs/sha256/<hex>`, as Docker writes it) against the config's digest, and each layer
/// (`names`, with the `diff_ids` of their uncompressed bytes) against the config's diff_ids.
fn verify_saved(
    config_name: &str,
    config_bytes: &[u8],
    config: &Value,
    names: &[&str],
    diff_ids: &[&str],
) -> std::result::Result<(), String> {
    let named = config_name.trim_end_matches(".json");
    let named = named.rsplit('/').next().unwrap_or(named);
    let actual = oci::sha256_digest(config_bytes);
    if oci::digest_hex(&format!("sha256:{named}")).is_ok() && actual != format!("sha256:{named}") {
        return Err(format!("its config `{config_name}` has digest {actual}"));
    }
    let expected = crate::oci::ImageConfig::from_value(config).diff_ids;
    for ((name, actual), expected) in names.iter().zip(diff_ids).zip(&expected) {
        if actual != expected {
            return Err(format!(
                "layer `{name}` has diff_id {actual}, but the config lists {expected}"
            ));
        }
    }
    Ok(())
}

/// A base's config must list one diff_id per layer, or the image we make would be invalid.
pub fn check_base(config: &Value, layers: &[BaseLayer], reference: &str) -> Result<()> {
    let diff_ids = crate::oci::ImageConfig::from_value(config).diff_ids.len();
    if diff_ids != layers.len() {
        return Err(Error::InvalidImage {
            image: reference.to_string(),
            message: format!(
                "its config lists {diff_ids} diff_ids for {} layers",
                layers.len()
            ),
            help: "the base image is malformed; rebuild it".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `docker save` archive of one image whose config lists `diff_id` for a layer holding
    /// `layer`, the config named by its digest unless `config_name` is given.
    fn saved(dir: &Path, layer: &[u8], diff_id: &str, config_name: Option<&str>) -> PathBuf {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap();
        let hex = oci::sha256_digest(&config)[7..].to_string();
        let config_name = config_name.map_or(format!("{hex}.json"), str::to_string);
        let manifest = json!([{"Config": config_name, "Layers": ["l1/layer.tar"]}]);
        let members = [
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
            (config_name.as_str(), config),
            ("l1/layer.tar", layer.to_vec()),
        ];
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, data.as_slice()).unwrap();
        }
        let file = dir.join("saved.tar");
        std::fs::write(&file, tar.into_inner().unwrap()).unwrap();
        file
    }

    #[test]
    fn a_saved_image_is_checked_against_its_digests() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("blobs");
        let layer = b"not really a tar, but bytes with a digest".as_slice();
        let good = oci::sha256_digest(layer);
        let file = saved(dir.path(), layer, &good, None);
        let base = from_docker_archive(&file, &cache, "x").unwrap();
        // Stored gzipped, under the digest of the gzip.
        let stored = std::fs::read(&base.layers[0].path).unwrap();
        assert_eq!(&stored[..2], &[0x1f, 0x8b]);
        assert_eq!(
            oci::sha256_digest(&stored),
            base.layers[0].descriptor.digest
        );

        let wrong = oci::sha256_digest(b"other bytes");
        let file = saved(dir.path(), layer, &wrong, None);
        let err = from_docker_archive(&file, &cache, "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("has diff_id {good}, but the config lists {wrong}")),
            "{err}"
        );

        let other = format!("{}.json", "0".repeat(64));
        let file = saved(dir.path(), layer, &good, Some(&other));
        let err = from_docker_archive(&file, &cache, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has digest sha256:"), "{err}");
    }

    #[test]
    fn classifies_references() {
        assert_eq!(BaseSource::parse("scratch"), BaseSource::Scratch);
        assert_eq!(
            BaseSource::parse("oci:/tmp/x:al2"),
            BaseSource::Layout {
                dir: "/tmp/x".into(),
                tag: Some("al2".into())
            }
        );
        assert_eq!(
            BaseSource::parse("oci:/tmp/x"),
            BaseSource::Layout {
                dir: "/tmp/x".into(),
                tag: None
            }
        );
        assert_eq!(
            BaseSource::parse("docker-archive:/a.tar"),
            BaseSource::DockerArchive("/a.tar".into())
        );
        assert_eq!(
            BaseSource::parse("public.ecr.aws/lambda/provided:al2"),
            BaseSource::Registry("public.ecr.aws/lambda/provided:al2".into())
        );
        assert_eq!(
            BaseSource::parse("docker-daemon:fakeprovided:al2"),
            BaseSource::DockerDaemon("fakeprovided:al2".into())
        );
        assert_eq!(
            BaseSource::parse("docker-daemon:127.0.0.1:5000/base"),
            BaseSource::DockerDaemon("127.0.0.1:5000/base".into())
        );
    }
}
