//! Runs an image's function in a Docker container, through bollard (no Docker CLI).
//!
//! Each runtime instance is one container of the image as loaded into the engine, run with the
//! image's own ENTRYPOINT and CMD and the way Lambda runs it: read-only root filesystem, a tmpfs
//! `/tmp` of the function's ephemeral storage, a non-root user (993:990), the image's platform
//! and the emulator's environment on top of the image's ENV. The container shares the host's
//! network (`network_mode: host`), so the Runtime API on 127.0.0.1 is reachable; that needs
//! an engine on this machine (not a remote `DOCKER_HOST`).
//!
//! Containers never outlive their runtime: [`RuntimeProcess::kill`] removes the container
//! (`docker rm -f`), and so does dropping the process (blocking, best effort), e.g. when the
//! emulator is dropped on Ctrl-C. Every container is labelled with [`LABEL`] and the emulator's
//! process id ([`LABEL_PID`]); a new [`DockerLauncher`] removes containers left behind by
//! emulator processes that no longer exist (killed with SIGKILL, say).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::sandbox::{SANDBOX_GID, SANDBOX_UID};
use super::{BoxFuture, Launcher, LogSink, RuntimeProcess};
use crate::error::{Error, Result};
use crate::image::BuiltImage;
use crate::progress::Reporter;
use crate::target::Arch;

/// The label every runtime container carries (value `runtime`).
pub const LABEL: &str = "cargo-lambda-image.emulator";
/// The label holding the process id of the emulator that started the container.
pub const LABEL_PID: &str = "cargo-lambda-image.emulator.pid";

/// A [`Launcher`] running each runtime in a Docker container (see the module documentation).
#[derive(Debug, Clone)]
pub struct DockerLauncher {
    docker: Docker,
    image: String,
    arch: Arch,
    ephemeral_storage_mb: u32,
    user: String,
    labels: HashMap<String, String>,
}

impl DockerLauncher {
    /// Runs `image` (a name or id the engine knows) built for `arch`. Removes the containers
    /// of emulators that are gone.
    pub async fn new(image: impl Into<String>, arch: Arch) -> Result<DockerLauncher> {
        let docker = crate::docker::connect()?;
        let launcher = DockerLauncher {
            docker,
            image: image.into(),
            arch,
            ephemeral_storage_mb: crate::lambda::DEFAULT_EPHEMERAL_STORAGE,
            user: format!("{SANDBOX_UID}:{SANDBOX_GID}"),
            labels: HashMap::new(),
        };
        launcher.remove_orphans().await?;
        Ok(launcher)
    }

    /// Loads a built image into the engine (`docker load`), then runs it.
    pub async fn load(image: &BuiltImage, progress: &Reporter) -> Result<DockerLauncher> {
        let name = crate::docker::load(
            image.layout_dir(),
            &image.digest,
            &format!("{}:{}", image.repository, image.tag),
            progress,
        )
        .await?;
        DockerLauncher::new(name, image.arch).await
    }

    /// Sets the size of `/tmp` in MB (Lambda's ephemeral storage).
    pub fn ephemeral_storage_mb(mut self, mb: u32) -> DockerLauncher {
        self.ephemeral_storage_mb = mb;
        self
    }

    /// Sets the user the function runs as (`uid:gid`).
    pub fn user(mut self, user: impl Into<String>) -> DockerLauncher {
        self.user = user.into();
        self
    }

    /// Adds a label to every container (to find them, e.g. in a test).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> DockerLauncher {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The image run.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The platform containers are created with (`linux/amd64`, `linux/arm64`).
    pub fn platform(&self) -> String {
        format!("linux/{}", self.arch.oci_name())
    }

    /// The container's settings for a runtime with the emulator's environment `env`.
    pub fn container_config(&self, env: &BTreeMap<String, String>) -> ContainerCreateBody {
        let mut labels = self.labels.clone();
        labels.insert(LABEL.into(), "runtime".into());
        labels.insert(LABEL_PID.into(), std::process::id().to_string());
        let tmpfs = HashMap::from([(
            "/tmp".to_string(),
            format!(
                "rw,nosuid,nodev,size={}m,mode=1777",
                self.ephemeral_storage_mb
            ),
        )]);
        ContainerCreateBody {
            image: Some(self.image.clone()),
            user: Some(self.user.clone()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            attach_stdin: Some(false),
            tty: Some(false),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                readonly_rootfs: Some(true),
                tmpfs: Some(tmpfs),
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Removes the runtime containers of emulator processes that no longer exist.
    async fn remove_orphans(&self) -> Result<()> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| Error::Docker {
                action: "list containers".into(),
                message: e.to_string(),
            })?;
        for container in containers {
            let owner = container
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_PID))
                .and_then(|p| p.parse::<u32>().ok());
            let alive =
                owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                if let Some(id) = container.id {
                    let _ = remove(&self.docker, &id).await;
                }
            }
        }
        Ok(())
    }
}

impl Launcher for DockerLauncher {
    fn launch(
        &self,
        env: &BTreeMap<String, String>,
        logs: &LogSink,
    ) -> io::Result<Box<dyn RuntimeProcess>> {
        let name = unique_name();
        let cancelled = Arc::new(AtomicBool::new(false));
        let docker = self.docker.clone();
        let config = self.container_config(env);
        let platform = self.platform();
        let logs = logs.clone();
        let task_name = name.clone();
        let task_cancelled = cancelled.clone();
        let started = tokio::spawn(async move {
            let name = task_name;
            let options = CreateContainerOptionsBuilder::default()
                .name(&name)
                .platform(&platform)
                .build();
            docker
                .create_container(Some(options), config)
                .await
                .map_err(|e| format!("could not create the container: {e}"))?;
            if task_cancelled.load(Ordering::SeqCst) {
                let _ = remove(&docker, &name).await;
                return Err("the runtime was killed before it started".to_string());
            }
            docker
                .start_container(&name, None)
                .await
                .map_err(|e| format!("could not start the container: {e}"))?;
            if task_cancelled.load(Ordering::SeqCst) {
                let _ = remove(&docker, &name).await;
                return Err("the runtime was killed before it started".to_string());
            }
            tokio::spawn(forward_logs(docker, name, logs));
            Ok(())
        });
        Ok(Box::new(DockerProcess {
            docker: self.docker.clone(),
            name,
            started: Some(started),
            start_error: None,
            cancelled,
            removed: false,
        }))
    }
}

/// A runtime container; removed when killed or dropped.
struct DockerProcess {
    docker: Docker,
    name: String,
    started: Option<JoinHandle<std::result::Result<(), String>>>,
    start_error: Option<String>,
    cancelled: Arc<AtomicBool>,
    removed: bool,
}

impl DockerProcess {
    /// Waits until the container is created and started (or failed to be).
    async fn started(&mut self) -> io::Result<()> {
        if let Some(handle) = self.started.as_mut() {
            let result = match handle.await {
                Ok(result) => result,
                Err(e) => Err(format!("the container start was interrupted: {e}")),
            };
            self.started = None;
            if let Err(e) = result {
                self.start_error = Some(e);
            }
        }
        match &self.start_error {
            Some(e) => Err(io::Error::other(format!("container {}: {e}", self.name))),
            None => Ok(()),
        }
    }
}

impl RuntimeProcess for DockerProcess {
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(async move {
            self.started().await?;
            let mut stream = self.docker.wait_container(&self.name, None);
            let code = match stream.next().await {
                Some(Ok(response)) => response.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => {
                    return Err(io::Error::other(format!(
                        "waiting for container {}: {e}",
                        self.name
                    )))
                }
                None => return Err(io::Error::other(format!("container {} is gone", self.name))),
            };
            Ok(exit_status(code))
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            self.cancelled.store(true, Ordering::SeqCst);
            // A container being created is removed once it exists.
            let _ = self.started().await;
            remove(&self.docker, &self.name)
                .await
                .map_err(|e| io::Error::other(format!("removing container {}: {e}", self.name)))?;
            self.removed = true;
            Ok(())
        })
    }

    fn terminate(&mut self) -> io::Result<()> {
        // SIGTERM goes to the container's first process, the runtime.
        let (docker, name) = (self.docker.clone(), self.name.clone());
        tokio::spawn(async move {
            let options = bollard::query_parameters::KillContainerOptionsBuilder::default()
                .signal("SIGTERM")
                .build();
            // A container that is gone already needs no signal.
            let _ = docker.kill_container(&name, Some(options)).await;
        });
        Ok(())
    }

    fn id(&self) -> Option<u32> {
        None
    }
}

impl Drop for DockerProcess {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.cancelled.store(true, Ordering::SeqCst);
        let name = self.name.clone();
        // Blocking, on a thread with its own runtime and connection: this may run inside the
        // emulator's runtime (which cannot be blocked on) or while it shuts down.
        let remover = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(docker) = crate::docker::connect() else {
                    return;
                };
                // A create racing with this removal may finish just after it: try again once.
                for _ in 0..2 {
                    if remove(&docker, &name).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            });
        });
        let _ = remover.join();
    }
}

/// `docker rm -f`; a container that does not exist counts as removed.
async fn remove(docker: &Docker, name: &str) -> std::result::Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(options)).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        other => other,
    }
}

/// Sends the container's output to `logs`, line by line.
async fn forward_logs(docker: Docker, name: String, logs: LogSink) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(&name, Some(options));
    let mut pending: HashMap<bool, Vec<u8>> = HashMap::new();
    while let Some(Ok(output)) = stream.next().await {
        let is_err = matches!(output, bollard::container::LogOutput::StdErr { .. });
        let buffer = pending.entry(is_err).or_default();
        buffer.extend_from_slice(output.as_ref());
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            logs.line(text.trim_end_matches(['\n', '\r']));
        }
    }
    for rest in pending.into_values().filter(|b| !b.is_empty()) {
        logs.line(String::from_utf8_lossy(&rest).trim_end_matches('\r'));
    }
}

/// An exit status from a container's exit code (128 + N for a signal, as a shell reports it).
fn exit_status(code: i64) -> ExitStatus {
    match code {
        129..=192 => ExitStatus::from_raw((code - 128) as i32),
        code => ExitStatus::from_raw(((code & 0xff) as i32) << 8),
    }
}

/// A container name no other runtime uses.
fn unique_name() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "cargo-lambda-image-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_statuses() {
        assert_eq!(exit_status(0).code(), Some(0));
        assert_eq!(exit_status(3).code(), Some(3));
        assert_eq!(exit_status(137).signal(), Some(9));
    }

    #[test]
    fn containers_are_read_only_non_root_on_the_host_network() {
        let launcher = DockerLauncher {
            docker: Docker::connect_with_http(
                "http://127.0.0.1:1",
                1,
                bollard::API_DEFAULT_VERSION,
            )
            .unwrap(),
            image: "fn:latest".into(),
            arch: Arch::Arm64,
            ephemeral_storage_mb: 1024,
            user: "993:990".into(),
            labels: HashMap::from([("test".to_string(), "x".to_string())]),
        };
        assert_eq!(launcher.platform(), "linux/arm64");
        let config = launcher.container_config(&BTreeMap::from([(
            "AWS_LAMBDA_RUNTIME_API".to_string(),
            "127.0.0.1:9001".to_string(),
        )]));
        let host = config.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert!(host.tmpfs.unwrap()["/tmp"].contains("size=1024m"));
        assert_eq!(config.user.as_deref(), Some("993:990"));
        assert_eq!(
            config.env.unwrap(),
            vec!["AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"]
        );
        let labels = config.labels.unwrap();
        assert_eq!(labels[LABEL], "runtime");
        assert_eq!(labels["test"], "x");
        assert!(config.entrypoint.is_none() && config.cmd.is_none());
    }
}
