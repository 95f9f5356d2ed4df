//! `doctor`: every program, service and setting the other commands rely on, checked on this
//! machine for the selected functions, each with what was found and, when missing, the fix.
//!
//! Checks are read-only and local: versions of programs, the toolchain's installed targets, a
//! bubblewrap probe, binfmt_misc, a ping of the Docker engine, the presence (never the value)
//! of registry credentials, the AWS region and whether the credential chain resolves, and a
//! HEAD of each base image's manifest. The only AWS API call is STS GetCallerIdentity, and only
//! when asked (`--aws`). A check is *needed* when the selected functions cannot be built or
//! tested without it; a failed needed check makes `doctor` exit 1.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use crate::aws::{self, AwsOptions};
use crate::compile::find_program;
use crate::config::{BaseImage, Plan};
use crate::emulate::sandbox;
use crate::registry::{parse_reference, RegistryOptions};
use crate::target::{Arch, Compiler};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `rust target aarch64-unknown-linux-musl`.
    pub name: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found (a version, a path, an account), never a secret.
    pub detail: String,
    /// How to fix it, when it is not fine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Whether the selected functions need it to build and test.
    pub needed: bool,
}

impl Check {
    /// The line `doctor` prints for it: ✓ (fine), ✗ (needed and failing) or ! (failing, not
    /// needed), what was found, and the fix.
    pub fn line(&self) -> String {
        let mark = match (self.ok, self.needed) {
            (true, _) => "✓",
            (false, true) => "✗",
            (false, false) => "!",
        };
        let mut line = format!("{mark} {}: {}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            line.push_str(&format!("\n    fix: {fix}"));
        }
        line
    }

    fn pass(name: impl Into<String>, detail: impl Into<String>, needed: bool) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            needed,
        }
    }

    fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
        needed: bool,
    ) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            needed,
        }
    }
}

/// What `doctor` checks besides the plan's own needs.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// How AWS is reached (profile, region, endpoint).
    pub aws: AwsOptions,
    /// `--aws`: call STS GetCallerIdentity to prove the credentials work.
    pub call_aws: bool,
    /// Registry client settings (plain-HTTP hosts, CAs, credentials).
    pub registry: RegistryOptions,
    /// Registries the user pushes to (`--registry`), whose credentials are looked for.
    pub registries: Vec<String>,
}

/// Runs every check for the functions of `plan`.
pub async fn doctor(plan: &Plan, opts: &DoctorOptions) -> Vec<Check> {
    let mut checks = toolchain(plan);
    checks.extend(runners(plan));
    // `docker-daemon:` bases are read from the engine: then it is needed.
    let engine_bases = plan
        .functions
        .iter()
        .any(|f| f.base_image.reference.starts_with("docker-daemon:"));
    checks.push(docker_engine(engine_bases).await);
    checks.extend(registries(plan, opts));
    checks.extend(aws_checks(opts).await);
    checks.extend(bases(plan, opts).await);
    checks
}

/// The first line a program prints for `args`, when it runs and succeeds.
fn version_of(program: &Path, args: &[&str]) -> Option<String> {
    // In the filesystem's root, outside any Cargo project: cross 0.2.5 asked for its version
    // inside one goes on to check the toolchain, and would install or update it (see
    // `compile::toolchain`).
    let out = Command::new(program)
        .args(args)
        .current_dir("/")
        .env("CROSS_CUSTOM_TOOLCHAIN", "1")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .lines()
    .next()
    .unwrap_or_default()
    .trim()
    .to_string();
    out.status.success().then_some(text)
}

/// A program's check: found (with its version) or the install hint.
fn program(name: &str, program: &str, args: &[&str], fix: &str, needed: bool) -> Check {
    match find_program(program) {
        Some(path) => match version_of(&path, args) {
            Some(version) => Check::pass(name, format!("{version} ({})", path.display()), needed),
            None => Check::fail(
                name,
                format!("{} does not run", path.display()),
                fix,
                needed,
            ),
        },
        None => Check::fail(name, format!("`{program}` is not on PATH"), fix, needed),
    }
}

/// rustup and each target; zig and cargo-zigbuild; cross and its container engine.
fn toolchain(plan: &Plan) -> Vec<Check> {
    let uses = |c: Compiler| plan.functions.iter().any(|f| f.compiler == c);
    // Every backend compiles with the host's toolchain (cross mounts it into its container),
    // and rustup adds its targets.
    let local = !plan.functions.is_empty();
    let mut checks = vec![program(
        "rustup",
        "rustup",
        &["--version"],
        "install rustup from https://rustup.rs, or a toolchain with the targets below",
        local,
    )];
    let toolchain = crate::compile::toolchain::find(plan);
    let triples: BTreeSet<&str> = plan.functions.iter().map(|f| f.target.as_str()).collect();
    for triple in triples {
        let name = format!("rust target {triple}");
        checks.push(match &toolchain {
            Ok(t) if t.has_target(triple) => {
                Check::pass(name, format!("installed in {}", t.name), local)
            }
            Ok(t) => Check::fail(
                name,
                format!(
                    "not installed in {} (`build` adds it unless --no-install-targets)",
                    t.name
                ),
                format!("rustup target add {triple} --toolchain {}", t.name),
                local,
            ),
            Err(e) => Check::fail(
                name,
                e.to_string(),
                miette::Diagnostic::help(e).map_or_else(String::new, |h| h.to_string()),
                local,
            ),
        });
    }
    let zig = uses(Compiler::Zigbuild);
    let pip = "pip install ziglang cargo-zigbuild (or cargo install cargo-zigbuild plus zig)";
    // cargo-zigbuild also finds zig as the `ziglang` Python package (`pip install ziglang`).
    let python_zig = find_program("python3")
        .and_then(|python| version_of(&python, &["-m", "ziglang", "version"]))
        .map(|v| format!("{v} (python3 -m ziglang)"));
    checks.push(match (find_program("zig"), python_zig) {
        (None, Some(version)) => Check::pass("zig", version, zig),
        _ => program("zig", "zig", &["version"], pip, zig),
    });
    checks.push(program(
        "cargo-zigbuild",
        "cargo-zigbuild",
        &["--version"],
        pip,
        zig,
    ));
    let cross = uses(Compiler::Cross);
    checks.push(program(
        "cross",
        "cross",
        &["--version"],
        "cargo install cross --locked",
        cross,
    ));
    // The engine cross itself would pick, as the compile stage checks it.
    checks.push(match crate::compile::cross::engine() {
        Ok(path) => Check::pass(
            "container engine for cross",
            path.display().to_string(),
            cross,
        ),
        Err(e) => Check::fail(
            "container engine for cross",
            e.to_string(),
            miette::Diagnostic::help(&e).map_or_else(String::new, |h| h.to_string()),
            cross,
        ),
    });
    checks
}

/// bubblewrap (the default runner) and the emulation of each foreign architecture.
fn runners(plan: &Plan) -> Vec<Check> {
    let mut checks = vec![match sandbox::probe() {
        Ok(detail) => Check::pass("bubblewrap", detail, true),
        Err(e) => {
            let fix = match &e {
                crate::Error::Sandbox { help, .. } => help.clone(),
                other => other.to_string(),
            };
            let message = match &e {
                crate::Error::Sandbox { message, .. } => message.clone(),
                other => other.to_string(),
            };
            Check::fail("bubblewrap", message, fix, true)
        }
    }];
    let arches: BTreeSet<Arch> = plan.functions.iter().map(|f| f.arch).collect();
    for arch in arches.into_iter().filter(|a| Arch::host() != Some(*a)) {
        let name = format!("{arch} emulation");
        checks.push(match sandbox::emulation_for(arch, true) {
            Ok(sandbox::Emulation::Binfmt) => {
                Check::pass(name, "binfmt_misc handler (with the F flag)", true)
            }
            Ok(sandbox::Emulation::Qemu(path)) => {
                Check::pass(name, path.display().to_string(), true)
            }
            Ok(sandbox::Emulation::Native) => Check::pass(name, "native", true),
            Err(crate::Error::Sandbox { message, help }) => Check::fail(name, message, help, true),
            Err(e) => Check::fail(name, e.to_string(), "install qemu-user-static", true),
        });
    }
    checks
}

/// A ping of the Docker engine (`--builder docker`, `--runner docker`, `docker-daemon:`
/// bases, `--output docker`).
async fn docker_engine(needed: bool) -> Check {
    let name = "docker engine";
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
    let fix = "start dockerd, or set DOCKER_HOST (needed only for --builder docker, --runner docker, docker-daemon: bases and --output docker)";
    let docker = match crate::docker::connect() {
        Ok(d) => d,
        Err(e) => return Check::fail(name, e.to_string(), fix, needed),
    };
    match tokio::time::timeout(Duration::from_secs(5), docker.version()).await {
        Ok(Ok(v)) => Check::pass(
            name,
            format!("Docker {} at {host}", v.version.unwrap_or_default()),
            needed,
        ),
        Ok(Err(e)) => Check::fail(name, format!("{host}: {e}"), fix, needed),
        Err(_) => Check::fail(name, format!("{host}: no answer in 5 s"), fix, needed),
    }
}

/// Whether credentials are configured for each registry pushed to or pulled from; only
/// their source is shown.
fn registries(plan: &Plan, opts: &DoctorOptions) -> Vec<Check> {
    let mut hosts: BTreeSet<String> = opts.registries.iter().cloned().collect();
    for base in plan
        .functions
        .iter()
        .filter_map(|f| registry_of(&f.base_image))
    {
        hosts.insert(base);
    }
    hosts
        .into_iter()
        .map(|host| {
            let credentials = opts.registry.credentials_for(&host);
            let name = format!("registry credentials for {host}");
            let pushed = opts.registries.contains(&host);
            if credentials.source == crate::registry::Credentials::anonymous().source {
                if pushed {
                    Check::fail(
                        name,
                        "none found: pushes go anonymously",
                        format!(
                            "docker login {host} (or a credHelpers entry in ~/.docker/config.json)"
                        ),
                        false,
                    )
                } else {
                    Check::pass(name, "none (anonymous pulls)", false)
                }
            } else {
                Check::pass(name, credentials.source, false)
            }
        })
        .collect()
}

/// The registry host of a base that comes from a registry.
fn registry_of(base: &BaseImage) -> Option<String> {
    let reference = base.reference.as_str();
    let local = ["oci:", "docker-archive:", "docker-daemon:"];
    if reference == "scratch" || local.iter().any(|p| reference.starts_with(p)) {
        return None;
    }
    parse_reference(reference)
        .ok()
        .map(|r| r.resolve_registry().to_string())
}

/// The region, the credential chain, and with `--aws` STS GetCallerIdentity.
async fn aws_checks(opts: &DoctorOptions) -> Vec<Check> {
    let sdk = aws::load(&opts.aws, None).await;
    let needed = opts.call_aws;
    let mut checks = vec![match sdk.region() {
        Some(region) => Check::pass("aws region", region.to_string(), needed),
        None => Check::fail(
            "aws region",
            "none configured",
            "set AWS_REGION, --region, `deploy.region`, or a region in the profile",
            needed,
        ),
    }];
    let chain = match sdk.credentials_provider() {
        None => Err("no credentials provider".to_string()),
        Some(provider) => {
            use aws_sdk_lambda::config::ProvideCredentials;
            match tokio::time::timeout(Duration::from_secs(10), provider.provide_credentials())
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(aws::causes(&e)),
                Err(_) => Err("no answer in 10 s".into()),
            }
        }
    };
    let fix = "configure credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, `aws configure`, `aws sso login`, or --aws-profile";
    checks.push(match chain {
        Ok(()) => Check::pass("aws credentials", "the credential chain resolves", needed),
        Err(e) => Check::fail("aws credentials", e, fix, needed),
    });
    if opts.call_aws {
        let sts = aws_sdk_sts::Client::new(&sdk);
        checks.push(match sts.get_caller_identity().send().await {
            Ok(out) => Check::pass(
                "aws identity",
                format!(
                    "account {}, {}",
                    out.account().unwrap_or("?"),
                    out.arn().unwrap_or("?")
                ),
                true,
            ),
            Err(e) => {
                let e = aws::error("sts", "GetCallerIdentity", e);
                Check::fail("aws identity", e.to_string(), fix, true)
            }
        });
    }
    checks
}

/// A HEAD of each registry base's manifest.
async fn bases(plan: &Plan, opts: &DoctorOptions) -> Vec<Check> {
    let references: BTreeSet<&str> = plan
        .functions
        .iter()
        .filter(|f| registry_of(&f.base_image).is_some())
        .map(|f| f.base_image.reference.as_str())
        .collect();
    let mut checks = Vec::new();
    for reference in references {
        let name = format!("base image {reference}");
        let fix = "check the name and the network (or a mirror), log in for a private base, or choose another `base-image`";
        let result = async {
            let image = parse_reference(reference).map_err(|e| e.to_string())?;
            let client = opts.registry.client().map_err(|e| e.to_string())?;
            let credentials = opts.registry.credentials_for(image.resolve_registry());
            let head = client.fetch_manifest_digest(&image, &credentials.auth);
            match tokio::time::timeout(Duration::from_secs(15), head).await {
                Ok(Ok(digest)) => Ok(digest),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer in 15 s".into()),
            }
        }
        .await;
        checks.push(match result {
            Ok(digest) => Check::pass(name, digest, true),
            Err(e) => Check::fail(name, e, fix, true),
        });
    }
    checks
}
