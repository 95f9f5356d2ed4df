//! The function's execution role: the configured one (checked to exist), or one created for
//! the function and reused on later deploys.

use aws_sdk_iam::Client;

use crate::error::{Error, Result};

use super::aws;

/// Lambda's managed policy for CloudWatch Logs.
pub const BASIC_EXECUTION_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

/// The trust policy that lets Lambda assume a role.
pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The name of the role created for a function: `<function>-lambda-role`, cut to IAM's 64
/// characters.
pub fn default_role_name(function: &str) -> String {
    let mut name = format!("{function}-lambda-role");
    if name.len() > 64 {
        let keep = 64 - "-lambda-role".len();
        name = format!(
            "{}-lambda-role",
            function.chars().take(keep).collect::<String>()
        );
    }
    name
}

/// The role name of a role ARN (`arn:aws:iam::123:role/path/name` -> `name`) and its account.
pub fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    let service = parts.next()?;
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    if service != "iam" || !resource.starts_with("role/") {
        return None;
    }
    Some((resource.rsplit('/').next()?, account))
}

/// A role's ARN, or `None` when it does not exist.
pub(crate) async fn get_role(client: &Client, name: &str) -> Result<Option<String>> {
    match client.get_role().role_name(name).send().await {
        Ok(out) => Ok(out.role().map(|r| r.arn().to_string())),
        Err(e) if aws::code(&e) == Some("NoSuchEntity") => Ok(None),
        Err(e) => Err(aws::error("iam", "GetRole", e)),
    }
}

/// The role to use.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    /// Its ARN.
    pub arn: String,
    /// Whether this deploy created it (so it may still be propagating).
    pub created: bool,
}

/// Checks the configured role exists (when it is in our account and we may read it).
pub(crate) async fn check_configured(
    client: &Client,
    function: &str,
    arn: &str,
    account: &str,
) -> Result<Role> {
    let Some((name, role_account)) = parse_role_arn(arn) else {
        return Err(Error::Deploy {
            function: function.to_string(),
            message: format!("`{arn}` is not an IAM role ARN"),
            help: "set `role` to an ARN like arn:aws:iam::123456789012:role/my-function-role, or leave it unset to have a role created".into(),
        });
    };
    if role_account == account {
        match get_role(client, name).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::Deploy {
                    function: function.to_string(),
                    message: format!("the IAM role `{arn}` does not exist"),
                    help: format!(
                        "create it (trusting lambda.amazonaws.com), fix the `role` setting, or remove `role` to have `{}` created",
                        default_role_name(function)
                    ),
                });
            }
            // Not allowed to read roles: let Lambda judge the ARN.
            Err(Error::Aws {
                code: Some(code), ..
            }) if code.starts_with("AccessDenied") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Role {
        arn: arn.to_string(),
        created: false,
    })
}

/// Reuses `<function>-lambda-role` or creates it (trusting Lambda, with basic execution).
pub(crate) async fn ensure_default(client: &Client, function: &str) -> Result<Role> {
    let name = default_role_name(function);
    if let Some(arn) = get_role(client, &name).await? {
        return Ok(Role {
            arn,
            created: false,
        });
    }
    let out = client
        .create_role()
        .role_name(&name)
        .assume_role_policy_document(TRUST_POLICY)
        .description(format!(
            "Execution role of the Lambda function {function} (created by cargo-lambda-image)"
        ))
        .send()
        .await;
    let arn = match out {
        Ok(out) => out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
        Err(e) if aws::code(&e) == Some("EntityAlreadyExists") => {
            get_role(client, &name).await?.unwrap_or_default()
        }
        Err(e) => return Err(aws::error("iam", "CreateRole", e)),
    };
    client
        .attach_role_policy()
        .role_name(&name)
        .policy_arn(BASIC_EXECUTION_POLICY)
        .send()
        .await
        .map_err(|e| aws::error("iam", "AttachRolePolicy", e))?;
    Ok(Role { arn, created: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_parse_with_paths() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/service/my-role"),
            Some(("my-role", "123456789012"))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/bob"), None);
        assert_eq!(parse_role_arn("my-role"), None);
    }

    #[test]
    fn default_role_names_fit_iam() {
        assert_eq!(default_role_name("hello"), "hello-lambda-role");
        assert_eq!(default_role_name(&"x".repeat(80)).len(), 64);
    }
}
