//! The Invoke API and the pool of runtime instances behind it.
//!
//! Each invocation runs in its own task (so a client that hangs up does not abandon a runtime
//! mid-invocation): it leases an idle instance or starts one (at most `concurrency` exist),
//! hands the event to the instance's `/next`, and waits for the answer, the runtime's exit or
//! the timeout, whichever comes first.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use http_body::Frame;
use serde_json::{json, Value};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::format::{self, Report};
use super::instance::{collect_limited, Collected, Event, Exit, FrameReceiver, Instance, Outcome};
use super::Shared;
use crate::lambda::{MAX_PAYLOAD_BYTES, RESPONSE_LIMIT_IN_MESSAGE};

/// The runtime instances: idle ones ready for an invocation, and permits bounding how many
/// exist (idle or busy) to `concurrency`.
pub(crate) struct Pool {
    shared: Shared,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Arc<Instance>>>,
    all: Mutex<Vec<Weak<Instance>>>,
    next_index: AtomicUsize,
}

/// An instance reserved for one invocation.
struct Lease {
    instance: Arc<Instance>,
    _permit: OwnedSemaphorePermit,
}

/// Why no instance could be leased.
enum AcquireError {
    /// The emulator is shutting down.
    Closed,
    /// A new runtime could not be started.
    Launch(io::Error),
}

impl Pool {
    pub fn new(shared: Shared) -> Pool {
        let permits = Arc::new(Semaphore::new(shared.config.concurrency));
        Pool {
            shared,
            permits,
            idle: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            next_index: AtomicUsize::new(0),
        }
    }

    /// Waits for a free slot (in arrival order), then takes an idle instance that is still
    /// alive or starts a new one.
    async fn acquire(&self) -> Result<Lease, AcquireError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AcquireError::Closed)?;
        let config = &self.shared.config;
        // An invocation must not outlive the credentials it runs with.
        let margin = config.timeout + config.credentials_margin;
        loop {
            let candidate = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match candidate {
                // Runtimes that exited while idle are dropped here, and replaced below.
                Some(instance) if instance.alive() && instance.credentials_valid_for(margin) => {
                    return Ok(Lease {
                        instance,
                        _permit: permit,
                    })
                }
                Some(instance) => {
                    if instance.alive() {
                        config.logs.line(
                            "[emulator] restarting an idle runtime: its AWS credentials are about to expire",
                        );
                        instance.kill();
                    }
                    continue;
                }
                None => break,
            }
        }
        let credentials = match &config.credentials {
            Some(source) => Some(
                source
                    .get(margin)
                    .await
                    .map_err(|e| AcquireError::Launch(io::Error::other(e.to_string())))?,
            ),
            None => None,
        };
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let instance = Arc::new(
            Instance::launch(&self.shared, index, credentials)
                .await
                .map_err(AcquireError::Launch)?,
        );
        if let Ok(mut all) = self.all.lock() {
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&instance));
        }
        Ok(Lease {
            instance,
            _permit: permit,
        })
    }

    /// Returns a healthy instance to the idle list; a dead one is dropped (which kills it).
    fn release(&self, lease: Lease) {
        lease.instance.end();
        if lease.instance.alive() && !self.permits.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(lease.instance.clone());
            }
        }
    }

    /// Refuses new invocations and kills every runtime.
    pub fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Ok(all) = self.all.lock() {
            for instance in all.iter().filter_map(Weak::upgrade) {
                instance.kill();
            }
        }
    }
}

pub(crate) fn router(pool: Arc<Pool>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .fallback(|| async {
            api_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "Unknown operation: the emulator serves POST /2015-03-31/functions/function/invocations",
            )
        })
        // The 6 MB limit is checked by the handler, which needs to drain and count the body.
        .layer(DefaultBodyLimit::disable())
        .with_state(pool)
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

/// One invocation, as accepted by the Invoke API.
struct InvokeRequest {
    request_id: String,
    payload: Bytes,
    invoked_arn: String,
    trace_id: String,
    client_context: Option<String>,
    cognito_identity: Option<String>,
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

async fn invoke(
    State(pool): State<Arc<Pool>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let config = &pool.shared.config;
    let Some(qualifier) =
        format::resolve_function(&name, &config.function_name, &config.function_version)
    else {
        let arn = format::function_arn(&config.region, &config.account_id, &name, None);
        return api_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!(
                "Function not found: {arn} (this emulator runs `{}`, also reachable as `function`)",
                config.function_name
            ),
        );
    };
    let invocation_type =
        header_str(&headers, "x-amz-invocation-type").unwrap_or("RequestResponse");
    if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!(
                "Invalid invocation type {invocation_type:?}: use RequestResponse, Event or DryRun"
            ),
        );
    }
    let payload = match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(p)) => p,
        Ok(Collected::TooLarge(size)) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction \
                     operation (it has {size} bytes)"
                ),
            )
        }
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &format!("Could not read the request body: {e}"),
            )
        }
    };
    if !payload.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &format!("Could not parse request body into json: {e}"),
            );
        }
    }
    let client_context = match header_str(&headers, "x-amz-client-context") {
        None => None,
        Some(v) => match decode_client_context(v) {
            Ok(c) => Some(c),
            Err(message) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &message,
                )
            }
        },
    };
    // Not part of Lambda's Invoke API (only Cognito-authenticated callers have an identity),
    // so the emulator takes it from its own header, as JSON.
    let cognito_identity = match header_str(&headers, "x-amz-cognito-identity") {
        None => None,
        Some(v) => match serde_json::from_str::<Value>(v) {
            Ok(json) => Some(json.to_string()),
            Err(e) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("X-Amz-Cognito-Identity must be JSON: {e}"),
                )
            }
        },
    };
    let request_id = format::request_id();
    if invocation_type == "DryRun" {
        return with_request_id(StatusCode::NO_CONTENT.into_response(), &request_id);
    }
    let request = InvokeRequest {
        request_id: request_id.clone(),
        payload,
        invoked_arn: format::function_arn(
            &config.region,
            &config.account_id,
            &config.function_name,
            qualifier,
        ),
        trace_id: header_str(&headers, "x-amzn-trace-id")
            .map(str::to_string)
            .unwrap_or_else(|| format::trace_id(SystemTime::now())),
        client_context,
        cognito_identity,
    };
    let task = tokio::spawn(run(pool.clone(), request));
    if invocation_type == "Event" {
        return with_request_id(StatusCode::ACCEPTED.into_response(), &request_id);
    }
    match task.await {
        Ok(response) => response,
        Err(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "the emulator's invocation task failed",
        ),
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// A 200 answer with the function's result.
fn success(request_id: &str, version: &str, body: Body, content_type: HeaderValue) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(version) {
        headers.insert("x-amz-executed-version", v);
    }
    with_request_id(response, request_id)
}

/// A 200 answer with `X-Amz-Function-Error: Unhandled`, as Lambda gives for any function error.
fn function_error(request_id: &str, version: &str, body: Bytes) -> Response {
    let mut response = success(
        request_id,
        version,
        Body::from(body),
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        "x-amz-function-error",
        HeaderValue::from_static("Unhandled"),
    );
    response
}

/// The error body a runtime posted, or one built from its error type if the body is not JSON.
fn posted_error_body(error_type: Option<&str>, body: &[u8]) -> (String, Bytes) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok().filter(Value::is_object);
    match parsed {
        Some(json) => {
            let t = error_type
                .map(str::to_string)
                .or_else(|| json["errorType"].as_str().map(str::to_string))
                .unwrap_or_else(|| "Runtime.Unknown".into());
            (t, Bytes::copy_from_slice(body))
        }
        None => {
            let t = error_type.unwrap_or("Runtime.Unknown").to_string();
            let message = String::from_utf8_lossy(body);
            let json = format::error_body(&t, &message);
            (t, Bytes::from(json.to_string()))
        }
    }
}

/// How an invocation ended, for the `REPORT` line and the instance's fate.
struct Ending {
    status: Option<&'static str>,
    error_type: Option<String>,
    /// Whether the instance can serve again.
    keep: bool,
}

impl Ending {
    fn ok() -> Ending {
        Ending {
            status: None,
            error_type: None,
            keep: true,
        }
    }

    /// A function error: the runtime is fine and serves the next invocation.
    fn function_error(error_type: String) -> Ending {
        Ending {
            status: Some("error"),
            error_type: Some(error_type),
            keep: true,
        }
    }

    /// The runtime is gone or must be replaced.
    fn fatal(status: &'static str, error_type: Option<String>) -> Ending {
        Ending {
            status: Some(status),
            error_type,
            keep: false,
        }
    }
}

/// Ends an invocation: `END` and `REPORT` lines, and the instance back to the pool or killed.
fn finish(pool: &Pool, lease: Lease, request_id: &str, started: Option<Instant>, ending: Ending) {
    let config = &pool.shared.config;
    let instance = &lease.instance;
    // Measure before killing: a dead process has no memory statistics.
    let max_memory_mb = instance.max_memory_mb();
    if !ending.keep {
        instance.kill();
    }
    if let Some(started) = started {
        config.logs.line(&format::end_line(request_id));
        let report = Report {
            request_id: request_id.to_string(),
            duration: started.elapsed(),
            memory_mb: config.memory_mb,
            max_memory_mb,
            init_duration: instance.take_init_duration(),
            status: ending.status,
            error_type: ending.error_type,
        };
        config.logs.line(&report.line());
    } else {
        // The runtime never took the event: the failure belongs to its init phase.
        let mut line = format!(
            "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: {}",
            instance.since_launch().as_secs_f64() * 1000.0,
            ending.status.unwrap_or("error")
        );
        if let Some(t) = &ending.error_type {
            line.push_str(&format!("\tError Type: {t}"));
        }
        config.logs.line(&line);
    }
    if ending.keep {
        pool.release(lease);
    }
}

/// What ended the wait for the runtime.
enum Waited {
    Outcome(Outcome),
    Exited(Exit),
    TimedOut,
}

/// Runs one invocation to its end and returns the Invoke API's answer.
async fn run(pool: Arc<Pool>, request: InvokeRequest) -> Response {
    let config = &pool.shared.config;
    let version = config.function_version.as_str();
    let id = request.request_id.clone();
    let lease = match pool.acquire().await {
        Ok(lease) => lease,
        Err(AcquireError::Closed) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                "the emulator is shutting down",
            )
        }
        Err(AcquireError::Launch(e)) => {
            let message = format!("RequestId: {id} Error: {e}");
            config.logs.line(&format!(
                "INIT_REPORT Init Duration: 0.00 ms\tPhase: init\tStatus: error\tError Type: Runtime.InvalidEntrypoint\t{message}"
            ));
            let body = format::error_body("Runtime.InvalidEntrypoint", &message);
            return function_error(&id, version, Bytes::from(body.to_string()));
        }
    };
    let instance = lease.instance.clone();
    let (outcome_tx, mut outcome_rx) = oneshot::channel();
    instance.begin(&id, outcome_tx);
    let (picked_tx, picked_rx) = oneshot::channel();
    let event = Event {
        request_id: id.clone(),
        payload: request.payload,
        invoked_arn: request.invoked_arn,
        trace_id: request.trace_id,
        client_context: request.client_context,
        cognito_identity: request.cognito_identity,
        picked: picked_tx,
    };
    let dispatched = instance.dispatch(event).await;

    // Phase 1: until the runtime takes the event. A cold runtime initializes meanwhile.
    // `picked` is polled first: a fast runtime can take the event and answer it before this
    // task runs again, and then both are ready; the answer is still in `outcome_rx` for
    // `run_picked`.
    let waited = tokio::select! {
        biased;
        picked = picked_rx, if dispatched => match picked {
            Ok(at) => return run_picked(pool.clone(), lease, id, at, outcome_rx).await,
            Err(_) => Waited::Exited(instance.exited().await),
        },
        outcome = &mut outcome_rx => match outcome {
            Ok(outcome) => Waited::Outcome(outcome),
            Err(_) => Waited::Exited(instance.exited().await),
        },
        exit = instance.exited() => Waited::Exited(exit),
        _ = tokio::time::sleep(config.init_timeout) => Waited::TimedOut,
    };
    match waited {
        Waited::Outcome(Outcome::InitError { error_type, body }) => {
            let (error_type, body) = posted_error_body(error_type.as_deref(), &body);
            finish(
                &pool,
                lease,
                &id,
                None,
                Ending::fatal("error", Some(error_type)),
            );
            function_error(&id, version, body)
        }
        Waited::Outcome(_) => {
            // Nothing but an init error can answer an event the runtime has not taken.
            finish(&pool, lease, &id, None, Ending::fatal("error", None));
            let body = format::error_body(
                "Runtime.Unknown",
                &format!("RequestId: {id} Error: the runtime answered before taking the event"),
            );
            function_error(&id, version, Bytes::from(body.to_string()))
        }
        Waited::Exited(exit) => exit_error(&pool, lease, &id, None, exit),
        Waited::TimedOut => {
            finish(
                &pool,
                lease,
                &id,
                None,
                Ending::fatal("timeout", Some("Sandbox.Timedout".into())),
            );
            let message = format!(
                "RequestId: {id} Error: the runtime did not ask for an event within the init \
                 timeout of {:.2} seconds",
                config.init_timeout.as_secs_f64()
            );
            let body = format::error_body("Sandbox.Timedout", &message);
            function_error(&id, version, Bytes::from(body.to_string()))
        }
    }
}

/// The `Runtime.ExitError` answer for a runtime that exited (or was lost) mid-invocation.
fn exit_error(
    pool: &Pool,
    lease: Lease,
    id: &str,
    started: Option<Instant>,
    exit: Exit,
) -> Response {
    let message = match &exit {
        Exit::Status(status) => format::exit_message(id, status),
        Exit::Killed => format!("RequestId: {id} Error: Runtime exited with error: signal: killed"),
        Exit::Lost(e) => format!("RequestId: {id} Error: Runtime exited with error: {e}"),
    };
    pool.shared.config.logs.line(&message);
    finish(
        pool,
        lease,
        id,
        started,
        Ending::fatal("error", Some("Runtime.ExitError".into())),
    );
    let body = format::error_body("Runtime.ExitError", &message);
    function_error(
        id,
        &pool.shared.config.function_version,
        Bytes::from(body.to_string()),
    )
}

/// Phase 2: the runtime has the event; wait for its answer within the timeout.
async fn run_picked(
    pool: Arc<Pool>,
    lease: Lease,
    id: String,
    started: Instant,
    mut outcome_rx: oneshot::Receiver<Outcome>,
) -> Response {
    let config = &pool.shared.config;
    let version = config.function_version.clone();
    config.logs.line(&format::start_line(&id, &version));
    let instance = lease.instance.clone();
    let deadline = started + config.timeout;
    let waited = tokio::select! {
        biased;
        outcome = &mut outcome_rx => match outcome {
            Ok(outcome) => Waited::Outcome(outcome),
            Err(_) => Waited::Exited(instance.exited().await),
        },
        exit = instance.exited() => Waited::Exited(exit),
        _ = tokio::time::sleep_until(deadline.into()) => Waited::TimedOut,
    };
    match waited {
        Waited::Outcome(Outcome::Response(body)) => {
            finish(&pool, lease, &id, Some(started), Ending::ok());
            success(
                &id,
                &version,
                Body::from(body),
                HeaderValue::from_static("application/json"),
            )
        }
        Waited::Outcome(Outcome::TooLarge { size }) => {
            let error_type = "Function.ResponseSizeTooLarge";
            let message = format!(
                "Response payload size ({size} bytes) exceeded maximum allowed payload size \
                 ({RESPONSE_LIMIT_IN_MESSAGE} bytes)."
            );
            config
                .logs
                .line(&format!("RequestId: {id} Error: {message}"));
            finish(
                &pool,
                lease,
                &id,
                Some(started),
                Ending::function_error(error_type.into()),
            );
            let body = format::error_body(error_type, &message);
            function_error(&id, &version, Bytes::from(body.to_string()))
        }
        Waited::Outcome(Outcome::Error { error_type, body }) => {
            let (error_type, body) = posted_error_body(error_type.as_deref(), &body);
            finish(
                &pool,
                lease,
                &id,
                Some(started),
                Ending::function_error(error_type),
            );
            function_error(&id, &version, body)
        }
        Waited::Outcome(Outcome::InitError { error_type, body }) => {
            let (error_type, body) = posted_error_body(error_type.as_deref(), &body);
            finish(
                &pool,
                lease,
                &id,
                Some(started),
                Ending::fatal("error", Some(error_type)),
            );
            function_error(&id, &version, body)
        }
        Waited::Outcome(Outcome::Stream {
            content_type,
            frames,
            done,
        }) => {
            let content_type =
                content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let body = Body::new(ChannelBody(frames));
            tokio::spawn(watch_stream(pool.clone(), lease, id.clone(), started, done));
            success(&id, &version, body, content_type)
        }
        Waited::Exited(exit) => exit_error(&pool, lease, &id, Some(started), exit),
        Waited::TimedOut => {
            let message = format::timeout_message(SystemTime::now(), &id, config.timeout);
            config.logs.line(&message);
            finish(
                &pool,
                lease,
                &id,
                Some(started),
                Ending::fatal("timeout", None),
            );
            let body = format::error_body("Sandbox.Timedout", &message);
            function_error(&id, &version, Bytes::from(body.to_string()))
        }
    }
}

/// Finishes a streamed invocation when the runtime ends the stream, or kills the runtime when
/// the stream outlives the timeout (the client then sees the stream cut short).
async fn watch_stream(
    pool: Arc<Pool>,
    lease: Lease,
    id: String,
    started: Instant,
    done: oneshot::Receiver<super::instance::StreamEnd>,
) {
    let config = &pool.shared.config;
    let deadline = started + config.timeout;
    let instance = lease.instance.clone();
    tokio::select! {
        biased;
        end = done => {
            let ending = match end {
                Ok(end) => match end.error_type {
                    Some(t) => {
                        config.logs.line(&format!(
                            "RequestId: {id} Error: the streamed response ended with {t}: {}",
                            end.error_body.unwrap_or_default()
                        ));
                        Ending::function_error(t)
                    }
                    None => Ending::ok(),
                },
                Err(_) => Ending::fatal("error", Some("Runtime.ExitError".into())),
            };
            finish(&pool, lease, &id, Some(started), ending);
        }
        exit = instance.exited() => {
            drop(exit_error(&pool, lease, &id, Some(started), exit));
        }
        _ = tokio::time::sleep_until(deadline.into()) => {
            config.logs.line(&format::timeout_message(SystemTime::now(), &id, config.timeout));
            finish(&pool, lease, &id, Some(started), Ending::fatal("timeout", None));
        }
    }
}

/// A response body fed frame by frame from the runtime's streamed response.
struct ChannelBody(FrameReceiver);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx)
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
    fn posted_error_bodies_keep_json_and_wrap_text() {
        let (t, body) = posted_error_body(
            Some("&str"),
            br#"{"errorType":"&str","errorMessage":"boom"}"#,
        );
        assert_eq!(t, "&str");
        assert_eq!(&body[..], br#"{"errorType":"&str","errorMessage":"boom"}"#);
        let (t, body) = posted_error_body(None, b"plain text");
        assert_eq!(t, "Runtime.Unknown");
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["errorMessage"], "plain text");
        let (t, _) = posted_error_body(None, br#"{"errorType":"Custom","errorMessage":"x"}"#);
        assert_eq!(t, "Custom");
    }
}
