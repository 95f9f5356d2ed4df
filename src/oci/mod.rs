//! The OCI (and Docker schema 2) vocabulary every stage shares: media types, descriptors,
//! manifests and indexes with their constructors, digests, the OCI image layout on disk
//! ([`Layout`]), the one typed reader of image configs ([`ImageConfig`]), docker-archive
//! tarballs ([`archive`]), and how layers' tar entries are read ([`entry`]).
//!
//! Part of the ground floor: it imports nothing from a stage.
//!
//! The types keep unknown fields out of the way but accept both OCI and Docker media types,
//! since base images come in either. Documents we write are serialized once and their exact
//! bytes hashed, so the digest printed is the digest pushed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::target::Arch;

pub mod archive;
mod config;
pub mod entry;
mod layout;

pub use config::{ImageConfig, RunConfig};
pub use layout::{BlobReader, Layout};

/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const MEDIA_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI zstd layer.
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer.
pub const MEDIA_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The empty descriptor's media type (an artifact manifest's config): the blob `{}`.
pub const MEDIA_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The content of the empty blob.
pub const EMPTY_JSON: &[u8] = b"{}";

/// The annotation naming a manifest in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether a media type is an index (OCI or Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST
}

/// Whether a media type is a gzip-compressed layer (OCI or Docker).
pub fn is_gzip_layer(media_type: &str) -> bool {
    media_type == MEDIA_OCI_LAYER_GZIP || media_type == MEDIA_DOCKER_LAYER_GZIP
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// OS (`linux`).
    pub os: String,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The OCI platform of a Lambda architecture: `linux/amd64`, or `linux/arm64` with variant
    /// `v8` (what the images' configs say, and what Docker and containerd match on).
    pub fn linux(arch: Arch) -> Platform {
        Platform {
            architecture: arch.oci_name().into(),
            os: "linux".into(),
            variant: (arch == Arch::Arm64).then(|| "v8".to_string()),
        }
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the manifest described (referrers index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The content itself, base64, when embedded (the empty descriptor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor without platform or annotations.
    pub fn new(media_type: &str, digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            platform: None,
            artifact_type: None,
            data: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The empty descriptor: the blob `{}`, embedded.
    pub fn empty() -> Descriptor {
        use base64::Engine;
        let mut empty = Descriptor::new(
            MEDIA_OCI_EMPTY,
            &sha256_digest(EMPTY_JSON),
            EMPTY_JSON.len() as u64,
        );
        empty.data = Some(base64::engine::general_purpose::STANDARD.encode(EMPTY_JSON));
        empty
    }

    /// The hex part of the digest, validated, for use as a file name.
    pub fn hex(&self) -> Result<&str> {
        digest_hex(&self.digest)
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The first 12 hex digits of a digest, for progress lines.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Parses a JSON document of an image, naming the image in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8], reference: &str) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::InvalidImage {
        image: reference.to_string(),
        message: format!("malformed JSON document: {e}"),
        help: "the image is corrupt or not an OCI/Docker image".into(),
    })
}

/// The hex part of a `sha256:` digest; anything else is refused, so a digest can be used as
/// a file name without escaping the blob directory.
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(hex)
        }
        _ => Err(Error::InvalidImage {
            image: digest.to_string(),
            message: "unsupported or malformed digest".into(),
            help: "only sha256 digests (`sha256:` and 64 lowercase hex digits) are supported"
                .into(),
        }),
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What kind of artifact it is, for an artifact manifest (`application/spdx+json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (an OCI 1.1 referrer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// An OCI image manifest over a config and layers.
    pub fn oci(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// An OCI 1.1 artifact manifest: `artifact_type`, the empty config, `blobs` as its layers,
    /// referring to `subject`.
    pub fn artifact(artifact_type: &str, blobs: Vec<Descriptor>, subject: Descriptor) -> Manifest {
        Manifest {
            artifact_type: Some(artifact_type.into()),
            subject: Some(subject),
            ..Manifest::oci(Descriptor::empty(), blobs)
        }
    }
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An OCI image index listing `manifests`.
    pub fn oci(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.into()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }

    /// The index of an OCI layout holding one image: its manifest for `arch`, named `tag`.
    pub fn single(manifest: Descriptor, arch: Arch, tag: &str) -> Index {
        let mut entry = manifest;
        entry.platform = Some(Platform {
            variant: None,
            ..Platform::linux(arch)
        });
        entry.annotations.insert(REF_NAME.into(), tag.to_string());
        Index::oci(vec![entry])
    }
}

/// Picks the manifest for `linux/<arch>` out of an index.
pub fn select_platform<'a>(index: &'a Index, oci_arch: &str) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == oci_arch)
    })
}

/// The bytes of a file as a stream of chunks of up to `chunk` bytes, read as they are asked
/// for, so that a blob of any size is sent with one chunk in memory.
pub fn file_chunks(
    path: &Path,
    chunk: usize,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let path = path.to_path_buf();
    futures_util::stream::unfold(None, move |file: Option<tokio::fs::File>| {
        let path = path.clone();
        async move {
            let mut file = match file {
                Some(file) => file,
                None => match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut buffer = bytes::BytesMut::with_capacity(chunk);
            while buffer.len() < chunk {
                match file.read_buf(&mut buffer).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), None)),
                }
            }
            if buffer.is_empty() {
                None
            } else {
                Some((Ok(buffer.freeze()), Some(file)))
            }
        }
    })
}

/// Writes a file through a temporary name and a rename, so readers never see half of it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    crate::store::write_whole(path, data).map_err(|e| Error::io("could not write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_sha256_hex() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(digest_hex(&good).is_ok());
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn parses_docker_and_oci_manifests() {
        let docker = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:00"},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2,"digest":"sha256:01"}]}"#;
        let m: Manifest = serde_json::from_str(docker).unwrap();
        assert!(is_gzip_layer(&m.layers[0].media_type));
        let index = r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:aa","platform":{"architecture":"amd64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:bb","platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
        let i: Index = serde_json::from_str(index).unwrap();
        assert_eq!(select_platform(&i, "arm64").unwrap().digest, "sha256:bb");
        assert!(select_platform(&i, "s390x").is_none());
    }
}
