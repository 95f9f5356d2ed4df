//! `template`: build (and with `--push`, push) the images, then write a CloudFormation or SAM
//! template deploying each by digest.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use cargo_lambda_image::config::FunctionSpec;
use cargo_lambda_image::error::{Error, Result};
use cargo_lambda_image::event::Event;
use cargo_lambda_image::image::BuiltImage;
use cargo_lambda_image::oci;
use cargo_lambda_image::pipeline::{Batch, Pipeline};
use cargo_lambda_image::progress::Stage;
use cargo_lambda_image::publish::registry::check_host;
use cargo_lambda_image::publish::RegistryPublisher;
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::template::{self, ImageRef, LaunchConfig, TemplateFormat};

use super::args::ImageArgs;
use super::Output;

/// Which template `template` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateFormatArg {
    /// Plain CloudFormation (`AWS::Lambda::Function`, plus a role when none is configured).
    Cloudformation,
    /// AWS SAM (`AWS::Serverless::Function`).
    Sam,
}

/// `template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// The template's kind.
    #[arg(long, value_enum, default_value_t = TemplateFormatArg::Cloudformation, help_heading = "Template")]
    pub format: TemplateFormatArg,
    /// Registry host the images are (or, with --push, will be) in, e.g.
    /// 123456789012.dkr.ecr.eu-west-1.amazonaws.com; the template refers to
    /// HOST/REPOSITORY@DIGEST.
    #[arg(
        long,
        env = "CARGO_LAMBDA_IMAGE_REGISTRY",
        hide_env_values = true,
        value_name = "HOST",
        help_heading = "Template"
    )]
    pub registry: String,
    /// Push the images to --registry first (otherwise push them with `push`: the same inputs
    /// give the same digests).
    #[arg(long, help_heading = "Template")]
    pub push: bool,
    /// Write the template to FILE instead of stdout.
    #[arg(
        long = "template-file",
        short = 'o',
        value_name = "FILE",
        help_heading = "Template"
    )]
    pub file: Option<PathBuf>,
}

/// Writes the template of the selected functions.
pub async fn run(args: &TemplateArgs, out: &Output) -> Result<()> {
    args.image.require_check()?;
    check_host(&args.registry)?;
    let (pipeline, images) = super::images(&args.image, out, false).await?;
    let Some(images) = images else {
        return out.finish(pipeline.finish());
    };
    let functions = image_refs(args, &pipeline, &images).await;
    // Every function failed: the summary says why.
    if !functions.is_empty() {
        write(args, &functions, out)?;
    }
    out.finish(pipeline.finish())
}

/// Each image as the template refers to it: pushed now (`--push`), or by the digest `push`
/// gives the same inputs.
async fn image_refs(
    args: &TemplateArgs,
    pipeline: &Pipeline,
    images: &Batch<BuiltImage>,
) -> Vec<(FunctionSpec, ImageRef)> {
    let mut refs: Vec<(Arc<FunctionSpec>, BuiltImage, Result<ImageRef>)> = Vec::new();
    if args.push {
        // The host was checked before anything was built.
        let Ok(publisher) = RegistryPublisher::new(&args.registry, RegistryOptions::from_env())
        else {
            return Vec::new();
        };
        let publisher = publisher.with_sbom(args.image.sbom);
        for item in pipeline.push(images, &publisher).await.items {
            let (image, pushed) = item.value;
            refs.push((item.spec, image, Ok(ImageRef::from_pushed(&pushed))));
        }
    } else {
        for item in &images.items {
            let image = &item.value;
            let uri = format!("{}/{}@{}", args.registry, image.repository, image.digest);
            let r = ImageRef::new(uri).map(|r| r.with_arch(image.arch));
            refs.push((item.spec.clone(), image.clone(), r));
        }
    }
    let mut functions = Vec::new();
    for (spec, image, r) in refs {
        match r.and_then(|r| Ok(r.with_launch(LaunchConfig::from_image(&image)?))) {
            Ok(r) => functions.push(((*spec).clone(), r)),
            Err(e) => pipeline.fail(&spec, Stage::Output, e),
        }
    }
    functions
}

/// Renders the template to stdout or, with `-o`, to a file (written whole, then renamed into
/// place: never half a template).
fn write(args: &TemplateArgs, functions: &[(FunctionSpec, ImageRef)], out: &Output) -> Result<()> {
    let format = match args.format {
        TemplateFormatArg::Cloudformation => TemplateFormat::CloudFormation,
        TemplateFormatArg::Sam => TemplateFormat::Sam,
    };
    let Some(path) = &args.file else {
        out.emit(Event::Template {
            format,
            path: None,
            template: Some(template::render(functions, format)?),
        });
        return Ok(());
    };
    let text = template::render_string(functions, format)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    }
    oci::write_atomic(path, text.as_bytes())?;
    out.emit(Event::Template {
        format,
        path: Some(path.clone()),
        template: None,
    });
    out.line(&format!(
        "✓ Wrote the {format} template for {} function(s) to {}",
        functions.len(),
        path.display()
    ));
    Ok(())
}
