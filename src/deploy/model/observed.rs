//! The function, its execution role and its ECR repository as AWS has them, read before
//! planning ([`crate::deploy::observe`]): what the planner compares [`super::Desired`] with.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::publish::ecr::EcrState;

use super::{AsyncInvoke, FunctionUrl, Logging, Provisioned, Routing, Vpc};

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
    pub vpc: Option<Vpc>,
    /// Reserved concurrent executions, when reserved.
    pub reserved_concurrency: Option<i32>,
    /// Its `LoggingConfig`, when Lambda reports one.
    pub logging: Option<Logging>,
    /// Its dead-letter target.
    pub dead_letter: Option<String>,
    /// Its file system: access point ARN and mount path.
    pub file_system: Option<(String, String)>,
    /// Its event invoke configuration, when it has one.
    pub async_invoke: Option<AsyncInvoke>,
    /// Its Function URL (on the configured alias, if any), when it has one.
    pub url: Option<FunctionUrl>,
    /// The address of that URL.
    pub url_address: Option<String>,
    /// The statement IDs of the resource policy (of the alias, if any).
    pub url_statements: Vec<String>,
    /// Environment variables (their values are never printed; see [`crate::deploy::plan`]).
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
    pub alias: Option<Routing>,
    /// The alias's provisioned concurrency, when it has some.
    pub provisioned: Option<Provisioned>,
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
        /// Its inline policy for targets ([`super::role::TARGETS_POLICY`]).
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
