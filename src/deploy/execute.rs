//! The last step of a deploy: run the planned steps in order, each by its group
//! ([`super::steps`]), then wait for Lambda to settle and read back what it resolved. Nothing
//! here decides anything; the plan did.

use std::time::Duration;

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::short;
use crate::progress::Reporter;
use crate::publish::ecr;

use super::aws::lambda;
use super::model::{Observed, VersionRef};
use super::plan::DeployPlan;
use super::steps::{Context, Progress, Step};
use super::{DeployOptions, DeployedFunction};

/// How long provisioned concurrency may take to be ready, unless the options say.
const PROVISIONED_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `plan` for `image`.
pub(crate) async fn execute(
    plan: &DeployPlan,
    image: &BuiltImage,
    observed: &Observed,
    clients: &Clients,
    opts: &DeployOptions,
    reporter: &Reporter,
) -> Result<DeployedFunction> {
    let cx = Context {
        clients,
        reporter,
        alias: plan.alias.as_deref(),
        creates_role: plan.creates_role(),
        function_arn: observed.function.as_ref().map(|f| f.arn.as_str()),
        alias_before: plan.alias_before(),
        provisioned_timeout: opts.provisioned_timeout.unwrap_or(PROVISIONED_TIMEOUT),
    };
    let mut progress = Progress {
        desired: plan.desired.clone(),
        version: match &plan.version {
            Some(VersionRef::Existing(v)) => Some(v.clone()),
            _ => None,
        },
    };
    for step in &plan.steps {
        match step {
            Step::Ecr(step) => {
                let (ecr, registry, name) = (&clients.ecr, &opts.registry, &plan.desired.name);
                ecr::execute(step, ecr, &observed.ecr, image, registry, name, reporter).await?;
            }
            Step::Role(step) => step.run(&cx, &mut progress).await?,
            Step::Function(step) => step.run(&cx, &progress).await?,
            Step::Url(step) => step.run(&cx, &progress).await?,
            Step::Release(step) => step.run(&cx, &mut progress).await?,
        }
    }
    read_back(plan, observed, clients, progress, reporter).await
}

/// Waits for the function to settle and reads back what Lambda resolved: its ARN, the image
/// it resolved, and its URL.
async fn read_back(
    plan: &DeployPlan,
    observed: &Observed,
    clients: &Clients,
    progress: Progress,
    reporter: &Reporter,
) -> Result<DeployedFunction> {
    let desired = progress.desired;
    let name = desired.name.clone();
    if !plan.changes_function() {
        reporter.line(format!(
            "✓ {name} ({}) already runs {}",
            desired.arch,
            short(&desired.digest)
        ));
    }
    let client = &clients.lambda;
    lambda::wait_ready(client, &name, reporter).await?;
    let now = lambda::get(client, &name)
        .await?
        .ok_or_else(|| Error::Deploy {
            function: name.clone(),
            message: "the function vanished right after the deploy".into(),
            help: "check whether something else deletes it, and deploy again".into(),
        })?;
    let url = match &desired.url {
        Some(_) => lambda::url_config(client, &name, plan.alias.as_deref())
            .await?
            .map(|(_, address)| address),
        None => None,
    };
    // The canary this deploy set, or the one the alias still has.
    let canary = plan.canary_set().unwrap_or_else(|| {
        let routing = observed.function.as_ref().and_then(|f| f.alias.as_ref());
        routing.and_then(|r| r.canary.as_ref()).map(|c| c.weight)
    });
    Ok(DeployedFunction {
        url,
        canary,
        function: name,
        arch: desired.arch,
        arn: now.arn,
        version: progress.version,
        alias: plan.alias.clone(),
        image_uri: desired.image_uri,
        resolved_image_uri: now.resolved_image_uri,
        digest: desired.digest,
        changed: plan.changes_function(),
    })
}
