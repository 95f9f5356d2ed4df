//! Stage 1: from Cargo metadata, `[*.metadata.lambda]` tables, the environment and the command
//! line to a [`Plan`]: every (function, architecture) with its resolved settings.
//!
//! Nothing here has side effects beyond running `cargo metadata`; the plan is what `--dry-run`
//! and `--message-format json` print, and what every later stage consumes.

pub mod extensions;
pub mod keys;
pub mod layers;
pub mod metadata;
pub mod resolve;
pub mod schema;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cargo_metadata::camino::Utf8PathBuf;
use cargo_metadata::{Metadata, Package, TargetKind};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{did_you_mean, Error, Result, Source};
use crate::target::{Arch, Compiler, Libc, Target};

pub use extensions::ExtensionBinary;
pub use resolve::{
    AsyncSettings, BaseImage, BaseKind, CorsSettings, DeploySettings, FileSystemSettings,
    FunctionSettings, ImageSettings, LoggingSettings, ManagedInstancesSettings, TestSettings,
    UrlSettings, VpcSettings,
};

use layers::{Layer, ManifestTables};

/// Which packages and binaries to work on, as cargo's own flags say it.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--manifest-path`.
    pub manifest_path: Option<PathBuf>,
    /// `-p/--package` (repeatable).
    pub packages: Vec<String>,
    /// `--workspace`.
    pub workspace: bool,
    /// `--exclude` (with `--workspace`).
    pub exclude: Vec<String>,
    /// `--bin` (repeatable).
    pub bins: Vec<String>,
}

/// How to compile, independent of the function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildOptions {
    /// Cargo profile (default `release`).
    pub profile: Option<String>,
    /// `--features`.
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--locked`.
    pub locked: bool,
}

/// Settings given on the command line; each overrides every other layer when set, and is
/// `None` otherwise so that it never hides a manifest value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--arch`.
    pub arch: Option<Vec<Arch>>,
    /// `--libc`.
    pub libc: Option<Libc>,
    /// `--compiler`.
    pub compiler: Option<Compiler>,
    /// `--base-image`.
    pub base_image: Option<String>,
}

impl Overrides {
    /// The overrides as configuration layers, one per flag, so errors can name the flag.
    fn layers(&self) -> Result<Vec<Layer>> {
        let mut out = Vec::new();
        let mut push = |flag: &str, key: &str, value: Value| -> Result<()> {
            let mut table = Map::new();
            table.insert(key.to_string(), value);
            let layer = Layer {
                source: Source::Cli { flag: flag.into() },
                value: Value::Object(table),
            };
            schema::validate(&layer.value, &layer.source, false)?;
            out.push(layer);
            Ok(())
        };
        if let Some(arch) = &self.arch {
            let names: Vec<&str> = arch.iter().map(|a| a.lambda_name()).collect();
            push("--arch", "arch", Value::from(names))?;
        }
        if let Some(libc) = self.libc {
            push("--libc", "libc", Value::from(libc.to_string()))?;
        }
        if let Some(compiler) = self.compiler {
            push("--compiler", "compiler", Value::from(compiler.to_string()))?;
        }
        if let Some(base) = &self.base_image {
            push("--base-image", "base-image", Value::from(base.as_str()))?;
        }
        Ok(out)
    }
}

/// Everything [`plan`] needs.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Which functions.
    pub selection: Selection,
    /// How to compile.
    pub build: BuildOptions,
    /// Command-line settings.
    pub overrides: Overrides,
    /// The environment to read `CARGO_LAMBDA_IMAGE_*` from (passed in so tests control it).
    pub env: BTreeMap<String, String>,
    /// Reuse an earlier run's `cargo metadata` answer while nothing it depends on changed
    /// (see [`metadata::cached`]): the command line does.
    pub reuse_metadata: bool,
}

impl PlanRequest {
    /// A request with the process environment's `CARGO_LAMBDA_IMAGE_*` variables.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars()
            .filter(|(k, _)| k.starts_with("CARGO_LAMBDA_IMAGE_"))
            .collect();
        self
    }
}

/// One function for one architecture, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionSpec {
    /// The function's configured name (`function-name`, default the binary's): what the
    /// plan, progress and errors call it.
    pub name: String,
    /// The name it is deployed under on Lambda: `name`, with `-<arch>` for every architecture
    /// but x86_64 when several are planned ([`crate::lambda::function_name_among`]). Decided
    /// once, here, among everything planned, so it never depends on what else built.
    pub lambda_name: String,
    /// The Cargo package.
    pub package: String,
    /// The package's version.
    pub package_version: String,
    /// The binary target.
    pub bin: String,
    /// The package's manifest.
    pub manifest_path: Utf8PathBuf,
    /// The architecture.
    pub arch: Arch,
    /// The C library.
    pub libc: Libc,
    /// The Rust target triple.
    pub target: String,
    /// The compiler backend.
    pub compiler: Compiler,
    /// The image `cross` compiles this target in (`cross-image`), when configured.
    pub cross_image: Option<String>,
    /// The base image.
    pub base_image: BaseImage,
    /// The function's own settings (memory, timeout, env, image, deploy, test...), its tag
    /// rendered for this architecture. The spec dereferences to them, so `spec.memory` reads
    /// like any field of the spec.
    #[serde(flatten)]
    pub settings: FunctionSettings,
    /// Where the compiled bootstrap goes: `<target-dir>/lambda-image/<function>/<arch>/bootstrap`.
    pub artifact: Utf8PathBuf,
    /// The Lambda extensions shipped in the image (`image.extensions`), each with the binary
    /// of the workspace it is and where that binary lands once compiled for this function's
    /// target and backend; the image has each at `/opt/extensions/<name>`.
    pub extensions: Vec<ExtensionBinary>,
}

impl std::ops::Deref for FunctionSpec {
    type Target = FunctionSettings;

    fn deref(&self) -> &FunctionSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for FunctionSpec {
    fn deref_mut(&mut self) -> &mut FunctionSettings {
        &mut self.settings
    }
}

impl FunctionSpec {
    /// The function's whole environment: the manifest's values, and the `from-env` ones read
    /// through `lookup` (the process environment, in the tool). A `from-env` variable that is
    /// not set is an error naming the key and the variable when `required` (a deploy), and
    /// left out otherwise (a local run). Values are never shown.
    pub fn environment(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
        required: bool,
    ) -> Result<BTreeMap<String, String>> {
        let mut env = self.env.clone();
        for (key, var) in &self.env_from {
            let value = lookup(var);
            if value.is_none() && !required {
                continue;
            }
            let value = value.ok_or_else(|| Error::InvalidValue {
                source_: Box::new(Source::Manifest {
                    path: self.manifest_path.clone().into(),
                    table: "package.metadata.lambda".into(),
                }),
                key: format!("env.{key}"),
                message: format!("it is read from the environment variable `{var}`, which is not set"),
                help: format!("set {var} where you run cargo lambda-image (e.g. `export {var}=...` or a CI secret), or give env.{key} a value"),
            })?;
            env.insert(key.clone(), value);
        }
        Ok(env)
    }

    /// The compilation target.
    pub fn target(&self) -> Target {
        Target {
            arch: self.arch,
            libc: self.libc,
        }
    }
}

/// The plan: what will be built, computed before any side effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The workspace root.
    pub workspace_root: Utf8PathBuf,
    /// The workspace's manifest.
    pub workspace_manifest: Utf8PathBuf,
    /// Cargo's target directory.
    pub target_directory: Utf8PathBuf,
    /// The Cargo profile.
    pub profile: String,
    /// Compile options.
    pub build: BuildOptions,
    /// Every (function, arch), in workspace order.
    pub functions: Vec<FunctionSpec>,
    /// Every binary of each selected package and of each package an extension comes from
    /// (not only the functions), so the compile stage can tell which packages' binaries share
    /// a name.
    #[serde(skip)]
    pub package_bins: BTreeMap<String, Vec<String>>,
}

impl Plan {
    /// A note for when some function is built on the default base, provided.al2, because
    /// nothing chose a base: Amazon Linux 2 is past the end of its standard support. One note
    /// for the whole plan, however many functions it has.
    pub fn default_base_note(&self) -> Option<String> {
        let base = self
            .functions
            .iter()
            .map(|f| &f.base_image)
            .find(|b| b.defaulted && b.kind == BaseKind::ProvidedAl2)?;
        Some(format!(
            "note: no base image is configured, so images are built on {}; Amazon Linux 2 reached the end of its standard support on {}. To move on, set `base-image = \"{}\"` in [package.metadata.lambda] or [workspace.metadata.lambda], or pass --base-image",
            base.reference,
            crate::lambda::AL2_END_OF_SUPPORT,
            crate::lambda::AL2023_BASE_IMAGE
        ))
    }
}

/// Reads the workspace and computes the plan.
pub fn plan(request: &PlanRequest) -> Result<Plan> {
    let manifest = request.selection.manifest_path.as_deref();
    let metadata = if request.reuse_metadata {
        let cache = request
            .env
            .get("CARGO_LAMBDA_IMAGE_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(crate::registry::default_cache_dir);
        metadata::cached(manifest, &cache)?
    } else {
        metadata::run(manifest)?
    };
    plan_from_metadata(&metadata, request)
}

/// Computes the plan from metadata already read (for callers that have it).
pub fn plan_from_metadata(metadata: &Metadata, request: &PlanRequest) -> Result<Plan> {
    let workspace_manifest = metadata.workspace_root.join("Cargo.toml");
    let workspace_tables = ManifestTables::read(
        &metadata.workspace_metadata,
        workspace_manifest.as_std_path(),
        "workspace.metadata.lambda",
    )?;
    let env = layers::env_layers(&request.env)?;
    let cli = request.overrides.layers()?;
    let profile = request
        .build
        .profile
        .clone()
        .unwrap_or_else(|| "release".to_string());

    if let Some(base) = &workspace_tables.base {
        refuse_workspace_extension(base)?;
    }
    let packages = select_packages(metadata, &request.selection)?;
    let selected: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let catalog = extensions::Catalog::read(metadata, &selected, &workspace_tables, &env, &cli);
    // An extension asked for by name is a mistake worth saying so, before it is reported as
    // missing from the selection (its package need not be a function crate).
    if let Some(bin) = request
        .selection
        .bins
        .iter()
        .find(|b| catalog.is_only_extension(b))
    {
        return Err(extension_selected(bin, &catalog.packages_of_extension(bin)));
    }
    let mut functions = Vec::new();
    let mut all_bins = BTreeMap::new();
    let mut left_out = Vec::new();
    let mut seen: BTreeMap<(String, Arch), String> = BTreeMap::new();
    for package in packages {
        let package_tables = ManifestTables::read(
            &package.metadata,
            package.manifest_path.as_std_path(),
            "package.metadata.lambda",
        )?;
        let bins = package_bins(package);
        check_bin_tables(&package_tables, &bins)?;
        all_bins.insert(
            package.name.to_string(),
            bins.iter().map(|b| b.to_string()).collect(),
        );
        for bin in select_bins(package, &bins, &request.selection)? {
            if catalog.is_extension(&package.name, bin) {
                if request.selection.bins.iter().any(|b| b == bin) {
                    return Err(extension_selected(bin, &[package.name.as_str()]));
                }
                left_out.push(format!("`{bin}` ({})", package.name));
                continue;
            }
            let stack = layers::stack(&workspace_tables, &package_tables, bin, &env, &cli);
            let settings = resolve::apply_defaults(layers::merge(&stack)?, bin);
            resolve::check_merged(&settings, package.manifest_path.as_std_path())?;
            let source = extensions::source_of_extensions(&stack);
            let mut shipped = Vec::new();
            for name in &settings.image.extensions {
                shipped.push((name.clone(), catalog.package_of(name, &source)?.to_string()));
            }
            for &arch in &settings.arches {
                let key = (settings.function_name.clone(), arch);
                let here = format!("{}/{bin}", package.name);
                if let Some(other) = seen.insert(key, here.clone()) {
                    return Err(Error::Selection {
                        message: format!(
                            "two binaries would deploy as the function `{}` ({arch}): {other} and {here}",
                            settings.function_name
                        ),
                        help: "give one of them its own `function-name` in its `[package.metadata.lambda.bin.<name>]` table".into(),
                    });
                }
                let f = spec(metadata, package, bin, &settings, arch, &shipped);
                resolve::check_tag(&f, package.manifest_path.as_std_path())?;
                functions.push(f);
            }
        }
    }
    name_for_lambda(&mut functions)?;
    let known = |bin: &String| all_bins.values().flatten().any(|b: &String| b == bin);
    if let Some(missing) = request.selection.bins.iter().find(|b| !known(b)) {
        let names: Vec<&str> = all_bins.values().flatten().map(String::as_str).collect();
        return Err(Error::Selection {
            message: format!("no selected package has a binary `{missing}`"),
            help: bins_help(missing, &names),
        });
    }
    if functions.is_empty() && !left_out.is_empty() {
        return Err(only_extensions(&left_out));
    }
    add_extension_packages(metadata, &functions, &mut all_bins);
    if functions.is_empty() {
        return Err(Error::Selection {
            message: "no Lambda functions selected".into(),
            help: "a function crate has a binary and either a `[package.metadata.lambda]` table or a `lambda_runtime` dependency; select one with -p NAME or use --workspace".into(),
        });
    }
    Ok(Plan {
        workspace_root: metadata.workspace_root.clone(),
        workspace_manifest,
        target_directory: metadata.target_directory.clone(),
        profile,
        build: request.build.clone(),
        functions,
        package_bins: all_bins,
    })
}

/// Decides every function's Lambda name among everything planned, and refuses two functions
/// that would deploy under one name (`a` for arm64 next to `a-arm64` for x86_64).
fn name_for_lambda(functions: &mut [FunctionSpec]) -> Result<()> {
    let planned: Vec<(String, Arch)> = functions.iter().map(|f| (f.name.clone(), f.arch)).collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for f in functions.iter_mut() {
        f.lambda_name = crate::lambda::function_name_among(
            &f.name,
            f.arch,
            planned.iter().map(|(n, a)| (n.as_str(), *a)),
        );
        let here = format!("`{}` ({})", f.name, f.arch);
        if let Some(other) = seen.insert(f.lambda_name.clone(), here.clone()) {
            return Err(Error::Selection {
                message: format!(
                    "{other} and {here} would both deploy as the Lambda function `{}`",
                    f.lambda_name
                ),
                help: "give one of them another `function-name` in [package.metadata.lambda]"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The planned function `bin` of `package` for `arch`, with the extensions it ships, as
/// (binary, package).
fn spec(
    metadata: &Metadata,
    package: &Package,
    bin: &str,
    settings: &resolve::Settings,
    arch: Arch,
    shipped: &[(String, String)],
) -> FunctionSpec {
    let version = package.version.to_string();
    let mut own = settings.function.clone();
    own.image.tag = resolve::render_tag(
        &own.image.tag,
        &version,
        arch,
        &settings.function_name,
        &package.name,
    );
    let target = Target {
        arch,
        libc: settings.libc,
    };
    let cross_image = settings.cross_image.get(&target.triple()).cloned();
    let extensions = shipped
        .iter()
        .map(|(name, package)| ExtensionBinary {
            name: name.clone(),
            package: package.clone(),
            artifact: extensions::artifact_path(
                &metadata.target_directory,
                name,
                target,
                settings.compiler,
                settings.base_image.glibc,
                cross_image.as_deref(),
            ),
        })
        .collect();
    FunctionSpec {
        extensions,
        artifact: metadata
            .target_directory
            .join("lambda-image")
            .join(&settings.function_name)
            .join(arch.lambda_name())
            .join("bootstrap"),
        name: settings.function_name.clone(),
        // Decided among every planned function, in `name_for_lambda`.
        lambda_name: settings.function_name.clone(),
        package: package.name.to_string(),
        package_version: version,
        bin: bin.to_string(),
        manifest_path: package.manifest_path.clone(),
        arch,
        libc: settings.libc,
        target: target.triple(),
        compiler: settings.compiler,
        cross_image,
        base_image: settings.base_image.clone(),
        settings: own,
    }
}

/// Whether a package is a Lambda function crate: it has a lambda table or depends on a
/// Lambda runtime crate.
pub fn is_function_crate(package: &Package) -> bool {
    package.metadata.get("lambda").is_some()
        || package
            .dependencies
            .iter()
            .any(|d| matches!(d.name.as_str(), "lambda_runtime" | "lambda_http"))
}

/// The names of a package's binaries.
fn package_bins(package: &Package) -> Vec<&str> {
    package
        .targets
        .iter()
        .filter(|t| t.is_kind(TargetKind::Bin))
        .map(|t| t.name.as_str())
        .collect()
}

/// `extension = true` in `[workspace.metadata.lambda]` would make every binary of the
/// workspace an extension, and leave nothing to ship them in: it belongs to a package, or to
/// one binary's `bin.<name>` table.
fn refuse_workspace_extension(base: &Layer) -> Result<()> {
    if base.value.get("extension").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    Err(Error::InvalidValue {
        source_: Box::new(base.source.clone()),
        key: "extension".into(),
        message: "it would make every binary of the workspace a Lambda extension, and none a function".into(),
        help: "put `extension = true` in the extension package's [package.metadata.lambda], or in [workspace.metadata.lambda.bin.<name>] for one binary".into(),
    })
}

/// The error for a selection whose binaries are all Lambda extensions (`left_out`, each as
/// "`bin` (package)").
fn only_extensions(left_out: &[String]) -> Error {
    Error::Selection {
        message: format!(
            "no Lambda functions selected: {} {} a Lambda extension, not a function",
            left_out.join(", "),
            if left_out.len() == 1 { "is" } else { "are" }
        ),
        help: "an extension is built into the images of the functions that name it in `image.extensions`: select those functions (-p NAME, or --workspace)".into(),
    }
}

/// Adds the binaries of the packages the functions' extensions come from to `all_bins`: they
/// are compiled too, and their binaries' names matter as much as the functions' (see
/// `compile::units`).
fn add_extension_packages(
    metadata: &Metadata,
    functions: &[FunctionSpec],
    all_bins: &mut BTreeMap<String, Vec<String>>,
) {
    for extension in functions.iter().flat_map(|f| &f.extensions) {
        let package = metadata
            .workspace_packages()
            .into_iter()
            .find(|p| p.name.as_str() == extension.package);
        if let Some(package) = package {
            all_bins
                .entry(extension.package.clone())
                .or_insert_with(|| {
                    package_bins(package)
                        .iter()
                        .map(|b| b.to_string())
                        .collect()
                });
        }
    }
}

/// The error for `--bin BIN` of a binary that is a Lambda extension.
fn extension_selected(bin: &str, packages: &[&str]) -> Error {
    Error::Selection {
        message: format!(
            "`{bin}` ({}) is a Lambda extension, not a function: it has `extension = true`, or a function names it in `image.extensions`",
            packages.join(", ")
        ),
        help: format!("an extension is built into the images of the functions that name it: select those functions instead (-p NAME, --bin FUNCTION), or remove `{bin}` from `image.extensions` and `extension = true` to build it as a function"),
    }
}

/// A `bin.<name>` table for a binary the package does not have is almost always a typo that
/// would otherwise be silently ignored.
fn check_bin_tables(tables: &ManifestTables, bins: &[&str]) -> Result<()> {
    for (name, layer) in &tables.bins {
        if !bins.contains(&name.as_str()) {
            let help = match did_you_mean(name, bins.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? The package's binaries are: {}",
                    bins.join(", ")
                ),
                None => format!("the package's binaries are: {}", bins.join(", ")),
            };
            return Err(Error::UnknownKey {
                source_: Box::new(layer.source.clone()),
                key: format!("bin.{name}"),
                help,
            });
        }
    }
    Ok(())
}

fn select_packages<'m>(metadata: &'m Metadata, selection: &Selection) -> Result<Vec<&'m Package>> {
    let members = metadata.workspace_packages();
    let names: Vec<&str> = members.iter().map(|p| p.name.as_str()).collect();
    let unknown = |name: &str| Error::Selection {
        message: format!("package `{name}` is not a member of the workspace"),
        help: match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("workspace members: {}", names.join(", ")),
        },
    };
    for name in selection.packages.iter().chain(&selection.exclude) {
        if !names.contains(&name.as_str()) {
            return Err(unknown(name));
        }
    }
    if !selection.packages.is_empty() {
        // Explicitly named packages are taken as functions even without a lambda table.
        let wanted: BTreeSet<&str> = selection.packages.iter().map(String::as_str).collect();
        return Ok(members
            .into_iter()
            .filter(|p| wanted.contains(p.name.as_str()))
            .collect());
    }
    let candidates = if selection.workspace {
        members
    } else if let Some(root) = metadata.root_package() {
        vec![root]
    } else {
        metadata.workspace_default_packages()
    };
    Ok(candidates
        .into_iter()
        .filter(|p| !selection.exclude.iter().any(|e| e == p.name.as_str()))
        .filter(|p| is_function_crate(p))
        .collect())
}

fn select_bins<'p>(
    package: &'p Package,
    bins: &[&'p str],
    selection: &Selection,
) -> Result<Vec<&'p str>> {
    if selection.bins.is_empty() {
        return Ok(bins.to_vec());
    }
    let chosen: Vec<&str> = bins
        .iter()
        .copied()
        .filter(|b| selection.bins.iter().any(|s| s == b))
        .collect();
    // With several packages selected, a --bin only has to exist in one of them; a package
    // without any of the named binaries contributes nothing. A --bin found nowhere is caught
    // by the empty-plan check, but a single package gets the precise error here.
    if chosen.is_empty() && selection.packages.len() == 1 {
        let name = &selection.bins[0];
        return Err(Error::Selection {
            message: format!("package `{}` has no binary `{name}`", package.name),
            help: bins_help(name, bins),
        });
    }
    Ok(chosen)
}

/// Did-you-mean among the binaries, and all of them.
fn bins_help(name: &str, bins: &[&str]) -> String {
    let all = if bins.is_empty() {
        "there are none".to_string()
    } else {
        format!("the binaries are: {}", bins.join(", "))
    };
    match did_you_mean(name, bins.iter().copied()) {
        Some(close) => format!("did you mean `--bin {close}`? {all}"),
        None => all,
    }
}

/// A planned function for unit tests: `name` for `arch` on `base`, with the defaults, under a
/// made-up workspace `/w`.
#[cfg(test)]
pub(crate) fn example_spec(name: &str, arch: Arch, base: &str) -> FunctionSpec {
    let s = resolve::apply_defaults(Default::default(), name);
    let target = Target { arch, libc: s.libc };
    FunctionSpec {
        name: name.into(),
        lambda_name: name.into(),
        package: name.into(),
        package_version: "0.1.0".into(),
        bin: name.into(),
        manifest_path: format!("/w/{name}/Cargo.toml").into(),
        arch,
        libc: s.libc,
        target: target.triple(),
        compiler: s.compiler,
        cross_image: None,
        base_image: BaseImage::from_reference(base),
        settings: FunctionSettings {
            image: ImageSettings {
                tag: resolve::render_tag(&s.function.image.tag, "0.1.0", arch, name, name),
                ..s.function.image
            },
            ..s.function
        },
        artifact: format!(
            "/w/target/lambda-image/{name}/{}/bootstrap",
            arch.lambda_name()
        )
        .into(),
        extensions: Vec::new(),
    }
}
