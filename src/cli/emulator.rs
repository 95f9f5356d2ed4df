//! `emulator`: serve a program on this machine under the built-in emulator until Ctrl-C.

use std::sync::Arc;

use clap::Args;

use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, ProcessLauncher};
use cargo_lambda_image::error::{Error, Result};
use cargo_lambda_image::event::Event;
use cargo_lambda_image::testing::Runner;

use super::args::LocalArgs;
use super::Output;

/// `emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address of the Invoke API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Runtime instances that may run at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Invocation timeout in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    /// Memory size reported to the function, in MB.
    #[arg(long, default_value_t = 128)]
    pub memory: u32,
    /// The function name the emulator presents.
    #[arg(long, default_value = "function")]
    pub function_name: String,
    #[command(flatten)]
    pub local: LocalArgs,
    /// The program to run as the runtime, and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<String>,
}

/// Refuses a program that is not there or cannot run, before anything listens: the first
/// invoke would only find out as `Runtime.InvalidEntrypoint`.
fn check_program(program: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = if program.contains('/') {
        Some(std::path::PathBuf::from(program))
    } else {
        cargo_lambda_image::compile::find_program(program)
    };
    let problem = match path.as_deref().map(std::fs::metadata) {
        None => Some("is not on PATH".to_string()),
        Some(Err(e)) => Some(format!("cannot be read: {e}")),
        Some(Ok(meta)) if !meta.is_file() => Some("is not a file".to_string()),
        Some(Ok(meta)) if meta.permissions().mode() & 0o111 == 0 => {
            Some("is not executable".to_string())
        }
        Some(Ok(_)) => None,
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::EmulatorConfig {
            setting: "PROGRAM",
            message: format!("the runtime program `{program}` {problem}"),
            help: "name the function's bootstrap after `--`, e.g. `cargo lambda-image emulator -- target/lambda-image/hello/x86_64/bootstrap` (`cargo lambda-image build` makes it), and make it executable".into(),
        }),
    }
}

/// Serves the program until Ctrl-C.
pub async fn run(args: &EmulatorArgs, out: &Output) -> Result<()> {
    let local = args.local.options(Runner::Process)?.resolve().await?;
    let mut config = EmulatorConfig {
        bind: args.bind,
        function_name: args.function_name.clone(),
        memory_mb: args.memory,
        timeout: std::time::Duration::from_secs(args.timeout),
        concurrency: args.concurrency.max(1),
        ..EmulatorConfig::default()
    };
    local.apply(&mut config, None, false)?;
    let (program, rest) = args
        .program
        .split_first()
        .unwrap_or((&args.function_name, &[]));
    check_program(program)?;
    let launcher = ProcessLauncher::new(program).args(rest.iter().cloned());
    let emulator = Emulator::start(config, Arc::new(launcher)).await?;
    out.emit(Event::Emulator {
        invoke_url: emulator.invoke_url(),
    });
    out.line(&format!(
        "Emulating `{}` at {}; Ctrl-C to stop",
        args.function_name,
        emulator.invoke_url()
    ));
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    Ok(())
}
