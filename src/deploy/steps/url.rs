//! The Function URL's steps: create, change or remove the URL (on the alias, when there is
//! one), and add or remove the resource-policy statements a public URL needs
//! ([`crate::deploy::model::PUBLIC_URL_STATEMENTS`]).

use serde::Serialize;

use crate::deploy::aws::lambda;
use crate::deploy::model::FieldChange;
use crate::deploy::PlannedStep;
use crate::error::Result;

use super::{field_list, planned, planned_changes, Context, Progress};

/// A change to the Function URL or its permissions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum UrlStep {
    /// Create the Function URL.
    CreateFunctionUrlConfig,
    /// Change the Function URL.
    UpdateFunctionUrlConfig {
        /// What differs.
        changes: Vec<FieldChange>,
    },
    /// Remove the Function URL (`deploy.url` is no longer set).
    DeleteFunctionUrlConfig,
    /// Add a statement that a public Function URL needs to the function's resource policy.
    AddPermission {
        /// The statement ID (one of [`crate::deploy::model::PUBLIC_URL_STATEMENTS`]).
        statement: String,
    },
    /// Remove a public-URL statement the URL no longer needs (not public, or gone).
    RemovePermission {
        /// The statement ID.
        statement: String,
    },
}

impl UrlStep {
    /// The step as a dry run prints it, for the function `name`.
    pub(crate) fn describe(&self, name: &str) -> PlannedStep {
        match self {
            UrlStep::CreateFunctionUrlConfig => planned(
                "lambda",
                "CreateFunctionUrlConfig",
                name,
                "create the Function URL".into(),
            ),
            UrlStep::UpdateFunctionUrlConfig { changes } => planned_changes(
                "lambda",
                "UpdateFunctionUrlConfig",
                name,
                format!("set {}", field_list(changes)),
                changes.clone(),
            ),
            UrlStep::DeleteFunctionUrlConfig => planned(
                "lambda",
                "DeleteFunctionUrlConfig",
                name,
                "remove the Function URL (url is no longer set)".into(),
            ),
            UrlStep::AddPermission { statement } => planned(
                "lambda",
                "AddPermission",
                name,
                format!("let anyone call the public URL ({statement})"),
            ),
            UrlStep::RemovePermission { statement } => planned(
                "lambda",
                "RemovePermission",
                name,
                format!("the URL is no longer public: remove {statement}"),
            ),
        }
    }

    /// Makes the change: the URL becomes what `progress.desired` wants (none removes it).
    pub(crate) async fn run(&self, cx: &Context<'_>, progress: &Progress) -> Result<()> {
        let (client, reporter) = (&cx.clients.lambda, cx.reporter);
        let name = progress.desired.name.as_str();
        match self {
            UrlStep::CreateFunctionUrlConfig
            | UrlStep::UpdateFunctionUrlConfig { .. }
            | UrlStep::DeleteFunctionUrlConfig => {
                let create = matches!(self, UrlStep::CreateFunctionUrlConfig);
                let url = progress.desired.url.as_ref();
                lambda::set_url(client, name, cx.alias, url, create, reporter).await?;
                reporter.line(format!("✓ Function URL of {name} set"));
            }
            UrlStep::AddPermission { statement } => {
                lambda::add_url_permission(client, name, cx.alias, statement).await?;
            }
            UrlStep::RemovePermission { statement } => {
                lambda::remove_permission(client, name, cx.alias, statement).await?;
            }
        }
        Ok(())
    }
}
