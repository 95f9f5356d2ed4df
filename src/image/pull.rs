//! Pulling a base image from a registry, for one platform, into the content-addressed blob
//! cache: manifests and blobs are verified against their digests before anything is used.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

use crate::error::{Error, Result};
use crate::oci::{self, parse_json, sha256_digest, Descriptor, Index, Manifest};
use crate::progress::{Direction, Reporter, Transfer};
use crate::registry::{parse_reference, registry_error, with_retry, Credentials, RegistryOptions};
use crate::target::Arch;

use super::base::{BaseLayer, ResolvedBase};

/// Media types we accept when pulling a manifest.
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    oci::MEDIA_OCI_MANIFEST,
    oci::MEDIA_OCI_INDEX,
    oci::MEDIA_DOCKER_MANIFEST,
    oci::MEDIA_DOCKER_LIST,
];

/// A base from Lambda's own registry that cannot be pulled: a static musl function needs no
/// base at all, which the error says.
fn default_base_hint(reference: &str, error: Error) -> Error {
    match error {
        Error::Registry { action, reference: r, message, help }
            if reference.starts_with("public.ecr.aws/lambda/") =>
        {
            Error::Registry {
                action,
                reference: r,
                message,
                help: format!("{help}; a static musl function (`libc = \"musl\"`) needs no base: `--base-image scratch`"),
            }
        }
        other => other,
    }
}

/// Pulls a base image's manifest, config and layers for `linux/<arch>` into the blob cache.
pub async fn pull_base(
    reference: &str,
    arch: Arch,
    options: &RegistryOptions,
    progress: &Reporter,
) -> Result<ResolvedBase> {
    let image = parse_reference(reference)?;
    let client = options.client()?;
    let credentials = options.credentials_for(image.resolve_registry());
    let fail = |what: &str, e| {
        default_base_hint(reference, registry_error(what, reference, &credentials, e))
    };
    let (bytes, digest) = with_retry(progress, "manifest pull", || {
        client.pull_manifest_raw(&image, &credentials.auth, ACCEPTED_MANIFESTS)
    })
    .await
    .map_err(|e| fail("pull the manifest of", e))?;
    verify(&bytes, &digest, reference)?;
    let value: serde_json::Value = parse_json(&bytes, reference)?;
    let is_index = value.get("manifests").is_some();
    let (manifest_bytes, manifest_digest) = if is_index {
        let index: Index = parse_json(&bytes, reference)?;
        let entry =
            oci::select_platform(&index, arch.oci_name()).ok_or_else(|| Error::InvalidImage {
                image: reference.to_string(),
                message: format!("the image index has no linux/{} image", arch.oci_name()),
                help: "choose a base image published for this architecture".into(),
            })?;
        let by_digest = image.clone_with_digest(entry.digest.clone());
        let (b, d) = with_retry(progress, "manifest pull", || {
            client.pull_manifest_raw(&by_digest, &credentials.auth, ACCEPTED_MANIFESTS)
        })
        .await
        .map_err(|e| fail("pull the platform manifest of", e))?;
        verify(&b, &entry.digest, reference)?;
        (b, d)
    } else {
        (bytes, digest)
    };
    let manifest: Manifest = parse_json(&manifest_bytes, reference)?;
    let cache = options.cache().join("blobs/sha256");
    std::fs::create_dir_all(&cache).map_err(|e| Error::io("could not create", &cache, e))?;
    let config_path = fetch_blob(
        &client,
        &image,
        &manifest.config,
        &cache,
        progress,
        &credentials,
        reference,
    )
    .await?;
    let config_bytes =
        std::fs::read(&config_path).map_err(|e| Error::io("could not read", &config_path, e))?;
    let config: serde_json::Value = parse_json(&config_bytes, reference)?;
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        if !oci::is_gzip_layer(&layer.media_type) {
            return Err(Error::InvalidImage {
                image: reference.to_string(),
                message: format!("layer {} has media type {}", layer.digest, layer.media_type),
                help: "Lambda accepts gzip layers only; choose a base with gzip layers".into(),
            });
        }
        let path = fetch_blob(
            &client,
            &image,
            layer,
            &cache,
            progress,
            &credentials,
            reference,
        )
        .await?;
        let mut descriptor = Descriptor::new(oci::MEDIA_OCI_LAYER_GZIP, &layer.digest, layer.size);
        descriptor.annotations = layer.annotations.clone();
        layers.push(BaseLayer { descriptor, path });
    }
    super::base::check_base(&config, &layers, reference)?;
    Ok(ResolvedBase {
        reference: reference.to_string(),
        config,
        layers,
        manifest_digest: Some(manifest_digest),
    })
}

fn verify(data: &[u8], expected: &str, reference: &str) -> Result<()> {
    let actual = sha256_digest(data);
    if actual != expected {
        return Err(Error::InvalidImage {
            image: reference.to_string(),
            message: format!("the registry sent content with digest {actual}, expected {expected}"),
            help: "the registry or a proxy altered the content; nothing was used".into(),
        });
    }
    Ok(())
}

/// Downloads a blob into the cache (unless it is there): streamed to a temporary file with
/// byte progress, one buffer in memory whatever its size, and verified against its digest
/// before it is given its final name.
async fn fetch_blob(
    client: &Client,
    image: &Reference,
    descriptor: &Descriptor,
    cache: &Path,
    progress: &Reporter,
    credentials: &Credentials,
    reference: &str,
) -> Result<PathBuf> {
    let path = cache.join(oci::digest_hex(&descriptor.digest)?);
    if path.is_file() {
        return Ok(path);
    }
    crate::store::sweep_once(cache);
    let (staging, _) = crate::store::Staging::file(cache, "pull")
        .map_err(|e| Error::io("could not create a file in", cache, e))?;
    let partial = staging.path().to_path_buf();
    let transfer = Arc::new(progress.transfer(
        Direction::Pull,
        &descriptor.digest,
        image.repository(),
        descriptor.size,
    ));
    let digest = with_retry(progress, "blob pull", || {
        let (partial, transfer) = (partial.clone(), transfer.clone());
        async move {
            transfer.restart();
            let file = tokio::fs::File::create(&partial).await?;
            let mut download = Download {
                file,
                hasher: Sha256::new(),
                transfer,
            };
            client
                .pull_blob(image, descriptor.digest.as_str(), &mut download)
                .await?;
            download.file.sync_all().await?;
            Ok(format!(
                "sha256:{}",
                hex::encode(download.hasher.finalize())
            ))
        }
    })
    .await;
    let verified = match digest {
        Ok(actual) if actual == descriptor.digest => Ok(()),
        Ok(actual) => Err(Error::InvalidImage {
            image: reference.to_string(),
            message: format!(
                "the registry sent content with digest {actual}, expected {}",
                descriptor.digest
            ),
            help: "the registry or a proxy altered the content; nothing was used".into(),
        }),
        Err(e) => Err(registry_error("pull a layer of", reference, credentials, e)),
    };
    if let Err(e) = verified {
        transfer.fail();
        return Err(e);
    }
    staging
        .commit(&path)
        .map_err(|e| Error::io("could not write", &path, e))?;
    transfer.done();
    Ok(path)
}

/// A blob on its way into the cache: written to its file, hashed and counted as it comes.
struct Download {
    file: tokio::fs::File,
    hasher: Sha256,
    transfer: Arc<Transfer>,
}

impl AsyncWrite for Download {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.file).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.hasher.update(&buf[..n]);
            self.transfer.advance(n as u64);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}
