//! The configuration stage through the real binary: plans of the fixture workspace (precedence
//! at every level) and clear errors for bad metadata, selection and flags.

use crate::support;

use serde_json::Value;
use support::{cli, fixture_workspace, json_lines, run, texts, TempWorkspace};

fn fixture_plan(extra: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = cli();
    cmd.args([
        "build",
        "--dry-run",
        "--message-format",
        "json",
        "--workspace",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .args(extra)
    .envs(env.iter().copied());
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "dry run prints exactly the plan: {stdout}");
    assert_eq!(lines[0]["reason"], "plan");
    lines[0].clone()
}

fn function<'a>(event: &'a Value, name: &str, arch: &str) -> &'a Value {
    event["plan"]["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|f| f["name"] == name && f["arch"] == arch)
        .unwrap_or_else(|| panic!("no {name}/{arch} in {event}"))
}

#[test]
fn fixture_plan_applies_workspace_package_and_bin_tables() {
    let event = fixture_plan(&[], &[]);
    let functions = event["plan"]["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 3, "three functions, default arch only");

    // echo: workspace memory/timeout, package function-name and env merged over workspace env.
    let echo = function(&event, "fixture-echo", "x86_64");
    assert_eq!(echo["memory"], 256);
    assert_eq!(echo["timeout"], 10);
    assert_eq!(echo["env"]["LOG_LEVEL"], "info");
    assert_eq!(echo["env"]["STAGE"], "echo");
    assert_eq!(echo["target"], "x86_64-unknown-linux-musl");
    assert_eq!(
        echo["base_image"]["reference"],
        "public.ecr.aws/lambda/provided:al2"
    );
    assert_eq!(echo["image"]["tag"], "0.1.0-x86_64");
    assert!(echo["artifact"]
        .as_str()
        .unwrap()
        .ends_with("lambda-image/fixture-echo/x86_64/bootstrap"));

    // hello: package memory over workspace.
    let hello = function(&event, "hello", "x86_64");
    assert_eq!(hello["memory"], 512);
    assert_eq!(hello["timeout"], 10);
    assert_eq!(hello["env"]["GREETING"], "hello");

    // goodbye: package bin table over package, workspace bin table over workspace, env merged.
    let goodbye = function(&event, "goodbye", "x86_64");
    assert_eq!(goodbye["memory"], 1024);
    assert_eq!(goodbye["timeout"], 20);
    assert_eq!(goodbye["env"]["GREETING"], "goodbye");
    assert_eq!(goodbye["env"]["STAGE"], "workspace");
    assert_eq!(goodbye["env"]["LOG_LEVEL"], "info");
}

#[test]
fn env_overrides_metadata_and_cli_overrides_env() {
    let event = fixture_plan(
        &["--arch", "arm64"],
        &[
            ("CARGO_LAMBDA_IMAGE_MEMORY", "2048"),
            ("CARGO_LAMBDA_IMAGE_ARCH", "x86_64,arm64"),
        ],
    );
    let functions = event["plan"]["functions"].as_array().unwrap();
    assert_eq!(
        functions.len(),
        3,
        "--arch arm64 replaces the environment's two arches"
    );
    for f in functions {
        assert_eq!(f["arch"], "arm64");
        assert_eq!(f["target"], "aarch64-unknown-linux-musl");
        assert_eq!(f["memory"], 2048, "{f}");
    }
}

#[test]
fn workspace_multi_arch_plans_six_functions() {
    let event = fixture_plan(&["--arch", "x86_64,arm64"], &[]);
    assert_eq!(event["plan"]["functions"].as_array().unwrap().len(), 6);
    assert_eq!(
        function(&event, "hello", "arm64")["image"]["tag"],
        "0.2.0-arm64"
    );
    let commands = event["commands"].as_array().unwrap();
    assert_eq!(
        commands.len(),
        2,
        "one compiler run per target, for both packages: {commands:?}"
    );
    for command in commands {
        let args: Vec<&str> = command["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.contains("--package echo --package greet"),
            "{joined}"
        );
        assert!(
            joined.contains("--bin echo --bin goodbye --bin hello"),
            "{joined}"
        );
        assert!(args.contains(&"--keep-going"), "{joined}");
    }
}

#[test]
fn metadata_values_are_not_hidden_by_cli_defaults() {
    let ws = TempWorkspace::new(
        "[package.metadata.lambda]\narch = \"arm64\"\nlibc = \"gnu\"\ncompiler = \"zigbuild\"\nbase-image = \"public.ecr.aws/lambda/provided:al2023\"\n",
        "",
        &[],
    );
    let out = ws.dry_run(&["--message-format", "json"]);
    assert!(out.status.success(), "{:?}", texts(&out));
    let event = &json_lines(&out)[0];
    let f = function(event, "func", "arm64");
    assert_eq!(f["libc"], "gnu");
    assert_eq!(f["compiler"], "zigbuild");
    assert_eq!(f["base_image"]["glibc"]["minor"], 34);
    let cmd = &event["commands"][0]["args"];
    assert!(
        cmd.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "aarch64-unknown-linux-gnu.2.34"),
        "{cmd}"
    );
}

#[test]
fn dry_run_human_output_lists_each_function_on_stdout() {
    let mut cmd = cli();
    cmd.args([
        "build",
        "--dry-run",
        "--workspace",
        "--arch",
        "arm64",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.contains("\tarm64\taarch64-unknown-linux-musl\t")),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "command: CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld cargo build"
        ),
        "{stderr}"
    );
}

#[test]
fn works_as_a_cargo_subcommand() {
    // cargo runs `cargo-lambda-image lambda-image build ...`.
    let mut cmd = cli();
    cmd.args([
        "lambda-image",
        "build",
        "--dry-run",
        "-p",
        "greet",
        "--bin",
        "hello",
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"));
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("hello\tx86_64\t") && stdout.lines().count() == 1,
        "{stdout}"
    );
}

/// Runs a dry run that must fail and returns stderr.
fn failing(ws: &TempWorkspace, args: &[&str]) -> String {
    let out = ws.dry_run(args);
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.is_empty(),
        "errors go to stderr in human mode: {stdout}"
    );
    stderr
}

fn assert_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn unknown_key_names_file_table_key_and_suggestion() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\nmemroy = 256\n", "", &[]);
    let err = failing(&ws, &[]);
    let manifest = ws.package_manifest().display().to_string();
    assert_all(
        &err,
        &[
            &manifest,
            "[package.metadata.lambda]",
            "memroy",
            "did you mean `memory`?",
        ],
    );
}

#[test]
fn unknown_key_in_workspace_bin_table() {
    let ws = TempWorkspace::new(
        "[package.metadata.lambda]\n",
        "[workspace.metadata.lambda.bin.func]\ntimout = 5\n",
        &[],
    );
    let err = failing(&ws, &[]);
    let manifest = ws.manifest().display().to_string();
    assert_all(
        &err,
        &[
            &manifest,
            "workspace.metadata.lambda.bin.func",
            "timout",
            "did you mean `timeout`?",
        ],
    );
}

#[test]
fn wrong_type_names_the_key_and_an_example() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\ntimeout = \"soon\"\n", "", &[]);
    let err = failing(&ws, &[]);
    assert_all(
        &err,
        &[
            "wrong type for `timeout`",
            "package.metadata.lambda",
            "timeout = 30",
        ],
    );
}

#[test]
fn invalid_values_are_errors() {
    for (toml, needles) in [
        (
            "arch = \"x86\"",
            vec!["`arch`", "unknown architecture `x86`", "x86_64"],
        ),
        (
            "memory = 100",
            vec!["`memory`", "100 is outside 128..=10240 MB"],
        ),
        (
            "timeout = 901",
            vec!["`timeout`", "901 is outside 1..=900 seconds"],
        ),
        ("libc = \"uclibc\"", vec!["`libc`", "unknown libc"]),
    ] {
        let ws = TempWorkspace::new(&format!("[package.metadata.lambda]\n{toml}\n"), "", &[]);
        let err = failing(&ws, &[]);
        let mut all = needles.clone();
        let manifest = ws.package_manifest().display().to_string();
        all.push(&manifest);
        assert_all(&err, &all);
    }
}

#[test]
fn bin_table_for_a_missing_binary_is_an_error() {
    let ws = TempWorkspace::new(
        "[package.metadata.lambda.bin.helo]\nmemory = 256\n",
        "",
        &["hello"],
    );
    let err = failing(&ws, &[]);
    assert_all(&err, &["bin.helo", "did you mean `hello`?"]);
}

#[test]
fn two_binaries_with_one_function_name_are_an_error() {
    let ws = TempWorkspace::new(
        "[package.metadata.lambda]\nfunction-name = \"same\"\n",
        "",
        &["other"],
    );
    let err = failing(&ws, &[]);
    assert_all(
        &err,
        &[
            "two binaries would deploy as the function `same`",
            "function-name",
        ],
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\n", "", &[]);
    let mut cmd = cli();
    cmd.args(["build", "--dry-run", "--manifest-path"])
        .arg(ws.manifest())
        .env("CARGO_LAMBDA_IMAGE_TIMEOUT", "forever");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert_all(&texts(&out).1, &["CARGO_LAMBDA_IMAGE_TIMEOUT", "timeout"]);
}

#[test]
fn unknown_package_and_bin_get_suggestions() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\n", "", &["hello"]);
    assert_all(
        &failing(&ws, &["-p", "fnuc"]),
        &["package `fnuc` is not a member", "did you mean `func`?"],
    );
    assert_all(
        &failing(&ws, &["-p", "func", "--bin", "nope"]),
        &["no binary `nope`", "func, hello"],
    );
}

#[test]
fn a_workspace_without_functions_says_how_to_select_one() {
    let ws = TempWorkspace::new("", "", &[]);
    assert_all(
        &failing(&ws, &["--workspace"]),
        &["no Lambda functions selected", "lambda_runtime"],
    );
}

#[test]
fn bad_flag_values_are_rejected_by_clap_naming_the_flag() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\n", "", &[]);
    let out = ws.dry_run(&["--compiler", "gcc"]);
    assert_eq!(out.status.code(), Some(2));
    assert_all(&texts(&out).1, &["--compiler", "unknown compiler `gcc`"]);
}

#[test]
fn json_errors_are_one_event_on_stdout() {
    let ws = TempWorkspace::new("[package.metadata.lambda]\nmemroy = 1\n", "", &[]);
    let out = ws.dry_run(&["--message-format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "error");
    assert_eq!(lines[0]["code"], "lambda_image::config::unknown_key");
    assert_eq!(lines[0]["help"], "did you mean `memory`?");
}

#[test]
fn exclude_leaves_packages_out_of_the_workspace() {
    let event = fixture_plan(&["--exclude", "greet"], &[]);
    let names: Vec<&str> = event["plan"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fixture-echo"]);
}

#[test]
fn test_events_are_part_of_the_plan() {
    let event = fixture_plan(&[], &[]);
    assert_eq!(
        function(&event, "fixture-echo", "x86_64")["test"]["events"],
        serde_json::json!(["events/*.json"])
    );
}

/// Amazon Linux 2 is past its end of standard support: `image` on the default base (nothing
/// chose one) says so in one note on stderr, however many functions it builds, and never on
/// stdout; a base chosen by flag, environment or metadata, even al2 itself, silences it.
#[test]
fn image_notes_the_end_of_al2_once_only_when_the_base_is_defaulted() {
    let image = |manifest: &std::path::Path, extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = cli();
        cmd.args(["image", "--dry-run", "--workspace", "--manifest-path"])
            .arg(manifest)
            .args(extra)
            .envs(env.iter().copied());
        let out = run(&mut cmd);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
        assert!(!stdout.contains("al2023"), "stdout: {stdout}");
        (stdout, stderr)
    };
    let fixture = fixture_workspace().join("Cargo.toml");
    let suggestion = r#"base-image = "public.ecr.aws/lambda/provided:al2023""#;
    for format in ["json", "human"] {
        let (stdout, stderr) = image(&fixture, &["--message-format", format], &[]);
        assert_eq!(stderr.matches(suggestion).count(), 1, "{stderr}");
        assert!(stderr.contains("2026-06-30"), "{stderr}");
        if format == "json" {
            let out_lines: Vec<Value> = stdout
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON lines only"))
                .collect();
            assert_eq!(out_lines.len(), 1, "the plan only: {stdout}");
        }
    }
    let al2 = "public.ecr.aws/lambda/provided:al2";
    let (_, by_flag) = image(&fixture, &["--base-image", al2], &[]);
    let (_, by_env) = image(&fixture, &[], &[("CARGO_LAMBDA_IMAGE_BASE_IMAGE", al2)]);
    let ws = TempWorkspace::new(
        &format!("[package.metadata.lambda]\nbase-image = \"{al2}\"\n"),
        "",
        &[],
    );
    let (_, by_metadata) = image(&ws.manifest(), &[], &[]);
    for stderr in [by_flag, by_env, by_metadata] {
        assert!(!stderr.contains("al2023"), "{stderr}");
    }
}

#[test]
fn execution_models_lambda_refuses_together_are_refused_naming_both_keys() {
    let cases = [
        (
            "[package.metadata.lambda.deploy]\nsnap-start = true\n[package.metadata.lambda.deploy.managed-instances]\nmax-concurrency = 4\n",
            ["deploy.snap-start", "deploy.managed-instances", "not supported on Lambda Managed Instances"],
        ),
        (
            "[package.metadata.lambda.deploy]\ntenant-isolation = true\nsnap-start = true\n",
            ["deploy.tenant-isolation", "deploy.snap-start", "does not support SnapStart"],
        ),
        (
            "[package.metadata.lambda.deploy]\ntenant-isolation = true\n[package.metadata.lambda.deploy.url]\nauth = \"NONE\"\n",
            ["deploy.tenant-isolation", "deploy.url", "does not support Function URLs"],
        ),
    ];
    for (toml, needles) in cases {
        let ws = TempWorkspace::new(toml, "", &[]);
        let text = failing(&ws, &[]);
        assert_all(&text, &needles);
        assert_all(&text, &["func/Cargo.toml"]);
    }
    let ws = TempWorkspace::new(
        "[package.metadata.lambda.deploy.managed-instances]\nmax-concurrency = 0\n",
        "",
        &[],
    );
    assert_all(
        &failing(&ws, &[]),
        &["deploy.managed-instances.max-concurrency", "1..=1600"],
    );
}
