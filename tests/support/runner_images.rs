//! Fixtures of the runner tests: the `behave` function cross-compiled for Lambda (static musl,
//! x86_64 and arm64) and images of it (scratch and provided-style); the tar layers with entries
//! written byte for byte are shared with other tests, in `support::images`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cargo_lambda_image::image::{self, base, BuiltImage, ImageOptions};
use cargo_lambda_image::target::Arch;

use crate::support::fixture_target_dir;
use crate::support::images::{echo_spec, fake_provided_base};
pub use crate::support::images::{evil_tar, Raw};

/// `behave` from tests/fixtures/emulator, built for Lambda's targets once per test process.
pub fn behave_bootstrap(arch: Arch) -> PathBuf {
    behave_bin(arch, "behave")
}

/// A binary of the `behave` package (`behave`, `stream`) from tests/fixtures/emulator, static
/// musl for x86_64 and arm64, built once per test process. The emulator's tests run the x86_64
/// ones on this machine too: one build of the package serves every test.
pub fn behave_bin(arch: Arch, name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = fixture_target_dir("musl");
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--locked", "-p", "behave"])
            .args(["--target", "x86_64-unknown-linux-musl"])
            .args(["--target", "aarch64-unknown-linux-musl"])
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
            .output()
            .expect("cargo starts");
        assert!(
            out.status.success(),
            "building the behave fixture for musl failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target
    });
    dir.join(format!("{}-unknown-linux-musl", arch.triple_prefix()))
        .join("release")
        .join(name)
}

/// A binary of the `lifecycle` package (`concurrent`, `snapstart`, `old_runtime`, `tenant`)
/// from tests/fixtures/emulator, static x86_64 musl (it runs on this machine as on Lambda),
/// built once per test process in the fixtures' shared target directory.
pub fn lifecycle_bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = fixture_target_dir("musl");
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--locked", "-p", "lifecycle"])
            .args(["--target", "x86_64-unknown-linux-musl"])
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("cargo starts");
        assert!(
            out.status.success(),
            "building the lifecycle fixture for musl failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target
    });
    dir.join("x86_64-unknown-linux-musl/release").join(name)
}

/// A binary of the `extensions` package (aws-lambda-rust-runtime's extension examples) from
/// tests/fixtures/emulator, static x86_64 musl, built once per test process.
pub fn extension_example(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = fixture_target_dir("musl");
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--locked", "-p", "extensions"])
            .args(["--target", "x86_64-unknown-linux-musl"])
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("cargo starts");
        assert!(
            out.status.success(),
            "building the extensions fixture for musl failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target
    });
    dir.join("x86_64-unknown-linux-musl/release").join(name)
}

/// An image of `behave` on `scratch` (ENTRYPOINT is the bootstrap itself), in `dir`.
pub fn scratch_image(arch: Arch, dir: &Path, tag: &str) -> BuiltImage {
    let mut spec = echo_spec(arch, "scratch", dir, &behave_bootstrap(arch));
    spec.image.tag = tag.to_string();
    image::assemble(
        &spec,
        spec.artifact.as_std_path(),
        &base::scratch(arch),
        &ImageOptions::default(),
    )
    .expect("the scratch image assembles")
}

/// An image of `behave` on the provided.al2 stand-in (busybox sh, `/lambda-entrypoint.sh`),
/// x86_64 only, in `dir`.
pub fn provided_image(dir: &Path, tag: &str) -> BuiltImage {
    let base_dir = fake_provided_base(dir);
    let reference = format!("oci:{}:al2", base_dir.display());
    let mut spec = echo_spec(
        Arch::X86_64,
        &reference,
        dir,
        &behave_bootstrap(Arch::X86_64),
    );
    spec.image.tag = tag.to_string();
    let resolved = base::from_layout(&base_dir, Some("al2"), Arch::X86_64, &reference)
        .expect("the provided base resolves");
    image::assemble(
        &spec,
        spec.artifact.as_std_path(),
        &resolved,
        &ImageOptions::default(),
    )
    .expect("the provided image assembles")
}
