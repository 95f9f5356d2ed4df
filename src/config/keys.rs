//! Every key of `[package.metadata.lambda]` (and of `[workspace.metadata.lambda]` and the
//! `bin.<name>` tables), defined once: its path, the kind of value it takes with an example,
//! its range, its default, one line on what it does, and the Lambda API and CloudFormation
//! fields it sets. From this table come the keys each table accepts (and their did-you-mean),
//! the examples of type errors, the range checks, the `CARGO_LAMBDA_IMAGE_*` variables, and
//! the README's key table (checked against it by a test). The typed tables of
//! [`super::schema`] must match it, which a test checks too.

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value (string, number, boolean or list).
    Value,
    /// A table of the keys defined under this one.
    Table,
    /// A table of free names (env variables, tags, labels, targets, binaries).
    Map,
}

/// One key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its dotted path, e.g. `deploy.vpc.subnets`.
    pub path: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// An example value, as JSON (TOML reads the same for these).
    pub example: &'static str,
    /// For numbers: the range accepted, and its unit (`""`: none).
    pub range: Option<(u32, u32, &'static str)>,
    /// Its default, as people read it (`""`: none).
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// The Lambda (or ECR) API field or call it sets (`""`: none).
    pub lambda: &'static str,
    /// The CloudFormation property it becomes in `template` (`""`: none).
    pub cloudformation: &'static str,
    /// The environment variable that sets it too, if any.
    pub env: Option<&'static str>,
}

const fn key(path: &'static str, example: &'static str, doc: &'static str) -> Key {
    Key {
        path,
        kind: Kind::Value,
        example,
        range: None,
        default: "",
        doc,
        lambda: "",
        cloudformation: "",
        env: None,
    }
}

impl Key {
    const fn table(mut self) -> Key {
        self.kind = Kind::Table;
        self
    }

    const fn map(mut self) -> Key {
        self.kind = Kind::Map;
        self
    }

    const fn range(mut self, low: u32, high: u32, unit: &'static str) -> Key {
        self.range = Some((low, high, unit));
        self
    }

    const fn default(mut self, default: &'static str) -> Key {
        self.default = default;
        self
    }

    const fn api(mut self, lambda: &'static str, cloudformation: &'static str) -> Key {
        self.lambda = lambda;
        self.cloudformation = cloudformation;
        self
    }

    const fn env(mut self, var: &'static str) -> Key {
        self.env = Some(var);
        self
    }

    /// The range as people read it, e.g. `128..=10240 MB`, if the key has one.
    pub fn range_text(&self) -> Option<String> {
        self.range.map(|(low, high, unit)| {
            if unit.is_empty() {
                format!("{low}..={high}")
            } else {
                format!("{low}..={high} {unit}")
            }
        })
    }

    /// The table it is in (`""` for the top level) and its own name.
    pub fn split(&self) -> (&'static str, &'static str) {
        match self.path.rsplit_once('.') {
            Some((table, name)) => (table, name),
            None => ("", self.path),
        }
    }
}

/// Every key, each table before the keys in it.
pub const KEYS: &[Key] = &[
    key("function-name", r#""orders-api""#, "the Lambda function's name")
        .default("the binary's name")
        .api("FunctionName", "FunctionName"),
    key("arch", r#"["x86_64", "arm64"]"#, "the architectures, one function each")
        .default("\"x86_64\"")
        .api("Architectures", "Architectures")
        .env("CARGO_LAMBDA_IMAGE_ARCH"),
    key("libc", r#""musl""#, "the C library: \"musl\" (static) or \"gnu\"")
        .default("\"musl\"")
        .env("CARGO_LAMBDA_IMAGE_LIBC"),
    key("compiler", r#""cargo""#, "the compiler: \"cargo\", \"zigbuild\" or \"cross\"")
        .default("\"cargo\"")
        .env("CARGO_LAMBDA_IMAGE_COMPILER"),
    key(
        "cross-image",
        r#"{"aarch64-unknown-linux-gnu": "local/cross:1"}"#,
        "the image cross compiles a target in, by target triple",
    )
    .map(),
    key(
        "base-image",
        r#""public.ecr.aws/lambda/provided:al2023""#,
        "the base image: a reference, scratch, oci:DIR, docker-archive:FILE or docker-daemon:IMAGE",
    )
    .default("public.ecr.aws/lambda/provided:al2")
    .env("CARGO_LAMBDA_IMAGE_BASE_IMAGE"),
    key("memory", "512", "memory")
        .range(128, 10240, "MB")
        .default("128")
        .api("MemorySize", "MemorySize")
        .env("CARGO_LAMBDA_IMAGE_MEMORY"),
    key("timeout", "30", "the invocation timeout")
        .range(1, 900, "seconds")
        .default("3")
        .api("Timeout", "Timeout")
        .env("CARGO_LAMBDA_IMAGE_TIMEOUT"),
    key("ephemeral-storage", "1024", "the size of /tmp")
        .range(512, 10240, "MB")
        .default("512")
        .api("EphemeralStorage.Size", "EphemeralStorage.Size")
        .env("CARGO_LAMBDA_IMAGE_EPHEMERAL_STORAGE"),
    key("description", r#""Orders API""#, "the function's description, up to 256 characters")
        .api("Description", "Description"),
    key("role", r#""arn:aws:iam::123456789012:role/orders""#, "the execution role's ARN")
        .default("<function>-lambda-role, created")
        .api("Role", "Role")
        .env("CARGO_LAMBDA_IMAGE_ROLE"),
    key(
        "env",
        r#"{"LOG_LEVEL": "info", "DB_URL": {"from-env": "DB_URL"}}"#,
        "environment variables: a value, or { from-env = \"NAME\" } read when deploying or running",
    )
    .map()
    .api("Environment.Variables", "Environment.Variables"),
    key("tags", r#"{"team": "orders"}"#, "the function's tags")
        .map()
        .api("Tags (TagResource)", "Tags"),
    key(
        "extension",
        "true",
        "the binaries are Lambda extensions, not functions: built only into the images of the functions that name them in image.extensions",
    )
    .default("false"),
    key("image", "{}", "how the image is assembled and named").table(),
    key("image.repository", r#""orders-api""#, "the repository's name")
        .default("the function's name, lowercased"),
    key("image.tag", r#""{version}-{arch}""#, "the tag, with {version}, {arch}, {function} and {package}")
        .default("\"{version}-{arch}\""),
    key("image.entrypoint", r#"["/var/runtime/bootstrap"]"#, "the image's ENTRYPOINT")
        .default("the base's, or the bootstrap")
        .api("ImageConfig.EntryPoint", "ImageConfig.EntryPoint"),
    key("image.command", r#"["bootstrap"]"#, "the image's CMD")
        .default("[\"bootstrap\"] under provided bases")
        .api("ImageConfig.Command", "ImageConfig.Command"),
    key("image.workdir", r#""/var/task""#, "the image's WORKDIR")
        .default("\"/var/task\"")
        .api("ImageConfig.WorkingDirectory", "ImageConfig.WorkingDirectory"),
    key("image.labels", r#"{"org.opencontainers.image.source": "https://example.com"}"#, "OCI labels")
        .map(),
    key("image.include", r#"["config/"]"#, "files or directories copied under /var/task"),
    key(
        "image.extensions",
        r#"["telemetry"]"#,
        "binaries of the workspace built for the function's target and installed at /opt/extensions/<name>, each in a layer of its own under the bootstrap's",
    ),
    key("image.sbom", "true", "write (and on push attach) an SPDX SBOM").default("false"),
    key("deploy", "{}", "where and how the function is deployed").table(),
    key("deploy.region", r#""eu-west-1""#, "the AWS region")
        .default("AWS_REGION, the profile's"),
    key("deploy.publish", "true", "publish a version on each deploy")
        .default("false")
        .api("PublishVersion", "AWS::Lambda::Version"),
    key("deploy.alias", r#""live""#, "the alias moved to the published version")
        .api("CreateAlias, UpdateAlias", ""),
    key("deploy.cross-account", r#"["123456789012"]"#, "accounts allowed to pull the image")
        .api("ECR SetRepositoryPolicy", ""),
    key("deploy.scan-on-push", "true", "ECR scans new images")
        .default("false")
        .api("ECR ImageScanningConfiguration", ""),
    key("deploy.tag-mutability", r#""IMMUTABLE""#, "whether ECR tags may move: \"MUTABLE\" or \"IMMUTABLE\"")
        .default("\"MUTABLE\"")
        .api("ECR ImageTagMutability", ""),
    key("deploy.tracing", r#""Active""#, "X-Ray tracing: \"Active\" or \"PassThrough\"")
        .default("\"PassThrough\"")
        .api("TracingConfig.Mode", "TracingConfig.Mode"),
    key(
        "deploy.kms-key",
        r#""arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab""#,
        "the KMS key that encrypts the environment",
    )
    .default("Lambda's own key")
    .api("KMSKeyArn", "KmsKeyArn"),
    key("deploy.reserved-concurrency", "10", "concurrent executions reserved (0 stops every invocation); unset: DeleteFunctionConcurrency")
        .default("none reserved")
        .api("PutFunctionConcurrency", "ReservedConcurrentExecutions"),
    key("deploy.vpc", "{}", "the VPC the function's interfaces join").table(),
    key("deploy.vpc.subnets", r#"["subnet-0abc"]"#, "subnet IDs, 1 to 16")
        .api("VpcConfig.SubnetIds", "VpcConfig.SubnetIds"),
    key("deploy.vpc.security-groups", r#"["sg-0abc"]"#, "security group IDs, 1 to 5")
        .api("VpcConfig.SecurityGroupIds", "VpcConfig.SecurityGroupIds"),
    key("deploy.vpc.ipv6-dual-stack", "false", "IPv6 in dual-stack subnets")
        .default("false")
        .api("VpcConfig.Ipv6AllowedForDualStack", "VpcConfig.Ipv6AllowedForDualStack"),
    key("deploy.logging", "{}", "log format, levels and group").table(),
    key("deploy.logging.format", r#""JSON""#, "\"JSON\" or \"Text\"")
        .default("\"Text\"")
        .api("LoggingConfig.LogFormat", "LoggingConfig.LogFormat"),
    key("deploy.logging.application-level", r#""INFO""#, "the function's lowest level, JSON only: TRACE..FATAL")
        .api("LoggingConfig.ApplicationLogLevel", "LoggingConfig.ApplicationLogLevel"),
    key("deploy.logging.system-level", r#""WARN""#, "Lambda's lowest level, JSON only: DEBUG, INFO, WARN")
        .api("LoggingConfig.SystemLogLevel", "LoggingConfig.SystemLogLevel"),
    key("deploy.logging.log-group", r#""/orders/api""#, "the log group")
        .default("/aws/lambda/<function>")
        .api("LoggingConfig.LogGroup", "LoggingConfig.LogGroup"),
    key(
        "deploy.dead-letter",
        r#""arn:aws:sqs:eu-west-1:123456789012:orders-dlq""#,
        "the SQS queue or SNS topic for events that failed every attempt",
    )
    .api("DeadLetterConfig.TargetArn", "DeadLetterConfig.TargetArn"),
    key("deploy.file-system", "{}", "an EFS access point mounted in the function (needs deploy.vpc)")
        .table(),
    key(
        "deploy.file-system.arn",
        r#""arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-0123456789abcdef0""#,
        "the access point's ARN",
    )
    .api("FileSystemConfigs.Arn", "FileSystemConfigs.Arn"),
    key("deploy.file-system.mount-path", r#""/mnt/data""#, "where it is mounted: /mnt/<name>")
        .api("FileSystemConfigs.LocalMountPath", "FileSystemConfigs.LocalMountPath"),
    key("deploy.async", "{}", "what happens to asynchronous invocations").table(),
    key("deploy.async.max-retries", "0", "retries after a function error")
        .range(0, 2, "")
        .default("2")
        .api("PutFunctionEventInvokeConfig MaximumRetryAttempts", "MaximumRetryAttempts"),
    key("deploy.async.max-event-age", "3600", "how long an event may wait")
        .range(60, 21600, "seconds")
        .default("21600")
        .api("MaximumEventAgeInSeconds", "MaximumEventAgeInSeconds"),
    key("deploy.async.on-success", r#""arn:aws:events:eu-west-1:123456789012:event-bus/default""#, "where successes go: SQS, SNS, Lambda or EventBridge")
        .api("DestinationConfig.OnSuccess", "DestinationConfig.OnSuccess"),
    key("deploy.async.on-failure", r#""arn:aws:sqs:eu-west-1:123456789012:orders-failures""#, "where failures go")
        .api("DestinationConfig.OnFailure", "DestinationConfig.OnFailure"),
    key("deploy.url", "{}", "a Function URL, on the alias if there is one").table(),
    key("deploy.url.auth", r#""NONE""#, "\"AWS_IAM\" or \"NONE\" (public, with the two permissions it needs)")
        .default("\"AWS_IAM\"")
        .api("CreateFunctionUrlConfig AuthType", "AuthType"),
    key("deploy.url.invoke-mode", r#""RESPONSE_STREAM""#, "\"BUFFERED\" or \"RESPONSE_STREAM\"")
        .default("\"BUFFERED\"")
        .api("InvokeMode", "InvokeMode"),
    key("deploy.url.cors", "{}", "the URL's CORS").table().api("Cors", "Cors"),
    key("deploy.url.cors.allow-origins", r#"["https://example.com"]"#, "allowed origins")
        .api("Cors.AllowOrigins", "Cors.AllowOrigins"),
    key("deploy.url.cors.allow-methods", r#"["GET"]"#, "allowed methods")
        .api("Cors.AllowMethods", "Cors.AllowMethods"),
    key("deploy.url.cors.allow-headers", r#"["content-type"]"#, "allowed request headers")
        .api("Cors.AllowHeaders", "Cors.AllowHeaders"),
    key("deploy.url.cors.expose-headers", r#"["x-request-id"]"#, "response headers shown to the browser")
        .api("Cors.ExposeHeaders", "Cors.ExposeHeaders"),
    key("deploy.url.cors.max-age", "300", "how long a preflight answer may be cached")
        .range(0, 86400, "seconds")
        .api("Cors.MaxAge", "Cors.MaxAge"),
    key("deploy.url.cors.allow-credentials", "true", "whether cookies and credentials are allowed")
        .default("false")
        .api("Cors.AllowCredentials", "Cors.AllowCredentials"),
    key("deploy.provisioned-concurrency", "2", "environments kept initialized for the alias, waited for (needs deploy.alias); unset: DeleteProvisionedConcurrencyConfig")
        .api("PutProvisionedConcurrencyConfig", ""),
    key("deploy.snap-start", "true", "SnapStart: published versions start from a snapshot taken after init; test, serve and watch run the restore lifecycle")
        .default("false")
        .api("SnapStart.ApplyOn", "SnapStart.ApplyOn"),
    key("deploy.tenant-isolation", "false", "one execution environment per tenant (X-Amz-Tenant-Id), never shared; fixed when the function is created")
        .default("false")
        .api("TenancyConfig.TenantIsolationMode", "TenancyConfig.TenantIsolationMode"),
    key("deploy.managed-instances", "{}", "Lambda Managed Instances: several requests at once in one execution environment").table(),
    key("deploy.managed-instances.max-concurrency", "8", "requests one execution environment serves at once (AWS_LAMBDA_MAX_CONCURRENCY)")
        .range(1, 1600, "requests")
        .api(
            "CapacityProviderConfig.LambdaManagedInstancesCapacityProviderConfig.PerExecutionEnvironmentMaxConcurrency",
            "CapacityProviderConfig.LambdaManagedInstancesCapacityProviderConfig.PerExecutionEnvironmentMaxConcurrency",
        ),
    key("deploy.ecr", "{}", "the ECR repository's lifecycle").table(),
    key("deploy.ecr.keep", "10", "images kept besides those a version or alias uses, at least one per architecture; unset: DeleteLifecyclePolicy")
        .range(1, 1000, "images")
        .api("ECR PutLifecyclePolicy", ""),
    key("test", "{}", "local tests").table(),
    key("test.events", r#"["events/*.json"]"#, "event files or globs, relative to the package"),
    key("bin", "{}", "per-binary tables, merged key by key over the package's").map(),
];

/// The key at `path`, if there is one.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// The names of the keys of the table at `table` (`""` for the top level).
pub fn names_in(table: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| k.split().0 == table)
        .map(|k| k.split().1)
        .collect()
}

/// The README's table of keys: one row per key that holds a value (tables are their rows).
pub fn markdown_table() -> String {
    let code = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("`{}`", text.replace('|', "\\|"))
        }
    };
    let mut table = String::from(
        "| key | example | range | default | what it does | Lambda API | CloudFormation |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for key in KEYS
        .iter()
        .filter(|k| k.kind != Kind::Table && k.path != "bin")
    {
        let default = key.default.replace('|', "\\|");
        let env = key
            .env
            .map(|var| format!(" (also `{var}`)"))
            .unwrap_or_default();
        table.push_str(&format!(
            "| {} | {} | {} | {default} | {}{env} | {} | {} |\n",
            code(key.path),
            code(key.example),
            key.range_text().unwrap_or_default(),
            key.doc.replace('|', "\\|"),
            key.lambda,
            key.cloudformation,
        ));
    }
    table
}

/// The environment variables that set keys, with the key each sets.
pub fn env_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter().filter_map(|k| k.env.map(|var| (var, k.path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_a_table_that_is_defined_before_it() {
        for (i, key) in KEYS.iter().enumerate() {
            let (table, _) = key.split();
            if table.is_empty() {
                continue;
            }
            let parent = KEYS[..i].iter().find(|k| k.path == table);
            assert!(
                parent.is_some_and(|p| p.kind == Kind::Table),
                "{} is in {table}, which is not a table defined before it",
                key.path
            );
        }
    }

    /// Every key is a field of the typed tables, and every field of them a key: a table with
    /// every key set to its example is read (and checked) without error, and read back it has
    /// nothing that is not a key.
    #[test]
    fn the_keys_and_the_typed_tables_agree() {
        use serde_json::{Map, Value};
        let mut table = Value::Object(Map::new());
        for key in KEYS.iter().filter(|k| k.kind != Kind::Table) {
            let mut at = &mut table;
            for part in key.path.split('.') {
                at = at
                    .as_object_mut()
                    .unwrap()
                    .entry(part.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            *at = serde_json::from_str(key.example).unwrap();
        }
        let source = crate::error::Source::Default;
        let config = super::super::schema::validate(&table, &source, true)
            .unwrap_or_else(|e| panic!("the examples do not validate: {e}"));
        fn paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
            let Value::Object(map) = value else { return };
            for (name, inner) in map {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                let is_table = find(&path).is_some_and(|k| k.kind == Kind::Table);
                out.push(path.clone());
                if is_table {
                    paths(inner, &path, out);
                }
            }
        }
        let mut read = Vec::new();
        paths(&serde_json::to_value(&config).unwrap(), "", &mut read);
        for path in &read {
            assert!(
                find(path).is_some(),
                "`{path}` is a field of the tables but no key"
            );
        }
        for key in KEYS {
            assert!(
                read.contains(&key.path.to_string()),
                "`{}` was not read back",
                key.path
            );
        }
    }

    #[test]
    fn the_readme_lists_every_key_as_defined() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let (start, end) = (
            "<!-- keys: generated from src/config/keys.rs -->\n",
            "<!-- end of keys -->",
        );
        let from = readme
            .find(start)
            .expect("README.md has the keys table's start marker")
            + start.len();
        let to = readme[from..].find(end).expect("and its end marker") + from;
        let table = markdown_table();
        if readme[from..to] != table && std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{table}{}", &readme[..from], &readme[to..]);
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"), updated).unwrap();
            return;
        }
        assert_eq!(
            readme[from..to],
            table,
            "README.md's table of keys is not the one src/config/keys.rs defines: \
             run `UPDATE_README=1 cargo test --lib keys` and commit README.md"
        );
    }

    #[test]
    fn every_example_is_json() {
        for key in KEYS {
            assert!(
                serde_json::from_str::<serde_json::Value>(key.example).is_ok(),
                "{}: {}",
                key.path,
                key.example
            );
        }
    }
}
