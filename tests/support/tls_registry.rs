//! A registry with TLS and htpasswd authentication (Debian's docker-registry, started on a
//! free port with a certificate made by openssl), for the tests of private registries.

#![allow(dead_code)]

use super::sh;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of its one user, `tester`.
pub const PASSWORD: &str = "s3cret-Pa55word-9f2c";

/// The running registry; stopped when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub address: String,
    /// The CA that signed its certificate (PEM).
    pub ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, a leaf certificate for 127.0.0.1 signed by it (rustls refuses a CA certificate as a
/// server's own), an htpasswd file, and the registry serving them.
pub fn start_registry() -> Registry {
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
