//! `promote` and `rollback`: move the alias of each selected function (and architecture) to
//! end a canary release or go back one version. Nothing is built.

use clap::Args;

use cargo_lambda_image::deploy::release::{self, Release};
use cargo_lambda_image::deploy::DeployOptions;
use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::Event;
use cargo_lambda_image::progress::Reporter;

use super::args::DeployedArgs;
use super::Output;

/// `promote` and `rollback`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub deployed: DeployedArgs,
    /// Say where each alias would go, and move none.
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,
}

/// Moves the alias of every selected function, one architecture after another.
pub async fn run(args: &ReleaseArgs, action: Release, out: &Output) -> Result<()> {
    let plan = args.deployed.plan()?;
    let options = DeployOptions {
        aws: args.deployed.aws.aws(),
        dry_run: args.dry_run,
        ..DeployOptions::default()
    };
    let sink = out.sink();
    let reporter = Reporter::new(move |p| sink.emit(&Event::Progress(p)));
    // Every function is tried; the failures are shown (with the others' results) at the end.
    let mut failures = Vec::new();
    for spec in &plan.functions {
        match release::release(spec, action, &options, &reporter).await {
            Ok(release) => out.emit(Event::Released { release }),
            Err(e) => failures.push(e),
        }
    }
    let last = failures.pop();
    for e in &failures {
        out.line(&format!("✗ {e}"));
        out.error(e);
    }
    match last {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
