//! An example `xtask` driving cargo-lambda-image's pipeline: the same code, the same events and
//! the same function names as `cargo lambda-image`, for every function of a workspace.
//!
//! `cargo xtask deploy [--arch x86_64,arm64] [--region R] [--endpoint-url URL] [--registry HOST]`
//!
//! Plans every Lambda function of the workspace, cross-compiles it, builds and checks one image
//! per architecture, and deploys each as its own Lambda function (ECR repository and policy,
//! push, IAM role, create or update, version and alias; settings from
//! `[package.metadata.lambda]`, AWS credentials from the usual chain).
//!
//! `cargo xtask release --registry HOST [--arch ...] [--index TAG] [--template FILE] [--sam]`
//!
//! The same up to the images, then pushes them to `HOST` (e.g.
//! `123456789012.dkr.ecr.eu-west-1.amazonaws.com`, logged in with `docker login`), optionally
//! an OCI index per function under `TAG` (for Docker and Kubernetes; Lambda never gets an
//! index), and writes a CloudFormation (or SAM) template deploying each image by digest.
//!
//! Both keep going when a function fails a stage: the others are still released, a summary
//! lists every function, and the exit status says whether anything failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use cargo_lambda_image::aws::AwsOptions;
use cargo_lambda_image::config::{self, Overrides, PlanRequest, Selection};
use cargo_lambda_image::deploy::DeployOptions;
use cargo_lambda_image::event::Sink;
use cargo_lambda_image::pipeline::{Options, Pipeline, Summary};
use cargo_lambda_image::publish::RegistryPublisher;
use cargo_lambda_image::render::{ProgressMode, RenderOptions, Renderer};
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::template::{self, ImageRef, LaunchConfig, TemplateFormat};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The task and its options.
pub struct Args {
    /// `deploy` or `release`.
    pub deploy: bool,
    /// The workspace (default: the one around the current directory).
    pub manifest_path: Option<PathBuf>,
    /// The architectures, each its own function.
    pub arch: Vec<Arch>,
    /// `release`: where to push; `deploy`: where the image bytes go instead of ECR's host.
    pub registry: Option<String>,
    /// `release`: the tag of a multi-arch index per function.
    pub index: Option<String>,
    /// `release`: where the template goes.
    pub template: PathBuf,
    /// `release`: CloudFormation or SAM.
    pub format: TemplateFormat,
    /// `deploy`: region, endpoint and profile.
    pub aws: AwsOptions,
}

/// Parses the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args> {
    let mut args = args.into_iter();
    let deploy = match args.next().as_deref() {
        Some("deploy") => true,
        Some("release") => false,
        other => return Err(format!("unknown task {other:?}; try `deploy` or `release`").into()),
    };
    let mut parsed = Args {
        deploy,
        manifest_path: None,
        arch: vec![Arch::X86_64, Arch::Arm64],
        registry: None,
        index: None,
        template: "template.json".into(),
        format: TemplateFormat::CloudFormation,
        aws: AwsOptions::default(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--arch" => {
                parsed.arch = value()?
                    .split(',')
                    .map(|a| a.trim().parse::<Arch>())
                    .collect::<std::result::Result<_, _>>()?
            }
            "--manifest-path" => parsed.manifest_path = Some(value()?.into()),
            "--registry" => parsed.registry = Some(value()?),
            "--index" => parsed.index = Some(value()?),
            "--template" => parsed.template = value()?.into(),
            "--sam" => parsed.format = TemplateFormat::Sam,
            "--region" => parsed.aws.region = Some(value()?),
            "--endpoint-url" => parsed.aws.endpoint_url = Some(value()?),
            "--aws-profile" => parsed.aws.profile = Some(value()?),
            other => return Err(format!("unknown option `{other}`").into()),
        }
    }
    Ok(parsed)
}

/// Runs the task: the pipeline up to checked images, then deploy or release. Events go to
/// `sink`; the summary lists every planned function.
pub async fn run(args: &Args, options: Options, sink: Arc<dyn Sink>) -> Result<Summary> {
    // The plan: every (function, arch) of the workspace with its resolved settings and its
    // Lambda name, decided once, here.
    let plan = config::plan(
        &PlanRequest {
            selection: Selection {
                manifest_path: args.manifest_path.clone(),
                workspace: true,
                ..Default::default()
            },
            overrides: Overrides {
                arch: Some(args.arch.clone()),
                ..Default::default()
            },
            ..Default::default()
        }
        .with_process_env(),
    )?;
    let registry = options.registry.clone();
    let pipeline = Pipeline::new(plan, options, sink);
    // Cross-compile, then build and check the images (on every core).
    let images = pipeline.image(pipeline.compile().await).await;

    if args.deploy {
        let deploy = DeployOptions {
            aws: args.aws.clone(),
            registry_override: args.registry.clone(),
            registry,
            dry_run: false,
            ..Default::default()
        };
        pipeline.deploy(&images, &deploy).await;
        return Ok(pipeline.finish());
    }

    let host = args
        .registry
        .as_deref()
        .ok_or("release needs --registry HOST")?;
    let pushed = pipeline
        .push(&images, &RegistryPublisher::new(host, registry)?)
        .await;
    if let Some(tag) = &args.index {
        pipeline.index(&pushed, host, tag).await?;
    }
    // The template names every pushed image by digest, with what the image runs.
    let mut functions = Vec::new();
    for item in &pushed.items {
        let (image, pushed) = &item.value;
        let image_ref = ImageRef::from_pushed(pushed).with_launch(LaunchConfig::from_image(image)?);
        functions.push(((*item.spec).clone(), image_ref));
    }
    if !functions.is_empty() {
        std::fs::write(
            &args.template,
            template::render_string(&functions, args.format)?,
        )?;
        eprintln!(
            "wrote {} ({} functions); deploy it with `aws cloudformation deploy --template-file {} --stack-name NAME --capabilities CAPABILITY_IAM`",
            args.template.display(),
            functions.len(),
            args.template.display()
        );
    }
    Ok(pipeline.finish())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Progress and results on stderr, as `cargo lambda-image` shows them.
    let renderer = Arc::new(Renderer::new(RenderOptions {
        primary: Vec::new(),
        json: false,
        progress: ProgressMode::auto(),
        verbosity: 0,
    }));
    let outcome = run(&args, Options::from_env(), renderer.clone()).await;
    let failed = match outcome {
        Ok(summary) => {
            renderer.finish(&summary);
            summary.into_result().err().map(|e| e.to_string())
        }
        Err(e) => Some(e.to_string()),
    };
    match failed {
        None => ExitCode::SUCCESS,
        Some(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
