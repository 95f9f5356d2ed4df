//! Lambda's control plane: read, create or update an Image function, wait for it, publish;
//! its Function URL, resource policy, concurrency and asynchronous settings. [`Desired`] and
//! [`FunctionState`] are converted to and from the SDK's types here and nowhere else.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::types::{
    ApplicationLogLevel, Architecture, DeadLetterConfig, DestinationConfig, Environment,
    EphemeralStorage, FileSystemConfig, FunctionCode, FunctionConfiguration, FunctionUrlAuthType,
    ImageConfig, LastUpdateStatus, LogFormat, LoggingConfig, OnFailure, OnSuccess, PackageType,
    State, SystemLogLevel, TracingConfig, TracingMode, VpcConfig,
};
use aws_sdk_lambda::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws;
use crate::deploy::model::{
    AsyncInvoke, Cors, Desired, FunctionState, FunctionUrl, LaunchOverrides, Logging, Vpc,
    PUBLIC_URL_STATEMENTS,
};
use crate::error::{Error, Result};
use crate::progress::Reporter;

/// How long to wait for a function to become Active / Successful.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long to keep retrying CreateFunction while a new role propagates.
const ROLE_PROPAGATION: Duration = Duration::from_secs(90);

/// The SDK's forms of the wanted settings.
impl Desired {
    fn architecture(&self) -> Architecture {
        Architecture::from(self.arch.lambda_name())
    }

    fn environment(&self) -> Environment {
        Environment::builder()
            .set_variables(Some(self.env.clone().into_iter().collect()))
            .build()
    }

    fn ephemeral(&self) -> Result<EphemeralStorage> {
        EphemeralStorage::builder()
            .size(self.ephemeral_storage)
            .build()
            .map_err(|e| Error::Deploy {
                function: self.name.clone(),
                message: e.to_string(),
                help: "set `ephemeral-storage` (MB, 512 to 10240)".into(),
            })
    }

    fn sdk_image_config(&self) -> Option<ImageConfig> {
        self.image_config.as_ref().map(|launch| {
            ImageConfig::builder()
                .set_entry_point(Some(launch.entrypoint.clone()).filter(|e| !e.is_empty()))
                .set_command(Some(launch.command.clone()).filter(|c| !c.is_empty()))
                .set_working_directory(launch.workdir.clone())
                .build()
        })
    }

    fn sdk_tracing(&self) -> TracingConfig {
        TracingConfig::builder()
            .mode(TracingMode::from(self.tracing.as_str()))
            .build()
    }

    /// The VPC; without one, empty lists, which is how an update takes a function out of
    /// its VPC.
    fn sdk_vpc(&self) -> VpcConfig {
        let vpc = self.vpc.clone().unwrap_or_default();
        VpcConfig::builder()
            .set_subnet_ids(Some(vpc.subnets))
            .set_security_group_ids(Some(vpc.security_groups))
            .set_ipv6_allowed_for_dual_stack(self.vpc.as_ref().map(|v| v.ipv6_dual_stack))
            .build()
    }

    fn sdk_logging(&self) -> LoggingConfig {
        let l = &self.logging;
        LoggingConfig::builder()
            .log_format(LogFormat::from(l.format.as_str()))
            .set_application_log_level(
                l.application_level
                    .as_deref()
                    .map(ApplicationLogLevel::from),
            )
            .set_system_log_level(l.system_level.as_deref().map(SystemLogLevel::from))
            .log_group(&l.log_group)
            .build()
    }

    /// The dead-letter target; an empty one removes it.
    fn sdk_dead_letter(&self) -> DeadLetterConfig {
        DeadLetterConfig::builder()
            .target_arn(self.dead_letter.clone().unwrap_or_default())
            .build()
    }

    /// The file systems: none, or the one configured.
    fn sdk_file_systems(&self) -> Result<Vec<FileSystemConfig>> {
        self.file_system
            .iter()
            .map(|(arn, path)| {
                FileSystemConfig::builder()
                    .arn(arn)
                    .local_mount_path(path)
                    .build()
                    .map_err(|e| Error::Deploy {
                        function: self.name.clone(),
                        message: e.to_string(),
                        help: "set `deploy.file-system.arn` and `mount-path`".into(),
                    })
            })
            .collect()
    }

    /// The KMS key; an empty string puts the environment back under Lambda's own key.
    fn sdk_kms_key(&self) -> String {
        self.kms_key.clone().unwrap_or_default()
    }

    fn sdk_tags(&self) -> Option<HashMap<String, String>> {
        (!self.tags.is_empty()).then(|| self.tags.clone().into_iter().collect())
    }
}

/// GetFunction; `None` when the function does not exist.
pub(crate) async fn get(client: &Client, name: &str) -> Result<Option<FunctionState>> {
    match client.get_function().function_name(name).send().await {
        Ok(out) => Ok(Some(state_of(&out))),
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("lambda", "GetFunction", e)),
    }
}

/// The function as GetFunction describes it.
fn state_of(out: &GetFunctionOutput) -> FunctionState {
    let c = out.configuration();
    let image_config = c
        .and_then(|c| c.image_config_response())
        .and_then(|r| r.image_config());
    FunctionState {
        arn: c
            .and_then(|c| c.function_arn())
            .unwrap_or_default()
            .to_string(),
        package_type: c
            .and_then(|c| c.package_type())
            .map(|p| p.as_str().to_string()),
        role: c.and_then(|c| c.role()).map(str::to_string),
        memory: c.and_then(|c| c.memory_size()),
        timeout: c.and_then(|c| c.timeout()),
        ephemeral_storage: c.and_then(|c| c.ephemeral_storage()).map(|e| e.size()),
        description: c
            .and_then(|c| c.description())
            .unwrap_or_default()
            .to_string(),
        tracing: c
            .and_then(|c| c.tracing_config())
            .and_then(|t| t.mode())
            .map(|m| m.as_str().to_string()),
        kms_key: c
            .and_then(|c| c.kms_key_arn())
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        vpc: c.and_then(|c| c.vpc_config()).and_then(|v| {
            // Lambda answers an empty VpcConfig for a function outside any VPC.
            (!v.subnet_ids().is_empty()).then(|| {
                Vpc::new(
                    v.subnet_ids().to_vec(),
                    v.security_group_ids().to_vec(),
                    v.ipv6_allowed_for_dual_stack().unwrap_or(false),
                )
            })
        }),
        reserved_concurrency: out
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        logging: c.and_then(|c| c.logging_config()).map(|l| Logging {
            format: l
                .log_format()
                .map_or("Text".to_string(), |f| f.as_str().to_string()),
            application_level: l.application_log_level().map(|v| v.as_str().to_string()),
            system_level: l.system_log_level().map(|v| v.as_str().to_string()),
            log_group: l.log_group().unwrap_or_default().to_string(),
        }),
        dead_letter: c
            .and_then(|c| c.dead_letter_config())
            .and_then(|d| d.target_arn())
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        file_system: c
            .and_then(|c| c.file_system_configs().first())
            .map(|f| (f.arn().to_string(), f.local_mount_path().to_string())),
        async_invoke: None,
        url: None,
        url_address: None,
        url_statements: Vec::new(),
        env: c
            .and_then(|c| c.environment())
            .and_then(|e| e.variables())
            .map(|v| v.clone().into_iter().collect())
            .unwrap_or_default(),
        image_config: LaunchOverrides {
            entrypoint: image_config
                .map(|i| i.entry_point().to_vec())
                .unwrap_or_default(),
            command: image_config
                .map(|i| i.command().to_vec())
                .unwrap_or_default(),
            workdir: image_config
                .and_then(|i| i.working_directory())
                .map(str::to_string),
        },
        architectures: c
            .map(|c| {
                c.architectures()
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        image_uri: out.code().and_then(|c| c.image_uri()).map(str::to_string),
        resolved_image_uri: out
            .code()
            .and_then(|c| c.resolved_image_uri())
            .map(str::to_string),
        code_sha256: c.and_then(|c| c.code_sha256()).map(str::to_string),
        tags: out
            .tags()
            .map(|t| t.clone().into_iter().collect())
            .unwrap_or_default(),
        version_with_code: None,
        alias: None,
        provisioned: None,
    }
}

/// Retries an operation that fails with 409 ResourceConflictException (an update in
/// progress) after waiting for the function to settle.
pub(crate) async fn retry_conflicts<T, E, R, F, Fut>(
    client: &Client,
    name: &str,
    operation: &str,
    progress: &Reporter,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 10 && aws::code(&e) == Some("ResourceConflictException") => {
                progress.line(format!(
                    "  {name}: an update is in progress; waiting before {operation} (attempt {attempt}/10)"
                ));
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                wait_ready(client, name, progress).await?;
                attempt += 1;
            }
            Err(e) => return Err(aws::error("lambda", operation, e)),
        }
    }
}

/// Polls GetFunctionConfiguration until State is not Pending and LastUpdateStatus is not
/// InProgress; a Failed state or update is an error with Lambda's reason.
pub(crate) async fn wait_ready(
    client: &Client,
    name: &str,
    progress: &Reporter,
) -> Result<FunctionConfiguration> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut announced = false;
    loop {
        let c = client
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| aws::error("lambda", "GetFunctionConfiguration", e))?;
        let config = FunctionConfiguration::builder()
            .set_state(c.state().cloned())
            .set_state_reason(c.state_reason().map(str::to_string))
            .set_last_update_status(c.last_update_status().cloned())
            .set_last_update_status_reason(c.last_update_status_reason().map(str::to_string))
            .set_version(c.version().map(str::to_string))
            .set_function_arn(c.function_arn().map(str::to_string))
            .set_code_sha256(c.code_sha256().map(str::to_string))
            .build();
        if c.state() == Some(&State::Failed) {
            return Err(Error::Deploy {
                function: name.to_string(),
                message: format!(
                    "Lambda reports the function Failed: {}",
                    c.state_reason().unwrap_or("no reason given")
                ),
                help: "fix the cause above (often the image or the role) and deploy again".into(),
            });
        }
        if c.last_update_status() == Some(&LastUpdateStatus::Failed) {
            return Err(Error::Deploy {
                function: name.to_string(),
                message: format!(
                    "the update failed: {} ({})",
                    c.last_update_status_reason().unwrap_or("no reason given"),
                    c.last_update_status_reason_code()
                        .map(|c| c.as_str())
                        .unwrap_or("no code")
                ),
                help: "fix the cause above (often the image, its architecture or the role) and deploy again".into(),
            });
        }
        let pending = c.state() == Some(&State::Pending)
            || c.last_update_status() == Some(&LastUpdateStatus::InProgress);
        if !pending {
            return Ok(config);
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(Error::Deploy {
                function: name.to_string(),
                message: format!(
                    "still not ready after {} s (State {:?}, LastUpdateStatus {:?})",
                    READY_TIMEOUT.as_secs(),
                    c.state(),
                    c.last_update_status()
                ),
                help: "check the function in the Lambda console and deploy again".into(),
            });
        }
        if !announced {
            progress.line(format!("  waiting for {name} to be ready"));
            announced = true;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// CreateFunction, retrying while a just-created role propagates.
pub(crate) async fn create(
    client: &Client,
    desired: &Desired,
    role_is_new: bool,
    progress: &Reporter,
) -> Result<()> {
    let start = Instant::now();
    let propagation = if role_is_new {
        ROLE_PROPAGATION
    } else {
        Duration::from_secs(20)
    };
    let mut delay = Duration::from_secs(1);
    loop {
        let result = client
            .create_function()
            .function_name(&desired.name)
            .package_type(PackageType::Image)
            .code(
                FunctionCode::builder()
                    .image_uri(&desired.image_uri)
                    .build(),
            )
            .role(&desired.role)
            .architectures(desired.architecture())
            .memory_size(desired.memory)
            .timeout(desired.timeout)
            .ephemeral_storage(desired.ephemeral()?)
            .environment(desired.environment())
            .set_image_config(desired.sdk_image_config())
            .set_tags(desired.sdk_tags())
            .description(&desired.description)
            .tracing_config(desired.sdk_tracing())
            .set_kms_key_arn(desired.kms_key.clone())
            .set_vpc_config(desired.vpc.is_some().then(|| desired.sdk_vpc()))
            .logging_config(desired.sdk_logging())
            .set_dead_letter_config(
                desired
                    .dead_letter
                    .is_some()
                    .then(|| desired.sdk_dead_letter()),
            )
            .set_file_system_configs(Some(desired.sdk_file_systems()?).filter(|f| !f.is_empty()))
            .send()
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e) => {
                let role_problem = aws::code(&e) == Some("InvalidParameterValueException")
                    && e.as_service_error()
                        .and_then(|s| s.message())
                        .is_some_and(|m| m.to_ascii_lowercase().contains("role"));
                if !role_problem {
                    return Err(aws::error("lambda", "CreateFunction", e));
                }
                if start.elapsed() + delay > propagation {
                    return Err(Error::Deploy {
                        function: desired.name.clone(),
                        message: format!(
                            "Lambda cannot assume the role {}: {}",
                            desired.role,
                            e.as_service_error()
                                .and_then(|s| s.message())
                                .unwrap_or("no message")
                        ),
                        help: "the role must trust lambda.amazonaws.com (sts:AssumeRole); a role created moments ago can take a minute to propagate, so run the deploy again".into(),
                    });
                }
                progress.line(format!(
                    "  the role {} is not usable by Lambda yet (IAM propagation); retrying in {} s",
                    desired.role,
                    delay.as_secs()
                ));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// GetFunctionUrlConfig (of `qualifier`): the configuration and the URL; `None` when there is
/// no URL.
pub(crate) async fn url_config(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Option<(FunctionUrl, String)>> {
    let out = client
        .get_function_url_config()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .send()
        .await;
    match out {
        Ok(out) => {
            let cors = out.cors().map(|c| {
                Cors {
                    allow_origins: c.allow_origins().to_vec(),
                    allow_methods: c.allow_methods().to_vec(),
                    allow_headers: c.allow_headers().to_vec(),
                    expose_headers: c.expose_headers().to_vec(),
                    max_age: c.max_age(),
                    allow_credentials: c.allow_credentials().unwrap_or(false),
                }
                .sorted()
            });
            let url = FunctionUrl {
                auth: out.auth_type().as_str().to_string(),
                // Lambda says BUFFERED when the mode was never set (moto says Buffered).
                invoke_mode: out
                    .invoke_mode()
                    .map_or("BUFFERED".into(), |m| m.as_str().to_ascii_uppercase()),
                cors,
            };
            Ok(Some((url, out.function_url().to_string())))
        }
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("lambda", "GetFunctionUrlConfig", e)),
    }
}

/// The statement IDs of the function's (or `qualifier`'s) resource policy.
pub(crate) async fn policy_statements(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Vec<String>> {
    let out = client
        .get_policy()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .send()
        .await;
    match out {
        Ok(out) => {
            let policy: serde_json::Value =
                serde_json::from_str(out.policy().unwrap_or("{}")).unwrap_or_default();
            Ok(policy["Statement"]
                .as_array()
                .map(|statements| {
                    statements
                        .iter()
                        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default())
        }
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(Vec::new()),
        Err(e) => Err(aws::error("lambda", "GetPolicy", e)),
    }
}

fn sdk_cors(cors: &Cors) -> aws_sdk_lambda::types::Cors {
    aws_sdk_lambda::types::Cors::builder()
        .set_allow_origins(Some(cors.allow_origins.clone()))
        .set_allow_methods(Some(cors.allow_methods.clone()))
        .set_allow_headers(Some(cors.allow_headers.clone()))
        .set_expose_headers(Some(cors.expose_headers.clone()))
        .set_max_age(cors.max_age)
        .allow_credentials(cors.allow_credentials)
        .build()
}

/// CreateFunctionUrlConfig or UpdateFunctionUrlConfig of `url` (on `qualifier`); with `None`,
/// DeleteFunctionUrlConfig.
pub(crate) async fn set_url(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
    url: Option<&FunctionUrl>,
    create: bool,
    progress: &Reporter,
) -> Result<()> {
    let qualifier = qualifier.map(str::to_string);
    // Like the other writes, each waits out an update in progress (409) and tries again.
    let Some(url) = url else {
        return retry_conflicts(client, name, "DeleteFunctionUrlConfig", progress, || {
            client
                .delete_function_url_config()
                .function_name(name)
                .set_qualifier(qualifier.clone())
                .send()
        })
        .await
        .map(|_| ());
    };
    let auth = FunctionUrlAuthType::from(url.auth.as_str());
    let mode = aws_sdk_lambda::types::InvokeMode::from(url.invoke_mode.as_str());
    if create {
        retry_conflicts(client, name, "CreateFunctionUrlConfig", progress, || {
            client
                .create_function_url_config()
                .function_name(name)
                .set_qualifier(qualifier.clone())
                .auth_type(auth.clone())
                .invoke_mode(mode.clone())
                .set_cors(url.cors.as_ref().map(sdk_cors))
                .send()
        })
        .await
        .map(|_| ())
    } else {
        retry_conflicts(client, name, "UpdateFunctionUrlConfig", progress, || {
            client
                .update_function_url_config()
                .function_name(name)
                .set_qualifier(qualifier.clone())
                .auth_type(auth.clone())
                .invoke_mode(mode.clone())
                // An update without CORS keeps the old CORS: send an empty one to remove it.
                .cors(sdk_cors(&url.cors.clone().unwrap_or_default()))
                .send()
        })
        .await
        .map(|_| ())
    }
}

/// AddPermission of one of the statements a public URL needs.
pub(crate) async fn add_url_permission(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
    statement: &str,
) -> Result<()> {
    let request = client
        .add_permission()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .statement_id(statement)
        .principal("*");
    let request = if statement == PUBLIC_URL_STATEMENTS[0] {
        request
            .action("lambda:InvokeFunctionUrl")
            .function_url_auth_type(FunctionUrlAuthType::None)
    } else {
        request
            .action("lambda:InvokeFunction")
            .invoked_via_function_url(true)
    };
    match request.send().await {
        Ok(_) => Ok(()),
        // Added in the meantime (another architecture's deploy of a shared alias): fine.
        Err(e) if aws::code(&e) == Some("ResourceConflictException") => Ok(()),
        Err(e) => Err(aws::error("lambda", "AddPermission", e)),
    }
}

/// RemovePermission of a statement; one already gone is fine.
pub(crate) async fn remove_permission(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
    statement: &str,
) -> Result<()> {
    let out = client
        .remove_permission()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .statement_id(statement)
        .send()
        .await;
    match out {
        Ok(_) => Ok(()),
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(aws::error("lambda", "RemovePermission", e)),
    }
}

/// GetFunctionEventInvokeConfig; `None` when the function has none.
pub(crate) async fn event_invoke_config(
    client: &Client,
    name: &str,
) -> Result<Option<AsyncInvoke>> {
    match client
        .get_function_event_invoke_config()
        .function_name(name)
        .send()
        .await
    {
        Ok(out) => {
            let destination = out.destination_config();
            Ok(Some(AsyncInvoke {
                max_retries: out.maximum_retry_attempts(),
                max_event_age: out.maximum_event_age_in_seconds(),
                on_success: destination
                    .and_then(|d| d.on_success())
                    .and_then(|d| d.destination())
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                on_failure: destination
                    .and_then(|d| d.on_failure())
                    .and_then(|d| d.destination())
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            }))
        }
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("lambda", "GetFunctionEventInvokeConfig", e)),
    }
}

/// PutFunctionEventInvokeConfig of `wanted`, or with `None` DeleteFunctionEventInvokeConfig.
pub(crate) async fn set_event_invoke_config(
    client: &Client,
    name: &str,
    wanted: Option<&AsyncInvoke>,
    progress: &Reporter,
) -> Result<()> {
    let Some(wanted) = wanted else {
        return retry_conflicts(
            client,
            name,
            "DeleteFunctionEventInvokeConfig",
            progress,
            || {
                client
                    .delete_function_event_invoke_config()
                    .function_name(name)
                    .send()
            },
        )
        .await
        .map(|_| ());
    };
    let destinations = DestinationConfig::builder()
        .set_on_success(
            wanted
                .on_success
                .as_ref()
                .map(|d| OnSuccess::builder().destination(d).build()),
        )
        .set_on_failure(
            wanted
                .on_failure
                .as_ref()
                .map(|d| OnFailure::builder().destination(d).build()),
        )
        .build();
    retry_conflicts(
        client,
        name,
        "PutFunctionEventInvokeConfig",
        progress,
        || {
            client
                .put_function_event_invoke_config()
                .function_name(name)
                .set_maximum_retry_attempts(wanted.max_retries)
                .set_maximum_event_age_in_seconds(wanted.max_event_age)
                .destination_config(destinations.clone())
                .send()
        },
    )
    .await
    .map(|_| ())
}

/// PutFunctionConcurrency, or with `None` DeleteFunctionConcurrency.
pub(crate) async fn set_concurrency(
    client: &Client,
    name: &str,
    reserved: Option<i32>,
    progress: &Reporter,
) -> Result<()> {
    match reserved {
        Some(n) => retry_conflicts(client, name, "PutFunctionConcurrency", progress, || {
            client
                .put_function_concurrency()
                .function_name(name)
                .reserved_concurrent_executions(n)
                .send()
        })
        .await
        .map(|_| ()),
        None => retry_conflicts(client, name, "DeleteFunctionConcurrency", progress, || {
            client
                .delete_function_concurrency()
                .function_name(name)
                .send()
        })
        .await
        .map(|_| ()),
    }
}

/// UpdateFunctionConfiguration.
pub(crate) async fn update_configuration(
    client: &Client,
    desired: &Desired,
    progress: &Reporter,
) -> Result<()> {
    let ephemeral = desired.ephemeral()?;
    let file_systems = desired.sdk_file_systems()?;
    retry_conflicts(
        client,
        &desired.name,
        "UpdateFunctionConfiguration",
        progress,
        || {
            client
                .update_function_configuration()
                .function_name(&desired.name)
                .role(&desired.role)
                .memory_size(desired.memory)
                .timeout(desired.timeout)
                .ephemeral_storage(ephemeral.clone())
                .environment(desired.environment())
                .set_image_config(desired.sdk_image_config())
                .description(&desired.description)
                .tracing_config(desired.sdk_tracing())
                .kms_key_arn(desired.sdk_kms_key())
                .vpc_config(desired.sdk_vpc())
                .logging_config(desired.sdk_logging())
                .dead_letter_config(desired.sdk_dead_letter())
                .set_file_system_configs(Some(file_systems.clone()))
                .send()
        },
    )
    .await
    .map(|_| ())
}

/// UpdateFunctionCode with the image and its architecture.
pub(crate) async fn update_code(
    client: &Client,
    desired: &Desired,
    progress: &Reporter,
) -> Result<()> {
    retry_conflicts(
        client,
        &desired.name,
        "UpdateFunctionCode",
        progress,
        || {
            client
                .update_function_code()
                .function_name(&desired.name)
                .image_uri(&desired.image_uri)
                .architectures(desired.architecture())
                .send()
        },
    )
    .await
    .map(|_| ())
}

/// TagResource with the tags given.
pub(crate) async fn tag(
    client: &Client,
    name: &str,
    arn: &str,
    tags: &BTreeMap<String, String>,
    progress: &Reporter,
) -> Result<()> {
    let tags: HashMap<String, String> = tags.clone().into_iter().collect();
    retry_conflicts(client, name, "TagResource", progress, || {
        client
            .tag_resource()
            .resource(arn)
            .set_tags(Some(tags.clone()))
            .send()
    })
    .await
    .map(|_| ())
}

/// PublishVersion; returns the version.
pub(crate) async fn publish(client: &Client, name: &str, progress: &Reporter) -> Result<String> {
    let out = retry_conflicts(client, name, "PublishVersion", progress, || {
        client.publish_version().function_name(name).send()
    })
    .await?;
    Ok(out.version().unwrap_or_default().to_string())
}

/// The manifest digest of the image a version (or `$LATEST`) runs; `None` when the version
/// does not exist or is not an image.
pub(crate) async fn image_digest(
    client: &Client,
    name: &str,
    qualifier: &str,
) -> Result<Option<String>> {
    match client
        .get_function()
        .function_name(name)
        .qualifier(qualifier)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .code()
            // The URI given (by digest, when this tool deployed it), else the one Lambda
            // resolved from a tag.
            .and_then(|c| {
                let given = c.image_uri().filter(|u| u.contains("@sha256:"));
                given.or(c.resolved_image_uri())
            })
            .and_then(|uri| uri.rsplit_once('@'))
            .map(|(_, digest)| digest.to_string())
            .filter(|digest| digest.starts_with("sha256:"))),
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("lambda", "GetFunction", e)),
    }
}
