//! How runtime instances are started. The emulator decides *what* environment a runtime gets;
//! a [`Launcher`] decides *where* it runs: [`ProcessLauncher`] runs a local program, and other
//! launchers (a sandbox, a container) implement the same trait.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::LogSink;

/// A boxed future, for the object-safe [`RuntimeProcess`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts runtime instances.
pub trait Launcher: Send + Sync + 'static {
    /// Starts one runtime with exactly the environment `env` (which holds
    /// `AWS_LAMBDA_RUNTIME_API` and the rest of Lambda's variables), forwarding each line it
    /// prints to `logs`.
    ///
    /// Called from within the emulator's Tokio runtime, so implementations may spawn tasks.
    fn launch(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>>;

    /// The external extensions an execution environment starts before its runtime: the
    /// executables of the image's `/opt/extensions`, by file name in the order Lambda starts
    /// them (sorted). None by default.
    fn extensions(&self) -> Vec<String> {
        Vec::new()
    }

    /// Begins an execution environment whose runtime (with `env`, printing to `logs`) starts
    /// when [`Environment::start_runtime`] says, after its external extensions. Launchers that
    /// list [`Launcher::extensions`] must implement it; the default, for environments without
    /// extensions, starts the runtime at once.
    fn environment(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn Environment>> {
        Ok(Box::new(Started(Some(self.launch(env, logs)?))))
    }
}

/// An execution environment being started: its external extensions first, then its runtime.
pub trait Environment: Send + 'static {
    /// Starts the external extension `name` with exactly the environment `env`, forwarding its
    /// output to `logs`.
    fn start_extension(
        &mut self,
        name: &str,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>>;

    /// Starts the runtime, once the extensions registered. Called once.
    fn start_runtime(&mut self) -> io::Result<Box<dyn RuntimeProcess>>;
}

/// An environment without extensions whose runtime already runs.
struct Started(Option<Box<dyn RuntimeProcess>>);

impl Environment for Started {
    fn start_extension(
        &mut self,
        name: &str,
        _env: &BTreeMap<String, String>,
        _logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this runner cannot start the extension {name}"),
        ))
    }

    fn start_runtime(&mut self) -> io::Result<Box<dyn RuntimeProcess>> {
        self.0
            .take()
            .ok_or_else(|| io::Error::other("the runtime was started already"))
    }
}

/// A started runtime instance (or extension).
pub trait RuntimeProcess: Send + 'static {
    /// Waits for the runtime to exit. Must be cancel-safe: the emulator drops the future to
    /// kill the runtime instead.
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>>;

    /// Kills the runtime (and waits until it is gone).
    fn kill(&mut self) -> BoxFuture<'_, io::Result<()>>;

    /// Asks the runtime to stop (SIGTERM), as Lambda does before its shutdown deadline; the
    /// emulator kills it when the deadline passes. Unsupported by default: it is then killed.
    fn terminate(&mut self) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// The host process id of the runtime, used to measure its memory; `None` when it has no
    /// host process (or it is not known).
    fn id(&self) -> Option<u32>;
}

impl RuntimeProcess for Child {
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(Child::wait(self))
    }

    fn kill(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(Child::kill(self))
    }

    fn terminate(&mut self) -> io::Result<()> {
        let pid = Child::id(self).ok_or_else(|| io::Error::other("the process has exited"))?;
        signal(pid, libc::SIGTERM)
    }

    fn id(&self) -> Option<u32> {
        Child::id(self)
    }
}

/// Sends `signal` to the process `pid`.
pub(crate) fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and has no memory effects on this process.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to the processes below `pid` that run the program, not a wrapper: the first
/// descendants on each branch whose command name is not in `wrappers` (e.g. bubblewrap's own
/// processes, which do not pass signals on).
pub(crate) fn signal_below(pid: u32, wrappers: &[&str], sig: libc::c_int) -> io::Result<()> {
    let children = children_map(pid);
    let comm = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default()
    };
    let mut stack: Vec<u32> = children.get(&pid).cloned().unwrap_or_default();
    let mut signalled = false;
    while let Some(p) = stack.pop() {
        if wrappers.contains(&comm(p).as_str()) {
            stack.extend(children.get(&p).into_iter().flatten());
        } else {
            signalled |= signal(p, sig).is_ok();
        }
    }
    if signalled {
        Ok(())
    } else {
        Err(io::Error::other("no process to signal below the wrapper"))
    }
}

/// A function that cannot run yet (`watch` serves a function whose first build failed this
/// way until a rebuild succeeds): every launch fails with the reason, which the invocation's
/// error carries.
#[derive(Debug, Clone)]
pub struct UnavailableLauncher {
    /// Why there is nothing to run.
    pub reason: String,
}

impl Launcher for UnavailableLauncher {
    fn launch(
        &self,
        _env: &BTreeMap<String, String>,
        _logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        Err(io::Error::other(self.reason.clone()))
    }
}

/// Runs a local program as the runtime, e.g. a `bootstrap` built for the host, or
/// `python3 -m awslambdaric app.handler`, and local programs as its external extensions.
///
/// The program starts with an empty environment plus the emulator's, so nothing of the host
/// (credentials included) leaks into it unless listed in [`ProcessLauncher::inherit_env`].
#[derive(Debug, Clone)]
pub struct ProcessLauncher {
    /// The program; a bare name is looked up in the *host's* `PATH` (the runtime's own `PATH`
    /// is Lambda's, which may not have it).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory (the emulator's by default).
    pub cwd: Option<PathBuf>,
    /// Host variables to pass through by name (when set), below the function's own.
    pub inherit_env: Vec<String>,
    /// External extensions: their names (as `/opt/extensions` would have them) and the local
    /// programs that run as them.
    pub extensions: Vec<(String, PathBuf)>,
}

impl ProcessLauncher {
    /// Runs `program` without arguments.
    pub fn new(program: impl Into<PathBuf>) -> ProcessLauncher {
        ProcessLauncher {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            inherit_env: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// Runs `program` as the external extension `name` of every environment, before the
    /// runtime (extensions start in name order, as Lambda starts `/opt/extensions`).
    pub fn extension(
        mut self,
        name: impl Into<String>,
        program: impl Into<PathBuf>,
    ) -> ProcessLauncher {
        self.extensions.push((name.into(), program.into()));
        self.extensions.sort();
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> ProcessLauncher
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> ProcessLauncher {
        self.cwd = Some(cwd.into());
        self
    }

    /// The program as it will be run: a bare name resolved against the host's `PATH`.
    fn resolved_program(&self) -> PathBuf {
        if self.program.components().count() != 1 {
            return self.program.clone();
        }
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(&self.program))
                    .find(|candidate| candidate.is_file())
            })
            .unwrap_or_else(|| self.program.clone())
    }
}

impl Launcher for ProcessLauncher {
    fn launch(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        self.spawn(&self.resolved_program(), &self.args, env, logs)
    }

    fn extensions(&self) -> Vec<String> {
        self.extensions
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn environment(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn Environment>> {
        Ok(Box::new(ProcessEnvironment {
            launcher: self.clone(),
            env: env.clone(),
            logs: logs.clone(),
        }))
    }
}

/// An environment of local processes: they share nothing but the machine, as the runtime and
/// its extensions share the execution environment.
struct ProcessEnvironment {
    launcher: ProcessLauncher,
    env: BTreeMap<String, String>,
    logs: LogSink,
}

impl Environment for ProcessEnvironment {
    fn start_extension(
        &mut self,
        name: &str,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let program = self
            .launcher
            .extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, program)| program.clone())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no extension {name}"))
            })?;
        self.launcher.spawn(&program, &[], env, logs)
    }

    fn start_runtime(&mut self) -> io::Result<Box<dyn RuntimeProcess>> {
        self.launcher.launch(&self.env, &self.logs)
    }
}

impl ProcessLauncher {
    /// Starts `program` with `args` and exactly the environment `env` (plus the inherited
    /// variables), its output to `logs`.
    fn spawn(
        &self,
        program: &Path,
        args: &[String],
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(
                self.inherit_env
                    .iter()
                    .filter(|k| !env.contains_key(*k))
                    .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
            )
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A safety net: the emulator kills its runtimes itself, but if it is dropped
            // without shutting down, the runtimes must not outlive it.
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        // Say which program failed the way Lambda does (`fork/exec /var/runtime/bootstrap: ...`).
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("fork/exec {}: {e}", program.display()))
        })?;
        if let Some(out) = child.stdout.take() {
            forward_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, logs.clone());
        }
        Ok(Box::new(child))
    }
}

/// The longest log line passed on whole; longer ones are split, as Lambda splits log events
/// over 256 KB. It bounds the memory a function printing without newlines can make the
/// emulator use.
pub const MAX_LOG_LINE: usize = 256 * 1024;

/// Sends each line read from `reader` to `logs` until end of file, splitting lines longer than
/// [`MAX_LOG_LINE`]. Invalid UTF-8 is replaced rather than dropped, so that no output is lost.
pub fn forward_lines(reader: impl AsyncRead + Send + Unpin + 'static, logs: LogSink) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line: Vec<u8> = Vec::new();
        let emit = |line: &[u8]| {
            let text = String::from_utf8_lossy(line);
            logs.line(text.trim_end_matches('\r'));
        };
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            };
            let room = MAX_LOG_LINE - line.len();
            let (take, consumed, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) if i <= room => (i, i + 1, true),
                _ => {
                    let take = chunk.len().min(room);
                    (take, take, take == room)
                }
            };
            line.extend_from_slice(&chunk[..take]);
            reader.consume(consumed);
            if complete {
                emit(&line);
                line.clear();
            }
        }
        if !line.is_empty() {
            emit(&line);
        }
    });
}

/// Peak resident memory, in MB, of the process `pid` and all its descendants (the sum of their
/// `VmHWM`), read from `/proc`. Best effort: `None` where there is no `/proc`.
pub fn max_memory_mb(pid: u32) -> Option<u64> {
    let proc = Path::new("/proc");
    let hwm_kb = |pid: u32| -> Option<u64> {
        let status = std::fs::read_to_string(proc.join(pid.to_string()).join("status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    let root = hwm_kb(pid)?;
    let children = children_map(pid);
    let mut total = root;
    let mut stack: Vec<u32> = children.get(&pid).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        total += hwm_kb(p).unwrap_or(0);
        stack.extend(children.get(&p).into_iter().flatten());
    }
    Some(total.div_ceil(1024))
}

/// How long a map of the processes' children is reused by [`max_memory_mb`].
const CHILDREN_MAP_AGE: Duration = Duration::from_secs(1);

/// Every process's children, from every `/proc/<pid>/stat`. Building it reads every process
/// on the machine, and it is wanted after every invocation (for `REPORT`'s memory), so one map
/// serves for [`CHILDREN_MAP_AGE`], unless it does not know `pid` (a runtime started since).
/// A grandchild forked since is counted from the next map on (the kernels this runs on do not
/// all have `/proc/<pid>/task/<tid>/children`).
fn children_map(pid: u32) -> Arc<HashMap<u32, Vec<u32>>> {
    type Map = Arc<HashMap<u32, Vec<u32>>>;
    static CACHE: Mutex<Option<(Instant, Map)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, map)) = cache.as_ref() {
        let knows = || map.values().any(|kids| kids.contains(&pid));
        if at.elapsed() < CHILDREN_MAP_AGE && knows() {
            return map.clone();
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(parent) = parent_pid(&entry.path()) {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let map = Arc::new(children);
    *cache = Some((Instant::now(), map.clone()));
    map
}

/// The parent pid from `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so the fields are counted after its last `)`.
fn parent_pid(proc_dir: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_program_names_resolve_against_the_host_path() {
        let launcher = ProcessLauncher::new("sh");
        let resolved = launcher.resolved_program();
        assert!(resolved.is_absolute(), "{}", resolved.display());
        let explicit = ProcessLauncher::new("./bootstrap");
        assert_eq!(explicit.resolved_program(), PathBuf::from("./bootstrap"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn measures_this_process() {
        let mb = max_memory_mb(std::process::id()).unwrap();
        assert!(mb > 0);
    }
}
