//! The Docker engine, through bollard (no Docker CLI): connecting, inspecting and saving an
//! image, and loading an image from an OCI layout into it. The Docker builder, the Docker
//! runner, the engine output and `docker-daemon:` bases all use it.
//!
//! The engine is found the way the Docker CLI finds it: `DOCKER_HOST` (unix or tcp) or the
//! default socket. Part of the ground floor: it imports nothing from a stage.

use std::io::Write;
use std::path::Path;

use bollard::models::ImageInspect;
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::oci::{archive::write_docker_archive, file_chunks, Layout};
use crate::progress::Reporter;

/// Connects to the engine named by `DOCKER_HOST` (`unix://`, `tcp://` or `ssh://[user@]host`),
/// or the local default.
pub fn connect() -> Result<bollard::Docker> {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        check_ssh_host(&host)?;
    }
    bollard::Docker::connect_with_defaults().map_err(|e| Error::Docker {
        action: "connect".into(),
        message: e.to_string(),
    })
}

/// Refuses an `ssh://` host with a port: the SSH connector hands `ssh` the host without it,
/// so the connection would silently go to port 22.
fn check_ssh_host(host: &str) -> Result<()> {
    let Some(rest) = host.strip_prefix("ssh://") else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let machine = authority.rsplit('@').next().unwrap_or(authority);
    match machine.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => Err(Error::Docker {
            action: "connect".into(),
            message: format!(
                "DOCKER_HOST={host} names SSH port {port}, which the SSH connection cannot pass on (it would use port 22); add to ~/.ssh/config `Host docker-engine` with `HostName {name}` and `Port {port}`, then set DOCKER_HOST=ssh://docker-engine"
            ),
        }),
        _ => Ok(()),
    }
}

/// `reference` with the tag `latest` when it names neither a tag nor a digest: the engine would
/// otherwise pull, or save, every tag of the repository.
pub fn with_default_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// What the engine knows of the image `name`, or `None` when it has no such image.
pub async fn inspect_image(docker: &bollard::Docker, name: &str) -> Result<Option<ImageInspect>> {
    match docker.inspect_image(name).await {
        Ok(inspect) => Ok(Some(inspect)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(Error::Docker {
            action: format!("inspect {name}"),
            message: e.to_string(),
        }),
    }
}

/// Writes the image `name` to `archive` as `docker save` does (a docker-archive tarball),
/// streamed: images can be gigabytes.
pub async fn save(docker: &bollard::Docker, name: &str, archive: &Path) -> Result<()> {
    if let Some(dir) = archive.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    }
    let file =
        std::fs::File::create(archive).map_err(|e| Error::io("could not create", archive, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut export = docker.export_image(name);
    while let Some(chunk) = export.next().await {
        let chunk = chunk.map_err(|e| Error::Docker {
            action: format!("save {name}"),
            message: e.to_string(),
        })?;
        out.write_all(&chunk)
            .map_err(|e| Error::io("could not write", archive, e))?;
    }
    out.flush()
        .map_err(|e| Error::io("could not write", archive, e))?;
    Ok(())
}

/// Loads the image `digest` of the OCI layout `layout_dir` into the engine as `name`
/// (`repository:tag`), as `docker load` would, and returns the name.
pub async fn load(
    layout_dir: &Path,
    digest: &str,
    name: &str,
    reporter: &Reporter,
) -> Result<String> {
    let docker = connect()?;
    // Beside the layout, under a name of this process's own that no sweep removes while it
    // lives (and the next one removes after a kill).
    let parent = layout_dir.parent().unwrap_or(Path::new("."));
    let (staging, _) = crate::store::Staging::file(parent, "docker-archive")
        .map_err(|e| Error::io("could not create a file in", parent, e))?;
    let archive = staging.path().to_path_buf();
    write_docker_archive(&Layout::open(layout_dir)?, digest, name, &archive)?;
    let task = reporter.task(format!("Loading {name} into Docker"));
    // The archive is streamed to the engine, not read into memory: images can be gigabytes.
    let body = file_chunks(&archive, 1 << 20);
    let options = bollard::query_parameters::ImportImageOptionsBuilder::default().build();
    let mut stream = docker.import_image_stream(options, body, None);
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    failure = Some(detail.message.unwrap_or_default());
                }
            }
            Err(e) => failure = Some(e.to_string()),
        }
        if failure.is_some() {
            break;
        }
    }
    drop(staging);
    if let Some(message) = failure {
        task.fail(format!("Loading {name} into Docker failed"));
        return Err(Error::Docker {
            action: format!("load {name}"),
            message,
        });
    }
    task.done(format!("Loaded {name} into Docker"));
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_hosts_with_a_port_are_refused_with_the_config_to_write() {
        assert!(check_ssh_host("ssh://root@engine").is_ok());
        assert!(check_ssh_host("unix:///var/run/docker.sock").is_ok());
        assert!(check_ssh_host("tcp://127.0.0.1:2375").is_ok());
        let err = check_ssh_host("ssh://me@10.0.0.5:2222")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Port 2222") && err.contains("HostName 10.0.0.5"),
            "{err}"
        );
    }
}
