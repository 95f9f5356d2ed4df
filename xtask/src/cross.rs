//! What the tests of the `cross` backend need: `cross` itself (`cargo install`, pinned) and a
//! local image for it to compile in, built from Debian packages (`debootstrap`, then
//! `docker import`), since no image can be pulled on these machines.
//!
//! Both are cached: cross under `~/.cache/cargo-lambda-image/ci/cross-<version>`, the root
//! filesystem as a tarball named after a hash of everything that goes into it, and the image
//! in the Docker engine's data root (which the `ci` task keeps), so a second run checks three
//! paths and one `docker image inspect`.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{cmd, Result};

/// The cross release the tests run.
pub(crate) const CROSS_VERSION: &str = "0.2.5";

/// The Debian release the image is made of (glibc 2.36).
const SUITE: &str = "bookworm";

/// What the image holds besides Debian's `minbase`: gcc and the musl wrapper for x86_64, the
/// aarch64 gcc and its glibc for aarch64-unknown-linux-gnu.
const PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "musl-tools",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
];

/// `ENV` lines of the image: cargo needs to be told the aarch64 linker (cross's own images set
/// the same variables).
const IMAGE_ENV: &[&str] = &[
    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc",
    "CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc",
    "CC_x86_64_unknown_linux_musl=musl-gcc",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
];

/// Directories of the root filesystem nothing in a build reads: documentation, manuals,
/// translations, and apt's downloads and lists.
const TRIM: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
];

/// The Debian mirror used when the machine's apt sources name none.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Overrides the mirror read from the apt sources.
const MIRROR_VAR: &str = "XTASK_DEBIAN_MIRROR";

/// What was prepared: where cross is, and the image's name once it is in the engine.
pub(crate) struct Prepared {
    /// The directory with the `cross` and `cross-util` binaries.
    pub(crate) bin_dir: PathBuf,
    /// The root filesystem tarball to import.
    pub(crate) rootfs: PathBuf,
    /// The image name, `local/cross-bookworm:<hash>`.
    pub(crate) image: String,
}

/// Installs cross and builds the root filesystem tarball, each unless already there. Needs no
/// Docker engine, so the `ci` task runs it while other work goes on.
pub(crate) fn prepare(state_root: &Path) -> Result<Prepared> {
    let bin_dir = install_cross(state_root)?;
    cmd::check_interrupted()?;
    let key = cache_key(&mirror());
    let rootfs = state_root.join(format!("cross-rootfs-{key}.tar"));
    if !rootfs.is_file() {
        build_rootfs(&rootfs)?;
    }
    Ok(Prepared {
        bin_dir,
        rootfs,
        image: format!("local/cross-{SUITE}:{key}"),
    })
}

/// Imports the tarball into the Docker engine at `docker_host`, and into Podman's store (the
/// tests run cross with both), unless an image of that name is there already.
pub(crate) fn import(prepared: &Prepared, docker_host: &std::ffi::OsStr) -> Result<()> {
    let docker = || {
        let mut docker = Command::new("docker");
        docker.env("DOCKER_HOST", docker_host);
        docker
    };
    let image = prepared.image.as_str();
    if !cmd::succeeds(docker().args(["image", "inspect", "--format", "{{.Id}}", image])) {
        say!("importing the cross root filesystem into Docker as {image}");
        import_with(docker(), prepared)?;
    }
    if !cmd::succeeds(Command::new("podman").args(["image", "exists", image])) {
        say!("importing the cross root filesystem into Podman as {image}");
        import_with(Command::new("podman"), prepared)?;
    }
    Ok(())
}

/// `<engine> import` with the image's `ENV` lines; Docker and Podman take the same arguments.
fn import_with(mut engine: Command, prepared: &Prepared) -> Result<()> {
    engine.arg("import");
    for env in IMAGE_ENV {
        engine.args(["--change", &format!("ENV {env}")]);
    }
    cmd::run(engine.arg(&prepared.rootfs).arg(&prepared.image))
}

/// `cargo install cross --locked --debug --version CROSS_VERSION` into the cache, unless that
/// version is there. Returns its `bin` directory.
fn install_cross(state_root: &Path) -> Result<PathBuf> {
    let root = state_root.join(format!("cross-{CROSS_VERSION}"));
    let bin_dir = root.join("bin");
    // Asked outside any Cargo project: cross 0.2.5 asked for its version inside one goes on to
    // check the toolchain, and runs `rustup toolchain add` (an update of the machine's stable).
    let installed = cmd::read(
        Command::new(bin_dir.join("cross"))
            .arg("--version")
            .current_dir("/")
            .env("CROSS_CUSTOM_TOOLCHAIN", "1"),
    )
    .is_ok_and(|version| version.contains(&format!("cross {CROSS_VERSION}")));
    if installed {
        return Ok(bin_dir);
    }
    say!("installing cross {CROSS_VERSION} into {}", root.display());
    cmd::run(
        Command::new("cargo")
            .args(["install", "cross", "--locked", "--version", CROSS_VERSION])
            // cross only starts containers: unoptimized it compiles in a third of the CPU
            // time, which a cold CI run spends beside the tests' compilation.
            .arg("--debug")
            .arg("--root")
            .arg(&root)
            // The workspace's `.cargo/config.toml` is not cross's business.
            .current_dir(state_root),
    )?;
    Ok(bin_dir)
}

/// debootstrap, trim, tar: written under a temporary name and renamed, so an interrupted run
/// leaves no tarball that looks complete.
fn build_rootfs(tarball: &Path) -> Result<()> {
    let dir = tarball.with_extension("dir");
    let partial = tarball.with_extension("tar.partial");
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .map_err(|err| format!("failed to remove {}: {err}", dir.display()))?;
    }
    let mirror = mirror();
    say!("building the cross image's root filesystem from {mirror} (debootstrap {SUITE})");
    cmd::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", "--include"])
            .arg(PACKAGES.join(","))
            .arg(SUITE)
            .arg(&dir)
            .arg(&mirror),
    )
    .map_err(|err| {
        format!("{err}\nhelp: debootstrap needs root and the Debian mirror {mirror} (set {MIRROR_VAR} for another)")
    })?;
    for trimmed in TRIM {
        let path = dir.join(trimmed);
        if path.exists() {
            fs::remove_dir_all(&path)
                .map_err(|err| format!("failed to remove {}: {err}", path.display()))?;
        }
    }
    cmd::run(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["--numeric-owner", "-cf"])
            .arg(&partial)
            .arg("."),
    )?;
    fs::rename(&partial, tarball)
        .map_err(|err| format!("failed to rename {}: {err}", partial.display()))?;
    fs::remove_dir_all(&dir).map_err(|err| format!("failed to remove {}: {err}", dir.display()))?;
    Ok(())
}

/// The Debian mirror: [`MIRROR_VAR`], else the first non-security one of the apt sources.
fn mirror() -> String {
    if let Ok(mirror) = env::var(MIRROR_VAR) {
        return mirror;
    }
    let mut sources = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        sources.extend(more);
    }
    sources
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|text| mirror_in(&text))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned())
}

/// The first Debian archive (not the security one) an apt sources file names, one-line
/// (`deb URL suite`) or deb822 (`URIs: URL`) style.
fn mirror_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| {
            let urls: Vec<&str> = if let Some(uris) = line.strip_prefix("URIs:") {
                uris.split_whitespace().collect()
            } else if line.starts_with("deb ") {
                line.split_whitespace()
                    .skip(1)
                    .filter(|word| !word.starts_with('['))
                    .take(1)
                    .collect()
            } else {
                Vec::new()
            };
            urls
        })
        .find(|url| url.trim_end_matches('/').ends_with("/debian"))
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// A short hash (FNV-1a, hex) of everything the root filesystem is made of, so a change to
/// any of it builds a new tarball and image.
fn cache_key(mirror: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [SUITE, mirror]
        .into_iter()
        .chain(PACKAGES.iter().copied())
        .chain(IMAGE_ENV.iter().copied())
        .chain(TRIM.iter().copied());
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_read_from_either_style_of_sources() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line = "# deb http://old/debian x\n\
                        deb http://security.debian.org/debian-security bookworm-security main\n\
                        deb [arch=amd64] http://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_in(one_line).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_in("deb http://ppa.example/ubuntu jammy main"), None);
    }

    #[test]
    fn the_cache_key_follows_the_mirror() {
        assert_eq!(cache_key("http://a/debian"), cache_key("http://a/debian"));
        assert_ne!(cache_key("http://a/debian"), cache_key("http://b/debian"));
        assert_eq!(cache_key("http://a/debian").len(), 12);
    }
}
