//! The SPDX SBOM of `image --sbom`: valid for a third-party validator (`pyspdxtools`, PyPI
//! `spdx-tools`), naming the crates that are really in the binary with Cargo.lock's checksums,
//! and nothing else (dev-, build- and other-platform dependencies, proc-macros, features not
//! asked for); the same bytes every time.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cargo_lambda_image::config::{self, BuildOptions, Overrides, PlanRequest, Selection};
use cargo_lambda_image::image::sbom;
use cargo_lambda_image::target::Arch;
use serde_json::Value;
use support::{cli, fixture_target_dir, fixture_workspace, json_lines, run, texts};

/// `image --sbom` of the fixture's echo function for x86_64 on scratch; returns the `image`
/// event.
fn image_with_sbom() -> Value {
    let mut cmd = cli();
    cmd.args([
        "image",
        "--sbom",
        "--locked",
        "--message-format",
        "json",
        "-p",
        "echo",
        "--arch",
        "x86_64",
        "--base-image",
        "scratch",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
    .env_remove("SOURCE_DATE_EPOCH");
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "image failed\n{stdout}\n{stderr}");
    json_lines(&out)
        .into_iter()
        .find(|e| e["reason"] == "image")
        .expect("an image event")
}

/// Runs `pyspdxtools -i FILE` (from the CI venv when it is not on PATH).
fn pyspdxtools(file: &Path) -> Output {
    let mut candidates = vec![PathBuf::from("pyspdxtools")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/cargo-lambda-image/ci/venv/bin/pyspdxtools"));
    }
    for program in &candidates {
        if let Ok(out) = Command::new(program).arg("-i").arg(file).output() {
            return out;
        }
    }
    panic!(
        "pyspdxtools not found (tried {candidates:?}): run `cargo xtask ci`, or \
         `~/.cache/cargo-lambda-image/ci/venv/bin/pip install spdx-tools`"
    )
}

/// Cargo.lock's checksums by (name, version).
fn lock_checksums(lock: &Path) -> BTreeMap<(String, String), String> {
    let lock: toml::Table = toml::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let field = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
            Some(((field("name")?, field("version")?), field("checksum")?))
        })
        .collect()
}

#[test]
fn image_sbom_names_the_crates_of_the_binary_with_lock_checksums_and_validates() {
    let event = image_with_sbom();
    let path = PathBuf::from(
        event["sbom"]
            .as_str()
            .expect("the image event names the SBOM"),
    );
    assert_eq!(
        path,
        fixture_target_dir("musl").join("lambda-image/fixture-echo/x86_64/sbom.spdx.json")
    );
    let bytes = std::fs::read(&path).unwrap();
    let out = pyspdxtools(&path);
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && !stdout.contains("validation") && !stderr.contains("validation"),
        "pyspdxtools refused it\n{stdout}\n{stderr}"
    );

    let document: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(document["spdxVersion"], "SPDX-2.3");
    let packages = document["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for wanted in ["echo", "lambda_runtime", "serde", "serde_json", "tokio"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    // In Cargo.lock, but not in a Linux binary: other platforms' crates, and proc-macros
    // (they run in the compiler).
    let lock = std::fs::read_to_string(fixture_workspace().join("Cargo.lock")).unwrap();
    for absent in ["windows-sys", "wasi", "serde_derive", "tokio-macros"] {
        assert!(
            lock.contains(&format!("name = \"{absent}\"")),
            "{absent} is in the lock"
        );
        assert!(!names.contains(&absent), "{absent} listed in {names:?}");
    }

    // The root is the image, by digest; it depends on the function's crate.
    let image = &packages[0];
    let digest = event["image"]["digest"].as_str().unwrap();
    assert_eq!(image["SPDXID"], "SPDXRef-Image");
    assert_eq!(
        image["checksums"][0]["checksumValue"],
        digest.trim_start_matches("sha256:")
    );
    let relationships = document["relationships"].as_array().unwrap();
    let has = |from: &str, kind: &str, to: &str| {
        relationships.iter().any(|r| {
            r["spdxElementId"] == from
                && r["relationshipType"] == kind
                && r["relatedSpdxElement"] == to
        })
    };
    assert!(has("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"));
    assert!(has(
        "SPDXRef-Image",
        "DEPENDS_ON",
        "SPDXRef-Crate-echo-0.1.0"
    ));

    // Every registry crate carries Cargo.lock's checksum and its purl.
    let checksums = lock_checksums(&fixture_workspace().join("Cargo.lock"));
    let mut checked = 0;
    for package in &packages[1..] {
        let (name, version) = (
            package["name"].as_str().unwrap(),
            package["versionInfo"].as_str().unwrap(),
        );
        assert_eq!(
            package["externalRefs"][0]["referenceLocator"],
            format!("pkg:cargo/{name}@{version}")
        );
        let expected = checksums.get(&(name.to_string(), version.to_string()));
        assert_eq!(
            package["checksums"][0]["checksumValue"].as_str(),
            expected.map(String::as_str),
            "{name} {version}"
        );
        checked += usize::from(expected.is_some());
    }
    assert!(checked > 10, "only {checked} crates had checksums");
    let serde = packages.iter().find(|p| p["name"] == "serde").unwrap();
    assert_eq!(serde["licenseDeclared"], "MIT OR Apache-2.0");

    // The same bytes the next time, namespace included.
    let again = image_with_sbom();
    assert_eq!(again["image"]["digest"], event["image"]["digest"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the SBOM is reproducible"
    );
}

/// A path crate `name` next to the workspace's package, with a library (a proc-macro when
/// asked) and the given manifest lines.
fn path_crate(root: &Path, name: &str, extra: &str) {
    std::fs::create_dir_all(root.join(name).join("src")).unwrap();
    std::fs::write(root.join(name).join("src/lib.rs"), "").unwrap();
    std::fs::write(
        root.join(name).join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}\n"),
    )
    .unwrap();
}

fn crate_names(spec: &config::FunctionSpec, features: &[&str]) -> Vec<String> {
    let build = BuildOptions {
        features: features.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    };
    let crates = sbom::crates(spec, &build).unwrap();
    assert_eq!(
        crates[0].name, "func",
        "the function's own crate comes first"
    );
    crates.into_iter().map(|c| c.name).collect()
}

#[test]
fn dev_build_proc_macro_other_platform_and_unasked_feature_dependencies_are_left_out() {
    let ws = support::TempWorkspace::new(
        r#"used = { path = "../used" }
mymacro = { path = "../mymacro" }
featured = { path = "../featured", optional = true }

[features]
extra = ["dep:featured"]

[dev-dependencies]
devonly = { path = "../devonly" }

[build-dependencies]
buildonly = { path = "../buildonly" }

[target.'cfg(windows)'.dependencies]
winonly = { path = "../winonly" }

[target.'cfg(target_arch = "aarch64")'.dependencies]
armonly = { path = "../armonly" }

[package.metadata.lambda]
"#,
        "",
        &[],
    );
    let root = ws.dir.path();
    path_crate(
        root,
        "used",
        "license = \"MIT/Apache-2.0\"\n[dependencies]\ndeeper = { path = \"../deeper\" }",
    );
    path_crate(
        root,
        "mymacro",
        "[lib]\nproc-macro = true\n[dependencies]\nmacrodep = { path = \"../macrodep\" }",
    );
    for name in [
        "deeper",
        "macrodep",
        "featured",
        "devonly",
        "buildonly",
        "winonly",
        "armonly",
    ] {
        path_crate(root, name, "");
    }
    let plan = config::plan(&PlanRequest {
        selection: Selection {
            manifest_path: Some(ws.manifest()),
            ..Default::default()
        },
        overrides: Overrides {
            arch: Some(vec![Arch::X86_64, Arch::Arm64]),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let (x86, arm) = (&plan.functions[0], &plan.functions[1]);
    assert_eq!(crate_names(x86, &[]), ["func", "deeper", "used"]);
    assert_eq!(crate_names(arm, &[]), ["func", "armonly", "deeper", "used"]);
    assert_eq!(
        crate_names(x86, &["extra"]),
        ["func", "deeper", "featured", "used"]
    );
    let used = sbom::crates(x86, &BuildOptions::default()).unwrap();
    let used = used.iter().find(|c| c.name == "used").unwrap();
    assert_eq!(used.license.as_deref(), Some("MIT OR Apache-2.0"));
    assert_eq!(used.checksum, None, "path crates have no checksum");
}
