//! The machine's Rust belongs to its owner: CI records what rustup has before the tests and
//! fails if anything but the targets and components the README lists changed afterwards; and
//! it prepares a rustup home of its own whose `stable` is older than the newest, where the
//! tests of the `cross` backend prove that nothing updates a toolchain (cross 0.2.5 would).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{cmd, Result};

/// The Rust the old-stable rustup home holds as its `stable` (the package's rust-version).
pub(crate) const OLD_STABLE: &str = "1.94.1";

/// What rustup has: its own version, the toolchains it lists (`rustup toolchain list -v`), and
/// for each one its
/// compiler's version (`rustc -vV`, run directly, not through a proxy) and its installed
/// components (targets included). A toolchain that is updated, replaced or broken changes it.
pub(crate) fn snapshot() -> Result<String> {
    let home = rustup_home()?;
    let mut seen = cmd::read(Command::new("rustup").arg("--version"))?;
    seen.push_str(&cmd::read(Command::new("rustup").args([
        "toolchain",
        "list",
        "-v",
    ]))?);
    let toolchains = home.join("toolchains");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&toolchains)
        .map_err(|err| format!("failed to list {}: {err}", toolchains.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let rustc = dir.join("bin/rustc");
        let version = cmd::read(Command::new(&rustc).arg("-vV"))
            .unwrap_or_else(|err| format!("does not run: {err}\n"));
        let components = cmd::read(Command::new("rustup").args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            &name,
        ]))
        .unwrap_or_else(|err| format!("cannot be listed: {err}\n"));
        seen.push_str(&format!("\n{name}:\n{version}components:\n{components}"));
    }
    Ok(seen)
}

/// An error showing what changed between two [`snapshot`]s, or `Ok` when nothing did.
pub(crate) fn compare(before: &str, after: &str) -> Result<()> {
    if before == after {
        return Ok(());
    }
    let removed: Vec<&str> = before
        .lines()
        .filter(|l| !after.lines().any(|a| a == *l))
        .collect();
    let added: Vec<&str> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    Err(format!(
        "the tests changed this machine's Rust toolchains (rustup home {}):\n- {}\n+ {}\n\
         help: nothing the tests run may install, update or remove a toolchain, target or \
         component; find the command that did (cross's `rustup toolchain add`, say)",
        rustup_home()?.display(),
        removed.join("\n- "),
        added.join("\n+ ")
    )
    .into())
}

fn rustup_home() -> Result<PathBuf> {
    if let Some(home) = env::var_os("RUSTUP_HOME").filter(|h| !h.is_empty()) {
        return Ok(home.into());
    }
    let home = env::var_os("HOME").ok_or("HOME is not set")?;
    Ok(Path::new(&home).join(".rustup"))
}

/// A rustup home under `state_root` whose default `stable` toolchain is Rust [`OLD_STABLE`]
/// (installed as that version, then named `stable`), made once and kept. Upstream's stable is
/// newer, so `rustup toolchain add stable` in it is an update: the hazard the cross tests
/// check nothing triggers. Its own `CARGO_HOME` keeps rustup away from the user's proxies.
pub(crate) fn old_stable_home(state_root: &Path) -> Result<PathBuf> {
    let root = state_root.join(format!("old-stable-{OLD_STABLE}"));
    let (rustup_home, cargo_home) = (root.join("rustup"), root.join("cargo"));
    let host = host_triple()?;
    let stable = format!("stable-{host}");
    let rustc = rustup_home
        .join("toolchains")
        .join(&stable)
        .join("bin/rustc");
    let ready = root.join("ready");
    let works = cmd::read(Command::new(&rustc).arg("-vV"))
        .is_ok_and(|v| v.contains(&format!("release: {OLD_STABLE}")));
    // Names how the home is made: a change to that makes it again.
    let recipe = format!("{OLD_STABLE} as stable, no self-update\n");
    if fs::read_to_string(&ready).is_ok_and(|r| r == recipe) && works {
        return Ok(rustup_home);
    }
    say!(
        "installing Rust {OLD_STABLE} as the `stable` of {}",
        rustup_home.display()
    );
    if root.exists() {
        fs::remove_dir_all(&root)
            .map_err(|err| format!("failed to remove {}: {err}", root.display()))?;
    }
    cmd::run(
        Command::new("rustup")
            .args(["toolchain", "install", OLD_STABLE, "--profile", "minimal"])
            .arg("--no-self-update")
            .env("RUSTUP_HOME", &rustup_home)
            .env("CARGO_HOME", &cargo_home)
            .current_dir(state_root),
    )?;
    let toolchains = rustup_home.join("toolchains");
    let installed = toolchains.join(format!("{OLD_STABLE}-{host}"));
    fs::rename(&installed, toolchains.join(&stable))
        .map_err(|err| format!("failed to rename {}: {err}", installed.display()))?;
    let settings = rustup_home.join("settings.toml");
    let text = fs::read_to_string(&settings)
        .map_err(|err| format!("failed to read {}: {err}", settings.display()))?;
    // No self-update either: should anything run `rustup toolchain add` here after all, it
    // must not replace the rustup binary, which is the user's.
    let text: String = text
        .lines()
        .filter(|line| !line.starts_with("auto_self_update"))
        .map(|line| {
            if line.starts_with("default_toolchain") {
                format!("default_toolchain = \"{stable}\"\nauto_self_update = \"disable\"\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    fs::write(&settings, text)
        .map_err(|err| format!("failed to write {}: {err}", settings.display()))?;
    let version = cmd::read(Command::new(&rustc).arg("-vV"))?;
    if !version.contains(&format!("release: {OLD_STABLE}")) {
        return Err(format!("{} is not Rust {OLD_STABLE}:\n{version}", rustc.display()).into());
    }
    fs::write(&ready, recipe)
        .map_err(|err| format!("failed to write {}: {err}", ready.display()))?;
    Ok(rustup_home)
}

/// A directory holding a `rustup` that refuses to install, update, remove or self-update a
/// toolchain and passes everything else to the real one, for the front of the tests' `PATH`:
/// cross and everything else the tests run call `rustup` by name, so a regression fails its
/// test at once, naming the command, instead of updating the machine's toolchain under the
/// other tests (see [`snapshot`] for what is checked afterwards).
pub(crate) fn guard(state_root: &Path) -> Result<PathBuf> {
    let real = env::split_paths(&env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("rustup"))
        .find(|path| path.is_file())
        .ok_or("rustup is not on PATH")?;
    let dir = state_root.join("rustup-guard");
    fs::create_dir_all(&dir).map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
    let script = format!(
        r#"#!/bin/sh
# Written by `cargo xtask ci`: nothing the tests run may install, update or remove a toolchain.
refuse() {{ echo "xtask's rustup guard: refused \`rustup $*\` (the tests may not change a toolchain)" >&2; exit 1; }}
for arg in "$@"; do
  case "$arg" in
    -*) ;;
    update|self|uninstall|install|default) refuse "$@" ;;
    toolchain) case " $* " in *" add "*|*" install "*|*" uninstall "*|*" remove "*|*" link "*) refuse "$@" ;; esac; break ;;
    *) break ;;
  esac
done
exec '{}' "$@"
"#,
        real.display()
    );
    let path = dir.join("rustup");
    fs::write(&path, script).map_err(|err| format!("failed to write {}: {err}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .map_err(|err| format!("failed to make {} executable: {err}", path.display()))?;
    Ok(dir)
}

/// This machine's host triple, from rustc.
fn host_triple() -> Result<String> {
    let version = cmd::read(Command::new("rustc").arg("-vV"))?;
    version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| "`rustc -vV` printed no host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_toolchain_changes_and_passes_the_rest() {
        let dir = env::temp_dir().join(format!("xtask-guard-{}", std::process::id()));
        let guard = guard(&dir).unwrap().join("rustup");
        let refused = |args: &[&str]| {
            let out = Command::new(&guard).args(args).output().unwrap();
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("refused")
        };
        assert!(refused(&["toolchain", "add", "stable"]));
        assert!(refused(&[
            "--quiet",
            "toolchain",
            "add",
            "stable",
            "--profile",
            "minimal"
        ]));
        assert!(refused(&["update"]));
        assert!(refused(&["self", "update"]));
        assert!(refused(&["toolchain", "uninstall", "stable"]));
        assert!(!refused(&["toolchain", "list"]));
        let version = Command::new(&guard).arg("--version").output().unwrap();
        assert!(String::from_utf8_lossy(&version.stdout).starts_with("rustup "));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_toolchain_is_shown_line_by_line() {
        assert!(compare("a\nb\n", "a\nb\n").is_ok());
        let err = compare("stable\nrelease: 1.95.0\n", "stable\nrelease: 1.99.1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("- release: 1.95.0\n+ release: 1.99.1"),
            "{err}"
        );
    }
}
