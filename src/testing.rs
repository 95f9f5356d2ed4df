//! Stage 5: run a function's image under the emulator, invoke it with events and compare what
//! it answers. A [`Runner`] says where the function runs: the image's filesystem in a sandbox
//! (the default), the image in a Docker engine, unpacked without isolation, or the bare
//! bootstrap as a process.
//!
//! Events come from `--event` (a file, `-` for stdin, or inline JSON) or from the
//! configuration's `test.events` globs (relative to the package). An `events/x.json` may have
//! an `events/x.expected.json` next to it, which the response must equal (as JSON).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::aws::{AwsOptions, CredentialSource};
use crate::config::FunctionSpec;
use crate::emulate::docker_runner::DockerLauncher;
use crate::emulate::sandbox::SandboxLauncher;
use crate::emulate::{
    rootfs, Emulator, EmulatorConfig, ExecutionModel, Launcher, LogSink, ProcessLauncher,
};
use crate::envfile::{self, EnvVar};
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::progress::Reporter;
use crate::target::Arch;

/// Where a function runs locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runner {
    /// The image's filesystem, unpacked and run as Lambda does with bubblewrap: read-only
    /// root, tmpfs /tmp, non-root user, own PID namespace. Without bubblewrap, a scratch image
    /// still runs, unconfined, with a warning.
    #[default]
    Sandbox,
    /// The image in the Docker engine (`DOCKER_HOST`): read-only, tmpfs /tmp, non-root user.
    Docker,
    /// The image's filesystem unpacked, its entrypoint run directly, without isolation.
    Unconfined,
    /// The compiled bootstrap as a plain process on this machine (no image).
    Process,
}

/// What a local run asks for beyond the image and the metadata: where to run, variables from
/// `--env-file` and `--env`, `--region`, and whether the function gets AWS credentials. Turned
/// into a [`LocalRun`] by [`LocalOptions::resolve`] before anything builds, so that a bad env
/// file or missing credentials fail first.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Where functions run.
    pub runner: Runner,
    /// Dotenv files, read in order.
    pub env_files: Vec<PathBuf>,
    /// `KEY=VALUE` pairs (`--env`), applied after the files.
    pub env: Vec<String>,
    /// The region the function sees; overrides `deploy.region`.
    pub region: Option<String>,
    /// Credentials from aws-config's default chain, with this profile (`None`: the default
    /// profile); `None` gives the function no credentials at all, the default.
    pub aws_credentials: Option<AwsOptions>,
    /// The execution model, over the function's deploy settings.
    pub model: ModelOptions,
}

/// How Lambda runs the function's environments, as asked for over its deploy settings
/// (`deploy.snap-start`, `deploy.managed-instances.max-concurrency`, `deploy.tenant-isolation`);
/// `None` keeps the setting's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// SnapStart's restore lifecycle on or off.
    pub snap_start: Option<bool>,
    /// Managed Instances with this many requests per environment.
    pub max_concurrency: Option<u32>,
    /// Tenant isolation on or off.
    pub tenant_isolation: Option<bool>,
}

impl ModelOptions {
    /// Applies the options to `config`; `label` is whether the image carries the SnapStart
    /// label. Asking for both SnapStart and Managed Instances is an error naming the flags,
    /// as Lambda refuses the combination.
    pub fn apply(&self, config: &mut EmulatorConfig, label: bool) -> Result<()> {
        if self.snap_start == Some(true) && self.max_concurrency.is_some() {
            return Err(Error::EmulatorConfig {
                setting: "snap-start",
                message: "--snap-start and --max-concurrency ask for SnapStart on Lambda Managed Instances, which Lambda refuses: SnapStart is not supported on Managed Instances".into(),
                help: "drop one of --snap-start and --max-concurrency".into(),
            });
        }
        match (self.snap_start, self.max_concurrency) {
            (Some(true), _) => config.model = ExecutionModel::SnapStart { label },
            (_, Some(max_concurrency)) => {
                config.model = ExecutionModel::ManagedInstances { max_concurrency }
            }
            (Some(false), None) if matches!(config.model, ExecutionModel::SnapStart { .. }) => {
                config.model = ExecutionModel::OnDemand
            }
            _ => {}
        }
        if let Some(isolated) = self.tenant_isolation {
            config.tenant_isolation = isolated;
        }
        Ok(())
    }
}

impl LocalOptions {
    /// Reads the env files and, when asked to, resolves credentials once.
    pub async fn resolve(&self) -> Result<LocalRun> {
        let env = envfile::collect(&self.env_files, &self.env, "--env")?;
        let credentials = match &self.aws_credentials {
            Some(aws) => Some(CredentialSource::load(aws).await?),
            None => None,
        };
        Ok(LocalRun {
            runner: self.runner,
            env,
            region: self.region.clone(),
            credentials,
            model: self.model,
            tenant_id: None,
        })
    }
}

/// How functions run on this machine (see [`LocalOptions`]).
#[derive(Debug, Clone, Default)]
pub struct LocalRun {
    /// Where they run.
    pub runner: Runner,
    /// Variables that override the image's ENV and the metadata's `env`, a later one winning.
    pub env: Vec<EnvVar>,
    /// The region they see, over `deploy.region`.
    pub region: Option<String>,
    /// Where their AWS credentials come from; `None`: they get none.
    pub credentials: Option<CredentialSource>,
    /// The execution model, over the functions' deploy settings.
    pub model: ModelOptions,
    /// The tenant every invocation names (`X-Amz-Tenant-Id`), for tenant-isolated functions.
    pub tenant_id: Option<String>,
}

impl LocalRun {
    /// Runs functions with `runner` and nothing else.
    pub fn with_runner(runner: Runner) -> LocalRun {
        LocalRun {
            runner,
            ..LocalRun::default()
        }
    }

    /// The emulator's settings for `spec`. The environment is, lowest first: the image's ENV
    /// (applied by the launcher), the metadata's `env`, the env files, `--env`, then the
    /// emulator's reserved variables. The region is `--region`, else `deploy.region`, else
    /// (with credentials) the profile's, else us-east-1.
    pub fn emulator_config(&self, spec: &FunctionSpec) -> Result<EmulatorConfig> {
        let mut config = EmulatorConfig::from_spec(spec);
        let (name, value) = ExecutionModel::SNAP_START_LABEL;
        let label = spec.image.labels.get(name).is_some_and(|v| v == value);
        self.apply(&mut config, spec.deploy.region.as_deref(), label)?;
        Ok(config)
    }

    /// Applies the environment, region, credentials and execution model to `config`, whose
    /// own region was `configured` (if any); `label` is whether the image carries the
    /// SnapStart label.
    pub fn apply(
        &self,
        config: &mut EmulatorConfig,
        configured: Option<&str>,
        label: bool,
    ) -> Result<()> {
        self.model.apply(config, label)?;
        config
            .env
            .extend(self.env.iter().map(|v| (v.key.clone(), v.value.clone())));
        let region = self
            .region
            .as_deref()
            .or(configured)
            .or(self.credentials.as_ref().and_then(CredentialSource::region));
        if let Some(region) = region {
            config.region = region.to_string();
        }
        config.credentials = self.credentials.clone();
        Ok(())
    }
}

/// How the emulator starts `spec`'s runtime with `runner`.
pub async fn launcher_for(
    runner: Runner,
    spec: &FunctionSpec,
    image: &BuiltImage,
    reporter: &Reporter,
) -> Result<Arc<dyn Launcher>> {
    let trees = crate::image::function_dir(spec)
        .join("rootfs")
        .into_std_path_buf();
    let unpack = || rootfs::unpack_private(image.layout_dir(), &trees);
    Ok(match runner {
        Runner::Process => {
            let bootstrap = spec.artifact.as_std_path().to_path_buf();
            let launcher = if Some(spec.arch) == Arch::host() {
                ProcessLauncher::new(bootstrap)
            } else {
                ProcessLauncher::new("qemu-aarch64-static").args([bootstrap.display().to_string()])
            };
            // The image's extensions run as the compiled binaries they are made of (a foreign
            // one through the kernel's binfmt_misc handler).
            let launcher = spec
                .extensions
                .iter()
                .fold(launcher, |launcher, extension| {
                    launcher.extension(&extension.name, extension.artifact.as_std_path())
                });
            Arc::new(launcher)
        }
        Runner::Unconfined => Arc::new(SandboxLauncher::unconfined(unpack()?)?),
        // The sandbox's root is read-only, so an unchanged image's tree is reused.
        Runner::Sandbox => {
            match SandboxLauncher::new(rootfs::unpack_reusing(image.layout_dir(), &trees)?) {
                Ok(launcher) => Arc::new(launcher.ephemeral_storage_mb(spec.ephemeral_storage)),
                Err(Error::Sandbox { message, help }) => {
                    // The default runner should work on any machine: without bubblewrap, a
                    // scratch image still runs, only without Lambda's isolation. Say so.
                    reporter.warn(format!(
                    "warning: {message}; running `{}` without isolation (writable root, host /tmp, your user). {help}",
                    spec.name
                ));
                    Arc::new(SandboxLauncher::unconfined(unpack()?)?)
                }
                Err(other) => return Err(other),
            }
        }
        Runner::Docker => {
            if !spec.extensions.is_empty() {
                reporter.warn(format!(
                    "warning: the Docker runner does not start `{}`'s extensions ({}) yet; the sandbox and process runners do",
                    spec.name,
                    spec.extensions.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            Arc::new(
                DockerLauncher::load(image, reporter)
                    .await?
                    .ephemeral_storage_mb(spec.ephemeral_storage),
            )
        }
    })
}

/// Runs `image` of `spec` under the emulator as `local` says and sends it `events`, one after
/// another, handing each invocation to `on_invocation` as it completes. The runtime's own
/// output goes to `reporter` as verbose lines.
pub async fn run(
    spec: &FunctionSpec,
    image: &BuiltImage,
    events: &[TestEvent],
    local: &LocalRun,
    reporter: &Reporter,
    mut on_invocation: impl FnMut(&Invocation),
) -> Result<Vec<Invocation>> {
    let launcher = launcher_for(local.runner, spec, image, reporter).await?;
    let mut config = local.emulator_config(spec)?;
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let logs = reporter.clone();
    config.logs = LogSink::new(move |line| logs.verbose(format!("  | {line}")));
    let emulator = Emulator::start(config, launcher).await?;
    let mut invocations = Vec::new();
    for event in events {
        match invoke(
            &emulator.invoke_url(),
            spec,
            event,
            local.tenant_id.as_deref(),
        )
        .await
        {
            Ok(invocation) => {
                on_invocation(&invocation);
                invocations.push(invocation);
            }
            Err(e) => {
                emulator.shutdown().await;
                return Err(e);
            }
        }
    }
    emulator.shutdown().await;
    Ok(invocations)
}

/// The events to send to `spec`: those given (`cli`), else the configuration's `test.events`;
/// none at all is an error saying how to give some.
pub fn events_for(spec: &FunctionSpec, cli: &[TestEvent]) -> Result<Vec<TestEvent>> {
    let events = if cli.is_empty() {
        events_from_config(spec)?
    } else {
        cli.to_vec()
    };
    if events.is_empty() {
        return Err(Error::InvalidValue {
            source_: Box::new(crate::error::Source::Cli {
                flag: "--event".into(),
            }),
            key: "event".into(),
            message: format!("no events to send to `{}`", spec.name),
            help: "pass --event FILE|-|JSON, or set `events = [\"events/*.json\"]` in [package.metadata.lambda.test]".into(),
        });
    }
    Ok(events)
}

/// An event to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEvent {
    /// Where it came from (file name, `stdin`, `inline`).
    pub name: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// The expected response, if any.
    pub expected: Option<Value>,
}

/// One invocation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    /// The function.
    pub function: String,
    /// The architecture.
    pub arch: Arch,
    /// The event's name.
    pub event: String,
    /// The HTTP status of the Invoke API.
    pub status: u16,
    /// `X-Amz-Function-Error`, when the function failed.
    pub function_error: Option<String>,
    /// The response, as JSON when it parses, else as a string.
    pub response: Value,
    /// Round-trip time in milliseconds.
    pub duration_ms: u64,
    /// Whether the response equals the expectation (`None` without one).
    pub matches_expected: Option<bool>,
    /// The expectation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
}

impl Invocation {
    /// Whether the invocation counts as a success.
    pub fn passed(&self) -> bool {
        self.status == 200 && self.function_error.is_none() && self.matches_expected != Some(false)
    }
}

/// Reads the events named on the command line: files, `-` (stdin) or inline JSON. `expect`
/// files pair with events in order (a single expectation with a single event).
pub fn events_from_args(args: &[String], expect: &[PathBuf]) -> Result<Vec<TestEvent>> {
    let mut events = Vec::new();
    for arg in args {
        let event = if arg == "-" {
            let mut payload = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut payload)
                .map_err(|e| Error::io("could not read", "stdin", e))?;
            if let Err(e) = json_or_empty(&payload) {
                return Err(bad_event("-", &format!("(stdin) is not valid JSON: {e}")));
            }
            TestEvent {
                name: "stdin".into(),
                payload,
                expected: None,
            }
        } else if Path::new(arg).is_file() {
            read_event_file(Path::new(arg))?
        } else if serde_json::from_str::<Value>(arg).is_ok() {
            TestEvent {
                name: "inline".into(),
                payload: arg.as_bytes().to_vec(),
                expected: None,
            }
        } else {
            return Err(bad_event(arg, "is neither a file nor valid JSON"));
        };
        events.push(event);
    }
    if !expect.is_empty() {
        if expect.len() != events.len() {
            return Err(Error::InvalidValue {
                source_: Box::new(crate::error::Source::Cli {
                    flag: "--expect".into(),
                }),
                key: "expect".into(),
                message: format!("{} expectations for {} events", expect.len(), events.len()),
                help: "give one --expect per --event, in the same order".into(),
            });
        }
        for (event, path) in events.iter_mut().zip(expect) {
            event.expected = Some(read_json(path)?);
        }
    }
    Ok(events)
}

/// The events of a function's `test.events` globs, each with its `.expected.json`, if any.
pub fn events_from_config(spec: &FunctionSpec) -> Result<Vec<TestEvent>> {
    let package_dir = spec
        .manifest_path
        .parent()
        .map(|p| p.as_std_path().to_path_buf())
        .unwrap_or_default();
    let mut files = Vec::new();
    for pattern in &spec.test.events {
        let matched = glob(&package_dir, pattern)?;
        if matched.is_empty() {
            return Err(bad_event(
                pattern,
                &format!("matches no file under {}", package_dir.display()),
            ));
        }
        files.extend(matched);
    }
    files.sort();
    files.dedup();
    files
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with(".expected.json"))
        .map(|f| read_event_file(f))
        .collect()
}

fn read_event_file(path: &Path) -> Result<TestEvent> {
    let payload =
        std::fs::read(path).map_err(|e| Error::io("could not read the event", path, e))?;
    // Refused here, before anything compiles, as the Invoke API would refuse it later.
    if let Err(e) = json_or_empty(&payload) {
        return Err(bad_event(
            &path.display().to_string(),
            &format!("is not valid JSON: {e}"),
        ));
    }
    let expected_path = path
        .to_string_lossy()
        .strip_suffix(".json")
        .map(|stem| PathBuf::from(format!("{stem}.expected.json")));
    let expected = match expected_path.filter(|p| p.is_file()) {
        Some(p) => Some(read_json(&p)?),
        None => None,
    };
    Ok(TestEvent {
        name: path.display().to_string(),
        payload,
        expected,
    })
}

/// Checks a payload as the Invoke API does: empty, or JSON.
fn json_or_empty(payload: &[u8]) -> std::result::Result<(), serde_json::Error> {
    if payload.is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).map(drop)
}

fn read_json(path: &Path) -> Result<Value> {
    let data = std::fs::read(path).map_err(|e| Error::io("could not read", path, e))?;
    serde_json::from_slice(&data).map_err(|e| {
        bad_event(
            &path.display().to_string(),
            &format!("is not valid JSON: {e}"),
        )
    })
}

fn bad_event(what: &str, why: &str) -> Error {
    Error::InvalidValue {
        source_: Box::new(crate::error::Source::Cli { flag: "--event".into() }),
        key: "event".into(),
        message: format!("`{what}` {why}"),
        help: "pass a JSON file, `-` for stdin, or inline JSON such as '{\"name\":\"x\"}'; or set `events` in [package.metadata.lambda.test]".into(),
    }
}

/// Expands a pattern whose last component may hold `*` and `?` (directories are literal).
pub fn glob(base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let full = base.join(pattern);
    let (dir, name) = match (full.parent(), full.file_name()) {
        (Some(d), Some(n)) => (d.to_path_buf(), n.to_string_lossy().into_owned()),
        _ => return Ok(Vec::new()),
    };
    if !name.contains(['*', '?']) {
        return Ok(if full.is_file() {
            vec![full]
        } else {
            Vec::new()
        });
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PathBuf> = entries
        .map_while(|e| e.ok())
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// `*` and `?` matching.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// An HTTP client for `url` with a whole-request `timeout`. For a plain-HTTP URL (an emulator
/// on this machine) it does without the system's certificates, whose loading would be a good
/// part of a local test's time.
pub(crate) fn http_client(url: &str, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(timeout);
    if url.starts_with("http://") {
        builder.tls_certs_only(Vec::new()).build()
    } else {
        builder.build()
    }
}

/// Sends one event to an emulator's invoke URL.
pub async fn invoke(
    url: &str,
    spec: &FunctionSpec,
    event: &TestEvent,
    tenant_id: Option<&str>,
) -> Result<Invocation> {
    let client =
        http_client(url, Duration::from_secs(u64::from(spec.timeout) + 30)).map_err(|e| {
            Error::Emulation {
                message: e.to_string(),
            }
        })?;
    let started = Instant::now();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(event.payload.clone());
    if let Some(tenant) = tenant_id {
        request = request.header("x-amz-tenant-id", tenant);
    }
    let response = request.send().await.map_err(|e| Error::Emulation {
        message: format!("invoking {url}: {e}"),
    })?;
    let status = response.status().as_u16();
    let function_error = response
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response.bytes().await.map_err(|e| Error::Emulation {
        message: format!("reading the response: {e}"),
    })?;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Invocation {
        function: spec.name.clone(),
        arch: spec.arch,
        event: event.name.clone(),
        status,
        function_error,
        matches_expected: event.expected.as_ref().map(|e| *e == value),
        expected: event.expected.clone(),
        response: value,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell() {
        assert!(wildcard("*.json", "ping.json"));
        assert!(wildcard("p?ng.*", "ping.json"));
        assert!(!wildcard("*.json", "ping.txt"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a*b", "acbd"));
    }

    #[test]
    fn inline_json_and_files_are_events_and_other_text_is_an_error() {
        let events = events_from_args(&[r#"{"a":1}"#.to_string()], &[]).unwrap();
        assert_eq!(events[0].payload, br#"{"a":1}"#);
        let err = events_from_args(&["not json".to_string()], &[]).unwrap_err();
        assert!(
            err.to_string().contains("neither a file nor valid JSON"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ping.json"), "[1]").unwrap();
        std::fs::write(dir.path().join("ping.expected.json"), "[1]").unwrap();
        let found = glob(dir.path(), "*.json").unwrap();
        assert_eq!(found.len(), 2);
        let event = read_event_file(&dir.path().join("ping.json")).unwrap();
        assert_eq!(event.expected, Some(serde_json::json!([1])));
    }
}
