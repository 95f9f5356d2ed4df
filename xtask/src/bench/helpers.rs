//! Small helpers every section uses: running a command (captured, or timed),
//! finding a program on PATH, and writing, measuring and copying files.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{cmd, Result};

/// Runs `command` with its output captured; returns stdout.
pub(super) fn read(command: &mut Command) -> Result<String> {
    cmd::read(command)
}

/// Runs `command` quietly and returns how long it took.
pub(super) fn timed(command: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    read(command)?;
    Ok(started.elapsed())
}

/// The program `name` on PATH.
pub(super) fn which(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

pub(super) fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .map_err(|err| format!("failed to read {}: {err}", path.display()))?
        .len())
}

pub(super) fn write(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).map_err(|err| format!("failed to write {}: {err}", path.display()).into())
}

/// Copies the tree `from` into `to`, skipping top-level entries named in `skip`.
pub(super) fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to).map_err(|err| format!("failed to create {}: {err}", to.display()))?;
    let entries =
        fs::read_dir(from).map_err(|err| format!("failed to read {}: {err}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|err| format!("failed to read {}: {err}", from.display()))?;
        let name = entry.file_name();
        if skip.iter().any(|skipped| name == *skipped) {
            continue;
        }
        let (source, dest) = (entry.path(), to.join(&name));
        let kind = entry
            .file_type()
            .map_err(|err| format!("failed to read {}: {err}", source.display()))?;
        if kind.is_dir() {
            copy_dir(&source, &dest, &[])?;
        } else {
            fs::copy(&source, &dest)
                .map_err(|err| format!("failed to copy {}: {err}", source.display()))?;
        }
    }
    Ok(())
}
