//! Aliases and what hangs on them: weighted routing (canary releases) and provisioned
//! concurrency, through Lambda's alias and provisioned-concurrency APIs.
//!
//! Weights are kept in hundredths of a percent ([`Weight`]) so that plans compare exactly;
//! Lambda's `AdditionalVersionWeights` are fractions of 1.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{AliasRoutingConfiguration, ProvisionedConcurrencyStatusEnum};
use aws_sdk_lambda::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use serde::{Serialize, Serializer};

use crate::aws;
use crate::error::{Error, Result};
use crate::progress::Reporter;

/// A share of an alias's invocations, in hundredths of a percent (`Weight(1000)` is 10%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Weight(pub u32);

impl Weight {
    /// Parses `10%`, `10` or `2.5%`: more than 0 and less than 100 percent, at most two
    /// decimals.
    pub fn parse(text: &str) -> Option<Weight> {
        let number = text.trim().trim_end_matches('%').trim();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.len() > 2 || !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let whole: u32 = whole.parse().ok()?;
        let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
        let weight = whole.checked_mul(100)?.checked_add(fraction)?;
        (1..10_000).contains(&weight).then_some(Weight(weight))
    }

    /// As Lambda takes it: a fraction of 1.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// From Lambda's fraction of 1, rounded to hundredths of a percent.
    pub fn from_fraction(fraction: f64) -> Weight {
        Weight((fraction * 10_000.0).round().clamp(0.0, 10_000.0) as u32)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        match hundredths {
            0 => write!(f, "{whole}%"),
            h if h % 10 == 0 => write!(f, "{whole}.{}%", h / 10),
            h => write!(f, "{whole}.{h:02}%"),
        }
    }
}

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A second version taking a share of an alias's invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Canary {
    /// The version.
    pub version: String,
    /// Its share.
    pub weight: Weight,
}

/// Where an alias sends invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routing {
    /// The version that gets the rest.
    pub version: String,
    /// The canary, if any.
    pub canary: Option<Canary>,
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.canary {
            None => write!(f, "version {}", self.version),
            Some(c) => write!(
                f,
                "version {} ({}) + version {} ({})",
                self.version,
                Weight(10_000 - c.weight.0),
                c.version,
                c.weight
            ),
        }
    }
}

/// Provisioned concurrency on an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    /// Environments asked for.
    pub requested: i32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: String,
}

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
        super::lambda::retry_conflicts(client, name, "UpdateAlias", progress, || {
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
        super::lambda::retry_conflicts(client, name, "CreateAlias", progress, || {
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
        Some(n) => super::lambda::retry_conflicts(
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

/// A published version and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    /// Its number.
    pub number: u64,
    /// Its `CodeSha256`: for an Image function, the hex of the image's manifest digest.
    pub code_sha256: Option<String>,
}

impl Published {
    /// The manifest digest of its image (`sha256:...`).
    pub fn digest(&self) -> Option<String> {
        self.code_sha256.as_ref().map(|hex| format!("sha256:{hex}"))
    }
}

/// The newest of `versions` whose code is `code_sha256`.
pub(crate) fn newest_with(versions: &[Published], code_sha256: &str) -> Option<String> {
    versions
        .iter()
        .filter(|v| v.code_sha256.as_deref() == Some(code_sha256))
        .map(|v| v.number)
        .max()
        .map(|n| n.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_as_percentages_and_print_back() {
        for (text, weight, shown) in [
            ("10%", 1000, "10%"),
            ("10", 1000, "10%"),
            ("2.5%", 250, "2.5%"),
            ("0.01%", 1, "0.01%"),
            ("99.99", 9999, "99.99%"),
        ] {
            let w = Weight::parse(text).unwrap();
            assert_eq!(w, Weight(weight), "{text}");
            assert_eq!(w.to_string(), shown);
        }
        for bad in ["0", "0%", "100%", "150", "-5", "x%", "1.234%", ""] {
            assert_eq!(Weight::parse(bad), None, "{bad}");
        }
        assert_eq!(Weight::from_fraction(0.1), Weight(1000));
        assert_eq!(Weight(1000).fraction(), 0.1);
    }

    #[test]
    fn routing_shows_both_versions_and_weights() {
        let r = Routing {
            version: "4".into(),
            canary: Some(Canary {
                version: "5".into(),
                weight: Weight(1000),
            }),
        };
        assert_eq!(r.to_string(), "version 4 (90%) + version 5 (10%)");
    }
}
