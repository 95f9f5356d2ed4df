//! A registry with TLS and htpasswd authentication (Debian's docker-registry, started here on
//! a free port with a certificate made by openssl): pushes with no, wrong and right
//! credentials. The errors say which credentials were tried and never print them.

use crate::support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::tls_registry::{start_registry, Registry, PASSWORD};
use support::{cli, docker_config, fixture_target_dir, fixture_workspace, json_lines, run, texts};

/// `push -vv` of the echo function to the registry with a docker config in `docker_config`.
fn push(registry: &Registry, docker_config: &Path) -> std::process::Output {
    push_with_path(registry, docker_config, None)
}

/// [`push`] with a directory put first on PATH (for credential helpers).
fn push_with_path(
    registry: &Registry,
    docker_config: &Path,
    bin: Option<&Path>,
) -> std::process::Output {
    let mut cmd = cli();
    if let Some(bin) = bin {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).unwrap());
    }
    cmd.args([
        "push",
        "-vv",
        "-p",
        "echo",
        "--arch",
        "x86_64",
        "--base-image",
        "scratch",
        "--locked",
        "--message-format",
        "json",
        "--registry",
        &registry.address,
        "--manifest-path",
    ])
    .arg(fixture_workspace().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", fixture_target_dir("musl"))
    .env("CARGO_LAMBDA_IMAGE_REGISTRY_CA", &registry.ca)
    .env("DOCKER_CONFIG", docker_config);
    run(&mut cmd)
}

#[test]
fn credentials_are_required_named_and_never_printed() {
    let registry = start_registry();
    let configs = tempfile::tempdir().unwrap();

    // No credentials at all.
    let none = configs.path().join("none");
    std::fs::create_dir_all(&none).unwrap();
    let out = push(&registry, &none);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("refused access") && stderr.contains("tried anonymous access"),
        "{stderr}"
    );

    // Wrong password: the error names where the login came from, not what it is.
    let wrong_password = format!("{PASSWORD}-wrong");
    let wrong = configs.path().join("wrong");
    let wrong_auth = docker_config(&wrong, &registry.address, "tester", &wrong_password);
    let out = push(&registry, &wrong);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "tried the login for {} in {}",
            registry.address,
            wrong.join("config.json").display()
        )),
        "{stderr}"
    );
    for secret in [wrong_password.as_str(), wrong_auth.as_str()] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed"
        );
    }

    // Right password: pushed, over TLS verified against our CA.
    let right = configs.path().join("right");
    docker_config(&right, &registry.address, "tester", PASSWORD);
    let out = push(&registry, &right);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password was printed"
    );
    let pushed: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "pushed")
        .collect();
    assert_eq!(pushed.len(), 1);
    let image = &pushed[0]["image"];
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("tester:{PASSWORD}"),
        ])
        .arg(format!(
            "docker://{}:{}",
            image["repository"].as_str().unwrap(),
            image["tag"].as_str().unwrap()
        ))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let inspected: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspected["Digest"], image["digest"]);
}

/// A credential helper named in the Docker config's `credHelpers` (a program
/// `docker-credential-NAME` on PATH, speaking Docker's helper protocol) supplies the login.
#[test]
fn a_credential_helper_from_the_docker_config_supplies_the_login() {
    use std::os::unix::fs::PermissionsExt;

    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-lambdatest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n# `get` reads the server on stdin and answers with the login as JSON.\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" > \"$(dirname \"$0\")/asked\"\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"tester\",\"Secret\":\"%s\"}}' \"$server\" '{PASSWORD}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!(
            r#"{{"credHelpers":{{"{}":"lambdatest"}}}}"#,
            registry.address
        ),
    )
    .unwrap();

    let out = push_with_path(&registry, &config, Some(&bin));
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let asked = std::fs::read_to_string(bin.join("asked")).expect("the helper was asked");
    assert!(asked.contains(&registry.address), "{asked}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password was printed"
    );
    assert_eq!(
        json_lines(&out)
            .iter()
            .filter(|e| e["reason"] == "pushed")
            .count(),
        1
    );
}
