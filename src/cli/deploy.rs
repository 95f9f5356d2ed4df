//! `deploy`: build and check every image, then push it to ECR and create or update its
//! Lambda function.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use cargo_lambda_image::deploy::alias::Weight;
use cargo_lambda_image::deploy::DeployOptions;
use cargo_lambda_image::envfile;
use cargo_lambda_image::error::Result;
use cargo_lambda_image::registry::RegistryOptions;

use super::args::{AwsArgs, ImageArgs};
use super::Output;

/// `deploy`.
#[derive(Debug, Args)]
#[command(
    after_help = "With --dry-run the image is still built (locally), and only read-only AWS \
    calls are made: the output lists the calls a deploy would make."
)]
pub struct DeployArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// A dotenv file of variables set on every deployed function, over the metadata's `env`;
    /// repeatable, a later file winning. Values are never printed.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Publish the new version and route only this share of the alias to it (e.g. `10%`);
    /// the rest stays on the version the alias had. End it with `promote` or `rollback`.
    #[arg(long, value_name = "PERCENT", value_parser = parse_weight)]
    pub canary: Option<Weight>,
    /// How long to wait for provisioned concurrency (`deploy.provisioned-concurrency`) to be
    /// ready before putting the alias back and failing.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub provisioned_timeout: u64,
}

/// `--canary`'s value.
pub fn parse_weight(text: &str) -> std::result::Result<Weight, String> {
    Weight::parse(text).ok_or_else(|| {
        format!("`{text}` is not a share between 0 and 100 percent, e.g. 10% or 2.5%")
    })
}

/// Deploys the selected functions, one Lambda function per architecture.
pub async fn run(args: &DeployArgs, out: &Output) -> Result<()> {
    args.image.require_check()?;
    if let Some(host) = &args.aws.registry {
        cargo_lambda_image::publish::registry::check_host(host)?;
    }
    let options = DeployOptions {
        aws: args.aws.aws(),
        registry_override: args.aws.registry.clone(),
        registry: RegistryOptions::from_env(),
        dry_run: args.image.build.dry_run,
        env: envfile::collect(&args.env_files, &[], "--env-file")?,
        canary: args.canary,
        provisioned_timeout: Some(Duration::from_secs(args.provisioned_timeout)),
    };
    // A dry run still builds the image (a local, harmless step) so that the AWS calls can be
    // planned against its digest; only the calls are left out.
    let (pipeline, images) = super::images(&args.image, out, true).await?;
    if let Some(images) = images {
        pipeline.deploy(&images, &options).await;
    }
    out.finish(pipeline.finish())
}
