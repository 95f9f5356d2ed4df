//! AWS configuration (profile, region, endpoint, credentials) and turning SDK errors into ours.

use std::fmt::Debug;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::Error;

use super::DeployOptions;

/// Loads the AWS configuration: `opts.sdk_config` if given, else aws-config's default chain
/// (environment, `~/.aws/config` and `credentials`, SSO, process credentials, IMDS) with the
/// profile given. The region is, highest first: `opts.region`, `region` (the function's
/// `deploy.region`), then the profile/environment. `opts.endpoint_url` overrides the endpoint of
/// every service (aws-config also honours `AWS_ENDPOINT_URL` on its own).
pub(crate) async fn load(opts: &DeployOptions, region: Option<&str>) -> SdkConfig {
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
pub(crate) fn code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Turns an SDK error into an [`Error::Aws`] with a hint for the usual causes.
pub(crate) fn error<E, R>(service: &'static str, operation: &str, err: SdkError<E, R>) -> Error
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
