//! The last step of a deploy: run the planned steps in order, waiting for Lambda to settle
//! between changes, then read back what Lambda resolved. Nothing here decides anything; the
//! plan did.

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::oci::short;
use crate::progress::Reporter;
use crate::publish::ecr;

use super::observe::Observed;
use super::plan::{DeployPlan, Desired, Step, VersionRef};
use super::{iam, lambda, DeployOptions, DeployedFunction};

/// What running the steps has learned so far: the role's real ARN once created, the version
/// once published.
struct Progressing {
    desired: Desired,
    version: Option<String>,
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
            run_step(step, plan, observed, clients, &mut run, reporter).await?;
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
    Ok(DeployedFunction {
        url,
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
        } => iam::put_policy(&clients.iam, role, iam::TARGETS_POLICY, document).await?,
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
            lambda::set_url(client, &name, alias, url, create).await?;
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
        Step::SetAlias {
            alias,
            exists,
            version,
        } => {
            let v = match version {
                VersionRef::Existing(v) => v.clone(),
                VersionRef::Published => run.version.clone().ok_or_else(|| Error::Deploy {
                    function: name.clone(),
                    message: "no version was published for the alias".into(),
                    help: "this is a bug in cargo-lambda-image; deploy again".into(),
                })?,
            };
            lambda::set_alias(client, &name, alias, &v, *exists, reporter).await?;
            reporter.line(format!("✓ Alias {name}:{alias} -> version {v}"));
        }
    }
    Ok(())
}
