//! Where a command's events go: JSON lines on stdout with `--message-format json`, the human
//! renderer otherwise, and progress on stderr either way.

use std::sync::Arc;

use cargo_lambda_image::error::{Error, Result};
use cargo_lambda_image::event::{ErrorEvent, Event, JsonLines, Reason, Sink, Tee};
use cargo_lambda_image::pipeline::Summary;
use cargo_lambda_image::render::{ProgressMode, RenderOptions, Renderer};

use super::{GlobalArgs, MessageFormat};

/// A command's output.
pub struct Output {
    renderer: Arc<Renderer>,
    sink: Arc<dyn Sink>,
    /// Whether stderr is colored (passed on to cargo).
    pub color: bool,
}

impl Output {
    /// The output of a command whose own results are the events named by `primary`.
    pub fn new(global: &GlobalArgs, primary: Vec<Reason>) -> Output {
        let json = global.message_format == MessageFormat::Json;
        let renderer = Arc::new(Renderer::new(RenderOptions {
            primary,
            json,
            progress: if global.quiet {
                ProgressMode::Quiet
            } else {
                ProgressMode::auto()
            },
            verbosity: global.verbose,
        }));
        let sink: Arc<dyn Sink> = if json {
            Arc::new(Tee(vec![Arc::new(JsonLines::stdout()), renderer.clone()]))
        } else {
            renderer.clone()
        };
        Output {
            renderer,
            sink,
            color: global.color.enabled(),
        }
    }

    /// Where the pipeline sends its events.
    pub fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    /// Sends one event.
    pub fn emit(&self, event: Event) {
        self.sink.emit(&event);
    }

    /// A progress line on stderr.
    pub fn line(&self, line: &str) {
        self.renderer.line(line);
    }

    /// Ends the live lines, prints the summary of several functions (or of a failure) on
    /// stderr, and turns it into the command's result.
    pub fn finish(&self, summary: Summary) -> Result<()> {
        self.renderer.finish(&summary);
        summary.into_result()
    }

    /// Says the command was interrupted (after its work was dropped and cleaned up).
    pub fn interrupted(&self) {
        self.renderer.clear();
        self.renderer.line("Interrupted; cleaned up");
    }

    /// Reports the error that ends the command as a JSON `error` event (the binary prints it
    /// for people).
    pub fn error(&self, error: &Error) {
        self.renderer.clear();
        self.emit(Event::Error(ErrorEvent::of(error)));
    }
}
