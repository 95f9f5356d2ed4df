//! The Docker engine, through bollard (no Docker CLI): connecting, and loading an image from an
//! OCI layout into it. The Docker builder, the Docker runner and the engine output all use it.
//!
//! The engine is found the way the Docker CLI finds it: `DOCKER_HOST` (unix or tcp) or the
//! default socket. Part of the ground floor: it imports nothing from a stage.

use std::path::Path;

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::oci::{archive::write_docker_archive, file_chunks, Layout};
use crate::progress::Reporter;

/// Connects to the engine named by `DOCKER_HOST`, or the local default.
pub fn connect() -> Result<bollard::Docker> {
    bollard::Docker::connect_with_defaults().map_err(|e| Error::Docker {
        action: "connect".into(),
        message: e.to_string(),
    })
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
    let archive = layout_dir.with_file_name("docker-archive.tar");
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
    let _ = std::fs::remove_file(&archive);
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
