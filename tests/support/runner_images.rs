//! Fixtures of the runner tests: the `behave` function cross-compiled for Lambda (static musl,
//! x86_64 and arm64), images of it (scratch and provided-style), and tar layers with entries
//! written byte for byte, so that they can be as malicious as needed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cargo_lambda_image::image::{self, base, BuiltImage, ImageOptions};
use cargo_lambda_image::target::Arch;

use crate::support::images::{echo_spec, fake_provided_base};

/// `behave` from tests/fixtures/emulator, built for Lambda's targets once per test binary.
pub fn behave_bootstrap(arch: Arch) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixture-target-runners");
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--locked", "--bin", "behave"])
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
        .join("release/behave")
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

/// One tar entry written as is.
pub enum Raw<'a> {
    /// A directory.
    Dir(&'a str, u32),
    /// A regular file with its mode and content.
    File(&'a str, u32, &'a [u8]),
    /// A symlink and its target.
    Symlink(&'a str, &'a str),
    /// A hard link and its target.
    HardLink(&'a str, &'a str),
    /// A character device.
    CharDevice(&'a str),
    /// A FIFO.
    Fifo(&'a str),
}

/// A raw tar whose names and link names are copied into the headers byte for byte (the tar
/// crate's builder refuses `..` and absolute paths, which these tests need).
pub fn evil_tar(entries: &[Raw]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_old();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let (path, link, kind, mode, data): (&str, &str, tar::EntryType, u32, &[u8]) = match entry {
            Raw::Dir(p, m) => (p, "", tar::EntryType::Directory, *m, &[]),
            Raw::File(p, m, d) => (p, "", tar::EntryType::Regular, *m, d),
            Raw::Symlink(p, l) => (p, l, tar::EntryType::Symlink, 0o777, &[]),
            Raw::HardLink(p, l) => (p, l, tar::EntryType::Link, 0o644, &[]),
            Raw::CharDevice(p) => (p, "", tar::EntryType::Char, 0o644, &[]),
            Raw::Fifo(p) => (p, "", tar::EntryType::Fifo, 0o644, &[]),
        };
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        let old = header.as_old_mut();
        assert!(path.len() < 100 && link.len() < 100);
        old.name = [0; 100];
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}
