//! Lambda extensions shipped in images: which binaries of the workspace are extensions rather
//! than functions, and what a function's `image.extensions` resolves to.
//!
//! A binary is an extension when its own tables say `extension = true`, or when the tables of
//! a function crate of the workspace name it in `image.extensions`. An extension is never
//! planned as a function: `--workspace` and `-p` leave it out, and selecting it with `--bin` is
//! an error. Each function gets the extensions it names, each resolved to one binary of the
//! workspace (an unknown name is an error with a did-you-mean) and compiled for the function's
//! target with its backend into a path of its own ([`artifact_path`]), from which the image
//! stage installs it at `/opt/extensions/<name>`.

use std::collections::BTreeSet;

use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use cargo_metadata::Metadata;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{did_you_mean, Error, Result, Source};
use crate::target::{Compiler, GlibcVersion, Libc, Target};

use super::layers::{self, Layer, ManifestTables};

/// Where the image puts extensions: Lambda starts every executable of this directory before
/// the runtime.
pub const EXTENSIONS_DIR: &str = "opt/extensions";

/// One extension of a function, resolved to a binary of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionBinary {
    /// The binary's name, which is its file's name under `/opt/extensions`.
    pub name: String,
    /// The package the binary belongs to.
    pub package: String,
    /// Where the binary lands once compiled for the function's target and backend; functions
    /// with the same target and backend share it.
    pub artifact: Utf8PathBuf,
}

impl ExtensionBinary {
    /// Its path in the image, without the leading `/`: `opt/extensions/<name>`.
    pub fn image_path(&self) -> String {
        format!("{EXTENSIONS_DIR}/{}", self.name)
    }
}

/// Where an extension lands once compiled:
/// `<target-dir>/lambda-image/.extensions/<name>/<triple>-<compiler>[-glibc<v>][-<image>]/<name>`.
///
/// The directory names everything that changes the binary (the target, the backend, the glibc
/// zigbuild pins, the image cross compiles in, by a hash of its name), so that two functions
/// whose builds differ never overwrite each other's copy, and two whose builds are the same
/// share one. The leading dot keeps it apart from the functions' directories, whose names
/// (Lambda function names) have no dots.
pub fn artifact_path(
    target_directory: &Utf8Path,
    name: &str,
    target: Target,
    compiler: Compiler,
    glibc: Option<GlibcVersion>,
    cross_image: Option<&str>,
) -> Utf8PathBuf {
    let mut variant = format!("{}-{compiler}", target.triple());
    if let (Compiler::Zigbuild, Libc::Gnu, Some(glibc)) = (compiler, target.libc, glibc) {
        variant.push_str(&format!("-glibc{glibc}"));
    }
    if let (Compiler::Cross, Some(image)) = (compiler, cross_image) {
        let hash = hex::encode(Sha256::digest(image.as_bytes()));
        variant.push('-');
        variant.push_str(&hash[..12]);
    }
    target_directory
        .join("lambda-image")
        .join(".extensions")
        .join(name)
        .join(variant)
        .join(name)
}

/// The binaries of the workspace, and which of them are extensions.
#[derive(Debug, Clone, Default)]
pub(super) struct Catalog {
    /// Every binary of every member, as (package, binary), in workspace order.
    bins: Vec<(String, String)>,
    /// The binaries that are extensions.
    extensions: BTreeSet<(String, String)>,
}

impl Catalog {
    /// Reads which binaries are extensions from the tables of every function crate of the
    /// workspace (and of the `selected` packages), merged as for a function. Tables that do
    /// not read or merge are passed over here: a selected package's errors are reported when
    /// it is planned, and an unselected package's are not this run's business.
    pub(super) fn read(
        metadata: &Metadata,
        selected: &BTreeSet<&str>,
        workspace: &ManifestTables,
        env: &[Layer],
        cli: &[Layer],
    ) -> Catalog {
        let mut catalog = Catalog::default();
        let mut named = BTreeSet::new();
        for package in metadata.workspace_packages() {
            let bins = super::package_bins(package);
            catalog.bins.extend(
                bins.iter()
                    .map(|bin| (package.name.to_string(), bin.to_string())),
            );
            if !selected.contains(package.name.as_str()) && !super::is_function_crate(package) {
                continue;
            }
            let Ok(tables) = ManifestTables::read(
                &package.metadata,
                package.manifest_path.as_std_path(),
                "package.metadata.lambda",
            ) else {
                continue;
            };
            for bin in bins {
                let stack = layers::stack(workspace, &tables, bin, env, cli);
                let Ok(config) = layers::merge(&stack) else {
                    continue;
                };
                let settings = super::resolve::apply_defaults(config, bin);
                if settings.extension {
                    catalog
                        .extensions
                        .insert((package.name.to_string(), bin.to_string()));
                }
                named.extend(settings.function.image.extensions);
            }
        }
        for (package, bin) in &catalog.bins {
            if named.contains(bin) {
                catalog.extensions.insert((package.clone(), bin.clone()));
            }
        }
        catalog
    }

    /// Whether the binary `bin` of `package` is an extension.
    pub(super) fn is_extension(&self, package: &str, bin: &str) -> bool {
        self.extensions
            .contains(&(package.to_string(), bin.to_string()))
    }

    /// Whether every binary of the workspace named `bin` is an extension (and there is one).
    pub(super) fn is_only_extension(&self, bin: &str) -> bool {
        let mut named = self.bins.iter().filter(|(_, b)| b == bin).peekable();
        named.peek().is_some() && named.all(|(p, b)| self.is_extension(p, b))
    }

    /// The packages whose binary named `bin` is an extension.
    pub(super) fn packages_of_extension(&self, bin: &str) -> Vec<&str> {
        self.extensions
            .iter()
            .filter(|(_, b)| b == bin)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// The package of the binary `name`, for an entry of `image.extensions` that `source` set:
    /// a name no member's binary has, or that two packages' binaries have, is an error naming
    /// the key and where it was set.
    pub(super) fn package_of(&self, name: &str, source: &Source) -> Result<&str> {
        let owners: Vec<&str> = self
            .bins
            .iter()
            .filter(|(_, bin)| bin == name)
            .map(|(package, _)| package.as_str())
            .collect();
        let invalid = |message: String, help: String| Error::InvalidValue {
            source_: Box::new(source.clone()),
            key: "image.extensions".into(),
            message,
            help,
        };
        match owners.as_slice() {
            [package] => Ok(package),
            [] => {
                let mut names: Vec<&str> = self.bins.iter().map(|(_, b)| b.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                let all = format!("the workspace's binaries are: {}", names.join(", "));
                Err(invalid(
                    format!("`{name}` is not a binary of the workspace"),
                    match did_you_mean(name, names.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`? {all}"),
                        None => format!("an extension is a [[bin]] target of a workspace member; {all}"),
                    },
                ))
            }
            several => Err(invalid(
                format!(
                    "`{name}` is a binary of several packages ({}), so it is not clear which one to ship",
                    several.join(", ")
                ),
                "both would be /opt/extensions/".to_string()
                    + name
                    + ": rename one of them (`name` of its [[bin]] table)",
            )),
        }
    }
}

/// The layer of `stack` that set `image.extensions` last, which is where an error in it
/// points.
pub(super) fn source_of_extensions(stack: &[&Layer]) -> Source {
    stack
        .iter()
        .rev()
        .find(|layer| layer.value.pointer("/image/extensions").is_some())
        .map(|layer| layer.source.clone())
        .unwrap_or(Source::Default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Arch;

    #[test]
    fn builds_that_differ_land_apart_and_builds_that_do_not_share_a_path() {
        let dir = Utf8Path::new("/w/target");
        let musl = Target {
            arch: Arch::X86_64,
            libc: Libc::Musl,
        };
        let gnu = Target {
            arch: Arch::Arm64,
            libc: Libc::Gnu,
        };
        let al2 = Some(GlibcVersion {
            major: 2,
            minor: 26,
        });
        let path = |target, compiler, glibc, image| {
            artifact_path(dir, "telemetry", target, compiler, glibc, image).to_string()
        };
        assert_eq!(
            path(musl, Compiler::Cargo, al2, None),
            "/w/target/lambda-image/.extensions/telemetry/x86_64-unknown-linux-musl-cargo/telemetry"
        );
        // Only zigbuild pins glibc, and only for gnu: the base's glibc changes nothing else.
        assert_eq!(
            path(musl, Compiler::Cargo, None, None),
            path(musl, Compiler::Cargo, al2, None)
        );
        assert_eq!(
            path(gnu, Compiler::Zigbuild, al2, None),
            "/w/target/lambda-image/.extensions/telemetry/aarch64-unknown-linux-gnu-zigbuild-glibc2.26/telemetry"
        );
        assert_ne!(
            path(musl, Compiler::Cargo, None, None),
            path(musl, Compiler::Zigbuild, None, None)
        );
        let cross = path(musl, Compiler::Cross, None, Some("local/cross:1"));
        assert!(
            cross.contains("/x86_64-unknown-linux-musl-cross-") && cross.ends_with("/telemetry"),
            "{cross}"
        );
        assert_ne!(
            cross,
            path(musl, Compiler::Cross, None, Some("local/cross:2"))
        );
        assert_ne!(cross, path(musl, Compiler::Cross, None, None));
    }

    fn catalog(bins: &[(&str, &str)], extensions: &[(&str, &str)]) -> Catalog {
        let own = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(p, b)| (p.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        Catalog {
            bins: own(bins),
            extensions: own(extensions).into_iter().collect(),
        }
    }

    #[test]
    fn a_name_resolves_to_one_binary_of_the_workspace_or_is_an_error_with_a_did_you_mean() {
        let c = catalog(
            &[
                ("api", "api"),
                ("telemetry-ext", "telemetry"),
                ("a", "twin"),
                ("b", "twin"),
            ],
            &[("telemetry-ext", "telemetry")],
        );
        let source = Source::Manifest {
            path: "/w/api/Cargo.toml".into(),
            table: "package.metadata.lambda".into(),
        };
        assert_eq!(c.package_of("telemetry", &source).unwrap(), "telemetry-ext");
        let err = c.package_of("telemetri", &source).unwrap_err();
        let text = format!("{err}");
        assert!(
            text.contains("image.extensions") && text.contains("/w/api/Cargo.toml"),
            "{text}"
        );
        let help = miette::Diagnostic::help(&err).unwrap().to_string();
        assert!(help.starts_with("did you mean `telemetry`?"), "{help}");
        let err = c.package_of("twin", &source).unwrap_err().to_string();
        assert!(err.contains("several packages (a, b)"), "{err}");
        assert!(c.is_extension("telemetry-ext", "telemetry"));
        assert!(c.is_only_extension("telemetry"));
        assert!(!c.is_only_extension("api") && !c.is_only_extension("nope"));
        assert!(!c.is_extension("api", "api"));
        assert_eq!(c.packages_of_extension("telemetry"), ["telemetry-ext"]);
    }
}
