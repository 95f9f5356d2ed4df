//! SnapStart's lifecycle in one execution environment, as Lambda runs it for container images:
//! the runtime initializes, runs its before-snapshot hooks and calls
//! `GET /2018-06-01/runtime/restore/next`, where Lambda takes the snapshot; when the snapshot
//! is restored that call returns, the runtime runs its after-restore hooks (posting
//! `/restore/error` if one fails) and asks for its first invocation with `/next`.
//!
//! Locally the environment is initialized when an invocation needs it, so the "snapshot" is
//! restored as soon as it is taken: `restore/next` is answered at once, and the restore phase
//! lasts until the runtime's first `/next`. Its length is the `RESTORE_REPORT` line's and the
//! first `REPORT`'s `Restore Duration`, which replaces the `Init Duration` (Lambda
//! initializes a SnapStart function when it publishes a version, not when it is invoked).
//!
//! A runtime that never calls `restore/next` can only be snapshotted at its first `/next` if
//! the image carries the label `com.amazonaws.lambda.feature.snapstart=Allow`; without it,
//! Lambda fails to publish a version of the function, and the emulator refuses the
//! environment with that reason.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ExecutionModel, LogSink};

/// Where the environment is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Initializing, before `restore/next`.
    Init,
    /// The snapshot was restored at `since`; the runtime runs its after-restore hooks.
    Restoring { since: Instant },
    /// The runtime asked for its first invocation (or the restore failed).
    Done,
}

/// The restore lifecycle of one environment.
#[derive(Debug)]
pub(crate) struct Restore {
    /// Whether the image carries the SnapStart label.
    label: bool,
    phase: Mutex<Phase>,
    /// The restore phase's length, until the first `REPORT` takes it.
    duration: Mutex<Option<Duration>>,
}

/// `ms` with two decimals, as Lambda's report lines have them.
fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

impl Restore {
    /// The lifecycle for `model`, if it is SnapStart.
    pub fn for_model(model: ExecutionModel) -> Option<Restore> {
        match model {
            ExecutionModel::SnapStart { label } => Some(Restore {
                label,
                phase: Mutex::new(Phase::Init),
                duration: Mutex::new(None),
            }),
            _ => None,
        }
    }

    fn phase(&self) -> Phase {
        self.phase.lock().map(|p| *p).unwrap_or(Phase::Done)
    }

    fn set(&self, phase: Phase) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }

    /// `restore/next`: ends init (the snapshot) and restores at once. `Err` is why the call
    /// is out of place: after a restore, or once the runtime takes invocations.
    pub fn restore_next(&self, launched: Instant, logs: &LogSink) -> Result<(), String> {
        if self.phase() != Phase::Init {
            return Err(
                "restore/next is only valid once, at the end of the init phase".to_string(),
            );
        }
        let now = Instant::now();
        logs.line(&format!(
            "[emulator] SnapStart: init took {} ms; the snapshot is taken here and restored at once",
            ms(now.saturating_duration_since(launched))
        ));
        logs.line("RESTORE_START");
        self.set(Phase::Restoring { since: now });
        Ok(())
    }

    /// The runtime's first `/next`: ends the restore phase. `Err` is Lambda's reason to
    /// refuse a runtime that was never snapshotted (no `restore/next`, no label).
    pub fn first_next(&self, launched: Instant, logs: &LogSink) -> Result<(), String> {
        let now = Instant::now();
        let since = match self.phase() {
            Phase::Restoring { since } => since,
            Phase::Init if self.label => {
                // The label lets Lambda snapshot the runtime where it asks for work.
                logs.line(&format!(
                    "[emulator] SnapStart: init took {} ms; the runtime did not call restore/next, \
                     and the image's label {}={} lets the snapshot be taken at its first /next",
                    ms(now.saturating_duration_since(launched)),
                    ExecutionModel::SNAP_START_LABEL.0,
                    ExecutionModel::SNAP_START_LABEL.1,
                ));
                logs.line("RESTORE_START");
                now
            }
            Phase::Init => {
                self.set(Phase::Done);
                return Err(format!(
                    "SnapStart: the runtime asked for an invocation without calling GET \
                     /2018-06-01/runtime/restore/next, and the image has no label {}={}, so \
                     Lambda fails to publish a version of this function. Use lambda_runtime 1.5 \
                     or later (it calls restore/next when AWS_LAMBDA_INITIALIZATION_TYPE is \
                     snap-start), or add the label with image.labels",
                    ExecutionModel::SNAP_START_LABEL.0,
                    ExecutionModel::SNAP_START_LABEL.1,
                ));
            }
            Phase::Done => return Ok(()),
        };
        let duration = now.saturating_duration_since(since);
        logs.line(&format!(
            "RESTORE_REPORT Restore Duration: {} ms",
            ms(duration)
        ));
        if let Ok(mut d) = self.duration.lock() {
            *d = Some(duration);
        }
        self.set(Phase::Done);
        Ok(())
    }

    /// `restore/error`: an after-restore hook failed. Returns false when no restore is under
    /// way, which makes the call out of place.
    pub fn failed(&self, error_type: &str, logs: &LogSink) -> bool {
        let Phase::Restoring { since } = self.phase() else {
            return false;
        };
        logs.line(&format!(
            "RESTORE_REPORT Restore Duration: {} ms\tStatus: error\tError Type: {error_type}",
            ms(since.elapsed())
        ));
        self.set(Phase::Done);
        true
    }

    /// The restore phase's length, once it is over, without taking it.
    pub fn duration(&self) -> Option<Duration> {
        self.duration.lock().ok().and_then(|d| *d)
    }

    /// The restore phase's length, the first time it is asked for.
    pub fn take_duration(&self) -> Option<Duration> {
        self.duration.lock().ok().and_then(|mut d| d.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> (LogSink, tokio::sync::mpsc::UnboundedReceiver<String>) {
        LogSink::channel()
    }

    fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn restore_next_then_next_reports_the_restore_once() {
        let restore = Restore::for_model(ExecutionModel::SnapStart { label: false }).unwrap();
        let (logs, mut rx) = lines();
        let launched = Instant::now();
        restore.restore_next(launched, &logs).unwrap();
        assert!(restore.restore_next(launched, &logs).is_err(), "only once");
        restore.first_next(launched, &logs).unwrap();
        let lines = drain(&mut rx);
        assert!(
            lines[0].starts_with("[emulator] SnapStart: init took "),
            "{lines:?}"
        );
        assert_eq!(lines[1], "RESTORE_START");
        assert!(
            lines[2].starts_with("RESTORE_REPORT Restore Duration: "),
            "{lines:?}"
        );
        assert!(restore.take_duration().is_some());
        assert!(restore.take_duration().is_none(), "taken once");
        // Later `/next`s are the environment's ordinary work.
        restore.first_next(launched, &logs).unwrap();
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn a_runtime_that_skips_restore_next_needs_the_label() {
        let (logs, mut rx) = lines();
        let refused = Restore::for_model(ExecutionModel::SnapStart { label: false }).unwrap();
        let err = refused.first_next(Instant::now(), &logs).unwrap_err();
        assert!(
            err.contains("com.amazonaws.lambda.feature.snapstart=Allow"),
            "{err}"
        );
        assert!(err.contains("restore/next"), "{err}");
        let labelled = Restore::for_model(ExecutionModel::SnapStart { label: true }).unwrap();
        labelled.first_next(Instant::now(), &logs).unwrap();
        let lines = drain(&mut rx);
        assert_eq!(lines[1], "RESTORE_START", "{lines:?}");
        assert!(labelled.take_duration().is_some());
    }

    #[test]
    fn restore_errors_only_count_during_the_restore() {
        let (logs, mut rx) = lines();
        let restore = Restore::for_model(ExecutionModel::SnapStart { label: false }).unwrap();
        assert!(!restore.failed("Runtime.AfterRestoreError", &logs));
        restore.restore_next(Instant::now(), &logs).unwrap();
        assert!(restore.failed("Runtime.AfterRestoreError", &logs));
        let last = drain(&mut rx).pop().unwrap();
        assert!(
            last.ends_with("Status: error\tError Type: Runtime.AfterRestoreError"),
            "{last}"
        );
        assert!(Restore::for_model(ExecutionModel::OnDemand).is_none());
    }
}
