//! The last step of a deploy: run the planned steps in order, waiting for Lambda to settle
//! between changes, then read back what Lambda resolved. Nothing here decides anything; the
//! plan did.

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::short;
use crate::progress::Reporter;
use crate::publish::{ecr, lifecycle};

use std::time::Duration;

use super::aws::{alias, iam, lambda};
use super::model::role::TARGETS_POLICY;
use super::model::{Canary, Desired, Observed, Routing, VersionRef};
use super::plan::{DeployPlan, Step};
use super::{DeployOptions, DeployedFunction};

/// How long provisioned concurrency may take to be ready, unless the options say.
const PROVISIONED_TIMEOUT: Duration = Duration::from_secs(600);

/// What running the steps has learned so far: the role's real ARN once created, the version
/// once published.
struct Progressing {
    desired: Desired,
    version: Option<String>,
}

impl Progressing {
    /// The version number a planned reference stands for.
    fn resolve(&self, version: &VersionRef) -> Result<String> {
        match version {
            VersionRef::Existing(v) => Ok(v.clone()),
            VersionRef::Published => self.version.clone().ok_or_else(|| Error::Deploy {
                function: self.desired.name.clone(),
                message: "no version was published for the alias".into(),
                help: "this is a bug in cargo-lambda-image; deploy again".into(),
            }),
        }
    }
}

/// Runs `plan` for `image`.
pub(crate) async fn execute(
    plan: &DeployPlan,
    image: &BuiltImage,
    observed: &Observed,
    clients: &Clients,
    opts: &DeployOptions,
    reporter: &Reporter,
) -> Result<DeployedFunction> {
    let mut run = Progressing {
        desired: plan.desired.clone(),
        version: match &plan.version {
            Some(VersionRef::Existing(v)) => Some(v.clone()),
            _ => None,
        },
    };
    for step in &plan.steps {
        if let Step::Ecr(step) = step {
            let (ecr, registry, name) = (&clients.ecr, &opts.registry, &run.desired.name);
            ecr::execute(step, ecr, &observed.ecr, image, registry, name, reporter).await?;
        } else {
            run_step(step, plan, observed, clients, opts, &mut run, reporter).await?;
        }
    }
    let (name, desired) = (run.desired.name.clone(), run.desired);
    if !plan.changes_function() {
        reporter.line(format!(
            "✓ {name} ({}) already runs {}",
            desired.arch,
            short(&desired.digest)
        ));
    }
    let client = &clients.lambda;
    lambda::wait_ready(client, &name, reporter).await?;
    // Read back what Lambda resolved.
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
    let canary = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::SetAlias { canary, .. } => Some(canary.as_ref().map(|(_, w)| *w)),
            _ => None,
        })
        .unwrap_or_else(|| {
            let routing = observed.function.as_ref().and_then(|f| f.alias.as_ref());
            routing.and_then(|r| r.canary.as_ref()).map(|c| c.weight)
        });
    Ok(DeployedFunction {
        url,
        canary,
        function: name,
        arch: desired.arch,
        arn: now.arn,
        version: run.version,
        alias: plan.alias.clone(),
        image_uri: desired.image_uri,
        resolved_image_uri: now.resolved_image_uri,
        digest: desired.digest,
        changed: plan.changes_function(),
    })
}

/// Runs one IAM or Lambda step, waiting for the function to settle around changes.
async fn run_step(
    step: &Step,
    plan: &DeployPlan,
    observed: &Observed,
    clients: &Clients,
    opts: &DeployOptions,
    run: &mut Progressing,
    reporter: &Reporter,
) -> Result<()> {
    let client = &clients.lambda;
    let name = run.desired.name.clone();
    let (arch, digest) = (run.desired.arch, short(&run.desired.digest).to_string());
    match step {
        Step::Ecr(_) => {}
        Step::CreateRole { name: role } => {
            let arn = iam::create_role(&clients.iam, role, &name).await?;
            reporter.line(format!("✓ Created IAM role {arn}"));
            if !arn.is_empty() {
                run.desired.role = arn;
            }
        }
        Step::AttachRolePolicy {
            name: role,
            policy_arn,
        } => iam::attach_policy(&clients.iam, role, policy_arn).await?,
        Step::PutRolePolicy {
            name: role,
            document,
        } => iam::put_policy(&clients.iam, role, TARGETS_POLICY, document).await?,
        Step::CreateFunction => {
            lambda::create(client, &run.desired, plan.creates_role(), reporter).await?;
            lambda::wait_ready(client, &name, reporter).await?;
            reporter.line(format!("✓ Created function {name} ({arch}) from {digest}"));
        }
        Step::UpdateFunctionConfiguration { .. } => {
            lambda::wait_ready(client, &name, reporter).await?;
            lambda::update_configuration(client, &run.desired, reporter).await?;
            lambda::wait_ready(client, &name, reporter).await?;
            reporter.line(format!("✓ Updated the configuration of {name}"));
        }
        Step::UpdateFunctionCode { .. } => {
            lambda::wait_ready(client, &name, reporter).await?;
            lambda::update_code(client, &run.desired, reporter).await?;
            lambda::wait_ready(client, &name, reporter).await?;
            reporter.line(format!("✓ Updated {name} ({arch}) to {digest}"));
        }
        Step::PutFunctionConcurrency { reserved, .. } => {
            lambda::set_concurrency(client, &name, Some(*reserved), reporter).await?;
            reporter.line(format!(
                "✓ Reserved {reserved} concurrent executions for {name}"
            ));
        }
        Step::DeleteFunctionConcurrency { .. } => {
            lambda::set_concurrency(client, &name, None, reporter).await?;
            reporter.line(format!("✓ Removed the concurrency reservation of {name}"));
        }
        Step::PutFunctionEventInvokeConfig { .. }
        | Step::DeleteFunctionEventInvokeConfig { .. } => {
            let wanted = run.desired.async_invoke.clone();
            lambda::set_event_invoke_config(client, &name, wanted.as_ref(), reporter).await?;
            reporter.line(format!(
                "✓ Set the asynchronous invocation settings of {name}"
            ));
        }
        Step::CreateFunctionUrlConfig
        | Step::UpdateFunctionUrlConfig { .. }
        | Step::DeleteFunctionUrlConfig => {
            let create = matches!(step, Step::CreateFunctionUrlConfig);
            let (alias, url) = (plan.alias.as_deref(), run.desired.url.as_ref());
            lambda::set_url(client, &name, alias, url, create, reporter).await?;
            reporter.line(format!("✓ Function URL of {name} set"));
        }
        Step::AddPermission { statement } => {
            let alias = plan.alias.as_deref();
            lambda::add_url_permission(client, &name, alias, statement).await?;
        }
        Step::RemovePermission { statement } => {
            let alias = plan.alias.as_deref();
            lambda::remove_permission(client, &name, alias, statement).await?;
        }
        Step::TagResource { tags } => {
            let arn = observed.function.as_ref().map_or(name.as_str(), |f| &f.arn);
            lambda::tag(client, &name, arn, tags, reporter).await?;
        }
        Step::PublishVersion => {
            lambda::wait_ready(client, &name, reporter).await?;
            let v = lambda::publish(client, &name, reporter).await?;
            reporter.line(format!("✓ Published {name} version {v}"));
            run.version = Some(v);
        }
        Step::SetAlias { .. }
        | Step::PutProvisionedConcurrencyConfig { .. }
        | Step::DeleteProvisionedConcurrencyConfig { .. }
        | Step::ProtectImage { .. }
        | Step::PutLifecyclePolicy { .. }
        | Step::DeleteLifecyclePolicy { .. } => {
            run_release_step(step, plan, clients, opts, run, reporter).await?
        }
    }
    Ok(())
}

/// Runs an alias, provisioned-concurrency or ECR-lifecycle step.
async fn run_release_step(
    step: &Step,
    plan: &DeployPlan,
    clients: &Clients,
    opts: &DeployOptions,
    run: &mut Progressing,
    reporter: &Reporter,
) -> Result<()> {
    let client = &clients.lambda;
    let name = run.desired.name.clone();
    match step {
        Step::SetAlias {
            alias: alias_name,
            from,
            version,
            canary,
        } => {
            let routing = Routing {
                version: run.resolve(version)?,
                canary: match canary {
                    Some((v, weight)) => Some(Canary {
                        version: run.resolve(v)?,
                        weight: *weight,
                    }),
                    None => None,
                },
            };
            alias::set(
                client,
                &name,
                alias_name,
                &routing,
                from.is_some(),
                reporter,
            )
            .await?;
            reporter.line(format!("✓ Alias {name}:{alias_name} -> {routing}"));
        }
        Step::PutProvisionedConcurrencyConfig {
            alias: alias_name,
            requested,
            from,
        } => {
            let timeout = opts.provisioned_timeout.unwrap_or(PROVISIONED_TIMEOUT);
            let ready = async {
                alias::set_provisioned(client, &name, alias_name, Some(*requested), reporter)
                    .await?;
                alias::wait_provisioned(client, &name, alias_name, timeout, reporter).await
            }
            .await;
            if let Err(e) = ready {
                let put_back = put_back(plan, clients, alias_name, *from, reporter).await;
                return Err(match e {
                    Error::Deploy {
                        function,
                        message,
                        help,
                    } => Error::Deploy {
                        function,
                        message: format!("{message}; {put_back}"),
                        help,
                    },
                    other => other,
                });
            }
            reporter.line(format!(
                "✓ {requested} provisioned environments ready for {name}:{alias_name}"
            ));
        }
        Step::ProtectImage {
            repository,
            version,
            digest,
        } => {
            let tag = lifecycle::version_tag(&name, &run.resolve(version)?);
            lifecycle::tag(&clients.ecr, repository, digest, &tag).await?;
            reporter.verbose(format!("✓ Tagged {} as {tag}", short(digest)));
        }
        Step::PutLifecyclePolicy { repository, keep } => {
            let policy = lifecycle::policy(*keep);
            lifecycle::set(&clients.ecr, repository, Some(&policy)).await?;
            reporter.line(format!(
                "✓ Lifecycle of {repository}: the newest {keep} images kept besides those versions use"
            ));
        }
        Step::DeleteLifecyclePolicy { repository } => {
            lifecycle::set(&clients.ecr, repository, None).await?;
            reporter.line(format!("✓ Removed the lifecycle policy of {repository}"));
        }
        Step::DeleteProvisionedConcurrencyConfig {
            alias: alias_name, ..
        } => {
            alias::set_provisioned(client, &name, alias_name, None, reporter).await?;
            reporter.line(format!(
                "✓ Removed the provisioned concurrency of {name}:{alias_name}"
            ));
        }
        _ => {}
    }
    Ok(())
}

/// After provisioned concurrency failed: puts the alias back where it routed before this
/// deploy (or deletes it, when the deploy created it) and the provisioned concurrency back to
/// what it was. Says what it did, for the error.
async fn put_back(
    plan: &DeployPlan,
    clients: &Clients,
    alias_name: &str,
    provisioned: Option<i32>,
    reporter: &Reporter,
) -> String {
    let (client, name) = (&clients.lambda, plan.desired.name.as_str());
    let before = plan.steps.iter().find_map(|s| match s {
        Step::SetAlias { from, .. } => Some(from.clone()),
        _ => None,
    });
    let alias_result = match &before {
        None => Ok("the alias was not moved".to_string()),
        Some(Some(routing)) => alias::set(client, name, alias_name, routing, true, reporter)
            .await
            .map(|_| format!("the alias was put back on {routing}")),
        Some(None) => alias::delete(client, name, alias_name)
            .await
            .map(|_| "the alias this deploy created was deleted".to_string()),
    };
    let provisioned_result =
        alias::set_provisioned(client, name, alias_name, provisioned, reporter).await;
    match (alias_result, provisioned_result) {
        (Ok(text), Ok(())) => text,
        (Err(e), _) | (_, Err(e)) => format!("putting the alias back failed too: {e}"),
    }
}
