//! The library's error type: every variant says what went wrong, where, and how to fix it.
//!
//! Errors are `miette` diagnostics so the binary can render them with their help text; library
//! callers (an `xtask`, say) can match on the variants instead.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

/// Where a configuration value came from, so that an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in defaults.
    Default,
    /// A `[...metadata.lambda]` table in a manifest.
    Manifest {
        /// The `Cargo.toml` holding the table.
        path: PathBuf,
        /// The dotted table name, e.g. `package.metadata.lambda.bin.hello`.
        table: String,
    },
    /// A `CARGO_LAMBDA_IMAGE_*` environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A command-line flag.
    Cli {
        /// The flag, e.g. `--arch`.
        flag: String,
    },
    /// A line of a file the user named, e.g. a dotenv file given with `--env-file`.
    File {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("the built-in defaults"),
            Source::Manifest { path, table } => write!(f, "`[{table}]` in {}", path.display()),
            Source::Env { var } => write!(f, "environment variable {var}"),
            Source::Cli { flag } => write!(f, "command-line flag {flag}"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// Everything that can go wrong in cargo-lambda-image.
#[derive(Debug, Error, Diagnostic)]
#[non_exhaustive]
pub enum Error {
    /// `cargo metadata` failed.
    #[error("could not read the Cargo workspace: {message}")]
    #[diagnostic(
        code(lambda_image::metadata),
        help("check that --manifest-path points at a Cargo.toml and that `cargo metadata` works there")
    )]
    Metadata {
        /// Cargo's own message.
        message: String,
    },

    /// A key in a metadata table is not part of the schema.
    #[error("unknown key `{key}` in {source_}")]
    #[diagnostic(code(lambda_image::config::unknown_key), help("{help}"))]
    UnknownKey {
        /// Where the key was found.
        source_: Box<Source>,
        /// The offending key (dotted for nested tables).
        key: String,
        /// A did-you-mean suggestion or the list of known keys.
        help: String,
    },

    /// A value has the wrong type (a string where a number belongs, ...).
    #[error("wrong type for `{key}` in {source_}: {message}")]
    #[diagnostic(code(lambda_image::config::invalid_type), help("{help}"))]
    InvalidType {
        /// Where the value was found.
        source_: Box<Source>,
        /// The dotted key.
        key: String,
        /// What serde said.
        message: String,
        /// What a valid value looks like.
        help: String,
    },

    /// A value has the right type but is out of range or malformed.
    #[error("invalid value for `{key}` in {source_}: {message}")]
    #[diagnostic(code(lambda_image::config::invalid_value), help("{help}"))]
    InvalidValue {
        /// Where the value was found.
        source_: Box<Source>,
        /// The dotted key.
        key: String,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// The selection names something the workspace does not have, or selects nothing.
    #[error("{message}")]
    #[diagnostic(code(lambda_image::selection), help("{help}"))]
    Selection {
        /// What was not found.
        message: String,
        /// What exists instead.
        help: String,
    },

    /// A program the chosen backend needs is not installed.
    #[error("`{program}` is needed to {purpose} but was not found")]
    #[diagnostic(code(lambda_image::tool_missing), help("{fix}"))]
    ToolMissing {
        /// The program's name.
        program: String,
        /// Why it is needed.
        purpose: String,
        /// What to run to install it.
        fix: String,
    },

    /// `doctor` found something the selected functions need missing.
    #[error("missing for the selected functions: {failed}")]
    #[diagnostic(
        code(lambda_image::doctor),
        help("apply the fix printed under each ✗ check above, then run `cargo lambda-image doctor` again")
    )]
    Doctor {
        /// The failed checks.
        failed: String,
    },

    /// The Rust standard library for a target is not installed and could not be added.
    #[error("the Rust target `{triple}` is not installed in the toolchain `{toolchain}`{reason}")]
    #[diagnostic(
        code(lambda_image::target_missing),
        help("run `rustup target add {triple} --toolchain {toolchain}`")
    )]
    TargetMissing {
        /// The target triple.
        triple: String,
        /// The toolchain that lacks it.
        toolchain: String,
        /// Why it was not added (e.g. ` (--no-install-targets)`), or empty.
        reason: String,
    },

    /// The Rust toolchain cannot be used as it is; it is never installed, updated or repaired
    /// behind the user's back.
    #[error("{message}")]
    #[diagnostic(code(lambda_image::toolchain), help("{help}"))]
    ToolchainUnusable {
        /// What is wrong.
        message: String,
        /// The command that fixes it.
        help: String,
    },

    /// The compiler exited with an error.
    #[error("compiling {what} failed ({status})")]
    #[diagnostic(
        code(lambda_image::compile_failed),
        help("the compiler's output above says why; the command was: {command}")
    )]
    CompileFailed {
        /// The function(s) and target being compiled.
        what: String,
        /// The exit status.
        status: String,
        /// The command line, for reproducing by hand.
        command: String,
    },

    /// `cross` has no container engine to run its build container with.
    #[error("`cross` needs a container engine, but {missing}")]
    #[diagnostic(code(lambda_image::cross_engine), help("{help}"))]
    CrossEngineMissing {
        /// Which engine was looked for and not found.
        missing: String,
        /// How to install or choose one.
        help: String,
    },

    /// `cross` found its container engine's program, but the engine did not answer or could
    /// not start the build container.
    #[error("cross's container engine, {engine}, could not run its build container:\n{stderr}")]
    #[diagnostic(code(lambda_image::cross_engine), help("{help}"))]
    CrossEngineUnreachable {
        /// The engine.
        engine: String,
        /// The last lines cross wrote to stderr.
        stderr: String,
        /// How to start it.
        help: String,
    },

    /// `cross` could not pull the image it compiles in.
    #[error("cross could not pull `{image}`, the image it compiles {target} in:\n{stderr}")]
    #[diagnostic(
        code(lambda_image::cross_image),
        help("build, load or pull `{image}` into the container engine, or choose an image the engine has: `cross-image = {{ \"{target}\" = \"my/image:tag\" }}` in [package.metadata.lambda], or {var}")
    )]
    CrossImagePull {
        /// The image.
        image: String,
        /// The target triple.
        target: String,
        /// The variable that overrides it, `CROSS_TARGET_<TRIPLE>_IMAGE`.
        var: String,
        /// The last lines cross wrote to stderr.
        stderr: String,
    },

    /// `cross` exited with an error.
    #[error("compiling {what} with cross failed ({status}):\n{stderr}")]
    #[diagnostic(
        code(lambda_image::compile_failed),
        help("cross's output above says why; the command was: {command}")
    )]
    CrossFailed {
        /// The function(s) and target being compiled.
        what: String,
        /// The exit status.
        status: String,
        /// The last lines cross wrote to stderr.
        stderr: String,
        /// The command line, for reproducing by hand.
        command: String,
    },

    /// The compiler succeeded but did not report the executable we asked for.
    #[error("cargo did not produce the binary `{bin}` for {target}")]
    #[diagnostic(
        code(lambda_image::artifact_missing),
        help("check that `{bin}` is a [[bin]] target of the package and that its required-features are enabled")
    )]
    ArtifactMissing {
        /// The binary name.
        bin: String,
        /// The target triple.
        target: String,
    },

    /// The compiled executable is not what the plan asked for.
    #[error("{path} is not a valid Lambda bootstrap: {message}")]
    #[diagnostic(code(lambda_image::bad_binary), help("{help}"))]
    BadBinary {
        /// The executable.
        path: PathBuf,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// A compiled Lambda extension would not run beside the function on its base.
    #[error("{path} is not a valid Lambda extension `{name}`: {message}")]
    #[diagnostic(code(lambda_image::bad_extension), help("{help}"))]
    BadExtension {
        /// The extension's name.
        name: String,
        /// The executable.
        path: PathBuf,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// A filesystem operation failed.
    #[error("{action} {}: {source}", path.display())]
    #[diagnostic(code(lambda_image::io))]
    Io {
        /// What we were doing, e.g. "could not read".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A disk filled up while the tool was writing to it.
    #[error("{action} {}: no space left on the disk holding {}", path.display(), dir.display())]
    #[diagnostic(
        code(lambda_image::disk_full),
        help(
            "free space on the disk holding {}, or write elsewhere: CARGO_LAMBDA_IMAGE_CACHE_DIR \
             moves the layer and blob cache, CARGO_TARGET_DIR the image layouts; nothing \
             half-written was kept",
            dir.display()
        )
    )]
    DiskFull {
        /// What we were doing, e.g. "could not write".
        action: &'static str,
        /// The file being written.
        path: PathBuf,
        /// The directory it was written in.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A path to put into an image would land outside the image root.
    #[error("`{path}` is not a valid path inside an image")]
    #[diagnostic(
        code(lambda_image::image::invalid_path),
        help("use a relative path without `..` components, e.g. `config/settings.json`")
    )]
    InvalidPath {
        /// The path as given.
        path: String,
    },

    /// An image (a base, or one we read back) is malformed or unsupported.
    #[error("image {image}: {message}")]
    #[diagnostic(code(lambda_image::image::invalid), help("{help}"))]
    InvalidImage {
        /// The image reference or path.
        image: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// The image breaks one of Lambda's rules.
    #[error("image for `{function}` ({arch}) fails Lambda's rule `{rule}`: {message}")]
    #[diagnostic(code(lambda_image::check), help("{help}"))]
    CheckFailed {
        /// The function.
        function: String,
        /// The architecture.
        arch: String,
        /// The rule's name.
        rule: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// A registry refused our credentials.
    #[error("the registry refused access to {registry}")]
    #[diagnostic(
        code(lambda_image::registry::auth),
        help("tried {tried}; log in with `docker login`, set up a credential helper in ~/.docker/config.json, or for ECR check the AWS credentials and region")
    )]
    RegistryAuth {
        /// The reference.
        registry: String,
        /// Where the credentials came from (never the credentials themselves).
        tried: String,
    },

    /// A registry operation failed.
    #[error("could not {action} {reference}: {message}")]
    #[diagnostic(code(lambda_image::registry), help("{help}"))]
    Registry {
        /// What we were doing.
        action: String,
        /// The image reference.
        reference: String,
        /// The error, with its whole cause.
        message: String,
        /// What to do, for this kind of failure (see [`crate::registry::Failure`]).
        help: String,
    },

    /// The Docker engine could not be reached or refused an operation.
    #[error("Docker engine: could not {action}: {message}")]
    #[diagnostic(
        code(lambda_image::docker),
        help(
            "check that dockerd is running and that DOCKER_HOST (unix:// or tcp://) points at it"
        )
    )]
    Docker {
        /// What we were doing.
        action: String,
        /// The engine's or the connection's message.
        message: String,
    },

    /// The Docker engine lacks a base image for the platform and could not pull it.
    #[error("Docker engine: could not pull the base image {reference} ({platform}) from {registry}: {message}")]
    #[diagnostic(
        code(lambda_image::docker::base_pull),
        help("the engine has no {reference} for {platform}, so it tried the registry {registry} and failed: pull it where it can be reached (`docker pull --platform {platform} {reference}`), log in (`docker login {registry}`), or check the name and tag (`docker images` lists the engine's images; a base built or imported locally must be named exactly)")
    )]
    BasePull {
        /// The base reference.
        reference: String,
        /// The registry it names (`docker.io` when it names none).
        registry: String,
        /// `linux/<arch>`.
        platform: String,
        /// The engine's message.
        message: String,
    },

    /// A base image is for another architecture than the function.
    #[error("base image {image} is for linux/{have}, but the function is built for linux/{want}")]
    #[diagnostic(
        code(lambda_image::image::base_architecture),
        help("use a base for linux/{want} (`docker pull --platform linux/{want} IMAGE`, or build or import it with `--platform linux/{want}`), or build the function for the base's architecture (`--arch {have_arch}`)")
    )]
    BaseArchitecture {
        /// The base reference.
        image: String,
        /// The base's architecture (OCI name: amd64, arm64).
        have: String,
        /// The base's architecture as `--arch` names it (x86_64, arm64).
        have_arch: String,
        /// The function's (OCI name).
        want: String,
    },

    /// `invoke` ran the function, which answered with a function error.
    #[error("`{function}`{} failed: {error}", if *remote { " (deployed)" } else { "" })]
    #[diagnostic(code(lambda_image::invoke_failed), help("{help}"))]
    InvokeFailed {
        /// The function invoked.
        function: String,
        /// Whether it was the deployed one (`--remote`).
        remote: bool,
        /// The function error (its `errorType`).
        error: String,
        /// Where to look next.
        help: String,
    },

    /// Running a function locally failed (not the function itself: the machinery).
    #[error("local invocation failed: {message}")]
    #[diagnostic(
        code(lambda_image::emulation),
        help("run with -v to see the runtime's output")
    )]
    Emulation {
        /// What went wrong.
        message: String,
    },

    /// Some local invocations failed or did not match their expectations.
    #[error("{failed} of {total} invocation{} failed", if *total == 1 { "" } else { "s" })]
    #[diagnostic(
        code(lambda_image::test_failed),
        help("the responses above show which; a function error has X-Amz-Function-Error set")
    )]
    TestFailed {
        /// How many failed.
        failed: usize,
        /// How many ran.
        total: usize,
    },

    /// The user pressed Ctrl-C; what was running has been cleaned up.
    #[error("interrupted")]
    #[diagnostic(
        code(lambda_image::interrupted),
        help("nothing was left half-written: a push writes its tag last, and test containers are removed")
    )]
    Interrupted,

    /// One function failed a stage; the others went on.
    #[error("`{function}` ({arch}) failed to {}: {message}", stage.verb())]
    #[diagnostic(code(lambda_image::function_failed), help("{help}"))]
    FunctionFailed {
        /// The function.
        function: String,
        /// The architecture.
        arch: String,
        /// The stage.
        stage: crate::progress::Stage,
        /// What went wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// Work handed to another thread or task ended without an answer (it panicked).
    #[error("the {task} task failed: {message}")]
    #[diagnostic(
        code(lambda_image::task),
        help("this is a bug in cargo-lambda-image; please report it with the output above")
    )]
    TaskFailed {
        /// What the task did.
        task: &'static str,
        /// The panic, as the runtime reports it.
        message: String,
    },

    /// Some functions failed; each failure was reported on its own.
    #[error("{failed} of {total} functions failed")]
    #[diagnostic(
        code(lambda_image::some_failed),
        help("the summary above lists each failure and its stage")
    )]
    SomeFailed {
        /// How many failed.
        failed: usize,
        /// How many were planned.
        total: usize,
    },

    /// A subprocess could not be started at all.
    #[error("could not run `{program}`: {source}")]
    #[diagnostic(code(lambda_image::spawn))]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The Runtime API emulator could not listen on its address.
    #[error("the emulator could not listen on {addr} for the {what}: {source}")]
    #[diagnostic(
        code(lambda_image::emulate::bind),
        help("another program (or another emulator) may be using the port; choose another one, or port 0 for any free port")
    )]
    EmulatorBind {
        /// Which listener (the Invoke API, a Runtime API, and the flag that chose it).
        what: String,
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A Runtime API emulator setting cannot work.
    #[error("invalid emulator setting `{setting}`: {message}")]
    #[diagnostic(code(lambda_image::emulate::config), help("{help}"))]
    EmulatorConfig {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// An image layer holds an entry that could escape or corrupt the directory it is unpacked
    /// into (an absolute or `..` path, a path through a symlink, a device node, ...).
    #[error("layer {layer} has an unsafe entry `{entry}`: {message}")]
    #[diagnostic(
        code(lambda_image::emulate::unsafe_layer),
        help("the image was not unpacked; rebuild it from a trusted base image")
    )]
    UnsafeLayer {
        /// The layer's digest.
        layer: String,
        /// The entry's path in the layer.
        entry: String,
        /// What is wrong with it.
        message: String,
    },

    /// The sandbox that runs an image's function locally cannot be set up.
    #[error("cannot run the function in a sandbox: {message}")]
    #[diagnostic(code(lambda_image::emulate::sandbox), help("{help}"))]
    Sandbox {
        /// What is missing or failed.
        message: String,
        /// What to install or enable.
        help: String,
    },

    /// `--aws-credentials` was given, but aws-config's chain resolved no credentials.
    #[error("could not resolve AWS credentials for the local run: {message}")]
    #[diagnostic(code(lambda_image::aws::credentials), help("{help}"))]
    LocalCredentials {
        /// What the credentials chain said (never a secret).
        message: String,
        /// How to fix it.
        help: String,
    },

    /// An AWS API call failed (ECR, IAM or Lambda).
    #[error("AWS {service} {operation} failed: {message}")]
    #[diagnostic(code(lambda_image::deploy::aws), help("{help}"))]
    Aws {
        /// The service (`ecr`, `iam`, `lambda`).
        service: &'static str,
        /// The API operation, e.g. `CreateFunction`.
        operation: String,
        /// The AWS error code, when the service sent one.
        code: Option<String>,
        /// The service's message (never credentials).
        message: String,
        /// How to fix it.
        help: String,
    },

    /// A deployment cannot go ahead, or Lambda reported it failed.
    #[error("deploying `{function}`: {message}")]
    #[diagnostic(code(lambda_image::deploy), help("{help}"))]
    Deploy {
        /// The Lambda function.
        function: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// A CloudFormation or SAM template cannot be rendered from the given images.
    #[error("cannot render the template: {message}")]
    #[diagnostic(code(lambda_image::template), help("{help}"))]
    Template {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// A multi-architecture image index cannot be made from the given images.
    #[error("cannot push the image index {reference}: {message}")]
    #[diagnostic(code(lambda_image::index), help("{help}"))]
    Index {
        /// `registry/repository:tag` of the index.
        reference: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: String,
    },

    /// The software bill of materials of a function could not be made or attached.
    #[error("SBOM of {function}: {message}")]
    #[diagnostic(code(lambda_image::sbom), help("{help}"))]
    Sbom {
        /// The function (or the file) it is about.
        function: String,
        /// What went wrong.
        message: String,
        /// How to fix it.
        help: String,
    },
}

impl Error {
    /// Builds an [`Error::Io`], or an [`Error::DiskFull`] when that is what happened.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            return Error::DiskFull {
                action,
                dir: path.parent().map(PathBuf::from).unwrap_or_default(),
                path,
                source,
            };
        }
        Error::Io {
            action,
            path,
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The message without the function, architecture and stage a [`Error::FunctionFailed`]
    /// starts with, for lines that name them already.
    pub fn without_function(&self) -> String {
        match self {
            Error::FunctionFailed { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// The closest candidate to `word`, if any is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["memory", "timeout", "function-name"];
        assert_eq!(did_you_mean("memroy", keys), Some("memory"));
        assert_eq!(did_you_mean("function_name", keys), Some("function-name"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
