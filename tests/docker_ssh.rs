//! `DOCKER_HOST=ssh://…`: the Docker engine reached through SSH (bollard's ssh feature, which
//! runs the system `ssh`, and `docker system dial-stdio` on the other side), against an sshd
//! started here (Debian's openssh-server, installed by `cargo xtask ci`) whose sessions talk
//! to the test dockerd.
//!
//! bollard hands ssh the host without its port, so the sshd listens on port 22, of
//! 127.0.0.2 (a loopback address of the tests' own). ssh keeps host keys in the user's
//! known_hosts whatever HOME says; the test's key changes every run, so its entry is removed
//! first.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    cli, fixture_target_dir, fixture_workspace, json_lines, run, service_env, sh, texts,
};

/// Where the sshd listens.
const ADDRESS: &str = "127.0.0.2";

struct Sshd {
    child: Child,
    agent: Child,
    port: u16,
    agent_socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        for child in [&mut self.child, &mut self.agent] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An sshd on 127.0.0.1 that lets in one key (held by an ssh-agent of its own, so the user's
/// keys and config are not involved) and gives its sessions the test dockerd's DOCKER_HOST.
fn start_sshd(docker_host: &str) -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(d, "ssh-keygen -q -t ed25519 -N '' -f host_key && ssh-keygen -q -t ed25519 -N '' -f client_key");
    let public = std::fs::read_to_string(d.join("client_key.pub")).unwrap();
    std::fs::write(
        d.join("authorized_keys"),
        format!("environment=\"DOCKER_HOST={docker_host}\" {public}"),
    )
    .unwrap();
    let port = 22;
    let _ = Command::new("ssh-keygen").args(["-R", ADDRESS]).output();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress {ADDRESS}\nHostKey {root}/host_key\nAuthorizedKeysFile {root}/authorized_keys\nPidFile {root}/sshd.pid\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitUserEnvironment yes\nStrictModes no\nUsePAM no\n",
            root = d.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd (openssh-server, installed by `cargo xtask ci`)");
    let agent_socket = d.join("agent.sock");
    let agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&agent_socket)
        .stdout(Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let start = Instant::now();
    while std::net::TcpStream::connect((ADDRESS, port)).is_err() || !agent_socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "sshd or ssh-agent did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let add = Command::new("ssh-add")
        .arg(d.join("client_key"))
        .env("SSH_AUTH_SOCK", &agent_socket)
        .output()
        .unwrap();
    assert!(add.status.success(), "{:?}", texts(&add));
    Sshd {
        child,
        agent,
        port,
        agent_socket,
        _dir: dir,
    }
}

/// The `docker engine` check of `doctor` with `env`.
fn doctor_engine(env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = cli();
    cmd.args(["doctor", "-p", "echo", "--base-image", "scratch"])
        .args(["--message-format", "json", "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .envs(env.iter().copied());
    let out = run(&mut cmd);
    json_lines(&out)
        .into_iter()
        .find(|e| e["check"]["name"] == "docker engine")
        .map(|e| e["check"].clone())
        .expect("a docker engine check")
}

#[test]
fn the_docker_builder_and_doctor_reach_the_engine_through_ssh() {
    let local = service_env("DOCKER_HOST");
    let sshd = start_sshd(&local);
    assert_eq!(sshd.port, 22);
    let host = format!("ssh://root@{ADDRESS}");
    let agent = sshd.agent_socket.to_str().unwrap();
    let with_ssh = |cmd: &mut Command| {
        cmd.env("DOCKER_HOST", &host)
            .env("SSH_AUTH_SOCK", &sshd.agent_socket);
    };

    let engine = doctor_engine(&[("DOCKER_HOST", host.as_str()), ("SSH_AUTH_SOCK", agent)]);
    assert_eq!(engine["ok"], true, "{engine}");
    assert!(
        engine["detail"].as_str().unwrap().contains(&host),
        "{engine}"
    );

    // A port in DOCKER_HOST would be lost on the way: refused, with what to write instead.
    let ported = format!("ssh://root@{ADDRESS}:2222");
    let engine = doctor_engine(&[("DOCKER_HOST", ported.as_str())]);
    assert_eq!(engine["ok"], false);
    assert!(
        engine["detail"].as_str().unwrap().contains("~/.ssh/config"),
        "{engine}"
    );

    let mut image = cli();
    image
        .args([
            "image",
            "-p",
            "echo",
            "--builder",
            "docker",
            "--base-image",
            "scratch",
        ])
        .args(["--message-format", "json", "--manifest-path"])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
    with_ssh(&mut image);
    let out = run(&mut image);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Docker's own build output came back through the SSH session.
    assert!(stderr.contains("Step 1/"), "{stderr}");
    let events = json_lines(&out);
    let built = events
        .iter()
        .find(|e| e["reason"] == "image")
        .expect("an image");
    assert!(built["image"]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}
