//! `promote` and `rollback`: end a canary release, or go back one version, by moving the
//! alias only. Nothing is built, pushed or published.
//!
//! - `promote` gives the canary's version the whole alias.
//! - `rollback` drops the canary (the alias stays on the version it had); without a canary it
//!   moves the alias to the newest published version older than the one it points at.

use serde::Serialize;

use crate::aws::Clients;
use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::target::Arch;

use super::aws::alias;
use super::model::Routing;
use super::DeployOptions;

/// Which way the alias moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Release {
    /// The canary's version takes the whole alias.
    Promote,
    /// Back: the canary is dropped, or the alias goes to the previous version.
    Rollback,
}

/// What [`release`] did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    /// The Lambda function name.
    pub function: String,
    /// Its architecture.
    pub arch: Arch,
    /// `promote` or `rollback`.
    pub action: Release,
    /// The alias.
    pub alias: String,
    /// Where it routed.
    pub from: Routing,
    /// Where it routes now.
    pub to: Routing,
    /// Whether the alias moves (in a dry run: would move); false when there is nothing to do.
    pub changed: bool,
    /// Whether this was a dry run, which moved nothing.
    pub dry_run: bool,
}

/// Promotes or rolls back the alias of `spec`.
pub async fn release(
    spec: &FunctionSpec,
    action: Release,
    opts: &DeployOptions,
    reporter: &Reporter,
) -> Result<Released> {
    let name = spec.lambda_name.as_str();
    let Some(alias_name) = spec.deploy.alias.clone() else {
        return Err(Error::Deploy {
            function: name.into(),
            message: "the function has no alias to promote or roll back".into(),
            help: "set `deploy.alias = \"live\"` in [package.metadata.lambda] and deploy first"
                .into(),
        });
    };
    let clients = Clients::new(&opts.aws, spec.deploy.region.as_deref(), name).await?;
    let client = &clients.lambda;
    let from = alias::routing(client, name, &alias_name)
        .await?
        .ok_or_else(|| Error::Deploy {
            function: name.into(),
            message: format!("the alias `{alias_name}` does not exist"),
            help: "deploy the function first (`cargo lambda-image deploy`)".into(),
        })?;
    let to = match (action, &from.canary) {
        (Release::Promote, Some(canary)) => Routing {
            version: canary.version.clone(),
            canary: None,
        },
        (Release::Promote, None) => from.clone(),
        (Release::Rollback, Some(_)) => Routing {
            version: from.version.clone(),
            canary: None,
        },
        (Release::Rollback, None) => Routing {
            version: previous_version(client, name, &from.version).await?,
            canary: None,
        },
    };
    let moves = to != from;
    if moves && !opts.dry_run {
        alias::set(client, name, &alias_name, &to, true, reporter).await?;
        reporter.line(format!("✓ Alias {name}:{alias_name} -> {to}"));
        if spec.deploy.provisioned_concurrency.is_some() {
            let timeout = opts
                .provisioned_timeout
                .unwrap_or(std::time::Duration::from_secs(600));
            alias::wait_provisioned(client, name, &alias_name, timeout, reporter).await?;
        }
    } else if !moves {
        reporter.line(format!(
            "✓ {name}:{alias_name} has no canary: nothing to promote ({from})"
        ));
    }
    Ok(Released {
        function: name.into(),
        arch: spec.arch,
        action,
        alias: alias_name,
        from,
        to,
        changed: moves,
        dry_run: opts.dry_run,
    })
}

/// The newest published version older than `current`.
async fn previous_version(
    client: &aws_sdk_lambda::Client,
    name: &str,
    current: &str,
) -> Result<String> {
    let current_number: u64 = current.parse().unwrap_or(u64::MAX);
    let versions = alias::published_versions(client, name).await?;
    versions
        .into_iter()
        .map(|v| v.number)
        .filter(|v| *v < current_number)
        .max()
        .map(|v| v.to_string())
        .ok_or_else(|| Error::Deploy {
            function: name.into(),
            message: format!("there is no published version before {current} to roll back to"),
            help: "deploy the version you want (`cargo lambda-image deploy`)".into(),
        })
}
