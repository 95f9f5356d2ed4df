//! The function as it should be: [`Desired`] and its parts, each as Lambda holds it (lists
//! sorted, defaults resolved), so that comparing with what AWS has is comparing values. The
//! text forms here are how a change of each part is shown.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::target::Arch;

use super::{FieldChange, LaunchOverrides};

/// What the function should look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// The Lambda function name.
    pub name: String,
    /// Its one architecture.
    pub arch: Arch,
    /// The image by digest.
    pub image_uri: String,
    /// The manifest digest.
    pub digest: String,
    /// The execution role's ARN (for a role this deploy creates, the ARN it will have).
    pub role: String,
    /// Memory in MB.
    pub memory: i32,
    /// Timeout in seconds.
    pub timeout: i32,
    /// `/tmp` in MB.
    pub ephemeral_storage: i32,
    /// Description (empty: none).
    pub description: String,
    /// X-Ray tracing mode (`Active` or `PassThrough`).
    pub tracing: String,
    /// KMS key ARN for the environment (`None`: Lambda's own key).
    pub kms_key: Option<String>,
    /// The VPC (`None`: no VPC).
    pub vpc: Option<Vpc>,
    /// Reserved concurrent executions (`None`: none reserved).
    pub reserved_concurrency: Option<i32>,
    /// Log format, levels and group (the group resolved to its default).
    pub logging: Logging,
    /// Dead-letter target ARN (`None`: none).
    pub dead_letter: Option<String>,
    /// EFS access point ARN and mount path (`None`: none).
    pub file_system: Option<(String, String)>,
    /// Asynchronous invocation settings (`None`: Lambda's defaults, no destinations).
    pub async_invoke: Option<AsyncInvoke>,
    /// The Function URL (on the alias, when there is one).
    pub url: Option<FunctionUrl>,
    /// Environment variables; values are never printed.
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// `ImageConfig`, when the configuration sets what the image runs.
    pub image_config: Option<LaunchOverrides>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A function's `LoggingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Logging {
    /// `Text` or `JSON`.
    pub format: String,
    /// Application log level (JSON only).
    pub application_level: Option<String>,
    /// System log level (JSON only).
    pub system_level: Option<String>,
    /// The log group.
    pub log_group: String,
}

impl Logging {
    /// Lambda's default logging for the function `name`: text, into `/aws/lambda/<name>`.
    pub fn default_for(name: &str) -> Logging {
        Logging {
            format: "Text".into(),
            application_level: None,
            system_level: None,
            log_group: format!("/aws/lambda/{name}"),
        }
    }

    /// As a change shows it: the format and group, and with JSON the levels.
    pub(crate) fn text(&self) -> String {
        let mut text = format!("{} into {}", self.format, self.log_group);
        if self.format == "JSON" {
            let level = |l: &Option<String>| l.clone().unwrap_or_else(|| "(default)".into());
            text.push_str(&format!(
                ", application {}, system {}",
                level(&self.application_level),
                level(&self.system_level)
            ));
        }
        text
    }

    /// Whether two configurations are the same for Lambda (levels only count with JSON).
    pub(crate) fn same(&self, other: &Logging) -> bool {
        self.format == other.format
            && self.log_group == other.log_group
            && (self.format != "JSON"
                || (self.application_level == other.application_level
                    && self.system_level == other.system_level))
    }
}

/// A function's event invoke configuration (`PutFunctionEventInvokeConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AsyncInvoke {
    /// Retries after an error (Lambda's default 2).
    pub max_retries: Option<i32>,
    /// Maximum event age in seconds (Lambda's default 21600).
    pub max_event_age: Option<i32>,
    /// Destination of successes.
    pub on_success: Option<String>,
    /// Destination of failures.
    pub on_failure: Option<String>,
}

impl AsyncInvoke {
    /// The differences from `now` (which `None` leaves at Lambda's defaults), as field changes.
    pub(crate) fn changes(
        now: Option<&AsyncInvoke>,
        wanted: Option<&AsyncInvoke>,
    ) -> Vec<FieldChange> {
        let empty = AsyncInvoke::default();
        let (now, wanted) = (now.unwrap_or(&empty), wanted.unwrap_or(&empty));
        let number = |v: Option<i32>, default: i32| v.unwrap_or(default).to_string();
        let target = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let pairs = [
            (
                "async.max-retries",
                number(now.max_retries, 2),
                number(wanted.max_retries, 2),
            ),
            (
                "async.max-event-age",
                number(now.max_event_age, 21600),
                number(wanted.max_event_age, 21600),
            ),
            (
                "async.on-success",
                target(&now.on_success),
                target(&wanted.on_success),
            ),
            (
                "async.on-failure",
                target(&now.on_failure),
                target(&wanted.on_failure),
            ),
        ];
        pairs
            .into_iter()
            .filter(|(_, from, to)| from != to)
            .map(|(field, from, to)| FieldChange::new(field, from, to))
            .collect()
    }
}

/// A Function URL's configuration (CORS lists sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FunctionUrl {
    /// `AWS_IAM` or `NONE`.
    pub auth: String,
    /// `BUFFERED` or `RESPONSE_STREAM`.
    pub invoke_mode: String,
    /// CORS, when configured.
    pub cors: Option<Cors>,
}

/// A Function URL's CORS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cors {
    /// Allowed origins.
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed headers.
    pub allow_headers: Vec<String>,
    /// Exposed headers.
    pub expose_headers: Vec<String>,
    /// Preflight cache seconds.
    pub max_age: Option<i32>,
    /// Credentials allowed.
    pub allow_credentials: bool,
}

impl Cors {
    /// CORS with sorted lists, so that the order they are written in is no change.
    pub fn sorted(mut self) -> Cors {
        for list in [
            &mut self.allow_origins,
            &mut self.allow_methods,
            &mut self.allow_headers,
            &mut self.expose_headers,
        ] {
            list.sort();
        }
        self
    }

    /// As a change shows it (`(none)` without CORS).
    pub(crate) fn text(cors: Option<&Cors>) -> String {
        cors.map_or("(none)".into(), |c| {
            format!(
                "origins {}, methods {}, headers {}, expose {}, max-age {}, credentials {}",
                c.allow_origins.join(","),
                c.allow_methods.join(","),
                c.allow_headers.join(","),
                c.expose_headers.join(","),
                c.max_age.map_or("(none)".into(), |a| a.to_string()),
                c.allow_credentials
            )
        })
    }
}

/// The resource-policy statements a public (`NONE`) Function URL needs: invoking through the
/// URL, and the function itself when invoked via the URL.
pub const PUBLIC_URL_STATEMENTS: [&str; 2] = [
    "FunctionURLAllowPublicAccess",
    "FunctionURLAllowInvokeAction",
];

/// A function's VPC connection, as Lambda's `VpcConfig` holds it (lists sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Vpc {
    /// Subnet IDs.
    pub subnets: Vec<String>,
    /// Security group IDs.
    pub security_groups: Vec<String>,
    /// IPv6 in dual-stack subnets.
    pub ipv6_dual_stack: bool,
}

impl Vpc {
    /// A VPC of these lists, sorted so that the order they are written in is no change.
    pub fn new(mut subnets: Vec<String>, mut security_groups: Vec<String>, ipv6: bool) -> Vpc {
        subnets.sort();
        security_groups.sort();
        Vpc {
            subnets,
            security_groups,
            ipv6_dual_stack: ipv6,
        }
    }

    /// As a change shows it (`(none)` without a VPC).
    pub(crate) fn text(vpc: Option<&Vpc>) -> String {
        match vpc {
            None => "(none)".into(),
            Some(v) => format!(
                "subnets {}, security groups {}{}",
                v.subnets.join(","),
                v.security_groups.join(","),
                if v.ipv6_dual_stack {
                    ", IPv6 dual-stack"
                } else {
                    ""
                }
            ),
        }
    }
}
