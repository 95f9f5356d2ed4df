//! The execution role's steps: create `<function>-lambda-role`, attach the managed policies
//! the function's settings need, and set the inline policy for its targets.

use serde::Serialize;

use crate::deploy::aws::iam;
use crate::deploy::model::role::TARGETS_POLICY;
use crate::deploy::PlannedStep;
use crate::error::Result;

use super::{planned, Context, Progress};

/// A change to the execution role this tool manages.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum RoleStep {
    /// Create `<function>-lambda-role`, trusting Lambda.
    CreateRole {
        /// Its name.
        name: String,
    },
    /// Set the role's inline policy for the dead-letter target and destinations.
    PutRolePolicy {
        /// The role's name.
        name: String,
        /// The policy document.
        document: serde_json::Value,
    },
    /// Attach a managed policy (CloudWatch Logs; VPC access; X-Ray) to the role.
    AttachRolePolicy {
        /// The role's name.
        name: String,
        /// The policy.
        policy_arn: String,
    },
}

impl RoleStep {
    /// The step as a dry run prints it.
    pub(crate) fn describe(&self) -> PlannedStep {
        match self {
            RoleStep::CreateRole { name } => planned(
                "iam",
                "CreateRole",
                name,
                "create the execution role, trusting lambda.amazonaws.com".into(),
            ),
            RoleStep::AttachRolePolicy { name, policy_arn } => planned(
                "iam",
                "AttachRolePolicy",
                name,
                format!(
                    "attach {}",
                    policy_arn.rsplit('/').next().unwrap_or(policy_arn)
                ),
            ),
            RoleStep::PutRolePolicy { name, .. } => planned(
                "iam",
                "PutRolePolicy",
                name,
                "allow sending to the dead-letter target and destinations".into(),
            ),
        }
    }

    /// Makes the change; a created role's ARN replaces the one the plan expected.
    pub(crate) async fn run(&self, cx: &Context<'_>, progress: &mut Progress) -> Result<()> {
        let client = &cx.clients.iam;
        match self {
            RoleStep::CreateRole { name: role } => {
                let arn = iam::create_role(client, role, &progress.desired.name).await?;
                cx.reporter.line(format!("✓ Created IAM role {arn}"));
                if !arn.is_empty() {
                    progress.desired.role = arn;
                }
            }
            RoleStep::AttachRolePolicy {
                name: role,
                policy_arn,
            } => iam::attach_policy(client, role, policy_arn).await?,
            RoleStep::PutRolePolicy {
                name: role,
                document,
            } => iam::put_policy(client, role, TARGETS_POLICY, document).await?,
        }
        Ok(())
    }
}
