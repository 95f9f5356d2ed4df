//! Directories that several processes of ours share at once (a target directory's
//! `lambda-image/`, the cache), kept sound when any of them is killed at any moment.
//!
//! Everything in them is either complete (a blob or layer named by its digest, an image layout
//! or a root filesystem named by its manifest's digest, a small fact written whole), or a
//! *staging* entry: a file or directory named `.staging-...`, written by one process and renamed
//! to its final name once complete. Its writer holds a shared lock (`flock`) on it from its
//! creation; the lock stays with the entry when it is renamed, where it becomes a *lease*: a
//! reader takes one too on whatever it uses, and holds it until it is done.
//!
//! A process that writes into such a directory first *sweeps* it: every staging entry it can
//! lock exclusively (its writer is gone: killed, or crashed) is removed, and so is every entry
//! the caller calls garbage (an older image no one points at) unless someone holds a lease on
//! it. A lock is released by the kernel when its process dies, so nothing is left behind for
//! longer than until the next run, and nothing in use is ever removed.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The name prefix of staging entries.
pub const STAGING: &str = ".staging-";

/// A shared lock on a file or directory, held until dropped: while any process holds one, no
/// sweep removes the entry.
#[derive(Debug)]
pub struct Lease {
    _lock: File,
    path: PathBuf,
}

impl Lease {
    /// A lease on `path`, or `None` when nothing is there (any more): a sweep may have removed
    /// it between the caller finding it and the lock.
    pub fn take(path: &Path) -> io::Result<Option<Lease>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        file.lock_shared()?;
        if !same_inode(&file, path) {
            return Ok(None);
        }
        Ok(Some(Lease {
            _lock: file,
            path: path.to_path_buf(),
        }))
    }

    /// The leased path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` still names the file `file` was opened from.
fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Leases (or staging entries) a value holds until it is dropped, compared as equal and printed
/// as nothing, so that types describing what was built (which derive `PartialEq` and `Debug`)
/// can carry them.
#[derive(Clone, Default)]
pub struct Held {
    _guard: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Held {
    /// Holds `guard` (a [`Lease`], a [`Staging`]) until the last clone is dropped.
    pub fn new(guard: impl std::any::Any + Send + Sync) -> Held {
        Held {
            _guard: Some(Arc::new(guard)),
        }
    }

    /// Holds nothing.
    pub fn none() -> Held {
        Held::default()
    }
}

impl PartialEq for Held {
    fn eq(&self, _: &Held) -> bool {
        true
    }
}

impl Eq for Held {}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

/// A staging file or directory: created under a name of its own in the directory its final
/// name will be in, leased from the start, removed when dropped uncommitted.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    lock: Option<File>,
    dir: bool,
}

fn unique_name(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{STAGING}{hint}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Staging {
    /// A new, empty staging directory in `parent` (created if need be).
    pub fn dir(parent: &Path, hint: &str) -> io::Result<Staging> {
        std::fs::create_dir_all(parent)?;
        loop {
            let path = parent.join(unique_name(hint));
            std::fs::create_dir(&path)?;
            let lock = File::open(&path)?;
            lock.lock_shared()?;
            // A sweep between the creation and the lock removed it: make another.
            if same_inode(&lock, &path) {
                return Ok(Staging {
                    path,
                    lock: Some(lock),
                    dir: true,
                });
            }
        }
    }

    /// A new staging file in `parent` (created if need be), and the file to write it through.
    pub fn file(parent: &Path, hint: &str) -> io::Result<(Staging, File)> {
        std::fs::create_dir_all(parent)?;
        loop {
            let path = parent.join(unique_name(hint));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            file.lock_shared()?;
            if same_inode(&file, &path) {
                let lock = file.try_clone()?;
                return Ok((
                    Staging {
                        path,
                        lock: Some(lock),
                        dir: false,
                    },
                    file,
                ));
            }
        }
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames it to `dest`, replacing a file there (never a non-empty directory), and returns
    /// the lease it held, now on `dest`.
    pub fn commit(mut self, dest: &Path) -> io::Result<Lease> {
        std::fs::rename(&self.path, dest)?;
        let lock = self
            .lock
            .take()
            .ok_or_else(|| io::Error::other("committed twice"))?;
        Ok(Lease {
            _lock: lock,
            path: dest.to_path_buf(),
        })
    }

    /// Renames the directory to `dest` unless a directory is there already (another process
    /// made the same content at the same time), in which case this one is removed and
    /// `Ok(None)` says to use that one.
    pub fn commit_dir(self, dest: &Path) -> io::Result<Option<Lease>> {
        match std::fs::rename(&self.path, dest) {
            Ok(()) => {
                let mut this = self;
                let lock = this
                    .lock
                    .take()
                    .ok_or_else(|| io::Error::other("committed twice"))?;
                Ok(Some(Lease {
                    _lock: lock,
                    path: dest.to_path_buf(),
                }))
            }
            Err(e)
                if dest.is_dir()
                    && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = if self.dir {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
        }
    }
}

/// Writes `data` to `path` whole: through a staging file renamed over it, so a reader (or a
/// process killed half-way) never sees part of it. The directory is swept first (once per
/// process).
pub fn write_whole(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let parent = path.parent().unwrap_or(Path::new("."));
    sweep_once(parent);
    let (staging, mut file) = Staging::file(parent, "write")?;
    file.write_all(data)?;
    drop(file);
    staging.commit(path).map(drop)
}

/// Sweeps `dir` once per process (see [`sweep`] for what is removed): for directories written
/// into often, where a second sweep would find only this process's own entries.
pub fn sweep_once(dir: &Path) {
    static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let first = SWEPT
        .lock()
        .map(|mut swept| swept.insert(dir.to_path_buf()))
        .unwrap_or(true);
    if first {
        sweep(dir, &|_| false);
    }
}

/// Removes from `dir` every staging entry whose writer is gone, and every entry `garbage` names
/// that no process holds a lease on. Best effort: what cannot be removed stays for the next
/// sweep.
pub fn sweep(dir: &Path, garbage: &dyn Fn(&OsStr) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.map_while(|e| e.ok()) {
        let name = entry.file_name();
        let staging = name.to_string_lossy().starts_with(STAGING);
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            // A symlink is a pointer ([`point`]), never garbage itself; opening it would lock
            // what it points at.
            continue;
        }
        if staging || garbage(&name) {
            remove_unleased(&entry.path());
        }
    }
}

/// Removes `path` if no process holds a lock on it. The exclusive lock is held while it is
/// moved aside (to a staging name, so that a sweeper killed half-way leaves a staging entry
/// for the next sweep) and removed.
fn remove_unleased(path: &Path) {
    let Ok(file) = File::open(path) else {
        return;
    };
    if file.try_lock().is_err() || !same_inode(&file, path) {
        return;
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    let is_staging = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(STAGING));
    let doomed = if is_staging {
        path.to_path_buf()
    } else {
        let aside = parent.join(unique_name("removing"));
        if std::fs::rename(path, &aside).is_err() {
            return;
        }
        aside
    };
    let _ = if file.metadata().is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&doomed)
    } else {
        std::fs::remove_file(&doomed)
    };
}

/// Points the symlink `link` at `target` (a relative path, as symlinks are read), replacing
/// what was there in one step. The new link is made in a staging directory and renamed out of
/// it, so that a process killed in between leaves only a staging entry for the next sweep.
pub fn point(link: &Path, target: &Path) -> io::Result<()> {
    let parent = link.parent().unwrap_or(Path::new("."));
    let staging = Staging::dir(parent, "link")?;
    let made = staging.path().join("link");
    std::os::unix::fs::symlink(target, &made)?;
    std::fs::rename(&made, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staging_entry_is_kept_while_its_writer_lives_and_swept_after() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::dir(dir.path(), "image").unwrap();
        std::fs::write(staging.path().join("f"), "x").unwrap();
        sweep(dir.path(), &|_| false);
        assert!(
            staging.path().join("f").is_file(),
            "a live writer's entry was swept"
        );
        // A writer killed: its entry stays, and its lock is gone (forgetting the handle
        // would keep the lock; closing it is what the kernel does at a kill).
        let path = staging.path().to_path_buf();
        let mut staging = staging;
        staging.lock = None;
        drop(staging);
        assert!(path.exists());
        sweep(dir.path(), &|_| false);
        assert!(!path.exists(), "a dead writer's entry was kept");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn garbage_is_removed_unless_leased() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["old", "leased", "current"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("f"), "x").unwrap();
        }
        let lease = Lease::take(&dir.path().join("leased")).unwrap().unwrap();
        sweep(dir.path(), &|name| name != "current");
        let left: BTreeSet<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, BTreeSet::from(["current".into(), "leased".into()]));
        drop(lease);
        sweep(dir.path(), &|name| name != "current");
        assert!(!dir.path().join("leased").exists());
    }

    #[test]
    fn a_committed_entry_keeps_its_lease_and_a_dropped_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, mut file) = Staging::file(dir.path(), "blob").unwrap();
        std::io::Write::write_all(&mut file, b"data").unwrap();
        let dest = dir.path().join("blob");
        let lease = staging.commit(&dest).unwrap();
        assert_eq!(lease.path(), dest);
        sweep(dir.path(), &|_| true);
        assert!(dest.is_file(), "a leased entry was removed");
        drop(lease);
        let (dropped, _file) = Staging::file(dir.path(), "blob").unwrap();
        let path = dropped.path().to_path_buf();
        drop(dropped);
        assert!(!path.exists());
    }

    #[test]
    fn the_same_directory_made_twice_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sha256-1");
        let a = Staging::dir(dir.path(), "x").unwrap();
        std::fs::write(a.path().join("f"), "a").unwrap();
        let b = Staging::dir(dir.path(), "x").unwrap();
        std::fs::write(b.path().join("f"), "a").unwrap();
        assert!(a.commit_dir(&dest).unwrap().is_some());
        assert!(b.commit_dir(&dest).unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_is_replaced_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("oci");
        point(&link, Path::new("images/a")).unwrap();
        point(&link, Path::new("images/b")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("images/b"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn whole_writes_leave_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fact");
        write_whole(&path, b"1").unwrap();
        write_whole(&path, b"2").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
