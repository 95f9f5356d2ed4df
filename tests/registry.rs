//! Push and pull against a real registry (Debian's docker-registry, started by `cargo xtask
//! ci`), checked with third-party consumers: skopeo, and docker pull + docker run.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cargo_lambda_image::image::{self, base, ImageOptions};
use cargo_lambda_image::oci::Descriptor;
use cargo_lambda_image::progress::Reporter;
use cargo_lambda_image::publish::{self as push, PushTarget};
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::target::Arch;
use serde_json::Value;
use support::images::{echo_bootstrap, echo_spec, fake_provided_base};
use support::proxy::{CountingProxy, Faults};
use support::runtime_api::RuntimeApi;
use support::{
    cli, fixture_target_dir, fixture_workspace, json_lines, run, service_env, texts, unique,
};

fn registry() -> String {
    service_env("CLI_TEST_REGISTRY")
}

fn docker(args: &[&str]) -> Output {
    service_env("DOCKER_HOST");
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

fn ok(out: &Output, what: &str) -> String {
    let (stdout, stderr) = texts(out);
    assert!(
        out.status.success(),
        "{what} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// `push` through the CLI; returns the `pushed` events.
fn cli_push(args: &[&str], extra_env: &[(&str, &str)]) -> Vec<Value> {
    let mut cmd = cli();
    cmd.args([
        "push",
        "--locked",
        "--message-format",
        "json",
        "--registry",
        &registry(),
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .args(args)
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
    .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", registry())
    .envs(extra_env.iter().copied());
    let out = run(&mut cmd);
    ok(&out, "push");
    json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "pushed")
        .map(|e| e["image"].clone())
        .collect()
}

/// Runs an image in Docker with the host network, against a Runtime API stub, and returns the
/// function's JSON answer.
fn docker_invoke(image: &str, platform: &str, event: &str) -> Value {
    let api = RuntimeApi::start(vec![("docker-req".to_string(), event.to_string())]);
    let name = unique("lambda-image-test");
    let mut child = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            "host",
            "--platform",
            platform,
            "--read-only",
            "--user",
            "993:990",
        ])
        .args([
            "-e",
            &format!("AWS_LAMBDA_RUNTIME_API={}", api.address),
            "-e",
            "AWS_LAMBDA_FUNCTION_NAME=test",
            "-e",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
            "-e",
            "AWS_LAMBDA_FUNCTION_VERSION=1",
            "-e",
            "GREETING=hello",
        ])
        .arg(image)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker run");
    let posted = api.next_posted(Duration::from_secs(90));
    let _ = docker(&["rm", "-f", &name]);
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let posted = posted.unwrap_or_else(|| {
        panic!(
            "{image} posted nothing; docker said: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        (posted.kind.as_str(), posted.request_id.as_str()),
        ("response", "docker-req")
    );
    serde_json::from_slice(&posted.body).expect("JSON answer")
}

#[test]
fn pushed_scratch_images_are_what_skopeo_and_docker_see_and_they_run() {
    let pushed = cli_push(
        &[
            "-p",
            "echo",
            "--arch",
            "x86_64,arm64",
            "--base-image",
            "scratch",
        ],
        &[],
    );
    assert_eq!(pushed.len(), 2);
    for image in &pushed {
        let arch = image["arch"].as_str().unwrap();
        let reference = format!(
            "{}:{}",
            image["repository"].as_str().unwrap(),
            image["tag"].as_str().unwrap()
        );
        let inspect = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        let inspected: Value = serde_json::from_str(&ok(&inspect, "skopeo inspect")).unwrap();
        assert_eq!(
            inspected["Digest"], image["digest"],
            "the tag points at the pushed digest"
        );
        assert_eq!(
            inspected["Architecture"],
            if arch == "arm64" { "arm64" } else { "amd64" }
        );

        let by_digest = image["image_uri"].as_str().unwrap();
        let platform = if arch == "arm64" {
            "linux/arm64"
        } else {
            "linux/amd64"
        };
        ok(
            &docker(&["pull", "--platform", platform, by_digest]),
            "docker pull",
        );
        let answer = docker_invoke(by_digest, platform, r#"{"from":"docker"}"#);
        assert_eq!(answer, serde_json::json!({"from": "docker"}), "{arch}");
    }
}

#[test]
fn registry_base_is_pulled_mounted_and_runs_through_its_entrypoint() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fake_provided_base(dir.path());
    let base_repo = format!("{}/lambda/provided:al2", registry());
    let copy = Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:al2", layout.display()))
        .arg(format!("docker://{base_repo}"))
        .output()
        .unwrap();
    ok(&copy, "skopeo copy of the base");
    // A fresh cache, so the base is really pulled.
    let cache = dir.path().join("cache");
    let pushed = cli_push(
        &[
            "-p",
            "greet",
            "--bin",
            "hello",
            "--arch",
            "x86_64",
            "--base-image",
            &base_repo,
        ],
        &[("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert_eq!(pushed.len(), 1);
    let image = &pushed[0];
    assert!(
        std::fs::read_dir(cache.join("blobs/sha256"))
            .unwrap()
            .count()
            >= 2,
        "config and layer cached"
    );
    // The base layer is on the same registry: mounted (first run) or already there, never uploaded.
    let uploaded: Vec<&str> = image["uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(uploaded.len() <= 2, "at most our layer and config: {image}");
    let answer = docker_invoke(
        image["image_uri"].as_str().unwrap(),
        "linux/amd64",
        r#"{"name":"registry"}"#,
    );
    assert_eq!(answer["message"], "hello, registry");
}

/// Pushes through the library, through a counting proxy.
fn push_via(proxy: &CountingProxy, img: &image::BuiltImage, repository: &str) -> push::PushedImage {
    try_push_via(proxy, img, repository).unwrap()
}

fn try_push_via(
    proxy: &CountingProxy,
    img: &image::BuiltImage,
    repository: &str,
) -> cargo_lambda_image::Result<push::PushedImage> {
    let options = RegistryOptions {
        insecure: vec![proxy.address.clone()],
        ..Default::default()
    };
    let target = PushTarget {
        registry: proxy.address.clone(),
        repository: repository.to_string(),
        tag: img.tag.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(push::push(img, &target, &options, &Reporter::discard()))
}

/// `skopeo inspect --raw` of a reference on the test registry: the manifest, if it is there.
fn registry_manifest(reference: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{reference}", registry()))
        .output()
        .expect("skopeo (Debian package `skopeo`) runs");
    out.status.success().then_some(out.stdout)
}

/// Whether the test registry holds a blob in a repository (`HEAD /v2/<repo>/blobs/<digest>`).
fn registry_has_blob(repository: &str, digest: &str) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(registry()).unwrap();
    write!(
        stream,
        "HEAD /v2/{repository}/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        registry()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// The registry goes away in the middle of the push: the push fails with an error naming the
/// target, no tag appears, and a second push completes, uploading exactly the blobs that did
/// not make it (blobs go a few at a time, so which ones did depends on timing), not the others.
#[test]
fn a_push_cut_off_mid_way_leaves_no_tag_and_a_rerun_uploads_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let img = provided_image(dir.path(), &echo_bootstrap(Arch::X86_64));
    let repository = unique("cut");
    let total: u64 = img.layers.iter().map(|l| l.size).sum();
    let proxy = CountingProxy::start_with_faults(
        &registry(),
        Faults {
            cut_after_bytes: Some(total / 2),
            ..Default::default()
        },
    );
    let err = try_push_via(&proxy, &img, &repository).unwrap_err();
    assert!(proxy.was_cut());
    assert!(
        err.to_string()
            .contains(&format!("{}/{repository}:{}", proxy.address, img.tag)),
        "{err}"
    );
    assert_eq!(proxy.traffic().count("PUT", "/manifests/"), 0);
    assert!(registry_manifest(&format!("{repository}:{}", img.tag)).is_none());

    let mut blobs: Vec<String> = img.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.push(img.config_digest.clone());
    let (mut there, mut missing): (Vec<String>, Vec<String>) = blobs
        .into_iter()
        .partition(|d| registry_has_blob(&repository, d));
    assert!(!missing.is_empty(), "the cut left nothing missing");
    let again = CountingProxy::start(&registry());
    let mut pushed = push_via(&again, &img, &repository);
    for list in [
        &mut there,
        &mut missing,
        &mut pushed.existing,
        &mut pushed.uploaded,
    ] {
        list.sort();
    }
    assert_eq!((pushed.existing, pushed.uploaded), (there, missing));
    let manifest = registry_manifest(&format!("{repository}:{}", img.tag)).expect("tagged now");
    assert_eq!(
        cargo_lambda_image::oci::sha256_digest(&manifest),
        img.digest
    );
}

/// An image whose function layer spans several upload chunks: the echo bootstrap with 20 MiB
/// of random bytes appended (they compress to nothing, and the binary still runs).
fn image_with_a_big_layer(dir: &Path) -> (image::BuiltImage, Descriptor) {
    let bootstrap = dir.join("bootstrap");
    let mut bytes = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    bytes.extend(support::noise(20 << 20, 0x2545_f491_4f6c_dd1d));
    std::fs::write(&bootstrap, bytes).unwrap();
    let img = provided_image(dir, &bootstrap);
    let big = img.layers.last().unwrap().clone();
    assert!(
        big.size > 2 * cargo_lambda_image::registry::upload::CHUNK,
        "{big:?}"
    );
    (img, big)
}

/// A connection breaks in the middle of a large blob's upload (between two of its chunks, so
/// the registry keeps the session): the push asks the registry how far it got and sends only
/// the rest, in the same session, and the image is complete.
#[test]
fn a_broken_upload_resumes_from_the_offset_the_registry_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (img, big) = image_with_a_big_layer(dir.path());
    let repository = unique("resume");
    let proxy = CountingProxy::start_with_faults(
        &registry(),
        Faults {
            cut_before_request: Some(("PATCH", "/blobs/uploads/", 2)),
            cut_once: true,
            ..Default::default()
        },
    );
    let pushed = push_via(&proxy, &img, &repository);
    assert!(proxy.was_cut());
    let traffic = proxy.traffic();
    // The status was asked once, and the upload went on in its session: one POST per uploaded
    // blob, the big one's chunks sent once each (the cut one again).
    assert_eq!(traffic.count("GET", "/blobs/uploads/"), 1, "{traffic:?}");
    assert_eq!(
        traffic.count("POST", "/blobs/uploads/"),
        pushed.uploaded.len(),
        "{traffic:?}"
    );
    let all_blobs: u64 = img.layers.iter().map(|l| l.size).sum::<u64>() + 64 * 1024;
    assert!(
        traffic.bytes < all_blobs + cargo_lambda_image::registry::upload::CHUNK,
        "{} bytes sent for {all_blobs} bytes of blobs: the big one started over",
        traffic.bytes
    );
    assert!(pushed.uploaded.contains(&big.digest));
    let manifest = registry_manifest(&format!("{repository}:{}", img.tag)).expect("tagged");
    assert_eq!(
        cargo_lambda_image::oci::sha256_digest(&manifest),
        img.digest
    );
    assert!(registry_has_blob(&repository, &big.digest));
}

/// A push that fails in the middle of a large blob (the registry went away) leaves its upload
/// session in the cache; the next push takes it up where the registry says it stopped.
#[test]
fn a_failed_push_resumes_the_upload_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (img, big) = image_with_a_big_layer(dir.path());
    let repository = unique("resume-run");
    let proxy = CountingProxy::start_with_faults(
        &registry(),
        Faults {
            cut_before_request: Some(("PATCH", "/blobs/uploads/", 2)),
            ..Default::default()
        },
    );
    let options = RegistryOptions {
        insecure: vec![proxy.address.clone()],
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    };
    let target = PushTarget {
        registry: proxy.address.clone(),
        repository: repository.clone(),
        tag: img.tag.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(push::push(&img, &target, &options, &Reporter::discard()))
        .unwrap_err();
    assert!(proxy.was_cut(), "{err}");
    assert!(registry_manifest(&format!("{repository}:{}", img.tag)).is_none());
    assert!(!registry_has_blob(&repository, &big.digest));

    proxy.heal();
    proxy.reset();
    let pushed = runtime
        .block_on(push::push(&img, &target, &options, &Reporter::discard()))
        .unwrap();
    let traffic = proxy.traffic();
    assert!(
        traffic.bytes < big.size,
        "{} bytes sent again for a {}-byte layer the registry half had",
        traffic.bytes,
        big.size
    );
    assert!(pushed.uploaded.contains(&big.digest));
    let manifest = registry_manifest(&format!("{repository}:{}", img.tag)).expect("tagged");
    assert_eq!(
        cargo_lambda_image::oci::sha256_digest(&manifest),
        img.digest
    );
}

/// A registry that answers 500 to the first connections: the push retries and completes.
#[test]
fn a_registry_answering_500_at_first_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let img = provided_image(dir.path(), &echo_bootstrap(Arch::X86_64));
    let repository = unique("flaky");
    let proxy = CountingProxy::start_with_faults(
        &registry(),
        Faults {
            fail_first_connections: 2,
            ..Default::default()
        },
    );
    let pushed = push_via(&proxy, &img, &repository);
    assert_eq!(proxy.failed(), 2);
    assert_eq!(pushed.digest, img.digest);
    let manifest = registry_manifest(&format!("{repository}:{}", img.tag)).expect("tagged");
    assert_eq!(
        cargo_lambda_image::oci::sha256_digest(&manifest),
        img.digest
    );
}

fn provided_image(dir: &Path, bootstrap: &Path) -> image::BuiltImage {
    let base_dir = fake_provided_base(dir);
    let reference = format!("oci:{}:al2", base_dir.display());
    let spec = echo_spec(Arch::X86_64, &reference, &dir.join("fn"), bootstrap);
    let resolved = base::from_layout(&base_dir, Some("al2"), Arch::X86_64, &reference).unwrap();
    image::assemble(
        &spec,
        spec.artifact.as_std_path(),
        &resolved,
        &ImageOptions::default(),
    )
    .unwrap()
}

#[test]
fn repush_after_a_binary_change_sends_one_layer_config_and_manifest() {
    let proxy = CountingProxy::start(&registry());
    let repository = unique("repush");
    let dir = tempfile::tempdir().unwrap();
    let first = provided_image(dir.path(), &echo_bootstrap(Arch::X86_64));
    let pushed = push_via(&proxy, &first, &repository);
    assert_eq!(
        pushed.uploaded.len(),
        3,
        "base layer, our layer, config: {pushed:?}"
    );
    let traffic = proxy.traffic();
    assert_eq!(
        traffic.count("PUT", "/manifests/"),
        1,
        "{:?}",
        traffic.requests
    );

    // Same image again: nothing but the manifest.
    proxy.reset();
    let again = push_via(&proxy, &first, &repository);
    assert!(again.uploaded.is_empty(), "{again:?}");
    let traffic = proxy.traffic();
    assert_eq!(
        traffic.count("PUT", "/blobs/uploads/") + traffic.count("PATCH", "/blobs/uploads/"),
        0,
        "{:?}",
        traffic.requests
    );
    assert!(
        traffic.bytes < 16 * 1024,
        "an unchanged re-push sends only requests and the manifest: {} bytes",
        traffic.bytes
    );

    // A new binary: exactly our layer and the config are uploaded, and the manifest.
    proxy.reset();
    let other = tempfile::tempdir().unwrap();
    let hello = fixture_target_dir("musl").join("lambda-image/hello/x86_64/bootstrap");
    let changed_source = if hello.exists() {
        hello
    } else {
        std::path::PathBuf::from("/bin/ls")
    };
    let second = provided_image(other.path(), &changed_source);
    assert_eq!(second.layers[0], first.layers[0], "same base layer");
    let pushed = push_via(&proxy, &second, &repository);
    assert_eq!(
        pushed.uploaded,
        vec![
            second.layers[1].digest.clone(),
            second.config_digest.clone()
        ]
    );
    assert_eq!(pushed.existing, vec![second.layers[0].digest.clone()]);
    let traffic = proxy.traffic();
    assert_eq!(
        traffic.count("POST", "/blobs/uploads/"),
        2,
        "{:?}",
        traffic.requests
    );
    assert_eq!(
        traffic.count("PUT", "/manifests/"),
        1,
        "{:?}",
        traffic.requests
    );
    let budget = second.layers[1].size + 64 * 1024;
    assert!(
        traffic.bytes <= budget,
        "sent {} bytes for a {}-byte layer",
        traffic.bytes,
        second.layers[1].size
    );
}

#[test]
fn push_to_a_missing_registry_fails_without_a_tag() {
    // Nothing listens on port 9; the error says what failed and how to reach the registry.
    let dir = tempfile::tempdir().unwrap();
    let img = provided_image(dir.path(), &echo_bootstrap(Arch::X86_64));
    let options = RegistryOptions {
        insecure: vec!["127.0.0.1:9".into()],
        ..Default::default()
    };
    let target = PushTarget {
        registry: "127.0.0.1:9".into(),
        repository: "nowhere".into(),
        tag: "t".into(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(push::push(&img, &target, &options, &Reporter::discard()))
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:9/nowhere:t"), "{err}");
}

#[test]
fn image_load_puts_a_runnable_image_into_docker() {
    let mut cmd = cli();
    cmd.args([
        "image",
        "--load",
        "--locked",
        "-p",
        "greet",
        "--bin",
        "goodbye",
        "--arch",
        "x86_64",
        "--base-image",
        "scratch",
        "--message-format",
        "json",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    let out = run(&mut cmd);
    ok(&out, "image --load");
    let event = json_lines(&out)
        .into_iter()
        .find(|e| e["reason"] == "image")
        .expect("image event");
    let name = event["loaded"].as_str().expect("loaded name").to_string();
    assert_eq!(
        name,
        format!("goodbye:{}", event["image"]["tag"].as_str().unwrap())
    );
    // The engine reports the same config digest (its image ID) as we built.
    let inspect = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Architecture}}",
        &name,
    ]);
    assert_eq!(
        ok(&inspect, "docker image inspect").trim(),
        format!(
            "{} amd64",
            event["image"]["config_digest"].as_str().unwrap()
        )
    );
    let answer = docker_invoke(&name, "linux/amd64", r#"{"name":"loaded"}"#);
    // docker_invoke sets GREETING=hello; the greeting code is shared by both binaries.
    assert_eq!(answer["message"], "hello, loaded");
}

/// A workspace of three functions (bins of one package) with names no earlier run used, on the
/// stand-in provided base, so that their repositories are new.
fn three_functions_on_one_base(dir: &Path) -> (support::TempWorkspace, Vec<String>) {
    let base = fake_provided_base(dir);
    let names: Vec<String> = (0..3)
        .map(|i| unique(&format!("shared-base-{i}")))
        .collect();
    let metadata = format!(
        "[package.metadata.lambda]\nbase-image = \"oci:{}\"\n\n[package.metadata.lambda.bin.func]\nfunction-name = \"{}\"\n\n[package.metadata.lambda.bin.b1]\nfunction-name = \"{}\"\n\n[package.metadata.lambda.bin.b2]\nfunction-name = \"{}\"\n",
        base.display(),
        names[0],
        names[1],
        names[2]
    );
    (
        support::TempWorkspace::new(&metadata, "", &["b1", "b2"]),
        names,
    )
}

/// `push` of a workspace with its own location cache; returns the `pushed` events.
fn push_workspace(ws: &support::TempWorkspace, cache: &Path, args: &[&str]) -> Vec<Value> {
    let mut cmd = cli();
    cmd.args([
        "push",
        "--message-format",
        "json",
        "--registry",
        &registry(),
    ])
    .args(args)
    .arg("--manifest-path")
    .arg(ws.manifest())
    .env("CARGO_TARGET_DIR", fixture_target_dir("shared-base"))
    .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache)
    .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", registry());
    let out = run(&mut cmd);
    ok(&out, "push");
    json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "pushed")
        .map(|e| e["image"].clone())
        .collect()
}

fn digests(pushed: &Value, key: &str) -> Vec<String> {
    pushed[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// Functions sharing a base, pushed to new repositories in one run, upload the base once and
/// mount it for the others, as `docker push` does; a later run mounts it from where it is
/// remembered to be, and a stale memory falls back to an upload.
#[test]
fn a_shared_base_is_uploaded_once_and_mounted_for_the_other_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let (ws, names) = three_functions_on_one_base(dir.path());
    let cache = dir.path().join("cache");
    let pushed = push_workspace(&ws, &cache, &[]);
    assert_eq!(pushed.len(), 3);
    // The base's layer is the first layer of every image.
    let layout =
        fixture_target_dir("shared-base").join(format!("lambda-image/{}/x86_64/oci", names[0]));
    let manifest = cargo_lambda_image::oci::Layout::open(&layout)
        .unwrap()
        .single_manifest()
        .unwrap();
    let base_layer = manifest.layers[0].digest.clone();
    let uploads = pushed
        .iter()
        .filter(|p| digests(p, "uploaded").contains(&base_layer))
        .count();
    let mounts = pushed
        .iter()
        .filter(|p| digests(p, "mounted").contains(&base_layer))
        .count();
    assert_eq!((uploads, mounts), (1, 2), "{pushed:?}");

    // Another run, another new repository: mounted from where the cache remembers it.
    let renamed = ws.package_manifest();
    let text = std::fs::read_to_string(&renamed).unwrap();
    let fourth = unique("shared-base-3");
    std::fs::write(&renamed, text.replace(&names[0], &fourth)).unwrap();
    let pushed = push_workspace(&ws, &cache, &["--bin", "func"]);
    assert!(
        digests(&pushed[0], "mounted").contains(&base_layer),
        "{pushed:?}"
    );

    // A cache that only knows a repository that is gone: the mount fails, the blob is
    // uploaded, and the stale location is forgotten.
    let stale = dir.path().join("stale-cache");
    let record = stale
        .join("locations")
        .join(format!("{}.json", registry().replace(':', "_")));
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(
        &record,
        serde_json::json!({"blobs": {&base_layer: ["no-such-repository"]}}).to_string(),
    )
    .unwrap();
    let fifth = unique("shared-base-4");
    let text = std::fs::read_to_string(&renamed).unwrap();
    std::fs::write(&renamed, text.replace(&fourth, &fifth)).unwrap();
    let pushed = push_workspace(&ws, &stale, &["--bin", "func"]);
    assert!(
        digests(&pushed[0], "uploaded").contains(&base_layer),
        "{pushed:?}"
    );
    let remembered: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let repos = remembered["blobs"][&base_layer].as_array().unwrap();
    assert!(
        !repos.contains(&"no-such-repository".into()),
        "{remembered}"
    );
    assert!(repos.contains(&fifth.clone().into()), "{remembered}");
}

/// `push --sbom` attaches the SBOM as an OCI 1.1 referrer of the image. Debian's
/// docker-registry (distribution 2.8) has no referrers API, so the referrers tag
/// `sha256-<hex>` lists it; the image manifest is the one a push without --sbom makes.
#[test]
fn push_sbom_attaches_a_referrer_and_leaves_the_image_manifest_alone() {
    // A creation time of its own makes an image (and a referrers tag) no earlier run made.
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let args = ["-p", "echo", "--arch", "x86_64", "--base-image", "scratch"];
    let env = [("SOURCE_DATE_EPOCH", epoch.as_str())];
    let plain = cli_push(&args, &env).remove(0);
    assert!(plain.get("referrer").is_none(), "{plain}");
    let with_sbom = cli_push(&[&args[..], &["--sbom"]].concat(), &env).remove(0);
    let digest = plain["digest"].as_str().unwrap();
    assert_eq!(
        with_sbom["digest"], digest,
        "the image manifest is unchanged"
    );
    let referrer = with_sbom["referrer"].as_str().expect("a referrer digest");
    let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));

    // The fallback tag lists the artifact manifest.
    let index: Value =
        serde_json::from_slice(&registry_manifest(&format!("fixture-echo:{tag}")).unwrap())
            .unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["digest"] == referrer)
        .collect();
    assert_eq!(listed.len(), 1, "{index}");
    assert_eq!(listed[0]["artifactType"], "application/spdx+json");

    // The artifact manifest refers to the image and carries the SBOM's bytes.
    let artifact_bytes = registry_manifest(&format!("fixture-echo@{referrer}")).unwrap();
    assert_eq!(
        cargo_lambda_image::oci::sha256_digest(&artifact_bytes),
        referrer
    );
    let artifact: Value = serde_json::from_slice(&artifact_bytes).unwrap();
    assert_eq!(artifact["artifactType"], "application/spdx+json");
    assert_eq!(
        artifact["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(artifact["subject"]["digest"], digest);
    let sbom = std::fs::read(
        fixture_target_dir("musl").join("lambda-image/fixture-echo/x86_64/sbom.spdx.json"),
    )
    .unwrap();
    let layer = &artifact["layers"][0];
    assert_eq!(layer["mediaType"], "application/spdx+json");
    assert_eq!(
        layer["digest"],
        cargo_lambda_image::oci::sha256_digest(&sbom)
    );
    assert_eq!(layer["size"], sbom.len());
    assert!(registry_has_blob(
        "fixture-echo",
        layer["digest"].as_str().unwrap()
    ));
    let described: Value = serde_json::from_slice(&sbom).unwrap();
    assert_eq!(
        described["packages"][0]["checksums"][0]["checksumValue"],
        digest.trim_start_matches("sha256:")
    );

    // The image is still a plain image to skopeo, without a subject.
    let image = registry_manifest(&format!("fixture-echo@{digest}")).unwrap();
    let image: Value = serde_json::from_slice(&image).unwrap();
    assert!(image.get("subject").is_none() && image.get("artifactType").is_none());
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/fixture-echo@{digest}", registry()))
        .output()
        .unwrap();
    let inspected: Value = serde_json::from_str(&ok(&inspect, "skopeo inspect")).unwrap();
    assert_eq!(inspected["Architecture"], "amd64");

    // Again: the same referrer, listed once.
    let again = cli_push(&[&args[..], &["--sbom"]].concat(), &env).remove(0);
    assert_eq!(again["referrer"], referrer);
    let index: Value =
        serde_json::from_slice(&registry_manifest(&format!("fixture-echo:{tag}")).unwrap())
            .unwrap();
    let count = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["digest"] == referrer)
        .count();
    assert_eq!(count, 1, "{index}");
}
