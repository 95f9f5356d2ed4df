//! Progress on stderr: spinners for long work on a terminal, plain lines elsewhere, nothing when
//! quiet. Results never go here; they go to stdout, which the binary owns.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners and lines (a terminal).
    Interactive,
    /// Lines only (CI logs, pipes).
    Plain,
    /// Nothing at all.
    Quiet,
}

/// A handle for reporting progress, shared by all stages.
#[derive(Debug, Clone)]
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
}

impl Progress {
    /// Progress in the given mode.
    pub fn new(mode: Mode) -> Progress {
        let multi = MultiProgress::new();
        if mode != Mode::Interactive {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        Progress { mode, multi }
    }

    /// Interactive on a terminal, plain otherwise.
    pub fn auto() -> Progress {
        use std::io::IsTerminal;
        Progress::new(if std::io::stderr().is_terminal() {
            Mode::Interactive
        } else {
            Mode::Plain
        })
    }

    /// No output at all (for library callers that report on their own).
    pub fn hidden() -> Progress {
        Progress::new(Mode::Quiet)
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Prints a line on stderr, above any spinner.
    pub fn line(&self, line: &str) {
        match self.mode {
            Mode::Interactive => {
                // println on a MultiProgress only fails if the terminal is gone; nothing to do then.
                let _ = self.multi.println(line);
            }
            Mode::Plain => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Mode::Quiet => {}
        }
    }

    /// Starts a task with a spinner (interactive) or a start line (plain).
    pub fn task(&self, message: String) -> Task {
        let bar = match self.mode {
            Mode::Interactive => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar.set_message(message.clone());
                Some(bar)
            }
            Mode::Plain => {
                self.line(&format!("{message}..."));
                None
            }
            Mode::Quiet => None,
        };
        Task {
            progress: self.clone(),
            bar,
            started: std::time::Instant::now(),
        }
    }
}

/// A running task; finish it with [`Task::done`] or [`Task::fail`].
#[derive(Debug)]
pub struct Task {
    progress: Progress,
    bar: Option<ProgressBar>,
    started: std::time::Instant,
}

impl Task {
    /// Ends the task with a success line.
    pub fn done(self, message: &str) {
        self.finish("✓", message);
    }

    /// Ends the task with a failure line.
    pub fn fail(self, message: &str) {
        self.finish("✗", message);
    }

    fn finish(self, mark: &str, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        self.progress
            .line(&format!("{mark} {message} ({secs:.1}s)"));
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
