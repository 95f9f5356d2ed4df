//! docker-archive tarballs: what `docker load` accepts and `docker save` writes.
//!
//! The archive is a `manifest.json` plus the OCI layout itself, as Docker 25+ writes it, so it
//! is also an OCI archive.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};

use super::{digest_hex, Layout};

/// Writes the image `manifest_digest` of `layout` as a docker-archive tarball naming it
/// `repo_tag` (`repository:tag`). The file is written under a temporary name and renamed into
/// place, so a half-written archive never sits at `path`.
pub fn write_docker_archive(
    layout: &Layout,
    manifest_digest: &str,
    repo_tag: &str,
    path: &Path,
) -> Result<()> {
    let manifest = layout.read_manifest(manifest_digest)?;
    let blob_name =
        |digest: &str| -> Result<String> { Ok(format!("blobs/sha256/{}", digest_hex(digest)?)) };
    let manifest_json = json!([{
        "Config": blob_name(&manifest.config.digest)?,
        "RepoTags": [repo_tag],
        "Layers": manifest.layers.iter().map(|l| blob_name(&l.digest)).collect::<Result<Vec<_>>>()?,
    }]);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io("could not create", &tmp, e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let io = |e| Error::io("could not write", path, e);
    let add_bytes = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data).map_err(io)
    };
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = std::fs::read(layout.dir.join("index.json"))
        .map_err(|e| Error::io("could not read", &layout.dir, e))?;
    add_bytes(&mut tar, "index.json", &index)?;
    add_bytes(
        &mut tar,
        "manifest.json",
        manifest_json.to_string().as_bytes(),
    )?;
    let mut digests: Vec<&str> = vec![manifest_digest, &manifest.config.digest];
    digests.extend(manifest.layers.iter().map(|l| l.digest.as_str()));
    for digest in digests {
        // Blobs are streamed from their files rather than read into memory: layers can be
        // gigabytes.
        let source = layout.blob_path(digest)?;
        let mut file =
            std::fs::File::open(&source).map_err(|e| Error::io("could not read", &source, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("could not read", &source, e))?
            .len();
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(size);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, blob_name(digest)?, &mut file)
            .map_err(io)?;
    }
    let writer = tar.into_inner().map_err(io)?;
    writer
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
