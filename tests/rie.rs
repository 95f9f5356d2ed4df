//! The same functions under AWS's Runtime Interface Emulator (`aws-lambda-rie`, from the PyPI
//! `aws-sam-cli` wheel; `cargo xtask ci` fetches it and names it in `CLI_TEST_RIE`) and under
//! ours, side by side, where the RIE implements the behaviour: lambda_runtime's graceful
//! shutdown (an internal extension, SIGTERM on stop), an internal extension that takes INVOKE
//! events, and the tenant id. Where they differ ours does what Lambda does (README, "The
//! local runtime and AWS's RIE"); those differences are asserted here too, so that a change
//! of either side shows.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cargo_lambda_image::emulate::{Emulator, EmulatorConfig, LogSink, ProcessLauncher};
use serde_json::{json, Value};

use crate::support;

/// AWS's RIE running `program`, with `env` added to its environment (which it passes on to
/// the runtime); killed when dropped.
struct Rie {
    child: Child,
    url: String,
}

impl Rie {
    fn start(program: &Path, env: &[(&str, &str)]) -> Rie {
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string()
        };
        let (address, runtime_api) = (free(), free());
        let child = Command::new(support::service_env("CLI_TEST_RIE"))
            .arg("--runtime-interface-emulator-address")
            .arg(&address)
            .arg("--runtime-api-address")
            .arg(&runtime_api)
            .arg(program)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aws-lambda-rie starts");
        let rie = Rie {
            child,
            url: format!("http://{address}/2015-03-31/functions/function/invocations"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "aws-lambda-rie did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        rie
    }

    /// Stops it as `docker stop` or Ctrl-C would, and waits for it to exit.
    fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body of one invocation.
async fn invoke(url: &str, event: Value, tenant: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(event.to_string());
    if let Some(tenant) = tenant {
        request = request.header("x-amz-tenant-id", tenant);
    }
    let response = request.send().await.expect("the emulator answers");
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn ours(program: &Path, env: &[(&str, &str)], tenants: bool) -> Emulator {
    let config = EmulatorConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tenant_isolation: tenants,
        logs: LogSink::discard(),
        ..Default::default()
    };
    Emulator::start(config, Arc::new(ProcessLauncher::new(program)))
        .await
        .expect("the emulator starts")
}

async fn wait_for(path: &Path, what: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if what(&std::fs::read_to_string(path).unwrap_or_default()) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_runs_its_hook_on_stop_under_both() {
    let graceful = support::runner_images::lifecycle_bin("graceful");
    let dir = tempfile::tempdir().unwrap();
    for who in ["rie", "ours"] {
        let marker = dir.path().join(who);
        let marker_text = marker.display().to_string();
        let env = [("GRACEFUL_MARKER", marker_text.as_str())];
        let (status, _) = if who == "rie" {
            let rie = Rie::start(&graceful, &env);
            let answer = invoke(&rie.url, json!({}), None).await;
            rie.stop();
            answer
        } else {
            let emulator = ours(&graceful, &env, false).await;
            let answer = invoke(&emulator.invoke_url(), json!({}), None).await;
            emulator.shutdown().await;
            answer
        };
        assert_eq!(status, 200, "{who}");
        assert!(
            wait_for(&marker, |text| text == "hook ran\n").await,
            "{who}: the shutdown hook did not run"
        );
    }
}

#[tokio::test]
async fn an_internal_extension_gets_invoke_events_under_both() {
    let flush = support::runner_images::extension_example("extension-internal-flush");
    let dir = tempfile::tempdir().unwrap();
    let event = json!({"Records": [{"body": "{\"a\": \"x\", \"b\": 1}"}]});
    for who in ["rie", "ours"] {
        let record = dir.path().join(who);
        let record_text = record.display().to_string();
        let env = [("EXTENSION_RECORD_FILE", record_text.as_str())];
        let flushed = |text: &str| text.contains("[internal-flush] flushed ");
        if who == "rie" {
            let rie = Rie::start(&flush, &env);
            let (status, _) = invoke(&rie.url, event.clone(), None).await;
            assert_eq!(status, 200, "{who}");
            assert!(wait_for(&record, flushed).await, "{who}");
            rie.stop();
        } else {
            let emulator = ours(&flush, &env, false).await;
            let (status, _) = invoke(&emulator.invoke_url(), event.clone(), None).await;
            assert_eq!(status, 200, "{who}");
            assert!(wait_for(&record, flushed).await, "{who}");
            emulator.shutdown().await;
        }
    }
}

#[tokio::test]
async fn the_tenant_id_reaches_the_runtime_under_both_and_only_ours_isolates_tenants() {
    let tenant = support::runner_images::lifecycle_bin("tenant");
    let rie = Rie::start(&tenant, &[]);
    let (_, blue) = invoke(&rie.url, json!({}), Some("blue")).await;
    let (_, green) = invoke(&rie.url, json!({}), Some("green")).await;
    let (untenanted, _) = invoke(&rie.url, json!({}), None).await;
    rie.stop();
    assert_eq!(blue["tenant_id"], "blue");
    assert_eq!(green["tenant_id"], "green");
    // The RIE shares one environment between tenants and takes an invocation without one.
    assert_eq!(blue["environment"]["pid"], green["environment"]["pid"]);
    assert_eq!(untenanted, 200);

    let emulator = ours(&tenant, &[], true).await;
    let (_, blue) = invoke(&emulator.invoke_url(), json!({}), Some("blue")).await;
    let (_, green) = invoke(&emulator.invoke_url(), json!({}), Some("green")).await;
    let (untenanted, refused) = invoke(&emulator.invoke_url(), json!({}), None).await;
    emulator.shutdown().await;
    assert_eq!(blue["tenant_id"], "blue");
    assert_eq!(green["tenant_id"], "green");
    assert_ne!(blue["environment"]["pid"], green["environment"]["pid"]);
    assert_eq!(untenanted, 400, "{refused}");
}
