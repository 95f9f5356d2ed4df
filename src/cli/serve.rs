//! `serve`: build the selected functions' images and serve them all under the built-in
//! emulator, by their Lambda names (Invoke and InvokeWithResponseStream), with optional HTTP
//! fronts, until Ctrl-C.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use cargo_lambda_image::emulate::http_event::HttpFormat;
use cargo_lambda_image::emulate::Emulator;
use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::Event;
use cargo_lambda_image::image::BuiltImage;
use cargo_lambda_image::pipeline::{Batch, Pipeline};
use cargo_lambda_image::serve::{self, HttpFront, ServeOptions, ServedFunction};
use cargo_lambda_image::Plan;

use super::args::{invalid, ImageArgs, LocalArgs};
use super::test::RunnerArg;
use super::Output;

/// The event shape of HTTP fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpFormatArg {
    /// API Gateway HTTP API payload 2.0, which Function URLs send too.
    #[value(name = "apigw-v2")]
    ApigwV2,
    /// API Gateway REST API (payload 1.0).
    #[value(name = "apigw-v1")]
    ApigwV1,
    /// Application Load Balancer.
    Alb,
}

impl From<HttpFormatArg> for HttpFormat {
    fn from(format: HttpFormatArg) -> HttpFormat {
        match format {
            HttpFormatArg::ApigwV2 => HttpFormat::ApigwV2,
            HttpFormatArg::ApigwV1 => HttpFormat::ApigwV1,
            HttpFormatArg::Alb => HttpFormat::Alb,
        }
    }
}

/// How functions are served; shared by `serve` and `watch`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Serve")]
pub struct ServeFlags {
    /// Address of Lambda's Invoke API for every served function.
    #[arg(long, default_value = "127.0.0.1:9001", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// An HTTP front for a function, FUNCTION=ADDR (like a Function URL); repeatable.
    #[arg(long, value_name = "FUNCTION=ADDR")]
    pub http: Vec<String>,
    /// The events HTTP fronts send.
    #[arg(long, value_enum, default_value_t = HttpFormatArg::ApigwV2)]
    pub http_format: HttpFormatArg,
    /// Runtimes of each function that may run at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Where the functions run.
    #[arg(long, value_enum, default_value_t = RunnerArg::Sandbox)]
    pub runner: RunnerArg,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub serve: ServeFlags,
}

/// What is ready before anything builds: the listeners (so that an address in use fails
/// first) and the serve options.
pub struct Prepared {
    pub listener: tokio::net::TcpListener,
    pub fronts: Vec<HttpFront>,
    pub options: ServeOptions,
}

impl ServeFlags {
    /// Resolves the local options, binds every address, and checks the fronts against the
    /// plan's functions.
    pub async fn prepare(&self, plan: &Plan) -> Result<Prepared> {
        if self.concurrency == 0 {
            return Err(invalid(
                "--concurrency",
                "it is 0, so no invocation could ever run",
                "use 1 or more",
            ));
        }
        let local = self.local.options(self.runner.into())?.resolve().await?;
        let mut wanted = Vec::new();
        for pair in &self.http {
            let parsed = pair
                .split_once('=')
                .and_then(|(f, a)| Some((f.to_string(), a.parse::<SocketAddr>().ok()?)));
            let Some((function, addr)) = parsed else {
                return Err(invalid(
                    "--http",
                    format!("`{pair}` is not FUNCTION=ADDR"),
                    "write --http hello=127.0.0.1:9002",
                ));
            };
            let function =
                serve::resolve_function(&function, &plan.functions, "--http")?.to_string();
            wanted.push((function, addr));
        }
        let listener = serve::bind(self.bind, "--bind").await?;
        let mut fronts = Vec::new();
        for (function, addr) in wanted {
            fronts.push(HttpFront {
                listener: serve::bind(addr, &format!("--http {function}=ADDR")).await?,
                function,
                format: self.http_format.into(),
            });
        }
        Ok(Prepared {
            listener,
            fronts,
            options: ServeOptions {
                local,
                concurrency: Some(self.concurrency),
            },
        })
    }
}

/// The report of one served function.
pub fn served(
    image: &BuiltImage,
    emulator: &Emulator,
    lambda_name: &str,
    http: Option<SocketAddr>,
) -> ServedFunction {
    ServedFunction {
        function: image.function.clone(),
        lambda_name: lambda_name.to_string(),
        arch: image.arch,
        digest: image.digest.clone(),
        invoke_url: emulator.invoke_url_of(lambda_name),
        http: http.map(|a| format!("http://{a}")),
    }
}

/// Starts the emulator with every image of `images`, and reports what it serves. With
/// `unbuilt`, the planned functions without an image are served too, every invocation of
/// them an error saying `unbuilt` (`watch` serves them once a rebuild succeeds).
pub async fn start(
    pipeline: &Pipeline,
    images: &Batch<BuiltImage>,
    prepared: Prepared,
    out: &Output,
    unbuilt: Option<&str>,
) -> Result<Option<Emulator>> {
    let built = pipeline.serve_setups(images, &prepared.options).await;
    let mut setups: Vec<_> = built.items.iter().map(|i| i.value.clone()).collect();
    if let Some(reason) = unbuilt {
        for spec in &pipeline.plan().functions {
            if !built
                .items
                .iter()
                .any(|i| i.spec.lambda_name == spec.lambda_name)
            {
                let reporter = pipeline.reporter();
                setups.push(serve::unavailable(
                    spec,
                    &prepared.options,
                    reporter,
                    reason,
                )?);
            }
        }
    }
    if setups.is_empty() {
        return Ok(None);
    }
    let (emulator, fronts) = serve::start(prepared.listener, setups, prepared.fronts).await?;
    let functions = images
        .items
        .iter()
        .filter(|i| emulator.function_names().contains(&i.spec.lambda_name))
        .map(|i| {
            let http = fronts
                .iter()
                .find(|(f, _)| *f == i.spec.lambda_name)
                .map(|(_, a)| *a);
            served(&i.value, &emulator, &i.spec.lambda_name, http)
        })
        .collect();
    out.emit(Event::Serving {
        endpoint: format!("http://{}", emulator.local_addr()),
        functions,
    });
    Ok(Some(emulator))
}

/// Serves until Ctrl-C.
pub async fn run(args: &ServeArgs, out: &Output) -> Result<()> {
    let plan = args.image.build.plan()?;
    let prepared = args.serve.prepare(&plan).await?;
    let (pipeline, images) = super::images_of(plan, &args.image, out, false).await?;
    let Some(images) = images else {
        return out.finish(pipeline.finish());
    };
    if let Some(emulator) = start(&pipeline, &images, prepared, out, None).await? {
        let _ = tokio::signal::ctrl_c().await;
        emulator.shutdown().await;
    }
    out.finish(pipeline.finish())
}
