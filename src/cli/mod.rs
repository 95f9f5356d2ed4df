//! The command line: clap definitions, and one file per command mapping its flags to one
//! library call (the pipeline's stages, mostly) plus how its results are shown.

pub mod args;
mod build;
mod check;
mod deploy;
mod doctor;
mod emulator;
mod image;
mod invoke;
mod new;
mod output;
mod prune;
mod push;
mod release;
mod serve;
mod template;
mod test;
mod watch;

use clap::{Args, Parser, Subcommand, ValueEnum};

use cargo_lambda_image::deploy::release::Release;
use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::{Event, Reason};
use cargo_lambda_image::image::BuiltImage;
use cargo_lambda_image::pipeline::{Batch, Pipeline};

pub use output::Output;

/// Build, test and deploy Rust AWS Lambda functions as container images.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-lambda-image",
    bin_name = "cargo lambda-image",
    version,
    about,
    long_about = "Build, test and deploy Rust AWS Lambda functions as container images.\n\n\
        Settings come from [package.metadata.lambda] (defaults in [workspace.metadata.lambda]), \
        CARGO_LAMBDA_IMAGE_* environment variables and these flags, in that order of precedence.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct GlobalArgs {
    /// How results are printed on stdout: `human` or `json` (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// Show more detail on stderr (the commands being run, the function's own output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print nothing on stderr but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Coloring of stderr: auto, always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Output format of results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line, each with a `reason`.
    Json,
}

/// Terminal coloring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when stderr is a terminal.
    Auto,
    /// Always color.
    Always,
    /// Never color.
    Never,
}

impl ColorChoice {
    /// Whether to color stderr.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        }
    }
}

/// `event-example`.
#[derive(Debug, Args)]
pub struct EventExampleArgs {
    /// The kind of event.
    #[arg(value_name = "KIND")]
    pub kind: cargo_lambda_image::samples::SampleKind,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Cross-compile functions into target/lambda-image/<function>/<arch>/bootstrap.
    Build(args::BuildArgs),
    /// Build and assemble one container image per function and architecture (no Docker needed).
    Image(args::ImageArgs),
    /// Build the images and check them against Lambda's requirements, printing every rule.
    Check(check::CheckArgs),
    /// Build, check and push images to a registry.
    Push(push::PushArgs),
    /// Build the image and invoke it locally under the built-in Lambda emulator.
    Test(test::TestArgs),
    /// Serve the functions under the built-in emulator by their Lambda names (Invoke API,
    /// optional HTTP fronts), until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Serve, and rebuild and swap in a function's image when its sources change.
    Watch(watch::WatchArgs),
    /// Invoke a function once, here or (--remote) the deployed one; print the response and
    /// the log tail.
    Invoke(invoke::InvokeArgs),
    /// Print a sample event (apigw-v2, apigw-v1, alb, sqs, sns, s3, eventbridge, dynamodb,
    /// kinesis, scheduled).
    EventExample(EventExampleArgs),
    /// Run the built-in Lambda emulator for a program on this machine, until Ctrl-C.
    Emulator(emulator::EmulatorArgs),
    /// Build, check, push to ECR and create or update the Lambda function (versions, aliases).
    Deploy(deploy::DeployArgs),
    /// End a canary release: give the alias wholly to the canary's version.
    Promote(release::ReleaseArgs),
    /// Drop a canary release, or move the alias back to the previous published version.
    Rollback(release::ReleaseArgs),
    /// List the ECR images no version, alias or $LATEST of the functions uses; --yes
    /// deletes them.
    Prune(prune::PruneArgs),
    /// Check what the other commands need on this machine (toolchain, runners, Docker,
    /// registry credentials, AWS, base images), each with its fix.
    Doctor(doctor::DoctorArgs),
    /// Write a CloudFormation or SAM template that deploys the images by digest.
    Template(template::TemplateArgs),
    /// Create a new function crate that builds and passes `test` straight away.
    New(new::NewArgs),
}

impl Commands {
    /// The reasons of the command's own results, printed on stdout.
    pub fn primary(&self) -> Vec<Reason> {
        use Reason::*;
        match self {
            Commands::Build(_) => vec![Compiled, Plan],
            Commands::Image(_) => vec![Image, Plan],
            Commands::Check(_) => vec![Check, Plan],
            Commands::Push(_) => vec![Pushed, Index, Plan],
            Commands::Test(_) => vec![Invocation, Plan],
            Commands::Emulator(_) => vec![Emulator],
            Commands::Serve(_) | Commands::Watch(_) => vec![Serving, Reloaded],
            Commands::Invoke(_) => vec![Invoked],
            Commands::EventExample(_) => vec![EventExample],
            Commands::Deploy(_) => vec![Deployed, Planned],
            Commands::Promote(_) | Commands::Rollback(_) => vec![Released],
            Commands::Prune(_) => vec![Pruned],
            Commands::Doctor(_) => vec![Doctor],
            Commands::Template(_) => vec![Template, Plan],
            Commands::New(_) => vec![New],
        }
    }

    /// Whether Ctrl-C should stop the command from outside (`emulator` handles it itself).
    pub fn interruptible(&self) -> bool {
        !matches!(
            self,
            Commands::Emulator(_) | Commands::Serve(_) | Commands::Watch(_)
        )
    }
}

/// Runs the command.
pub async fn run(command: &Commands, out: &Output) -> Result<()> {
    match command {
        Commands::Build(args) => build::run(args, out).await,
        Commands::Image(args) => image::run(args, out).await,
        Commands::Check(args) => check::run(args, out).await,
        Commands::Push(args) => push::run(args, out).await,
        Commands::Test(args) => test::run(args, out).await,
        Commands::Emulator(args) => emulator::run(args, out).await,
        Commands::Serve(args) => serve::run(args, out).await,
        Commands::Watch(args) => watch::run(args, out).await,
        Commands::Invoke(args) => invoke::run(args, out).await,
        Commands::EventExample(args) => {
            out.emit(Event::EventExample {
                kind: args.kind.name().to_string(),
                event: cargo_lambda_image::samples::example(args.kind),
            });
            Ok(())
        }
        Commands::Deploy(args) => deploy::run(args, out).await,
        Commands::Prune(args) => prune::run(args, out).await,
        Commands::Doctor(args) => doctor::run(args, out).await,
        Commands::Promote(args) => release::run(args, Release::Promote, out).await,
        Commands::Rollback(args) => release::run(args, Release::Rollback, out).await,
        Commands::Template(args) => template::run(args, out).await,
        Commands::New(args) => new::run(args, out),
    }
}

/// The arguments without the `lambda-image` that cargo inserts when it runs a subcommand.
pub fn args_from_env() -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "lambda-image") {
        args.remove(1);
    }
    args
}

/// Plans, checks the flags against the plan, then compiles and builds the images. With
/// `--dry-run` (unless `build_anyway`, as `deploy --dry-run` does), only the plan is
/// reported and `None` is returned.
pub(crate) async fn images(
    args: &args::ImageArgs,
    out: &Output,
    build_anyway: bool,
) -> Result<(Pipeline, Option<Batch<BuiltImage>>)> {
    images_of(args.build.plan()?, args, out, build_anyway).await
}

/// [`images`] of a plan already made (a command that looked at the plan first).
pub(crate) async fn images_of(
    plan: cargo_lambda_image::Plan,
    args: &args::ImageArgs,
    out: &Output,
    build_anyway: bool,
) -> Result<(Pipeline, Option<Batch<BuiltImage>>)> {
    let options = args.options(&plan, out.color)?;
    let pipeline = Pipeline::new(plan, options, out.sink());
    if args.build.dry_run && !build_anyway {
        pipeline.dry_run();
        return Ok((pipeline, None));
    }
    let compiled = pipeline.compile().await;
    let images = pipeline.image(compiled).await;
    Ok((pipeline, Some(images)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cargo_lambda_image::target::{Arch, Libc};
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unset_flags_stay_none_so_metadata_wins() {
        let cli = Cli::try_parse_from(["cargo-lambda-image", "build"]).unwrap();
        let Commands::Build(b) = cli.command else {
            panic!()
        };
        let r = b.plan_request();
        assert!(r.overrides.arch.is_none() && r.overrides.libc.is_none());
        assert!(r.overrides.compiler.is_none() && r.build.profile.is_none());
    }

    #[test]
    fn arch_list_and_aliases_parse() {
        let cli = Cli::try_parse_from(["x", "build", "--arch", "x86_64,aarch64", "--libc", "gnu"])
            .unwrap();
        let Commands::Build(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.target.arch, Some(vec![Arch::X86_64, Arch::Arm64]));
        assert_eq!(b.target.libc, Some(Libc::Gnu));
    }

    #[test]
    fn bad_arch_flag_is_rejected_by_name() {
        let err = Cli::try_parse_from(["x", "build", "--arch", "x86"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--arch") && err.contains("x86_64"), "{err}");
    }

    /// Every command's `--help`, as users read it (at 100 columns).
    #[test]
    fn every_command_help_reads_well() {
        let mut command = Cli::command().term_width(100);
        command.build();
        insta::assert_snapshot!("help", command.render_long_help().to_string());
        for sub in command.get_subcommands_mut() {
            let name = format!("help-{}", sub.get_name());
            insta::assert_snapshot!(name, sub.render_long_help().to_string());
        }
    }

    #[test]
    fn every_command_that_builds_takes_no_build() {
        for command in [
            "build", "image", "check", "push", "test", "deploy", "template",
        ] {
            let mut args = vec!["x", command, "--no-build"];
            if matches!(command, "push" | "template") {
                args.extend(["--registry", "127.0.0.1:5000"]);
            }
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{command}: {e}"));
        }
    }
}
