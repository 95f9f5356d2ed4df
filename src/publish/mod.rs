//! Stage 6: put a built image where it is wanted. Every destination is a [`Publisher`], as in
//! ko's `pkg/publish`: another OCI layout directory ([`LayoutPublisher`]), a docker-archive
//! tarball ([`ArchivePublisher`]), a Docker engine ([`DaemonPublisher`]), a registry
//! ([`RegistryPublisher`]) or ECR ([`EcrPublisher`]); [`MultiPublisher`] sends one image to
//! several. The pipeline runs publishers, a few images at a time; an image index over the
//! per-architecture images ([`index`]) is pushed after them. A registry push can attach the
//! image's SBOM as an OCI 1.1 referrer ([`referrer`]).

pub mod ecr;
pub mod index;
pub mod lifecycle;
pub mod referrer;
pub mod registry;

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::{self, Descriptor, Index, Layout};
use crate::progress::Reporter;

pub use ecr::EcrPublisher;
pub use registry::{push, PushTarget, PushedImage, RegistryPublisher};

/// Where an image went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Published {
    /// Copied into an OCI layout directory, under a tag.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` it got.
        tag: String,
    },
    /// Written as a docker-archive tarball.
    DockerArchive {
        /// The file.
        path: PathBuf,
    },
    /// Loaded into a Docker engine.
    Loaded {
        /// `repository:tag` in the engine.
        name: String,
    },
    /// Pushed to a registry (ECR included).
    Pushed(PushedImage),
    /// Published to several destinations, in order.
    Many(Vec<Published>),
}

impl Published {
    /// This and, for [`Published::Many`], everything in it, flattened.
    pub fn all(&self) -> Vec<&Published> {
        match self {
            Published::Many(items) => items.iter().flat_map(Published::all).collect(),
            one => vec![one],
        }
    }

    /// The registry push among these, if any.
    pub fn pushed(&self) -> Option<&PushedImage> {
        self.all().into_iter().find_map(|p| match p {
            Published::Pushed(pushed) => Some(pushed),
            _ => None,
        })
    }
}

/// A destination for built images.
pub trait Publisher: Send + Sync {
    /// Where it publishes to, for messages.
    fn destination(&self) -> String;

    /// Publishes the image of `spec`.
    fn publish<'a>(
        &'a self,
        spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>>;
}

/// Replaces `{function}` and `{arch}` in a path template.
fn render_path(template: &str, image: &BuiltImage) -> PathBuf {
    PathBuf::from(
        template
            .replace("{function}", &image.function)
            .replace("{arch}", image.arch.lambda_name()),
    )
}

/// Writes each image as a docker-archive tarball (`docker load -i FILE`).
#[derive(Debug, Clone)]
pub struct ArchivePublisher {
    path: String,
}

impl ArchivePublisher {
    /// Writes to `path`, in which `{function}` and `{arch}` are replaced.
    pub fn new(path: impl Into<String>) -> ArchivePublisher {
        ArchivePublisher { path: path.into() }
    }

    /// Whether images of several functions get files of their own.
    pub fn is_per_image(&self) -> bool {
        self.path.contains("{function}") && self.path.contains("{arch}")
    }
}

impl Publisher for ArchivePublisher {
    fn destination(&self) -> String {
        format!("docker-archive:{}", self.path)
    }

    fn publish<'a>(
        &'a self,
        _spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        _reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let path = render_path(&self.path, image);
            let (image, target) = (image.clone(), path.clone());
            tokio::task::spawn_blocking(move || {
                oci::archive::write_docker_archive(
                    &Layout::open(image.layout_dir())?,
                    &image.digest,
                    &format!("{}:{}", image.repository, image.tag),
                    &target,
                )
            })
            .await
            .map_err(|e| Error::TaskFailed {
                task: "docker-archive",
                message: e.to_string(),
            })??;
            Ok(Published::DockerArchive { path })
        })
    }
}

/// Loads each image into the Docker engine (`DOCKER_HOST`, or the local default), as
/// `repository:tag`.
#[derive(Debug, Clone, Default)]
pub struct DaemonPublisher;

impl Publisher for DaemonPublisher {
    fn destination(&self) -> String {
        "the Docker engine".into()
    }

    fn publish<'a>(
        &'a self,
        _spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let name = crate::docker::load(
                image.layout_dir(),
                &image.digest,
                &format!("{}:{}", image.repository, image.tag),
                reporter,
            )
            .await?;
            Ok(Published::Loaded { name })
        })
    }
}

/// Copies each image into an OCI layout directory of the caller's, under its tag, next to the
/// images already there (as `skopeo copy ... oci:DIR:TAG` does). An image of the same tag is
/// replaced.
#[derive(Debug, Clone)]
pub struct LayoutPublisher {
    dir: String,
}

impl LayoutPublisher {
    /// Copies into `dir`, in which `{function}` and `{arch}` are replaced.
    pub fn new(dir: impl Into<String>) -> LayoutPublisher {
        LayoutPublisher { dir: dir.into() }
    }
}

impl Publisher for LayoutPublisher {
    fn destination(&self) -> String {
        format!("oci:{}", self.dir)
    }

    fn publish<'a>(
        &'a self,
        _spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        _reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let dir = render_path(&self.dir, image);
            let tag = format!("{}:{}", image.repository, image.tag);
            copy_into_layout(image, &dir, &tag)?;
            Ok(Published::Layout { dir, tag })
        })
    }
}

/// Copies the blobs of `image` into the layout at `dir` (created if needed), then adds the
/// manifest to its `index.json` under `tag`, replacing an entry of the same tag. The index is
/// written last, so it never names a manifest whose blobs are missing.
fn copy_into_layout(image: &BuiltImage, dir: &std::path::Path, tag: &str) -> Result<()> {
    let source = Layout::open(image.layout_dir())?;
    let target = if dir.join("oci-layout").is_file() {
        Layout::open(dir)?
    } else {
        Layout::create(dir)?
    };
    let mut digests = vec![image.digest.clone(), image.config_digest.clone()];
    digests.extend(image.layers.iter().map(|l| l.digest.clone()));
    for digest in &digests {
        target.import_blob(digest, &source.blob_path(digest)?)?;
    }
    let mut index = if dir.join("index.json").is_file() {
        target.index()?
    } else {
        Index::oci(Vec::new())
    };
    index
        .manifests
        .retain(|d| d.annotations.get(oci::REF_NAME).map(String::as_str) != Some(tag));
    let mut entry = Descriptor::new(oci::MEDIA_OCI_MANIFEST, &image.digest, image.manifest_size);
    entry.platform = Some(oci::Platform::linux(image.arch));
    entry
        .annotations
        .insert(oci::REF_NAME.into(), tag.to_string());
    index.manifests.push(entry);
    target.write_index(&index)
}

/// Publishes each image to several destinations, in order; the first failure stops it.
#[derive(Clone)]
pub struct MultiPublisher {
    publishers: Vec<Arc<dyn Publisher>>,
}

impl MultiPublisher {
    /// Publishes to each of `publishers`.
    pub fn new(publishers: Vec<Arc<dyn Publisher>>) -> MultiPublisher {
        MultiPublisher { publishers }
    }

    /// Whether there is nowhere to publish to.
    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty()
    }
}

impl Publisher for MultiPublisher {
    fn destination(&self) -> String {
        self.publishers
            .iter()
            .map(|p| p.destination())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn publish<'a>(
        &'a self,
        spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let mut all = Vec::new();
            for publisher in &self.publishers {
                all.push(publisher.publish(spec, image, reporter).await?);
            }
            Ok(Published::Many(all))
        })
    }
}
