//! Defaults, applied last: from a merged [`LambdaConfig`] to the settings of one (function, arch).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lambda::{self, DEFAULT_EPHEMERAL_STORAGE, DEFAULT_MEMORY, DEFAULT_TIMEOUT};
use crate::target::{Arch, Compiler, GlibcVersion, Libc};

use super::schema::{DeployConfig, EnvValue, ImageConfig, LambdaConfig, UrlConfig};
use super::values::{InvokeMode, LogFormat, TagMutability, Tracing, UrlAuth};

/// The default base image, as DESIGN.md and AWS's own Rust guide use.
pub const DEFAULT_BASE_IMAGE: &str = "public.ecr.aws/lambda/provided:al2";
/// The default image tag template.
pub const DEFAULT_TAG: &str = "{version}-{arch}";

/// What kind of base image a reference is, which decides the image layout and the glibc limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseKind {
    /// `public.ecr.aws/lambda/provided:al2` (glibc 2.26).
    ProvidedAl2,
    /// `public.ecr.aws/lambda/provided:al2023` (glibc 2.34).
    ProvidedAl2023,
    /// An empty image: the bootstrap is the entrypoint; only static binaries run.
    Scratch,
    /// Any other reference: its glibc is unknown.
    Other,
}

/// The resolved base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseImage {
    /// The reference as configured (`scratch` for an empty base).
    pub reference: String,
    /// What it is.
    pub kind: BaseKind,
    /// The newest glibc the base provides, where known (`None` for scratch: no glibc at all).
    pub glibc: Option<GlibcVersion>,
    /// Whether it is [`DEFAULT_BASE_IMAGE`] because nothing chose a base (no metadata, no
    /// environment, no `--base-image`).
    #[serde(skip)]
    pub defaulted: bool,
}

impl BaseImage {
    /// Classifies a reference. Tags of the `provided` repository that name al2 or al2023
    /// (including the per-arch tags such as `al2.2024.01.01-arm64`) count as such.
    pub fn from_reference(reference: &str) -> BaseImage {
        let (kind, glibc) = if reference == "scratch" {
            (BaseKind::Scratch, None)
        } else if let Some(tag) = provided_tag(reference) {
            if tag.starts_with("al2023") {
                (
                    BaseKind::ProvidedAl2023,
                    Some(GlibcVersion {
                        major: 2,
                        minor: 34,
                    }),
                )
            } else if tag.starts_with("al2") || tag == "latest" {
                (
                    BaseKind::ProvidedAl2,
                    Some(GlibcVersion {
                        major: 2,
                        minor: 26,
                    }),
                )
            } else {
                (BaseKind::Other, None)
            }
        } else {
            (BaseKind::Other, None)
        };
        BaseImage {
            reference: reference.to_string(),
            kind,
            glibc,
            defaulted: false,
        }
    }

    /// Whether this base runs `/lambda-entrypoint.sh` and expects the handler as CMD.
    pub fn is_provided(&self) -> bool {
        matches!(self.kind, BaseKind::ProvidedAl2 | BaseKind::ProvidedAl2023)
    }
}

/// The tag of a `.../lambda/provided:<tag>` reference (digests and registries ignored).
fn provided_tag(reference: &str) -> Option<&str> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let (repo, tag) = without_digest.rsplit_once(':')?;
    (repo.ends_with("lambda/provided") && !tag.contains('/')).then_some(tag)
}

/// Resolved image settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSettings {
    /// Repository name.
    pub repository: String,
    /// The tag, with its template rendered.
    pub tag: String,
    /// ENTRYPOINT, if configured. Otherwise the base's is kept, or for a base without one
    /// (scratch) it is `/var/runtime/bootstrap`; see [`crate::image`].
    pub entrypoint: Option<Vec<String>>,
    /// CMD, if configured. Otherwise `["bootstrap"]` under provided.*'s
    /// `/lambda-entrypoint.sh`, which needs exactly one argument.
    pub command: Option<Vec<String>>,
    /// WORKDIR.
    pub workdir: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Extra files.
    pub include: Vec<String>,
    /// The binaries shipped as Lambda extensions at `/opt/extensions/<name>`, by name, sorted
    /// (the image is the same whatever order the manifest lists them in).
    pub extensions: Vec<String>,
    /// Write an SPDX SBOM of the binary next to the image (and attach it when pushed).
    pub sbom: bool,
}

impl ImageSettings {
    /// Whether the configuration sets what the image runs (entrypoint, command or a working
    /// directory other than the task root); deploys and templates then send Lambda an
    /// `ImageConfig`.
    pub fn overrides_launch(&self) -> bool {
        self.entrypoint.is_some()
            || self.command.is_some()
            || self.workdir != lambda::DEFAULT_WORKDIR
    }
}

/// Resolved deploy settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploySettings {
    /// Region, if configured.
    pub region: Option<String>,
    /// Publish a version.
    pub publish: bool,
    /// Alias to move.
    pub alias: Option<String>,
    /// Accounts allowed to pull.
    pub cross_account: Vec<String>,
    /// ECR scan on push.
    pub scan_on_push: bool,
    /// ECR tag mutability.
    pub tag_mutability: TagMutability,
    /// X-Ray tracing.
    pub tracing: Tracing,
    /// KMS key ARN for the environment (`None`: Lambda's own key).
    pub kms_key: Option<String>,
    /// Reserved concurrent executions (`None`: the account's unreserved pool).
    pub reserved_concurrency: Option<u32>,
    /// The VPC, if any.
    pub vpc: Option<VpcSettings>,
    /// Log format, levels and group.
    pub logging: LoggingSettings,
    /// The dead-letter queue or topic ARN.
    pub dead_letter: Option<String>,
    /// The EFS access point and where it is mounted.
    pub file_system: Option<FileSystemSettings>,
    /// Asynchronous invocation settings, when any is set.
    pub async_invoke: Option<AsyncSettings>,
    /// The Function URL, if wanted.
    pub url: Option<UrlSettings>,
    /// Provisioned concurrency on the alias.
    pub provisioned_concurrency: Option<u32>,
    /// Images the ECR lifecycle policy keeps besides those in use (`None`: no policy).
    pub ecr_keep: Option<u32>,
    /// SnapStart on published versions (and the restore lifecycle when run locally).
    pub snap_start: bool,
    /// One execution environment per tenant.
    pub tenant_isolation: bool,
    /// Lambda Managed Instances, when the function runs on them.
    pub managed_instances: Option<ManagedInstancesSettings>,
}

/// Resolved `deploy.managed-instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedInstancesSettings {
    /// Requests one execution environment serves at once (`None`: Lambda's default).
    pub max_concurrency: Option<u32>,
}

impl ManagedInstancesSettings {
    /// What Lambda uses for a Rust function when `max-concurrency` is unset: 8 requests per
    /// vCPU, for the one vCPU of the smallest environment (2 GiB at 2 GiB per vCPU).
    pub const RUST_DEFAULT_CONCURRENCY: u32 = 8;

    /// The requests one environment serves at once, defaulted as Lambda does for Rust.
    pub fn concurrency(&self) -> u32 {
        self.max_concurrency
            .unwrap_or(Self::RUST_DEFAULT_CONCURRENCY)
    }
}

/// Resolved `deploy.logging` (unset levels and group are Lambda's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoggingSettings {
    /// `Text` or `JSON`.
    pub format: LogFormat,
    /// The function's own lowest level (JSON only).
    pub application_level: Option<String>,
    /// Lambda's platform logs' lowest level (JSON only).
    pub system_level: Option<String>,
    /// The log group (default `/aws/lambda/<function>`).
    pub log_group: Option<String>,
}

/// Resolved `deploy.file-system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSystemSettings {
    /// The EFS access point ARN.
    pub arn: String,
    /// `/mnt/<name>`.
    pub mount_path: String,
}

/// Resolved `deploy.async` (unset values are Lambda's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AsyncSettings {
    /// Retries, 0 to 2.
    pub max_retries: Option<u32>,
    /// Maximum event age in seconds.
    pub max_event_age: Option<u32>,
    /// Destination of successes.
    pub on_success: Option<String>,
    /// Destination of failures.
    pub on_failure: Option<String>,
}

/// Resolved `deploy.url`: a Function URL, Lambda's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlSettings {
    /// Who may call it (default `AWS_IAM`).
    pub auth: UrlAuth,
    /// How it answers (default `BUFFERED`).
    pub invoke_mode: InvokeMode,
    /// CORS, when set.
    pub cors: Option<CorsSettings>,
}

/// Resolved `deploy.url.cors`: lists sorted (Lambda returns them in its own order), unset
/// lists empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CorsSettings {
    /// Allowed origins.
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the browser.
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached (`None`: Lambda's default).
    pub max_age: Option<u32>,
    /// Whether cookies and credentials are allowed.
    pub allow_credentials: bool,
}

/// Resolved `deploy.vpc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpcSettings {
    /// Subnet IDs.
    pub subnets: Vec<String>,
    /// Security group IDs.
    pub security_groups: Vec<String>,
    /// IPv6 in dual-stack subnets.
    pub ipv6_dual_stack: bool,
}

/// Resolved local-test settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSettings {
    /// Event files or globs, relative to the package.
    pub events: Vec<String>,
}

/// A function's own settings: what its image and Lambda get. The same for every architecture
/// but for the tag, which a [`super::FunctionSpec`] holds rendered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionSettings {
    /// Memory in MB.
    pub memory: u32,
    /// Timeout in seconds.
    pub timeout: u32,
    /// /tmp size in MB.
    pub ephemeral_storage: u32,
    /// Description (empty: none).
    pub description: String,
    /// IAM role ARN.
    pub role: Option<String>,
    /// Function environment, the values written in the manifest.
    pub env: BTreeMap<String, String>,
    /// Function variables read from this machine's environment: function variable to the
    /// variable that holds its value (`{ from-env = "NAME" }`).
    pub env_from: BTreeMap<String, String>,
    /// Function tags.
    pub tags: BTreeMap<String, String>,
    /// Image settings.
    pub image: ImageSettings,
    /// Deploy settings.
    pub deploy: DeploySettings,
    /// Test settings.
    pub test: TestSettings,
}

/// Everything the tables say of a binary once merged and defaulted: how it is selected and
/// built, and its own settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Lambda function name.
    pub function_name: String,
    /// Architectures to build.
    pub arches: Vec<Arch>,
    /// C library.
    pub libc: Libc,
    /// Compiler backend.
    pub compiler: Compiler,
    /// The image `cross` compiles in, per target triple.
    pub cross_image: BTreeMap<String, String>,
    /// Base image.
    pub base_image: BaseImage,
    /// Whether the binary is a Lambda extension (`extension = true`), never a function.
    pub extension: bool,
    /// The function's own settings (tag not yet rendered: it depends on the arch).
    pub function: FunctionSettings,
}

impl std::ops::Deref for Settings {
    type Target = FunctionSettings;

    fn deref(&self) -> &FunctionSettings {
        &self.function
    }
}

/// The `env` entries whose value is written in the manifest.
fn literal_env(env: Option<&BTreeMap<String, EnvValue>>) -> BTreeMap<String, String> {
    env.into_iter()
        .flatten()
        .filter_map(|(k, v)| match v {
            EnvValue::Literal(value) => Some((k.clone(), value.clone())),
            EnvValue::FromEnv { .. } => None,
        })
        .collect()
}

/// Applies the defaults to a merged configuration.
pub fn apply_defaults(config: LambdaConfig, bin: &str) -> Settings {
    let function_name = config.function_name.unwrap_or_else(|| bin.to_string());
    let base_image = match config.base_image.as_deref() {
        Some(reference) => BaseImage::from_reference(reference),
        None => BaseImage {
            defaulted: true,
            ..BaseImage::from_reference(DEFAULT_BASE_IMAGE)
        },
    };
    let image = config.image.unwrap_or_default();
    let deploy = config.deploy.unwrap_or_default();
    let function = FunctionSettings {
        memory: config.memory.unwrap_or(DEFAULT_MEMORY),
        timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
        ephemeral_storage: config
            .ephemeral_storage
            .unwrap_or(DEFAULT_EPHEMERAL_STORAGE),
        description: config.description.unwrap_or_default(),
        role: config.role,
        env: literal_env(config.env.as_ref()),
        env_from: config
            .env
            .iter()
            .flatten()
            .filter_map(|(k, v)| match v {
                EnvValue::FromEnv { from_env } => Some((k.clone(), from_env.clone())),
                EnvValue::Literal(_) => None,
            })
            .collect(),
        tags: config.tags.unwrap_or_default(),
        image: image_settings(image, &function_name),
        deploy: deploy_settings(deploy),
        test: TestSettings {
            events: config.test.and_then(|t| t.events).unwrap_or_default(),
        },
    };
    Settings {
        arches: config
            .arch
            .map(|a| a.to_vec())
            .unwrap_or_else(|| vec![Arch::X86_64]),
        libc: config.libc.unwrap_or_default(),
        compiler: config.compiler.unwrap_or_default(),
        cross_image: config.cross_image.unwrap_or_default(),
        extension: config.extension.unwrap_or(false),
        function_name,
        base_image,
        function,
    }
}

/// `image`, defaulted.
fn image_settings(image: ImageConfig, function_name: &str) -> ImageSettings {
    ImageSettings {
        // Registries (ECR, Docker) allow lowercase repository names only.
        repository: image
            .repository
            .unwrap_or_else(|| function_name.to_lowercase()),
        tag: image.tag.unwrap_or_else(|| DEFAULT_TAG.to_string()),
        entrypoint: image.entrypoint,
        command: image.command,
        workdir: image
            .workdir
            .unwrap_or_else(|| lambda::DEFAULT_WORKDIR.to_string()),
        labels: image.labels.unwrap_or_default(),
        include: image.include.unwrap_or_default(),
        extensions: {
            let mut names = image.extensions.unwrap_or_default();
            names.sort();
            names.dedup();
            names
        },
        sbom: image.sbom.unwrap_or(false),
    }
}

/// `deploy` and its tables, defaulted: unset values that Lambda defaults stay `None` (a
/// deploy then resets them), the rest get this tool's defaults.
fn deploy_settings(deploy: DeployConfig) -> DeploySettings {
    DeploySettings {
        region: deploy.region,
        publish: deploy.publish.unwrap_or(false),
        alias: deploy.alias,
        cross_account: deploy.cross_account.unwrap_or_default(),
        scan_on_push: deploy.scan_on_push.unwrap_or(false),
        tag_mutability: deploy.tag_mutability.unwrap_or_default(),
        tracing: deploy.tracing.unwrap_or_default(),
        kms_key: deploy.kms_key,
        reserved_concurrency: deploy.reserved_concurrency,
        vpc: deploy.vpc.map(|v| VpcSettings {
            subnets: v.subnets.unwrap_or_default(),
            security_groups: v.security_groups.unwrap_or_default(),
            ipv6_dual_stack: v.ipv6_dual_stack.unwrap_or(false),
        }),
        logging: deploy
            .logging
            .map(|l| LoggingSettings {
                format: l.format.unwrap_or_default(),
                application_level: l.application_level,
                system_level: l.system_level,
                log_group: l.log_group,
            })
            .unwrap_or_default(),
        dead_letter: deploy.dead_letter,
        file_system: deploy.file_system.map(|f| FileSystemSettings {
            arn: f.arn.unwrap_or_default(),
            mount_path: f.mount_path.unwrap_or_default(),
        }),
        url: deploy.url.map(url_settings),
        provisioned_concurrency: deploy.provisioned_concurrency,
        ecr_keep: deploy.ecr.and_then(|e| e.keep),
        snap_start: deploy.snap_start.unwrap_or(false),
        tenant_isolation: deploy.tenant_isolation.unwrap_or(false),
        managed_instances: deploy.managed_instances.map(|m| ManagedInstancesSettings {
            max_concurrency: m.max_concurrency,
        }),
        async_invoke: deploy.async_.map(|a| AsyncSettings {
            max_retries: a.max_retries,
            max_event_age: a.max_event_age,
            on_success: a.on_success,
            on_failure: a.on_failure,
        }),
    }
}

/// `deploy.url`, with Lambda's defaults and its CORS lists sorted (Lambda reports them in an
/// order of its own).
fn url_settings(url: UrlConfig) -> UrlSettings {
    let sorted = |list: Option<Vec<String>>| {
        let mut list = list.unwrap_or_default();
        list.sort();
        list
    };
    UrlSettings {
        auth: url.auth.unwrap_or_default(),
        invoke_mode: url.invoke_mode.unwrap_or_default(),
        cors: url.cors.map(|c| CorsSettings {
            allow_origins: sorted(c.allow_origins),
            allow_methods: sorted(c.allow_methods),
            allow_headers: sorted(c.allow_headers),
            expose_headers: sorted(c.expose_headers),
            max_age: c.max_age,
            allow_credentials: c.allow_credentials.unwrap_or(false),
        }),
    }
}

/// Refuses a function whose rendered tag is not an OCI tag (too long, say, or a version with
/// characters a tag cannot have), before anything is built or uploaded.
pub fn check_tag(f: &super::FunctionSpec, manifest: &std::path::Path) -> crate::error::Result<()> {
    if super::schema::is_tag(&f.image.tag) {
        return Ok(());
    }
    Err(crate::error::Error::InvalidValue {
        source_: Box::new(crate::error::Source::Manifest {
            path: manifest.to_path_buf(),
            table: "package.metadata.lambda".into(),
        }),
        key: "image.tag".into(),
        message: format!(
            "the tag of `{}` ({}) would be `{}`, which is not a tag",
            f.name, f.arch, f.image.tag
        ),
        help: "a tag is letters, digits, `_`, `.` and `-`, at most 128 of them, and does not start with `.` or `-`".into(),
    })
}

/// Checks that need the merged settings, since their keys may come from different tables (the
/// workspace's VPC, a package's file system): a file system needs a VPC, and so on.
pub fn check_merged(settings: &Settings, manifest: &std::path::Path) -> crate::error::Result<()> {
    let invalid = |key: &str, message: String, help: &str| crate::error::Error::InvalidValue {
        source_: Box::new(crate::error::Source::Manifest {
            path: manifest.to_path_buf(),
            table: "package.metadata.lambda".into(),
        }),
        key: key.into(),
        message,
        help: help.into(),
    };
    let name = &settings.function_name;
    let deploy = &settings.deploy;
    if deploy.file_system.is_some() && deploy.vpc.is_none() {
        return Err(invalid(
            "deploy.file-system",
            format!("the function `{name}` mounts a file system but is in no VPC"),
            "Lambda reaches EFS through a VPC: add [package.metadata.lambda.deploy.vpc] with subnets and security groups that reach the file system's mount targets",
        ));
    }
    if let Some(keep) = deploy.ecr_keep {
        if (keep as usize) < settings.arches.len() {
            return Err(invalid(
                "deploy.ecr.keep",
                format!(
                    "{keep} image(s) for {} architectures sharing the repository of `{name}`",
                    settings.arches.len()
                ),
                &format!(
                    "keep at least {} (one current image per architecture)",
                    settings.arches.len()
                ),
            ));
        }
    }
    if deploy.provisioned_concurrency.is_some() && deploy.alias.is_none() {
        return Err(invalid(
            "deploy.provisioned-concurrency",
            format!("the function `{name}` asks for provisioned concurrency but has no alias"),
            "provisioned concurrency is kept for the version an alias points at: add `deploy.alias = \"live\"`",
        ));
    }
    if let Some((key, other, reason)) = refused_combination(deploy) {
        return Err(invalid(
            key,
            format!("the function `{name}` sets both `{key}` and `{other}`, which Lambda refuses: {reason}"),
            &format!("remove one of `{key}` and `{other}`"),
        ));
    }
    Ok(())
}

/// The first pair of execution-model settings Lambda does not accept together, with the
/// limitation Lambda documents for it.
fn refused_combination(
    deploy: &DeploySettings,
) -> Option<(&'static str, &'static str, &'static str)> {
    let tenants = deploy.tenant_isolation;
    if tenants && deploy.snap_start {
        return Some((
            "deploy.tenant-isolation",
            "deploy.snap-start",
            "tenant isolation mode does not support SnapStart",
        ));
    }
    if tenants && deploy.url.is_some() {
        return Some((
            "deploy.tenant-isolation",
            "deploy.url",
            "tenant isolation mode does not support Function URLs",
        ));
    }
    if tenants && deploy.provisioned_concurrency.is_some() {
        return Some((
            "deploy.tenant-isolation",
            "deploy.provisioned-concurrency",
            "tenant isolation mode does not support provisioned concurrency",
        ));
    }
    if deploy.snap_start && deploy.managed_instances.is_some() {
        return Some((
            "deploy.snap-start",
            "deploy.managed-instances",
            "SnapStart is not supported on Lambda Managed Instances",
        ));
    }
    None
}

/// Renders a tag template: `{version}`, `{arch}`, `{function}` and `{package}`.
pub fn render_tag(
    template: &str,
    version: &str,
    arch: Arch,
    function: &str,
    package: &str,
) -> String {
    // Docker tags allow [A-Za-z0-9_.-]; semver build metadata uses `+`, which would not do.
    template
        .replace("{version}", &version.replace('+', "_"))
        .replace("{arch}", arch.lambda_name())
        .replace("{function}", function)
        .replace("{package}", package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_base_images() {
        let k = |r| BaseImage::from_reference(r).kind;
        assert_eq!(
            k("public.ecr.aws/lambda/provided:al2"),
            BaseKind::ProvidedAl2
        );
        assert_eq!(
            k("public.ecr.aws/lambda/provided:al2023"),
            BaseKind::ProvidedAl2023
        );
        assert_eq!(
            k("public.ecr.aws/lambda/provided:al2.2024.01.05-arm64"),
            BaseKind::ProvidedAl2
        );
        assert_eq!(
            k("127.0.0.1:5000/lambda/provided:al2023"),
            BaseKind::ProvidedAl2023
        );
        assert_eq!(k("scratch"), BaseKind::Scratch);
        assert_eq!(k("127.0.0.1:5000/other:al2"), BaseKind::Other);
        let glibc = BaseImage::from_reference(DEFAULT_BASE_IMAGE).glibc.unwrap();
        assert_eq!(glibc.to_string(), "2.26");
    }

    #[test]
    fn a_base_is_defaulted_only_when_nothing_chose_one() {
        let s = apply_defaults(LambdaConfig::default(), "echo");
        assert!(s.base_image.defaulted);
        assert_eq!(s.base_image.reference, DEFAULT_BASE_IMAGE);
        // Chosen explicitly, even the default base is not defaulted.
        let chosen = LambdaConfig {
            base_image: Some(DEFAULT_BASE_IMAGE.to_string()),
            ..LambdaConfig::default()
        };
        let s = apply_defaults(chosen, "echo");
        assert!(!s.base_image.defaulted);
        assert_eq!(s.base_image, BaseImage::from_reference(DEFAULT_BASE_IMAGE));
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = apply_defaults(LambdaConfig::default(), "echo");
        assert_eq!(s.function_name, "echo");
        assert_eq!(s.arches, vec![Arch::X86_64]);
        assert_eq!((s.libc, s.compiler), (Libc::Musl, Compiler::Cargo));
        assert_eq!((s.memory, s.timeout, s.ephemeral_storage), (128, 3, 512));
        assert_eq!(s.image.repository, "echo");
        assert_eq!((&s.image.entrypoint, &s.image.command), (&None, &None));
    }

    #[test]
    fn a_file_system_without_a_vpc_is_refused_with_the_fix() {
        let config: LambdaConfig = serde_json::from_value(serde_json::json!({"deploy": {
            "file-system": {"arn": "arn:aws:elasticfilesystem:eu-west-1:1:access-point/a",
                            "mount-path": "/mnt/data"}}}))
        .unwrap();
        let mut settings = apply_defaults(config, "orders");
        let err = check_merged(&settings, std::path::Path::new("/w/Cargo.toml")).unwrap_err();
        match &err {
            crate::error::Error::InvalidValue { key, help, .. } => {
                assert_eq!(key, "deploy.file-system");
                assert!(help.contains("deploy.vpc"), "{help}");
            }
            other => panic!("expected an invalid value, got {other:?}"),
        }
        settings.function.deploy.vpc = Some(VpcSettings {
            subnets: vec!["subnet-a".into()],
            security_groups: vec!["sg-a".into()],
            ipv6_dual_stack: false,
        });
        check_merged(&settings, std::path::Path::new("/w/Cargo.toml")).unwrap();
    }

    #[test]
    fn tag_template_is_rendered() {
        assert_eq!(
            render_tag("{version}-{arch}", "1.2.3+g1", Arch::Arm64, "f", "p"),
            "1.2.3_g1-arm64"
        );
        assert_eq!(
            render_tag("{package}/{function}", "1", Arch::X86_64, "f", "p"),
            "p/f"
        );
    }
}
