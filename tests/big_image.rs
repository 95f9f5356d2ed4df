//! A function shipping a multi-gigabyte model (a sparse file: cheap to make and to compress)
//! is imaged and pushed with bounded memory, and a code change afterwards re-pushes only the
//! bootstrap's layer. Its own test binary, so that nothing else runs beside the measurement.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{
    cli, fixture_target_dir, json_lines, run, service_env, texts, unique, TempWorkspace,
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
    let ws = TempWorkspace::new(
        &format!("[package.metadata.lambda]\nfunction-name = \"{name}\"\nbase-image = \"scratch\"\n\n[package.metadata.lambda.image]\ninclude = [\"models\"]\n"),
        "",
        &[],
    );
    let models = ws.dir.path().join("func/models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("labels.json"), b"[\"cat\", \"dog\"]").unwrap();
    let model = std::fs::File::create(models.join("weights.bin")).unwrap();
    model.set_len(2 << 30).unwrap();
    drop(model);
    let cache = tempfile::tempdir().unwrap();

    let mut build = cli();
    build
        .args(["build", "--manifest-path"])
        .arg(ws.manifest())
        .env("CARGO_TARGET_DIR", fixture_target_dir("big-image"));
    let out = run(&mut build);
    assert!(out.status.success(), "{:?}", texts(&out));

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
