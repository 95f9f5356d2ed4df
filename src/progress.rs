//! What the stages report while they work: a function entering or leaving a stage, a task
//! (a compiler run, a base pull) starting and ending, bytes of a blob moving, and lines of
//! output. Stages report through a [`Reporter`], a cheap handle around the caller's function;
//! they never print. The command-line tool renders these reports on stderr (live lines and
//! byte bars on a terminal, plain lines elsewhere), an `xtask` gets them as
//! [`crate::event::Event::Progress`] events through the same sink as every other event.
//!
//! Part of the ground floor: it imports nothing from a stage.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::target::Arch;

/// A stage of the pipeline, as failures and progress name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Cross-compiling the bootstrap.
    Compile,
    /// Building the image (assembling it, or the Docker build; the base pull included).
    Image,
    /// Checking the image against Lambda's rules.
    Check,
    /// Writing local outputs: a docker-archive, a copy in another OCI layout, a Docker load.
    Output,
    /// Pushing to a registry.
    Push,
    /// Running the function under the emulator.
    Test,
    /// Deploying to Lambda.
    Deploy,
}

impl Stage {
    /// What a function failed to do, for messages: "failed to {verb}".
    pub fn verb(self) -> &'static str {
        match self {
            Stage::Compile => "compile",
            Stage::Image => "build the image",
            Stage::Check => "pass the Lambda checks",
            Stage::Output => "write the image",
            Stage::Push => "push",
            Stage::Test => "run",
            Stage::Deploy => "deploy",
        }
    }

    /// The stage's name, as JSON spells it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Compile => "compile",
            Stage::Image => "image",
            Stage::Check => "check",
            Stage::Output => "output",
            Stage::Push => "push",
            Stage::Test => "test",
            Stage::Deploy => "deploy",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a reported thing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// It began.
    Started,
    /// It is under way (transfers report their bytes with it).
    Running,
    /// It ended well.
    Done,
    /// It ended badly.
    Failed,
    /// It was dropped unfinished (an error elsewhere, Ctrl-C): nothing to say about it.
    Abandoned,
}

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// To a registry.
    Upload,
    /// From a registry.
    Pull,
}

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Detail for `-v`: commands being run, a runtime's own output.
    Verbose,
    /// What a user running the command wants to see.
    Info,
    /// Something that works but should be fixed.
    Warning,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Progress {
    /// A function entered or left a stage.
    Stage {
        /// The function.
        function: String,
        /// Its architecture.
        arch: Arch,
        /// The stage.
        stage: Stage,
        /// Started, done or failed.
        state: State,
        /// A word on the outcome, e.g. the short digest of a built image.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A task that is not one function's stage, such as a compiler run for several
    /// functions.
    Task {
        /// Ties the reports of one task together.
        id: u64,
        /// What it does (started) or did (done, failed).
        message: String,
        /// Where it is.
        state: State,
        /// Milliseconds since it started.
        elapsed_ms: u64,
    },
    /// Bytes of a blob moving to or from a registry.
    Transfer {
        /// Ties the reports of one transfer together.
        id: u64,
        /// Upload or pull.
        direction: Direction,
        /// The blob.
        digest: String,
        /// The repository on the other side.
        peer: String,
        /// Bytes moved so far.
        done: u64,
        /// Bytes in all.
        total: u64,
        /// Where it is.
        state: State,
    },
    /// A line of output: a note, a compiler message, a runtime's log line.
    Line {
        /// How important it is.
        level: Level,
        /// The text, without a newline.
        text: String,
    },
}

/// Where the stages send their reports: a handle around the caller's function, cheap to
/// clone and share between threads.
#[derive(Clone)]
pub struct Reporter {
    send: Arc<dyn Fn(Progress) + Send + Sync>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}

/// Ids of tasks and transfers, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many bytes a transfer moves between two reports, so that a 10 GB upload does not send
/// millions of them.
const TRANSFER_REPORT_BYTES: u64 = 1 << 20;

impl Reporter {
    /// A reporter that hands every report to `send`.
    pub fn new(send: impl Fn(Progress) + Send + Sync + 'static) -> Reporter {
        Reporter {
            send: Arc::new(send),
        }
    }

    /// A reporter that drops every report.
    pub fn discard() -> Reporter {
        Reporter::new(|_| {})
    }

    /// Sends a report.
    pub fn emit(&self, progress: Progress) {
        (self.send)(progress);
    }

    /// A line worth showing.
    pub fn line(&self, text: impl Into<String>) {
        self.emit(Progress::Line {
            level: Level::Info,
            text: text.into(),
        });
    }

    /// A line for `-v`.
    pub fn verbose(&self, text: impl Into<String>) {
        self.emit(Progress::Line {
            level: Level::Verbose,
            text: text.into(),
        });
    }

    /// A warning.
    pub fn warn(&self, text: impl Into<String>) {
        self.emit(Progress::Line {
            level: Level::Warning,
            text: text.into(),
        });
    }

    /// A function entering or leaving a stage.
    pub fn stage(
        &self,
        function: &str,
        arch: Arch,
        stage: Stage,
        state: State,
        detail: Option<String>,
    ) {
        self.emit(Progress::Stage {
            function: function.to_string(),
            arch,
            stage,
            state,
            detail,
        });
    }

    /// Starts a task; finish it with [`Task::done`] or [`Task::fail`].
    pub fn task(&self, message: impl Into<String>) -> Task {
        let task = Task {
            reporter: self.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            finished: false,
        };
        task.send(message.into(), State::Started);
        task
    }

    /// Starts a transfer of `total` bytes of `digest` to or from `peer`.
    pub fn transfer(&self, direction: Direction, digest: &str, peer: &str, total: u64) -> Transfer {
        let transfer = Transfer {
            reporter: self.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            direction,
            digest: digest.to_string(),
            peer: peer.to_string(),
            total,
            done: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        };
        transfer.send(0, State::Started);
        transfer
    }
}

/// A running task.
#[derive(Debug)]
pub struct Task {
    reporter: Reporter,
    id: u64,
    started: Instant,
    finished: bool,
}

impl Task {
    /// Ends the task well.
    pub fn done(mut self, message: impl Into<String>) {
        self.finished = true;
        self.send(message.into(), State::Done);
    }

    /// Ends the task badly.
    pub fn fail(mut self, message: impl Into<String>) {
        self.finished = true;
        self.send(message.into(), State::Failed);
    }

    fn send(&self, message: String, state: State) {
        self.reporter.emit(Progress::Task {
            id: self.id,
            message,
            state,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.finished {
            self.send(String::new(), State::Abandoned);
        }
    }
}

/// A running transfer; share it (in an `Arc`) with whatever moves the bytes.
#[derive(Debug)]
pub struct Transfer {
    reporter: Reporter,
    id: u64,
    direction: Direction,
    digest: String,
    peer: String,
    total: u64,
    done: AtomicU64,
    reported: AtomicU64,
    finished: AtomicBool,
}

impl Transfer {
    /// Counts `bytes` more moved; reports every megabyte or so.
    pub fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let reported = self.reported.load(Ordering::Relaxed);
        if done >= reported + TRANSFER_REPORT_BYTES
            && self
                .reported
                .compare_exchange(reported, done, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.send(done, State::Running);
        }
    }

    /// Starts counting again (a retried upload).
    pub fn restart(&self) {
        self.restart_at(0);
    }

    /// Starts counting again from `bytes` (an upload resumed where the registry stopped).
    pub fn restart_at(&self, bytes: u64) {
        self.done.store(bytes, Ordering::Relaxed);
        self.reported.store(bytes, Ordering::Relaxed);
    }

    /// Ends the transfer well.
    pub fn done(&self) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.send(self.total, State::Done);
        }
    }

    /// Ends the transfer badly.
    pub fn fail(&self) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.send(self.done.load(Ordering::Relaxed), State::Failed);
        }
    }

    fn send(&self, done: u64, state: State) {
        self.reporter.emit(Progress::Transfer {
            id: self.id,
            direction: self.direction,
            digest: self.digest.clone(),
            peer: self.peer.clone(),
            done,
            total: self.total,
            state,
        });
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.send(self.done.load(Ordering::Relaxed), State::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn recorder() -> (Reporter, Arc<Mutex<Vec<Progress>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reporter = Reporter::new(move |p| sink.lock().unwrap().push(p));
        (reporter, seen)
    }

    #[test]
    fn a_task_reports_its_start_and_end_and_a_dropped_one_is_abandoned() {
        let (reporter, seen) = recorder();
        reporter.task("one").done("did one");
        drop(reporter.task("two"));
        let states: Vec<State> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|p| match p {
                Progress::Task { state, .. } => *state,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            states,
            [
                State::Started,
                State::Done,
                State::Started,
                State::Abandoned
            ]
        );
    }

    #[test]
    fn transfers_report_about_every_megabyte_not_every_chunk() {
        let (reporter, seen) = recorder();
        let transfer = reporter.transfer(Direction::Upload, "sha256:x", "r/x", 10 << 20);
        for _ in 0..(10 << 4) {
            transfer.advance(64 << 10);
        }
        transfer.done();
        let reports = seen.lock().unwrap();
        let running = reports
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Progress::Transfer {
                        state: State::Running,
                        ..
                    }
                )
            })
            .count();
        assert!((9..=10).contains(&running), "{running} running reports");
        assert!(matches!(
            reports.last(),
            Some(Progress::Transfer { state: State::Done, done, .. }) if *done == 10 << 20
        ));
    }
}
