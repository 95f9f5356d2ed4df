//! No command prints a secret, not even with `-vv`: every command runs with known fake AWS
//! credentials (key, secret, session token), a Docker config holding a registry password, and
//! (for local runs) the credentials handed to the function and variables from `--env` and
//! `--env-file`, and none of them may appear on stdout or stderr. Each command must also succeed, so that
//! the check is not passed by failing early.

use crate::support;

use std::path::Path;

use support::{cli, fixture_target_dir, fixture_workspace, run, service_env, texts};

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKESECRET01";
const AWS_SESSION: &str = "FwoGZXIvYXdzEFAKESESSIONTOKENforTests0123456789";
const REGISTRY_PASSWORD: &str = "reg1stry-Pa55w0rd-fake";
const ENV_FLAG_SECRET: &str = "flag-Secret-Value-0451";
const ENV_FILE_SECRET: &str = "file-Secret-Value-2187";

#[test]
fn no_command_prints_credentials_even_with_vv() {
    let registry = service_env("CLI_TEST_REGISTRY");
    let moto = service_env("CLI_TEST_MOTO_ENDPOINT");
    let dir = tempfile::tempdir().unwrap();
    let docker_config = dir.path().join("docker");
    let auth = support::docker_config(&docker_config, &registry, "tester", REGISTRY_PASSWORD);
    let manifest = fixture_workspace().join("Cargo.toml");
    let manifest = manifest.to_str().unwrap();
    let selection = [
        "-p",
        "echo",
        "--base-image",
        "scratch",
        "--manifest-path",
        manifest,
    ];
    let new_dir = dir.path().join("fresh-fn");
    let new_dir = new_dir.to_str().unwrap();
    let env_file = dir.path().join("local.env");
    std::fs::write(&env_file, format!("DB_PASSWORD={ENV_FILE_SECRET}\n")).unwrap();
    let env_flag = format!("API_KEY={ENV_FLAG_SECRET}");
    let local_run = [
        "--aws-credentials",
        "--env-file",
        env_file.to_str().unwrap(),
        "--env",
        &env_flag,
    ];

    let commands: Vec<Vec<&str>> = vec![
        [&["build"][..], &selection].concat(),
        [&["image"][..], &selection].concat(),
        [&["check"][..], &selection].concat(),
        [&["push", "--registry", &registry][..], &selection].concat(),
        [&["test", "--runner", "unconfined"][..], &selection].concat(),
        [
            &["test", "--runner", "unconfined"][..],
            &local_run,
            &selection,
        ]
        .concat(),
        [
            &[
                "invoke",
                "fixture-echo",
                "--runner",
                "unconfined",
                "--event",
                "{}",
            ][..],
            &local_run,
            &selection,
        ]
        .concat(),
        [&["template", "--registry", &registry][..], &selection].concat(),
        [
            &["deploy", "--dry-run", "--region", "us-east-1"][..],
            &["--endpoint-url", &moto, "--registry", &registry],
            &selection,
        ]
        .concat(),
        vec!["new", "fresh-fn", "--path", new_dir],
    ];
    let secrets = [
        AWS_SECRET,
        AWS_SESSION,
        REGISTRY_PASSWORD,
        auth.as_str(),
        ENV_FLAG_SECRET,
        ENV_FILE_SECRET,
    ];
    let configure = |cmd: &mut std::process::Command| {
        cmd.env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
            .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry)
            .env("DOCKER_CONFIG", &docker_config)
            .env("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0002")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_SESSION_TOKEN", AWS_SESSION)
            .env("AWS_CONFIG_FILE", Path::new("/nonexistent/config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                Path::new("/nonexistent/credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
    };
    for args in &commands {
        let mut cmd = cli();
        cmd.args(args).args(["-vv", "--message-format", "json"]);
        configure(&mut cmd);
        let out = run(&mut cmd);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "`{}` failed:\n{stdout}\n{stderr}",
            args.join(" ")
        );
        for secret in secrets {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "`{}` printed a secret:\n{stdout}\n{stderr}",
                args.join(" ")
            );
        }
    }

    // `serve` runs until stopped: start it with the local-run flags, invoke it once, and read
    // everything it printed so far.
    let mut cmd = cli();
    cmd.args([
        "serve",
        "--runner",
        "unconfined",
        "--bind",
        "127.0.0.1:0",
        "-vv",
    ])
    .args(local_run)
    .args(selection);
    configure(&mut cmd);
    let serving = support::serving::Serving::start(cmd);
    let url = serving.functions[0]["invoke_url"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = std::process::Command::new("curl")
        .args(["-sS", "-d", "{}", &url])
        .output()
        .expect("curl runs");
    assert!(answer.status.success(), "{answer:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let printed: Vec<String> = serving.events.try_iter().map(|e| e.to_string()).collect();
    let stderr = serving.stderr();
    for secret in secrets {
        assert!(
            !stderr.contains(secret) && !printed.iter().any(|e| e.contains(secret)),
            "`serve` printed a secret:\n{printed:?}\n{stderr}"
        );
    }
}
