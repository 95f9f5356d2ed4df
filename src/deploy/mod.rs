//! Stage 7: deploy an image to AWS Lambda, in three steps:
//!
//! 1. [`observe`]: read-only calls build the state AWS is in (the ECR repository and policy,
//!    the function with its configuration, code, tags, versions and alias, the execution role);
//! 2. [`plan`]: a pure function of (spec, image, observed state) to the steps that make the
//!    function what the spec says, each configuration change listed field by field;
//! 3. execute: run the steps, waiting for Lambda to settle in between, and read back what it
//!    resolved. A dry run stops after step 2 and reports the steps.
//!
//! The code is layered so that the decisions never meet the SDK: [`model`] holds the values
//! both sides use (the function as wanted and as it is, the alias's routing, the role's
//! policies); [`plan`] decides with them alone; the steps are grouped by the resource they
//! change, each group with how it is shown and how it is run; and the adapters in `aws` make
//! the calls and convert between the SDK's types and the model's.
//!
//! The function always gets its image by digest (`<account>.dkr.ecr.<region>.amazonaws.com/
//! <repo>@sha256:...`), never an index: each architecture is its own function, named by the plan
//! ([`FunctionSpec::lambda_name`]). Deploying the same digest with the same configuration again
//! changes nothing and reports `changed: false`.
//!
//! Secrets (AWS keys, ECR tokens, environment values) stay in memory; no `Debug`, message or
//! planned step here contains them.

mod aws;
mod execute;
pub mod model;
pub mod plan;
pub mod prune;
pub mod release;
mod steps;

use serde::Serialize;

use crate::aws::{AwsOptions, Clients};
use crate::config::FunctionSpec;
use crate::envfile::EnvVar;
use crate::error::Result;
use crate::image::BuiltImage;
use crate::progress::Reporter;
use crate::registry::RegistryOptions;
use crate::target::Arch;

// Callers name the remote invoke, the role's policies, the alias's values and the observed
// state by these paths, whichever layer holds them.
pub use aws::invoke;
pub use model::role as iam;
pub use model::{alias, FieldChange};
pub use plan::DeployPlan;
pub use steps::{FunctionStep, ReleaseStep, RoleStep, Step, UrlStep};

pub mod observe {
    //! The first step of a deploy: read-only calls into an [`Observed`] state that the
    //! planner turns into steps.

    pub use super::aws::observe::observe;
    pub use super::model::{FunctionState, LaunchOverrides, Observed, Retention, RoleState};
}

/// How to reach AWS and the registry.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// AWS profile, region, endpoint and credentials.
    pub aws: AwsOptions,
    /// `--registry`: the registry host the image bytes go to instead of the ECR proxy endpoint
    /// (a VPC endpoint, a test registry). The function still gets the ECR URI by digest.
    pub registry_override: Option<String>,
    /// Registry client settings (plain-HTTP hosts, extra CAs, explicit credentials that take
    /// precedence over the ECR token).
    pub registry: RegistryOptions,
    /// Only plan: read-only calls, no changes.
    pub dry_run: bool,
    /// Variables from `--env-file`, set on every function deployed, over the metadata's `env`.
    pub env: Vec<EnvVar>,
    /// `--canary`: the share of the alias the new version gets; the rest stays on the
    /// version the alias had (`promote` and `rollback` end it).
    pub canary: Option<alias::Weight>,
    /// How long to wait for provisioned concurrency to be ready (`None`: 10 minutes).
    pub provisioned_timeout: Option<std::time::Duration>,
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
    /// For updates, each setting that differs (environment values are never shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
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
    /// The share of the alias the new version gets, while a canary release runs
    /// (`--canary`; `version` is the canary's version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<alias::Weight>,
    /// Its Function URL, when it has one (`deploy.url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
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

/// Deploys one function for one architecture, as `spec.lambda_name`: observe, plan, and
/// (unless `opts.dry_run`) execute.
pub async fn deploy(
    spec: &FunctionSpec,
    image: &BuiltImage,
    opts: &DeployOptions,
    reporter: &Reporter,
) -> Result<DeployOutcome> {
    let spec = &with_environment(spec, &opts.env)?;
    // Refused before any AWS call (the planner says the same, for callers of `plan`).
    plan::check_release(spec, opts.canary)?;
    let clients = Clients::new(&opts.aws, spec.deploy.region.as_deref(), &spec.lambda_name).await?;
    let observed = observe::observe(spec, &clients).await?;
    let push_host = opts.registry_override.as_deref();
    let plan = plan::plan(spec, image, &observed, push_host, opts.canary)?;
    if opts.dry_run {
        return Ok(DeployOutcome::Planned {
            function: spec.lambda_name.clone(),
            arch: spec.arch,
            image_uri: plan.desired.image_uri.clone(),
            steps: plan.planned_steps(),
        });
    }
    execute::execute(&plan, image, &observed, &clients, opts, reporter)
        .await
        .map(DeployOutcome::Deployed)
}

/// `spec` with its whole environment: the metadata's values, the `from-env` ones read now
/// (each must be set), then the `--env-file` variables.
fn with_environment(spec: &FunctionSpec, extra: &[EnvVar]) -> Result<FunctionSpec> {
    let mut spec = spec.clone();
    spec.env = spec.environment(|var| std::env::var(var).ok(), true)?;
    spec.env_from.clear();
    spec.env
        .extend(extra.iter().map(|v| (v.key.clone(), v.value.clone())));
    Ok(spec)
}
