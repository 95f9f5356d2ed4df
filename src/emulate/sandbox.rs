//! Runs an unpacked image's function the way Lambda runs it, without a container engine.
//!
//! [`SandboxLauncher::new`] (the default) uses bubblewrap (`bwrap`, Debian's `bubblewrap`)
//! to give each runtime
//!
//! - the image's root filesystem, mounted read-only as `/`;
//! - a private `/tmp` (tmpfs) of the function's ephemeral storage size (512 MB by default);
//! - fresh `/proc` and `/dev`;
//! - a non-root user (uid 993, gid 990, like Lambda's `sbx_user1051`) in its own user namespace;
//! - its own PID, IPC and UTS namespaces and session, killed with the emulator
//!   (`--die-with-parent`);
//! - the host's network, so that the Runtime API on 127.0.0.1 is reachable;
//! - the image's WORKDIR as its working directory and an environment of exactly the image's
//!   ENV plus the emulator's variables (the latter win);
//! - ENTRYPOINT + CMD as its command line.
//!
//! An image for the other architecture (arm64 on an x86_64 host) runs under qemu user-mode
//! emulation: through the kernel's binfmt_misc handler when it is registered with the `F`
//! (fix binary) flag, which works inside the sandbox, or else with the host's
//! `qemu-aarch64-static` bound into the sandbox (at `/dev/.qemu-user`), which only works when
//! the entrypoint does not exec further foreign programs.
//!
//! [`SandboxLauncher::unconfined`] is for machines without bubblewrap or user namespaces: it
//! runs the entrypoint straight from the unpacked root filesystem, which is only possible when
//! the entrypoint is the bootstrap itself (a scratch image), not a script whose interpreter
//! would be looked up on the host. It isolates nothing: the root filesystem is writable, `/tmp`
//! is the host's, the function runs as the current user, and any absolute path it opens is a
//! host path. It still gets exactly the image's and the emulator's environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::launcher::{forward_lines, signal_below, BoxFuture, Environment};
use super::rootfs::ImageRuntime;
use super::{Launcher, LogSink, RuntimeProcess};
use crate::compile::find_program;
use crate::error::{Error, Result};
use crate::target::Arch;

/// The sandbox user's uid (Lambda runs functions as `sbx_user1051`, uid 993).
pub const SANDBOX_UID: u32 = 993;
/// The sandbox user's gid (990 on Lambda).
pub const SANDBOX_GID: u32 = 990;
/// Where a host qemu binary is bound inside the sandbox, when binfmt_misc cannot be used.
pub const QEMU_IN_SANDBOX: &str = "/dev/.qemu-user";

/// How much isolation a [`SandboxLauncher`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap, with the program at this path.
    Bubblewrap(PathBuf),
    /// None: the entrypoint runs from the unpacked root filesystem on the host.
    Unconfined,
}

/// How a foreign-architecture image's programs are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The image is for the host's architecture.
    Native,
    /// The kernel runs foreign binaries through a registered binfmt_misc handler.
    Binfmt,
    /// The entrypoint runs under this qemu user-mode binary from the host.
    Qemu(PathBuf),
}

/// A [`Launcher`] running an unpacked image's ENTRYPOINT + CMD in a bubblewrap sandbox (see the
/// module documentation), or unconfined.
#[derive(Debug, Clone)]
pub struct SandboxLauncher {
    runtime: ImageRuntime,
    isolation: Isolation,
    emulation: Emulation,
    ephemeral_storage_mb: u32,
    uid: u32,
    gid: u32,
}

impl SandboxLauncher {
    /// A bubblewrap sandbox for `runtime`. Checks that `bwrap` is installed and can create the
    /// namespaces it needs, that a foreign architecture can be emulated, and creates the mount
    /// points (`/proc`, `/dev`, `/tmp`, WORKDIR) missing from the root filesystem.
    pub fn new(runtime: ImageRuntime) -> Result<SandboxLauncher> {
        let bwrap = bwrap()?;
        probe_since_boot(&bwrap)?;
        let emulation = emulation_for(runtime.arch, true)?;
        let launcher = SandboxLauncher {
            runtime,
            isolation: Isolation::Bubblewrap(bwrap),
            emulation,
            ephemeral_storage_mb: crate::lambda::DEFAULT_EPHEMERAL_STORAGE,
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
        };
        let root = &launcher.runtime.rootfs;
        for dir in ["proc", "dev", "tmp"] {
            ensure_dir_in(root, dir)?;
        }
        ensure_dir_in(root, &launcher.runtime.workdir)?;
        Ok(launcher)
    }

    /// Runs the entrypoint without any isolation (see the module documentation). Refused
    /// unless the entrypoint is an executable ELF file inside the root filesystem (reached
    /// without symlinks), i.e. the bootstrap of a scratch image.
    pub fn unconfined(runtime: ImageRuntime) -> Result<SandboxLauncher> {
        let Some(entrypoint) = runtime.command().into_iter().next() else {
            return Err(Error::Sandbox {
                message: "the image has neither ENTRYPOINT nor CMD".into(),
                help: "set the image's entrypoint".into(),
            });
        };
        let host_path =
            host_path_in(&runtime.rootfs, &entrypoint).map_err(|message| Error::Sandbox {
                message: format!("cannot run `{entrypoint}` unconfined: {message}"),
                help: "the unconfined runner only runs images whose entrypoint is the bootstrap \
                       itself (scratch images); install bubblewrap to run other images"
                    .into(),
            })?;
        let head = std::fs::read(&host_path)
            .map(|data| data.get(..4).map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| Error::io("could not read", &host_path, e))?;
        if head != b"\x7fELF" {
            return Err(Error::Sandbox {
                message: format!(
                    "cannot run `{entrypoint}` unconfined: it is not an executable (ELF) file, \
                     probably a script whose interpreter would be looked up on the host"
                ),
                help: "install bubblewrap to run this image, or use the Docker runner".into(),
            });
        }
        // Outside a sandbox the kernel's handler works whatever its flags.
        let emulation = emulation_for(runtime.arch, false)?;
        Ok(SandboxLauncher {
            runtime,
            isolation: Isolation::Unconfined,
            emulation,
            ephemeral_storage_mb: crate::lambda::DEFAULT_EPHEMERAL_STORAGE,
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
        })
    }

    /// Sets the size of `/tmp` in MB (Lambda's ephemeral storage, 512 to 10240).
    pub fn ephemeral_storage_mb(mut self, mb: u32) -> SandboxLauncher {
        self.ephemeral_storage_mb = mb;
        self
    }

    /// Sets the uid and gid the function runs as inside the sandbox.
    pub fn user(mut self, uid: u32, gid: u32) -> SandboxLauncher {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Runs the entrypoint under this qemu user-mode binary instead of through binfmt_misc.
    pub fn qemu(mut self, qemu: impl Into<PathBuf>) -> SandboxLauncher {
        self.emulation = Emulation::Qemu(qemu.into());
        self
    }

    /// The image being run.
    pub fn runtime(&self) -> &ImageRuntime {
        &self.runtime
    }

    /// The isolation in use.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// How a foreign architecture is emulated.
    pub fn emulation(&self) -> &Emulation {
        &self.emulation
    }

    /// The program and arguments that start one runtime (the environment is passed
    /// separately, never on the command line).
    pub fn command_line(&self) -> io::Result<(PathBuf, Vec<OsString>)> {
        let command = self.runtime.command();
        let Some((entrypoint, rest)) = command.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the image has neither ENTRYPOINT nor CMD",
            ));
        };
        match &self.isolation {
            Isolation::Bubblewrap(bwrap) => {
                let root = &self.runtime.rootfs;
                let mut args: Vec<OsString> = Vec::new();
                let push = |args: &mut Vec<OsString>, items: &[&str]| {
                    args.extend(items.iter().map(OsString::from))
                };
                push(
                    &mut args,
                    &[
                        "--unshare-user",
                        "--unshare-pid",
                        "--unshare-ipc",
                        "--unshare-uts",
                        "--unshare-cgroup-try",
                        "--die-with-parent",
                        "--new-session",
                        "--uid",
                        &self.uid.to_string(),
                        "--gid",
                        &self.gid.to_string(),
                    ],
                );
                args.push("--ro-bind".into());
                args.push(root.as_os_str().to_owned());
                args.push("/".into());
                push(&mut args, &["--proc", "/proc", "--dev", "/dev"]);
                let bytes = u64::from(self.ephemeral_storage_mb) * 1024 * 1024;
                push(
                    &mut args,
                    &["--size", &bytes.to_string(), "--perms", "1777"],
                );
                push(
                    &mut args,
                    &["--tmpfs", "/tmp", "--chdir", &self.runtime.workdir],
                );
                if let Emulation::Qemu(qemu) = &self.emulation {
                    args.push("--ro-bind".into());
                    args.push(qemu.as_os_str().to_owned());
                    args.push(QEMU_IN_SANDBOX.into());
                    push(&mut args, &["--", QEMU_IN_SANDBOX]);
                } else {
                    push(&mut args, &["--"]);
                }
                args.push(entrypoint.into());
                args.extend(rest.iter().map(OsString::from));
                Ok((bwrap.clone(), args))
            }
            Isolation::Unconfined => {
                let program = host_path_in(&self.runtime.rootfs, entrypoint)
                    .map_err(|m| io::Error::new(io::ErrorKind::NotFound, m))?;
                let mut args: Vec<OsString> = rest.iter().map(OsString::from).collect();
                if let Emulation::Qemu(qemu) = &self.emulation {
                    args.insert(0, program.into_os_string());
                    return Ok((qemu.clone(), args));
                }
                Ok((program, args))
            }
        }
    }

    /// The runtime's environment: the image's ENV, then the emulator's.
    fn environment(&self, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = self.runtime.env.iter().cloned().collect();
        all.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.into_iter().collect()
    }
}

impl Launcher for SandboxLauncher {
    fn launch(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let (program, args) = self.command_line()?;
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .env_clear()
            .envs(self.environment(env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.isolation == Isolation::Unconfined {
            let workdir = host_path_in(&self.runtime.rootfs, &self.runtime.workdir)
                .ok()
                .filter(|p| p.is_dir())
                .unwrap_or_else(|| self.runtime.rootfs.clone());
            cmd.current_dir(workdir);
        }
        let entrypoint = self
            .runtime
            .command()
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("fork/exec {entrypoint} ({}): {e}", program.display()),
            )
        })?;
        if let Some(out) = child.stdout.take() {
            forward_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, logs.clone());
        }
        Ok(match self.isolation {
            Isolation::Bubblewrap(_) => Box::new(Wrapped {
                child,
                wrappers: &["bwrap"],
            }),
            Isolation::Unconfined => Box::new(child),
        })
    }

    fn extensions(&self) -> Vec<String> {
        let dir = match host_path_in(&self.runtime.rootfs, EXTENSIONS_DIR) {
            Ok(dir) => dir,
            Err(_) => return Vec::new(),
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn environment(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn Environment>> {
        match &self.isolation {
            Isolation::Unconfined => Ok(Box::new(UnconfinedEnvironment {
                launcher: self.clone(),
                env: env.clone(),
                logs: logs.clone(),
            })),
            Isolation::Bubblewrap(_) => Ok(Box::new(BlockedSandbox::start(self, env, logs)?)),
        }
    }
}

/// Where Lambda finds external extensions.
pub const EXTENSIONS_DIR: &str = "/opt/extensions";

/// A process started through a wrapper that does not pass signals on (bubblewrap): a SIGTERM
/// goes to the program below it.
struct Wrapped {
    child: tokio::process::Child,
    wrappers: &'static [&'static str],
}

impl RuntimeProcess for Wrapped {
    fn wait(&mut self) -> BoxFuture<'_, io::Result<std::process::ExitStatus>> {
        Box::pin(self.child.wait())
    }

    fn kill(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(self.child.kill())
    }

    fn terminate(&mut self) -> io::Result<()> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| io::Error::other("the process has exited"))?;
        signal_below(pid, self.wrappers, libc::SIGTERM)
    }

    fn id(&self) -> Option<u32> {
        self.child.id()
    }
}

/// An unconfined environment: extensions run from the unpacked root filesystem, like the
/// runtime.
struct UnconfinedEnvironment {
    launcher: SandboxLauncher,
    env: BTreeMap<String, String>,
    logs: LogSink,
}

impl Environment for UnconfinedEnvironment {
    fn start_extension(
        &mut self,
        name: &str,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let launcher = &self.launcher;
        let path = format!("{EXTENSIONS_DIR}/{name}");
        let program = host_path_in(&launcher.runtime.rootfs, &path)
            .map_err(|m| io::Error::new(io::ErrorKind::NotFound, m))?;
        let mut cmd = match &launcher.emulation {
            Emulation::Qemu(qemu) => {
                let mut cmd = Command::new(qemu);
                cmd.arg(&program);
                cmd
            }
            _ => Command::new(&program),
        };
        cmd.env_clear()
            .envs(launcher.environment(env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("fork/exec {path}: {e}")))?;
        if let Some(out) = child.stdout.take() {
            forward_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, logs.clone());
        }
        Ok(Box::new(child))
    }

    fn start_runtime(&mut self) -> io::Result<Box<dyn RuntimeProcess>> {
        self.launcher.launch(&self.env, &self.logs)
    }
}

/// A bubblewrap sandbox set up but held before it runs the runtime (`--block-fd`), so that
/// the external extensions can be started in it first: they join its namespaces with
/// `nsenter` and share its root, `/tmp` and user, as they share Lambda's
/// execution environment. Writing to the block pipe lets the runtime start.
struct BlockedSandbox {
    launcher: SandboxLauncher,
    /// The sandboxed runtime, until it is handed out.
    runtime: Option<Wrapped>,
    /// The sandbox's first process, whose namespaces the extensions join.
    init_pid: u32,
    /// Writing a byte here starts the runtime.
    release: Option<std::fs::File>,
}

impl BlockedSandbox {
    fn start(
        launcher: &SandboxLauncher,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<BlockedSandbox> {
        use std::os::fd::{AsRawFd, OwnedFd};
        let (block_read, block_write) = pipe()?;
        let (info_read, info_write) = pipe()?;
        let (program, mut args) = launcher.command_line()?;
        // The options go before bubblewrap's own `--`: ahead of everything is simplest.
        let fds = [block_read.as_raw_fd(), info_write.as_raw_fd()];
        let mut front: Vec<OsString> = vec![
            "--block-fd".into(),
            fds[0].to_string().into(),
            "--info-fd".into(),
            fds[1].to_string().into(),
        ];
        front.append(&mut args);
        let mut cmd = Command::new(&program);
        cmd.args(&front)
            .env_clear()
            .envs(launcher.environment(env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec, and only calls fcntl,
        // which is async-signal-safe, to let bubblewrap inherit the two pipe ends.
        unsafe {
            cmd.pre_exec(move || {
                for fd in fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("fork/exec {}: {e}", program.display()))
        })?;
        // The parent's copies of the child's ends: bubblewrap has its own now.
        drop::<OwnedFd>(block_read);
        drop::<OwnedFd>(info_write);
        if let Some(out) = child.stdout.take() {
            forward_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, logs.clone());
        }
        let init_pid = read_child_pid(info_read)?;
        wait_blocked(init_pid);
        Ok(BlockedSandbox {
            launcher: launcher.clone(),
            runtime: Some(Wrapped {
                child,
                wrappers: &["bwrap"],
            }),
            init_pid,
            release: Some(std::fs::File::from(block_write)),
        })
    }
}

impl Environment for BlockedSandbox {
    fn start_extension(
        &mut self,
        name: &str,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let nsenter = find_program("nsenter").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "`nsenter` (util-linux) is needed to start extensions in the sandbox",
            )
        })?;
        let launcher = &self.launcher;
        let path = format!("{EXTENSIONS_DIR}/{name}");
        let mut cmd = Command::new(&nsenter);
        cmd.arg("--target")
            .arg(self.init_pid.to_string())
            // Not the sandbox's PID namespace: it ends with the runtime, and extensions
            // outlive the runtime in the shutdown phase (SHUTDOWN comes after it stopped).
            // Without `--pid`, nsenter runs the extension in its own process (no fork).
            .args(["--user", "--mount", "--ipc", "--uts", "--root", "--wd"])
            .arg(format!("--setuid={}", launcher.uid))
            .arg(format!("--setgid={}", launcher.gid))
            .arg("--");
        if let Emulation::Qemu(_) = launcher.emulation {
            cmd.arg(QEMU_IN_SANDBOX);
        }
        cmd.arg(&path)
            .env_clear()
            .envs(launcher.environment(env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("fork/exec {path}: {e}")))?;
        if let Some(out) = child.stdout.take() {
            forward_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, logs.clone());
        }
        Ok(Box::new(child))
    }

    fn start_runtime(&mut self) -> io::Result<Box<dyn RuntimeProcess>> {
        use std::io::Write;
        let runtime = self
            .runtime
            .take()
            .ok_or_else(|| io::Error::other("the runtime was started already"))?;
        if let Some(mut release) = self.release.take() {
            release.write_all(b"x")?;
        }
        Ok(Box::new(runtime))
    }
}

/// A pipe whose ends are closed on exec (a child gets one only when told to keep it).
fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new file descriptors into the array, which are then owned.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and nothing else owns them.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// The sandbox's first process, from bubblewrap's `--info-fd` JSON (`child-pid`).
fn read_child_pid(info: std::os::fd::OwnedFd) -> io::Result<u32> {
    use std::io::Read;
    let mut file = std::fs::File::from(info);
    let mut text = String::new();
    let mut buf = [0u8; 512];
    // bubblewrap writes the object at once, then more keys only with other options; the
    // first closing brace ends it.
    while !text.contains('}') {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|v| v["child-pid"].as_u64())
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or_else(|| {
            io::Error::other(format!("bubblewrap did not say its sandbox's pid: {text}"))
        })
}

/// Waits (briefly) until the sandbox's first process is blocked on the block pipe: only then
/// are its mounts (root, `/tmp`) in place for the extensions that join it. bubblewrap tells
/// the pid before it sets the sandbox up, and says nothing when it is done.
fn wait_blocked(pid: u32) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.ends_with("pipe_read") || wchan.ends_with("pipe_wait") {
            return;
        }
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Checks that bubblewrap can create the namespaces the sandbox uses.
/// Whether bubblewrap is installed and can create the namespaces the sandbox needs; says
/// where it is (for `doctor`).
pub fn probe() -> Result<String> {
    let bwrap = bwrap()?;
    probe_bwrap(&bwrap)?;
    Ok(format!("{}: user namespaces work", bwrap.display()))
}

/// bubblewrap on PATH, or an error saying how to get it.
fn bwrap() -> Result<PathBuf> {
    find_program("bwrap").ok_or_else(|| Error::Sandbox {
        message: "`bwrap` (bubblewrap) was not found in PATH".into(),
        help: "install bubblewrap (`apt-get install bubblewrap`, `dnf install bubblewrap`, \
               `pacman -S bubblewrap`), or use the Docker runner, or the unconfined runner \
               for scratch images"
            .into(),
    })
}

/// [`probe_bwrap`], unless it already succeeded for this bubblewrap and this user since the
/// machine booted (a marker in the cache directory says so): the probe starts a sandbox, which
/// is a fifth of a local test's time. Should namespaces be turned off meanwhile, the sandbox
/// itself fails to start and says why.
fn probe_since_boot(bwrap: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let seen = std::fs::metadata(bwrap)
        .map(|m| format!("{} {} {}", m.len(), m.mtime(), m.ino()))
        .unwrap_or_default();
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let key = format!("{} {seen} {} {uid}", bwrap.display(), boot.trim());
    let marker = crate::registry::keyed_cache_file("sandbox-probes", &key);
    if marker.is_file() {
        return Ok(());
    }
    probe_bwrap(bwrap)?;
    crate::registry::keep_cache_file(&marker, key.as_bytes());
    Ok(())
}

fn probe_bwrap(bwrap: &Path) -> Result<()> {
    let Some(probe) = find_program("true") else {
        return Ok(());
    };
    let out = std::process::Command::new(bwrap)
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--uid",
            &SANDBOX_UID.to_string(),
            "--gid",
            &SANDBOX_GID.to_string(),
            // Only what `true` needs, not `/`: a recursive bind of `/` also binds every
            // other mount, and fails when one of them (a container's overlay being set up
            // by dockerd at that moment) cannot be remounted read-only.
            "--ro-bind",
            "/usr",
            "/usr",
            "--ro-bind-try",
            "/bin",
            "/bin",
            "--ro-bind-try",
            "/lib",
            "/lib",
            "--ro-bind-try",
            "/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
        ])
        .arg(&probe)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: bwrap.display().to_string(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Sandbox {
        message: format!(
            "bubblewrap cannot create a user and PID namespace here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        help:
            "enable unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1` \
               on Debian, `sysctl -w user.max_user_namespaces=15000`, on Ubuntu 24.04 \
               `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`); in a container, allow \
               `clone(CLONE_NEWUSER)` (e.g. `--security-opt seccomp=unconfined`); or use the \
               Docker runner, or the unconfined runner for scratch images"
                .into(),
    })
}

/// How programs of `arch` run on this host; `in_sandbox` asks for a binfmt_misc handler that
/// also works inside a sandbox (registered with the F flag).
pub fn emulation_for(arch: Arch, in_sandbox: bool) -> Result<Emulation> {
    if Arch::host() == Some(arch) {
        return Ok(Emulation::Native);
    }
    let (handler, qemu) = match arch {
        Arch::Arm64 => ("qemu-aarch64", "qemu-aarch64-static"),
        Arch::X86_64 => ("qemu-x86_64", "qemu-x86_64-static"),
    };
    if binfmt_handler(handler, in_sandbox) {
        return Ok(Emulation::Binfmt);
    }
    if let Some(path) = find_program(qemu) {
        return Ok(Emulation::Qemu(path));
    }
    Err(Error::Sandbox {
        message: format!(
            "the image is for {arch}, this machine is {}, and neither a binfmt_misc handler \
             `{handler}` (with the F flag) nor `{qemu}` is available",
            std::env::consts::ARCH
        ),
        help: format!(
            "install qemu-user-static (`apt-get install qemu-user-static`) and register its \
             handler: `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc` then \
             `cat /usr/lib/binfmt.d/{handler}.conf > /proc/sys/fs/binfmt_misc/register`, or \
             build for {}",
            Arch::host().map(|a| a.to_string()).unwrap_or_default()
        ),
    })
}

/// Whether binfmt_misc has an enabled handler `name`, with the F flag if `fixed` (its
/// interpreter opened at registration, so it works inside a sandbox that cannot see the host's
/// files).
fn binfmt_handler(name: &str, fixed: bool) -> bool {
    let Ok(status) = std::fs::read_to_string(Path::new("/proc/sys/fs/binfmt_misc").join(name))
    else {
        return false;
    };
    status.lines().next() == Some("enabled")
        && status
            .lines()
            .filter_map(|l| l.strip_prefix("flags:"))
            .any(|flags| !fixed || flags.contains('F'))
}

/// The host path of an absolute path inside the root filesystem, refusing `..` and symlinks
/// on the way (which could lead outside it).
fn host_path_in(root: &Path, path: &str) -> std::result::Result<PathBuf, String> {
    let mut host = root.to_path_buf();
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                host.push(name);
                if std::fs::symlink_metadata(&host).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!("`{path}` goes through a symlink"));
                }
            }
            _ => return Err(format!("`{path}` is not a plain absolute path")),
        }
    }
    if !Path::new(path).is_absolute() {
        return Err(format!("`{path}` is not an absolute path"));
    }
    if !host.exists() {
        return Err(format!("`{path}` does not exist in the image"));
    }
    Ok(host)
}

/// Creates the directory `path` (absolute or relative to the root) inside the root filesystem
/// when missing, for use as a mount point or working directory. Stops silently at a symlink or
/// non-directory: inside the sandbox it resolves within the image, and bubblewrap reports it if
/// it cannot be used.
fn ensure_dir_in(root: &Path, path: &str) -> Result<()> {
    let mut host = root.to_path_buf();
    for component in Path::new(path).components() {
        let Component::Normal(name) = component else {
            continue;
        };
        host.push(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(()),
            // Another process running the same (shared) root filesystem may create it between
            // the look and the create: that is as good.
            Err(_) => match std::fs::create_dir(&host) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("could not create", &host, e)),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(root: &Path) -> ImageRuntime {
        ImageRuntime {
            rootfs: root.to_path_buf(),
            entrypoint: vec!["/lambda-entrypoint.sh".into()],
            cmd: vec!["bootstrap".into()],
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "image".into())],
            workdir: "/var/task".into(),
            arch: Arch::host().unwrap_or(Arch::X86_64),
            hold: Default::default(),
        }
    }

    fn sandbox(root: &Path) -> SandboxLauncher {
        SandboxLauncher {
            runtime: runtime(root),
            isolation: Isolation::Bubblewrap("/usr/bin/bwrap".into()),
            emulation: Emulation::Native,
            ephemeral_storage_mb: 512,
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
        }
    }

    #[test]
    fn bwrap_arguments_make_a_lambda_like_sandbox() {
        let (program, args) = sandbox(Path::new("/r")).command_line().unwrap();
        assert_eq!(program, PathBuf::from("/usr/bin/bwrap"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for expected in [
            "--unshare-user",
            "--unshare-pid",
            "--die-with-parent",
            "--uid 993 --gid 990",
            "--ro-bind /r /",
            "--proc /proc --dev /dev",
            "--size 536870912 --perms 1777 --tmpfs /tmp",
            "--chdir /var/task",
            "-- /lambda-entrypoint.sh bootstrap",
        ] {
            assert!(line.contains(expected), "{expected} missing from {line}");
        }
        assert!(!line.contains("--unshare-net"), "{line}");
        assert!(!line.contains("--unshare-all"), "{line}");
    }

    #[test]
    fn foreign_binaries_run_under_the_bound_qemu() {
        let launcher = sandbox(Path::new("/r")).qemu("/usr/bin/qemu-aarch64-static");
        let (_, args) = launcher.command_line().unwrap();
        let line = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains("--ro-bind /usr/bin/qemu-aarch64-static /dev/.qemu-user"),
            "{line}"
        );
        assert!(
            line.ends_with("-- /dev/.qemu-user /lambda-entrypoint.sh bootstrap"),
            "{line}"
        );
    }

    #[test]
    fn the_emulators_environment_wins_over_the_images() {
        let launcher = sandbox(Path::new("/r"));
        let env = launcher.environment(&BTreeMap::from([("A".into(), "emulator".into())]));
        assert_eq!(
            env,
            vec![
                ("A".to_string(), "emulator".to_string()),
                ("PATH".to_string(), "/bin".to_string())
            ]
        );
    }

    #[test]
    fn host_paths_never_go_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/runtime")).unwrap();
        std::fs::write(dir.path().join("var/runtime/bootstrap"), b"x").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("host")).unwrap();
        assert!(host_path_in(dir.path(), "/var/runtime/bootstrap").is_ok());
        assert!(host_path_in(dir.path(), "/host/bin/sh").is_err());
        assert!(host_path_in(dir.path(), "/var/../../etc").is_err());
        assert!(host_path_in(dir.path(), "var/runtime/bootstrap").is_err());
    }
}
