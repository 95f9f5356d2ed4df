//! Local runs and their environment: `test` with `--env`, `--env-file`, `--region` and
//! `--aws-credentials`, asking the `behave` fixture (`{"env": NAME}` returns that variable) what
//! it sees. The image is the fixture on a stand-in provided.al2 whose config sets variables of
//! its own, run in the default sandbox.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use support::images::fake_provided_base_with_env;
use support::{cli, fixture_target_dir, json_lines, run, texts};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLOCALSECRET";
const TOKEN: &str = "FwoGZXIvYXdzELOCALSESSIONTOKENforTests987";

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator/Cargo.toml")
}

/// The base: the image's own ENV, one variable also set by every later source, one only
/// here, and a reserved one the emulator must override.
fn base(dir: &Path) -> String {
    let layout = fake_provided_base_with_env(
        dir,
        &["LEVEL=image", "IMAGE_ONLY=image", "AWS_REGION=image-region"],
    );
    format!("oci:{}:al2", layout.display())
}

/// `cargo lambda-image test` of `behave` with `args`, asking for each variable in `names`,
/// with no AWS configuration but what `env` sets.
fn local_test(dir: &Path, names: &[&str], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = cli();
    cmd.args([
        "test", "--locked", "--bin", "behave", "--arch", "x86_64", "--libc", "musl",
    ])
    .args(["--message-format", "json", "--manifest-path"])
    .arg(manifest())
    .args(["--base-image", &base(dir)])
    .args(args)
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
    .env("AWS_CONFIG_FILE", "/nonexistent/config")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    for name in names {
        cmd.args(["--event", &json!({ "env": name }).to_string()]);
    }
    cmd.envs(env.iter().copied());
    run(&mut cmd)
}

/// What the function answered, in the order asked, by variable name.
fn seen(out: &Output, names: &[&str]) -> Vec<(String, Value)> {
    let (stdout, stderr) = texts(out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let responses: Vec<Value> = json_lines(out)
        .into_iter()
        .filter(|e| e["reason"] == "invocation")
        .map(|e| e["invocation"]["response"].clone())
        .collect();
    assert_eq!(responses.len(), names.len(), "{stdout}");
    names.iter().map(|n| n.to_string()).zip(responses).collect()
}

fn value<'a>(seen: &'a [(String, Value)], name: &str) -> &'a Value {
    &seen.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn image_env_then_metadata_then_env_files_then_env_flags_then_the_emulators_own() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.env");
    std::fs::write(&file, "# the first file\nLEVEL=file\nFILE_ONLY=\"file\"\n").unwrap();
    let later = dir.path().join("later.env");
    std::fs::write(&later, "export LEVEL=later-file\n").unwrap();
    let file = file.to_str().unwrap();
    let names = [
        "LEVEL",
        "IMAGE_ONLY",
        "METADATA_ONLY",
        "FILE_ONLY",
        "AWS_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
    ];

    // Every source: the flag wins; each variable set only lower down still arrives.
    let all = [
        "--env-file",
        file,
        "--env",
        "LEVEL=flag",
        "--region",
        "eu-west-3",
    ];
    let got = seen(&local_test(dir.path(), &names, &all, &[]), &names);
    assert_eq!(value(&got, "LEVEL"), "flag");
    assert_eq!(value(&got, "IMAGE_ONLY"), "image");
    assert_eq!(value(&got, "METADATA_ONLY"), "metadata");
    assert_eq!(value(&got, "FILE_ONLY"), "file");
    assert_eq!(
        value(&got, "AWS_REGION"),
        "eu-west-3",
        "the image cannot override a reserved variable"
    );
    assert_eq!(value(&got, "AWS_LAMBDA_FUNCTION_NAME"), "behave");

    // Without the flag the env file wins; of two files, the later one.
    let got = seen(
        &local_test(dir.path(), &["LEVEL"], &["--env-file", file], &[]),
        &["LEVEL"],
    );
    assert_eq!(value(&got, "LEVEL"), "file");
    let both = ["--env-file", file, "--env-file", later.to_str().unwrap()];
    let got = seen(&local_test(dir.path(), &["LEVEL"], &both, &[]), &["LEVEL"]);
    assert_eq!(value(&got, "LEVEL"), "later-file");

    // Without either, the metadata's `env` wins over the image's ENV, and the region is the
    // default one.
    let got = seen(
        &local_test(dir.path(), &["LEVEL", "AWS_REGION"], &[], &[]),
        &["LEVEL", "AWS_REGION"],
    );
    assert_eq!(value(&got, "LEVEL"), "metadata");
    assert_eq!(value(&got, "AWS_REGION"), "us-east-1");
}

const CREDENTIAL_VARS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// Nothing printed holds a secret, except the responses, where the function was asked to
/// return one.
fn assert_no_secret(out: &Output) {
    let (_, stderr) = texts(out);
    let stdout: Vec<String> = json_lines(out)
        .into_iter()
        .map(|mut event| {
            if let Some(invocation) = event.get_mut("invocation") {
                invocation["response"] = Value::Null;
            }
            event.to_string()
        })
        .collect();
    for secret in [SECRET, TOKEN] {
        assert!(!stderr.contains(secret), "a secret in stderr:\n{stderr}");
        assert!(
            stdout.iter().all(|line| !line.contains(secret)),
            "a secret on stdout:\n{stdout:#?}"
        );
    }
}

#[test]
fn the_function_sees_credentials_only_with_aws_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let caller = [
        ("AWS_ACCESS_KEY_ID", "AKIAFAKELOCAL0001"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("AWS_REGION", "ap-south-1"),
    ];

    let out = local_test(dir.path(), &CREDENTIAL_VARS, &["-vv"], &caller);
    assert_no_secret(&out);
    let got = seen(&out, &CREDENTIAL_VARS);
    for key in &CREDENTIAL_VARS[..3] {
        assert_eq!(
            value(&got, key),
            &Value::Null,
            "{key} without --aws-credentials"
        );
    }
    assert_eq!(
        value(&got, "AWS_REGION"),
        "us-east-1",
        "the caller's region needs --region or --aws-credentials"
    );

    let out = local_test(
        dir.path(),
        &CREDENTIAL_VARS,
        &["--aws-credentials", "-vv"],
        &caller,
    );
    assert_no_secret(&out);
    let got = seen(&out, &CREDENTIAL_VARS);
    assert_eq!(value(&got, "AWS_ACCESS_KEY_ID"), "AKIAFAKELOCAL0001");
    assert_eq!(value(&got, "AWS_SECRET_ACCESS_KEY"), SECRET);
    assert_eq!(value(&got, "AWS_SESSION_TOKEN"), TOKEN);
    assert_eq!(value(&got, "AWS_REGION"), "ap-south-1");
    assert_eq!(value(&got, "AWS_DEFAULT_REGION"), "ap-south-1");

    let flags = ["--aws-credentials", "--region", "eu-west-3"];
    let got = seen(
        &local_test(dir.path(), &["AWS_REGION"], &flags, &caller),
        &["AWS_REGION"],
    );
    assert_eq!(value(&got, "AWS_REGION"), "eu-west-3", "--region wins");
}

#[test]
fn a_named_profile_resolves_through_credential_process() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '{{\"Version\":1,\"AccessKeyId\":\"AKIAPROCESS0001\",\
             \"SecretAccessKey\":\"{SECRET}\",\"SessionToken\":\"{TOKEN}\",\
             \"Expiration\":\"%s\"}}' \"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\"\n"
        ),
    )
    .unwrap();
    assert!(Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap()
        .success());
    let config = dir.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile local]\nregion = eu-north-1\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let flags = ["--aws-credentials", "--aws-profile", "local", "-vv"];
    let out = local_test(
        dir.path(),
        &CREDENTIAL_VARS,
        &flags,
        &[("AWS_CONFIG_FILE", config.to_str().unwrap())],
    );
    assert_no_secret(&out);
    let got = seen(&out, &CREDENTIAL_VARS);
    assert_eq!(value(&got, "AWS_ACCESS_KEY_ID"), "AKIAPROCESS0001");
    assert_eq!(value(&got, "AWS_SECRET_ACCESS_KEY"), SECRET);
    assert_eq!(value(&got, "AWS_SESSION_TOKEN"), TOKEN);
    assert_eq!(
        value(&got, "AWS_REGION"),
        "eu-north-1",
        "the profile's region"
    );
}

/// A command refused before anything was built: an error naming `needles`, no value shown.
fn assert_refused(out: &Output, needles: &[&str], hidden: &str) {
    let (stdout, stderr) = texts(out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no `{needle}` in:\n{stderr}");
    }
    assert!(
        !stderr.contains(hidden) && !stdout.contains(hidden),
        "{stderr}"
    );
    assert!(
        json_lines(out).iter().all(|e| e["reason"] != "compiled"),
        "refused only after compiling:\n{stdout}"
    );
}

#[test]
fn reserved_variables_and_missing_credentials_are_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let out = local_test(
        dir.path(),
        &["LEVEL"],
        &["--env", "AWS_SECRET_ACCESS_KEY=not-for-you"],
        &[],
    );
    assert_refused(
        &out,
        &["`AWS_SECRET_ACCESS_KEY` is reserved", "--env"],
        "not-for-you",
    );

    let file = dir.path().join("bad.env");
    std::fs::write(&file, "A=1\n\nAWS_LAMBDA_FUNCTION_NAME=impostor\n").unwrap();
    let out = local_test(
        dir.path(),
        &["LEVEL"],
        &["--env-file", file.to_str().unwrap()],
        &[],
    );
    let line = format!("{}:3", file.display());
    assert_refused(
        &out,
        &["`AWS_LAMBDA_FUNCTION_NAME` is reserved", &line],
        "impostor",
    );

    let out = local_test(dir.path(), &["LEVEL"], &["--env", "not-a-pair"], &[]);
    assert_refused(&out, &["KEY=VALUE", "--env"], "not-a-pair");

    let out = local_test(dir.path(), &["LEVEL"], &["--aws-credentials"], &[]);
    assert_refused(
        &out,
        &["could not resolve AWS credentials", "--aws-profile"],
        SECRET,
    );

    let out = local_test(dir.path(), &["LEVEL"], &["--aws-profile", "x"], &[]);
    assert_refused(&out, &["--aws-credentials"], SECRET);
}
