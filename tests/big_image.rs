//! A function shipping a multi-gigabyte model (a sparse file: cheap to make and to compress)
//! is imaged and pushed with bounded memory, and a code change afterwards re-pushes only the
//! bootstrap's layer. A full disk, for the cache or for the layout, is an error that leaves
//! nothing half-written. Its own test binary, so that no other test's processes run beside the
//! memory measurement.

use crate::support;

use std::process::Command;

use serde_json::Value;
use support::{
    cli, fixture_target_dir, json_lines, noise, run, service_env, texts, unique, TempWorkspace,
};

/// Peak resident memory allowed to `image` and `push`, whatever the include's size.
const MAX_RSS_KIB: u64 = 256 * 1024;

/// Runs the CLI under GNU time; returns its output and its peak RSS in KiB.
fn measured(
    args: &[&str],
    ws: &TempWorkspace,
    registry: &str,
    cache: &std::path::Path,
) -> (std::process::Output, u64) {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args([
        "-f",
        "peak-rss-kib=%M",
        env!("CARGO_BIN_EXE_cargo-lambda-image"),
    ])
    .args(args)
    .args(["--message-format", "json", "--manifest-path"])
    .arg(ws.manifest())
    .env("NO_COLOR", "1")
    .env("CARGO_TARGET_DIR", fixture_target_dir("big-image"))
    .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache)
    .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", registry);
    let out = run(&mut cmd);
    let (_, stderr) = texts(&out);
    let rss = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("peak-rss-kib="))
        .next_back()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS (is GNU time installed?): {stderr}"));
    (out, rss)
}

/// A workspace whose function `name` (on scratch) includes the directory `include`, built in
/// the big-image target directory; returns it with the (empty) include directory to fill.
fn built_with_include(name: &str, include: &str) -> (TempWorkspace, std::path::PathBuf) {
    let ws = TempWorkspace::new(
        &format!("[package.metadata.lambda]\nfunction-name = \"{name}\"\nbase-image = \"scratch\"\n\n[package.metadata.lambda.image]\ninclude = [\"{include}\"]\n"),
        "",
        &[],
    );
    let dir = ws.dir.path().join("func").join(include);
    std::fs::create_dir_all(&dir).unwrap();
    let mut build = cli();
    build
        .args(["build", "--manifest-path"])
        .arg(ws.manifest())
        .env("CARGO_TARGET_DIR", fixture_target_dir("big-image"));
    let out = run(&mut build);
    assert!(out.status.success(), "{:?}", texts(&out));
    (ws, dir)
}

fn event<'a>(events: &'a [Value], reason: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["reason"] == reason)
        .unwrap_or_else(|| panic!("no {reason} event in {events:?}"))
}

#[test]
fn a_two_gigabyte_include_is_imaged_and_pushed_with_bounded_memory() {
    let registry = service_env("CLI_TEST_REGISTRY");
    let name = unique("big-include");
    let (ws, models) = built_with_include(&name, "models");
    std::fs::write(models.join("labels.json"), b"[\"cat\", \"dog\"]").unwrap();
    let model = std::fs::File::create(models.join("weights.bin")).unwrap();
    model.set_len(2 << 30).unwrap();
    drop(model);
    let cache = tempfile::tempdir().unwrap();

    // image (with its check): the include is read, compressed and checked as streams.
    let (out, rss) = measured(&["image", "--no-build"], &ws, &registry, cache.path());
    assert!(out.status.success(), "{:?}", texts(&out));
    assert!(rss < MAX_RSS_KIB, "`image` peaked at {rss} KiB");
    let events = json_lines(&out);
    let image = &event(&events, "image")["image"];
    let layers = image["layers"].as_array().unwrap();
    // labels.json in a layer; the model, larger than a layer's share, in one of its own; the
    // bootstrap's on top.
    assert_eq!(layers.len(), 3, "{layers:?}");
    let size = event(&events, "check")["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "size")
        .unwrap()["message"]
        .clone();
    // 2 GiB of model and the tar headers, counted across the layers without holding them.
    assert!(size.as_str().unwrap().starts_with("2148."), "{size}");

    // push: streamed from the blob files.
    let push = ["push", "--no-build", "--registry", &registry];
    let (out, rss) = measured(&push, &ws, &registry, cache.path());
    assert!(out.status.success(), "{:?}", texts(&out));
    assert!(rss < MAX_RSS_KIB, "`push` peaked at {rss} KiB");

    // A code change re-pushes the bootstrap's layer, the config and the manifest, nothing of
    // the model.
    let bootstrap =
        fixture_target_dir("big-image").join(format!("lambda-image/{name}/x86_64/bootstrap"));
    let mut bytes = std::fs::read(&bootstrap).unwrap();
    bytes.extend_from_slice(b"a code change");
    std::fs::write(&bootstrap, bytes).unwrap();
    let (out, _) = measured(&push, &ws, &registry, cache.path());
    assert!(out.status.success(), "{:?}", texts(&out));
    let events = json_lines(&out);
    let pushed = &event(&events, "pushed")["image"];
    let new_layers = event(&events, "image")["image"]["layers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        new_layers[..2],
        layers[..2],
        "the include layers did not change"
    );
    assert_ne!(new_layers[2], layers[2]);
    let uploaded: Vec<&str> = pushed["uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        uploaded.len(),
        2,
        "the bootstrap's layer and the config: {pushed}"
    );
    assert!(uploaded.contains(&new_layers[2]["digest"].as_str().unwrap()));
    let bootstrap_layer = new_layers[2]["size"].as_u64().unwrap();
    let sent = pushed["bytes_uploaded"].as_u64().unwrap();
    assert!(
        sent <= bootstrap_layer + 8 * 1024,
        "{sent} bytes for a {bootstrap_layer}-byte layer"
    );
}

/// Runs the CLI in a mount namespace of its own, with a `size` tmpfs mounted on `dir` (holding
/// a copy of `seed` as `bootstrap` when given); returns its output and every file left in `dir`
/// with its SHA-256, read before the namespace goes away.
fn on_a_small_disk(
    dir: &std::path::Path,
    size_kib: u64,
    seed: Option<&std::path::Path>,
    args: &[&str],
    ws: &TempWorkspace,
    cache: &std::path::Path,
) -> (std::process::Output, Vec<(String, String)>) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"dir=$1; size=$2; seed=$3; shift 3
mount -t tmpfs -o "size=${size}k" tmpfs "$dir" || exit 99
if [ -n "$seed" ]; then cp "$seed" "$dir/bootstrap"; fi
"$@"; status=$?
echo "--- files left"
cd "$dir" && find . -type f -exec sha256sum {} +
exit $status"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "sh", "-c", script, "sh"])
        .arg(dir)
        .arg(size_kib.to_string())
        .arg(seed.map(|s| s.as_os_str()).unwrap_or_default())
        .arg(env!("CARGO_BIN_EXE_cargo-lambda-image"))
        .args(args)
        .args(["--manifest-path"])
        .arg(ws.manifest())
        .env("NO_COLOR", "1")
        .env("CARGO_TARGET_DIR", fixture_target_dir("big-image"))
        .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache);
    let out = run(&mut cmd);
    assert_ne!(
        out.status.code(),
        Some(99),
        "could not mount a tmpfs (the tests run as root): {:?}",
        texts(&out)
    );
    let (stdout, _) = texts(&out);
    let files = stdout
        .split_once("--- files left\n")
        .map(|(_, listing)| listing)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, path)| (hash.to_string(), path.to_string()))
        .collect();
    (out, files)
}

/// The disk fills up while imaging: first the cache's (the layer being compressed), then the
/// target directory's (the layout being written). Each is an error naming the directory, and
/// nothing half-written is kept: no file under a digest it does not hash to, no layout.
#[test]
fn a_full_disk_is_named_and_leaves_nothing_half_written() {
    let name = unique("full-disk");
    let (ws, data) = built_with_include(&name, "data");
    // 8 MiB that do not compress.
    std::fs::write(
        data.join("noise.bin"),
        noise(8 << 20, 0x9e37_79b9_7f4a_7c15),
    )
    .unwrap();
    let hashed_right = |files: &[(String, String)]| {
        files.iter().all(|(hash, path)| {
            let name = path.rsplit('/').next().unwrap_or_default();
            name.len() != 64 || name == hash
        })
    };

    // The cache's disk: 4 MiB for an 8 MiB layer.
    let cache = tempfile::tempdir().unwrap();
    let (out, files) = on_a_small_disk(
        cache.path(),
        4096,
        None,
        &["image", "--no-build"],
        &ws,
        cache.path(),
    );
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no space left on the disk holding"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&cache.path().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("CARGO_LAMBDA_IMAGE_CACHE_DIR"), "{stderr}");
    assert!(hashed_right(&files), "{files:?}");
    assert!(
        files.iter().all(|(_, path)| !path.contains(".layer-")),
        "a partial layer was kept: {files:?}"
    );

    // The layout's disk: room for the bootstrap and a little more, not for the layer's copy.
    let arch_dir = fixture_target_dir("big-image").join(format!("lambda-image/{name}/x86_64"));
    let seed = tempfile::tempdir().unwrap();
    let bootstrap = seed.path().join("bootstrap");
    std::fs::copy(arch_dir.join("bootstrap"), &bootstrap).unwrap();
    let size_kib = std::fs::metadata(&bootstrap).unwrap().len() / 1024 + 2048;
    let cache = tempfile::tempdir().unwrap();
    let (out, files) = on_a_small_disk(
        &arch_dir,
        size_kib,
        Some(&bootstrap),
        &["image", "--no-build"],
        &ws,
        cache.path(),
    );
    let (_, stderr) = texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no space left on the disk holding"),
        "{stderr}"
    );
    assert!(stderr.contains(&arch_dir.display().to_string()), "{stderr}");
    let left: Vec<&str> = files.iter().map(|(_, path)| path.as_str()).collect();
    assert_eq!(left, ["./bootstrap"], "a half-written layout was kept");
}
