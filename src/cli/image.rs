//! `image`: build, check and write every image, and the outputs asked for.

use cargo_lambda_image::error::Result;

use super::args::ImageArgs;
use super::Output;

/// Builds the images of the selected functions. When nothing chose a base and the default,
/// provided.al2, is past its end of support, one note says so on stderr (never on stdout,
/// where `--message-format json` writes its events).
pub async fn run(args: &ImageArgs, out: &Output) -> Result<()> {
    let plan = args.build.plan()?;
    if let Some(note) = plan.default_base_note() {
        out.line(&note);
    }
    let (pipeline, _) = super::images_of(plan, args, out, false).await?;
    out.finish(pipeline.finish())
}
