//! A multi-architecture OCI image index over per-arch images already pushed, for consumers
//! other than Lambda: `docker run`, Kubernetes, `skopeo copy --all`, other tooling that picks
//! its platform from an index.
//!
//! **Lambda never gets the index.** Lambda refuses image indexes (one architecture per
//! function), so `deploy` and the templates of [`crate::template`] always use the per-arch
//! manifest digests (`repo@sha256:...` from [`PushedImage::image_uri`]). The index is an extra
//! tag next to the per-arch tags, pointing at the very same manifests.
//!
//! ```no_run
//! # async fn demo(x86: cargo_lambda_image::publish::PushedImage, arm: cargo_lambda_image::publish::PushedImage)
//! # -> cargo_lambda_image::Result<()> {
//! use cargo_lambda_image::{publish::index, progress::Reporter, registry::RegistryOptions};
//! let pushed = index::push_index(
//!     &[x86, arm],
//!     "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
//!     "hello",
//!     "1.0.0",
//!     &RegistryOptions::from_env(),
//!     &Reporter::discard(),
//! )
//! .await?;
//! println!("{} is {}", pushed.reference, pushed.digest);
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;

use oci_client::Reference;
use serde::Serialize;
use serde_json::Value;

use super::registry::PushedImage;
use crate::error::{Error, Result};
use crate::oci::{self, sha256_digest, short, Descriptor, Index, Platform};
use crate::progress::Reporter;
use crate::registry::{self, with_retry, RegistryOptions};
use crate::target::Arch;

/// What pushing an index did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexPushed {
    /// `registry/repository`.
    pub repository: String,
    /// The index's tag.
    pub tag: String,
    /// `registry/repository:tag`.
    pub reference: String,
    /// The index digest.
    pub digest: String,
    /// `registry/repository@digest` of the index (not for Lambda: see the module docs).
    pub index_uri: String,
    /// The index's size in bytes.
    pub size: u64,
    /// The per-arch manifests it lists, with their platforms.
    pub manifests: Vec<Descriptor>,
}

impl IndexPushed {
    /// The line `push --index` prints for it: the reference, its architectures as Lambda
    /// names them (the index lists OCI platforms), and its URI.
    pub fn line(&self) -> String {
        let arches: Vec<String> = self
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .map(|p| {
                p.architecture
                    .parse::<crate::target::Arch>()
                    .map_or_else(|_| p.architecture.clone(), |a| a.to_string())
            })
            .collect();
        format!(
            "index\t{}\t{}\t{}",
            self.reference,
            arches.join(","),
            self.index_uri
        )
    }
}

/// The index document over per-arch manifest descriptors (their platforms set), in
/// architecture order so the same images always give the same index digest.
pub fn build_index(manifests: &[(Arch, Descriptor)]) -> Index {
    let mut entries: Vec<(Arch, Descriptor)> = manifests.to_vec();
    entries.sort_by_key(|(arch, _)| *arch);
    Index::oci(
        entries
            .into_iter()
            .map(|(arch, mut d)| {
                d.platform = Some(Platform::linux(arch));
                d
            })
            .collect(),
    )
}

/// Checks that the images can share an index: at least one, all in `registry/repository`,
/// one per architecture, each pushed by a sha256 digest.
pub fn check_images(images: &[PushedImage], registry: &str, repository: &str) -> Result<()> {
    let repo = format!("{registry}/{repository}");
    let fail = |message: String, help: &str| Error::Index {
        reference: repo.clone(),
        message,
        help: help.to_string(),
    };
    if images.is_empty() {
        return Err(fail(
            "no images to list".into(),
            "push the per-architecture images first",
        ));
    }
    let mut arches = BTreeSet::new();
    for image in images {
        if image.repository != repo {
            return Err(fail(
                format!(
                    "the {} image of `{}` is in {}, not in {repo}",
                    image.arch, image.function, image.repository
                ),
                "an index can only list manifests of its own repository: push every architecture to the same repository",
            ));
        }
        if !arches.insert(image.arch) {
            return Err(fail(
                format!("two images are for {}", image.arch),
                "give one image per architecture",
            ));
        }
        oci::digest_hex(&image.digest)?;
    }
    Ok(())
}

/// Pushes an OCI image index listing the per-arch `images` (already pushed to
/// `registry/repository`) under `tag`, and returns its digest.
///
/// Each manifest is fetched back by digest, to list its real size and media type and to prove
/// it is in the repository (an index pointing at a missing manifest would be broken). Refuses
/// images from different repositories and two images of one architecture.
pub async fn push_index(
    images: &[PushedImage],
    registry: &str,
    repository: &str,
    tag: &str,
    options: &RegistryOptions,
    progress: &Reporter,
) -> Result<IndexPushed> {
    check_images(images, registry, repository)?;
    let reference = Reference::with_tag(registry.into(), repository.into(), tag.into());
    let display = format!("{registry}/{repository}:{tag}");
    let client = options.client()?;
    let credentials = options.credentials_for(registry);
    let fail = |what: &str, e| registry::registry_error(what, &display, &credentials, e);
    registry::authenticate_push(&client, &reference, &credentials, &display, progress).await?;

    let mut entries = Vec::new();
    for image in images {
        let by_digest =
            Reference::with_digest(registry.into(), repository.into(), image.digest.clone());
        let (bytes, _) = with_retry(progress, "manifest fetch", || {
            client.pull_manifest_raw(
                &by_digest,
                &credentials.auth,
                &[oci::MEDIA_OCI_MANIFEST, oci::MEDIA_DOCKER_MANIFEST],
            )
        })
        .await
        .map_err(|e| fail("fetch a per-arch manifest of", e))?;
        let actual = sha256_digest(&bytes);
        if actual != image.digest {
            return Err(Error::Index {
                reference: display.clone(),
                message: format!(
                    "the registry returned a manifest with digest {actual} for {}",
                    image.digest
                ),
                help: "the registry is misbehaving; push the images again".into(),
            });
        }
        let document: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Index {
            reference: display.clone(),
            message: format!("the manifest {} is not JSON: {e}", image.digest),
            help: "push the images again".into(),
        })?;
        let media_type = document["mediaType"]
            .as_str()
            .unwrap_or(oci::MEDIA_OCI_MANIFEST)
            .to_string();
        if oci::is_index(&media_type) || document.get("manifests").is_some() {
            return Err(Error::Index {
                reference: display.clone(),
                message: format!("{} is itself an index", image.image_uri),
                help: "list single-architecture images only".into(),
            });
        }
        entries.push((
            image.arch,
            Descriptor::new(&media_type, &image.digest, bytes.len() as u64),
        ));
    }

    let index = build_index(&entries);
    let body = serde_json::to_vec(&index).map_err(|e| Error::Index {
        reference: display.clone(),
        message: e.to_string(),
        help: String::new(),
    })?;
    let digest = sha256_digest(&body);
    let size = body.len() as u64;
    let body = bytes::Bytes::from(body);
    let content_type = http::HeaderValue::from_static(oci::MEDIA_OCI_INDEX);
    with_retry(progress, "index upload", || {
        client.push_manifest_raw(&reference, body.clone(), content_type.clone())
    })
    .await
    .map_err(|e| fail("push the image index to", e))?;
    let arches: Vec<&str> = entries.iter().map(|(a, _)| a.lambda_name()).collect();
    progress.line(format!(
        "✓ Pushed index {display} ({}) for {}",
        short(&digest),
        arches.join(", ")
    ));
    Ok(IndexPushed {
        repository: format!("{registry}/{repository}"),
        tag: tag.to_string(),
        reference: display,
        index_uri: format!("{registry}/{repository}@{digest}"),
        digest,
        size,
        manifests: index.manifests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(arch: Arch, repository: &str, hex: char) -> PushedImage {
        let digest = format!("sha256:{}", hex.to_string().repeat(64));
        PushedImage {
            function: "f".into(),
            arch,
            repository: repository.into(),
            tag: format!("1-{arch}"),
            image_uri: format!("{repository}@{digest}"),
            digest,
            uploaded: vec![],
            mounted: vec![],
            existing: vec![],
            bytes_uploaded: 0,
            referrer: None,
        }
    }

    #[test]
    fn index_lists_platforms_in_arch_order() {
        let arm = Descriptor::new(oci::MEDIA_OCI_MANIFEST, "sha256:b", 2);
        let x86 = Descriptor::new(oci::MEDIA_OCI_MANIFEST, "sha256:a", 1);
        let index = build_index(&[(Arch::Arm64, arm), (Arch::X86_64, x86)]);
        let text = serde_json::to_value(&index).unwrap();
        assert_eq!(text["mediaType"], oci::MEDIA_OCI_INDEX);
        assert_eq!(text["manifests"][0]["platform"]["architecture"], "amd64");
        assert!(text["manifests"][0]["platform"].get("variant").is_none());
        assert_eq!(text["manifests"][1]["platform"]["architecture"], "arm64");
        assert_eq!(text["manifests"][1]["platform"]["variant"], "v8");
    }

    #[test]
    fn refuses_mixed_repositories_and_duplicate_arches() {
        let ok = [
            pushed(Arch::X86_64, "r.example/a", 'a'),
            pushed(Arch::Arm64, "r.example/a", 'b'),
        ];
        assert!(check_images(&ok, "r.example", "a").is_ok());
        let mixed = [
            pushed(Arch::X86_64, "r.example/a", 'a'),
            pushed(Arch::Arm64, "r.example/b", 'b'),
        ];
        let err = check_images(&mixed, "r.example", "a").unwrap_err();
        assert!(err.to_string().contains("r.example/a"), "{err}");
        let twice = [
            pushed(Arch::Arm64, "r.example/a", 'a'),
            pushed(Arch::Arm64, "r.example/a", 'b'),
        ];
        let err = check_images(&twice, "r.example", "a").unwrap_err();
        assert!(
            format!("{err:?}").contains("two images are for arm64"),
            "{err:?}"
        );
        assert!(check_images(&[], "r.example", "a").is_err());
    }
}
