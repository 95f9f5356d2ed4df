//! An OCI image layout directory on disk: `oci-layout`, `index.json`, `blobs/sha256/...`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::{digest_hex, parse_json, sha256_digest, write_atomic, ImageConfig, Index, Manifest};

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
        let actual = sha256_digest(&data);
        if actual != digest {
            return Err(Error::InvalidImage {
                image: self.dir.display().to_string(),
                message: format!("blob {digest} has digest {actual}"),
                help: "the layout is corrupt; rebuild or re-copy it".into(),
            });
        }
        Ok(data)
    }

    /// A blob as a stream, for blobs too large to hold: read it, then call
    /// [`BlobReader::verify`] to check its digest.
    pub fn open_blob(&self, digest: &str) -> Result<BlobReader> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(|e| Error::io("could not read", &path, e))?;
        Ok(BlobReader {
            inner: BufReader::with_capacity(1 << 20, file),
            sha: Sha256::new(),
            digest: digest.to_string(),
            layout: self.dir.clone(),
        })
    }

    /// Writes a blob under its digest (skipped if already there).
    pub fn write_blob(&self, data: &[u8]) -> Result<String> {
        let digest = sha256_digest(data);
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
            let dir = self.dir.join("blobs/sha256");
            let (staging, _) = crate::store::Staging::file(&dir, "blob")
                .map_err(|e| Error::io("could not create a file in", &dir, e))?;
            std::fs::copy(source, staging.path())
                .map_err(|e| Error::io("could not copy to", staging.path(), e))?;
            staging
                .commit(&path)
                .map_err(|e| Error::io("could not write", &path, e))?;
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

    /// Reads and parses a manifest blob.
    pub fn read_manifest(&self, digest: &str) -> Result<Manifest> {
        parse_json(&self.read_blob(digest)?, &self.dir.display().to_string())
    }

    /// Reads and parses the config of a manifest.
    pub fn read_config(&self, manifest: &Manifest) -> Result<ImageConfig> {
        ImageConfig::parse(
            &self.read_blob(&manifest.config.digest)?,
            &self.dir.display().to_string(),
        )
    }

    /// The manifest of the layout's only image, following nested indexes of one manifest
    /// (as `skopeo copy` and `docker save` may write them).
    pub fn single_manifest(&self) -> Result<Manifest> {
        let invalid = |message: String| Error::InvalidImage {
            image: self.dir.display().to_string(),
            message,
            help:
                "point at a layout holding exactly one image, as `cargo lambda-image image` writes"
                    .into(),
        };
        let mut manifests = self.index()?.manifests;
        loop {
            if manifests.len() != 1 {
                return Err(invalid(format!(
                    "the index lists {} manifests, not one",
                    manifests.len()
                )));
            }
            let entry = manifests.remove(0);
            let bytes = self.read_blob(&entry.digest)?;
            if super::is_index(&entry.media_type) {
                let index: Index = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("invalid index {}: {e}", entry.digest)))?;
                manifests = index.manifests;
                continue;
            }
            return serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("invalid manifest {}: {e}", entry.digest)));
        }
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

/// A blob being read as a stream, hashed as it goes.
pub struct BlobReader {
    inner: BufReader<File>,
    sha: Sha256,
    digest: String,
    layout: PathBuf,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

impl BlobReader {
    /// Reads what is left and checks the digest of the whole blob.
    pub fn verify(mut self) -> Result<()> {
        let layout = self.layout.clone();
        std::io::copy(&mut self, &mut std::io::sink())
            .map_err(|e| Error::io("could not read", &layout, e))?;
        let actual = format!("sha256:{}", hex::encode(self.sha.finalize()));
        if actual != self.digest {
            return Err(Error::InvalidImage {
                image: layout.display().to_string(),
                message: format!("blob {} has digest {actual}", self.digest),
                help: "the layout is corrupt; rebuild or re-copy it".into(),
            });
        }
        Ok(())
    }
}
