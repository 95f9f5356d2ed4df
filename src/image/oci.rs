//! The OCI (and Docker schema 2) documents this tool reads and writes: descriptors, manifests,
//! indexes, and the OCI image layout on disk.
//!
//! The types keep unknown fields out of the way but accept both OCI and Docker media types,
//! since base images come in either. Documents we write are serialized once and their exact
//! bytes hashed, so the digest printed is the digest pushed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
            annotations: BTreeMap::new(),
        }
    }

    /// The hex part of the digest, validated, for use as a file name.
    pub fn hex(&self) -> Result<&str> {
        digest_hex(&self.digest)
    }
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
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
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

/// Picks the manifest for `linux/<arch>` out of an index.
pub fn select_platform<'a>(index: &'a Index, oci_arch: &str) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == oci_arch)
    })
}

/// An OCI image layout directory: `oci-layout`, `index.json`, `blobs/sha256/...`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The directory.
    pub dir: PathBuf,
}

impl Layout {
    /// Opens an existing layout, checking its `oci-layout` marker.
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(Error::InvalidImage {
                image: dir.display().to_string(),
                message: "not an OCI image layout (no `oci-layout` file)".into(),
                help: "point at a directory written by `cargo lambda-image image`, `skopeo copy ... oci:DIR` or `umoci`".into(),
            });
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// Creates (or reuses) a layout directory.
    pub fn create(dir: &Path) -> Result<Layout> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io("could not create", &blobs, e))?;
        write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// The path of a blob.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// Reads a blob, verifying its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let data = std::fs::read(&path).map_err(|e| Error::io("could not read", &path, e))?;
        let actual = super::layer::sha256_digest(&data);
        if actual != digest {
            return Err(Error::InvalidImage {
                image: self.dir.display().to_string(),
                message: format!("blob {digest} has digest {actual}"),
                help: "the layout is corrupt; rebuild or re-copy it".into(),
            });
        }
        Ok(data)
    }

    /// Writes a blob under its digest (skipped if already there).
    pub fn write_blob(&self, data: &[u8]) -> Result<String> {
        let digest = super::layer::sha256_digest(data);
        self.write_blob_with_digest(&digest, data)?;
        Ok(digest)
    }

    /// Writes a blob whose digest the caller has just computed from `data` (a fresh layer),
    /// sparing a second pass over large data.
    pub(crate) fn write_blob_with_digest(&self, digest: &str, data: &[u8]) -> Result<()> {
        let path = self.blob_path(digest)?;
        if !path.exists() {
            write_atomic(&path, data)?;
        }
        Ok(())
    }

    /// Copies (hard-links where possible) a blob file from elsewhere.
    pub fn import_blob(&self, digest: &str, source: &Path) -> Result<()> {
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        if std::fs::hard_link(source, &path).is_err() {
            let tmp = path.with_extension("tmp");
            std::fs::copy(source, &tmp).map_err(|e| Error::io("could not copy to", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io("could not write", &path, e))?;
        }
        Ok(())
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<Index> {
        let path = self.dir.join("index.json");
        let data = std::fs::read(&path).map_err(|e| Error::io("could not read", &path, e))?;
        serde_json::from_slice(&data).map_err(|e| Error::InvalidImage {
            image: path.display().to_string(),
            message: format!("invalid index.json: {e}"),
            help: "the layout is corrupt; rebuild or re-copy it".into(),
        })
    }

    /// Writes `index.json`.
    pub fn write_index(&self, index: &Index) -> Result<()> {
        let data = serde_json::to_vec(index).map_err(|e| Error::InvalidImage {
            image: self.dir.display().to_string(),
            message: e.to_string(),
            help: String::new(),
        })?;
        write_atomic(&self.dir.join("index.json"), &data)
    }

    /// Removes blobs that `keep` does not list (left over from earlier builds).
    pub fn retain_blobs(&self, keep: &[String]) -> Result<()> {
        let dir = self.dir.join("blobs/sha256");
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("could not list", &dir, e))?;
        for entry in entries.map_while(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep
                .iter()
                .any(|d| d.strip_prefix("sha256:") == Some(name.as_str()))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Writes a file through a temporary name and a rename, so readers never see half of it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(|e| Error::io("could not write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("could not write", path, e))
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
