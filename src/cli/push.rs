//! `push`: build, check and push every image to a registry; optionally a multi-arch index.

use clap::Args;

use cargo_lambda_image::error::Result;
use cargo_lambda_image::publish::RegistryPublisher;

use super::args::{ImageArgs, RegistryArgs};
use super::Output;

/// `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Also push an OCI image index under TAG listing each repository's per-arch images, for
    /// Docker and Kubernetes users (Lambda itself always gets one image per architecture).
    #[arg(long, value_name = "TAG", help_heading = "Registry")]
    pub index: Option<String>,
}

/// Pushes the images of the selected functions; the manifest goes last, so no tag is ever
/// half-written.
pub async fn run(args: &PushArgs, out: &Output) -> Result<()> {
    args.image.require_check()?;
    let publisher = RegistryPublisher::new(
        &args.registry.registry,
        cargo_lambda_image::registry::RegistryOptions::from_env(),
    )?
    .with_sbom(args.image.sbom);
    let (pipeline, images) = super::images(&args.image, out, false).await?;
    if let Some(images) = images {
        let pushed = pipeline.push(&images, &publisher).await;
        if let Some(tag) = &args.index {
            pipeline
                .index(&pushed, &args.registry.registry, tag)
                .await?;
        }
    }
    out.finish(pipeline.finish())
}
