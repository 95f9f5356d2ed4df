//! What the `cross` backend needs around its command line: the images a `Cross.toml` names
//! (to say which image cross will use), its container engine (checked before it runs), and
//! its failures told apart (no engine, an image it cannot pull, a failed build).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::Plan;
use crate::error::Error;

use super::command::{cross_image_var, BuildCommand, CompileUnit};
use super::find_program;

/// How many of cross's last stderr lines a failure quotes.
pub const STDERR_TAIL: usize = 40;

/// The variable cross reads its container engine from.
const ENGINE_VAR: &str = "CROSS_CONTAINER_ENGINE";

/// The images the workspace's `Cross.toml` (or the file `CROSS_CONFIG` names) sets, by target
/// triple: `[target.<triple>] image = "..."` or `image = { name = "..." }`. Empty without one,
/// or when it cannot be read (cross itself will then say why).
pub fn toml_images(plan: &Plan) -> BTreeMap<String, String> {
    let path = std::env::var_os("CROSS_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| plan.workspace_root.join("Cross.toml").into_std_path_buf());
    std::fs::read_to_string(path)
        .ok()
        .map(|text| images_in(&text))
        .unwrap_or_default()
}

fn images_in(text: &str) -> BTreeMap<String, String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return BTreeMap::new();
    };
    let Some(targets) = table.get("target").and_then(|t| t.as_table()) else {
        return BTreeMap::new();
    };
    targets
        .iter()
        .filter_map(|(triple, settings)| {
            let image = settings.get("image")?;
            let name = image
                .as_str()
                .or_else(|| image.get("name").and_then(|n| n.as_str()))?;
            Some((triple.clone(), name.to_string()))
        })
        .collect()
}

/// The container engine cross will run, as cross picks it: `CROSS_CONTAINER_ENGINE`, else
/// `docker`, else `podman` on PATH. An error says which one is missing and what to do.
pub fn engine() -> Result<PathBuf, Error> {
    if let Some(engine) = std::env::var_os(ENGINE_VAR).filter(|e| !e.is_empty()) {
        let name = engine.to_string_lossy().into_owned();
        let path = PathBuf::from(&engine);
        return if path.is_absolute() && path.is_file() {
            Ok(path)
        } else if let Some(found) = find_program(&name) {
            Ok(found)
        } else {
            Err(Error::CrossEngineMissing {
                missing: format!("{ENGINE_VAR} names `{name}`, which is not on PATH"),
                help: format!("install {name} (Debian: `apt-get install {}`), or set {ENGINE_VAR} to `docker` or `podman`", debian_package(&name)),
            })
        };
    }
    find_program("docker")
        .or_else(|| find_program("podman"))
        .ok_or_else(|| Error::CrossEngineMissing {
            missing: "neither `docker` nor `podman` is on PATH".into(),
            help: "install Docker (Debian: `apt-get install docker.io`, then start `dockerd` or point DOCKER_HOST at one) or Podman (`apt-get install podman`, with CROSS_CONTAINER_ENGINE=podman), or choose `--compiler cargo` or `zigbuild`".into(),
        })
}

fn debian_package(engine: &str) -> &str {
    match engine.rsplit('/').next().unwrap_or(engine) {
        "docker" => "docker.io",
        other => other,
    }
}

/// The error of a cross run that exited with `status`, from the last lines of its stderr.
pub fn failure(cmd: &BuildCommand, unit: &CompileUnit, status: &str, tail: &[String]) -> Error {
    let stderr = tail.join("\n");
    let target = unit.target.triple();
    let engine = std::env::var(ENGINE_VAR)
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "docker".into());
    let unreachable = [
        "Cannot connect to the Docker daemon",
        "Is the docker daemon running",
        "Cannot connect to Podman",
        "error during connect",
    ];
    if stderr.contains("error setting rlimit") {
        return Error::CrossEngineUnreachable {
            engine,
            stderr,
            help: "the engine raises its containers' open-file and process limits, which this machine does not allow (no CAP_SYS_RESOURCE, as in some containers and VMs); give them limits below the current ones: CROSS_CONTAINER_OPTS='--ulimit nofile=1024:1024 --ulimit nproc=4096:4096'".into(),
        };
    }
    if unreachable.iter().any(|needle| stderr.contains(needle)) {
        let help = if engine.ends_with("podman") {
            "check that `podman info` works for this user (rootful Podman needs root; rootless needs subuids and a user namespace)".to_string()
        } else {
            let host = std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
            format!("start the Docker daemon (`dockerd`, or `systemctl start docker`), or point DOCKER_HOST (now {host}) at a running one; or use Podman with CROSS_CONTAINER_ENGINE=podman")
        };
        return Error::CrossEngineUnreachable {
            engine,
            stderr,
            help,
        };
    }
    if let Some(image) = unpulled_image(&stderr) {
        return Error::CrossImagePull {
            image,
            var: cross_image_var(&target),
            target,
            stderr,
        };
    }
    Error::CrossFailed {
        what: format!("{} ({})", unit.packages.join(", "), unit.target),
        status: status.to_string(),
        stderr,
        command: cmd.display(),
    }
}

/// The image an engine failed to pull, from its messages: Docker's `Unable to find image
/// 'X' locally` followed by an error, or Podman's `Trying to pull X...` followed by one.
fn unpulled_image(stderr: &str) -> Option<String> {
    let failed = [
        "pull access denied",
        "manifest unknown",
        "not found",
        "repository does not exist",
        "no such host",
        "dial tcp",
        "Error: initializing source",
        "unauthorized",
        "denied",
        "timeout",
    ];
    if !failed.iter().any(|needle| stderr.contains(needle)) {
        return None;
    }
    stderr.lines().find_map(|line| {
        if let Some(rest) = line.split("Unable to find image '").nth(1) {
            return rest.split('\'').next().map(str::to_string);
        }
        line.split("Trying to pull ")
            .nth(1)
            .map(|rest| rest.trim_end_matches("...").trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_toml_images_as_a_string_or_a_name() {
        let images = images_in(
            "[target.aarch64-unknown-linux-gnu]\nimage = \"my/a:1\"\n\n\
             [target.x86_64-unknown-linux-musl]\nimage = { name = \"my/b:2\", toolchain = [\"x86_64-unknown-linux-gnu\"] }\n\n\
             [target.armv7-unknown-linux-gnueabihf]\npre-build = [\"true\"]\n",
        );
        assert_eq!(
            images,
            BTreeMap::from([
                (
                    "aarch64-unknown-linux-gnu".to_string(),
                    "my/a:1".to_string()
                ),
                (
                    "x86_64-unknown-linux-musl".to_string(),
                    "my/b:2".to_string()
                ),
            ])
        );
        assert!(images_in("not toml [").is_empty());
    }

    #[test]
    fn the_image_an_engine_could_not_pull_is_named() {
        let docker = "Unable to find image 'nope.invalid/x:1' locally\n\
                      docker: Error response from daemon: Get \"https://nope.invalid/v2/\": dial tcp: lookup nope.invalid: no such host.";
        assert_eq!(unpulled_image(docker).as_deref(), Some("nope.invalid/x:1"));
        let podman = "Trying to pull nope.invalid/x:1...\nError: initializing source docker://nope.invalid/x:1: pinging container registry nope.invalid: no such host";
        assert_eq!(unpulled_image(podman).as_deref(), Some("nope.invalid/x:1"));
        // A compile error is not a pull error.
        assert_eq!(
            unpulled_image("error[E0425]: cannot find value `x` in this scope"),
            None
        );
    }
}
