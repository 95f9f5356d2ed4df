//! The schema of `[package.metadata.lambda]` and friends, and validation of one table at a time.
//!
//! Every table (workspace, workspace bin, package, package bin, the environment and the command
//! line) is validated on its own before any merging, so that an error names the exact file,
//! table and key it came from. All fields are `Option`s: defaults are applied last, in
//! [`super::resolve`], so that a default can never hide a value set further down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{did_you_mean, Error, Result, Source};

use super::keys;
pub use super::values::{
    InvokeMode, LogFormat, TagMutability, Tracing, UrlAuth, APPLICATION_LOG_LEVELS,
    SYSTEM_LOG_LEVELS,
};
use crate::lambda;
use crate::target::{Arch, Compiler, Libc};

/// One or several architectures: `arch = "arm64"` or `arch = ["x86_64", "arm64"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ArchList {
    /// A single architecture.
    One(Arch),
    /// A list of architectures.
    Many(Vec<Arch>),
}

impl ArchList {
    /// The architectures as a list, duplicates removed, order kept.
    pub fn to_vec(&self) -> Vec<Arch> {
        let raw = match self {
            ArchList::One(a) => vec![*a],
            ArchList::Many(v) => v.clone(),
        };
        let mut out = Vec::new();
        for a in raw {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

impl<'de> Deserialize<'de> for ArchList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Deserializing the strings first and parsing them ourselves keeps the message of
        // `Arch::from_str`; an untagged enum would only say that no variant matched.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let parse = |s: &str| s.parse::<Arch>().map_err(serde::de::Error::custom);
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected an architecture name or a list of them")
        })? {
            Raw::One(s) => parse(&s).map(ArchList::One),
            Raw::Many(v) => v
                .iter()
                .map(|s| parse(s))
                .collect::<Result<_, _>>()
                .map(ArchList::Many),
        }
    }
}

/// `[...lambda.deploy.vpc]`: the VPC the function's network interfaces join.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VpcConfig {
    /// Subnet IDs (1 to 16).
    pub subnets: Option<Vec<String>>,
    /// Security group IDs (1 to 5).
    pub security_groups: Option<Vec<String>>,
    /// Allow IPv6 traffic in dual-stack subnets.
    pub ipv6_dual_stack: Option<bool>,
}

/// `[...lambda.deploy.logging]`: Lambda's `LoggingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LoggingConfig {
    /// `JSON` or `Text`.
    pub format: Option<LogFormat>,
    /// The lowest level of the function's own logs sent (JSON only): TRACE, DEBUG, INFO, WARN,
    /// ERROR or FATAL.
    pub application_level: Option<String>,
    /// The lowest level of Lambda's platform logs sent (JSON only): DEBUG, INFO or WARN.
    pub system_level: Option<String>,
    /// The CloudWatch log group (default `/aws/lambda/<function>`).
    pub log_group: Option<String>,
}

/// `[...lambda.deploy.file-system]`: an EFS access point mounted in the function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSystemConfig {
    /// The EFS access point's ARN.
    pub arn: Option<String>,
    /// Where it is mounted: `/mnt/<name>`.
    pub mount_path: Option<String>,
}

/// `[...lambda.deploy.async]`: what happens to asynchronous invocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AsyncConfig {
    /// Retries after a function error, 0 to 2 (Lambda's default: 2).
    pub max_retries: Option<u32>,
    /// Seconds an event may wait, 60 to 21600 (Lambda's default: 21600).
    pub max_event_age: Option<u32>,
    /// Destination ARN for successful invocations (SQS, SNS, Lambda or EventBridge).
    pub on_success: Option<String>,
    /// Destination ARN for failed invocations.
    pub on_failure: Option<String>,
}

/// `[...lambda.deploy.url.cors]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins.
    pub allow_origins: Option<Vec<String>>,
    /// Allowed methods.
    pub allow_methods: Option<Vec<String>>,
    /// Allowed request headers.
    pub allow_headers: Option<Vec<String>>,
    /// Response headers exposed to the browser.
    pub expose_headers: Option<Vec<String>>,
    /// Seconds a preflight answer may be cached, up to 86400.
    pub max_age: Option<u32>,
    /// Whether cookies and credentials are allowed.
    pub allow_credentials: Option<bool>,
}

/// `[...lambda.deploy.url]`: a Function URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UrlConfig {
    /// `AWS_IAM` (default) or `NONE` (public).
    pub auth: Option<UrlAuth>,
    /// `BUFFERED` (default) or `RESPONSE_STREAM`.
    pub invoke_mode: Option<InvokeMode>,
    /// CORS.
    pub cors: Option<CorsConfig>,
}

/// `[...lambda.image]`: how the container image is assembled and named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageConfig {
    /// Repository name (default: the function name).
    pub repository: Option<String>,
    /// Tag template; `{version}`, `{arch}`, `{function}`, `{package}` are replaced.
    pub tag: Option<String>,
    /// ENTRYPOINT override.
    pub entrypoint: Option<Vec<String>>,
    /// CMD override.
    pub command: Option<Vec<String>>,
    /// WORKDIR override.
    pub workdir: Option<String>,
    /// OCI labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Extra files to add to the image (paths relative to the package).
    pub include: Option<Vec<String>>,
    /// Binaries of the workspace shipped as Lambda extensions, at `/opt/extensions/<name>`.
    pub extensions: Option<Vec<String>>,
    /// Write an SPDX SBOM next to the image, and attach it to pushed images.
    pub sbom: Option<bool>,
}

/// `[...lambda.deploy]`: where and how the function is deployed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeployConfig {
    /// AWS region (default: from the AWS configuration).
    pub region: Option<String>,
    /// Publish a version after each deploy.
    pub publish: Option<bool>,
    /// Alias to create or move to the published version.
    pub alias: Option<String>,
    /// AWS account IDs allowed to pull the image.
    pub cross_account: Option<Vec<String>>,
    /// ECR scan-on-push for a new repository.
    pub scan_on_push: Option<bool>,
    /// ECR tag mutability for a new repository.
    pub tag_mutability: Option<TagMutability>,
    /// X-Ray tracing.
    pub tracing: Option<Tracing>,
    /// KMS key ARN that encrypts the environment variables.
    pub kms_key: Option<String>,
    /// Concurrent executions reserved for the function.
    pub reserved_concurrency: Option<u32>,
    /// The VPC to connect to.
    pub vpc: Option<VpcConfig>,
    /// Log format, levels and group.
    pub logging: Option<LoggingConfig>,
    /// The SQS queue or SNS topic ARN for events that failed every attempt.
    pub dead_letter: Option<String>,
    /// An EFS file system to mount.
    pub file_system: Option<FileSystemConfig>,
    /// Asynchronous invocation settings.
    #[serde(rename = "async")]
    pub async_: Option<AsyncConfig>,
    /// A Function URL (on the alias when there is one).
    pub url: Option<UrlConfig>,
    /// Execution environments kept initialized for the alias.
    pub provisioned_concurrency: Option<u32>,
    /// The ECR repository's lifecycle.
    pub ecr: Option<EcrConfig>,
    /// SnapStart on published versions.
    pub snap_start: Option<bool>,
    /// One execution environment per tenant.
    pub tenant_isolation: Option<bool>,
    /// Lambda Managed Instances.
    pub managed_instances: Option<ManagedInstancesConfig>,
}

/// `[...lambda.deploy.managed-instances]`: how the function runs on Lambda Managed Instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ManagedInstancesConfig {
    /// How many requests one execution environment serves at once.
    pub max_concurrency: Option<u32>,
}

/// `[...lambda.deploy.ecr]`: the repository's lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EcrConfig {
    /// How many images to keep besides those a published version or an alias uses.
    pub keep: Option<u32>,
}

/// `[...lambda.test]`: local test settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TestConfig {
    /// Event files or globs, relative to the package.
    pub events: Option<Vec<String>>,
}

/// The value of one `env` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// The value itself, written in the manifest.
    Literal(String),
    /// `{ from-env = "NAME" }`: the value of `NAME` on the machine that deploys or runs the
    /// function, so that secrets stay out of Cargo.toml.
    FromEnv {
        /// The variable to read.
        #[serde(rename = "from-env")]
        from_env: String,
    },
}

impl<'de> Deserialize<'de> for EnvValue {
    // By hand, so that a wrong value says what is accepted instead of serde's "did not match
    // any variant of untagged enum".
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EnvValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a string, or { from-env = "NAME" }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EnvValue, A::Error> {
                let mut from_env = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "from-env" || from_env.is_some() {
                        return Err(serde::de::Error::custom(format!(
                            r#"unknown key `{key}`: the only key is `from-env`, e.g. {{ from-env = "DB_URL" }}"#
                        )));
                    }
                    from_env = Some(map.next_value::<String>()?);
                }
                from_env
                    .map(|from_env| EnvValue::FromEnv { from_env })
                    .ok_or_else(|| {
                        serde::de::Error::custom(r#"an empty table: write { from-env = "NAME" }"#)
                    })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One `[...metadata.lambda]` table, as written (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LambdaConfig {
    /// The Lambda function name (default: the binary's name).
    pub function_name: Option<String>,
    /// Architecture(s) to build for.
    pub arch: Option<ArchList>,
    /// C library.
    pub libc: Option<Libc>,
    /// Compiler backend.
    pub compiler: Option<Compiler>,
    /// The image `cross` compiles in, per target triple (`CROSS_TARGET_<TRIPLE>_IMAGE`).
    pub cross_image: Option<BTreeMap<String, String>>,
    /// Base image reference, or `scratch`.
    pub base_image: Option<String>,
    /// Memory in MB.
    pub memory: Option<u32>,
    /// Timeout in seconds.
    pub timeout: Option<u32>,
    /// Size of /tmp in MB.
    pub ephemeral_storage: Option<u32>,
    /// The function's description.
    pub description: Option<String>,
    /// IAM role ARN.
    pub role: Option<String>,
    /// Environment variables of the function: a value, or `{ from-env = "NAME" }` read from
    /// this machine's environment when the function is deployed or run.
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// Tags of the function.
    pub tags: Option<BTreeMap<String, String>>,
    /// The binaries are Lambda extensions (shipped in the images of the functions that name
    /// them in `image.extensions`), not functions.
    pub extension: Option<bool>,
    /// Image settings.
    pub image: Option<ImageConfig>,
    /// Deploy settings.
    pub deploy: Option<DeployConfig>,
    /// Local test settings.
    pub test: Option<TestConfig>,
    /// Per-binary tables, merged key by key over this one.
    pub bin: Option<BTreeMap<String, LambdaConfig>>,
}

/// Checks a raw table against the schema and returns it typed.
///
/// `allow_bin` is false inside a `bin.<name>` table, where another `bin` makes no sense.
pub fn validate(value: &Value, source: &Source, allow_bin: bool) -> Result<LambdaConfig> {
    check_keys(value, source, allow_bin)?;
    check_ranges(value, source)?;
    let config: LambdaConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        Error::InvalidType {
            source_: Box::new(source.clone()),
            help: type_help(&key),
            key,
            message: e.into_inner().to_string(),
        }
    })?;
    check_values(&config, source)?;
    Ok(config)
}

/// Rejects keys the schema does not know ([`keys::KEYS`]), table by table, with a did-you-mean
/// suggestion.
fn check_keys(value: &Value, source: &Source, allow_bin: bool) -> Result<()> {
    let Value::Object(top) = value else {
        return Err(Error::InvalidType {
            source_: Box::new(source.clone()),
            key: "lambda".into(),
            message: format!("expected a table, found {}", kind_of(value)),
            help:
                "write it as a table, e.g. `[package.metadata.lambda]` with `memory = 256` under it"
                    .into(),
        });
    };
    check_table(top, "", source, allow_bin)
}

/// Checks the keys of the table at `path` (`""`: the top level), and of the tables in it.
fn check_table(
    table: &serde_json::Map<String, Value>,
    path: &str,
    source: &Source,
    allow_bin: bool,
) -> Result<()> {
    // A `bin.<name>` table takes every top-level key but `bin`: tables do not nest.
    let known: Vec<&str> = keys::names_in(path)
        .into_iter()
        .filter(|name| allow_bin || !path.is_empty() || *name != "bin")
        .collect();
    for (name, inner) in table {
        let full = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let Some(key) = keys::find(&full).filter(|_| known.contains(&name.as_str())) else {
            let help = if full == "bin" {
                "per-binary tables cannot be nested: move these keys to the package's `bin.<name>` table".to_string()
            } else {
                unknown_help(name, &known)
            };
            return Err(Error::UnknownKey {
                source_: Box::new(source.clone()),
                key: full,
                help,
            });
        };
        match (key.kind, inner) {
            (keys::Kind::Table, Value::Object(inner)) => {
                check_table(inner, &full, source, allow_bin)?
            }
            (keys::Kind::Map, Value::Object(bins)) if full == "bin" => {
                for (bin, table) in bins {
                    let bin_source = match source {
                        Source::Manifest { path, table: t } => Source::Manifest {
                            path: path.clone(),
                            table: format!("{t}.bin.{bin}"),
                        },
                        other => other.clone(),
                    };
                    check_keys(table, &bin_source, false)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks every number that has a range ([`keys::Key::range`]) in the table `value` and its
/// `bin` tables.
fn check_ranges(value: &Value, source: &Source) -> Result<()> {
    for key in keys::KEYS {
        let Some((low, high, unit)) = key.range else {
            continue;
        };
        let pointer = format!("/{}", key.path.replace('.', "/"));
        let Some(v) = value.pointer(&pointer).and_then(Value::as_u64) else {
            continue;
        };
        if v < u64::from(low) || v > u64::from(high) {
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            };
            let name = key.split().1;
            return Err(Error::InvalidValue {
                source_: Box::new(source.clone()),
                key: key.path.to_string(),
                message: format!("{v} is outside {low}..={high}{unit}"),
                help: format!("Lambda accepts {name} from {low} to {high}{unit}"),
            });
        }
    }
    if let Some(Value::Object(bins)) = value.get("bin") {
        for (bin, table) in bins {
            let bin_source = match source {
                Source::Manifest { path, table: t } => Source::Manifest {
                    path: path.clone(),
                    table: format!("{t}.bin.{bin}"),
                },
                other => other.clone(),
            };
            check_ranges(table, &bin_source)?;
        }
    }
    Ok(())
}

/// Checks a `base-image`: `scratch`, a local source (`oci:DIR[:TAG]`, `docker-archive:FILE`,
/// `docker-daemon:IMAGE[:TAG]`) or a registry reference, each by its grammar.
fn check_base_image(base: &str) -> std::result::Result<(), String> {
    let grammar = crate::registry::grammar::check_reference;
    let result = if base == "scratch" {
        Ok(())
    } else if let Some(dir) = base.strip_prefix("oci:") {
        if dir.is_empty() {
            Err("`oci:` names no directory".to_string())
        } else {
            Ok(())
        }
    } else if let Some(file) = base.strip_prefix("docker-archive:") {
        if file.is_empty() {
            Err("`docker-archive:` names no file".to_string())
        } else {
            Ok(())
        }
    } else if let Some(image) = base.strip_prefix("docker-daemon:") {
        grammar(image)
    } else {
        grammar(base)
    };
    result.map_err(|why| format!("`{base}` is not an image reference: {why}"))
}

/// The placeholders of `image.tag`.
pub const TAG_PLACEHOLDERS: &[&str] = &["version", "arch", "function", "package"];

/// Checks a tag template before anything is built: every `{placeholder}` is one of
/// [`TAG_PLACEHOLDERS`] (with a did-you-mean), and everything else may be in an OCI tag
/// (`[A-Za-z0-9_.-]`, not starting with `.` or `-`). `Err` is the message and help.
pub fn check_tag_template(template: &str) -> std::result::Result<(), (String, String)> {
    let grammar = "a tag is letters, digits, `_`, `.` and `-`, at most 128 of them, and does not \
                   start with `.` or `-`; the placeholders are {version}, {arch}, {function} and \
                   {package}";
    let mut rest = template;
    let mut first = true;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let Some((name, tail)) = after.split_once('}') else {
                return Err((
                    format!("`{template}` opens a placeholder it does not close"),
                    grammar.into(),
                ));
            };
            if !TAG_PLACEHOLDERS.contains(&name) {
                let help = match did_you_mean(name, TAG_PLACEHOLDERS.iter().copied()) {
                    Some(s) => format!("did you mean `{{{s}}}`? The placeholders are {{version}}, {{arch}}, {{function}} and {{package}}"),
                    None => "the placeholders are {version}, {arch}, {function} and {package}".into(),
                };
                return Err((
                    format!("`{{{name}}}` in `{template}` is not a placeholder"),
                    help,
                ));
            }
            rest = tail;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            let allowed =
                c.is_ascii_alphanumeric() || c == '_' || (!first && (c == '.' || c == '-'));
            if !allowed {
                return Err((
                    format!("`{template}` has `{c}`, which a tag cannot have there"),
                    grammar.into(),
                ));
            }
            rest = &rest[c.len_utf8()..];
        }
        first = false;
    }
    Ok(())
}

/// Whether `tag` is an OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn unknown_help(key: &str, known: &[&str]) -> String {
    match did_you_mean(key, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("known keys: {}", known.join(", ")),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// An example of a valid value of `key` (a path as serde reports it, e.g. `arch[1]`), for type
/// errors: from the key's definition.
fn type_help(key: &str) -> String {
    if let Some(name) = key.strip_prefix("env.") {
        let name = name.split('.').next().unwrap_or(name);
        return format!(
            r#"write `{name} = "value"`, or `{name} = {{ from-env = "{name}" }}` to read it from the environment"#
        );
    }
    let path: String = key.split('[').next().unwrap_or(key).to_string();
    // A key inside a map (a tag, a label) takes the map's example.
    let found = keys::find(&path).or_else(|| {
        path.rsplit_once('.')
            .and_then(|(map, _)| keys::find(map).filter(|k| k.kind == keys::Kind::Map))
    });
    let Some(found) = found else {
        return "see the configuration reference in README.md".into();
    };
    let name = found.split().1;
    let range = found
        .range_text()
        .map(|range| format!(" ({range})"))
        .unwrap_or_default();
    if matches!(found.example, "true" | "false") {
        return format!("expected {name} = true or false");
    }
    format!("expected {name} = {}{range}", found.example)
}

/// Makes an [`Error::InvalidValue`] of `key` in the table from `source`.
fn invalid(source: &Source, key: &str, message: String, help: &str) -> Error {
    Error::InvalidValue {
        source_: Box::new(source.clone()),
        key: key.to_string(),
        message,
        help: help.to_string(),
    }
}

/// Format checks that types and ranges alone cannot express, table by table.
fn check_values(config: &LambdaConfig, source: &Source) -> Result<()> {
    check_top(config, source)?;
    if let Some(image) = &config.image {
        check_image(image, source)?;
    }
    if let Some(deploy) = &config.deploy {
        check_deploy(deploy, source)?;
    }
    Ok(())
}

/// The top-level keys: the function's name, architectures, base, description and environment.
fn check_top(config: &LambdaConfig, source: &Source) -> Result<()> {
    let invalid = |key: &str, message, help: &str| invalid(source, key, message, help);
    if let Some(base) = &config.base_image {
        check_base_image(base).map_err(|message| {
            invalid(
                "base-image",
                message,
                "write a registry reference (public.ecr.aws/lambda/provided:al2023), `scratch`, \
                 `oci:DIR[:TAG]`, `docker-archive:FILE` or `docker-daemon:IMAGE[:TAG]`",
            )
        })?;
    }
    if let Some(ArchList::Many(list)) = &config.arch {
        if list.is_empty() {
            return Err(invalid(
                "arch",
                "the list is empty".into(),
                r#"name at least one architecture, e.g. arch = ["arm64"]"#,
            ));
        }
    }
    if let Some(name) = &config.function_name {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(invalid(
                "function-name",
                format!("`{name}` is not a valid Lambda function name"),
                "use 1 to 64 letters, digits, hyphens or underscores",
            ));
        }
    }
    if let Some(description) = &config.description {
        let chars = description.chars().count();
        if chars > lambda::MAX_DESCRIPTION {
            return Err(invalid(
                "description",
                format!(
                    "{chars} characters is over Lambda's {}",
                    lambda::MAX_DESCRIPTION
                ),
                "shorten the description",
            ));
        }
    }
    check_env(config.env.as_ref(), source)
}

/// `env`: names Lambda accepts and does not reserve, and `from-env` variable names.
fn check_env(env: Option<&BTreeMap<String, EnvValue>>, source: &Source) -> Result<()> {
    let invalid = |key: &str, message, help: &str| invalid(source, key, message, help);
    for (key, value) in env.into_iter().flatten() {
        if let EnvValue::FromEnv { from_env } = value {
            if !lambda::is_valid_env_name(from_env) {
                return Err(invalid(
                    &format!("env.{key}.from-env"),
                    format!("`{from_env}` is not an environment variable name"),
                    "name the variable to read, e.g. { from-env = \"DB_URL\" }",
                ));
            }
        }
        if !lambda::is_valid_env_name(key) {
            return Err(invalid(
                &format!("env.{key}"),
                format!("`{key}` is not a valid environment variable name"),
                "start with a letter and use only letters, digits and underscores",
            ));
        }
        if lambda::is_reserved_env(key) {
            return Err(invalid(
                &format!("env.{key}"),
                format!("`{key}` is reserved by the Lambda runtime"),
                "Lambda sets this variable itself; choose another name",
            ));
        }
    }
    Ok(())
}

/// `image`: the tag template, and extension names (each becomes a path in the image).
fn check_image(image: &ImageConfig, source: &Source) -> Result<()> {
    if let Some(tag) = &image.tag {
        check_tag_template(tag)
            .map_err(|(message, help)| invalid(source, "image.tag", message, &help))?;
    }
    for name in image.extensions.iter().flatten() {
        if !is_binary_name(name) {
            return Err(invalid(
                source,
                "image.extensions",
                format!("`{name}` is not the name of a binary"),
                "name a [[bin]] target of the workspace, e.g. extensions = [\"telemetry\"]: letters, digits, `-` and `_`",
            ));
        }
    }
    Ok(())
}

/// Whether `name` can be a Cargo binary's name, and so a file name under /opt/extensions.
fn is_binary_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `deploy` and the tables in it.
fn check_deploy(deploy: &DeployConfig, source: &Source) -> Result<()> {
    let invalid = |key: &str, message, help: &str| invalid(source, key, message, help);
    for account in deploy.cross_account.iter().flatten() {
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(
                "deploy.cross-account",
                format!("`{account}` is not an AWS account ID"),
                "account IDs are 12 digits, e.g. \"123456789012\"",
            ));
        }
    }
    if deploy.provisioned_concurrency == Some(0) {
        return Err(invalid(
            "deploy.provisioned-concurrency",
            "0 environments is no provisioned concurrency".into(),
            "set 1 or more, or remove the key",
        ));
    }
    if let Some(key) = &deploy.kms_key {
        if !is_arn_of(key, &["kms"]) {
            return Err(invalid(
                "deploy.kms-key",
                format!("`{key}` is not a KMS key ARN"),
                "use the key's ARN, e.g. arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ));
        }
    }
    if let Some(arn) = &deploy.dead_letter {
        if !is_arn_of(arn, &["sqs", "sns"]) {
            return Err(invalid(
                "deploy.dead-letter",
                format!("`{arn}` is not an SQS queue or SNS topic ARN"),
                "use e.g. arn:aws:sqs:eu-west-1:123456789012:orders-dlq",
            ));
        }
    }
    if let Some(logging) = &deploy.logging {
        check_logging(logging, source)?;
    }
    if let Some(fs) = &deploy.file_system {
        check_file_system(fs, source)?;
    }
    if let Some(config) = &deploy.async_ {
        check_async(config, source)?;
    }
    if let Some(vpc) = &deploy.vpc {
        check_vpc(vpc, source)?;
    }
    Ok(())
}

/// Whether `arn` is an ARN of `service` (its third field).
fn is_arn_of(arn: &str, services: &[&str]) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() >= 6 && parts[0] == "arn" && services.contains(&parts[2])
}

/// `deploy.logging`: levels Lambda knows, and only with JSON logs.
fn check_logging(logging: &LoggingConfig, source: &Source) -> Result<()> {
    let levels = [
        (
            "application-level",
            &logging.application_level,
            APPLICATION_LOG_LEVELS,
        ),
        ("system-level", &logging.system_level, SYSTEM_LOG_LEVELS),
    ];
    for (key, level, known) in levels {
        let Some(level) = level else { continue };
        let key = format!("deploy.logging.{key}");
        if !known.contains(&level.as_str()) {
            return Err(invalid(
                source,
                &key,
                format!("`{level}` is not a level Lambda knows here"),
                &format!("use one of {}", known.join(", ")),
            ));
        }
        if logging.format != Some(LogFormat::Json) {
            return Err(invalid(
                source,
                &key,
                "log levels need JSON logs".into(),
                r#"add format = "JSON" to [deploy.logging]"#,
            ));
        }
    }
    Ok(())
}

/// `deploy.file-system`: an EFS access point mounted under /mnt.
fn check_file_system(fs: &FileSystemConfig, source: &Source) -> Result<()> {
    match &fs.arn {
        Some(arn) if is_arn_of(arn, &["elasticfilesystem"]) => {}
        _ => {
            return Err(invalid(
                source,
                "deploy.file-system.arn",
                format!(
                    "`{}` is not an EFS access point ARN",
                    fs.arn.as_deref().unwrap_or("")
                ),
                "use e.g. arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-0123456789abcdef0",
            ))
        }
    }
    let path = fs.mount_path.as_deref().unwrap_or("");
    let name = path.strip_prefix("/mnt/").unwrap_or("");
    if name.is_empty() || name.contains('/') {
        return Err(invalid(
            source,
            "deploy.file-system.mount-path",
            format!("`{path}` is not /mnt/<name>"),
            r#"Lambda mounts file systems under /mnt, e.g. mount-path = "/mnt/data""#,
        ));
    }
    Ok(())
}

/// `deploy.async`: destinations Lambda can send to (the retries and age are ranges).
fn check_async(config: &AsyncConfig, source: &Source) -> Result<()> {
    for (key, arn) in [
        ("on-success", &config.on_success),
        ("on-failure", &config.on_failure),
    ] {
        if let Some(arn) = arn {
            if !is_arn_of(arn, &["sqs", "sns", "lambda", "events"]) {
                return Err(invalid(
                    source,
                    &format!("deploy.async.{key}"),
                    format!("`{arn}` is not an SQS, SNS, Lambda or EventBridge ARN"),
                    "name the destination by its ARN",
                ));
            }
        }
    }
    Ok(())
}

/// `deploy.vpc`: 1 to 16 subnets and 1 to 5 security groups.
fn check_vpc(vpc: &VpcConfig, source: &Source) -> Result<()> {
    let count = |list: &Option<Vec<String>>| list.as_ref().map_or(0, Vec::len);
    let (subnets, groups) = (count(&vpc.subnets), count(&vpc.security_groups));
    if !(1..=16).contains(&subnets) {
        return Err(invalid(
            source,
            "deploy.vpc.subnets",
            format!("{subnets} subnets: Lambda takes 1 to 16"),
            r#"list the subnets the function's interfaces go in, e.g. subnets = ["subnet-0abc"]"#,
        ));
    }
    if !(1..=5).contains(&groups) {
        return Err(invalid(
            source,
            "deploy.vpc.security-groups",
            format!("{groups} security groups: Lambda takes 1 to 5"),
            r#"list the security groups, e.g. security-groups = ["sg-0abc"]"#,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src() -> Source {
        Source::Manifest {
            path: "/ws/Cargo.toml".into(),
            table: "package.metadata.lambda".into(),
        }
    }

    #[test]
    fn deploy_settings_are_checked_with_the_key_named() {
        let check = |v: Value| {
            validate(&v, &src(), true)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let err = check(json!({"deploy": {"vpc": {"subnets": [], "security-groups": ["sg-1"]}}}));
        assert!(err.contains("deploy.vpc.subnets"), "{err}");
        let err = check(json!({"deploy": {"vpc": {"subnets": ["s"], "security-group": ["sg"]}}}));
        assert!(err.contains("deploy.vpc.security-group"), "{err}");
        let err = check(json!({"deploy": {"kms-key": "alias/mine"}}));
        assert!(err.contains("deploy.kms-key"), "{err}");
        let err = check(json!({"deploy": {"tracing": "On"}}));
        assert!(err.contains("deploy.tracing"), "{err}");
        let err = check(json!({"description": "x".repeat(257)}));
        assert!(err.contains("description"), "{err}");
        let err = check(json!({"deploy": {"reserved-concurrency": -1}}));
        assert!(err.contains("deploy.reserved-concurrency"), "{err}");
        let err = check(json!({"deploy": {"logging": {"application-level": "INFO"}}}));
        assert!(
            err.contains("deploy.logging.application-level") && err.contains("JSON"),
            "{err}"
        );
        let err =
            check(json!({"deploy": {"logging": {"format": "JSON", "system-level": "TRACE"}}}));
        assert!(err.contains("deploy.logging.system-level"), "{err}");
        let err = check(json!({"deploy": {"dead-letter": "arn:aws:s3:::bucket:x:y"}}));
        assert!(err.contains("deploy.dead-letter"), "{err}");
        let err = check(json!({"deploy": {"file-system": {
            "arn": "arn:aws:elasticfilesystem:eu-west-1:1:access-point/fsap-1", "mount-path": "/data"}}}));
        assert!(err.contains("deploy.file-system.mount-path"), "{err}");
        let err = check(json!({"deploy": {"async": {"max-retries": 3}}}));
        assert!(
            err.contains("deploy.async.max-retries") && err.contains("0..=2"),
            "{err}"
        );
        let err = check(json!({"deploy": {"async": {"max-event-age": 59}}}));
        assert!(err.contains("deploy.async.max-event-age"), "{err}");
        let unknown = json!({"deploy": {"logging": {"formats": "JSON"}}});
        match validate(&unknown, &src(), true) {
            Err(Error::UnknownKey { key, help, .. }) => {
                assert_eq!(key, "deploy.logging.formats");
                assert!(help.contains("`format`"), "{help}");
            }
            other => panic!("expected an unknown key, got {other:?}"),
        }
        let err = check(json!({"deploy": {"url": {"cors": {"max-age": 86401}}}}));
        assert!(err.contains("deploy.url.cors.max-age"), "{err}");
        let err = check(json!({"deploy": {"url": {"auth": "PUBLIC"}}}));
        assert!(err.contains("deploy.url.auth"), "{err}");
        let ok = json!({"description": "d", "deploy": {"tracing": "Active", "reserved-concurrency": 0,
            "kms-key": "arn:aws:kms:eu-west-1:123456789012:key/k",
            "vpc": {"subnets": ["subnet-a"], "security-groups": ["sg-a"], "ipv6-dual-stack": true}}});
        validate(&ok, &src(), true).unwrap();
    }

    #[test]
    fn accepts_a_full_table() {
        let v = json!({
            "function-name": "echo", "arch": ["x86_64", "arm64"], "libc": "gnu",
            "compiler": "zigbuild", "base-image": "public.ecr.aws/lambda/provided:al2023",
            "memory": 256, "timeout": 30, "ephemeral-storage": 1024, "role": "arn:aws:iam::1:role/r",
            "env": {"A": "1"}, "tags": {"team": "x"},
            "image": {"repository": "r", "tag": "{version}", "labels": {"a": "b"}},
            "deploy": {"publish": true, "alias": "live", "cross-account": ["123456789012"],
                       "tag-mutability": "IMMUTABLE"},
            "test": {"events": ["events/*.json"]},
            "bin": {"x": {"memory": 512}}
        });
        let c = validate(&v, &src(), true).unwrap();
        assert_eq!(c.memory, Some(256));
        assert_eq!(c.arch.unwrap().to_vec(), vec![Arch::X86_64, Arch::Arm64]);
        assert_eq!(c.bin.unwrap()["x"].memory, Some(512));
    }

    #[test]
    fn unknown_key_suggests_the_right_one() {
        let err = validate(&json!({"memroy": 256}), &src(), true).unwrap_err();
        let Error::UnknownKey { key, help, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(key, "memroy");
        assert_eq!(help, "did you mean `memory`?");
        assert!(err.to_string().contains("/ws/Cargo.toml"), "{err}");
    }

    #[test]
    fn sbom_is_a_boolean_image_key_with_did_you_mean() {
        let c = validate(&json!({"image": {"sbom": true}}), &src(), true).unwrap();
        assert_eq!(c.image.unwrap().sbom, Some(true));
        let err = validate(&json!({"image": {"sbon": true}}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownKey { key, help, .. }
            if key == "image.sbon" && help.contains("`sbom`")),
            "{err:?}"
        );
        let err = validate(&json!({"image": {"sbom": "yes"}}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidType { key, .. } if key == "image.sbom"),
            "{err:?}"
        );
        assert!(format!("{err:?}").contains("true or false"), "{err:?}");
    }

    #[test]
    fn extensions_name_binaries_and_extension_is_a_boolean() {
        let c = validate(
            &json!({"extension": true, "image": {"extensions": ["telemetry", "log_shipper-2"]}}),
            &src(),
            true,
        )
        .unwrap();
        assert_eq!(c.extension, Some(true));
        assert_eq!(c.image.unwrap().extensions.unwrap().len(), 2);
        // A name becomes a path in the image: nothing that could leave /opt/extensions.
        for bad in ["../bootstrap", "a/b", ""] {
            let err = validate(&json!({"image": {"extensions": [bad]}}), &src(), true).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidValue { key, .. } if key == "image.extensions"),
                "{bad}: {err:?}"
            );
        }
        let err = validate(&json!({"image": {"extension": ["x"]}}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownKey { key, help, .. }
            if key == "image.extension" && help.contains("`extensions`")),
            "{err:?}"
        );
        let err = validate(&json!({"extension": "yes"}), &src(), true).unwrap_err();
        assert!(format!("{err:?}").contains("true or false"), "{err:?}");
    }

    #[test]
    fn unknown_nested_key_is_dotted() {
        let err = validate(&json!({"deploy": {"alais": "x"}}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownKey { key, help, .. }
            if key == "deploy.alais" && help.contains("`alias`")),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_key_in_bin_table_names_the_bin_table() {
        let err = validate(&json!({"bin": {"hello": {"timout": 3}}}), &src(), true).unwrap_err();
        assert!(
            err.to_string()
                .contains("package.metadata.lambda.bin.hello"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = validate(&json!({"memory": "lots"}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidType { key, .. } if key == "memory"),
            "{err:?}"
        );
        let err = validate(&json!({"image": {"labels": {"a": 1}}}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidType { key, .. } if key == "image.labels.a"),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_values_are_rejected() {
        for (v, key) in [
            (json!({"arch": "x86"}), "arch"),
            (json!({"memory": 100}), "memory"),
            (json!({"timeout": 901}), "timeout"),
            (json!({"ephemeral-storage": 100}), "ephemeral-storage"),
            (json!({"function-name": "no spaces"}), "function-name"),
            (json!({"env": {"AWS_REGION": "x"}}), "env.AWS_REGION"),
            (
                json!({"env": {"DB": {"from-env": "1X"}}}),
                "env.DB.from-env",
            ),
            (json!({"env": {"DB": {"from": "X"}}}), "env.DB"),
            (json!({"env": {"DB": 5}}), "env.DB"),
            (
                json!({"deploy": {"cross-account": ["12"]}}),
                "deploy.cross-account",
            ),
        ] {
            let err = validate(&v, &src(), true).unwrap_err();
            let got = match &err {
                Error::InvalidValue { key, .. } | Error::InvalidType { key, .. } => key.clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, key, "{v}");
        }
    }

    #[test]
    fn env_values_are_strings_or_from_env_tables() {
        let v = json!({"env": {"A": "1", "DB": {"from-env": "DB_URL"}}});
        let config = validate(&v, &src(), true).unwrap();
        let env = config.env.unwrap();
        assert_eq!(env["A"], EnvValue::Literal("1".into()));
        assert_eq!(
            env["DB"],
            EnvValue::FromEnv {
                from_env: "DB_URL".into()
            }
        );
        let err = validate(&json!({"env": {"DB": {"from": "X"}}}), &src(), true).unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("from-env"), "{text}");
    }

    #[test]
    fn bin_inside_bin_is_rejected() {
        let err = validate(&json!({"bin": {"a": {"bin": {}}}}), &src(), true).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownKey { key, .. } if key == "bin"),
            "{err:?}"
        );
    }
}
