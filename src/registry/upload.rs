//! Blob uploads that go on where the registry says they stopped.
//!
//! oci-client sends a blob as POST, PATCHes and PUT, and starts over whenever anything fails.
//! For a layer of a few hundred megabytes (a model in `image.include`) that means sending it
//! again from the first byte after every broken connection. This uploader keeps the upload
//! session's URL; after a broken connection or a 5xx it asks the registry how far the upload
//! got (`GET <session>`, answered `204` with `Range: 0-N`: the OCI distribution spec's upload
//! status) and sends the rest from byte N+1. The session's URL is also kept in the cache
//! (`uploads/`), so a push that failed altogether resumes on the next run.
//!
//! A registry may drop a session instead: distribution 2.8 (Debian's docker-registry) does
//! when a PATCH body was cut short, because its next request finds more bytes stored than the
//! session's signed state says. The status request then answers 404 and the blob is sent
//! again in a new session. A blob of one chunk or less goes in one PUT after the POST, as
//! docker does, which saves a round trip on the small layers and the config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderValue, StatusCode};
use oci_client::errors::OciDistributionError;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{with_retry, Credentials, RegistryOptions};
use crate::progress::{Reporter, Transfer};

/// How many bytes one PATCH request carries: large enough that a request's round trip is
/// noise, small enough that little is lost when a connection breaks.
pub const CHUNK: u64 = 8 << 20;

type Failure = OciDistributionError;

/// Uploads blobs to the repositories of one registry.
pub struct Uploader {
    /// Made when the first blob is sent: a push of nothing new does without it.
    http: tokio::sync::OnceCell<reqwest::Client>,
    /// Extra certificates to trust, for `https` registries.
    certificates: Vec<PathBuf>,
    /// `http://host:port` or `https://host`.
    base: String,
    /// The key sessions are kept under: the registry as the user named it.
    registry: String,
    authorization: Option<HeaderValue>,
    /// Where session URLs are kept between runs.
    sessions: PathBuf,
}

/// Where an upload stands: the URL for its next request and the bytes the registry has.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    location: String,
    offset: u64,
}

/// The offset of a session whose status could not be asked.
const UNKNOWN: u64 = u64::MAX;

/// A blob to upload.
#[derive(Clone, Copy)]
struct Blob<'a> {
    repository: &'a str,
    digest: &'a str,
    path: &'a Path,
    size: u64,
}

impl Uploader {
    /// An uploader for `registry` (the host to connect to, as oci-client resolves it), with the
    /// bearer token the push's authentication returned, else the credentials themselves.
    pub fn new(
        options: &RegistryOptions,
        registry: &str,
        token: Option<&str>,
        credentials: &Credentials,
    ) -> Uploader {
        let scheme = if options.insecure.iter().any(|h| h == registry) {
            "http"
        } else {
            "https"
        };
        Uploader {
            http: tokio::sync::OnceCell::new(),
            certificates: options.ca_files.clone(),
            base: format!("{scheme}://{registry}"),
            registry: registry.to_string(),
            authorization: authorization(token, credentials),
            sessions: options.cache().join("uploads"),
        }
    }

    /// Uploads the blob `digest` of `size` bytes from `path` to `repository`, resuming a
    /// session an earlier run left; returns the bytes this call sent.
    pub async fn upload(
        &self,
        repository: &str,
        digest: &str,
        path: &Path,
        size: u64,
        transfer: &Transfer,
        progress: &Reporter,
    ) -> std::result::Result<u64, Failure> {
        let blob = Blob {
            repository,
            digest,
            path,
            size,
        };
        let kept = self.session_file(repository, digest);
        // A session an earlier run left is taken up if the registry still has it; one it
        // cannot even be asked about is forgotten.
        let resume = match std::fs::read_to_string(&kept) {
            Ok(location) => match self.status(location.trim()).await {
                Ok(Some(at)) => {
                    progress.line(format!(
                        "  resuming the upload of {digest} an earlier run left, at byte {} of \
                         {size}",
                        at.offset
                    ));
                    Some(at)
                }
                _ => None,
            },
            Err(_) => None,
        };
        // What one attempt leaves the next: the session to go on with (its offset is asked
        // again first) and the bytes sent so far.
        let state = std::sync::Mutex::new((resume, 0u64));
        let take = || {
            state
                .lock()
                .map(|mut s| (s.0.take(), s.1))
                .unwrap_or((None, 0))
        };
        let what = format!("the upload of {digest}");
        with_retry(progress, &what, || async {
            let (resume, mut sent) = take();
            let mut last = None;
            let result = self
                .send(&blob, resume, &mut last, &mut sent, transfer, progress)
                .await;
            if let Ok(mut s) = state.lock() {
                *s = (
                    last.map(|location| Cursor {
                        location,
                        offset: UNKNOWN,
                    }),
                    sent,
                );
            }
            result.map(|()| sent)
        })
        .await
        .inspect(|_| {
            let _ = std::fs::remove_file(&kept);
        })
    }

    /// One attempt: opens a session unless `resume` is one, sends the bytes from its offset
    /// and commits the blob. `last` follows the registry's answers, so a failed attempt
    /// leaves it at the session's latest URL.
    async fn send(
        &self,
        blob: &Blob<'_>,
        resume: Option<Cursor>,
        last: &mut Option<String>,
        sent: &mut u64,
        transfer: &Transfer,
        progress: &Reporter,
    ) -> std::result::Result<(), Failure> {
        let Blob {
            repository,
            digest,
            path,
            size,
        } = *blob;
        let resume = match resume {
            // An attempt failed here: where did it stop? A registry that dropped the session
            // gets a new one; one that cannot be asked now is asked again next attempt.
            Some(at) if at.offset == UNKNOWN => {
                *last = Some(at.location.clone());
                let status = self.status(&at.location).await?;
                progress.line(match &status {
                    Some(now) => format!(
                        "  the registry has {} of {size} bytes of {digest}; sending the rest",
                        now.offset
                    ),
                    None => {
                        format!("  the registry dropped the upload of {digest}; sending it again")
                    }
                });
                status
            }
            other => other,
        };
        let mut at = match resume {
            Some(at) => at,
            None => Cursor {
                location: self.begin(repository).await?,
                offset: 0,
            },
        };
        *last = Some(at.location.clone());
        self.keep(repository, digest, &at.location);
        transfer.restart_at(at.offset);
        let mut file = tokio::fs::File::open(path).await?;
        if at.offset == 0 && size <= CHUNK {
            // One request carries the whole blob.
            let body = read_chunk(&mut file, size).await?;
            self.commit(&at.location, digest, body).await?;
            transfer.advance(size);
            *sent += size;
            return Ok(());
        }
        while at.offset < size {
            // From where the registry says it is, which is where the last chunk ended unless it
            // kept less.
            file.seek(std::io::SeekFrom::Start(at.offset)).await?;
            let len = CHUNK.min(size - at.offset);
            let body = read_chunk(&mut file, len).await?;
            let response = self
                .request(reqwest::Method::PATCH, &at.location)?
                .header(
                    "Content-Range",
                    format!("{}-{}", at.offset, at.offset + len - 1),
                )
                .header(CONTENT_LENGTH, len)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body)
                .send()
                .await?;
            let response = expect(response, StatusCode::ACCEPTED).await?;
            at = Cursor {
                location: self.location(&response, &at.location)?,
                offset: range_end(&response).unwrap_or(at.offset + len),
            };
            *last = Some(at.location.clone());
            self.keep(repository, digest, &at.location);
            transfer.advance(len);
            *sent += len;
        }
        if at.offset != size {
            return Err(Failure::GenericError(Some(format!(
                "the registry holds {} bytes of a {size}-byte blob",
                at.offset
            ))));
        }
        self.commit(&at.location, digest, bytes::Bytes::new()).await
    }

    /// Opens an upload session; returns its URL.
    async fn begin(&self, repository: &str) -> std::result::Result<String, Failure> {
        let url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self
            .request(reqwest::Method::POST, &url)?
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        let response = expect(response, StatusCode::ACCEPTED).await?;
        self.location(&response, &url)
    }

    /// Ends the session with the blob's digest (and the bytes not sent yet, if any).
    async fn commit(
        &self,
        location: &str,
        digest: &str,
        body: bytes::Bytes,
    ) -> std::result::Result<(), Failure> {
        let mut url = reqwest::Url::parse(location)
            .map_err(|e| Failure::UrlParseError(format!("{location}: {e}")))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let response = self
            .request(reqwest::Method::PUT, url.as_str())?
            .header(CONTENT_LENGTH, body.len())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await?;
        expect(response, StatusCode::CREATED).await.map(drop)
    }

    /// How far a session got: its next URL and offset, or `None` when the registry no longer
    /// knows it.
    async fn status(&self, location: &str) -> std::result::Result<Option<Cursor>, Failure> {
        let response = self.request(reqwest::Method::GET, location)?.send().await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(Cursor {
            location: self.location(&response, location)?,
            offset: range_end(&response).unwrap_or(0),
        }))
    }

    /// The HTTP client, made on first use. A plain-HTTP registry's does without the system's
    /// certificates, whose loading is most of the cost of making one.
    fn http(&self) -> std::result::Result<&reqwest::Client, Failure> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120));
        if self.base.starts_with("http:") {
            builder = builder.tls_certs_only(Vec::new());
        } else {
            for path in &self.certificates {
                let data = std::fs::read(path)?;
                let certificate = reqwest::Certificate::from_pem(&data)?;
                builder = builder.tls_certs_merge([certificate]);
            }
        }
        let client = builder.build()?;
        // Another task may have made one meanwhile; either serves.
        let _ = self.http.set(client);
        self.http
            .get()
            .ok_or_else(|| Failure::GenericError(Some("no HTTP client".into())))
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> std::result::Result<reqwest::RequestBuilder, Failure> {
        let request = self.http()?.request(method, url);
        // Credentials go only to the registry itself, never to a URL elsewhere a session
        // location may point at (CVE-2020-15157).
        Ok(match &self.authorization {
            Some(value) if same_origin(url, &self.base) => {
                request.header(AUTHORIZATION, value.clone())
            }
            _ => request,
        })
    }

    /// The `Location` of an answer, resolved against the URL asked; the URL asked when the
    /// registry gave none.
    fn location(
        &self,
        response: &reqwest::Response,
        asked: &str,
    ) -> std::result::Result<String, Failure> {
        let Some(value) = response.headers().get(LOCATION) else {
            return Ok(asked.to_string());
        };
        let value = value
            .to_str()
            .map_err(|e| Failure::UrlParseError(e.to_string()))?;
        let base = reqwest::Url::parse(asked).map_err(|e| Failure::UrlParseError(e.to_string()))?;
        base.join(value)
            .map(String::from)
            .map_err(|e| Failure::UrlParseError(format!("{value}: {e}")))
    }

    fn session_file(&self, repository: &str, digest: &str) -> PathBuf {
        let key = crate::oci::sha256_digest(
            format!("{}/{repository}@{digest}", self.registry).as_bytes(),
        );
        self.sessions.join(
            key.trim_start_matches("sha256:")
                .get(..32)
                .unwrap_or("session"),
        )
    }

    /// Remembers a session's URL for the next run; a cache that cannot be written only costs
    /// that resumption.
    fn keep(&self, repository: &str, digest: &str, location: &str) {
        let file = self.session_file(repository, digest);
        let _ = crate::store::write_whole(&file, location.as_bytes());
    }
}

/// The `Authorization` header: the bearer token, else basic credentials, else none.
fn authorization(token: Option<&str>, credentials: &Credentials) -> Option<HeaderValue> {
    let text = match (token, &credentials.auth) {
        (Some(token), _) => format!("Bearer {token}"),
        (None, oci_client::secrets::RegistryAuth::Basic(user, password)) => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
        (None, oci_client::secrets::RegistryAuth::Bearer(token)) => format!("Bearer {token}"),
        (None, _) => return None,
    };
    let mut value = HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Whether `url` is on the registry `base` (scheme, host and port).
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// The offset after the `Range: 0-N` an answer reports (N + 1).
fn range_end(response: &reqwest::Response) -> Option<u64> {
    parse_range(response.headers().get(RANGE)?.to_str().ok()?)
}

/// `0-N` (or `bytes=0-N`) as the offset after it. Distribution writes `0-0` for an empty
/// upload as well as for a one-byte one; it is read as empty, and a wrong guess only makes the
/// next PATCH fail and the blob start over.
fn parse_range(value: &str) -> Option<u64> {
    let value = value.trim().trim_start_matches("bytes=");
    let (start, end) = value.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    if start != 0 {
        return None;
    }
    Some(if end == 0 { 0 } else { end + 1 })
}

/// Reads exactly `len` bytes.
async fn read_chunk(
    file: &mut tokio::fs::File,
    len: u64,
) -> std::result::Result<bytes::Bytes, Failure> {
    let mut buffer = vec![0; len as usize];
    file.read_exact(&mut buffer).await?;
    Ok(bytes::Bytes::from(buffer))
}

/// The answer when it has the expected status, else the registry's error.
async fn expect(
    response: reqwest::Response,
    expected: StatusCode,
) -> std::result::Result<reqwest::Response, Failure> {
    if response.status() == expected {
        return Ok(response);
    }
    let url = response.url().to_string();
    let code = response.status().as_u16();
    let message = response.text().await.unwrap_or_default();
    Err(Failure::ServerError { url, code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_the_next_offset() {
        assert_eq!(parse_range("0-1048575"), Some(1 << 20));
        assert_eq!(parse_range("bytes=0-9"), Some(10));
        assert_eq!(parse_range("0-0"), Some(0));
        assert_eq!(parse_range("5-9"), None);
        assert_eq!(parse_range("nonsense"), None);
    }

    #[test]
    fn credentials_become_a_sensitive_header() {
        let basic = Credentials::basic("AWS".into(), "secret".into(), "test");
        let value = authorization(None, &basic).unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Basic QVdTOnNlY3JldA==");
        let bearer = authorization(Some("tok"), &basic).unwrap();
        assert_eq!(bearer.to_str().unwrap(), "Bearer tok");
        assert!(authorization(None, &Credentials::anonymous()).is_none());
    }

    #[test]
    fn credentials_stay_on_the_registry() {
        assert!(same_origin(
            "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=y",
            "http://127.0.0.1:5000"
        ));
        assert!(!same_origin(
            "https://bucket.s3.amazonaws.com/upload",
            "https://123.dkr.ecr.us-east-1.amazonaws.com"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:5001/v2/",
            "http://127.0.0.1:5000"
        ));
    }
}
