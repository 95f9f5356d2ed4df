//! The first step of a deploy: read what AWS has, with read-only calls only (Describe, Get,
//! List and GetAuthorizationToken), into an [`Observed`] state that the planner turns into
//! steps. A dry run stops after planning, so it never changes anything.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::Clients;
use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::lambda;
use crate::publish::ecr::{self, EcrState};
use crate::publish::lifecycle;

use super::{iam, lambda as lambda_api};

/// What a function's image runs, as Lambda's `ImageConfig` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LaunchOverrides {
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub command: Vec<String>,
    /// WORKDIR.
    pub workdir: Option<String>,
}

/// A Lambda function as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FunctionState {
    /// Its ARN.
    pub arn: String,
    /// `Image` or `Zip`.
    pub package_type: Option<String>,
    /// Its execution role.
    pub role: Option<String>,
    /// Memory in MB.
    pub memory: Option<i32>,
    /// Timeout in seconds.
    pub timeout: Option<i32>,
    /// `/tmp` size in MB (Lambda omits it for the default, 512).
    pub ephemeral_storage: Option<i32>,
    /// Description (empty: none).
    pub description: String,
    /// X-Ray tracing mode, when Lambda says.
    pub tracing: Option<String>,
    /// The KMS key of the environment, when not Lambda's own.
    pub kms_key: Option<String>,
    /// The VPC, when the function has one.
    pub vpc: Option<super::plan::Vpc>,
    /// Reserved concurrent executions, when reserved.
    pub reserved_concurrency: Option<i32>,
    /// Its `LoggingConfig`, when Lambda reports one.
    pub logging: Option<super::plan::Logging>,
    /// Its dead-letter target.
    pub dead_letter: Option<String>,
    /// Its file system: access point ARN and mount path.
    pub file_system: Option<(String, String)>,
    /// Its event invoke configuration, when it has one.
    pub async_invoke: Option<super::plan::AsyncInvoke>,
    /// Its Function URL (on the configured alias, if any), when it has one.
    pub url: Option<super::plan::FunctionUrl>,
    /// The address of that URL.
    pub url_address: Option<String>,
    /// The statement IDs of the resource policy (of the alias, if any).
    pub url_statements: Vec<String>,
    /// Environment variables (their values are never printed; see [`super::plan`]).
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// Its `ImageConfig`.
    pub image_config: LaunchOverrides,
    /// Its architectures (Lambda omits them for x86_64 on old functions).
    pub architectures: Vec<String>,
    /// The image URI it was given.
    pub image_uri: Option<String>,
    /// The image URI Lambda resolved (by digest).
    pub resolved_image_uri: Option<String>,
    /// The code's SHA-256, which published versions carry too.
    pub code_sha256: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// The newest published version with the current code, when one was looked for.
    pub version_with_code: Option<String>,
    /// Where the configured alias routes; `None` when there is no such alias.
    pub alias: Option<super::alias::Routing>,
    /// The alias's provisioned concurrency, when it has some.
    pub provisioned: Option<super::alias::Provisioned>,
}

/// The execution role as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RoleState {
    /// The configured `role`; `exists` is known only for roles of the deploying account that
    /// it may read.
    Configured {
        /// The ARN.
        arn: String,
        /// Whether GetRole found it.
        exists: Option<bool>,
    },
    /// No role is configured; the function has this one already.
    Current {
        /// The ARN.
        arn: String,
    },
    /// No role is configured, and the function is new or has the role this tool manages:
    /// `<function>-lambda-role`, shared by the function's architectures.
    Default {
        /// The role's name.
        name: String,
        /// Its ARN, when it exists.
        arn: Option<String>,
        /// The managed policies attached to it.
        attached: Vec<String>,
        /// Its inline policy for targets ([`iam::TARGETS_POLICY`]).
        targets: Option<serde_json::Value>,
    },
}

/// Everything a deploy of one function needs to know about AWS.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    /// The region.
    pub region: String,
    /// The ECR side.
    pub ecr: EcrState,
    /// The function, if it exists.
    pub function: Option<FunctionState>,
    /// The execution role.
    pub role: RoleState,
    /// The repository's lifecycle and the versions whose images it must protect.
    pub retention: Retention,
}

/// What `deploy.ecr.keep` needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// The repository's lifecycle policy text, if it has one.
    pub lifecycle: Option<String>,
    /// Published versions (number, image digest) whose image lacks its protection tag; read
    /// only when `keep` is set.
    pub unprotected: Vec<(String, String)>,
}

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
            super::alias::published_versions(&clients.lambda, name).await?
        }
        _ => Vec::new(),
    };
    if let Some(state) = function.as_mut() {
        if deploy.publish || deploy.alias.is_some() {
            if let Some(sha) = state.code_sha256.as_deref() {
                state.version_with_code = super::alias::newest_with(&versions, sha);
            }
        }
        if let Some(alias) = &spec.deploy.alias {
            state.alias = super::alias::routing(&clients.lambda, name, alias).await?;
            if state.alias.is_some() {
                state.provisioned = super::alias::provisioned(&clients.lambda, name, alias).await?;
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
    versions: &[super::alias::Published],
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
            iam::inline_policy(&clients.iam, &name, iam::TARGETS_POLICY).await?,
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
