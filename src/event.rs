//! Everything the pipeline tells its caller, as one serde enum: [`Event`]. The caller supplies
//! a [`Sink`]; the command line's `--message-format json` is the [`JsonLines`] sink (each
//! event serialized on one line of stdout, `reason` naming it), its human output and progress
//! are renderers of the same events ([`crate::render`]), and an `xtask` gets exactly the same
//! events, e.g. through a [`Collect`] sink.
//!
//! The field names of the JSON events are a public interface, documented in README.md; they
//! do not change.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use miette::Diagnostic;
use serde::Serialize;
use serde_json::Value;

use crate::check::Report;
use crate::compile::{Artifact, BuildCommand};
use crate::config::Plan;
use crate::deploy::{DeployOutcome, DeployedFunction};
use crate::error::Error;
use crate::image::BuiltImage;
use crate::progress::{Progress, Stage};
use crate::publish::index::IndexPushed;
use crate::publish::PushedImage;
use crate::serve::{Invoked, ServedFunction};
use crate::target::Arch;
use crate::template::TemplateFormat;
use crate::testing::Invocation;

/// What an event is: the `reason` its JSON carries, and what decides whether people see it as a
/// command's own result (stdout) or as an earlier stage's (stderr), and how it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// [`Event::Plan`].
    Plan,
    /// [`Event::Compiled`].
    Compiled,
    /// [`Event::Check`].
    Check,
    /// [`Event::Image`].
    Image,
    /// [`Event::Pushed`].
    Pushed,
    /// [`Event::Index`].
    Index,
    /// [`Event::Invocation`].
    Invocation,
    /// [`Event::Deployed`].
    Deployed,
    /// [`Event::Released`].
    Released,
    /// [`Event::Pruned`].
    Pruned,
    /// [`Event::Doctor`].
    Doctor,
    /// [`Event::Planned`].
    Planned,
    /// [`Event::Template`].
    Template,
    /// [`Event::EventExample`].
    EventExample,
    /// [`Event::New`].
    New,
    /// [`Event::Emulator`].
    Emulator,
    /// [`Event::Serving`].
    Serving,
    /// [`Event::Reloaded`].
    Reloaded,
    /// [`Event::Invoked`].
    Invoked,
    /// [`Event::Error`].
    Error,
    /// [`Event::Progress`] (never in JSON output).
    Progress,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 21] = [
        Reason::Plan,
        Reason::Compiled,
        Reason::Check,
        Reason::Image,
        Reason::Pushed,
        Reason::Index,
        Reason::Invocation,
        Reason::Deployed,
        Reason::Released,
        Reason::Pruned,
        Reason::Doctor,
        Reason::Planned,
        Reason::Template,
        Reason::EventExample,
        Reason::New,
        Reason::Emulator,
        Reason::Serving,
        Reason::Reloaded,
        Reason::Invoked,
        Reason::Error,
        Reason::Progress,
    ];

    /// The `reason` of the JSON, e.g. `event-example`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Plan => "plan",
            Reason::Compiled => "compiled",
            Reason::Check => "check",
            Reason::Image => "image",
            Reason::Pushed => "pushed",
            Reason::Index => "index",
            Reason::Invocation => "invocation",
            Reason::Deployed => "deployed",
            Reason::Released => "released",
            Reason::Pruned => "pruned",
            Reason::Doctor => "doctor",
            Reason::Planned => "planned",
            Reason::Template => "template",
            Reason::EventExample => "event-example",
            Reason::New => "new",
            Reason::Emulator => "emulator",
            Reason::Serving => "serving",
            Reason::Reloaded => "reloaded",
            Reason::Invoked => "invoked",
            Reason::Error => "error",
            Reason::Progress => "progress",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. Serialized with `reason` naming the variant, its fields next to it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Event {
    /// The plan, before anything runs.
    Plan {
        /// Every (function, arch) with every resolved setting.
        plan: Plan,
        /// With `--dry-run`, the compiler commands that would run.
        #[serde(skip_serializing_if = "Option::is_none")]
        commands: Option<Vec<BuildCommand>>,
    },
    /// A bootstrap compiled and checked.
    Compiled {
        /// The bootstrap.
        artifact: Artifact,
    },
    /// An image's check report.
    Check {
        /// Every rule's verdict.
        report: Report,
    },
    /// An image built, checked and written to the outputs asked for.
    Image {
        /// The image.
        image: BuiltImage,
        /// The docker-archive written, when asked for.
        #[serde(skip_serializing_if = "Option::is_none")]
        docker_archive: Option<PathBuf>,
        /// The `repository:tag` loaded into Docker, when asked for.
        #[serde(skip_serializing_if = "Option::is_none")]
        loaded: Option<String>,
        /// The OCI layout directories it was copied into, when asked for.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        layouts: Vec<PathBuf>,
        /// The SPDX SBOM written next to the image, when asked for.
        #[serde(skip_serializing_if = "Option::is_none")]
        sbom: Option<cargo_metadata::camino::Utf8PathBuf>,
    },
    /// An image pushed to a registry.
    Pushed {
        /// What was pushed, and how.
        image: PushedImage,
    },
    /// A multi-architecture index pushed.
    Index {
        /// The index.
        index: IndexPushed,
    },
    /// A local invocation.
    Invocation {
        /// Its outcome.
        invocation: Invocation,
    },
    /// A function deployed.
    Deployed {
        /// The deployed function.
        deployment: DeployedFunction,
    },
    /// `promote` or `rollback` moved an alias (or, in a dry run, would).
    Released {
        /// The function, the alias, where it routed and where it routes now.
        release: crate::deploy::release::Released,
    },
    /// `prune`: one repository's unused images (deleted with `--yes`).
    Pruned {
        /// The repository, its functions, and the images nothing uses.
        pruned: crate::deploy::prune::Pruned,
    },
    /// One `doctor` check.
    Doctor {
        /// `name`, `ok`, `detail`, `fix` (when not ok), `needed`.
        check: crate::doctor::Check,
    },
    /// A deploy's dry run: the calls it would make.
    Planned {
        /// `outcome: planned`, the function, its image and the steps.
        deployment: DeployOutcome,
    },
    /// A CloudFormation or SAM template.
    Template {
        /// `cloudformation` or `sam`.
        format: TemplateFormat,
        /// The file written (with `-o`).
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        /// The template itself (without `-o`).
        #[serde(skip_serializing_if = "Option::is_none")]
        template: Option<Value>,
    },
    /// `event-example`: a sample event.
    EventExample {
        /// Its kind, e.g. `sqs`.
        kind: String,
        /// The event.
        event: Value,
    },
    /// A function crate created.
    New {
        /// Its directory.
        path: PathBuf,
        /// The files written.
        files: Vec<PathBuf>,
        /// The workspace manifest the crate was added to as a member, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<PathBuf>,
    },
    /// The standalone emulator listening.
    Emulator {
        /// Where to invoke it.
        invoke_url: String,
    },
    /// `serve` or `watch` listening: the Invoke API's address and every served function.
    Serving {
        /// The Invoke API's base URL, `http://ADDR`.
        endpoint: String,
        /// The functions.
        functions: Vec<ServedFunction>,
    },
    /// `watch` swapped a rebuilt image in: new invocations run it.
    Reloaded {
        /// The function.
        function: ServedFunction,
    },
    /// `invoke`'s answer.
    Invoked {
        /// The answer.
        invoked: Invoked,
    },
    /// A failure: of one function (with `function`, `arch`, `stage`; the others went on) or of
    /// the whole command.
    Error(ErrorEvent),
    /// Progress while the stages work (never part of `--message-format json` output).
    Progress(Progress),
}

/// A failure, as the `error` event reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEvent {
    /// The failed function, when one failed and the others went on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Its architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// The stage it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// The diagnostic code, e.g. `lambda_image::compile_failed`.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Event {
    /// What the event is.
    pub fn reason(&self) -> Reason {
        match self {
            Event::Plan { .. } => Reason::Plan,
            Event::Compiled { .. } => Reason::Compiled,
            Event::Check { .. } => Reason::Check,
            Event::Image { .. } => Reason::Image,
            Event::Pushed { .. } => Reason::Pushed,
            Event::Index { .. } => Reason::Index,
            Event::Invocation { .. } => Reason::Invocation,
            Event::Deployed { .. } => Reason::Deployed,
            Event::Released { .. } => Reason::Released,
            Event::Pruned { .. } => Reason::Pruned,
            Event::Doctor { .. } => Reason::Doctor,
            Event::Planned { .. } => Reason::Planned,
            Event::Template { .. } => Reason::Template,
            Event::EventExample { .. } => Reason::EventExample,
            Event::New { .. } => Reason::New,
            Event::Emulator { .. } => Reason::Emulator,
            Event::Serving { .. } => Reason::Serving,
            Event::Reloaded { .. } => Reason::Reloaded,
            Event::Invoked { .. } => Reason::Invoked,
            Event::Error(_) => Reason::Error,
            Event::Progress(_) => Reason::Progress,
        }
    }
}

impl ErrorEvent {
    /// The event of an error of the whole command.
    pub fn of(error: &Error) -> ErrorEvent {
        ErrorEvent {
            function: None,
            arch: None,
            stage: None,
            code: error.code().map(|c| c.to_string()),
            message: error.to_string(),
            help: error.help().map(|h| h.to_string()),
        }
    }

    /// The event of one function's failure in a stage.
    pub fn of_function(function: &str, arch: Arch, stage: Stage, error: &Error) -> ErrorEvent {
        ErrorEvent {
            function: Some(function.to_string()),
            arch: Some(arch),
            stage: Some(stage),
            // The function, arch and stage are fields of their own: the message says the rest.
            message: error.without_function(),
            ..ErrorEvent::of(error)
        }
    }
}

/// Where events go.
pub trait Sink: Send + Sync {
    /// Takes one event.
    fn emit(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Sink for F {
    fn emit(&self, event: &Event) {
        self(event)
    }
}

/// Drops every event.
pub fn discard() -> Arc<dyn Sink> {
    Arc::new(|_: &Event| {})
}

/// Writes each event but progress as one line of JSON: `--message-format json`.
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    /// Events to `out`.
    pub fn new(out: W) -> JsonLines<W> {
        JsonLines {
            out: Mutex::new(out),
        }
    }
}

impl JsonLines<std::io::Stdout> {
    /// Events to stdout.
    pub fn stdout() -> JsonLines<std::io::Stdout> {
        JsonLines::new(std::io::stdout())
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn emit(&self, event: &Event) {
        if matches!(event, Event::Progress(_)) {
            return;
        }
        if let (Ok(line), Ok(mut out)) = (serde_json::to_string(event), self.out.lock()) {
            // A closed stdout (a pipe to `head`) is not worth failing the build for.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Keeps every event, for callers that look at them afterwards (an `xtask`, a test).
#[derive(Debug, Default)]
pub struct Collect {
    events: Mutex<Vec<Event>>,
}

impl Collect {
    /// An empty collector.
    pub fn new() -> Collect {
        Collect::default()
    }

    /// The events so far, progress left out.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .map(|e| {
                e.iter()
                    .filter(|e| !matches!(e, Event::Progress(_)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The events so far as JSON values, as `--message-format json` would print them.
    pub fn json(&self) -> Vec<Value> {
        self.events()
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    }
}

impl Sink for Collect {
    fn emit(&self, event: &Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event.clone());
        }
    }
}

/// Sends each event to several sinks, in order.
pub struct Tee(pub Vec<Arc<dyn Sink>>);

impl Sink for Tee {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_events_keep_their_json_fields() {
        let error = Error::TestFailed {
            failed: 1,
            total: 2,
        };
        let whole = serde_json::to_value(Event::Error(ErrorEvent::of(&error))).unwrap();
        assert_eq!(whole["reason"], "error");
        assert_eq!(whole["code"], "lambda_image::test_failed");
        assert_eq!(whole["message"], "1 of 2 invocations failed");
        assert!(whole.get("function").is_none());
        let one = ErrorEvent::of_function("hello", Arch::Arm64, Stage::Compile, &error);
        let one = serde_json::to_value(Event::Error(one)).unwrap();
        assert_eq!(
            (&one["function"], &one["arch"], &one["stage"]),
            (&"hello".into(), &"arm64".into(), &"compile".into())
        );
    }

    #[test]
    fn json_lines_leave_progress_out() {
        let sink = JsonLines::new(Vec::new());
        sink.emit(&Event::Progress(Progress::Line {
            level: crate::progress::Level::Info,
            text: "x".into(),
        }));
        sink.emit(&Event::Emulator {
            invoke_url: "http://x".into(),
        });
        let out = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "{\"reason\":\"emulator\",\"invoke_url\":\"http://x\"}\n"
        );
    }
}
