//! HTTP requests to Lambda events and function results back to HTTP responses: what a Function
//! URL, an API Gateway API or an Application Load Balancer does in front of a function, as pure
//! functions for the emulator's HTTP front.
//!
//! Three event shapes ([`HttpFormat`]): payload 2.0 (Function URLs and HTTP APIs), payload 1.0
//! (REST APIs) and ALB target groups. Events are built as the `aws_lambda_events` types that
//! `lambda_http` deserializes, so the field names are the ones a function expects. `lambda_http`
//! tells the shapes apart by trying, in order, a REST API request (it needs `httpMethod` at the
//! top and in `requestContext`), a 2.0 request (`requestContext.http`), then an ALB request
//! (`requestContext.elb`).
//!
//! A buffered result is read as API Gateway reads it ([`buffered_response`]); a streamed one
//! starts with the HTTP-integration prelude ([`split_prelude`]).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContextHttpDescription,
};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use http::header::{COOKIE, HOST, SET_COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// The most bytes a streamed response's prelude may take before the stream is taken as having
/// none.
pub const PRELUDE_LIMIT: usize = 64 * 1024;

/// The delimiter after a streamed response's prelude.
const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// Which event shape the front sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpFormat {
    /// Payload format 2.0, as Function URLs and API Gateway HTTP APIs send it.
    #[default]
    ApigwV2,
    /// Payload format 1.0, as API Gateway REST APIs send it (proxy integration).
    ApigwV1,
    /// An Application Load Balancer target group's request (multi-value headers off).
    Alb,
}

impl HttpFormat {
    /// Every format.
    pub const ALL: [HttpFormat; 3] = [HttpFormat::ApigwV2, HttpFormat::ApigwV1, HttpFormat::Alb];

    /// The format's name on the command line: `apigw-v2`, `apigw-v1` or `alb`.
    pub fn name(self) -> &'static str {
        match self {
            HttpFormat::ApigwV2 => "apigw-v2",
            HttpFormat::ApigwV1 => "apigw-v1",
            HttpFormat::Alb => "alb",
        }
    }
}

impl fmt::Display for HttpFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HttpFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HttpFormat::ALL
            .into_iter()
            .find(|format| format.name() == s)
            .ok_or_else(|| {
                format!("unknown HTTP event format `{s}`: expected `apigw-v2`, `apigw-v1` or `alb`")
            })
    }
}

/// What the front knows about a request besides the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The client's address.
    pub source_ip: IpAddr,
    /// The front's id for the request (`requestContext.requestId`).
    pub request_id: String,
    /// When the request arrived.
    pub time: SystemTime,
    /// The account the events name.
    pub account_id: String,
    /// The function's name, which also serves as the API's id and in the target group's ARN.
    pub function_name: String,
}

/// The parts of a request every format shares, worked out once.
struct Incoming<'a> {
    parts: &'a http::request::Parts,
    info: &'a RequestInfo,
    /// The path as received, still percent-encoded.
    path: String,
    /// The query as received, without `?` (empty when there is none).
    query: String,
    /// The host name (without a port) the client asked for.
    domain: String,
    user_agent: Option<String>,
    body: Option<String>,
    is_base64_encoded: bool,
    epoch_ms: i64,
    /// The time as API Gateway writes it: `12/Mar/2020:19:03:58 +0000`.
    time_text: String,
}

/// The event for one request.
pub fn request_event(
    format: HttpFormat,
    parts: &http::request::Parts,
    body: &[u8],
    info: &RequestInfo,
) -> Value {
    let (body, is_base64_encoded) = encode_body(&parts.headers, body);
    let since_epoch = info.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + since_epoch);
    let incoming = Incoming {
        parts,
        info,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        domain: domain(parts),
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body,
        is_base64_encoded,
        epoch_ms: i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
        time_text: time.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
    };
    match format {
        HttpFormat::ApigwV2 => v2_event(&incoming),
        HttpFormat::ApigwV1 => to_json(&v1_event(&incoming)),
        HttpFormat::Alb => to_json(&alb_event(&incoming)),
    }
}

/// Serializes an event. Header values are made UTF-8 before they go in and every key is a
/// string, so this does not fail; `null` stands in if it ever did.
fn to_json<T: serde::Serialize>(event: &T) -> Value {
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// The host the client asked for, without a port: the `Host` header, else the URI's authority,
/// else `localhost`.
fn domain(parts: &http::request::Parts) -> String {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.host())
        .unwrap_or("localhost");
    if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal, `[::1]:9000`.
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host.to_string(),
    }
}

/// The request body as events carry it: `None` when empty, the text itself for a text content
/// type (and valid UTF-8), base64 otherwise.
fn encode_body(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if is_text(content_type) {
        if let Ok(text) = std::str::from_utf8(body) {
            return (Some(text.to_string()), false);
        }
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    (Some(encoded), true)
}

/// Whether a body of `content_type` travels as text: `text/*`, JSON, XML, JavaScript, form
/// data and any `+json` or `+xml` type. A body without a content type is binary.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
}

/// A header value as the event types can serialize it (UTF-8).
fn utf8_value(value: &HeaderValue) -> HeaderValue {
    if value.to_str().is_ok() {
        return value.clone();
    }
    let text = String::from_utf8_lossy(value.as_bytes());
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Each header once: with the values of a repeated header joined by `,` (payload 2.0), or with
/// its last value (payload 1.0 and ALB `headers`). `skip` leaves a header out.
fn single_value_headers(headers: &HeaderMap, join: bool, skip: Option<&HeaderName>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in headers.keys() {
        if Some(name) == skip {
            continue;
        }
        let values: Vec<HeaderValue> = headers.get_all(name).iter().map(utf8_value).collect();
        let value = if join && values.len() > 1 {
            let texts: Vec<String> = values
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            HeaderValue::from_str(&texts.join(",")).ok()
        } else {
            values.last().cloned()
        };
        if let Some(value) = value {
            out.insert(name.clone(), value);
        }
    }
    out
}

/// Every value of every header (payload 1.0 `multiValueHeaders`).
fn multi_value_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        out.append(name.clone(), utf8_value(value));
    }
    out
}

/// The `key=value` pairs of a query as received, in order; a key without `=` has an empty
/// value. With `decode`, `%XX` escapes are decoded (`+` stays a `+`, as API Gateway leaves it).
fn query_pairs(query: &str, decode: bool) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if decode {
                (percent_decode(key), percent_decode(value))
            } else {
                (key.to_string(), value.to_string())
            }
        })
        .collect()
}

/// Decodes `%XX` escapes; an invalid escape stays as it is, invalid UTF-8 becomes U+FFFD.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Every value of each key, in the order received.
fn query_all(pairs: &[(String, String)]) -> QueryMap {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in pairs {
        map.entry(key.clone()).or_default().push(value.clone());
    }
    QueryMap::from(map)
}

/// The last value of each key, as payload 1.0 `queryStringParameters` and ALB carry them.
fn query_last(pairs: &[(String, String)]) -> QueryMap {
    let map: HashMap<String, String> = pairs.iter().cloned().collect();
    QueryMap::from(map)
}

/// The cookies of the `Cookie` headers, one entry per cookie.
fn cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(';')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Fields of `ApiGatewayV2httpRequest` that only custom authorizer payloads have, which the
/// type serializes anyway (`httpMethod` as `GET`); a Function URL sends none of them.
const V2_AUTHORIZER_FIELDS: [&str; 6] = [
    "type",
    "methodArn",
    "httpMethod",
    "identitySource",
    "authorizationToken",
    "resource",
];

/// A payload 2.0 event, as a Function URL sends it.
fn v2_event(incoming: &Incoming<'_>) -> Value {
    let headers = &incoming.parts.headers;
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = incoming.parts.method.clone();
    http.path = Some(incoming.path.clone());
    http.protocol = Some("HTTP/1.1".to_string());
    http.source_ip = Some(incoming.info.source_ip.to_string());
    http.user_agent = incoming.user_agent.clone();

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_string());
    event.route_key = Some("$default".to_string());
    event.raw_path = Some(incoming.path.clone());
    event.raw_query_string = Some(incoming.query.clone());
    let cookies = cookies(headers);
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = single_value_headers(headers, true, Some(&COOKIE));
    event.query_string_parameters = query_all(&query_pairs(&incoming.query, true));
    let context = &mut event.request_context;
    context.route_key = Some("$default".to_string());
    context.account_id = Some(incoming.info.account_id.clone());
    context.stage = Some("$default".to_string());
    context.request_id = Some(incoming.info.request_id.clone());
    context.apiid = Some(incoming.info.function_name.clone());
    context.domain_name = Some(incoming.domain.clone());
    context.domain_prefix = incoming.domain.split('.').next().map(str::to_string);
    context.time = Some(incoming.time_text.clone());
    context.time_epoch = incoming.epoch_ms;
    context.http = http;
    event.body = incoming.body.clone();
    event.is_base64_encoded = incoming.is_base64_encoded;

    let mut value = to_json(&event);
    if let Some(object) = value.as_object_mut() {
        for field in V2_AUTHORIZER_FIELDS {
            object.remove(field);
        }
    }
    value
}

/// A payload 1.0 event, as a REST API's `ANY /{proxy+}` proxy integration sends it, on stage
/// `$default` (`lambda_http` would put any other stage's name in front of the path).
fn v1_event(incoming: &Incoming<'_>) -> ApiGatewayProxyRequest {
    let headers = &incoming.parts.headers;
    let pairs = query_pairs(&incoming.query, true);
    let resource = if incoming.path == "/" {
        "/"
    } else {
        "/{proxy+}"
    };

    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(resource.to_string());
    event.path = Some(incoming.path.clone());
    event.http_method = incoming.parts.method.clone();
    event.headers = single_value_headers(headers, false, None);
    event.multi_value_headers = multi_value_headers(headers);
    event.query_string_parameters = query_last(&pairs);
    event.multi_value_query_string_parameters = query_all(&pairs);
    if let Some(proxy) = incoming.path.strip_prefix('/').filter(|p| !p.is_empty()) {
        event.path_parameters = HashMap::from([("proxy".to_string(), percent_decode(proxy))]);
    }
    let context = &mut event.request_context;
    context.account_id = Some(incoming.info.account_id.clone());
    context.resource_id = Some("proxy".to_string());
    context.stage = Some("$default".to_string());
    context.domain_name = Some(incoming.domain.clone());
    context.domain_prefix = incoming.domain.split('.').next().map(str::to_string);
    context.request_id = Some(incoming.info.request_id.clone());
    context.protocol = Some("HTTP/1.1".to_string());
    context.identity.source_ip = Some(incoming.info.source_ip.to_string());
    context.identity.user_agent = incoming.user_agent.clone();
    context.resource_path = Some(resource.to_string());
    context.path = Some(incoming.path.clone());
    context.http_method = incoming.parts.method.clone();
    context.request_time = Some(incoming.time_text.clone());
    context.request_time_epoch = incoming.epoch_ms;
    context.apiid = Some(incoming.info.function_name.clone());
    event.body = incoming.body.clone();
    event.is_base64_encoded = incoming.is_base64_encoded;
    event
}

/// An ALB target group event, multi-value headers off: the last value of a repeated header or
/// query key, query keys and values left percent-encoded as the ALB leaves them.
fn alb_event(incoming: &Incoming<'_>) -> AlbTargetGroupRequest {
    let info = incoming.info;
    let mut event = AlbTargetGroupRequest::default();
    event.http_method = incoming.parts.method.clone();
    event.path = Some(incoming.path.clone());
    event.query_string_parameters = query_last(&query_pairs(&incoming.query, false));
    event.headers = single_value_headers(&incoming.parts.headers, false, None);
    event.request_context.elb.target_group_arn = Some(format!(
        "arn:aws:elasticloadbalancing:us-east-1:{}:targetgroup/{}/0123456789abcdef",
        info.account_id, info.function_name
    ));
    event.body = incoming.body.clone();
    event.is_base64_encoded = incoming.is_base64_encoded;
    event
}

/// The head of an HTTP response a function returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase, one entry per line (so one `set-cookie` per cookie).
    pub headers: Vec<(String, String)>,
}

/// A buffered function result turned into an HTTP response: head and body bytes.
///
/// The result is a JSON object with `statusCode`, `headers`, `multiValueHeaders` (each value a
/// line of its own; a name there replaces the same name in `headers`), `cookies` (payload 2.0,
/// each a `set-cookie` line) and `body` (base64-decoded when `isBase64Encoded`). Under payload
/// 2.0 any other result is the body of a `200` `application/json` response, as Function URLs
/// answer; under payload 1.0 and ALB it is an error (the front answers 502).
pub fn buffered_response(
    format: HttpFormat,
    payload: &[u8],
) -> Result<(ResponseHead, Vec<u8>), String> {
    let value: Option<Value> = serde_json::from_slice(payload).ok();
    let object = value
        .as_ref()
        .and_then(Value::as_object)
        .filter(|object| object.contains_key("statusCode"));
    let Some(object) = object else {
        if format == HttpFormat::ApigwV2 {
            let head = ResponseHead {
                status: 200,
                headers: vec![("content-type".to_string(), "application/json".to_string())],
            };
            return Ok((head, payload.to_vec()));
        }
        return Err(format!(
            "the function's result is not a {format} response: a JSON object with `statusCode` \
             was expected"
        ));
    };
    let status = status_code(&object["statusCode"])?;
    let mut headers = response_headers(object)?;
    if format == HttpFormat::ApigwV2 {
        headers.extend(cookie_lines(object.get("cookies"))?);
    }
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(body)) if object.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| format!("the response body is not valid base64: {e}"))?
        }
        Some(Value::String(body)) => body.clone().into_bytes(),
        Some(other) => return Err(format!("the response body is not a string: {other}")),
    };
    Ok((ResponseHead { status, headers }, body))
}

/// A `statusCode`: a number (or a string of one) that is a valid HTTP status.
fn status_code(value: &Value) -> Result<u16, String> {
    let code = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    code.and_then(|c| u16::try_from(c).ok())
        .filter(|c| http::StatusCode::from_u16(*c).is_ok())
        .ok_or_else(|| format!("`statusCode` is not a valid HTTP status: {value}"))
}

/// A header value of a response: a string, or a number or boolean written as text.
fn header_text(name: &str, value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!(
            "the value of header `{name}` is not a string: {other}"
        )),
    }
}

/// Checks a header line and lowercases its name.
fn header_line(name: &str, value: String) -> Result<(String, String), String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    HeaderValue::from_str(&value)
        .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
    Ok((parsed.as_str().to_string(), value))
}

/// The `values` of one header: a single value, or (as `http_serde` writes a repeated header,
/// and as `multiValueHeaders` holds them) an array of them.
fn header_values(name: &str, values: &Value) -> Result<Vec<(String, String)>, String> {
    let values: Vec<&Value> = match values {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut lines = Vec::new();
    for value in values {
        if let Some(text) = header_text(name, value)? {
            lines.push(header_line(name, text)?);
        }
    }
    Ok(lines)
}

/// The header lines of a response object: `multiValueHeaders`, then the `headers` whose names
/// are not among them (API Gateway's merge).
fn response_headers(object: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut lines = Vec::new();
    for field in ["multiValueHeaders", "headers"] {
        let map = match object.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(map)) => map,
            Some(other) => return Err(format!("`{field}` is not an object: {other}")),
        };
        let seen: Vec<String> = lines.iter().map(|(name, _)| name).cloned().collect();
        for (name, values) in map {
            if seen.contains(&name.to_ascii_lowercase()) {
                continue;
            }
            lines.extend(header_values(name, values)?);
        }
    }
    Ok(lines)
}

/// One `set-cookie` line per entry of a `cookies` array.
fn cookie_lines(cookies: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    match cookies {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(cookies @ Value::Array(_)) => header_values(SET_COOKIE.as_str(), cookies),
        Some(other) => Err(format!("`cookies` is not an array: {other}")),
    }
}

/// Where a streamed response's body starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Prelude {
    /// The bytes so far could still be the start of a prelude: wait for more.
    NeedMore,
    /// The stream starts with a prelude: the response's head, and where its body starts.
    Found {
        /// The status and headers the prelude gave.
        head: ResponseHead,
        /// The index of the body's first byte in the buffer given.
        body_start: usize,
    },
    /// The stream does not start with a prelude: all of it is the body.
    Absent,
}

/// Looks for the HTTP-integration prelude at the start of `buf` (the bytes streamed so far).
///
/// The format, from `lambda_runtime` 1.5 (`src/requests.rs`, `EventCompletionRequest` for a
/// `FunctionResponse::StreamingResponse`): the runtime posts the response with
/// `Content-Type: application/vnd.awslambda.http-integration-response` and a body of
/// `serde_json::to_string(&MetadataPrelude)` (`{"statusCode":200,"headers":{..},"cookies":[..]}`,
/// the status a number, a repeated header an array of values, `content-type` defaulted to
/// `application/octet-stream`), then `"\u{0}".repeat(8)`, then the stream's chunks.
/// `lambda_http`'s `run_with_streaming_response` (`src/streaming.rs`) fills the prelude from the
/// handler's `http::Response` and moves its `Set-Cookie` headers into `cookies`.
///
/// Leading whitespace is skipped. The stream has no prelude when its first other byte is not
/// `{`, when the JSON object is not followed by exactly eight NUL bytes, when it is not a
/// prelude's shape, or when none is complete within [`PRELUDE_LIMIT`] bytes.
pub fn split_prelude(buf: &[u8]) -> Prelude {
    let window = &buf[..buf.len().min(PRELUDE_LIMIT)];
    let need_more = || {
        if buf.len() >= PRELUDE_LIMIT {
            Prelude::Absent
        } else {
            Prelude::NeedMore
        }
    };
    match window.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return need_more(),
        Some(b'{') => {}
        Some(_) => return Prelude::Absent,
    }
    let mut values = serde_json::Deserializer::from_slice(window).into_iter::<Value>();
    let prelude = match values.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) if e.is_eof() => return need_more(),
        _ => return Prelude::Absent,
    };
    let end = values.byte_offset();
    let after = &buf[end..buf.len().min(end + PRELUDE_DELIMITER.len())];
    if after.iter().any(|b| *b != 0) {
        return Prelude::Absent;
    }
    if after.len() < PRELUDE_DELIMITER.len() {
        return need_more();
    }
    match prelude_head(&prelude) {
        Some(head) => Prelude::Found {
            head,
            body_start: end + PRELUDE_DELIMITER.len(),
        },
        None => Prelude::Absent,
    }
}

/// The head a prelude gives: `statusCode` (200 when missing), `headers`, and `cookies` as
/// `set-cookie` lines. `None` when the object is not a prelude's shape.
fn prelude_head(prelude: &Value) -> Option<ResponseHead> {
    let object = prelude.as_object()?;
    let status = match object.get("statusCode") {
        None => 200,
        Some(code) => status_code(code).ok()?,
    };
    let mut headers = response_headers(object).ok()?;
    headers.extend(cookie_lines(object.get("cookies")).ok()?);
    Some(ResponseHead { status, headers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use lambda_http::request::LambdaRequest;
    use lambda_http::RequestExt;

    fn info() -> RequestInfo {
        RequestInfo {
            source_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            request_id: "req-1".to_string(),
            // 2020-03-12T19:03:58.123Z
            time: UNIX_EPOCH + Duration::from_millis(1_584_039_838_123),
            account_id: "123456789012".to_string(),
            function_name: "web".to_string(),
        }
    }

    fn parts(builder: http::request::Builder) -> http::request::Parts {
        builder.body(()).unwrap().into_parts().0
    }

    /// `POST /echo?a=1&a=2&msg=hello%20world%26more&flag` with cookies, repeated and
    /// non-ASCII-free headers and a JSON body.
    fn post_echo() -> http::request::Parts {
        parts(
            http::Request::post("/echo?a=1&a=2&msg=hello%20world%26more&flag")
                .header("Host", "localhost:9000")
                .header("User-Agent", "curl/8.5.0")
                .header("Content-Type", "application/json")
                .header("X-Multi", "one")
                .header("X-Multi", "two")
                .header("Cookie", "a=1; b=2")
                .header("Cookie", "c=3"),
        )
    }

    #[test]
    fn formats_have_names() {
        for format in HttpFormat::ALL {
            assert_eq!(format.name().parse::<HttpFormat>(), Ok(format));
            assert_eq!(format.to_string(), format.name());
        }
        assert_eq!(HttpFormat::default(), HttpFormat::ApigwV2);
        let error = "v2".parse::<HttpFormat>().unwrap_err();
        assert!(error.contains("`apigw-v2`"), "{error}");
    }

    #[test]
    fn v2_event_is_what_a_function_url_sends() {
        let body = br#"{"x":1}"#;
        let event = request_event(HttpFormat::ApigwV2, &post_echo(), body, &info());
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["rawPath"], "/echo");
        assert_eq!(
            event["rawQueryString"],
            "a=1&a=2&msg=hello%20world%26more&flag"
        );
        assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2", "c=3"]));
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert_eq!(event["headers"]["host"], "localhost:9000");
        assert!(event["headers"].get("cookie").is_none(), "{event:#}");
        let query = &event["queryStringParameters"];
        assert_eq!(query["a"], "1,2");
        assert_eq!(query["msg"], "hello world&more");
        assert_eq!(query["flag"], "");
        let context = &event["requestContext"];
        assert_eq!(context["accountId"], "123456789012");
        assert_eq!(context["apiId"], "web");
        assert_eq!(context["domainName"], "localhost");
        assert_eq!(context["domainPrefix"], "localhost");
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["path"], "/echo");
        assert_eq!(context["http"]["protocol"], "HTTP/1.1");
        assert_eq!(context["http"]["sourceIp"], "203.0.113.7");
        assert_eq!(context["http"]["userAgent"], "curl/8.5.0");
        assert_eq!(context["requestId"], "req-1");
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["time"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(context["timeEpoch"], 1_584_039_838_123_i64);
        assert_eq!(event["body"], r#"{"x":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
        for field in V2_AUTHORIZER_FIELDS {
            assert!(event.get(field).is_none(), "{field} in {event:#}");
        }
    }

    #[test]
    fn v2_event_without_query_cookies_or_body() {
        let get = parts(http::Request::get("/").header("host", "abc.lambda-url.us-east-1.on.aws"));
        let event = request_event(HttpFormat::ApigwV2, &get, b"", &info());
        assert_eq!(event["rawQueryString"], "");
        assert!(event.get("cookies").is_none());
        assert!(event.get("body").is_none());
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["requestContext"]["domainPrefix"], "abc");
        assert_eq!(
            event["requestContext"]["domainName"],
            "abc.lambda-url.us-east-1.on.aws"
        );
    }

    #[test]
    fn bodies_are_base64_unless_their_content_type_is_text() {
        let binary: Vec<u8> = (0..=255).collect();
        let cases: [(Option<&str>, &[u8], bool); 9] = [
            (Some("application/octet-stream"), &binary, true),
            (None, b"plain", true),
            (Some("image/png"), b"png", true),
            (Some("text/plain; charset=utf-8"), b"hi", false),
            (Some("Application/JSON"), b"{}", false),
            (Some("application/vnd.api+json"), b"{}", false),
            (Some("application/atom+xml"), b"<a/>", false),
            (Some("application/x-www-form-urlencoded"), b"a=1", false),
            (Some("text/plain"), &[0xff, 0xfe], true),
        ];
        for (content_type, body, base64) in cases {
            let mut builder = http::Request::put("/upload");
            if let Some(content_type) = content_type {
                builder = builder.header("content-type", content_type);
            }
            let event = request_event(HttpFormat::ApigwV2, &parts(builder), body, &info());
            assert_eq!(event["isBase64Encoded"], base64, "{content_type:?}");
            let text = event["body"].as_str().unwrap();
            let decoded = if base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap()
            } else {
                text.as_bytes().to_vec()
            };
            assert_eq!(decoded, body, "{content_type:?}");
        }
    }

    #[test]
    fn v1_event_is_what_a_rest_api_proxy_sends() {
        let event = request_event(HttpFormat::ApigwV1, &post_echo(), b"{}", &info());
        assert_eq!(event["resource"], "/{proxy+}");
        assert_eq!(event["path"], "/echo");
        assert_eq!(event["httpMethod"], "POST");
        assert_eq!(event["headers"]["x-multi"], "two");
        assert_eq!(event["headers"]["cookie"], "c=3");
        assert_eq!(
            event["multiValueHeaders"]["x-multi"],
            serde_json::json!(["one", "two"])
        );
        assert_eq!(event["queryStringParameters"]["a"], "2");
        assert_eq!(event["queryStringParameters"]["msg"], "hello world&more");
        assert_eq!(
            event["multiValueQueryStringParameters"]["a"],
            serde_json::json!(["1", "2"])
        );
        assert_eq!(event["pathParameters"]["proxy"], "echo");
        let context = &event["requestContext"];
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["identity"]["sourceIp"], "203.0.113.7");
        assert_eq!(context["resourcePath"], "/{proxy+}");
        assert_eq!(context["httpMethod"], "POST");
        assert_eq!(context["requestTimeEpoch"], 1_584_039_838_123_i64);
        assert_eq!(event["body"], "{}");

        let root = parts(http::Request::get("/"));
        let event = request_event(HttpFormat::ApigwV1, &root, b"", &info());
        assert_eq!(event["resource"], "/");
        assert_eq!(event["body"], Value::Null);
    }

    #[test]
    fn alb_event_leaves_the_query_encoded() {
        let event = request_event(HttpFormat::Alb, &post_echo(), b"{}", &info());
        assert_eq!(event["httpMethod"], "POST");
        assert_eq!(event["path"], "/echo");
        assert_eq!(
            event["queryStringParameters"]["msg"],
            "hello%20world%26more"
        );
        assert_eq!(event["queryStringParameters"]["a"], "2");
        assert_eq!(event["headers"]["x-multi"], "two");
        assert_eq!(
            event["requestContext"]["elb"]["targetGroupArn"],
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
        );
    }

    /// What `lambda_http` makes of an event: the request a function's handler sees.
    fn as_lambda_http(event: &Value) -> (LambdaRequest, lambda_http::Request) {
        let parsed: LambdaRequest = serde_json::from_value(event.clone()).unwrap();
        let again: LambdaRequest = serde_json::from_value(event.clone()).unwrap();
        (parsed, again.into())
    }

    fn body_bytes(request: &lambda_http::Request) -> Vec<u8> {
        request.body().as_ref().to_vec()
    }

    #[test]
    fn lambda_http_reads_every_format_as_the_request_sent() {
        for format in HttpFormat::ALL {
            let event = request_event(format, &post_echo(), br#"{"x":1}"#, &info());
            let (parsed, request) = as_lambda_http(&event);
            match (format, &parsed) {
                (HttpFormat::ApigwV2, LambdaRequest::ApiGatewayV2(_))
                | (HttpFormat::ApigwV1, LambdaRequest::ApiGatewayV1(_))
                | (HttpFormat::Alb, LambdaRequest::Alb(_)) => {}
                _ => panic!("{format} was read as {parsed:?}"),
            }
            assert_eq!(request.method(), http::Method::POST, "{format}");
            assert_eq!(request.uri().path(), "/echo", "{format}");
            let query = request.query_string_parameters();
            assert_eq!(query.first("msg"), Some("hello world&more"), "{format}");
            let a = query.all("a").unwrap();
            // An ALB (multi-value off) keeps only the last value of a key.
            let expected: &[&str] = if format == HttpFormat::Alb {
                &["2"]
            } else {
                &["1", "2"]
            };
            assert_eq!(a, expected, "{format}");
            assert_eq!(request.headers()["user-agent"], "curl/8.5.0", "{format}");
            assert_eq!(
                request.headers()["content-type"],
                "application/json",
                "{format}"
            );
            let cookie = request.headers().get("cookie").unwrap().to_str().unwrap();
            let expected = if format == HttpFormat::ApigwV2 {
                "a=1; b=2; c=3"
            } else {
                "c=3"
            };
            assert_eq!(cookie, expected, "{format}");
            assert_eq!(body_bytes(&request), br#"{"x":1}"#, "{format}");
        }
    }

    #[test]
    fn lambda_http_gets_a_binary_body_back_intact() {
        let binary: Vec<u8> = (0..=255).collect();
        for format in HttpFormat::ALL {
            let upload = parts(
                http::Request::post("/upload")
                    .header("host", "localhost")
                    .header("content-type", "application/octet-stream"),
            );
            let event = request_event(format, &upload, &binary, &info());
            assert_eq!(event["isBase64Encoded"], true, "{format}");
            let (_, request) = as_lambda_http(&event);
            assert_eq!(body_bytes(&request), binary, "{format}");
            assert_eq!(request.uri().path(), "/upload", "{format}");
        }
    }

    #[test]
    fn lambda_http_reads_an_empty_get() {
        for format in HttpFormat::ALL {
            let get = parts(http::Request::get("/hello?name=X").header("host", "localhost"));
            let event = request_event(format, &get, b"", &info());
            let (_, request) = as_lambda_http(&event);
            assert_eq!(request.method(), http::Method::GET, "{format}");
            assert_eq!(request.uri().path(), "/hello", "{format}");
            assert_eq!(request.uri().query(), Some("name=X"), "{format}");
            assert!(body_bytes(&request).is_empty(), "{format}");
        }
    }

    fn header<'a>(head: &'a ResponseHead, name: &str) -> Vec<&'a str> {
        head.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn a_v2_result_without_status_code_is_a_json_body() {
        for payload in [&br#""hello""#[..], br#"{"a":1}"#, b"[1,2]", b"not json"] {
            let (head, body) = buffered_response(HttpFormat::ApigwV2, payload).unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(header(&head, "content-type"), ["application/json"]);
            assert_eq!(body, payload);
        }
        for format in [HttpFormat::ApigwV1, HttpFormat::Alb] {
            let error = buffered_response(format, br#"{"a":1}"#).unwrap_err();
            assert!(error.contains("statusCode"), "{error}");
        }
    }

    #[test]
    fn a_v2_result_gives_status_headers_cookies_and_body() {
        let payload = serde_json::json!({
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Count": 3},
            "multiValueHeaders": {},
            "cookies": ["a=1", "b=2; Path=/"],
            "body": "created",
            "isBase64Encoded": false
        });
        let (head, body) =
            buffered_response(HttpFormat::ApigwV2, payload.to_string().as_bytes()).unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(header(&head, "content-type"), ["text/plain"]);
        assert_eq!(header(&head, "x-count"), ["3"]);
        assert_eq!(header(&head, "set-cookie"), ["a=1", "b=2; Path=/"]);
        assert_eq!(body, b"created");
    }

    #[test]
    fn multi_value_headers_are_one_line_each_and_win_over_headers() {
        // As lambda_http writes an ALB response: the same headers in both fields.
        let payload = serde_json::json!({
            "statusCode": 200,
            "statusDescription": "200 OK",
            "headers": {"set-cookie": "a=1", "x-one": "1"},
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"], "x-one": ["1"]},
            "isBase64Encoded": false
        });
        for format in [HttpFormat::Alb, HttpFormat::ApigwV1] {
            let (head, body) = buffered_response(format, payload.to_string().as_bytes()).unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(header(&head, "set-cookie"), ["a=1", "b=2"], "{format}");
            assert_eq!(header(&head, "x-one"), ["1"], "{format}");
            assert!(body.is_empty());
        }
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let binary: Vec<u8> = (0..=255).collect();
        let payload = serde_json::json!({
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64::engine::general_purpose::STANDARD.encode(&binary),
            "isBase64Encoded": true
        });
        for format in HttpFormat::ALL {
            let (_, body) = buffered_response(format, payload.to_string().as_bytes()).unwrap();
            assert_eq!(body, binary, "{format}");
        }
        let bad = br#"{"statusCode":200,"body":"***","isBase64Encoded":true}"#;
        assert!(buffered_response(HttpFormat::ApigwV2, bad).is_err());
    }

    #[test]
    fn invalid_results_are_errors() {
        let cases: [&[u8]; 5] = [
            br#"{"statusCode":"abc"}"#,
            br#"{"statusCode":42}"#,
            br#"{"statusCode":200,"headers":{"bad name":"x"}}"#,
            br#"{"statusCode":200,"body":{"a":1}}"#,
            br#"{"statusCode":200,"cookies":"a=1"}"#,
        ];
        for payload in cases {
            let result = buffered_response(HttpFormat::ApigwV2, payload);
            assert!(result.is_err(), "{}", String::from_utf8_lossy(payload));
        }
        let (head, _) = buffered_response(HttpFormat::ApigwV1, br#"{"statusCode":"404"}"#).unwrap();
        assert_eq!(head.status, 404);
    }

    /// A prelude as lambda_runtime 1.5 writes it for lambda_http's streaming response.
    fn streamed(body: &[u8]) -> Vec<u8> {
        let prelude = serde_json::json!({
            "statusCode": 200,
            "headers": {"content-type": "text/plain", "x-stream": "yes", "vary": ["a", "b"]},
            "cookies": ["s=1"]
        });
        let mut bytes = serde_json::to_vec(&prelude).unwrap();
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn a_prelude_is_found_across_calls() {
        let stream = streamed(b"chunk-0\n");
        let json_end = stream.len() - 8 - 8;
        for cut in [0, 1, 10, json_end - 1, json_end, json_end + 3, json_end + 7] {
            assert_eq!(
                split_prelude(&stream[..cut]),
                Prelude::NeedMore,
                "cut at {cut}"
            );
        }
        let Prelude::Found { head, body_start } = split_prelude(&stream) else {
            panic!("no prelude in {stream:?}");
        };
        assert_eq!(&stream[body_start..], b"chunk-0\n");
        assert_eq!(head.status, 200);
        assert_eq!(header(&head, "content-type"), ["text/plain"]);
        assert_eq!(header(&head, "x-stream"), ["yes"]);
        assert_eq!(header(&head, "vary"), ["a", "b"]);
        assert_eq!(header(&head, "set-cookie"), ["s=1"]);
        // The body may not have started yet.
        let at_delimiter = split_prelude(&stream[..json_end + 8]);
        assert!(
            matches!(at_delimiter, Prelude::Found { body_start, .. } if body_start == json_end + 8)
        );
    }

    #[test]
    fn a_stream_without_prelude_is_all_body() {
        assert_eq!(split_prelude(b"hello"), Prelude::Absent);
        assert_eq!(split_prelude(b"  [1,2]"), Prelude::Absent);
        assert_eq!(split_prelude(b""), Prelude::NeedMore);
        assert_eq!(split_prelude(b"  \n"), Prelude::NeedMore);
        // A JSON object streamed as the body, not followed by the delimiter.
        assert_eq!(split_prelude(b"{\"a\":1}\n"), Prelude::Absent);
        assert_eq!(split_prelude(b"{\"a\":1}\0\0\0x"), Prelude::Absent);
        assert_eq!(split_prelude(b"{\"a\":1,}"), Prelude::Absent);
        // Complete and delimited, but not a prelude's shape.
        assert_eq!(
            split_prelude(b"{\"statusCode\":\"x\"}\0\0\0\0\0\0\0\0"),
            Prelude::Absent
        );
        // A prelude that never ends within the limit.
        let mut long = b"{\"statusCode\":200,\"headers\":{\"x\":\"".to_vec();
        long.resize(PRELUDE_LIMIT - 1, b'a');
        assert_eq!(split_prelude(&long), Prelude::NeedMore);
        long.push(b'a');
        assert_eq!(split_prelude(&long), Prelude::Absent);
    }

    #[test]
    fn a_minimal_prelude_defaults_to_200() {
        let Prelude::Found { head, body_start } = split_prelude(b"{}\0\0\0\0\0\0\0\0body") else {
            panic!("no prelude");
        };
        assert_eq!(
            head,
            ResponseHead {
                status: 200,
                headers: Vec::new()
            }
        );
        assert_eq!(body_start, 10);
    }
}
