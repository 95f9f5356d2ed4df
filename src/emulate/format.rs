//! The pure parts of the emulator: identifiers, the runtime's environment, and the exact texts
//! Lambda uses for its log lines and error bodies, so that they can be tested without a server.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{EmulatorConfig, ExecutionModel};
use crate::aws::LocalCredentials;
use crate::lambda;
use crate::time::rfc3339_millis;

/// 64 random bits. Each `RandomState` is seeded from the OS once per thread and then
/// incremented, and a counter and the clock are mixed in, so consecutive calls differ; that is
/// all request and trace ids need (they are not secrets).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// A fresh request id in the UUID (version 4) format Lambda uses.
pub fn request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    // Set the version (4) and variant (10xx) bits like a real v4 UUID.
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// A fresh X-Ray trace header, `Root=1-<epoch hex>-<96 random bits>;Parent=<64 bits>;Sampled=0`.
pub fn trace_id(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!(
        "Root=1-{:08x}-{:08x}{:016x};Parent={:016x};Sampled=0",
        secs,
        random_u64() as u32,
        random_u64(),
        random_u64()
    )
}

/// The function's ARN, with the qualifier when the invocation named one.
pub fn function_arn(
    region: &str,
    account_id: &str,
    function_name: &str,
    qualifier: Option<&str>,
) -> String {
    let mut arn = format!("arn:aws:lambda:{region}:{account_id}:function:{function_name}");
    if let Some(q) = qualifier {
        arn.push(':');
        arn.push_str(q);
    }
    arn
}

/// The function name and qualifier an invoke path names, or `None` when it is not a function
/// reference.
///
/// Lambda accepts a name, `name:qualifier`, a partial ARN (`123456789012:function:name`) or a
/// full ARN.
pub fn split_function_reference(path_name: &str) -> Option<(&str, Option<&str>)> {
    let parts: Vec<&str> = path_name.split(':').collect();
    Some(match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_, "function", name] => (*name, None),
        [_, "function", name, q] => (*name, Some(*q)),
        ["arn", _, "lambda", _, _, "function", name] => (*name, None),
        ["arn", _, "lambda", _, _, "function", name, q] => (*name, Some(*q)),
        _ => return None,
    })
}

/// Whether a function at `version` with `aliases` answers to `qualifier`: `$LATEST`, its own
/// version, any version number (locally, every version runs the same code), or one of its
/// aliases.
pub fn qualifier_matches(qualifier: &str, version: &str, aliases: &[String]) -> bool {
    qualifier == "$LATEST"
        || qualifier == version
        || (!qualifier.is_empty() && qualifier.chars().all(|c| c.is_ascii_digit()))
        || aliases.iter().any(|a| a == qualifier)
}

/// The log stream name Lambda gives an execution environment: `YYYY/MM/DD/[$LATEST]<32 hex>`.
pub fn log_stream_name(now: SystemTime, version: &str) -> String {
    let date = rfc3339_millis(now);
    format!(
        "{}/{}/{}/[{version}]{:016x}{:016x}",
        &date[0..4],
        &date[5..7],
        &date[8..10],
        random_u64(),
        random_u64()
    )
}

/// The environment of one runtime instance, as Lambda builds it: defaults that a function may
/// override (`PATH`, `LANG`, `TZ`), then the function's own variables, then the reserved ones.
///
/// Nothing comes from the host: in particular the host's AWS credentials only reach the
/// function when its configured environment names them explicitly.
pub fn runtime_env(
    config: &EmulatorConfig,
    runtime_api: &str,
    log_stream: &str,
    credentials: Option<&LocalCredentials>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), v.to_string());
    };
    set("PATH", lambda::PATH);
    set("LANG", "en_US.UTF-8");
    set("TZ", ":UTC");
    for (k, v) in &config.env {
        if !lambda::is_reserved_env(k) {
            set(k, v);
        }
    }
    set("AWS_LAMBDA_RUNTIME_API", runtime_api);
    set("AWS_LAMBDA_FUNCTION_NAME", &config.function_name);
    set("AWS_LAMBDA_FUNCTION_VERSION", &config.function_version);
    set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        &config.memory_mb.to_string(),
    );
    set(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        &format!("/aws/lambda/{}", config.function_name),
    );
    set("AWS_LAMBDA_LOG_STREAM_NAME", log_stream);
    set(
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        config.model.initialization_type(),
    );
    if let ExecutionModel::ManagedInstances { max_concurrency } = config.model {
        set("AWS_LAMBDA_MAX_CONCURRENCY", &max_concurrency.to_string());
    }
    set("AWS_REGION", &config.region);
    set("AWS_DEFAULT_REGION", &config.region);
    set("_HANDLER", &config.handler);
    set("LAMBDA_TASK_ROOT", lambda::TASK_ROOT_DIR);
    set("LAMBDA_RUNTIME_DIR", lambda::RUNTIME_DIR);
    for (k, v) in credentials.map(LocalCredentials::env).unwrap_or_default() {
        set(k, v);
    }
    env
}

/// Variables Lambda gives the runtime only, not its extensions.
const RUNTIME_ONLY_ENV: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// An external extension's environment: the runtime's, without the variables Lambda keeps for
/// the runtime (the log group and stream, the task root, `_HANDLER` and every other name
/// starting with `_`).
pub fn extension_env(runtime_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    runtime_env
        .iter()
        .filter(|(k, _)| !k.starts_with('_') && !RUNTIME_ONLY_ENV.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `START RequestId: <id> Version: <version>`.
pub fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}")
}

/// `END RequestId: <id>`.
pub fn end_line(request_id: &str) -> String {
    format!("END RequestId: {request_id}")
}

/// What the `REPORT` line says about one invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The request id.
    pub request_id: String,
    /// From the runtime taking the event to its answer (or the timeout).
    pub duration: Duration,
    /// Configured memory.
    pub memory_mb: u32,
    /// Peak resident memory of the runtime's processes, when it could be measured.
    pub max_memory_mb: Option<u64>,
    /// Set on the first invocation of an instance: launch until the runtime's first `/next`.
    pub init_duration: Option<Duration>,
    /// Set instead on the first invocation of a SnapStart instance: from the restore (the
    /// answer to `restore/next`) until the runtime's first `/next`.
    pub restore_duration: Option<Duration>,
    /// `timeout` or `error` when the invocation did not end normally.
    pub status: Option<&'static str>,
    /// The error type, for `status: error`.
    pub error_type: Option<String>,
}

impl Report {
    /// The `REPORT` line, tab-separated like Lambda's. Billed duration includes the init
    /// duration, as it does for container images and custom runtimes.
    /// The billed duration in whole milliseconds: the duration and the init duration,
    /// rounded up (at least 1 ms).
    pub fn billed_ms(&self) -> u64 {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        (ms(self.duration) + self.init_duration.map(ms).unwrap_or(0.0))
            .ceil()
            .max(1.0) as u64
    }

    pub fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let billed = self.billed_ms();
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
            self.request_id,
            ms(self.duration),
            billed,
            self.memory_mb
        );
        if let Some(used) = self.max_memory_mb {
            line.push_str(&format!("\tMax Memory Used: {used} MB"));
        }
        if let Some(init) = self.init_duration {
            line.push_str(&format!("\tInit Duration: {:.2} ms", ms(init)));
        }
        if let Some(restore) = self.restore_duration {
            line.push_str(&format!(
                "\tRestore Duration: {:.2} ms\tBilled Restore Duration: {} ms",
                ms(restore),
                ms(restore).ceil().max(1.0) as u64
            ));
        }
        if let Some(status) = self.status {
            line.push_str(&format!("\tStatus: {status}"));
        }
        if let Some(error_type) = &self.error_type {
            line.push_str(&format!("\tError Type: {error_type}"));
        }
        line
    }
}

/// An error body in the shape runtimes post and Lambda returns.
pub fn error_body(error_type: &str, message: &str) -> Value {
    json!({ "errorMessage": message, "errorType": error_type })
}

/// The timeout message: `<date> <id> Task timed out after 3.00 seconds`.
pub fn timeout_message(now: SystemTime, request_id: &str, timeout: Duration) -> String {
    format!(
        "{} {request_id} Task timed out after {:.2} seconds",
        rfc3339_millis(now),
        timeout.as_secs_f64()
    )
}

/// How Lambda (which is written in Go) describes an exit status: `exit status 1`,
/// `signal: killed`.
pub fn exit_description(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                1 => "hangup".to_string(),
                2 => "interrupt".to_string(),
                4 => "illegal instruction".to_string(),
                6 => "aborted".to_string(),
                7 => "bus error".to_string(),
                8 => "floating point exception".to_string(),
                9 => "killed".to_string(),
                11 => "segmentation fault".to_string(),
                13 => "broken pipe".to_string(),
                15 => "terminated".to_string(),
                n => format!("signal {n}"),
            };
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            return format!("signal: {name}{core}");
        }
    }
    status.to_string()
}

/// The `Runtime.ExitError` message for a runtime that exited during an invocation.
pub fn exit_message(request_id: &str, status: &ExitStatus) -> String {
    if status.success() {
        format!("RequestId: {request_id} Error: Runtime exited without providing a reason")
    } else {
        format!(
            "RequestId: {request_id} Error: Runtime exited with error: {}",
            exit_description(status)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_v4_uuids() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{a}");
        assert!("89ab".contains(&groups[3][..1]), "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn trace_ids_have_the_xray_shape() {
        let t = trace_id(UNIX_EPOCH + Duration::from_secs(0x6630_0000));
        assert!(t.starts_with("Root=1-66300000-"), "{t}");
        let root = t.split(';').next().unwrap();
        assert_eq!(root.len(), "Root=1-".len() + 8 + 1 + 24, "{t}");
        assert!(t.ends_with(";Sampled=0"));
    }

    #[test]
    fn arn_has_region_account_name_and_qualifier() {
        assert_eq!(
            function_arn("eu-west-1", "123456789012", "hello", None),
            "arn:aws:lambda:eu-west-1:123456789012:function:hello"
        );
        assert_eq!(
            function_arn("us-east-1", "1", "hello", Some("$LATEST")),
            "arn:aws:lambda:us-east-1:1:function:hello:$LATEST"
        );
    }

    #[test]
    fn invoke_paths_accept_every_form_lambda_accepts() {
        let r = split_function_reference;
        assert_eq!(r("hello"), Some(("hello", None)));
        assert_eq!(r("hello:$LATEST"), Some(("hello", Some("$LATEST"))));
        assert_eq!(r("123456789012:function:hello"), Some(("hello", None)));
        assert_eq!(
            r("arn:aws:lambda:us-east-1:123456789012:function:hello"),
            Some(("hello", None))
        );
        assert_eq!(
            r("arn:aws:lambda:us-east-1:123456789012:function:hello:live"),
            Some(("hello", Some("live")))
        );
        assert_eq!(r("a:b:c:d:e"), None);
        let aliases = vec!["live".to_string()];
        assert!(qualifier_matches("$LATEST", "$LATEST", &aliases));
        assert!(qualifier_matches("7", "$LATEST", &aliases));
        assert!(qualifier_matches("live", "$LATEST", &aliases));
        assert!(!qualifier_matches("staging", "$LATEST", &aliases));
        assert!(!qualifier_matches("", "$LATEST", &aliases));
    }

    #[test]
    fn log_stream_names_look_like_lambdas() {
        let name = log_stream_name(UNIX_EPOCH + Duration::from_secs(1_709_251_199), "$LATEST");
        assert!(name.starts_with("2024/02/29/[$LATEST]"), "{name}");
        assert_eq!(name.len(), "2024/02/29/[$LATEST]".len() + 32);
    }

    #[test]
    fn runtime_env_has_lambda_variables_and_reserved_ones_win() {
        let mut config = EmulatorConfig {
            function_name: "hello".into(),
            memory_mb: 256,
            handler: "bootstrap".into(),
            region: "eu-west-1".into(),
            ..Default::default()
        };
        config.env.insert("STAGE".into(), "dev".into());
        config.env.insert("TZ".into(), "Europe/Paris".into());
        config.env.insert("AWS_REGION".into(), "moon-1".into());
        let env = runtime_env(&config, "127.0.0.1:9001", "stream", None);
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "hello");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/hello");
        assert_eq!(env["AWS_LAMBDA_LOG_STREAM_NAME"], "stream");
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-1");
        assert_eq!(env["_HANDLER"], "bootstrap");
        assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
        assert_eq!(env["LAMBDA_RUNTIME_DIR"], "/var/runtime");
        assert_eq!(env["PATH"], lambda::PATH);
        assert_eq!(env["STAGE"], "dev");
        assert_eq!(env["TZ"], "Europe/Paris", "TZ is not reserved");
        assert!(!env.contains_key("AWS_ACCESS_KEY_ID"));
        assert!(!env.contains_key("AWS_EXECUTION_ENV"));

        config
            .env
            .insert("AWS_SECRET_ACCESS_KEY".into(), "from-env".into());
        let credentials = LocalCredentials {
            access_key_id: "AKIDLOCAL".into(),
            secret_access_key: "secret".into(),
            session_token: Some("token".into()),
            expiry: None,
        };
        let env = runtime_env(&config, "127.0.0.1:9001", "stream", Some(&credentials));
        assert_eq!(env["AWS_ACCESS_KEY_ID"], "AKIDLOCAL");
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "secret");
        assert_eq!(env["AWS_SESSION_TOKEN"], "token");
    }

    #[test]
    fn report_line_matches_lambdas_layout() {
        let mut report = Report {
            request_id: "id".into(),
            duration: Duration::from_micros(12_345),
            memory_mb: 128,
            max_memory_mb: Some(20),
            init_duration: Some(Duration::from_micros(30_120)),
            restore_duration: None,
            status: None,
            error_type: None,
        };
        assert_eq!(
            report.line(),
            "REPORT RequestId: id\tDuration: 12.35 ms\tBilled Duration: 43 ms\t\
             Memory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 30.12 ms"
        );
        report.init_duration = None;
        report.max_memory_mb = None;
        report.status = Some("error");
        report.error_type = Some("Runtime.ExitError".into());
        assert_eq!(
            report.line(),
            "REPORT RequestId: id\tDuration: 12.35 ms\tBilled Duration: 13 ms\t\
             Memory Size: 128 MB\tStatus: error\tError Type: Runtime.ExitError"
        );
        // A SnapStart environment's first invocation reports its restore, billed apart.
        report.status = None;
        report.error_type = None;
        report.restore_duration = Some(Duration::from_micros(4_210));
        assert_eq!(
            report.line(),
            "REPORT RequestId: id\tDuration: 12.35 ms\tBilled Duration: 13 ms\t\
             Memory Size: 128 MB\tRestore Duration: 4.21 ms\tBilled Restore Duration: 5 ms"
        );
    }

    #[test]
    fn extensions_get_the_runtimes_environment_but_its_own_variables() {
        let config = EmulatorConfig {
            env: BTreeMap::from([("STAGE".to_string(), "test".to_string())]),
            ..EmulatorConfig::default()
        };
        let runtime = runtime_env(&config, "127.0.0.1:9001", "stream", None);
        let extension = extension_env(&runtime);
        for kept in [
            "AWS_LAMBDA_RUNTIME_API",
            "AWS_REGION",
            "AWS_LAMBDA_FUNCTION_NAME",
            "TZ",
            "STAGE",
        ] {
            assert_eq!(extension.get(kept), runtime.get(kept), "{kept}");
        }
        for dropped in [
            "_HANDLER",
            "LAMBDA_TASK_ROOT",
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "AWS_LAMBDA_LOG_GROUP_NAME",
        ] {
            assert!(
                runtime.contains_key(dropped) && !extension.contains_key(dropped),
                "{dropped}"
            );
        }
    }

    #[test]
    fn the_execution_model_sets_lambdas_variables() {
        let env_of = |model| {
            let config = EmulatorConfig {
                model,
                ..EmulatorConfig::default()
            };
            runtime_env(&config, "127.0.0.1:9001", "stream", None)
        };
        let on_demand = env_of(ExecutionModel::OnDemand);
        assert_eq!(on_demand["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
        assert!(!on_demand.contains_key("AWS_LAMBDA_MAX_CONCURRENCY"));
        let snap = env_of(ExecutionModel::SnapStart { label: false });
        assert_eq!(snap["AWS_LAMBDA_INITIALIZATION_TYPE"], "snap-start");
        let managed = env_of(ExecutionModel::ManagedInstances { max_concurrency: 8 });
        assert_eq!(
            managed["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "lambda-managed-instances"
        );
        assert_eq!(managed["AWS_LAMBDA_MAX_CONCURRENCY"], "8");
        assert!(!managed.contains_key("_X_AMZN_TRACE_ID"));
    }

    #[test]
    fn timeout_and_exit_messages_mirror_lambda() {
        assert_eq!(
            timeout_message(UNIX_EPOCH, "id", Duration::from_secs(3)),
            "1970-01-01T00:00:00.000Z id Task timed out after 3.00 seconds"
        );
        assert_eq!(
            start_line("id", "$LATEST"),
            "START RequestId: id Version: $LATEST"
        );
        assert_eq!(end_line("id"), "END RequestId: id");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            let exit1 = ExitStatus::from_raw(1 << 8);
            assert_eq!(
                exit_message("id", &exit1),
                "RequestId: id Error: Runtime exited with error: exit status 1"
            );
            let killed = ExitStatus::from_raw(9);
            assert_eq!(exit_description(&killed), "signal: killed");
            let ok = ExitStatus::from_raw(0);
            assert_eq!(
                exit_message("id", &ok),
                "RequestId: id Error: Runtime exited without providing a reason"
            );
        }
    }
}
