//! Attaching an image's SBOM to it in a registry, as an OCI 1.1 referrer.
//!
//! The SBOM goes up as an artifact manifest (`artifactType: application/spdx+json`, the
//! empty config, one layer: the SPDX document) whose `subject` is the image manifest, pushed
//! by digest. The image manifest itself is untouched, so Lambda takes it as before.
//!
//! A registry with the referrers API (`GET /v2/<repo>/referrers/<digest>`) lists the artifact
//! by itself. One without it (Docker's distribution 2.x, for one) answers 404 there; then the
//! referrers tag schema stands in: the tag `sha256-<hex of the image digest>` holds an image
//! index of the referrers, which is read, merged with the artifact and put back.

use std::path::Path;

use oci_client::Reference;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::sbom::MEDIA_SPDX_JSON;
use crate::oci::{self, digest_hex, sha256_digest, short, Descriptor, Index, Manifest};
use crate::progress::Reporter;
use crate::registry::{self, with_retry, Credentials, RegistryOptions};

/// A referrer pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attached {
    /// The artifact manifest's digest.
    pub digest: String,
    /// The referrers tag written, when the registry has no referrers API.
    pub tag: Option<String>,
}

/// The artifact manifest of an SBOM (its bytes as pushed) for the image `subject`.
pub fn sbom_manifest(sbom: &[u8], subject: Descriptor) -> Result<Vec<u8>> {
    let layer = Descriptor::new(MEDIA_SPDX_JSON, &sha256_digest(sbom), sbom.len() as u64);
    let manifest = Manifest::artifact(MEDIA_SPDX_JSON, vec![layer], subject);
    serde_json::to_vec(&manifest).map_err(|e| Error::Sbom {
        function: manifest_name(&manifest),
        message: e.to_string(),
        help: String::new(),
    })
}

fn manifest_name(manifest: &Manifest) -> String {
    manifest
        .subject
        .as_ref()
        .map(|s| s.digest.clone())
        .unwrap_or_default()
}

/// The referrers tag of a subject digest: `sha256-<hex>`.
pub fn referrers_tag(subject: &str) -> Result<String> {
    Ok(format!("sha256-{}", digest_hex(subject)?))
}

/// Pushes the SBOM at `sbom` as a referrer of the image manifest `subject`, in
/// `registry/repository`.
pub async fn attach_sbom(
    sbom: &Path,
    subject: Descriptor,
    registry: &str,
    repository: &str,
    options: &RegistryOptions,
    progress: &Reporter,
) -> Result<Attached> {
    let data = std::fs::read(sbom).map_err(|e| Error::Sbom {
        function: sbom.display().to_string(),
        message: format!("could not read it: {e}"),
        help: "build the image with --sbom (or `image.sbom = true`) before pushing it".into(),
    })?;
    let manifest = sbom_manifest(&data, subject.clone())?;
    let digest = sha256_digest(&manifest);
    let by_digest = Reference::with_digest(registry.into(), repository.into(), digest.clone());
    let display = format!("{registry}/{repository}@{digest}");
    let session = Session::open(&by_digest, &display, options, progress).await?;
    for (blob, bytes) in [
        (sha256_digest(oci::EMPTY_JSON), oci::EMPTY_JSON.to_vec()),
        (sha256_digest(&data), data),
    ] {
        session.put_blob(&blob, bytes).await?;
    }
    session
        .put_manifest(&by_digest, manifest.clone(), oci::MEDIA_OCI_MANIFEST)
        .await?;
    let subject_ref =
        Reference::with_digest(registry.into(), repository.into(), subject.digest.clone());
    // Listed already: the registry indexes referrers (or the tag lists this one).
    let listed = session
        .client
        .pull_referrers(&subject_ref, Some(MEDIA_SPDX_JSON))
        .await
        .is_ok_and(|index| index.manifests.iter().any(|m| m.digest == digest));
    let tag = if listed {
        None
    } else {
        let mut entry = Descriptor::new(oci::MEDIA_OCI_MANIFEST, &digest, manifest.len() as u64);
        entry.artifact_type = Some(MEDIA_SPDX_JSON.into());
        Some(session.add_to_referrers_tag(&subject_ref, entry).await?)
    };
    progress.line(format!(
        "✓ Attached SBOM {} to {registry}/{repository}@{}{}",
        short(&digest),
        short(&subject.digest),
        tag.as_ref()
            .map(|t| format!(" (referrers tag {t})"))
            .unwrap_or_default()
    ));
    Ok(Attached { digest, tag })
}

/// An authenticated client for pushing to one repository.
struct Session<'a> {
    client: oci_client::Client,
    reference: &'a Reference,
    display: &'a str,
    credentials: Credentials,
    progress: &'a Reporter,
}

impl<'a> Session<'a> {
    async fn open(
        reference: &'a Reference,
        display: &'a str,
        options: &RegistryOptions,
        progress: &'a Reporter,
    ) -> Result<Session<'a>> {
        let session = Session {
            client: options.client()?,
            credentials: options.credentials_for(reference.registry()),
            reference,
            display,
            progress,
        };
        let (client, credentials) = (&session.client, &session.credentials);
        registry::authenticate_push(client, reference, credentials, display, progress).await?;
        Ok(session)
    }

    fn fail(&self, what: &str, e: oci_client::errors::OciDistributionError) -> Error {
        registry::registry_error(what, self.display, &self.credentials, e)
    }

    /// Uploads a small blob unless the repository has it.
    async fn put_blob(&self, digest: &str, bytes: Vec<u8>) -> Result<()> {
        let exists = with_retry(self.progress, "blob check", || {
            self.client.blob_exists(self.reference, digest)
        })
        .await
        .map_err(|e| self.fail("check a blob of", e))?;
        if !exists {
            with_retry(self.progress, "blob upload", || {
                self.client.push_blob(self.reference, bytes.clone(), digest)
            })
            .await
            .map_err(|e| self.fail("upload a blob to", e))?;
        }
        Ok(())
    }

    async fn put_manifest(
        &self,
        reference: &Reference,
        body: Vec<u8>,
        media_type: &'static str,
    ) -> Result<()> {
        let (body, content_type) = (
            bytes::Bytes::from(body),
            http::HeaderValue::from_static(media_type),
        );
        with_retry(self.progress, "manifest upload", || {
            self.client
                .push_manifest_raw(reference, body.clone(), content_type.clone())
        })
        .await
        .map_err(|e| self.fail("push a manifest to", e))?;
        Ok(())
    }

    /// Adds `entry` to the index under the subject's referrers tag (a new one when there is
    /// none), replacing an entry of the same digest; returns the tag.
    async fn add_to_referrers_tag(&self, subject: &Reference, entry: Descriptor) -> Result<String> {
        let subject_digest = subject.digest().unwrap_or_default();
        let tag = referrers_tag(subject_digest)?;
        let at_tag = Reference::with_tag(
            subject.registry().into(),
            subject.repository().into(),
            tag.clone(),
        );
        let existing = self
            .client
            .pull_manifest_raw(&at_tag, &self.credentials.auth, &[oci::MEDIA_OCI_INDEX])
            .await;
        let mut index = match existing {
            Ok((bytes, _)) => oci::parse_json::<Index>(&bytes, &format!("{}:{tag}", self.display))?,
            Err(e) if is_not_found(&e) => Index::oci(Vec::new()),
            Err(e) => return Err(self.fail("read the referrers tag of", e)),
        };
        index.manifests.retain(|m| m.digest != entry.digest);
        index.manifests.push(entry);
        let body = serde_json::to_vec(&index).map_err(|e| Error::Sbom {
            function: self.display.to_string(),
            message: e.to_string(),
            help: String::new(),
        })?;
        self.put_manifest(&at_tag, body, oci::MEDIA_OCI_INDEX)
            .await?;
        Ok(tag)
    }
}

/// Whether a manifest read failed because there is none.
fn is_not_found(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::ServerError { code, .. } => *code == 404,
        E::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NotFound
            )
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_manifest_refers_to_the_image_and_holds_the_sbom() {
        let subject = Descriptor::new(
            oci::MEDIA_OCI_MANIFEST,
            &format!("sha256:{}", "a".repeat(64)),
            7,
        );
        let bytes = sbom_manifest(b"{\"spdxVersion\":\"SPDX-2.3\"}", subject.clone()).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest["mediaType"], oci::MEDIA_OCI_MANIFEST);
        assert_eq!(manifest["artifactType"], MEDIA_SPDX_JSON);
        assert_eq!(manifest["config"]["mediaType"], oci::MEDIA_OCI_EMPTY);
        assert_eq!(manifest["config"]["data"], "e30=");
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_SPDX_JSON);
        assert_eq!(manifest["subject"]["digest"], subject.digest);
        assert_eq!(manifest["subject"]["size"], 7);
        assert_eq!(
            referrers_tag(&subject.digest).unwrap(),
            format!("sha256-{}", "a".repeat(64))
        );
    }
}
