//! The execution role this tool manages, as values: `<function>-lambda-role` trusts Lambda
//! ([`TRUST_POLICY`]), has the basic execution policy, and gets the policies the function's
//! settings need: VPC access (a VPC or a file system), X-Ray (Active tracing), and an inline
//! policy that may send to the dead-letter target and the asynchronous destinations
//! ([`targets_policy`]). The IAM calls are the adapter's (`deploy::aws::iam`).

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

/// The trust policy that lets Lambda assume a role.
pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
