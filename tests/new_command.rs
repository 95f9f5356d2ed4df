//! `cargo lambda-image new`: the scaffolded crate builds, and `test` passes on it at once.

use crate::support;

use support::{cli, fixture_target_dir, run, texts};

#[test]
fn a_new_function_passes_test_straight_away() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("greeter");
    let out = run(cli().args(["new", "greeter", "--path"]).arg(&crate_dir));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), crate_dir.display().to_string());

    let mut cmd = cli();
    cmd.args(["test", "--base-image", "scratch", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("new"))
        // Unoptimized, as the fixtures are (tests/fixtures/workspace/Cargo.toml says why):
        // cargo's own override of the crate's release profile, which the tool passes through.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0");
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("✓ greeter (x86_64)") && stderr.contains("as expected"),
        "{stderr}"
    );
    assert!(stdout.contains("Hello, world!"), "{stdout}");
}

#[test]
fn new_refuses_an_occupied_directory_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let out = run(cli().args(["new", "greeter", "--path"]).arg(dir.path()));
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not empty") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
