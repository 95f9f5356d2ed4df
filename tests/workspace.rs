//! A workspace of three function crates, one broken on purpose: the other two are still built
//! into images, the failure is reported on its own with its stage, a summary lists all three,
//! and the exit status says that something failed.

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::{cli, fixture_target_dir, json_lines, run, texts};

fn write_crate(root: &Path, name: &str, main: &str) {
    std::fs::create_dir_all(root.join(name).join("src")).unwrap();
    std::fs::write(
        root.join(name).join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.lambda]\n"),
    )
    .unwrap();
    std::fs::write(root.join(name).join("src/main.rs"), main).unwrap();
}

#[test]
fn one_broken_crate_does_not_hide_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"alpha\", \"broken\", \"omega\"]\n",
    )
    .unwrap();
    write_crate(root, "alpha", "fn main() {}\n");
    write_crate(
        root,
        "broken",
        "fn main() { let x: u32 = \"not a number\"; }\n",
    );
    write_crate(root, "omega", "fn main() {}\n");

    let mut cmd = cli();
    cmd.args([
        "image",
        "--workspace",
        "--base-image",
        "scratch",
        "--message-format",
        "json",
        "--manifest-path",
    ])
    .arg(root.join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("workspace"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    let events = json_lines(&out);
    let images: Vec<&str> = events
        .iter()
        .filter(|e| e["reason"] == "image")
        .map(|e| e["image"]["function"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["alpha", "omega"], "{stdout}");
    let errors: Vec<&Value> = events.iter().filter(|e| e["reason"] == "error").collect();
    assert_eq!(
        errors.len(),
        2,
        "one per failing function, then the overall one: {stdout}"
    );
    assert_eq!(errors[0]["function"], "broken");
    assert_eq!(errors[0]["stage"], "compile");
    assert_eq!(errors[1]["code"], "lambda_image::some_failed");
    assert_eq!(errors[1]["message"], "1 of 3 functions failed");

    // The compiler's own diagnostic reached stderr, and the summary lists every function.
    assert!(stderr.contains("mismatched types"), "{stderr}");
    for line in ["✓ alpha", "✗ broken", "failed to compile", "✓ omega"] {
        assert!(stderr.contains(line), "missing `{line}` in {stderr}");
    }
    // Both good images are really there.
    for name in ["alpha", "omega"] {
        let layout = fixture_target_dir("workspace")
            .join(format!("lambda-image/{name}/x86_64/oci/index.json"));
        assert!(layout.is_file(), "{}", layout.display());
    }
}

/// Flag values are checked against the plan before anything compiles: nothing is built, and
/// the error names the flag.
#[test]
fn flag_values_are_checked_before_anything_compiles() {
    let manifest = support::fixture_workspace().join("Cargo.toml");
    let target = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["image", "--workspace", "--output", "docker-archive=one.tar"],
            "--output",
        ),
        (&["image", "-p", "echo", "--output", "zip=x"], "--output"),
        (
            &["image", "-p", "echo", "--dockerfile", "Dockerfile"],
            "--dockerfile",
        ),
        (
            &["push", "-p", "echo", "--registry", "example.com/not/a/host"],
            "--registry",
        ),
    ];
    for (args, flag) in cases {
        let mut cmd = cli();
        cmd.args(args)
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target.path());
        let out = run(&mut cmd);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}\n{stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} does not name {flag}: {stderr}"
        );
        assert!(
            !stderr.contains("Compiling"),
            "{args:?} compiled first: {stderr}"
        );
        assert!(
            !target.path().join("lambda-image").exists(),
            "{args:?} left something in the target directory"
        );
    }
}

/// A dry run's summary says what it did: it planned, it did not build.
#[test]
fn a_dry_run_summary_says_planned() {
    let manifest = support::fixture_workspace().join("Cargo.toml");
    let mut cmd = cli();
    cmd.args([
        "build",
        "--dry-run",
        "--workspace",
        "--arch",
        "x86_64,arm64",
    ])
    .arg("--manifest-path")
    .arg(&manifest);
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ✓")).collect();
    assert_eq!(summary.len(), 6, "{stderr}");
    assert!(summary.iter().all(|l| l.ends_with(" planned")), "{stderr}");
}
