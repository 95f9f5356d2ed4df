//! Lambda's Invoke API for every served function:
//!
//! - `POST /2015-03-31/functions/{name}/invocations` (Invoke) with `X-Amz-Invocation-Type`
//!   RequestResponse, Event (202, run in the background and retried twice on a function
//!   error, as Lambda does) or DryRun (204), and `X-Amz-Log-Type: Tail`;
//! - `POST /2021-11-15/functions/{name}/response-streaming-invocations`
//!   (InvokeWithResponseStream), answered as an AWS event stream.
//!
//! `{name}` is a name, `name:qualifier`, or an ARN; `?Qualifier=` works too. With a single
//! function, `function` names it as well, as with AWS's RIE. Each invocation runs in its own
//! task, so a client that hangs up does not abandon a runtime mid-invocation.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use http_body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::eventstream;
use super::format;
use super::instance::{collect_limited, Collected, FrameReceiver};
use super::pool::Pool;
use super::run::{self, Answer, Finished, Request};
use crate::lambda::MAX_PAYLOAD_BYTES;

/// How much of an invocation's log `X-Amz-Log-Type: Tail` returns, like Lambda.
const TAIL_BYTES: usize = 4096;

/// The served functions, by their Lambda names.
pub(crate) struct Functions {
    pub pools: BTreeMap<String, Arc<Pool>>,
}

impl Functions {
    /// The function an invoke path and `?Qualifier=` name, with the qualifier. `Err` is the
    /// Invoke API's answer, returned as it is to the client: its size does not matter here.
    #[allow(clippy::result_large_err)]
    fn find(
        &self,
        path_name: &str,
        query_qualifier: Option<String>,
    ) -> Result<(Arc<Pool>, Option<String>), Response> {
        let Some((name, path_qualifier)) = format::split_function_reference(path_name) else {
            return Err(not_found(&format!(
                "Function not found: `{path_name}` is not a function name or ARN"
            )));
        };
        let qualifier = match (path_qualifier, query_qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    &format!("The derived qualifier from the function name ({a}) does not match the specified qualifier ({b})."),
                ))
            }
            (Some(a), _) => Some(a.to_string()),
            (None, b) => b,
        };
        let pool = match self.pools.get(name) {
            Some(pool) => pool,
            None if name == "function" && self.pools.len() == 1 => {
                self.pools.values().next().ok_or_else(|| not_found(name))?
            }
            None => {
                let served: Vec<&str> = self.pools.keys().map(String::as_str).collect();
                return Err(not_found(&format!(
                    "Function not found: {name} (this emulator serves {})",
                    served.join(", ")
                )));
            }
        };
        let config = &pool.config;
        if let Some(q) = &qualifier {
            if !format::qualifier_matches(q, &config.function_version, &config.aliases) {
                let arn = format::function_arn(
                    &config.region,
                    &config.account_id,
                    &config.function_name,
                    Some(q),
                );
                return Err(not_found(&format!("Function not found: {arn}")));
            }
        }
        Ok((pool.clone(), qualifier))
    }
}

pub(crate) fn router(functions: Arc<Functions>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            post(invoke_streaming),
        )
        .fallback(|| async {
            api_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "Unknown operation: the emulator serves POST /2015-03-31/functions/{name}/invocations and /2021-11-15/functions/{name}/response-streaming-invocations",
            )
        })
        // The 6 MB limit is checked by the handler, which needs to drain and count the body.
        .layer(DefaultBodyLimit::disable())
        .with_state(functions)
}

/// An error of the Invoke API itself, readable both by AWS SDKs (`x-amzn-ErrorType`,
/// `Type`/`message`) and by RIE clients (`errorType`/`errorMessage`).
fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = json!({
        "Type": "User",
        "message": message,
        "errorType": error_type,
        "errorMessage": message,
    });
    let mut response = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

fn not_found(message: &str) -> Response {
    api_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `X-Amz-Client-Context` is base64 of a JSON object; the runtime gets the JSON itself,
/// re-serialized on one line so that it is a valid header value.
fn decode_client_context(value: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| format!("Client context must be valid base64: {e}"))?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("Client context must be a base64-encoded JSON object: {e}"))?;
    if !json.is_object() {
        return Err("Client context must be a base64-encoded JSON object".into());
    }
    Ok(json.to_string())
}

/// The `Qualifier` of a query string, percent-decoded.
fn query_qualifier(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "Qualifier").then(|| percent_decode(value))
    })
}

/// A query value, decoded as a form value (`+` is a space).
fn percent_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// An accepted invocation.
struct Accepted {
    pool: Arc<Pool>,
    request: Request,
    invocation_type: String,
    tail: bool,
}

/// Checks an invoke request: the function, the invocation type, the payload (6 MB, JSON) and
/// the context headers. `Err` is the Invoke API's error answer.
async fn accept(
    functions: &Functions,
    name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Box<Response>> {
    let (pool, qualifier) = functions.find(name, query_qualifier(query))?;
    let bad_request = |message: &str| {
        api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    };
    let invocation_type = header_str(headers, "x-amz-invocation-type").unwrap_or("RequestResponse");
    if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
        return Err(Box::new(api_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!(
                "Invalid invocation type {invocation_type:?}: use RequestResponse, Event or DryRun"
            ),
        )));
    }
    let payload = match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(p)) => p,
        Ok(Collected::TooLarge(size)) => {
            return Err(Box::new(api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                &format!(
                    "Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction \
                     operation (it has {size} bytes)"
                ),
            )))
        }
        Err(e) => {
            return Err(Box::new(bad_request(&format!(
                "Could not read the request body: {e}"
            ))))
        }
    };
    if !payload.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return Err(Box::new(bad_request(&format!(
                "Could not parse request body into json: {e}"
            ))));
        }
    }
    let client_context = header_str(headers, "x-amz-client-context")
        .map(decode_client_context)
        .transpose()
        .map_err(|m| bad_request(&m))?;
    // Not part of Lambda's Invoke API (only Cognito-authenticated callers have an identity),
    // so the emulator takes it from its own header, as JSON.
    let cognito_identity = header_str(headers, "x-amz-cognito-identity")
        .map(|v| serde_json::from_str::<Value>(v).map(|json| json.to_string()))
        .transpose()
        .map_err(|e| bad_request(&format!("X-Amz-Cognito-Identity must be JSON: {e}")))?;
    let config = &pool.config;
    let tenant_id = tenant_of(headers, config.tenant_isolation).map_err(|m| {
        api_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &m,
        )
    })?;
    let request = Request {
        request_id: format::request_id(),
        payload,
        invoked_arn: format::function_arn(
            &config.region,
            &config.account_id,
            &config.function_name,
            qualifier.as_deref(),
        ),
        trace_id: header_str(headers, "x-amzn-trace-id")
            .map(str::to_string)
            .unwrap_or_else(|| format::trace_id(SystemTime::now())),
        client_context,
        cognito_identity,
        tenant_id,
        tail: header_str(headers, "x-amz-log-type") == Some("Tail"),
    };
    Ok(Accepted {
        tail: request.tail,
        pool,
        request,
        invocation_type: invocation_type.to_string(),
    })
}

/// Lambda's longest tenant id.
const TENANT_ID_MAX: usize = 256;

/// The tenant an invocation names with `X-Amz-Tenant-Id`. Lambda refuses an invocation of a
/// tenant-isolated function without one, and of any other function with one. `Err` is the
/// message of its `InvalidParameterValueException`.
pub(crate) fn tenant_of(headers: &HeaderMap, isolated: bool) -> Result<Option<String>, String> {
    let tenant = match headers.get("x-amz-tenant-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| "X-Amz-Tenant-Id must be printable ASCII".to_string())?,
        ),
    };
    match (tenant, isolated) {
        (Some(t), true) if t.is_empty() || t.len() > TENANT_ID_MAX => Err(format!(
            "X-Amz-Tenant-Id must be 1 to {TENANT_ID_MAX} characters long (it has {})",
            t.len()
        )),
        (Some(t), true) => Ok(Some(t.to_string())),
        (None, true) => Err(
            "The function uses tenant isolation, so every invocation must name its tenant: \
             add X-Amz-Tenant-Id (--tenant-id)"
                .into(),
        ),
        (Some(_), false) => Err(
            "The function does not use tenant isolation, so an invocation must not name a \
             tenant: remove X-Amz-Tenant-Id (--tenant-id), or turn tenant isolation on \
             (--tenant-isolation, deploy.tenant-isolation)"
                .into(),
        ),
        (None, false) => Ok(None),
    }
}

/// Invoke.
async fn invoke(
    State(functions): State<Arc<Functions>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let accepted = match accept(&functions, &name, query.as_deref(), &headers, body).await {
        Ok(a) => a,
        Err(response) => return *response,
    };
    let id = accepted.request.request_id.clone();
    let version = accepted.pool.config.function_version.clone();
    match accepted.invocation_type.as_str() {
        "DryRun" => return with_request_id(StatusCode::NO_CONTENT.into_response(), &id),
        "Event" => {
            tokio::spawn(run_event(accepted.pool, accepted.request));
            return with_request_id(StatusCode::ACCEPTED.into_response(), &id);
        }
        _ => {}
    }
    match tokio::spawn(run::run(accepted.pool, accepted.request)).await {
        Ok(finished) => buffered(finished, &id, &version, accepted.tail),
        Err(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "the emulator's invocation task failed",
        ),
    }
}

/// An Event invocation: run in the background; a function error is retried twice, after the
/// pool's retry delays (Lambda waits about one and two minutes).
async fn run_event(pool: Arc<Pool>, request: Request) {
    let delays = pool.config.event_retry_delays.clone();
    let attempts = delays.len() + 1;
    for attempt in 1..=attempts {
        let finished = run::run(pool.clone(), request.clone()).await;
        let failed = match finished.answer {
            Answer::FunctionError { error_type, .. } | Answer::ApiError { error_type, .. } => {
                Some(error_type)
            }
            Answer::Stream {
                mut frames, ended, ..
            } => {
                // Nobody reads an Event invocation's stream: drain it so the runtime can end.
                while frames.recv().await.is_some() {}
                ended.await.ok().and_then(|e| e.error).map(|(t, _)| t)
            }
            Answer::Payload(_) | Answer::Closed => None,
        };
        let Some(error_type) = failed else { return };
        let Some(delay) = delays.get(attempt - 1) else {
            pool.config.logs.line(&format!(
                "[emulator] Event invocation {} failed with {error_type} after {attempts} attempts; dropped",
                request.request_id
            ));
            return;
        };
        pool.config.logs.line(&format!(
            "[emulator] Event invocation {} failed with {error_type}; retry {attempt} of {} in {:.0?}",
            request.request_id,
            delays.len(),
            delay
        ));
        tokio::time::sleep(*delay).await;
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// The last 4 KB of an invocation's log, base64-encoded, as `X-Amz-Log-Result` carries it.
pub(crate) fn log_tail(log: &str) -> String {
    let mut start = log.len().saturating_sub(TAIL_BYTES);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&log[start..])
}

/// The Invoke answer: 200 with the function's result, with `X-Amz-Function-Error: Unhandled`
/// for any function error, and the log tail when asked for.
fn buffered(finished: Finished, id: &str, version: &str, tail: bool) -> Response {
    let (mut response, error) = match finished.answer {
        Answer::Closed => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                "the emulator is shutting down",
            )
        }
        Answer::ApiError {
            status,
            error_type,
            message,
        } => return with_request_id(api_error(status, &error_type, &message), id),
        Answer::Payload(body) => (
            ok(
                Body::from(body),
                HeaderValue::from_static("application/json"),
            ),
            false,
        ),
        Answer::Stream {
            content_type,
            frames,
            ..
        } => {
            let content_type =
                content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (ok(Body::new(ChannelBody::new(frames)), content_type), false)
        }
        Answer::FunctionError { body, .. } => (
            ok(
                Body::from(body),
                HeaderValue::from_static("application/json"),
            ),
            true,
        ),
    };
    let headers = response.headers_mut();
    if error {
        headers.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(version) {
        headers.insert("x-amz-executed-version", v);
    }
    if tail {
        if let Ok(v) = HeaderValue::from_str(&log_tail(&finished.log)) {
            headers.insert("x-amz-log-result", v);
        }
    }
    with_request_id(response, id)
}

fn ok(body: Body, content_type: HeaderValue) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// InvokeWithResponseStream.
async fn invoke_streaming(
    State(functions): State<Arc<Functions>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let accepted = match accept(&functions, &name, query.as_deref(), &headers, body).await {
        Ok(a) => a,
        Err(response) => return *response,
    };
    let id = accepted.request.request_id.clone();
    match accepted.invocation_type.as_str() {
        "DryRun" => return with_request_id(StatusCode::NO_CONTENT.into_response(), &id),
        "RequestResponse" => {}
        other => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("InvokeWithResponseStream takes RequestResponse or DryRun, not {other}"),
            )
        }
    }
    let version = accepted.pool.config.function_version.clone();
    let finished = match tokio::spawn(run::run(accepted.pool, accepted.request)).await {
        Ok(Finished {
            answer: Answer::Closed,
            ..
        })
        | Err(_) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                "the emulator is shutting down",
            )
        }
        Ok(Finished {
            answer:
                Answer::ApiError {
                    status,
                    error_type,
                    message,
                },
            ..
        }) => return with_request_id(api_error(status, &error_type, &message), &id),
        Ok(finished) => finished,
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(event_stream(finished, accepted.tail, tx));
    let mut response = ok(
        Body::new(ChannelBody::new(rx)),
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    if let Ok(v) = HeaderValue::from_str(&version) {
        response.headers_mut().insert("x-amz-executed-version", v);
    }
    with_request_id(response, &id)
}

/// Writes an answer as event-stream messages: `PayloadChunk`s, then `InvokeComplete`.
async fn event_stream(
    finished: Finished,
    tail: bool,
    tx: mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
) {
    let send = |bytes: Vec<u8>| {
        let tx = tx.clone();
        async move { tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_ok() }
    };
    let (error, log) = match finished.answer {
        Answer::Payload(body) => {
            if !body.is_empty() {
                send(eventstream::payload_chunk(&body)).await;
            }
            (None, finished.log)
        }
        Answer::FunctionError { error_type, body } => (
            Some((error_type, String::from_utf8_lossy(&body).into_owned())),
            finished.log,
        ),
        Answer::Stream {
            mut frames, ended, ..
        } => {
            while let Some(frame) = frames.recv().await {
                let data = match frame {
                    Ok(frame) => frame.into_data().ok(),
                    Err(_) => None,
                };
                // A client that went away is no reason to stop draining the runtime's stream.
                if let Some(data) = data.filter(|d| !d.is_empty()) {
                    send(eventstream::payload_chunk(&data)).await;
                }
            }
            match ended.await {
                Ok(end) => (end.error, end.log),
                Err(_) => (None, String::new()),
            }
        }
        // Answered before the stream began (see `invoke_streaming`).
        Answer::ApiError {
            error_type,
            message,
            ..
        } => (Some((error_type, message)), finished.log),
        Answer::Closed => (None, String::new()),
    };
    let error = error.as_ref().map(|(t, d)| (t.as_str(), d.as_str()));
    let tail = tail.then(|| log_tail(&log));
    send(eventstream::invoke_complete(error, tail.as_deref())).await;
}

/// A response body fed frame by frame from a channel, after bytes already read from it.
pub(crate) struct ChannelBody {
    prefix: Option<Bytes>,
    rest: FrameReceiver,
}

impl ChannelBody {
    /// The frames of `rest`.
    pub fn new(rest: FrameReceiver) -> ChannelBody {
        ChannelBody { prefix: None, rest }
    }

    /// `prefix` (read ahead, e.g. while looking for a prelude), then the frames of `rest`.
    pub fn with_prefix(prefix: Bytes, rest: FrameReceiver) -> ChannelBody {
        let prefix = (!prefix.is_empty()).then_some(prefix);
        ChannelBody { prefix, rest }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        self.rest.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_context_is_decoded_to_one_line_json() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("{\n \"custom\": {\"a\": \"b\"}\n}");
        assert_eq!(
            decode_client_context(&encoded).unwrap(),
            r#"{"custom":{"a":"b"}}"#
        );
        assert!(decode_client_context("not base64!").is_err());
        let not_object = base64::engine::general_purpose::STANDARD.encode("[1]");
        assert!(decode_client_context(&not_object).is_err());
    }

    #[test]
    fn qualifiers_come_from_the_query_percent_decoded() {
        assert_eq!(
            query_qualifier(Some("Qualifier=%24LATEST")).as_deref(),
            Some("$LATEST")
        );
        assert_eq!(
            query_qualifier(Some("a=1&Qualifier=live")).as_deref(),
            Some("live")
        );
        assert_eq!(query_qualifier(Some("a=1")), None);
        assert_eq!(query_qualifier(None), None);
    }

    #[test]
    fn log_tails_are_the_last_4_kb_in_base64() {
        let log = format!("{}\nREPORT end\n", "x".repeat(5000));
        let tail = base64::engine::general_purpose::STANDARD
            .decode(log_tail(&log))
            .unwrap();
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with(b"REPORT end\n"));
        assert_eq!(log_tail(""), "");
    }
}
