//! `doctor`: what the other commands need on this machine, for the selected functions, each
//! with the fix when it is missing.

use clap::Args;

use cargo_lambda_image::doctor::{self, DoctorOptions};
use cargo_lambda_image::error::{Error, Result};
use cargo_lambda_image::event::Event;
use cargo_lambda_image::registry::RegistryOptions;

use super::args::DeployedArgs;
use super::Output;

/// `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub deployed: DeployedArgs,
    /// Also prove the AWS credentials work with STS GetCallerIdentity (the only AWS call
    /// `doctor` makes).
    #[arg(long = "aws", help_heading = "AWS")]
    pub call_aws: bool,
}

/// Runs the checks; exit status 1 when a check the selected functions need fails.
pub async fn run(args: &DoctorArgs, out: &Output) -> Result<()> {
    let plan = args.deployed.plan()?;
    let registries = args
        .deployed
        .aws
        .registry
        .clone()
        .or_else(|| std::env::var("CARGO_LAMBDA_IMAGE_REGISTRY").ok())
        .into_iter()
        .collect();
    let options = DoctorOptions {
        aws: args.deployed.aws.aws(),
        call_aws: args.call_aws,
        registry: RegistryOptions::from_env(),
        registries,
    };
    let checks = doctor::doctor(&plan, &options).await;
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.needed && !c.ok)
        .map(|c| c.name.clone())
        .collect();
    for check in checks {
        out.emit(Event::Doctor { check });
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Doctor {
        failed: failed.join(", "),
    })
}
