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
use oci_client::Reference;
use serde::Serialize;

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::{short, Descriptor, Layout};
use crate::progress::{Direction, Reporter};
use crate::registry::upload::Uploader;
use crate::registry::{self, with_retry, RegistryOptions};
use crate::target::Arch;

use super::{Published, Publisher};

/// Pushes each image to a registry host, under its repository and tag.
#[derive(Debug, Clone)]
pub struct RegistryPublisher {
    host: String,
    options: RegistryOptions,
    sbom: bool,
}

impl RegistryPublisher {
    /// Pushes to `host` (`HOST` or `HOST:PORT`), which must be a registry host, not a
    /// reference.
    pub fn new(host: &str, options: RegistryOptions) -> Result<RegistryPublisher> {
        check_host(host)?;
        Ok(RegistryPublisher {
            host: host.to_string(),
            options,
            sbom: false,
        })
    }

    /// Also attaches every image's SBOM (see [`crate::image::sbom`]) as a referrer
    /// ([`super::referrer`]); images whose configuration says `image.sbom` get theirs anyway.
    pub fn with_sbom(mut self, sbom: bool) -> RegistryPublisher {
        self.sbom = sbom;
        self
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
        spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let target = PushTarget {
                registry: self.host.clone(),
                repository: image.repository.clone(),
                tag: image.tag.clone(),
            };
            let mut pushed = push(image, &target, &self.options, reporter).await?;
            if self.sbom || spec.image.sbom {
                let subject = Descriptor::new(
                    crate::oci::MEDIA_OCI_MANIFEST,
                    &image.digest,
                    image.manifest_size,
                );
                let attached = super::referrer::attach_sbom(
                    crate::image::sbom::path(spec).as_std_path(),
                    subject,
                    &self.host,
                    &image.repository,
                    &self.options,
                    reporter,
                )
                .await?;
                pushed.referrer = Some(attached.digest);
            }
            Ok(Published::Pushed(pushed))
        })
    }
}

/// Refuses what is not a registry host (see [`crate::registry::grammar::check_host`]).
pub fn check_host(host: &str) -> Result<()> {
    crate::registry::grammar::check_host(host).map_err(|why| Error::InvalidValue {
        source_: Box::new(crate::error::Source::Cli {
            flag: "--registry".into(),
        }),
        key: "registry".into(),
        message: format!("`{host}` is not a registry host: {why}"),
        help: "give --registry as HOST or HOST:PORT, e.g. 127.0.0.1:5000".into(),
    })
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
    /// The digest of the SBOM's artifact manifest, when one was attached as a referrer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

impl PushedImage {
    /// The line `push` prints for it: function, arch, `repository:tag` and the image URI.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}:{}\t{}",
            self.function, self.arch, self.repository, self.tag, self.image_uri
        )
    }
}

/// How many blobs of one image are sent at once.
const PARALLEL_BLOBS: usize = 3;

/// Pushes an image: its blobs first (those the registry lacks, a few at a time), the manifest
/// last under the tag.
pub async fn push(
    image: &BuiltImage,
    target: &PushTarget,
    options: &RegistryOptions,
    progress: &Reporter,
) -> Result<PushedImage> {
    let session = Session::open(image, target, options, progress).await?;
    let mut blobs: Vec<Descriptor> = image.layers.clone();
    blobs.push(Descriptor::new(
        crate::oci::MEDIA_OCI_CONFIG,
        &image.config_digest,
        0,
    ));
    // Owned digests: a stream borrowing `blobs` would not be `Send` across the awaits.
    let digests: Vec<(usize, String)> =
        blobs.iter().map(|b| b.digest.clone()).enumerate().collect();
    let session = &session;
    let outcomes: Vec<(usize, Result<Sent>)> = futures_util::stream::iter(digests)
        .map(|(i, digest)| async move { (i, session.send_blob(&digest).await) })
        .buffer_unordered(PARALLEL_BLOBS)
        .collect()
        .await;
    let mut outcomes: Vec<(usize, Sent)> = outcomes
        .into_iter()
        .map(|(i, sent)| sent.map(|s| (i, s)))
        .collect::<Result<_>>()?;
    outcomes.sort_by_key(|(i, _)| *i);
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
        referrer: None,
    };
    for (i, sent) in outcomes {
        let digest = blobs[i].digest.clone();
        match sent {
            Sent::Existing => pushed.existing.push(digest),
            Sent::Mounted => pushed.mounted.push(digest),
            Sent::Uploaded(bytes) => {
                pushed.uploaded.push(digest);
                pushed.bytes_uploaded += bytes;
            }
        }
    }
    pushed.bytes_uploaded += session.send_manifest(&image.digest).await?;
    progress.line(format!(
        "✓ Pushed {} ({})",
        target.reference(),
        short(&image.digest)
    ));
    Ok(pushed)
}

/// What became of one blob.
enum Sent {
    /// The repository had it.
    Existing,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded, this many bytes.
    Uploaded(u64),
}

/// One image's push: the client, where to and with which credentials.
struct Session<'a> {
    client: oci_client::Client,
    reference: Reference,
    target: &'a PushTarget,
    credentials: registry::Credentials,
    options: &'a RegistryOptions,
    progress: &'a Reporter,
    layout: Layout,
    /// The base's repository, when it is on the same registry: its layers can be mounted.
    base_repository: Option<String>,
    /// Sends blobs, resuming interrupted uploads, with the token the authentication gave.
    uploader: Uploader,
}

impl<'a> Session<'a> {
    async fn open(
        image: &BuiltImage,
        target: &'a PushTarget,
        options: &'a RegistryOptions,
        progress: &'a Reporter,
    ) -> Result<Session<'a>> {
        let reference = Reference::with_tag(
            target.registry.clone(),
            target.repository.clone(),
            target.tag.clone(),
        );
        let layout = Layout::open(image.layout_dir())?;
        let client = options.client()?;
        let credentials = options.credentials_for(&target.registry);
        let token = registry::authenticate_push(
            &client,
            &reference,
            &credentials,
            &target.reference(),
            progress,
        )
        .await?;
        Ok(Session {
            uploader: Uploader::new(
                options,
                reference.resolve_registry(),
                token.as_deref(),
                &credentials,
            ),
            // Only a base named on the target's registry can be mounted from; the check on the
            // text comes first because parsing a reference compiles oci-client's reference
            // grammar, which costs a push of nothing new most of its time.
            base_repository: Some(&image.base)
                .filter(|base| base.starts_with(&format!("{}/", target.registry)))
                .and_then(|base| base.parse::<Reference>().ok())
                .filter(|b| {
                    b.resolve_registry() == reference.resolve_registry()
                        && b.repository() != reference.repository()
                })
                .map(|b| b.repository().to_string()),
            client,
            reference,
            target,
            credentials,
            options,
            progress,
            layout,
        })
    }

    fn fail(&self, what: &str, e: oci_client::errors::OciDistributionError) -> Error {
        registry::registry_error(what, &self.target.reference(), &self.credentials, e)
    }

    /// Makes sure the repository has the blob: it has it, or it is mounted from a repository
    /// known to have it, or it is uploaded. Pushes of one blob to one registry take turns, so
    /// the first upload serves the others.
    async fn send_blob(&self, digest: &str) -> Result<Sent> {
        let (registry, repository) = (&self.target.registry, &self.target.repository);
        let locations = &self.options.locations;
        let _turn = locations.turn(registry, digest).await;
        let exists = with_retry(self.progress, "blob check", || {
            self.client.blob_exists(&self.reference, digest)
        })
        .await
        .map_err(|e| self.fail("check a blob of", e))?;
        if exists {
            locations.remember(registry, repository, digest);
            return Ok(Sent::Existing);
        }
        let mut sources: Vec<String> = self.base_repository.iter().cloned().collect();
        sources.extend(locations.repositories(registry, digest));
        sources.retain(|s| s != repository);
        sources.dedup();
        for source in sources.iter().take(3) {
            if self.mount(source, digest).await {
                locations.remember(registry, repository, digest);
                return Ok(Sent::Mounted);
            }
            // Stale: the repository was deleted, or never got the blob after all.
            locations.forget(registry, source, digest);
        }
        let bytes = self.upload(digest).await?;
        locations.remember(registry, repository, digest);
        Ok(Sent::Uploaded(bytes))
    }

    /// Mounts a blob from another repository of the registry; whether it is there now.
    async fn mount(&self, source: &str, digest: &str) -> bool {
        let from = Reference::with_tag(
            self.target.registry.clone(),
            source.to_string(),
            "latest".into(),
        );
        self.client
            .mount_blob(&self.reference, &from, digest)
            .await
            .is_ok()
            && self
                .client
                .blob_exists(&self.reference, digest)
                .await
                .unwrap_or(false)
    }

    /// Uploads a blob from its file, in chunks with byte progress, resuming where an earlier
    /// attempt (or run) stopped; returns the bytes sent.
    async fn upload(&self, digest: &str) -> Result<u64> {
        let path = self.layout.blob_path(digest)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("could not read", &path, e))?
            .len();
        let peer = format!("{}/{}", self.target.registry, self.target.repository);
        let transfer = self
            .progress
            .transfer(Direction::Upload, digest, &peer, size);
        let result = self
            .uploader
            .upload(
                self.reference.repository(),
                digest,
                &path,
                size,
                &transfer,
                self.progress,
            )
            .await;
        match result {
            Ok(sent) => {
                transfer.done();
                Ok(sent)
            }
            Err(e) => {
                transfer.fail();
                Err(self.fail("upload a blob to", e))
            }
        }
    }

    /// Puts the manifest under the tag; returns its size.
    async fn send_manifest(&self, digest: &str) -> Result<u64> {
        let manifest = bytes::Bytes::from(self.layout.read_blob(digest)?);
        let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
        with_retry(self.progress, "manifest upload", || {
            self.client
                .push_manifest_raw(&self.reference, manifest.clone(), content_type.clone())
        })
        .await
        .map_err(|e| self.fail("push the manifest to", e))?;
        Ok(manifest.len() as u64)
    }
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
