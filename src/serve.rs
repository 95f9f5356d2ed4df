//! Serving planned functions on this machine (`serve`, `watch`, and `invoke` without
//! `--remote`): every function's image runs under one emulator, invoked by its Lambda name
//! through Lambda's Invoke and InvokeWithResponseStream APIs, each with its own settings
//! (memory, timeout, environment, aliases) and the chosen runner, and optionally behind an
//! HTTP front ([`crate::emulate::http_event::HttpFormat`]).
//!
//! The pipeline turns each built image into a [`FunctionSetup`] with [`setup`]; the caller
//! binds the addresses (so that an address in use is reported against its flag before
//! anything builds) and starts the emulator with [`start`]. `watch` swaps a rebuilt image in
//! with [`Emulator::replace_launcher`].

use std::net::SocketAddr;

use serde::Serialize;
use tokio::net::TcpListener;

use crate::config::FunctionSpec;
use crate::emulate::http_event::HttpFormat;
use crate::emulate::{Emulator, EmulatorConfig, FunctionSetup, LogSink, UnavailableLauncher};
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::progress::Reporter;
use crate::target::Arch;
use crate::testing::{launcher_for, LocalRun};

/// How functions are served.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Runner, environment, region and credentials.
    pub local: LocalRun,
    /// How many runtimes of each function may run at once (default 1).
    pub concurrency: Option<usize>,
}

/// An HTTP front to open: requests to `listener` become `format` events for `function`.
#[derive(Debug)]
pub struct HttpFront {
    /// The function's Lambda name (or its configured name, when that is unambiguous).
    pub function: String,
    /// Where the front listens.
    pub listener: TcpListener,
    /// The event shape.
    pub format: HttpFormat,
}

/// A served function, as `serve` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedFunction {
    /// The configured name.
    pub function: String,
    /// The name it is invoked by.
    pub lambda_name: String,
    /// The architecture.
    pub arch: Arch,
    /// The image's manifest digest.
    pub digest: String,
    /// Its Invoke URL.
    pub invoke_url: String,
    /// Its HTTP front, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

impl ServedFunction {
    /// The line `serve` prints for it: its Lambda name, arch, invoke URL and HTTP front.
    pub fn line(&self) -> String {
        let mut line = format!("{}\t{}\t{}", self.lambda_name, self.arch, self.invoke_url);
        if let Some(http) = &self.http {
            line.push_str(&format!("\thttp: {http}"));
        }
        line
    }

    /// The line `watch` prints when it swaps a rebuilt image in: name, arch, new digest.
    pub fn reloaded_line(&self) -> String {
        format!(
            "reloaded\t{}\t{}\t{}",
            self.lambda_name, self.arch, self.digest
        )
    }
}

/// `spec`'s `image` ready to serve: the runner's launcher and the function's settings. Its
/// log lines go to `reporter`, each prefixed with its Lambda name.
pub async fn setup(
    spec: &FunctionSpec,
    image: &BuiltImage,
    options: &ServeOptions,
    reporter: &Reporter,
) -> Result<FunctionSetup> {
    let launcher = launcher_for(options.local.runner, spec, image, reporter).await?;
    Ok(FunctionSetup {
        config: config_for(spec, options, reporter)?,
        launcher,
    })
}

/// `spec` served without an image yet (its build failed): every invocation is an error
/// saying `reason`, until [`Emulator::replace_launcher`] gives it one.
pub fn unavailable(
    spec: &FunctionSpec,
    options: &ServeOptions,
    reporter: &Reporter,
    reason: &str,
) -> Result<FunctionSetup> {
    Ok(FunctionSetup {
        config: config_for(spec, options, reporter)?,
        launcher: std::sync::Arc::new(UnavailableLauncher {
            reason: reason.to_string(),
        }),
    })
}

fn config_for(
    spec: &FunctionSpec,
    options: &ServeOptions,
    reporter: &Reporter,
) -> Result<EmulatorConfig> {
    let mut config = options.local.emulator_config(spec)?;
    if let Some(concurrency) = options.concurrency {
        config.concurrency = concurrency;
    }
    let logs = reporter.clone();
    let name = spec.lambda_name.clone();
    config.logs = LogSink::new(move |line| logs.line(format!("[{name}] {line}")));
    Ok(config)
}

/// The Lambda name `wanted` stands for among `functions` (Lambda names first, then
/// configured names); `flag` names where it was given, for the error when it is none or
/// several of them.
pub fn resolve_function<'a>(
    wanted: &str,
    functions: &'a [FunctionSpec],
    flag: &str,
) -> Result<&'a str> {
    if let Some(spec) = functions.iter().find(|f| f.lambda_name == wanted) {
        return Ok(&spec.lambda_name);
    }
    let named: Vec<&FunctionSpec> = functions.iter().filter(|f| f.name == wanted).collect();
    let list = |specs: &mut dyn Iterator<Item = &FunctionSpec>| {
        specs
            .map(|f| f.lambda_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let invalid = |message: String, help: &str| Error::InvalidValue {
        source_: Box::new(crate::error::Source::Cli {
            flag: flag.to_string(),
        }),
        key: flag.trim_start_matches('-').to_string(),
        message,
        help: help.to_string(),
    };
    match named.as_slice() {
        [one] => Ok(&one.lambda_name),
        [] => Err(invalid(
            format!(
                "`{wanted}` is not among the selected functions ({})",
                list(&mut functions.iter())
            ),
            "name a selected function, or select its package with -p",
        )),
        _ => Err(invalid(
            format!(
                "`{wanted}` is built for several architectures ({})",
                list(&mut named.iter().copied())
            ),
            "name one of them by its Lambda name, or pick one with --arch",
        )),
    }
}

/// Starts the emulator on `listener` with every function of `setups`, and opens `fronts`.
pub async fn start(
    listener: TcpListener,
    setups: Vec<FunctionSetup>,
    fronts: Vec<HttpFront>,
) -> Result<(Emulator, Vec<(String, SocketAddr)>)> {
    let emulator = Emulator::serve_on(listener, setups).await?;
    let mut opened = Vec::new();
    for front in fronts {
        let addr = emulator.add_http_front(front.listener, &front.function, front.format)?;
        opened.push((front.function, addr));
    }
    Ok((emulator, opened))
}

/// Binds `addr` for what `flag` chose, with an error naming both when it is taken.
pub async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::EmulatorBind {
            what: format!("address given by {flag}"),
            addr,
            source,
        })
}

/// What `invoke` got back, locally or from the deployed function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoked {
    /// The function invoked (its Lambda name, or the name or ARN given).
    pub function: String,
    /// Whether it was the deployed function (`--remote`).
    pub remote: bool,
    /// The Invoke API's HTTP status.
    pub status: u16,
    /// The version that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed_version: Option<String>,
    /// The error type of a function error (`X-Amz-Function-Error`, or the stream's
    /// `ErrorCode`).
    pub function_error: Option<String>,
    /// The response: JSON when it parses as JSON, else a string.
    #[serde(serialize_with = "json_or_string")]
    pub response: String,
    /// The end of the invocation's log (Lambda's 4 KB tail), decoded.
    pub log_tail: Option<String>,
}

impl Invoked {
    /// Whether the function answered without an error.
    pub fn succeeded(&self) -> bool {
        self.status / 100 == 2 && self.function_error.is_none()
    }
}

fn json_or_string<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.serialize(serializer),
        Err(_) => serializer.serialize_str(text),
    }
}

/// Invokes `setup`'s function once under a fresh emulator (on a free port), with its log tail,
/// then stops the emulator.
pub async fn invoke_once(
    setup: FunctionSetup,
    payload: Vec<u8>,
    tenant_id: Option<&str>,
) -> Result<Invoked> {
    let name = setup.config.function_name.clone();
    let timeout = setup.config.timeout;
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), "invoke").await?;
    let emulator = Emulator::serve_on(listener, vec![setup]).await?;
    let url = emulator.invoke_url_of(&name);
    let result = post_invoke(&url, payload, timeout, tenant_id).await;
    emulator.shutdown().await;
    let mut invoked = result?;
    invoked.function = name;
    Ok(invoked)
}

/// POSTs one RequestResponse invocation with `X-Amz-Log-Type: Tail` to an Invoke URL.
async fn post_invoke(
    url: &str,
    payload: Vec<u8>,
    timeout: std::time::Duration,
    tenant_id: Option<&str>,
) -> Result<Invoked> {
    use base64::Engine;
    let emulation = |message: String| Error::Emulation { message };
    let client = crate::testing::http_client(url, timeout + std::time::Duration::from_secs(30))
        .map_err(|e| emulation(e.to_string()))?;
    let mut request = client
        .post(url)
        .header("x-amz-log-type", "Tail")
        .header("content-type", "application/json")
        .body(payload);
    if let Some(tenant) = tenant_id {
        request = request.header("x-amz-tenant-id", tenant);
    }
    let response = request
        .send()
        .await
        .map_err(|e| emulation(format!("invoking {url}: {e}")))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = response.status().as_u16();
    let function_error = header("x-amz-function-error");
    let executed_version = header("x-amz-executed-version");
    let log_tail = header("x-amz-log-result").and_then(|b64| {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    });
    let body = response
        .bytes()
        .await
        .map_err(|e| emulation(format!("reading the response: {e}")))?;
    // A function error's type is in its body; the header only says it was unhandled.
    let function_error = function_error.map(|header| {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errorType"].as_str().map(str::to_string))
            .unwrap_or(header)
    });
    Ok(Invoked {
        function: String::new(),
        remote: false,
        status,
        executed_version,
        function_error,
        response: String::from_utf8_lossy(&body).into_owned(),
        log_tail,
    })
}
