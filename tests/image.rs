//! The image and check stages without any daemon or registry: reproducible assembly, bases from
//! OCI layouts, outputs accepted by skopeo and umoci, and one failing image per check rule.

use crate::support;

use std::path::Path;
use std::process::Command;

use cargo_lambda_image::check::{self, Expectations, Severity};
use cargo_lambda_image::image::{self, base, ImageOptions};
use cargo_lambda_image::oci;
use cargo_lambda_image::target::{Arch, GlibcVersion};
use serde_json::{json, Value};
use support::images::{
    config_for, craft_layout, echo_bootstrap, echo_spec, evil_tar, fake_provided_base, gzip,
    raw_tar, unclosed, Raw,
};

fn scratch_image(dir: &Path, arch: Arch, epoch: Option<u64>) -> image::BuiltImage {
    let spec = echo_spec(arch, "scratch", dir, &echo_bootstrap(arch));
    image::assemble(
        &spec,
        spec.artifact.as_std_path(),
        &base::scratch(arch),
        &ImageOptions {
            source_date_epoch: epoch,
            // A cache of its own, so that every image here is really compressed.
            cache_dir: Some(dir.join("cache")),
        },
    )
    .unwrap()
}

#[test]
fn same_inputs_give_the_same_manifest_digest_byte_for_byte() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = scratch_image(a.path(), Arch::Arm64, None);
    let second = scratch_image(b.path(), Arch::Arm64, None);
    assert_eq!(first.digest, second.digest);
    for digest in std::iter::once(&first.digest)
        .chain(std::iter::once(&first.config_digest))
        .chain(first.layers.iter().map(|l| &l.digest))
    {
        let read = |img: &image::BuiltImage| {
            std::fs::read(
                oci::Layout::open(img.layout_dir())
                    .unwrap()
                    .blob_path(digest)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(read(&first), read(&second), "blob {digest}");
    }
    // A different SOURCE_DATE_EPOCH is a different image.
    let c = tempfile::tempdir().unwrap();
    assert_ne!(
        scratch_image(c.path(), Arch::Arm64, Some(1_700_000_000)).digest,
        first.digest
    );
}

#[test]
fn scratch_image_is_valid_for_skopeo_and_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let img = scratch_image(dir.path(), Arch::X86_64, None);
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:{}", img.layout, img.tag))
        .output()
        .expect("skopeo (installed by `cargo xtask ci`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/var/runtime/bootstrap"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/var/task");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    let unpacked = dir.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{}", img.layout, img.tag))
        .arg(&unpacked)
        .output()
        .expect("umoci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bootstrap = unpacked.join("rootfs/var/runtime/bootstrap");
    assert_eq!(
        std::fs::read(&bootstrap).unwrap(),
        std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap()
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&bootstrap).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn provided_base_from_an_oci_layout_keeps_its_entrypoint_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = fake_provided_base(dir.path());
    let reference = format!("oci:{}:al2", base_dir.display());
    let spec = echo_spec(
        Arch::X86_64,
        &reference,
        dir.path(),
        &echo_bootstrap(Arch::X86_64),
    );
    let resolved = match base::BaseSource::parse(&reference) {
        base::BaseSource::Layout { dir, tag } => {
            base::from_layout(&dir, tag.as_deref(), Arch::X86_64, &reference).unwrap()
        }
        other => panic!("{other:?}"),
    };
    let img = image::assemble(
        &spec,
        spec.artifact.as_std_path(),
        &resolved,
        &ImageOptions::default(),
    )
    .unwrap();
    assert_eq!(img.layers.len(), 2, "base layer plus ours");
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:{}", img.layout, img.tag))
        .output()
        .unwrap();
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/lambda-entrypoint.sh"])
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["bootstrap"]));
    assert!(config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "LANG=en_US.UTF-8"));
    assert_eq!(config["history"].as_array().unwrap().len(), 2);
    // The provided-style image passes every rule.
    let report = check::check_layout(img.layout_dir(), &Expectations::for_spec(&spec)).unwrap();
    assert!(report.passed(), "{report:#?}");
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule == "bootstrap" && f.passed));
}

#[test]
fn docker_archive_output_holds_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = scratch_image(dir.path(), Arch::Arm64, None);
    let archive = dir.path().join("image.tar");
    oci::archive::write_docker_archive(
        &oci::Layout::open(img.layout_dir()).unwrap(),
        &img.digest,
        &format!("{}:{}", img.repository, img.tag),
        &archive,
    )
    .unwrap();
    // skopeo reads it both as a docker-archive and as an OCI archive.
    for transport in ["docker-archive", "oci-archive"] {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("{transport}:{}", archive.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Read back as a base, it has the same layers.
    let cache = dir.path().join("cache");
    let back = base::from_docker_archive(&archive, &cache, "docker-archive:x").unwrap();
    assert_eq!(
        back.layers
            .iter()
            .map(|l| l.descriptor.digest.clone())
            .collect::<Vec<_>>(),
        img.layers
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>()
    );
}

/// Checks a crafted layout and returns the failing rule names.
fn failing_rules(dir: &Path, arch: Arch, glibc: Option<GlibcVersion>) -> Vec<String> {
    let report = check::check_layout(
        dir,
        &Expectations {
            function: "f".into(),
            arch,
            base_glibc: glibc,
        },
    )
    .unwrap();
    report
        .findings
        .iter()
        .filter(|f| !f.passed)
        .map(|f| f.rule.to_string())
        .collect()
}

fn good_layer(bootstrap: &[u8], mode: u32) -> Vec<u8> {
    gzip(&raw_tar(&[
        ("var/", "d", 0o755, b""),
        ("var/runtime/", "d", 0o755, b""),
        ("var/runtime/bootstrap", "f", mode, bootstrap),
    ]))
}

fn crafted(
    entrypoint: &[&str],
    cmd: &[&str],
    arch: Arch,
    layers: Vec<(&str, Vec<u8>)>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    craft_layout(
        &layout,
        &config_for(arch, entrypoint, cmd, &layers),
        &layers,
    );
    (dir, layout)
}

#[test]
fn a_well_formed_crafted_image_passes() {
    let elf = std::fs::read(echo_bootstrap(Arch::Arm64)).unwrap();
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::Arm64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o755))],
    );
    assert!(failing_rules(&layout, Arch::Arm64, None).is_empty());
}

#[test]
fn rule_single_manifest_refuses_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let index_dir = fake_provided_base(dir.path());
    assert_eq!(
        failing_rules(&index_dir, Arch::X86_64, None),
        ["single-manifest"]
    );
}

#[test]
fn rule_platform_refuses_another_architecture_or_os() {
    let elf = std::fs::read(echo_bootstrap(Arch::Arm64)).unwrap();
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::Arm64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o755))],
    );
    assert_eq!(
        failing_rules(&layout, Arch::X86_64, None),
        ["platform", "elf-arch"]
    );
}

#[test]
fn rule_compressed_layers_refuses_uncompressed_and_zstd() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    for media in [
        oci::MEDIA_DOCKER_LAYER_TAR,
        oci::MEDIA_OCI_LAYER_TAR,
        oci::MEDIA_OCI_LAYER_ZSTD,
    ] {
        let raw = raw_tar(&[
            ("var/", "d", 0o755, b""),
            ("var/runtime/", "d", 0o755, b""),
            ("var/runtime/bootstrap", "f", 0o755, &elf),
        ]);
        let (_d, layout) = crafted(
            &["/var/runtime/bootstrap"],
            &[],
            Arch::X86_64,
            vec![(media, raw)],
        );
        let failing = failing_rules(&layout, Arch::X86_64, None);
        assert!(
            failing.contains(&"compressed-layers".to_string()),
            "{media}: {failing:?}"
        );
    }
}

#[test]
fn rule_parent_directories_refuses_layers_without_them() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let layer = gzip(&raw_tar(&[("var/runtime/bootstrap", "f", 0o755, &elf)]));
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, layer)],
    );
    assert_eq!(
        failing_rules(&layout, Arch::X86_64, None),
        ["parent-directories"]
    );
}

#[test]
fn rule_entrypoint_refuses_relative_missing_and_symlinked_paths() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let layers = || vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o755))];
    let (_d, layout) = crafted(&["var/runtime/bootstrap"], &[], Arch::X86_64, layers());
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["entrypoint"]);
    let (_d, layout) = crafted(&["/var/runtime/missing"], &[], Arch::X86_64, layers());
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["entrypoint"]);
    let (_d, layout) = crafted(&[], &[], Arch::X86_64, layers());
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["entrypoint"]);
    let linked = gzip(&raw_tar(&[
        ("var/", "d", 0o755, b""),
        ("var/runtime/", "d", 0o755, b""),
        ("var/runtime/real", "f", 0o755, &elf),
        ("var/runtime/bootstrap", "l:real", 0o777, b""),
    ]));
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, linked)],
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["entrypoint"]);
}

/// A provided-style entrypoint script and the shell it needs.
fn entrypoint_script_layer() -> Vec<u8> {
    gzip(&raw_tar(&[
        ("bin/", "d", 0o755, b""),
        ("bin/sh", "f", 0o755, b"\x7fELF (a shell)"),
        (
            "lambda-entrypoint.sh",
            "f",
            0o755,
            b"#!/bin/sh\nexec /var/runtime/bootstrap\n",
        ),
    ]))
}

#[test]
fn rule_bootstrap_refuses_missing_or_non_executable_bootstrap_under_provided() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let script = entrypoint_script_layer();
    let (_d, layout) = crafted(
        &["/lambda-entrypoint.sh"],
        &["bootstrap"],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, script.clone())],
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["bootstrap"]);
    // Mode 0700: root could run it, Lambda's non-root user cannot.
    let (_d, layout) = crafted(
        &["/lambda-entrypoint.sh"],
        &["bootstrap"],
        Arch::X86_64,
        vec![
            (oci::MEDIA_OCI_LAYER_GZIP, script),
            (oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o700)),
        ],
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["bootstrap"]);
}

#[test]
fn rule_bootstrap_sees_whiteouts_of_upper_layers() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let script = entrypoint_script_layer();
    let whiteout = gzip(&raw_tar(&[
        ("var/", "d", 0o755, b""),
        ("var/runtime/", "d", 0o755, b""),
        ("var/runtime/.wh.bootstrap", "f", 0o644, b""),
    ]));
    let (_d, layout) = crafted(
        &["/lambda-entrypoint.sh"],
        &["bootstrap"],
        Arch::X86_64,
        vec![
            (oci::MEDIA_OCI_LAYER_GZIP, script),
            (oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o755)),
            (oci::MEDIA_OCI_LAYER_GZIP, whiteout),
        ],
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["bootstrap"]);
}

#[test]
fn rule_elf_arch_refuses_a_binary_for_the_other_arch() {
    let x86 = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::Arm64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(&x86, 0o755))],
    );
    assert_eq!(failing_rules(&layout, Arch::Arm64, None), ["elf-arch"]);
}

#[test]
fn rule_glibc_refuses_symbols_newer_than_the_base() {
    // Debian 12's ls is a glibc build needing GLIBC_2.34 (__libc_start_main), newer than
    // provided.al2's 2.26.
    let gnu = std::fs::read("/bin/ls").unwrap();
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(&gnu, 0o755))],
    );
    assert_eq!(
        failing_rules(
            &layout,
            Arch::X86_64,
            Some(GlibcVersion {
                major: 2,
                minor: 26
            })
        ),
        ["glibc"]
    );
    assert!(failing_rules(
        &layout,
        Arch::X86_64,
        Some(GlibcVersion {
            major: 2,
            minor: 99
        })
    )
    .is_empty());
}

#[test]
fn rule_size_counts_uncompressed_bytes_against_the_limit() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let zeros = vec![0u8; 8 << 20];
    let big = gzip(&raw_tar(&[
        ("data/", "d", 0o755, b""),
        ("data/zeros", "f", 0o644, &zeros),
    ]));
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![
            (oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o755)),
            (oci::MEDIA_OCI_LAYER_GZIP, big),
        ],
    );
    let expect = Expectations {
        function: "f".into(),
        arch: Arch::X86_64,
        base_glibc: None,
    };
    let report = check::check_layout_with_limit(&layout, &expect, 8 << 20).unwrap();
    let size = report.findings.iter().find(|f| f.rule == "size").unwrap();
    assert!(!size.passed, "{size:?}");
    // The message names the largest layer first: the one to make smaller.
    assert!(
        size.message.contains("the largest layers: layer 1 "),
        "{}",
        size.message
    );
    assert!(check::check_layout_with_limit(&layout, &expect, 16 << 20)
        .unwrap()
        .passed());
}

#[test]
fn check_command_reports_each_rule_and_fails_on_a_bad_image() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::Arm64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(&elf, 0o755))],
    );
    let mut cmd = support::cli();
    cmd.args(["check", "--arch", "arm64", "--layout"])
        .arg(&layout);
    let out = support::run(&mut cmd);
    let (stdout, stderr) = support::texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("✗ elf-arch") && stdout.contains("✓ platform"),
        "{stdout}"
    );
    assert!(
        stderr.contains("fails Lambda's rule `elf-arch`"),
        "{stderr}"
    );
}

/// The tree a provided base gives: the entrypoint script, its shell, /var/runtime and /var/task
/// (modes as given), and the function's ELF at `bootstrap_at`.
fn provided_layout(
    elf: &[u8],
    dirs_mode: u32,
    bootstrap: Raw,
    user: Option<&str>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let layers = vec![
        (oci::MEDIA_OCI_LAYER_GZIP, entrypoint_script_layer()),
        (
            oci::MEDIA_OCI_LAYER_GZIP,
            gzip(&evil_tar(&[
                Raw::Dir("var/", 0o755),
                Raw::Dir("var/runtime/", dirs_mode),
                Raw::Dir("var/task/", dirs_mode),
                Raw::File("var/task/function", 0o755, elf),
                bootstrap,
            ])),
        ),
    ];
    let mut config = config_for(
        Arch::X86_64,
        &["/lambda-entrypoint.sh"],
        &["bootstrap"],
        &layers,
    );
    if let Some(user) = user {
        config["config"]["User"] = json!(user);
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    craft_layout(&layout, &config, &layers);
    (dir, layout)
}

fn finding(layout: &Path, rule: &str) -> check::Finding {
    let report = check::check_layout(
        layout,
        &Expectations {
            function: "f".into(),
            arch: Arch::X86_64,
            base_glibc: None,
        },
    )
    .unwrap();
    report
        .findings
        .into_iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} finding"))
}

/// `docker run` runs as root, so a closed directory goes unnoticed there; Lambda's non-root
/// user needs r-x on /, /var/runtime and /var/task. The root's mode comes from the layer's `/`
/// entry, as umoci writes it.
#[test]
fn rule_directory_modes_refuses_directories_closed_to_a_non_root_user() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let bootstrap = || Raw::File("var/runtime/bootstrap", 0o755, &elf);
    let (_d, layout) = provided_layout(&elf, 0o755, bootstrap(), None);
    assert!(failing_rules(&layout, Arch::X86_64, None).is_empty());

    let (_d, layout) = provided_layout(&elf, 0o750, bootstrap(), None);
    assert_eq!(
        failing_rules(&layout, Arch::X86_64, None),
        ["directory-modes"]
    );
    let modes = finding(&layout, "directory-modes");
    assert!(
        modes.message.contains("/var/runtime has mode 750")
            && modes.message.contains("/var/task has mode 750"),
        "{modes:?}"
    );

    let closed_root = gzip(&unclosed(&evil_tar(&[
        Raw::Dir("/", 0o700),
        Raw::Dir("/var/", 0o755),
        Raw::Dir("/var/runtime/", 0o755),
        Raw::File("/var/runtime/bootstrap", 0o755, &elf),
    ])));
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, closed_root)],
    );
    assert_eq!(
        failing_rules(&layout, Arch::X86_64, None),
        ["directory-modes"]
    );
    assert!(finding(&layout, "directory-modes")
        .message
        .starts_with("/ has mode 700"));
}

/// The kernel runs a script's `#!` interpreter: without it in the image the entrypoint fails
/// with ENOENT, however good the function is.
#[test]
fn rule_interpreter_refuses_a_script_whose_interpreter_is_missing() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let no_shell = gzip(&raw_tar(&[
        (
            "lambda-entrypoint.sh",
            "f",
            0o755,
            b"#!/bin/sh\nexec /var/runtime/bootstrap\n",
        ),
        ("var/", "d", 0o755, b""),
        ("var/runtime/", "d", 0o755, b""),
        ("var/runtime/bootstrap", "f", 0o755, &elf),
    ]));
    let (_d, layout) = crafted(
        &["/lambda-entrypoint.sh"],
        &["bootstrap"],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, no_shell.clone())],
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["interpreter"]);
    assert!(finding(&layout, "interpreter")
        .message
        .contains("/lambda-entrypoint.sh runs `/bin/sh`, which is not in the image"));

    // /bin/sh through AL2's /bin -> usr/bin symlink and a busybox-style link is there.
    let linked_shell = gzip(&evil_tar(&[
        Raw::Symlink("bin", "usr/bin"),
        Raw::Dir("usr/", 0o755),
        Raw::Dir("usr/bin/", 0o755),
        Raw::File("usr/bin/busybox", 0o755, b"\x7fELF"),
        Raw::Symlink("usr/bin/sh", "/usr/bin/busybox"),
    ]));
    let (_d, layout) = crafted(
        &["/lambda-entrypoint.sh"],
        &["bootstrap"],
        Arch::X86_64,
        vec![
            (oci::MEDIA_OCI_LAYER_GZIP, linked_shell),
            (oci::MEDIA_OCI_LAYER_GZIP, no_shell),
        ],
    );
    assert!(failing_rules(&layout, Arch::X86_64, None).is_empty());

    // A bootstrap that is a script with neither ELF header nor `#!` cannot be run at all.
    let (_d, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, good_layer(b"echo hi\n", 0o755))],
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["interpreter"]);
}

/// On a provided base, /var/runtime/bootstrap may be a symlink (the entrypoint execs it), but
/// one whose target is missing fails on Lambda.
#[test]
fn rule_bootstrap_follows_a_symlink_and_refuses_a_dangling_one() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let (_d, layout) = provided_layout(
        &elf,
        0o755,
        Raw::Symlink("var/runtime/bootstrap", "../task/missing"),
        None,
    );
    assert_eq!(failing_rules(&layout, Arch::X86_64, None), ["bootstrap"]);
    let bootstrap = finding(&layout, "bootstrap");
    assert!(
        bootstrap.message.contains("a symlink to `../task/missing`")
            && bootstrap.message.contains("points to nothing"),
        "{bootstrap:?}"
    );

    // A symlink to the function: the ELF read is the target's.
    let (_d, layout) = provided_layout(
        &elf,
        0o755,
        Raw::Symlink("var/runtime/bootstrap", "/var/task/function"),
        None,
    );
    assert!(failing_rules(&layout, Arch::X86_64, None).is_empty());
    assert!(finding(&layout, "elf-arch")
        .message
        .starts_with("/var/task/function is a x86_64 executable"));
    assert_eq!(
        failing_rules(&layout, Arch::Arm64, None),
        ["platform", "elf-arch"]
    );
}

/// Lambda ignores the config's User: a note, which does not fail the check.
#[test]
fn rule_user_notes_a_user_lambda_ignores_without_failing() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let bootstrap = || Raw::File("var/runtime/bootstrap", 0o755, &elf);
    let (_d, layout) = provided_layout(&elf, 0o755, bootstrap(), Some("app"));
    let user = finding(&layout, "user");
    assert_eq!(user.severity, Severity::Note);
    assert!(
        user.passed && user.message.contains("User `app`"),
        "{user:?}"
    );
    assert!(failing_rules(&layout, Arch::X86_64, None).is_empty());
    let (_d, layout) = provided_layout(&elf, 0o755, bootstrap(), None);
    assert_eq!(finding(&layout, "user").severity, Severity::Pass);
}

/// `check --layout` prints the new rules' verdicts: failures with their help, notes marked `!`
/// with theirs, and the exit status follows the failures only.
#[test]
fn check_command_prints_failures_and_notes() {
    let elf = std::fs::read(echo_bootstrap(Arch::X86_64)).unwrap();
    let check = |layout: &Path| {
        let mut cmd = support::cli();
        cmd.args(["check", "--arch", "x86_64", "--layout"])
            .arg(layout);
        let out = support::run(&mut cmd);
        let (stdout, stderr) = support::texts(&out);
        (out.status.code(), stdout, stderr)
    };
    let bootstrap = || Raw::File("var/runtime/bootstrap", 0o755, &elf);
    let (_d, layout) = provided_layout(&elf, 0o755, bootstrap(), Some("app"));
    let (code, stdout, stderr) = check(&layout);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("! user") && stdout.contains("which Lambda ignores"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✓ interpreter") && stdout.contains("✓ directory-modes"),
        "{stdout}"
    );

    let (_d, layout) = provided_layout(&elf, 0o700, bootstrap(), None);
    let (code, stdout, stderr) = check(&layout);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("✗ directory-modes"), "{stdout}");
    assert!(
        stderr.contains("fails Lambda's rule `directory-modes`"),
        "{stderr}"
    );
}

/// Every rule's verdict, as `check` prints it, for a good image and for one that breaks
/// several rules at once (a script bootstrap keeps the bytes, and so the digests, stable).
#[test]
fn check_reports_read_the_same_every_time() {
    let script = b"#!/bin/sh\necho hi\n";
    let render = |report: &check::Report| {
        let mut text = format!(
            "{} ({}) {:?}\n",
            report.function, report.arch, report.digest
        );
        for f in &report.findings {
            let mark = match f.severity {
                Severity::Pass => "✓",
                Severity::Note => "!",
                Severity::Fail => "✗",
            };
            text.push_str(&format!("  {mark} {:<18} {}\n", f.rule, f.message));
            if f.severity != Severity::Pass {
                text.push_str(&format!("    help: {}\n", f.help));
            }
        }
        text
    };
    let expect = Expectations {
        function: "hello".into(),
        arch: Arch::X86_64,
        base_glibc: None,
    };
    let shell = gzip(&raw_tar(&[
        ("bin/", "d", 0o755, b""),
        ("bin/sh", "f", 0o755, b"\x7fELF (a shell)"),
    ]));
    let (_good_dir, good) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![
            (oci::MEDIA_OCI_LAYER_GZIP, shell),
            (oci::MEDIA_OCI_LAYER_GZIP, good_layer(script, 0o755)),
        ],
    );
    let broken_layer = gzip(&raw_tar(&[("var/runtime/bootstrap", "f", 0o700, script)]));
    let (_bad_dir, bad) = crafted(
        &["var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![(oci::MEDIA_OCI_LAYER_GZIP, broken_layer)],
    );
    let good = check::check_layout(&good, &expect).unwrap();
    let bad = check::check_layout(&bad, &expect).unwrap();
    assert!(good.passed() && !bad.passed());
    insta::assert_snapshot!(format!("{}\n{}", render(&good), render(&bad)));
}

/// A layer's facts are kept by its digest: checking again reads nothing of a layer already
/// read, and gives exactly the report a full read gives, whiteouts and missing parents included.
#[test]
fn check_reads_each_layer_once_and_gives_the_same_report() {
    let script = b"#!/bin/sh\necho hi\n";
    let lower = gzip(&raw_tar(&[
        ("var/", "d", 0o755, b""),
        ("var/old/", "d", 0o755, b""),
        ("var/old/x", "f", 0o644, b"x"),
        ("var/runtime/", "d", 0o755, b""),
        ("var/runtime/bootstrap", "f", 0o755, script),
    ]));
    let upper = gzip(&raw_tar(&[
        ("var/", "d", 0o755, b""),
        ("var/old/", "d", 0o755, b""),
        ("var/old/.wh..wh..opq", "f", 0o644, b""),
        ("var/.wh.gone", "f", 0o644, b""),
        ("lost/parent/file", "f", 0o644, b"no parents"),
    ]));
    let (_dir, layout) = crafted(
        &["/var/runtime/bootstrap"],
        &[],
        Arch::X86_64,
        vec![
            (oci::MEDIA_OCI_LAYER_GZIP, lower),
            (oci::MEDIA_OCI_LAYER_GZIP, upper),
        ],
    );
    let expect = Expectations {
        function: "f".into(),
        arch: Arch::X86_64,
        base_glibc: None,
    };
    let cache = tempfile::tempdir().unwrap();
    let full = check::check_layout(&layout, &expect).unwrap();
    let first = check::check_layout_cached(&layout, &expect, cache.path()).unwrap();
    assert_eq!(first.findings, full.findings);
    assert!(!full.passed(), "the upper layer lacks its parents");
    // The layers' blobs are gone: only what was kept of them can answer.
    let manifest = oci::Layout::open(&layout)
        .unwrap()
        .single_manifest()
        .unwrap();
    for layer in &manifest.layers {
        std::fs::remove_file(
            oci::Layout::open(&layout)
                .unwrap()
                .blob_path(&layer.digest)
                .unwrap(),
        )
        .unwrap();
    }
    let again = check::check_layout_cached(&layout, &expect, cache.path()).unwrap();
    assert_eq!(again.findings, full.findings);
    assert!(
        check::check_layout(&layout, &expect).is_err(),
        "a full read needs the blobs"
    );
}
