//! `cargo metadata --no-deps`, and a cache of its answer.
//!
//! Running cargo costs tens of milliseconds (more through rustup's proxy), which is most of a
//! `--no-build` run and as much as cargo's own up-to-date check in a build with nothing to do.
//! The answer of an earlier run is reused as long as nothing that decides it changed: the workspace's and every member's manifest, the
//! directories new members or binaries would appear in (a member's directory, its parent,
//! `src/` and `src/bin/`), cargo's configuration files, and the environment variables that
//! move the target directory. Any change, or any doubt, runs cargo.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Bump when what is cached, or how it is judged fresh, changes.
const VERSION: &str = "metadata v1";

/// Runs `cargo metadata --no-deps` for the manifest (or the current directory).
pub fn run(manifest_path: Option<&Path>) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.no_deps();
    if let Some(path) = manifest_path {
        cmd.manifest_path(path);
    }
    cmd.exec().map_err(|e| Error::Metadata {
        message: match e {
            cargo_metadata::Error::CargoMetadata { stderr } => stderr.trim().to_string(),
            other => other.to_string(),
        },
    })
}

/// A cached answer with what it depended on.
#[derive(Serialize, Deserialize)]
struct Cached {
    stamps: Vec<Stamp>,
    metadata: Metadata,
}

/// A file or directory as it was: its modification time and size, or that it was missing.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    path: PathBuf,
    seen: Option<(i64, i64, u64)>,
}

impl Stamp {
    fn of(path: PathBuf) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let seen = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.len()));
        Stamp { path, seen }
    }
}

/// The metadata, from `cache_dir` when an earlier answer is still fresh, else from cargo (and
/// then kept for the next run).
pub fn cached(manifest_path: Option<&Path>, cache_dir: &Path) -> Result<Metadata> {
    let file = cache_dir
        .join("metadata")
        .join(format!("{}.json", key(manifest_path)));
    if let Some(cached) = std::fs::read(&file)
        .ok()
        .and_then(|data| serde_json::from_slice::<Cached>(&data).ok())
    {
        if cached
            .stamps
            .iter()
            .all(|s| Stamp::of(s.path.clone()) == *s)
        {
            return Ok(cached.metadata);
        }
    }
    let metadata = run(manifest_path)?;
    let cached = Cached {
        stamps: stamps(&metadata),
        metadata,
    };
    // A cache that cannot be written costs the next run a cargo call, nothing more.
    if let (Some(dir), Ok(data)) = (file.parent(), serde_json::to_vec(&cached)) {
        let _ = std::fs::create_dir_all(dir);
        let _ = crate::oci::write_atomic(&file, &data);
    }
    Ok(cached.metadata)
}

/// Which answer: the manifest asked about (or the directory cargo would start from) and the
/// variables that move the target directory.
fn key(manifest_path: Option<&Path>) -> String {
    let start = match manifest_path {
        Some(path) => path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        None => std::env::current_dir().unwrap_or_default(),
    };
    let mut sha = Sha256::new();
    sha.update(VERSION);
    sha.update(start.to_string_lossy().as_bytes());
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_HOME",
        "CARGO",
    ] {
        sha.update(format!("\n{var}={:?}", std::env::var_os(var)));
    }
    hex::encode(sha.finalize())
}

/// Everything whose change could change the answer.
fn stamps(metadata: &Metadata) -> Vec<Stamp> {
    let root = metadata.workspace_root.as_std_path();
    let mut paths: Vec<PathBuf> = vec![root.join("Cargo.toml"), root.to_path_buf()];
    for package in metadata.workspace_packages() {
        let manifest = package.manifest_path.as_std_path();
        paths.push(manifest.to_path_buf());
        if let Some(dir) = manifest.parent() {
            paths.extend([dir.join("src"), dir.join("src/bin"), dir.to_path_buf()]);
            paths.extend(dir.parent().map(Path::to_path_buf));
        }
    }
    // cargo's configuration, which can move the target directory: in the workspace and every
    // directory above it, and in CARGO_HOME.
    for dir in root.ancestors() {
        paths.push(dir.join(".cargo/config.toml"));
        paths.push(dir.join(".cargo/config"));
    }
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        paths.push(PathBuf::from(home).join("config.toml"));
    }
    paths.sort();
    paths.dedup();
    paths.into_iter().map(Stamp::of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(dir: &Path) -> PathBuf {
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"2\"\n",
        )
        .unwrap();
        let member = dir.join("crates/one/src");
        std::fs::create_dir_all(&member).unwrap();
        std::fs::write(member.join("main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(
            dir.join("crates/one/Cargo.toml"),
            "[package]\nname = \"one\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        dir.join("Cargo.toml")
    }

    fn bins(metadata: &Metadata) -> Vec<String> {
        let mut names: Vec<String> = metadata
            .workspace_packages()
            .iter()
            .flat_map(|p| p.targets.iter().map(|t| t.name.clone()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_answer_is_reused_until_a_member_or_binary_appears() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let manifest = workspace(dir.path());
        let first = cached(Some(&manifest), cache.path()).unwrap();
        assert_eq!(bins(&first), ["one"]);
        assert_eq!(
            bins(&cached(Some(&manifest), cache.path()).unwrap()),
            ["one"]
        );
        // A new binary: src/bin appears.
        std::fs::create_dir_all(dir.path().join("crates/one/src/bin")).unwrap();
        std::fs::write(
            dir.path().join("crates/one/src/bin/two.rs"),
            "fn main() {}\n",
        )
        .unwrap();
        assert_eq!(
            bins(&cached(Some(&manifest), cache.path()).unwrap()),
            ["one", "two"]
        );
        // A new member under the glob: crates/ changes.
        let member = dir.path().join("crates/three/src");
        std::fs::create_dir_all(&member).unwrap();
        std::fs::write(member.join("main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(
            dir.path().join("crates/three/Cargo.toml"),
            "[package]\nname = \"three\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        assert_eq!(
            bins(&cached(Some(&manifest), cache.path()).unwrap()),
            ["one", "three", "two"]
        );
    }
}
