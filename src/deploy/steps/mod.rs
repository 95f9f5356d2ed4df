//! The steps a deploy takes, grouped by the resource each one changes: the ECR repository and
//! the push ([`EcrStep`], which the publish stage owns), the execution role, the function, its
//! Function URL, and its releases (versions, the alias and what hangs on it, the images the
//! versions use). Each group's file holds its steps, how a dry run shows them (`describe`) and
//! the calls that make them (`run`); a resource the deploy comes to manage gets a group of its
//! own beside these.

mod function;
mod release;
mod role;
mod url;

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::publish::ecr::EcrStep;

use super::model::{Desired, FieldChange, Routing, VersionRef};
use super::PlannedStep;

pub use function::FunctionStep;
pub use release::ReleaseStep;
pub use role::RoleStep;
pub use url::UrlStep;

/// One change a deploy makes, in order.
///
/// The group is not part of the serialized form: each step is tagged `step` with its own
/// name (`create-role`, `set-alias`; an ECR step is `ecr`), so the form does not depend on how
/// the steps are grouped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Step {
    /// A change to ECR or the push.
    Ecr(#[serde(serialize_with = "tagged_ecr")] EcrStep),
    /// A change to the execution role.
    Role(RoleStep),
    /// A change to the function: its creation, configuration, code, concurrency,
    /// asynchronous invocation settings or tags.
    Function(FunctionStep),
    /// A change to the Function URL, or to the permissions a public one needs.
    Url(UrlStep),
    /// A version, the alias and its provisioned concurrency, and the images versions use.
    Release(ReleaseStep),
}

/// An ECR step tagged `step: ecr`, its own fields beside the tag.
fn tagged_ecr<S: Serializer>(
    step: &EcrStep,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(tag = "step", rename_all = "kebab-case")]
    enum Tagged<'a> {
        Ecr(&'a EcrStep),
    }
    Tagged::Ecr(step).serialize(serializer)
}

impl Step {
    /// Whether the step changes the function itself (not ECR or IAM), which is what a deploy
    /// reports as `changed`.
    pub fn changes_function(&self) -> bool {
        match self {
            Step::Ecr(_) | Step::Role(_) => false,
            Step::Function(_) | Step::Url(_) => true,
            Step::Release(step) => step.changes_function(),
        }
    }

    /// The step as a dry run prints it, for the function `desired`.
    pub(crate) fn describe(&self, desired: &Desired) -> PlannedStep {
        match self {
            Step::Ecr(step) => {
                let (service, operation, target, summary) = step.describe();
                planned(service, operation, &target, summary)
            }
            Step::Role(step) => step.describe(),
            Step::Function(step) => step.describe(desired),
            Step::Url(step) => step.describe(&desired.name),
            Step::Release(step) => step.describe(&desired.name),
        }
    }
}

/// What running a step needs besides the step: the clients, where to report, and the facts
/// of the deploy that stay the same from step to step.
pub(crate) struct Context<'a> {
    /// The ECR, IAM and Lambda clients.
    pub clients: &'a Clients,
    /// Where progress goes.
    pub reporter: &'a Reporter,
    /// The alias, which the Function URL and its permissions sit on.
    pub alias: Option<&'a str>,
    /// Whether this deploy creates the role, which may then still be propagating in IAM.
    pub creates_role: bool,
    /// The function's ARN, when it existed before the deploy.
    pub function_arn: Option<&'a str>,
    /// Where the alias routed before this deploy moves it: `Some(None)` when the deploy
    /// creates it, `None` when the deploy does not move it.
    pub alias_before: Option<Option<&'a Routing>>,
    /// How long provisioned concurrency may take to be ready.
    pub provisioned_timeout: Duration,
}

/// What running the steps has learned so far: the role's real ARN once created, the version
/// once published.
pub(crate) struct Progress {
    /// The function as wanted, with what has been learned.
    pub desired: Desired,
    /// The version the deploy ends with, once known.
    pub version: Option<String>,
}

impl Progress {
    /// The version number a planned reference stands for.
    fn resolve(&self, version: &VersionRef) -> Result<String> {
        match version {
            VersionRef::Existing(v) => Ok(v.clone()),
            VersionRef::Published => self.version.clone().ok_or_else(|| Error::Deploy {
                function: self.desired.name.clone(),
                message: "no version was published for the alias".into(),
                help: "this is a bug in cargo-lambda-image; deploy again".into(),
            }),
        }
    }
}

/// A planned step without field changes.
fn planned(service: &str, operation: &str, target: &str, summary: String) -> PlannedStep {
    PlannedStep {
        service: service.into(),
        operation: operation.into(),
        target: target.into(),
        summary,
        changes: Vec::new(),
    }
}

/// A planned step with the field changes it makes.
fn planned_changes(
    service: &str,
    operation: &str,
    target: &str,
    summary: String,
    changes: Vec<FieldChange>,
) -> PlannedStep {
    PlannedStep {
        changes,
        ..planned(service, operation, target, summary)
    }
}

/// The fields of `changes`, as a summary lists them.
fn field_list(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|c| c.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
