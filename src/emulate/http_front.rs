//! An HTTP front for one served function, like a Function URL or API Gateway in front of it:
//! each plain HTTP request becomes an event ([`HttpFormat`]: payload v2 by default, or REST
//! API v1, or ALB), the function is invoked in-process through the same pool as the Invoke
//! API, and its answer goes back as HTTP. A streamed answer (the HTTP-integration prelude,
//! then the body) is passed on as it arrives.
//!
//! Errors are answered as the AWS fronts answer them: a function error or a response that is
//! not an HTTP response is a 502, a request over 6 MB a 413.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::format;
use super::http_event::{self, HttpFormat, Prelude, RequestInfo, ResponseHead};
use super::instance::{collect_limited, Collected, FrameReceiver};
use super::invoke::{self, ChannelBody};
use super::pool::Pool;
use super::run::{self, Answer};
use crate::lambda::MAX_PAYLOAD_BYTES;

/// What each request handler needs.
struct Front {
    pool: Arc<Pool>,
    format: HttpFormat,
}

/// Serves `pool`'s function as HTTP on `listener` until the task is aborted.
pub(crate) fn spawn(listener: TcpListener, pool: Arc<Pool>, format: HttpFormat) -> JoinHandle<()> {
    let front = Arc::new(Front { pool, format });
    let router = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(front);
    // Serving ends when the emulator aborts the task.
    tokio::spawn(super::server::serve(
        listener,
        router,
        std::future::pending(),
    ))
}

/// The `{"message": ...}` error answers of API Gateway and Function URLs.
fn front_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

async fn handle(
    State(front): State<Arc<Front>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(b)) => b,
        Ok(Collected::TooLarge(_)) => {
            return front_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
        }
        Err(_) => return front_error(StatusCode::BAD_REQUEST, "Bad Request"),
    };
    let config = &front.pool.config;
    let request_id = format::request_id();
    let info = RequestInfo {
        source_ip: peer.ip(),
        request_id: request_id.clone(),
        time: SystemTime::now(),
        account_id: config.account_id.clone(),
        function_name: config.function_name.clone(),
    };
    let event = http_event::request_event(front.format, &parts, &body, &info);
    let payload = Bytes::from(event.to_string());
    // Base64 makes a binary body a third larger: the event, not the body, must fit.
    if payload.len() > MAX_PAYLOAD_BYTES {
        return front_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    // An API Gateway in front of a tenant-isolated function maps a request header to the
    // tenant; the front takes `X-Amz-Tenant-Id` itself.
    let tenant_id = match invoke::tenant_of(&parts.headers, config.tenant_isolation) {
        Ok(tenant) => tenant,
        Err(why) => {
            config
                .logs
                .line(&format!("[emulator] the HTTP front answers 400: {why}"));
            return front_error(StatusCode::BAD_REQUEST, "Bad Request");
        }
    };
    let request = run::Request {
        request_id,
        payload,
        invoked_arn: format::function_arn(
            &config.region,
            &config.account_id,
            &config.function_name,
            None,
        ),
        trace_id: format::trace_id(SystemTime::now()),
        client_context: None,
        cognito_identity: None,
        tenant_id,
        tail: false,
    };
    let finished = match tokio::spawn(run::run(front.pool.clone(), request)).await {
        Ok(finished) => finished,
        Err(_) => return front_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    match finished.answer {
        Answer::Payload(bytes) => match http_event::buffered_response(front.format, &bytes) {
            Ok((head, body)) => respond(head, Body::from(body)),
            Err(why) => {
                config.logs.line(&format!(
                    "[emulator] the HTTP front answers 502: the function's response {why}"
                ));
                front_error(StatusCode::BAD_GATEWAY, "Internal Server Error")
            }
        },
        Answer::FunctionError { .. } => {
            front_error(StatusCode::BAD_GATEWAY, "Internal Server Error")
        }
        Answer::ApiError { message, .. } => {
            config
                .logs
                .line(&format!("[emulator] the HTTP front answers 502: {message}"));
            front_error(StatusCode::BAD_GATEWAY, "Internal Server Error")
        }
        Answer::Stream {
            content_type,
            frames,
            ..
        } => streamed(content_type, frames).await,
        Answer::Closed => front_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
    }
}

/// An HTTP response with `head` and `body`.
fn respond(head: ResponseHead, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// A streamed answer: its prelude (read as it arrives) gives the status and headers, and the
/// rest of the stream is the body, passed on frame by frame. A stream without a prelude is
/// sent as is, with a 200.
async fn streamed(content_type: Option<HeaderValue>, mut frames: FrameReceiver) -> Response {
    let mut buffer = Vec::new();
    let found = loop {
        let prelude = http_event::split_prelude(&buffer);
        if !matches!(prelude, Prelude::NeedMore) {
            break prelude;
        }
        match frames.recv().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            // The stream ended (or broke) before a prelude could be read: send what came.
            Some(Err(_)) | None => break Prelude::Absent,
        }
    };
    let (head, rest) = match found {
        Prelude::Found { head, body_start } => (head, buffer.split_off(body_start)),
        _ => {
            let content_type = content_type
                .and_then(|v| v.to_str().ok().map(str::to_string))
                .unwrap_or_else(|| "application/octet-stream".into());
            let head = ResponseHead {
                status: 200,
                headers: vec![(CONTENT_TYPE.to_string(), content_type)],
            };
            (head, buffer)
        }
    };
    let body = ChannelBody::with_prefix(Bytes::from(rest), frames);
    respond(head, Body::new(body))
}
