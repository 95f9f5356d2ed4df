//! Command-line definitions: clap types and their conversion into library requests.
//!
//! No flag has a clap default that stands for a configuration value: a flag that is not given
//! is `None` and leaves the manifest's value (or the library's default) in place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use cargo_lambda_image::config::{BuildOptions, Overrides, PlanRequest, Selection};
use cargo_lambda_image::target::{Arch, Compiler, Libc};

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
pub struct GlobalArgs {
    /// How results are printed on stdout: `human` or `json` (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// Show more detail on stderr (the commands being run).
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

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Cross-compile functions into target/lambda-image/<function>/<arch>/bootstrap.
    Build(BuildArgs),
    /// Build and assemble one container image per function and architecture (no Docker needed).
    Image(ImageArgs),
    /// Check built images against Lambda's requirements.
    Check(CheckArgs),
    /// Build, check and push images to a registry.
    Push(PushArgs),
    /// Build the image and invoke it locally under the built-in Lambda emulator.
    Test(TestArgs),
    /// Run the built-in Lambda emulator for a program on this machine, until Ctrl-C.
    Emulator(EmulatorArgs),
    /// Build, check, push to ECR and create or update the Lambda function (versions, aliases).
    Deploy(DeployArgs),
    /// Write a CloudFormation or SAM template that deploys the images by digest.
    Template(TemplateArgs),
    /// Create a new function crate that builds and passes `test` straight away.
    New(NewArgs),
}

/// `deploy`.
#[derive(Debug, Args)]
#[command(
    after_help = "With --dry-run the image is still built (locally), and only read-only AWS \
    calls are made: the output lists the calls a deploy would make."
)]
pub struct DeployArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// The AWS shared config/credentials profile [default: AWS_PROFILE, then `default`]
    /// (`--profile` is cargo's build profile).
    #[arg(long, value_name = "NAME", help_heading = "AWS")]
    pub aws_profile: Option<String>,
    /// The AWS region [default: `deploy.region` from metadata, then AWS_REGION, then the
    /// profile's].
    #[arg(long, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,
    /// One endpoint for ECR, IAM and Lambda (AWS_ENDPOINT_URL works too).
    #[arg(long, value_name = "URL", help_heading = "AWS")]
    pub endpoint_url: Option<String>,
    /// Push the image bytes to this registry host instead of the ECR registry (a VPC
    /// endpoint, a test registry); Lambda still gets the ECR image URI by digest.
    #[arg(long, value_name = "HOST", help_heading = "AWS")]
    pub registry: Option<String>,
}

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

/// `new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The crate's (and the function's) name.
    pub name: String,
    /// Where to create it [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// Where `test` runs the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runner {
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
    /// A JSON file the response must equal, one per --event, in order.
    #[arg(long = "expect", value_name = "FILE", help_heading = "Test")]
    pub expect: Vec<PathBuf>,
    /// Where the function runs.
    #[arg(long, value_enum, default_value_t = Runner::Sandbox, help_heading = "Test")]
    pub runner: Runner,
}

/// `emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address of the Invoke API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Runtime instances that may run at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Invocation timeout in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    /// Memory size reported to the function, in MB.
    #[arg(long, default_value_t = 128)]
    pub memory: u32,
    /// The function name the emulator presents.
    #[arg(long, default_value = "function")]
    pub function_name: String,
    /// A function environment variable, KEY=VALUE; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The program to run as the runtime, and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub program: Vec<String>,
}

/// `image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Also write a docker-archive tarball (`docker load -i FILE`); `{function}` and `{arch}`
    /// in FILE are replaced, and are required when several images are built.
    #[arg(long, value_name = "docker-archive=FILE", help_heading = "Image")]
    pub output: Option<String>,
    /// Skip the Lambda compatibility check.
    #[arg(long, help_heading = "Image")]
    pub no_check: bool,
    /// Also load each image into the Docker engine (DOCKER_HOST or the default socket), as
    /// `repository:tag`.
    #[arg(long, help_heading = "Image")]
    pub load: bool,
    /// Who makes the image: this tool, without a daemon, or the Docker engine from a
    /// Dockerfile (templates/docker/Dockerfile, or --dockerfile).
    #[arg(long, value_enum, default_value_t = Builder::Daemonless, help_heading = "Image")]
    pub builder: Builder,
    /// With --builder docker: your own Dockerfile (or template with {{placeholders}}); its
    /// build context holds only var/runtime/bootstrap and the included files under var/task.
    #[arg(long, value_name = "FILE", help_heading = "Image")]
    pub dockerfile: Option<PathBuf>,
}

/// Who makes the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Builder {
    /// Assemble the OCI image here: reproducible, no Docker needed.
    Daemonless,
    /// Build it in the Docker engine (DOCKER_HOST) and export it back as an OCI layout.
    Docker,
}

/// `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Registry host to push to (HOST or HOST:PORT).
    #[arg(
        long,
        env = "CARGO_LAMBDA_IMAGE_REGISTRY",
        value_name = "HOST",
        help_heading = "Registry"
    )]
    pub registry: String,
    /// Also push an OCI image index under TAG listing each repository's per-arch images, for
    /// Docker and Kubernetes users (Lambda itself always gets one image per architecture).
    #[arg(long, value_name = "TAG", help_heading = "Registry")]
    pub index: Option<String>,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Check this OCI layout directory instead of the selected functions' images (needs
    /// exactly one --arch).
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
}

impl CheckArgs {
    /// The library request for these flags.
    pub fn plan_request(&self) -> PlanRequest {
        PlanRequest {
            selection: selection(&self.selection),
            build: BuildOptions::default(),
            overrides: overrides(&self.target),
            env: Default::default(),
        }
        .with_process_env()
    }
}

fn selection(s: &SelectionArgs) -> Selection {
    Selection {
        manifest_path: s.manifest_path.clone(),
        packages: s.packages.clone(),
        workspace: s.workspace,
        exclude: s.exclude.clone(),
        bins: s.bins.clone(),
    }
}

fn overrides(t: &TargetArgs) -> Overrides {
    Overrides {
        arch: t.arch.clone(),
        libc: t.libc,
        compiler: t.compiler,
        base_image: t.base_image.clone(),
    }
}

/// Which packages and binaries.
#[derive(Debug, Args)]
#[command(next_help_heading = "Package selection")]
pub struct SelectionArgs {
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package(s) to work on.
    #[arg(short, long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Every function crate of the workspace.
    #[arg(long)]
    pub workspace: bool,
    /// Packages to leave out (with --workspace).
    #[arg(long, value_name = "SPEC", requires = "workspace")]
    pub exclude: Vec<String>,
    /// Only these binaries.
    #[arg(long = "bin", value_name = "NAME")]
    pub bins: Vec<String>,
}

/// Target and compiler choices; each overrides the manifest when given.
#[derive(Debug, Args)]
#[command(next_help_heading = "Target")]
pub struct TargetArgs {
    /// Architectures, comma separated: x86_64, arm64 [default: x86_64, or `arch` from metadata].
    #[arg(long, value_delimiter = ',', value_name = "ARCH")]
    pub arch: Option<Vec<Arch>>,
    /// C library: musl (static) or gnu [default: musl].
    #[arg(long, value_name = "LIBC")]
    pub libc: Option<Libc>,
    /// Compiler backend: cargo, zigbuild or cross [default: cargo].
    #[arg(long, value_name = "BACKEND")]
    pub compiler: Option<Compiler>,
    /// Base image reference, or `scratch` [default: public.ecr.aws/lambda/provided:al2].
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,
}

/// Compile options.
#[derive(Debug, Args)]
#[command(next_help_heading = "Compilation")]
pub struct CompileArgs {
    /// Build with the release profile (the default; accepted for cargo-lambda compatibility).
    #[arg(long, conflicts_with = "profile")]
    pub release: bool,
    /// Cargo profile to build with [default: release].
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Features to enable, comma or space separated.
    #[arg(short = 'F', long, value_delimiter = ',', value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Enable all features.
    #[arg(long)]
    pub all_features: bool,
    /// Do not enable the default features.
    #[arg(long)]
    pub no_default_features: bool,
    /// Require Cargo.lock to be up to date.
    #[arg(long)]
    pub locked: bool,
    /// Fail instead of running `rustup target add` for a missing target.
    #[arg(long)]
    pub no_install_targets: bool,
    /// Do not compile: use the bootstraps an earlier `build` left in target/lambda-image
    /// (e.g. in another CI job), checked as if just built.
    #[arg(long, conflicts_with_all = ["profile", "release", "features", "all_features", "no_default_features", "locked"])]
    pub no_build: bool,
}

/// `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Print the plan (and the compiler commands) without building anything; with `deploy`,
    /// build the image and print the AWS calls a deploy would make, without making them.
    #[arg(long)]
    pub dry_run: bool,
}

impl BuildArgs {
    /// The library request for these flags.
    pub fn plan_request(&self) -> PlanRequest {
        PlanRequest {
            selection: selection(&self.selection),
            build: BuildOptions {
                profile: self.compile.profile.clone(),
                features: self
                    .compile
                    .features
                    .iter()
                    .flat_map(|f| f.split_whitespace())
                    .map(str::to_string)
                    .collect(),
                all_features: self.compile.all_features,
                no_default_features: self.compile.no_default_features,
                locked: self.compile.locked,
            },
            overrides: overrides(&self.target),
            env: Default::default(),
        }
        .with_process_env()
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
