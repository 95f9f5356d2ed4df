//! See <https://github.com/matklad/cargo-xtask/>.
//!
//! This binary defines auxiliary tasks for working on cargo-lambda-image which
//! are not expressible with just `cargo`. Run them with `cargo xtask <task>`
//! (the alias lives in `.cargo/config.toml`).
//!
//! The tasks set up a Debian machine for the integration tests: they install
//! Docker, an OCI registry, moto and the cross-compilation toolchains, start
//! the services the tests talk to, and run the checks CI runs. They are Linux
//! (and, for the installation step, Debian) only.
//!
//! The binary has one dependency, serde_json (for cargo's JSON messages and the bench's
//! measurements), so that it compiles in seconds on a fresh machine.

/// Prints a progress line to stderr, prefixed with `xtask:`.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("xtask: {}", format_args!($($arg)*))
    };
}

mod bench;
mod ci;
mod cmd;
mod cross;
mod install;
mod prune;
mod rustup;
mod services;

use std::{env, error::Error, path::PathBuf, process::ExitCode};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn Error>>;

const USAGE: &str = "\
Usage: cargo xtask <task>

Tasks:
  ci        install the test prerequisites, start the test services, then run
            `cargo fmt --check` and `cargo test --workspace` compiled by clippy
            (its warnings are errors)
  services  install the test prerequisites and keep the test services running
            in the foreground until Ctrl-C, printing the environment to export
  bench     measure against docker build/push, skopeo, cargo and AWS's RIE
            (needs the services) and write BENCHMARKS.md; `--runs N` (default
            5), `--quick` (2 runs, one of each big-image step), `--only
            SECTION[,SECTION]` (assembly, cache, push, shared-base,
            push-skopeo, emulator, local-loop, compile, determinism, big;
            writes
            <target>/xtask-bench/BENCHMARKS.only.md instead)
  cross     install cross and build its local image into the Docker engine
            of DOCKER_HOST (what `ci` and `services` do), printing the
            environment to export for the tests of the cross backend
  help      print this message

State (Python venv, Docker data, registry storage, logs) is kept in
~/.cache/cargo-lambda-image/ci. To start from scratch, delete that directory
after `umount ~/.cache/cargo-lambda-image/ci/docker-data` (dockerd leaves its
data root bind-mounted).

Environment:
  XTASK_DOCKERD_FLAGS  extra dockerd flags to use instead of trying the
                       built-in fallbacks (e.g. `--iptables=false --bridge=none`)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = match args.as_slice() {
        [task] => task.as_str(),
        [] => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
        [task, ..] if task == "bench" => task.as_str(),
        [task, extra, ..] => {
            eprintln!("xtask: error: `{task}` takes no arguments, got `{extra}`\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };

    // Both long-running tasks own child processes; the handler turns Ctrl-C
    // into an orderly shutdown instead of leaving them orphaned.
    cmd::install_interrupt_handler();

    let result = match task {
        "ci" => ci::ci(),
        "services" => ci::services(),
        "cross" => ci::cross_task(),
        "bench" => bench::bench(&args[1..]),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("xtask: error: unknown task `{other}`\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root, i.e. the directory containing `xtask/`.
pub(crate) fn project_root() -> PathBuf {
    // `cargo run` sets the variable at run time too. Preferring that value
    // matters when checkouts share a `CARGO_TARGET_DIR`: cargo can then reuse
    // an xtask binary built in another checkout, whose compile-time value
    // points there.
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.join("..")
}
