//! Stage 7: deploy an image to AWS Lambda.
//!
//! For one (function, arch): ensure the ECR repository (scan-on-push and tag mutability from
//! `deploy`), push the image with an ECR authorization token (to the repository's registry, or
//! to `registry_override` when the data plane is elsewhere), register the manifest with
//! `PutImage`, let `lambda.amazonaws.com` (and `deploy.cross-account` accounts) pull, use the
//! configured role or `<function>-lambda-role`, then create the function or update its
//! configuration and code, waiting for it to settle in between, and finally publish a version
//! and move the alias. The function always gets the image by digest
//! (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:...`), never an index: each
//! architecture is its own function (see [`function_name`]).
//!
//! Deploying the same digest with the same configuration again changes nothing and reports
//! `changed: false`. With `dry_run`, only read-only calls are made and the outcome lists the
//! calls a real deploy would make.
//!
//! Secrets (AWS keys, ECR tokens) stay in memory; no `Debug` or message here contains them.

mod aws;
pub mod ecr;
pub mod iam;
mod lambda;

use std::collections::{BTreeSet, HashMap};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use serde::Serialize;

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::oci::Layout;
use crate::image::BuiltImage;
use crate::progress::Progress;
use crate::push::{self, PushTarget};
use crate::registry::{short, RegistryOptions};
use crate::target::Arch;

use lambda::Desired;

/// The image's default WORKDIR; another one is sent to Lambda as ImageConfig.
const DEFAULT_WORKDIR: &str = "/var/task";

/// How to reach AWS and the registry.
#[derive(Clone, Default)]
pub struct DeployOptions {
    /// `--aws-profile`: the shared config/credentials profile.
    pub profile: Option<String>,
    /// `--region`: overrides `deploy.region` and the profile's region.
    pub region: Option<String>,
    /// `--endpoint-url`: one endpoint for ECR, IAM and Lambda (aws-config also reads
    /// `AWS_ENDPOINT_URL` and the per-service variables on its own).
    pub endpoint_url: Option<String>,
    /// `--registry`: the registry host the image bytes go to instead of the ECR proxy endpoint
    /// (a VPC endpoint, a test registry). The function still gets the ECR URI by digest.
    pub registry_override: Option<String>,
    /// Registry client settings (plain-HTTP hosts, extra CAs, explicit credentials that take
    /// precedence over the ECR token).
    pub registry: RegistryOptions,
    /// Only plan: read-only calls, no changes.
    pub dry_run: bool,
    /// A ready AWS configuration to use instead of loading one (library callers and tests);
    /// `region` and `endpoint_url` still override it.
    pub sdk_config: Option<SdkConfig>,
    /// An interceptor added to every AWS client (tests record the requests with it).
    pub interceptor: Option<SharedInterceptor>,
}

impl std::fmt::Debug for DeployOptions {
    // The SDK config holds a credentials provider; print only whether it is there.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployOptions")
            .field("profile", &self.profile)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("registry_override", &self.registry_override)
            .field("registry", &self.registry)
            .field("dry_run", &self.dry_run)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| "<given>"))
            .field("interceptor", &self.interceptor.as_ref().map(|_| "<given>"))
            .finish()
    }
}

/// One API call a deploy makes (or, in a dry run, would make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedStep {
    /// `ecr`, `registry`, `iam` or `lambda`.
    pub service: String,
    /// The operation, e.g. `CreateFunction`.
    pub operation: String,
    /// What it acts on (repository, role, function, alias).
    pub target: String,
    /// Why, in a few words.
    pub summary: String,
}

impl PlannedStep {
    fn new(service: &str, operation: &str, target: &str, summary: impl Into<String>) -> Self {
        PlannedStep {
            service: service.into(),
            operation: operation.into(),
            target: target.into(),
            summary: summary.into(),
        }
    }
}

/// A deployed function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedFunction {
    /// The Lambda function name.
    pub function: String,
    /// Its architecture.
    pub arch: Arch,
    /// The function ARN (unqualified).
    pub arn: String,
    /// The published version, when `publish` (or an alias) is configured.
    pub version: Option<String>,
    /// The alias, pointing at `version`.
    pub alias: Option<String>,
    /// The image URI given to Lambda (`...amazonaws.com/<repo>@sha256:...`).
    pub image_uri: String,
    /// `Code.ResolvedImageUri` as Lambda reports it.
    pub resolved_image_uri: Option<String>,
    /// The manifest digest.
    pub digest: String,
    /// Whether the function (code, configuration, tags, version or alias) changed.
    pub changed: bool,
}

/// What [`deploy`] did or, in a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum DeployOutcome {
    /// A dry run's plan.
    Planned {
        /// The Lambda function name.
        function: String,
        /// Its architecture.
        arch: Arch,
        /// The image URI the function would get.
        image_uri: String,
        /// The mutating calls a deploy would make, in order.
        steps: Vec<PlannedStep>,
    },
    /// A deploy.
    Deployed(DeployedFunction),
}

/// The Lambda function name of a spec among the planned ones: the configured name, with
/// `-<arch>` appended for every architecture but x86_64 when the same name is planned for
/// several architectures (`hello` for x86_64, `hello-arm64` for arm64). Lambda takes one
/// architecture per function, and an image index is never deployed.
pub fn function_name(spec: &FunctionSpec, planned: &[FunctionSpec]) -> String {
    function_name_among(
        &spec.name,
        spec.arch,
        planned.iter().map(|s| (s.name.as_str(), s.arch)),
    )
}

/// [`function_name`] for the function `name` on `arch`, among planned (name, arch) pairs.
/// Callers that drop functions which failed an earlier stage still pass every planned pair,
/// so a function's Lambda name does not depend on whether another architecture built.
pub fn function_name_among<'a>(
    name: &str,
    arch: Arch,
    planned: impl IntoIterator<Item = (&'a str, Arch)>,
) -> String {
    let arches: BTreeSet<Arch> = planned
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, a)| a)
        .collect();
    if arches.len() > 1 && arch != Arch::X86_64 {
        format!("{name}-{}", arch.lambda_name())
    } else {
        name.to_string()
    }
}

/// Deploys several (spec, image) pairs, naming the functions with [`function_name`].
pub async fn deploy_all(
    items: &[(FunctionSpec, BuiltImage)],
    opts: &DeployOptions,
    progress: &Progress,
) -> Result<Vec<DeployOutcome>> {
    let specs: Vec<FunctionSpec> = items.iter().map(|(s, _)| s.clone()).collect();
    let mut out = Vec::new();
    for (spec, image) in items {
        let mut spec = spec.clone();
        spec.name = function_name(&spec, &specs);
        out.push(deploy(&spec, image, opts, progress).await?);
    }
    Ok(out)
}

/// The AWS configuration for these options (profile, region, endpoint, credentials chain).
pub async fn aws_config(opts: &DeployOptions) -> SdkConfig {
    aws::load(opts, None).await
}

struct Clients {
    ecr: aws_sdk_ecr::Client,
    iam: aws_sdk_iam::Client,
    lambda: aws_sdk_lambda::Client,
    region: String,
}

impl Clients {
    fn new(sdk: &SdkConfig, opts: &DeployOptions, function: &str) -> Result<Clients> {
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| Error::Deploy {
                function: function.to_string(),
                message: "no AWS region is configured".into(),
                help: "set --region, AWS_REGION, the profile's `region`, or `deploy.region` in [package.metadata.lambda]".into(),
            })?;
        let mut ecr = aws_sdk_ecr::config::Builder::from(sdk);
        let mut iam = aws_sdk_iam::config::Builder::from(sdk);
        let mut lambda = aws_sdk_lambda::config::Builder::from(sdk);
        if let Some(i) = &opts.interceptor {
            ecr.push_interceptor(i.clone());
            iam.push_interceptor(i.clone());
            lambda.push_interceptor(i.clone());
        }
        Ok(Clients {
            ecr: aws_sdk_ecr::Client::from_conf(ecr.build()),
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
            region,
        })
    }
}

fn desired(spec: &FunctionSpec, image: &BuiltImage, image_uri: String, role: String) -> Desired {
    let custom_image = spec.image.entrypoint.is_some()
        || spec.image.command.is_some()
        || spec.image.workdir != DEFAULT_WORKDIR;
    Desired {
        name: spec.name.clone(),
        arch: spec.arch,
        image_uri,
        digest: image.digest.clone(),
        role,
        memory: spec.memory as i32,
        timeout: spec.timeout as i32,
        ephemeral_storage: spec.ephemeral_storage as i32,
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        image_config: custom_image.then(|| {
            (
                spec.image.entrypoint.clone(),
                spec.image.command.clone(),
                Some(spec.image.workdir.clone()),
            )
        }),
        tags: spec
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn zip_function_error(name: &str) -> Error {
    Error::Deploy {
        function: name.to_string(),
        message: "the function exists as a .zip package (PackageType Zip); Lambda cannot switch a function to a container image".into(),
        help: format!(
            "delete it (`aws lambda delete-function --function-name {name}`) and deploy again, or deploy under another name with `function-name` in [package.metadata.lambda]"
        ),
    }
}

fn check_arch(spec: &FunctionSpec, image: &BuiltImage) -> Result<()> {
    if spec.arch != image.arch {
        return Err(Error::Deploy {
            function: spec.name.clone(),
            message: format!(
                "the image is for {} but the function is planned for {}",
                image.arch, spec.arch
            ),
            help: "deploy each architecture's own image".into(),
        });
    }
    Ok(())
}

/// Deploys one function for one architecture (named `spec.name`; see [`deploy_all`] for the
/// multi-arch naming).
pub async fn deploy(
    spec: &FunctionSpec,
    image: &BuiltImage,
    opts: &DeployOptions,
    progress: &Progress,
) -> Result<DeployOutcome> {
    check_arch(spec, image)?;
    let sdk = aws::load(opts, spec.deploy.region.as_deref()).await;
    let clients = Clients::new(&sdk, opts, &spec.name)?;
    if opts.dry_run {
        return plan(spec, image, opts, &clients).await;
    }
    let name = spec.name.as_str();
    let repository = spec.image.repository.as_str();

    // ECR: repository, policy, credentials, push, PutImage.
    let (repo, created) = ecr::ensure(&clients.ecr, spec).await?;
    if created {
        progress.line(&format!("✓ Created ECR repository {}", repo.uri));
    }
    if ecr::ensure_policy(
        &clients.ecr,
        repository,
        &clients.region,
        &spec.deploy.cross_account,
    )
    .await?
    {
        progress.line(&format!(
            "✓ Let Lambda pull from {repository} (repository policy)"
        ));
    }
    let (ecr_host, token) = ecr::authorization(&clients.ecr).await?;
    let push_host = opts.registry_override.clone().unwrap_or(ecr_host);
    let mut registry = opts.registry.clone();
    registry.credentials.push((push_host.clone(), token));
    let target = PushTarget {
        registry: push_host,
        repository: repository.to_string(),
        tag: image.tag.clone(),
    };
    push::push(image, &target, &registry, progress).await?;
    drop(registry);
    let manifest = Layout::open(image.layout_dir())?.read_blob(&image.digest)?;
    let manifest = String::from_utf8(manifest).map_err(|_| Error::InvalidImage {
        image: image.layout.to_string(),
        message: "the manifest is not UTF-8 JSON".into(),
        help: "rebuild the image".into(),
    })?;
    ecr::put_image(
        &clients.ecr,
        repository,
        &image.tag,
        &manifest,
        &image.digest,
        name,
    )
    .await?;
    let image_uri = format!("{}@{}", repo.uri, image.digest);

    // The function as it is.
    let current = lambda::get(&clients.lambda, name).await?;
    if let Some(c) = current.as_ref().and_then(|c| c.configuration()) {
        if c.package_type() == Some(&aws_sdk_lambda::types::PackageType::Zip) {
            return Err(zip_function_error(name));
        }
    }

    // IAM: the configured role, the function's current one, or ours.
    let current_role = current
        .as_ref()
        .and_then(|c| c.configuration())
        .and_then(|c| c.role())
        .map(str::to_string);
    let role = match (&spec.role, current_role) {
        (Some(arn), _) => iam::check_configured(&clients.iam, name, arn, &repo.registry_id).await?,
        (None, Some(arn)) => iam::Role {
            arn,
            created: false,
        },
        (None, None) => {
            let role = iam::ensure_default(&clients.iam, name).await?;
            if role.created {
                progress.line(&format!("✓ Created IAM role {}", role.arn));
            }
            role
        }
    };
    let desired = desired(spec, image, image_uri.clone(), role.arn.clone());

    // Lambda: create, or update what differs.
    let mut changed = false;
    match &current {
        None => {
            lambda::create(&clients.lambda, &desired, role.created, progress).await?;
            lambda::wait_ready(&clients.lambda, name, progress).await?;
            progress.line(&format!(
                "✓ Created function {name} ({}) from {}",
                spec.arch,
                short(&image.digest)
            ));
            changed = true;
        }
        Some(current) => {
            if !lambda::config_matches(current.configuration(), &desired) {
                lambda::wait_ready(&clients.lambda, name, progress).await?;
                lambda::update_configuration(&clients.lambda, &desired, progress).await?;
                lambda::wait_ready(&clients.lambda, name, progress).await?;
                progress.line(&format!("✓ Updated the configuration of {name}"));
                changed = true;
            }
            if !lambda::code_matches(current, &desired) {
                lambda::wait_ready(&clients.lambda, name, progress).await?;
                lambda::update_code(&clients.lambda, &desired, progress).await?;
                lambda::wait_ready(&clients.lambda, name, progress).await?;
                progress.line(&format!(
                    "✓ Updated {name} ({}) to {}",
                    spec.arch,
                    short(&image.digest)
                ));
                changed = true;
            }
            let arn = current
                .configuration()
                .and_then(|c| c.function_arn())
                .unwrap_or(name);
            let tags: HashMap<String, String> = current.tags().cloned().unwrap_or_default();
            if lambda::ensure_tags(&clients.lambda, arn, &tags, &desired, progress).await? {
                changed = true;
            }
            if !changed {
                progress.line(&format!(
                    "✓ {name} ({}) already runs {}",
                    spec.arch,
                    short(&image.digest)
                ));
            }
        }
    }

    // Version and alias.
    let settled = lambda::wait_ready(&clients.lambda, name, progress).await?;
    let mut version = None;
    if spec.deploy.publish || spec.deploy.alias.is_some() {
        let reuse = if changed {
            None
        } else {
            match settled.code_sha256() {
                Some(sha) => lambda::published_with(&clients.lambda, name, sha).await?,
                None => None,
            }
        };
        let v = match reuse {
            Some(v) => v,
            None => {
                let v = lambda::publish(&clients.lambda, name, progress).await?;
                progress.line(&format!("✓ Published {name} version {v}"));
                changed = true;
                v
            }
        };
        version = Some(v);
    }
    if let (Some(alias), Some(v)) = (&spec.deploy.alias, &version) {
        if lambda::ensure_alias(&clients.lambda, name, alias, v, progress).await? {
            progress.line(&format!("✓ Alias {name}:{alias} -> version {v}"));
            changed = true;
        }
    }

    // Read back what Lambda resolved.
    let now = lambda::get(&clients.lambda, name)
        .await?
        .ok_or_else(|| Error::Deploy {
            function: name.to_string(),
            message: "the function vanished right after the deploy".into(),
            help: "check whether something else deletes it, and deploy again".into(),
        })?;
    Ok(DeployOutcome::Deployed(DeployedFunction {
        function: name.to_string(),
        arch: spec.arch,
        arn: now
            .configuration()
            .and_then(|c| c.function_arn())
            .unwrap_or_default()
            .to_string(),
        version,
        alias: spec.deploy.alias.clone(),
        image_uri,
        resolved_image_uri: now
            .code()
            .and_then(|c| c.resolved_image_uri())
            .map(str::to_string),
        digest: image.digest.clone(),
        changed,
    }))
}

/// A dry run: read-only calls only (Describe/Get/List and GetAuthorizationToken for the
/// registry host), returning the mutating calls a deploy would make.
async fn plan(
    spec: &FunctionSpec,
    image: &BuiltImage,
    opts: &DeployOptions,
    clients: &Clients,
) -> Result<DeployOutcome> {
    let name = spec.name.as_str();
    let repository = spec.image.repository.as_str();
    let mut steps = Vec::new();
    let repo = ecr::describe(&clients.ecr, repository).await?;
    let (ecr_host, _token) = ecr::authorization(&clients.ecr).await?;
    let repo_uri = match &repo {
        Some(r) => r.uri.clone(),
        None => {
            steps.push(PlannedStep::new(
                "ecr",
                "CreateRepository",
                repository,
                format!(
                    "create the repository (scan on push: {}, tag mutability: {:?})",
                    spec.deploy.scan_on_push, spec.deploy.tag_mutability
                ),
            ));
            format!("{ecr_host}/{repository}")
        }
    };
    let account = repo_uri.split('.').next().unwrap_or_default().to_string();
    let existing_policy = match &repo {
        Some(_) => ecr::current_policy(&clients.ecr, repository).await?,
        None => None,
    };
    let wanted = ecr::policy(
        existing_policy.as_deref(),
        &clients.region,
        &spec.deploy.cross_account,
    );
    let same_policy = existing_policy
        .as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .is_some_and(|v| v == wanted);
    if !same_policy {
        steps.push(PlannedStep::new(
            "ecr",
            "SetRepositoryPolicy",
            repository,
            "let lambda.amazonaws.com (and cross-account principals) pull",
        ));
    }
    let push_host = opts.registry_override.clone().unwrap_or(ecr_host);
    steps.push(PlannedStep::new(
        "registry",
        "push",
        &format!("{push_host}/{repository}:{}", image.tag),
        format!(
            "push the missing blobs and the manifest {}",
            short(&image.digest)
        ),
    ));
    steps.push(PlannedStep::new(
        "ecr",
        "PutImage",
        &format!("{repository}:{}", image.tag),
        "register the manifest with ECR (no-op when it is there)",
    ));
    let image_uri = format!("{repo_uri}@{}", image.digest);

    let current = lambda::get(&clients.lambda, name).await?;
    let configuration = current.as_ref().and_then(|c| c.configuration());
    if configuration.and_then(|c| c.package_type())
        == Some(&aws_sdk_lambda::types::PackageType::Zip)
    {
        return Err(zip_function_error(name));
    }
    let role = match (&spec.role, configuration.and_then(|c| c.role())) {
        (Some(arn), _) => {
            iam::check_configured(&clients.iam, name, arn, &account)
                .await?
                .arn
        }
        (None, Some(arn)) => arn.to_string(),
        (None, None) => {
            let role_name = iam::default_role_name(name);
            match iam::get_role(&clients.iam, &role_name).await? {
                Some(arn) => arn,
                None => {
                    steps.push(PlannedStep::new(
                        "iam",
                        "CreateRole",
                        &role_name,
                        "create the execution role, trusting lambda.amazonaws.com",
                    ));
                    steps.push(PlannedStep::new(
                        "iam",
                        "AttachRolePolicy",
                        &role_name,
                        "attach AWSLambdaBasicExecutionRole",
                    ));
                    format!("arn:aws:iam::{account}:role/{role_name}")
                }
            }
        }
    };
    let desired = desired(spec, image, image_uri.clone(), role);
    let mut changes = false;
    match &current {
        None => {
            steps.push(PlannedStep::new(
                "lambda",
                "CreateFunction",
                name,
                format!("create the Image function ({}) from {image_uri}", spec.arch),
            ));
            changes = true;
        }
        Some(current) => {
            if !lambda::config_matches(current.configuration(), &desired) {
                steps.push(PlannedStep::new(
                    "lambda",
                    "UpdateFunctionConfiguration",
                    name,
                    "set memory, timeout, ephemeral storage, environment, role and image config",
                ));
                changes = true;
            }
            if !lambda::code_matches(current, &desired) {
                steps.push(PlannedStep::new(
                    "lambda",
                    "UpdateFunctionCode",
                    name,
                    format!("deploy {image_uri} ({})", spec.arch),
                ));
                changes = true;
            }
            let tags = current.tags().cloned().unwrap_or_default();
            if desired.tags.iter().any(|(k, v)| tags.get(k) != Some(v)) {
                steps.push(PlannedStep::new("lambda", "TagResource", name, "set tags"));
                changes = true;
            }
        }
    }
    if spec.deploy.publish || spec.deploy.alias.is_some() {
        steps.push(PlannedStep::new(
            "lambda",
            "PublishVersion",
            name,
            if changes {
                "publish a version"
            } else {
                "publish a version unless one with this code exists"
            },
        ));
    }
    if let Some(alias) = &spec.deploy.alias {
        steps.push(PlannedStep::new(
            "lambda",
            "CreateAlias or UpdateAlias",
            &format!("{name}:{alias}"),
            "point the alias at the published version",
        ));
    }
    Ok(DeployOutcome::Planned {
        function: name.to_string(),
        arch: spec.arch,
        image_uri,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_options_hides_the_sdk_config() {
        let opts = DeployOptions {
            sdk_config: Some(SdkConfig::builder().build()),
            ..Default::default()
        };
        let text = format!("{opts:?}");
        assert!(text.contains("<given>"), "{text}");
    }
}
