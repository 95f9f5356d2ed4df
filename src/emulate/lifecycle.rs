//! The processes of one execution environment from start to shutdown, as Lambda runs them:
//! the external extensions start first and register, then the runtime starts; an extension
//! that crashes or reports an error fails the environment; and at the end comes the shutdown
//! phase.
//!
//! The shutdown phase (on a stop, a timeout, a crash, a `watch` swap) follows Lambda's rules:
//! with no extension registered the runtime is killed at once; otherwise the runtime gets
//! SIGTERM and up to 300 ms (500 ms when only internal extensions registered) to exit, then
//! the external extensions subscribed to `SHUTDOWN` get it, and whatever still runs when the
//! budget (2,000 ms with external extensions, 500 ms with internal ones only) is spent is
//! killed.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use super::extensions::{Extensions, Fatal, ShutdownReason};
use super::format;
use super::launcher::{Environment, Launcher, RuntimeProcess};
use super::telemetry::Hub;
use super::LogSink;

/// How a runtime process ended.
#[derive(Debug, Clone)]
pub(crate) enum Exit {
    /// It exited on its own.
    Status(std::process::ExitStatus),
    /// The emulator killed it.
    Killed,
    /// Waiting for it failed (the launcher lost track of it).
    Lost(String),
    /// It could not be started (after its extensions): why.
    NotStarted(String),
}

/// The shutdown budget when some external extension registered.
const BUDGET_EXTERNAL: Duration = Duration::from_millis(2000);
/// The shutdown budget when only internal extensions registered.
const BUDGET_INTERNAL: Duration = Duration::from_millis(500);
/// The runtime's share of the budget when external extensions registered.
const RUNTIME_SHARE_EXTERNAL: Duration = Duration::from_millis(300);

/// What the lifecycle task is told and tells.
pub(crate) struct Handles {
    /// The extensions' registry.
    pub extensions: Arc<Extensions>,
    /// Set (with the reason) when the environment must shut down.
    pub stop: watch::Receiver<Option<ShutdownReason>>,
    /// Where the runtime's exit is published.
    pub exit: watch::Sender<Option<Exit>>,
    /// Told the runtime's pid once it started.
    pub pid: Arc<std::sync::OnceLock<u32>>,
    /// The environment's log sink, for the emulator's own lines.
    pub logs: LogSink,
    /// Where the runtime's output goes (the log sink, and `function` telemetry).
    pub runtime_logs: LogSink,
    /// Where the extensions' output goes (the log sink, and `extension` telemetry).
    pub extension_logs: LogSink,
    /// The environment's telemetry, flushed before `SHUTDOWN` goes out and stopped at the end.
    pub telemetry: Arc<Hub>,
    /// Told an extension failure, to answer the invocations in flight.
    pub on_failure: Box<dyn Fn(&Fatal) + Send + Sync>,
    /// How long init may take (the extensions' registration included).
    pub init_timeout: Duration,
}

/// Runs the environment's lifecycle in a task of its own: with its runtime `started` already
/// when it has no external extensions, else starting them and then the runtime. `env` is the
/// runtime's environment, `extension_env` the extensions'.
pub(crate) fn spawn(
    launcher: Arc<dyn Launcher>,
    started: Option<Box<dyn RuntimeProcess>>,
    env: BTreeMap<String, String>,
    extension_env: BTreeMap<String, String>,
    handles: Handles,
) {
    tokio::spawn(run(launcher, started, env, extension_env, handles));
}

/// A running extension process: it reports its exit, and is killed when told. (Lambda sends
/// extensions no signal: they stop on `SHUTDOWN`, or are killed.)
struct ExtensionProcess {
    name: String,
    /// Set to kill the process.
    kill: watch::Sender<bool>,
}

async fn run(
    launcher: Arc<dyn Launcher>,
    started: Option<Box<dyn RuntimeProcess>>,
    env: BTreeMap<String, String>,
    extension_env: BTreeMap<String, String>,
    mut handles: Handles,
) {
    let launched = Instant::now();
    let (exited_tx, mut exited_rx) = mpsc::unbounded_channel::<ExtensionExit>();
    let mut extensions = Vec::new();
    let names = handles.extensions.external().to_vec();
    let runtime = if let Some(runtime) = started {
        Ok(runtime)
    } else {
        let logs = handles.runtime_logs.clone();
        let environment = tokio::task::spawn_blocking({
            let launcher = launcher.clone();
            move || launcher.environment(&env, &logs)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|e| e);
        match environment {
            Ok(environment) => {
                let exits = (&exited_tx, &mut exited_rx);
                start_external(
                    environment,
                    &names,
                    &extension_env,
                    &mut handles,
                    launched,
                    exits,
                    &mut extensions,
                )
                .await
            }
            Err(e) => Err(e),
        }
    };
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            stop_extensions(&extensions);
            handles
                .exit
                .send_replace(Some(Exit::NotStarted(e.to_string())));
            return;
        }
    };
    if let Some(pid) = runtime.id() {
        let _ = handles.pid.set(pid);
    }
    /// What woke the lifecycle up.
    enum Woke {
        Runtime(io::Result<std::process::ExitStatus>),
        Extension(String, io::Result<std::process::ExitStatus>),
        Failed(Fatal),
        Stop,
    }
    let mut stop = handles.stop.clone();
    let exit = loop {
        let woke = tokio::select! {
            status = runtime.wait() => Woke::Runtime(status),
            Some((name, status)) = exited_rx.recv() => Woke::Extension(name, status),
            fatal = handles.extensions.failed() => Woke::Failed(fatal),
            _ = stop.wait_for(Option::is_some) => Woke::Stop,
        };
        match woke {
            Woke::Runtime(Ok(status)) => break Exit::Status(status),
            Woke::Runtime(Err(e)) => break Exit::Lost(e.to_string()),
            Woke::Extension(name, status) => {
                extensions.retain(|e| e.name != name);
                if handles.stop.borrow().is_none() {
                    handles.extensions.fail(Fatal {
                        error_type: "Extension.Crash",
                        message: format!("extension {name} exited: {}", describe(&status)),
                    });
                }
            }
            Woke::Failed(fatal) => {
                handles.logs.line(&format!(
                    "[emulator] {}: {}; the environment is reset",
                    fatal.error_type, fatal.message
                ));
                (handles.on_failure)(&fatal);
                let reason = ShutdownReason::Failure;
                shut_down(&handles, &mut runtime, &extensions, &mut exited_rx, reason).await;
                break Exit::Killed;
            }
            Woke::Stop => {
                let reason = handles.stop.borrow().unwrap_or(ShutdownReason::Spindown);
                shut_down(&handles, &mut runtime, &extensions, &mut exited_rx, reason).await;
                break Exit::Killed;
            }
        }
    };
    if !matches!(exit, Exit::Killed) {
        // The runtime crashed or exited: Lambda resets the environment, telling the
        // extensions it failed.
        shut_down(
            &handles,
            &mut runtime,
            &extensions,
            &mut exited_rx,
            ShutdownReason::Failure,
        )
        .await;
    }
    stop_extensions(&extensions);
    handles.telemetry.stop();
    handles.exit.send_replace(Some(exit));
}

/// Starts the external extensions in the environment, waits for them to register, then
/// starts the runtime. An extension that cannot start fails the environment with
/// `Extension.LaunchError`, as on Lambda; the runtime starts all the same and the failure
/// answers the first invocation.
async fn start_external(
    environment: Box<dyn Environment>,
    names: &[String],
    extension_env: &BTreeMap<String, String>,
    handles: &mut Handles,
    launched: Instant,
    (exited, exits): (&ExitSender, &mut mpsc::UnboundedReceiver<ExtensionExit>),
    extensions: &mut Vec<ExtensionProcess>,
) -> io::Result<Box<dyn RuntimeProcess>> {
    let environment = Arc::new(std::sync::Mutex::new(environment));
    for name in names {
        let started = tokio::task::spawn_blocking({
            let environment = environment.clone();
            let (name, env, logs) = (
                name.clone(),
                extension_env.clone(),
                handles.extension_logs.clone(),
            );
            move || match environment.lock() {
                Ok(mut environment) => environment.start_extension(&name, &env, &logs),
                Err(_) => Err(io::Error::other("the environment's lock is poisoned")),
            }
        })
        .await
        .map_err(io::Error::other)
        .and_then(|e| e);
        match started {
            Ok(process) => extensions.push(watch_extension(name.clone(), process, exited.clone())),
            Err(e) => handles.extensions.fail(Fatal {
                error_type: "Extension.LaunchError",
                message: e.to_string(),
            }),
        }
    }
    let deadline = launched + handles.init_timeout;
    loop {
        tokio::select! {
            _ = handles.extensions.wait_external_registered(deadline) => break,
            Some((name, status)) = exits.recv() => {
                // An extension that exits before the runtime starts crashed its init.
                extensions.retain(|e| e.name != name);
                handles.extensions.fail(Fatal {
                    error_type: "Extension.Crash",
                    message: format!("extension {name} exited: {}", describe(&status)),
                });
            }
            _ = handles.stop.wait_for(Option::is_some) => {
                stop_extensions(extensions);
                return Err(io::Error::other("the environment was stopped during init"));
            }
        }
    }
    if let Some(fatal) = handles.extensions.fatal() {
        // The runtime never starts in an environment whose extensions failed their init;
        // the invocation waiting for it gets the failure (see `run::exit_error`).
        handles.logs.line(&format!(
            "[emulator] {}: {}; the environment is reset",
            fatal.error_type, fatal.message
        ));
        stop_extensions(extensions);
        return Err(io::Error::other(fatal.message));
    }
    tokio::task::spawn_blocking(move || match environment.lock() {
        Ok(mut environment) => environment.start_runtime(),
        Err(_) => Err(io::Error::other("the environment's lock is poisoned")),
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r)
}

/// An extension's exit: its name and how it ended.
type ExtensionExit = (String, io::Result<std::process::ExitStatus>);
type ExitSender = mpsc::UnboundedSender<ExtensionExit>;

/// How an exit reads in an error message (`exit status 1`).
fn describe(status: &io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format::exit_description(status),
        Err(e) => e.to_string(),
    }
}

/// Runs an extension process in a task that reports its exit and kills it when told.
fn watch_extension(
    name: String,
    mut process: Box<dyn RuntimeProcess>,
    exited: ExitSender,
) -> ExtensionProcess {
    let (kill, mut kill_rx) = watch::channel(false);
    let task_name = name.clone();
    tokio::spawn(async move {
        let status = tokio::select! {
            status = process.wait() => Some(status),
            _ = kill_rx.wait_for(|k| *k) => None,
        };
        match status {
            Some(status) => {
                let _ = exited.send((task_name, status));
            }
            None => {
                // Killing fails only for a process that is gone already.
                let _ = process.kill().await;
            }
        }
    });
    ExtensionProcess { name, kill }
}

fn stop_extensions(extensions: &[ExtensionProcess]) {
    for extension in extensions {
        extension.kill.send_replace(true);
    }
}

/// Lambda's shutdown phase (see the module documentation).
async fn shut_down(
    handles: &Handles,
    runtime: &mut Box<dyn RuntimeProcess>,
    extensions: &[ExtensionProcess],
    exited: &mut mpsc::UnboundedReceiver<ExtensionExit>,
    reason: ShutdownReason,
) {
    let (any, external) = handles.extensions.registered();
    if !any {
        // Killing fails only for a runtime that is gone already.
        let _ = runtime.kill().await;
        return;
    }
    let started = Instant::now();
    let (budget, runtime_share) = if external {
        (BUDGET_EXTERNAL, RUNTIME_SHARE_EXTERNAL)
    } else {
        (BUDGET_INTERNAL, BUDGET_INTERNAL)
    };
    if runtime.terminate().is_ok() {
        let _ = tokio::time::timeout(runtime_share, runtime.wait()).await;
    }
    let _ = runtime.kill().await;
    // What the extensions' telemetry listeners have not received yet goes before SHUTDOWN,
    // within the budget.
    handles
        .telemetry
        .flush(started + budget.saturating_sub(Duration::from_millis(200)))
        .await;
    let left = budget.saturating_sub(started.elapsed());
    let told = handles
        .extensions
        .dispatch_shutdown(reason, SystemTime::now() + left);
    let mut waiting: Vec<&str> = Vec::new();
    for extension in extensions {
        if told.contains(&extension.name) {
            waiting.push(&extension.name);
        } else {
            extension.kill.send_replace(true);
        }
    }
    let deadline = started + budget;
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline.into(), exited.recv()).await {
            Ok(Some((name, _))) => waiting.retain(|w| *w != name),
            Ok(None) | Err(_) => break,
        }
    }
    for name in waiting {
        handles.logs.line(&format!(
            "[emulator] extension {name} did not exit within the shutdown deadline; killed"
        ));
    }
    stop_extensions(extensions);
}
