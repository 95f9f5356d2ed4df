//! Docker's side of the bench: build contexts and `docker build`, and the
//! busybox base image, made in Docker with `docker import` and copied to an
//! OCI layout by skopeo so that the tool starts from the same base.

use std::{fs, path::Path, process::Command};

use super::helpers::{read, write};
use crate::Result;

/// Docker's name of the locally made base image.
pub(super) const DOCKER_BASE: &str = "xtask-bench-busybox:latest";

/// Writes a build context with the bootstrap and a Dockerfile equivalent to
/// what `image` assembles on a base without an entrypoint.
pub(super) fn docker_context(dir: &Path, bootstrap: &Path) -> Result<()> {
    docker_context_from(dir, bootstrap, DOCKER_BASE)
}

/// [`docker_context`] on the Docker image `base`.
pub(super) fn docker_context_from(dir: &Path, bootstrap: &Path, base: &str) -> Result<()> {
    fs::create_dir_all(dir).map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
    let dockerfile = format!(
        "FROM {base}\nCOPY bootstrap /var/runtime/bootstrap\n\
         ENTRYPOINT [\"/var/runtime/bootstrap\"]\nCMD [\"bootstrap\"]\n"
    );
    write(&dir.join("Dockerfile"), dockerfile.as_bytes())?;
    let dest = dir.join("bootstrap");
    fs::copy(bootstrap, &dest)
        .map_err(|err| format!("failed to copy to {}: {err}", dest.display()))?;
    Ok(())
}

/// `docker build --no-cache` with the classic builder (BuildKit is not
/// installed with Debian's docker.io).
pub(super) fn docker_build(context: &Path, tag: &str) -> Command {
    let mut command = Command::new("docker");
    command
        .args(["build", "--no-cache", "--quiet", "--tag", tag])
        .arg(context)
        .env("DOCKER_BUILDKIT", "0");
    command
}

/// Makes a busybox base image, in Docker (`docker import`) and as an OCI
/// layout (`docker save`, then `skopeo copy` with gzip layers).
pub(super) fn make_base(
    work: &Path,
) -> (
    std::result::Result<String, String>,
    std::result::Result<(), String>,
) {
    let tarball = work.join("busybox-rootfs.tar");
    if let Err(err) = busybox_tarball(&work.join("busybox-rootfs"), &tarball, None) {
        let why = format!("could not make a busybox rootfs: {err}");
        return (Err(why.clone()), Err(why));
    }
    let imported = read(
        Command::new("docker")
            .arg("import")
            .arg(&tarball)
            .arg(DOCKER_BASE),
    )
    .map(drop)
    .map_err(|err| format!("docker import failed: {err}"));
    let layout = match &imported {
        Ok(()) => oci_base(work, DOCKER_BASE, &work.join("busybox-oci")),
        Err(why) => Err(why.clone()),
    };
    (layout, imported)
}

/// A tarball of the directory `rootfs`, made with `/bin/busybox` (static) and
/// `/bin/sh`, and with `/etc/xtask-bench-stamp` holding `stamp` if given (a
/// base layer no earlier run has made).
pub(super) fn busybox_tarball(rootfs: &Path, tarball: &Path, stamp: Option<&str>) -> Result<()> {
    let _ = fs::remove_dir_all(rootfs);
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).map_err(|err| format!("failed to create {}: {err}", bin.display()))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .ok_or("busybox is not installed (Debian busybox-static)")?;
    fs::copy(busybox, bin.join("busybox"))
        .map_err(|err| format!("failed to copy busybox: {err}"))?;
    std::os::unix::fs::symlink("busybox", bin.join("sh"))
        .map_err(|err| format!("failed to link /bin/sh: {err}"))?;
    if let Some(stamp) = stamp {
        let etc = rootfs.join("etc");
        fs::create_dir_all(&etc)
            .map_err(|err| format!("failed to create {}: {err}", etc.display()))?;
        write(&etc.join("xtask-bench-stamp"), stamp.as_bytes())?;
    }
    read(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(tarball)
            .arg("."),
    )?;
    Ok(())
}

/// The Docker image `image` as an OCI layout with gzip layers at `layout`;
/// returns `oci:DIR:latest`.
pub(super) fn oci_base(
    work: &Path,
    image: &str,
    layout: &Path,
) -> std::result::Result<String, String> {
    let saved = work.join("busybox-save.tar");
    let _ = fs::remove_dir_all(layout);
    read(
        Command::new("docker")
            .args(["save", "--output"])
            .arg(&saved)
            .arg(image),
    )
    .map_err(|err| format!("docker save failed: {err}"))?;
    let mut copy = Command::new("skopeo");
    copy.args([
        "copy",
        "--quiet",
        "--dest-compress",
        "--dest-compress-format",
        "gzip",
    ])
    .arg(format!("docker-archive:{}", saved.display()))
    .arg(format!("oci:{}:latest", layout.display()));
    read(&mut copy).map_err(|err| format!("skopeo copy failed: {err}"))?;
    Ok(format!("oci:{}:latest", layout.display()))
}
