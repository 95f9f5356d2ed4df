//! One invocation, from leasing a runtime to its answer: the event goes to the runtime's
//! `/next`, and the emulator waits for the answer, the runtime's exit or the timeout,
//! whichever comes first. The result is an [`Answer`], which the Invoke API renders as a
//! buffered response or as an event stream.
//!
//! Every invocation captures its log lines (the runtime's output and the emulator's `START`,
//! `END` and `REPORT`), for `X-Amz-Log-Type: Tail`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

use super::extensions::{Fatal, ShutdownReason};
use super::format::{self, Report};
use super::instance::{Event, Exit, FrameReceiver, Outcome, StreamEnd};
use super::pool::{AcquireError, Lease, Pool};
use crate::lambda::RESPONSE_LIMIT_IN_MESSAGE;

/// One invocation, as accepted by the Invoke API.
#[derive(Clone)]
pub(crate) struct Request {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    /// The tenant (`X-Amz-Tenant-Id`), for a tenant-isolated function.
    pub tenant_id: Option<String>,
    /// Whether the caller wants the log tail (`X-Amz-Log-Type: Tail`).
    pub tail: bool,
}

/// How long an invocation asking for its log tail waits, after the answer, for the runtime's
/// last lines to come through its output pipe before the log is cut.
const TAIL_SETTLE: Duration = Duration::from_millis(20);

/// What an invocation produced.
pub(crate) enum Answer {
    /// The function's buffered response.
    Payload(Bytes),
    /// A streamed response, still arriving; `ended` says how it ended, with the log.
    Stream {
        content_type: Option<HeaderValue>,
        frames: FrameReceiver,
        ended: oneshot::Receiver<Ended>,
    },
    /// The function failed (Lambda's `X-Amz-Function-Error: Unhandled`): its error type, and
    /// the error document.
    FunctionError { error_type: String, body: Bytes },
    /// Lambda refuses the invocation itself (an error of the Invoke API, not of the
    /// function), e.g. `SnapStartException` when an after-restore hook failed.
    ApiError {
        status: StatusCode,
        error_type: String,
        message: String,
    },
    /// The emulator is shutting down.
    Closed,
}

/// How a streamed response ended.
pub(crate) struct Ended {
    /// The error type and details, if the function failed midway.
    pub error: Option<(String, String)>,
    /// The invocation's log lines.
    pub log: String,
}

/// An answer and the invocation's log lines (empty for a stream, whose log comes with
/// [`Ended`]).
pub(crate) struct Finished {
    pub answer: Answer,
    pub log: String,
}

impl Finished {
    fn error(error_type: &str, message: &str, log: String) -> Finished {
        Finished {
            answer: Answer::FunctionError {
                error_type: error_type.to_string(),
                body: Bytes::from(format::error_body(error_type, message).to_string()),
            },
            log,
        }
    }
}

/// The error body a runtime posted, or one built from its error type if the body is not JSON.
pub(crate) fn posted_error_body(error_type: Option<&str>, body: &[u8]) -> (String, Bytes) {
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
    /// Whether the invocation timed out in an environment that goes on.
    timed_out: bool,
}

impl Ending {
    fn ok() -> Ending {
        Ending {
            status: None,
            error_type: None,
            keep: true,
            timed_out: false,
        }
    }

    /// A function error: the runtime is fine and serves the next invocation.
    fn function_error(error_type: String) -> Ending {
        Ending {
            status: Some("error"),
            error_type: Some(error_type),
            keep: true,
            timed_out: false,
        }
    }

    /// The runtime is gone or must be replaced.
    fn fatal(status: &'static str, error_type: Option<String>) -> Ending {
        Ending {
            status: Some(status),
            error_type,
            keep: false,
            timed_out: false,
        }
    }

    /// A timeout. On demand the runtime is stopped (and the next invocation initializes a
    /// new one); on Managed Instances its other invocations go on, so the environment stays,
    /// and a late answer for this one gets `InvokeTimeout`.
    fn timeout(pool: &Pool) -> Ending {
        Ending {
            status: Some("timeout"),
            error_type: None,
            keep: pool.config.model.is_multi_concurrent(),
            timed_out: true,
        }
    }
}

/// Ends an invocation: `END` and `REPORT` lines, and the instance back to the pool or
/// stopped. Returns the invocation's log lines.
fn finish(
    pool: &Pool,
    lease: Lease,
    request_id: &str,
    started: Option<Instant>,
    ending: Ending,
) -> String {
    let config = &pool.config;
    let instance = &lease.instance;
    // Measure before killing: a dead process has no memory statistics.
    let max_memory_mb = instance.max_memory_mb();
    if !ending.keep {
        let reason = if ending.status == Some("timeout") {
            ShutdownReason::Timeout
        } else {
            ShutdownReason::Failure
        };
        instance.kill(reason);
    }
    if ending.timed_out {
        instance.end_timed_out(request_id);
    } else {
        instance.end(request_id);
    }
    if let Some(started) = started {
        instance.log(&format::end_line(request_id));
        let report = Report {
            request_id: request_id.to_string(),
            duration: started.elapsed(),
            memory_mb: config.memory_mb,
            max_memory_mb,
            init_duration: instance.take_init_duration(),
            restore_duration: instance.take_restore_duration(),
            status: ending.status,
            error_type: ending.error_type,
        };
        instance.log(&report.line());
        instance.report_telemetry(&report);
    } else if !(ending.keep && instance.initialized()) {
        // The runtime never took the event: the failure belongs to its init phase (unless
        // the environment was past it and goes on, which the caller has logged).
        let mut line = format!(
            "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: {}",
            instance.since_launch().as_secs_f64() * 1000.0,
            ending.status.unwrap_or("error")
        );
        if let Some(t) = &ending.error_type {
            line.push_str(&format!("\tError Type: {t}"));
        }
        instance.log(&line);
        instance.init_failed_telemetry(
            ending.status == Some("timeout"),
            ending.error_type.as_deref(),
        );
    }
    let log = instance.take_logs();
    // A killed instance is not usable, so the pool drops it rather than keeping it idle.
    pool.release(lease);
    log
}

/// What ended the wait for the runtime.
enum Waited {
    Outcome(Outcome),
    Exited(Exit),
    TimedOut,
}

/// Runs one invocation to its end.
pub(crate) async fn run(pool: Arc<Pool>, request: Request) -> Finished {
    let config = &pool.config;
    let id = request.request_id.clone();
    let tail = request.tail;
    let tenant = request
        .tenant_id
        .as_deref()
        .filter(|_| config.tenant_isolation);
    let lease = match pool.acquire(tenant).await {
        Ok(lease) => lease,
        Err(AcquireError::Closed) => {
            return Finished {
                answer: Answer::Closed,
                log: String::new(),
            }
        }
        Err(AcquireError::Launch(e)) => {
            let message = format!("RequestId: {id} Error: {e}");
            let line = format!(
                "INIT_REPORT Init Duration: 0.00 ms\tPhase: init\tStatus: error\tError Type: Runtime.InvalidEntrypoint\t{message}"
            );
            config.logs.line(&line);
            return Finished::error("Runtime.InvalidEntrypoint", &message, line + "\n");
        }
    };
    let instance = lease.instance.clone();
    instance.capture_logs();
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
        tenant_id: request.tenant_id,
        picked: picked_tx,
    };
    let dispatched = instance.dispatch(event);

    // Phase 1: until the runtime takes the event. A cold runtime initializes meanwhile.
    // `picked` is polled first: a fast runtime can take the event and answer it before this
    // task runs again, and then both are ready; the answer is still in `outcome_rx` for
    // `run_picked`.
    let waited = tokio::select! {
        biased;
        picked = picked_rx, if dispatched => match picked {
            Ok(at) => return run_picked(pool.clone(), lease, id, at, outcome_rx, tail).await,
            Err(_) => Waited::Exited(instance.exited().await),
        },
        outcome = &mut outcome_rx => match outcome {
            Ok(outcome) => Waited::Outcome(outcome),
            Err(_) => Waited::Exited(instance.exited().await),
        },
        exit = instance.exited() => Waited::Exited(exit),
        _ = tokio::time::sleep(config.init_timeout) => Waited::TimedOut,
    };
    unpicked(&pool, lease, &id, waited)
}

/// The answer to an invocation whose event the runtime never took: its init failed (an init
/// or restore error, an extension, a refused SnapStart runtime, an exit) or ran out of time.
fn unpicked(pool: &Arc<Pool>, lease: Lease, id: &str, waited: Waited) -> Finished {
    let (pool, id) = (pool.clone(), id.to_string());
    let config = &pool.config;
    let instance = lease.instance.clone();
    match waited {
        Waited::Outcome(Outcome::InitError { error_type, body }) => {
            let (error_type, body) = posted_error_body(error_type.as_deref(), &body);
            let ending = Ending::fatal("error", Some(error_type.clone()));
            let log = finish(&pool, lease, &id, None, ending);
            Finished {
                answer: Answer::FunctionError { error_type, body },
                log,
            }
        }
        Waited::Outcome(Outcome::RestoreError { error_type, body }) => {
            let ending = Ending::fatal("error", error_type.clone());
            let log = finish(&pool, lease, &id, None, ending);
            restore_failed(error_type.as_deref(), &body, log)
        }
        Waited::Outcome(Outcome::ExtensionFailed(fatal)) => {
            extension_failed(&pool, lease, &id, None, fatal)
        }
        Waited::Outcome(Outcome::Refused(reason)) => {
            instance.log(&format!("[emulator] {reason}"));
            let ending = Ending::fatal("error", Some("InvalidParameterValueException".into()));
            let log = finish(&pool, lease, &id, None, ending);
            Finished {
                answer: Answer::ApiError {
                    status: StatusCode::BAD_REQUEST,
                    error_type: "InvalidParameterValueException".into(),
                    message: reason,
                },
                log,
            }
        }
        Waited::Outcome(_) => {
            // Nothing but an init error can answer an event the runtime has not taken.
            let log = finish(&pool, lease, &id, None, Ending::fatal("error", None));
            let message =
                format!("RequestId: {id} Error: the runtime answered before taking the event");
            Finished::error("Runtime.Unknown", &message, log)
        }
        Waited::Exited(exit) => exit_error(&pool, lease, &id, None, exit),
        Waited::TimedOut if instance.initialized() && config.model.is_multi_concurrent() => {
            // A running Managed Instances environment whose workers are all still busy (with
            // invocations that timed out, say): this invocation fails, the others go on.
            let message = format!(
                "RequestId: {id} Error: no worker of the runtime asked for this event within \
                 {:.2} seconds (all {} were busy)",
                config.init_timeout.as_secs_f64(),
                config.model.per_environment()
            );
            instance.log(&message);
            let log = finish(&pool, lease, &id, None, Ending::timeout(&pool));
            Finished::error("Sandbox.Timedout", &message, log)
        }
        Waited::TimedOut => {
            let ending = Ending::fatal("timeout", Some("Sandbox.Timedout".into()));
            let log = finish(&pool, lease, &id, None, ending);
            let message = format!(
                "RequestId: {id} Error: the runtime did not ask for an event within the init \
                 timeout of {:.2} seconds",
                config.init_timeout.as_secs_f64()
            );
            Finished::error("Sandbox.Timedout", &message, log)
        }
    }
}

/// Lambda's answer when an after-restore hook failed: the Invoke API's `SnapStartException`,
/// with the runtime's own error after Lambda's message.
fn restore_failed(error_type: Option<&str>, body: &[u8], log: String) -> Finished {
    let (error_type, body) = posted_error_body(error_type, body);
    let details: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = details["errorMessage"].as_str().unwrap_or_default();
    Finished {
        answer: Answer::ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type: "SnapStartException".into(),
            message: format!(
                "The afterRestore() runtime hook encountered an error ({error_type}: {message}). \
                 For more information, check the function's logs."
            ),
        },
        log,
    }
}

/// Lambda's answer when an extension failed the environment: the extension's error type
/// (`Extension.Crash`, ...) with `RequestId: <id> Error: <what happened>`.
fn extension_failed(
    pool: &Pool,
    lease: Lease,
    id: &str,
    started: Option<Instant>,
    fatal: Fatal,
) -> Finished {
    let message = format!("RequestId: {id} Error: {}", fatal.message);
    let ending = Ending::fatal("error", Some(fatal.error_type.to_string()));
    let log = finish(pool, lease, id, started, ending);
    Finished::error(fatal.error_type, &message, log)
}

/// Ends an invocation whose runtime answered, once the extensions subscribed to `INVOKE` are
/// done with it too: Lambda gives the client its answer at once, but the environment takes
/// its next invocation (and reports this one) only then. Extensions still busy at the
/// invocation's deadline make it a timeout, and the environment is reset.
async fn finish_after_extensions(
    pool: Arc<Pool>,
    lease: Lease,
    id: String,
    started: Instant,
    ending: Ending,
) -> String {
    let instance = lease.instance.clone();
    if instance.extensions_take_invokes()
        && !instance
            .extensions_done(started + pool.config.timeout)
            .await
    {
        let message = format::timeout_message(SystemTime::now(), &id, pool.config.timeout);
        instance.log(&format!("{message} (extensions were still busy with it)"));
        return finish(&pool, lease, &id, Some(started), Ending::timeout(&pool));
    }
    finish(&pool, lease, &id, Some(started), ending)
}

/// Ends an answered invocation: at once when no extension takes `INVOKE` events, else in the
/// background after them ([`finish_after_extensions`]), the log tail being what was logged
/// until the answer.
fn settle(pool: Arc<Pool>, lease: Lease, id: String, started: Instant, ending: Ending) -> String {
    if !lease.instance.extensions_take_invokes() {
        return finish(&pool, lease, &id, Some(started), ending);
    }
    let log = lease.instance.logs_so_far();
    tokio::spawn(finish_after_extensions(pool, lease, id, started, ending));
    log
}

/// The `Runtime.ExitError` answer for a runtime that exited (or was lost) mid-invocation.
fn exit_error(
    pool: &Pool,
    lease: Lease,
    id: &str,
    started: Option<Instant>,
    exit: Exit,
) -> Finished {
    // An environment stopped because an extension failed answers with that failure.
    if let Some(fatal) = lease.instance.extension_failure() {
        return extension_failed(pool, lease, id, started, fatal);
    }
    if let Exit::NotStarted(why) = &exit {
        let message = format!("RequestId: {id} Error: {why}");
        lease.instance.log(&message);
        let ending = Ending::fatal("error", Some("Runtime.InvalidEntrypoint".into()));
        let log = finish(pool, lease, id, started, ending);
        return Finished::error("Runtime.InvalidEntrypoint", &message, log);
    }
    let message = match &exit {
        Exit::Status(status) => format::exit_message(id, status),
        Exit::Killed => format!("RequestId: {id} Error: Runtime exited with error: signal: killed"),
        Exit::Lost(e) | Exit::NotStarted(e) => {
            format!("RequestId: {id} Error: Runtime exited with error: {e}")
        }
    };
    lease.instance.log(&message);
    lease.instance.fault_telemetry(&message);
    let ending = Ending::fatal("error", Some("Runtime.ExitError".into()));
    let log = finish(pool, lease, id, started, ending);
    Finished::error("Runtime.ExitError", &message, log)
}

/// Phase 2: the runtime has the event; wait for its answer within the timeout.
async fn run_picked(
    pool: Arc<Pool>,
    lease: Lease,
    id: String,
    started: Instant,
    mut outcome_rx: oneshot::Receiver<Outcome>,
    tail: bool,
) -> Finished {
    let config = &pool.config;
    let instance = lease.instance.clone();
    instance.log(&format::start_line(&id, &config.function_version));
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
    let outcome = match waited {
        Waited::Outcome(outcome) => {
            if tail && !matches!(outcome, Outcome::Stream { .. }) {
                tokio::time::sleep(TAIL_SETTLE).await;
            }
            outcome
        }
        Waited::Exited(exit) => return exit_error(&pool, lease, &id, Some(started), exit),
        Waited::TimedOut => {
            let message = format::timeout_message(SystemTime::now(), &id, config.timeout);
            instance.log(&message);
            let ending = Ending::timeout(&pool);
            let log = finish(&pool, lease, &id, Some(started), ending);
            return Finished::error("Sandbox.Timedout", &message, log);
        }
    };
    answer(pool, lease, id, started, outcome)
}

/// The answer to an invocation whose runtime posted `outcome` in time.
fn answer(
    pool: Arc<Pool>,
    lease: Lease,
    id: String,
    started: Instant,
    outcome: Outcome,
) -> Finished {
    let instance = lease.instance.clone();
    match outcome {
        Outcome::Response(body) => {
            let log = settle(pool, lease, id, started, Ending::ok());
            Finished {
                answer: Answer::Payload(body),
                log,
            }
        }
        Outcome::TooLarge { size } => {
            let error_type = "Function.ResponseSizeTooLarge";
            let message = format!(
                "Response payload size ({size} bytes) exceeded maximum allowed payload size \
                 ({RESPONSE_LIMIT_IN_MESSAGE} bytes)."
            );
            instance.log(&format!("RequestId: {id} Error: {message}"));
            let ending = Ending::function_error(error_type.into());
            let log = settle(pool, lease, id, started, ending);
            Finished::error(error_type, &message, log)
        }
        Outcome::Error { error_type, body } => {
            let (error_type, body) = posted_error_body(error_type.as_deref(), &body);
            let ending = Ending::function_error(error_type.clone());
            let log = settle(pool, lease, id, started, ending);
            Finished {
                answer: Answer::FunctionError { error_type, body },
                log,
            }
        }
        Outcome::InitError { error_type, body } => {
            // An init error, even after the event was taken, means the runtime must go.
            let (error_type, body) = posted_error_body(error_type.as_deref(), &body);
            let ending = Ending::fatal("error", Some(error_type.clone()));
            let log = finish(&pool, lease, &id, Some(started), ending);
            Finished {
                answer: Answer::FunctionError { error_type, body },
                log,
            }
        }
        // Both come before the runtime's first `/next`, so only another invocation's event
        // can have been taken; the environment must go all the same.
        Outcome::RestoreError { error_type, body } => {
            let ending = Ending::fatal("error", error_type.clone());
            let log = finish(&pool, lease, &id, Some(started), ending);
            restore_failed(error_type.as_deref(), &body, log)
        }
        Outcome::ExtensionFailed(fatal) => {
            extension_failed(&pool, lease, &id, Some(started), fatal)
        }
        Outcome::Refused(reason) => {
            let log = finish(
                &pool,
                lease,
                &id,
                Some(started),
                Ending::fatal("error", None),
            );
            Finished::error("InvalidParameterValueException", &reason, log)
        }
        Outcome::Stream {
            content_type,
            frames,
            done,
        } => {
            let (ended_tx, ended) = oneshot::channel();
            tokio::spawn(watch_stream(
                pool.clone(),
                lease,
                id,
                started,
                done,
                ended_tx,
            ));
            Finished {
                answer: Answer::Stream {
                    content_type,
                    frames,
                    ended,
                },
                log: String::new(),
            }
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
    done: oneshot::Receiver<StreamEnd>,
    ended: oneshot::Sender<Ended>,
) {
    let config = &pool.config;
    let deadline = started + config.timeout;
    let instance = lease.instance.clone();
    let (error, log) = tokio::select! {
        biased;
        end = done => {
            let (ending, error) = match end {
                Ok(StreamEnd { error_type: Some(t), error_body }) => {
                    let details = error_body.unwrap_or_default();
                    instance.log(&format!(
                        "RequestId: {id} Error: the streamed response ended with {t}: {details}"
                    ));
                    (Ending::function_error(t.clone()), Some((t, details)))
                }
                Ok(StreamEnd { error_type: None, .. }) => (Ending::ok(), None),
                Err(_) => {
                    let t = "Runtime.ExitError".to_string();
                    (Ending::fatal("error", Some(t.clone())), Some((t, String::new())))
                }
            };
            (error, finish(&pool, lease, &id, Some(started), ending))
        }
        exit = instance.exited() => {
            let finished = exit_error(&pool, lease, &id, Some(started), exit);
            let error = match finished.answer {
                Answer::FunctionError { error_type, body } => {
                    Some((error_type, String::from_utf8_lossy(&body).into_owned()))
                }
                _ => None,
            };
            (error, finished.log)
        }
        _ = tokio::time::sleep_until(deadline.into()) => {
            let message = format::timeout_message(SystemTime::now(), &id, config.timeout);
            instance.log(&message);
            let log = finish(&pool, lease, &id, Some(started), Ending::timeout(&pool));
            (Some(("Sandbox.Timedout".to_string(), message)), log)
        }
    };
    // Nobody waiting for the end (a buffered client) is fine.
    let _ = ended.send(Ended { error, log });
}

#[cfg(test)]
mod tests {
    use super::*;

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
