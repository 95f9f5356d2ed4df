//! AWS configuration (profile, region, endpoint, credentials), the ECR, IAM and Lambda clients
//! built from it, and turning SDK errors into ours. Shared by the ECR output and the deploy
//! stage.
//!
//! Part of the ground floor: it imports nothing from a stage. Secrets stay inside the SDK's
//! credentials providers; nothing here formats them.

use std::fmt::Debug;

use aws_config::{BehaviorVersion, Region, SdkConfig};
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
