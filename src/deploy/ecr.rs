//! ECR's control plane: the repository, push credentials, registering the manifest, and the
//! repository policy that lets Lambda pull.

use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use aws_sdk_ecr::Client;
use base64::Engine;
use serde_json::{json, Value};

use crate::config::schema::TagMutability;
use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::oci::MEDIA_OCI_MANIFEST;
use crate::registry::Credentials;

use super::aws;

/// Where the credentials for the ECR registry came from (printed in auth errors).
pub const TOKEN_SOURCE: &str = "an ECR authorization token";

/// The `Sid`s of the statements this tool manages in a repository policy; others are kept.
const SID_LAMBDA: &str = "LambdaECRImageRetrievalPolicy";
const SID_CROSS_ACCOUNT: &str = "CrossAccountPull";
const SID_CROSS_ACCOUNT_LAMBDA: &str = "LambdaECRImageCrossAccountRetrievalPolicy";
const PULL_ACTIONS: [&str; 2] = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"];

/// An ECR repository.
#[derive(Debug, Clone)]
pub(crate) struct Repository {
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
    pub uri: String,
    /// The account.
    pub registry_id: String,
}

/// DescribeRepositories for one name; `None` when it does not exist.
pub(crate) async fn describe(client: &Client, name: &str) -> Result<Option<Repository>> {
    match client
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.repositories().first().map(|r| Repository {
            uri: r.repository_uri().unwrap_or_default().to_string(),
            registry_id: r.registry_id().unwrap_or_default().to_string(),
        })),
        Err(e) if aws::code(&e) == Some("RepositoryNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("ecr", "DescribeRepositories", e)),
    }
}

fn mutability(spec: &FunctionSpec) -> ImageTagMutability {
    match spec.deploy.tag_mutability {
        TagMutability::Mutable => ImageTagMutability::Mutable,
        TagMutability::Immutable => ImageTagMutability::Immutable,
    }
}

/// Describes or creates the repository; returns it and whether it was created.
pub(crate) async fn ensure(client: &Client, spec: &FunctionSpec) -> Result<(Repository, bool)> {
    let name = &spec.image.repository;
    if let Some(repo) = describe(client, name).await? {
        return Ok((repo, false));
    }
    let created = client
        .create_repository()
        .repository_name(name)
        .image_tag_mutability(mutability(spec))
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(spec.deploy.scan_on_push)
                .build(),
        )
        .send()
        .await;
    match created {
        Ok(out) => {
            let r = out.repository();
            Ok((
                Repository {
                    uri: r
                        .and_then(|r| r.repository_uri())
                        .unwrap_or_default()
                        .to_string(),
                    registry_id: r
                        .and_then(|r| r.registry_id())
                        .unwrap_or_default()
                        .to_string(),
                },
                true,
            ))
        }
        // Created by a concurrent deploy in the meantime.
        Err(e) if aws::code(&e) == Some("RepositoryAlreadyExistsException") => {
            let repo = describe(client, name).await?.ok_or_else(|| Error::Deploy {
                function: spec.name.clone(),
                message: format!("ECR says the repository `{name}` exists but does not list it"),
                help: "run the deploy again".into(),
            })?;
            Ok((repo, false))
        }
        Err(e) => Err(aws::error("ecr", "CreateRepository", e)),
    }
}

/// Push credentials from GetAuthorizationToken: the registry host (from the proxy endpoint)
/// and the decoded `AWS:password`, held in memory only.
pub(crate) async fn authorization(client: &Client) -> Result<(String, Credentials)> {
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| aws::error("ecr", "GetAuthorizationToken", e))?;
    let missing = |what: &str| Error::Aws {
        service: "ecr",
        operation: "GetAuthorizationToken".into(),
        code: None,
        message: format!("the answer has no {what}"),
        help: "check the region and the ECR endpoint".into(),
    };
    let data = out
        .authorization_data()
        .first()
        .ok_or_else(|| missing("authorization data"))?;
    let endpoint = data
        .proxy_endpoint()
        .ok_or_else(|| missing("proxy endpoint"))?;
    let host = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let token = data.authorization_token().ok_or_else(|| missing("token"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| missing("valid token (not base64 `user:password`)"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| missing("valid token (no `user:password`)"))?;
    Ok((
        host,
        Credentials::basic(user.to_string(), password.to_string(), TOKEN_SOURCE),
    ))
}

/// Registers the manifest under its tag with PutImage, so that ECR's view holds the image even
/// when the bytes went to another registry host. An identical image already there is fine.
pub(crate) async fn put_image(
    client: &Client,
    repository: &str,
    tag: &str,
    manifest: &str,
    digest: &str,
    function: &str,
) -> Result<()> {
    match client
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest)
        .image_manifest_media_type(MEDIA_OCI_MANIFEST)
        .image_digest(digest)
        .image_tag(tag)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if aws::code(&e) == Some("ImageAlreadyExistsException") => Ok(()),
        Err(e) if aws::code(&e) == Some("ImageTagAlreadyExistsException") => Err(Error::Deploy {
            function: function.to_string(),
            message: format!(
                "the tag `{tag}` of the immutable ECR repository `{repository}` already names another image"
            ),
            help: "change the tag (e.g. a `tag` template with {version} and bump the version), or set `deploy.tag-mutability = \"mutable\"`".into(),
        }),
        Err(e) => Err(aws::error("ecr", "PutImage", e)),
    }
}

/// The repository policy: the existing statements with ours replaced.
pub(crate) fn policy(existing: Option<&str>, region: &str, cross_account: &[String]) -> Value {
    let ours = [SID_LAMBDA, SID_CROSS_ACCOUNT, SID_CROSS_ACCOUNT_LAMBDA];
    let mut statements: Vec<Value> = existing
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|v| v.get("Statement").cloned())
        .and_then(|s| match s {
            Value::Array(items) => Some(items),
            single @ Value::Object(_) => Some(vec![single]),
            _ => None,
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            !s.get("Sid")
                .and_then(Value::as_str)
                .is_some_and(|sid| ours.contains(&sid))
        })
        .collect();
    statements.push(json!({
        "Sid": SID_LAMBDA,
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": PULL_ACTIONS,
    }));
    if !cross_account.is_empty() {
        let roots: Vec<String> = cross_account
            .iter()
            .map(|a| format!("arn:aws:iam::{a}:root"))
            .collect();
        let functions: Vec<String> = cross_account
            .iter()
            .map(|a| format!("arn:aws:lambda:{region}:{a}:function:*"))
            .collect();
        statements.push(json!({
            "Sid": SID_CROSS_ACCOUNT,
            "Effect": "Allow",
            "Principal": {"AWS": roots},
            "Action": PULL_ACTIONS,
        }));
        statements.push(json!({
            "Sid": SID_CROSS_ACCOUNT_LAMBDA,
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": PULL_ACTIONS,
            "Condition": {"StringLike": {"aws:sourceARN": functions}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The repository's current policy text, if any.
pub(crate) async fn current_policy(client: &Client, repository: &str) -> Result<Option<String>> {
    match client
        .get_repository_policy()
        .repository_name(repository)
        .send()
        .await
    {
        Ok(out) => Ok(out.policy_text().map(str::to_string)),
        Err(e) if aws::code(&e) == Some("RepositoryPolicyNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("ecr", "GetRepositoryPolicy", e)),
    }
}

/// Sets the policy when it differs from what is there; returns whether it did.
pub(crate) async fn ensure_policy(
    client: &Client,
    repository: &str,
    region: &str,
    cross_account: &[String],
) -> Result<bool> {
    let existing = current_policy(client, repository).await?;
    let wanted = policy(existing.as_deref(), region, cross_account);
    let same = existing
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .is_some_and(|v| v == wanted);
    if same {
        return Ok(false);
    }
    client
        .set_repository_policy()
        .repository_name(repository)
        .policy_text(wanted.to_string())
        .send()
        .await
        .map_err(|e| aws::error("ecr", "SetRepositoryPolicy", e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_keeps_foreign_statements_and_replaces_ours() {
        let existing = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "x"}, "Action": "ecr:*"},
            {"Sid": SID_LAMBDA, "Effect": "Deny"}
        ]})
        .to_string();
        let p = policy(Some(&existing), "eu-west-1", &["111122223333".into()]);
        let sids: Vec<&str> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(
            sids,
            [
                "Theirs",
                SID_LAMBDA,
                SID_CROSS_ACCOUNT,
                SID_CROSS_ACCOUNT_LAMBDA
            ]
        );
        assert_eq!(p["Statement"][1]["Effect"], "Allow");
        assert_eq!(
            p["Statement"][2]["Principal"]["AWS"][0],
            "arn:aws:iam::111122223333:root"
        );
        assert_eq!(
            p["Statement"][3]["Condition"]["StringLike"]["aws:sourceARN"][0],
            "arn:aws:lambda:eu-west-1:111122223333:function:*"
        );
    }
}
