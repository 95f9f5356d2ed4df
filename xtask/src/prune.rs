//! CI shares one `CARGO_TARGET_DIR` between runs so that a run compiles only what changed; left
//! alone it keeps every artefact of every earlier configuration (it reached 44 GB). After the
//! test build, everything in its `deps`, `.fingerprint` and `build` directories that the
//! current builds did not name is removed.
//!
//! Cargo names each unit's files after its metadata hash (`libserde-<hash>.rlib`,
//! `.fingerprint/serde-<hash>/`, `build/serde-<hash>/`); its JSON messages name the artefacts of
//! every unit of a build, fresh or not. The hashes in those names are what is kept.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use crate::Result;

/// The units' hashes named by cargo's JSON `messages` (one message per line): the artefacts of
/// `compiler-artifact` messages and the `out_dir` of `build-script-executed` ones.
pub(crate) fn hashes_in(messages: &str) -> BTreeSet<String> {
    let mut hashes = BTreeSet::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let mut paths: Vec<&str> = Vec::new();
        match message["reason"].as_str() {
            Some("compiler-artifact") => {
                paths.extend(
                    message["filenames"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f.as_str()),
                );
                paths.extend(message["executable"].as_str());
            }
            Some("build-script-executed") => paths.extend(message["out_dir"].as_str()),
            _ => {}
        }
        for path in paths {
            // `.../deps/libserde-0123456789abcdef.rlib`, `.../build/serde-0123456789abcdef/out`.
            for component in Path::new(path).components() {
                if let Some(hash) = unit_hash(&component.as_os_str().to_string_lossy()) {
                    hashes.insert(hash.to_string());
                }
            }
        }
    }
    hashes
}

/// The 16-hex-digit hash at the end of a unit's file or directory name (before its
/// extension), if it has one.
fn unit_hash(name: &str) -> Option<&str> {
    let stem = name.split('.').next().unwrap_or(name);
    let (_, hash) = stem.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// Removes from `profile_dir` (e.g. `target/debug`) the units whose hash is not in `keep`.
/// Returns how many entries went and how many bytes they held. Nothing is removed when `keep`
/// is empty (no messages were read: better keep everything than remove it all).
pub(crate) fn prune(profile_dir: &Path, keep: &BTreeSet<String>) -> Result<(usize, u64)> {
    let (mut removed, mut bytes) = (0, 0);
    if keep.is_empty() {
        return Ok((removed, bytes));
    }
    for sub in ["deps", ".fingerprint", "build"] {
        let dir = profile_dir.join(sub);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map_while(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            match unit_hash(&name) {
                Some(hash) if !keep.contains(hash) => {
                    let path = entry.path();
                    bytes += size_of(&path);
                    let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                    gone.map_err(|err| format!("failed to remove {}: {err}", path.display()))?;
                    removed += 1;
                }
                _ => {}
            }
        }
    }
    Ok((removed, bytes))
}

fn size_of(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.map_while(|e| e.ok()).map(|e| e.path()));
            }
        } else {
            total += meta.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_the_builds_named_are_kept_and_the_others_removed() {
        let dir = std::env::temp_dir().join(format!("xtask-prune-{}", std::process::id()));
        let debug = dir.join("debug");
        for path in [
            "deps/libserde-0123456789abcdef.rlib",
            "deps/libserde-0123456789abcdef.rmeta",
            "deps/serde-0123456789abcdef.d",
            "deps/libserde-fedcba9876543210.rlib",
            "deps/integration-1111111111111111",
            ".fingerprint/serde-0123456789abcdef/lib-serde",
            ".fingerprint/serde-fedcba9876543210/lib-serde",
            "build/serde-2222222222222222/out/x",
            "build/serde-3333333333333333/out/x",
        ] {
            let path = debug.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "x").unwrap();
        }
        let messages = format!(
            "{}\n{}\nnot json\n",
            serde_json::json!({"reason": "compiler-artifact", "filenames": [
                debug.join("deps/libserde-0123456789abcdef.rlib"),
                debug.join("deps/libserde-0123456789abcdef.rmeta"),
            ], "executable": debug.join("deps/integration-1111111111111111")}),
            serde_json::json!({"reason": "build-script-executed",
                "out_dir": debug.join("build/serde-2222222222222222/out")}),
        );
        let keep = hashes_in(&messages);
        let (removed, bytes) = prune(&debug, &keep).unwrap();
        assert_eq!((removed, bytes), (3, 3));
        assert!(debug.join("deps/serde-0123456789abcdef.d").is_file());
        assert!(debug.join("deps/integration-1111111111111111").is_file());
        assert!(debug.join(".fingerprint/serde-0123456789abcdef").is_dir());
        assert!(!debug.join(".fingerprint/serde-fedcba9876543210").exists());
        assert!(!debug.join("deps/libserde-fedcba9876543210.rlib").exists());
        assert!(!debug.join("build/serde-3333333333333333").exists());
        assert_eq!(prune(&debug, &BTreeSet::new()).unwrap(), (0, 0));
        fs::remove_dir_all(&dir).unwrap();
    }
}
