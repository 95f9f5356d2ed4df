//! A registry with TLS and htpasswd authentication (Debian's docker-registry, started here on
//! a free port with a certificate made by openssl): pushes with no, wrong and right
//! credentials. The errors say which credentials were tried and never print them.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{cli, docker_config, fixture_target_dir, fixture_workspace, json_lines, run, texts};

const PASSWORD: &str = "s3cret-Pa55word-9f2c";

struct Registry {
    child: Child,
    address: String,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a leaf certificate for 127.0.0.1 signed by it (rustls refuses a CA certificate as a
/// server's own), an htpasswd file, and the registry serving them.
fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(d, "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=lambda-image-test-ca 2>/dev/null");
    sh(d, "openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1 2>/dev/null");
    std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(d, "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext 2>/dev/null");
    sh(d, &format!("htpasswd -Bbn tester '{PASSWORD}' > htpasswd"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    std::fs::write(
        d.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: {address}\n  tls:\n    certificate: {root}/leaf.pem\n    key: {root}/leaf.key\nauth:\n  htpasswd:\n    realm: test\n    path: {root}/htpasswd\n",
            root = d.display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(d.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (installed by `cargo xtask ci`)");
    let start = Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the TLS registry did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Registry {
        child,
        address,
        ca: d.join("ca.pem"),
        _dir: dir,
    }
}

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
