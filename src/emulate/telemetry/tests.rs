//! The hub against real listeners: an HTTP listener that behaves like lambda-extension's (it
//! binds when it is ready, serves one accepted connection for good and binds again, and answers
//! 400 to a batch the crate's types cannot parse), and a plain TCP one.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

/// How a listener reads batches: as lambda-extension's telemetry or logs listener does.
#[derive(Debug, Clone, Copy)]
enum Parse {
    Telemetry,
    Logs,
}

/// One request a listener received.
#[derive(Debug)]
struct Received {
    path: String,
    content_type: Option<String>,
    records: Vec<Value>,
    status: StatusCode,
}

/// An HTTP listener like lambda-extension's.
struct Listener {
    port: u16,
    received: mpsc::UnboundedReceiver<Received>,
    connections: Arc<AtomicUsize>,
    /// Statuses to answer parseable batches with, in turn; 200 once they run out.
    script: Arc<Mutex<VecDeque<StatusCode>>>,
}

/// A port nobody listens on (for a moment).
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

impl Listener {
    /// Starts listening after `delay`, as the crate's listener task does after the
    /// subscription.
    async fn start(parse: Parse, delay: Duration) -> Listener {
        let port = free_port().await;
        let (tx, received) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (count, answers) = (connections.clone(), script.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            loop {
                let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                drop(listener);
                count.fetch_add(1, Ordering::SeqCst);
                let (tx, answers) = (tx.clone(), answers.clone());
                let service =
                    service_fn(move |request| answer(parse, request, tx.clone(), answers.clone()));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Listener {
            port,
            received,
            connections,
            script,
        }
    }

    /// The next request, within 5 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.received.recv())
            .await
            .expect("a batch within 5 s")
            .expect("the listener runs")
    }

    /// The records of every request received so far.
    fn records_so_far(&mut self) -> Vec<Value> {
        let mut records = Vec::new();
        while let Ok(received) = self.received.try_recv() {
            records.extend(received.records);
        }
        records
    }
}

/// Answers one batch as lambda-extension does: 400 when its types cannot parse it, else the
/// scripted status.
async fn answer(
    parse: Parse,
    request: http::Request<Incoming>,
    tx: mpsc::UnboundedSender<Received>,
    script: Arc<Mutex<VecDeque<StatusCode>>>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let path = request.uri().to_string();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let parsed = match parse {
        Parse::Telemetry => serde_json::from_slice::<Vec<lambda_extension::LambdaTelemetry>>(&body)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Parse::Logs => serde_json::from_slice::<Vec<lambda_extension::LambdaLog>>(&body)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    let status = match parsed {
        Ok(()) => script.lock().unwrap().pop_front().unwrap_or(StatusCode::OK),
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let records = serde_json::from_slice(&body).unwrap();
    let _ = tx.send(Received {
        path,
        content_type,
        records,
        status,
    });
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    Ok(response)
}

/// A hub whose diagnostics a test can read.
fn hub_with(config: HubConfig) -> (Arc<Hub>, mpsc::UnboundedReceiver<String>) {
    let (logs, lines) = LogSink::channel();
    let hub = Hub::new(HubConfig { logs, ..config });
    (hub, lines)
}

fn hub() -> (Arc<Hub>, mpsc::UnboundedReceiver<String>) {
    hub_with(HubConfig {
        retry_for: Duration::from_secs(3),
        ..HubConfig::default()
    })
}

/// A subscribe body for an HTTP listener on `port`.
fn body(schema: &str, port: u16, types: &[&str], buffering: Value) -> Vec<u8> {
    json!({
        "schemaVersion": schema,
        "types": types,
        "buffering": buffering,
        "destination": { "protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{port}") },
    })
    .to_string()
    .into_bytes()
}

fn line(n: usize) -> Event {
    Event::FunctionLine {
        line: format!("line {n}"),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// The `type` of each record.
fn types(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect()
}

/// Subscribes `extension` and checks Lambda's success answer.
fn subscribe(hub: &Hub, api: Api, extension: &str, body: &[u8]) {
    let answer = hub.subscribe(api, extension, body);
    assert_eq!(answer, Answer::ok(), "{}", String::from_utf8_lossy(body));
    assert_eq!(answer.body.to_string(), r#""OK""#);
}

#[tokio::test]
async fn batches_go_at_max_items_and_the_rest_waits_for_its_timeout_or_a_flush() {
    let mut listener = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let (hub, _) = hub();
    let buffering = json!({ "maxItems": 1000, "maxBytes": 1048576, "timeoutMs": 30000 });
    let body = body("2022-07-01", listener.port, &["function"], buffering);
    subscribe(&hub, Api::Telemetry, "ext", &body);
    hub.close_subscriptions();
    for n in 0..2500 {
        hub.emit(line(n));
    }
    let mut lines = Vec::new();
    for _ in 0..2 {
        let batch = listener.next().await;
        assert_eq!(batch.records.len(), 1000);
        assert_eq!(batch.path, "/");
        assert_eq!(batch.content_type.as_deref(), Some("application/json"));
        lines.extend(batch.records);
    }
    // The last 500 wait for their 30 s timeout...
    let early = tokio::time::timeout(Duration::from_millis(300), listener.received.recv()).await;
    assert!(early.is_err(), "a partial batch went early");
    // ...unless flushed: flush returns once they are delivered.
    hub.flush(soon()).await;
    lines.extend(listener.records_so_far());
    let expected: Vec<String> = (0..2500).map(|n| format!("line {n}")).collect();
    let got: Vec<&str> = lines
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected, "in order, each once");
    // One keep-alive connection carried every batch.
    assert_eq!(listener.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_partial_batch_goes_when_its_oldest_record_has_waited_timeout_ms() {
    let mut listener = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let (hub, _) = hub();
    let body = body(
        "2022-07-01",
        listener.port,
        &["function"],
        json!({ "timeoutMs": 100 }),
    );
    subscribe(&hub, Api::Telemetry, "ext", &body);
    let emitted = Instant::now();
    hub.emit(line(1));
    let batch = listener.next().await;
    let waited = emitted.elapsed();
    assert_eq!(types(&batch.records), ["function"]);
    assert!(waited >= Duration::from_millis(95), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
}

#[tokio::test]
async fn a_listener_that_binds_after_subscribing_gets_everything() {
    let mut listener = Listener::start(Parse::Telemetry, Duration::from_millis(400)).await;
    let (hub, _) = hub();
    let body = body(
        "2022-07-01",
        listener.port,
        &["platform", "function"],
        Value::Null,
    );
    subscribe(&hub, Api::Telemetry, "ext", &body);
    hub.emit(line(1));
    let started = Instant::now();
    hub.flush(soon()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "delivered before the listener bound"
    );
    let records = listener.records_so_far();
    assert_eq!(
        types(&records),
        ["platform.telemetrySubscription", "function"]
    );
}

#[tokio::test]
async fn init_events_are_replayed_to_extensions_that_subscribe_later() {
    let mut first = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let mut second = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let mut logs = Listener::start(Parse::Logs, Duration::ZERO).await;
    let (hub, _) = hub();
    let started = UNIX_EPOCH + Duration::from_millis(1_666_361_105_636);
    hub.emit_at(
        started,
        Event::InitStart {
            initialization_type: "on-demand",
            phase: Phase::Init,
            function_name: "hello".into(),
            function_version: "$LATEST".into(),
            instance_max_memory: 128,
        },
    );
    hub.emit(Event::FunctionLine {
        line: "init line".into(),
    });
    let all = &["platform", "function"];
    subscribe(
        &hub,
        Api::Telemetry,
        "first",
        &body("2022-07-01", first.port, all, Value::Null),
    );
    hub.emit(Event::InitRuntimeDone {
        initialization_type: "on-demand",
        phase: Phase::Init,
        status: Status::Success,
        error_type: None,
    });
    subscribe(
        &hub,
        Api::Telemetry,
        "second",
        &body("2022-12-13", second.port, all, Value::Null),
    );
    subscribe(
        &hub,
        Api::Logs,
        "logs",
        &body("2021-03-18", logs.port, all, Value::Null),
    );
    hub.close_subscriptions();
    hub.flush(soon()).await;
    let expected = [
        "platform.initStart",
        "function",
        "platform.telemetrySubscription",
        "platform.initRuntimeDone",
        "platform.telemetrySubscription",
    ];
    for listener in [&mut first, &mut second] {
        let records = listener.records_so_far();
        assert_eq!(types(&records), expected);
        // A replayed event keeps the time it happened at.
        assert_eq!(records[0]["time"], "2022-10-21T14:05:05.636Z");
        assert_eq!(records[2]["record"]["name"], "first");
        assert_eq!(records[4]["record"]["name"], "second");
    }
    // The Logs API has no init events, and only hears of its own API's subscriptions.
    assert_eq!(
        types(&logs.records_so_far()),
        ["function", "platform.logsSubscription"]
    );
    let late = hub.subscribe(
        Api::Telemetry,
        "late",
        &body("2022-07-01", 1234, all, Value::Null),
    );
    assert_eq!(late.status, StatusCode::FORBIDDEN);
    assert_eq!(
        late.body,
        json!({ "errorType": "Telemetry.SubscriptionClosed", "errorMessage": "Telemetry API subscription is closed already" })
    );
}

#[tokio::test]
async fn a_batch_the_extension_cannot_parse_is_dropped_and_reported() {
    // lambda-extension's default telemetry processor takes string lines: under the JSON log
    // format a 2022-12-13 subscription gets objects, and the crate answers 400 to the batch.
    let mut listener = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let (hub, mut diagnostics) = hub_with(HubConfig {
        log_format: LogFormat::Json,
        ..HubConfig::default()
    });
    let body = body(
        "2022-12-13",
        listener.port,
        &["platform", "function"],
        Value::Null,
    );
    subscribe(&hub, Api::Telemetry, "ext", &body);
    hub.close_subscriptions();
    hub.emit(Event::FunctionLine {
        line: r#"{"level":"INFO","message":"hi"}"#.into(),
    });
    hub.flush(soon()).await;
    let refused = listener.next().await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.records.len(), 2);
    hub.flush(soon()).await;
    let report = listener.next().await;
    assert_eq!(report.status, StatusCode::OK, "the report itself parses");
    assert_eq!(types(&report.records), ["platform.logsDropped"]);
    let record = &report.records[0]["record"];
    assert_eq!(record["droppedRecords"], 2);
    assert!(record["droppedBytes"].as_u64().unwrap() > 100);
    let reason = record["reason"].as_str().unwrap();
    let expected = format!(
        "could not send events: POST http://127.0.0.1:{}/ answered 400 Bad Request",
        listener.port
    );
    assert_eq!(reason, expected);
    let diagnostic = diagnostics.recv().await.unwrap();
    assert!(
        diagnostic.starts_with("[emulator] telemetry: dropped 2 records for extension ext: POST"),
        "{diagnostic}"
    );
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_batch_arrives_once() {
    let mut listener = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    listener.script.lock().unwrap().extend([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::INTERNAL_SERVER_ERROR,
    ]);
    let (hub, _) = hub();
    subscribe(
        &hub,
        Api::Telemetry,
        "ext",
        &body("2022-07-01", listener.port, &["function"], Value::Null),
    );
    hub.emit(line(7));
    hub.flush(soon()).await;
    let statuses: Vec<StatusCode> = [
        listener.next().await,
        listener.next().await,
        listener.next().await,
    ]
    .iter()
    .map(|r| r.status)
    .collect();
    assert_eq!(statuses, [503, 500, 200]);
    assert!(listener.received.try_recv().is_err());
}

#[tokio::test]
async fn a_subscriber_that_never_listens_is_given_up_after_the_retry_bound() {
    let port = free_port().await;
    let (hub, mut diagnostics) = hub_with(HubConfig {
        retry_for: Duration::from_millis(300),
        ..HubConfig::default()
    });
    subscribe(
        &hub,
        Api::Telemetry,
        "ext",
        &body("2022-07-01", port, &["function"], Value::Null),
    );
    hub.emit(line(1));
    let started = Instant::now();
    hub.flush(soon()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let diagnostic = diagnostics.recv().await.unwrap();
    assert!(
        diagnostic.contains("dropped 1 records for extension ext"),
        "{diagnostic}"
    );
    assert!(diagnostic.contains("(retried for"), "{diagnostic}");
}

#[tokio::test]
async fn flush_returns_at_its_deadline() {
    let port = free_port().await;
    let (hub, _) = hub();
    subscribe(
        &hub,
        Api::Telemetry,
        "ext",
        &body("2022-07-01", port, &["function"], Value::Null),
    );
    hub.emit(line(1));
    let started = Instant::now();
    hub.flush(Instant::now() + Duration::from_millis(200)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_slow_subscriber_loses_what_overflows_its_backlog_and_is_told() {
    // On this single-threaded runtime nothing is delivered while the test emits: the backlog
    // (four batches of 1,000) fills, and the rest is dropped.
    let mut listener = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let (hub, mut diagnostics) = hub();
    let buffering = json!({ "maxItems": 1000, "maxBytes": 1048576, "timeoutMs": 30000 });
    let body = body(
        "2022-07-01",
        listener.port,
        &["platform", "function"],
        buffering,
    );
    subscribe(&hub, Api::Telemetry, "ext", &body);
    hub.close_subscriptions();
    for n in 0..7000 {
        hub.emit(line(n));
    }
    hub.flush(soon()).await;
    let records = listener.records_so_far();
    assert_eq!(records.len(), 1 + 3999 + 1);
    assert_eq!(records[0]["type"], "platform.telemetrySubscription");
    let lines: Vec<&str> = records[1..4000]
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..3999).map(|n| format!("line {n}")).collect();
    assert_eq!(lines, expected);
    let dropped = &records[4000];
    assert_eq!(dropped["type"], "platform.logsDropped");
    assert_eq!(dropped["record"]["droppedRecords"], 3001);
    assert_eq!(
        dropped["record"]["reason"],
        "Some logs were dropped because the downstream consumer is slower than the logs production rate"
    );
    let diagnostic = diagnostics.recv().await.unwrap();
    assert!(
        diagnostic.contains("dropped 3001 records for extension ext"),
        "{diagnostic}"
    );
}

#[tokio::test]
async fn tcp_subscribers_get_ndjson_lines() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hub, _) = hub();
    let body = json!({
        "schemaVersion": "2022-07-01",
        "types": ["platform", "function"],
        "destination": { "protocol": "TCP", "port": port },
    });
    subscribe(&hub, Api::Telemetry, "ext", body.to_string().as_bytes());
    hub.close_subscriptions();
    hub.emit(Event::Start {
        request_id: "r1".into(),
        version: "$LATEST".into(),
        tracing: None,
        tenant_id: None,
    });
    hub.emit(line(1));
    hub.flush(soon()).await;
    let (stream, _) = listener.accept().await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut types = Vec::new();
    for _ in 0..3 {
        let line = lines.next_line().await.unwrap().unwrap();
        let _: lambda_extension::LambdaTelemetry = serde_json::from_str(&line).unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        types.push(value["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        [
            "platform.telemetrySubscription",
            "platform.start",
            "function"
        ]
    );
}

#[tokio::test]
async fn logs_api_subscribers_get_the_legacy_records_at_their_path() {
    let mut listener = Listener::start(Parse::Logs, Duration::ZERO).await;
    let (hub, _) = hub();
    let body = json!({
        "schemaVersion": "2021-03-18",
        "types": ["platform", "function"],
        "destination": {
            "protocol": "HTTP",
            "URI": format!("http://sandbox.localdomain:{}/lambda_logs", listener.port),
        },
    })
    .to_string();
    subscribe(&hub, Api::Logs, "logger", body.as_bytes());
    // The Logs API is idempotent: no second subscription, no second record.
    subscribe(&hub, Api::Logs, "logger", body.as_bytes());
    hub.close_subscriptions();
    for event in invocation("r1") {
        hub.emit(event);
    }
    hub.flush(soon()).await;
    let batch = listener.next().await;
    assert_eq!(batch.path, "/lambda_logs");
    assert_eq!(batch.status, StatusCode::OK, "lambda-extension parses it");
    assert_eq!(
        types(&batch.records),
        [
            "platform.logsSubscription",
            "platform.start",
            "function",
            "platform.runtimeDone",
            "platform.end",
            "platform.report",
            "platform.fault",
        ]
    );
}

/// The events of one failed invocation.
fn invocation(request_id: &str) -> Vec<Event> {
    let status = Status::Failure;
    vec![
        Event::Start {
            request_id: request_id.into(),
            version: "$LATEST".into(),
            tracing: Some(
                "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Parent=2be948a625588e32;Sampled=1".into(),
            ),
            tenant_id: None,
        },
        line(1),
        Event::RuntimeDone {
            request_id: request_id.into(),
            status,
            error_type: Some("Runtime.ExitError".into()),
            duration: Duration::from_millis(12),
            produced_bytes: None,
            response_latency: None,
            response_duration: None,
            tracing: None,
        },
        Event::End {
            request_id: request_id.into(),
        },
        Event::Report {
            request_id: request_id.into(),
            status,
            error_type: Some("Runtime.ExitError".into()),
            duration: Duration::from_millis(12),
            billed_ms: 13,
            memory_mb: 128,
            max_memory_mb: 20,
            init_duration: Some(Duration::from_millis(30)),
            restore_duration: None,
            extension_overhead: None,
            response_latency: None,
            response_duration: None,
            tracing: None,
        },
        Event::Fault {
            message: format!("RequestId: {request_id} Process exited before completing request"),
        },
    ]
}

#[tokio::test]
async fn subscribe_answers_as_lambda_does() {
    let (hub, _) = hub();
    let valid = body("2022-07-01", 9003, &["platform"], Value::Null);
    let error = |answer: Answer| (answer.status.as_u16(), answer.body["errorType"].clone());
    assert_eq!(
        error(hub.subscribe(Api::Telemetry, "a", b"{}")),
        (400, json!("ValidationError"))
    );
    assert_eq!(
        hub.subscribe(Api::Logs, "a", b"{}").body["errorMessage"],
        "destination is required; types should not be empty"
    );
    assert_eq!(
        error(hub.subscribe(Api::Logs, "a", b"{}")),
        (400, json!("Logs.ValidationError"))
    );
    subscribe(&hub, Api::Telemetry, "a", &valid);
    // One API per extension; a second Telemetry API subscription fails as in AWS's emulator.
    let other = hub.subscribe(
        Api::Logs,
        "a",
        &body("2020-08-15", 9002, &["platform"], Value::Null),
    );
    assert_eq!(error(other.clone()), (400, json!("Logs.ValidationError")));
    assert!(other.body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("subscribed to the Telemetry API already"));
    assert_eq!(
        error(hub.subscribe(Api::Telemetry, "a", &valid)),
        (500, json!("InternalServerError"))
    );
    assert!(hub.has_subscribers());
    hub.close_subscriptions();
    let closed = hub.subscribe(
        Api::Logs,
        "b",
        &body("2020-08-15", 9002, &["platform"], Value::Null),
    );
    assert_eq!(
        closed.body,
        json!({ "errorType": "Logs.SubscriptionClosed", "errorMessage": "Logs API subscription is closed already" })
    );
    assert_eq!(closed.status, StatusCode::FORBIDDEN);
    // Even a bad body is refused as bad first, as Lambda parses before it looks at its state.
    assert_eq!(error(hub.subscribe(Api::Telemetry, "b", b"[")).0, 400);
}

#[tokio::test]
async fn managed_instances_have_no_logs_api() {
    let (hub, _) = hub_with(HubConfig {
        managed_instances: true,
        ..HubConfig::default()
    });
    let answer = hub.subscribe(
        Api::Logs,
        "a",
        &body("2021-03-18", 9002, &["platform"], Value::Null),
    );
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body["errorType"], "Logs.NotSupported");
    let old = hub.subscribe(
        Api::Telemetry,
        "a",
        &body("2022-07-01", 9003, &["platform"], Value::Null),
    );
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
    subscribe(
        &hub,
        Api::Telemetry,
        "a",
        &body("2025-01-29", 9003, &["platform"], Value::Null),
    );
}

#[tokio::test]
async fn events_are_only_wanted_while_somebody_may_read_them() {
    let (idle, _) = hub();
    assert!(
        idle.wants_events(),
        "init's events are kept for subscribers to come"
    );
    assert!(!idle.has_subscribers());
    idle.close_subscriptions();
    assert!(!idle.wants_events());

    let mut listener = Listener::start(Parse::Telemetry, Duration::ZERO).await;
    let (hub, _) = hub();
    subscribe(
        &hub,
        Api::Telemetry,
        "ext",
        &body("2022-07-01", listener.port, &["function"], Value::Null),
    );
    hub.close_subscriptions();
    assert!(hub.wants_events() && hub.has_subscribers());
    hub.stop();
    assert!(!hub.wants_events());
    hub.emit(line(1));
    let started = Instant::now();
    hub.flush(soon()).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let nothing = tokio::time::timeout(Duration::from_millis(200), listener.received.recv()).await;
    assert!(nothing.is_err(), "nothing is delivered after stop");
}
