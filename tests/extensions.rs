//! Lambda extensions shipped in images (`image.extensions`, `extension = true`): which binaries
//! are extensions and never functions, the errors that name the key, the file and a
//! did-you-mean, the plan that lists each function's extensions, and the images, built by both
//! builders, that hold each extension at /opt/extensions/<name> (0755) in a layer of its own
//! under the bootstrap's, the same layer for every function that ships it.
//!
//! The images come from a small workspace of plain `fn main` crates (they compile in moments):
//! `api` (binaries `api` and `agent`, shipping `agent` and `telemetry`), `jobs` (shipping
//! `telemetry`) and `telemetry-ext` (`extension = true`, binary `telemetry`).

use crate::support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cargo_lambda_image::oci;
use serde_json::Value;
use support::images::fake_provided_base;
use support::{cli, events_of, fixture_workspace, json_lines, run, texts, TempWorkspace};

/// The extension workspace, written once to a fixed path (files rewritten only when they
/// differ: their times are cargo's fingerprints).
fn workspace() -> &'static Path {
    static WORKSPACE: OnceLock<PathBuf> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("extensions-workspace");
        let main = |what: &str| format!("fn main() {{\n    println!(\"{what}\");\n}}\n");
        let package = |name: &str, extra: &str| {
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n{extra}")
        };
        let files = [
            (
                "Cargo.toml",
                "[workspace]\nresolver = \"2\"\nmembers = [\"api\", \"jobs\", \"telemetry-ext\"]\n\n[profile.release]\nstrip = true\nopt-level = 0\n".to_string(),
            ),
            (
                "api/Cargo.toml",
                package(
                    "api",
                    "[package.metadata.lambda.image]\nextensions = [\"telemetry\", \"agent\"]\n",
                ),
            ),
            ("api/src/main.rs", main("api")),
            ("api/src/bin/agent.rs", main("agent")),
            (
                "jobs/Cargo.toml",
                package(
                    "jobs",
                    "[package.metadata.lambda.image]\nextensions = [\"telemetry\"]\n",
                ),
            ),
            ("jobs/src/main.rs", main("jobs")),
            (
                "telemetry-ext/Cargo.toml",
                package(
                    "telemetry-ext",
                    "[[bin]]\nname = \"telemetry\"\npath = \"src/main.rs\"\n\n[package.metadata.lambda]\nextension = true\n",
                ),
            ),
            ("telemetry-ext/src/main.rs", main("telemetry")),
        ];
        for (path, text) in files {
            let path = root.join(path);
            if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
                continue;
            }
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        root
    })
}

/// The CLI on the extension workspace, building in `target`.
fn lambda_image(args: &[&str], target: &Path) -> Command {
    let mut cmd = cli();
    cmd.args(args)
        .args(["--message-format", "json", "--manifest-path"])
        .arg(workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        // Each test's layers are really compressed, not taken from another test's cache.
        .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", target.join("cache"));
    cmd
}

fn assert_ok(out: &Output) -> Vec<Value> {
    let (stdout, stderr) = texts(out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    json_lines(out)
}

fn failing(cmd: &mut Command) -> String {
    let out = run(cmd);
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    stderr
}

fn assert_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

/// One entry of a layer: its path, mode, owner and size.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    path: String,
    mode: u32,
    owner: (u64, u64),
    size: u64,
}

/// The entries of every layer of the image an `image` event names, base first.
fn layers(image: &Value) -> Vec<(String, Vec<Entry>)> {
    let layout = oci::Layout::open(Path::new(image["image"]["layout"].as_str().unwrap())).unwrap();
    image["image"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let digest = layer["digest"].as_str().unwrap().to_string();
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(
                std::fs::File::open(layout.blob_path(&digest).unwrap()).unwrap(),
            )
            .read_to_end(&mut tar)
            .unwrap();
            let mut archive = tar::Archive::new(tar.as_slice());
            let entries = archive
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let header = e.header();
                    Entry {
                        path: e.path().unwrap().display().to_string(),
                        mode: header.mode().unwrap() & 0o7777,
                        owner: (header.uid().unwrap(), header.gid().unwrap()),
                        size: header.size().unwrap(),
                    }
                })
                .collect();
            (digest, entries)
        })
        .collect()
}

/// The paths of a layer's files (not its directories), without a leading `/` or `./`.
fn files(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| !e.path.ends_with('/'))
        .map(|e| {
            e.path
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}

/// The index of the layer holding `path`, and that layer's entries.
fn layer_with<'a>(
    layers: &'a [(String, Vec<Entry>)],
    path: &str,
) -> (usize, &'a (String, Vec<Entry>)) {
    layers
        .iter()
        .enumerate()
        .find(|(_, (_, entries))| files(entries).iter().any(|f| f == path))
        .unwrap_or_else(|| panic!("no layer holds {path}: {layers:?}"))
}

/// Checks that the extension `name` is alone in its layer, at /opt/extensions/<name>, 0755,
/// owned by root, with its parents, under the bootstrap's layer; returns the layer's digest.
fn check_extension_layer(layers: &[(String, Vec<Entry>)], name: &str, binary: &Path) -> String {
    let path = format!("opt/extensions/{name}");
    let (at, (digest, entries)) = layer_with(layers, &path);
    assert_eq!(files(entries), std::slice::from_ref(&path), "{entries:?}");
    let file = entries.iter().find(|e| e.path.ends_with(&path)).unwrap();
    assert_eq!(file.mode, 0o755, "{file:?}");
    assert_eq!(file.owner, (0, 0), "{file:?}");
    assert_eq!(file.size, std::fs::metadata(binary).unwrap().len());
    for parent in ["opt/", "opt/extensions/"] {
        assert!(
            entries
                .iter()
                .any(|e| e.path.trim_start_matches("./").trim_start_matches('/') == parent),
            "{parent} missing: {entries:?}"
        );
    }
    let (bootstrap, _) = layer_with(layers, "var/runtime/bootstrap");
    assert!(
        at < bootstrap,
        "{name} is in layer {at}, the bootstrap in {bootstrap}"
    );
    digest.clone()
}

/// The `compiled` event of `function`.
fn compiled<'a>(events: &'a [Value], function: &str) -> &'a Value {
    events_of(events, "compiled")
        .into_iter()
        .find(|e| e["artifact"]["function"] == function)
        .unwrap_or_else(|| panic!("no compiled event of {function}: {events:?}"))
}

fn image_of<'a>(events: &'a [Value], function: &str) -> &'a Value {
    events_of(events, "image")
        .into_iter()
        .find(|e| e["image"]["function"] == function)
        .unwrap_or_else(|| panic!("no image event of {function}: {events:?}"))
}

/// The path each extension of a `compiled` event was installed at, by name.
fn extension_paths(compiled: &Value) -> BTreeMap<String, PathBuf> {
    compiled["artifact"]["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                PathBuf::from(e["path"].as_str().unwrap()),
            )
        })
        .collect()
}

fn dry_run_plan(manifest: &Path, args: &[&str]) -> Value {
    let mut cmd = cli();
    cmd.args([
        "build",
        "--dry-run",
        "--message-format",
        "json",
        "--manifest-path",
    ])
    .arg(manifest)
    .args(args);
    let events = assert_ok(&run(&mut cmd));
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

/// The names of the planned functions, sorted.
fn names(plan: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = plan["plan"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn an_extension_package_of_the_fixture_yields_no_function() {
    let manifest = fixture_workspace().join("Cargo.toml");
    let plan = dry_run_plan(&manifest, &["--workspace"]);
    assert_eq!(names(&plan), ["fixture-echo", "goodbye", "hello"], "{plan}");
    for f in plan["plan"]["functions"].as_array().unwrap() {
        assert_eq!(f["extensions"], serde_json::json!([]), "{f}");
        assert_eq!(f["image"]["extensions"], serde_json::json!([]), "{f}");
    }
    // Without a selection, the workspace's default members: the same functions.
    assert_eq!(
        names(&dry_run_plan(&manifest, &[])),
        ["fixture-echo", "goodbye", "hello"]
    );
    // Asked for by name, it is refused with the reason.
    let mut cmd = cli();
    cmd.args(["build", "--dry-run", "--manifest-path"])
        .arg(&manifest)
        .args(["-p", "telemetry-ext"]);
    assert_all(
        &failing(&mut cmd),
        &[
            "no Lambda functions selected",
            "`telemetry` (telemetry-ext) is a Lambda extension, not a function",
            "image.extensions",
        ],
    );
    for selection in [
        &["--bin", "telemetry"][..],
        &["-p", "telemetry-ext", "--bin", "telemetry"],
        &["--workspace", "--bin", "telemetry"],
    ] {
        let mut cmd = cli();
        cmd.args(["build", "--dry-run", "--manifest-path"])
            .arg(&manifest)
            .args(selection);
        assert_all(
            &failing(&mut cmd),
            &[
                "`telemetry` (telemetry-ext) is a Lambda extension, not a function",
                "select those functions instead",
            ],
        );
    }
}

/// A binary a function names in `image.extensions` is no function, even in the function's own
/// package: `--workspace` and `-p` plan none for it, and the plan lists each function's
/// extensions with where each lands for its target and backend.
#[test]
fn a_binary_named_in_image_extensions_is_planned_as_an_extension_of_its_function() {
    let manifest = workspace().join("Cargo.toml");
    let target = tempfile::tempdir().unwrap();
    let plan = {
        let mut cmd = cli();
        cmd.args([
            "build",
            "--dry-run",
            "--workspace",
            "--arch",
            "x86_64,arm64",
        ])
        .args(["--message-format", "json", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target.path());
        assert_ok(&run(&mut cmd)).remove(0)
    };
    assert_eq!(names(&plan), ["api", "api", "jobs", "jobs"], "{plan}");
    let target_dir = plan["plan"]["target_directory"].as_str().unwrap();
    for f in plan["plan"]["functions"].as_array().unwrap() {
        let triple = f["target"].as_str().unwrap();
        let shipped: Vec<(&str, &str, String)> = f["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["package"].as_str().unwrap(),
                    e["artifact"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let at = |name: &str| {
            format!("{target_dir}/lambda-image/.extensions/{name}/{triple}-cargo/{name}")
        };
        match f["name"].as_str().unwrap() {
            "api" => {
                assert_eq!(
                    f["image"]["extensions"],
                    serde_json::json!(["agent", "telemetry"])
                );
                assert_eq!(
                    shipped,
                    [
                        ("agent", "api", at("agent")),
                        ("telemetry", "telemetry-ext", at("telemetry"))
                    ]
                );
            }
            _ => assert_eq!(shipped, [("telemetry", "telemetry-ext", at("telemetry"))]),
        }
    }
    // The compiler commands build each extension with its functions, as its package's binary.
    let mut cmd = cli();
    cmd.args(["build", "--dry-run", "-p", "jobs", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target.path());
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_all(
        &stderr,
        &["--package jobs --package telemetry-ext --bin jobs --bin telemetry --target x86_64-unknown-linux-musl"],
    );
    // The human plan names them too.
    assert!(
        stdout.trim_end().ends_with("\textensions: telemetry"),
        "{stdout}"
    );
    // Selected alone, `api`'s package plans only the function `api`.
    let plan = dry_run_plan(&manifest, &["-p", "api"]);
    assert_eq!(names(&plan), ["api"]);
}

/// Every backend builds a function's extensions in the function's own invocation: cross with
/// the toolchain it may not change, zigbuild with the base's glibc pin (which names the
/// extension's path too).
#[test]
fn extensions_are_built_by_the_functions_backend() {
    let manifest = workspace().join("Cargo.toml");
    let target = tempfile::tempdir().unwrap();
    let plan = |args: &[&str]| {
        let mut cmd = cli();
        cmd.args([
            "build",
            "--dry-run",
            "-p",
            "jobs",
            "--message-format",
            "json",
        ])
        .args(args)
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target.path());
        assert_ok(&run(&mut cmd)).remove(0)
    };
    let cross = plan(&["--compiler", "cross"]);
    let command = &cross["commands"][0];
    assert_eq!(command["program"], "cross", "{command}");
    assert_eq!(command["env"]["CROSS_CUSTOM_TOOLCHAIN"], "1", "{command}");
    let args: Vec<&str> = command["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--package", "telemetry-ext"])
            && args.windows(2).any(|w| w == ["--bin", "telemetry"]),
        "{args:?}"
    );
    let zig = plan(&[
        "--compiler",
        "zigbuild",
        "--libc",
        "gnu",
        "--arch",
        "arm64",
        "--base-image",
        "public.ecr.aws/lambda/provided:al2023",
    ]);
    let artifact = zig["plan"]["functions"][0]["extensions"][0]["artifact"]
        .as_str()
        .unwrap();
    assert!(
        artifact.ends_with(
            "/.extensions/telemetry/aarch64-unknown-linux-gnu-zigbuild-glibc2.34/telemetry"
        ),
        "{artifact}"
    );
    let args = zig["commands"][0]["args"].to_string();
    assert!(
        args.contains("\"--bin\",\"telemetry\"") && args.contains("aarch64-unknown-linux-gnu.2.34"),
        "{args}"
    );
}

/// A real cross build (in the local image `cargo xtask ci` makes): the extension is compiled
/// in the function's container run, found where cross leaves it, and shipped in the image.
#[test]
fn cross_compiles_an_extension_in_the_functions_run() {
    let image = support::service_env("CLI_TEST_CROSS_IMAGE");
    let target = tempfile::tempdir().unwrap();
    let mut cmd = lambda_image(
        &[
            "image",
            "-p",
            "jobs",
            "--compiler",
            "cross",
            "--base-image",
            "scratch",
        ],
        target.path(),
    );
    cmd.env("CROSS_TARGET_X86_64_UNKNOWN_LINUX_MUSL_IMAGE", &image);
    let events = assert_ok(&run(&mut cmd));
    let jobs = compiled(&events, "jobs");
    let paths = extension_paths(jobs);
    assert!(
        paths["telemetry"]
            .ends_with(".extensions/telemetry/x86_64-unknown-linux-musl-cross/telemetry"),
        "{jobs}"
    );
    check_extension_layer(
        &layers(image_of(&events, "jobs")),
        "telemetry",
        &paths["telemetry"],
    );
}

#[test]
fn an_unknown_extension_is_an_error_naming_the_key_the_file_and_the_closest_binary() {
    let ws = TempWorkspace::new(
        "[package.metadata.lambda.image]\nextensions = [\"telemetri\"]\n",
        "",
        &["telemetry"],
    );
    let out = ws.dry_run(&[]);
    assert_eq!(out.status.code(), Some(1), "{:?}", texts(&out));
    assert_all(
        &texts(&out).1,
        &[
            "image.extensions",
            &ws.package_manifest().display().to_string(),
            "`telemetri` is not a binary of the workspace",
            "did you mean `telemetry`?",
            "func, telemetry",
        ],
    );
    // Set in the workspace's table, the error names that table's file.
    let ws = TempWorkspace::new(
        "[package.metadata.lambda]\n",
        "[workspace.metadata.lambda.image]\nextensions = [\"nope\"]\n",
        &[],
    );
    let out = ws.dry_run(&["--message-format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let error = &json_lines(&out)[0];
    assert_eq!(
        error["code"], "lambda_image::config::invalid_value",
        "{error}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("`image.extensions`")
            && message.contains("workspace.metadata.lambda")
            && message.contains(&ws.manifest().display().to_string()),
        "{message}"
    );
}

#[test]
fn extension_in_the_workspace_table_is_refused() {
    let ws = TempWorkspace::new(
        "[package.metadata.lambda]\n",
        "[workspace.metadata.lambda]\nextension = true\n",
        &[],
    );
    let out = ws.dry_run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_all(
        &texts(&out).1,
        &[
            "`extension`",
            "workspace.metadata.lambda",
            "every binary of the workspace",
        ],
    );
    // For one binary, in its `bin` table, it is what it says.
    let ws = TempWorkspace::new(
        "[package.metadata.lambda]\n",
        "[workspace.metadata.lambda.bin.sidecar]\nextension = true\n",
        &["sidecar"],
    );
    let out = ws.dry_run(&["--workspace", "--message-format", "json"]);
    assert!(out.status.success(), "{:?}", texts(&out));
    assert_eq!(names(&json_lines(&out)[0]), ["func"]);
}

/// Builds the images of `api` and `jobs` on `base` into `target`; returns the events.
fn images(target: &Path, base: &str, extra: &[&str]) -> Vec<Value> {
    let mut cmd = lambda_image(
        &["image", "-p", "api", "-p", "jobs", "--base-image", base],
        target,
    );
    cmd.args(extra);
    assert_ok(&run(&mut cmd))
}

/// The images of both functions hold each extension alone in a layer under the bootstrap's,
/// the same blob in both; a second build, layers compressed again, gives the same digests.
fn check_images(events: &[Value], base_layers: usize) -> BTreeMap<String, String> {
    let api = compiled(events, "api");
    let paths = extension_paths(api);
    assert_eq!(
        paths.keys().collect::<Vec<_>>(),
        ["agent", "telemetry"],
        "{api}"
    );
    assert_eq!(
        extension_paths(compiled(events, "jobs"))["telemetry"],
        paths["telemetry"]
    );
    let api_layers = layers(image_of(events, "api"));
    let jobs_layers = layers(image_of(events, "jobs"));
    // Base, the extensions (by name), the bootstrap (no includes).
    assert_eq!(api_layers.len(), base_layers + 3, "{api_layers:?}");
    assert_eq!(jobs_layers.len(), base_layers + 2, "{jobs_layers:?}");
    let agent = check_extension_layer(&api_layers, "agent", &paths["agent"]);
    let telemetry = check_extension_layer(&api_layers, "telemetry", &paths["telemetry"]);
    assert_eq!(
        layer_with(&api_layers, "opt/extensions/agent").0,
        base_layers
    );
    assert_eq!(
        layer_with(&api_layers, "opt/extensions/telemetry").0,
        base_layers + 1
    );
    assert_eq!(
        check_extension_layer(&jobs_layers, "telemetry", &paths["telemetry"]),
        telemetry,
        "two functions shipping the same build of an extension share its layer"
    );
    // The bootstrap's layer holds the function's files only.
    let (_, (_, top)) = layer_with(&api_layers, "var/runtime/bootstrap");
    assert!(files(top).iter().all(|f| f.starts_with("var/")), "{top:?}");
    BTreeMap::from([
        ("agent".to_string(), agent),
        ("telemetry".to_string(), telemetry),
        (
            "api".to_string(),
            image_of(events, "api")["image"]["digest"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        (
            "jobs".to_string(),
            image_of(events, "jobs")["image"]["digest"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
    ])
}

#[test]
fn extensions_are_layers_of_their_own_on_scratch_with_stable_digests() {
    let target = tempfile::tempdir().unwrap();
    let first = check_images(&images(target.path(), "scratch", &[]), 0);
    // Again, with an empty layer cache: every layer compressed anew, the same bytes.
    std::fs::remove_dir_all(target.path().join("cache")).unwrap();
    let second = check_images(&images(target.path(), "scratch", &[]), 0);
    assert_eq!(first, second);
    // Taken as an earlier build left them (another CI job's), the same images.
    let events = images(target.path(), "scratch", &["--no-build"]);
    assert_eq!(check_images(&events, 0), first);
    // The image of `jobs` runs what was compiled: /opt/extensions/telemetry is the extension.
    let layer_dir = tempfile::tempdir().unwrap();
    let unpacked = layer_dir.path().join("bundle");
    let layout = image_of(&events, "jobs")["image"]["layout"]
        .as_str()
        .unwrap()
        .to_string();
    let tag = image_of(&events, "jobs")["image"]["tag"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{layout}:{tag}"))
        .arg(&unpacked)
        .output()
        .expect("umoci (installed by `cargo xtask ci`)");
    assert!(out.status.success(), "{:?}", texts(&out));
    let ran = Command::new(unpacked.join("rootfs/opt/extensions/telemetry"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "telemetry\n");
}

#[test]
fn extensions_go_between_a_provided_base_and_the_bootstrap() {
    let target = tempfile::tempdir().unwrap();
    let base = fake_provided_base(target.path());
    let reference = format!("oci:{}:al2", base.display());
    let events = images(target.path(), &reference, &[]);
    check_images(&events, 1);
    // Lambda's checks pass, extensions and all.
    for check in events_of(&events, "check") {
        let findings = check["report"]["findings"].as_array().unwrap();
        assert!(findings.iter().all(|f| f["passed"] == true), "{check}");
    }
}

#[test]
fn the_docker_builder_copies_each_extension_into_a_layer_of_its_own() {
    support::service_env("DOCKER_HOST");
    let target = tempfile::tempdir().unwrap();
    let events = images(target.path(), "scratch", &["--builder", "docker"]);
    let api = compiled(&events, "api");
    let paths = extension_paths(api);
    for function in ["api", "jobs"] {
        let layers = layers(image_of(&events, function));
        check_extension_layer(&layers, "telemetry", &paths["telemetry"]);
    }
    let api_layers = layers(image_of(&events, "api"));
    check_extension_layer(&api_layers, "agent", &paths["agent"]);
    assert!(
        layer_with(&api_layers, "opt/extensions/agent").0
            < layer_with(&api_layers, "opt/extensions/telemetry").0
    );
    // A Dockerfile of one's own that leaves them out is refused before anything compiles.
    let dockerfile = target.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\nCOPY var/ /var/\n").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = lambda_image(
        &[
            "image",
            "-p",
            "jobs",
            "--base-image",
            "scratch",
            "--builder",
            "docker",
        ],
        fresh.path(),
    );
    cmd.arg("--dockerfile").arg(&dockerfile);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{:?}", texts(&out));
    let error = &json_lines(&out)[0];
    assert!(
        error["message"].as_str().unwrap().contains("--dockerfile"),
        "{error}"
    );
    assert!(
        error["help"].as_str().unwrap().contains("{{extensions}}"),
        "{error}"
    );
    assert!(!fresh.path().join("lambda-image").exists());
}
