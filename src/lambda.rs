//! Facts about AWS Lambda that every stage builds on: where things live in an image, which
//! environment variables Lambda reserves, its limits, and how functions and roles are named.
//!
//! Part of the ground floor: it imports nothing from a stage, so the config, image, check,
//! emulate, deploy and template stages all agree on these facts by using this one copy.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use crate::target::Arch;

/// Where Lambda's provided runtimes look for the function's executable (a path inside a
/// layer, without the leading `/`).
pub const BOOTSTRAP_PATH: &str = "var/runtime/bootstrap";
/// Lambda's task root, where `include` files go (inside a layer, without the leading `/`).
pub const TASK_ROOT: &str = "var/task";
/// The task root as an absolute path: `LAMBDA_TASK_ROOT` and the default WORKDIR.
pub const TASK_ROOT_DIR: &str = "/var/task";
/// `LAMBDA_RUNTIME_DIR`.
pub const RUNTIME_DIR: &str = "/var/runtime";
/// The working directory an image gets when none is configured.
pub const DEFAULT_WORKDIR: &str = TASK_ROOT_DIR;
/// The ENTRYPOINT of the `provided` base images; it needs exactly one CMD argument (the
/// handler, any string) and then execs `/var/runtime/bootstrap`.
pub const PROVIDED_ENTRYPOINT: &str = "/lambda-entrypoint.sh";
/// The handler name (CMD) given to [`PROVIDED_ENTRYPOINT`] and reported as `_HANDLER`.
pub const DEFAULT_HANDLER: &str = "bootstrap";
/// The day Amazon Linux 2, and with it the `provided.al2` base, reached the end of its standard
/// support.
pub const AL2_END_OF_SUPPORT: &str = "2026-06-30";
/// The base image to move to from `provided.al2`.
pub const AL2023_BASE_IMAGE: &str = "public.ecr.aws/lambda/provided:al2023";
/// `PATH` in Lambda's execution environment (used unless the function sets its own).
pub const PATH: &str = "/usr/local/bin:/usr/bin/:/bin:/opt/bin";

/// Environment variables Lambda reserves: a function's configuration cannot set them, and
/// the emulator sets (or, for credentials, withholds) them itself.
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Whether Lambda reserves an environment variable name.
pub fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name)
}

/// Whether Lambda accepts `name` as an environment variable's name: a letter, then letters,
/// digits and underscores.
pub fn is_valid_env_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Lambda's limit on the uncompressed size of an image, all layers included.
pub const MAX_IMAGE_UNCOMPRESSED: u64 = 10 * 1024 * 1024 * 1024;
/// The largest request or buffered response Lambda accepts: 6 MB.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// The limit Lambda *names* in its oversized-response error, which is 100 bytes more than the
/// request limit; mirrored as is so that tools matching on the message keep working.
pub const RESPONSE_LIMIT_IN_MESSAGE: usize = 6_291_556;
/// Memory in MB.
pub const MEMORY_RANGE: RangeInclusive<u32> = 128..=10240;
/// Timeout in seconds.
pub const TIMEOUT_RANGE: RangeInclusive<u32> = 1..=900;
/// `/tmp` size in MB.
pub const EPHEMERAL_RANGE: RangeInclusive<u32> = 512..=10240;
/// The longest function description Lambda accepts, in characters.
pub const MAX_DESCRIPTION: usize = 256;
/// Lambda's default memory in MB.
pub const DEFAULT_MEMORY: u32 = 128;
/// Lambda's default timeout in seconds.
pub const DEFAULT_TIMEOUT: u32 = 3;
/// Lambda's default `/tmp` size in MB.
pub const DEFAULT_EPHEMERAL_STORAGE: u32 = 512;

/// The Lambda function name of the function configured as `name` for `arch`, among every
/// planned (name, arch) pair: the configured name, with `-<arch>` appended for every
/// architecture but x86_64 when the same name is planned for several architectures (`hello`
/// for x86_64, `hello-arm64` for arm64). Lambda takes one architecture per function, and an
/// image index is never deployed.
///
/// The plan decides this once, among everything planned, so a function's name never depends
/// on whether another architecture of it built.
pub fn function_name_among<'a>(
    name: &str,
    arch: Arch,
    planned: impl IntoIterator<Item = (&'a str, Arch)>,
) -> String {
    let arches: BTreeSet<Arch> = planned
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, a)| a)
        .collect();
    if arches.len() > 1 && arch != Arch::X86_64 {
        format!("{name}-{}", arch.lambda_name())
    } else {
        name.to_string()
    }
}

/// The name of the execution role created for a function: `<function>-lambda-role`, cut to
/// IAM's 64 characters.
pub fn default_role_name(function: &str) -> String {
    const SUFFIX: &str = "-lambda-role";
    let keep = 64 - SUFFIX.len();
    format!(
        "{}{SUFFIX}",
        function.chars().take(keep).collect::<String>()
    )
}

/// The role name and account of a role ARN (`arn:aws:iam::123:role/path/name` ->
/// `("name", "123")`), or `None` when it is not an IAM role ARN.
pub fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    let service = parts.next()?;
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    if service != "iam" || !resource.starts_with("role/") {
        return None;
    }
    Some((resource.rsplit('/').next()?, account))
}

/// The account of an ECR repository URI (`123456789012.dkr.ecr.<region>.amazonaws.com/name`).
pub fn account_of_repository_uri(uri: &str) -> &str {
    uri.split('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_architecture_gets_a_suffix_but_x86_64_keeps_the_name() {
        let planned = [
            ("hello", Arch::X86_64),
            ("hello", Arch::Arm64),
            ("solo", Arch::Arm64),
        ];
        assert_eq!(function_name_among("hello", Arch::X86_64, planned), "hello");
        assert_eq!(
            function_name_among("hello", Arch::Arm64, planned),
            "hello-arm64"
        );
        assert_eq!(function_name_among("solo", Arch::Arm64, planned), "solo");
    }

    #[test]
    fn role_arns_parse_with_paths() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/service/my-role"),
            Some(("my-role", "123456789012"))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/bob"), None);
        assert_eq!(parse_role_arn("my-role"), None);
    }

    #[test]
    fn default_role_names_fit_iam() {
        assert_eq!(default_role_name("hello"), "hello-lambda-role");
        assert_eq!(default_role_name(&"x".repeat(80)).len(), 64);
        assert!(default_role_name(&"x".repeat(80)).ends_with("-lambda-role"));
    }

    #[test]
    fn the_reserved_list_covers_what_the_emulator_sets_and_credentials() {
        for name in [
            "AWS_LAMBDA_RUNTIME_API",
            "_HANDLER",
            "AWS_SECRET_ACCESS_KEY",
            "LAMBDA_TASK_ROOT",
        ] {
            assert!(is_reserved_env(name), "{name}");
        }
        assert!(!is_reserved_env("TZ") && !is_reserved_env("PATH"));
    }
}
