//! `invoke FUNCTION`: one invocation, printing the response (stdout) and the log tail
//! (stderr). Locally, the function's image is built (or taken with `--no-build`) and run once
//! under the emulator; with `--remote`, the deployed function is invoked through the Lambda
//! API, e.g. as a smoke test right after `deploy`.

use clap::Args;

use cargo_lambda_image::aws::AwsOptions;
use cargo_lambda_image::deploy::invoke::{self, RemoteInvoke};
use cargo_lambda_image::error::{Error, Result};
use cargo_lambda_image::event::Event;
use cargo_lambda_image::samples::SampleKind;
use cargo_lambda_image::serve::{self, Invoked, ServeOptions};
use cargo_lambda_image::testing;

use super::args::{invalid, ImageArgs, LocalArgs};
use super::test::RunnerArg;
use super::Output;

/// `invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function: its name or Lambda name among the selected functions; with --remote,
    /// the deployed function's name or ARN.
    #[arg(value_name = "FUNCTION")]
    pub function: String,
    #[command(flatten)]
    pub image: ImageArgs,
    /// The event: a JSON file, `-` for stdin, or inline JSON [default: {}].
    #[arg(long, short = 'e', value_name = "FILE|-|JSON", help_heading = "Invoke")]
    pub event: Option<String>,
    /// A sample event instead: apigw-v2, apigw-v1, alb, sqs, sns, s3, eventbridge, dynamodb,
    /// kinesis or scheduled.
    #[arg(
        long,
        value_name = "KIND",
        conflicts_with = "event",
        help_heading = "Invoke"
    )]
    pub event_example: Option<SampleKind>,
    /// The tenant the invocation is for (X-Amz-Tenant-Id), which a tenant-isolated function
    /// needs and any other refuses.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "remote",
        help_heading = "Invoke"
    )]
    pub tenant_id: Option<String>,
    /// Where the function runs (locally).
    #[arg(long, value_enum, default_value_t = RunnerArg::Sandbox, help_heading = "Invoke")]
    pub runner: RunnerArg,
    /// Invoke the deployed function through the Lambda API instead (--aws-profile, --region
    /// and --endpoint-url choose the account, region and endpoint).
    #[arg(long, help_heading = "Remote")]
    pub remote: bool,
    /// The version or alias to invoke.
    #[arg(
        long,
        value_name = "QUALIFIER",
        requires = "remote",
        help_heading = "Remote"
    )]
    pub qualifier: Option<String>,
    /// Use InvokeWithResponseStream, for a function that streams its response.
    #[arg(long, requires = "remote", help_heading = "Remote")]
    pub stream: bool,
    /// The Lambda endpoint (AWS_ENDPOINT_URL works too), e.g. a `serve` address.
    #[arg(long, value_name = "URL", requires = "remote", help_heading = "Remote")]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// The event's bytes.
fn payload(args: &InvokeArgs) -> Result<Vec<u8>> {
    if let Some(kind) = args.event_example {
        return Ok(cargo_lambda_image::samples::example(kind)
            .to_string()
            .into_bytes());
    }
    match &args.event {
        None => Ok(b"{}".to_vec()),
        Some(event) => {
            let mut events = testing::events_from_args(std::slice::from_ref(event), &[])?;
            Ok(events.pop().map(|e| e.payload).unwrap_or_default())
        }
    }
}

/// Invokes once; a function error makes the exit status 1.
pub async fn run(args: &InvokeArgs, out: &Output) -> Result<()> {
    let payload = payload(args)?;
    let invoked = if args.remote {
        remote(args, payload).await?
    } else {
        match local(args, payload, out).await? {
            Some(invoked) => invoked,
            None => return Ok(()),
        }
    };
    let failed = !invoked.succeeded();
    let error = invoked.function_error.clone();
    let function = invoked.function.clone();
    out.emit(Event::Invoked { invoked });
    if failed {
        let help = if args.remote {
            "the response above is the function's error, and its log tail is on stderr; \
             `aws logs tail /aws/lambda/<function>` shows more"
        } else {
            "the response above is the function's error; run with -v to see the runtime's output"
        };
        return Err(Error::InvokeFailed {
            function,
            remote: args.remote,
            error: error.unwrap_or_else(|| "the Invoke API answered with an error".into()),
            help: help.into(),
        });
    }
    Ok(())
}

async fn remote(args: &InvokeArgs, payload: Vec<u8>) -> Result<Invoked> {
    if args.local.aws_credentials || !args.local.env.is_empty() || !args.local.env_files.is_empty()
    {
        return Err(invalid(
            "--remote",
            "--env, --env-file and --aws-credentials set up a local run; the deployed function has its own configuration",
            "drop them, or drop --remote to run the function here",
        ));
    }
    let aws = AwsOptions {
        profile: args.local.aws_profile.clone(),
        region: args.local.region.clone(),
        endpoint_url: args.endpoint_url.clone(),
        ..AwsOptions::default()
    };
    let request = RemoteInvoke {
        function: args.function.clone(),
        qualifier: args.qualifier.clone(),
        payload,
        stream: args.stream,
    };
    invoke::invoke(&aws, &request).await
}

/// Builds the one function and runs it once; `None` for a dry run or a failed build (which
/// the pipeline reported).
async fn local(args: &InvokeArgs, payload: Vec<u8>, out: &Output) -> Result<Option<Invoked>> {
    let local = args.local.options(args.runner.into())?.resolve().await?;
    let mut plan = args.image.build.plan()?;
    let name = serve::resolve_function(&args.function, &plan.functions, "FUNCTION")?.to_string();
    plan.functions.retain(|f| f.lambda_name == name);
    let (pipeline, images) = super::images_of(plan, &args.image, out, false).await?;
    let Some(images) = images else {
        return out.finish(pipeline.finish()).map(|_| None);
    };
    let options = ServeOptions {
        local,
        concurrency: Some(1),
    };
    let setups = pipeline.serve_setups(&images, &options).await;
    let summary = pipeline.finish();
    let Some(setup) = setups.items.into_iter().next() else {
        return out.finish(summary).map(|_| None);
    };
    out.finish(summary)?;
    // The log tail shows the invocation's lines; they are not printed as they come too.
    let mut setup = setup.value;
    setup.config.logs = cargo_lambda_image::emulate::LogSink::discard();
    serve::invoke_once(setup, payload, args.tenant_id.as_deref())
        .await
        .map(Some)
}
