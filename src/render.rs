//! Renders events for people: the command's own results as lines on stdout (the rest of the
//! results, and all progress, on stderr), and progress as a live line per function and stage
//! with byte bars for uploads and pulls (indicatif) on a terminal, or as plain lines when
//! stderr is not one. With `--message-format json`, stdout carries the JSON events instead
//! ([`crate::event::JsonLines`]) and this renders only progress.
//!
//! An `xtask` can use this renderer as its sink, alone or next to its own.

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

    fn render_result(&self, event: &Event) {
        match event {
            Event::Plan {
                plan,
                commands: Some(commands),
            } => {
                for command in commands {
                    self.line(&format!("  command: {}", command.display()));
                    if let Some(image) = &command.cross_image {
                        self.line(&format!("  {}", image.display()));
                    }
                }
                for f in &plan.functions {
                    let line = format!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        f.name, f.arch, f.target, f.compiler, f.base_image.reference, f.artifact
                    );
                    self.result(Reason::Plan, &line);
                }
            }
            Event::Plan { .. } => {}
            Event::Compiled { artifact: a } => {
                let linkage = match (&a.elf.interpreter, a.elf.max_glibc) {
                    (None, _) => "static".to_string(),
                    (Some(_), Some(v)) => format!("dynamic, GLIBC_{v}"),
                    (Some(_), None) => "dynamic".to_string(),
                };
                let line = format!(
                    "{}\t{}\t{}\t{:.1} MB\t{}",
                    a.function,
                    a.arch,
                    a.path,
                    a.size as f64 / 1_048_576.0,
                    linkage
                );
                self.result(Reason::Compiled, &line);
            }
            Event::Check { report } => self.check_report(report),
            Event::Image { image: i, .. } => {
                let line = format!(
                    "{}\t{}\t{}:{}\t{}\t{}",
                    i.function, i.arch, i.repository, i.tag, i.digest, i.layout
                );
                self.result(Reason::Image, &line);
            }
            Event::Pushed { image: p } => {
                let line = format!(
                    "{}\t{}\t{}:{}\t{}",
                    p.function, p.arch, p.repository, p.tag, p.image_uri
                );
                self.result(Reason::Pushed, &line);
            }
            Event::Index { index } => self.index(index),
            Event::Invocation { invocation } => self.invocation(invocation),
            Event::Deployed { deployment: d } => self.deployed(d),
            Event::Planned { deployment } => self.planned(deployment),
            Event::Pruned { pruned } => self.pruned(pruned),
            Event::Doctor { check } => self.doctor(check),
            Event::Released { release } => self.released(release),
            Event::Template { path, template, .. } => {
                if let Some(path) = path {
                    self.result(Reason::Template, &path.display().to_string());
                }
                if let (Some(template), false) = (template, self.options.json) {
                    let text = serde_json::to_string_pretty(template).unwrap_or_default();
                    self.stdout(&text);
                }
            }
            Event::New { path, .. } => self.result(Reason::New, &path.display().to_string()),
            Event::EventExample { event, .. } => {
                if !self.options.json {
                    self.stdout(&serde_json::to_string_pretty(event).unwrap_or_default());
                }
            }
            Event::Emulator { invoke_url } => self.result(Reason::Emulator, invoke_url),
            Event::Serving {
                endpoint,
                functions,
            } => self.serving(endpoint, functions),
            Event::Reloaded { function: f } => {
                let line = format!("reloaded\t{}\t{}\t{}", f.lambda_name, f.arch, f.digest);
                self.result(Reason::Reloaded, &line);
            }
            Event::Invoked { invoked } => self.invoked(invoked),
            Event::Error(error) => self.failure(error),
            Event::Progress(_) => {}
        }
    }

    /// `check`'s own result: every rule of every image, on stdout.
    fn check_report(&self, report: &crate::check::Report) {
        if self.options.json || !self.options.primary.contains(&Reason::Check) {
            return;
        }
        self.stdout(&format!("{} ({})", report.function, report.arch));
        for f in &report.findings {
            let mark = match f.severity {
                Severity::Pass => "✓",
                Severity::Note => "!",
                Severity::Fail => "✗",
            };
            self.stdout(&format!("  {mark} {:<18} {}", f.rule, f.message));
            if f.severity != Severity::Pass {
                self.stdout(&format!("    help: {}", f.help));
            }
        }
    }

    fn index(&self, index: &crate::publish::index::IndexPushed) {
        // The index lists OCI platforms; people read Lambda's architecture names.
        let arches: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .map(|p| {
                p.architecture
                    .parse::<crate::target::Arch>()
                    .map_or_else(|_| p.architecture.clone(), |a| a.to_string())
            })
            .collect();
        let line = format!(
            "index\t{}\t{}\t{}",
            index.reference,
            arches.join(","),
            index.index_uri
        );
        self.result(Reason::Index, &line);
    }

    fn doctor(&self, check: &crate::doctor::Check) {
        let mark = match (check.ok, check.needed) {
            (true, _) => "✓",
            (false, true) => "✗",
            (false, false) => "!",
        };
        let mut line = format!("{mark} {}: {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            line.push_str(&format!("\n    fix: {fix}"));
        }
        self.result(Reason::Doctor, &line);
    }

    fn pruned(&self, p: &crate::deploy::prune::Pruned) {
        for image in &p.unused {
            let line = format!(
                "{}\t{}\t{}\t{}",
                p.repository,
                image.digest,
                if image.tags.is_empty() {
                    "(untagged)".to_string()
                } else {
                    image.tags.join(",")
                },
                if p.deleted { "deleted" } else { "unused" }
            );
            self.result(Reason::Pruned, &line);
        }
        self.line(&format!(
            "{}: {} image(s) in use, {} unused{}",
            p.repository,
            p.used,
            p.unused.len(),
            if p.deleted || p.unused.is_empty() {
                ""
            } else {
                " (run with --yes to delete them)"
            }
        ));
    }

    fn released(&self, r: &crate::deploy::release::Released) {
        let line = format!(
            "{}\t{}\t{}\t{} -> {}\t{}",
            r.function,
            r.arch,
            r.alias,
            r.from,
            r.to,
            match (r.changed, r.dry_run) {
                (true, false) => "changed",
                (true, true) => "would change (dry run)",
                (false, _) => "unchanged",
            }
        );
        self.result(Reason::Released, &line);
    }

    fn deployed(&self, d: &crate::deploy::DeployedFunction) {
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            d.function,
            d.arch,
            d.arn,
            d.version.as_deref().unwrap_or("$LATEST"),
            d.digest,
            if d.changed { "changed" } else { "unchanged" }
        );
        if let Some(url) = &d.url {
            line.push_str(&format!("\t{url}"));
        }
        self.result(Reason::Deployed, &line);
    }

    fn serving(&self, endpoint: &str, functions: &[crate::serve::ServedFunction]) {
        for f in functions {
            let mut line = format!("{}\t{}\t{}", f.lambda_name, f.arch, f.invoke_url);
            if let Some(http) = &f.http {
                line.push_str(&format!("\thttp: {http}"));
            }
            self.result(Reason::Serving, &line);
        }
        self.line(&format!(
            "Serving {} function{} at {endpoint}; Ctrl-C to stop",
            functions.len(),
            if functions.len() == 1 { "" } else { "s" }
        ));
    }

    fn invoked(&self, invoked: &crate::serve::Invoked) {
        if self.options.json {
            return;
        }
        if let Some(tail) = &invoked.log_tail {
            for line in tail.lines() {
                self.line(&format!("  | {line}"));
            }
        }
        if let Some(error) = &invoked.function_error {
            self.line(&format!(
                "✗ {} answered with a function error ({error})",
                invoked.function
            ));
        }
        self.stdout(invoked.response.trim_end_matches('\n'));
    }

    fn invocation(&self, invocation: &crate::testing::Invocation) {
        let mark = if invocation.passed() { "✓" } else { "✗" };
        self.line(&format!(
            "{mark} {} ({}) {} -> {}{} in {} ms{}",
            invocation.function,
            invocation.arch,
            invocation.event,
            invocation.status,
            invocation
                .function_error
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default(),
            invocation.duration_ms,
            match invocation.matches_expected {
                Some(true) => ", as expected",
                Some(false) => ", NOT as expected",
                None => "",
            },
        ));
        if self.options.json {
            return;
        }
        let text = if self.stdout_tty {
            serde_json::to_string_pretty(&invocation.response).unwrap_or_default()
        } else {
            invocation.response.to_string()
        };
        self.result(Reason::Invocation, &text);
        if invocation.matches_expected == Some(false) {
            // Shown even with -q: the response alone does not say what was wrong with it.
            let expected = invocation.expected.clone().unwrap_or_default();
            let context = if self.options.progress == ProgressMode::Quiet {
                format!(
                    "✗ {} ({}) {}: the response is NOT as expected\n",
                    invocation.function, invocation.arch, invocation.event
                )
            } else {
                String::new()
            };
            self.stderr(&format!("{context}  expected: {expected}"));
        }
    }

    fn planned(&self, deployment: &crate::deploy::DeployOutcome) {
        let crate::deploy::DeployOutcome::Planned {
            function,
            arch,
            image_uri,
            steps,
        } = deployment
        else {
            return;
        };
        self.result(
            Reason::Planned,
            &format!("{function}\t{arch}\t{image_uri}\t(dry run)"),
        );
        for step in steps {
            self.result(
                Reason::Planned,
                &format!(
                    "  {} {} {}: {}",
                    step.service, step.operation, step.target, step.summary
                ),
            );
            for change in &step.changes {
                self.result(
                    Reason::Planned,
                    &format!("      {}: {} -> {}", change.field, change.from, change.to),
                );
            }
        }
        if steps.is_empty() {
            self.result(Reason::Planned, "  nothing to change");
        }
    }

    /// One function's failure; errors of the whole command are the binary's to print.
    fn failure(&self, error: &ErrorEvent) {
        if let (Some(function), Some(arch), Some(stage)) =
            (&error.function, error.arch, error.stage)
        {
            if let Ok(mut bars) = self.bars.lock() {
                if let Some(bar) = bars.remove(&Key::Function(function.clone(), arch)) {
                    bar.finish_and_clear();
                }
            }
            self.stderr(&format!(
                "✗ {function} ({arch}) failed to {}: {}",
                stage.verb(),
                error.message
            ));
        }
    }

    fn progress(&self, progress: &Progress) {
        match progress {
            Progress::Line { level, text } => {
                let shown = match level {
                    Level::Verbose => self.options.verbosity > 0,
                    Level::Info => true,
                    Level::Warning => true,
                };
                if shown {
                    self.line(text);
                }
            }
            Progress::Stage {
                function,
                arch,
                stage,
                state,
                detail,
            } => {
                let key = Key::Function(function.clone(), *arch);
                match state {
                    State::Started => {
                        self.live(key, &format!("{function} ({arch}): {stage}…"), None)
                    }
                    State::Done => {
                        if let Some(detail) = detail {
                            self.line(&format!("✓ {detail}"));
                        }
                        self.set_message(&key, &format!("{function} ({arch}): {stage} done"));
                    }
                    State::Failed | State::Abandoned => self.remove(&key),
                    State::Running => {}
                }
            }
            Progress::Task {
                id,
                message,
                state,
                elapsed_ms,
            } => self.task(*id, message, *state, *elapsed_ms),
            Progress::Transfer {
                id,
                direction,
                digest,
                peer,
                done,
                total,
                state,
            } => {
                let (verb, done_verb) = match direction {
                    Direction::Upload => ("Uploading", "Uploaded"),
                    Direction::Pull => ("Pulling", "Pulled"),
                };
                let key = Key::Transfer(*id);
                match state {
                    State::Started => {
                        let message = format!(
                            "{verb} {} ({:.1} MB) {} {peer}",
                            short(digest),
                            *total as f64 / 1e6,
                            if *direction == Direction::Upload {
                                "to"
                            } else {
                                "from"
                            },
                        );
                        if self.options.progress == ProgressMode::Plain {
                            self.line(&format!("{message}..."));
                        }
                        self.live(key, &message, Some(*total));
                    }
                    State::Running => {
                        if let Ok(bars) = self.bars.lock() {
                            if let Some(bar) = bars.get(&key) {
                                bar.set_position(*done);
                            }
                        }
                    }
                    State::Done => {
                        self.remove(&key);
                        self.line(&format!("✓ {done_verb} {}", short(digest)));
                    }
                    State::Failed => {
                        self.remove(&key);
                        self.line(&format!("✗ {verb} {} failed", short(digest)));
                    }
                    State::Abandoned => self.remove(&key),
                }
            }
        }
    }

    fn task(&self, id: u64, message: &str, state: State, elapsed_ms: u64) {
        let key = Key::Task(id);
        let secs = elapsed_ms as f64 / 1000.0;
        match state {
            State::Started => {
                if self.options.progress == ProgressMode::Plain {
                    self.line(&format!("{message}..."));
                }
                self.live(key, message, None);
            }
            State::Done => {
                self.remove(&key);
                self.line(&format!("✓ {message} ({secs:.1}s)"));
            }
            State::Failed => {
                self.remove(&key);
                self.line(&format!("✗ {message} ({secs:.1}s)"));
            }
            State::Abandoned => self.remove(&key),
            State::Running => {}
        }
    }

    /// Starts (or updates) a live line: a spinner, or a byte bar when `total` is given.
    fn live(&self, key: Key, message: &str, total: Option<u64>) {
        if self.options.progress != ProgressMode::Interactive {
            return;
        }
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if let Some(bar) = bars.get(&key) {
            bar.set_message(message.to_string());
            return;
        }
        let bar = match total {
            Some(total) => {
                let bar = self.multi.add(ProgressBar::new(total));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar
            }
            None => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        };
        bar.set_message(message.to_string());
        bars.insert(key, bar);
    }

    fn set_message(&self, key: &Key, message: &str) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(bar) = bars.get(key) {
                bar.set_message(message.to_string());
            }
        }
    }

    fn remove(&self, key: &Key) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(key) {
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
