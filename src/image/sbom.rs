//! A software bill of materials (SPDX 2.3, JSON) for each image: the crates that really end up
//! in its binary.
//!
//! The crates are Cargo's resolve for the function's target and features (`cargo metadata
//! --filter-platform <triple>` with the build's feature flags), walked from the function's
//! package along normal dependencies only: dev- and build-dependencies, dependencies of
//! other platforms and proc-macros (which run in the compiler, not in the binary) are left
//! out. Each crate carries its declared license, the checksum Cargo.lock records for it and a
//! `pkg:cargo` purl. The image is the root package, which the document DESCRIBES; every
//! package DEPENDS_ON what it uses.
//!
//! The document is reproducible: packages and relationships sorted, the creation time that of
//! the image's files (`SOURCE_DATE_EPOCH`, else 0), and a `documentNamespace` derived from the
//! document's own content (which names the image digest). It is written next to the
//! bootstrap, as `target/lambda-image/<function>/<arch>/sbom.spdx.json`.

use std::collections::{BTreeMap, BTreeSet};

use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use cargo_metadata::{CargoOpt, DependencyKind, Metadata, MetadataCommand, Package, PackageId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::BuiltImage;
use crate::config::{BuildOptions, FunctionSpec};
use crate::error::{Error, Result};
use crate::oci::{digest_hex, sha256_digest};

/// The SBOM's file name, next to the bootstrap.
pub const FILE_NAME: &str = "sbom.spdx.json";
/// The media type of an SPDX JSON document.
pub const MEDIA_SPDX_JSON: &str = "application/spdx+json";

/// Where the SBOM of a function goes: next to its bootstrap.
pub fn path(spec: &FunctionSpec) -> Utf8PathBuf {
    spec.artifact
        .parent()
        .map(|p| p.join(FILE_NAME))
        .unwrap_or_else(|| Utf8PathBuf::from(FILE_NAME))
}

/// One crate in a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it came from (`registry+https://...`), `None` for a path crate.
    pub source: Option<String>,
    /// Its declared license (an SPDX expression), if any.
    pub license: Option<String>,
    /// The SHA-256 Cargo.lock records for it (registry crates), in hex.
    pub checksum: Option<String>,
    /// Whether it comes from crates.io (and can be downloaded from there).
    pub crates_io: bool,
    /// The crates it uses, as indexes into the list it is in.
    pub dependencies: Vec<usize>,
}

/// Writes the SBOM of a built image and returns its path.
pub fn write(
    spec: &FunctionSpec,
    build: &BuildOptions,
    image: &BuiltImage,
    created: u64,
) -> Result<Utf8PathBuf> {
    let document = document(spec, image, &crates(spec, build)?, created);
    let bytes = serde_json::to_vec_pretty(&document).map_err(|e| sbom_error(spec, e))?;
    let path = path(spec);
    crate::oci::write_atomic(path.as_std_path(), &bytes)?;
    Ok(path)
}

/// The crates in the binary of `spec` built with `build`'s features: see [`crates_in_binary`].
pub fn crates(spec: &FunctionSpec, build: &BuildOptions) -> Result<Vec<Crate>> {
    let metadata = resolve(spec, build)?;
    let lock = read_lock(&metadata.workspace_root.join("Cargo.lock"))?;
    crates_in_binary(&metadata, &spec.package, &spec.manifest_path, &lock)
}

fn sbom_error(spec: &FunctionSpec, e: impl std::fmt::Display) -> Error {
    Error::Sbom {
        function: spec.name.clone(),
        message: e.to_string(),
        help: "check that `cargo metadata` works in the workspace and that Cargo.lock is current (run `cargo build` once)".into(),
    }
}

/// Cargo's resolve of the function's package, for its target and the build's features.
fn resolve(spec: &FunctionSpec, build: &BuildOptions) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.manifest_path(spec.manifest_path.as_std_path());
    if !build.features.is_empty() {
        cmd.features(CargoOpt::SomeFeatures(build.features.clone()));
    }
    if build.all_features {
        cmd.features(CargoOpt::AllFeatures);
    }
    if build.no_default_features {
        cmd.features(CargoOpt::NoDefaultFeatures);
    }
    let mut other = vec!["--filter-platform".to_string(), spec.target.clone()];
    if build.locked {
        other.push("--locked".into());
    }
    cmd.other_options(other);
    cmd.exec().map_err(|e| {
        sbom_error(
            spec,
            match e {
                cargo_metadata::Error::CargoMetadata { stderr } => stderr.trim().to_string(),
                other => other.to_string(),
            },
        )
    })
}

/// The packages of Cargo.lock: (name, version, source) to checksum.
type Checksums = BTreeMap<(String, String, Option<String>), String>;

#[derive(Deserialize)]
struct Lockfile {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// Reads the checksums of a Cargo.lock.
pub fn read_lock(path: &Utf8Path) -> Result<Checksums> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("could not read", path, e))?;
    let lock: Lockfile = toml::from_str(&text).map_err(|e| Error::Sbom {
        function: path.to_string(),
        message: format!("{path} is not a Cargo.lock: {e}"),
        help: "run `cargo generate-lockfile` (or any cargo build) to rewrite it".into(),
    })?;
    Ok(lock
        .package
        .into_iter()
        .filter_map(|p| Some(((p.name, p.version, p.source), p.checksum?)))
        .collect())
}

/// The crates of the binary of `package` (at `manifest`): the package itself first, then
/// everything it reaches through normal dependencies in `metadata`'s resolve, sorted by
/// name, version and source. Proc-macros, which run in the compiler, and what only they
/// use are left out.
pub fn crates_in_binary(
    metadata: &Metadata,
    package: &str,
    manifest: &Utf8Path,
    lock: &Checksums,
) -> Result<Vec<Crate>> {
    let packages: BTreeMap<&PackageId, &Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let missing = |what: &str| Error::Sbom {
        function: package.to_string(),
        message: format!("`cargo metadata` has no {what} for the package"),
        help: "run `cargo metadata` in the workspace to see what it says".into(),
    };
    let root = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == package && p.manifest_path == manifest)
        .ok_or_else(|| missing("entry"))?;
    let resolve = metadata
        .resolve
        .as_ref()
        .ok_or_else(|| missing("resolve"))?;
    let nodes: BTreeMap<&PackageId, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    // Every package the binary links, and the edges between them.
    let mut edges: BTreeMap<&PackageId, BTreeSet<&PackageId>> = BTreeMap::new();
    let mut todo = vec![&root.id];
    while let Some(id) = todo.pop() {
        if edges.contains_key(id) {
            continue;
        }
        let uses: BTreeSet<&PackageId> = nodes
            .get(id)
            .into_iter()
            .flat_map(|n| &n.deps)
            .filter(|d| d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal))
            .map(|d| &d.pkg)
            .filter(|pkg| packages.get(pkg).is_some_and(|p| !is_proc_macro(p)))
            .collect();
        todo.extend(uses.iter().copied());
        edges.insert(id, uses);
    }
    let mut found: Vec<&Package> = edges
        .keys()
        .filter_map(|id| packages.get(id))
        .copied()
        .collect();
    found.sort_by_key(|p| {
        (
            p.id != root.id,
            p.name.to_string(),
            p.version.to_string(),
            p.source.as_ref().map(|s| s.repr.clone()),
        )
    });
    let position: BTreeMap<&PackageId, usize> =
        found.iter().enumerate().map(|(i, p)| (&p.id, i)).collect();
    Ok(found
        .iter()
        .map(|p| {
            let source = p.source.as_ref().map(|s| s.repr.clone());
            let key = (p.name.to_string(), p.version.to_string(), source.clone());
            Crate {
                name: p.name.to_string(),
                version: p.version.to_string(),
                license: p.license.as_deref().map(normalize_license),
                checksum: lock.get(&key).cloned(),
                crates_io: p.source.as_ref().is_some_and(|s| s.is_crates_io()),
                dependencies: edges[&p.id]
                    .iter()
                    .filter_map(|d| position.get(d).copied())
                    .collect(),
                source,
            }
        })
        .collect())
}

fn is_proc_macro(package: &Package) -> bool {
    package.targets.iter().any(|t| t.is_proc_macro())
}

/// Old-style `MIT/Apache-2.0` as the SPDX expression it means.
fn normalize_license(license: &str) -> String {
    license
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The SPDX 2.3 document of an image and the crates of its binary (the first, its own).
pub fn document(spec: &FunctionSpec, image: &BuiltImage, crates: &[Crate], created: u64) -> Value {
    let ids = spdx_ids(crates);
    let mut packages = vec![image_package(spec, image)];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID)];
    if let Some(own) = ids.first() {
        relationships.push(relationship(IMAGE_ID, "DEPENDS_ON", own));
    }
    for (krate, id) in crates.iter().zip(&ids) {
        packages.push(crate_package(krate, id));
        for dependency in &krate.dependencies {
            relationships.push(relationship(id, "DEPENDS_ON", &ids[*dependency]));
        }
    }
    relationships.sort_by_key(|r| r.to_string());
    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", spec.name, spec.arch),
        "documentNamespace": "",
        "creationInfo": {
            "created": crate::time::rfc3339_secs(created),
            "creators": [format!("Tool: cargo-lambda-image-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    // Unique per content: the hash of the document (which names the image digest) without it.
    let hash = sha256_digest(document.to_string().as_bytes());
    document["documentNamespace"] = json!(format!(
        "https://spdx.org/spdxdocs/cargo-lambda-image/{}-{}-{}",
        spec.name,
        spec.arch,
        hash.trim_start_matches("sha256:")
    ));
    document
}

const IMAGE_ID: &str = "SPDXRef-Image";

/// The root package: the image, by its manifest digest.
fn image_package(spec: &FunctionSpec, image: &BuiltImage) -> Value {
    let hex = digest_hex(&image.digest).unwrap_or_default();
    let name = image
        .repository
        .rsplit('/')
        .next()
        .unwrap_or(&image.repository);
    json!({
        "SPDXID": IMAGE_ID,
        "name": format!("{}:{}", image.repository, image.tag),
        "versionInfo": spec.package_version,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!(
                "pkg:oci/{name}@sha256%3A{hex}?arch={}&tag={}",
                image.arch.oci_name(),
                image.tag
            ),
        }],
    })
}

fn crate_package(krate: &Crate, id: &str) -> Value {
    let mut package = json!({
        "SPDXID": id,
        "name": krate.name,
        "versionInfo": krate.version,
        "primaryPackagePurpose": "LIBRARY",
        "downloadLocation": if krate.crates_io {
            format!("https://crates.io/api/v1/crates/{}/{}/download", krate.name, krate.version)
        } else {
            "NOASSERTION".to_string()
        },
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": krate.license.as_deref().unwrap_or("NOASSERTION"),
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:cargo/{}@{}", krate.name, krate.version),
        }],
    });
    if let Some(checksum) = &krate.checksum {
        package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": checksum}]);
    }
    package
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// An SPDX identifier per crate, from its name and version (letters, digits, `.` and `-`
/// only), numbered when two crates would share one.
fn spdx_ids(crates: &[Crate]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    crates
        .iter()
        .map(|c| {
            let clean: String = format!("{}-{}", c.name, c.version)
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ch == '.' {
                        ch
                    } else {
                        '-'
                    }
                })
                .collect();
            let base = format!("SPDXRef-Crate-{clean}");
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base}-{n}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(name: &str, version: &str) -> Crate {
        Crate {
            name: name.into(),
            version: version.into(),
            source: None,
            license: None,
            checksum: None,
            crates_io: false,
            dependencies: vec![],
        }
    }

    #[test]
    fn ids_are_spdx_safe_and_unique() {
        let crates = [
            krate("a_b", "1.0.0+x"),
            krate("a-b", "1.0.0+x"),
            krate("c", "2"),
        ];
        assert_eq!(
            spdx_ids(&crates),
            [
                "SPDXRef-Crate-a-b-1.0.0-x",
                "SPDXRef-Crate-a-b-1.0.0-x-2",
                "SPDXRef-Crate-c-2"
            ]
        );
    }

    #[test]
    fn old_style_licenses_become_expressions() {
        assert_eq!(normalize_license("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(normalize_license("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
    }
}
