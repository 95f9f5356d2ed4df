//! The flag groups the commands share, with cargo-style help headings, and their conversion
//! into library requests and pipeline options.
//!
//! No flag has a clap default that stands for a configuration value: a flag that is not given
//! is `None` and leaves the manifest's value (or the library's default) in place. Flag values
//! are checked when the options are made, before anything compiles.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use cargo_lambda_image::aws::AwsOptions;
use cargo_lambda_image::compile::CompileOptions;
use cargo_lambda_image::config::{self, BuildOptions, Overrides, Plan, PlanRequest, Selection};
use cargo_lambda_image::error::{Error, Source};
use cargo_lambda_image::image::{docker_build, DockerBuildOptions, DockerBuilder};
use cargo_lambda_image::pipeline::Options;
use cargo_lambda_image::publish::{ArchivePublisher, DaemonPublisher, LayoutPublisher, Publisher};
use cargo_lambda_image::target::{Arch, Compiler, Libc};
use cargo_lambda_image::testing::{LocalOptions, ModelOptions, Runner};

/// An invalid flag value, naming the flag.
pub fn invalid(flag: &str, message: impl Into<String>, help: impl Into<String>) -> Error {
    Error::InvalidValue {
        source_: Box::new(Source::Cli { flag: flag.into() }),
        key: flag.trim_start_matches('-').into(),
        message: message.into(),
        help: help.into(),
    }
}

/// Which packages and binaries.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Package Selection")]
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
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Target Selection")]
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
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Compilation Options")]
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

/// What `build` takes, and every command that builds.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Print the plan (and the compiler commands) without building anything; with `deploy`,
    /// build the image and print the AWS calls a deploy would make, without making them.
    #[arg(long, help_heading = "Output")]
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
            // An earlier run's view of the workspace serves while nothing it depends on
            // changed; cargo still judges what to rebuild when it builds.
            reuse_metadata: true,
        }
        .with_process_env()
    }

    /// The plan for these flags (no side effects but `cargo metadata`).
    pub fn plan(&self) -> Result<Plan, Error> {
        config::plan(&self.plan_request())
    }

    /// Pipeline options for compiling only.
    pub fn options(&self, color: bool) -> Options {
        Options {
            compile: CompileOptions {
                color: Some(if color { "always" } else { "never" }.to_string()),
                install_targets: !self.compile.no_install_targets,
                no_build: self.compile.no_build,
            },
            ..Options::from_env()
        }
    }
}

/// Who makes the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuilderArg {
    /// Assemble the OCI image here: reproducible, no Docker needed.
    Daemonless,
    /// Build it in the Docker engine (DOCKER_HOST) and export it back as an OCI layout.
    Docker,
}

/// What `image` takes, and every command that builds images.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Also write each image elsewhere; repeatable: `docker-archive=FILE` (a `docker load`
    /// tarball) or `oci=DIR` (added to an OCI layout under `repository:tag`). `{function}` and
    /// `{arch}` in FILE are replaced, and are required when several images are built.
    #[arg(long, value_name = "KIND=PATH", help_heading = "Image")]
    pub output: Vec<String>,
    /// Skip the Lambda compatibility check.
    #[arg(long, help_heading = "Image")]
    pub no_check: bool,
    /// Also load each image into the Docker engine (DOCKER_HOST or the default socket), as
    /// `repository:tag`.
    #[arg(long, help_heading = "Image")]
    pub load: bool,
    /// Who makes the image: this tool, without a daemon, or the Docker engine from a
    /// Dockerfile (templates/docker/Dockerfile, or --dockerfile).
    #[arg(long, value_enum, default_value_t = BuilderArg::Daemonless, help_heading = "Image")]
    pub builder: BuilderArg,
    /// With --builder docker: your own Dockerfile (or template with {{placeholders}}); its
    /// build context holds only var/runtime/bootstrap and the included files under var/task.
    #[arg(long, value_name = "FILE", help_heading = "Image")]
    pub dockerfile: Option<PathBuf>,
    /// With --builder docker: pull the base image even when the engine has it (as `docker
    /// build --pull`); otherwise it is pulled only when the engine lacks it for the platform.
    #[arg(long, help_heading = "Image")]
    pub pull: bool,
    /// Also write an SPDX 2.3 SBOM of the crates in each binary, next to it
    /// (target/lambda-image/<function>/<arch>/sbom.spdx.json); `push` and `template --push`
    /// attach it to the pushed image as an OCI referrer. On for functions whose metadata says
    /// `image.sbom`.
    #[arg(long, help_heading = "Image")]
    pub sbom: bool,
}

impl ImageArgs {
    /// Pipeline options for building images for `plan`, the flag values checked against it
    /// (before anything compiles).
    pub fn options(&self, plan: &Plan, color: bool) -> Result<Options, Error> {
        let mut options = self.build.options(color);
        options.check = !self.no_check;
        options.sbom = self.sbom;
        options.outputs = self.outputs(plan)?;
        if self.load {
            options.outputs.push(Arc::new(DaemonPublisher));
        }
        match self.builder {
            // The pipeline's own default.
            BuilderArg::Daemonless if self.dockerfile.is_some() => {
                return Err(invalid(
                    "--dockerfile",
                    "a Dockerfile is only used by the Docker builder",
                    "add --builder docker, or drop --dockerfile",
                ))
            }
            BuilderArg::Daemonless if self.pull => {
                return Err(invalid(
                    "--pull",
                    "the daemonless builder reads a registry base's manifest on every build, and never pulls into the Docker engine",
                    "add --builder docker, or drop --pull",
                ))
            }
            BuilderArg::Daemonless => {}
            BuilderArg::Docker => {
                // A Dockerfile that would build the images without their extensions is refused
                // now, not after every function compiled (one that cannot be read is reported
                // when it is used).
                let text = self
                    .dockerfile
                    .as_ref()
                    .and_then(|path| std::fs::read_to_string(path).ok());
                let shipping = plan.functions.iter().find(|f| !f.extensions.is_empty());
                if let (Some(text), Some(spec)) = (text, shipping) {
                    if !docker_build::ships_extensions(&text) {
                        let e = docker_build::extensions_left_out(
                            spec,
                            self.dockerfile.as_deref().unwrap_or(std::path::Path::new("")),
                        );
                        let help = miette::Diagnostic::help(&e)
                            .map(|h| h.to_string())
                            .unwrap_or_default();
                        return Err(invalid("--dockerfile", e.to_string(), help));
                    }
                }
                let build = DockerBuildOptions {
                    dockerfile: self.dockerfile.clone(),
                    pull: self.pull,
                };
                let docker = DockerBuilder::new(build, &options.registry);
                options.builder = Some(Arc::new(docker));
            }
        }
        Ok(options)
    }

    /// The `--output` destinations.
    fn outputs(&self, plan: &Plan) -> Result<Vec<Arc<dyn Publisher>>, Error> {
        let mut outputs: Vec<Arc<dyn Publisher>> = Vec::new();
        for spec in &self.output {
            let several = plan.functions.len() > 1;
            match spec.split_once('=') {
                Some(("docker-archive", file)) if !file.is_empty() => {
                    let archive = ArchivePublisher::new(file);
                    if several && !archive.is_per_image() {
                        return Err(invalid(
                            "--output",
                            format!("{} images would be written to one file", plan.functions.len()),
                            "put {function} and {arch} in the file name, e.g. docker-archive=images/{function}-{arch}.tar",
                        ));
                    }
                    outputs.push(Arc::new(archive));
                }
                Some(("oci", dir)) if !dir.is_empty() => {
                    outputs.push(Arc::new(LayoutPublisher::new(dir)))
                }
                _ => {
                    return Err(invalid(
                        "--output",
                        format!("`{spec}` is not an output"),
                        "write --output docker-archive=FILE or --output oci=DIR (the image's own OCI layout is always written)",
                    ))
                }
            }
        }
        Ok(outputs)
    }

    /// Pushing and deploying always check the image first.
    pub fn require_check(&self) -> Result<(), Error> {
        if self.no_check {
            return Err(invalid(
                "--no-check",
                "images are always checked before they are pushed or deployed",
                "drop --no-check; `cargo lambda-image check` shows which rule fails and how to fix it",
            ));
        }
        Ok(())
    }
}

/// What a function run on this machine gets besides its image and metadata.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Local Run")]
pub struct LocalArgs {
    /// A variable for the function, KEY=VALUE; repeatable. Overrides the image's ENV, the
    /// metadata's `env` and --env-file.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A dotenv file of variables for the function; repeatable, a later file winning.
    /// Overrides the image's ENV and the metadata's `env`.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Give the function your AWS credentials (profile, SSO, credential_process, environment
    /// or IMDS), as Lambda gives it its role's; off by default.
    #[arg(long)]
    pub aws_credentials: bool,
    /// The profile for --aws-credentials [default: AWS_PROFILE, then `default`].
    #[arg(long, value_name = "NAME")]
    pub aws_profile: Option<String>,
    /// The function's AWS_REGION [default: `deploy.region` from metadata, then with
    /// --aws-credentials the profile's, then us-east-1].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Run SnapStart's lifecycle: init with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start,
    /// answer restore/next, report the restore; `--snap-start=false` turns it off
    /// [default: `deploy.snap-start`].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub snap_start: Option<bool>,
    /// Run as Lambda Managed Instances: each environment serves up to N requests at once,
    /// with AWS_LAMBDA_MAX_CONCURRENCY=N [default: `deploy.managed-instances.max-concurrency`].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1600))]
    pub max_concurrency: Option<u32>,
    /// Give every tenant (X-Amz-Tenant-Id) environments of its own; every invocation must
    /// then name one; `--tenant-isolation=false` turns it off [default: `deploy.tenant-isolation`].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tenant_isolation: Option<bool>,
}

impl LocalArgs {
    /// The library's local-run options for these flags.
    pub fn options(&self, runner: Runner) -> Result<LocalOptions, Error> {
        if self.aws_profile.is_some() && !self.aws_credentials {
            return Err(invalid(
                "--aws-profile",
                "it names the profile whose credentials the function gets, but --aws-credentials is not given",
                "add --aws-credentials, or drop --aws-profile",
            ));
        }
        Ok(LocalOptions {
            runner,
            env_files: self.env_files.clone(),
            env: self.env.clone(),
            region: self.region.clone(),
            aws_credentials: self.aws_credentials.then(|| AwsOptions {
                profile: self.aws_profile.clone(),
                region: self.region.clone(),
                ..AwsOptions::default()
            }),
            model: ModelOptions {
                snap_start: self.snap_start,
                max_concurrency: self.max_concurrency,
                tenant_isolation: self.tenant_isolation,
            },
        })
    }
}

/// Where images are pushed.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Registry")]
pub struct RegistryArgs {
    /// Registry host to push to (HOST or HOST:PORT).
    #[arg(
        long,
        env = "CARGO_LAMBDA_IMAGE_REGISTRY",
        hide_env_values = true,
        value_name = "HOST"
    )]
    pub registry: String,
}

/// How to reach AWS.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "AWS")]
pub struct AwsArgs {
    /// The AWS shared config/credentials profile [default: AWS_PROFILE, then `default`]
    /// (`--profile` is cargo's build profile).
    #[arg(long, value_name = "NAME")]
    pub aws_profile: Option<String>,
    /// The AWS region [default: `deploy.region` from metadata, then AWS_REGION, then the
    /// profile's].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// One endpoint for ECR, IAM and Lambda (AWS_ENDPOINT_URL works too).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Push the image bytes to this registry host instead of the ECR registry (a VPC
    /// endpoint, a test registry); Lambda still gets the ECR image URI by digest.
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,
}

impl AwsArgs {
    /// The AWS options for these flags.
    pub fn aws(&self) -> AwsOptions {
        AwsOptions {
            profile: self.aws_profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            ..AwsOptions::default()
        }
    }
}

/// The library's selection for these flags.
/// What the commands that build nothing (`promote`, `rollback`, `prune`, `doctor`) take: the
/// functions and architectures, and how AWS is reached.
#[derive(Debug, Clone, Args)]
pub struct DeployedArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl DeployedArgs {
    /// The plan of the selected functions and architectures (no side effects but
    /// `cargo metadata`).
    pub fn plan(&self) -> Result<Plan, Error> {
        config::plan(
            &PlanRequest {
                selection: selection(&self.selection),
                overrides: overrides(&self.target),
                ..Default::default()
            }
            .with_process_env(),
        )
    }
}

pub fn selection(s: &SelectionArgs) -> Selection {
    Selection {
        manifest_path: s.manifest_path.clone(),
        packages: s.packages.clone(),
        workspace: s.workspace,
        exclude: s.exclude.clone(),
        bins: s.bins.clone(),
    }
}

/// The library's command-line overrides for these flags.
pub fn overrides(t: &TargetArgs) -> Overrides {
    Overrides {
        arch: t.arch.clone(),
        libc: t.libc,
        compiler: t.compiler,
        base_image: t.base_image.clone(),
    }
}
