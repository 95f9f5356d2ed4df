//! AWS configuration (profile, region, endpoint, credentials), the ECR, IAM and Lambda clients
//! built from it, and turning SDK errors into ours. Shared by the ECR output and the deploy
//! stage, and by local runs that hand a function credentials ([`CredentialSource`]).
//!
//! Part of the ground floor: it imports nothing from a stage. Secrets stay inside the SDK's
//! credentials providers; nothing here formats them.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::config::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{Error, Result};

/// How to reach AWS.
#[derive(Clone, Default)]
pub struct AwsOptions {
    /// `--aws-profile`: the shared config/credentials profile.
    pub profile: Option<String>,
    /// `--region`: overrides a function's `deploy.region` and the profile's region.
    pub region: Option<String>,
    /// `--endpoint-url`: one endpoint for ECR, IAM and Lambda (aws-config also reads
    /// `AWS_ENDPOINT_URL` and the per-service variables on its own).
    pub endpoint_url: Option<String>,
    /// A ready AWS configuration to use instead of loading one (library callers and tests);
    /// `region` and `endpoint_url` still override it.
    pub sdk_config: Option<SdkConfig>,
    /// An interceptor added to every AWS client (tests record the requests with it).
    pub interceptor: Option<SharedInterceptor>,
}

impl std::fmt::Debug for AwsOptions {
    // The SDK config holds a credentials provider; print only whether it is there.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsOptions")
            .field("profile", &self.profile)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| "<given>"))
            .field("interceptor", &self.interceptor.as_ref().map(|_| "<given>"))
            .finish()
    }
}

/// The ECR, IAM and Lambda clients of one region.
#[derive(Debug, Clone)]
pub struct Clients {
    /// ECR.
    pub ecr: aws_sdk_ecr::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// The region they talk to.
    pub region: String,
}

impl Clients {
    /// Clients for `opts`, in `region` unless `opts.region` says otherwise; `function` names
    /// what needs them, for the error when no region is configured.
    pub async fn new(opts: &AwsOptions, region: Option<&str>, function: &str) -> Result<Clients> {
        let sdk = load(opts, region).await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| Error::Deploy {
                function: function.to_string(),
                message: "no AWS region is configured".into(),
                help: "set --region, AWS_REGION, the profile's `region`, or `deploy.region` in [package.metadata.lambda]".into(),
            })?;
        let mut ecr = aws_sdk_ecr::config::Builder::from(&sdk);
        let mut iam = aws_sdk_iam::config::Builder::from(&sdk);
        let mut lambda = aws_sdk_lambda::config::Builder::from(&sdk);
        if let Some(i) = &opts.interceptor {
            ecr.push_interceptor(i.clone());
            iam.push_interceptor(i.clone());
            lambda.push_interceptor(i.clone());
        }
        Ok(Clients {
            ecr: aws_sdk_ecr::Client::from_conf(ecr.build()),
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
            region,
        })
    }
}

/// Loads the AWS configuration: `opts.sdk_config` if given, else aws-config's default chain
/// (environment, `~/.aws/config` and `credentials`, SSO, process credentials, IMDS) with the
/// profile given. The region is, highest first: `opts.region`, `region` (the function's
/// `deploy.region`), then the profile/environment. `opts.endpoint_url` overrides the endpoint of
/// every service (aws-config also honours `AWS_ENDPOINT_URL` on its own).
pub async fn load(opts: &AwsOptions, region: Option<&str>) -> SdkConfig {
    let region = opts.region.as_deref().or(region).map(str::to_string);
    if let Some(base) = &opts.sdk_config {
        let mut builder = base.to_builder();
        if let Some(region) = region {
            builder.set_region(Some(Region::new(region)));
        }
        if let Some(url) = &opts.endpoint_url {
            builder.set_endpoint_url(Some(url.clone()));
        }
        return builder.build();
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &opts.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Credentials handed to a function run on this machine (`--aws-credentials`), the way Lambda
/// hands it its execution role's. Their `Debug` shows only whether there is a session token
/// and when they expire.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// When temporary credentials stop working.
    pub expiry: Option<SystemTime>,
}

impl std::fmt::Debug for LocalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCredentials")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<set>"),
            )
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl LocalCredentials {
    /// Whether they still work `margin` from now (credentials without an expiry always do).
    pub fn valid_for(&self, margin: Duration) -> bool {
        self.expiry
            .is_none_or(|expiry| expiry > SystemTime::now() + margin)
    }

    /// The variables Lambda sets for them.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.as_str()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN", token));
        }
        env
    }
}

/// Where local runs get their credentials: aws-config's default chain (environment, profile,
/// SSO, `credential_process`, IMDS...), asked again whenever the last answer is about to
/// expire. Cloning shares the last answer.
#[derive(Clone)]
pub struct CredentialSource {
    provider: SharedCredentialsProvider,
    region: Option<String>,
    last: Arc<tokio::sync::Mutex<Option<LocalCredentials>>>,
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialSource")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl CredentialSource {
    /// The chain for `opts` (its profile and region; `opts.sdk_config` if given), asked once
    /// now so that missing credentials are an error before anything builds.
    pub async fn load(opts: &AwsOptions) -> Result<CredentialSource> {
        let sdk = load(opts, None).await;
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Error::LocalCredentials {
                message: "the AWS configuration has no credentials provider".into(),
                help: CREDENTIALS_HELP.into(),
            })?;
        let source = CredentialSource {
            provider,
            region: sdk.region().map(|r| r.to_string()),
            last: Arc::default(),
        };
        source.get(Duration::ZERO).await?;
        Ok(source)
    }

    /// The region of the same configuration (profile or environment), if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Credentials that still work `margin` from now: the last ones if they do, else new ones
    /// from the chain. New ones that expire sooner than that are returned anyway (the chain
    /// has nothing better), and asked for again next time.
    pub async fn get(&self, margin: Duration) -> Result<LocalCredentials> {
        let mut last = self.last.lock().await;
        if let Some(credentials) = last.as_ref().filter(|c| c.valid_for(margin)) {
            return Ok(credentials.clone());
        }
        let fresh =
            self.provider
                .provide_credentials()
                .await
                .map_err(|e| Error::LocalCredentials {
                    message: causes(&e),
                    help: CREDENTIALS_HELP.into(),
                })?;
        let credentials = LocalCredentials {
            access_key_id: fresh.access_key_id().to_string(),
            secret_access_key: fresh.secret_access_key().to_string(),
            session_token: fresh.session_token().map(str::to_string),
            expiry: fresh.expiry(),
        };
        *last = Some(credentials.clone());
        Ok(credentials)
    }
}

/// An error and its causes, each once, without the SDK's debug dump of the raw response.
pub(crate) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

const CREDENTIALS_HELP: &str = "give the function credentials through --aws-profile / AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or `aws sso login`; or drop --aws-credentials to run it without";

/// The AWS error code of an SDK error, if the service answered with one.
pub fn code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Turns an SDK error into an [`Error::Aws`] with a hint for the usual causes.
pub fn error<E, R>(service: &'static str, operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let code = code(&err).map(str::to_string);
    let message = match (&err, code.as_deref()) {
        (SdkError::ServiceError(service), Some(code)) => match service.err().message() {
            Some(m) => format!("{code}: {m}"),
            None => code.to_string(),
        },
        // An answer the SDK could not read as one of the operation's errors: say what came back
        // (its status and body) rather than the SDK's debug dump of it.
        (SdkError::ServiceError(service), None) => unread_answer(service.raw())
            .or_else(|| service.err().message().map(str::to_string))
            .unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
        _ => DisplayErrorContext(&err).to_string(),
    };
    let help = help_for(&err, code.as_deref(), &message);
    Error::Aws {
        service,
        operation: operation.to_string(),
        code,
        message,
        help,
    }
}

/// `HTTP <status>: <body>` of an HTTP answer (the body cut at 300 characters), when `raw` is
/// one.
fn unread_answer<R: 'static>(raw: &R) -> Option<String> {
    let response =
        (raw as &dyn std::any::Any).downcast_ref::<aws_smithy_runtime_api::http::Response>()?;
    let body = response
        .body()
        .bytes()
        .map(|b| {
            String::from_utf8_lossy(b)
                .trim()
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    let status = response.status().as_u16();
    Some(if body.is_empty() {
        format!("HTTP {status} without a body")
    } else {
        format!("HTTP {status}: {body}")
    })
}

fn help_for<E, R>(err: &SdkError<E, R>, code: Option<&str>, message: &str) -> String {
    let credentials = "check the AWS credentials: --aws-profile / AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or `aws sso login`";
    match (err, code) {
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => {
            if message.contains("credential") {
                credentials.to_string()
            } else {
                "could not reach the AWS endpoint: check the network, --region, and --endpoint-url / AWS_ENDPOINT_URL if set".to_string()
            }
        }
        (SdkError::ConstructionFailure(_), _) => {
            if message.contains("region") {
                "set a region with --region, AWS_REGION, the profile's `region`, or `deploy.region` in [package.metadata.lambda]".to_string()
            } else {
                credentials.to_string()
            }
        }
        (
            _,
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "SignatureDoesNotMatch",
            ),
        ) => format!(
            "the credentials were refused or lack a permission; {credentials}, and that the identity may call this operation"
        ),
        (_, Some("ResourceConflictException")) => {
            "another update of the function is in progress; wait for it and run the deploy again".to_string()
        }
        (_, Some("TooManyRequestsException" | "ThrottlingException")) => {
            "AWS throttled the request; run the deploy again in a moment".to_string()
        }
        _ => "the AWS message above says what was refused".to_string(),
    }
}
