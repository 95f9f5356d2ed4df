//! The function's execution role in IAM: looking a role up, and creating
//! `<function>-lambda-role` (trusting Lambda, with the basic execution policy) when no role is
//! configured and the function has none.

use aws_sdk_iam::Client;

use crate::aws;
use crate::error::Result;

/// Lambda's managed policy for CloudWatch Logs.
pub const BASIC_EXECUTION_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

/// The trust policy that lets Lambda assume a role.
pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// A role's ARN, or `None` when it does not exist.
pub(crate) async fn get_role(client: &Client, name: &str) -> Result<Option<String>> {
    match client.get_role().role_name(name).send().await {
        Ok(out) => Ok(out.role().map(|r| r.arn().to_string())),
        Err(e) if aws::code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(aws::error("iam", "GetRole", e)),
    }
}

/// Creates the role `name` for `function`, trusting Lambda, and returns its ARN; a role made
/// in the meantime by another deploy is taken as it is.
pub(crate) async fn create_role(client: &Client, name: &str, function: &str) -> Result<String> {
    let out = client
        .create_role()
        .role_name(name)
        .assume_role_policy_document(TRUST_POLICY)
        .description(format!(
            "Execution role of the Lambda function {function} (created by cargo-lambda-image)"
        ))
        .send()
        .await;
    match out {
        Ok(out) => Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default()),
        Err(e) if aws::code(&e) == Some("EntityAlreadyExists") => {
            Ok(get_role(client, name).await?.unwrap_or_default())
        }
        Err(e) => Err(aws::error("iam", "CreateRole", e)),
    }
}

/// Attaches a managed policy to a role.
pub(crate) async fn attach_policy(client: &Client, name: &str, policy_arn: &str) -> Result<()> {
    client
        .attach_role_policy()
        .role_name(name)
        .policy_arn(policy_arn)
        .send()
        .await
        .map_err(|e| aws::error("iam", "AttachRolePolicy", e))?;
    Ok(())
}
