//! Multi-arch OCI image indexes over pushed per-arch images, against the real registry
//! (Debian's docker-registry, started by `cargo xtask ci`), checked with skopeo.

use crate::support;

use std::path::Path;
use std::process::Command;

use cargo_lambda_image::image::{self, base, ImageOptions};
use cargo_lambda_image::oci::sha256_digest;
use cargo_lambda_image::progress::Reporter;
use cargo_lambda_image::publish::index;
use cargo_lambda_image::publish::{self as push, PushTarget, PushedImage};
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::target::Arch;
use serde_json::Value;
use support::images::{echo_bootstrap, echo_spec};
use support::{service_env, texts, unique};

fn registry() -> String {
    service_env("CLI_TEST_REGISTRY")
}

fn options(registry: &str) -> RegistryOptions {
    RegistryOptions {
        insecure: vec![registry.to_string()],
        ..Default::default()
    }
}

/// Builds the echo function's scratch image for `arch` and pushes it to `repository`.
fn push_echo(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    arch: Arch,
    registry: &str,
    repository: &str,
) -> PushedImage {
    let spec = echo_spec(
        arch,
        "scratch",
        &dir.join(arch.lambda_name()),
        &echo_bootstrap(arch),
    );
    let built = image::assemble(
        &spec,
        spec.artifact.as_std_path(),
        &base::scratch(arch),
        &ImageOptions::default(),
    )
    .unwrap();
    let target = PushTarget {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: built.tag.clone(),
    };
    runtime
        .block_on(push::push(
            &built,
            &target,
            &options(registry),
            &Reporter::discard(),
        ))
        .unwrap()
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (Debian package `skopeo`) runs");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed\n{stdout}\n{stderr}"
    );
    out.stdout
}

#[test]
fn index_over_pushed_arches_lists_both_platforms_and_resolves_per_arch() {
    let registry = registry();
    let repository = unique("index");
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let x86 = push_echo(&runtime, dir.path(), Arch::X86_64, &registry, &repository);
    let arm = push_echo(&runtime, dir.path(), Arch::Arm64, &registry, &repository);
    assert_ne!(x86.digest, arm.digest);

    // Given in either order, the same index.
    let pushed = runtime
        .block_on(index::push_index(
            &[arm.clone(), x86.clone()],
            &registry,
            &repository,
            "multi",
            &options(&registry),
            &Reporter::discard(),
        ))
        .unwrap();
    assert_eq!(pushed.reference, format!("{registry}/{repository}:multi"));
    assert_eq!(pushed.manifests.len(), 2);

    let reference = format!("docker://{registry}/{repository}:multi");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(
        sha256_digest(&raw),
        pushed.digest,
        "the tag points at the index pushed"
    );
    assert_eq!(raw.len() as u64, pushed.size);
    let document: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(document["schemaVersion"], 2);
    assert_eq!(
        document["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = document["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{document}");
    assert_eq!(manifests[0]["digest"], x86.digest.as_str());
    assert_eq!(
        manifests[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(manifests[1]["digest"], arm.digest.as_str());
    assert_eq!(
        manifests[1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    for entry in manifests {
        assert_eq!(
            entry["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert!(entry["size"].as_u64().unwrap() > 0);
    }

    // A consumer picking its platform gets the per-arch image.
    for (arch, image) in [("arm64", &arm), ("amd64", &x86)] {
        let inspected = skopeo(&[
            "inspect",
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            "--tls-verify=false",
            &reference,
        ]);
        let inspected: Value = serde_json::from_slice(&inspected).unwrap();
        assert_eq!(inspected["Architecture"], arch);
        assert_eq!(inspected["Os"], "linux");
        // skopeo's `Digest` is the index's; copying the chosen image shows which manifest it is.
        let copy = dir.path().join(format!("copy-{arch}"));
        skopeo(&[
            "copy",
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            "--src-tls-verify=false",
            &reference,
            &format!("oci:{}:chosen", copy.display()),
        ]);
        let layout: Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            layout["manifests"][0]["digest"],
            image.digest.as_str(),
            "{arch} resolves to its own image"
        );
    }

    // Pushing the same index again is idempotent.
    let again = runtime
        .block_on(index::push_index(
            &[x86, arm],
            &registry,
            &repository,
            "multi",
            &options(&registry),
            &Reporter::discard(),
        ))
        .unwrap();
    assert_eq!(again.digest, pushed.digest);
}

#[test]
fn index_refuses_a_manifest_that_is_not_in_its_repository() {
    let registry = registry();
    let repository = unique("index-src");
    let other = unique("index-other");
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut x86 = push_echo(&runtime, dir.path(), Arch::X86_64, &registry, &repository);
    // Claim the image is in another repository of the same registry, where it is not.
    x86.repository = format!("{registry}/{other}");
    let err = runtime
        .block_on(index::push_index(
            &[x86],
            &registry,
            &other,
            "multi",
            &options(&registry),
            &Reporter::discard(),
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("manifest"),
        "the missing manifest is reported: {err}"
    );
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{registry}/{other}:multi"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "no index was pushed");
}

/// Refused before any network access, so this needs no registry.
#[test]
fn index_refuses_mixed_repositories_and_two_images_of_one_arch() {
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let image = |arch: Arch, repository: &str, c: char| PushedImage {
        function: "fixture-echo".into(),
        arch,
        repository: repository.into(),
        tag: format!("0.1.0-{arch}"),
        digest: digest(c),
        image_uri: format!("{repository}@{}", digest(c)),
        uploaded: vec![],
        mounted: vec![],
        existing: vec![],
        bytes_uploaded: 0,
        referrer: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let unreachable = "127.0.0.1:9";
    let run = |images: &[PushedImage]| {
        runtime
            .block_on(index::push_index(
                images,
                unreachable,
                "fn",
                "multi",
                &options(unreachable),
                &Reporter::discard(),
            ))
            .unwrap_err()
    };
    let mixed = run(&[
        image(Arch::X86_64, "127.0.0.1:9/fn", 'a'),
        image(Arch::Arm64, "127.0.0.1:9/other", 'b'),
    ]);
    assert!(
        mixed.to_string().contains("127.0.0.1:9/other"),
        "names the stray repository: {mixed}"
    );
    let twice = run(&[
        image(Arch::Arm64, "127.0.0.1:9/fn", 'a'),
        image(Arch::Arm64, "127.0.0.1:9/fn", 'b'),
    ]);
    assert!(
        twice.to_string().contains("two images are for arm64"),
        "{twice}"
    );
    let none = run(&[]);
    assert!(none.to_string().contains("no images"), "{none}");
}

/// `push --arch x86_64,arm64 --index TAG` on the fixture's echo function pushes both images and
/// an index over exactly those two digests, with their platforms.
#[test]
fn push_command_with_index_pushes_one_index_over_the_per_arch_images() {
    let registry = registry();
    let tag = unique("multi");
    let mut cmd = support::cli();
    cmd.args([
        "push",
        "-p",
        "echo",
        "--arch",
        "x86_64,arm64",
        "--base-image",
        "scratch",
    ])
    .args([
        "--message-format",
        "json",
        "--registry",
        &registry,
        "--index",
        &tag,
    ])
    .arg("--manifest-path")
    .arg(support::fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", support::fixture_target_dir("musl"))
    .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry);
    let out = support::run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let events = support::json_lines(&out);
    let mut pushed: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["reason"] == "pushed")
        .map(|e| {
            let arch = e["image"]["arch"].as_str().unwrap();
            let platform = if arch == "arm64" { "arm64" } else { "amd64" };
            (
                platform.to_string(),
                e["image"]["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pushed.sort();
    assert_eq!(pushed.len(), 2, "{stdout}");
    let indexes: Vec<&Value> = events.iter().filter(|e| e["reason"] == "index").collect();
    assert_eq!(indexes.len(), 1, "{stdout}");

    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{registry}/fixture-echo:{tag}"),
    ]);
    assert_eq!(
        sha256_digest(&raw),
        indexes[0]["index"]["digest"].as_str().unwrap()
    );
    let index: Value = serde_json::from_slice(&raw).unwrap();
    let mut listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(listed, pushed);
}
