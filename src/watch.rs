//! What `watch` watches, and which functions a change concerns.
//!
//! A function depends on its package's directory (sources, manifest, build script, `include`
//! files), on the packages of its Lambda extensions, on the directories of the path
//! dependencies they reach through workspace members, and on the workspace's own `Cargo.toml`,
//! `Cargo.lock` and `.cargo/` configuration. A changed
//! file belongs to the deepest package directory that holds it; the functions whose packages
//! reach that package are rebuilt. Cargo's target directory, hidden directories (`.git`) and
//! editor scratch files are ignored.
//!
//! [`Changes`] turns file-system notifications (inotify, through the `notify` crate) into
//! debounced batches of changed paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::{metadata, Plan};
use crate::error::{Error, Result};

/// The directories and files of a plan's functions, and who depends on what.
#[derive(Debug, Clone)]
pub struct WatchSet {
    /// Local package directories, and the Lambda names of the functions that depend on each.
    packages: BTreeMap<PathBuf, BTreeSet<String>>,
    /// The workspace root: its `Cargo.toml`, `Cargo.lock` and `.cargo/` concern everyone.
    workspace_root: PathBuf,
    /// Ignored trees (cargo's target directory).
    ignored: Vec<PathBuf>,
    /// Every function's Lambda name.
    everyone: BTreeSet<String>,
}

impl WatchSet {
    /// The watch set of `plan`'s functions (runs `cargo metadata --no-deps` for the path
    /// dependencies).
    pub fn for_plan(plan: &Plan) -> Result<WatchSet> {
        let metadata = metadata::run(Some(plan.workspace_manifest.as_std_path()))?;
        // Each member's directory, and the directories of its path dependencies.
        let mut deps: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        let mut dirs: BTreeMap<&str, PathBuf> = BTreeMap::new();
        for package in &metadata.packages {
            let Some(dir) = package.manifest_path.parent() else {
                continue;
            };
            dirs.insert(package.name.as_str(), dir.as_std_path().to_path_buf());
            let paths = package
                .dependencies
                .iter()
                .filter_map(|d| d.path.as_ref().map(|p| p.as_std_path().to_path_buf()))
                .collect();
            deps.insert(dir.as_std_path().to_path_buf(), paths);
        }
        let mut packages: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
        for spec in &plan.functions {
            let Some(dir) = spec.manifest_path.parent() else {
                continue;
            };
            // An extension's package is compiled into the function's image as its own is.
            let mut stack = vec![dir.as_std_path().to_path_buf()];
            stack.extend(
                spec.extensions
                    .iter()
                    .filter_map(|e| dirs.get(e.package.as_str()).cloned()),
            );
            let mut seen = BTreeSet::new();
            while let Some(dir) = stack.pop() {
                if !seen.insert(dir.clone()) {
                    continue;
                }
                stack.extend(deps.get(&dir).into_iter().flatten().cloned());
                packages
                    .entry(dir)
                    .or_default()
                    .insert(spec.lambda_name.clone());
            }
        }
        Ok(WatchSet {
            packages,
            workspace_root: plan.workspace_root.as_std_path().to_path_buf(),
            ignored: vec![plan.target_directory.as_std_path().to_path_buf()],
            everyone: plan
                .functions
                .iter()
                .map(|f| f.lambda_name.clone())
                .collect(),
        })
    }

    /// The directories to watch.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = self.packages.keys().cloned().collect();
        roots.push(self.workspace_root.clone());
        roots.sort();
        roots.dedup();
        roots
    }

    /// Whether a change of `path` can never matter.
    pub fn ignores(&self, path: &Path) -> bool {
        if self.ignored.iter().any(|i| path.starts_with(i)) {
            return true;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        // Editors' swap, backup and lock files, written on every keystroke or save.
        if name.ends_with('~')
            || name.ends_with(".swp")
            || name.ends_with(".swx")
            || name.starts_with(".#")
            || name == "4913"
        {
            return true;
        }
        let relative = self
            .roots()
            .into_iter()
            .filter_map(|root| path.strip_prefix(root).ok().map(Path::to_path_buf))
            .min_by_key(|r| r.components().count());
        relative.is_none_or(|r| {
            r.components().any(|c| {
                let c = c.as_os_str().to_string_lossy();
                c.starts_with('.') && c != ".cargo"
            })
        })
    }

    /// The Lambda names of the functions a change of `path` concerns.
    pub fn affected(&self, path: &Path) -> BTreeSet<String> {
        if self.ignores(path) {
            return BTreeSet::new();
        }
        let owner = self
            .packages
            .iter()
            .filter(|(dir, _)| path.starts_with(dir))
            .max_by_key(|(dir, _)| dir.components().count());
        let workspace_file = path.parent() == Some(self.workspace_root.as_path())
            && path
                .file_name()
                .is_some_and(|n| n == "Cargo.toml" || n == "Cargo.lock");
        let cargo_config = path.starts_with(self.workspace_root.join(".cargo"));
        match owner {
            _ if workspace_file || cargo_config => self.everyone.clone(),
            Some((_, functions)) => functions.clone(),
            None => BTreeSet::new(),
        }
    }
}

/// Debounced batches of changed paths under a [`WatchSet`]'s roots.
pub struct Changes {
    rx: mpsc::UnboundedReceiver<PathBuf>,
    // Kept alive for as long as changes are wanted; dropping it stops the notifications.
    _watcher: Arc<Mutex<notify::RecommendedWatcher>>,
}

impl Changes {
    /// Starts watching `set`'s roots. Each root is watched on its own, and each of its
    /// subdirectories recursively, except ignored ones (cargo's target directory can hold
    /// hundreds of thousands of entries).
    pub fn watch(set: &WatchSet) -> Result<Changes> {
        let (tx, rx) = mpsc::unbounded_channel();
        let filter = set.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            for path in event.paths {
                if !filter.ignores(&path) {
                    // The receiver is gone only when watching stopped.
                    let _ = tx.send(path);
                }
            }
        })
        .map_err(|e| watch_error(&set.workspace_root, e))?;
        let watcher = Arc::new(Mutex::new(watcher));
        for root in set.roots() {
            let mut guard = watcher.lock().map_err(|_| Error::Emulation {
                message: "the file watcher's lock is poisoned".into(),
            })?;
            guard
                .watch(&root, RecursiveMode::NonRecursive)
                .map_err(|e| watch_error(&root, e))?;
            let entries =
                std::fs::read_dir(&root).map_err(|e| Error::io("could not list", &root, e))?;
            for entry in entries.map_while(|e| e.ok()) {
                let path = entry.path();
                if path.is_dir() && !set.ignores(&path) && !set.roots().contains(&path) {
                    guard
                        .watch(&path, RecursiveMode::Recursive)
                        .map_err(|e| watch_error(&path, e))?;
                }
            }
        }
        Ok(Changes {
            rx,
            _watcher: watcher,
        })
    }

    /// The next batch: waits for a change, then until no change came for `quiet`.
    pub async fn next_batch(&mut self, quiet: Duration) -> BTreeSet<PathBuf> {
        let mut batch = BTreeSet::new();
        let Some(first) = self.rx.recv().await else {
            return batch;
        };
        batch.insert(first);
        loop {
            match tokio::time::timeout(quiet, self.rx.recv()).await {
                Ok(Some(path)) => {
                    batch.insert(path);
                }
                Ok(None) | Err(_) => return batch,
            }
        }
    }
}

fn watch_error(path: &Path, e: notify::Error) -> Error {
    Error::io(
        "could not watch",
        path,
        std::io::Error::other(e.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> WatchSet {
        let functions = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        WatchSet {
            packages: BTreeMap::from([
                (PathBuf::from("/ws"), functions(&["root"])),
                (PathBuf::from("/ws/api"), functions(&["api", "api-arm64"])),
                (
                    PathBuf::from("/ws/shared"),
                    functions(&["api", "api-arm64", "worker"]),
                ),
                (PathBuf::from("/ws/worker"), functions(&["worker"])),
            ]),
            workspace_root: PathBuf::from("/ws"),
            ignored: vec![PathBuf::from("/ws/target")],
            everyone: functions(&["api", "api-arm64", "root", "worker"]),
        }
    }

    fn names(found: BTreeSet<String>) -> Vec<String> {
        found.into_iter().collect()
    }

    #[test]
    fn a_change_concerns_the_functions_that_reach_its_package() {
        let set = set();
        assert_eq!(
            names(set.affected(Path::new("/ws/api/src/main.rs"))),
            ["api", "api-arm64"]
        );
        assert_eq!(
            names(set.affected(Path::new("/ws/shared/src/lib.rs"))),
            ["api", "api-arm64", "worker"]
        );
        assert_eq!(names(set.affected(Path::new("/ws/src/main.rs"))), ["root"]);
        assert_eq!(set.affected(Path::new("/ws/Cargo.lock")).len(), 4);
        assert_eq!(set.affected(Path::new("/ws/.cargo/config.toml")).len(), 4);
        assert!(set.affected(Path::new("/elsewhere/x.rs")).is_empty());
    }

    #[test]
    fn target_hidden_and_editor_files_are_ignored() {
        let set = set();
        assert!(set.ignores(Path::new("/ws/target/debug/build/x")));
        assert!(set.ignores(Path::new("/ws/.git/index")));
        assert!(set.ignores(Path::new("/ws/api/src/.main.rs.swp")));
        assert!(set.ignores(Path::new("/ws/api/src/main.rs~")));
        assert!(set.ignores(Path::new("/ws/api/src/4913")));
        assert!(!set.ignores(Path::new("/ws/api/src/main.rs")));
        assert!(!set.ignores(Path::new("/ws/.cargo/config.toml")));
    }
}
