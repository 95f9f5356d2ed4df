//! The pipeline, owned by the library: the command-line tool and every `xtask` run the same
//! code. A [`Pipeline`] holds the plan; each stage method takes the previous stage's
//! [`Batch`] (every surviving function with its spec and its result so far) and returns the
//! next one:
//!
//! ```text
//! compile() -> Batch<Artifact> -> image() -> Batch<BuiltImage> -> push()   -> Batch<(BuiltImage, PushedImage)>
//!                                                              \-> deploy() -> Batch<DeployOutcome>
//!                                                              \-> test()   -> Batch<Vec<Invocation>>
//! ```
//!
//! Keep-going everywhere: a function that fails a stage drops out of the batch with a typed
//! failure (function, architecture, stage), reported at once as an `error` event, and the
//! others go on; [`Pipeline::finish`] summarizes every planned function. Parallelism belongs
//! here too: images are built on every core, pushes and deploys run four at a time (the
//! architectures of one function one after another, in their shared repository).
//!
//! Every stage reports to the caller's [`Sink`] as [`Event`]s.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cargo_metadata::camino::Utf8PathBuf;
use futures_util::StreamExt;
use serde::Serialize;

use crate::check::{self, Expectations};
use crate::compile::{self, Artifact, CompileOptions};
use crate::config::{FunctionSpec, Plan};
use crate::deploy::{self, DeployOptions, DeployOutcome};
use crate::emulate::FunctionSetup;
use crate::error::{Error, Result};
use crate::event::{ErrorEvent, Event, Sink};
use crate::image::{sbom, Builder, BuiltImage, Daemonless, ImageOptions};
use crate::oci::short;
use crate::progress::{Reporter, Stage, State};
use crate::publish::index::{self, IndexPushed};
use crate::publish::{Published, Publisher, PushedImage};
use crate::registry::RegistryOptions;
use crate::serve::{self, ServeOptions};
use crate::target::Arch;
use crate::testing::{self, Invocation, LocalRun, TestEvent};

/// How many things the pipeline does at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Images built at once (compressing layers is CPU-bound): every core by default.
    pub images: usize,
    /// Images pushed at once (network-bound): 4.
    pub pushes: usize,
    /// ECR repositories deployed to at once: 4.
    pub deploys: usize,
}

impl Default for Concurrency {
    fn default() -> Concurrency {
        Concurrency {
            images: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pushes: 4,
            deploys: 4,
        }
    }
}

/// Everything the stages need besides the plan.
#[derive(Clone)]
pub struct Options {
    /// Compiler options (`--no-build` among them).
    pub compile: CompileOptions,
    /// Who builds the images; the daemonless builder when `None`.
    pub builder: Option<Arc<dyn Builder>>,
    /// Image options (`SOURCE_DATE_EPOCH`), for the daemonless builder.
    pub image: ImageOptions,
    /// Check every image against Lambda's rules after building it (on by default; pushes
    /// and deploys refuse to go without it).
    pub check: bool,
    /// Local outputs written for every image in the image stage: docker-archives, copies in
    /// OCI layouts, loads into Docker.
    pub outputs: Vec<Arc<dyn Publisher>>,
    /// Registry client settings (base pulls, pushes).
    pub registry: RegistryOptions,
    /// How much runs at once.
    pub concurrency: Concurrency,
    /// Write an SPDX SBOM next to every image (`--sbom`), besides those whose configuration
    /// asks for one (`image.sbom`).
    pub sbom: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            compile: CompileOptions::default(),
            builder: None,
            image: ImageOptions::default(),
            check: true,
            outputs: Vec::new(),
            registry: RegistryOptions::default(),
            concurrency: Concurrency::default(),
            sbom: false,
        }
    }
}

impl Options {
    /// The defaults, with `SOURCE_DATE_EPOCH` and the `CARGO_LAMBDA_IMAGE_*` registry
    /// settings of the process environment.
    pub fn from_env() -> Options {
        Options {
            image: ImageOptions::from_env(),
            registry: RegistryOptions::from_env(),
            ..Options::default()
        }
    }
}

/// One surviving function and its result so far.
#[derive(Debug, Clone)]
pub struct Item<T> {
    /// The function.
    pub spec: Arc<FunctionSpec>,
    /// What the last stage made of it.
    pub value: T,
}

/// The functions that came through a stage, in plan order.
#[derive(Debug, Clone)]
pub struct Batch<T> {
    /// The items.
    pub items: Vec<Item<T>>,
}

impl<T> Batch<T> {
    /// How many functions came through.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none did.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The results, without their specs.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|i| &i.value)
    }
}

/// How a planned function ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every stage it went through passed.
    Ok,
    /// A dry run planned it.
    Planned,
    /// It failed a stage.
    Failed {
        /// The stage.
        stage: Stage,
        /// Why.
        message: String,
    },
}

/// One planned function in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryEntry {
    /// The function.
    pub function: String,
    /// Its architecture.
    pub arch: Arch,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every planned function and how it ended.
#[derive(Debug)]
pub struct Summary {
    /// In plan order.
    pub entries: Vec<SummaryEntry>,
    /// The error that says the run failed: the one function's own error when one function was
    /// planned, else how many of how many failed.
    error: Option<Error>,
}

impl Summary {
    /// How many functions failed.
    pub fn failures(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Failed { .. }))
            .count()
    }

    /// `Ok` when nothing failed, else the error that says so.
    pub fn into_result(self) -> Result<()> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// A function that failed a stage.
#[derive(Debug)]
struct Failure {
    function: String,
    arch: Arch,
    stage: Stage,
    error: Error,
}

/// The pipeline over one plan; see the module documentation.
pub struct Pipeline {
    plan: Plan,
    options: Options,
    sink: Arc<dyn Sink>,
    reporter: Reporter,
    builder: Arc<dyn Builder>,
    failures: Mutex<Vec<Failure>>,
    announced: AtomicBool,
    dry_run: AtomicBool,
}

impl Pipeline {
    /// A pipeline for `plan`, reporting to `sink`.
    pub fn new(plan: Plan, options: Options, sink: Arc<dyn Sink>) -> Pipeline {
        let events = sink.clone();
        let reporter = Reporter::new(move |p| events.emit(&Event::Progress(p)));
        let builder = options.builder.clone().unwrap_or_else(|| {
            Arc::new(Daemonless::new(
                options.image.clone(),
                options.registry.clone(),
            ))
        });
        Pipeline {
            plan,
            options,
            sink,
            reporter,
            builder,
            failures: Mutex::new(Vec::new()),
            announced: AtomicBool::new(false),
            dry_run: AtomicBool::new(false),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Where the stages report progress (the sink, as `progress` events).
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Sends an event to the sink.
    pub fn emit(&self, event: Event) {
        self.sink.emit(&event);
    }

    /// Records that a function failed a stage, and reports it at once; it drops out.
    pub fn fail(&self, spec: &FunctionSpec, stage: Stage, error: Error) {
        self.reporter
            .stage(&spec.name, spec.arch, stage, State::Failed, None);
        self.emit(Event::Error(ErrorEvent::of_function(
            &spec.name, spec.arch, stage, &error,
        )));
        if let Ok(mut failures) = self.failures.lock() {
            failures.push(Failure {
                function: spec.name.clone(),
                arch: spec.arch,
                stage,
                error,
            });
        }
    }

    /// Emits the `plan` event, once.
    pub fn announce(&self) {
        if !self.announced.swap(true, Ordering::SeqCst) {
            self.emit(Event::Plan {
                plan: self.plan.clone(),
                commands: None,
            });
        }
    }

    /// A dry run of the build: emits the plan with the compiler commands it would run, and
    /// does nothing. The summary then says `planned`.
    pub fn dry_run(&self) {
        self.announced.store(true, Ordering::SeqCst);
        self.dry_run.store(true, Ordering::SeqCst);
        self.emit(Event::Plan {
            plan: self.plan.clone(),
            commands: Some(compile::commands(&self.plan, &self.options.compile)),
        });
    }

    /// Marks the run as a dry run (a deploy that only planned), for the summary.
    pub fn mark_dry_run(&self) {
        self.dry_run.store(true, Ordering::SeqCst);
    }

    /// Stage 2: compiles every planned function (or, with `--no-build`, takes the bootstraps
    /// in place).
    pub async fn compile(&self) -> Batch<Artifact> {
        self.announce();
        for spec in &self.plan.functions {
            self.started(spec, Stage::Compile);
        }
        // The commands are verbose lines: a renderer shows them with `-v`.
        if !self.options.compile.no_build {
            for command in compile::commands(&self.plan, &self.options.compile) {
                self.reporter
                    .verbose(format!("  command: {}", command.display()));
                if let Some(image) = &command.cross_image {
                    self.reporter.verbose(format!("  {}", image.display()));
                }
            }
        }
        let (plan, options, reporter) = (
            self.plan.clone(),
            self.options.compile.clone(),
            self.reporter.clone(),
        );
        // Compiling blocks on child processes; keep it off the async workers.
        let outcomes =
            tokio::task::spawn_blocking(move || compile::compile_each(&plan, &options, &reporter))
                .await;
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let message = e.to_string();
                for spec in &self.plan.functions {
                    let error = Error::TaskFailed {
                        task: "compile",
                        message: message.clone(),
                    };
                    self.fail(spec, Stage::Compile, error);
                }
                return Batch { items: Vec::new() };
            }
        };
        let mut items = Vec::new();
        for (spec, outcome) in outcomes {
            match outcome {
                Ok(artifact) => {
                    self.done(&spec, Stage::Compile, None);
                    self.emit(Event::Compiled {
                        artifact: artifact.clone(),
                    });
                    items.push(Item {
                        spec: Arc::new(spec),
                        value: artifact,
                    });
                }
                Err(e) => self.fail(&spec, Stage::Compile, e),
            }
        }
        Batch { items }
    }

    /// Stage 3 and 4: builds the image of every compiled function (several at once), checks it
    /// against Lambda's rules (unless turned off) and writes the local outputs. Results are
    /// reported in plan order, each as soon as it and those before it are done.
    pub async fn image(&self, compiled: Batch<Artifact>) -> Batch<BuiltImage> {
        let limit = self.options.concurrency.images.max(1);
        let mut results = futures_util::stream::iter(compiled.items)
            .map(|item| async move {
                let outcome = self.image_one(&item.spec, &item.value).await;
                (item.spec, outcome)
            })
            .buffered(limit);
        let mut items = Vec::new();
        while let Some((spec, outcome)) = results.next().await {
            match outcome {
                Ok((image, events)) => {
                    for event in events {
                        self.emit(event);
                    }
                    items.push(Item { spec, value: image });
                }
                Err(failed) => {
                    let (stage, events, error) = *failed;
                    for event in events {
                        self.emit(event);
                    }
                    self.fail(&spec, stage, error);
                }
            }
        }
        Batch { items }
    }

    /// Builds, checks and outputs one image, returning it with the events to report (its
    /// check and image events), or the failure with the events that came before it.
    async fn image_one(
        &self,
        spec: &FunctionSpec,
        artifact: &Artifact,
    ) -> std::result::Result<(BuiltImage, Vec<Event>), Box<(Stage, Vec<Event>, Error)>> {
        self.started(spec, Stage::Image);
        let image = self
            .builder
            .build(spec, artifact.path.as_std_path(), &self.reporter)
            .await
            .map_err(|e| Box::new((Stage::Image, Vec::new(), e)))?;
        let mut detail = format!(
            "Image {}:{} ({}) {}",
            image.repository,
            image.tag,
            image.arch,
            short(&image.digest)
        );
        if !spec.extensions.is_empty() {
            let names: Vec<&str> = spec.extensions.iter().map(|e| e.name.as_str()).collect();
            detail.push_str(&format!(", extensions {}", names.join(", ")));
        }
        let sbom = self
            .sbom(spec, &image)
            .await
            .map_err(|e| Box::new((Stage::Image, Vec::new(), e)))?;
        self.done(spec, Stage::Image, Some(detail));
        let mut events = Vec::new();
        if self.options.check {
            self.started(spec, Stage::Check);
            let report = self
                .check_one(spec, &image)
                .await
                .map_err(|e| Box::new((Stage::Check, Vec::new(), e)))?;
            events.push(Event::Check {
                report: report.clone(),
            });
            if let Err(e) = report.into_result() {
                return Err(Box::new((Stage::Check, events, e)));
            }
            self.done(spec, Stage::Check, None);
        }
        match self.outputs(spec, &image, sbom).await {
            Ok(event) => {
                events.push(event);
                Ok((image, events))
            }
            Err(e) => Err(Box::new((Stage::Output, events, e))),
        }
    }

    /// Checks one image against Lambda's rules; an unreadable image is an error, a broken rule
    /// a finding in the report.
    async fn check_one(&self, spec: &FunctionSpec, image: &BuiltImage) -> Result<check::Report> {
        let (dir, expect) = (
            image.layout_dir().to_path_buf(),
            Expectations::for_spec(spec),
        );
        // Layers checked before (a base, unchanged includes) are known by their digests.
        let cache = self.options.image.cache_dir();
        tokio::task::spawn_blocking(move || check::check_layout_cached(&dir, &expect, &cache))
            .await
            .map_err(|e| Error::TaskFailed {
                task: "check",
                message: e.to_string(),
            })?
    }

    /// Writes the SBOM of one image when it is asked for (`--sbom`, or `image.sbom`), and
    /// returns where.
    async fn sbom(&self, spec: &FunctionSpec, image: &BuiltImage) -> Result<Option<Utf8PathBuf>> {
        if !(self.options.sbom || spec.image.sbom) {
            return Ok(None);
        }
        let (spec, image, build) = (spec.clone(), image.clone(), self.plan.build.clone());
        let created = self.options.image.source_date_epoch.unwrap_or(0);
        let path = tokio::task::spawn_blocking(move || sbom::write(&spec, &build, &image, created))
            .await
            .map_err(|e| Error::TaskFailed {
                task: "sbom",
                message: e.to_string(),
            })??;
        self.reporter.line(format!("✓ SBOM {path}"));
        Ok(Some(path))
    }

    /// Writes the local outputs of one image and returns its `image` event.
    async fn outputs(
        &self,
        spec: &FunctionSpec,
        image: &BuiltImage,
        sbom: Option<Utf8PathBuf>,
    ) -> Result<Event> {
        let (mut docker_archive, mut loaded, mut layouts) = (None, None, Vec::new());
        for output in &self.options.outputs {
            let published = output.publish(spec, image, &self.reporter).await?;
            for one in published.all() {
                match one {
                    Published::DockerArchive { path } => docker_archive = Some(path.clone()),
                    Published::Loaded { name } => loaded = Some(name.clone()),
                    Published::Layout { dir, .. } => layouts.push(dir.clone()),
                    Published::Pushed(_) | Published::Many(_) => {}
                }
            }
        }
        Ok(Event::Image {
            image: image.clone(),
            docker_archive,
            loaded,
            layouts,
            sbom,
        })
    }

    /// Stage 6: pushes every image with `publisher` (a registry, or ECR), a few at a time,
    /// reporting each as a `pushed` event: each image with what its push did.
    pub async fn push(
        &self,
        images: &Batch<BuiltImage>,
        publisher: &dyn Publisher,
    ) -> Batch<(BuiltImage, PushedImage)> {
        let limit = self.options.concurrency.pushes.max(1);
        let pushed = |(_, pushed): &(BuiltImage, PushedImage)| {
            vec![Event::Pushed {
                image: pushed.clone(),
            }]
        };
        self.each(
            images,
            limit,
            Stage::Push,
            pushed,
            |spec, image| async move {
                let published = publisher.publish(&spec, image, &self.reporter).await?;
                let pushed = published.pushed().cloned().ok_or_else(|| Error::Registry {
                    action: "push".into(),
                    reference: publisher.destination(),
                    message: "this destination is not a registry".into(),
                    help: "push to a registry (`--registry HOST`), or use `image --output` for local outputs".into(),
                })?;
                Ok((image.clone(), pushed))
            },
        )
        .await
    }

    /// Pushes one OCI image index per repository over its pushed per-architecture images,
    /// under `tag` (for Docker and Kubernetes; Lambda never gets an index).
    pub async fn index(
        &self,
        pushed: &Batch<(BuiltImage, PushedImage)>,
        registry: &str,
        tag: &str,
    ) -> Result<Vec<IndexPushed>> {
        let mut by_repository: BTreeMap<&str, Vec<PushedImage>> = BTreeMap::new();
        for item in &pushed.items {
            by_repository
                .entry(item.spec.image.repository.as_str())
                .or_default()
                .push(item.value.1.clone());
        }
        let mut indexes = Vec::new();
        for (repository, images) in by_repository {
            let options = &self.options.registry;
            let index =
                index::push_index(&images, registry, repository, tag, options, &self.reporter)
                    .await?;
            self.emit(Event::Index {
                index: index.clone(),
            });
            indexes.push(index);
        }
        Ok(indexes)
    }

    /// Stage 7: deploys every image, as its function's Lambda name, several ECR repositories
    /// at once; the architectures of one function, which share a repository, one after
    /// another, so the repository is created once.
    pub async fn deploy(
        &self,
        images: &Batch<BuiltImage>,
        options: &DeployOptions,
    ) -> Batch<DeployOutcome> {
        if options.dry_run {
            self.mark_dry_run();
        }
        let mut groups: BTreeMap<&str, Vec<(usize, &Item<BuiltImage>)>> = BTreeMap::new();
        for (position, item) in images.items.iter().enumerate() {
            groups
                .entry(item.spec.image.repository.as_str())
                .or_default()
                .push((position, item));
        }
        let limit = self.options.concurrency.deploys.max(1);
        let mut results: Vec<(usize, Arc<FunctionSpec>, Result<DeployOutcome>)> =
            futures_util::stream::iter(groups.into_values())
                .map(|group| async move {
                    let mut done = Vec::new();
                    for (position, item) in group {
                        self.started(&item.spec, Stage::Deploy);
                        let outcome =
                            deploy::deploy(&item.spec, &item.value, options, &self.reporter).await;
                        done.push((position, item.spec.clone(), outcome));
                    }
                    done
                })
                .buffer_unordered(limit)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .flatten()
                .collect();
        // Reported in plan order, whichever finished first.
        results.sort_by_key(|(position, _, _)| *position);
        let mut items = Vec::new();
        for (_, spec, outcome) in results {
            match outcome {
                Ok(outcome) => {
                    self.done(&spec, Stage::Deploy, None);
                    self.emit(match &outcome {
                        DeployOutcome::Deployed(d) => Event::Deployed {
                            deployment: d.clone(),
                        },
                        planned => Event::Planned {
                            deployment: planned.clone(),
                        },
                    });
                    items.push(Item {
                        spec,
                        value: outcome,
                    });
                }
                Err(e) => self.fail(&spec, Stage::Deploy, e),
            }
        }
        Batch { items }
    }

    /// Stage 5: runs every image under the emulator with `runner` and sends it `events` (or,
    /// when none are given, the events of its `test.events` configuration), one function
    /// after another, reporting each invocation as it completes.
    pub async fn test(
        &self,
        images: &Batch<BuiltImage>,
        events: &[TestEvent],
        local: &LocalRun,
    ) -> Batch<Vec<Invocation>> {
        let none = |_: &Vec<Invocation>| Vec::new();
        let ran = self
            .each(images, 1, Stage::Test, none, |spec, image| async move {
                let events = testing::events_for(&spec, events)?;
                let emit = |invocation: &Invocation| {
                    self.emit(Event::Invocation {
                        invocation: invocation.clone(),
                    })
                };
                testing::run(&spec, image, &events, local, &self.reporter, emit).await
            })
            .await;
        // A function whose invocations failed (or did not match) failed its test, as the
        // summary must say; its invocations stay in the batch for the caller to count.
        for item in &ran.items {
            let failed = item.value.iter().filter(|i| !i.passed()).count();
            if failed > 0 {
                let total = item.value.len();
                self.fail(&item.spec, Stage::Test, Error::TestFailed { failed, total });
            }
        }
        ran
    }

    /// Stage 5, served: makes every image ready to serve under one emulator (see
    /// [`serve::setup`]); a function whose runner cannot start drops out.
    pub async fn serve_setups(
        &self,
        images: &Batch<BuiltImage>,
        options: &ServeOptions,
    ) -> Batch<FunctionSetup> {
        let none = |_: &FunctionSetup| Vec::new();
        self.each(images, 1, Stage::Test, none, |spec, image| async move {
            serve::setup(&spec, image, options, &self.reporter).await
        })
        .await
    }

    /// Runs `work` for every item, `limit` at once. Outcomes are reported in plan order, each
    /// as soon as it and those before it are done: a success's `events`, or the failure (the
    /// function drops out).
    async fn each<'a, T, U, F, Fut, E>(
        &'a self,
        batch: &'a Batch<T>,
        limit: usize,
        stage: Stage,
        events: E,
        work: F,
    ) -> Batch<U>
    where
        F: Fn(Arc<FunctionSpec>, &'a T) -> Fut,
        Fut: Future<Output = Result<U>> + 'a,
        E: Fn(&U) -> Vec<Event>,
    {
        let work = &work;
        let mut results = futures_util::stream::iter(&batch.items)
            .map(|item| async move {
                self.started(&item.spec, stage);
                (
                    item.spec.clone(),
                    work(item.spec.clone(), &item.value).await,
                )
            })
            .buffered(limit.max(1));
        let mut items = Vec::new();
        while let Some((spec, result)) = results.next().await {
            match result {
                Ok(value) => {
                    self.done(&spec, stage, None);
                    for event in events(&value) {
                        self.emit(event);
                    }
                    items.push(Item { spec, value });
                }
                Err(e) => self.fail(&spec, stage, e),
            }
        }
        Batch { items }
    }

    fn started(&self, spec: &FunctionSpec, stage: Stage) {
        self.reporter
            .stage(&spec.name, spec.arch, stage, State::Started, None);
    }

    fn done(&self, spec: &FunctionSpec, stage: Stage, detail: Option<String>) {
        self.reporter
            .stage(&spec.name, spec.arch, stage, State::Done, detail);
    }

    /// Every planned function and how it ended, and the error that says whether the run
    /// failed.
    pub fn finish(self) -> Summary {
        let mut failures = self
            .failures
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let ok = if self.dry_run.load(Ordering::SeqCst) {
            Outcome::Planned
        } else {
            Outcome::Ok
        };
        let entries: Vec<SummaryEntry> = self
            .plan
            .functions
            .iter()
            .map(|f| SummaryEntry {
                function: f.name.clone(),
                arch: f.arch,
                outcome: match failures
                    .iter()
                    .find(|x| x.function == f.name && x.arch == f.arch)
                {
                    Some(x) => Outcome::Failed {
                        stage: x.stage,
                        message: x.error.without_function(),
                    },
                    None => ok.clone(),
                },
            })
            .collect();
        let error = match failures.len() {
            0 => None,
            1 if entries.len() <= 1 => Some(failures.remove(0).error),
            failed => Some(Error::SomeFailed {
                failed,
                total: entries.len(),
            }),
        };
        Summary { entries, error }
    }
}

/// How far [`run`] goes.
#[derive(Clone)]
pub enum Goal {
    /// Compile.
    Build,
    /// Compile, build, check and write the local outputs.
    Image,
    /// ... then push every image (to a registry, or ECR).
    Push(Arc<dyn Publisher>),
    /// ... then deploy every image.
    Deploy(Box<DeployOptions>),
}

/// Runs the pipeline for `plan` up to `goal` and summarizes it: the whole of `build`,
/// `image`, `push` and `deploy` in one call, for callers that need nothing in between.
pub async fn run(plan: Plan, options: Options, goal: Goal, sink: Arc<dyn Sink>) -> Summary {
    let pipeline = Pipeline::new(plan, options, sink);
    let compiled = pipeline.compile().await;
    if !matches!(goal, Goal::Build) {
        let images = pipeline.image(compiled).await;
        match &goal {
            Goal::Push(publisher) => {
                pipeline.push(&images, publisher.as_ref()).await;
            }
            Goal::Deploy(options) => {
                pipeline.deploy(&images, options).await;
            }
            Goal::Build | Goal::Image => {}
        }
    }
    pipeline.finish()
}
