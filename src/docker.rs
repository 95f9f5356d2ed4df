//! The Docker engine, through bollard (no Docker CLI): loading built images into it.
//!
//! The engine is found the way the Docker CLI finds it: `DOCKER_HOST` (unix or tcp) or the
//! default socket.

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::image::{write_docker_archive, BuiltImage};
use crate::progress::Progress;

/// Connects to the engine named by `DOCKER_HOST`, or the local default.
pub fn connect() -> Result<bollard::Docker> {
    bollard::Docker::connect_with_defaults().map_err(|e| Error::Docker {
        action: "connect".into(),
        message: e.to_string(),
    })
}

/// Loads an image into the engine (as `docker load` would) and returns its `repository:tag`.
pub async fn load(image: &BuiltImage, progress: &Progress) -> Result<String> {
    let docker = connect()?;
    let archive = image.layout_dir().with_file_name("docker-archive.tar");
    write_docker_archive(image, &archive)?;
    let data = std::fs::read(&archive).map_err(|e| Error::io("could not read", &archive, e))?;
    let _ = std::fs::remove_file(&archive);
    let task = progress.task(format!(
        "Loading {}:{} into Docker",
        image.repository, image.tag
    ));
    let options = bollard::query_parameters::ImportImageOptionsBuilder::default().build();
    let mut stream = docker.import_image(options, bollard::body_full(data.into()), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| Error::Docker {
            action: format!("load {}:{}", image.repository, image.tag),
            message: e.to_string(),
        })?;
        if let Some(detail) = info.error_detail {
            return Err(Error::Docker {
                action: format!("load {}:{}", image.repository, image.tag),
                message: detail.message.unwrap_or_default(),
            });
        }
    }
    let name = format!("{}:{}", image.repository, image.tag);
    task.done(&format!("Loaded {name} into Docker"));
    Ok(name)
}
