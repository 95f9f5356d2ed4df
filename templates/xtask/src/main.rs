//! `cargo xtask release [--arch x86_64,arm64] [--index TAG] [--template FILE] [--sam]`
//!
//! Plans every Lambda function of the workspace, cross-compiles it, assembles and checks one
//! image per architecture, pushes the images to `$LAMBDA_IMAGE_REGISTRY` (e.g.
//! `123456789012.dkr.ecr.eu-west-1.amazonaws.com`; log in first with
//! `aws ecr get-login-password | docker login --username AWS --password-stdin $LAMBDA_IMAGE_REGISTRY`,
//! and create the repositories, or use `cargo lambda-image deploy` which does both), and writes
//! a CloudFormation (or SAM) template that deploys each image by digest.
//!
//! With `--index TAG`, each function's per-arch images also get a multi-arch OCI index under
//! TAG, for `docker run` and other non-Lambda consumers; Lambda itself never uses the index.

use std::collections::BTreeMap;

use cargo_lambda_image::config::{self, Overrides, PlanRequest, Selection};
use cargo_lambda_image::progress::Progress;
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::template::{self, ImageRef, LaunchConfig, TemplateFormat};
use cargo_lambda_image::{check, compile, image, index, push};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The command line: `release` and its options.
struct Args {
    arch: Vec<Arch>,
    index: Option<String>,
    template: String,
    format: TemplateFormat,
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("release") => {}
        other => return Err(format!("unknown task {other:?}; try `cargo xtask release`").into()),
    }
    let mut parsed = Args {
        arch: vec![Arch::X86_64, Arch::Arm64],
        index: None,
        template: "template.json".into(),
        format: TemplateFormat::CloudFormation,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--arch" => {
                parsed.arch = value()?
                    .split(',')
                    .map(|a| match a.trim() {
                        "x86_64" => Ok(Arch::X86_64),
                        "arm64" => Ok(Arch::Arm64),
                        other => Err(format!("unknown architecture `{other}`")),
                    })
                    .collect::<std::result::Result<_, _>>()?
            }
            "--index" => parsed.index = Some(value()?),
            "--template" => parsed.template = value()?,
            "--sam" => parsed.format = TemplateFormat::Sam,
            other => return Err(format!("unknown option `{other}`").into()),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let registry = std::env::var("LAMBDA_IMAGE_REGISTRY")
        .map_err(|_| "set LAMBDA_IMAGE_REGISTRY to the registry host to push to")?;
    let progress = Progress::auto();
    let options = RegistryOptions::from_env();

    // 1. The plan: every (function, arch) of the workspace, with its resolved settings.
    let plan = config::plan(
        &PlanRequest {
            selection: Selection {
                workspace: true,
                ..Default::default()
            },
            overrides: Overrides {
                arch: Some(args.arch),
                ..Default::default()
            },
            ..Default::default()
        }
        .with_process_env(),
    )?;

    // 2. Cross-compile, 3. assemble the images (bases pulled once per architecture).
    let artifacts = compile::compile(&plan, &compile::CompileOptions::default(), &progress)?;
    let images = image::assemble_all(
        &plan,
        &artifacts,
        &image::ImageOptions::from_env(),
        &options,
        &progress,
    )
    .await?;

    // 4. Check each image against Lambda's rules, 5. push it.
    let mut functions = Vec::new();
    let mut by_repository: BTreeMap<String, Vec<push::PushedImage>> = BTreeMap::new();
    for (spec, built) in plan.functions.iter().zip(&images) {
        check::check_layout(built.layout_dir(), &check::Expectations::for_spec(spec))?
            .into_result()?;
        let target = push::target_for(built, &registry)?;
        let pushed = push::push(built, &target, &options, &progress).await?;
        let image = ImageRef::from_pushed(&pushed).with_launch(LaunchConfig::from_image(built)?);
        functions.push((spec.clone(), image));
        by_repository
            .entry(target.repository)
            .or_default()
            .push(pushed);
    }

    // Optionally, one multi-arch index per repository (not for Lambda).
    if let Some(tag) = &args.index {
        for (repository, pushed) in &by_repository {
            let index =
                index::push_index(pushed, &registry, repository, tag, &options, &progress).await?;
            println!(
                "{}",
                serde_json::json!({"index": index.reference, "digest": index.digest})
            );
        }
    }

    // 6. The template, deploying every image by digest.
    std::fs::write(
        &args.template,
        template::render_string(&functions, args.format)?,
    )?;
    eprintln!(
        "wrote {} ({} functions); deploy it with `aws cloudformation deploy --template-file {} \
         --stack-name NAME --capabilities CAPABILITY_IAM`",
        args.template,
        functions.len(),
        args.template
    );
    Ok(())
}
