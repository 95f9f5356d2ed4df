//! The release steps: publish a version, create or move the alias (whole, or with a canary),
//! set or remove the alias's provisioned concurrency, and with `deploy.ecr.keep` protect the
//! images versions use and set the repository's lifecycle policy (or remove it).

use serde::Serialize;

use crate::deploy::aws::{alias, lambda};
use crate::deploy::model::{Canary, FieldChange, Routing, VersionRef, Weight};
use crate::deploy::PlannedStep;
use crate::error::{Error, Result};
use crate::oci::short;
use crate::publish::lifecycle;

use super::{planned, planned_changes, Context, Progress};

/// A change to the function's versions, its alias, or the images the versions use.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum ReleaseStep {
    /// Publish a version.
    PublishVersion,
    /// Create or move the alias.
    SetAlias {
        /// The alias.
        alias: String,
        /// Where it routes now (`None`: it does not exist yet).
        from: Option<Routing>,
        /// The version that gets every invocation, or with a canary the rest of them.
        version: VersionRef,
        /// `--canary`: the version that gets a share, and the share.
        canary: Option<(VersionRef, Weight)>,
    },
    /// Keep environments initialized for the alias (PutProvisionedConcurrencyConfig), and
    /// wait, bounded, until they are ready. Moving the alias re-provisions for the new
    /// version, so this follows every move.
    PutProvisionedConcurrencyConfig {
        /// The alias.
        alias: String,
        /// Environments wanted.
        requested: i32,
        /// What it is now.
        from: Option<i32>,
    },
    /// Tag the image a published version uses, so the lifecycle policy never expires it.
    ProtectImage {
        /// The repository.
        repository: String,
        /// The version.
        version: VersionRef,
        /// The image's digest.
        digest: String,
    },
    /// Set the repository's lifecycle policy (`deploy.ecr.keep`).
    PutLifecyclePolicy {
        /// The repository.
        repository: String,
        /// Images kept besides the protected ones.
        keep: u32,
    },
    /// Remove the lifecycle policy this tool set (`deploy.ecr.keep` is no longer set).
    DeleteLifecyclePolicy {
        /// The repository.
        repository: String,
    },
    /// Remove the alias's provisioned concurrency (no longer in the metadata).
    DeleteProvisionedConcurrencyConfig {
        /// The alias.
        alias: String,
        /// What it is now.
        from: i32,
    },
}

impl ReleaseStep {
    /// Whether the step changes the function (a version, the alias or its provisioned
    /// concurrency) rather than only its images in ECR.
    pub(crate) fn changes_function(&self) -> bool {
        match self {
            ReleaseStep::PublishVersion
            | ReleaseStep::SetAlias { .. }
            | ReleaseStep::PutProvisionedConcurrencyConfig { .. }
            | ReleaseStep::DeleteProvisionedConcurrencyConfig { .. } => true,
            ReleaseStep::ProtectImage { .. }
            | ReleaseStep::PutLifecyclePolicy { .. }
            | ReleaseStep::DeleteLifecyclePolicy { .. } => false,
        }
    }

    /// The step as a dry run prints it, for the function `name`.
    pub(crate) fn describe(&self, name: &str) -> PlannedStep {
        match self {
            ReleaseStep::PublishVersion => {
                planned("lambda", "PublishVersion", name, "publish a version".into())
            }
            ReleaseStep::SetAlias {
                alias,
                from,
                version,
                canary,
            } => describe_alias(name, alias, from.as_ref(), version, canary.as_ref()),
            ReleaseStep::PutProvisionedConcurrencyConfig {
                alias,
                requested,
                from,
            } => planned_changes(
                "lambda",
                "PutProvisionedConcurrencyConfig",
                &format!("{name}:{alias}"),
                format!("keep {requested} environments ready for the alias, and wait for them"),
                vec![FieldChange::new(
                    "provisioned-concurrency",
                    from.map_or("(none)".to_string(), |f| f.to_string()),
                    requested,
                )],
            ),
            ReleaseStep::ProtectImage {
                repository,
                version,
                digest,
            } => planned(
                "ecr",
                "PutImage",
                repository,
                format!(
                    "tag {} as used by {}, so the lifecycle policy keeps it",
                    short(digest),
                    shown(version)
                ),
            ),
            ReleaseStep::PutLifecyclePolicy { repository, keep } => planned(
                "ecr",
                "PutLifecyclePolicy",
                repository,
                format!("keep the newest {keep} images besides those versions use"),
            ),
            ReleaseStep::DeleteLifecyclePolicy { repository } => planned(
                "ecr",
                "DeleteLifecyclePolicy",
                repository,
                "remove the lifecycle policy (deploy.ecr.keep is no longer set)".into(),
            ),
            ReleaseStep::DeleteProvisionedConcurrencyConfig { alias, from } => planned_changes(
                "lambda",
                "DeleteProvisionedConcurrencyConfig",
                &format!("{name}:{alias}"),
                "remove the provisioned concurrency (no longer set)".into(),
                vec![FieldChange::new("provisioned-concurrency", from, "(none)")],
            ),
        }
    }

    /// Makes the change; a published version is what later steps' [`VersionRef::Published`]
    /// stands for.
    pub(crate) async fn run(&self, cx: &Context<'_>, progress: &mut Progress) -> Result<()> {
        let (client, reporter) = (&cx.clients.lambda, cx.reporter);
        let name = progress.desired.name.clone();
        match self {
            ReleaseStep::PublishVersion => {
                lambda::wait_ready(client, &name, reporter).await?;
                let v = lambda::publish(client, &name, reporter).await?;
                reporter.line(format!("✓ Published {name} version {v}"));
                progress.version = Some(v);
            }
            ReleaseStep::SetAlias {
                alias: alias_name,
                from,
                version,
                canary,
            } => {
                let routing = Routing {
                    version: progress.resolve(version)?,
                    canary: match canary {
                        Some((v, weight)) => Some(Canary {
                            version: progress.resolve(v)?,
                            weight: *weight,
                        }),
                        None => None,
                    },
                };
                let exists = from.is_some();
                alias::set(client, &name, alias_name, &routing, exists, reporter).await?;
                reporter.line(format!("✓ Alias {name}:{alias_name} -> {routing}"));
            }
            ReleaseStep::PutProvisionedConcurrencyConfig {
                alias: alias_name,
                requested,
                from,
            } => provision(cx, &name, alias_name, *requested, *from).await?,
            ReleaseStep::ProtectImage {
                repository,
                version,
                digest,
            } => {
                let tag = lifecycle::version_tag(&name, &progress.resolve(version)?);
                lifecycle::tag(&cx.clients.ecr, repository, digest, &tag).await?;
                reporter.verbose(format!("✓ Tagged {} as {tag}", short(digest)));
            }
            ReleaseStep::PutLifecyclePolicy { repository, keep } => {
                let policy = lifecycle::policy(*keep);
                lifecycle::set(&cx.clients.ecr, repository, Some(&policy)).await?;
                reporter.line(format!(
                    "✓ Lifecycle of {repository}: the newest {keep} images kept besides those versions use"
                ));
            }
            ReleaseStep::DeleteLifecyclePolicy { repository } => {
                lifecycle::set(&cx.clients.ecr, repository, None).await?;
                reporter.line(format!("✓ Removed the lifecycle policy of {repository}"));
            }
            ReleaseStep::DeleteProvisionedConcurrencyConfig {
                alias: alias_name, ..
            } => {
                alias::set_provisioned(client, &name, alias_name, None, reporter).await?;
                reporter.line(format!(
                    "✓ Removed the provisioned concurrency of {name}:{alias_name}"
                ));
            }
        }
        Ok(())
    }
}

/// How a planned step names a version.
fn shown(version: &VersionRef) -> String {
    match version {
        VersionRef::Published => "the published version".to_string(),
        VersionRef::Existing(v) => format!("version {v}"),
    }
}

/// The alias step as a dry run prints it: where the alias routes now and where it will.
fn describe_alias(
    name: &str,
    alias: &str,
    from: Option<&Routing>,
    version: &VersionRef,
    canary: Option<&(VersionRef, Weight)>,
) -> PlannedStep {
    let to = match canary {
        None => shown(version),
        Some((new, w)) => format!(
            "{} ({}) + {} ({w})",
            shown(version),
            Weight(10_000 - w.0),
            shown(new)
        ),
    };
    let from_text = from.map_or("(none)".into(), |r| r.to_string());
    planned_changes(
        "lambda",
        if from.is_some() {
            "UpdateAlias"
        } else {
            "CreateAlias"
        },
        &format!("{name}:{alias}"),
        match canary {
            None => format!("point the alias at {to}"),
            Some(_) => format!("canary: route {to}"),
        },
        vec![FieldChange::new("alias", &from_text, &to)],
    )
}

/// Sets the alias's provisioned concurrency and waits, bounded, until it is ready. When it
/// fails, the alias and its provisioned concurrency are put back, and the error says how.
async fn provision(
    cx: &Context<'_>,
    name: &str,
    alias_name: &str,
    requested: i32,
    from: Option<i32>,
) -> Result<()> {
    let (client, reporter) = (&cx.clients.lambda, cx.reporter);
    let ready = async {
        alias::set_provisioned(client, name, alias_name, Some(requested), reporter).await?;
        let timeout = cx.provisioned_timeout;
        alias::wait_provisioned(client, name, alias_name, timeout, reporter).await
    }
    .await;
    if let Err(e) = ready {
        let put_back = put_back(cx, name, alias_name, from).await;
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
    Ok(())
}

/// After provisioned concurrency failed: puts the alias back where it routed before this
/// deploy (or deletes it, when the deploy created it) and the provisioned concurrency back to
/// what it was. Says what it did, for the error.
async fn put_back(
    cx: &Context<'_>,
    name: &str,
    alias_name: &str,
    provisioned: Option<i32>,
) -> String {
    let (client, reporter) = (&cx.clients.lambda, cx.reporter);
    let alias_result = match cx.alias_before {
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
