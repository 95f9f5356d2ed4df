//! The `cargo-lambda-image` binary: parses the command line, calls the library, prints results
//! on stdout (human or JSON) and progress and errors on stderr.

mod cli;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;

use cargo_lambda_image::check::{self, Expectations};
use cargo_lambda_image::compile::{self, Artifact, CompileOptions};
use cargo_lambda_image::image::{self, BuiltImage, ImageOptions};
use cargo_lambda_image::progress::{Mode, Progress};
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::{config, push, Error, FunctionSpec, Plan};

use cli::{
    BuildArgs, Builder, CheckArgs, Cli, ColorChoice, Commands, DeployArgs, EmulatorArgs, ImageArgs,
    MessageFormat, NewArgs, PushArgs, Runner, TemplateArgs, TemplateFormatArg, TestArgs,
};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::args_from_env());
    let color = match cli.global.color {
        ColorChoice::Auto => {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
        ColorChoice::Always => true,
        ColorChoice::Never => false,
    };
    let _ = miette::set_hook(Box::new(move |_| {
        // Wrapping would split file paths across lines, and paths must stay copy-pastable.
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .wrap_lines(false)
                .build(),
        )
    }));
    let ctx = Ctx {
        planned: Default::default(),
        failures: Default::default(),
        stage: match &cli.command {
            Commands::Build(_) => "build",
            Commands::Image(_) => "image",
            Commands::Check(_) => "check",
            Commands::Push(_) => "push",
            Commands::Test(_) => "test",
            Commands::Emulator(_) => "emulator",
            Commands::Deploy(_) => "deploy",
            Commands::Template(_) => "template",
            Commands::New(_) => "new",
        },
        out: Output {
            format: cli.global.message_format,
        },
        progress: if cli.global.quiet {
            Progress::new(Mode::Quiet)
        } else {
            Progress::auto()
        },
        color,
        verbose: cli.global.verbose,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let command = async {
            match &cli.command {
                Commands::Build(args) => build(args, &ctx).await.map(|_| ()),
                Commands::Image(args) => images(args, &ctx).await.map(|_| ()),
                Commands::Check(args) => check_command(args, &ctx),
                Commands::Push(args) => push_command(args, &ctx).await,
                Commands::Test(args) => test_command(args, &ctx).await,
                Commands::Emulator(args) => emulator_command(args, &ctx).await,
                Commands::Deploy(args) => deploy_command(args, &ctx).await,
                Commands::Template(args) => template_command(args, &ctx).await,
                Commands::New(args) => new_command(args, &ctx),
            }
        };
        // Ctrl-C stops the command where it is: dropping it (and, below, the runtime with its
        // tasks) removes test containers and sandboxes. `emulator` handles Ctrl-C itself.
        let interruptible = !matches!(cli.command, Commands::Emulator(_));
        tokio::select! {
            result = command => result,
            _ = tokio::signal::ctrl_c(), if interruptible => Err(Error::Interrupted),
        }
    });
    // Drops every task still running, which runs their cleanup (container removal) before
    // the process exits; a blocking task (a compiler run) gets a while to finish.
    runtime.shutdown_timeout(std::time::Duration::from_secs(30));
    if matches!(result, Err(Error::Interrupted)) {
        ctx.progress.line("Interrupted; cleaned up");
        return ExitCode::from(130);
    }
    let result = result.and_then(|()| ctx.summary());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ctx.out.error(&err);
            eprintln!("{:?}", miette::Report::new(err));
            ExitCode::FAILURE
        }
    }
}

/// What every command needs.
struct Ctx {
    out: Output,
    /// Every planned (function, arch), for the summary.
    planned: std::sync::Mutex<Vec<(String, cargo_lambda_image::target::Arch)>>,
    /// Functions that failed a stage; the others went on.
    failures: std::sync::Mutex<Vec<Failure>>,
    /// The command's own stage: its results go to stdout, earlier stages' to stderr.
    stage: &'static str,
    progress: Progress,
    color: bool,
    verbose: u8,
}

/// Where results go: stdout, in the chosen format.
struct Output {
    format: MessageFormat,
}

/// A function that failed a stage.
struct Failure {
    function: String,
    arch: cargo_lambda_image::target::Arch,
    stage: &'static str,
    error: Error,
}

impl Ctx {
    /// Records that a function failed a stage: reported now, summarized at the end.
    fn fail(&self, spec: &cargo_lambda_image::FunctionSpec, stage: &'static str, error: Error) {
        use miette::Diagnostic;
        self.out.json(json!({
            "reason": "error",
            "function": spec.name,
            "arch": spec.arch,
            "stage": stage,
            "code": error.code().map(|c| c.to_string()),
            "message": error.to_string(),
            "help": error.help().map(|h| h.to_string()),
        }));
        self.progress.line(&format!(
            "✗ {} ({}) failed to {stage}: {error}",
            spec.name, spec.arch
        ));
        if let Ok(mut failures) = self.failures.lock() {
            failures.push(Failure {
                function: spec.name.clone(),
                arch: spec.arch,
                stage,
                error,
            });
        }
    }

    /// After the command: with several functions, a summary of each on stderr; with any
    /// failure, the error that makes the exit status say so.
    fn summary(&self) -> Result<(), Error> {
        let planned = self.planned.lock().map(|p| p.clone()).unwrap_or_default();
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        if planned.len() > 1 || !failures.is_empty() {
            self.progress.line("Summary:");
            for (function, arch) in &planned {
                match failures
                    .iter()
                    .find(|f| &f.function == function && f.arch == *arch)
                {
                    Some(f) => self.progress.line(&format!(
                        "  ✗ {function:<24} {arch:<7} failed to {}: {}",
                        f.stage, f.error
                    )),
                    None => self
                        .progress
                        .line(&format!("  ✓ {function:<24} {arch:<7} ok")),
                }
            }
        }
        if failures.len() == 1 && planned.len() <= 1 {
            return Err(failures.remove(0).error);
        }
        if !failures.is_empty() {
            return Err(Error::SomeFailed {
                failed: failures.len(),
                total: planned.len(),
            });
        }
        Ok(())
    }

    /// A human-readable result line of `stage`: stdout if it is this command's stage, else
    /// a progress line on stderr.
    fn result(&self, stage: &str, line: &str) {
        if stage == self.stage {
            self.out.human(line);
        } else if !self.out.is_json() {
            self.progress.line(line);
        }
    }
}

impl Output {
    fn json(&self, value: serde_json::Value) {
        if self.is_json() {
            let _ = writeln!(std::io::stdout().lock(), "{value}");
        }
    }

    fn human(&self, line: &str) {
        if !self.is_json() {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    fn error(&self, err: &Error) {
        use miette::Diagnostic;
        self.json(json!({
            "reason": "error",
            "code": err.code().map(|c| c.to_string()),
            "message": err.to_string(),
            "help": err.help().map(|h| h.to_string()),
        }));
    }
}

/// `build`: plan and compile. Returns `None` for a dry run.
async fn build(args: &BuildArgs, ctx: &Ctx) -> Result<Option<(Plan, Vec<Artifact>)>, Error> {
    // `deploy --dry-run` builds the image (a local, harmless step) so that the AWS calls can
    // be planned against its digest; only the calls are left out.
    let dry_run = args.dry_run && ctx.stage != "deploy";
    let mut plan = config::plan(&args.plan_request())?;
    if let Ok(mut planned) = ctx.planned.lock() {
        *planned = plan
            .functions
            .iter()
            .map(|f| (f.name.clone(), f.arch))
            .collect();
    }
    let options = CompileOptions {
        color: Some(if ctx.color { "always" } else { "never" }.to_string()),
        install_targets: !args.compile.no_install_targets,
    };
    if dry_run || ctx.verbose > 0 {
        for cmd in compile::commands(&plan, &options) {
            ctx.progress.line(&format!("  command: {}", cmd.display()));
        }
    }
    let mut event = json!({"reason": "plan", "plan": plan});
    if dry_run {
        event["commands"] = json!(compile::commands(&plan, &options));
    }
    ctx.out.json(event);
    if dry_run {
        for f in &plan.functions {
            ctx.out.human(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                f.name, f.arch, f.target, f.compiler, f.base_image.reference, f.artifact
            ));
        }
        return Ok(None);
    }
    // Compiling blocks on child processes; keep it off the async workers.
    let outcomes = if args.compile.no_build {
        plan.functions.iter().map(compile::prebuilt).collect()
    } else {
        let plan = plan.clone();
        let progress = ctx.progress.clone();
        tokio::task::spawn_blocking(move || compile::compile_each(&plan, &options, &progress))
            .await
            .map_err(|e| Error::Metadata {
                message: format!("the compile task failed: {e}"),
            })?
    };
    // Functions that did not compile drop out of the plan; the others go on.
    let mut kept = Vec::new();
    let mut artifacts = Vec::new();
    for (spec, outcome) in plan.functions.iter().zip(outcomes) {
        match outcome {
            Ok(artifact) => {
                kept.push(spec.clone());
                artifacts.push(artifact);
            }
            Err(e) => ctx.fail(spec, "compile", e),
        }
    }
    plan.functions = kept;
    for a in &artifacts {
        ctx.out.json(json!({"reason": "compiled", "artifact": a}));
        let linkage = match (&a.elf.interpreter, a.elf.max_glibc) {
            (None, _) => "static".to_string(),
            (Some(_), Some(v)) => format!("dynamic, GLIBC_{v}"),
            (Some(_), None) => "dynamic".to_string(),
        };
        ctx.result(
            "build",
            &format!(
                "{}\t{}\t{}\t{:.1} MB\t{}",
                a.function,
                a.arch,
                a.path,
                a.size as f64 / 1_048_576.0,
                linkage
            ),
        );
    }
    Ok(Some((plan, artifacts)))
}

/// `image`: build, assemble, check, and write the requested outputs. A function that fails
/// drops out; the others go on.
async fn images(args: &ImageArgs, ctx: &Ctx) -> Result<Option<(Plan, Vec<BuiltImage>)>, Error> {
    let archive = match &args.output {
        None => None,
        Some(spec) => match spec.split_once('=') {
            Some(("docker-archive", file)) if !file.is_empty() => Some(file.to_string()),
            _ => {
                return Err(Error::InvalidValue {
                    source_: Box::new(cargo_lambda_image::error::Source::Cli {
                        flag: "--output".into(),
                    }),
                    key: "output".into(),
                    message: format!("`{spec}` is not an output"),
                    help: "write --output docker-archive=FILE (the OCI layout is always written)"
                        .into(),
                })
            }
        },
    };
    if args.dockerfile.is_some() && args.builder != Builder::Docker {
        return Err(Error::InvalidValue {
            source_: Box::new(cargo_lambda_image::error::Source::Cli {
                flag: "--dockerfile".into(),
            }),
            key: "dockerfile".into(),
            message: "a Dockerfile is only used by the Docker builder".into(),
            help: "add --builder docker, or drop --dockerfile".into(),
        });
    }
    let Some((mut plan, artifacts)) = build(&args.build, ctx).await? else {
        return Ok(None);
    };
    if let Some(file) = &archive {
        if plan.functions.len() > 1 && !(file.contains("{function}") && file.contains("{arch}")) {
            return Err(Error::InvalidValue {
                source_: Box::new(cargo_lambda_image::error::Source::Cli { flag: "--output".into() }),
                key: "output".into(),
                message: format!("{} images would be written to one file", plan.functions.len()),
                help: "put {function} and {arch} in the file name, e.g. docker-archive=images/{function}-{arch}.tar".into(),
            });
        }
    }
    let registry = RegistryOptions::from_env();
    let options = ImageOptions::from_env();
    let mut bases: std::collections::BTreeMap<
        (String, cargo_lambda_image::target::Arch),
        std::sync::Arc<image::base::ResolvedBase>,
    > = Default::default();
    let mut kept = Vec::new();
    let mut built_images = Vec::new();
    let mut jobs = Vec::new();
    for (spec, artifact) in plan.functions.iter().zip(&artifacts) {
        if args.builder == Builder::Docker {
            let built = image::docker_build::build(
                spec,
                artifact.path.as_std_path(),
                args.dockerfile.as_deref(),
                &registry.cache().join("blobs/sha256"),
                &ctx.progress,
            )
            .await;
            match built {
                Ok(img) => {
                    if let Some(img) = finish_image(args, archive.as_deref(), spec, img, ctx).await
                    {
                        kept.push(spec.clone());
                        built_images.push(img);
                    }
                }
                Err(e) => ctx.fail(spec, "build the image with Docker", e),
            }
            continue;
        }
        let key = (spec.base_image.reference.clone(), spec.arch);
        if !bases.contains_key(&key) {
            match image::resolve_base(&key.0, spec.arch, &registry, &ctx.progress).await {
                Ok(base) => {
                    bases.insert(key.clone(), std::sync::Arc::new(base));
                }
                Err(e) => {
                    ctx.fail(spec, "get the base image", e);
                    continue;
                }
            }
        }
        if let Some(base) = bases.get(&key) {
            jobs.push((spec.clone(), artifact.path.clone(), base.clone()));
        }
    }
    // Each image is independent and compressing its layer is most of the work: assemble them
    // on as many threads as the machine has, reporting in plan order.
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let assembled: Vec<_> =
        futures_util::stream::iter(jobs.into_iter().map(|(spec, path, base)| {
            let options = options.clone();
            async move {
                let job_spec = spec.clone();
                let result = tokio::task::spawn_blocking(move || {
                    image::assemble(&job_spec, path.as_std_path(), &base, &options)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Error::Metadata {
                        message: format!("the image task failed: {e}"),
                    })
                });
                (spec, result)
            }
        }))
        .buffered(parallelism)
        .collect()
        .await;
    for (spec, result) in assembled {
        match result {
            Ok(img) => {
                if let Some(img) = finish_image(args, archive.as_deref(), &spec, img, ctx).await {
                    kept.push(spec);
                    built_images.push(img);
                }
            }
            Err(e) => ctx.fail(&spec, "assemble the image", e),
        }
    }
    plan.functions = kept;
    Ok(Some((plan, built_images)))
}

/// After either builder: report the image, check it (unless --no-check), write the outputs.
/// `None` when the function failed (reported through `ctx.fail`).
async fn finish_image(
    args: &ImageArgs,
    archive: Option<&str>,
    spec: &cargo_lambda_image::FunctionSpec,
    img: BuiltImage,
    ctx: &Ctx,
) -> Option<BuiltImage> {
    ctx.progress.line(&format!(
        "✓ Image {}:{} ({}) {}",
        img.repository,
        img.tag,
        img.arch,
        cargo_lambda_image::registry::short(&img.digest)
    ));
    if !args.no_check {
        let checked = check::check_layout(img.layout_dir(), &Expectations::for_spec(spec))
            .and_then(|report| {
                ctx.out.json(json!({"reason": "check", "report": report}));
                report.into_result()
            });
        if let Err(e) = checked {
            ctx.fail(spec, "pass the Lambda checks", e);
            return None;
        }
    }
    match image_outputs(args, archive, &img, ctx).await {
        Ok(event) => {
            ctx.out.json(event);
            ctx.result(
                "image",
                &format!(
                    "{}\t{}\t{}:{}\t{}\t{}",
                    img.function, img.arch, img.repository, img.tag, img.digest, img.layout
                ),
            );
            Some(img)
        }
        Err(e) => {
            ctx.fail(spec, "write the image", e);
            None
        }
    }
}

/// Writes the docker-archive and loads into Docker, as asked; returns the `image` event.
async fn image_outputs(
    args: &ImageArgs,
    archive: Option<&str>,
    img: &BuiltImage,
    ctx: &Ctx,
) -> Result<serde_json::Value, Error> {
    let mut event = json!({"reason": "image", "image": img});
    if let Some(file) = archive {
        let path = PathBuf::from(
            file.replace("{function}", &img.function)
                .replace("{arch}", img.arch.lambda_name()),
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
        }
        image::write_docker_archive(img, &path)?;
        event["docker_archive"] = json!(path);
    }
    if args.load {
        let name = cargo_lambda_image::docker::load(img, &ctx.progress).await?;
        event["loaded"] = json!(name);
    }
    Ok(event)
}

/// `check`: check the selected functions' images (or one layout) and print every rule.
fn check_command(args: &CheckArgs, ctx: &Ctx) -> Result<(), Error> {
    let mut targets: Vec<(PathBuf, Expectations)> = Vec::new();
    if let Some(dir) = &args.layout {
        let arch = match args.target.arch.as_deref() {
            Some([one]) => *one,
            _ => {
                return Err(Error::InvalidValue {
                    source_: Box::new(cargo_lambda_image::error::Source::Cli {
                        flag: "--arch".into(),
                    }),
                    key: "arch".into(),
                    message: "--layout needs exactly one architecture".into(),
                    help: "add --arch x86_64 or --arch arm64".into(),
                })
            }
        };
        let base = config::BaseImage::from_reference(
            args.target
                .base_image
                .as_deref()
                .unwrap_or(config::resolve::DEFAULT_BASE_IMAGE),
        );
        targets.push((
            dir.clone(),
            Expectations {
                function: dir.display().to_string(),
                arch,
                base_glibc: base.glibc,
            },
        ));
    } else {
        let plan = config::plan(&args.plan_request())?;
        for spec in &plan.functions {
            let dir = image::layout_dir(spec).into_std_path_buf();
            if !dir.join("index.json").is_file() {
                return Err(Error::InvalidImage {
                    image: dir.display().to_string(),
                    message: format!(
                        "no image for `{}` ({}) has been built",
                        spec.name, spec.arch
                    ),
                    help: "run `cargo lambda-image image` with the same selection first".into(),
                });
            }
            targets.push((dir, Expectations::for_spec(spec)));
        }
    }
    let mut failed: Option<check::Report> = None;
    for (dir, expect) in targets {
        let report = check::check_layout(&dir, &expect)?;
        ctx.out.json(json!({"reason": "check", "report": report}));
        ctx.out
            .human(&format!("{} ({})", report.function, report.arch));
        for f in &report.findings {
            let mark = if f.passed { "✓" } else { "✗" };
            ctx.out
                .human(&format!("  {mark} {:<18} {}", f.rule, f.message));
            if !f.passed {
                ctx.out.human(&format!("    help: {}", f.help));
            }
        }
        if !report.passed() && failed.is_none() {
            failed = Some(report);
        }
    }
    match failed {
        Some(report) => report.into_result().map(|_| ()),
        None => Ok(()),
    }
}

/// `push`: image, check, push each image; the manifest goes last so no tag is half-written.
async fn push_command(args: &PushArgs, ctx: &Ctx) -> Result<(), Error> {
    if args.image.no_check {
        return Err(no_check_refused());
    }
    let Some((plan, built)) = images(&args.image, ctx).await? else {
        return Ok(());
    };
    let registry = RegistryOptions::from_env();
    let mut all_pushed = Vec::new();
    // Pushes are network-bound and independent: a few at a time, reported in plan order.
    let results: Vec<_> =
        futures_util::stream::iter(plan.functions.iter().zip(&built).map(|(spec, img)| {
            let registry = &registry;
            async move {
                let pushed = match push::target_for(img, &args.registry) {
                    Ok(target) => push::push(img, &target, registry, &ctx.progress).await,
                    Err(e) => Err(e),
                };
                (spec, img, pushed)
            }
        }))
        .buffered(PARALLEL_PUSHES)
        .collect()
        .await;
    for (spec, img, pushed) in results {
        let pushed = match pushed {
            Ok(p) => p,
            Err(e) => {
                ctx.fail(spec, "push", e);
                continue;
            }
        };
        ctx.out.json(json!({"reason": "pushed", "image": pushed}));
        ctx.out.human(&format!(
            "{}\t{}\t{}:{}\t{}",
            pushed.function, pushed.arch, pushed.repository, pushed.tag, pushed.image_uri
        ));
        all_pushed.push((img.repository.clone(), pushed));
    }
    if let Some(tag) = &args.index {
        push_indexes(&all_pushed, &args.registry, tag, &registry, ctx).await?;
    }
    Ok(())
}

/// How many images `push` sends at once.
const PARALLEL_PUSHES: usize = 4;

/// How many functions (of different ECR repositories) `deploy` deploys at once.
const PARALLEL_DEPLOYS: usize = 4;

/// `push --index TAG`: one OCI index per repository over its per-arch images.
async fn push_indexes(
    pushed: &[(String, push::PushedImage)],
    registry_host: &str,
    tag: &str,
    registry: &RegistryOptions,
    ctx: &Ctx,
) -> Result<(), Error> {
    let mut by_repository: std::collections::BTreeMap<&str, Vec<push::PushedImage>> =
        Default::default();
    for (repository, image) in pushed {
        by_repository
            .entry(repository)
            .or_default()
            .push(image.clone());
    }
    for (repository, images) in by_repository {
        let index = cargo_lambda_image::index::push_index(
            &images,
            registry_host,
            repository,
            tag,
            registry,
            &ctx.progress,
        )
        .await?;
        ctx.out.json(json!({"reason": "index", "index": index}));
        ctx.out.human(&format!(
            "index\t{}\t{}\t{}",
            index.reference,
            images
                .iter()
                .map(|i| i.arch.lambda_name())
                .collect::<Vec<_>>()
                .join(","),
            index.index_uri
        ));
    }
    Ok(())
}

/// `deploy`: image, check, then for each (function, arch) ECR, IAM and Lambda. A function
/// that fails drops out; the others go on.
async fn deploy_command(args: &DeployArgs, ctx: &Ctx) -> Result<(), Error> {
    use cargo_lambda_image::deploy::{self, DeployOptions, DeployOutcome};

    if args.image.no_check {
        return Err(no_check_refused());
    }
    let Some((plan, built)) = images(&args.image, ctx).await? else {
        return Ok(());
    };
    let options = DeployOptions {
        profile: args.aws_profile.clone(),
        region: args.region.clone(),
        endpoint_url: args.endpoint_url.clone(),
        registry_override: args.registry.clone(),
        registry: RegistryOptions::from_env(),
        dry_run: args.image.build.dry_run,
        ..Default::default()
    };
    // Names are decided among everything planned, so that an arm64 function keeps its
    // `-arm64` name even when its x86_64 twin failed to build.
    let planned = ctx.planned.lock().map(|p| p.clone()).unwrap_or_default();
    // Functions sharing an ECR repository (the architectures of one function) deploy one
    // after another, so that the repository is created once; the groups run in parallel.
    let mut groups: std::collections::BTreeMap<String, Vec<(usize, FunctionSpec, &BuiltImage)>> =
        Default::default();
    for (index, (spec, img)) in plan.functions.iter().zip(&built).enumerate() {
        let mut lambda_spec = spec.clone();
        lambda_spec.name = deploy::function_name_among(
            &spec.name,
            spec.arch,
            planned.iter().map(|(n, a)| (n.as_str(), *a)),
        );
        groups
            .entry(spec.image.repository.clone())
            .or_default()
            .push((index, lambda_spec, img));
    }
    let options = &options;
    let mut results: Vec<(usize, Result<DeployOutcome, Error>)> =
        futures_util::stream::iter(groups.into_values().map(|group| async move {
            let mut results = Vec::new();
            for (index, spec, img) in group {
                results.push((
                    index,
                    deploy::deploy(&spec, img, options, &ctx.progress).await,
                ));
            }
            results
        }))
        .buffer_unordered(PARALLEL_DEPLOYS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    results.sort_by_key(|(index, _)| *index);
    for (index, result) in results {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                // Reported under the planned name, which the summary lists.
                ctx.fail(&plan.functions[index], "deploy", e);
                continue;
            }
        };
        match &outcome {
            DeployOutcome::Planned {
                function,
                arch,
                image_uri,
                steps,
            } => {
                ctx.out
                    .json(json!({"reason": "planned", "deployment": outcome}));
                ctx.out
                    .human(&format!("{function}\t{arch}\t{image_uri}\t(dry run)"));
                for step in steps {
                    ctx.out.human(&format!(
                        "  {} {} {}: {}",
                        step.service, step.operation, step.target, step.summary
                    ));
                }
                if steps.is_empty() {
                    ctx.out.human("  nothing to change");
                }
            }
            DeployOutcome::Deployed(d) => {
                ctx.out.json(json!({"reason": "deployed", "deployment": d}));
                ctx.out.human(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    d.function,
                    d.arch,
                    d.arn,
                    d.version.as_deref().unwrap_or("$LATEST"),
                    d.digest,
                    if d.changed { "changed" } else { "unchanged" }
                ));
            }
        }
    }
    Ok(())
}

/// `template`: image (and push, with --push), then one template for every function.
async fn template_command(args: &TemplateArgs, ctx: &Ctx) -> Result<(), Error> {
    use cargo_lambda_image::template::{self, ImageRef, LaunchConfig, TemplateFormat};

    if args.image.no_check {
        return Err(no_check_refused());
    }
    let Some((plan, built)) = images(&args.image, ctx).await? else {
        return Ok(());
    };
    let registry = RegistryOptions::from_env();
    let mut functions = Vec::new();
    for (spec, img) in plan.functions.iter().zip(&built) {
        let image_ref = if args.push {
            let target = push::target_for(img, &args.registry)?;
            match push::push(img, &target, &registry, &ctx.progress).await {
                Ok(pushed) => {
                    ctx.out.json(json!({"reason": "pushed", "image": pushed}));
                    ImageRef::from_pushed(&pushed)
                }
                Err(e) => {
                    ctx.fail(spec, "push", e);
                    continue;
                }
            }
        } else {
            push::target_for(img, &args.registry)?;
            ImageRef::new(format!(
                "{}/{}@{}",
                args.registry, img.repository, img.digest
            ))?
            .with_arch(img.arch)
        };
        functions.push((
            spec.clone(),
            image_ref.with_launch(LaunchConfig::from_image(img)?),
        ));
    }
    if functions.is_empty() {
        // Every function failed; the summary says why.
        return Ok(());
    }
    let format = match args.format {
        TemplateFormatArg::Cloudformation => TemplateFormat::CloudFormation,
        TemplateFormatArg::Sam => TemplateFormat::Sam,
    };
    let Some(path) = &args.file else {
        if ctx.out.is_json() {
            let value = template::render(&functions, format)?;
            ctx.out
                .json(json!({"reason": "template", "format": format, "template": value}));
        } else {
            let text = template::render_string(&functions, format)?;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        return Ok(());
    };
    let text = template::render_string(&functions, format)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    }
    // Written whole, then renamed into place: never a half-written template.
    image::oci::write_atomic(path, text.as_bytes())?;
    ctx.out
        .json(json!({"reason": "template", "format": format, "path": path}));
    ctx.out.human(&path.display().to_string());
    ctx.progress.line(&format!(
        "✓ Wrote the {format} template for {} function(s) to {}",
        functions.len(),
        path.display()
    ));
    Ok(())
}

/// Pushing, deploying and templating always check the image first.
fn no_check_refused() -> Error {
    Error::InvalidValue {
        source_: Box::new(cargo_lambda_image::error::Source::Cli {
            flag: "--no-check".into(),
        }),
        key: "no-check".into(),
        message: "images are always checked before they are pushed or deployed".into(),
        help:
            "drop --no-check; `cargo lambda-image check` shows which rule fails and how to fix it"
                .into(),
    }
}

/// `test`: image, then every event through the emulator with the chosen runner.
async fn test_command(args: &TestArgs, ctx: &Ctx) -> Result<(), Error> {
    use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, LogSink};
    use cargo_lambda_image::testing;

    let Some((plan, built)) = images(&args.image, ctx).await? else {
        return Ok(());
    };
    let cli_events = testing::events_from_args(&args.events, &args.expect)?;
    let mut failed = 0;
    let mut total = 0;
    for (spec, img) in plan.functions.iter().zip(&built) {
        let events = if cli_events.is_empty() {
            testing::events_from_config(spec)?
        } else {
            cli_events.clone()
        };
        if events.is_empty() {
            return Err(Error::InvalidValue {
                source_: Box::new(cargo_lambda_image::error::Source::Cli { flag: "--event".into() }),
                key: "event".into(),
                message: format!("no events to send to `{}`", spec.name),
                help: "pass --event FILE|-|JSON, or set `events = [\"events/*.json\"]` in [package.metadata.lambda.test]".into(),
            });
        }
        let launcher = match launcher_for(args.runner, spec, img, ctx).await {
            Ok(launcher) => launcher,
            Err(e) => {
                ctx.fail(spec, "start", e);
                continue;
            }
        };
        let mut config = EmulatorConfig::from_spec(spec);
        config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let progress = ctx.progress.clone();
        config.logs = if ctx.verbose > 0 {
            LogSink::new(move |line| progress.line(&format!("  | {line}")))
        } else {
            LogSink::discard()
        };
        let emulator = match Emulator::start(config, launcher).await {
            Ok(emulator) => emulator,
            Err(e) => {
                ctx.fail(spec, "start the emulator", e);
                continue;
            }
        };
        for event in &events {
            let invocation = testing::invoke(&emulator.invoke_url(), spec, event).await;
            let invocation = match invocation {
                Ok(i) => i,
                Err(e) => {
                    emulator.shutdown().await;
                    return Err(e);
                }
            };
            total += 1;
            let mark = if invocation.passed() {
                "✓"
            } else {
                failed += 1;
                "✗"
            };
            ctx.progress.line(&format!(
                "{mark} {} ({}) {} -> {}{} in {} ms{}",
                spec.name,
                spec.arch,
                invocation.event,
                invocation.status,
                invocation
                    .function_error
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default(),
                invocation.duration_ms,
                match invocation.matches_expected {
                    Some(true) => ", as expected",
                    Some(false) => ", NOT as expected",
                    None => "",
                },
            ));
            ctx.out
                .json(json!({"reason": "invocation", "invocation": invocation}));
            if !ctx.out.is_json() {
                use std::io::IsTerminal;
                let text = if std::io::stdout().is_terminal() {
                    serde_json::to_string_pretty(&invocation.response).unwrap_or_default()
                } else {
                    invocation.response.to_string()
                };
                ctx.out.human(&text);
                if invocation.matches_expected == Some(false) {
                    ctx.progress.line(&format!(
                        "  expected: {}",
                        invocation.expected.clone().unwrap_or_default()
                    ));
                }
            }
        }
        emulator.shutdown().await;
    }
    if failed > 0 {
        return Err(Error::TestFailed { failed, total });
    }
    Ok(())
}

/// The launcher for a runner: how the emulator starts the function's runtime.
async fn launcher_for(
    runner: Runner,
    spec: &cargo_lambda_image::FunctionSpec,
    img: &BuiltImage,
    ctx: &Ctx,
) -> Result<std::sync::Arc<dyn cargo_lambda_image::emulate::Launcher>, Error> {
    use cargo_lambda_image::emulate::docker_runner::DockerLauncher;
    use cargo_lambda_image::emulate::rootfs;
    use cargo_lambda_image::emulate::sandbox::SandboxLauncher;
    use cargo_lambda_image::emulate::ProcessLauncher;
    use std::sync::Arc;

    let unpack = || rootfs::unpack(img.layout_dir(), &img.layout_dir().with_file_name("rootfs"));
    Ok(match runner {
        Runner::Process => {
            let bootstrap = spec.artifact.as_std_path().to_path_buf();
            if Some(spec.arch) == cargo_lambda_image::target::Arch::host() {
                Arc::new(ProcessLauncher::new(bootstrap))
            } else {
                Arc::new(
                    ProcessLauncher::new("qemu-aarch64-static")
                        .args([bootstrap.display().to_string()]),
                )
            }
        }
        Runner::Unconfined => Arc::new(SandboxLauncher::unconfined(unpack()?)?),
        Runner::Sandbox => match SandboxLauncher::new(unpack()?) {
            Ok(launcher) => Arc::new(launcher.ephemeral_storage_mb(spec.ephemeral_storage)),
            Err(Error::Sandbox { message, help }) => {
                // The default runner should work on any machine: without bubblewrap, a
                // scratch image still runs, only without Lambda's isolation. Say so.
                ctx.progress.line(&format!(
                    "warning: {message}; running `{}` without isolation (writable root, host /tmp, your user). {help}",
                    spec.name
                ));
                Arc::new(SandboxLauncher::unconfined(unpack()?)?)
            }
            Err(other) => return Err(other),
        },
        Runner::Docker => Arc::new(
            DockerLauncher::load(img, &ctx.progress)
                .await?
                .ephemeral_storage_mb(spec.ephemeral_storage),
        ),
    })
}

/// `emulator`: serve a local program until Ctrl-C.
async fn emulator_command(args: &EmulatorArgs, ctx: &Ctx) -> Result<(), Error> {
    use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, ProcessLauncher};
    use std::sync::Arc;

    let mut env = std::collections::BTreeMap::new();
    for pair in &args.env {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(Error::InvalidValue {
                source_: Box::new(cargo_lambda_image::error::Source::Cli {
                    flag: "--env".into(),
                }),
                key: "env".into(),
                message: format!("`{pair}` is not KEY=VALUE"),
                help: "write --env NAME=value".into(),
            });
        };
        env.insert(k.to_string(), v.to_string());
    }
    let config = EmulatorConfig {
        bind: args.bind,
        function_name: args.function_name.clone(),
        memory_mb: args.memory,
        timeout: std::time::Duration::from_secs(args.timeout),
        concurrency: args.concurrency.max(1),
        env,
        ..EmulatorConfig::default()
    };
    let (program, rest) = args
        .program
        .split_first()
        .unwrap_or((&args.function_name, &[]));
    let launcher = ProcessLauncher::new(program).args(rest.iter().cloned());
    let emulator = Emulator::start(config, Arc::new(launcher)).await?;
    ctx.out
        .json(json!({"reason": "emulator", "invoke_url": emulator.invoke_url()}));
    ctx.out.human(&emulator.invoke_url());
    ctx.progress.line(&format!(
        "Emulating `{}` at {}; Ctrl-C to stop",
        args.function_name,
        emulator.invoke_url()
    ));
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    Ok(())
}

/// `new`: scaffold a function crate.
fn new_command(args: &NewArgs, ctx: &Ctx) -> Result<(), Error> {
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = cargo_lambda_image::scaffold::new_function(&dir, &args.name)?;
    ctx.out
        .json(json!({"reason": "new", "path": dir, "files": files}));
    ctx.out.human(&dir.display().to_string());
    ctx.progress.line(&format!(
        "Created the function `{}`; try: cargo lambda-image test --manifest-path {}",
        args.name,
        dir.join("Cargo.toml").display()
    ));
    Ok(())
}
