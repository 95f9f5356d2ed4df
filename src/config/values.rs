//! The values some settings take (enums with Lambda's names for them), shared by the tables
//! as written ([`super::schema`]) and the resolved settings ([`super::resolve`]), which the
//! later stages read.

use serde::{Deserialize, Serialize};

/// ECR tag mutability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TagMutability {
    /// Tags can be moved (ECR's default).
    #[default]
    Mutable,
    /// Tags cannot be overwritten.
    Immutable,
}

/// X-Ray tracing of the function (`TracingConfig.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tracing {
    /// Trace requests that arrive sampled (Lambda's default).
    #[default]
    PassThrough,
    /// Sample and trace requests.
    Active,
}

impl Tracing {
    /// Lambda's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Tracing::PassThrough => "PassThrough",
            Tracing::Active => "Active",
        }
    }
}

/// The format of the function's logs (`LoggingConfig.LogFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LogFormat {
    /// Plain text lines (Lambda's default).
    #[default]
    Text,
    /// JSON objects, which log levels need.
    #[serde(rename = "JSON")]
    Json,
}

impl LogFormat {
    /// Lambda's name for the format.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "Text",
            LogFormat::Json => "JSON",
        }
    }
}

/// Application log levels Lambda accepts.
pub const APPLICATION_LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
/// System log levels Lambda accepts.
pub const SYSTEM_LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARN"];

/// Who may call a Function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UrlAuth {
    /// Signed requests of IAM principals allowed to (the default).
    #[default]
    #[serde(rename = "AWS_IAM")]
    AwsIam,
    /// Anyone: public.
    #[serde(rename = "NONE")]
    None,
}

impl UrlAuth {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlAuth::AwsIam => "AWS_IAM",
            UrlAuth::None => "NONE",
        }
    }
}

/// How a Function URL answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InvokeMode {
    /// The whole response at once (the default).
    #[default]
    #[serde(rename = "BUFFERED")]
    Buffered,
    /// Streamed as the function produces it.
    #[serde(rename = "RESPONSE_STREAM")]
    ResponseStream,
}

impl InvokeMode {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            InvokeMode::Buffered => "BUFFERED",
            InvokeMode::ResponseStream => "RESPONSE_STREAM",
        }
    }
}
