//! The example xtask (`templates/xtask`, its code compiled into this test) and the CLI, run on
//! the same workspace against the same registry (and each against a moto_server of its own),
//! give the same events: the same function names, digests and outcomes, including when one
//! architecture of one function does not compile. Both run the library's one pipeline.

use crate::support;
#[path = "../templates/xtask/src/main.rs"]
#[allow(dead_code)]
mod xtask_template;

use std::path::Path;
use std::sync::Arc;

use cargo_lambda_image::event::Collect;
use cargo_lambda_image::pipeline::{Options, Outcome, Summary};
use cargo_lambda_image::registry::RegistryOptions;
use serde_json::Value;
use support::moto::{sdk_config, Moto};
use support::{cli, json_lines, run, service_env, texts, unique};

/// A workspace of two functions for x86_64 and arm64 on scratch: `alpha` builds everywhere,
/// `twin` does not compile for x86_64 (but does for arm64).
fn workspace(root: &Path, alpha: &str, twin: &str) {
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"alpha\", \"twin\"]\n\n[workspace.metadata.lambda]\nbase-image = \"scratch\"\n",
    )
    .unwrap();
    for (dir, name, main) in [
        ("alpha", alpha, "fn main() {}\n"),
        (
            "twin",
            twin,
            "#[cfg(target_arch = \"x86_64\")]\ncompile_error!(\"twin does not build for x86_64\");\nfn main() {}\n",
        ),
    ] {
        std::fs::create_dir_all(root.join(dir).join("src")).unwrap();
        std::fs::write(
            root.join(dir).join("Cargo.toml"),
            format!("[package]\nname = \"{dir}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.lambda]\nfunction-name = \"{name}\"\n"),
        )
        .unwrap();
        std::fs::write(root.join(dir).join("src/main.rs"), main).unwrap();
    }
}

/// The events about functions, in order. What a push found in the registry is left out: the
/// second run finds what the first uploaded.
fn function_events(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["reason"] != "plan")
        // The CLI's last `error` is about the whole command; the xtask's summary holds it.
        .filter(|e| !(e["reason"] == "error" && e.get("function").is_none()))
        .cloned()
        .map(|mut e| {
            if let Some(image) = e.get_mut("image").and_then(Value::as_object_mut) {
                for key in ["uploaded", "existing", "mounted", "bytes_uploaded"] {
                    image.remove(key);
                }
            }
            e
        })
        .collect()
}

fn of<'a>(events: &'a [Value], reason: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["reason"] == reason).collect()
}

/// The pipeline options the CLI uses in these tests: the registry over plain HTTP, cargo
/// without color (its command line is part of a compile error's help).
fn options(registry: &str) -> Options {
    let mut options = Options {
        registry: RegistryOptions {
            insecure: vec![registry.to_string()],
            ..Default::default()
        },
        ..Options::default()
    };
    options.compile.color = Some("never".into());
    options
}

/// Runs the xtask's task in this process, collecting its events as JSON.
fn run_xtask(
    runtime: &tokio::runtime::Runtime,
    args: &xtask_template::Args,
    registry: &str,
) -> (Summary, Vec<Value>) {
    let events = Arc::new(Collect::new());
    let run = xtask_template::run(args, options(registry), events.clone());
    let summary = runtime.block_on(run).unwrap();
    (summary, events.json())
}

#[test]
fn xtask_release_and_the_cli_push_the_same_images_and_write_the_same_template() {
    let registry = service_env("CLI_TEST_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let (alpha, twin) = (unique("parity-alpha"), unique("parity-twin"));
    workspace(dir.path(), &alpha, &twin);
    let manifest = dir.path().join("Cargo.toml");
    let manifest = manifest.to_str().unwrap();
    let common = [
        "--workspace",
        "--arch",
        "x86_64,arm64",
        "--manifest-path",
        manifest,
    ];

    let mut push = cli();
    push.args([
        "push",
        "--message-format",
        "json",
        "--registry",
        &registry,
        "--index",
        "parity",
    ])
    .args(common)
    .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry);
    let out = run(&mut push);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let cli_events = json_lines(&out);
    let cli_template = dir.path().join("cli-template.json");
    let mut template = cli();
    template
        .args(["template", "--registry", &registry, "-o"])
        .arg(&cli_template)
        .args(common);
    let out = run(&mut template);
    assert_eq!(out.status.code(), Some(1), "{:?}", texts(&out));

    let xtask_template = dir.path().join("xtask-template.json");
    let args = xtask_template::parse(
        [
            "release",
            "--manifest-path",
            manifest,
            "--registry",
            &registry,
            "--index",
            "parity",
            "--template",
            xtask_template.to_str().unwrap(),
        ]
        .map(String::from),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (summary, xtask_events) = run_xtask(&runtime, &args, &registry);

    // The same events for every function, in the same order: compiled, check, image, pushed,
    // index and the compile error, with the same digests.
    assert_eq!(function_events(&cli_events), function_events(&xtask_events));
    let pushed = of(&xtask_events, "pushed");
    let names: Vec<(&str, &str)> = pushed
        .iter()
        .map(|p| {
            (
                p["image"]["function"].as_str().unwrap(),
                p["image"]["arch"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (alpha.as_str(), "x86_64"),
            (alpha.as_str(), "arm64"),
            (twin.as_str(), "arm64")
        ]
    );
    let errors = of(&xtask_events, "error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (
            &errors[0]["function"],
            &errors[0]["arch"],
            &errors[0]["stage"]
        ),
        (
            &Value::from(twin.as_str()),
            &"x86_64".into(),
            &"compile".into()
        )
    );
    assert_eq!(
        of(&xtask_events, "index").len(),
        2,
        "one index per function"
    );
    // The summary says the same as the CLI's exit status: one of four failed.
    assert_eq!(summary.failures(), 1);
    assert!(summary
        .entries
        .iter()
        .any(|e| e.function == twin && matches!(e.outcome, Outcome::Failed { .. })));
    let last = cli_events.last().unwrap();
    assert_eq!(last["code"], "lambda_image::some_failed");
    assert_eq!(
        summary.into_result().unwrap_err().to_string(),
        last["message"]
    );

    // The templates deploy the same images by digest, under the same names: arm64's twin is
    // `<twin>-arm64` although its x86_64 twin never built.
    let cli_text = std::fs::read_to_string(&cli_template).unwrap();
    let xtask_text = std::fs::read_to_string(&xtask_template).unwrap();
    assert_eq!(cli_text, xtask_text);
    let template: Value = serde_json::from_str(&xtask_text).unwrap();
    let names: Vec<&str> = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|r| r["Properties"]["FunctionName"].as_str())
        .collect();
    assert!(
        names.contains(&format!("{twin}-arm64").as_str()),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("{alpha}-arm64").as_str()),
        "{names:?}"
    );
}

#[test]
fn xtask_deploy_and_the_cli_deploy_the_same_functions() {
    let registry = service_env("CLI_TEST_REGISTRY");
    let (cli_moto, xtask_moto) = (Moto::start(), Moto::start());
    let dir = tempfile::tempdir().unwrap();
    let (alpha, twin) = (unique("parity-alpha"), unique("parity-twin"));
    workspace(dir.path(), &alpha, &twin);
    let manifest = dir.path().join("Cargo.toml");
    let manifest = manifest.to_str().unwrap();

    let mut deploy = cli();
    deploy
        .args([
            "deploy",
            "--message-format",
            "json",
            "--workspace",
            "--arch",
            "x86_64,arm64",
        ])
        .args(["--manifest-path", manifest, "--region", "us-east-1"])
        .args([
            "--endpoint-url",
            &cli_moto.endpoint,
            "--registry",
            &registry,
        ])
        .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    let out = run(&mut deploy);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let cli_events = json_lines(&out);

    let mut args = xtask_template::parse(
        [
            "deploy",
            "--manifest-path",
            manifest,
            "--registry",
            &registry,
        ]
        .map(String::from),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    args.aws.sdk_config = Some(runtime.block_on(sdk_config(&xtask_moto.endpoint)));
    let (summary, xtask_events) = run_xtask(&runtime, &args, &registry);

    assert_eq!(function_events(&cli_events), function_events(&xtask_events));
    let deployed: Vec<(&str, &str)> = of(&xtask_events, "deployed")
        .iter()
        .map(|d| {
            (
                d["deployment"]["function"].as_str().unwrap(),
                d["deployment"]["arch"].as_str().unwrap(),
            )
        })
        .collect();
    let (alpha_arm, twin_arm) = (format!("{alpha}-arm64"), format!("{twin}-arm64"));
    assert_eq!(
        deployed,
        [
            (alpha.as_str(), "x86_64"),
            (alpha_arm.as_str(), "arm64"),
            (twin_arm.as_str(), "arm64")
        ]
    );
    assert_eq!(summary.failures(), 1);
}
