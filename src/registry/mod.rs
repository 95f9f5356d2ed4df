//! Talking to OCI registries (through `oci-client`): client set-up, credentials, retries and
//! error classification. The image stage pulls bases and the publish stage pushes with it.
//!
//! Credentials are held in memory only and never formatted into messages: errors say where
//! credentials came from ("docker config", "anonymous", "ECR token"), never what they are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::error::{Error, Result};
use crate::progress::Reporter;

pub mod grammar;
mod locations;
pub mod upload;

pub use locations::{BlobLocations, Turn};

/// Credentials for a registry, with a description of where they came from.
#[derive(Clone)]
pub struct Credentials {
    /// What oci-client sends.
    pub auth: RegistryAuth,
    /// Where they came from, safe to print ("anonymous", "docker config", ...).
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.source)
    }
}

impl Credentials {
    /// No credentials.
    pub fn anonymous() -> Credentials {
        Credentials {
            auth: RegistryAuth::Anonymous,
            source: "anonymous access".into(),
        }
    }

    /// A user name and password (or token) from a named source.
    pub fn basic(user: String, password: String, source: &str) -> Credentials {
        Credentials {
            auth: RegistryAuth::Basic(user, password),
            source: source.into(),
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Where blobs are known to be, for mounting instead of uploading; shared by every push
    /// made with (clones of) these options.
    pub locations: std::sync::Arc<BlobLocations>,
    /// Hosts (`host:port`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Extra CA or leaf certificates (PEM files) to trust.
    pub ca_files: Vec<PathBuf>,
    /// Credentials to use instead of looking them up (e.g. an ECR token), per registry host.
    pub credentials: Vec<(String, Credentials)>,
    /// Where pulled blobs are cached.
    pub cache_dir: Option<PathBuf>,
}

impl RegistryOptions {
    /// Options from the environment: `CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES` (comma
    /// separated hosts), `CARGO_LAMBDA_IMAGE_REGISTRY_CA` (PEM file) and
    /// `CARGO_LAMBDA_IMAGE_CACHE_DIR`.
    pub fn from_env() -> RegistryOptions {
        let list = |var: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let cache_dir = std::env::var_os("CARGO_LAMBDA_IMAGE_CACHE_DIR").map(PathBuf::from);
        RegistryOptions {
            insecure: list("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES"),
            ca_files: list("CARGO_LAMBDA_IMAGE_REGISTRY_CA")
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            credentials: Vec::new(),
            cache_dir: cache_dir.clone(),
            locations: std::sync::Arc::new(BlobLocations::new(Some(
                cache_dir
                    .unwrap_or_else(default_cache_dir)
                    .join("locations"),
            ))),
        }
    }

    /// The blob cache directory: the option, else [`default_cache_dir`].
    pub fn cache(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }

    /// An oci-client for these options.
    pub fn client(&self) -> Result<Client> {
        let mut certs = Vec::new();
        for path in &self.ca_files {
            let data = std::fs::read(path)
                .map_err(|e| Error::io("could not read the certificate", path, e))?;
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: if self.insecure.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(self.insecure.clone())
            },
            extra_root_certificates: certs,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        Ok(Client::new(config))
    }

    /// The credentials for a registry: explicit ones, then `~/.docker/config.json` (and its
    /// credential helpers), then anonymous.
    pub fn credentials_for(&self, registry: &str) -> Credentials {
        if let Some((_, c)) = self.credentials.iter().find(|(host, _)| host == registry) {
            return c.clone();
        }
        // Docker config keys Docker Hub under its legacy URL.
        let key = if registry == "docker.io" || registry == "index.docker.io" {
            "https://index.docker.io/v1/"
        } else {
            registry
        };
        let file = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => format!("{}/config.json", PathBuf::from(dir).display()),
            None => "~/.docker/config.json".to_string(),
        };
        match docker_credential::get_credential(key) {
            Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
                Credentials::basic(
                    user,
                    password,
                    &format!("the login for {registry} in {file}"),
                )
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => Credentials {
                auth: RegistryAuth::Bearer(token),
                source: format!("the identity token for {registry} in {file}"),
            },
            Err(_) => Credentials::anonymous(),
        }
    }
}

/// The file a small fact is kept in under the process's cache directory
/// (`CARGO_LAMBDA_IMAGE_CACHE_DIR`, else [`default_cache_dir`]): `<kind>/<SHA-256 of key>`,
/// so that `key` holds everything the fact depends on.
pub fn keyed_cache_file(kind: &str, key: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_LAMBDA_IMAGE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_cache_dir);
    let digest = crate::oci::sha256_digest(key.as_bytes());
    dir.join(kind).join(digest.trim_start_matches("sha256:"))
}

/// Writes a small fact to its cache file (creating its directory), atomically. Only a saving:
/// a fact that cannot be kept costs the next run the work it spares, so errors are dropped.
pub fn keep_cache_file(file: &Path, data: &[u8]) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = crate::oci::write_atomic(file, data);
}

/// The user's cache directory for blobs and layers: `$XDG_CACHE_HOME/cargo-lambda-image`, else
/// `~/.cache/cargo-lambda-image`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cargo-lambda-image")
}

/// Parses an image reference, naming the setting it came from in the error.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    reference
        .parse::<Reference>()
        .map_err(|e| Error::InvalidImage {
            image: reference.to_string(),
            message: format!("not a valid image reference: {e}"),
            help: "write it as REGISTRY/REPOSITORY:TAG, e.g. public.ecr.aws/lambda/provided:al2"
                .into(),
        })
}

/// Turns a registry error into ours: a refused login names where the credentials came from;
/// every other failure shows its whole cause (down to "connection refused" or the DNS answer)
/// and gets the help of its kind (see [`Failure`]).
pub fn registry_error(
    what: &str,
    reference: &str,
    credentials: &Credentials,
    err: OciDistributionError,
) -> Error {
    if is_auth_failure(&err) {
        return Error::RegistryAuth {
            registry: reference.to_string(),
            tried: credentials.source.clone(),
        };
    }
    let message = crate::aws::causes(&err);
    let failure = Failure::of(&err, &message);
    // A registry that cannot be reached was never asked to authenticate, pull or push.
    let action = match failure {
        Failure::Dns | Failure::Connect | Failure::Tls | Failure::Timeout => {
            "reach the registry of"
        }
        _ => what,
    };
    Error::Registry {
        action: action.to_string(),
        reference: reference.to_string(),
        help: failure.help(reference),
        message,
    }
}

/// What kind of failure a registry operation met, each with its own help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The host name did not resolve.
    Dns,
    /// Nothing accepted the connection (refused, unreachable).
    Connect,
    /// The TLS handshake failed (a certificate, or a plain-HTTP registry).
    Tls,
    /// No answer in time.
    Timeout,
    /// 404: no such repository, tag or blob.
    NotFound,
    /// The registry's own failure: 5xx or 429.
    Server,
    /// An answer that could not be used.
    Other,
}

impl Failure {
    /// The kind of `err`, whose whole cause reads `cause`: from its status and error codes
    /// where it has them, else from the cause (a connection failure has no status).
    pub fn of(err: &OciDistributionError, cause: &str) -> Failure {
        let status = match err {
            OciDistributionError::ServerError { code, .. } => Some(*code),
            OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
            OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
            OciDistributionError::RegistryError { envelope, .. } => {
                let not_found = envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                    )
                });
                not_found.then_some(404)
            }
            _ => None,
        };
        let lower = cause.to_ascii_lowercase();
        match status {
            Some(404) => Failure::NotFound,
            Some(code) if code >= 500 || code == 429 => Failure::Server,
            Some(_) => Failure::Other,
            None if lower.contains("dns error") || lower.contains("failed to lookup address") => {
                Failure::Dns
            }
            None if lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake") =>
            {
                Failure::Tls
            }
            None if lower.contains("timed out") || lower.contains("timeout") => Failure::Timeout,
            None if matches!(err, OciDistributionError::RequestError(e) if e.is_connect())
                || lower.contains("connection refused")
                || lower.contains("unreachable")
                || lower.contains("connection reset") =>
            {
                Failure::Connect
            }
            None => Failure::Other,
        }
    }

    /// What to do about it, for an operation on `reference`.
    pub fn help(self, reference: &str) -> String {
        let host = reference.split('/').next().unwrap_or(reference);
        match self {
            Failure::Dns => format!("the host name `{host}` does not resolve: check its spelling, the network and DNS (offline, a proxy or a VPN)"),
            Failure::Connect => format!("nothing accepted the connection to `{host}`: check the host and port, and that the registry is running (`curl http://{host}/v2/` or `https://`)"),
            Failure::Tls => format!("the TLS connection to `{host}` failed: for a registry over plain HTTP set CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES={host}; to trust its certificate set CARGO_LAMBDA_IMAGE_REGISTRY_CA=FILE.pem"),
            Failure::Timeout => format!("`{host}` did not answer in time: check the network, or try again"),
            Failure::NotFound => format!("the registry has no `{reference}`: check the repository and the tag (`skopeo list-tags docker://{}` lists the tags)", reference.split([':', '@']).next().unwrap_or(reference)),
            Failure::Server => format!("`{host}` answered with an error of its own (5xx or 429): it may be down or overloaded; try again later"),
            Failure::Other => format!("`{host}` gave an answer that could not be used; the cause above says what it was"),
        }
    }
}

/// Whether the registry refused the credentials: 401/403, or an OCI error envelope saying
/// UNAUTHORIZED or DENIED. Decided from the status and codes, never from the message text,
/// which holds repository names and digests that may contain any digits.
pub fn is_auth_failure(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => true,
        OciDistributionError::ServerError { code, .. } => matches!(code, 401 | 403),
        // Some calls (a blob HEAD) turn the status into a reqwest error.
        OciDistributionError::RequestError(e) => {
            e.status().is_some_and(|s| matches!(s.as_u16(), 401 | 403))
        }
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        _ => false,
    }
}

/// Whether a registry error is worth retrying: connection problems, 5xx and 429 answers.
/// Like [`is_auth_failure`], decided from the error's kind and status, not its text.
pub fn is_transient(err: &OciDistributionError) -> bool {
    match err {
        // Without a status, a request error is a connection problem.
        OciDistributionError::RequestError(e) => e
            .status()
            .is_none_or(|s| s.is_server_error() || s.as_u16() == 429),
        OciDistributionError::IoError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        _ => false,
    }
}

/// Authenticates `client` for pushing to `reference` with `credentials`, retrying transient
/// failures; an error names `display` (the reference as the user knows it). Returns the bearer
/// token the registry's token service issued, if it has one (for requests made without
/// oci-client, see [`upload`]).
pub async fn authenticate_push(
    client: &Client,
    reference: &Reference,
    credentials: &Credentials,
    display: &str,
    progress: &Reporter,
) -> Result<Option<String>> {
    with_retry(progress, "authentication", || {
        client.auth(
            reference,
            &credentials.auth,
            oci_client::RegistryOperation::Push,
        )
    })
    .await
    .map_err(|e| registry_error("authenticate for", display, credentials, e))
}

/// Runs a registry operation, retrying transient failures with backoff (5 attempts).
pub async fn with_retry<T, F, Fut>(
    progress: &Reporter,
    what: &str,
    mut op: F,
) -> std::result::Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 5 && is_transient(&e) => {
                progress.line(format!(
                    "  retrying {what} after a transient error (attempt {attempt}/5): {e}"
                ));
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn server(code: u16, url: &str) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: url.into(),
            message: String::new(),
        }
    }

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "no".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://r/v2/x-401-500/manifests/sha256:403".into(),
        }
    }

    #[test]
    fn digits_in_names_and_digests_do_not_classify_errors() {
        // A 404 for a repository whose name happens to hold 401, 403 and 500.
        let not_found = server(
            404,
            "http://r/v2/index-13401-500403/manifests/sha256:5004031",
        );
        assert!(!is_auth_failure(&not_found));
        assert!(!is_transient(&not_found));
        let unknown = envelope(OciErrorCode::ManifestUnknown);
        assert!(!is_auth_failure(&unknown) && !is_transient(&unknown));
    }

    #[test]
    fn statuses_and_codes_classify_errors() {
        assert!(is_auth_failure(&server(401, "http://r/v2/")));
        assert!(is_auth_failure(&server(403, "http://r/v2/")));
        assert!(is_auth_failure(&envelope(OciErrorCode::Denied)));
        assert!(is_auth_failure(&envelope(OciErrorCode::Unauthorized)));
        assert!(is_transient(&server(500, "http://r/v2/")));
        assert!(is_transient(&server(503, "http://r/v2/")));
        assert!(is_transient(&server(429, "http://r/v2/")));
        assert!(is_transient(&envelope(OciErrorCode::Toomanyrequests)));
        assert!(!is_transient(&server(400, "http://r/v2/")));
    }
}
