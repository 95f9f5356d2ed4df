//! The Rust toolchain belongs to the user: this module finds the one the workspace compiles
//! with, adds the targets a plan needs to it (once per run, before any compiler starts, under a
//! lock every process of ours shares), and never installs, updates or repairs a toolchain.
//!
//! Every backend compiles with that toolchain, `cross` included: cross mounts the host's
//! sysroot into its container, so the target's standard library must be in it. cross 0.2.5
//! would add it itself, and worse, it looks for its toolchain in `rustup toolchain list` with
//! only ` (default)` and ` (override)` stripped; rustup 1.28 and later print
//! `(active, default)`, so cross never finds the active toolchain and runs
//! `rustup toolchain add <name>` on every build, an update whenever a newer stable exists
//! (several at once destroyed a toolchain). [`cross_env`] is how cross is run instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::Plan;
use crate::error::{Error, Result};
use crate::progress::Reporter;

use super::find_program;

/// A toolchain as rustc reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// Its name as rustup lists it: the sysroot's directory name, e.g.
    /// `stable-x86_64-unknown-linux-gnu`.
    pub name: String,
    /// Its sysroot, e.g. `~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu`.
    pub sysroot: PathBuf,
}

impl Toolchain {
    /// A toolchain from its sysroot.
    pub fn at(sysroot: PathBuf) -> Toolchain {
        let name = sysroot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Toolchain { name, sysroot }
    }

    /// Whether the standard library for `triple` is installed.
    pub fn has_target(&self, triple: &str) -> bool {
        self.sysroot
            .join("lib/rustlib")
            .join(triple)
            .join("lib")
            .is_dir()
    }

    /// Refuses a toolchain whose programs are gone (a removal or an update that was cut
    /// short), naming the command that reinstalls it; nothing here repairs it.
    fn check_complete(&self) -> Result<()> {
        for program in ["rustc", "cargo"] {
            let path = self.sysroot.join("bin").join(program);
            if !path.is_file() {
                return Err(Error::ToolchainUnusable {
                    message: format!(
                        "the Rust toolchain `{}` is incomplete: {} is missing",
                        self.name,
                        path.display()
                    ),
                    help: format!(
                        "reinstall it yourself with `rustup toolchain install {} --force` \
                         (cargo-lambda-image never installs, updates or repairs a toolchain)",
                        self.name
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The toolchain rustc resolves to in the workspace root, with `RUSTUP_AUTO_INSTALL=0` so that
/// a `rust-toolchain.toml` naming a toolchain that is not installed is an error naming it rather
/// than a download. Asking rustc (through rustup's proxy) costs about 30 ms, as much as cargo's
/// own up-to-date check, so the answer is kept in the cache under everything that picks the
/// toolchain: `RUSTC`, `RUSTUP_TOOLCHAIN`, `RUSTUP_HOME`, rustup's settings (default and
/// overrides) and the `rust-toolchain` files from the workspace up.
pub fn find(plan: &Plan) -> Result<Toolchain> {
    use std::os::unix::fs::MetadataExt;
    let root = plan.workspace_root.as_std_path();
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| format!("{} {}.{}", m.len(), m.mtime(), m.mtime_nsec()))
            .unwrap_or_default()
    };
    let home = rustup_home();
    let mut key = format!(
        "sysroot v2\n{}\n{:?}\n{:?}\n{}\n{}",
        root.display(),
        std::env::var_os("RUSTC"),
        std::env::var_os("RUSTUP_TOOLCHAIN"),
        home.display(),
        stamp(&home.join("settings.toml"))
    );
    for dir in root.ancestors() {
        for file in ["rust-toolchain.toml", "rust-toolchain"] {
            key.push_str(&format!("\n{}", stamp(&dir.join(file))));
        }
    }
    let file = crate::registry::keyed_cache_file("sysroots", &key);
    if let Some(known) = std::fs::read_to_string(&file)
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
    {
        let toolchain = Toolchain::at(known);
        toolchain.check_complete()?;
        return Ok(toolchain);
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(root)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: rustc.to_string_lossy().into_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(unusable(&String::from_utf8_lossy(&out.stderr)));
    }
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let toolchain = Toolchain::at(PathBuf::from(&sysroot));
    toolchain.check_complete()?;
    crate::registry::keep_cache_file(&file, sysroot.as_bytes());
    Ok(toolchain)
}

/// The error of a rustc (or rustup proxy) that could not say its sysroot.
fn unusable(stderr: &str) -> Error {
    let stderr = stderr.trim();
    // rustup: "error: toolchain '1.80-x86_64-unknown-linux-gnu' is not installed".
    let missing = stderr
        .split("toolchain '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .filter(|_| stderr.contains("is not installed"));
    let help = match missing {
        Some(name) => format!(
            "install it yourself with `rustup toolchain install {name}` (cargo-lambda-image \
             never installs or updates a toolchain), or change the rust-toolchain file or \
             RUSTUP_TOOLCHAIN that names it"
        ),
        None => "check that `rustc --print sysroot` works in the workspace root".into(),
    };
    Error::ToolchainUnusable {
        message: format!("the Rust toolchain of the workspace cannot run: {stderr}"),
        help,
    }
}

/// `RUSTUP_HOME`, else `~/.rustup`.
fn rustup_home() -> PathBuf {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
        .unwrap_or_default()
}

/// Adds the targets among `triples` that `toolchain` lacks with one `rustup target add`, unless
/// `install` is false. Several processes of ours may want the same target at once (two
/// commands, tests side by side), and rustup does not lock its own installs, so the additions
/// are serialized by a lock file in the cache, and what another process added meanwhile is not
/// added again. Returns the triples that are still missing, each with why it was not added
/// (see [`Error::TargetMissing`]).
pub fn ensure_targets(
    toolchain: &Toolchain,
    triples: &BTreeSet<String>,
    install: bool,
    progress: &Reporter,
) -> BTreeMap<String, String> {
    let missing = || -> Vec<String> {
        triples
            .iter()
            .filter(|triple| !toolchain.has_target(triple))
            .cloned()
            .collect()
    };
    let not_added = |triples: Vec<String>, reason: &str| {
        triples
            .into_iter()
            .map(|triple| (triple, reason.to_string()))
            .collect()
    };
    let wanted = missing();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    if !install {
        return not_added(wanted, " (--no-install-targets)");
    }
    let Some(rustup) = find_program("rustup") else {
        return not_added(wanted, ", and rustup is not on PATH to add it");
    };
    let lock_path =
        crate::registry::keyed_cache_file("locks", &format!("rustup {}", rustup_home().display()));
    let _lock = match lock_file(&lock_path, progress) {
        Ok(lock) => lock,
        Err(e) => {
            return not_added(
                wanted,
                &format!(": could not lock {}: {e}", lock_path.display()),
            )
        }
    };
    let wanted = missing();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    progress.line(format!(
        "Adding the Rust target{} {} to {} (rustup target add)",
        if wanted.len() == 1 { "" } else { "s" },
        wanted.join(", "),
        toolchain.name
    ));
    let out = Command::new(rustup)
        .args(["target", "add", "--toolchain", &toolchain.name])
        .args(&wanted)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let reason = match out {
        Ok(out) if out.status.success() => String::new(),
        Ok(out) => format!(
            ": rustup failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!(": rustup did not start: {e}"),
    };
    not_added(missing(), &reason)
}

/// Takes the exclusive lock of `path` (created if need be), saying so while another process
/// holds it. The lock goes with the file handle, also when the process is killed.
pub(crate) fn lock_file(path: &Path, progress: &Reporter) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    progress.line(format!(
        "Waiting for another cargo-lambda-image process (lock {})",
        path.display()
    ));
    file.lock()?;
    Ok(file)
}

/// The environment `cross` runs in so that it compiles with `toolchain` and can neither
/// install nor update a toolchain, nor add targets or components:
/// - `RUSTUP_TOOLCHAIN` is the toolchain's sysroot path, which rustup accepts as a toolchain.
///   The active toolchain is then that path, which `rustup toolchain list` does not list, so
///   no listed toolchain is marked `(active)`; cross's parsing finds the toolchain's name and
///   never runs `rustup toolchain add`. [`cross_finds`] checks that before cross starts.
/// - `CROSS_CUSTOM_TOOLCHAIN=1`, cross's documented setting for a toolchain rustup did not
///   install, makes cross skip its `rustup target add` and `rustup component add` calls (it
///   would add `rust-src` to every toolchain it uses); [`ensure_targets`] added the targets.
pub fn cross_env(toolchain: &Toolchain) -> [(String, String); 2] {
    [
        (
            "RUSTUP_TOOLCHAIN".to_string(),
            toolchain.sysroot.display().to_string(),
        ),
        ("CROSS_CUSTOM_TOOLCHAIN".to_string(), "1".to_string()),
    ]
}

/// Whether cross 0.2.5 will find `toolchain` installed, asked as cross asks
/// (`rustup toolchain list` in cross's environment) and parsed as cross parses it. If not, cross
/// would run `rustup toolchain add`, so it must not run at all: the error says why.
pub fn cross_finds(toolchain: &Toolchain, workspace_root: &Path) -> Result<()> {
    let mut list = Command::new("rustup");
    list.args(["toolchain", "list"])
        .current_dir(workspace_root)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in cross_env(toolchain) {
        list.env(key, value);
    }
    let out = list.output().map_err(|source| Error::Spawn {
        program: "rustup".into(),
        source,
    })?;
    let listed = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && cross_parses_as_installed(&listed, &toolchain.name) {
        return Ok(());
    }
    Err(Error::ToolchainUnusable {
        message: format!(
            "cross would not find the toolchain `{}` in `rustup toolchain list` and would try \
             to install it; cross was not run",
            toolchain.name
        ),
        help: format!(
            "compile with `--compiler cargo` or `zigbuild`, or use a toolchain rustup lists as \
             `{}`; `rustup toolchain list` printed:\n{}",
            toolchain.name,
            listed.trim()
        ),
    })
}

/// cross 0.2.5's reading of `rustup toolchain list` (`rustup::installed_toolchains`): each line
/// with ` (default)` and ` (override)` removed, trimmed, must equal the toolchain's name.
pub(crate) fn cross_parses_as_installed(listed: &str, name: &str) -> bool {
    listed.lines().any(|line| {
        line.replace(" (default)", "")
            .replace(" (override)", "")
            .trim()
            == name
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_0_2_5_misses_the_active_toolchain_of_current_rustup() {
        let name = "stable-x86_64-unknown-linux-gnu";
        // rustup 1.28 and later, in a workspace on the default toolchain: cross would run
        // `rustup toolchain add`.
        let current = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                       nightly-x86_64-unknown-linux-gnu\n";
        assert!(!cross_parses_as_installed(current, name));
        // With the sysroot path as RUSTUP_TOOLCHAIN, nothing listed is active.
        let path_active = "stable-x86_64-unknown-linux-gnu (default)\n\
                           nightly-x86_64-unknown-linux-gnu\n";
        assert!(cross_parses_as_installed(path_active, name));
        assert!(cross_parses_as_installed(
            path_active,
            "nightly-x86_64-unknown-linux-gnu"
        ));
        // rustup before 1.28, which cross was written against.
        assert!(cross_parses_as_installed(
            "stable-x86_64-unknown-linux-gnu (default)\n",
            name
        ));
        assert!(!cross_parses_as_installed("", name));
    }

    #[test]
    fn the_toolchain_is_named_after_its_sysroot() {
        let t = Toolchain::at(PathBuf::from(
            "/h/.rustup/toolchains/1.94.1-x86_64-unknown-linux-gnu",
        ));
        assert_eq!(t.name, "1.94.1-x86_64-unknown-linux-gnu");
        assert_eq!(
            cross_env(&t),
            [
                (
                    "RUSTUP_TOOLCHAIN".to_string(),
                    "/h/.rustup/toolchains/1.94.1-x86_64-unknown-linux-gnu".to_string()
                ),
                ("CROSS_CUSTOM_TOOLCHAIN".to_string(), "1".to_string()),
            ]
        );
    }

    #[test]
    fn a_toolchain_that_is_not_installed_is_named_with_the_command_that_installs_it() {
        let e = unusable(
            "error: toolchain '1.80-x86_64-unknown-linux-gnu' is not installed\n\
             help: run `rustup toolchain install 1.80-x86_64-unknown-linux-gnu` to install it",
        );
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(
            help.contains("`rustup toolchain install 1.80-x86_64-unknown-linux-gnu`"),
            "{help}"
        );
        assert!(e.to_string().contains("is not installed"), "{e}");
    }

    #[test]
    fn an_incomplete_toolchain_is_refused_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("stable-x86_64-unknown-linux-gnu");
        std::fs::create_dir_all(sysroot.join("bin")).unwrap();
        std::fs::write(sysroot.join("bin/rustc"), "").unwrap();
        let e = Toolchain::at(sysroot.clone()).check_complete().unwrap_err();
        assert!(e.to_string().contains("bin/cargo is missing"), "{e}");
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(
            help.contains("rustup toolchain install stable-x86_64-unknown-linux-gnu --force"),
            "{help}"
        );
        assert!(!sysroot.join("bin/cargo").exists());
    }
}
