//! Stage 2: cross-compile every function of a [`Plan`] and copy each executable to its
//! `target/lambda-image/<function>/<arch>/bootstrap`, checked against the plan.
//!
//! Binaries of one package for one target are built by a single compiler invocation. The
//! compiler's JSON messages (stdout) say where each executable is; its human output (stderr) is
//! forwarded line by line above the progress spinner.
//!
//! A function's Lambda extensions (`image.extensions`) are compiled with it: in the invocation
//! of its target and backend, each copied to its own planned path (shared by the functions
//! whose builds of it are the same) as soon as that invocation ends, and checked as the
//! function's bootstrap is. A function whose extension fails fails with it.

pub mod command;
pub mod cross;
pub mod elf;
pub mod toolchain;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::camino::Utf8PathBuf;
use cargo_metadata::{Message, TargetKind};
use serde::Serialize;

use crate::config::{BaseKind, ExtensionBinary, FunctionSpec, Plan};
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::target::{Arch, Compiler, Libc};

pub use command::{build_command, BuildCommand, CommandContext, CompileUnit};
pub use elf::ElfInfo;

/// Options of the compile stage that are not part of the plan.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// `--color` passed to cargo.
    pub color: Option<String>,
    /// Run `rustup target add` for missing targets (otherwise fail saying what to run).
    pub install_targets: bool,
    /// Compile nothing: take the bootstraps an earlier build left (in this job or, handed on,
    /// in another CI job), checked as if just built.
    pub no_build: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            color: None,
            install_targets: true,
            no_build: false,
        }
    }
}

/// A compiled, checked bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    /// The function.
    pub function: String,
    /// The architecture.
    pub arch: Arch,
    /// The target triple.
    pub target: String,
    /// The bootstrap, ready for the image stage.
    pub path: Utf8PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// What its ELF header says.
    pub elf: ElfInfo,
    /// The Lambda extensions compiled for it (`image.extensions`), checked like the bootstrap.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionArtifact>,
}

/// A Lambda extension compiled for a function, ready for its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionArtifact {
    /// The extension's name (its binary's, and its file's under /opt/extensions).
    pub name: String,
    /// The package of the binary.
    pub package: String,
    /// The compiled binary.
    pub path: Utf8PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

impl Artifact {
    /// The line `build` prints for it: function, arch, path, size and linkage, and the
    /// extensions compiled for it, if any.
    pub fn line(&self) -> String {
        let linkage = match (&self.elf.interpreter, self.elf.max_glibc) {
            (None, _) => "static".to_string(),
            (Some(_), Some(v)) => format!("dynamic, GLIBC_{v}"),
            (Some(_), None) => "dynamic".to_string(),
        };
        let mut line = format!(
            "{}\t{}\t{}\t{:.1} MB\t{linkage}",
            self.function,
            self.arch,
            self.path,
            self.size as f64 / 1_048_576.0
        );
        if !self.extensions.is_empty() {
            let names: Vec<&str> = self.extensions.iter().map(|e| e.name.as_str()).collect();
            line.push_str(&format!("\textensions: {}", names.join(", ")));
        }
        line
    }
}

/// Groups the plan's functions into compiler invocations: one per target and backend (and
/// glibc pin) for every package, run with `--keep-going`, so link steps overlap and one broken
/// package fails only its own functions. Packages whose binaries share a name go to separate
/// invocations: `--bin NAME` selects that binary in every selected package, and two binaries
/// of one name would overwrite each other's output.
/// A function's extensions are built in the invocation of its own target and backend, as
/// binaries of their packages.
pub fn units(plan: &Plan) -> Vec<CompileUnit> {
    assign(plan).units
}

/// The compiler invocations of a plan, and which one builds each function's extensions: for
/// each function (in plan order), the index of the unit of each of its extensions.
struct Assignment {
    units: Vec<CompileUnit>,
    extensions: Vec<Vec<usize>>,
}

fn assign(plan: &Plan) -> Assignment {
    let mut units: Vec<CompileUnit> = Vec::new();
    let bins_of = |package: &str| plan.package_bins.get(package).cloned().unwrap_or_default();
    // Puts the binary `bin` of `package` in the unit of `f`'s target and backend that can take
    // it, and returns that unit's index.
    let mut place = |f: &FunctionSpec, package: &str, bin: &str| {
        let glibc = f.base_image.glibc;
        let own = bins_of(package);
        let fits = |u: &CompileUnit| {
            u.target == f.target()
                && u.compiler == f.compiler
                && u.glibc == glibc
                && u.cross_image == f.cross_image
                && (u.packages.iter().any(|p| p == package)
                    || u.packages
                        .iter()
                        .all(|p| bins_of(p).iter().all(|b| !own.contains(b))))
        };
        match units.iter().position(fits) {
            Some(i) => {
                let u = &mut units[i];
                if !u.packages.iter().any(|p| p == package) {
                    u.packages.push(package.to_string());
                }
                if !u.bins.iter().any(|b| b == bin) {
                    u.bins.push(bin.to_string());
                }
                i
            }
            None => {
                units.push(CompileUnit {
                    packages: vec![package.to_string()],
                    bins: vec![bin.to_string()],
                    target: f.target(),
                    compiler: f.compiler,
                    glibc,
                    cross_image: f.cross_image.clone(),
                });
                units.len() - 1
            }
        }
    };
    let mut extensions = Vec::new();
    for f in &plan.functions {
        place(f, &f.package, &f.bin);
        extensions.push(
            f.extensions
                .iter()
                .map(|e| place(f, &e.package, &e.name))
                .collect(),
        );
    }
    Assignment { units, extensions }
}

/// The commands [`compile`] would run, for `--dry-run`.
pub fn commands(plan: &Plan, options: &CompileOptions) -> Vec<BuildCommand> {
    let (user_env, cross_toml) = (linker_env(), cross::toml_images(plan));
    let units = units(plan);
    let toolchain = units
        .iter()
        .any(|u| u.compiler == Compiler::Cross)
        .then(|| toolchain::find(plan).ok())
        .flatten();
    let ctx = context(plan, options, &user_env, &cross_toml, toolchain.as_ref());
    units.iter().map(|u| build_command(u, &ctx)).collect()
}

fn context<'a>(
    plan: &'a Plan,
    options: &'a CompileOptions,
    user_env: &'a BTreeMap<String, String>,
    cross_toml: &'a BTreeMap<String, String>,
    toolchain: Option<&'a toolchain::Toolchain>,
) -> CommandContext<'a> {
    CommandContext {
        workspace_manifest: &plan.workspace_manifest,
        profile: &plan.profile,
        build: &plan.build,
        color: options.color.as_deref(),
        host: Arch::host(),
        user_env,
        cross_toml,
        toolchain,
    }
}

fn linker_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            (k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER"))
                || (k.starts_with("CROSS_TARGET_") && k.ends_with("_IMAGE"))
        })
        .collect()
}

/// Compiles every function of the plan and returns each one with its outcome, in plan order.
/// A compiler invocation that fails fails only its own functions; the rest are still built, so
/// one broken crate in a workspace does not hide the others' results. With
/// `options.no_build`, the bootstraps already in place are checked instead.
pub fn compile_each(
    plan: &Plan,
    options: &CompileOptions,
    progress: &Reporter,
) -> Vec<(FunctionSpec, Result<Artifact>)> {
    if options.no_build {
        return plan
            .functions
            .iter()
            .map(|f| (f.clone(), prebuilt(f)))
            .collect();
    }
    let Assignment {
        units,
        extensions: extension_units,
    } = assign(plan);
    // The toolchain is found, and the targets every unit needs are added, once and before any
    // compiler starts.
    let toolchain = toolchain::find(plan);
    let not_added = match &toolchain {
        Ok(t) => {
            let triples = units.iter().map(|u| u.target.triple()).collect();
            toolchain::ensure_targets(t, &triples, options.install_targets, progress)
        }
        Err(_) => BTreeMap::new(),
    };
    let (user_env, cross_toml) = (linker_env(), cross::toml_images(plan));
    let ctx = context(
        plan,
        options,
        &user_env,
        &cross_toml,
        toolchain.as_ref().ok(),
    );
    let mut built: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    // A failed invocation's error, rendered once, for each function it did not build.
    let mut failed: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    // Each function's extensions, as each is installed, by (function, extension) index.
    let mut extensions: BTreeMap<(usize, usize), Result<ExtensionArtifact>> = BTreeMap::new();
    for (index, unit) in units.into_iter().enumerate() {
        let what = format!("{} for {}", unit.bins.join(", "), unit.target);
        let ready = match (&toolchain, not_added.get(&unit.target.triple())) {
            (Err(e), _) => Err(Error::ToolchainUnusable {
                message: e.to_string(),
                help: miette::Diagnostic::help(e).map_or_else(String::new, |h| h.to_string()),
            }),
            (Ok(t), Some(reason)) => Err(Error::TargetMissing {
                triple: unit.target.triple(),
                toolchain: t.name.clone(),
                reason: reason.clone(),
            }),
            (Ok(t), None) => ensure_tools(&unit, t, plan),
        };
        let result = ready.and_then(|()| {
            let cmd = build_command(&unit, &ctx);
            let task = progress.task(format!("Compiling {what}"));
            let result = run_build(&cmd, &unit, plan, progress);
            match &result {
                Ok(outcome) if outcome.failure.is_none() => task.done(format!("Compiled {what}")),
                _ => task.fail(format!("Compiling {what} failed")),
            }
            result
        });
        let triple = unit.target.triple();
        let fail_all = |e: &Error, failed: &mut BTreeMap<_, _>, bins: &[String]| {
            use miette::Diagnostic;
            let help = e.help().map(|h| h.to_string()).unwrap_or_default();
            for bin in bins {
                failed.insert((bin.clone(), triple.clone()), (e.to_string(), help.clone()));
            }
        };
        // The extensions this invocation built are installed now: another invocation of the
        // same target (another backend) writes the same file in cargo's target directory.
        extensions.extend(install_extensions(
            plan,
            &extension_units,
            index,
            &result,
            &triple,
        ));
        match result {
            Ok(outcome) => {
                let missing: Vec<String> = unit
                    .bins
                    .iter()
                    .filter(|b| !outcome.built.contains_key(*b))
                    .cloned()
                    .collect();
                for (bin, path) in outcome.built {
                    built.insert((bin, triple.clone()), path);
                }
                if let Some(e) = outcome.failure {
                    fail_all(&e, &mut failed, &missing);
                }
            }
            Err(e) => fail_all(&e, &mut failed, &unit.bins),
        }
    }
    plan.functions
        .iter()
        .enumerate()
        .map(|(fi, f)| {
            let result = outcome(f, &built, &failed).and_then(|mut artifact| {
                for ei in 0..f.extensions.len() {
                    let installed = extensions.remove(&(fi, ei)).unwrap_or_else(|| {
                        Err(extension_failed(
                            f,
                            &f.extensions[ei],
                            "no compiler invocation built it".into(),
                            String::new(),
                        ))
                    })?;
                    artifact.extensions.push(installed);
                }
                Ok(artifact)
            });
            (f.clone(), result)
        })
        .collect()
}

/// Installs the extensions the unit `index` built (its `result`), each to its planned path,
/// and returns each one's outcome by (function, extension) index. One the unit did not build
/// fails with the unit's error.
fn install_extensions(
    plan: &Plan,
    extension_units: &[Vec<usize>],
    index: usize,
    result: &Result<BuildOutcome>,
    triple: &str,
) -> Vec<((usize, usize), Result<ExtensionArtifact>)> {
    let (outcome, error) = match result {
        Ok(outcome) => (Some(outcome), outcome.failure.as_ref()),
        Err(e) => (None, Some(e)),
    };
    let source = |ext: &ExtensionBinary| match (outcome.and_then(|o| o.built.get(&ext.name)), error)
    {
        (Some(path), _) => Ok(path.clone()),
        (None, Some(e)) => Err(rendered(e)),
        (None, None) => Err(rendered(&Error::ArtifactMissing {
            bin: ext.name.clone(),
            target: triple.to_string(),
        })),
    };
    let mut installed = Vec::new();
    for (fi, units) in extension_units.iter().enumerate() {
        for (ei, _) in units.iter().enumerate().filter(|(_, u)| **u == index) {
            let f = &plan.functions[fi];
            let ext = &f.extensions[ei];
            let one = source(ext)
                .map_err(|(message, help)| extension_failed(f, ext, message, help))
                .and_then(|path| install_extension(f, ext, &path));
            installed.push(((fi, ei), one));
        }
    }
    installed
}

/// An error as its message and help, to be told again for every function it concerns.
fn rendered(e: &Error) -> (String, String) {
    use miette::Diagnostic;
    (
        e.to_string(),
        e.help().map(|h| h.to_string()).unwrap_or_default(),
    )
}

/// The error of a function whose extension could not be built or installed.
fn extension_failed(
    f: &FunctionSpec,
    ext: &ExtensionBinary,
    message: String,
    help: String,
) -> Error {
    Error::FunctionFailed {
        function: f.name.clone(),
        arch: f.arch.to_string(),
        stage: crate::progress::Stage::Compile,
        message: format!("its extension `{}` ({}): {message}", ext.name, ext.package),
        help,
    }
}

/// The outcome of one function after every compiler invocation ran.
fn outcome(
    f: &FunctionSpec,
    built: &BTreeMap<(String, String), PathBuf>,
    failed: &BTreeMap<(String, String), (String, String)>,
) -> Result<Artifact> {
    let key = (f.bin.clone(), f.target.clone());
    if let Some((message, help)) = failed.get(&key) {
        return Err(Error::FunctionFailed {
            function: f.name.clone(),
            arch: f.arch.to_string(),
            stage: crate::progress::Stage::Compile,
            message: message.clone(),
            help: help.clone(),
        });
    }
    let source = built.get(&key).ok_or_else(|| Error::ArtifactMissing {
        bin: f.bin.clone(),
        target: f.target.clone(),
    })?;
    install(f, source)
}

/// What one compiler invocation built, and why it failed if it did (with `--keep-going`, the
/// binaries of the packages that compiled are built all the same).
struct BuildOutcome {
    built: BTreeMap<String, PathBuf>,
    failure: Option<Error>,
}

/// Runs one compiler invocation.
fn run_build(
    cmd: &BuildCommand,
    unit: &CompileUnit,
    plan: &Plan,
    progress: &Reporter,
) -> Result<BuildOutcome> {
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(&cmd.env)
        .current_dir(plan.workspace_root.as_std_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: cmd.program.clone(),
            source,
        })?;
    // Forward stderr on its own thread so that neither pipe can fill up and block the child;
    // its last lines are kept for the error of a failed cross run.
    let stderr = child.stderr.take();
    let forward = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            if let Some(stderr) = stderr {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    if tail.len() == cross::STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                    progress.line(line);
                }
            }
            Vec::from(tail)
        })
    };
    // The executables cargo reports, by binary name (unique within one invocation).
    let mut reported = BTreeMap::new();
    if let Some(stdout) = child.stdout.take() {
        for message in Message::parse_stream(BufReader::new(stdout)).map_while(|m| m.ok()) {
            if let Message::CompilerArtifact(artifact) = message {
                if artifact.target.is_kind(TargetKind::Bin)
                    && unit.bins.contains(&artifact.target.name)
                {
                    if let Some(exe) = artifact.executable {
                        reported.insert(artifact.target.name.clone(), exe.into_std_path_buf());
                    }
                }
            }
        }
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        program: cmd.program.clone(),
        source,
    })?;
    let stderr_tail = forward.join().unwrap_or_default();
    let mut built = BTreeMap::new();
    for (bin, path) in reported {
        // cross reports paths inside its container; fall back to where cargo puts the file.
        let path = if path.exists() {
            path
        } else {
            plan.target_directory
                .join(unit.target.triple())
                .join(profile_dir(&plan.profile))
                .join(&bin)
                .into_std_path_buf()
        };
        if !path.exists() {
            return Err(Error::ArtifactMissing {
                bin,
                target: unit.target.triple(),
            });
        }
        built.insert(bin, path);
    }
    let failure = if status.success() {
        if let Some(bin) = unit.bins.iter().find(|b| !built.contains_key(*b)) {
            return Err(Error::ArtifactMissing {
                bin: bin.clone(),
                target: unit.target.triple(),
            });
        }
        None
    } else if unit.compiler == Compiler::Cross {
        Some(cross::failure(cmd, unit, &status.to_string(), &stderr_tail))
    } else {
        Some(Error::CompileFailed {
            what: format!("{} ({})", unit.packages.join(", "), unit.target),
            status: status.to_string(),
            command: cmd.display(),
        })
    };
    Ok(BuildOutcome { built, failure })
}

/// The directory cargo uses for a profile (`dev` builds land in `debug`).
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// Copies an executable to the function's bootstrap path (atomically, mode 0755) and checks it.
fn install(f: &FunctionSpec, source: &Path) -> Result<Artifact> {
    let elf = elf::inspect(source)?;
    check_binary(f, source, &elf)?;
    copy_executable(source, f.artifact.as_std_path())?;
    artifact(f, elf)
}

/// Copies a function's compiled extension to its planned path (atomically, mode 0755), checked
/// as the function's bootstrap is: it runs beside it, on the same base.
fn install_extension(
    f: &FunctionSpec,
    ext: &ExtensionBinary,
    source: &Path,
) -> Result<ExtensionArtifact> {
    let checked = elf::inspect(source).and_then(|elf| check_binary(f, source, &elf));
    checked.map_err(|e| match e {
        Error::BadBinary {
            path,
            message,
            help,
        } => Error::BadExtension {
            name: ext.name.clone(),
            path,
            message,
            help,
        },
        other => other,
    })?;
    copy_executable(source, ext.artifact.as_std_path())?;
    extension_artifact(ext)
}

/// The record of an extension installed at its planned path.
fn extension_artifact(ext: &ExtensionBinary) -> Result<ExtensionArtifact> {
    let path = ext.artifact.as_std_path();
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io("could not read", path, e))?
        .len();
    Ok(ExtensionArtifact {
        name: ext.name.clone(),
        package: ext.package.clone(),
        path: ext.artifact.clone(),
        size,
    })
}

/// Copies an executable to `dest` (mode 0755, keeping the compiler's modification time),
/// through a staging file, unless `dest` is already that copy.
fn copy_executable(source: &Path, dest: &Path) -> Result<()> {
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| Ok((m.len(), m.modified()?)))
            .ok()
    };
    let built = modified(source);
    if built.is_some() && built == modified(dest) {
        // Installed by an earlier run and not rebuilt since (the copy keeps cargo's mtime):
        // a build with nothing to do copies nothing.
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    sweep_function_dir(dir);
    // Copy to a staging name first so a half-written bootstrap never sits at the final path;
    // the name is this process's own, since two commands (a `watch` and a `test`, tests
    // sharing a target directory) may install the same function at once. Dropped on an error,
    // the staging file is removed.
    let hint = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bootstrap".into());
    let (staging, _) = crate::store::Staging::file(dir, &hint)
        .map_err(|e| Error::io("could not create a file in", dir, e))?;
    let tmp = staging.path();
    std::fs::copy(source, tmp).map_err(|e| Error::io("could not copy to", tmp, e))?;
    set_executable(tmp)?;
    keep_mtime(tmp, built.map(|(_, mtime)| mtime))?;
    staging
        .commit(dest)
        .map(drop)
        .map_err(|e| Error::io("could not write", dest, e))
}

/// Sweeps a function's directory (see [`crate::store`]): the staging files of processes that
/// are gone, and what older versions of the tool left there (temporary files named after their
/// process, and the root filesystem they kept beside the layout).
pub(crate) fn sweep_function_dir(dir: &Path) {
    const LEGACY: &[&str] = &[
        ".bootstrap.tmp-",
        "oci.new-",
        "rootfs.",
        "docker-context-",
        "docker-build-",
        "docker-archive.tar",
    ];
    crate::store::sweep(dir, &|name| {
        let name = name.to_string_lossy();
        LEGACY.iter().any(|prefix| name.starts_with(prefix))
    });
}

/// Gives the copy the time cargo wrote the original, so the next build can tell it is the same.
fn keep_mtime(path: &Path, mtime: Option<std::time::SystemTime>) -> Result<()> {
    let Some(mtime) = mtime else { return Ok(()) };
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(mtime))
        .map_err(|e| Error::io("could not write", path, e))
}

/// The bootstrap an earlier build left at `f.artifact` (in this job, or in another CI job
/// whose `target/lambda-image` was handed on), checked as a fresh build is: its ELF
/// architecture and glibc against the plan.
pub fn prebuilt(f: &FunctionSpec) -> Result<Artifact> {
    let path = f.artifact.as_std_path();
    if !path.is_file() {
        return Err(Error::BadBinary {
            path: path.to_path_buf(),
            message: format!("no bootstrap of `{}` ({}) has been built", f.name, f.arch),
            help: "run `cargo lambda-image build` with the same selection and target first, or drop --no-build".into(),
        });
    }
    let elf = elf::inspect(path)?;
    check_binary(f, path, &elf)?;
    let mut found = artifact(f, elf)?;
    for ext in &f.extensions {
        let path = ext.artifact.as_std_path();
        if !path.is_file() {
            return Err(extension_failed(
                f,
                ext,
                format!("it has not been built at {}", ext.artifact),
                "run `cargo lambda-image build` with the same selection and target first, or drop --no-build".into(),
            ));
        }
        found.extensions.push(install_extension(f, ext, path)?);
    }
    Ok(found)
}

/// The artifact record of the bootstrap installed at `f.artifact`.
fn artifact(f: &FunctionSpec, elf: ElfInfo) -> Result<Artifact> {
    let dest = f.artifact.as_std_path();
    let size = std::fs::metadata(dest)
        .map_err(|e| Error::io("could not read", dest, e))?
        .len();
    Ok(Artifact {
        function: f.name.clone(),
        arch: f.arch,
        target: f.target.clone(),
        path: f.artifact.clone(),
        size,
        elf,
        extensions: Vec::new(),
    })
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("could not make executable", path, e))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<()> {
    Ok(())
}

/// Refuses a binary that would not run on Lambda with the planned base image.
pub fn check_binary(f: &FunctionSpec, path: &Path, elf: &ElfInfo) -> Result<()> {
    let bad = |message: String, help: String| Error::BadBinary {
        path: path.to_path_buf(),
        message,
        help,
    };
    if elf.arch != Some(f.arch) {
        let found = elf
            .arch
            .map(|a| a.to_string())
            .unwrap_or_else(|| format!("ELF machine {}", elf.machine));
        return Err(bad(
            format!("it is built for {found}, but `{}` is planned for {}", f.name, f.arch),
            format!("check the linker and target settings for {} (a CARGO_TARGET_*_LINKER or .cargo/config.toml may point at the wrong toolchain)", f.target),
        ));
    }
    if f.libc == Libc::Musl && !elf.is_static() {
        return Err(bad(
            format!(
                "a musl build must be static, but it needs the loader {}",
                elf.interpreter.as_deref().unwrap_or("?")
            ),
            "remove `-C target-feature=-crt-static` from RUSTFLAGS for musl targets".into(),
        ));
    }
    if f.libc == Libc::Gnu {
        if f.base_image.kind == BaseKind::Scratch {
            return Err(bad(
                "a glibc build needs the C library, which a scratch base does not have".into(),
                "use `libc = \"musl\"` for a scratch base, or a provided.al2/al2023 base".into(),
            ));
        }
        if let (Some(need), Some(have)) = (elf.max_glibc, f.base_image.glibc) {
            if need > have {
                let help = if f.compiler == Compiler::Cross {
                    // cross links against the glibc of the image it compiles in.
                    format!("cross compiled it in an image with a newer glibc: build with `--compiler zigbuild` (it pins `--target {}.{have}`), give cross an older image (`cross-image`, or {}) whose glibc is at most {have}, use `--libc musl`, or use a base with a newer glibc such as public.ecr.aws/lambda/provided:al2023", f.target, command::cross_image_var(&f.target))
                } else {
                    format!("build with `--compiler zigbuild` (links against glibc {have}), use `--libc musl`, or use a base with a newer glibc such as public.ecr.aws/lambda/provided:al2023")
                };
                return Err(bad(
                    format!(
                        "it needs GLIBC_{need}, but {} provides glibc {have}",
                        f.base_image.reference
                    ),
                    help,
                ));
            }
        }
    }
    Ok(())
}

/// Makes sure the backend's tools are there (the targets were added before any unit).
fn ensure_tools(unit: &CompileUnit, toolchain: &toolchain::Toolchain, plan: &Plan) -> Result<()> {
    match unit.compiler {
        Compiler::Cargo => {}
        Compiler::Zigbuild => {
            if find_program("cargo-zigbuild").is_none() {
                return Err(Error::ToolMissing {
                    program: "cargo-zigbuild".into(),
                    purpose: "compile with `--compiler zigbuild`".into(),
                    fix: "install it with `pip install cargo-zigbuild ziglang` (or `cargo install cargo-zigbuild` plus zig), or choose `--compiler cargo`".into(),
                });
            }
        }
        Compiler::Cross => {
            if find_program("cross").is_none() {
                return Err(Error::ToolMissing {
                    program: "cross".into(),
                    purpose: "compile with `--compiler cross`".into(),
                    fix: "install it with `cargo install cross` (it also needs Docker or Podman), or choose `--compiler cargo`".into(),
                });
            }
            cross::engine()?;
            // cross compiles with the host's toolchain, mounted into its container.
            return toolchain::cross_finds(toolchain, plan.workspace_root.as_std_path());
        }
    }
    if unit.compiler == Compiler::Cargo
        && unit.target.libc == Libc::Gnu
        && Some(unit.target.arch) != Arch::host()
    {
        let gcc = format!("{}-linux-gnu-gcc", unit.target.arch.triple_prefix());
        let var = command::linker_var(&unit.target.triple());
        if std::env::var_os(&var).is_none() && find_program(&gcc).is_none() {
            return Err(Error::ToolMissing {
                program: gcc,
                purpose: format!("link {} with plain cargo", unit.target),
                fix: format!(
                    "install the cross gcc (Debian: `apt-get install gcc-{}-linux-gnu`), or use `--compiler zigbuild` or `--libc musl`",
                    unit.target.arch.triple_prefix().replace('_', "-")
                ),
            });
        }
    }
    Ok(())
}

/// Looks a program up on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::example_spec;

    #[test]
    fn installed_targets_are_found_in_rustcs_sysroot() {
        let mut p = plan(Vec::new(), &[]);
        p.workspace_root = env!("CARGO_MANIFEST_DIR").into();
        let toolchain = toolchain::find(&p).unwrap();
        // The CI task installs the musl targets; nobody installs this one.
        assert!(toolchain.has_target("x86_64-unknown-linux-musl"));
        assert!(!toolchain.has_target("sparc64-unknown-netbsd"));
    }

    fn plan(functions: Vec<FunctionSpec>, bins: &[(&str, &[&str])]) -> Plan {
        Plan {
            workspace_root: "/w".into(),
            workspace_manifest: "/w/Cargo.toml".into(),
            target_directory: "/w/target".into(),
            profile: "release".into(),
            build: Default::default(),
            functions,
            package_bins: bins
                .iter()
                .map(|(p, b)| (p.to_string(), b.iter().map(|b| b.to_string()).collect()))
                .collect(),
        }
    }

    fn function(package: &str, bin: &str, arch: Arch) -> FunctionSpec {
        let mut f = example_spec(bin, arch, "scratch");
        f.package = package.into();
        f
    }

    fn with_extension(mut f: FunctionSpec, package: &str, name: &str) -> FunctionSpec {
        f.extensions.push(ExtensionBinary {
            name: name.into(),
            package: package.into(),
            artifact: format!("/w/target/lambda-image/.extensions/{name}/x/{name}").into(),
        });
        f
    }

    /// An extension is compiled in the invocation of its function's target and backend, once
    /// however many functions ship it, and as a binary of its own package.
    #[test]
    fn extensions_are_compiled_with_their_functions_target_and_backend() {
        let mut zig = function("b", "worker", Arch::X86_64);
        zig.compiler = Compiler::Zigbuild;
        let p = plan(
            vec![
                with_extension(function("a", "api", Arch::X86_64), "ext", "telemetry"),
                with_extension(function("a", "api", Arch::Arm64), "ext", "telemetry"),
                with_extension(zig, "ext", "telemetry"),
                with_extension(function("c", "cron", Arch::X86_64), "ext", "telemetry"),
            ],
            &[
                ("a", &["api"]),
                ("b", &["worker"]),
                ("c", &["cron"]),
                ("ext", &["telemetry"]),
            ],
        );
        let assigned = assign(&p);
        let units: Vec<(Vec<String>, Vec<String>, String, Compiler)> = assigned
            .units
            .iter()
            .map(|u| {
                (
                    u.packages.clone(),
                    u.bins.clone(),
                    u.target.triple(),
                    u.compiler,
                )
            })
            .collect();
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            units,
            [
                (
                    owned(&["a", "ext", "c"]),
                    owned(&["api", "telemetry", "cron"]),
                    "x86_64-unknown-linux-musl".into(),
                    Compiler::Cargo
                ),
                (
                    owned(&["a", "ext"]),
                    owned(&["api", "telemetry"]),
                    "aarch64-unknown-linux-musl".into(),
                    Compiler::Cargo
                ),
                (
                    owned(&["b", "ext"]),
                    owned(&["worker", "telemetry"]),
                    "x86_64-unknown-linux-musl".into(),
                    Compiler::Zigbuild
                ),
            ]
        );
        assert_eq!(assigned.extensions, [vec![0], vec![1], vec![2], vec![0]]);
    }

    /// An extension whose name another selected package's binary has is built in an
    /// invocation of its own: `--bin NAME` would build both.
    #[test]
    fn an_extension_named_like_another_packages_binary_is_built_apart() {
        let p = plan(
            vec![with_extension(
                function("a", "api", Arch::X86_64),
                "ext",
                "agent",
            )],
            &[("a", &["api", "agent"]), ("ext", &["agent"])],
        );
        let units = units(&p);
        assert_eq!(units.len(), 2, "{units:?}");
        assert_eq!(units[1].packages, ["ext"]);
        assert_eq!(units[1].bins, ["agent"]);
    }

    #[test]
    fn one_invocation_per_target_for_every_package_whose_binaries_do_not_clash() {
        let p = plan(
            vec![
                function("a", "api", Arch::X86_64),
                function("b", "worker", Arch::X86_64),
                function("a", "api", Arch::Arm64),
                function("c", "tool", Arch::X86_64),
                // `d` also has a binary named `api`: it cannot share an invocation with `a`.
                function("d", "cron", Arch::X86_64),
            ],
            &[
                ("a", &["api", "admin"]),
                ("b", &["worker"]),
                ("c", &["tool"]),
                ("d", &["cron", "api"]),
            ],
        );
        let units: Vec<(Vec<String>, Vec<String>, String)> = units(&p)
            .into_iter()
            .map(|u| (u.packages, u.bins, u.target.triple()))
            .collect();
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            units,
            [
                (
                    owned(&["a", "b", "c"]),
                    owned(&["api", "worker", "tool"]),
                    "x86_64-unknown-linux-musl".into()
                ),
                (
                    owned(&["a"]),
                    owned(&["api"]),
                    "aarch64-unknown-linux-musl".into()
                ),
                (
                    owned(&["d"]),
                    owned(&["cron"]),
                    "x86_64-unknown-linux-musl".into()
                ),
            ]
        );
    }
}
