//! The `cargo-lambda-image` binary: parses the command line and runs the command (one library
//! call each, in `cli/`), on stdout its results (human or JSON), on stderr progress and
//! errors. Nothing here decides anything about Lambda, images or AWS.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cargo_lambda_image::Error;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(cli::args_from_env());
    let color = cli.global.color.enabled();
    let _ = miette::set_hook(Box::new(move |_| {
        // Wrapping would split file paths across lines, and paths must stay copy-pastable.
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .wrap_lines(false)
                .build(),
        )
    }));
    let out = cli::Output::new(&cli.global, cli.command.primary());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Ctrl-C stops the command where it is: dropping it (and, below, the runtime with its
        // tasks) removes test containers and sandboxes. `emulator` handles Ctrl-C itself.
        tokio::select! {
            result = cli::run(&cli.command, &out) => result,
            _ = tokio::signal::ctrl_c(), if cli.command.interruptible() => Err(Error::Interrupted),
        }
    });
    // Drops every task still running, which runs their cleanup (container removal) before
    // the process exits; a blocking task (a compiler run) gets a while to finish.
    runtime.shutdown_timeout(std::time::Duration::from_secs(30));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => {
            out.interrupted();
            ExitCode::from(130)
        }
        Err(error) => {
            out.error(&error);
            eprintln!("{:?}", miette::Report::new(error));
            ExitCode::FAILURE
        }
    }
}
