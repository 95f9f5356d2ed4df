//! Installing the test prerequisites: Debian packages, a Python venv with the
//! PyPI tools, Rust targets and components, and the arm64 binfmt handler.
//!
//! Every step first checks what is already there, so that a second run only
//! costs a few cheap queries.

use std::{
    collections::HashSet,
    fs, io,
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Command, Stdio},
};

use crate::{cmd, Result};

/// Debian packages the tests need: the Docker engine, an OCI registry, two
/// third-party image consumers, qemu to run arm64 binaries and images, a static
/// busybox for the stand-in of the provided.al2 base image, htpasswd and openssl
/// for the authenticated TLS registry, bubblewrap for the sandbox that runs
/// images' functions without a daemon, GNU time to measure peak memory, and
/// debootstrap and podman for the image the `cross` backend compiles in and its
/// second engine.
const APT_PACKAGES: &[&str] = &[
    "docker.io",
    "docker-registry",
    "skopeo",
    "umoci",
    "qemu-user-static",
    "busybox-static",
    "apache2-utils",
    "openssl",
    "bubblewrap",
    "openssh-server",
    "openssh-client",
    "time",
    "debootstrap",
    "podman",
];

/// PyPI packages installed into the venv: a fake AWS API, the Python Lambda
/// runtime interface client, zig for linking against old glibc versions,
/// cfn-lint to validate the CloudFormation/SAM templates the tool writes, and
/// spdx-tools (`pyspdxtools`) to validate the SBOMs it writes.
pub(crate) const PYTHON_PACKAGES: &[&str] = &[
    "moto[server]",
    "awslambdaric",
    "ziglang",
    "cargo-zigbuild",
    "cfn-lint",
    "spdx-tools",
];

/// Every target the tests cross-compile for.
const RUST_TARGETS: &[&str] = &[
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
];

/// Components the `ci` task runs besides `cargo test`.
const RUST_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
const QEMU_AARCH64_CONF: &str = "/usr/lib/binfmt.d/qemu-aarch64.conf";

/// Installs the missing [`APT_PACKAGES`] with apt-get.
pub(crate) fn apt_packages() -> Result<()> {
    let mut wanted = APT_PACKAGES.to_vec();
    // Debian ships `ensurepip` separately in python3-venv; without it
    // `python3 -m venv` fails. It pulls in python3 itself when that is missing.
    if !cmd::succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"])) {
        wanted.push("python3-venv");
    }

    let Some(installed) = installed_debs(&wanted)? else {
        say!(
            "warning: dpkg-query not found, so this is not a Debian system; assuming the \
             equivalents of {} are installed",
            wanted.join(" ")
        );
        return Ok(());
    };
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|pkg| !installed.contains(*pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }

    let list = missing.join(" ");
    if !is_root() {
        return Err(format!(
            "missing Debian packages: {list}\n\
             help: run `sudo apt-get install --no-install-recommends {list}` or rerun as root"
        )
        .into());
    }
    say!("installing apt packages: {list}");
    cmd::run(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-q", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// The subset of `packages` that dpkg reports as installed, or `None` when
/// dpkg is not available at all.
fn installed_debs(packages: &[&str]) -> Result<Option<HashSet<String>>> {
    // dpkg-query exits with 1 when some package is unknown, so its status is
    // ignored and only the lines it printed for the known ones are looked at.
    let output = match Command::new("dpkg-query")
        .arg("--show")
        .arg("--showformat=${Package} ${Status}\\n")
        .args(packages)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("failed to run dpkg-query: {err}").into()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let installed = stdout
        .lines()
        .filter(|line| line.ends_with(" install ok installed"))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect();
    Ok(Some(installed))
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Creates the venv at `venv` and installs [`PYTHON_PACKAGES`] into it,
/// unless a previous run already did.
pub(crate) fn python_venv(venv: &Path) -> Result<()> {
    let python = venv.join("bin/python");
    // The marker records the package list of the last successful install, so
    // editing `PYTHON_PACKAGES` triggers a new install.
    let marker = venv.join(".xtask-packages");
    let wanted = PYTHON_PACKAGES.join("\n") + "\n";

    let python_works = cmd::succeeds(Command::new(&python).args(["-c", ""]));
    if python_works && fs::read_to_string(&marker).is_ok_and(|recorded| recorded == wanted) {
        return Ok(());
    }
    if !python_works {
        say!("creating Python venv at {}", venv.display());
        // `--clear` replaces a venv whose interpreter went away, for example
        // after the system Python was upgraded.
        cmd::run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(venv),
        )?;
    }
    say!(
        "installing Python packages into {}: {}",
        venv.display(),
        PYTHON_PACKAGES.join(" ")
    );
    cmd::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYTHON_PACKAGES),
    )?;
    fs::write(&marker, wanted)
        .map_err(|err| format!("failed to write {}: {err}", marker.display()))?;
    Ok(())
}

/// Adds the missing [`RUST_TARGETS`] and [`RUST_COMPONENTS`] to the toolchain
/// used in `root`.
pub(crate) fn rust_toolchain(root: &Path) -> Result<()> {
    let rustup_hint = "help: the CI task needs rustup to add cross-compilation targets; \
                       see https://rustup.rs";

    let installed = cmd::read(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(root),
    )
    .map_err(|err| format!("{err}\n{rustup_hint}"))?;
    let installed: HashSet<&str> = installed.lines().map(str::trim).collect();
    let missing: Vec<&str> = RUST_TARGETS
        .iter()
        .copied()
        .filter(|target| !installed.contains(target))
        .collect();
    if !missing.is_empty() {
        say!("adding Rust targets: {}", missing.join(" "));
        cmd::run(
            Command::new("rustup")
                .args(["target", "add"])
                .args(&missing)
                .current_dir(root),
        )?;
    }

    // Installed components are listed with their host triple, e.g.
    // `clippy-x86_64-unknown-linux-gnu`.
    let installed = cmd::read(
        Command::new("rustup")
            .args(["component", "list", "--installed"])
            .current_dir(root),
    )
    .map_err(|err| format!("{err}\n{rustup_hint}"))?;
    let missing: Vec<&str> = RUST_COMPONENTS
        .iter()
        .copied()
        .filter(|component| {
            !installed
                .lines()
                .any(|line| line.trim() == *component || line.starts_with(&format!("{component}-")))
        })
        .collect();
    if !missing.is_empty() {
        say!("adding Rust components: {}", missing.join(" "));
        cmd::run(
            Command::new("rustup")
                .args(["component", "add"])
                .args(&missing)
                .current_dir(root),
        )?;
    }
    Ok(())
}

/// Registers qemu as the handler for arm64 ELF binaries so that Docker can run
/// linux/arm64 images. Only warns on failure: without the privilege to do so,
/// only the arm64 run tests are affected.
pub(crate) fn binfmt_arm64() {
    if let Err(err) = register_qemu_aarch64() {
        say!(
            "warning: could not register qemu-aarch64 with binfmt_misc, so Docker will not be \
             able to run linux/arm64 images: {err}"
        );
    }
}

fn register_qemu_aarch64() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts")
        .map_err(|err| format!("failed to read /proc/mounts: {err}"))?;
    let mounted = mounts
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(BINFMT_DIR));
    if !mounted {
        say!("mounting binfmt_misc on {BINFMT_DIR}");
        cmd::read(Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR]))?;
    }

    let entry = Path::new(BINFMT_DIR).join("qemu-aarch64");
    if entry.exists() {
        let status = fs::read_to_string(&entry)
            .map_err(|err| format!("failed to read {}: {err}", entry.display()))?;
        if status.lines().next() == Some("disabled") {
            say!("enabling the disabled qemu-aarch64 binfmt handler");
            fs::write(&entry, "1")
                .map_err(|err| format!("failed to write {}: {err}", entry.display()))?;
        }
        return Ok(());
    }

    let conf = fs::read_to_string(QEMU_AARCH64_CONF).map_err(|err| {
        format!("failed to read {QEMU_AARCH64_CONF}: {err} (is qemu-user-static installed?)")
    })?;
    let rule = conf
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .ok_or_else(|| format!("{QEMU_AARCH64_CONF} contains no binfmt rule"))?;
    say!("registering qemu-aarch64 with binfmt_misc");
    let register = Path::new(BINFMT_DIR).join("register");
    // The kernel expects the whole rule in a single write, which `fs::write`
    // does for a string this short.
    fs::write(&register, rule)
        .map_err(|err| format!("failed to write {}: {err}", register.display()))?;
    Ok(())
}
