//! `test`: build the images, run each under the emulator and send it events.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use cargo_lambda_image::error::{Error, Result};
use cargo_lambda_image::pipeline::Outcome;
use cargo_lambda_image::progress::Stage;
use cargo_lambda_image::samples::{self, SampleKind};
use cargo_lambda_image::testing::{self, Runner};

use super::args::{ImageArgs, LocalArgs};
use super::Output;

/// Where `test` runs the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunnerArg {
    /// The image's filesystem, unpacked and run as Lambda does with bubblewrap: read-only
    /// root, tmpfs /tmp, non-root user, own PID namespace (without bubblewrap, a scratch image
    /// runs unconfined, with a warning).
    Sandbox,
    /// The image in the Docker engine (DOCKER_HOST): read-only, tmpfs /tmp, non-root user.
    Docker,
    /// The image's filesystem unpacked, its entrypoint run directly, without isolation.
    Unconfined,
    /// The compiled bootstrap as a plain process on this machine (no image).
    Process,
}

impl From<RunnerArg> for Runner {
    fn from(runner: RunnerArg) -> Runner {
        match runner {
            RunnerArg::Sandbox => Runner::Sandbox,
            RunnerArg::Docker => Runner::Docker,
            RunnerArg::Unconfined => Runner::Unconfined,
            RunnerArg::Process => Runner::Process,
        }
    }
}

/// `test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// An event: a JSON file, `-` for stdin, or inline JSON; repeatable. Default: the
    /// `events` of [package.metadata.lambda.test].
    #[arg(
        long = "event",
        short = 'e',
        value_name = "FILE|-|JSON",
        help_heading = "Test"
    )]
    pub events: Vec<String>,
    /// A sample event of KIND (apigw-v2, apigw-v1, alb, sqs, sns, s3, eventbridge, dynamodb,
    /// kinesis, scheduled), sent after the --event ones; repeatable.
    #[arg(long, value_name = "KIND", help_heading = "Test")]
    pub event_example: Vec<SampleKind>,
    /// A JSON file the response must equal, one per --event, in order.
    #[arg(long = "expect", value_name = "FILE", help_heading = "Test")]
    pub expect: Vec<PathBuf>,
    /// The tenant every invocation is for (X-Amz-Tenant-Id), which a tenant-isolated
    /// function needs and any other refuses.
    #[arg(long, value_name = "ID", help_heading = "Test")]
    pub tenant_id: Option<String>,
    /// Where the function runs.
    #[arg(long, value_enum, default_value_t = RunnerArg::Sandbox, help_heading = "Test")]
    pub runner: RunnerArg,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// Runs every event through every selected function; a failed invocation or a response other
/// than the expected one makes the exit status 1.
pub async fn run(args: &TestArgs, out: &Output) -> Result<()> {
    // The events, env files and credentials are read, and every function is checked to have
    // events, before anything compiles.
    let mut events = testing::events_from_args(&args.events, &args.expect)?;
    events.extend(args.event_example.iter().map(|kind| testing::TestEvent {
        name: format!("example:{kind}"),
        payload: samples::example(*kind).to_string().into_bytes(),
        expected: None,
    }));
    let mut local = args.local.options(args.runner.into())?.resolve().await?;
    local.tenant_id = args.tenant_id.clone();
    let plan = args.image.build.plan()?;
    for spec in &plan.functions {
        testing::events_for(spec, &events)?;
    }
    let (pipeline, images) = super::images_of(plan, &args.image, out, false).await?;
    let Some(images) = images else {
        return out.finish(pipeline.finish());
    };
    // A function whose invocations failed is a failed function of the summary, and the error
    // counts the invocations.
    let ran = pipeline.test(&images, &events, &local).await;
    let invocations: Vec<_> = ran.values().flatten().collect();
    let failed = invocations.iter().filter(|i| !i.passed()).count();
    let summary = pipeline.finish();
    let only_tests_failed = summary.entries.iter().all(|e| match &e.outcome {
        Outcome::Failed { stage, .. } => *stage == Stage::Test,
        _ => true,
    });
    match out.finish(summary) {
        Err(Error::SomeFailed { .. }) if failed > 0 && only_tests_failed => {
            Err(Error::TestFailed {
                failed,
                total: invocations.len(),
            })
        }
        other => other,
    }
}
