//! Lambda's Extensions API (`/2020-01-01/extension/...`) for one execution environment: the
//! extensions that register with it, the events they are sent, and the barriers the
//! environment's lifecycle waits on.
//!
//! An extension is *external* when its name is the file name of one of the executables the
//! environment started from `/opt/extensions/` (they register before the runtime starts), and
//! *internal* otherwise (it runs inside the runtime's process, e.g. `lambda_runtime`'s
//! graceful-shutdown helper, and must register before the runtime's first `/next`). This is how
//! Lambda (and AWS's emulator) tell them apart: by name.
//!
//! The lifecycle, as Lambda runs it:
//! - init ends when every registered extension and the runtime have called `next`;
//! - an invocation's `INVOKE` event goes to every extension subscribed to it at the same time
//!   as to the runtime, and the environment takes its next invocation only after each of them
//!   has called `next` again (the client has its answer as soon as the runtime posts it);
//! - at shutdown, external extensions subscribed to `SHUTDOWN` get it, with the reason
//!   (`spindown`, `timeout` or `failure`) and the deadline; a `next` after it never returns.
//!
//! Errors are Lambda's: every client error is a 403 with `errorType` and `errorMessage`, and an
//! extension that fails (`init/error`, `exit/error`, a crash, a launch failure) fails the
//! environment with `Extension.InitError`, `Extension.ExitError`, `Extension.Crash` or
//! `Extension.LaunchError`, the first one winning.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::format;

/// Lambda's limit on the extensions of one function, internal and external together.
pub(crate) const MAX_EXTENSIONS: usize = 10;

/// Header names of the Extensions API.
mod headers {
    pub const NAME: &str = "lambda-extension-name";
    pub const IDENTIFIER: &str = "lambda-extension-identifier";
    pub const ACCEPT_FEATURE: &str = "lambda-extension-accept-feature";
    pub const ERROR_TYPE: &str = "lambda-extension-function-error-type";
    pub const EVENT_IDENTIFIER: &str = "lambda-extension-event-identifier";
}

/// What the register answer tells an extension about the function.
#[derive(Debug, Clone)]
pub(crate) struct FunctionInfo {
    pub name: String,
    pub version: String,
    pub handler: String,
    pub account_id: String,
}

/// Where an extension is in its lifecycle (Lambda's state names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentState {
    /// Registered, has not called `next` yet.
    Registered,
    /// Waiting in `next` (or about to call it) with nothing to do.
    Ready,
    /// Handling an event it took from `next`.
    Running,
    /// Called `init/error`.
    InitError,
    /// Called `exit/error`.
    ExitError,
}

impl AgentState {
    fn name(self) -> &'static str {
        match self {
            AgentState::Registered => "Registered",
            AgentState::Ready => "Ready",
            AgentState::Running => "Running",
            AgentState::InitError => "InitError",
            AgentState::ExitError => "ExitError",
        }
    }
}

/// Why the environment shuts down, as `shutdownReason` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownReason {
    /// A normal stop: the emulator stops, or the environment is replaced or retired.
    Spindown,
    /// An invocation timed out.
    Timeout,
    /// The runtime or an extension failed.
    Failure,
}

impl ShutdownReason {
    /// The value Lambda sends (lower case, as its platform code writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// A failure of an extension that ends the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fatal {
    /// `Extension.InitError`, `Extension.ExitError`, `Extension.Crash` or
    /// `Extension.LaunchError`.
    pub error_type: &'static str,
    /// What happened (`exit status 1`, `fork/exec ...: permission denied`, the extension's own
    /// error type).
    pub message: String,
}

/// One registered extension.
#[derive(Debug)]
struct Agent {
    id: String,
    name: String,
    external: bool,
    invoke: bool,
    shutdown: bool,
    state: AgentState,
    /// Events waiting for its next `next`.
    queue: VecDeque<Value>,
    /// The error type it reported with `init/error` or `exit/error`.
    error_type: Option<String>,
}

impl Agent {
    fn events(&self) -> Vec<&'static str> {
        let mut events = Vec::new();
        if self.invoke {
            events.push("INVOKE");
        }
        if self.shutdown {
            events.push("SHUTDOWN");
        }
        events
    }

    /// Idle: has called `next` since its last event, and nothing is queued for it.
    fn idle(&self) -> bool {
        self.state == AgentState::Ready && self.queue.is_empty()
    }
}

#[derive(Debug, Default)]
struct Registry {
    agents: Vec<Agent>,
    /// Registration closes at the runtime's first `/next`.
    closed: bool,
    fatal: Option<Fatal>,
}

/// The extensions of one execution environment.
#[derive(Debug)]
pub(crate) struct Extensions {
    function: FunctionInfo,
    /// The names of the external extensions the environment started, in start order.
    external: Vec<String>,
    /// Whether the environment serves several requests at once (Managed Instances), where
    /// Lambda sends extensions no `INVOKE` events.
    multi_concurrent: bool,
    registry: Mutex<Registry>,
    changed: Notify,
}

/// A 403 of the Extensions API, in Lambda's shape.
fn forbidden(error_type: &str, message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(format::error_body(error_type, message)),
    )
        .into_response()
}

impl Extensions {
    /// The extensions of an environment that started the external ones named `external`.
    pub fn new(
        function: FunctionInfo,
        external: Vec<String>,
        multi_concurrent: bool,
    ) -> Extensions {
        Extensions {
            function,
            external,
            multi_concurrent,
            registry: Mutex::new(Registry::default()),
            changed: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> Option<T> {
        let result = self.registry.lock().ok().map(|mut r| f(&mut r));
        self.changed.notify_waiters();
        result
    }

    fn read<T>(&self, f: impl FnOnce(&Registry) -> T) -> Option<T> {
        self.registry.lock().ok().map(|r| f(&r))
    }

    /// Waits until `done` holds or `deadline` passes; true if it holds.
    async fn wait_until(&self, deadline: Instant, done: impl Fn(&Registry) -> bool) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.read(&done).unwrap_or(false) {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), changed)
                .await
                .is_err()
            {
                return self.read(&done).unwrap_or(false);
            }
        }
    }

    /// The names of the external extensions started.
    pub fn external(&self) -> &[String] {
        &self.external
    }

    /// Whether any extension registered, and whether an external one did: the shutdown
    /// phase's budget depends on both.
    pub fn registered(&self) -> (bool, bool) {
        self.read(|r| (!r.agents.is_empty(), r.agents.iter().any(|a| a.external)))
            .unwrap_or((false, false))
    }

    /// Whether some extension takes `INVOKE` events, so that an invocation ends only when they
    /// are done with it.
    pub fn any_invoke_subscribers(&self) -> bool {
        self.read(|r| r.agents.iter().any(|a| a.invoke))
            .unwrap_or(false)
    }

    /// The first fatal failure of an extension, if any.
    pub fn fatal(&self) -> Option<Fatal> {
        self.read(|r| r.fatal.clone()).flatten()
    }

    /// Records a failure that ends the environment, unless an earlier one did.
    pub fn fail(&self, fatal: Fatal) {
        self.with(|r| {
            if r.fatal.is_none() {
                r.fatal = Some(fatal);
            }
        });
    }

    /// Waits until a failure is recorded.
    pub async fn failed(&self) -> Fatal {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(fatal) = self.fatal() {
                return fatal;
            }
            changed.await;
        }
    }

    /// Waits until every external extension started has registered (or failed); false when
    /// `deadline` passed first.
    pub async fn wait_external_registered(&self, deadline: Instant) -> bool {
        let external = self.external.clone();
        self.wait_until(deadline, move |r| {
            r.fatal.is_some()
                || external
                    .iter()
                    .all(|name| r.agents.iter().any(|a| a.external && &a.name == name))
        })
        .await
    }

    /// The runtime's first `/next`: registration closes.
    pub fn close_registration(&self) {
        self.with(|r| r.closed = true);
    }

    /// Waits until every registered extension has called `next` once (the end of init) or one
    /// failed; false when `deadline` passed first.
    pub async fn wait_ready(&self, deadline: Instant) -> bool {
        self.wait_until(deadline, |r| {
            r.fatal.is_some() || r.agents.iter().all(|a| a.state != AgentState::Registered)
        })
        .await
    }

    /// The `EXTENSION` lines Lambda logs at the end of init, one per extension.
    pub fn init_lines(&self) -> Vec<String> {
        self.read(|r| {
            r.agents
                .iter()
                .map(|a| {
                    format!(
                        "EXTENSION\tName: {}\tState: {}\tEvents: [{}]",
                        a.name,
                        a.state.name(),
                        a.events().join(",")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// Each extension's name, state, events and reported error type, for `platform.extension`
    /// telemetry.
    pub fn summaries(&self) -> Vec<(String, &'static str, Vec<&'static str>, Option<String>)> {
        self.read(|r| {
            r.agents
                .iter()
                .map(|a| {
                    (
                        a.name.clone(),
                        a.state.name(),
                        a.events(),
                        a.error_type.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// Sends an invocation's `INVOKE` event to every extension subscribed to it; returns how
    /// many there are.
    pub fn dispatch_invoke(
        &self,
        request_id: &str,
        deadline: SystemTime,
        invoked_arn: &str,
        trace_id: Option<&str>,
    ) -> usize {
        let mut event = json!({
            "eventType": "INVOKE",
            "deadlineMs": crate::time::epoch_ms(deadline) as u64,
            "requestId": request_id,
            "invokedFunctionArn": invoked_arn,
        });
        if let Some(trace) = trace_id {
            event["tracing"] = json!({ "type": "X-Amzn-Trace-Id", "value": trace });
        }
        self.with(|r| {
            let mut sent = 0;
            for agent in r.agents.iter_mut().filter(|a| a.invoke) {
                agent.queue.push_back(event.clone());
                sent += 1;
            }
            sent
        })
        .unwrap_or(0)
    }

    /// Waits until every extension subscribed to `INVOKE` is done with the invocation (has
    /// called `next` again), or one failed; false when `deadline` passed first.
    pub async fn wait_invoke_done(&self, deadline: Instant) -> bool {
        self.wait_until(deadline, |r| {
            r.fatal.is_some() || r.agents.iter().filter(|a| a.invoke).all(Agent::idle)
        })
        .await
    }

    /// Sends `SHUTDOWN` to every external extension subscribed to it; returns their names.
    pub fn dispatch_shutdown(&self, reason: ShutdownReason, deadline: SystemTime) -> Vec<String> {
        let event = json!({
            "eventType": "SHUTDOWN",
            "deadlineMs": crate::time::epoch_ms(deadline) as u64,
            "shutdownReason": reason.as_str(),
        });
        self.with(|r| {
            r.agents
                .iter_mut()
                .filter(|a| a.external && a.shutdown)
                .map(|a| {
                    a.queue.push_back(event.clone());
                    a.name.clone()
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The routes of the Extensions API.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(next))
            .route("/2020-01-01/extension/init/error", post(init_error))
            .route("/2020-01-01/extension/exit/error", post(exit_error))
            .with_state(self)
    }

    /// The registered extension `headers` identify, or Lambda's 403 for a missing, malformed
    /// or unknown identifier.
    #[allow(clippy::result_large_err)]
    pub fn identify(&self, headers: &HeaderMap) -> Result<(String, String), Response> {
        let Some(id) = headers.get(headers::IDENTIFIER) else {
            return Err(forbidden(
                "Extension.MissingExtensionIdentifier",
                "Missing Lambda-Extension-Identifier header",
            ));
        };
        let id = id.to_str().unwrap_or_default();
        if !is_uuid(id) {
            return Err(forbidden(
                "Extension.InvalidExtensionIdentifier",
                "Invalid Lambda-Extension-Identifier",
            ));
        }
        self.read(|r| r.agents.iter().find(|a| a.id == id).map(|a| a.name.clone()))
            .flatten()
            .map(|name| (id.to_string(), name))
            .ok_or_else(|| {
                forbidden(
                    "Extension.UnknownExtensionIdentifier",
                    &format!("Unknown extension {id}"),
                )
            })
    }
}

/// Whether `text` is a UUID (8-4-4-4-12 hex digits).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `POST /register`.
async fn register(
    State(ext): State<Arc<Extensions>>,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    let name = request_headers
        .get(headers::NAME)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return forbidden("Extension.InvalidExtensionName", "Empty extension name");
    }
    let (invoke, shutdown) = match parse_events(&body) {
        Ok(events) => events,
        Err(answer) => return *answer,
    };
    let external = ext.external.contains(&name);
    if !external && shutdown {
        return forbidden(
            "Extension.InvalidEventType",
            "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension",
        );
    }
    if invoke && ext.multi_concurrent {
        return forbidden(
            "Extension.InvalidEventType",
            "INVOKE: Lambda Managed Instances do not send INVOKE events to extensions",
        );
    }
    let id = format::request_id();
    let refused = ext.with(|r| {
        if r.agents.iter().any(|a| a.name == name) {
            return Some(if external {
                forbidden(
                    "Extension.InvalidExtensionState",
                    &format!("State transition from Registered to Registered failed for extension {name}. Error: State transition is not allowed"),
                )
            } else {
                forbidden(
                    "Extension.InvalidExtensionState",
                    "Extension with this name already registered",
                )
            });
        }
        if !external && r.closed {
            return Some(forbidden(
                "Extension.RegistrationClosed",
                "Extension registration closed already",
            ));
        }
        if r.agents.len() >= MAX_EXTENSIONS {
            return Some(forbidden(
                "Extension.TooManyExtensions",
                &format!("Extension limit ({MAX_EXTENSIONS}) reached"),
            ));
        }
        r.agents.push(Agent {
            id: id.clone(),
            name: name.clone(),
            external,
            invoke,
            shutdown,
            state: AgentState::Registered,
            queue: VecDeque::new(),
            error_type: None,
        });
        None
    });
    if let Some(Some(refused)) = refused {
        return refused;
    }
    let wants_account = request_headers
        .get(headers::ACCEPT_FEATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    let function = &ext.function;
    let mut body = json!({
        "functionName": function.name,
        "functionVersion": function.version,
        "handler": function.handler,
    });
    if wants_account {
        body["accountId"] = json!(function.account_id);
    }
    let mut response = (StatusCode::OK, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(headers::IDENTIFIER, v);
    }
    response
}

/// The events a register body subscribes to (`INVOKE`, `SHUTDOWN`), or Lambda's 403.
fn parse_events(body: &[u8]) -> Result<(bool, bool), Box<Response>> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| Box::new(forbidden("InvalidRequestFormat", &e.to_string())))?;
    if parsed
        .get("configurationKeys")
        .and_then(Value::as_array)
        .is_some_and(|keys| !keys.is_empty())
    {
        return Err(Box::new(forbidden(
            "InvalidRequestFormat",
            "configurationKeys are deprecated; use environment variables instead",
        )));
    }
    let events = match parsed.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(events)) => events.clone(),
        Some(other) => {
            return Err(Box::new(forbidden(
                "InvalidRequestFormat",
                &format!("events must be a list of INVOKE and SHUTDOWN, not {other}"),
            )))
        }
    };
    let (mut invoke, mut shutdown) = (false, false);
    for event in &events {
        match event.as_str() {
            Some("INVOKE") => invoke = true,
            Some("SHUTDOWN") => shutdown = true,
            _ => {
                let shown = event
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(event.to_string());
                return Err(Box::new(forbidden(
                    "Extension.InvalidEventType",
                    &format!("{shown}: ErrorInvalidEventType"),
                )));
            }
        }
    }
    Ok((invoke, shutdown))
}

/// `GET /event/next`: marks the extension ready (or done with its event) and blocks until it
/// has an event. After `SHUTDOWN` nothing more comes, so the call blocks until the extension
/// is stopped.
async fn next(State(ext): State<Arc<Extensions>>, request_headers: HeaderMap) -> Response {
    let (id, _) = match ext.identify(&request_headers) {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let mut first = true;
    loop {
        let changed = ext.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // Waiters are told only of a change: telling them of a mere look would wake this
        // loop itself, which would then spin.
        let mut moved = false;
        let step = ext.registry.lock().ok().and_then(|mut r| {
            let agent = r.agents.iter_mut().find(|a| a.id == id)?;
            if first {
                match agent.state {
                    AgentState::Registered | AgentState::Running => {
                        agent.state = AgentState::Ready;
                        moved = true;
                    }
                    AgentState::Ready => {}
                    AgentState::InitError | AgentState::ExitError => {
                        return Some(Err(agent.state));
                    }
                }
            }
            let event = agent.queue.pop_front();
            if event.is_some() {
                agent.state = AgentState::Running;
                moved = true;
            }
            Some(Ok(event))
        });
        if moved {
            ext.changed.notify_waiters();
        }
        first = false;
        match step {
            None => {
                return forbidden(
                    "Extension.UnknownExtensionIdentifier",
                    &format!("Unknown extension {id}"),
                )
            }
            Some(Err(state)) => {
                return forbidden(
                    "Extension.InvalidExtensionState",
                    &format!(
                        "State transition from {} to Ready failed for extension {id}. Error: State transition is not allowed",
                        state.name()
                    ),
                )
            }
            Some(Ok(Some(event))) => {
                let mut response = (StatusCode::OK, Json(event.clone())).into_response();
                if event["eventType"] == "INVOKE" {
                    if let Ok(v) = HeaderValue::from_str(&format::request_id()) {
                        response.headers_mut().insert(headers::EVENT_IDENTIFIER, v);
                    }
                }
                return response;
            }
            Some(Ok(None)) => changed.await,
        }
    }
}

/// Which error call an extension made.
#[derive(Clone, Copy)]
enum ErrorCall {
    Init,
    Exit,
}

async fn init_error(
    State(ext): State<Arc<Extensions>>,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    report_error(&ext, &request_headers, &body, ErrorCall::Init)
}

async fn exit_error(
    State(ext): State<Arc<Extensions>>,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    report_error(&ext, &request_headers, &body, ErrorCall::Exit)
}

/// `init/error` and `exit/error`: the extension's failure fails the environment, with
/// `Extension.InitError` or `Extension.ExitError`; the extension is expected to exit next.
fn report_error(
    ext: &Extensions,
    request_headers: &HeaderMap,
    body: &[u8],
    call: ErrorCall,
) -> Response {
    let (id, name) = match ext.identify(request_headers) {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let Some(error_type) = request_headers
        .get(headers::ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return forbidden(
            "Extension.MissingHeader",
            "Lambda-Extension-Function-Error-Type not found",
        );
    };
    let (target, allowed, platform_type): (AgentState, &[AgentState], &'static str) = match call {
        ErrorCall::Init => (
            AgentState::InitError,
            &[AgentState::Registered],
            "Extension.InitError",
        ),
        ErrorCall::Exit => (
            AgentState::ExitError,
            &[
                AgentState::Registered,
                AgentState::Ready,
                AgentState::Running,
            ],
            "Extension.ExitError",
        ),
    };
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
        .map(|m| format!("{error_type}: {m}"))
        .unwrap_or_else(|| error_type.clone());
    let refused = ext.with(|r| {
        let agent = r.agents.iter_mut().find(|a| a.id == id)?;
        if agent.state == target {
            return Some(None);
        }
        if !allowed.contains(&agent.state) {
            return Some(Some(agent.state));
        }
        agent.state = target;
        agent.error_type = Some(error_type.clone());
        if r.fatal.is_none() {
            r.fatal = Some(Fatal {
                error_type: platform_type,
                message: format!("extension {name} reported {message}"),
            });
        }
        Some(None)
    });
    match refused.flatten() {
        Some(Some(state)) => forbidden(
            "Extension.InvalidExtensionState",
            &format!(
                "State transition from {} to {} failed for extension {id}. Error: State transition is not allowed",
                state.name(),
                target.name()
            ),
        ),
        _ => (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extensions(external: &[&str]) -> Arc<Extensions> {
        Arc::new(Extensions::new(
            FunctionInfo {
                name: "f".into(),
                version: "$LATEST".into(),
                handler: "bootstrap".into(),
                account_id: "123456789012".into(),
            },
            external.iter().map(|s| s.to_string()).collect(),
            false,
        ))
    }

    #[test]
    fn register_bodies_are_checked_as_lambda_checks_them() {
        assert_eq!(
            parse_events(br#"{"events":["INVOKE","SHUTDOWN"]}"#).unwrap(),
            (true, true)
        );
        assert_eq!(parse_events(br#"{"events":[]}"#).unwrap(), (false, false));
        assert_eq!(parse_events(b"{}").unwrap(), (false, false));
        for bad in [
            &b"not json"[..],
            br#"{"events":["LOG"]}"#,
            br#"{"configurationKeys":["a"]}"#,
        ] {
            assert_eq!(
                parse_events(bad).unwrap_err().status(),
                StatusCode::FORBIDDEN
            );
        }
    }

    #[test]
    fn identifiers_must_be_uuids() {
        assert!(is_uuid(&format::request_id()));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid(""));
    }

    #[tokio::test]
    async fn shutdown_goes_only_to_external_extensions_that_asked() {
        let ext = extensions(&["telemetry"]);
        ext.with(|r| {
            for (name, external, shutdown) in
                [("telemetry", true, true), ("internal", false, false)]
            {
                r.agents.push(Agent {
                    id: format::request_id(),
                    name: name.into(),
                    external,
                    invoke: true,
                    shutdown,
                    state: AgentState::Ready,
                    queue: VecDeque::new(),
                    error_type: None,
                });
            }
        });
        assert_eq!(
            ext.dispatch_shutdown(ShutdownReason::Spindown, SystemTime::now()),
            ["telemetry"]
        );
        assert_eq!(ext.dispatch_invoke("id", SystemTime::now(), "arn", None), 2);
        assert!(
            !ext.wait_invoke_done(Instant::now() + std::time::Duration::from_millis(20))
                .await,
            "queued events are not done"
        );
        assert_eq!(ext.registered(), (true, true));
    }

    #[test]
    fn the_first_failure_wins() {
        let ext = extensions(&[]);
        ext.fail(Fatal {
            error_type: "Extension.Crash",
            message: "exit status 1".into(),
        });
        ext.fail(Fatal {
            error_type: "Extension.ExitError",
            message: "later".into(),
        });
        assert_eq!(ext.fatal().unwrap().error_type, "Extension.Crash");
    }
}
