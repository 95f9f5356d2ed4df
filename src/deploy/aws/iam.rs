//! IAM's side of the execution role: looking a role up with its policies, creating
//! `<function>-lambda-role` when no role is configured and the function has none (the
//! architectures of one function share it), and attaching or setting the policies the plan
//! asks for ([`crate::deploy::model::role`]).

use aws_sdk_iam::Client;

use crate::aws;
use crate::deploy::model::role::TRUST_POLICY;
use crate::error::Result;

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
