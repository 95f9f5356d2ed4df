//! `prune`: list the images of the selected functions' ECR repositories that no version,
//! alias or `$LATEST` uses; delete them with `--yes`.

use clap::Args;

use cargo_lambda_image::deploy::prune;
use cargo_lambda_image::deploy::DeployOptions;
use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::Event;
use cargo_lambda_image::progress::Reporter;

use super::args::DeployedArgs;
use super::Output;

/// `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub deployed: DeployedArgs,
    /// Delete the unused images (without it, they are only listed).
    #[arg(long)]
    pub yes: bool,
}

/// Lists (and with `--yes` deletes) the unused images, one event per repository.
pub async fn run(args: &PruneArgs, out: &Output) -> Result<()> {
    let plan = args.deployed.plan()?;
    let options = DeployOptions {
        aws: args.deployed.aws.aws(),
        ..DeployOptions::default()
    };
    let sink = out.sink();
    let reporter = Reporter::new(move |p| sink.emit(&Event::Progress(p)));
    for pruned in prune::prune(&plan.functions, &options, args.yes, &reporter).await? {
        out.emit(Event::Pruned { pruned });
    }
    Ok(())
}
