//! A Lambda Runtime API emulator: runs a function locally the way Lambda runs it, compatible
//! with AWS's Runtime Interface Emulator (`aws-lambda-rie`) but closer to the real service.
//!
//! The emulator serves Lambda's Invoke API (`POST /2015-03-31/functions/function/invocations`)
//! on [`EmulatorConfig::bind`] and gives every runtime instance its own Runtime API
//! (`/2018-06-01/runtime/...`). Compared to `aws-lambda-rie` it
//!
//! - answers function errors, crashes and timeouts with `X-Amz-Function-Error: Unhandled`;
//! - enforces Lambda's 6 MB request (413) and response (`Function.ResponseSizeTooLarge`) limits;
//! - kills a runtime that times out, and starts a fresh one (a new init) for the next invoke;
//! - reports a runtime that exits as `Runtime.ExitError` and restarts it;
//! - runs up to [`EmulatorConfig::concurrency`] instances, each handling one invocation at a
//!   time, and queues the rest instead of crashing;
//! - streams responses posted in `streaming` mode as they arrive;
//! - prints `START`, `END` and `REPORT` lines like Lambda's, with init duration and peak memory.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, ProcessLauncher};
//!
//! # async fn run() -> cargo_lambda_image::Result<()> {
//! let launcher = ProcessLauncher::new("target/lambda-image/hello/x86_64/bootstrap");
//! let emulator = Emulator::start(EmulatorConfig::default(), Arc::new(launcher)).await?;
//! println!("invoke with: curl -d '{{}}' {}", emulator.invoke_url());
//! # emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod docker_runner;
pub mod eventstream;
mod extensions;
pub mod format;
pub mod http_event;
mod http_front;
mod instance;
mod invoke;
pub mod launcher;
mod lifecycle;
mod pool;
pub mod rootfs;
mod run;
pub mod sandbox;
pub mod server;
mod snapstart;
pub(crate) mod telemetry;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::aws::CredentialSource;
use crate::error::{Error, Result};
use crate::FunctionSpec;

pub use launcher::{
    BoxFuture, Environment, Launcher, ProcessLauncher, RuntimeProcess, UnavailableLauncher,
};

/// Where log lines go: the runtime's output, and the emulator's `START`/`END`/`REPORT` lines.
#[derive(Clone)]
pub struct LogSink(Arc<dyn Fn(&str) + Send + Sync>);

impl LogSink {
    /// Calls `f` with each line (without its newline).
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> LogSink {
        LogSink(Arc::new(f))
    }

    /// Writes each line to stderr (the default).
    pub fn stderr() -> LogSink {
        LogSink::new(|line| eprintln!("{line}"))
    }

    /// Drops every line.
    pub fn discard() -> LogSink {
        LogSink::new(|_| {})
    }

    /// Sends each line to a channel, e.g. for a test to read.
    pub fn channel() -> (LogSink, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = LogSink::new(move |line| {
            // Nobody listening any more is fine: the lines are dropped.
            let _ = tx.send(line.to_string());
        });
        (sink, rx)
    }

    /// Emits one line.
    pub fn line(&self, line: &str) {
        (self.0)(line)
    }
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink(..)")
    }
}

impl Default for LogSink {
    fn default() -> LogSink {
        LogSink::stderr()
    }
}

/// How the emulator presents the function.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Where the Invoke API listens (default `127.0.0.1:8080`; port 0 picks a free port).
    pub bind: SocketAddr,
    /// `AWS_LAMBDA_FUNCTION_NAME`, and the name the Invoke API answers to besides `function`.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION` (default `$LATEST`).
    pub function_version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` in MB (default 128). Reported, not enforced.
    pub memory_mb: u32,
    /// How long an invocation may run (default 3 s, like Lambda).
    pub timeout: Duration,
    /// How long a new runtime may take to ask for its first event (default 10 s, like Lambda).
    pub init_timeout: Duration,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`, and the region in the function ARN.
    pub region: String,
    /// The account id in the function ARN.
    pub account_id: String,
    /// The function's own environment variables.
    pub env: BTreeMap<String, String>,
    /// `_HANDLER` (for custom runtimes, the image's `CMD`; any string for Rust functions).
    pub handler: String,
    /// How many runtime instances may run at once (default 1). Instances start on demand.
    pub concurrency: usize,
    /// The address each instance's Runtime API listens on (default `127.0.0.1`). A runtime in
    /// a container needs an address it can reach, e.g. the Docker bridge's.
    pub runtime_api_bind_ip: IpAddr,
    /// Where log lines go (default stderr).
    pub logs: LogSink,
    /// AWS credentials for the function (`--aws-credentials`); none by default, as a local
    /// run should not reach AWS unless asked to.
    pub credentials: Option<CredentialSource>,
    /// A runtime is only given an invocation if its credentials are still valid this long
    /// after the invocation's timeout (default 1 minute); an older one is stopped, and the
    /// next invocation starts a runtime with fresh credentials.
    pub credentials_margin: Duration,
    /// Aliases the function answers to as a qualifier, besides `$LATEST`, its version and
    /// version numbers (e.g. `deploy.alias`).
    pub aliases: Vec<String>,
    /// How long an Event invocation that failed waits before each retry (default 1 s and
    /// 2 s: two retries, as Lambda makes, which waits about 1 and 2 minutes).
    pub event_retry_delays: Vec<Duration>,
    /// How Lambda runs the function's environments: on demand (the default), restored from
    /// a SnapStart snapshot, or as Managed Instances serving several requests each.
    pub model: ExecutionModel,
    /// Whether every environment belongs to one tenant (`X-Amz-Tenant-Id`): never shared
    /// with another, reused for the same one. Invocations must then name their tenant, and
    /// otherwise must not.
    pub tenant_isolation: bool,
    /// The function's log format (`deploy.logging.format`), which decides the shape of the
    /// `function` and `extension` records the Telemetry API delivers.
    pub log_format: crate::config::values::LogFormat,
}

/// How Lambda runs a function's execution environments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutionModel {
    /// Each environment is initialized when an invocation needs it and serves one request
    /// at a time (`AWS_LAMBDA_INITIALIZATION_TYPE=on-demand`).
    #[default]
    OnDemand,
    /// SnapStart: the runtime is initialized, calls `restore/next` (where Lambda takes its
    /// snapshot) and is then restored (`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`).
    SnapStart {
        /// Whether the image carries `com.amazonaws.lambda.feature.snapstart=Allow`, which
        /// lets a runtime that never calls `restore/next` be snapshotted at its first `next`.
        label: bool,
    },
    /// Lambda Managed Instances: one environment serves up to this many requests at once
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`).
    ManagedInstances {
        /// `PerExecutionEnvironmentMaxConcurrency`.
        max_concurrency: u32,
    },
}

impl ExecutionModel {
    /// The label that lets Lambda snapshot an image whose runtime never calls `restore/next`.
    pub const SNAP_START_LABEL: (&'static str, &'static str) =
        ("com.amazonaws.lambda.feature.snapstart", "Allow");

    /// Lambda's largest `PerExecutionEnvironmentMaxConcurrency`.
    pub const MAX_CONCURRENCY_LIMIT: u32 = 1600;

    /// `AWS_LAMBDA_INITIALIZATION_TYPE`.
    pub fn initialization_type(&self) -> &'static str {
        match self {
            ExecutionModel::OnDemand => "on-demand",
            ExecutionModel::SnapStart { .. } => "snap-start",
            ExecutionModel::ManagedInstances { .. } => "lambda-managed-instances",
        }
    }

    /// How many requests one environment serves at once.
    pub fn per_environment(&self) -> usize {
        match self {
            ExecutionModel::ManagedInstances { max_concurrency } => *max_concurrency as usize,
            _ => 1,
        }
    }

    /// Whether invocations share one environment, as on Managed Instances.
    pub fn is_multi_concurrent(&self) -> bool {
        matches!(self, ExecutionModel::ManagedInstances { .. })
    }
}

impl fmt::Debug for EmulatorConfig {
    // The environment's values may be secrets: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("bind", &self.bind)
            .field("function_name", &self.function_name)
            .field("function_version", &self.function_version)
            .field("memory_mb", &self.memory_mb)
            .field("timeout", &self.timeout)
            .field("region", &self.region)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("handler", &self.handler)
            .field("concurrency", &self.concurrency)
            .field("model", &self.model)
            .field("tenant_isolation", &self.tenant_isolation)
            .field("credentials", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            function_name: "function".into(),
            function_version: "$LATEST".into(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            init_timeout: Duration::from_secs(10),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            env: BTreeMap::new(),
            handler: "bootstrap".into(),
            concurrency: 1,
            runtime_api_bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            logs: LogSink::stderr(),
            credentials: None,
            credentials_margin: Duration::from_secs(60),
            aliases: Vec::new(),
            event_retry_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            model: ExecutionModel::OnDemand,
            tenant_isolation: false,
            log_format: crate::config::values::LogFormat::Text,
        }
    }
}

impl EmulatorConfig {
    /// The settings of a planned function: name, memory, timeout, environment, handler and
    /// region; the rest keeps its default.
    pub fn from_spec(spec: &FunctionSpec) -> EmulatorConfig {
        let defaults = EmulatorConfig::default();
        EmulatorConfig {
            memory_mb: spec.memory,
            timeout: Duration::from_secs(u64::from(spec.timeout)),
            // `from-env` variables that are not set here are left unset: a local run needs
            // no deploy secrets.
            env: spec
                .environment(|var| std::env::var(var).ok(), false)
                .unwrap_or_else(|_| spec.env.clone()),
            handler: spec
                .image
                .command
                .as_ref()
                .and_then(|c| c.first())
                .cloned()
                .unwrap_or(defaults.handler.clone()),
            region: spec
                .deploy
                .region
                .clone()
                .unwrap_or(defaults.region.clone()),
            function_name: spec.lambda_name.clone(),
            aliases: spec.deploy.alias.iter().cloned().collect(),
            model: ExecutionModel::of_spec(spec),
            tenant_isolation: spec.deploy.tenant_isolation,
            log_format: spec.deploy.logging.format,
            ..defaults
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |setting: &'static str, message: &str, help: &str| {
            Err(Error::EmulatorConfig {
                setting,
                message: message.to_string(),
                help: help.to_string(),
            })
        };
        if self.concurrency == 0 {
            return invalid(
                "concurrency",
                "it is 0, so no invocation could ever run",
                "use 1 (one invocation at a time, like a function with reserved concurrency 1) or more",
            );
        }
        if self.timeout.is_zero() {
            return invalid(
                "timeout",
                "it is 0, so every invocation would time out",
                "use Lambda's range, 1 to 900 seconds",
            );
        }
        if self.init_timeout.is_zero() {
            return invalid(
                "init-timeout",
                "it is 0, so no runtime could start",
                "use Lambda's 10 seconds",
            );
        }
        match self.model {
            ExecutionModel::ManagedInstances { max_concurrency }
                if max_concurrency == 0
                    || max_concurrency > ExecutionModel::MAX_CONCURRENCY_LIMIT =>
            {
                return invalid(
                    "max-concurrency",
                    &format!("{max_concurrency} is outside Lambda's range"),
                    "use 1 to 1600 requests per execution environment",
                );
            }
            ExecutionModel::SnapStart { .. } if self.tenant_isolation => {
                return invalid(
                    "tenant-isolation",
                    "it is set with SnapStart, which Lambda refuses: tenant isolation mode does not support SnapStart",
                    "drop one of --tenant-isolation and --snap-start",
                );
            }
            _ => {}
        }
        if self.function_name.is_empty() {
            return invalid(
                "function-name",
                "it is empty",
                "set the function's name, e.g. the binary's",
            );
        }
        Ok(())
    }
}

impl ExecutionModel {
    /// The model `spec`'s deploy settings ask for: SnapStart (with its image label), Managed
    /// Instances, or on demand.
    pub fn of_spec(spec: &FunctionSpec) -> ExecutionModel {
        let (name, value) = ExecutionModel::SNAP_START_LABEL;
        if spec.deploy.snap_start {
            ExecutionModel::SnapStart {
                label: spec.image.labels.get(name).is_some_and(|v| v == value),
            }
        } else if let Some(managed) = &spec.deploy.managed_instances {
            ExecutionModel::ManagedInstances {
                max_concurrency: managed.concurrency(),
            }
        } else {
            ExecutionModel::OnDemand
        }
    }
}

/// A function to serve: its settings and how its runtimes start.
#[derive(Clone)]
pub struct FunctionSetup {
    /// Its settings; `function_name` is the name it is invoked by.
    pub config: EmulatorConfig,
    /// How its runtimes start.
    pub launcher: Arc<dyn Launcher>,
}

impl fmt::Debug for FunctionSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionSetup")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A running emulator. Dropping it kills its runtimes; [`Emulator::shutdown`] also waits for
/// the listener to close.
pub struct Emulator {
    addr: SocketAddr,
    functions: Arc<invoke::Functions>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    fronts: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field(
                "functions",
                &self.functions.pools.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Emulator {
    /// Serves one function on `config.bind`. No runtime starts until the first invocation.
    pub async fn start(config: EmulatorConfig, launcher: Arc<dyn Launcher>) -> Result<Emulator> {
        let bind = config.bind;
        Emulator::serve(bind, vec![FunctionSetup { config, launcher }]).await
    }

    /// Serves every function of `functions` on `bind`, each by its name.
    pub async fn serve(bind: SocketAddr, functions: Vec<FunctionSetup>) -> Result<Emulator> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| Error::EmulatorBind {
                what: "Invoke API".into(),
                addr: bind,
                source,
            })?;
        Emulator::serve_on(listener, functions).await
    }

    /// Serves every function of `functions` on a listener the caller bound (so that it can
    /// say which of its settings chose the address when binding fails).
    pub async fn serve_on(
        listener: TcpListener,
        functions: Vec<FunctionSetup>,
    ) -> Result<Emulator> {
        let mut pools = BTreeMap::new();
        for function in functions {
            function.config.validate()?;
            let name = function.config.function_name.clone();
            let pool = Arc::new(pool::Pool::new(function.config, function.launcher));
            if pools.insert(name.clone(), pool).is_some() {
                return Err(Error::EmulatorConfig {
                    setting: "function-name",
                    message: format!("two functions are named `{name}`"),
                    help: "serve each function under its own name".into(),
                });
            }
        }
        let addr = listener
            .local_addr()
            .map_err(|source| Error::EmulatorBind {
                what: "Invoke API".into(),
                addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                source,
            })?;
        let functions = Arc::new(invoke::Functions { pools });
        let router = invoke::router(functions.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Ok(Emulator {
            addr,
            functions,
            stop: Some(stop),
            server: Some(server),
            fronts: Default::default(),
        })
    }

    /// Serves `function` as plain HTTP on `listener`: each request becomes a `format` event
    /// (a Function URL or API Gateway in front of it), its answer an HTTP response.
    pub fn add_http_front(
        &self,
        listener: TcpListener,
        function: &str,
        format: http_event::HttpFormat,
    ) -> Result<SocketAddr> {
        let Some(pool) = self.functions.pools.get(function) else {
            return Err(Error::EmulatorConfig {
                setting: "http",
                message: format!("no function is served as `{function}`"),
                help: format!(
                    "name one of the served functions: {}",
                    self.function_names().join(", ")
                ),
            });
        };
        let addr = listener
            .local_addr()
            .map_err(|source| Error::EmulatorBind {
                what: format!("HTTP front of `{function}`"),
                addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                source,
            })?;
        let task = http_front::spawn(listener, pool.clone(), format);
        if let Ok(mut fronts) = self.fronts.lock() {
            fronts.push(task);
        }
        Ok(addr)
    }

    /// The Invoke API's address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/2015-03-31/functions/function/invocations`, the RIE's URL (which names
    /// the function when only one is served).
    pub fn invoke_url(&self) -> String {
        self.invoke_url_of("function")
    }

    /// `http://<addr>/2015-03-31/functions/<name>/invocations`.
    pub fn invoke_url_of(&self, name: &str) -> String {
        format!(
            "http://{}/2015-03-31/functions/{name}/invocations",
            self.addr
        )
    }

    /// The names the functions are served under.
    pub fn function_names(&self) -> Vec<String> {
        self.functions.pools.keys().cloned().collect()
    }

    /// Makes `launcher` start `name`'s runtimes from now on (e.g. a rebuilt image): idle
    /// runtimes stop at once, busy ones after their invocation, and later invocations start
    /// new ones. False if no function is served as `name`.
    pub fn replace_launcher(&self, name: &str, launcher: Arc<dyn Launcher>) -> bool {
        match self.functions.pools.get(name) {
            Some(pool) => {
                pool.replace(launcher);
                true
            }
            None => false,
        }
    }

    /// Stops every execution environment (each through Lambda's shutdown phase: SIGTERM to
    /// the runtime and `SHUTDOWN` to its extensions when extensions registered) and stops
    /// listening. Invocations in flight are answered (with `Runtime.ExitError`) if they can be
    /// within a second.
    pub async fn shutdown(mut self) {
        let instances = self.close();
        // Lambda's longest shutdown phase is 2 s; a little more covers the processes' exit.
        let _ = tokio::time::timeout(Duration::from_millis(2500), async {
            for instance in instances {
                instance.exited().await;
            }
        })
        .await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(1), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }

    fn close(&self) -> Vec<Arc<instance::Instance>> {
        if let Ok(mut fronts) = self.fronts.lock() {
            for front in fronts.drain(..) {
                front.abort();
            }
        }
        self.functions
            .pools
            .values()
            .flat_map(|pool| pool.close())
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.close();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_lambda_and_the_rie() {
        let config = EmulatorConfig::default();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.function_version, "$LATEST");
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.account_id, "123456789012");
        assert_eq!(config.concurrency, 1);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let zero = EmulatorConfig {
            concurrency: 0,
            ..Default::default()
        };
        assert!(matches!(
            zero.validate(),
            Err(Error::EmulatorConfig {
                setting: "concurrency",
                ..
            })
        ));
        let instant = EmulatorConfig {
            timeout: Duration::ZERO,
            ..Default::default()
        };
        assert!(instant.validate().is_err());
    }

    #[test]
    fn channel_sinks_receive_lines() {
        let (sink, mut rx) = LogSink::channel();
        sink.line("hello");
        assert_eq!(rx.try_recv().unwrap(), "hello");
    }
}
