//! Running external commands: echoing them, adding context to their failures,
//! and stopping them cleanly when the user interrupts the task.

use std::{
    ffi::c_int,
    io,
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use crate::Result;

/// Set by the SIGINT/SIGTERM handler; polled by every loop that waits.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

// Linux signal numbers (the same on every architecture Rust supports there).
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

// std exposes no way to catch signals or to send anything but SIGKILL, and the
// three libc functions below are all that is needed, so they are declared here
// rather than pulling in the `libc` crate.
extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn _exit(status: c_int) -> !;
}

extern "C" fn on_signal(_signum: c_int) {
    // A second Ctrl-C means the user does not want to wait for the orderly
    // shutdown of the services.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { _exit(130) }
    }
}

/// Turns SIGINT and SIGTERM into a flag that [`interrupted`] reports, so that
/// the tasks get a chance to stop the services they started.
pub(crate) fn install_interrupt_handler() {
    // SAFETY: the handler only touches an atomic and calls `_exit`, both of
    // which are async-signal-safe.
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

/// Whether the user asked the task to stop (Ctrl-C or SIGTERM).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with "interrupted" once the user asked the task to stop.
pub(crate) fn check_interrupted() -> Result<()> {
    if interrupted() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Renders `cmd` roughly as a shell would show it, for messages.
pub(crate) fn display(cmd: &Command) -> String {
    let mut shown = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

/// Starts `cmd`, explaining what to do when the program is missing.
pub(crate) fn spawn(cmd: &mut Command) -> Result<Child> {
    cmd.spawn().map_err(|err| {
        let hint = if err.kind() == io::ErrorKind::NotFound {
            " (is it installed and on PATH?)"
        } else {
            ""
        };
        format!("failed to start `{}`: {err}{hint}", display(cmd)).into()
    })
}

/// Runs `cmd` with inherited stdio and fails unless it exits successfully.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    say!("running `{shown}`");
    let mut child = spawn(cmd)?;
    let status = wait(&mut child, &shown)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})").into())
    }
}

/// Runs `cmd` as [`run`] does, its stderr shown as it comes, and returns its stdout.
pub(crate) fn run_capturing(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    say!("running `{shown}`");
    let mut child = spawn(cmd.stdout(Stdio::piped()))?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        io::Read::read_to_string(&mut pipe, &mut stdout)
            .map_err(|err| format!("failed to read the output of `{shown}`: {err}"))?;
    }
    let status = wait(&mut child, &shown)?;
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("`{shown}` failed ({status})").into())
    }
}

/// Runs `cmd` and returns its stdout; on failure the error includes stderr.
/// Meant for short queries, so it is not interruptible.
pub(crate) fn read(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    let output = cmd.stdin(Stdio::null()).output().map_err(|err| {
        let hint = if err.kind() == io::ErrorKind::NotFound {
            " (is it installed and on PATH?)"
        } else {
            ""
        };
        format!("failed to start `{shown}`: {err}{hint}")
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`{shown}` failed ({}): {}", output.status, stderr.trim()).into());
    }
    String::from_utf8(output.stdout).map_err(|_| format!("`{shown}` printed invalid UTF-8").into())
}

/// Whether `cmd` runs and exits successfully; its output is discarded.
pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Waits for `child`, stopping it if the user interrupts the task meanwhile.
fn wait(child: &mut Child, shown: &str) -> Result<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(err) => return Err(format!("failed to wait for `{shown}`: {err}").into()),
        }
        if interrupted() {
            // In a terminal the child shares our process group and got the
            // Ctrl-C too, so it is usually exiting already.
            stop(child, Duration::from_secs(10));
            return Err(format!("interrupted while running `{shown}`").into());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Asks `child` to terminate with SIGTERM, kills it if it is still running
/// after `grace`, and reaps it.
pub(crate) fn stop(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SIGTERM rather than SIGKILL so that dockerd can shut down its containerd
    // and remove its pid file. The pid cannot have been reused by another
    // process because the child has not been reaped yet.
    if let Ok(pid) = c_int::try_from(child.id()) {
        // SAFETY: plain syscall wrapper; the pid is our own unreaped child.
        unsafe { kill(pid, SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait().ok()
}
