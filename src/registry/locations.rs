//! Where blobs already are, so a push can mount them from another repository of the same
//! registry instead of uploading them again (as Docker's distribution metadata does).
//!
//! The locations are remembered in the cache directory, one file per registry host, and
//! updated as pushes find, mount or upload blobs. Within one run, pushes of the same blob to
//! the same registry take turns: the first uploads it, the others wait and then mount it. A
//! location that turns out stale (the repository was deleted) is dropped, and the blob is
//! uploaded after all.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// How many repositories are remembered per blob.
const REMEMBERED: usize = 8;

/// One lock per (registry, blob): whoever holds it is the one pushing that blob there.
type Turns = HashMap<(String, String), Arc<AsyncMutex<()>>>;

/// The known locations of blobs, per registry host.
#[derive(Debug, Default)]
pub struct BlobLocations {
    dir: Option<PathBuf>,
    known: Mutex<HashMap<String, Registry>>,
    turns: Mutex<Turns>,
}

/// One registry's blobs and the repositories holding them, most recent first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Registry {
    blobs: BTreeMap<String, Vec<String>>,
}

/// A push's turn with one blob on one registry: while it is held, other pushes of the blob
/// there wait.
pub struct Turn {
    _guard: OwnedMutexGuard<()>,
}

impl BlobLocations {
    /// Locations remembered under `dir` (one JSON file per registry host); `None` keeps them
    /// in memory only.
    pub fn new(dir: Option<PathBuf>) -> BlobLocations {
        BlobLocations {
            dir,
            known: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until no other push of this run handles `digest` on `registry`, and holds the
    /// turn until the returned value is dropped.
    pub async fn turn(&self, registry: &str, digest: &str) -> Turn {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            turns
                .entry((registry.to_string(), digest.to_string()))
                .or_default()
                .clone()
        };
        Turn {
            _guard: lock.lock_owned().await,
        }
    }

    /// The repositories of `registry` known to hold `digest`, most recent first.
    pub fn repositories(&self, registry: &str, digest: &str) -> Vec<String> {
        self.with(registry, |r| {
            r.blobs.get(digest).cloned().unwrap_or_default()
        })
    }

    /// Remembers that `repository` of `registry` holds `digest`.
    pub fn remember(&self, registry: &str, repository: &str, digest: &str) {
        let changed = self.with(registry, |r| {
            let repos = r.blobs.entry(digest.to_string()).or_default();
            if repos.first().map(String::as_str) == Some(repository) {
                return false;
            }
            repos.retain(|x| x != repository);
            repos.insert(0, repository.to_string());
            repos.truncate(REMEMBERED);
            true
        });
        if changed {
            self.save(registry);
        }
    }

    /// Forgets that `repository` holds `digest` (a mount from it failed).
    pub fn forget(&self, registry: &str, repository: &str, digest: &str) {
        self.with(registry, |r| {
            if let Some(repos) = r.blobs.get_mut(digest) {
                repos.retain(|x| x != repository);
            }
        });
        self.save(registry);
    }

    /// Runs `f` on the registry's record, loading it first if needed.
    fn with<T>(&self, registry: &str, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let record = known
            .entry(registry.to_string())
            .or_insert_with(|| self.load(registry));
        f(record)
    }

    fn file(&self, registry: &str) -> Option<PathBuf> {
        let name: String = registry
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Some(self.dir.as_ref()?.join(format!("{name}.json")))
    }

    fn load(&self, registry: &str) -> Registry {
        self.file(registry)
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|data| serde_json::from_slice(&data).ok())
            .unwrap_or_default()
    }

    /// Writes the registry's record. The record is a cache: failing to write it only costs a
    /// later upload, so errors are ignored.
    fn save(&self, registry: &str) {
        let Some(file) = self.file(registry) else {
            return;
        };
        let record = self.with(registry, |r| r.clone());
        if let (Some(dir), Ok(data)) = (file.parent(), serde_json::to_vec(&record)) {
            let _ = std::fs::create_dir_all(dir);
            let _ = crate::oci::write_atomic(&file, &data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_remembered_most_recent_first_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let locations = BlobLocations::new(Some(dir.path().to_path_buf()));
        locations.remember("127.0.0.1:5000", "a", "sha256:1");
        locations.remember("127.0.0.1:5000", "b", "sha256:1");
        locations.remember("other:5000", "c", "sha256:1");
        assert_eq!(
            locations.repositories("127.0.0.1:5000", "sha256:1"),
            ["b", "a"]
        );
        let again = BlobLocations::new(Some(dir.path().to_path_buf()));
        assert_eq!(again.repositories("127.0.0.1:5000", "sha256:1"), ["b", "a"]);
        assert_eq!(again.repositories("other:5000", "sha256:1"), ["c"]);
        again.forget("127.0.0.1:5000", "b", "sha256:1");
        let third = BlobLocations::new(Some(dir.path().to_path_buf()));
        assert_eq!(third.repositories("127.0.0.1:5000", "sha256:1"), ["a"]);
    }

    #[tokio::test]
    async fn pushes_of_one_blob_take_turns() {
        let locations = Arc::new(BlobLocations::new(None));
        let first = locations.turn("r", "sha256:1").await;
        let other = locations.clone();
        let waiting = tokio::spawn(async move {
            let _turn = other.turn("r", "sha256:1").await;
            other.repositories("r", "sha256:1")
        });
        tokio::task::yield_now().await;
        locations.remember("r", "first", "sha256:1");
        drop(first);
        // The second push saw what the first one did.
        assert_eq!(waiting.await.unwrap(), ["first"]);
        // Another blob never waits.
        let _other = locations.turn("r", "sha256:2").await;
    }
}
