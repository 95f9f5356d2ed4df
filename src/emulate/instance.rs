//! One runtime instance: a launched runtime process and the Runtime API listener that only it
//! talks to. Giving each instance its own listener means a request id is only ever valid on the
//! listener of the instance that received it, like a real execution environment.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::extensions::{Extensions, Fatal, FunctionInfo, ShutdownReason};
use super::format;
use super::launcher::{self, Launcher};
use super::lifecycle;
pub(crate) use super::lifecycle::Exit;
use super::snapstart::Restore;
use super::telemetry::{self, Hub, HubConfig, Phase, Status};
use super::{EmulatorConfig, LogSink};
use crate::aws::LocalCredentials;
use crate::lambda::{MAX_PAYLOAD_BYTES, RESPONSE_LIMIT_IN_MESSAGE};

/// Header names of the Runtime API.
pub(crate) mod headers {
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    pub const FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
    pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
    pub const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
    pub const ERROR_BODY: &str = "lambda-runtime-function-error-body";
    pub const RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";
    pub const TENANT_ID: &str = "lambda-runtime-aws-tenant-id";
}

/// An invocation on its way to the runtime's `/next`.
pub(crate) struct Event {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub trace_id: String,
    /// Decoded client context JSON.
    pub client_context: Option<String>,
    /// Cognito identity JSON.
    pub cognito_identity: Option<String>,
    /// The tenant the invocation is for (`X-Amz-Tenant-Id`).
    pub tenant_id: Option<String>,
    /// Told when the runtime takes the event: the invocation's clock starts then.
    pub picked: oneshot::Sender<Instant>,
}

/// A stream of response frames from the runtime to the invoke client.
pub(crate) type FrameReceiver = mpsc::Receiver<Result<Frame<Bytes>, io::Error>>;

/// What the runtime answered.
pub(crate) enum Outcome {
    /// A buffered response within the size limit.
    Response(Bytes),
    /// A buffered response over the size limit.
    TooLarge { size: u64 },
    /// `/invocation/{id}/error`.
    Error {
        error_type: Option<String>,
        body: Bytes,
    },
    /// `/init/error`.
    InitError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// `/restore/error`: an after-restore hook of a SnapStart runtime failed.
    RestoreError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The environment cannot run as configured (a SnapStart runtime that was never
    /// snapshotted): the reason, in Lambda's words.
    Refused(String),
    /// An extension failed (crashed, reported an error, could not start): the environment
    /// is reset, and the invocation fails with the extension's error type.
    ExtensionFailed(Fatal),
    /// A streamed response, still arriving; `done` fires when the runtime finishes it.
    Stream {
        content_type: Option<HeaderValue>,
        frames: FrameReceiver,
        done: oneshot::Receiver<StreamEnd>,
    },
}

/// How a streamed response ended.
#[derive(Debug, Default)]
pub(crate) struct StreamEnd {
    /// The error type from the trailers, if the function failed midway.
    pub error_type: Option<String>,
    /// The decoded error body from the trailers.
    pub error_body: Option<String>,
}

/// The invocations an instance is handling, by request id: one at a time on demand, up to
/// the maximum concurrency on Managed Instances. An answered invocation keeps its entry,
/// without a sender, until it ends, so that a second answer is refused.
type InFlight = BTreeMap<String, Option<oneshot::Sender<Outcome>>>;

/// How many timed-out request ids an environment that goes on after a timeout remembers, to
/// answer a late response with `InvokeTimeout` rather than an unknown id.
const TIMED_OUT_REMEMBERED: usize = 256;

/// What the Runtime API handlers share.
struct InstanceState {
    timeout: Duration,
    launched: Instant,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    current: Mutex<InFlight>,
    timed_out: Mutex<VecDeque<String>>,
    first_next: OnceLock<Instant>,
    /// The SnapStart lifecycle, for a SnapStart environment.
    restore: Option<Restore>,
    /// The environment's extensions.
    extensions: Arc<Extensions>,
    /// Their Telemetry and Logs API subscriptions.
    telemetry: Arc<Hub>,
    /// What the runtime and the events are reported as.
    function_name: String,
    function_version: String,
    memory_mb: u32,
    initialization_type: &'static str,
    /// How long init may take.
    init_timeout: Duration,
    /// Set, with the reason, when the environment is to shut down.
    stop: watch::Sender<Option<ShutdownReason>>,
    /// The function's log sink (teed into the invocation's capture).
    logs: LogSink,
}

impl InstanceState {
    fn current_id_is(&self, id: &str) -> bool {
        self.current
            .lock()
            .ok()
            .is_some_and(|c| c.get(id).is_some_and(Option::is_some))
    }

    fn timed_out(&self, id: &str) -> bool {
        self.timed_out
            .lock()
            .is_ok_and(|t| t.iter().any(|t| t == id))
    }

    /// Records a telemetry event, built only when an extension may want it.
    fn emit(&self, event: impl FnOnce() -> telemetry::Event) {
        if self.telemetry.wants_events() {
            self.telemetry.emit(event());
        }
    }

    /// Whether the environment is shutting down.
    fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Hands an outcome made by `make` to every invocation in flight (an extension failure
    /// ends them all).
    fn deliver_all(&self, make: impl Fn() -> Outcome) {
        let senders: Vec<_> = self
            .current
            .lock()
            .map(|mut c| c.values_mut().filter_map(Option::take).collect())
            .unwrap_or_default();
        for sender in senders {
            let _ = sender.send(make());
        }
    }

    /// Hands `outcome` to the invocation `id` is waiting for (with `None`, to any one: an
    /// init or restore error ends the environment); false if there is none (an unknown id, an
    /// id answered already, or one that timed out).
    fn deliver(&self, id: Option<&str>, outcome: Outcome) -> bool {
        let sender = self.current.lock().ok().and_then(|mut c| match id {
            Some(id) => c.get_mut(id).and_then(Option::take),
            None => c.values_mut().find_map(Option::take),
        });
        sender.is_some_and(|s| s.send(outcome).is_ok())
    }
}

/// A launched runtime with its Runtime API listener.
pub(crate) struct Instance {
    state: Arc<InstanceState>,
    events: mpsc::UnboundedSender<Event>,
    exit: watch::Receiver<Option<Exit>>,
    server: JoinHandle<()>,
    /// The runtime's host pid, once it started.
    pid: Arc<OnceLock<u32>>,
    init_reported: std::sync::atomic::AtomicBool,
    /// The tenant the environment belongs to, under tenant isolation.
    tenant: Option<String>,
    /// How many invocations hold a lease on the environment.
    leases: AtomicUsize,
    /// When the AWS credentials the runtime was started with expire.
    credentials_expiry: Option<SystemTime>,
    generation: u64,
    /// The function's log sink, teed into `captured`.
    logs: LogSink,
    captured: Arc<Mutex<Option<String>>>,
}

/// How much of an invocation's log is kept for its tail: Lambda returns the last 4 KB, and
/// a little more is kept so that the cut falls on a line boundary where it can.
const CAPTURE_LIMIT: usize = 16 * 1024;

/// A sink that writes to `logs` and, while an invocation captures, appends to `captured`.
fn tee(logs: LogSink, captured: Arc<Mutex<Option<String>>>) -> LogSink {
    LogSink::new(move |line| {
        logs.line(line);
        if let Ok(mut guard) = captured.lock() {
            if let Some(buffer) = guard.as_mut() {
                buffer.push_str(line);
                buffer.push('\n');
                if buffer.len() > 2 * CAPTURE_LIMIT {
                    let cut = buffer.len() - CAPTURE_LIMIT;
                    let cut = (cut..buffer.len())
                        .find(|&i| buffer.is_char_boundary(i))
                        .unwrap_or(buffer.len());
                    buffer.drain(..cut);
                }
            }
        }
    })
}

impl Instance {
    /// Starts a Runtime API listener and an execution environment pointed at it: its
    /// external extensions, then its runtime (see [`lifecycle`]).
    pub async fn launch(
        config: &EmulatorConfig,
        launcher: Arc<dyn Launcher>,
        generation: u64,
        index: usize,
        credentials: Option<LocalCredentials>,
        tenant: Option<String>,
    ) -> io::Result<Instance> {
        let listener = TcpListener::bind((config.runtime_api_bind_ip, 0)).await?;
        let runtime_api = listener.local_addr()?;
        // Unbounded: an environment never has more events queued than the slots the pool
        // gave out, and dispatching must not wait for a runtime that is still initializing.
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(None);
        let captured = Arc::new(Mutex::new(None::<String>));
        let logs = tee(config.logs.clone(), captured.clone());
        let hub = telemetry_hub(config);
        let (runtime_logs, extension_logs) = (
            telemetry_sink(&logs, &hub, Source::Function),
            telemetry_sink(&logs, &hub, Source::Extension),
        );
        let extensions = extensions_for(config, launcher.as_ref());
        let state = Arc::new(InstanceState {
            timeout: config.timeout,
            launched: Instant::now(),
            events: tokio::sync::Mutex::new(events_rx),
            current: Mutex::new(InFlight::new()),
            timed_out: Mutex::new(VecDeque::new()),
            first_next: OnceLock::new(),
            restore: Restore::for_model(config.model),
            extensions: extensions.clone(),
            telemetry: hub.clone(),
            function_name: config.function_name.clone(),
            function_version: config.function_version.clone(),
            memory_mb: config.memory_mb,
            initialization_type: config.model.initialization_type(),
            init_timeout: config.init_timeout,
            stop,
            logs: logs.clone(),
        });
        let server = tokio::spawn({
            let router = router(state.clone())
                .merge(extensions.clone().router())
                .merge(subscriptions(extensions.clone(), hub.clone()));
            async move {
                // The listener only fails when the instance is torn down; nothing to report.
                let _ = axum::serve(listener, router).await;
            }
        });
        let log_stream = format::log_stream_name(SystemTime::now(), &config.function_version);
        let env = format::runtime_env(
            config,
            &runtime_api.to_string(),
            &log_stream,
            credentials.as_ref(),
        );
        let extension_env = format::extension_env(&env);
        let pid = Arc::new(OnceLock::new());
        // Without external extensions the runtime starts now, so that a program that cannot
        // start fails the launch (Lambda's Runtime.InvalidEntrypoint).
        let started = if extensions.external().is_empty() {
            match launcher.launch(&env, &runtime_logs) {
                Ok(process) => Some(process),
                Err(e) => {
                    server.abort();
                    return Err(e);
                }
            }
        } else {
            None
        };
        let (exit_tx, exit_rx) = watch::channel(None);
        let failed_state = Arc::downgrade(&state);
        lifecycle::spawn(
            launcher,
            started,
            env,
            extension_env,
            lifecycle::Handles {
                extensions,
                stop: stop_rx,
                exit: exit_tx,
                pid: pid.clone(),
                logs: logs.clone(),
                runtime_logs,
                extension_logs,
                telemetry: hub,
                on_failure: Box::new(move |fatal| {
                    if let Some(state) = failed_state.upgrade() {
                        state.deliver_all(|| Outcome::ExtensionFailed(fatal.clone()));
                    }
                }),
                init_timeout: config.init_timeout,
            },
        );
        tokio::spawn(report_idle_exit(
            exit_rx.clone(),
            state.clone(),
            logs.clone(),
            index,
        ));
        Ok(Instance {
            state,
            events: events_tx,
            exit: exit_rx,
            server,
            pid,
            init_reported: false.into(),
            tenant,
            leases: AtomicUsize::new(0),
            credentials_expiry: credentials.and_then(|c| c.expiry),
            generation,
            logs,
            captured,
        })
    }

    /// The launcher generation the runtime was started from (see `Pool::replace`).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Logs a line of the emulator's about this runtime's invocation (`START`, `END`,
    /// `REPORT`, errors), captured with the runtime's own output.
    pub fn log(&self, line: &str) {
        self.logs.line(line);
    }

    /// Starts capturing log lines, for the invocation's log tail.
    pub fn capture_logs(&self) {
        if let Ok(mut c) = self.captured.lock() {
            *c = Some(String::new());
        }
    }

    /// The lines captured since [`Instance::capture_logs`], and stops capturing.
    pub fn take_logs(&self) -> String {
        self.captured
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .unwrap_or_default()
    }

    /// Whether the runtime's AWS credentials (if it has any that expire) are still valid
    /// `margin` from now.
    pub fn credentials_valid_for(&self, margin: Duration) -> bool {
        self.credentials_expiry
            .is_none_or(|expiry| expiry > SystemTime::now() + margin)
    }

    /// Whether the runtime is still running and not being stopped.
    pub fn alive(&self) -> bool {
        self.exit.borrow().is_none() && !self.state.stopping()
    }

    /// Stops the environment: its shutdown phase runs, with `reason`, and
    /// [`Instance::exited`] reports [`Exit::Killed`] once it is over.
    pub fn kill(&self, reason: ShutdownReason) {
        self.state.stop.send_if_modified(|stop| {
            if stop.is_some() {
                return false;
            }
            *stop = Some(reason);
            true
        });
        if let Ok(mut c) = self.state.current.lock() {
            c.clear();
        }
    }

    /// Whether some extension takes `INVOKE` events: an invocation then ends only when each
    /// has called `next` again.
    pub fn extensions_take_invokes(&self) -> bool {
        self.state.extensions.any_invoke_subscribers()
    }

    /// Waits until every extension subscribed to `INVOKE` is done with the invocation, or
    /// `deadline`; false when the deadline passed first.
    pub async fn extensions_done(&self, deadline: Instant) -> bool {
        self.state.extensions.wait_invoke_done(deadline).await
    }

    /// Records the telemetry of an invocation's end: `platform.runtimeDone` (not on Managed
    /// Instances, which the hub knows), `platform.report` and the Logs API's `platform.end`.
    pub fn report_telemetry(&self, report: &super::format::Report) {
        let status = match report.status {
            None => Status::Success,
            Some("timeout") => Status::Timeout,
            Some(_)
                if report
                    .error_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("Sandbox.") || t == "Runtime.ExitError") =>
            {
                Status::Failure
            }
            Some(_) => Status::Error,
        };
        let request_id = report.request_id.clone();
        self.state.emit(|| telemetry::Event::RuntimeDone {
            request_id: request_id.clone(),
            status,
            error_type: report.error_type.clone(),
            duration: report.duration,
            produced_bytes: None,
            response_latency: None,
            response_duration: None,
            tracing: None,
        });
        self.state.emit(|| telemetry::Event::Report {
            request_id: request_id.clone(),
            status,
            error_type: report.error_type.clone(),
            duration: report.duration,
            billed_ms: report.billed_ms(),
            memory_mb: report.memory_mb,
            max_memory_mb: report.max_memory_mb.unwrap_or(0),
            init_duration: report.init_duration,
            restore_duration: report.restore_duration,
            extension_overhead: None,
            response_latency: None,
            response_duration: None,
            tracing: None,
        });
        self.state.emit(|| telemetry::Event::End { request_id });
    }

    /// Records the telemetry of an init that failed: `platform.initRuntimeDone` and
    /// `platform.initReport` with the status and error type.
    pub fn init_failed_telemetry(&self, timed_out: bool, error_type: Option<&str>) {
        let status = if timed_out {
            Status::Timeout
        } else {
            Status::Error
        };
        let initialization_type = self.state.initialization_type;
        self.state.emit(|| telemetry::Event::InitRuntimeDone {
            initialization_type,
            phase: Phase::Init,
            status,
            error_type: error_type.map(str::to_string),
        });
        self.state.emit(|| telemetry::Event::InitReport {
            initialization_type,
            phase: Phase::Init,
            status,
            error_type: error_type.map(str::to_string),
            duration: self.since_launch(),
        });
    }

    /// Records the Logs API's `platform.fault`: the runtime failed an invocation.
    pub fn fault_telemetry(&self, message: &str) {
        self.state.emit(|| telemetry::Event::Fault {
            message: message.to_string(),
        });
    }

    /// The failure of an extension that ended the environment, if one did.
    pub fn extension_failure(&self) -> Option<Fatal> {
        self.state.extensions.fatal()
    }

    /// The lines captured so far, without ending the capture.
    pub fn logs_so_far(&self) -> String {
        self.captured
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_default()
    }

    /// The tenant the environment belongs to, under tenant isolation.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Counts a lease taken by the pool.
    pub fn leased(&self) {
        self.leases.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lease given back; returns how many are still held.
    pub fn unleased(&self) -> usize {
        self.leases
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1)
    }

    /// Whether no invocation holds a lease on the environment.
    pub fn unleased_now(&self) -> bool {
        self.leases.load(Ordering::Relaxed) == 0
    }

    /// Waits until the runtime has exited.
    pub async fn exited(&self) -> Exit {
        let mut exit = self.exit.clone();
        let exit = exit.wait_for(Option::is_some).await.map(|e| e.clone());
        match exit {
            Ok(e) => e.unwrap_or(Exit::Killed),
            // The monitor always sends before it ends; if it is gone, so is the process.
            Err(_) => Exit::Killed,
        }
    }

    /// Makes `request_id` one of the instance's invocations, answered through `outcome`.
    pub fn begin(&self, request_id: &str, outcome: oneshot::Sender<Outcome>) {
        if let Ok(mut c) = self.state.current.lock() {
            c.insert(request_id.to_string(), Some(outcome));
        }
    }

    /// Ends an invocation: later answers for it get "invalid request id".
    pub fn end(&self, request_id: &str) {
        if let Ok(mut c) = self.state.current.lock() {
            c.remove(request_id);
        }
    }

    /// Ends an invocation that timed out while the environment goes on (Managed Instances):
    /// a late answer for it gets `InvokeTimeout`, as from Lambda.
    pub fn end_timed_out(&self, request_id: &str) {
        self.end(request_id);
        if let Ok(mut t) = self.state.timed_out.lock() {
            if t.len() == TIMED_OUT_REMEMBERED {
                t.pop_front();
            }
            t.push_back(request_id.to_string());
        }
    }

    /// Queues an event for one of the runtime's `/next` calls. False if the instance is gone.
    pub fn dispatch(&self, event: Event) -> bool {
        self.events.send(event).is_ok()
    }

    /// The init duration (launch until the first `/next`), the first time it is asked for;
    /// never for SnapStart, whose init Lambda runs when it publishes a version.
    pub fn take_init_duration(&self) -> Option<Duration> {
        if self.state.restore.is_some() {
            return None;
        }
        let first = self.state.first_next.get()?;
        if self.init_reported.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(first.saturating_duration_since(self.state.launched))
    }

    /// The restore duration of a SnapStart environment, the first time it is asked for.
    pub fn take_restore_duration(&self) -> Option<Duration> {
        self.state.restore.as_ref().and_then(Restore::take_duration)
    }

    /// Whether the runtime has asked for its first event (its init is over).
    pub fn initialized(&self) -> bool {
        self.state.first_next.get().is_some()
    }

    /// Time since launch, for init reports of runtimes that never asked for an event.
    pub fn since_launch(&self) -> Duration {
        self.state.launched.elapsed()
    }

    /// Peak memory of the runtime's processes, in MB, when measurable.
    pub fn max_memory_mb(&self) -> Option<u64> {
        self.pid.get().copied().and_then(launcher::max_memory_mb)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill(ShutdownReason::Spindown);
        // The Runtime API must outlive the shutdown phase, since an extension told SHUTDOWN
        // calls it again: the server stops when the lifecycle says the environment is gone.
        let mut exit = self.exit.clone();
        let server = self.server.abort_handle();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            server.abort();
            return;
        };
        runtime.spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(3), exit.wait_for(Option::is_some)).await;
            server.abort();
        });
    }
}

/// The Extensions API of a new environment, which starts `launcher`'s external extensions.
fn extensions_for(config: &EmulatorConfig, launcher: &dyn Launcher) -> Arc<Extensions> {
    Arc::new(Extensions::new(
        FunctionInfo {
            name: config.function_name.clone(),
            version: config.function_version.clone(),
            handler: config.handler.clone(),
            account_id: config.account_id.clone(),
        },
        launcher.extensions(),
        config.model.is_multi_concurrent(),
    ))
}

/// The telemetry of a new environment, which starts with `platform.initStart`.
fn telemetry_hub(config: &EmulatorConfig) -> Arc<Hub> {
    let hub = Hub::new(HubConfig {
        log_format: config.log_format,
        logs: config.logs.clone(),
        managed_instances: config.model.is_multi_concurrent(),
        ..HubConfig::default()
    });
    hub.emit(telemetry::Event::InitStart {
        initialization_type: config.model.initialization_type(),
        phase: Phase::Init,
        function_name: config.function_name.clone(),
        function_version: config.function_version.clone(),
        instance_max_memory: config.memory_mb,
    });
    hub
}

/// Whose output a log sink carries, for telemetry.
#[derive(Clone, Copy)]
enum Source {
    Function,
    Extension,
}

/// A sink that writes to `logs` and records each line as `function` or `extension`
/// telemetry.
fn telemetry_sink(logs: &LogSink, hub: &Arc<Hub>, source: Source) -> LogSink {
    let (logs, hub) = (logs.clone(), hub.clone());
    LogSink::new(move |line| {
        logs.line(line);
        if hub.wants_events() {
            let line = line.to_string();
            hub.emit(match source {
                Source::Function => telemetry::Event::FunctionLine { line },
                Source::Extension => telemetry::Event::ExtensionLine { line },
            });
        }
    })
}

/// The Telemetry API (`PUT /2022-07-01/telemetry`) and Logs API (`PUT /2020-08-15/logs`):
/// a registered extension subscribes.
fn subscriptions(extensions: Arc<Extensions>, hub: Arc<Hub>) -> Router {
    async fn subscribe(
        extensions: &Extensions,
        hub: &Hub,
        api: telemetry::Api,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let (_, name) = match extensions.identify(headers) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let answer = hub.subscribe(api, &name, body);
        (answer.status, Json(answer.body)).into_response()
    }
    let (e1, h1, e2, h2) = (extensions.clone(), hub.clone(), extensions, hub);
    Router::new()
        .route(
            "/2022-07-01/telemetry",
            axum::routing::put(move |headers: HeaderMap, body: Bytes| async move {
                subscribe(&e1, &h1, telemetry::Api::Telemetry, &headers, &body).await
            }),
        )
        .route(
            "/2020-08-15/logs",
            axum::routing::put(move |headers: HeaderMap, body: Bytes| async move {
                subscribe(&e2, &h2, telemetry::Api::Logs, &headers, &body).await
            }),
        )
}

/// Says so when a runtime exits on its own between invocations (the next one starts a new
/// environment).
async fn report_idle_exit(
    mut exit: watch::Receiver<Option<Exit>>,
    state: Arc<InstanceState>,
    logs: LogSink,
    index: usize,
) {
    let Ok(exit) = exit.wait_for(Option::is_some).await.map(|e| e.clone()) else {
        return;
    };
    let idle = state.current.lock().map(|c| c.is_empty()).unwrap_or(false);
    let how = match exit {
        Some(Exit::Status(s)) => format::exit_description(&s),
        Some(Exit::Lost(e) | Exit::NotStarted(e)) => e,
        Some(Exit::Killed) | None => return,
    };
    if idle && !state.stopping() {
        logs.line(&format!(
            "[emulator] runtime instance {index} exited while idle ({how}); \
             the next invocation starts a new one"
        ));
    }
}

fn router(state: Arc<InstanceState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2018-06-01/runtime/restore/next", get(restore_next))
        .route("/2018-06-01/runtime/restore/error", post(restore_error))
        .fallback(|| async {
            runtime_api_error(
                StatusCode::NOT_FOUND,
                "InvalidRequest",
                "not a Runtime API path",
            )
        })
        // Size limits are the emulator's business (Lambda's 6 MB), not axum's 2 MB default.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// An error answer of the Runtime API itself (not of the function).
fn runtime_api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, Json(format::error_body(error_type, message))).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

/// The answer to a response or error for `id` when it is not an invocation in progress: 410
/// `InvokeTimeout` for one that timed out in an environment that went on (as Lambda answers
/// on Managed Instances), else 400 `InvalidRequestID`.
fn not_in_progress(state: &InstanceState, id: &str) -> Response {
    if state.timed_out(id) {
        return runtime_api_error(StatusCode::GONE, "InvokeTimeout", "Invoke timeout");
    }
    runtime_api_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("Invalid request ID: {id} is not an invocation in progress"),
    )
}

/// The headers `/next` answers with, for one event.
pub(crate) fn next_headers(event: &Event, deadline_ms: u128) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (headers::REQUEST_ID, event.request_id.clone()),
        (headers::DEADLINE_MS, deadline_ms.to_string()),
        (headers::FUNCTION_ARN, event.invoked_arn.clone()),
        (headers::TRACE_ID, event.trace_id.clone()),
    ];
    if let Some(c) = &event.client_context {
        out.push((headers::CLIENT_CONTEXT, c.clone()));
    }
    if let Some(c) = &event.cognito_identity {
        out.push((headers::COGNITO_IDENTITY, c.clone()));
    }
    if let Some(t) = &event.tenant_id {
        out.push((headers::TENANT_ID, t.clone()));
    }
    out
}

async fn next(State(state): State<Arc<InstanceState>>) -> Response {
    let mut first = false;
    state.first_next.get_or_init(|| {
        first = true;
        Instant::now()
    });
    if first {
        end_of_init(&state).await;
    }
    if let (true, Some(restore)) = (first, &state.restore) {
        if let Err(reason) = restore.first_next(state.launched, &state.logs) {
            state.deliver(None, Outcome::Refused(reason.clone()));
            return runtime_api_error(
                StatusCode::FORBIDDEN,
                "Runtime.SnapStartNotAllowed",
                &reason,
            );
        }
        if let Some(duration) = restore.duration() {
            state.emit(|| telemetry::Event::RestoreRuntimeDone {
                status: Status::Success,
                error_type: None,
            });
            state.emit(|| telemetry::Event::RestoreReport {
                status: Status::Success,
                error_type: None,
                duration,
            });
        }
    }
    let mut events = state.events.lock().await;
    loop {
        let Some(event) = events.recv().await else {
            return runtime_api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Runtime.Shutdown",
                "the emulator is shutting this runtime down",
            );
        };
        let deadline = SystemTime::now() + state.timeout;
        let headers = next_headers(&event, crate::time::epoch_ms(deadline));
        // If the invocation was abandoned before the runtime took it, wait for the next one.
        if event.picked.send(Instant::now()).is_err() {
            continue;
        }
        let trace = Some(event.trace_id.as_str()).filter(|t| !t.is_empty());
        state
            .extensions
            .dispatch_invoke(&event.request_id, deadline, &event.invoked_arn, trace);
        state.emit(|| telemetry::Event::Start {
            request_id: event.request_id.clone(),
            version: state.function_version.clone(),
            tracing: trace.map(str::to_string),
            tenant_id: event.tenant_id.clone(),
        });
        let mut response = Response::new(Body::from(event.payload));
        let map = response.headers_mut();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            // Values were validated when the invocation was accepted; skip any that are not.
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                map.insert(HeaderName::from_static(name), v);
            }
        }
        return response;
    }
}

/// The runtime's first `/next`: registration closes, and init ends once every registered
/// extension has called `next` too (or fails, which the lifecycle reports).
async fn end_of_init(state: &InstanceState) {
    let extensions = &state.extensions;
    extensions.close_registration();
    let initialization_type = state.initialization_type;
    state.emit(|| telemetry::Event::InitRuntimeDone {
        initialization_type,
        phase: Phase::Init,
        status: Status::Success,
        error_type: None,
    });
    if extensions.registered().0 {
        extensions
            .wait_ready(state.launched + state.init_timeout)
            .await;
        for line in extensions.init_lines() {
            state.logs.line(&line);
        }
        for (name, agent_state, events, error_type) in extensions.summaries() {
            state.emit(|| telemetry::Event::Extension {
                name,
                state: agent_state.to_string(),
                events: events.iter().map(|e| e.to_string()).collect(),
                error_type,
            });
        }
    }
    state.emit(|| telemetry::Event::InitReport {
        initialization_type,
        phase: Phase::Init,
        status: Status::Success,
        error_type: None,
        duration: state.launched.elapsed(),
    });
    // Subscriptions are taken during init only, as on Lambda.
    state.telemetry.close_subscriptions();
}

/// A body read with a size limit; what is over the limit is drained and counted, so that the
/// connection stays usable and the error can say how large the body was.
pub(crate) enum Collected {
    Complete(Bytes),
    TooLarge(u64),
}

pub(crate) async fn collect_limited(mut body: Body, limit: usize) -> Result<Collected, String> {
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= limit as u64 {
                buf.extend_from_slice(&data);
            }
        }
    }
    if total > limit as u64 {
        Ok(Collected::TooLarge(total))
    } else {
        Ok(Collected::Complete(buf.into()))
    }
}

fn error_type_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(headers::ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn response(
    State(state): State<Arc<InstanceState>>,
    Path(id): Path<String>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    if !state.current_id_is(&id) {
        return not_in_progress(&state, &id);
    }
    let streaming = request_headers
        .get(headers::RESPONSE_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        let content_type = request_headers.get(CONTENT_TYPE).cloned();
        return stream(state, &id, content_type, body).await;
    }
    match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(bytes)) => {
            if state.deliver(Some(&id), Outcome::Response(bytes)) {
                accepted()
            } else {
                not_in_progress(&state, &id)
            }
        }
        Ok(Collected::TooLarge(size)) => {
            state.deliver(Some(&id), Outcome::TooLarge { size });
            runtime_api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "Exceeded maximum allowed payload size ({RESPONSE_LIMIT_IN_MESSAGE} bytes)."
                ),
            )
        }
        Err(e) => runtime_api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &e),
    }
}

/// Forwards a streamed response frame by frame, until the runtime ends it or the instance is
/// killed (a timeout).
async fn stream(
    state: Arc<InstanceState>,
    id: &str,
    content_type: Option<HeaderValue>,
    mut body: Body,
) -> Response {
    let (tx, frames) = mpsc::channel(16);
    let (done_tx, done) = oneshot::channel();
    let outcome = Outcome::Stream {
        content_type,
        frames,
        done,
    };
    if !state.deliver(Some(id), outcome) {
        return not_in_progress(&state, id);
    }
    let mut stop = state.stop.subscribe();
    let mut end = StreamEnd::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = stop.wait_for(Option::is_some) => {
                // Cut the client's stream with an error rather than a clean end, so that a
                // truncated response cannot pass for a complete one.
                let _ = tx.try_send(Err(io::Error::other("the runtime was stopped (timeout)")));
                break;
            }
        };
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    end.error_type = error_type_header(trailers);
                    end.error_body = trailers
                        .get(headers::ERROR_BODY)
                        .and_then(|v| {
                            base64::engine::general_purpose::STANDARD
                                .decode(v.as_bytes())
                                .ok()
                        })
                        .map(|b| String::from_utf8_lossy(&b).into_owned());
                }
                // A client that went away is no reason to stop reading the runtime's body.
                let _ = tx.send(Ok(frame)).await;
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                end.error_type = Some("Runtime.StreamError".into());
                end.error_body = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let _ = done_tx.send(end);
    accepted()
}

async fn error(
    State(state): State<Arc<InstanceState>>,
    Path(id): Path<String>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    if !state.current_id_is(&id) {
        return not_in_progress(&state, &id);
    }
    let body = match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(b)) => b,
        Ok(Collected::TooLarge(_)) => Bytes::new(),
        Err(e) => return runtime_api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &e),
    };
    let outcome = Outcome::Error {
        error_type: error_type_header(&request_headers),
        body,
    };
    if state.deliver(Some(&id), outcome) {
        accepted()
    } else {
        not_in_progress(&state, &id)
    }
}

async fn init_error(
    State(state): State<Arc<InstanceState>>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(b)) => b,
        Ok(Collected::TooLarge(_)) => Bytes::new(),
        Err(e) => return runtime_api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &e),
    };
    let outcome = Outcome::InitError {
        error_type: error_type_header(&request_headers),
        body,
    };
    // The invocation that caused the cold start gets the error; the runtime is replaced.
    state.deliver(None, outcome);
    accepted()
}

/// `GET /restore/next`: the end of a SnapStart runtime's init, answered as soon as the
/// snapshot is "restored" (at once, locally).
async fn restore_next(State(state): State<Arc<InstanceState>>) -> Response {
    let Some(restore) = &state.restore else {
        return runtime_api_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "restore/next is only valid in a SnapStart environment (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start)",
        );
    };
    if state.first_next.get().is_some() {
        return runtime_api_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "restore/next is only valid before the runtime's first /next",
        );
    }
    match restore.restore_next(state.launched, &state.logs) {
        Ok(()) => {
            state.emit(|| telemetry::Event::RestoreStart {
                function_name: state.function_name.clone(),
                function_version: state.function_version.clone(),
                instance_max_memory: state.memory_mb,
            });
            StatusCode::OK.into_response()
        }
        Err(reason) => runtime_api_error(StatusCode::FORBIDDEN, "InvalidStateTransition", &reason),
    }
}

/// `POST /restore/error`: an after-restore hook failed; the invocation that caused the
/// restore gets Lambda's `SnapStartException` and the environment is replaced.
async fn restore_error(
    State(state): State<Arc<InstanceState>>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match collect_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(Collected::Complete(b)) => b,
        Ok(Collected::TooLarge(_)) => Bytes::new(),
        Err(e) => return runtime_api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &e),
    };
    let error_type = error_type_header(&request_headers);
    let restoring = state.restore.as_ref().is_some_and(|restore| {
        restore.failed(
            error_type.as_deref().unwrap_or("Runtime.Unknown"),
            &state.logs,
        )
    });
    if restoring {
        state.emit(|| telemetry::Event::RestoreRuntimeDone {
            status: Status::Error,
            error_type: error_type.clone(),
        });
        state.emit(|| telemetry::Event::RestoreReport {
            status: Status::Error,
            error_type: error_type.clone(),
            duration: state.launched.elapsed(),
        });
    }
    if !restoring {
        return runtime_api_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "restore/error is only valid while a SnapStart environment restores (after restore/next, before /next)",
        );
    }
    state.deliver(None, Outcome::RestoreError { error_type, body });
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_headers_include_optional_ones_only_when_present() {
        let (picked, _) = oneshot::channel();
        let mut event = Event {
            request_id: "id".into(),
            payload: Bytes::new(),
            invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            trace_id: "Root=1-0-0".into(),
            client_context: None,
            cognito_identity: None,
            tenant_id: None,
            picked,
        };
        let names =
            |h: Vec<(&'static str, String)>| h.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(next_headers(&event, 42)),
            [
                headers::REQUEST_ID,
                headers::DEADLINE_MS,
                headers::FUNCTION_ARN,
                headers::TRACE_ID
            ]
        );
        event.client_context = Some("{}".into());
        event.cognito_identity = Some("{}".into());
        let h = next_headers(&event, 42);
        assert_eq!(h[1], (headers::DEADLINE_MS, "42".to_string()));
        assert_eq!(h.len(), 6);
        // Every name must be a valid lowercase header name for HeaderName::from_static.
        for (name, _) in h {
            HeaderName::from_static(name);
        }
    }
}
