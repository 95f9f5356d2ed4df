//! The function's execution role in IAM: looking a role up, and creating
//! `<function>-lambda-role` (trusting Lambda, with the basic execution policy) when no role is
//! configured and the function has none. The architectures of one function share it. The role
//! this tool manages also gets the policies the function's settings need: VPC access (a VPC or
//! a file system), X-Ray (Active tracing), and an inline policy that may send to the
//! dead-letter target and the asynchronous destinations.

use aws_sdk_iam::Client;

use crate::aws;
use crate::error::Result;

/// Lambda's managed policy for CloudWatch Logs.
pub const BASIC_EXECUTION_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

/// Lambda's managed policy for network interfaces in a VPC.
pub const VPC_ACCESS_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";

/// The managed policy that lets X-Ray's daemon send traces.
pub const XRAY_POLICY: &str = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess";

/// The name of the inline policy for the dead-letter target and destinations.
pub const TARGETS_POLICY: &str = "cargo-lambda-image-targets";

/// The inline policy document that lets a function send to `targets` (SQS queues, SNS topics,
/// Lambda functions, EventBridge buses), or `None` when there are none.
pub fn targets_policy(targets: &[&str]) -> Option<serde_json::Value> {
    let statements: Vec<serde_json::Value> = targets
        .iter()
        .filter_map(|arn| {
            let action = match arn.split(':').nth(2)? {
                "sqs" => "sqs:SendMessage",
                "sns" => "sns:Publish",
                "lambda" => "lambda:InvokeFunction",
                "events" => "events:PutEvents",
                _ => return None,
            };
            Some(serde_json::json!({"Effect": "Allow", "Action": action, "Resource": arn}))
        })
        .collect();
    (!statements.is_empty())
        .then(|| serde_json::json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The managed policies attached to the role `name`.
pub(crate) async fn attached_policies(client: &Client, name: &str) -> Result<Vec<String>> {
    let out = client
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| aws::error("iam", "ListAttachedRolePolicies", e))?;
    Ok(out
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect())
}

/// The inline policy `policy` of the role `name`, parsed; `None` when there is none.
pub(crate) async fn inline_policy(
    client: &Client,
    name: &str,
    policy: &str,
) -> Result<Option<serde_json::Value>> {
    match client
        .get_role_policy()
        .role_name(name)
        .policy_name(policy)
        .send()
        .await
    {
        // IAM returns the document URL-encoded.
        Ok(out) => {
            let text = percent_encoding::percent_decode_str(out.policy_document())
                .decode_utf8_lossy()
                .into_owned();
            Ok(serde_json::from_str(&text).ok())
        }
        Err(e) if aws::code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(aws::error("iam", "GetRolePolicy", e)),
    }
}

/// Sets the inline policy `policy` of the role `name`.
pub(crate) async fn put_policy(
    client: &Client,
    name: &str,
    policy: &str,
    document: &serde_json::Value,
) -> Result<()> {
    client
        .put_role_policy()
        .role_name(name)
        .policy_name(policy)
        .policy_document(document.to_string())
        .send()
        .await
        .map_err(|e| aws::error("iam", "PutRolePolicy", e))?;
    Ok(())
}

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
