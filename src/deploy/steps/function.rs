//! The function's own steps: create it, update its configuration or its code, reserve or
//! release concurrency, set or remove its asynchronous invocation settings, and tag it. Lambda
//! takes one change to a function at a time, so the changes that start an update wait for
//! the function to settle before and after.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::deploy::aws::lambda;
use crate::deploy::model::{Desired, FieldChange};
use crate::deploy::PlannedStep;
use crate::error::Result;
use crate::oci::short;

use super::{field_list, planned, planned_changes, Context, Progress};

/// A change to the function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum FunctionStep {
    /// Create the function.
    CreateFunction,
    /// Update the configuration (the fields listed).
    UpdateFunctionConfiguration {
        /// What differs.
        changes: Vec<FieldChange>,
    },
    /// Deploy the new image.
    UpdateFunctionCode {
        /// What differs (image, architecture).
        changes: Vec<FieldChange>,
    },
    /// Reserve concurrent executions (PutFunctionConcurrency).
    PutFunctionConcurrency {
        /// The reservation.
        reserved: i32,
        /// What it is now.
        from: Option<i32>,
    },
    /// Remove the reservation (DeleteFunctionConcurrency): a setting removed from the metadata
    /// goes back to Lambda's default.
    DeleteFunctionConcurrency {
        /// What it is now.
        from: i32,
    },
    /// Set the asynchronous invocation settings.
    PutFunctionEventInvokeConfig {
        /// What differs.
        changes: Vec<FieldChange>,
    },
    /// Remove them (back to Lambda's defaults: two retries, six hours, no destinations).
    DeleteFunctionEventInvokeConfig {
        /// What differs.
        changes: Vec<FieldChange>,
    },
    /// Set the tags whose values differ.
    TagResource {
        /// The tags to set.
        tags: BTreeMap<String, String>,
    },
}

impl FunctionStep {
    /// The step as a dry run prints it, for the function `desired`.
    pub(crate) fn describe(&self, desired: &Desired) -> PlannedStep {
        let name = desired.name.as_str();
        match self {
            FunctionStep::CreateFunction => planned(
                "lambda",
                "CreateFunction",
                name,
                format!(
                    "create the Image function ({}) from {}",
                    desired.arch, desired.image_uri
                ),
            ),
            FunctionStep::UpdateFunctionConfiguration { changes } => planned_changes(
                "lambda",
                "UpdateFunctionConfiguration",
                name,
                format!("set {}", field_list(changes)),
                changes.clone(),
            ),
            FunctionStep::UpdateFunctionCode { changes } => planned_changes(
                "lambda",
                "UpdateFunctionCode",
                name,
                format!("deploy {} ({})", desired.image_uri, desired.arch),
                changes.clone(),
            ),
            FunctionStep::PutFunctionConcurrency { reserved, from } => {
                let from = from.map_or("(none)".to_string(), |f| f.to_string());
                planned_changes(
                    "lambda",
                    "PutFunctionConcurrency",
                    name,
                    format!("reserve {reserved} concurrent executions"),
                    vec![FieldChange::new("reserved-concurrency", from, reserved)],
                )
            }
            FunctionStep::DeleteFunctionConcurrency { from } => planned_changes(
                "lambda",
                "DeleteFunctionConcurrency",
                name,
                "remove the concurrency reservation (reserved-concurrency is no longer set)".into(),
                vec![FieldChange::new("reserved-concurrency", from, "(none)")],
            ),
            FunctionStep::PutFunctionEventInvokeConfig { changes } => planned_changes(
                "lambda",
                "PutFunctionEventInvokeConfig",
                name,
                format!("set {}", field_list(changes)),
                changes.clone(),
            ),
            FunctionStep::DeleteFunctionEventInvokeConfig { changes } => planned_changes(
                "lambda",
                "DeleteFunctionEventInvokeConfig",
                name,
                "put asynchronous invocations back to Lambda's defaults (async is no longer set)"
                    .into(),
                changes.clone(),
            ),
            FunctionStep::TagResource { tags } => planned(
                "lambda",
                "TagResource",
                name,
                format!(
                    "set tags {}",
                    tags.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
        }
    }

    /// Makes the change.
    pub(crate) async fn run(&self, cx: &Context<'_>, progress: &Progress) -> Result<()> {
        let (client, reporter) = (&cx.clients.lambda, cx.reporter);
        let desired = &progress.desired;
        let name = desired.name.as_str();
        let (arch, digest) = (desired.arch, short(&desired.digest));
        match self {
            FunctionStep::CreateFunction => {
                lambda::create(client, desired, cx.creates_role, reporter).await?;
                lambda::wait_ready(client, name, reporter).await?;
                reporter.line(format!("✓ Created function {name} ({arch}) from {digest}"));
            }
            FunctionStep::UpdateFunctionConfiguration { .. } => {
                lambda::wait_ready(client, name, reporter).await?;
                lambda::update_configuration(client, desired, reporter).await?;
                lambda::wait_ready(client, name, reporter).await?;
                reporter.line(format!("✓ Updated the configuration of {name}"));
            }
            FunctionStep::UpdateFunctionCode { .. } => {
                lambda::wait_ready(client, name, reporter).await?;
                lambda::update_code(client, desired, reporter).await?;
                lambda::wait_ready(client, name, reporter).await?;
                reporter.line(format!("✓ Updated {name} ({arch}) to {digest}"));
            }
            FunctionStep::PutFunctionConcurrency { reserved, .. } => {
                lambda::set_concurrency(client, name, Some(*reserved), reporter).await?;
                reporter.line(format!(
                    "✓ Reserved {reserved} concurrent executions for {name}"
                ));
            }
            FunctionStep::DeleteFunctionConcurrency { .. } => {
                lambda::set_concurrency(client, name, None, reporter).await?;
                reporter.line(format!("✓ Removed the concurrency reservation of {name}"));
            }
            FunctionStep::PutFunctionEventInvokeConfig { .. }
            | FunctionStep::DeleteFunctionEventInvokeConfig { .. } => {
                let wanted = desired.async_invoke.as_ref();
                lambda::set_event_invoke_config(client, name, wanted, reporter).await?;
                reporter.line(format!(
                    "✓ Set the asynchronous invocation settings of {name}"
                ));
            }
            FunctionStep::TagResource { tags } => {
                let arn = cx.function_arn.unwrap_or(name);
                lambda::tag(client, name, arn, tags, reporter).await?;
            }
        }
        Ok(())
    }
}
