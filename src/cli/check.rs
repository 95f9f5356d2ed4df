//! `check`: build the images and check them against Lambda's rules, printing every rule; or
//! check an OCI layout from elsewhere (`--layout`).

use std::path::PathBuf;

use clap::Args;

use cargo_lambda_image::check::{self, Expectations};
use cargo_lambda_image::config::{resolve::DEFAULT_BASE_IMAGE, BaseImage};
use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::Event;

use super::args::{invalid, ImageArgs};
use super::Output;

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Check this OCI layout directory instead of the selected functions' images (needs
    /// exactly one --arch).
    #[arg(long, value_name = "DIR", help_heading = "Image")]
    pub layout: Option<PathBuf>,
}

/// Checks the images; a broken rule makes the exit status 1.
pub async fn run(args: &CheckArgs, out: &Output) -> Result<()> {
    if let Some(dir) = &args.layout {
        return check_layout(args, dir, out);
    }
    if args.image.no_check {
        return Err(invalid(
            "--no-check",
            "`check` without the check has nothing to do",
            "drop --no-check",
        ));
    }
    let (pipeline, _) = super::images(&args.image, out, false).await?;
    out.finish(pipeline.finish())
}

/// Checks one OCI layout directory.
fn check_layout(args: &CheckArgs, dir: &std::path::Path, out: &Output) -> Result<()> {
    let target = &args.image.build.target;
    let arch = match target.arch.as_deref() {
        Some([one]) => *one,
        _ => {
            return Err(invalid(
                "--arch",
                "--layout needs exactly one architecture",
                "add --arch x86_64 or --arch arm64",
            ))
        }
    };
    let base =
        BaseImage::from_reference(target.base_image.as_deref().unwrap_or(DEFAULT_BASE_IMAGE));
    let expect = Expectations {
        function: dir.display().to_string(),
        arch,
        base_glibc: base.glibc,
    };
    let report = check::check_layout(dir, &expect)?;
    out.emit(Event::Check {
        report: report.clone(),
    });
    report.into_result().map(|_| ())
}
