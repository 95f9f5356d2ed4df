//! What happens in an execution environment, in Lambda's terms ([`Event`]), and the record each
//! subscriber receives for it: the shape depends on the subscriber's API and schema version, as
//! documented in Lambda's Telemetry API schema reference and Logs API guide (with their JSON
//! typos corrected to the forms real Lambda sends).

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::Api;
use crate::time::rfc3339_millis;

/// The phase an init ran in: `init`, or `invoke` for an init Lambda had to repeat at the first
/// invocation (a suppressed init, after the 10 s init limit or a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The environment's own init phase.
    Init,
    /// An init run again as part of an invocation. Lambda does so after an init over its 10 s
    /// limit; the emulator fails such an init instead, so it never reports this phase.
    #[allow(dead_code)]
    Invoke,
}

impl Phase {
    /// Lambda's name for the phase.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Init => "init",
            Phase::Invoke => "invoke",
        }
    }
}

/// How a phase ended (Telemetry API `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// It ended normally.
    Success,
    /// The function or an extension reported an error (`errorType` says which).
    Error,
    /// The environment failed (a crash, `Runtime.ExitError`, a `Sandbox.*` error).
    Failure,
    /// It ran out of time.
    Timeout,
}

impl Status {
    /// The Telemetry API's name for the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Failure => "failure",
            Status::Timeout => "timeout",
        }
    }

    /// The Logs API's name: it only knows `success`, `failure` and `timeout`, so an error is
    /// a failure there.
    fn logs_api_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error | Status::Failure => "failure",
            Status::Timeout => "timeout",
        }
    }
}

/// A span of time: when it started and how long it lasted.
pub(crate) type Span = (SystemTime, Duration);

/// What happened, in Lambda's terms. The hub renders each event for every subscriber according
/// to its API and schema version, and leaves it out where that API has no such event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// `platform.initStart`: the init phase started (before extensions are launched).
    InitStart {
        /// `on-demand`, `provisioned-concurrency`, `snap-start` or `lambda-managed-instances`.
        initialization_type: &'static str,
        /// `init`, or `invoke` for a suppressed init.
        phase: Phase,
        /// `AWS_LAMBDA_FUNCTION_NAME`.
        function_name: String,
        /// `AWS_LAMBDA_FUNCTION_VERSION`.
        function_version: String,
        /// The function's memory in MB (`instanceMaxMemory`).
        instance_max_memory: u32,
    },
    /// `platform.initRuntimeDone`: the runtime finished its init (its first `/next`, or an
    /// init error).
    InitRuntimeDone {
        /// As in [`Event::InitStart`].
        initialization_type: &'static str,
        /// As in [`Event::InitStart`].
        phase: Phase,
        /// How the runtime's init ended.
        status: Status,
        /// Set when `status` is not success, e.g. `Runtime.ExitError`.
        error_type: Option<String>,
    },
    /// `platform.initReport`: the whole init phase, extensions included, ended.
    InitReport {
        /// As in [`Event::InitStart`].
        initialization_type: &'static str,
        /// As in [`Event::InitStart`].
        phase: Phase,
        /// How init ended.
        status: Status,
        /// Set when `status` is not success, e.g. `Extension.Crash`.
        error_type: Option<String>,
        /// How long init took.
        duration: Duration,
    },
    /// `platform.restoreStart`: a SnapStart environment is being restored.
    RestoreStart {
        /// `AWS_LAMBDA_FUNCTION_NAME`.
        function_name: String,
        /// `AWS_LAMBDA_FUNCTION_VERSION`.
        function_version: String,
        /// The function's memory in MB.
        instance_max_memory: u32,
    },
    /// `platform.restoreRuntimeDone`: the runtime's after-restore hooks finished.
    RestoreRuntimeDone {
        /// How they ended.
        status: Status,
        /// Set when `status` is not success, e.g. `Runtime.AfterRestoreError`.
        error_type: Option<String>,
    },
    /// `platform.restoreReport`: the restore phase ended.
    RestoreReport {
        /// How it ended.
        status: Status,
        /// Set when `status` is not success.
        error_type: Option<String>,
        /// How long the restore took.
        duration: Duration,
    },
    /// `platform.start`: an invocation was handed to the runtime.
    Start {
        /// The request id.
        request_id: String,
        /// The function version that runs it.
        version: String,
        /// The invocation's `X-Amzn-Trace-Id` value.
        tracing: Option<String>,
        /// The tenant it is for, under tenant isolation.
        tenant_id: Option<String>,
    },
    /// `platform.runtimeDone`: the runtime finished an invocation (its next `/next`, an error,
    /// a crash or a timeout). Not sent on Managed Instances, as on Lambda.
    RuntimeDone {
        /// The request id.
        request_id: String,
        /// How the invocation ended.
        status: Status,
        /// Set when `status` is not success.
        error_type: Option<String>,
        /// From the release to the runtime until its next `/next`.
        duration: Duration,
        /// The response's size, when the runtime posted one.
        produced_bytes: Option<u64>,
        /// `responseLatency`: from the release until the runtime began posting its response.
        response_latency: Option<Span>,
        /// `responseDuration`: from the start of the response until its last byte.
        response_duration: Option<Span>,
        /// The invocation's `X-Amzn-Trace-Id` value.
        tracing: Option<String>,
    },
    /// `platform.report`: an invocation ended, extensions included.
    Report {
        /// The request id.
        request_id: String,
        /// How the invocation ended.
        status: Status,
        /// Set when `status` is not success.
        error_type: Option<String>,
        /// The invocation's duration.
        duration: Duration,
        /// The billed duration in whole milliseconds.
        billed_ms: u64,
        /// The function's memory in MB.
        memory_mb: u32,
        /// The peak memory used in MB.
        max_memory_mb: u64,
        /// Set on an environment's first invocation: its init duration.
        init_duration: Option<Duration>,
        /// Set on a SnapStart environment's first invocation: its restore duration.
        restore_duration: Option<Duration>,
        /// `extensionOverhead`: from the runtime's `/next` until the last extension subscribed
        /// to INVOKE called `/next`.
        extension_overhead: Option<Span>,
        /// `responseLatency`, which Managed Instances report here instead of in runtimeDone.
        response_latency: Option<Span>,
        /// `responseDuration`, which Managed Instances report here instead of in runtimeDone.
        response_duration: Option<Span>,
        /// The invocation's `X-Amzn-Trace-Id` value.
        tracing: Option<String>,
    },
    /// `platform.extension`: an extension's state at the end of init.
    Extension {
        /// Its name.
        name: String,
        /// Its state: `Ready`, `InitError`, `ExitError`, `LaunchError`, ...
        state: String,
        /// The events it subscribed to (`INVOKE`, `SHUTDOWN`).
        events: Vec<String>,
        /// The error type it reported, if any.
        error_type: Option<String>,
    },
    /// `platform.end` (Logs API only): an invocation ended.
    End {
        /// The request id.
        request_id: String,
    },
    /// `platform.fault` (Logs API only): the runtime or the environment failed, e.g.
    /// `RequestId: <id> Process exited before completing request`.
    Fault {
        /// The message.
        message: String,
    },
    /// One line the runtime wrote (`function`).
    FunctionLine {
        /// The line, without its newline.
        line: String,
    },
    /// One line an extension wrote (`extension`).
    ExtensionLine {
        /// The line, without its newline.
        line: String,
    },
}

impl Event {
    /// A rough size of what the event holds, to bound what is kept for late subscribers.
    pub(super) fn weight(&self) -> usize {
        match self {
            Event::FunctionLine { line } | Event::ExtensionLine { line } => line.len() + 64,
            Event::Fault { message } => message.len() + 64,
            _ => 256,
        }
    }
}

/// The kinds of telemetry a subscriber picks with `types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `platform`: everything Lambda itself reports.
    Platform,
    /// `function`: the runtime's output lines.
    Function,
    /// `extension`: the extensions' output lines.
    Extension,
}

impl Kind {
    /// The name in `types`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Platform => "platform",
            Kind::Function => "function",
            Kind::Extension => "extension",
        }
    }

    /// The kind named `name` in `types`.
    pub(crate) fn parse(name: &str) -> Option<Kind> {
        match name {
            "platform" => Some(Kind::Platform),
            "function" => Some(Kind::Function),
            "extension" => Some(Kind::Extension),
            _ => None,
        }
    }
}

/// A subscription's `schemaVersion`, which with its API decides the records it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Schema {
    /// Logs API `2020-08-15`: the legacy records, without `platform.runtimeDone`.
    Logs20200815,
    /// Logs API `2021-03-18`: adds `platform.runtimeDone`.
    Logs20210318,
    /// Telemetry API `2022-07-01`: function and extension records are always strings, and the
    /// restore events do not exist (the lambda-extension crate refuses a batch holding one).
    Telemetry20220701,
    /// Telemetry API `2022-12-13`: JSON function and extension records under the JSON log
    /// format, and the restore events.
    Telemetry20221213,
    /// Telemetry API `2025-01-29`, the only one Managed Instances accept.
    Telemetry20250129,
}

impl Schema {
    /// The Telemetry API's versions, oldest first.
    pub(crate) const TELEMETRY: &'static [Schema] = &[
        Schema::Telemetry20220701,
        Schema::Telemetry20221213,
        Schema::Telemetry20250129,
    ];

    /// The Logs API's versions, oldest first.
    pub(crate) const LOGS: &'static [Schema] = &[Schema::Logs20200815, Schema::Logs20210318];

    /// The `schemaVersion` string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Schema::Logs20200815 => "2020-08-15",
            Schema::Logs20210318 => "2021-03-18",
            Schema::Telemetry20220701 => "2022-07-01",
            Schema::Telemetry20221213 => "2022-12-13",
            Schema::Telemetry20250129 => "2025-01-29",
        }
    }

    /// The API the version belongs to.
    pub(crate) fn api(self) -> Api {
        match self {
            Schema::Logs20200815 | Schema::Logs20210318 => Api::Logs,
            _ => Api::Telemetry,
        }
    }
}

/// How one subscriber sees events: its schema, and the environment's settings that change
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// The subscription's API and version.
    pub schema: Schema,
    /// Whether the function's log format is JSON.
    pub json_logs: bool,
    /// Whether the environment is a Managed Instance (reports carry only `durationMs`).
    pub managed_instances: bool,
}

/// What the hub delivers: the caller's events, and the platform events the hub makes itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// An event the emulator emitted.
    Event(Event),
    /// `platform.telemetrySubscription` or `platform.logsSubscription`: an extension
    /// subscribed. Only subscribers of the same API see it.
    Subscribed {
        /// The API it subscribed to.
        api: Api,
        /// The extension's name.
        name: String,
        /// Its `types`.
        types: Vec<Kind>,
    },
    /// `platform.logsDropped`: records meant for this subscriber were dropped.
    Dropped {
        /// Why, in Lambda's words.
        reason: String,
        /// How many records.
        records: u64,
        /// How many bytes of records.
        bytes: u64,
    },
}

impl Item {
    /// Which of a subscriber's `types` the item belongs to, known before rendering it.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Item::Event(Event::FunctionLine { .. }) => Kind::Function,
            Item::Event(Event::ExtensionLine { .. }) => Kind::Extension,
            _ => Kind::Platform,
        }
    }
}

/// One record rendered for a subscriber: its kind (for the `types` filter) and its JSON
/// object, `{"time": ..., "type": ..., "record": ...}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    /// Which of the subscriber's `types` it belongs to.
    pub kind: Kind,
    /// The serialized object.
    pub json: String,
}

/// `item` at `time` as `view` sees it, or `None` when that API and version have no such
/// record.
pub(crate) fn render(item: &Item, time: SystemTime, view: View) -> Option<Rendered> {
    let (kind, type_, record) = match item {
        Item::Event(event) => match view.schema.api() {
            Api::Telemetry => telemetry_record(event, view)?,
            Api::Logs => logs_record(event, view.schema)?,
        },
        Item::Subscribed { api, name, types } => {
            if *api != view.schema.api() {
                return None;
            }
            let type_ = match api {
                Api::Telemetry => "platform.telemetrySubscription",
                Api::Logs => "platform.logsSubscription",
            };
            let types: Vec<&str> = types.iter().map(|k| k.as_str()).collect();
            let record = json!({ "name": name, "state": "Subscribed", "types": types });
            (Kind::Platform, type_, record)
        }
        Item::Dropped {
            reason,
            records,
            bytes,
        } => {
            let record = json!({
                "reason": reason,
                "droppedRecords": records,
                "droppedBytes": bytes,
            });
            (Kind::Platform, "platform.logsDropped", record)
        }
    };
    let object = json!({ "time": rfc3339_millis(time), "type": type_, "record": record });
    Some(Rendered {
        kind,
        json: object.to_string(),
    })
}

/// A duration in milliseconds with two decimals, as Lambda reports them.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

/// A `Span` object.
fn span(name: &str, (start, duration): Span) -> Value {
    json!({ "name": name, "start": rfc3339_millis(start), "durationMs": ms(duration) })
}

/// A `TraceContext` object for an `X-Amzn-Trace-Id` value.
fn trace_context(value: &str) -> Value {
    json!({ "type": "X-Amzn-Trace-Id", "value": value })
}

/// Adds `key` to `record` when there is a value.
fn set_some(record: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Value::Object(map)) = (value, record) {
        map.insert(key.to_string(), value);
    }
}

/// The `spans` list of the spans that exist, or nothing when none does.
fn spans(list: &[(&str, Option<Span>)]) -> Option<Value> {
    let spans: Vec<Value> = list
        .iter()
        .filter_map(|(name, s)| s.map(|s| span(name, s)))
        .collect();
    (!spans.is_empty()).then_some(Value::Array(spans))
}

/// A function or extension line: a string, or under the JSON log format (schema 2022-12-13
/// and later) the JSON object the line holds. A line that is not a JSON object stays a string:
/// Lambda does not restructure a custom runtime's output.
fn line_record(line: &str, view: View) -> Value {
    if view.json_logs && view.schema >= Schema::Telemetry20221213 {
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) {
            return Value::Object(object);
        }
    }
    Value::String(line.to_string())
}

/// The Telemetry API's record of `event`.
fn telemetry_record(event: &Event, view: View) -> Option<(Kind, &'static str, Value)> {
    let restore_events = view.schema >= Schema::Telemetry20221213;
    Some(match event {
        Event::FunctionLine { line } => (Kind::Function, "function", line_record(line, view)),
        Event::ExtensionLine { line } => (Kind::Extension, "extension", line_record(line, view)),
        Event::InitStart { .. } | Event::InitRuntimeDone { .. } | Event::InitReport { .. } => {
            (Kind::Platform, init_type(event), init_record(event)?)
        }
        Event::RestoreStart { .. }
        | Event::RestoreRuntimeDone { .. }
        | Event::RestoreReport { .. }
            if restore_events =>
        {
            (Kind::Platform, restore_type(event), restore_record(event)?)
        }
        Event::Start { .. } => (Kind::Platform, "platform.start", start_record(event)?),
        Event::RuntimeDone { .. } if !view.managed_instances => (
            Kind::Platform,
            "platform.runtimeDone",
            runtime_done_record(event)?,
        ),
        Event::Report { .. } => (
            Kind::Platform,
            "platform.report",
            report_record(event, view.managed_instances)?,
        ),
        Event::Extension {
            name,
            state,
            events,
            error_type,
        } => {
            let mut record = json!({ "name": name, "state": state, "events": events });
            set_some(
                &mut record,
                "errorType",
                error_type.clone().map(Value::from),
            );
            (Kind::Platform, "platform.extension", record)
        }
        _ => return None,
    })
}

/// The type of an init event.
fn init_type(event: &Event) -> &'static str {
    match event {
        Event::InitStart { .. } => "platform.initStart",
        Event::InitRuntimeDone { .. } => "platform.initRuntimeDone",
        _ => "platform.initReport",
    }
}

/// `platform.initStart`, `platform.initRuntimeDone` and `platform.initReport`, each with its
/// `phase` (the docs' examples miss it on initRuntimeDone; the schema requires it).
fn init_record(event: &Event) -> Option<Value> {
    Some(match event {
        Event::InitStart {
            initialization_type,
            phase,
            function_name,
            function_version,
            instance_max_memory,
        } => json!({
            "initializationType": initialization_type,
            "phase": phase.as_str(),
            "functionName": function_name,
            "functionVersion": function_version,
            "instanceMaxMemory": instance_max_memory,
        }),
        Event::InitRuntimeDone {
            initialization_type,
            phase,
            status,
            error_type,
        } => {
            let mut record = json!({
                "initializationType": initialization_type,
                "phase": phase.as_str(),
                "status": status.as_str(),
            });
            set_some(
                &mut record,
                "errorType",
                error_type.clone().map(Value::from),
            );
            record
        }
        Event::InitReport {
            initialization_type,
            phase,
            status,
            error_type,
            duration,
        } => {
            let mut record = json!({
                "initializationType": initialization_type,
                "phase": phase.as_str(),
                "status": status.as_str(),
                "metrics": { "durationMs": ms(*duration) },
            });
            set_some(
                &mut record,
                "errorType",
                error_type.clone().map(Value::from),
            );
            record
        }
        _ => return None,
    })
}

/// The type of a restore event.
fn restore_type(event: &Event) -> &'static str {
    match event {
        Event::RestoreStart { .. } => "platform.restoreStart",
        Event::RestoreRuntimeDone { .. } => "platform.restoreRuntimeDone",
        _ => "platform.restoreReport",
    }
}

/// `platform.restoreStart`, `platform.restoreRuntimeDone` and `platform.restoreReport`.
fn restore_record(event: &Event) -> Option<Value> {
    Some(match event {
        Event::RestoreStart {
            function_name,
            function_version,
            instance_max_memory,
        } => json!({
            "functionName": function_name,
            "functionVersion": function_version,
            "instanceMaxMemory": instance_max_memory,
        }),
        Event::RestoreRuntimeDone { status, error_type } => {
            let mut record = json!({ "status": status.as_str() });
            set_some(
                &mut record,
                "errorType",
                error_type.clone().map(Value::from),
            );
            record
        }
        Event::RestoreReport {
            status,
            error_type,
            duration,
        } => {
            let mut record = json!({
                "status": status.as_str(),
                "metrics": { "durationMs": ms(*duration) },
            });
            set_some(
                &mut record,
                "errorType",
                error_type.clone().map(Value::from),
            );
            record
        }
        _ => return None,
    })
}

/// `platform.start`.
fn start_record(event: &Event) -> Option<Value> {
    let Event::Start {
        request_id,
        version,
        tracing,
        tenant_id,
    } = event
    else {
        return None;
    };
    let mut record = json!({ "requestId": request_id, "version": version });
    set_some(
        &mut record,
        "tracing",
        tracing.as_deref().map(trace_context),
    );
    set_some(&mut record, "tenantId", tenant_id.clone().map(Value::from));
    Some(record)
}

/// `platform.runtimeDone` of the Telemetry API.
fn runtime_done_record(event: &Event) -> Option<Value> {
    let Event::RuntimeDone {
        request_id,
        status,
        error_type,
        duration,
        produced_bytes,
        response_latency,
        response_duration,
        tracing,
    } = event
    else {
        return None;
    };
    let mut metrics = json!({ "durationMs": ms(*duration) });
    set_some(
        &mut metrics,
        "producedBytes",
        produced_bytes.map(Value::from),
    );
    let mut record = json!({
        "requestId": request_id,
        "status": status.as_str(),
        "metrics": metrics,
    });
    set_some(
        &mut record,
        "errorType",
        error_type.clone().map(Value::from),
    );
    let list = [
        ("responseLatency", *response_latency),
        ("responseDuration", *response_duration),
    ];
    set_some(&mut record, "spans", spans(&list));
    set_some(
        &mut record,
        "tracing",
        tracing.as_deref().map(trace_context),
    );
    Some(record)
}

/// `platform.report` of the Telemetry API: integer billed duration and memory, `status`
/// always present. On Managed Instances the metrics are only `durationMs`, and the response
/// spans replace `extensionOverhead`.
fn report_record(event: &Event, managed_instances: bool) -> Option<Value> {
    let Event::Report {
        request_id,
        status,
        error_type,
        duration,
        response_latency,
        response_duration,
        extension_overhead,
        tracing,
        ..
    } = event
    else {
        return None;
    };
    let (metrics, list) = if managed_instances {
        let list = vec![
            ("responseLatency", *response_latency),
            ("responseDuration", *response_duration),
        ];
        (json!({ "durationMs": ms(*duration) }), list)
    } else {
        let list = vec![("extensionOverhead", *extension_overhead)];
        (report_metrics(event, true)?, list)
    };
    let mut record = json!({
        "requestId": request_id,
        "status": status.as_str(),
        "metrics": metrics,
    });
    set_some(
        &mut record,
        "errorType",
        error_type.clone().map(Value::from),
    );
    set_some(&mut record, "spans", spans(&list));
    set_some(
        &mut record,
        "tracing",
        tracing.as_deref().map(trace_context),
    );
    Some(record)
}

/// A report's `metrics`; the Logs API's have no restore duration.
fn report_metrics(event: &Event, with_restore: bool) -> Option<Value> {
    let Event::Report {
        duration,
        billed_ms,
        memory_mb,
        max_memory_mb,
        init_duration,
        restore_duration,
        ..
    } = event
    else {
        return None;
    };
    let mut metrics = Map::new();
    metrics.insert("durationMs".into(), ms(*duration).into());
    metrics.insert("billedDurationMs".into(), (*billed_ms).into());
    metrics.insert("memorySizeMB".into(), (*memory_mb).into());
    metrics.insert("maxMemoryUsedMB".into(), (*max_memory_mb).into());
    if let Some(init) = init_duration {
        metrics.insert("initDurationMs".into(), ms(*init).into());
    }
    if let Some(restore) = restore_duration.filter(|_| with_restore) {
        metrics.insert("restoreDurationMs".into(), ms(restore).into());
    }
    Some(Value::Object(metrics))
}

/// The Logs API's record of `event`: strings for lines and faults, the legacy objects for
/// the rest, `platform.runtimeDone` only from schema 2021-03-18, and nothing for init and
/// restore events, which that API never had.
fn logs_record(event: &Event, schema: Schema) -> Option<(Kind, &'static str, Value)> {
    Some(match event {
        Event::FunctionLine { line } => (Kind::Function, "function", Value::from(line.as_str())),
        Event::ExtensionLine { line } => (Kind::Extension, "extension", Value::from(line.as_str())),
        Event::Start {
            request_id,
            version,
            ..
        } => (
            Kind::Platform,
            "platform.start",
            json!({ "requestId": request_id, "version": version }),
        ),
        Event::End { request_id } => (
            Kind::Platform,
            "platform.end",
            json!({ "requestId": request_id }),
        ),
        Event::Report { request_id, .. } => (
            Kind::Platform,
            "platform.report",
            json!({ "requestId": request_id, "metrics": report_metrics(event, false)? }),
        ),
        Event::Fault { message } => (
            Kind::Platform,
            "platform.fault",
            Value::from(message.as_str()),
        ),
        Event::Extension {
            name,
            state,
            events,
            ..
        } => (
            Kind::Platform,
            "platform.extension",
            json!({ "name": name, "state": state, "events": events }),
        ),
        Event::RuntimeDone {
            request_id, status, ..
        } if schema >= Schema::Logs20210318 => (
            Kind::Platform,
            "platform.runtimeDone",
            json!({ "requestId": request_id, "status": status.logs_api_str() }),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// 2022-10-21T14:05:05.764Z, the time of the real records in lambda-extension's tests.
    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_666_361_105_764 + ms)
    }

    const TRACE: &str =
        "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1";

    fn view(schema: Schema) -> View {
        View {
            schema,
            json_logs: false,
            managed_instances: false,
        }
    }

    /// What `view` receives for `event`, as JSON.
    fn rendered(event: &Event, view: View) -> Option<Value> {
        let rendered = render(&Item::Event(event.clone()), at(0), view)?;
        Some(serde_json::from_str(&rendered.json).unwrap())
    }

    /// The record of what `view` receives for `event`.
    fn record(event: &Event, view: View) -> Value {
        let object = rendered(event, view).unwrap();
        assert_eq!(object["time"], "2022-10-21T14:05:05.764Z");
        object["record"].clone()
    }

    fn report(init: Option<Duration>, restore: Option<Duration>) -> Event {
        Event::Report {
            request_id: "459921b5".into(),
            status: Status::Success,
            error_type: None,
            duration: Duration::from_micros(2_599_400),
            billed_ms: 2600,
            memory_mb: 128,
            max_memory_mb: 94,
            init_duration: init,
            restore_duration: restore,
            extension_overhead: Some((at(0), Duration::from_millis(2))),
            response_latency: Some((at(0), Duration::from_millis(5))),
            response_duration: Some((at(5), Duration::from_millis(1))),
            tracing: Some(TRACE.into()),
        }
    }

    fn runtime_done(status: Status, error_type: Option<&str>) -> Event {
        Event::RuntimeDone {
            request_id: "459921b5".into(),
            status,
            error_type: error_type.map(str::to_string),
            duration: Duration::from_millis(2599),
            produced_bytes: Some(8),
            response_latency: Some((at(0), Duration::from_millis(2598))),
            response_duration: Some((at(2598), Duration::ZERO)),
            tracing: Some(TRACE.into()),
        }
    }

    /// One event of every kind.
    fn every_event() -> Vec<Event> {
        vec![
            Event::InitStart {
                initialization_type: "on-demand",
                phase: Phase::Init,
                function_name: "hello".into(),
                function_version: "$LATEST".into(),
                instance_max_memory: 128,
            },
            Event::InitRuntimeDone {
                initialization_type: "on-demand",
                phase: Phase::Init,
                status: Status::Success,
                error_type: None,
            },
            Event::InitReport {
                initialization_type: "snap-start",
                phase: Phase::Invoke,
                status: Status::Error,
                error_type: Some("Extension.Crash".into()),
                duration: Duration::from_micros(125_330),
            },
            Event::RestoreStart {
                function_name: "hello".into(),
                function_version: "1".into(),
                instance_max_memory: 256,
            },
            Event::RestoreRuntimeDone {
                status: Status::Failure,
                error_type: Some("Runtime.AfterRestoreError".into()),
            },
            Event::RestoreReport {
                status: Status::Success,
                error_type: None,
                duration: Duration::from_micros(15_190),
            },
            Event::Start {
                request_id: "459921b5".into(),
                version: "$LATEST".into(),
                tracing: Some(TRACE.into()),
                tenant_id: Some("blue".into()),
            },
            runtime_done(Status::Timeout, Some("Sandbox.Timedout")),
            report(Some(Duration::from_micros(549_040)), None),
            Event::Extension {
                name: "logger".into(),
                state: "Ready".into(),
                events: vec!["INVOKE".into(), "SHUTDOWN".into()],
                error_type: None,
            },
            Event::End {
                request_id: "459921b5".into(),
            },
            Event::Fault {
                message: "RequestId: 459921b5 Process exited before completing request".into(),
            },
            Event::FunctionLine {
                line: r#"{"level":"INFO","message":"hello"}"#.into(),
            },
            Event::ExtensionLine {
                line: "[INFO] Hello world, I am an extension!".into(),
            },
        ]
    }

    /// Every event of `every_event` that `view` receives, with the hub's own records, as the
    /// JSON array a batch carries.
    fn batch(view: View) -> (usize, String) {
        let mut items: Vec<Item> = every_event().into_iter().map(Item::Event).collect();
        items.push(Item::Subscribed {
            api: view.schema.api(),
            name: "logger".into(),
            types: vec![Kind::Platform, Kind::Function],
        });
        items.push(Item::Dropped {
            reason: "could not send events".into(),
            records: 3,
            bytes: 120,
        });
        let records: Vec<String> = items
            .iter()
            .filter_map(|item| render(item, at(0), view))
            .map(|r| r.json)
            .collect();
        (records.len(), format!("[{}]", records.join(",")))
    }

    #[test]
    fn an_items_kind_is_known_before_rendering_it() {
        for event in every_event() {
            let item = Item::Event(event);
            for schema in Schema::TELEMETRY.iter().chain(Schema::LOGS) {
                if let Some(rendered) = render(&item, at(0), view(*schema)) {
                    assert_eq!(rendered.kind, item.kind(), "{item:?}");
                }
            }
        }
    }

    #[test]
    fn schema_2022_07_01_batches_parse_with_lambda_extension() {
        let json_logs = View {
            json_logs: true,
            ..view(Schema::Telemetry20220701)
        };
        for view in [view(Schema::Telemetry20220701), json_logs] {
            let (count, body) = batch(view);
            let parsed: Vec<lambda_extension::LambdaTelemetry> =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            // Everything but the restore events and the Logs API's end and fault.
            assert_eq!(count, every_event().len() - 5 + 2);
            assert_eq!(parsed.len(), count);
        }
    }

    #[test]
    fn the_crate_reads_the_values_we_meant() {
        use lambda_extension::{LambdaTelemetry, LambdaTelemetryRecord as R, Status as S};
        let view = view(Schema::Telemetry20220701);
        let json = render(&Item::Event(report(None, None)), at(0), view)
            .unwrap()
            .json;
        let parsed: LambdaTelemetry = serde_json::from_str(&json).unwrap();
        let R::PlatformReport {
            status,
            metrics,
            spans,
            tracing,
            ..
        } = parsed.record
        else {
            panic!("{json}")
        };
        assert_eq!(status, S::Success);
        assert_eq!(metrics.billed_duration_ms, 2600);
        assert_eq!(metrics.duration_ms, 2599.4);
        assert_eq!(metrics.max_memory_used_mb, 94);
        assert_eq!(spans[0].name, "extensionOverhead");
        assert_eq!(tracing.unwrap().value, TRACE);
        assert_eq!(parsed.time.timestamp_millis(), 1_666_361_105_764);
    }

    #[test]
    fn later_schemas_parse_with_lambda_extension_except_restore_events() {
        // The crate has no restore events: it is the reason 2022-07-01 subscribers get none.
        for schema in [Schema::Telemetry20221213, Schema::Telemetry20250129] {
            let view = View {
                json_logs: true,
                ..view(schema)
            };
            for event in every_event() {
                let Some(object) = rendered(&event, view) else {
                    continue;
                };
                let parsed = serde_json::from_value::<lambda_extension::LambdaTelemetry<Value>>(
                    object.clone(),
                );
                let restore = object["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("platform.restore");
                assert_eq!(parsed.is_err(), restore, "{object}");
            }
        }
    }

    #[test]
    fn logs_api_batches_parse_with_lambda_extension() {
        for schema in Schema::LOGS {
            let (count, body) = batch(view(*schema));
            let parsed: Vec<lambda_extension::LambdaLog> =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert_eq!(parsed.len(), count);
        }
        // start, end, report, fault, extension, two lines, subscription, dropped; and
        // runtimeDone from 2021-03-18.
        assert_eq!(batch(view(Schema::Logs20200815)).0, 9);
        assert_eq!(batch(view(Schema::Logs20210318)).0, 10);
    }

    #[test]
    fn init_records_always_carry_phase_and_status() {
        let events = every_event();
        let view = view(Schema::Telemetry20220701);
        assert_eq!(
            record(&events[0], view),
            json!({
                "initializationType": "on-demand", "phase": "init", "functionName": "hello",
                "functionVersion": "$LATEST", "instanceMaxMemory": 128,
            })
        );
        assert_eq!(
            record(&events[1], view),
            json!({ "initializationType": "on-demand", "phase": "init", "status": "success" })
        );
        assert_eq!(
            record(&events[2], view),
            json!({
                "initializationType": "snap-start", "phase": "invoke", "status": "error",
                "errorType": "Extension.Crash", "metrics": { "durationMs": 125.33 },
            })
        );
    }

    #[test]
    fn invocation_records_have_the_real_world_shape() {
        let view = view(Schema::Telemetry20220701);
        let tracing = json!({ "type": "X-Amzn-Trace-Id", "value": TRACE });
        assert_eq!(
            record(&every_event()[6], view),
            json!({ "requestId": "459921b5", "version": "$LATEST", "tracing": tracing, "tenantId": "blue" })
        );
        assert_eq!(
            record(&runtime_done(Status::Success, None), view),
            json!({
                "requestId": "459921b5", "status": "success", "tracing": tracing,
                "spans": [
                    { "name": "responseLatency", "start": "2022-10-21T14:05:05.764Z", "durationMs": 2598.0 },
                    { "name": "responseDuration", "start": "2022-10-21T14:05:08.362Z", "durationMs": 0.0 },
                ],
                "metrics": { "durationMs": 2599.0, "producedBytes": 8 },
            })
        );
        let report = record(&report(Some(Duration::from_micros(549_040)), None), view);
        assert_eq!(
            report["metrics"],
            json!({
                "durationMs": 2599.4, "billedDurationMs": 2600, "memorySizeMB": 128,
                "maxMemoryUsedMB": 94, "initDurationMs": 549.04,
            })
        );
        assert_eq!(report["status"], "success");
        assert_eq!(report["spans"][0]["name"], "extensionOverhead");
        assert!(report.get("errorType").is_none());
    }

    #[test]
    fn failed_invocations_carry_their_error_type() {
        let view = view(Schema::Telemetry20220701);
        let done = record(
            &runtime_done(Status::Error, Some("Runtime.ExitError")),
            view,
        );
        assert_eq!(done["status"], "error");
        assert_eq!(done["errorType"], "Runtime.ExitError");
        let logs = record(
            &runtime_done(Status::Error, Some("Runtime.ExitError")),
            super::tests::view(Schema::Logs20210318),
        );
        // The Logs API only knows success, failure and timeout.
        assert_eq!(
            logs,
            json!({ "requestId": "459921b5", "status": "failure" })
        );
    }

    #[test]
    fn lines_are_objects_only_for_json_logs_from_schema_2022_12_13() {
        let json_line = Event::FunctionLine {
            line: r#"{"level":"INFO","requestId":"r","message":"hi"}"#.into(),
        };
        let text_line = Event::FunctionLine {
            line: "plain text".into(),
        };
        let json = |schema| View {
            json_logs: true,
            ..view(schema)
        };
        let object = json!({ "level": "INFO", "requestId": "r", "message": "hi" });
        assert_eq!(record(&json_line, json(Schema::Telemetry20221213)), object);
        assert_eq!(record(&json_line, json(Schema::Telemetry20250129)), object);
        assert!(record(&json_line, json(Schema::Telemetry20220701)).is_string());
        assert!(record(&json_line, view(Schema::Telemetry20221213)).is_string());
        assert!(record(&json_line, json(Schema::Logs20210318)).is_string());
        assert_eq!(
            record(&text_line, json(Schema::Telemetry20221213)),
            "plain text"
        );
        let extension = rendered(&every_event()[13], json(Schema::Telemetry20221213)).unwrap();
        assert_eq!(extension["type"], "extension");
    }

    #[test]
    fn restore_events_reach_only_schema_2022_12_13_and_later() {
        let restore = &every_event()[3..6];
        for event in restore {
            assert!(rendered(event, view(Schema::Telemetry20220701)).is_none());
            assert!(rendered(event, view(Schema::Logs20210318)).is_none());
        }
        let view = view(Schema::Telemetry20221213);
        assert_eq!(
            record(&restore[0], view),
            json!({ "functionName": "hello", "functionVersion": "1", "instanceMaxMemory": 256 })
        );
        assert_eq!(
            record(&restore[1], view),
            json!({ "status": "failure", "errorType": "Runtime.AfterRestoreError" })
        );
        assert_eq!(
            record(&restore[2], view),
            json!({ "status": "success", "metrics": { "durationMs": 15.19 } })
        );
        let report = record(&report(None, Some(Duration::from_micros(4_210))), view);
        assert_eq!(report["metrics"]["restoreDurationMs"], 4.21);
    }

    #[test]
    fn managed_instances_report_only_duration_and_response_spans() {
        let view = View {
            managed_instances: true,
            ..view(Schema::Telemetry20250129)
        };
        assert!(rendered(&runtime_done(Status::Success, None), view).is_none());
        let report = record(&report(None, None), view);
        assert_eq!(report["metrics"], json!({ "durationMs": 2599.4 }));
        let names: Vec<&str> = report["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["responseLatency", "responseDuration"]);
    }

    #[test]
    fn logs_api_records_are_the_legacy_ones() {
        let view = view(Schema::Logs20200815);
        let events = every_event();
        for event in &events[..6] {
            assert!(rendered(event, view).is_none(), "{event:?}");
        }
        assert!(rendered(&runtime_done(Status::Success, None), view).is_none());
        assert_eq!(
            record(&events[6], view),
            json!({ "requestId": "459921b5", "version": "$LATEST" })
        );
        assert_eq!(
            record(
                &report(
                    Some(Duration::from_micros(549_040)),
                    Some(Duration::from_millis(3))
                ),
                view
            ),
            json!({ "requestId": "459921b5", "metrics": {
                "durationMs": 2599.4, "billedDurationMs": 2600, "memorySizeMB": 128,
                "maxMemoryUsedMB": 94, "initDurationMs": 549.04,
            }})
        );
        assert_eq!(
            record(&events[10], view),
            json!({ "requestId": "459921b5" })
        );
        assert_eq!(
            record(&events[11], view),
            "RequestId: 459921b5 Process exited before completing request"
        );
        assert_eq!(
            record(&events[9], view),
            json!({ "name": "logger", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"] })
        );
    }

    #[test]
    fn subscriptions_are_told_to_subscribers_of_the_same_api() {
        let item = Item::Subscribed {
            api: Api::Logs,
            name: "logger".into(),
            types: vec![Kind::Platform, Kind::Function],
        };
        assert!(render(&item, at(0), view(Schema::Telemetry20220701)).is_none());
        let rendered = render(&item, at(0), view(Schema::Logs20200815)).unwrap();
        assert_eq!(rendered.kind, Kind::Platform);
        let object: Value = serde_json::from_str(&rendered.json).unwrap();
        assert_eq!(
            object,
            json!({
                "time": "2022-10-21T14:05:05.764Z", "type": "platform.logsSubscription",
                "record": { "name": "logger", "state": "Subscribed", "types": ["platform", "function"] },
            })
        );
        let dropped = Item::Dropped {
            reason: "slow".into(),
            records: 3,
            bytes: 120,
        };
        let object: Value = serde_json::from_str(
            &render(&dropped, at(0), view(Schema::Telemetry20220701))
                .unwrap()
                .json,
        )
        .unwrap();
        assert_eq!(
            object["record"],
            json!({ "reason": "slow", "droppedRecords": 3, "droppedBytes": 120 })
        );
    }
}
