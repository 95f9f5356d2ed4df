//! The middle step of a deploy, and the only place its decisions are made: a pure function of
//! (spec, image, observed state) to the list of steps that makes the function what the spec
//! says. Which ECR changes are needed, which role the function gets (and in which account a
//! new one would be), whether the configuration or the code differs (field by field), whether
//! a new version is published or an existing one reused, where the alias goes: all decided
//! here, and nothing here calls AWS, so every decision is tested without it. The plan is made
//! of the model's values and the steps' groups; it names no SDK type and no adapter (a test in
//! `tests/architecture.rs` reads this file's imports to keep it so).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::lambda;
use crate::publish::ecr;
use crate::publish::lifecycle;
use crate::target::Arch;

use super::model::role::{targets_policy, BASIC_EXECUTION_POLICY, VPC_ACCESS_POLICY, XRAY_POLICY};
use super::model::{
    FunctionState, LaunchOverrides, Observed, Retention, RoleState, Routing, Weight,
};
use super::steps::{FunctionStep, ReleaseStep, RoleStep, UrlStep};
use super::PlannedStep;

// The parts of a plan are public from here as well as from the model and the steps.
pub use super::model::{
    AsyncInvoke, Cors, Desired, FieldChange, FunctionUrl, Logging, VersionRef, Vpc,
    PUBLIC_URL_STATEMENTS,
};
pub use super::steps::Step;

/// Everything a deploy of one function will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployPlan {
    /// What the function should look like.
    pub desired: Desired,
    /// The steps, in order; empty Lambda steps mean the function is as wanted.
    pub steps: Vec<Step>,
    /// The version the deploy reports (and the alias gets), when versions are wanted.
    pub version: Option<VersionRef>,
    /// The alias, if configured.
    pub alias: Option<String>,
}

impl DeployPlan {
    /// Whether the function itself changes.
    pub fn changes_function(&self) -> bool {
        self.steps.iter().any(Step::changes_function)
    }

    /// Whether the role is created by this deploy (so it may still be propagating in IAM).
    pub fn creates_role(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Role(RoleStep::CreateRole { .. })))
    }

    /// The steps as a dry run prints them.
    pub fn planned_steps(&self) -> Vec<PlannedStep> {
        self.steps
            .iter()
            .map(|s| s.describe(&self.desired))
            .collect()
    }

    /// Where the alias routed before this deploy moves it: `Some(None)` when the deploy
    /// creates it, `None` when the deploy does not move it.
    pub(crate) fn alias_before(&self) -> Option<Option<&Routing>> {
        self.steps.iter().find_map(|s| match s {
            Step::Release(ReleaseStep::SetAlias { from, .. }) => Some(from.as_ref()),
            _ => None,
        })
    }

    /// The canary share the deploy's alias move sets: `Some(None)` when it moves the alias
    /// whole, `None` when the deploy does not move it.
    pub(crate) fn canary_set(&self) -> Option<Option<Weight>> {
        self.steps.iter().find_map(|s| match s {
            Step::Release(ReleaseStep::SetAlias { canary, .. }) => {
                Some(canary.as_ref().map(|(_, w)| *w))
            }
            _ => None,
        })
    }
}

/// Plans the deploy of `image` as the function `spec`, given what AWS has. `push_host` sends
/// the image bytes to another registry host than ECR's.
pub fn plan(
    spec: &FunctionSpec,
    image: &BuiltImage,
    observed: &Observed,
    push_host: Option<&str>,
    canary: Option<Weight>,
) -> Result<DeployPlan> {
    let name = spec.lambda_name.as_str();
    check_release(spec, canary)?;
    if spec.arch != image.arch {
        return Err(refuse(
            name,
            format!(
                "the image is for {} but the function is planned for {}",
                image.arch, spec.arch
            ),
            "deploy each architecture's own image".into(),
        ));
    }
    let current = observed.function.as_ref();
    if current.and_then(|f| f.package_type.as_deref()) == Some("Zip") {
        return Err(zip_function(name));
    }
    let ecr = ecr::plan(spec, image, &observed.ecr, &observed.region, push_host);
    let mut steps: Vec<Step> = ecr.steps.into_iter().map(Step::Ecr).collect();
    let role = role(spec, &observed.role, &ecr.account, &mut steps)?;
    let desired = desired(spec, image, ecr.image_uri, role);
    match current {
        None => {
            steps.push(Step::Function(FunctionStep::CreateFunction));
            if let Some(reserved) = desired.reserved_concurrency {
                steps.push(Step::Function(FunctionStep::PutFunctionConcurrency {
                    reserved,
                    from: None,
                }));
            }
            if desired.async_invoke.is_some() {
                let changes = AsyncInvoke::changes(None, desired.async_invoke.as_ref());
                steps.push(Step::Function(FunctionStep::PutFunctionEventInvokeConfig {
                    changes,
                }));
            }
        }
        Some(current) => {
            let changes = configuration_changes(current, &desired);
            if !changes.is_empty() {
                steps.push(Step::Function(FunctionStep::UpdateFunctionConfiguration {
                    changes,
                }));
            }
            let changes = code_changes(current, &desired);
            if !changes.is_empty() {
                steps.push(Step::Function(FunctionStep::UpdateFunctionCode { changes }));
            }
            match (current.reserved_concurrency, desired.reserved_concurrency) {
                (from, Some(reserved)) if from != Some(reserved) => {
                    steps.push(Step::Function(FunctionStep::PutFunctionConcurrency {
                        reserved,
                        from,
                    }))
                }
                (Some(from), None) => {
                    steps.push(Step::Function(FunctionStep::DeleteFunctionConcurrency {
                        from,
                    }))
                }
                _ => {}
            }
            let (now, wanted) = (current.async_invoke.as_ref(), desired.async_invoke.as_ref());
            let changes = AsyncInvoke::changes(now, wanted);
            match (now, wanted) {
                (_, Some(_)) if !changes.is_empty() => {
                    steps.push(Step::Function(FunctionStep::PutFunctionEventInvokeConfig {
                        changes,
                    }))
                }
                (Some(_), None) => steps.push(Step::Function(
                    FunctionStep::DeleteFunctionEventInvokeConfig { changes },
                )),
                _ => {}
            }
            let tags: BTreeMap<String, String> = desired
                .tags
                .iter()
                .filter(|(k, v)| current.tags.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !tags.is_empty() {
                steps.push(Step::Function(FunctionStep::TagResource { tags }));
            }
        }
    }
    let changed = steps.iter().any(Step::changes_function);
    let version = versions(spec, current, changed, canary, &mut steps);
    provisioned_steps(spec, current, &mut steps);
    retention_steps(
        spec,
        &observed.retention,
        &desired,
        version.as_ref(),
        &mut steps,
    );
    // After the alias: the URL sits on it.
    url_steps(current, &desired, &mut steps);
    Ok(DeployPlan {
        desired,
        steps,
        version,
        alias: spec.deploy.alias.clone(),
    })
}

/// Refuses a canary for a function without an alias.
pub fn check_release(spec: &FunctionSpec, canary: Option<Weight>) -> Result<()> {
    if canary.is_some() && spec.deploy.alias.is_none() {
        return Err(refuse(
            &spec.lambda_name,
            "--canary routes a share of an alias to the new version, but the function has no alias".into(),
            "set `deploy.alias = \"live\"` in [package.metadata.lambda], or deploy without --canary".into(),
        ));
    }
    if let Some(key) = local_only_setting(spec) {
        return Err(refuse(
            &spec.lambda_name,
            format!("`{key}` is set, and deploy cannot configure it on Lambda yet (test, serve and watch run the function with it)"),
            format!("remove `{key}` to deploy the function without it; deploying it would leave the deployed function different from what the key says"),
        ));
    }
    Ok(())
}

/// The first execution-model setting that the local runtime honours but deploy does not send
/// to Lambda yet: deploying without it would leave a function that runs differently from its
/// configuration.
pub fn local_only_setting(spec: &FunctionSpec) -> Option<&'static str> {
    let deploy = &spec.deploy;
    if deploy.snap_start {
        Some("deploy.snap-start")
    } else if deploy.tenant_isolation {
        Some("deploy.tenant-isolation")
    } else if deploy.managed_instances.is_some() {
        Some("deploy.managed-instances")
    } else {
        None
    }
}

/// The role's ARN, adding the steps that create it when needed.
fn role(
    spec: &FunctionSpec,
    observed: &RoleState,
    account: &str,
    steps: &mut Vec<Step>,
) -> Result<String> {
    let name = spec.lambda_name.as_str();
    match observed {
        RoleState::Configured { arn, exists } => {
            if lambda::parse_role_arn(arn).is_none() {
                return Err(refuse(
                    name,
                    format!("`{arn}` is not an IAM role ARN"),
                    "set `role` to an ARN like arn:aws:iam::123456789012:role/my-function-role, or leave it unset to have a role created".into(),
                ));
            }
            if *exists == Some(false) {
                return Err(refuse(
                    name,
                    format!("the IAM role `{arn}` does not exist"),
                    format!(
                        "create it (trusting lambda.amazonaws.com), fix the `role` setting, or remove `role` to have `{}` created",
                        lambda::default_role_name(name)
                    ),
                ));
            }
            Ok(arn.clone())
        }
        RoleState::Current { arn } => Ok(arn.clone()),
        RoleState::Default {
            name,
            arn,
            attached,
            targets,
        } => {
            if arn.is_none() {
                steps.push(Step::Role(RoleStep::CreateRole { name: name.clone() }));
            }
            for policy in role_policies(spec) {
                if !attached.iter().any(|a| a == policy) {
                    steps.push(Step::Role(RoleStep::AttachRolePolicy {
                        name: name.clone(),
                        policy_arn: policy.into(),
                    }));
                }
            }
            if let Some(document) = role_targets_policy(spec) {
                if targets.as_ref() != Some(&document) {
                    steps.push(Step::Role(RoleStep::PutRolePolicy {
                        name: name.clone(),
                        document,
                    }));
                }
            }
            Ok(arn
                .clone()
                .unwrap_or_else(|| format!("arn:aws:iam::{account}:role/{name}")))
        }
    }
}

/// The managed policies the role this tool manages needs for `spec`'s settings.
fn role_policies(spec: &FunctionSpec) -> Vec<&'static str> {
    let deploy = &spec.deploy;
    let mut policies = vec![BASIC_EXECUTION_POLICY];
    if deploy.vpc.is_some() || deploy.file_system.is_some() {
        policies.push(VPC_ACCESS_POLICY);
    }
    if deploy.tracing == crate::config::values::Tracing::Active {
        policies.push(XRAY_POLICY);
    }
    policies
}

/// The inline policy that lets the function send to its dead-letter target and destinations.
fn role_targets_policy(spec: &FunctionSpec) -> Option<serde_json::Value> {
    let deploy = &spec.deploy;
    let asynchronous = deploy.async_invoke.as_ref();
    let targets: Vec<&str> = [
        deploy.dead_letter.as_deref(),
        asynchronous.and_then(|a| a.on_success.as_deref()),
        asynchronous.and_then(|a| a.on_failure.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    targets_policy(&targets)
}

fn desired(spec: &FunctionSpec, image: &BuiltImage, image_uri: String, role: String) -> Desired {
    Desired {
        name: spec.lambda_name.clone(),
        arch: spec.arch,
        image_uri,
        digest: image.digest.clone(),
        role,
        memory: spec.memory as i32,
        timeout: spec.timeout as i32,
        ephemeral_storage: spec.ephemeral_storage as i32,
        description: spec.description.clone(),
        tracing: spec.deploy.tracing.as_str().to_string(),
        kms_key: spec.deploy.kms_key.clone(),
        vpc: spec.deploy.vpc.as_ref().map(|v| {
            Vpc::new(
                v.subnets.clone(),
                v.security_groups.clone(),
                v.ipv6_dual_stack,
            )
        }),
        reserved_concurrency: spec.deploy.reserved_concurrency.map(|r| r as i32),
        logging: {
            let l = &spec.deploy.logging;
            let json = l.format == crate::config::values::LogFormat::Json;
            Logging {
                format: l.format.as_str().to_string(),
                application_level: l.application_level.clone().filter(|_| json),
                system_level: l.system_level.clone().filter(|_| json),
                log_group: l
                    .log_group
                    .clone()
                    .unwrap_or_else(|| Logging::default_for(&spec.lambda_name).log_group),
            }
        },
        dead_letter: spec.deploy.dead_letter.clone(),
        file_system: spec
            .deploy
            .file_system
            .as_ref()
            .map(|f| (f.arn.clone(), f.mount_path.clone())),
        url: spec.deploy.url.as_ref().map(|u| FunctionUrl {
            auth: u.auth.as_str().into(),
            invoke_mode: u.invoke_mode.as_str().into(),
            cors: u.cors.as_ref().map(|c| {
                Cors {
                    allow_origins: c.allow_origins.clone(),
                    allow_methods: c.allow_methods.clone(),
                    allow_headers: c.allow_headers.clone(),
                    expose_headers: c.expose_headers.clone(),
                    max_age: c.max_age.map(|a| a as i32),
                    allow_credentials: c.allow_credentials,
                }
                // Compared with what Lambda reports, in its own order.
                .sorted()
            }),
        }),
        async_invoke: spec.deploy.async_invoke.as_ref().map(|a| AsyncInvoke {
            max_retries: a.max_retries.map(|v| v as i32),
            max_event_age: a.max_event_age.map(|v| v as i32),
            on_success: a.on_success.clone(),
            on_failure: a.on_failure.clone(),
        }),
        env: spec.env.clone(),
        image_config: spec.image.overrides_launch().then(|| LaunchOverrides {
            entrypoint: spec.image.entrypoint.clone().unwrap_or_default(),
            command: spec.image.command.clone().unwrap_or_default(),
            workdir: Some(spec.image.workdir.clone()),
        }),
        tags: spec.tags.clone(),
    }
}

/// The configuration fields that differ between the function and what is wanted.
pub fn configuration_changes(current: &FunctionState, desired: &Desired) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let shown = |v: Option<i32>| v.map_or("(none)".to_string(), |v| v.to_string());
    if current.memory != Some(desired.memory) {
        changes.push(FieldChange::new(
            "memory",
            shown(current.memory),
            desired.memory,
        ));
    }
    if current.timeout != Some(desired.timeout) {
        changes.push(FieldChange::new(
            "timeout",
            shown(current.timeout),
            desired.timeout,
        ));
    }
    let storage = current
        .ephemeral_storage
        .unwrap_or(lambda::DEFAULT_EPHEMERAL_STORAGE as i32);
    if storage != desired.ephemeral_storage {
        changes.push(FieldChange::new(
            "ephemeral-storage",
            storage,
            desired.ephemeral_storage,
        ));
    }
    if current.role.as_deref() != Some(desired.role.as_str()) {
        let from = current.role.clone().unwrap_or_else(|| "(none)".into());
        changes.push(FieldChange::new("role", from, &desired.role));
    }
    // Settings removed from the metadata are wanted at Lambda's defaults, so they differ
    // (and are reset) like any other change.
    let text = |v: &str| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.to_string()
        }
    };
    if current.description != desired.description {
        let (from, to) = (text(&current.description), text(&desired.description));
        changes.push(FieldChange::new("description", from, to));
    }
    let tracing = current.tracing.as_deref().unwrap_or("PassThrough");
    if tracing != desired.tracing {
        changes.push(FieldChange::new("tracing", tracing, &desired.tracing));
    }
    if current.kms_key != desired.kms_key {
        let shown = |k: &Option<String>| k.clone().unwrap_or_else(|| "(Lambda's key)".into());
        let (from, to) = (shown(&current.kms_key), shown(&desired.kms_key));
        changes.push(FieldChange::new("kms-key", from, to));
    }
    if current.vpc != desired.vpc {
        let (from, to) = (
            Vpc::text(current.vpc.as_ref()),
            Vpc::text(desired.vpc.as_ref()),
        );
        changes.push(FieldChange::new("vpc", from, to));
    }
    // A function that reports no LoggingConfig (older APIs, moto) logs Lambda's default way.
    let logging = current
        .logging
        .clone()
        .unwrap_or_else(|| Logging::default_for(&desired.name));
    if !logging.same(&desired.logging) {
        changes.push(FieldChange::new(
            "logging",
            logging.text(),
            desired.logging.text(),
        ));
    }
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    if current.dead_letter != desired.dead_letter {
        let (from, to) = (shown(&current.dead_letter), shown(&desired.dead_letter));
        changes.push(FieldChange::new("dead-letter", from, to));
    }
    if current.file_system != desired.file_system {
        let text = |f: &Option<(String, String)>| {
            f.as_ref()
                .map_or("(none)".into(), |(arn, path)| format!("{arn} at {path}"))
        };
        let (from, to) = (text(&current.file_system), text(&desired.file_system));
        changes.push(FieldChange::new("file-system", from, to));
    }
    // Environment values may be secrets: a change says which variable, never its value.
    let names = current.env.keys().chain(desired.env.keys());
    let names: std::collections::BTreeSet<&String> = names.collect();
    for name in names {
        let (from, to) = (current.env.get(name), desired.env.get(name));
        if from != to {
            let state = |v: Option<&String>| if v.is_some() { "(set)" } else { "(unset)" };
            let to = if from.is_some() && to.is_some() {
                "(changed)"
            } else {
                state(to)
            };
            changes.push(FieldChange::new(&format!("env.{name}"), state(from), to));
        }
    }
    if let Some(wanted) = &desired.image_config {
        if &current.image_config != wanted {
            changes.push(FieldChange::new(
                "image-config",
                launch_text(&current.image_config),
                launch_text(wanted),
            ));
        }
    }
    changes
}

fn launch_text(launch: &LaunchOverrides) -> String {
    format!(
        "entrypoint {:?}, command {:?}, workdir {}",
        launch.entrypoint,
        launch.command,
        launch.workdir.as_deref().unwrap_or("(none)")
    )
}

/// What differs between the deployed code and the wanted image: the image (by digest) and the
/// architecture.
pub fn code_changes(current: &FunctionState, desired: &Desired) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let by_digest = |uri: &Option<String>| {
        uri.as_deref()
            .is_some_and(|u| u.ends_with(&format!("@{}", desired.digest)))
    };
    if !by_digest(&current.image_uri) && !by_digest(&current.resolved_image_uri) {
        let from = current
            .resolved_image_uri
            .clone()
            .or_else(|| current.image_uri.clone())
            .unwrap_or_else(|| "(none)".into());
        changes.push(FieldChange::new("image", from, &desired.image_uri));
    }
    let arch = match current.architectures.as_slice() {
        // Functions created before architectures existed are x86_64.
        [] => Some(Arch::X86_64.lambda_name().to_string()),
        [one] => Some(one.clone()),
        _ => None,
    };
    if arch.as_deref() != Some(desired.arch.lambda_name()) {
        let from = current.architectures.join(",");
        changes.push(FieldChange::new(
            "architecture",
            if from.is_empty() {
                "x86_64".into()
            } else {
                from
            },
            desired.arch.lambda_name(),
        ));
    }
    changes
}

/// The steps that make the Function URL (and, for a public one, its permissions) what is
/// wanted.
fn url_steps(current: Option<&FunctionState>, desired: &Desired, steps: &mut Vec<Step>) {
    let now = current.and_then(|f| f.url.as_ref());
    match (now, &desired.url) {
        (None, None) => {}
        (Some(_), None) => steps.push(Step::Url(UrlStep::DeleteFunctionUrlConfig)),
        (None, Some(_)) => steps.push(Step::Url(UrlStep::CreateFunctionUrlConfig)),
        (Some(now), Some(wanted)) => {
            let mut changes = Vec::new();
            if now.auth != wanted.auth {
                changes.push(FieldChange::new("url.auth", &now.auth, &wanted.auth));
            }
            if now.invoke_mode != wanted.invoke_mode {
                let (from, to) = (&now.invoke_mode, &wanted.invoke_mode);
                changes.push(FieldChange::new("url.invoke-mode", from, to));
            }
            if now.cors != wanted.cors {
                let (from, to) = (
                    Cors::text(now.cors.as_ref()),
                    Cors::text(wanted.cors.as_ref()),
                );
                changes.push(FieldChange::new("url.cors", from, to));
            }
            if !changes.is_empty() {
                steps.push(Step::Url(UrlStep::UpdateFunctionUrlConfig { changes }));
            }
        }
    }
    let public = desired.url.as_ref().is_some_and(|u| u.auth == "NONE");
    let granted = current
        .map(|f| f.url_statements.as_slice())
        .unwrap_or_default();
    for statement in PUBLIC_URL_STATEMENTS {
        let statement = statement.to_string();
        match (public, granted.contains(&statement)) {
            (true, false) => steps.push(Step::Url(UrlStep::AddPermission { statement })),
            (false, true) => steps.push(Step::Url(UrlStep::RemovePermission { statement })),
            _ => {}
        }
    }
}

/// The version the deploy ends with, adding the publish and alias steps: a function that
/// changed gets a new version; an unchanged one reuses the version published with its code,
/// or gets one when there is none.
fn versions(
    spec: &FunctionSpec,
    current: Option<&FunctionState>,
    changed: bool,
    canary: Option<Weight>,
    steps: &mut Vec<Step>,
) -> Option<VersionRef> {
    if !spec.deploy.publish && spec.deploy.alias.is_none() {
        return None;
    }
    let existing = current.and_then(|f| f.version_with_code.clone());
    let version = match existing {
        Some(v) if !changed => VersionRef::Existing(v),
        _ => {
            steps.push(Step::Release(ReleaseStep::PublishVersion));
            VersionRef::Published
        }
    };
    if let Some(alias) = &spec.deploy.alias {
        let now = current.and_then(|f| f.alias.clone());
        let is = |v: &VersionRef, n: &str| matches!(v, VersionRef::Existing(x) if x == n);
        // A canary goes beside the version the alias has, unless that is the new one already;
        // a new alias has nothing to compare with and gets the new version whole.
        let (primary, route) = match (canary, &now) {
            (Some(w), Some(n)) if !is(&version, &n.version) => (
                VersionRef::Existing(n.version.clone()),
                Some((version.clone(), w)),
            ),
            _ => (version.clone(), None),
        };
        let unchanged = now.as_ref().is_some_and(|n| {
            is(&primary, &n.version)
                && match (&route, &n.canary) {
                    (None, None) => true,
                    (Some((v, w)), Some(c)) => is(v, &c.version) && *w == c.weight,
                    _ => false,
                }
        });
        if !unchanged {
            steps.push(Step::Release(ReleaseStep::SetAlias {
                alias: alias.clone(),
                from: now,
                version: primary,
                canary: route,
            }));
        }
    }
    Some(version)
}

/// The `deploy.ecr.keep` steps: protection tags on every version's image (the new one's
/// included), then the lifecycle policy; or the removal of the policy this tool set.
fn retention_steps(
    spec: &FunctionSpec,
    retention: &Retention,
    desired: &Desired,
    version: Option<&VersionRef>,
    steps: &mut Vec<Step>,
) {
    let repository = spec.image.repository.clone();
    let Some(keep) = spec.deploy.ecr_keep else {
        if retention
            .lifecycle
            .as_deref()
            .is_some_and(lifecycle::is_ours)
        {
            steps.push(Step::Release(ReleaseStep::DeleteLifecyclePolicy {
                repository,
            }));
        }
        return;
    };
    // First of all: a push may move the tag the old image had, leaving it untagged, and an
    // untagged image must already be protected (moto even deletes it).
    let protect = retention.unprotected.iter().map(|(v, digest)| {
        Step::Release(ReleaseStep::ProtectImage {
            repository: repository.clone(),
            version: VersionRef::Existing(v.clone()),
            digest: digest.clone(),
        })
    });
    let protect: Vec<Step> = protect.collect();
    steps.splice(0..0, protect);
    if version == Some(&VersionRef::Published) {
        steps.push(Step::Release(ReleaseStep::ProtectImage {
            repository: repository.clone(),
            version: VersionRef::Published,
            digest: desired.digest.clone(),
        }));
    }
    let now = retention
        .lifecycle
        .as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
    if now.as_ref() != Some(&lifecycle::policy(keep)) {
        steps.push(Step::Release(ReleaseStep::PutLifecyclePolicy {
            repository,
            keep,
        }));
    }
}

/// The provisioned-concurrency steps: set (and wait) when the count differs, when it failed
/// before, or when the alias moves; remove when no longer configured.
fn provisioned_steps(spec: &FunctionSpec, current: Option<&FunctionState>, steps: &mut Vec<Step>) {
    let Some(alias) = &spec.deploy.alias else {
        return;
    };
    let now = current.and_then(|f| f.provisioned.as_ref());
    let moved = steps
        .iter()
        .any(|s| matches!(s, Step::Release(ReleaseStep::SetAlias { .. })));
    match (spec.deploy.provisioned_concurrency, now) {
        (Some(n), now)
            if moved
                || now.map(|p| p.requested) != Some(n as i32)
                || now.is_some_and(|p| p.status == "FAILED") =>
        {
            steps.push(Step::Release(
                ReleaseStep::PutProvisionedConcurrencyConfig {
                    alias: alias.clone(),
                    requested: n as i32,
                    from: now.map(|p| p.requested),
                },
            ))
        }
        (None, Some(p)) => steps.push(Step::Release(
            ReleaseStep::DeleteProvisionedConcurrencyConfig {
                alias: alias.clone(),
                from: p.requested,
            },
        )),
        _ => {}
    }
}

fn refuse(function: &str, message: String, help: String) -> Error {
    Error::Deploy {
        function: function.to_string(),
        message,
        help,
    }
}

fn zip_function(name: &str) -> Error {
    refuse(
        name,
        "the function exists as a .zip package (PackageType Zip); Lambda cannot switch a function to a container image".into(),
        format!(
            "delete it (`aws lambda delete-function --function-name {name}`) and deploy again, or deploy under another name with `function-name` in [package.metadata.lambda]"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::example_spec;
    use crate::publish::ecr::{EcrState, Repository};

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OLD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn spec() -> FunctionSpec {
        let mut spec = example_spec(
            "orders",
            Arch::Arm64,
            "public.ecr.aws/lambda/provided:al2023",
        );
        spec.lambda_name = "orders-arm64".into();
        spec.deploy.publish = true;
        spec.deploy.alias = Some("live".into());
        spec.memory = 512;
        spec.env
            .insert("API_URL".into(), "https://example.com".into());
        spec.env.insert("API_KEY".into(), "s3cr3t-value".into());
        spec.tags.insert("team".into(), "orders".into());
        spec
    }

    #[test]
    fn settings_deploy_cannot_send_yet_are_refused_before_any_call() {
        assert!(check_release(&spec(), None).is_ok());
        let mut snap = spec();
        snap.deploy.snap_start = true;
        let mut tenants = spec();
        tenants.deploy.tenant_isolation = true;
        let mut managed = spec();
        managed.deploy.managed_instances = Some(crate::config::ManagedInstancesSettings {
            max_concurrency: Some(4),
        });
        for (spec, key) in [
            (snap, "deploy.snap-start"),
            (tenants, "deploy.tenant-isolation"),
            (managed, "deploy.managed-instances"),
        ] {
            let err = check_release(&spec, None).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    fn image(spec: &FunctionSpec) -> BuiltImage {
        BuiltImage {
            function: spec.name.clone(),
            arch: spec.arch,
            layout: "/w/target/lambda-image/orders/arm64/oci".into(),
            repository: spec.image.repository.clone(),
            tag: spec.image.tag.clone(),
            digest: DIGEST.into(),
            manifest_size: 500,
            config_digest: OLD.into(),
            layers: Vec::new(),
            base: spec.base_image.reference.clone(),
            lease: Default::default(),
        }
    }

    /// AWS before the first deploy: nothing.
    fn nothing() -> Observed {
        Observed {
            region: "eu-west-1".into(),
            ecr: EcrState::new(HOST, None, None),
            function: None,
            role: RoleState::Default {
                name: "orders-lambda-role".into(),
                arn: None,
                attached: Vec::new(),
                targets: None,
            },
            retention: Retention::default(),
        }
    }

    /// AWS right after a deploy of `spec` with the image `digest`.
    fn deployed(spec: &FunctionSpec, digest: &str) -> Observed {
        let role = "arn:aws:iam::123456789012:role/orders-lambda-role".to_string();
        let policy = ecr::policy(None, "eu-west-1", &[]).to_string();
        let repository = Repository {
            uri: format!("{HOST}/orders"),
            registry_id: "123456789012".into(),
        };
        Observed {
            region: "eu-west-1".into(),
            ecr: EcrState::new(HOST, Some(repository), Some(policy)),
            function: Some(FunctionState {
                arn: "arn:aws:lambda:eu-west-1:123456789012:function:orders-arm64".into(),
                package_type: Some("Image".into()),
                role: Some(role.clone()),
                memory: Some(spec.memory as i32),
                timeout: Some(spec.timeout as i32),
                ephemeral_storage: Some(512),
                env: spec.env.clone(),
                architectures: vec!["arm64".into()],
                image_uri: Some(format!("{HOST}/orders@{digest}")),
                resolved_image_uri: Some(format!("{HOST}/orders@{digest}")),
                code_sha256: Some("abc".into()),
                tags: spec.tags.clone(),
                version_with_code: Some("3".into()),
                alias: Some(Routing {
                    version: "3".into(),
                    canary: None,
                }),
                ..FunctionState::default()
            }),
            role: RoleState::Current { arn: role },
            retention: Retention::default(),
        }
    }

    /// The plan as a dry run prints it.
    fn render(plan: &DeployPlan) -> String {
        let mut text = format!(
            "function {} ({}) <- {}\nversion: {:?}\n",
            plan.desired.name, plan.desired.arch, plan.desired.image_uri, plan.version
        );
        for step in plan.planned_steps() {
            text.push_str(&format!(
                "{} {} {}: {}\n",
                step.service, step.operation, step.target, step.summary
            ));
            for c in step.changes {
                text.push_str(&format!("    {}: {} -> {}\n", c.field, c.from, c.to));
            }
        }
        text
    }

    #[test]
    fn a_first_deploy_creates_everything() {
        let spec = spec();
        let plan = plan(&spec, &image(&spec), &nothing(), None, None).unwrap();
        assert!(plan.changes_function() && plan.creates_role());
        insta::assert_snapshot!(render(&plan));
    }

    #[test]
    fn the_same_image_and_settings_change_nothing_and_reuse_the_version() {
        let spec = spec();
        let plan = plan(
            &spec,
            &image(&spec),
            &deployed(&spec, DIGEST),
            Some("127.0.0.1:5000"),
            None,
        )
        .unwrap();
        assert!(!plan.changes_function());
        assert_eq!(plan.version, Some(VersionRef::Existing("3".into())));
        insta::assert_snapshot!(render(&plan));
    }

    #[test]
    fn changes_are_listed_field_by_field_without_environment_values() {
        let mut spec = spec();
        let mut observed = deployed(&spec, OLD);
        spec.memory = 1024;
        spec.env.insert("API_KEY".into(), "n3w-s3cr3t".into());
        spec.env.remove("API_URL");
        spec.env.insert("REGION_HINT".into(), "eu".into());
        spec.tags.insert("cost-center".into(), "42".into());
        if let Some(f) = observed.function.as_mut() {
            f.architectures = vec!["x86_64".into()];
        }
        let plan = plan(&spec, &image(&spec), &observed, None, None).unwrap();
        let text = render(&plan);
        let json = serde_json::to_string(&plan).unwrap();
        for secret in ["s3cr3t-value", "n3w-s3cr3t", "https://example.com"] {
            assert!(!text.contains(secret) && !json.contains(secret), "{secret}");
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn what_cannot_be_deployed_is_refused_before_any_change() {
        let spec = spec();
        let mut zip = deployed(&spec, DIGEST);
        if let Some(f) = zip.function.as_mut() {
            f.package_type = Some("Zip".into());
        }
        let mut missing_role = nothing();
        missing_role.role = RoleState::Configured {
            arn: "arn:aws:iam::123456789012:role/gone".into(),
            exists: Some(false),
        };
        let mut other_arch = image(&spec);
        other_arch.arch = Arch::X86_64;
        let errors = [
            plan(&spec, &image(&spec), &zip, None, None),
            plan(&spec, &image(&spec), &missing_role, None, None),
            plan(&spec, &other_arch, &nothing(), None, None),
        ]
        .map(|r| r.unwrap_err().to_string());
        insta::assert_snapshot!(errors.join("\n"));
    }
}
