//! `cargo xtask deploy [--arch x86_64,arm64]`
//!
//! Deploys every Lambda function of the workspace: plan, cross-compile, assemble and check
//! one image per architecture, then [`deploy::deploy_all`] (ECR repository and policy, push,
//! IAM role, create or update the function, version and alias; AWS settings from the
//! environment and `[package.metadata.lambda.deploy]`). Each architecture is its own function.
//!
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

use cargo_lambda_image::config::{self, Overrides, Plan, PlanRequest, Selection};
use cargo_lambda_image::image::BuiltImage;
use cargo_lambda_image::progress::Progress;
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::template::{self, ImageRef, LaunchConfig, TemplateFormat};
use cargo_lambda_image::{check, compile, deploy, image, index, push};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The command line: `deploy` or `release`, and the options.
struct Args {
    deploy: bool,
    arch: Vec<Arch>,
    index: Option<String>,
    template: String,
    format: TemplateFormat,
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let deploy = match args.next().as_deref() {
        Some("deploy") => true,
        Some("release") => false,
        other => {
            return Err(
                format!("unknown task {other:?}; try `cargo xtask deploy` or `release`").into(),
            )
        }
    };
    let mut parsed = Args {
        deploy,
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

/// Steps 1 to 4, shared by both tasks: the checked images of every function of the workspace.
async fn checked_images(
    arch: Vec<Arch>,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<(Plan, Vec<BuiltImage>)> {
    // 1. The plan: every (function, arch) of the workspace, with its resolved settings.
    let plan = config::plan(
        &PlanRequest {
            selection: Selection {
                workspace: true,
                ..Default::default()
            },
            overrides: Overrides {
                arch: Some(arch),
                ..Default::default()
            },
            ..Default::default()
        }
        .with_process_env(),
    )?;

    // 2. Cross-compile, 3. assemble the images (bases pulled once per architecture).
    let artifacts = compile::compile(&plan, &compile::CompileOptions::default(), progress)?;
    let images = image::assemble_all(
        &plan,
        &artifacts,
        &image::ImageOptions::from_env(),
        options,
        progress,
    )
    .await?;

    // 4. Check each image against Lambda's rules.
    for (spec, built) in plan.functions.iter().zip(&images) {
        check::check_layout(built.layout_dir(), &check::Expectations::for_spec(spec))?
            .into_result()?;
    }
    Ok((plan, images))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let progress = Progress::auto();
    let options = RegistryOptions::from_env();
    let (plan, images) = checked_images(args.arch.clone(), &options, &progress).await?;

    if args.deploy {
        // 5. Deploy: one Lambda function per (function, arch), the image by digest.
        let items: Vec<_> = plan.functions.iter().cloned().zip(images).collect();
        let outcomes =
            deploy::deploy_all(&items, &deploy::DeployOptions::default(), &progress).await?;
        for outcome in outcomes {
            println!("{}", serde_json::to_string(&outcome)?);
        }
        return Ok(());
    }

    let registry = std::env::var("LAMBDA_IMAGE_REGISTRY")
        .map_err(|_| "set LAMBDA_IMAGE_REGISTRY to the registry host to push to")?;
    // 5. Push each image.
    let mut functions = Vec::new();
    let mut by_repository: BTreeMap<String, Vec<push::PushedImage>> = BTreeMap::new();
    for (spec, built) in plan.functions.iter().zip(&images) {
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
