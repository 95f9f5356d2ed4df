//! Fuzzing of the parsers, as property tests: the Invoke API's request check (arbitrary
//! requests, raw, to a running emulator), the HTTP front's event mapping (arbitrary requests to
//! events, arbitrary function results to responses), the Runtime API's handling of what runtimes
//! post (this test plays the runtime and posts arbitrary responses and errors), env files, and
//! the `[package.metadata.lambda]` tables. None may panic or hang; each answer is one Lambda
//! gives. CI runs a short round; `PROPTEST_CASES=100000 cargo test --test integration fuzz::`
//! runs a longer one. A failure proptest finds is kept in `tests/fuzz.proptest-regressions` and
//! tried first on every later run, and becomes a named regression test below.

use crate::support;

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cargo_lambda_image::emulate::http_event::{self, HttpFormat, RequestInfo};
use cargo_lambda_image::emulate::{
    Emulator, EmulatorConfig, Launcher, LogSink, ProcessLauncher, RuntimeProcess,
};
use cargo_lambda_image::target::Arch;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::http::{self as raw, Response};

/// `cases` unless `PROPTEST_CASES` asks for another number.
fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// A header value: mostly printable, sometimes any bytes at all.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(0x20u8..0x7f, 0..40),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

/// A body: JSON (valid or not), or any bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => "[{}\\[\\]\":,0-9a-z \\\\]{0,60}".prop_map(String::into_bytes),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// -------------------------------------------------------------------------------------------
// The Invoke API's request check

/// An emulator serving the echo fixture, on a runtime of its own that outlives the test's
/// synchronous requests.
fn echo_emulator() -> (tokio::runtime::Runtime, Emulator) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bootstrap = support::images::echo_bootstrap(Arch::X86_64);
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        function_name: "echo".into(),
        timeout: Duration::from_secs(5),
        aliases: vec!["live".into()],
        ..Default::default()
    };
    let emulator = runtime
        .block_on(Emulator::start(
            config,
            Arc::new(ProcessLauncher::new(bootstrap)),
        ))
        .expect("the emulator starts");
    (runtime, emulator)
}

/// An Invoke API request: the function reference, the query, the headers and the body.
type InvokeRequest = (String, String, Vec<(String, Vec<u8>)>, Vec<u8>);

/// An Invoke API request: a function reference (the name, another, ARNs, qualifiers, junk),
/// a query, some of Lambda's headers with any values, and a body.
fn invoke_request() -> impl Strategy<Value = InvokeRequest> {
    let function = prop_oneof![
        Just("echo".to_string()),
        Just("echo:live".to_string()),
        Just("echo:$LATEST".to_string()),
        Just("arn:aws:lambda:us-east-1:123456789012:function:echo".to_string()),
        "[a-zA-Z0-9:%$._-]{0,30}",
    ];
    let query = prop_oneof![
        Just(String::new()),
        "Qualifier=[a-zA-Z0-9%$+]{0,10}",
        "[a-zA-Z0-9=&%]{0,20}"
    ];
    let header = (
        prop_oneof![
            Just("X-Amz-Invocation-Type".to_string()),
            Just("X-Amz-Client-Context".to_string()),
            Just("X-Amz-Log-Type".to_string()),
            Just("X-Amz-Cognito-Identity".to_string()),
            Just("X-Amzn-Trace-Id".to_string()),
            "[A-Za-z-]{1,20}",
        ],
        header_value(),
    );
    (
        function,
        query,
        proptest::collection::vec(header, 0..4),
        body(),
    )
}

/// What a request of [`invoke_request`] sends, whole (path segments percent-encoded as an SDK
/// does; header bytes as they come, which may not be HTTP at all).
fn encode_invoke(
    addr: &str,
    function: &str,
    query: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Vec<u8> {
    let function: String = percent_encode(function);
    let mut request = format!("POST /2015-03-31/functions/{function}/invocations");
    if !query.is_empty() {
        request.push('?');
        request.push_str(query);
    }
    let mut bytes =
        format!("{request} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An error of the Invoke API: JSON with Lambda's error type.
fn is_lambda_error(answer: &Response) -> bool {
    let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
    json.is_some_and(|j| {
        j["errorType"]
            .as_str()
            .is_some_and(|t| t.ends_with("Exception"))
    })
}

#[test]
fn fuzz_the_invoke_apis_request_check() {
    let (_runtime, emulator) = echo_emulator();
    let addr = emulator.local_addr().to_string();
    proptest!(cases(128), |(request in invoke_request())| {
        let (function, query, headers, body) = request;
        let bytes = encode_invoke(&addr, &function, &query, &headers, &body);
        match raw::send_raw(&addr, &bytes, Duration::from_secs(20)) {
            Ok(answer) => match answer.status {
                // Run (echoed, or an event accepted, or a dry run): only for the function
                // itself and a JSON body (or none).
                200 => {
                    let sent: Value = if body.is_empty() { json!({}) } else {
                        serde_json::from_slice(&body).expect("an invocation with a body that is not JSON was run")
                    };
                    if answer.header("x-amz-function-error").is_none() {
                        prop_assert_eq!(answer.json(), sent);
                    }
                }
                202 | 204 => {}
                400 | 404 | 413 => prop_assert!(is_lambda_error(&answer) || answer.body.is_empty(), "{:?}", answer),
                // hyper's own answers to what is not HTTP.
                431 => {}
                other => prop_assert!(false, "status {} for {:?}: {:?}", other, String::from_utf8_lossy(&bytes), answer),
            },
            // Not HTTP at all: the connection may be closed without an answer, but never held.
            Err(e) => prop_assert!(e.kind() != io::ErrorKind::WouldBlock, "no answer: {}", e),
        }
    });
    // Still up, and right.
    let answer = raw::post(&emulator.invoke_url(), br#"{"after":"fuzzing"}"#).unwrap();
    assert_eq!(answer.json(), json!({"after": "fuzzing"}));
}

// -------------------------------------------------------------------------------------------
// The HTTP front's event mapping

/// An HTTP request as a front receives it: method, path, query, headers, body.
fn http_request() -> impl Strategy<Value = http::request::Parts> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH"),
        Just("OPTIONS"),
        Just("HEAD"),
    ];
    let header = ("[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,20}", header_value());
    (
        method,
        "(/[a-zA-Z0-9%._~!$&'()*+,;=:@-]{0,12}){0,4}",
        prop_oneof![Just(None), "[a-zA-Z0-9=&%+._-]{0,40}".prop_map(Some)],
        proptest::collection::vec(header, 0..8),
    )
        .prop_filter_map("not a valid request", |(method, path, query, headers)| {
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            let uri = match query {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut builder = http::Request::builder().method(method).uri(uri);
            for (name, value) in headers {
                let value = http::HeaderValue::from_bytes(&value).ok()?;
                builder = builder.header(name.as_str(), value);
            }
            builder.body(()).ok().map(|r| r.into_parts().0)
        })
}

fn info() -> RequestInfo {
    RequestInfo {
        source_ip: "203.0.113.9".parse().unwrap(),
        request_id: "fuzz".into(),
        time: std::time::SystemTime::now(),
        account_id: "123456789012".into(),
        function_name: "echo".into(),
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// Every request becomes an event of its format that the runtime libraries read
    /// (`aws_lambda_events`' own types, which `lambda_http` deserializes).
    #[test]
    fn fuzz_http_requests_become_events_the_runtime_reads(parts in http_request(), body in body()) {
        for format in HttpFormat::ALL {
            let event = http_event::request_event(format, &parts, &body, &info());
            let read = match format {
                HttpFormat::ApigwV2 => serde_json::from_value::<aws_lambda_events::apigw::ApiGatewayV2httpRequest>(event.clone()).map(drop),
                HttpFormat::ApigwV1 => serde_json::from_value::<aws_lambda_events::apigw::ApiGatewayProxyRequest>(event.clone()).map(drop),
                HttpFormat::Alb => serde_json::from_value::<aws_lambda_events::alb::AlbTargetGroupRequest>(event.clone()).map(drop),
            };
            prop_assert!(read.is_ok(), "{} event not readable: {:?}\n{}", format, read, event);
        }
    }

    /// Any result of a function becomes a response or the front's error, never a panic; a
    /// response's status is a real HTTP status.
    #[test]
    fn fuzz_function_results_become_responses(payload in prop_oneof![
        body(),
        (json_value(), json_value(), json_value(), any::<bool>()).prop_map(|(status, headers, body, b64)| {
            json!({"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": b64, "cookies": headers}).to_string().into_bytes()
        }),
    ]) {
        for format in HttpFormat::ALL {
            if let Ok((head, _)) = http_event::buffered_response(format, &payload) {
                prop_assert!((100..=599).contains(&head.status), "status {}", head.status);
                for (name, value) in &head.headers {
                    prop_assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok(), "header name {:?}", name);
                    prop_assert!(http::HeaderValue::from_str(value).is_ok(), "header value {:?}", value);
                }
            }
        }
    }

    /// A streamed response's prelude is found, absent, or waited for; a body never starts
    /// past the bytes read.
    #[test]
    fn fuzz_streamed_preludes(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (json_value(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(v, rest)| {
            let mut b = v.to_string().into_bytes();
            b.extend_from_slice(&[0; 8]);
            b.extend(rest);
            b
        }),
    ]) {
        if let http_event::Prelude::Found { head, body_start } = http_event::split_prelude(&bytes) {
            prop_assert!(body_start <= bytes.len());
            prop_assert!((100..=599).contains(&head.status));
        }
    }

    /// Env files: any text is read or refused with an error naming the file, never a panic;
    /// plain `KEY=value` lines are read as written.
    #[test]
    fn fuzz_env_files(text in ".{0,200}", pairs in proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,10}", "[a-zA-Z0-9 ./:@-]{0,20}", 0..6)) {
        let path = std::path::Path::new("fuzz.env");
        if let Err(e) = cargo_lambda_image::envfile::parse_dotenv(path, &text) {
            prop_assert!(e.to_string().contains("fuzz.env"), "{}", e);
        }
        let reserved = |k: &str| cargo_lambda_image::lambda::is_reserved_env(k);
        let pairs: BTreeMap<String, String> = pairs.into_iter().filter(|(k, _)| !reserved(k)).collect();
        let file: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let read = cargo_lambda_image::envfile::parse_dotenv(path, &file).unwrap();
        let read: BTreeMap<String, String> = read.into_iter().map(|v| (v.key, v.value)).collect();
        let trimmed: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k, v.trim().to_string())).collect();
        prop_assert_eq!(read, trimmed);
    }

    /// `[package.metadata.lambda]` tables of the known keys with values of any type: read or
    /// refused with an error naming the manifest, never a panic.
    #[test]
    fn fuzz_metadata_tables(table in metadata_table()) {
        let source = cargo_lambda_image::error::Source::Manifest {
            path: "/w/Cargo.toml".into(),
            table: "package.metadata.lambda".into(),
        };
        if let Err(e) = cargo_lambda_image::config::schema::validate(&table, &source, true) {
            prop_assert!(e.to_string().contains("Cargo.toml") || format!("{e:?}").contains("Cargo.toml"), "{}", e);
        }
    }
}

/// A table of the metadata's keys (and some unknown ones), nested as the schema nests them,
/// with values of any JSON type.
fn metadata_table() -> impl Strategy<Value = Value> {
    let top = prop_oneof![
        Just("function-name"),
        Just("arch"),
        Just("libc"),
        Just("compiler"),
        Just("base-image"),
        Just("memory"),
        Just("timeout"),
        Just("ephemeral-storage"),
        Just("description"),
        Just("role"),
        Just("env"),
        Just("tags"),
        Just("image"),
        Just("deploy"),
        Just("test"),
        Just("bin"),
        Just("cross-image"),
        Just("memroy"),
    ];
    let nested = prop_oneof![
        Just("repository"),
        Just("tag"),
        Just("entrypoint"),
        Just("include"),
        Just("region"),
        Just("publish"),
        Just("alias"),
        Just("vpc"),
        Just("logging"),
        Just("url"),
        Just("async"),
        Just("ecr"),
        Just("keep"),
        Just("format"),
        Just("subnets"),
        Just("events"),
        Just("auth"),
    ];
    let inner = proptest::collection::btree_map(nested, json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    proptest::collection::btree_map(top, prop_oneof![json_value(), inner], 0..6)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

// -------------------------------------------------------------------------------------------
// The Runtime API's handling of what runtimes post

/// A "runtime" that is this test: each launch starts a process that only waits, and hands the
/// test the Runtime API's address, so that the test can take invocations and post anything.
struct TestRuntime {
    apis: Mutex<mpsc::Sender<String>>,
}

impl Launcher for TestRuntime {
    fn launch(
        &self,
        env: &BTreeMap<String, String>,
        _logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let api = env["AWS_LAMBDA_RUNTIME_API"].clone();
        let _ = self.apis.lock().unwrap().send(api);
        let child = tokio::process::Command::new("sleep")
            .arg("3600")
            .kill_on_drop(true)
            .spawn()?;
        Ok(Box::new(child))
    }
}

/// What the test posts as the runtime: to `/response` or `/error` (or for another request id),
/// with some of the Runtime API's headers, in one piece or streamed, and a body.
#[derive(Debug, Clone)]
struct Posted {
    path: &'static str,
    wrong_id: bool,
    headers: Vec<(&'static str, Vec<u8>)>,
    streamed: bool,
    body: Vec<u8>,
}

fn posted() -> impl Strategy<Value = Posted> {
    let header = (
        prop_oneof![
            Just("Lambda-Runtime-Function-Error-Type"),
            Just("Lambda-Runtime-Function-Response-Mode"),
            Just("Content-Type"),
            Just("Lambda-Runtime-Function-Error-Body"),
        ],
        prop_oneof![
            header_value(),
            Just(b"streaming".to_vec()),
            Just(b"application/vnd.awslambda.http-integration-response".to_vec()),
        ],
    );
    (
        prop_oneof![Just("response"), Just("error")],
        proptest::bool::weighted(0.1),
        proptest::collection::vec(header, 0..3),
        any::<bool>(),
        prop_oneof![
            body(),
            (json_value(), body()).prop_map(|(prelude, rest)| {
                let mut b = prelude.to_string().into_bytes();
                b.extend_from_slice(&[0; 8]);
                b.extend(rest);
                b
            }),
        ],
    )
        .prop_map(|(path, wrong_id, headers, streamed, body)| Posted {
            path,
            wrong_id,
            headers,
            streamed,
            body,
        })
}

fn runtime_post(api: &str, id: &str, posted: &Posted) -> io::Result<Response> {
    let id = if posted.wrong_id {
        "not-the-request"
    } else {
        id
    };
    let mut bytes = format!(
        "POST /2018-06-01/runtime/invocation/{id}/{} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n",
        posted.path
    )
    .into_bytes();
    for (name, value) in &posted.headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    if posted.streamed {
        bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in posted.body.chunks(7) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes
            .extend_from_slice(format!("Content-Length: {}\r\n\r\n", posted.body.len()).as_bytes());
        bytes.extend_from_slice(&posted.body);
    }
    raw::send_raw(api, &bytes, Duration::from_secs(10))
}

/// Takes the next invocation as the runtime: its request id, from the newest runtime (a
/// runtime the emulator gave up on is replaced, with a new Runtime API).
fn next_invocation(apis: &mpsc::Receiver<String>, api: &mut String) -> String {
    loop {
        while let Ok(newer) = apis.try_recv() {
            *api = newer;
        }
        let request = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
        match raw::send_raw(api, request.as_bytes(), Duration::from_secs(10)) {
            Ok(next) if next.status == 200 => {
                return next
                    .header("lambda-runtime-aws-request-id")
                    .unwrap()
                    .to_string();
            }
            // This runtime is gone: wait for the next one.
            _ => {
                *api = apis
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a new runtime is launched")
            }
        }
    }
}

#[test]
fn fuzz_what_runtimes_post() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tx, apis) = mpsc::channel();
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        function_name: "played".into(),
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let emulator = runtime
        .block_on(Emulator::start(
            config,
            Arc::new(TestRuntime {
                apis: Mutex::new(tx),
            }),
        ))
        .expect("the emulator starts");
    let url = emulator.invoke_url();
    let api = Mutex::new(String::new());
    proptest!(cases(64), |(posted in posted())| {
        let mut api = api.lock().unwrap();
        let client = {
            let url = url.clone();
            std::thread::spawn(move || raw::post(&url, br#"{"played":true}"#))
        };
        let id = next_invocation(&apis, &mut api);
        let _ = runtime_post(&api, &id, &posted);
        let answer = client.join().unwrap().expect("the invocation is answered");
        // A response, a function error, or the emulator's error for a broken runtime (an
        // invocation nobody answered times out as Lambda's does): all with Lambda's statuses.
        prop_assert!(matches!(answer.status, 200 | 413 | 502), "{:?} for {:?}", answer, posted);
        if answer.status != 200 {
            prop_assert!(is_lambda_error(&answer), "{:?}", answer);
        }
    });
}
