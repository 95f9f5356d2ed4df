//! The first step of a deploy: read what AWS has, with read-only calls only (Describe, Get,
//! List and GetAuthorizationToken), into an [`Observed`] state that the planner turns into
//! steps. A dry run stops after planning, so it never changes anything.

use crate::aws::Clients;
use crate::config::FunctionSpec;
use crate::deploy::model::alias::{newest_with, Published};
use crate::deploy::model::role::TARGETS_POLICY;
use crate::deploy::model::{FunctionState, Observed, Retention, RoleState};
use crate::error::{Error, Result};
use crate::lambda;
use crate::publish::ecr;
use crate::publish::lifecycle;

use super::{alias as alias_api, iam, lambda as lambda_api};

/// Reads the ECR repository, the function (with its published versions and alias when
/// versions are wanted) and the execution role of `spec`.
pub async fn observe(spec: &FunctionSpec, clients: &Clients) -> Result<Observed> {
    let ecr = ecr::observe(&clients.ecr, &spec.image.repository).await?;
    let name = spec.lambda_name.as_str();
    let mut function = lambda_api::get(&clients.lambda, name).await?;
    // Listed once, for the version to reuse and for the images `keep` protects.
    let deploy = &spec.deploy;
    let versions = match &function {
        Some(_) if deploy.publish || deploy.alias.is_some() || deploy.ecr_keep.is_some() => {
            alias_api::published_versions(&clients.lambda, name).await?
        }
        _ => Vec::new(),
    };
    if let Some(state) = function.as_mut() {
        if deploy.publish || deploy.alias.is_some() {
            if let Some(sha) = state.code_sha256.as_deref() {
                state.version_with_code = newest_with(&versions, sha);
            }
        }
        if let Some(alias) = &spec.deploy.alias {
            state.alias = alias_api::routing(&clients.lambda, name, alias).await?;
            if state.alias.is_some() {
                state.provisioned = alias_api::provisioned(&clients.lambda, name, alias).await?;
            }
        }
        state.async_invoke = lambda_api::event_invoke_config(&clients.lambda, name).await?;
        // The URL sits on the alias; before the alias exists there is none to read.
        let alias = spec.deploy.alias.as_deref();
        if alias.is_none() || state.alias.is_some() {
            if let Some((url, address)) =
                lambda_api::url_config(&clients.lambda, name, alias).await?
            {
                state.url = Some(url);
                state.url_address = Some(address);
            }
            state.url_statements =
                lambda_api::policy_statements(&clients.lambda, name, alias).await?;
        }
    }
    let account = lambda::account_of_repository_uri(&ecr.host).to_string();
    let role = observe_role(spec, function.as_ref(), clients, &account).await?;
    let retention = match &ecr.repository {
        Some(_) => observe_retention(spec, &versions, clients).await?,
        None => Retention::default(),
    };
    Ok(Observed {
        region: clients.region.clone(),
        ecr,
        function,
        role,
        retention,
    })
}

/// The lifecycle policy, and with `keep` set the published `versions` whose images are not
/// tagged as protected yet (versions published before `keep` was set).
async fn observe_retention(
    spec: &FunctionSpec,
    versions: &[Published],
    clients: &Clients,
) -> Result<Retention> {
    let repository = spec.image.repository.as_str();
    let lifecycle_text = lifecycle::get(&clients.ecr, repository).await?;
    let mut unprotected = Vec::new();
    if spec.deploy.ecr_keep.is_some() && !versions.is_empty() {
        let name = spec.lambda_name.as_str();
        let tags: Vec<String> = lifecycle::images(&clients.ecr, repository)
            .await?
            .into_values()
            .flatten()
            .collect();
        for version in versions {
            let number = version.number.to_string();
            if tags.contains(&lifecycle::version_tag(name, &number)) {
                continue;
            }
            if let Some(digest) = version.digest() {
                unprotected.push((number, digest));
            }
        }
    }
    Ok(Retention {
        lifecycle: lifecycle_text,
        unprotected,
    })
}

async fn observe_role(
    spec: &FunctionSpec,
    function: Option<&FunctionState>,
    clients: &Clients,
    account: &str,
) -> Result<RoleState> {
    if let Some(arn) = &spec.role {
        let exists = match lambda::parse_role_arn(arn) {
            // The planner refuses what is not a role ARN.
            None => None,
            Some((_, role_account)) if role_account != account => None,
            Some((name, _)) => match iam::get_role(&clients.iam, name).await {
                Ok(found) => Some(found.is_some()),
                // Not allowed to read roles: let Lambda judge the ARN.
                Err(Error::Aws {
                    code: Some(code), ..
                }) if code.starts_with("AccessDenied") => None,
                Err(e) => return Err(e),
            },
        };
        return Ok(RoleState::Configured {
            arn: arn.clone(),
            exists,
        });
    }
    // One role per function, whatever the architecture: named after the configured name.
    let name = lambda::default_role_name(&spec.name);
    if let Some(arn) = function.and_then(|f| f.role.clone()) {
        // Ours: the shared role, or the per-architecture one (`hello-arm64-lambda-role`)
        // earlier versions created, which the function moves off to the shared one.
        let legacy = lambda::default_role_name(&spec.lambda_name);
        let managed =
            lambda::parse_role_arn(&arn).is_some_and(|(role, _)| role == name || role == legacy);
        if !managed {
            return Ok(RoleState::Current { arn });
        }
    }
    let arn = iam::get_role(&clients.iam, &name).await?;
    let (attached, targets) = match arn {
        Some(_) => (
            iam::attached_policies(&clients.iam, &name).await?,
            iam::inline_policy(&clients.iam, &name, TARGETS_POLICY).await?,
        ),
        None => (Vec::new(), None),
    };
    Ok(RoleState::Default {
        name,
        arn,
        attached,
        targets,
    })
}
