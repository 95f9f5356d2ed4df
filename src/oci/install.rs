//! Putting a freshly written directory (an OCI layout, an unpacked root filesystem) where
//! readers look for it, without a moment in which they find nothing: the two trees are
//! exchanged in one step (`renameat2(RENAME_EXCHANGE)`), and the caller decides what becomes
//! of the old one (removed at once, or kept a while for processes still running in it).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Puts the directory `fresh` at `target`. With nothing at `target` this is a rename, and
/// `Ok(false)`; otherwise the two are exchanged atomically, the old tree is then at `fresh`,
/// and `Ok(true)`. Another process's swap landing in between is retried.
pub fn install_dir(fresh: &Path, target: &Path) -> io::Result<bool> {
    let mut attempts = 0;
    loop {
        match std::fs::rename(fresh, target) {
            Ok(()) => return Ok(false),
            Err(e) if std::fs::symlink_metadata(target).is_err() => return Err(e),
            Err(_) => {}
        }
        match exchange(fresh, target) {
            Ok(()) => return Ok(true),
            // `target` went away in between (another process's swap): try again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Exchanges two paths atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tree_is_renamed_and_an_existing_one_exchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (fresh, target) = (dir.path().join("fresh"), dir.path().join("target"));
        std::fs::create_dir(&fresh).unwrap();
        std::fs::write(fresh.join("v"), "1").unwrap();
        assert!(!install_dir(&fresh, &target).unwrap());
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "1");
        std::fs::create_dir(&fresh).unwrap();
        std::fs::write(fresh.join("v"), "2").unwrap();
        assert!(install_dir(&fresh, &target).unwrap());
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "2");
        // The old tree is where the fresh one was.
        assert_eq!(std::fs::read_to_string(fresh.join("v")).unwrap(), "1");
    }
}
