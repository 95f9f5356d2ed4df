//! `build`: plan and compile.

use cargo_lambda_image::error::Result;
use cargo_lambda_image::pipeline::Pipeline;

use super::args::BuildArgs;
use super::Output;

/// Compiles the selected functions (or, with `--dry-run`, prints the plan and the compiler
/// commands).
pub async fn run(args: &BuildArgs, out: &Output) -> Result<()> {
    let pipeline = Pipeline::new(args.plan()?, args.options(out.color), out.sink());
    if args.dry_run {
        pipeline.dry_run();
    } else {
        pipeline.compile().await;
    }
    out.finish(pipeline.finish())
}
