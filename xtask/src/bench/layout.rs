//! Reading the OCI layouts the tool writes, and writing a base image layout
//! by hand, with `tar`, `gzip` and `sha256sum` (xtask's one dependency is
//! serde_json).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use super::helpers::{file_size, read, write};
use crate::Result;

/// The digests of the layers of the (single) image in the layout `dir`, base first.
pub(super) fn layer_digests(dir: &Path) -> Result<Vec<String>> {
    let index = read_json(&dir.join("index.json"))?;
    let manifest_digest = index
        .get("manifests")
        .and_then(Value::as_array)
        .and_then(|manifests| manifests.first())
        .and_then(|manifest| manifest.get("digest"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{} names no manifest", dir.display()))?;
    let manifest = read_json(&blob_path(dir, manifest_digest)?)?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the manifest in {} has no layers", dir.display()))?;
    layers
        .iter()
        .map(|layer| {
            layer
                .get("digest")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "a layer without a digest".into())
        })
        .collect()
}

/// The blob of the image's last layer: the bootstrap's, in the tool's images.
pub(super) fn last_layer(dir: &Path) -> Result<PathBuf> {
    let digests = layer_digests(dir)?;
    let last = digests
        .last()
        .ok_or_else(|| format!("the image in {} has no layers", dir.display()))?;
    blob_path(dir, last)
}

/// `blobs/sha256/HEX` of `digest` in the layout `dir`.
pub(super) fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("not a sha256 digest: `{digest}`"))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path)
        .map_err(|err| format!("failed to read {}: {err}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|err| format!("{} is not JSON: {err}", path.display()).into())
}

/// The size of `gzip -6` (one stream, one thread) of the tar inside the gzip
/// blob `blob`.
pub(super) fn gzip6_size(blob: &Path) -> Result<u64> {
    let out = read(
        Command::new("sh")
            .args(["-c", "set -e; gzip -dc < \"$1\" | gzip -6 -c | wc -c", "sh"])
            .arg(blob),
    )?;
    out.trim()
        .parse()
        .map_err(|_| format!("`wc -c` printed {out:?}").into())
}

/// The hex SHA-256 of what `sh -c script FILE` prints (`sha256sum` output).
fn sha256_of(script: &str, file: &Path) -> Result<String> {
    let out = read(Command::new("sh").args(["-c", script, "sh"]).arg(file))?;
    let hex = out.split_whitespace().next().unwrap_or("");
    if hex.len() == 64 {
        Ok(hex.to_owned())
    } else {
        Err(format!("`sha256sum` printed {out:?}").into())
    }
}

/// Makes (once) an OCI layout at `dir` with one gzip layer holding the file
/// `/data/zero.bin` of `size` zero bytes, with parent directories, owner root
/// and mtime 0; returns `oci:DIR:latest`.
pub(super) fn zero_base(dir: &Path, size: u64) -> Result<String> {
    let reference = format!("oci:{}:latest", dir.display());
    if dir.join("index.json").is_file() {
        return Ok(reference);
    }
    let scratch = dir.with_extension("src");
    let _ = fs::remove_dir_all(&scratch);
    let _ = fs::remove_dir_all(dir);
    let data = scratch.join("root/data");
    fs::create_dir_all(&data)
        .map_err(|err| format!("failed to create {}: {err}", data.display()))?;
    let zero = data.join("zero.bin");
    // Sparse: nothing is written to disk, but tar reads `size` zero bytes.
    fs::File::create(&zero)
        .and_then(|file| file.set_len(size))
        .map_err(|err| format!("failed to create {}: {err}", zero.display()))?;
    let layer = scratch.join("layer.tar.gz");
    read(
        Command::new("sh")
            .args([
                "-c",
                "set -e; tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C \"$1/root\" -cf - . \
                 | gzip -1 -n > \"$1/layer.tar.gz\"",
                "sh",
            ])
            .arg(&scratch),
    )?;
    let diff_id = sha256_of("gzip -dc < \"$1\" | sha256sum", &layer)?;
    let layer_hex = sha256_of("sha256sum < \"$1\"", &layer)?;
    let layer_size = file_size(&layer)?;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)
        .map_err(|err| format!("failed to create {}: {err}", blobs.display()))?;
    fs::rename(&layer, blobs.join(&layer_hex))
        .map_err(|err| format!("failed to move the layer into {}: {err}", blobs.display()))?;
    let config = base_config(&diff_id);
    let (config_hex, config_size) = put_blob(&blobs, config.as_bytes())?;
    let manifest = base_manifest(&config_hex, config_size, &layer_hex, layer_size);
    let (manifest_hex, manifest_size) = put_blob(&blobs, manifest.as_bytes())?;
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_hex}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
    );
    // index.json last: its presence says the layout is complete.
    write(&dir.join("index.json"), index.as_bytes())?;
    let _ = fs::remove_dir_all(&scratch);
    Ok(reference)
}

/// Writes `data` into `blobs` under its digest; returns the hex digest and size.
fn put_blob(blobs: &Path, data: &[u8]) -> Result<(String, u64)> {
    let staged = blobs.join("staged");
    write(&staged, data)?;
    let hex = sha256_of("sha256sum < \"$1\"", &staged)?;
    fs::rename(&staged, blobs.join(&hex))
        .map_err(|err| format!("failed to store a blob in {}: {err}", blobs.display()))?;
    Ok((hex, data.len() as u64))
}

/// The image config of a linux/amd64 base with one layer and no entrypoint.
fn base_config(diff_id_hex: &str) -> String {
    format!(
        r#"{{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id_hex}"]}},"history":[{{"created":"1970-01-01T00:00:00Z","created_by":"cargo xtask bench: a zero-filled file"}}]}}"#
    )
}

fn base_manifest(config_hex: &str, config_size: u64, layer_hex: &str, layer_size: u64) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_hex}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{layer_hex}","size":{layer_size}}}]}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_need_a_sha256_digest() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_path(Path::new("/l"), &format!("sha256:{hex}")).ok(),
            Some(PathBuf::from(format!("/l/blobs/sha256/{hex}")))
        );
        assert!(blob_path(Path::new("/l"), "sha256:../../etc").is_err());
        assert!(blob_path(Path::new("/l"), &format!("sha512:{hex}")).is_err());
    }

    #[test]
    fn the_hand_written_base_is_valid_json() {
        let hex = "b".repeat(64);
        let config: Value = serde_json::from_str(&base_config(&hex)).expect("config");
        assert_eq!(
            config
                .get("rootfs")
                .and_then(|r| r.get("diff_ids"))
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(1)
        );
        let manifest: Value =
            serde_json::from_str(&base_manifest(&hex, 10, &hex, 20)).expect("manifest");
        let layers = manifest.get("layers").and_then(Value::as_array);
        assert_eq!(
            layers
                .and_then(|l| l.first())
                .and_then(|l| l.get("size"))
                .and_then(Value::as_u64),
            Some(20)
        );
    }
}
