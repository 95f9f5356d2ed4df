//! ECR as a destination: the repository (created with the function's scan-on-push and tag
//! mutability), a repository policy that lets `lambda.amazonaws.com` (and cross-account
//! principals) pull, the push with a GetAuthorizationToken credential held in memory only, and
//! the manifest registered with PutImage, so that ECR's view holds the image even when the
//! bytes went to another registry host (a VPC endpoint, a test registry).
//!
//! Like a deploy, it goes observe (read-only calls: [`observe`]) -> plan (a pure function of
//! what was observed: [`plan`]) -> execute ([`execute`]); the deploy stage plans and runs these
//! same steps in front of its Lambda steps, and [`EcrPublisher`] runs them alone.

use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use aws_sdk_ecr::Client;
use base64::Engine;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};

use crate::aws::{self, AwsOptions, Clients};
use crate::config::values::TagMutability;
use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::{Layout, MEDIA_OCI_MANIFEST};
use crate::progress::Reporter;
use crate::registry::{Credentials, RegistryOptions};

use super::registry::{push, PushTarget, PushedImage};
use super::{Published, Publisher};

/// Where the credentials for the ECR registry came from (printed in auth errors).
pub const TOKEN_SOURCE: &str = "an ECR authorization token";

/// The `Sid`s of the statements this tool manages in a repository policy; others are kept.
const SID_LAMBDA: &str = "LambdaECRImageRetrievalPolicy";
const SID_CROSS_ACCOUNT: &str = "CrossAccountPull";
const SID_CROSS_ACCOUNT_LAMBDA: &str = "LambdaECRImageCrossAccountRetrievalPolicy";
const PULL_ACTIONS: [&str; 2] = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"];

/// An ECR repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repository {
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
    pub uri: String,
    /// The account.
    pub registry_id: String,
}

/// What ECR has for one repository, from read-only calls.
#[derive(Clone, Serialize)]
pub struct EcrState {
    /// The registry host, from GetAuthorizationToken's proxy endpoint.
    pub host: String,
    /// The repository, if it exists.
    pub repository: Option<Repository>,
    /// Its policy text, if it has one.
    pub policy: Option<String>,
    /// The push credential; never serialized or printed.
    #[serde(skip)]
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for EcrState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrState")
            .field("host", &self.host)
            .field("repository", &self.repository)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl EcrState {
    /// A state as a test or dry run would observe it, without a credential.
    pub fn new(host: &str, repository: Option<Repository>, policy: Option<String>) -> EcrState {
        EcrState {
            host: host.to_string(),
            repository,
            policy,
            credentials: None,
        }
    }
}

/// Reads what ECR has for `repository`: the registry host and a push credential
/// (GetAuthorizationToken), the repository (DescribeRepositories) and its policy.
pub async fn observe(client: &Client, repository: &str) -> Result<EcrState> {
    let (host, credentials) = authorization(client).await?;
    let repo = describe(client, repository).await?;
    let policy = match &repo {
        Some(_) => current_policy(client, repository).await?,
        None => None,
    };
    Ok(EcrState {
        host,
        repository: repo,
        policy,
        credentials: Some(credentials),
    })
}

/// One change that makes an image available in ECR.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "operation")]
pub enum EcrStep {
    /// Create the repository.
    CreateRepository {
        /// Its name.
        repository: String,
        /// Scan images on push.
        scan_on_push: bool,
        /// Tag mutability.
        tag_mutability: TagMutability,
    },
    /// Set the repository policy (ours replaced, other statements kept).
    SetRepositoryPolicy {
        /// The repository.
        repository: String,
        /// The whole new policy.
        policy: Value,
    },
    /// Push the blobs the registry lacks and the manifest.
    Push {
        /// Where to.
        target: PushTarget,
        /// The manifest digest.
        digest: String,
    },
    /// Register the manifest under its tag (a no-op when ECR has it).
    PutImage {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// The manifest digest.
        digest: String,
    },
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EcrPlan {
    /// The steps, in order.
    pub steps: Vec<EcrStep>,
    /// `<registry>/<repository>@<digest>`: what Lambda gets.
    pub image_uri: String,
    /// The account of the registry.
    pub account: String,
}

/// The steps that make `image` of `spec` available in ECR, given what ECR has. Pure: the same
/// inputs always give the same plan. `push_host` overrides where the bytes go.
pub fn plan(
    spec: &FunctionSpec,
    image: &BuiltImage,
    state: &EcrState,
    region: &str,
    push_host: Option<&str>,
) -> EcrPlan {
    let repository = spec.image.repository.clone();
    let mut steps = Vec::new();
    let repo_uri = match &state.repository {
        Some(r) => r.uri.clone(),
        None => {
            steps.push(EcrStep::CreateRepository {
                repository: repository.clone(),
                scan_on_push: spec.deploy.scan_on_push,
                tag_mutability: spec.deploy.tag_mutability,
            });
            format!("{}/{repository}", state.host)
        }
    };
    let wanted = policy(state.policy.as_deref(), region, &spec.deploy.cross_account);
    let same_policy = state
        .policy
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .is_some_and(|v| v == wanted);
    if !same_policy {
        steps.push(EcrStep::SetRepositoryPolicy {
            repository: repository.clone(),
            policy: wanted,
        });
    }
    steps.push(EcrStep::Push {
        target: PushTarget {
            registry: push_host.unwrap_or(&state.host).to_string(),
            repository: repository.clone(),
            tag: image.tag.clone(),
        },
        digest: image.digest.clone(),
    });
    steps.push(EcrStep::PutImage {
        repository,
        tag: image.tag.clone(),
        digest: image.digest.clone(),
    });
    EcrPlan {
        account: crate::lambda::account_of_repository_uri(&repo_uri).to_string(),
        image_uri: format!("{repo_uri}@{}", image.digest),
        steps,
    }
}

impl EcrStep {
    /// The service, operation, target and a few words, for plans and dry runs.
    pub fn describe(&self) -> (&'static str, &'static str, String, String) {
        match self {
            EcrStep::CreateRepository {
                repository,
                scan_on_push,
                tag_mutability,
            } => (
                "ecr",
                "CreateRepository",
                repository.clone(),
                format!(
                    "create the repository (scan on push: {scan_on_push}, tag mutability: {tag_mutability:?})"
                ),
            ),
            EcrStep::SetRepositoryPolicy { repository, .. } => (
                "ecr",
                "SetRepositoryPolicy",
                repository.clone(),
                "let lambda.amazonaws.com (and cross-account principals) pull".into(),
            ),
            EcrStep::Push { target, digest } => (
                "registry",
                "push",
                target.reference(),
                format!(
                    "push the missing blobs and the manifest {}",
                    crate::oci::short(digest)
                ),
            ),
            EcrStep::PutImage {
                repository, tag, ..
            } => (
                "ecr",
                "PutImage",
                format!("{repository}:{tag}"),
                "register the manifest with ECR (no-op when it is there)".into(),
            ),
        }
    }
}

/// Runs one step. A push returns what it pushed.
pub async fn execute(
    step: &EcrStep,
    client: &Client,
    state: &EcrState,
    image: &BuiltImage,
    registry: &RegistryOptions,
    function: &str,
    reporter: &Reporter,
) -> Result<Option<PushedImage>> {
    match step {
        EcrStep::CreateRepository {
            repository,
            scan_on_push,
            tag_mutability,
        } => {
            if create_repository(client, repository, *scan_on_push, *tag_mutability).await? {
                reporter.line(format!("✓ Created ECR repository {repository}"));
            }
        }
        EcrStep::SetRepositoryPolicy { repository, policy } => {
            client
                .set_repository_policy()
                .repository_name(repository)
                .policy_text(policy.to_string())
                .send()
                .await
                .map_err(|e| aws::error("ecr", "SetRepositoryPolicy", e))?;
            reporter.line(format!(
                "✓ Let Lambda pull from {repository} (repository policy)"
            ));
        }
        EcrStep::Push { target, .. } => {
            // The ECR token is used unless the caller gave credentials for the host.
            let mut registry = registry.clone();
            if let Some(credentials) = &state.credentials {
                registry
                    .credentials
                    .push((target.registry.clone(), credentials.clone()));
            }
            return push(image, target, &registry, reporter).await.map(Some);
        }
        EcrStep::PutImage {
            repository,
            tag,
            digest,
        } => {
            let manifest = Layout::open(image.layout_dir())?.read_blob(digest)?;
            let manifest = String::from_utf8(manifest).map_err(|_| Error::InvalidImage {
                image: image.layout.to_string(),
                message: "the manifest is not UTF-8 JSON".into(),
                help: "rebuild the image".into(),
            })?;
            put_image(client, repository, tag, &manifest, digest, function).await?;
        }
    }
    Ok(None)
}

/// DescribeRepositories for one name; `None` when it does not exist.
async fn describe(client: &Client, name: &str) -> Result<Option<Repository>> {
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

/// CreateRepository; returns whether this call created it (another deploy may have just now).
async fn create_repository(
    client: &Client,
    name: &str,
    scan_on_push: bool,
    tag_mutability: TagMutability,
) -> Result<bool> {
    let mutability = match tag_mutability {
        TagMutability::Mutable => ImageTagMutability::Mutable,
        TagMutability::Immutable => ImageTagMutability::Immutable,
    };
    let created = client
        .create_repository()
        .repository_name(name)
        .image_tag_mutability(mutability)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(scan_on_push)
                .build(),
        )
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) if aws::code(&e) == Some("RepositoryAlreadyExistsException") => Ok(false),
        Err(e) => Err(aws::error("ecr", "CreateRepository", e)),
    }
}

/// Push credentials from GetAuthorizationToken: the registry host (from the proxy endpoint)
/// and the decoded `AWS:password`, held in memory only.
async fn authorization(client: &Client) -> Result<(String, Credentials)> {
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
async fn put_image(
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
pub fn policy(existing: Option<&str>, region: &str, cross_account: &[String]) -> Value {
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
async fn current_policy(client: &Client, repository: &str) -> Result<Option<String>> {
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

/// Pushes each image to ECR: the repository and its pull policy ensured, the image pushed
/// with an ECR token (to `registry_override` when the bytes go elsewhere) and registered
/// with PutImage. The pushed image's `image_uri` is the ECR URI by digest.
#[derive(Debug, Clone)]
pub struct EcrPublisher {
    aws: AwsOptions,
    registry_override: Option<String>,
    registry: RegistryOptions,
}

impl EcrPublisher {
    /// A publisher reaching AWS with `aws`; `registry_override` is the host the bytes go to
    /// instead of the ECR endpoint, if any.
    pub fn new(
        aws: AwsOptions,
        registry_override: Option<String>,
        registry: RegistryOptions,
    ) -> EcrPublisher {
        EcrPublisher {
            aws,
            registry_override,
            registry,
        }
    }
}

impl Publisher for EcrPublisher {
    fn destination(&self) -> String {
        "ECR".into()
    }

    fn publish<'a>(
        &'a self,
        spec: &'a FunctionSpec,
        image: &'a BuiltImage,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<Published>> {
        Box::pin(async move {
            let clients =
                Clients::new(&self.aws, spec.deploy.region.as_deref(), &spec.lambda_name).await?;
            let state = observe(&clients.ecr, &spec.image.repository).await?;
            let plan = plan(
                spec,
                image,
                &state,
                &clients.region,
                self.registry_override.as_deref(),
            );
            let mut pushed = None;
            for step in &plan.steps {
                let name = &spec.lambda_name;
                let done = execute(
                    step,
                    &clients.ecr,
                    &state,
                    image,
                    &self.registry,
                    name,
                    reporter,
                );
                pushed = done.await?.or(pushed);
            }
            let mut pushed = pushed.ok_or_else(|| Error::Deploy {
                function: spec.lambda_name.clone(),
                message: "the ECR plan pushed nothing".into(),
                help: "this is a bug in cargo-lambda-image".into(),
            })?;
            // Lambda gets the ECR URI, whichever host the bytes went to.
            pushed.image_uri = plan.image_uri;
            Ok(Published::Pushed(pushed))
        })
    }
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
