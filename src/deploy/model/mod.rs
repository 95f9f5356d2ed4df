//! What a deploy talks about, as plain values: the function as it should be ([`Desired`]), as
//! it is ([`Observed`]), the alias's routing, the execution role's policies, and the changes
//! between them ([`FieldChange`]). The planner decides with these and the AWS adapters
//! ([`super::aws`]) convert them to and from the SDK's types, so nothing here names an SDK
//! type or calls AWS.

pub mod alias;
mod desired;
mod observed;
pub mod role;

use serde::Serialize;

pub use alias::{Canary, Provisioned, Routing, Weight};
pub use desired::{AsyncInvoke, Cors, Desired, FunctionUrl, Logging, Vpc, PUBLIC_URL_STATEMENTS};
pub use observed::{FunctionState, LaunchOverrides, Observed, Retention, RoleState};

/// One setting that differs: what it is now and what it will be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The setting, e.g. `memory` or `env.API_URL`.
    pub field: String,
    /// Its value now (`(none)` when unset). Environment values are never shown.
    pub from: String,
    /// Its value after the deploy.
    pub to: String,
}

impl FieldChange {
    /// The setting `field` going from `from` to `to`.
    pub(crate) fn new(field: &str, from: impl ToString, to: impl ToString) -> FieldChange {
        FieldChange {
            field: field.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        }
    }
}

/// Which version the alias points at after the deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionRef {
    /// The version this deploy publishes.
    Published,
    /// A version published earlier with the same code.
    Existing(String),
}
