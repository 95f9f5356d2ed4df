//! The Docker engine builder (`--builder docker`): the function's image is built by dockerd
//! from a Dockerfile instead of being assembled here, for teams whose policy asks for
//! `docker build` or who extend the Dockerfile. The result is exported back (as `docker save`
//! does, through bollard) into the same OCI layout the daemonless builder writes, so `check`,
//! `push`, `deploy` and `test` treat images from both builders alike.
//!
//! The build context is a tar of the Dockerfile, `var/` (the bootstrap and the `include`d
//! files) and `opt/extensions/` (the function's Lambda extensions): the tree
//! [`super::function_tree`] makes, never the target directory. Each extension is copied by an
//! instruction of its own, before the function's files, so it is a layer of its own under
//! them, as in the daemonless builder.
//! The engine is the one `DOCKER_HOST` (unix or tcp) names, or the local default.
//!
//! Unlike the daemonless builder, Docker stamps the build time into the image, so two builds
//! give different digests.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use crate::config::{BaseKind, FunctionSpec};
use crate::error::{Error, Result};
use crate::oci::RunConfig;
use crate::progress::Reporter;
use crate::registry::RegistryOptions;
use crate::target::Arch;

use super::assemble::{function_tree, write_layout};
use super::engine_base::{check_architecture, missing};
use super::layer::LayerBuilder;
use super::{base, function_dir, Builder, BuiltImage};

/// The Dockerfile template used when no `--dockerfile` is given (`templates/docker/Dockerfile`).
pub const DEFAULT_DOCKERFILE: &str = include_str!("../../templates/docker/Dockerfile");

/// Renders a Dockerfile template for `spec`: `{{base}}`, `{{function}}`, `{{arch}}` and
/// `{{workdir}}` become values, `{{extensions}}`, `{{entrypoint}}`, `{{command}}` and
/// `{{labels}}` become instructions (or nothing).
///
/// ENTRYPOINT and CMD are what the daemonless builder would give the image
/// ([`super::entrypoint_and_command`]), decided from `base_run`, the base's own `Entrypoint`
/// and `Cmd` as the engine has them: configured values win; a base with `/lambda-entrypoint.sh`
/// gets CMD `bootstrap`; a base without an entrypoint (scratch) gets the bootstrap itself.
pub fn render_dockerfile(template: &str, spec: &FunctionSpec, base_run: &RunConfig) -> String {
    let list = |items: &[String]| serde_json::to_string(items).unwrap_or_else(|_| "[]".into());
    let (entrypoint, command) = super::entrypoint_and_command(spec, base_run);
    let command = match command {
        Some(c) => format!("CMD {}", list(&c)),
        // The base's CMD would be inherited otherwise; the daemonless image has none.
        None if !base_run.cmd.is_empty() => "CMD []".to_string(),
        None => String::new(),
    };
    let labels: Vec<String> = spec
        .image
        .labels
        .iter()
        .map(|(k, v)| {
            format!(
                "LABEL {}={}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            )
        })
        .collect();
    // One COPY per extension: one layer each, shared by the images that ship it.
    let extensions: Vec<String> = spec
        .extensions
        .iter()
        .map(|e| format!("COPY {0} /{0}", e.image_path()))
        .collect();
    template
        .replace("{{base}}", engine_reference(&spec.base_image.reference).0)
        .replace("{{extensions}}", &extensions.join("\n"))
        .replace("{{function}}", &spec.name)
        .replace("{{arch}}", spec.arch.lambda_name())
        .replace("{{workdir}}", &spec.image.workdir)
        .replace(
            "{{entrypoint}}",
            &format!("ENTRYPOINT {}", list(&entrypoint)),
        )
        .replace("{{command}}", &command)
        .replace("{{labels}}", &labels.join("\n"))
}

/// The build context: `Dockerfile` and the function's `var/` tree, as a tar in memory (for
/// tests and small functions; [`build`] streams it from a file).
pub fn build_context(spec: &FunctionSpec, bootstrap: &Path, dockerfile: &str) -> Result<Vec<u8>> {
    context_tree(spec, bootstrap, dockerfile)?.tar(0)
}

/// Writes the build context to `path`.
fn write_context(
    spec: &FunctionSpec,
    bootstrap: &Path,
    dockerfile: &str,
    path: &Path,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io("could not create", path, e))?;
    let out = std::io::BufWriter::new(file);
    let out = context_tree(spec, bootstrap, dockerfile)?.write_tar(out, 0)?;
    out.into_inner()
        .map_err(|e| Error::io("could not write", path, e.into_error()))?;
    Ok(())
}

fn context_tree(spec: &FunctionSpec, bootstrap: &Path, dockerfile: &str) -> Result<LayerBuilder> {
    let mut tree = function_tree(spec, bootstrap)?;
    tree.file("Dockerfile", 0o644, dockerfile.as_bytes().to_vec())?;
    Ok(tree)
}

/// Whether a Dockerfile (or template) puts the context's extensions in the image: it has the
/// `{{extensions}}` placeholder, or copies `opt/extensions` itself.
pub fn ships_extensions(dockerfile: &str) -> bool {
    dockerfile.contains("{{extensions}}") || dockerfile.contains("opt/extensions")
}

/// The Dockerfile for `spec`: `dockerfile` (rendered when it has placeholders) or the default.
/// A Dockerfile of the user's that would leave out the function's extensions is refused: the
/// image would be built without them, and nothing would say so.
pub fn dockerfile_for(
    spec: &FunctionSpec,
    dockerfile: Option<&Path>,
    base_run: &RunConfig,
) -> Result<String> {
    let template = match dockerfile {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| Error::io("could not read", path, e))?
        }
        None => DEFAULT_DOCKERFILE.to_string(),
    };
    if let (Some(path), false, false) = (
        dockerfile,
        spec.extensions.is_empty(),
        ships_extensions(&template),
    ) {
        return Err(extensions_left_out(spec, path));
    }
    Ok(if template.contains("{{") {
        render_dockerfile(&template, spec, base_run)
    } else {
        template
    })
}

/// The error for a Dockerfile of the user's that does not copy `spec`'s extensions.
pub fn extensions_left_out(spec: &FunctionSpec, dockerfile: &Path) -> Error {
    let names: Vec<&str> = spec.extensions.iter().map(|e| e.name.as_str()).collect();
    Error::InvalidImage {
        image: dockerfile.display().to_string(),
        message: format!(
            "`{}` ships the extensions {} (image.extensions), but this Dockerfile does not copy them",
            spec.name,
            names.join(", ")
        ),
        help: "add a line `{{extensions}}` before the function's COPY lines (it becomes one `COPY opt/extensions/<name> /opt/extensions/<name>` per extension), or copy `opt/extensions/` from the build context yourself".into(),
    }
}

/// The name the engine knows the base by: a `docker-daemon:` base is the engine's own image
/// (never pulled), anything else a registry reference.
fn engine_reference(reference: &str) -> (&str, bool) {
    match reference.strip_prefix("docker-daemon:") {
        Some(name) => (name, true),
        None => (reference, false),
    }
}

/// The base's `Entrypoint` and `Cmd` as the engine has them for `arch` (empty for scratch),
/// so the Dockerfile can decide ENTRYPOINT and CMD as the daemonless builder does.
///
/// The engine's own copy is used when it has one for the platform (a base built or imported
/// locally, or pulled before); the base is pulled only when the engine lacks it, or always
/// with `pull` (`--pull`). A `docker-daemon:` base is never pulled.
async fn base_run_config(
    docker: &bollard::Docker,
    spec: &FunctionSpec,
    arch: Arch,
    pull: bool,
) -> Result<RunConfig> {
    let mut run = RunConfig::default();
    if spec.base_image.kind == BaseKind::Scratch {
        return Ok(run);
    }
    let (name, from_engine) = engine_reference(&spec.base_image.reference);
    let name = crate::docker::with_default_tag(name);
    let mut inspect = crate::docker::inspect_image(docker, &name).await?;
    let have = inspect.as_ref().and_then(|i| i.architecture.clone());
    let usable = inspect.is_some() && check_architecture(&name, have.as_deref(), arch).is_ok();
    if !from_engine && (pull || !usable) {
        pull_base(docker, &name, arch, have.as_deref()).await?;
        inspect = crate::docker::inspect_image(docker, &name).await?;
    }
    let inspect = inspect.ok_or_else(|| missing(&name, &spec.base_image.reference))?;
    check_architecture(
        &spec.base_image.reference,
        inspect.architecture.as_deref(),
        arch,
    )?;
    if let Some(config) = inspect.config {
        run.entrypoint = config.entrypoint.unwrap_or_default();
        run.cmd = config.cmd.unwrap_or_default();
    }
    Ok(run)
}

/// The login for the registry of `name` (the Docker config and its credential helpers), as
/// the engine takes it with a pull (X-Registry-Auth) or a build (X-Registry-Config, keyed by
/// registry); `None` for anonymous access. The engine gets it; it is never printed.
fn engine_credentials(name: &str) -> Option<(String, bollard::auth::DockerCredentials)> {
    let reference = crate::registry::parse_reference(name).ok()?;
    let host = reference.resolve_registry().to_string();
    let credentials = RegistryOptions::from_env().credentials_for(&host);
    // The engine keys Docker Hub by its legacy URL, as the Docker config does.
    let key = if host == "docker.io" || host == "index.docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host
    };
    let docker = match credentials.auth {
        oci_client::secrets::RegistryAuth::Basic(user, password) => {
            bollard::auth::DockerCredentials {
                username: Some(user),
                password: Some(password),
                serveraddress: Some(key.clone()),
                ..Default::default()
            }
        }
        oci_client::secrets::RegistryAuth::Bearer(token) => bollard::auth::DockerCredentials {
            identitytoken: Some(token),
            serveraddress: Some(key.clone()),
            ..Default::default()
        },
        _ => return None,
    };
    Some((key, docker))
}

/// Has the engine pull `name` for `arch`; `have` is the architecture of the copy the engine
/// has under that name, if any. A failure names the reference and its registry.
async fn pull_base(
    docker: &bollard::Docker,
    name: &str,
    arch: Arch,
    have: Option<&str>,
) -> Result<()> {
    let platform = format!("linux/{}", arch.oci_name());
    let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_image(name)
        .platform(&platform)
        .build();
    let failed = |message: String| {
        let note = match have {
            Some(have) => format!(" (the engine has it for linux/{have} only)"),
            None => String::new(),
        };
        Error::BasePull {
            reference: name.to_string(),
            registry: crate::registry::parse_reference(name)
                .map(|r| r.registry().to_string())
                .unwrap_or_else(|_| "docker.io".into()),
            platform: platform.clone(),
            message: format!("{message}{note}"),
        }
    };
    let credentials = engine_credentials(name).map(|(_, c)| c);
    let mut pull = docker.create_image(Some(options), None, credentials);
    while let Some(item) = pull.next().await {
        let info = item.map_err(|e| failed(e.to_string()))?;
        if let Some(detail) = info.error_detail {
            return Err(failed(detail.message.unwrap_or_default()));
        }
    }
    Ok(())
}

fn docker_error(action: String, message: impl Into<String>) -> Error {
    Error::Docker {
        action,
        message: message.into(),
    }
}

/// Options of the Docker builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerBuildOptions {
    /// A Dockerfile (a template with `{{placeholders}}` or a plain Dockerfile);
    /// [`DEFAULT_DOCKERFILE`] when `None`.
    pub dockerfile: Option<PathBuf>,
    /// Pull the base image even when the engine has it for the platform (`--pull`, as
    /// `docker build --pull`); otherwise it is pulled only when the engine lacks it.
    pub pull: bool,
}

/// Has the Docker engine (`DOCKER_HOST`, or the local default) build each image from a
/// Dockerfile, then exports it back into the function's OCI layout.
#[derive(Debug, Clone)]
pub struct DockerBuilder {
    options: DockerBuildOptions,
    cache: PathBuf,
}

impl DockerBuilder {
    /// A builder with `options`, keeping the layers it gzips in the blob cache of `registry`.
    pub fn new(options: DockerBuildOptions, registry: &RegistryOptions) -> DockerBuilder {
        DockerBuilder {
            options,
            cache: registry.cache().join("blobs/sha256"),
        }
    }
}

impl Builder for DockerBuilder {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn build<'a>(
        &'a self,
        spec: &'a FunctionSpec,
        bootstrap: &'a Path,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<BuiltImage>> {
        Box::pin(build(spec, bootstrap, &self.options, &self.cache, reporter))
    }
}

/// Builds `spec`'s image in the Docker engine for its platform, tags it
/// `repository:tag`, and exports it into the function's OCI layout. Layers Docker saves
/// uncompressed are gzipped into `cache` (the blob cache).
pub async fn build(
    spec: &FunctionSpec,
    bootstrap: &Path,
    options: &DockerBuildOptions,
    cache: &Path,
    progress: &Reporter,
) -> Result<BuiltImage> {
    let docker = crate::docker::connect()?;
    let name = format!("{}:{}", spec.image.repository, spec.image.tag);
    let platform = format!("linux/{}", spec.arch.oci_name());
    let base_run = base_run_config(&docker, spec, spec.arch, options.pull).await?;
    let from_engine = engine_reference(&spec.base_image.reference).1;
    let text = dockerfile_for(spec, options.dockerfile.as_deref(), &base_run)?;
    // The context is written to a file and streamed to the engine: included files can be
    // gigabytes.
    // Names of this process's own: two commands may build the same function at once.
    let dir = function_dir(spec).into_std_path_buf();
    let staging = |hint: &str| {
        crate::store::Staging::file(&dir, hint)
            .map(|(staging, _)| staging)
            .map_err(|e| Error::io("could not create a file in", &dir, e))
    };
    let context = staging("docker-context")?;
    write_context(spec, bootstrap, &text, context.path())?;
    let mut build_options = bollard::query_parameters::BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(&name)
        .platform(&platform)
        .rm(true)
        .forcerm(true)
        // The engine's build cache matches a step across platforms when its files are the
        // same (the task root of a function without includes is the same for x86_64 and
        // arm64), and then fails on the other platform's image. Docker builds are not
        // reproducible anyway, so nothing is lost by building every step afresh.
        .nocache(true);
    if options.pull && !from_engine {
        // As `docker build --pull`: the other stages of a custom Dockerfile are pulled
        // afresh too (the base has been pulled above, with a clearer error if it fails).
        build_options = build_options.pull("1");
    }
    let build_options = build_options.build();
    let task = progress.task(format!("Building {name} ({platform}) with Docker"));
    let body = bollard::body_try_stream(crate::oci::file_chunks(context.path(), 1 << 20));
    // The base's login, for the FROM the engine pulls (a private base).
    let credentials = (!from_engine)
        .then(|| engine_credentials(&spec.base_image.reference))
        .flatten()
        .map(|(key, c)| std::collections::HashMap::from([(key, c)]));
    let mut stream = docker.build_image(build_options, credentials, Some(body));
    // The image this build made, by ID: the tag may be moved meanwhile by another build of
    // the same function.
    let mut built: Option<String> = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                task.fail(format!("Building {name} failed"));
                return Err(docker_error(format!("build {name}"), e.to_string()));
            }
        };
        if let Some(detail) = info.error_detail {
            task.fail(format!("Building {name} failed"));
            return Err(docker_error(
                format!("build {name}"),
                detail.message.unwrap_or_default(),
            ));
        }
        if let Some(id) = info.aux.as_ref().and_then(|aux| aux.id.clone()) {
            built = Some(id);
        }
        // The build's own output (`Step 1/6 : FROM ...`), as `docker build` shows it.
        for line in info.stream.iter().flat_map(|s| s.lines()) {
            if !line.trim().is_empty() {
                progress.line(format!("  | {}", line.trim_end()));
            }
        }
    }
    task.done(format!("Built {name} ({platform}) with Docker"));
    drop(context);

    // Back out of the engine, into an OCI layout like the daemonless builder's.
    let archive = staging("docker-build")?;
    let saved = built.as_deref().unwrap_or(&name);
    crate::docker::save(&docker, saved, archive.path()).await?;
    let resolved = base::from_docker_archive(archive.path(), cache, &format!("docker:{name}"));
    drop(archive);
    let resolved = resolved?;
    let config_bytes = serde_json::to_vec(&resolved.config).map_err(|e| Error::InvalidImage {
        image: name.clone(),
        message: e.to_string(),
        help: String::new(),
    })?;
    write_layout(
        spec,
        &spec.base_image.reference,
        &config_bytes,
        &resolved.layers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Arch;

    fn spec(base: &str) -> FunctionSpec {
        crate::config::example_spec("hello", Arch::X86_64, base)
    }

    fn run(entrypoint: &[&str], cmd: Option<&[&str]>) -> RunConfig {
        RunConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..RunConfig::default()
        }
    }

    #[test]
    fn scratch_gets_the_bootstrap_as_entrypoint_and_no_cmd() {
        let text = render_dockerfile(DEFAULT_DOCKERFILE, &spec("scratch"), &run(&[], None));
        assert!(text.contains("\nFROM scratch\n"), "{text}");
        assert!(
            text.contains("\nENTRYPOINT [\"/var/runtime/bootstrap\"]\n"),
            "{text}"
        );
        assert!(!text.contains("\nCMD"), "{text}");
        assert!(!text.contains("{{"), "{text}");
    }

    #[test]
    fn a_lambda_entrypoint_base_gets_cmd_bootstrap_whatever_its_name() {
        for base in [
            "public.ecr.aws/lambda/provided:al2",
            "public.ecr.aws/lambda/provided:al2023",
            "127.0.0.1:5000/mirror/provided:al2",
        ] {
            let text = render_dockerfile(
                DEFAULT_DOCKERFILE,
                &spec(base),
                &run(&["/lambda-entrypoint.sh"], None),
            );
            assert!(text.contains(&format!("\nFROM {base}\n")), "{text}");
            assert!(text.contains("\nENTRYPOINT [\"/lambda-entrypoint.sh\"]\n"));
            assert!(text.contains("\nCMD [\"bootstrap\"]\n"), "{text}");
        }
    }

    #[test]
    fn other_bases_keep_their_own_entrypoint_unless_configured() {
        let mut s = spec("example.com/base:1");
        let base = run(&["/usr/bin/tini", "--"], Some(&["serve"]));
        let text = render_dockerfile(DEFAULT_DOCKERFILE, &s, &base);
        assert!(
            text.contains("\nENTRYPOINT [\"/usr/bin/tini\",\"--\"]\n"),
            "{text}"
        );
        assert!(text.contains("\nCMD [\"serve\"]\n"), "{text}");
        s.image.entrypoint = Some(vec!["/bin/run".into(), "it".into()]);
        let text = render_dockerfile(DEFAULT_DOCKERFILE, &s, &base);
        assert!(
            text.contains("\nENTRYPOINT [\"/bin/run\",\"it\"]\n"),
            "{text}"
        );
        // The base's CMD belonged to its entrypoint: cleared, as the daemonless image has none.
        assert!(text.contains("\nCMD []\n"), "{text}");
        s.image.command = Some(vec!["x".into()]);
        s.image.labels.insert("a \"b\"".into(), "c".into());
        let text = render_dockerfile(DEFAULT_DOCKERFILE, &s, &base);
        assert!(text.contains("\nCMD [\"x\"]\n"), "{text}");
        assert!(text.contains("\nLABEL \"a \\\"b\\\"\"=\"c\"\n"), "{text}");
    }

    /// Each extension is copied by an instruction of its own, before the function's files; a
    /// Dockerfile of the user's that would leave them out is refused.
    #[test]
    fn extensions_are_copied_one_instruction_each_under_the_functions_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("scratch");
        let text = render_dockerfile(DEFAULT_DOCKERFILE, &s, &run(&[], None));
        assert!(!text.contains("opt/extensions/"), "{text}");
        for name in ["agent", "telemetry"] {
            s.extensions.push(crate::config::ExtensionBinary {
                name: name.into(),
                package: "ext".into(),
                artifact: dir.path().join(name).try_into().unwrap(),
            });
        }
        let text = render_dockerfile(DEFAULT_DOCKERFILE, &s, &run(&[], None));
        assert!(
            text.contains(
                "\nFROM scratch\nCOPY opt/extensions/agent /opt/extensions/agent\n\
                 COPY opt/extensions/telemetry /opt/extensions/telemetry\nCOPY var/task/ /var/task/\n"
            ),
            "{text}"
        );
        let plain = dir.path().join("Dockerfile");
        std::fs::write(&plain, "FROM scratch\nCOPY var/ /var/\n").unwrap();
        let err = dockerfile_for(&s, Some(&plain), &run(&[], None)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("agent, telemetry"), "{text}");
        let help = miette::Diagnostic::help(&err).unwrap().to_string();
        assert!(help.contains("{{extensions}}"), "{help}");
        std::fs::write(
            &plain,
            "FROM scratch\nCOPY opt/extensions/ /opt/extensions/\nCOPY var/ /var/\n",
        )
        .unwrap();
        dockerfile_for(&s, Some(&plain), &run(&[], None)).unwrap();
    }

    #[test]
    fn the_context_holds_the_dockerfile_and_var_only() {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = dir.path().join("bootstrap");
        std::fs::write(&bootstrap, b"\x7fELF").unwrap();
        let s = spec("scratch");
        let tar = build_context(&s, &bootstrap, "FROM scratch\n").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "var/",
                "var/runtime/",
                "var/runtime/bootstrap",
                "var/task/"
            ]
        );
    }
}
