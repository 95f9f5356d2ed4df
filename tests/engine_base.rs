//! Bases that exist only in the local Docker engine (imported with `docker import`, in no
//! registry; nothing can be pulled from Docker Hub on these machines): the Docker builder uses
//! them without pulling, pulls only what the engine lacks or what `--pull` asks for, and says
//! which registry failed when a pull does; the daemonless builder reads them as
//! `docker-daemon:IMAGE`, verified and cached, for the function's architecture only.

use crate::support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::images::engine_provided_base;
use support::{
    cli, docker_inspect, events_of, fixture_target_dir, fixture_workspace, json_lines, run,
    service_env, texts,
};

/// `cargo lambda-image <command> -p greet --bin hello` with `args`, its cache in `cache`.
fn greet(command: &str, args: &[&str], cache: &Path) -> Output {
    let mut cmd = cli();
    cmd.args([command, "-p", "greet", "--bin", "hello"])
        .args(args)
        .args(["--message-format", "json", "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
        .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache);
    run(&mut cmd)
}

/// The image of the one `image` event.
fn image_of(out: &Output) -> Value {
    events_of(&json_lines(out), "image")[0]["image"].clone()
}

/// The answer of the one invocation of a successful `test`.
fn answer(out: &Output) -> Value {
    let (stdout, stderr) = texts(out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let events = json_lines(out);
    let invocation = events_of(&events, "invocation")[0].clone();
    assert_eq!(invocation["invocation"]["status"], 200, "{invocation}");
    invocation["invocation"]["response"]["message"].clone()
}

/// All a failed run printed.
fn failure(out: &Output) -> String {
    let (stdout, stderr) = texts(out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    format!("{stdout}\n{stderr}")
}

/// Asserts a failed run's error is the pull failure of `reference` from `registry`, with the
/// fixes for it and not the "is dockerd running" help.
fn assert_pull_failure(out: &Output, reference: &str, registry: &str) {
    let all = failure(out);
    assert!(
        all.contains(&format!(
            "could not pull the base image {reference} (linux/amd64) from {registry}"
        )),
        "{all}"
    );
    assert!(all.contains(&format!("docker login {registry}")), "{all}");
    assert!(all.contains("docker pull --platform linux/amd64"), "{all}");
    assert!(!all.contains("check that dockerd is running"), "{all}");
}

#[test]
fn the_docker_builder_uses_a_base_only_in_the_engine_without_pulling_it() {
    service_env("DOCKER_HOST");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_provided_base(dir.path());
    let base = engine.name.clone();
    let out = greet(
        "test",
        &[
            "--builder",
            "docker",
            "--runner",
            "docker",
            "--base-image",
            base.as_str(),
            "--event",
            r#"{"name":"local base"}"#,
        ],
        dir.path(),
    );
    assert_eq!(answer(&out), "hello, local base");
    // The image is built on the engine's base: its first layer is the imported one.
    let image = image_of(&out);
    let name = format!(
        "{}:{}",
        image["repository"].as_str().unwrap(),
        image["tag"].as_str().unwrap()
    );
    assert_eq!(
        docker_inspect(&name, "{{index .RootFS.Layers 0}}"),
        docker_inspect(&base, "{{index .RootFS.Layers 0}}")
    );
    assert_eq!(
        docker_inspect(&name, "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"),
        r#"["/lambda-entrypoint.sh"] ["bootstrap"]"#
    );

    // With --pull the engine's copy is not enough: the pull is tried, fails (Docker Hub is
    // out of reach), and the error names the reference and its registry.
    let out = greet(
        "image",
        &["--builder", "docker", "--pull", "--base-image", &base],
        dir.path(),
    );
    assert_pull_failure(&out, &base, "docker.io");
}

#[test]
fn a_base_the_engine_lacks_is_pulled_and_an_unreachable_registry_is_named() {
    service_env("DOCKER_HOST");
    let dir = tempfile::tempdir().unwrap();
    // `.invalid` never resolves (RFC 2606).
    let base = "registry.example.invalid/lambda/provided:al2";
    let out = greet(
        "image",
        &["--builder", "docker", "--base-image", base],
        dir.path(),
    );
    assert_pull_failure(&out, base, "registry.example.invalid");
}

#[test]
fn the_daemonless_builder_reads_an_engine_base_and_caches_it() {
    service_env("DOCKER_HOST");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let engine = engine_provided_base(dir.path());
    let name = engine.name.clone();
    let base = format!("docker-daemon:{name}");
    let args = [
        "--base-image",
        base.as_str(),
        "--event",
        r#"{"name":"engine"}"#,
    ];
    let out = greet("test", &args, &cache);
    assert_eq!(answer(&out), "hello, engine");
    let (stdout, stderr) = texts(&out);
    assert!(
        format!("{stdout}{stderr}").contains(&format!("Read {name} from the Docker engine")),
        "{stdout}\n{stderr}"
    );

    // The image's base layer is the engine's, gzipped: its diff_id is the engine's layer.
    let image = image_of(&out);
    let layout = Path::new(image["layout"].as_str().unwrap());
    let config_digest = image["config_digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&config_digest[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        docker_inspect(&name, "{{index .RootFS.Layers 0}}")
    );
    let base_layer = image["layers"][0]["digest"].as_str().unwrap();
    assert!(cache.join("blobs/sha256").join(&base_layer[7..]).is_file());
    let id = docker_inspect(&name, "{{.Id}}");
    assert!(cache
        .join("docker-daemon")
        .join(format!("{}.json", &id[7..]))
        .is_file());

    // The second build takes the base from the cache, without saving it again, and makes
    // the same image.
    let again = greet("test", &args, &cache);
    assert_eq!(answer(&again), "hello, engine");
    let (stdout, stderr) = texts(&again);
    assert!(
        !format!("{stdout}{stderr}").contains("from the Docker engine"),
        "{stdout}\n{stderr}"
    );
    let image_again = image_of(&again);
    assert_eq!(image_again["digest"], image["digest"]);
}

#[test]
fn an_engine_base_for_another_architecture_is_refused_naming_both() {
    service_env("DOCKER_HOST");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_provided_base(dir.path());
    let name = engine.name.clone();
    assert_eq!(docker_inspect(&name, "{{.Architecture}}"), "amd64");
    let base = format!("docker-daemon:{name}");
    let out = greet(
        "image",
        &["--arch", "arm64", "--base-image", &base],
        &dir.path().join("cache"),
    );
    let all = failure(&out);
    assert!(
        all.contains(&format!(
            "base image {base} is for linux/amd64, but the function is built for linux/arm64"
        )),
        "{all}"
    );
    assert!(all.contains("--platform linux/arm64"), "{all}");
    assert!(all.contains("--arch x86_64"), "{all}");
}

#[test]
fn pull_without_the_docker_builder_is_refused() {
    let out = greet("image", &["--pull"], &std::env::temp_dir());
    assert_eq!(out.status.code(), Some(1));
    let all = failure(&out);
    assert!(
        all.contains("--pull") && all.contains("add --builder docker"),
        "{all}"
    );
}

/// The Docker builder sends the login of a private base (from the Docker config) with the
/// pull and the build, so that a base in a registry with TLS and htpasswd works; without the
/// login, the pull is refused and the error says which registry to log in to.
#[test]
fn the_docker_builder_logs_in_to_a_private_base_registry() {
    use support::images::fake_provided_base;
    use support::tls_registry::{start_registry, PASSWORD};
    service_env("DOCKER_HOST");
    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    // dockerd trusts the registry's CA through certs.d, which it reads at each pull.
    let certs = Path::new("/etc/docker/certs.d").join(&registry.address);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&registry.ca, certs.join("ca.crt")).unwrap();
    let layout = fake_provided_base(dir.path());
    let base = format!("{}/private/provided:al2", registry.address);
    let copy = std::process::Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("tester:{PASSWORD}")])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{base}"))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{:?}", texts(&copy));

    let anonymous = dir.path().join("anonymous");
    std::fs::create_dir_all(&anonymous).unwrap();
    std::fs::write(anonymous.join("config.json"), "{}").unwrap();
    let without = {
        let mut cmd = cli();
        cmd.args([
            "image",
            "-p",
            "greet",
            "--bin",
            "hello",
            "--builder",
            "docker",
        ])
        .args(["--base-image", &base, "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
        .env("DOCKER_CONFIG", &anonymous);
        run(&mut cmd)
    };
    let all = failure(&without);
    assert!(
        all.contains(&format!("docker login {}", registry.address)),
        "{all}"
    );

    let logged_in = dir.path().join("docker");
    let auth = support::docker_config(&logged_in, &registry.address, "tester", PASSWORD);
    let out = {
        let mut cmd = cli();
        cmd.args([
            "test",
            "-p",
            "greet",
            "--bin",
            "hello",
            "--builder",
            "docker",
        ])
        .args(["--runner", "docker", "--base-image", &base, "-vv"])
        .args(["--event", r#"{"name":"private base"}"#])
        .args(["--message-format", "json", "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
        .env("DOCKER_CONFIG", &logged_in);
        run(&mut cmd)
    };
    let (stdout, stderr) = texts(&out);
    for secret in [PASSWORD, auth.as_str()] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "secret printed"
        );
    }
    assert_eq!(answer(&out), "hello, private base");
    let _ = std::fs::remove_dir_all(&certs);
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &base])
        .output();
}
