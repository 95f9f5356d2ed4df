//! An ECR repository's lifecycle (`deploy.ecr.keep`): the lifecycle policy, the tags that
//! protect the images Lambda versions use, and the image listing and deletion `prune` needs.
//!
//! ECR's lifecycle rules know tags, not Lambda. So every image a published version uses
//! carries a tag `lambda-<function>-v<N>`, and the policy has two rules:
//!
//! 1. images with a tag starting `lambda-` are matched by a rule that expires only beyond
//!    [`PROTECTED_COUNT`] of them, which in practice is never;
//! 2. every other image is expired beyond the newest `keep`.
//!
//! ECR never lets a lower-priority rule expire an image that a higher-priority rule's tag
//! selection matches, so rule 2 cannot touch an image a version uses.

use std::collections::BTreeMap;

use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;
use serde::Serialize;
use serde_json::{json, Value};

use crate::aws;
use crate::error::{Error, Result};

/// The tag prefix of protected images.
pub const PROTECTED_PREFIX: &str = "lambda-";
/// Rule 1's count: protected images are expired only beyond this many.
pub const PROTECTED_COUNT: u32 = 9999;
/// Marks the policies this tool wrote, so that one written by someone else is left alone.
const MARK: &str = "cargo-lambda-image";

/// The tag that protects the image of `function`'s published `version`.
pub fn version_tag(function: &str, version: &str) -> String {
    format!("{PROTECTED_PREFIX}{function}-v{version}")
}

/// The lifecycle policy that keeps the newest `keep` images besides the protected ones.
pub fn policy(keep: u32) -> Value {
    json!({
        "rules": [
            {
                "rulePriority": 1,
                "description": format!("{MARK}: images Lambda versions use (tagged {PROTECTED_PREFIX}*) are kept"),
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": [PROTECTED_PREFIX],
                    "countType": "imageCountMoreThan",
                    "countNumber": PROTECTED_COUNT,
                },
                "action": { "type": "expire" },
            },
            {
                "rulePriority": 2,
                "description": format!("{MARK}: keep the newest {keep} other images"),
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep,
                },
                "action": { "type": "expire" },
            },
        ]
    })
}

/// Whether a policy text is one this tool wrote.
pub fn is_ours(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["rules"].as_array().cloned())
        .is_some_and(|rules| {
            rules.iter().any(|r| {
                r["description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(MARK))
            })
        })
}

/// GetLifecyclePolicy; `None` when the repository has none.
pub async fn get(client: &Client, repository: &str) -> Result<Option<String>> {
    match client
        .get_lifecycle_policy()
        .repository_name(repository)
        .send()
        .await
    {
        Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_string)),
        Err(e) if aws::code(&e) == Some("LifecyclePolicyNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("ecr", "GetLifecyclePolicy", e)),
    }
}

/// PutLifecyclePolicy, or with `None` DeleteLifecyclePolicy.
pub async fn set(client: &Client, repository: &str, policy: Option<&Value>) -> Result<()> {
    match policy {
        Some(policy) => client
            .put_lifecycle_policy()
            .repository_name(repository)
            .lifecycle_policy_text(policy.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws::error("ecr", "PutLifecyclePolicy", e)),
        None => match client
            .delete_lifecycle_policy()
            .repository_name(repository)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if aws::code(&e) == Some("LifecyclePolicyNotFoundException") => Ok(()),
            Err(e) => Err(aws::error("ecr", "DeleteLifecyclePolicy", e)),
        },
    }
}

/// One image of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredImage {
    /// Its manifest digest.
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// DescribeImages, every page: digest to tags.
pub async fn images(client: &Client, repository: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut images = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .describe_images()
            .repository_name(repository)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| aws::error("ecr", "DescribeImages", e))?;
        for detail in out.image_details() {
            if let Some(digest) = detail.image_digest() {
                let tags: Vec<String> = detail.image_tags().to_vec();
                images.insert(digest.to_string(), tags);
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(images);
        }
    }
}

/// Adds `tag` to the image `digest` already in the repository: its manifest is read back
/// (BatchGetImage) and put again under the tag (PutImage), which is how ECR retags.
pub async fn tag(client: &Client, repository: &str, digest: &str, tag: &str) -> Result<()> {
    let out = client
        .batch_get_image()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await
        .map_err(|e| aws::error("ecr", "BatchGetImage", e))?;
    let image = out.images().first().ok_or_else(|| Error::Deploy {
        function: repository.to_string(),
        message: format!("ECR has no image {digest} in `{repository}` to tag"),
        help: "deploy the function again to push it".into(),
    })?;
    let manifest = image.image_manifest().unwrap_or_default();
    let result = client
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest)
        .set_image_manifest_media_type(image.image_manifest_media_type().map(str::to_string))
        .image_digest(digest)
        .image_tag(tag)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // Tagged already (by another architecture's deploy, or an earlier run).
        Err(e) if aws::code(&e) == Some("ImageAlreadyExistsException") => Ok(()),
        Err(e) => Err(aws::error("ecr", "PutImage", e)),
    }
}

/// BatchDeleteImage of `digests` (100 per call, ECR's limit); returns the digests ECR
/// refused, with its reason.
pub async fn delete(
    client: &Client,
    repository: &str,
    digests: &[String],
) -> Result<Vec<(String, String)>> {
    let mut refused = Vec::new();
    for chunk in digests.chunks(100) {
        let ids: Vec<ImageIdentifier> = chunk
            .iter()
            .map(|d| ImageIdentifier::builder().image_digest(d).build())
            .collect();
        let out = client
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(ids))
            .send()
            .await
            .map_err(|e| aws::error("ecr", "BatchDeleteImage", e))?;
        for failure in out.failures() {
            let digest = failure
                .image_id()
                .and_then(|i| i.image_digest())
                .unwrap_or_default();
            let reason = failure.failure_reason().unwrap_or("no reason given");
            refused.push((digest.to_string(), reason.to_string()));
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_protects_version_tags_before_counting_the_rest() {
        let p = policy(5);
        let rules = p["rules"].as_array().unwrap();
        assert_eq!(rules[0]["selection"]["tagPrefixList"], json!(["lambda-"]));
        assert_eq!(rules[0]["rulePriority"], 1);
        // ECR wants the `any` rule last (highest priority number).
        assert_eq!(rules[1]["selection"]["tagStatus"], "any");
        assert_eq!(rules[1]["selection"]["countNumber"], 5);
        assert!(is_ours(&p.to_string()));
        assert!(!is_ours(r#"{"rules":[{"description":"mine"}]}"#));
        assert_eq!(version_tag("hello-arm64", "7"), "lambda-hello-arm64-v7");
    }
}
