//! Renders events for people: the command's own results as lines on stdout (the rest of the
//! results, and all progress, on stderr), and progress as a live line per function and stage
//! with byte bars for uploads and pulls (indicatif) on a terminal, or as plain lines when
//! stderr is not one. With `--message-format json`, stdout carries the JSON events instead
//! ([`crate::event::JsonLines`]) and this renders only progress.
//!
//! An `xtask` can use this renderer as its sink, alone or next to its own.

mod progress;
mod results;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::check::Severity;
use crate::event::{ErrorEvent, Event, Reason, Sink};
use crate::oci::short;
use crate::pipeline::{Outcome, Summary};
use crate::progress::{Direction, Level, Progress, State};
use crate::target::Arch;

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Live lines and bars (a terminal).
    Interactive,
    /// Plain lines (CI logs, pipes).
    Plain,
    /// Nothing but failures.
    Quiet,
}

impl ProgressMode {
    /// Interactive when stderr is a terminal, plain otherwise.
    pub fn auto() -> ProgressMode {
        if std::io::stderr().is_terminal() {
            ProgressMode::Interactive
        } else {
            ProgressMode::Plain
        }
    }
}

/// What the renderer prints.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The `reason`s of the command's own results, which go to stdout; other results go to
    /// stderr. Empty: every result goes to stderr.
    pub primary: Vec<Reason>,
    /// Whether stdout carries JSON events (then no result is rendered as text).
    pub json: bool,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// `-v` count: verbose lines (commands, a runtime's output) show from 1.
    pub verbosity: u8,
}

/// The live-line keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Function(String, Arch),
    Task(u64),
    Transfer(u64),
}

/// A place text goes.
type Writer = Mutex<Box<dyn Write + Send>>;

/// Renders events on stdout and stderr; see the module documentation.
pub struct Renderer {
    options: RenderOptions,
    multi: MultiProgress,
    bars: Mutex<HashMap<Key, ProgressBar>>,
    stdout_tty: bool,
    out: Writer,
    err: Writer,
}

impl Renderer {
    /// A renderer with these options, on the process's stdout and stderr.
    pub fn new(options: RenderOptions) -> Renderer {
        let tty = std::io::stdout().is_terminal();
        let mut renderer = Renderer::to_writers(
            options,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
        );
        renderer.stdout_tty = tty;
        renderer
    }

    /// A renderer writing results to `out` and progress to `err` (live lines, in interactive
    /// mode, always go to the terminal's stderr).
    pub fn to_writers(
        options: RenderOptions,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Renderer {
        let multi = MultiProgress::new();
        if options.progress != ProgressMode::Interactive {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        Renderer {
            options,
            multi,
            bars: Mutex::new(HashMap::new()),
            stdout_tty: false,
            out: Mutex::new(out),
            err: Mutex::new(err),
        }
    }

    /// A line on stderr, above any live line; nothing when quiet.
    pub fn line(&self, line: &str) {
        if self.options.progress != ProgressMode::Quiet {
            self.stderr(line);
        }
    }

    fn stderr(&self, line: &str) {
        if self.options.progress == ProgressMode::Interactive {
            // Fails only when the terminal is gone; nothing to do then.
            let _ = self.multi.println(line);
        } else if let Ok(mut err) = self.err.lock() {
            let _ = writeln!(err, "{line}");
        }
    }

    fn stdout(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            // A closed stdout (a pipe to `head`) is not worth failing the command for.
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    /// A result line: stdout when `reason` is one of the command's own, else stderr; nothing
    /// in JSON mode.
    fn result(&self, reason: Reason, line: &str) {
        if self.options.json {
            return;
        }
        if self.options.primary.contains(&reason) {
            self.stdout(line);
        } else {
            self.line(line);
        }
    }

    /// Ends every live line, then prints the summary of a run of several functions, or of one
    /// that failed, on stderr.
    pub fn finish(&self, summary: &Summary) {
        self.clear();
        if summary.entries.len() <= 1 && summary.failures() == 0 {
            return;
        }
        self.line("Summary:");
        for entry in &summary.entries {
            let line = match &entry.outcome {
                Outcome::Ok => format!("  ✓ {:<24} {:<7} ok", entry.function, entry.arch),
                Outcome::Planned => {
                    format!("  ✓ {:<24} {:<7} planned", entry.function, entry.arch)
                }
                Outcome::Failed { stage, message } => format!(
                    "  ✗ {:<24} {:<7} failed to {}: {message}",
                    entry.function,
                    entry.arch,
                    stage.verb()
                ),
            };
            self.line(&line);
        }
    }

    /// Removes every live line.
    pub fn clear(&self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Sink for Renderer {
    fn emit(&self, event: &Event) {
        match event {
            Event::Progress(progress) => {
                if self.options.progress != ProgressMode::Quiet {
                    self.progress(progress);
                }
            }
            other => self.render_result(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Reporter, Stage};
    use std::sync::Arc;

    /// A writer whose text the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn plain(primary: Vec<Reason>, verbosity: u8) -> (Arc<Renderer>, Captured, Captured) {
        let (out, err) = (Captured::default(), Captured::default());
        let options = RenderOptions {
            primary,
            json: false,
            progress: ProgressMode::Plain,
            verbosity,
        };
        let renderer = Renderer::to_writers(options, Box::new(out.clone()), Box::new(err.clone()));
        (Arc::new(renderer), out, err)
    }

    fn reporter(renderer: &Arc<Renderer>) -> Reporter {
        let sink = renderer.clone();
        Reporter::new(move |p| sink.emit(&Event::Progress(p)))
    }

    #[test]
    fn plain_progress_is_lines_for_tasks_transfers_and_stages() {
        let (renderer, out, err) = plain(vec![Reason::Pushed], 0);
        let reporter = reporter(&renderer);
        reporter.task("Compiling hello").done("Compiled hello");
        let digest = format!("sha256:{}", "ab".repeat(32));
        let upload = reporter.transfer(Direction::Upload, &digest, "r/hello", 3 << 20);
        upload.advance(3 << 20);
        upload.done();
        reporter.stage("hello", Arch::Arm64, Stage::Image, State::Started, None);
        reporter.stage(
            "hello",
            Arch::Arm64,
            Stage::Image,
            State::Done,
            Some("Image hello:1 (arm64) abab".into()),
        );
        reporter.verbose("  command: cargo build");
        let err = err.text();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "Compiling hello...");
        assert!(lines[1].starts_with("✓ Compiled hello ("), "{err}");
        assert_eq!(lines[2], "Uploading abababababab (3.1 MB) to r/hello...");
        assert_eq!(lines[3], "✓ Uploaded abababababab");
        assert_eq!(lines[4], "✓ Image hello:1 (arm64) abab");
        assert_eq!(lines.len(), 5, "verbose lines need -v: {err}");
        assert!(out.text().is_empty());
    }

    #[test]
    fn the_commands_own_results_go_to_stdout_and_failures_to_stderr() {
        let (renderer, out, err) = plain(vec![Reason::New], 1);
        renderer.emit(&Event::New {
            path: "fresh".into(),
            files: Vec::new(),
            workspace: None,
        });
        renderer.emit(&Event::Emulator {
            invoke_url: "http://127.0.0.1:8080".into(),
        });
        let error = crate::Error::TestFailed {
            failed: 1,
            total: 1,
        };
        renderer.emit(&Event::Error(ErrorEvent::of_function(
            "hello",
            Arch::X86_64,
            Stage::Compile,
            &error,
        )));
        reporter(&renderer).verbose("shown with -v");
        assert_eq!(out.text(), "fresh\n");
        assert_eq!(
            err.text(),
            "http://127.0.0.1:8080\n✗ hello (x86_64) failed to compile: 1 of 1 invocation failed\nshown with -v\n"
        );
    }
}
