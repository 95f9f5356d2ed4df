//! The `cargo-lambda-image` binary: parses the command line, calls the library, prints results
//! on stdout (human or JSON) and progress and errors on stderr.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

use cargo_lambda_image::compile::{self, CompileOptions};
use cargo_lambda_image::progress::{Mode, Progress};
use cargo_lambda_image::{config, Error};

use cli::{BuildArgs, Cli, ColorChoice, Commands, MessageFormat};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::args_from_env());
    let out = Output {
        format: cli.global.message_format,
    };
    let color = match cli.global.color {
        ColorChoice::Auto => {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
        ColorChoice::Always => true,
        ColorChoice::Never => false,
    };
    let _ = miette::set_hook(Box::new(move |_| {
        // Wrapping would split file paths across lines, and paths must stay copy-pastable.
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .wrap_lines(false)
                .build(),
        )
    }));
    let progress = if cli.global.quiet {
        Progress::new(Mode::Quiet)
    } else {
        Progress::auto()
    };
    let result = match &cli.command {
        Commands::Build(args) => build(args, &cli, color, &progress, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            eprintln!("{:?}", miette::Report::new(err));
            ExitCode::FAILURE
        }
    }
}

/// Where results go: stdout, in the chosen format.
struct Output {
    format: MessageFormat,
}

impl Output {
    fn json(&self, value: serde_json::Value) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
    }

    fn human(&self, line: &str) {
        if self.format == MessageFormat::Human {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    fn error(&self, err: &Error) {
        if self.is_json() {
            use miette::Diagnostic;
            self.json(json!({
                "reason": "error",
                "code": err.code().map(|c| c.to_string()),
                "message": err.to_string(),
                "help": err.help().map(|h| h.to_string()),
            }));
        }
    }
}

fn build(
    args: &BuildArgs,
    cli: &Cli,
    color: bool,
    progress: &Progress,
    out: &Output,
) -> Result<(), Error> {
    let plan = config::plan(&args.plan_request())?;
    let options = CompileOptions {
        color: Some(if color { "always" } else { "never" }.to_string()),
        install_targets: !args.compile.no_install_targets,
    };
    if args.dry_run || cli.global.verbose > 0 {
        for cmd in compile::commands(&plan, &options) {
            progress.line(&format!("  command: {}", cmd.display()));
        }
    }
    if out.is_json() {
        let mut event = json!({"reason": "plan", "plan": plan});
        if args.dry_run {
            event["commands"] = json!(compile::commands(&plan, &options));
        }
        out.json(event);
    }
    if args.dry_run {
        for f in &plan.functions {
            out.human(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                f.name, f.arch, f.target, f.compiler, f.base_image.reference, f.artifact
            ));
        }
        return Ok(());
    }
    let artifacts = compile::compile(&plan, &options, progress)?;
    for a in &artifacts {
        if out.is_json() {
            out.json(json!({"reason": "compiled", "artifact": a}));
        } else {
            let linkage = match (&a.elf.interpreter, a.elf.max_glibc) {
                (None, _) => "static".to_string(),
                (Some(_), Some(v)) => format!("dynamic, GLIBC_{v}"),
                (Some(_), None) => "dynamic".to_string(),
            };
            out.human(&format!(
                "{}\t{}\t{}\t{:.1} MB\t{}",
                a.function,
                a.arch,
                a.path,
                a.size as f64 / 1_048_576.0,
                linkage
            ));
        }
    }
    Ok(())
}
