//! `image`: build, check and write every image, and the outputs asked for.

use cargo_lambda_image::error::Result;

use super::args::ImageArgs;
use super::Output;

/// Builds the images of the selected functions.
pub async fn run(args: &ImageArgs, out: &Output) -> Result<()> {
    let (pipeline, _) = super::images(args, out, false).await?;
    out.finish(pipeline.finish())
}
