//! Pushing an image from its OCI layout to a registry.
//!
//! Blobs first, each only if the registry lacks it (HEAD), mounted from the base's repository
//! when both live on the same registry, uploaded otherwise (streamed from its file in chunks,
//! with byte progress); the manifest last, under its tag. A tag therefore never points at an
//! incomplete image, and a push that was interrupted uploads only what is still missing when
//! run again.

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
use oci_client::{Reference, RegistryOperation};
use serde::Serialize;

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::{file_chunks, short, Descriptor, Layout};
use crate::progress::{Direction, Reporter};
use crate::registry::{self, with_retry, RegistryOptions};
use crate::target::Arch;

use super::{Published, Publisher};

/// How many bytes one upload request carries (oci-client's chunk size).
const UPLOAD_CHUNK: usize = 4 << 20;

/// Pushes each image to a registry host, under its repository and tag.
#[derive(Debug, Clone)]
pub struct RegistryPublisher {
    host: String,
    options: RegistryOptions,
}

impl RegistryPublisher {
    /// Pushes to `host` (`HOST` or `HOST:PORT`), which must be a registry host, not a
    /// reference.
    pub fn new(host: &str, options: RegistryOptions) -> Result<RegistryPublisher> {
        check_host(host)?;
        Ok(RegistryPublisher {
            host: host.to_string(),
            options,
        })
    }

    /// The registry host.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Publisher for RegistryPublisher {
    fn destination(&self) -> String {
        self.host.clone()
    }

    fn publish<'a>(
        &'a self,
        _spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let target = PushTarget {
                registry: self.host.clone(),
                repository: image.repository.clone(),
                tag: image.tag.clone(),
            };
            push(image, &target, &self.options, reporter)
                .await
                .map(Published::Pushed)
        })
    }
}

/// Refuses what is not a registry host.
pub fn check_host(host: &str) -> Result<()> {
    if host.is_empty() || host.contains('/') {
        return Err(Error::InvalidValue {
            source_: Box::new(crate::error::Source::Cli {
                flag: "--registry".into(),
            }),
            key: "registry".into(),
            message: format!("`{host}` is not a registry host"),
            help: "give --registry as HOST or HOST:PORT, e.g. 127.0.0.1:5000".into(),
        });
    }
    Ok(())
}

/// Where to push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushTarget {
    /// Registry host (and port).
    pub registry: String,
    /// Repository name.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

impl PushTarget {
    /// `registry/repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedImage {
    /// The function.
    pub function: String,
    /// The architecture.
    pub arch: Arch,
    /// `registry/repository`.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The manifest digest.
    pub digest: String,
    /// `registry/repository@digest`: what Lambda should deploy.
    pub image_uri: String,
    /// Blobs uploaded.
    pub uploaded: Vec<String>,
    /// Blobs mounted from another repository.
    pub mounted: Vec<String>,
    /// Blobs the registry already had.
    pub existing: Vec<String>,
    /// Bytes uploaded (blobs and manifest).
    pub bytes_uploaded: u64,
}

/// Pushes an image.
pub async fn push(
    image: &BuiltImage,
    target: &PushTarget,
    options: &RegistryOptions,
    progress: &Reporter,
) -> Result<PushedImage> {
    let reference = Reference::with_tag(
        target.registry.clone(),
        target.repository.clone(),
        target.tag.clone(),
    );
    let display = target.reference();
    let client = options.client()?;
    let credentials = options.credentials_for(&target.registry);
    let fail = |what: &str, e| registry::registry_error(what, &display, &credentials, e);
    with_retry(progress, "authentication", || {
        client.auth(&reference, &credentials.auth, RegistryOperation::Push)
    })
    .await
    .map_err(|e| fail("authenticate for", e))?;

    // Base layers can be mounted from the base's repository when it is on the same registry.
    let mount_source = image.base.parse::<Reference>().ok().filter(|b| {
        b.resolve_registry() == reference.resolve_registry()
            && b.repository() != reference.repository()
    });

    let layout = Layout::open(image.layout_dir())?;
    let mut blobs: Vec<Descriptor> = image.layers.clone();
    blobs.push(Descriptor::new(
        crate::oci::MEDIA_OCI_CONFIG,
        &image.config_digest,
        0,
    ));
    let mut pushed = PushedImage {
        function: image.function.clone(),
        arch: image.arch,
        repository: format!("{}/{}", target.registry, target.repository),
        tag: target.tag.clone(),
        digest: image.digest.clone(),
        image_uri: format!("{}/{}@{}", target.registry, target.repository, image.digest),
        uploaded: Vec::new(),
        mounted: Vec::new(),
        existing: Vec::new(),
        bytes_uploaded: 0,
    };
    for blob in &blobs {
        let digest = blob.digest.as_str();
        let exists = with_retry(progress, "blob check", || {
            client.blob_exists(&reference, digest)
        })
        .await
        .map_err(|e| fail("check a blob of", e))?;
        if exists {
            pushed.existing.push(blob.digest.clone());
            continue;
        }
        if let Some(source) = &mount_source {
            let mounted = client.mount_blob(&reference, source, digest).await.is_ok()
                && client
                    .blob_exists(&reference, digest)
                    .await
                    .unwrap_or(false);
            if mounted {
                pushed.mounted.push(blob.digest.clone());
                continue;
            }
        }
        let path = layout.blob_path(digest)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("could not read", &path, e))?
            .len();
        let transfer = std::sync::Arc::new(progress.transfer(
            Direction::Upload,
            digest,
            &pushed.repository,
            size,
        ));
        let result = with_retry(progress, "blob upload", || {
            transfer.restart();
            let transfer = transfer.clone();
            // Streamed from the file, one chunk in memory at a time, counted as it goes.
            let chunks = file_chunks(&path, UPLOAD_CHUNK).map(move |chunk| {
                let chunk = chunk.map_err(oci_client::errors::OciDistributionError::IoError)?;
                transfer.advance(chunk.len() as u64);
                Ok(chunk)
            });
            client.push_blob_stream(&reference, chunks, digest, Some(size))
        })
        .await;
        match result {
            Ok(_) => transfer.done(),
            Err(e) => {
                transfer.fail();
                return Err(fail("upload a blob to", e));
            }
        }
        pushed.uploaded.push(blob.digest.clone());
        pushed.bytes_uploaded += size;
    }
    let manifest = bytes::Bytes::from(layout.read_blob(&image.digest)?);
    let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
    with_retry(progress, "manifest upload", || {
        client.push_manifest_raw(&reference, manifest.clone(), content_type.clone())
    })
    .await
    .map_err(|e| fail("push the manifest to", e))?;
    pushed.bytes_uploaded += manifest.len() as u64;
    progress.line(format!("✓ Pushed {display} ({})", short(&image.digest)));
    Ok(pushed)
}

/// The push target of an image, with the registry host given.
pub fn target_for(image: &BuiltImage, registry: &str) -> Result<PushTarget> {
    check_host(registry)?;
    Ok(PushTarget {
        registry: registry.to_string(),
        repository: image.repository.clone(),
        tag: image.tag.clone(),
    })
}
