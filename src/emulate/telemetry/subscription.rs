//! Subscribe requests of the Telemetry API (`PUT /2022-07-01/telemetry`) and the Logs API
//! (`PUT /2020-08-15/logs`), parsed and checked as Lambda checks them: every problem of a body
//! is found, and Lambda's error message joins them with `; ` ("URI port is not provided; types
//! should not be empty").

use std::time::Duration;

use serde_json::Value;

use super::record::{Kind, Schema};
use super::Api;

/// The port of the Runtime API, which no destination may use.
pub(crate) const RESERVED_PORT: u16 = 9001;

/// The hosts a destination may name: the execution environment's own names.
pub(crate) const SANDBOX_HOSTS: &[&str] =
    &["sandbox.localdomain", "sandbox", "localhost", "127.0.0.1"];

/// How a subscriber wants its records batched: a batch goes when it holds `max_items`
/// records or `max_bytes` bytes, or when its oldest record has waited `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffering {
    /// `maxItems`: 1,000 to 10,000, default 10,000.
    pub max_items: usize,
    /// `maxBytes`: 262,144 to 1,048,576, default 262,144.
    pub max_bytes: usize,
    /// `timeoutMs`: 25 to 30,000 ms, default 1,000.
    pub timeout: Duration,
}

impl Default for Buffering {
    /// Lambda's defaults. The current API reference says 1,000 for `maxItems`; its guide, the
    /// Logs API, AWS's emulator and the lambda-extension crate agree on 10,000.
    fn default() -> Buffering {
        Buffering {
            max_items: 10_000,
            max_bytes: 262_144,
            timeout: Duration::from_millis(1_000),
        }
    }
}

/// Where records go, as the subscriber named it; the host is always the execution
/// environment, so only the port and path are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// POST a JSON array of records to `http://<sandbox>:<port><path>`.
    Http {
        /// The listener's port.
        port: u16,
        /// The URI's path and query (`/` when it had none).
        path: String,
    },
    /// Write records as NDJSON to `<sandbox>:<port>`.
    Tcp {
        /// The listener's port.
        port: u16,
    },
}

/// A valid subscribe request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subscription {
    /// The API and `schemaVersion`.
    pub schema: Schema,
    /// The `types`, in the request's order, without repeats.
    pub types: Vec<Kind>,
    /// The batching it asked for (defaults where it did not).
    pub buffering: Buffering,
    /// Where records go.
    pub destination: Destination,
}

/// `body` as a subscription to `api`, or every problem found in it. Managed Instances only
/// accept the Telemetry API's schema 2025-01-29.
pub(crate) fn parse(
    api: Api,
    body: &[u8],
    managed_instances: bool,
) -> Result<Subscription, Vec<String>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![format!("the request body is not JSON: {e}")])?;
    let Value::Object(fields) = &value else {
        return Err(vec!["the request body must be a JSON object".into()]);
    };
    let mut problems = Vec::new();
    let schema = schema_version(api, fields.get("schemaVersion"), managed_instances)
        .map_err(|p| problems.push(p))
        .ok();
    let destination = destination(fields.get("destination"), &mut problems);
    let types = types(fields.get("types"), &mut problems);
    let buffering = buffering(fields.get("buffering"), &mut problems);
    match (schema, destination, problems.is_empty()) {
        (Some(schema), Some(destination), true) => Ok(Subscription {
            schema,
            types,
            buffering,
            destination,
        }),
        _ => Err(problems),
    }
}

/// The `schemaVersion`: required by the Telemetry API, `2020-08-15` by default for the Logs
/// API.
fn schema_version(
    api: Api,
    value: Option<&Value>,
    managed_instances: bool,
) -> Result<Schema, String> {
    let known = match api {
        Api::Telemetry => Schema::TELEMETRY,
        Api::Logs => Schema::LOGS,
    };
    let names = || {
        known
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let schema = match (api, value) {
        (Api::Logs, None) => Schema::Logs20200815,
        (Api::Telemetry, None) => {
            return Err(format!("schemaVersion is required: one of {}", names()))
        }
        (_, Some(Value::String(name))) => {
            *known.iter().find(|s| s.as_str() == name).ok_or_else(|| {
                format!(
                    "schemaVersion {name} is not supported: use one of {}",
                    names()
                )
            })?
        }
        (_, Some(other)) => {
            return Err(format!(
                "schemaVersion must be a string, not {other}: one of {}",
                names()
            ))
        }
    };
    if managed_instances && schema != Schema::Telemetry20250129 {
        return Err(format!(
            "schemaVersion {} is not supported on Lambda Managed Instances: use 2025-01-29",
            schema.as_str()
        ));
    }
    Ok(schema)
}

/// The `types`: a non-empty array of `platform`, `function` and `extension`.
fn types(value: Option<&Value>, problems: &mut Vec<String>) -> Vec<Kind> {
    let Some(Value::Array(names)) = value else {
        problems.push(match value {
            None => "types should not be empty".to_string(),
            Some(other) => {
                format!("types must be an array of platform, function and extension, not {other}")
            }
        });
        return Vec::new();
    };
    if names.is_empty() {
        problems.push("types should not be empty".into());
    }
    let mut kinds = Vec::new();
    for name in names {
        match name.as_str().and_then(Kind::parse) {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => {}
            None => problems.push(format!(
                "types: {name} is not one of platform, function, extension"
            )),
        }
    }
    kinds
}

/// The `buffering`, each field within Lambda's range; missing fields take the defaults.
fn buffering(value: Option<&Value>, problems: &mut Vec<String>) -> Buffering {
    let mut buffering = Buffering::default();
    let fields = match value {
        None | Some(Value::Null) => return buffering,
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            problems.push(format!("buffering must be an object, not {other}"));
            return buffering;
        }
    };
    let mut field = |name: &str, min: u64, max: u64| -> Option<u64> {
        let value = fields.get(name)?;
        match value.as_u64().filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(n),
            None => {
                problems.push(format!(
                    "buffering.{name} must be an integer from {min} to {max}, not {value}"
                ));
                None
            }
        }
    };
    if let Some(n) = field("maxItems", 1_000, 10_000) {
        buffering.max_items = n as usize;
    }
    if let Some(n) = field("maxBytes", 262_144, 1_048_576) {
        buffering.max_bytes = n as usize;
    }
    if let Some(n) = field("timeoutMs", 25, 30_000) {
        buffering.timeout = Duration::from_millis(n);
    }
    buffering
}

/// The `destination`: `{"protocol": "HTTP", "URI": "http://sandbox.localdomain:<port>/<path>"}`
/// or `{"protocol": "TCP", ...}` with a `port` (as AWS's emulator wants) or a `URI` (as the API
/// reference documents).
fn destination(value: Option<&Value>, problems: &mut Vec<String>) -> Option<Destination> {
    let Some(Value::Object(fields)) = value else {
        problems.push(match value {
            None => "destination is required".to_string(),
            Some(other) => format!("destination must be an object, not {other}"),
        });
        return None;
    };
    let uri = fields.get("URI");
    let found = match fields.get("protocol").and_then(Value::as_str) {
        Some("HTTP") => match uri {
            Some(Value::String(uri)) => http_destination(uri),
            _ => Err("destination.URI is required for HTTP".into()),
        },
        Some("TCP") => tcp_destination(fields.get("port"), uri),
        Some(other) => Err(format!(
            "destination.protocol {other} is not supported: use HTTP or TCP"
        )),
        None => Err("destination.protocol is required: HTTP or TCP".into()),
    };
    found.map_err(|problem| problems.push(problem)).ok()
}

/// An HTTP destination's port and path, from an `http://` URI whose host is the sandbox.
fn http_destination(uri: &str) -> Result<Destination, String> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e| format!("destination.URI {uri} is not a URI: {e}"))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "destination.URI {uri} uses {other}: Lambda delivers over plain http only"
            ))
        }
        None => return Err(format!("destination.URI {uri} must start with http://")),
    }
    let port = sandbox_port(uri, parsed.host(), parsed.port_u16())?;
    let path = parsed
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .to_string();
    Ok(Destination::Http { port, path })
}

/// A TCP destination's port: its `port` field, or the port of its `URI`
/// (`tcp://sandbox.localdomain:<port>` or `sandbox.localdomain:<port>`).
fn tcp_destination(port: Option<&Value>, uri: Option<&Value>) -> Result<Destination, String> {
    if let Some(value) = port {
        let port = value
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                format!("destination.port must be a port number (1 to 65535), not {value}")
            })?;
        return check_port(port).map(|port| Destination::Tcp { port });
    }
    let Some(Value::String(uri)) = uri else {
        return Err("destination.port is required for TCP".into());
    };
    let authority = uri.split_once("://").map_or(uri.as_str(), |(_, rest)| rest);
    let parsed: http::uri::Authority = authority
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("destination.URI {uri} is not host:port: {e}"))?;
    let port = sandbox_port(uri, Some(parsed.host()), parsed.port_u16())?;
    Ok(Destination::Tcp { port })
}

/// The port of a URI naming `host`, which must be the execution environment.
fn sandbox_port(uri: &str, host: Option<&str>, port: Option<u16>) -> Result<u16, String> {
    let host = host.unwrap_or_default();
    if !SANDBOX_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(format!(
            "destination.URI {uri} names host {host}, which is not in the execution environment: use sandbox.localdomain (Lambda delivers only inside it)"
        ));
    }
    let port = port.ok_or_else(|| "URI port is not provided".to_string())?;
    check_port(port)
}

/// `port`, unless it is the Runtime API's.
fn check_port(port: u16) -> Result<u16, String> {
    if port == RESERVED_PORT {
        return Err(format!(
            "port {RESERVED_PORT} is reserved for the Runtime API"
        ));
    }
    Ok(port)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A valid Telemetry API body, as lambda-extension sends it.
    fn telemetry() -> Value {
        json!({
            "schemaVersion": "2022-07-01",
            "types": ["platform", "function"],
            "buffering": { "maxItems": 10000, "maxBytes": 262144, "timeoutMs": 1000 },
            "destination": { "protocol": "HTTP", "URI": "http://sandbox.localdomain:9003" },
        })
    }

    fn check(api: Api, body: &Value) -> Result<Subscription, String> {
        parse(api, body.to_string().as_bytes(), false).map_err(|p| p.join("; "))
    }

    /// The message for `body` with `pointer` set to `value`.
    fn problem_with(pointer: &str, value: Value) -> String {
        let mut body = telemetry();
        *body.pointer_mut(pointer).unwrap() = value;
        check(Api::Telemetry, &body).unwrap_err()
    }

    #[test]
    fn what_lambda_extension_sends_is_accepted() {
        let subscription = check(Api::Telemetry, &telemetry()).unwrap();
        assert_eq!(
            subscription,
            Subscription {
                schema: Schema::Telemetry20220701,
                types: vec![Kind::Platform, Kind::Function],
                buffering: Buffering::default(),
                destination: Destination::Http {
                    port: 9003,
                    path: "/".into()
                },
            }
        );
        let mut logs = telemetry();
        logs["schemaVersion"] = json!("2021-03-18");
        logs["destination"]["URI"] = json!("http://sandbox.localdomain:9002/lambda_logs?x=1");
        let subscription = check(Api::Logs, &logs).unwrap();
        assert_eq!(subscription.schema, Schema::Logs20210318);
        assert_eq!(
            subscription.destination,
            Destination::Http {
                port: 9002,
                path: "/lambda_logs?x=1".into()
            }
        );
    }

    #[test]
    fn every_schema_version_of_each_api_is_known_and_no_other() {
        for schema in Schema::TELEMETRY {
            let mut body = telemetry();
            body["schemaVersion"] = json!(schema.as_str());
            assert_eq!(check(Api::Telemetry, &body).unwrap().schema, *schema);
            assert!(check(Api::Logs, &body).is_err(), "{schema:?}");
        }
        assert_eq!(
            problem_with("/schemaVersion", json!("2020-08-15")),
            "schemaVersion 2020-08-15 is not supported: use one of 2022-07-01, 2022-12-13, 2025-01-29"
        );
        assert!(problem_with("/schemaVersion", json!(20220701))
            .starts_with("schemaVersion must be a string"));
        let mut body = telemetry();
        body.as_object_mut().unwrap().remove("schemaVersion");
        assert_eq!(
            check(Api::Telemetry, &body).unwrap_err(),
            "schemaVersion is required: one of 2022-07-01, 2022-12-13, 2025-01-29"
        );
        // The Logs API's version is optional.
        assert_eq!(
            check(Api::Logs, &body).unwrap().schema,
            Schema::Logs20200815
        );
    }

    #[test]
    fn managed_instances_take_only_2025_01_29() {
        let mut body = telemetry();
        let problems = parse(Api::Telemetry, body.to_string().as_bytes(), true).unwrap_err();
        assert_eq!(
            problems,
            ["schemaVersion 2022-07-01 is not supported on Lambda Managed Instances: use 2025-01-29"]
        );
        body["schemaVersion"] = json!("2025-01-29");
        assert!(parse(Api::Telemetry, body.to_string().as_bytes(), true).is_ok());
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_refused() {
        let problems = parse(Api::Telemetry, b"{", false).unwrap_err();
        assert!(
            problems[0].starts_with("the request body is not JSON"),
            "{problems:?}"
        );
        let problems = parse(Api::Logs, b"[]", false).unwrap_err();
        assert_eq!(problems, ["the request body must be a JSON object"]);
    }

    #[test]
    fn types_must_name_known_kinds() {
        assert_eq!(
            problem_with("/types", json!([])),
            "types should not be empty"
        );
        assert_eq!(
            problem_with("/types", json!(["platform", "logs"])),
            r#"types: "logs" is not one of platform, function, extension"#
        );
        assert!(problem_with("/types", json!("platform")).starts_with("types must be an array"));
        let mut body = telemetry();
        body.as_object_mut().unwrap().remove("types");
        assert_eq!(
            check(Api::Telemetry, &body).unwrap_err(),
            "types should not be empty"
        );
        body["types"] = json!(["extension", "platform", "extension"]);
        assert_eq!(
            check(Api::Telemetry, &body).unwrap().types,
            [Kind::Extension, Kind::Platform]
        );
    }

    #[test]
    fn buffering_is_checked_against_lambdas_ranges() {
        let cases = [
            ("maxItems", 999, "1000 to 10000"),
            ("maxItems", 10_001, "1000 to 10000"),
            ("maxBytes", 262_143, "262144 to 1048576"),
            ("maxBytes", 1_048_577, "262144 to 1048576"),
            ("timeoutMs", 24, "25 to 30000"),
            ("timeoutMs", 30_001, "25 to 30000"),
        ];
        for (field, value, range) in cases {
            assert_eq!(
                problem_with(&format!("/buffering/{field}"), json!(value)),
                format!("buffering.{field} must be an integer from {range}, not {value}")
            );
        }
        assert!(problem_with("/buffering/timeoutMs", json!(100.5)).contains("not 100.5"));
        assert!(problem_with("/buffering/timeoutMs", json!(-1)).contains("not -1"));
        assert_eq!(
            problem_with("/buffering", json!([])),
            "buffering must be an object, not []"
        );
        // Missing fields, or no buffering at all, take Lambda's defaults.
        let mut body = telemetry();
        body["buffering"] = json!({ "timeoutMs": 25 });
        let buffering = check(Api::Telemetry, &body).unwrap().buffering;
        assert_eq!(buffering.timeout, Duration::from_millis(25));
        assert_eq!(
            (buffering.max_items, buffering.max_bytes),
            (10_000, 262_144)
        );
        body.as_object_mut().unwrap().remove("buffering");
        assert_eq!(
            check(Api::Telemetry, &body).unwrap().buffering,
            Buffering::default()
        );
    }

    #[test]
    fn http_destinations_must_be_plain_http_in_the_sandbox() {
        let uri = |uri: &str| problem_with("/destination/URI", json!(uri));
        assert_eq!(
            uri("http://sandbox.localdomain"),
            "URI port is not provided"
        );
        assert_eq!(
            uri("http://sandbox:9001/"),
            "port 9001 is reserved for the Runtime API"
        );
        assert_eq!(
            uri("http://example.com:8080/"),
            "destination.URI http://example.com:8080/ names host example.com, which is not in the \
             execution environment: use sandbox.localdomain (Lambda delivers only inside it)"
        );
        assert!(uri("https://sandbox.localdomain:8080")
            .contains("Lambda delivers over plain http only"));
        assert!(uri("sandbox.localdomain:8080").ends_with("must start with http://"));
        assert!(uri("http://exa mple").contains("is not a URI"));
        for host in SANDBOX_HOSTS.iter().chain(&["SANDBOX.LocalDomain"]) {
            let mut body = telemetry();
            body["destination"]["URI"] = json!(format!("http://{host}:8080/x"));
            assert!(check(Api::Telemetry, &body).is_ok(), "{host}");
        }
        assert_eq!(
            problem_with("/destination", json!({ "protocol": "HTTP" })),
            "destination.URI is required for HTTP"
        );
        assert_eq!(
            problem_with("/destination/protocol", json!("HTTPS")),
            "destination.protocol HTTPS is not supported: use HTTP or TCP"
        );
        assert_eq!(
            problem_with("/destination", json!({ "URI": "http://sandbox:1" })),
            "destination.protocol is required: HTTP or TCP"
        );
        assert_eq!(
            problem_with("/destination", json!("http://sandbox:1")),
            r#"destination must be an object, not "http://sandbox:1""#
        );
        let mut body = telemetry();
        body.as_object_mut().unwrap().remove("destination");
        assert_eq!(
            check(Api::Telemetry, &body).unwrap_err(),
            "destination is required"
        );
    }

    #[test]
    fn tcp_destinations_take_a_port_or_a_uri() {
        let tcp = |destination: Value| {
            let mut body = telemetry();
            body["destination"] = destination;
            check(Api::Telemetry, &body)
        };
        let port = |port| Ok(Destination::Tcp { port });
        let destination = |r: Result<Subscription, String>| r.map(|s| s.destination);
        assert_eq!(
            destination(tcp(json!({ "protocol": "TCP", "port": 9004 }))),
            port(9004)
        );
        for uri in [
            "tcp://sandbox.localdomain:9005",
            "sandbox:9005",
            "http://127.0.0.1:9005/",
        ] {
            assert_eq!(
                destination(tcp(json!({ "protocol": "TCP", "URI": uri }))),
                port(9005)
            );
        }
        assert_eq!(
            destination(tcp(json!({ "protocol": "TCP", "port": 9001 }))),
            Err("port 9001 is reserved for the Runtime API".into())
        );
        for bad in [json!(0), json!(65_536), json!("9004")] {
            let problem = destination(tcp(json!({ "protocol": "TCP", "port": bad }))).unwrap_err();
            assert!(
                problem.starts_with("destination.port must be a port number"),
                "{problem}"
            );
        }
        assert_eq!(
            destination(tcp(json!({ "protocol": "TCP" }))),
            Err("destination.port is required for TCP".into())
        );
        let problem =
            destination(tcp(json!({ "protocol": "TCP", "URI": "example.com:1" }))).unwrap_err();
        assert!(problem.contains("names host example.com"), "{problem}");
        assert_eq!(
            destination(tcp(json!({ "protocol": "TCP", "URI": "sandbox" }))),
            Err("URI port is not provided".into())
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_as_lambda_does() {
        let body = json!({
            "schemaVersion": "2022-07-01",
            "types": [],
            "destination": { "protocol": "HTTP", "URI": "http://sandbox.localdomain" },
        });
        // The docs' own example message.
        assert_eq!(
            check(Api::Telemetry, &body).unwrap_err(),
            "URI port is not provided; types should not be empty"
        );
    }
}
