//! CloudFormation and SAM templates for pushed images, for teams that deploy through
//! CloudFormation (or `sam deploy`) instead of `cargo lambda-image deploy`.
//!
//! One function resource per (function, arch), each pointing at its image **by digest**
//! (`<registry>/<repository>@sha256:...`), so that a template always deploys exactly the image
//! that was built and checked, never whatever a tag points at later. Lambda takes one
//! architecture per function, so a function planned for several architectures becomes several
//! resources, named as the plan names them ([`FunctionSpec::lambda_name`]: `hello`,
//! `hello-arm64`).
//!
//! The output is JSON, which is valid CloudFormation; keys are emitted in a stable order so
//! templates can be committed and diffed.
//!
//! ```
//! use cargo_lambda_image::template::{self, ImageRef, TemplateFormat};
//! # fn spec() -> cargo_lambda_image::FunctionSpec { unimplemented!() }
//! # fn demo() -> cargo_lambda_image::Result<()> {
//! let image = ImageRef::new(format!(
//!     "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello@sha256:{}",
//!     "0".repeat(64)
//! ))?;
//! let value = template::render(&[(spec(), image)], TemplateFormat::Sam)?;
//! println!("{}", serde_json::to_string_pretty(&value).unwrap());
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::lambda;
use crate::oci::{self, ImageConfig, Layout, RunConfig};
use crate::publish::PushedImage;
use crate::target::Arch;

/// The `Transform` that makes a template a SAM template.
pub const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";

/// Which kind of template to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateFormat {
    /// Plain CloudFormation: `AWS::Lambda::Function` resources, plus an `AWS::IAM::Role` for
    /// each function without a configured role.
    #[default]
    CloudFormation,
    /// AWS SAM: `AWS::Serverless::Function` resources (SAM creates the default roles).
    Sam,
}

impl fmt::Display for TemplateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemplateFormat::CloudFormation => "cloudformation",
            TemplateFormat::Sam => "sam",
        })
    }
}

impl FromStr for TemplateFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<TemplateFormat> {
        match s.to_ascii_lowercase().as_str() {
            "cloudformation" | "cfn" => Ok(TemplateFormat::CloudFormation),
            "sam" => Ok(TemplateFormat::Sam),
            other => Err(Error::Template {
                message: format!("unknown template format `{other}`"),
                help: "use `cloudformation` or `sam`".into(),
            }),
        }
    }
}

/// What an image runs: ENTRYPOINT, CMD and WORKDIR, as Lambda's `ImageConfig` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchConfig {
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD (empty when the image has none).
    pub command: Vec<String>,
    /// WORKDIR.
    pub workdir: String,
}

impl LaunchConfig {
    /// What the image of `spec` runs, decided from the kind of its base image the way
    /// [`crate::image::entrypoint_and_command`] decides it: configured values win; under the
    /// `provided` bases `/lambda-entrypoint.sh` with CMD `bootstrap`; on scratch the bootstrap
    /// itself (`/var/runtime/bootstrap`) without CMD.
    ///
    /// For other bases the base's ENTRYPOINT is not known without the image; this assumes
    /// none (as scratch). Use [`LaunchConfig::from_image`] when the image is at hand.
    pub fn for_spec(spec: &FunctionSpec) -> LaunchConfig {
        let mut base = RunConfig::default();
        if spec.base_image.is_provided() {
            base.entrypoint = vec![lambda::PROVIDED_ENTRYPOINT.to_string()];
        }
        let (entrypoint, command) = crate::image::entrypoint_and_command(spec, &base);
        LaunchConfig {
            entrypoint,
            command: command.unwrap_or_default(),
            workdir: spec.image.workdir.clone(),
        }
    }

    /// What an assembled image runs, read from its config in its OCI layout.
    pub fn from_image(image: &BuiltImage) -> Result<LaunchConfig> {
        let layout = Layout::open(image.layout_dir())?;
        let config = ImageConfig::parse(
            &layout.read_blob(&image.config_digest)?,
            image.layout.as_str(),
        )?;
        let run = config.run;
        Ok(LaunchConfig {
            entrypoint: run.entrypoint,
            command: run.cmd,
            workdir: if run.working_dir.is_empty() {
                lambda::DEFAULT_WORKDIR.to_string()
            } else {
                run.working_dir
            },
        })
    }
}

/// A pushed image as a template refers to it: by digest, optionally with its architecture
/// (checked against the function's) and what it runs (for `ImageConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    image_uri: String,
    arch: Option<Arch>,
    launch: Option<LaunchConfig>,
}

impl ImageRef {
    /// An image URI by digest, `<registry>/<repository>@sha256:<64 hex digits>`; a tag is
    /// refused, since a template must deploy exactly the image that was checked.
    pub fn new(image_uri: impl Into<String>) -> Result<ImageRef> {
        let image_uri = image_uri.into();
        let valid = image_uri
            .rsplit_once('@')
            .is_some_and(|(name, digest)| name.contains('/') && oci::digest_hex(digest).is_ok());
        if !valid {
            return Err(Error::Template {
                message: format!("`{image_uri}` is not an image URI by digest"),
                help: "give REGISTRY/REPOSITORY@sha256:DIGEST, as `push` reports it in `image_uri`"
                    .into(),
            });
        }
        Ok(ImageRef {
            image_uri,
            arch: None,
            launch: None,
        })
    }

    /// The image a push reported (its `image_uri` is by digest), with its architecture.
    pub fn from_pushed(pushed: &PushedImage) -> ImageRef {
        ImageRef {
            image_uri: pushed.image_uri.clone(),
            arch: Some(pushed.arch),
            launch: None,
        }
    }

    /// Records the image's architecture, so [`render`] refuses to pair it with a function of
    /// another architecture.
    pub fn with_arch(mut self, arch: Arch) -> ImageRef {
        self.arch = Some(arch);
        self
    }

    /// Records what the image runs (see [`LaunchConfig::from_image`]); without it,
    /// [`LaunchConfig::for_spec`] is used.
    pub fn with_launch(mut self, launch: LaunchConfig) -> ImageRef {
        self.launch = Some(launch);
        self
    }

    /// `<registry>/<repository>@sha256:...`.
    pub fn image_uri(&self) -> &str {
        &self.image_uri
    }

    /// The architecture, if recorded.
    pub fn arch(&self) -> Option<Arch> {
        self.arch
    }
}

/// A CloudFormation logical ID from a function name: its alphanumeric runs, each capitalized
/// (`fixture-echo-arm64` -> `FixtureEchoArm64`). Never empty, never starting with a digit.
pub fn logical_id(name: &str) -> String {
    let mut id = String::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert_str(0, "Fn");
    }
    // Logical IDs may be 255 characters; leave room for suffixes.
    id.truncate(200);
    id
}

/// The function settings of `[deploy]` and `description` that differ from Lambda's defaults.
fn deploy_settings(spec: &FunctionSpec, format: TemplateFormat, props: &mut Map<String, Value>) {
    let deploy = &spec.deploy;
    if !spec.description.is_empty() {
        props.insert("Description".into(), json!(spec.description));
    }
    if deploy.tracing != crate::config::values::Tracing::PassThrough {
        let mode = deploy.tracing.as_str();
        match format {
            TemplateFormat::CloudFormation => {
                props.insert("TracingConfig".into(), json!({ "Mode": mode }))
            }
            TemplateFormat::Sam => props.insert("Tracing".into(), json!(mode)),
        };
    }
    if let Some(key) = &deploy.kms_key {
        props.insert("KmsKeyArn".into(), json!(key));
    }
    if let Some(vpc) = &deploy.vpc {
        let mut config = json!({
            "SubnetIds": vpc.subnets,
            "SecurityGroupIds": vpc.security_groups,
        });
        if vpc.ipv6_dual_stack {
            config["Ipv6AllowedForDualStack"] = json!(true);
        }
        props.insert("VpcConfig".into(), config);
    }
    if let Some(reserved) = deploy.reserved_concurrency {
        props.insert("ReservedConcurrentExecutions".into(), json!(reserved));
    }
    let logging = &deploy.logging;
    if *logging != crate::config::LoggingSettings::default() {
        let mut config = json!({ "LogFormat": logging.format.as_str() });
        let fields = [
            ("ApplicationLogLevel", &logging.application_level),
            ("SystemLogLevel", &logging.system_level),
            ("LogGroup", &logging.log_group),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                config[key] = json!(value);
            }
        }
        props.insert("LoggingConfig".into(), config);
    }
    if let Some(target) = &deploy.dead_letter {
        let key = match format {
            TemplateFormat::CloudFormation => "DeadLetterConfig",
            // SAM's DeadLetterQueue names the type; its `Type` is SQS or SNS.
            TemplateFormat::Sam => "DeadLetterQueue",
        };
        let value = match format {
            TemplateFormat::CloudFormation => json!({ "TargetArn": target }),
            TemplateFormat::Sam => json!({
                "Type": if target.split(':').nth(2) == Some("sns") { "SNS" } else { "SQS" },
                "TargetArn": target,
            }),
        };
        props.insert(key.into(), value);
    }
    if let Some(fs) = &deploy.file_system {
        props.insert(
            "FileSystemConfigs".into(),
            json!([{ "Arn": fs.arn, "LocalMountPath": fs.mount_path }]),
        );
    }
}

/// The kind of an asynchronous destination, as SAM names it, from its ARN's service.
fn destination_type(arn: &str) -> &'static str {
    match arn.split(':').nth(2) {
        Some("sns") => "SNS",
        Some("lambda") => "Lambda",
        Some("events") => "EventBridge",
        Some("s3") => "S3Bucket",
        _ => "SQS",
    }
}

/// A Function URL's CORS, as both formats spell it: the lists that are set, the rest left to
/// Lambda's defaults.
fn cors(url: &crate::config::UrlSettings) -> Option<Value> {
    let c = url.cors.as_ref()?;
    let mut cors = Map::new();
    let lists = [
        ("AllowOrigins", &c.allow_origins),
        ("AllowMethods", &c.allow_methods),
        ("AllowHeaders", &c.allow_headers),
        ("ExposeHeaders", &c.expose_headers),
    ];
    for (key, list) in lists {
        if !list.is_empty() {
            cors.insert(key.into(), json!(list));
        }
    }
    if let Some(age) = c.max_age {
        cors.insert("MaxAge".into(), json!(age));
    }
    if c.allow_credentials {
        cors.insert("AllowCredentials".into(), json!(true));
    }
    Some(Value::Object(cors))
}

/// `deploy.async` and `deploy.url` as SAM properties of the function (SAM adds the public
/// URL's permission itself).
fn sam_async_and_url(spec: &FunctionSpec, props: &mut Map<String, Value>) {
    if let Some(a) = &spec.deploy.async_invoke {
        let config = async_config(a, json!({}), TemplateFormat::Sam);
        props.insert("EventInvokeConfig".into(), config);
    }
    if let Some(url) = &spec.deploy.url {
        props.insert("FunctionUrlConfig".into(), url_config(url, json!({})));
    }
}

/// The asynchronous settings over `config`, as `format` spells them (SAM's destinations
/// name their type).
fn async_config(
    a: &crate::config::AsyncSettings,
    mut config: Value,
    format: TemplateFormat,
) -> Value {
    if let Some(retries) = a.max_retries {
        config["MaximumRetryAttempts"] = json!(retries);
    }
    if let Some(age) = a.max_event_age {
        config["MaximumEventAgeInSeconds"] = json!(age);
    }
    for (key, target) in [("OnSuccess", &a.on_success), ("OnFailure", &a.on_failure)] {
        if let Some(arn) = target {
            config["DestinationConfig"][key] = match format {
                TemplateFormat::Sam => json!({ "Type": destination_type(arn), "Destination": arn }),
                TemplateFormat::CloudFormation => json!({ "Destination": arn }),
            };
        }
    }
    config
}

/// The Function URL's settings over `config`, the same in both formats.
fn url_config(url: &crate::config::UrlSettings, mut config: Value) -> Value {
    config["AuthType"] = json!(url.auth.as_str());
    config["InvokeMode"] = json!(url.invoke_mode.as_str());
    if let Some(cors) = cors(url) {
        config["Cors"] = cors;
    }
    config
}

/// `deploy.async` and `deploy.url` as CloudFormation resources next to the function
/// (`AWS::Lambda::EventInvokeConfig`, `AWS::Lambda::Url`, and for a public URL the two
/// `AWS::Lambda::Permission`s that `deploy` adds too). Templates have no alias, so both apply
/// to the function's `$LATEST`.
fn cfn_async_and_url(
    spec: &FunctionSpec,
    base: &str,
    function_id: &str,
    resources: &mut Map<String, Value>,
) {
    if let Some(a) = &spec.deploy.async_invoke {
        let base_props = json!({ "FunctionName": { "Ref": function_id }, "Qualifier": "$LATEST" });
        let props = async_config(a, base_props, TemplateFormat::CloudFormation);
        resources.insert(
            format!("{base}EventInvokeConfig"),
            json!({ "Type": "AWS::Lambda::EventInvokeConfig", "Properties": props }),
        );
    }
    let Some(url) = &spec.deploy.url else { return };
    let auth = url.auth.as_str();
    let target = json!({ "TargetFunctionArn": { "Fn::GetAtt": [function_id, "Arn"] } });
    let props = url_config(url, target);
    resources.insert(
        format!("{base}Url"),
        json!({ "Type": "AWS::Lambda::Url", "Properties": props }),
    );
    if auth == "NONE" {
        resources.insert(
            format!("{base}UrlPublicAccess"),
            json!({ "Type": "AWS::Lambda::Permission", "Properties": {
                "Action": "lambda:InvokeFunctionUrl",
                "FunctionName": { "Ref": function_id },
                "Principal": "*",
                "FunctionUrlAuthType": "NONE",
            }}),
        );
        resources.insert(
            format!("{base}UrlInvokeAction"),
            json!({ "Type": "AWS::Lambda::Permission", "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": { "Ref": function_id },
                "Principal": "*",
                "InvokedViaFunctionUrl": true,
            }}),
        );
    }
}

/// Renders a template with one function resource per (function, image).
///
/// Each function gets `PackageType: Image`, its image by digest, its one architecture,
/// memory, timeout, ephemeral storage, environment, tags and role; `ImageConfig` (with all of
/// `EntryPoint`, `Command` and `WorkingDirectory`, as CloudFormation needs) when the function
/// configures an entrypoint, a command or a working directory. Function names follow
/// the plan ([`FunctionSpec::lambda_name`]); outputs give each function's ARN.
pub fn render(functions: &[(FunctionSpec, ImageRef)], format: TemplateFormat) -> Result<Value> {
    if functions.is_empty() {
        return Err(Error::Template {
            message: "no functions to put in the template".into(),
            help: "select at least one function".into(),
        });
    }
    let mut resources = Map::new();
    let mut outputs = Map::new();
    let mut parameters = Map::new();
    let mut names = BTreeSet::new();
    let mut bases = BTreeSet::new();
    for (spec, image) in functions {
        if let Some(arch) = image.arch {
            if arch != spec.arch {
                return Err(Error::Template {
                    message: format!(
                        "the {arch} image {} was given for the {} function `{}`",
                        image.image_uri, spec.arch, spec.name
                    ),
                    help: "pair each function with the image pushed for its architecture".into(),
                });
            }
        }
        if let Some(key) = crate::deploy::plan::local_only_setting(spec) {
            return Err(Error::Template {
                message: format!(
                    "`{key}` is set for `{}`, and templates cannot carry it yet",
                    spec.name
                ),
                help: format!("remove `{key}` to write the template without it"),
            });
        }
        let function_name = spec.lambda_name.clone();
        if !names.insert(function_name.clone()) {
            return Err(Error::Template {
                message: format!("the function `{function_name}` is listed twice"),
                help: "give each (function, architecture) once".into(),
            });
        }
        let base = unique_base(logical_id(&function_name), &mut bases);
        let function_id = format!("{base}Function");
        let role_id = format!("{base}Role");
        let (resource, role) = function_resource(
            spec,
            image,
            &function_name,
            &role_id,
            format,
            &mut parameters,
        )?;
        resources.insert(function_id.clone(), resource);
        if let Some(role) = role {
            resources.insert(role_id, role);
        }
        if let Some(Value::Object(props)) = resources
            .get_mut(&function_id)
            .and_then(|r| r.get_mut("Properties"))
        {
            if format == TemplateFormat::Sam {
                sam_async_and_url(spec, props);
            }
        }
        if format == TemplateFormat::CloudFormation {
            cfn_async_and_url(spec, &base, &function_id, &mut resources);
        }
        if spec.deploy.url.is_some() {
            // SAM names the URL resource it makes `<FunctionId>Url`.
            let url_id = match format {
                TemplateFormat::CloudFormation => format!("{base}Url"),
                TemplateFormat::Sam => format!("{function_id}Url"),
            };
            outputs.insert(
                format!("{base}FunctionUrl"),
                json!({
                    "Description": format!("Function URL of {function_name}"),
                    "Value": {"Fn::GetAtt": [url_id, "FunctionUrl"]},
                }),
            );
        }
        outputs.insert(
            format!("{base}Arn"),
            json!({
                "Description": format!("ARN of the Lambda function {function_name} ({})", spec.arch),
                "Value": {"Fn::GetAtt": [function_id, "Arn"]},
            }),
        );
    }
    let mut template = Map::new();
    template.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    if format == TemplateFormat::Sam {
        template.insert("Transform".into(), json!(SAM_TRANSFORM));
    }
    template.insert(
        "Description".into(),
        json!("Rust AWS Lambda functions as container images (generated by cargo-lambda-image)"),
    );
    if !parameters.is_empty() {
        template.insert("Parameters".into(), Value::Object(parameters));
    }
    template.insert("Resources".into(), Value::Object(resources));
    template.insert("Outputs".into(), Value::Object(outputs));
    Ok(Value::Object(template))
}

/// [`render`], as pretty-printed JSON with a trailing newline.
pub fn render_string(
    functions: &[(FunctionSpec, ImageRef)],
    format: TemplateFormat,
) -> Result<String> {
    let value = render(functions, format)?;
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::Template {
        message: e.to_string(),
        help: String::new(),
    })?;
    text.push('\n');
    Ok(text)
}

/// Makes a logical ID base unique among those already used (`Hello`, `Hello2`, ...), so that
/// names differing only in punctuation (`a-b`, `a_b`) still get distinct resources.
fn unique_base(base: String, used: &mut BTreeSet<String>) -> String {
    let mut candidate = base.clone();
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = format!("{base}{n}");
        n += 1;
    }
    used.insert(candidate.clone());
    candidate
}

/// The function resource and, for CloudFormation without a configured role, its role.
fn function_resource(
    spec: &FunctionSpec,
    image: &ImageRef,
    function_name: &str,
    role_id: &str,
    format: TemplateFormat,
    parameters: &mut Map<String, Value>,
) -> Result<(Value, Option<Value>)> {
    let mut props = Map::new();
    props.insert("FunctionName".into(), json!(function_name));
    props.insert("PackageType".into(), json!("Image"));
    match format {
        TemplateFormat::CloudFormation => {
            props.insert("Code".into(), json!({"ImageUri": image.image_uri}));
        }
        TemplateFormat::Sam => {
            props.insert("ImageUri".into(), json!(image.image_uri));
        }
    }
    props.insert("Architectures".into(), json!([spec.arch.lambda_name()]));
    props.insert("MemorySize".into(), json!(spec.memory));
    props.insert("Timeout".into(), json!(spec.timeout));
    props.insert(
        "EphemeralStorage".into(),
        json!({"Size": spec.ephemeral_storage}),
    );
    if let Some(environment) = environment(spec, function_name, role_id, parameters) {
        props.insert("Environment".into(), environment);
    }
    deploy_settings(spec, format, &mut props);
    if let Some(config) = image_config(spec, image) {
        props.insert("ImageConfig".into(), config);
    }
    if !spec.tags.is_empty() {
        let tags = match format {
            TemplateFormat::CloudFormation => json!(spec
                .tags
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect::<Vec<_>>()),
            // SAM takes tags as a map.
            TemplateFormat::Sam => json!(spec.tags),
        };
        props.insert("Tags".into(), tags);
    }
    let role = execution_role(spec, function_name, role_id, format, &mut props)?;
    let kind = match format {
        TemplateFormat::CloudFormation => "AWS::Lambda::Function",
        TemplateFormat::Sam => "AWS::Serverless::Function",
    };
    Ok((json!({"Type": kind, "Properties": props}), role))
}

/// The function's `Environment`, if it has variables. A `from-env` value is a secret kept out
/// of the manifest: the template asks for it as a NoEcho parameter instead of holding it.
fn environment(
    spec: &FunctionSpec,
    function_name: &str,
    role_id: &str,
    parameters: &mut Map<String, Value>,
) -> Option<Value> {
    let mut variables: Map<String, Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    for (key, var) in &spec.env_from {
        let id = format!("{}Env{}", role_id.trim_end_matches("Role"), logical_id(key));
        parameters.insert(
            id.clone(),
            json!({
                "Type": "String",
                "NoEcho": true,
                "Description": format!("{key} of {function_name} (from-env {var})"),
            }),
        );
        variables.insert(key.clone(), json!({ "Ref": id }));
    }
    (!variables.is_empty()).then(|| json!({ "Variables": variables }))
}

/// The function's `Role`: the configured one (checked to be a role ARN), or one the template
/// creates, returned as a resource of its own (SAM creates it by itself).
fn execution_role(
    spec: &FunctionSpec,
    function_name: &str,
    role_id: &str,
    format: TemplateFormat,
    props: &mut Map<String, Value>,
) -> Result<Option<Value>> {
    match &spec.role {
        Some(arn) => {
            if lambda::parse_role_arn(arn).is_none() {
                return Err(Error::Template {
                    message: format!(
                        "the role of `{function_name}`, `{arn}`, is not an IAM role ARN"
                    ),
                    help: "set `role` to an ARN like arn:aws:iam::123456789012:role/my-function-role, or leave it unset to have the template create one".into(),
                });
            }
            props.insert("Role".into(), json!(arn));
            Ok(None)
        }
        // SAM creates `<FunctionId>Role` with the basic execution policy by itself.
        None if format == TemplateFormat::Sam => Ok(None),
        None => {
            props.insert("Role".into(), json!({"Fn::GetAtt": [role_id, "Arn"]}));
            Ok(Some(json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }],
                    },
                    "ManagedPolicyArns": [{
                        "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                    }],
                },
            })))
        }
    }
}

/// `ImageConfig` when the function configures any of entrypoint, command or working
/// directory, with all three fields: CloudFormation (unlike the Lambda API) resets the fields
/// a template leaves out, so the others are filled with what the image runs anyway.
fn image_config(spec: &FunctionSpec, image: &ImageRef) -> Option<Value> {
    if !spec.image.overrides_launch() {
        return None;
    }
    let launch = image
        .launch
        .clone()
        .unwrap_or_else(|| LaunchConfig::for_spec(spec));
    let entrypoint = spec.image.entrypoint.clone().unwrap_or(launch.entrypoint);
    let command = spec.image.command.clone().unwrap_or(launch.command);
    Some(json!({
        "EntryPoint": entrypoint,
        "Command": command,
        "WorkingDirectory": spec.image.workdir,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_alphanumeric() {
        assert_eq!(logical_id("fixture-echo-arm64"), "FixtureEchoArm64");
        assert_eq!(logical_id("my_fn.v2"), "MyFnV2");
        assert_eq!(logical_id("9lives"), "Fn9lives");
        assert_eq!(logical_id("---"), "Fn");
        let mut used = BTreeSet::new();
        assert_eq!(unique_base("AB".into(), &mut used), "AB");
        assert_eq!(unique_base("AB".into(), &mut used), "AB2");
        assert_eq!(unique_base("AB".into(), &mut used), "AB3");
    }

    #[test]
    fn image_uris_must_be_by_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(ImageRef::new(format!("reg.example/repo@{digest}")).is_ok());
        assert!(ImageRef::new("reg.example/repo:latest").is_err());
        assert!(ImageRef::new(format!("repo@{digest}")).is_err());
        assert!(ImageRef::new("reg.example/repo@sha256:abc").is_err());
    }

    #[test]
    fn formats_parse() {
        assert_eq!(
            "cloudformation".parse::<TemplateFormat>().unwrap(),
            TemplateFormat::CloudFormation
        );
        assert_eq!(
            "SAM".parse::<TemplateFormat>().unwrap(),
            TemplateFormat::Sam
        );
        assert!("terraform".parse::<TemplateFormat>().is_err());
    }

    #[test]
    fn deploy_settings_appear_only_when_set_in_each_formats_spelling() {
        let mut spec = crate::config::example_spec("orders", Arch::X86_64, "scratch");
        let mut props = Map::new();
        deploy_settings(&spec, TemplateFormat::CloudFormation, &mut props);
        assert!(props.is_empty(), "{props:?}");
        spec.description = "orders".into();
        spec.deploy.tracing = crate::config::values::Tracing::Active;
        spec.deploy.reserved_concurrency = Some(0);
        spec.deploy.vpc = Some(crate::config::VpcSettings {
            subnets: vec!["subnet-a".into()],
            security_groups: vec!["sg-a".into()],
            ipv6_dual_stack: true,
        });
        deploy_settings(&spec, TemplateFormat::CloudFormation, &mut props);
        assert_eq!(props["TracingConfig"], json!({"Mode": "Active"}));
        assert_eq!(props["ReservedConcurrentExecutions"], json!(0));
        assert_eq!(props["VpcConfig"]["Ipv6AllowedForDualStack"], json!(true));
        let mut sam = Map::new();
        deploy_settings(&spec, TemplateFormat::Sam, &mut sam);
        assert_eq!(sam["Tracing"], json!("Active"));
        spec.deploy.dead_letter = Some("arn:aws:sns:eu-west-1:123456789012:t".into());
        let mut sam = Map::new();
        deploy_settings(&spec, TemplateFormat::Sam, &mut sam);
        assert_eq!(sam["DeadLetterQueue"]["Type"], json!("SNS"));
        assert_eq!(sam["Description"], json!("orders"));
    }
}
