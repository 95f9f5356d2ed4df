//! Lambda's alias, provisioned-concurrency and version APIs: where an alias routes and moving
//! it (weighted routing for canary releases), provisioned concurrency on it, and the published
//! versions. The values are [`crate::deploy::model::alias`]'s; here they meet the SDK.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{AliasRoutingConfiguration, ProvisionedConcurrencyStatusEnum};
use aws_sdk_lambda::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::aws;
use crate::deploy::model::alias::{Canary, Provisioned, Published, Routing, Weight};
use crate::error::{Error, Result};
use crate::progress::Reporter;

use super::lambda::retry_conflicts;

/// GetAlias: where the alias routes; `None` when there is no such alias.
pub(crate) async fn routing(client: &Client, name: &str, alias: &str) -> Result<Option<Routing>> {
    match client
        .get_alias()
        .function_name(name)
        .name(alias)
        .send()
        .await
    {
        Ok(out) => {
            // One additional version at most: that is all Lambda allows.
            let canary = out
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .and_then(|w| w.iter().next())
                .map(|(version, weight)| Canary {
                    version: version.clone(),
                    weight: Weight::from_fraction(*weight),
                })
                .filter(|c| c.weight.0 > 0);
            Ok(Some(Routing {
                version: out.function_version().unwrap_or_default().to_string(),
                canary,
            }))
        }
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(aws::error("lambda", "GetAlias", e)),
    }
}

/// The routing configuration to send: the canary's weight, or none (an empty map, which is
/// how an update ends weighted routing).
fn sdk_routing(canary: Option<&Canary>) -> AliasRoutingConfiguration {
    let weights: HashMap<String, f64> = canary
        .map(|c| (c.version.clone(), c.weight.fraction()))
        .into_iter()
        .collect();
    AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(weights))
        .build()
}

/// Creates the alias with `routing`, or moves it there.
pub(crate) async fn set(
    client: &Client,
    name: &str,
    alias: &str,
    routing: &Routing,
    exists: bool,
    progress: &Reporter,
) -> Result<()> {
    let config = sdk_routing(routing.canary.as_ref());
    let version = routing.version.as_str();
    if exists {
        retry_conflicts(client, name, "UpdateAlias", progress, || {
            client
                .update_alias()
                .function_name(name)
                .name(alias)
                .function_version(version)
                .routing_config(config.clone())
                .send()
        })
        .await
        .map(|_| ())
    } else {
        let config = routing.canary.as_ref().map(|_| config.clone());
        retry_conflicts(client, name, "CreateAlias", progress, || {
            client
                .create_alias()
                .function_name(name)
                .name(alias)
                .function_version(version)
                .set_routing_config(config.clone())
                .send()
        })
        .await
        .map(|_| ())
    }
}

/// DeleteAlias (putting back an alias a failed deploy created).
pub(crate) async fn delete(client: &Client, name: &str, alias: &str) -> Result<()> {
    match client
        .delete_alias()
        .function_name(name)
        .name(alias)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if aws::code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(aws::error("lambda", "DeleteAlias", e)),
    }
}

/// Whether an error is a 404: no configuration (Lambda says
/// ProvisionedConcurrencyConfigNotFoundException).
fn not_found<E>(e: &SdkError<E, HttpResponse>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    let code = aws::code(e);
    code == Some("ProvisionedConcurrencyConfigNotFoundException")
        || code == Some("ResourceNotFoundException")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

/// GetProvisionedConcurrencyConfig of the alias; `None` when it has none.
pub(crate) async fn provisioned(
    client: &Client,
    name: &str,
    alias: &str,
) -> Result<Option<Provisioned>> {
    let out = client
        .get_provisioned_concurrency_config()
        .function_name(name)
        .qualifier(alias)
        .send()
        .await;
    match out {
        Ok(out) => Ok(Some(Provisioned {
            requested: out
                .requested_provisioned_concurrent_executions()
                .unwrap_or(0),
            status: out
                .status()
                .map_or("IN_PROGRESS", ProvisionedConcurrencyStatusEnum::as_str)
                .to_string(),
        })),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(aws::error("lambda", "GetProvisionedConcurrencyConfig", e)),
    }
}

/// PutProvisionedConcurrencyConfig, or with `None` DeleteProvisionedConcurrencyConfig.
pub(crate) async fn set_provisioned(
    client: &Client,
    name: &str,
    alias: &str,
    requested: Option<i32>,
    progress: &Reporter,
) -> Result<()> {
    match requested {
        Some(n) => retry_conflicts(
            client,
            name,
            "PutProvisionedConcurrencyConfig",
            progress,
            || {
                client
                    .put_provisioned_concurrency_config()
                    .function_name(name)
                    .qualifier(alias)
                    .provisioned_concurrent_executions(n)
                    .send()
            },
        )
        .await
        .map(|_| ()),
        None => {
            let out = client
                .delete_provisioned_concurrency_config()
                .function_name(name)
                .qualifier(alias)
                .send()
                .await;
            match out {
                Ok(_) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(aws::error(
                    "lambda",
                    "DeleteProvisionedConcurrencyConfig",
                    e,
                )),
            }
        }
    }
}

/// Polls the alias's provisioned concurrency until it is READY. FAILED (with Lambda's
/// reason), or not READY within `timeout`, is an error.
pub(crate) async fn wait_provisioned(
    client: &Client,
    name: &str,
    alias: &str,
    timeout: Duration,
    progress: &Reporter,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(500);
    progress.line(format!(
        "  waiting for the provisioned concurrency of {name}:{alias} (up to {} s)",
        timeout.as_secs()
    ));
    loop {
        let out = client
            .get_provisioned_concurrency_config()
            .function_name(name)
            .qualifier(alias)
            .send()
            .await
            .map_err(|e| aws::error("lambda", "GetProvisionedConcurrencyConfig", e))?;
        let status = out.status().map(|s| s.as_str().to_string());
        match status.as_deref() {
            Some("READY") => return Ok(()),
            Some("FAILED") => {
                return Err(Error::Deploy {
                    function: name.to_string(),
                    message: format!(
                        "provisioned concurrency on {alias} failed: {}",
                        out.status_reason().unwrap_or("no reason given")
                    ),
                    help: "check the account's concurrency limit and the function's init, then deploy again".into(),
                })
            }
            _ => {}
        }
        if start.elapsed() >= timeout {
            return Err(Error::Deploy {
                function: name.to_string(),
                message: format!(
                    "provisioned concurrency on {alias} was not ready after {} s (status {})",
                    timeout.as_secs(),
                    status.as_deref().unwrap_or("unknown")
                ),
                help: "raise --provisioned-timeout, or look for a slow or failing init in the function's logs, then deploy again".into(),
            });
        }
        tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Every published version (ListVersionsByFunction, all pages; `$LATEST` left out).
pub(crate) async fn published_versions(client: &Client, name: &str) -> Result<Vec<Published>> {
    let mut marker: Option<String> = None;
    let mut versions = Vec::new();
    loop {
        let out = client
            .list_versions_by_function()
            .function_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| aws::error("lambda", "ListVersionsByFunction", e))?;
        versions.extend(out.versions().iter().filter_map(|v| {
            Some(Published {
                number: v.version()?.parse().ok()?,
                code_sha256: v.code_sha256().map(str::to_string),
            })
        }));
        marker = out.next_marker().map(str::to_string);
        if marker.is_none() {
            return Ok(versions);
        }
    }
}
