//! `deploy` against moto_server (ECR, IAM, Lambda control planes) and Debian's docker-registry
//! (the image bytes). Each test starts its own moto_server with `MOTO_LAMBDA_STUB_ECR=false`,
//! so Lambda only accepts images ECR knows (what the library's PutImage registers). Assertions
//! go through separate SDK clients, and what was SENT is recorded by an SDK interceptor, since
//! moto ignores some fields (ImageConfig, Architectures on update).

use crate::support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use cargo_lambda_image::aws::AwsOptions;
use cargo_lambda_image::config::FunctionSpec;
use cargo_lambda_image::deploy::{
    self, DeployOptions, DeployOutcome, DeployedFunction, PlannedStep,
};
use cargo_lambda_image::image::{self, base, BuiltImage, ImageOptions};
use cargo_lambda_image::progress::Reporter;
use cargo_lambda_image::registry::RegistryOptions;
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::Error;
use serde_json::Value;
use support::aws_recorder::{Recorded, Recorder};
use support::images::{echo_bootstrap, echo_spec};
use support::moto::{sdk_config, Moto};
use support::{service_env, unique};

const ACCOUNT: &str = "123456789012";

struct Env {
    _moto: Moto,
    sdk: SdkConfig,
    recorder: Recorder,
    opts: DeployOptions,
    lambda: aws_sdk_lambda::Client,
    ecr: aws_sdk_ecr::Client,
    iam: aws_sdk_iam::Client,
}

async fn env() -> Env {
    let registry = service_env("CLI_TEST_REGISTRY");
    let moto = Moto::start();
    let sdk = sdk_config(&moto.endpoint).await;
    let recorder = Recorder::default();
    let opts = DeployOptions {
        registry_override: Some(registry.clone()),
        registry: RegistryOptions {
            insecure: vec![registry],
            ..Default::default()
        },
        aws: AwsOptions {
            sdk_config: Some(sdk.clone()),
            interceptor: Some(recorder.interceptor()),
            ..Default::default()
        },
        ..Default::default()
    };
    Env {
        lambda: aws_sdk_lambda::Client::new(&sdk),
        ecr: aws_sdk_ecr::Client::new(&sdk),
        iam: aws_sdk_iam::Client::new(&sdk),
        _moto: moto,
        sdk,
        recorder,
        opts,
    }
}

/// The echo function for x86_64 on scratch, under fresh function and repository names, with
/// `extra` bytes appended to its bootstrap (a different binary, so a different digest).
fn echo(dir: &Path, name: &str, extra: &[u8]) -> FunctionSpec {
    let mut spec = echo_spec(Arch::X86_64, "scratch", dir, &echo_bootstrap(Arch::X86_64));
    spec.name = name.to_string();
    spec.lambda_name = name.to_string();
    spec.image.repository = format!("{name}-repo");
    spec.deploy.publish = true;
    spec.deploy.alias = Some("live".into());
    spec.env.insert("GREETING".into(), "hello".into());
    spec.tags.insert("team".into(), "platform".into());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&spec.artifact)
        .unwrap();
    file.write_all(extra).unwrap();
    spec
}

fn assemble(spec: &FunctionSpec) -> BuiltImage {
    image::assemble(
        spec,
        spec.artifact.as_std_path(),
        &base::scratch(spec.arch),
        &ImageOptions::default(),
    )
    .unwrap()
}

async fn deployed(spec: &FunctionSpec, img: &BuiltImage, opts: &DeployOptions) -> DeployedFunction {
    match deploy::deploy(spec, img, opts, &Reporter::discard()).await {
        Ok(DeployOutcome::Deployed(d)) => d,
        other => panic!("expected a deploy, got {other:?}"),
    }
}

fn ecr_uri(repo: &str, digest: &str) -> String {
    format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{repo}@{digest}")
}

/// The ECR authorization token moto hands out now (a secret that must never be printed).
async fn ecr_token(ecr: &aws_sdk_ecr::Client) -> String {
    ecr.get_authorization_token()
        .send()
        .await
        .unwrap()
        .authorization_data()[0]
        .authorization_token()
        .unwrap()
        .to_string()
}

fn sent<'a>(log: &'a [Recorded], operation: &str) -> Vec<&'a Recorded> {
    log.iter().filter(|r| r.operation == operation).collect()
}

const MUTATING: &[&str] = &[
    "CreateRepository",
    "SetRepositoryPolicy",
    "CreateRole",
    "AttachRolePolicy",
    "CreateFunction",
    "UpdateFunctionConfiguration",
    "UpdateFunctionCode",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "TagResource",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "PutFunctionEventInvokeConfig",
    "DeleteFunctionEventInvokeConfig",
    "PutRolePolicy",
    "CreateFunctionUrlConfig",
    "UpdateFunctionUrlConfig",
    "DeleteFunctionUrlConfig",
    "AddPermission",
    "RemovePermission",
    "PutProvisionedConcurrencyConfig",
    "DeleteProvisionedConcurrencyConfig",
    "DeleteAlias",
    "PutLifecyclePolicy",
    "DeleteLifecyclePolicy",
    "BatchDeleteImage",
];

const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:orders-failures";

fn mutating(log: &[Recorded]) -> Vec<String> {
    Recorder::operations(log)
        .into_iter()
        .filter(|o| MUTATING.contains(&o.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn first_deploy_creates_everything_then_updates_publish_and_move_the_alias() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-life");
    let spec = echo(&dir.path().join("v1"), &name, b"");
    let repo = spec.image.repository.clone();
    let first_image = assemble(&spec);

    // First deploy: repository, policy, role, function, version 1, alias.
    let first = deployed(&spec, &first_image, &env.opts).await;
    assert!(first.changed);
    assert_eq!(first.version.as_deref(), Some("1"));
    let log = env.recorder.take();
    assert_eq!(
        mutating(&log),
        [
            "CreateRepository",
            "SetRepositoryPolicy",
            "CreateRole",
            "AttachRolePolicy",
            "CreateFunction",
            "PublishVersion",
            "CreateAlias"
        ]
    );
    let create = sent(&log, "CreateFunction")[0].json();
    assert_eq!(create["PackageType"], "Image");
    assert_eq!(create["Architectures"], serde_json::json!(["x86_64"]));
    assert_eq!(
        create["Code"]["ImageUri"],
        ecr_uri(&repo, &first_image.digest)
    );
    let put = sent(&log, "PutImage")[0].json();
    assert_eq!(
        put["imageManifestMediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let f = env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let config = f.configuration().unwrap();
    assert_eq!(config.package_type().unwrap().as_str(), "Image");
    assert_eq!(
        f.code().unwrap().image_uri(),
        Some(ecr_uri(&repo, &first_image.digest).as_str())
    );
    assert_eq!(
        config
            .architectures()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["x86_64"]
    );
    let role_name = format!("{name}-lambda-role");
    assert_eq!(
        config.role(),
        Some(format!("arn:aws:iam::{ACCOUNT}:role/{role_name}").as_str())
    );
    assert_eq!(
        config.environment().unwrap().variables().unwrap()["GREETING"],
        "hello"
    );
    assert_eq!(f.tags().unwrap()["team"], "platform");
    let attached = env
        .iam
        .list_attached_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    assert!(attached
        .attached_policies()
        .iter()
        .any(|p| p.policy_name() == Some("AWSLambdaBasicExecutionRole")));
    let policy = env
        .ecr
        .get_repository_policy()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(policy.policy_text().unwrap()).unwrap();
    let lambda_statement = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Principal"]["Service"] == "lambda.amazonaws.com")
        .expect("a statement for lambda.amazonaws.com");
    let actions = lambda_statement["Action"].to_string();
    assert!(
        actions.contains("ecr:BatchGetImage") && actions.contains("ecr:GetDownloadUrlForLayer")
    );
    let alias = env
        .lambda
        .get_alias()
        .function_name(&name)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some("1"));

    // The same digest again: nothing changes.
    let again = deployed(&spec, &first_image, &env.opts).await;
    assert!(!again.changed, "{again:?}");
    assert_eq!(again.version.as_deref(), Some("1"));
    let log = env.recorder.take();
    assert_eq!(
        mutating(&log),
        Vec::<String>::new(),
        "{:?}",
        Recorder::operations(&log)
    );
    let alias = env
        .lambda
        .get_alias()
        .function_name(&name)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some("1"));

    // A different binary, more memory and a command: configuration, code, version 2, alias.
    let mut spec2 = echo(&dir.path().join("v2"), &name, b"\0v2");
    spec2.memory = 256;
    spec2.image.command = Some(vec!["handler".into()]);
    let second_image = assemble(&spec2);
    assert_ne!(second_image.digest, first_image.digest);
    let second = deployed(&spec2, &second_image, &env.opts).await;
    assert!(second.changed);
    assert_eq!(second.version.as_deref(), Some("2"));
    assert_eq!(second.image_uri, ecr_uri(&repo, &second_image.digest));
    let log = env.recorder.take();
    assert_eq!(
        mutating(&log),
        [
            "UpdateFunctionConfiguration",
            "UpdateFunctionCode",
            "PublishVersion",
            "UpdateAlias"
        ]
    );
    let configuration = sent(&log, "UpdateFunctionConfiguration")[0].json();
    assert_eq!(configuration["MemorySize"], 256);
    assert_eq!(
        configuration["ImageConfig"]["Command"],
        serde_json::json!(["handler"])
    );
    let code = sent(&log, "UpdateFunctionCode")[0].json();
    assert_eq!(code["ImageUri"], ecr_uri(&repo, &second_image.digest));
    assert_eq!(code["Architectures"], serde_json::json!(["x86_64"]));

    let f = env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.code().unwrap().image_uri(),
        Some(ecr_uri(&repo, &second_image.digest).as_str())
    );
    assert_eq!(f.configuration().unwrap().memory_size(), Some(256));
    let alias = env
        .lambda
        .get_alias()
        .function_name(&name)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some("2"));
    let v1 = env
        .lambda
        .get_function()
        .function_name(&name)
        .qualifier("1")
        .send()
        .await
        .unwrap();
    // moto shares Code.ImageUri between versions; CodeSha256 (the image digest) is per version.
    assert_eq!(
        v1.configuration().unwrap().code_sha256(),
        first_image.digest.strip_prefix("sha256:"),
        "version 1 keeps the first image"
    );
    // ECR knows the image by digest (what Lambda's image check in moto relied on).
    let images = env
        .ecr
        .describe_images()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    let digests: Vec<&str> = images
        .image_details()
        .iter()
        .filter_map(|d| d.image_digest())
        .collect();
    // (moto drops an image whose only tag moves; real ECR keeps it untagged.)
    assert!(
        digests.contains(&second_image.digest.as_str()),
        "{digests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_arn_that_does_not_exist_is_a_clear_error() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-norole");
    let mut spec = echo(dir.path(), &name, b"");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{name}-missing");
    spec.role = Some(role.clone());
    let img = assemble(&spec);
    let err = deploy::deploy(&spec, &img, &env.opts, &Reporter::discard())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Deploy { .. }), "{err:?}");
    assert!(
        text.contains(&role) && text.contains("does not exist"),
        "{text}"
    );
    let missing = env.lambda.get_function().function_name(&name).send().await;
    assert!(missing.is_err(), "no function was created");
}

/// A zip archive with one stored file, built in memory.
fn tiny_zip() -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.start_file("bootstrap", options).unwrap();
    writer.write_all(b"#!/bin/sh\n").unwrap();
    writer.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_zip_function_is_refused_with_a_fix() {
    let env = env().await;
    let name = unique("deploy-zip");
    let role = env
        .iam
        .create_role()
        .role_name(format!("{name}-role"))
        .assume_role_policy_document(deploy::iam::TRUST_POLICY)
        .send()
        .await
        .unwrap();
    env.lambda
        .create_function()
        .function_name(&name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role.role().unwrap().arn())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_smithy_types::Blob::new(tiny_zip()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = echo(dir.path(), &name, b"");
    let img = assemble(&spec);
    env.recorder.take();
    let err = deploy::deploy(&spec, &img, &env.opts, &Reporter::discard())
        .await
        .unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("Zip"), "{text}");
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(help.contains("delete-function"), "{help}");
    let log = env.recorder.take();
    assert!(
        sent(&log, "UpdateFunctionCode").is_empty()
            && sent(&log, "UpdateFunctionConfiguration").is_empty(),
        "{:?}",
        Recorder::operations(&log)
    );
    let f = env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.configuration().unwrap().package_type().unwrap().as_str(),
        "Zip"
    );
}

/// A registry that answers every request with 401.
fn refusing_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Type: application/json\r\nContent-Length: 76\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}\n\n",
                );
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_refusing_the_ecr_token_is_a_clear_auth_error() {
    let mut env = env().await;
    let registry = refusing_registry();
    env.opts.registry_override = Some(registry.clone());
    env.opts.registry.insecure = vec![registry];
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-401");
    let spec = echo(dir.path(), &name, b"");
    let img = assemble(&spec);
    let err = deploy::deploy(&spec, &img, &env.opts, &Reporter::discard())
        .await
        .unwrap_err();
    match &err {
        Error::RegistryAuth { tried, .. } => assert_eq!(tried, "an ECR authorization token"),
        other => panic!("expected a registry auth error, got {other:?}"),
    }
    let log = env.recorder.take();
    assert!(sent(&log, "CreateFunction").is_empty());
    // The token itself never shows up in the error.
    let token = ecr_token(&env.ecr).await;
    assert!(!format!("{err:?} {err}").contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_lists_the_calls_and_changes_nothing() {
    let mut env = env().await;
    env.opts.dry_run = true;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-dry");
    let spec = echo(dir.path(), &name, b"");
    let img = assemble(&spec);
    let outcome = deploy::deploy(&spec, &img, &env.opts, &Reporter::discard())
        .await
        .unwrap();
    let DeployOutcome::Planned {
        steps, image_uri, ..
    } = outcome
    else {
        panic!("expected a plan, got {outcome:?}")
    };
    let operations: Vec<&str> = steps
        .iter()
        .map(|s: &PlannedStep| s.operation.as_str())
        .collect();
    assert_eq!(
        operations,
        [
            "CreateRepository",
            "SetRepositoryPolicy",
            "push",
            "PutImage",
            "CreateRole",
            "AttachRolePolicy",
            "CreateFunction",
            "PublishVersion",
            // The planner looked: there is no alias yet.
            "CreateAlias"
        ]
    );
    assert_eq!(image_uri, ecr_uri(&spec.image.repository, &img.digest));
    let log = env.recorder.take();
    assert_eq!(mutating(&log), Vec::<String>::new());
    assert!(sent(&log, "PutImage").is_empty());
    assert!(env
        .ecr
        .describe_repositories()
        .repository_names(&spec.image.repository)
        .send()
        .await
        .is_err());
    let _ = &env.sdk;
}

#[test]
fn several_arches_of_one_function_get_arch_suffixes_but_x86_64() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap-file");
    std::fs::write(&bootstrap, b"x").unwrap();
    // Planned one architecture at a time, each keeps the configured name...
    let x86 = echo_spec(Arch::X86_64, "scratch", &dir.path().join("a"), &bootstrap);
    let arm = echo_spec(Arch::Arm64, "scratch", &dir.path().join("b"), &bootstrap);
    assert_eq!(
        (x86.lambda_name.as_str(), arm.lambda_name.as_str()),
        (x86.name.as_str(), arm.name.as_str())
    );
    // ...planned together, arm64 gets the suffix, decided in the plan.
    let plan = cargo_lambda_image::config::plan(&cargo_lambda_image::config::PlanRequest {
        selection: cargo_lambda_image::config::Selection {
            manifest_path: Some(support::fixture_workspace().join("Cargo.toml")),
            packages: vec!["echo".into()],
            ..Default::default()
        },
        overrides: cargo_lambda_image::config::Overrides {
            arch: Some(vec![Arch::X86_64, Arch::Arm64]),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let names: Vec<(&str, Arch)> = plan
        .functions
        .iter()
        .map(|f| (f.lambda_name.as_str(), f.arch))
        .collect();
    let arm64 = format!("{}-arm64", x86.name);
    assert_eq!(
        names,
        [
            (x86.name.as_str(), Arch::X86_64),
            (arm64.as_str(), Arch::Arm64)
        ]
    );
}

/// A secret access key no real account has; it must never be printed.
const FAKE_SECRET: &str = "fAkEsEcReTkEy/ForTestsOnly+0123456789abcdEF";

/// `cargo lambda-image deploy` on the fixture's echo function (scratch base), against this
/// test's moto and the shared registry, with `--message-format json -vv` and fake credentials.
fn deploy_cli(endpoint: &str, registry: &str, extra: &[&str]) -> std::process::Output {
    deploy_cli_of(&["-p", "echo"], endpoint, registry, extra)
}

/// [`deploy_cli`] for another selection of the fixture's functions.
fn deploy_cli_of(
    selection: &[&str],
    endpoint: &str,
    registry: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = support::cli();
    cmd.arg("deploy")
        .args(selection)
        .args(["--base-image", "scratch"])
        .args(["--message-format", "json", "-vv", "--manifest-path"])
        .arg(support::fixture_workspace().join("Cargo.toml"))
        .args(["--region", "us-east-1", "--endpoint-url", endpoint])
        .args(["--registry", registry])
        .args(extra)
        .env("CARGO_TARGET_DIR", support::fixture_target_dir("musl"))
        .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", registry);
    support::run(fake_aws(&mut cmd))
}

/// Fake credentials (with [`FAKE_SECRET`]) and nothing else of this machine's AWS settings: no
/// profile, region, endpoint, config files or instance metadata.
fn fake_aws(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0001")
        .env("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
}

/// The one event of a reason in a command's JSON output.
fn event(out: &std::process::Output, reason: &str) -> Value {
    let events = support::json_lines(out);
    let found: Vec<&Value> = events.iter().filter(|e| e["reason"] == reason).collect();
    assert_eq!(
        found.len(),
        1,
        "one `{reason}` event expected in {events:?}"
    );
    found[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_command_deploys_the_fixture_then_changes_nothing_and_never_prints_secrets() {
    let env = env().await;
    let registry = service_env("CLI_TEST_REGISTRY");
    let endpoint = env._moto.endpoint.clone();
    let token = ecr_token(&env.ecr).await;

    let mut outputs = Vec::new();
    let first = tokio::task::block_in_place(|| deploy_cli(&endpoint, &registry, &[]));
    let (stdout, stderr) = support::texts(&first);
    assert!(first.status.success(), "{stdout}\n{stderr}");
    let deployed = event(&first, "deployed")["deployment"].clone();
    assert_eq!(deployed["function"], "fixture-echo");
    assert_eq!(deployed["arch"], "x86_64");
    assert_eq!(deployed["changed"], true);
    let digest = deployed["digest"].as_str().unwrap().to_string();
    assert_eq!(deployed["image_uri"], ecr_uri("fixture-echo", &digest));
    // The digest is the image the same run built and checked.
    assert_eq!(event(&first, "image")["image"]["digest"], digest.as_str());

    // What AWS has, asked through our own clients.
    let function = env
        .lambda
        .get_function()
        .function_name("fixture-echo")
        .send()
        .await
        .unwrap();
    let configuration = function.configuration().unwrap();
    assert_eq!(
        configuration.package_type(),
        Some(&aws_sdk_lambda::types::PackageType::Image)
    );
    assert_eq!(
        function.code().unwrap().image_uri(),
        Some(ecr_uri("fixture-echo", &digest).as_str())
    );
    assert_eq!(configuration.memory_size(), Some(256));
    assert_eq!(configuration.timeout(), Some(10));
    assert_eq!(configuration.function_arn(), deployed["arn"].as_str());
    let policy = env
        .ecr
        .get_repository_policy()
        .repository_name("fixture-echo")
        .send()
        .await
        .unwrap();
    assert!(policy
        .policy_text()
        .unwrap()
        .contains("lambda.amazonaws.com"));
    outputs.push(first);

    // The same inputs give the same digest: nothing to change.
    let second = tokio::task::block_in_place(|| deploy_cli(&endpoint, &registry, &[]));
    let (stdout, stderr) = support::texts(&second);
    assert!(second.status.success(), "{stdout}\n{stderr}");
    let again = event(&second, "deployed")["deployment"].clone();
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["changed"], false, "{stdout}");
    outputs.push(second);

    // A dry run after that plans no Lambda call.
    let dry = tokio::task::block_in_place(|| deploy_cli(&endpoint, &registry, &["--dry-run"]));
    let (stdout, stderr) = support::texts(&dry);
    assert!(dry.status.success(), "{stdout}\n{stderr}");
    let planned = event(&dry, "planned")["deployment"].clone();
    assert_eq!(planned["outcome"], "planned");
    let lambda_steps: Vec<&Value> = planned["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["service"] == "lambda" || s["service"] == "iam")
        .collect();
    assert!(lambda_steps.is_empty(), "{lambda_steps:?}");
    outputs.push(dry);

    // `prune` lists nothing: the one image is the one $LATEST runs.
    let prune = tokio::task::block_in_place(|| {
        let mut cmd = support::cli();
        cmd.args(["prune", "-p", "echo", "--message-format", "json", "-vv"])
            .arg("--manifest-path")
            .arg(support::fixture_workspace().join("Cargo.toml"))
            .args(["--region", "us-east-1", "--endpoint-url", &endpoint]);
        support::run(fake_aws(&mut cmd))
    });
    let (stdout, stderr) = support::texts(&prune);
    assert!(prune.status.success(), "{stdout}\n{stderr}");
    let pruned = event(&prune, "pruned")["pruned"].clone();
    assert_eq!(pruned["repository"], "fixture-echo");
    assert_eq!(pruned["used"], 1);
    assert_eq!(pruned["unused"], serde_json::json!([]));
    // `promote` needs an alias, which the fixture has not: a clear error, exit 1.
    let promote = tokio::task::block_in_place(|| {
        let mut cmd = support::cli();
        cmd.args(["promote", "-p", "echo", "--manifest-path"])
            .arg(support::fixture_workspace().join("Cargo.toml"))
            .args(["--region", "us-east-1", "--endpoint-url", &endpoint]);
        support::run(fake_aws(&mut cmd))
    });
    let (_, stderr) = support::texts(&promote);
    assert_eq!(promote.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("deploy.alias"), "{stderr}");
    outputs.push(prune);
    outputs.push(promote);

    for out in &outputs {
        let (stdout, stderr) = support::texts(out);
        for secret in [FAKE_SECRET, token.as_str()] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "a secret was printed:\n{stdout}\n{stderr}"
            );
        }
    }
}

#[test]
fn deploy_command_without_a_region_says_how_to_set_one() {
    let registry = "127.0.0.1:9";
    let mut cmd = support::cli();
    cmd.args([
        "deploy",
        "-p",
        "echo",
        "--base-image",
        "scratch",
        "--manifest-path",
    ])
    .arg(support::fixture_workspace().join("Cargo.toml"))
    .args([
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--registry",
        registry,
    ])
    .env("CARGO_TARGET_DIR", support::fixture_target_dir("musl"));
    let out = support::run(fake_aws(&mut cmd));
    let (stdout, stderr) = support::texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no AWS region is configured") && stderr.contains("--region"),
        "{stderr}"
    );
    assert!(!stderr.contains(FAKE_SECRET) && !stdout.contains(FAKE_SECRET));
}

/// The control plane goes away mid-deploy (a proxy in front of moto cuts every connection
/// after a few requests): the deploy fails with an AWS error rather than hanging, and a re-run
/// against the same moto converges on the deployed function.
#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_gone_mid_deploy_is_a_clear_error_and_a_rerun_converges() {
    let env = env().await;
    let upstream = env._moto.endpoint.trim_start_matches("http://").to_string();
    let proxy = support::proxy::CountingProxy::start_with_faults(
        &upstream,
        support::proxy::Faults {
            cut_after_requests: Some(4),
            ..Default::default()
        },
    );
    let mut cut_opts = env.opts.clone();
    cut_opts.aws.sdk_config = Some(sdk_config(&format!("http://{}", proxy.address)).await);
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-cut");
    let spec = echo(dir.path(), &name, b"");
    let img = assemble(&spec);

    let err = deploy::deploy(&spec, &img, &cut_opts, &Reporter::discard())
        .await
        .unwrap_err();
    assert!(proxy.was_cut());
    assert!(matches!(err, Error::Aws { .. }), "{err:?}");
    assert!(env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .is_err());

    let done = deployed(&spec, &img, &env.opts).await;
    assert!(done.changed);
    let function = env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        function.code().unwrap().image_uri(),
        Some(ecr_uri(&spec.image.repository, &img.digest).as_str())
    );
}

/// `deploy --workspace --arch x86_64,arm64` on the fixture: six functions, the arm64 ones named
/// `-arm64`, each created with its one architecture and its own architecture's image by
/// digest; both architectures of a function share its ECR repository.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_command_deploys_every_function_of_the_workspace_for_both_arches() {
    let env = env().await;
    let registry = service_env("CLI_TEST_REGISTRY");
    let endpoint = env._moto.endpoint.clone();
    let out = tokio::task::block_in_place(|| {
        deploy_cli_of(
            &["--workspace", "--arch", "x86_64,arm64"],
            &endpoint,
            &registry,
            &[],
        )
    });
    let (stdout, stderr) = support::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let deployed: Vec<Value> = support::json_lines(&out)
        .into_iter()
        .filter(|e| e["reason"] == "deployed")
        .map(|e| e["deployment"].clone())
        .collect();
    let mut names: Vec<&str> = deployed
        .iter()
        .map(|d| d["function"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fixture-echo",
            "fixture-echo-arm64",
            "goodbye",
            "goodbye-arm64",
            "hello",
            "hello-arm64"
        ]
    );
    for d in &deployed {
        let name = d["function"].as_str().unwrap();
        let arch = d["arch"].as_str().unwrap();
        let function = env
            .lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .unwrap();
        let configuration = function.configuration().unwrap();
        let architectures: Vec<&str> = configuration
            .architectures()
            .iter()
            .map(|a| a.as_str())
            .collect();
        assert_eq!(architectures, [arch], "{name}");
        let repository = name.trim_end_matches("-arm64");
        assert_eq!(
            function.code().unwrap().image_uri(),
            Some(ecr_uri(repository, d["digest"].as_str().unwrap()).as_str()),
            "{name}"
        );
        // Both architectures of a function run under its one role.
        let role = format!("arn:aws:iam::{ACCOUNT}:role/{repository}-lambda-role");
        assert_eq!(configuration.role(), Some(role.as_str()), "{name}");
    }
    let digest_of = |name: &str| {
        deployed
            .iter()
            .find(|d| d["function"] == name)
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_ne!(digest_of("hello"), digest_of("hello-arm64"));
}

const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The planned steps of a dry run of `spec`.
async fn planned(env: &Env, spec: &FunctionSpec, img: &BuiltImage) -> Vec<PlannedStep> {
    let opts = DeployOptions {
        dry_run: true,
        ..env.opts.clone()
    };
    match deploy::deploy(spec, img, &opts, &Reporter::discard()).await {
        Ok(DeployOutcome::Planned { steps, .. }) => steps,
        other => panic!("expected a plan, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn function_settings_are_created_diffed_field_by_field_and_reset_when_removed() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-settings");
    let mut spec = echo(dir.path(), &name, b"settings");
    spec.description = "orders, from the queue".into();
    spec.deploy.tracing = cargo_lambda_image::config::values::Tracing::Active;
    spec.deploy.kms_key = Some(KMS_KEY.into());
    spec.deploy.reserved_concurrency = Some(5);
    spec.deploy.vpc = Some(cargo_lambda_image::config::VpcSettings {
        subnets: vec!["subnet-b".into(), "subnet-a".into()],
        security_groups: vec!["sg-1".into()],
        ipv6_dual_stack: false,
    });
    spec.deploy.async_invoke = Some(cargo_lambda_image::config::AsyncSettings {
        max_retries: Some(0),
        max_event_age: Some(3600),
        on_success: None,
        on_failure: Some(QUEUE.into()),
    });
    let img = assemble(&spec);
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    // The role gets what the settings need: VPC access, X-Ray, and sending to the queue.
    let role = format!("{name}-lambda-role");
    let attached = env
        .iam
        .list_attached_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    let mut policies: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    policies.sort();
    assert_eq!(
        policies,
        [
            "AWSLambdaBasicExecutionRole",
            "AWSLambdaVPCAccessExecutionRole",
            "AWSXRayDaemonWriteAccess"
        ]
    );
    let inline = sent(&log, "PutRolePolicy")[0].body.clone();
    assert!(
        inline.contains("sqs%3ASendMessage") || inline.contains("sqs:SendMessage"),
        "{inline}"
    );
    let invoke_config = env
        .lambda
        .get_function_event_invoke_config()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(invoke_config.maximum_retry_attempts(), Some(0));
    assert_eq!(invoke_config.maximum_event_age_in_seconds(), Some(3600));
    assert_eq!(
        invoke_config
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|d| d.destination()),
        Some(QUEUE)
    );
    let create = sent(&log, "CreateFunction")[0].json();
    assert_eq!(create["Description"], "orders, from the queue");
    assert_eq!(create["TracingConfig"]["Mode"], "Active");
    assert_eq!(create["KMSKeyArn"], KMS_KEY);
    assert_eq!(
        create["VpcConfig"]["SubnetIds"],
        serde_json::json!(["subnet-a", "subnet-b"])
    );
    let put = sent(&log, "PutFunctionConcurrency");
    assert_eq!(put.len(), 1, "{:?}", Recorder::operations(&log));
    let f = env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let c = f.configuration().unwrap();
    assert_eq!(c.description(), Some("orders, from the queue"));
    assert_eq!(
        c.tracing_config()
            .and_then(|t| t.mode())
            .map(|m| m.as_str()),
        Some("Active")
    );
    assert_eq!(c.kms_key_arn(), Some(KMS_KEY));
    assert_eq!(c.vpc_config().unwrap().security_group_ids(), ["sg-1"]);
    assert_eq!(
        f.concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(5)
    );

    // The same settings in another order: nothing to do, and no write call.
    spec.deploy.vpc.as_mut().unwrap().subnets.reverse();
    let again = deployed(&spec, &img, &env.opts).await;
    assert!(!again.changed);
    assert_eq!(mutating(&env.recorder.take()), Vec::<String>::new());

    // A new description, the VPC and the reservation removed: the plan says what each field
    // goes from and to, and the deploy resets the removed ones to Lambda's defaults.
    spec.description = "orders".into();
    spec.deploy.vpc = None;
    spec.deploy.reserved_concurrency = None;
    spec.deploy.async_invoke = None;
    let steps = planned(&env, &spec, &img).await;
    let update = steps
        .iter()
        .find(|s| s.operation == "UpdateFunctionConfiguration")
        .expect("a configuration update");
    let fields: Vec<(&str, &str, &str)> = update
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("description", "orders, from the queue", "orders"),
            (
                "vpc",
                "subnets subnet-a,subnet-b, security groups sg-1",
                "(none)"
            ),
        ]
    );
    let delete = steps
        .iter()
        .find(|s| s.operation == "DeleteFunctionConcurrency")
        .expect("the reservation is removed");
    assert_eq!(delete.changes[0].from, "5");
    env.recorder.take();
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    assert_eq!(
        mutating(&log),
        [
            "UpdateFunctionConfiguration",
            "DeleteFunctionConcurrency",
            "DeleteFunctionEventInvokeConfig",
            "PublishVersion",
            "UpdateAlias"
        ]
    );
    let f = env
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let c = f.configuration().unwrap();
    assert_eq!(c.description(), Some("orders"));
    assert!(
        c.vpc_config().is_none_or(|v| v.subnet_ids().is_empty()),
        "{c:?}"
    );
    assert_eq!(
        f.concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        None
    );
    assert!(env
        .lambda
        .get_function_event_invoke_config()
        .function_name(&name)
        .send()
        .await
        .is_err());

    // Tracing and the KMS key removed. moto's UpdateFunctionConfiguration ignores
    // TracingConfig and KMSKeyArn, so what is checked here is the request: Lambda's defaults,
    // PassThrough and "" (Lambda's own key).
    spec.deploy.tracing = Default::default();
    spec.deploy.kms_key = None;
    let steps = planned(&env, &spec, &img).await;
    let fields: Vec<&str> = steps
        .iter()
        .flat_map(|s| s.changes.iter().map(|c| c.field.as_str()))
        .collect();
    // The configuration changes, so a version is published and the alias moves to it.
    assert_eq!(fields, ["tracing", "kms-key", "alias"]);
    env.recorder.take();
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    let update = sent(&log, "UpdateFunctionConfiguration")[0].json();
    assert_eq!(update["TracingConfig"]["Mode"], "PassThrough");
    assert_eq!(update["KMSKeyArn"], "");
}

/// Logging, the dead-letter target and the file system: moto accepts them but neither stores
/// nor returns them, so what is checked is what was sent.
#[tokio::test(flavor = "multi_thread")]
async fn logging_dead_letter_and_file_system_are_sent_as_lambda_takes_them() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-requests");
    let mut spec = echo(dir.path(), &name, b"requests");
    spec.deploy.logging = cargo_lambda_image::config::LoggingSettings {
        format: cargo_lambda_image::config::values::LogFormat::Json,
        application_level: Some("INFO".into()),
        system_level: Some("WARN".into()),
        log_group: None,
    };
    spec.deploy.dead_letter = Some(QUEUE.into());
    spec.deploy.vpc = Some(cargo_lambda_image::config::VpcSettings {
        subnets: vec!["subnet-a".into()],
        security_groups: vec!["sg-1".into()],
        ipv6_dual_stack: true,
    });
    let access_point = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-1";
    spec.deploy.file_system = Some(cargo_lambda_image::config::FileSystemSettings {
        arn: access_point.into(),
        mount_path: "/mnt/data".into(),
    });
    let img = assemble(&spec);
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    let create = sent(&log, "CreateFunction")[0].json();
    assert_eq!(
        create["LoggingConfig"],
        serde_json::json!({"LogFormat": "JSON", "ApplicationLogLevel": "INFO",
            "SystemLogLevel": "WARN", "LogGroup": format!("/aws/lambda/{name}")})
    );
    assert_eq!(create["DeadLetterConfig"]["TargetArn"], QUEUE);
    assert_eq!(
        create["FileSystemConfigs"],
        serde_json::json!([{"Arn": access_point, "LocalMountPath": "/mnt/data"}])
    );
    assert_eq!(create["VpcConfig"]["Ipv6AllowedForDualStack"], true);

    // Removed, they are reset: Text logs into the default group, no target, no file system.
    // (moto forgot them, so the plan sees no difference there: a new memory size makes the
    // update that carries them.)
    spec.memory += 128;
    spec.deploy.logging = Default::default();
    spec.deploy.dead_letter = None;
    spec.deploy.file_system = None;
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    let update = sent(&log, "UpdateFunctionConfiguration")[0].json();
    assert_eq!(
        update["LoggingConfig"],
        serde_json::json!({"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}")})
    );
    assert_eq!(update["DeadLetterConfig"]["TargetArn"], "");
    assert_eq!(update["FileSystemConfigs"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_url_sits_on_the_alias_public_with_both_permissions_and_goes_when_removed() {
    use cargo_lambda_image::config::values::{InvokeMode, UrlAuth};
    use cargo_lambda_image::config::{CorsSettings, UrlSettings};
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-url");
    let mut spec = echo(dir.path(), &name, b"url");
    spec.deploy.url = Some(UrlSettings {
        auth: UrlAuth::None,
        invoke_mode: InvokeMode::Buffered,
        cors: Some(CorsSettings {
            allow_origins: vec!["https://b.example".into(), "https://a.example".into()],
            max_age: Some(300),
            ..Default::default()
        }),
    });
    let img = assemble(&spec);
    let first = deployed(&spec, &img, &env.opts).await;
    let url = first
        .url
        .clone()
        .expect("the deployed function has its URL");
    assert!(url.contains(".lambda-url.us-east-1.on.aws"), "{url}");
    let log = env.recorder.take();
    let create = sent(&log, "CreateFunctionUrlConfig")[0].json();
    assert_eq!(create["AuthType"], "NONE");
    assert_eq!(create["InvokeMode"], "BUFFERED");
    assert_eq!(create["Cors"]["MaxAge"], 300);
    // The URL is on the alias, which exists by then.
    let order = Recorder::operations(&log);
    let position = |op: &str| order.iter().position(|o| o == op).unwrap();
    assert!(
        position("CreateAlias") < position("CreateFunctionUrlConfig"),
        "{order:?}"
    );
    let permissions: Vec<Value> = sent(&log, "AddPermission")
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(permissions.len(), 2, "{permissions:?}");
    assert_eq!(permissions[0]["Action"], "lambda:InvokeFunctionUrl");
    assert_eq!(permissions[0]["FunctionUrlAuthType"], "NONE");
    assert_eq!(permissions[1]["Action"], "lambda:InvokeFunction");
    assert_eq!(permissions[1]["InvokedViaFunctionUrl"], true);
    let config = env
        .lambda
        .get_function_url_config()
        .function_name(&name)
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(config.auth_type().as_str(), "NONE");
    assert_eq!(config.function_url(), url);

    // The same again (origins in another order): nothing to do.
    if let Some(cors) = spec.deploy.url.as_mut().and_then(|u| u.cors.as_mut()) {
        cors.allow_origins.reverse();
    }
    let again = deployed(&spec, &img, &env.opts).await;
    assert!(!again.changed);
    assert_eq!(again.url.as_deref(), Some(url.as_str()));
    assert_eq!(mutating(&env.recorder.take()), Vec::<String>::new());

    // IAM auth: an update, shown from/to.
    spec.deploy.url.as_mut().unwrap().auth = UrlAuth::AwsIam;
    let steps = planned(&env, &spec, &img).await;
    let update = steps
        .iter()
        .find(|s| s.operation == "UpdateFunctionUrlConfig")
        .expect("an update of the URL");
    assert_eq!(
        (
            update.changes[0].field.as_str(),
            update.changes[0].from.as_str(),
            update.changes[0].to.as_str()
        ),
        ("url.auth", "NONE", "AWS_IAM")
    );

    // The URL is no longer public: both public statements go.
    let removed = steps
        .iter()
        .filter(|s| s.operation == "RemovePermission")
        .count();
    assert_eq!(removed, 2, "{steps:?}");
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    assert_eq!(sent(&log, "RemovePermission").len(), 2);
    let statements = env
        .lambda
        .get_policy()
        .function_name(&name)
        .qualifier("live")
        .send()
        .await
        .map(|p| p.policy().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        !statements.contains("FunctionURLAllowPublicAccess"),
        "{statements}"
    );

    // No url: the URL is deleted.
    spec.deploy.url = None;
    let last = deployed(&spec, &img, &env.opts).await;
    assert_eq!(last.url, None);
    assert!(mutating(&env.recorder.take()).contains(&"DeleteFunctionUrlConfig".to_string()));
    assert!(env
        .lambda
        .get_function_url_config()
        .function_name(&name)
        .qualifier("live")
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn from_env_values_and_env_files_are_read_at_deploy_time_and_a_missing_one_stops_first() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-fromenv");
    let mut spec = echo(dir.path(), &name, b"");
    // A variable name of this test only: the process environment is shared by the tests.
    let var = format!("CLI_TEST_{}", name.replace('-', "_").to_uppercase());
    spec.env_from.insert("DB_URL".into(), var.clone());
    let img = assemble(&spec);

    // Not set: an error naming the key and the variable, before any AWS call.
    let err = deploy::deploy(&spec, &img, &env.opts, &Reporter::discard())
        .await
        .unwrap_err();
    let text = format!("{err:?} {err}");
    assert!(text.contains("env.DB_URL") && text.contains(&var), "{text}");
    assert!(env.recorder.take().is_empty(), "no call before the check");

    std::env::set_var(&var, "postgres://user:pw-from-env@db/app");
    let file = dir.path().join("deploy.env");
    std::fs::write(&file, "API_TOKEN=tok-from-file\nGREETING=hi-from-file\n").unwrap();
    let opts = DeployOptions {
        env: cargo_lambda_image::envfile::collect(&[file], &[], "--env-file").unwrap(),
        ..env.opts.clone()
    };
    deployed(&spec, &img, &opts).await;
    let f = env
        .lambda
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let vars = f.environment().unwrap().variables().unwrap();
    assert_eq!(vars["DB_URL"], "postgres://user:pw-from-env@db/app");
    assert_eq!(vars["API_TOKEN"], "tok-from-file");
    // The file wins over the metadata.
    assert_eq!(vars["GREETING"], "hi-from-file");

    // The plan names the variables that change, never their values.
    std::env::set_var(&var, "postgres://user:rotated-pw@db/app");
    let steps = planned(&env, &spec, &img).await;
    let text = serde_json::to_string(&steps).unwrap();
    assert!(text.contains("env.DB_URL"), "{text}");
    for secret in ["rotated-pw", "pw-from-env", "hi-from-file", "tok-from-file"] {
        assert!(!text.contains(secret), "{text}");
    }
    std::env::remove_var(&var);
}

/// Where moto says the alias routes: the version, and the canary's version and weight.
async fn alias_routing(env: &Env, name: &str) -> (String, Vec<(String, f64)>) {
    let alias = env
        .lambda
        .get_alias()
        .function_name(name)
        .name("live")
        .send()
        .await
        .unwrap();
    let weights = alias
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    (alias.function_version().unwrap().to_string(), weights)
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_releases_route_a_share_then_promote_and_rollback_move_the_alias() {
    use cargo_lambda_image::deploy::alias::Weight;
    use cargo_lambda_image::deploy::release::{self, Release};
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-canary");
    let spec1 = echo(&dir.path().join("v1"), &name, b"\0v1");
    let first = deployed(&spec1, &assemble(&spec1), &env.opts).await;
    assert_eq!(first.version.as_deref(), Some("1"));
    env.recorder.take();

    // Version 2 as a 10% canary: the alias stays on 1 and sends 10% to 2.
    let spec2 = echo(&dir.path().join("v2"), &name, b"\0v2");
    let image2 = assemble(&spec2);
    let canary = DeployOptions {
        canary: Weight::parse("10%"),
        ..env.opts.clone()
    };
    let planned = {
        let opts = DeployOptions {
            dry_run: true,
            ..canary.clone()
        };
        match deploy::deploy(&spec2, &image2, &opts, &Reporter::discard()).await {
            Ok(DeployOutcome::Planned { steps, .. }) => steps,
            other => panic!("{other:?}"),
        }
    };
    let alias_step = planned
        .iter()
        .find(|s| s.operation == "UpdateAlias")
        .expect("the alias moves");
    assert_eq!(alias_step.changes[0].from, "version 1");
    assert_eq!(
        alias_step.changes[0].to, "version 1 (90%) + the published version (10%)",
        "{alias_step:?}"
    );
    env.recorder.take();
    let second = deployed(&spec2, &image2, &canary).await;
    assert_eq!(second.version.as_deref(), Some("2"));
    assert_eq!(second.canary, Weight::parse("10%"));
    assert_eq!(
        alias_routing(&env, &name).await,
        ("1".to_string(), vec![("2".to_string(), 0.1)])
    );
    let update = sent(&env.recorder.take(), "UpdateAlias")[0].json();
    assert_eq!(update["FunctionVersion"], "1");
    assert_eq!(
        update["RoutingConfig"]["AdditionalVersionWeights"]["2"],
        0.1
    );

    // The same canary again: nothing to write.
    let again = deployed(&spec2, &image2, &canary).await;
    assert!(!again.changed, "{again:?}");
    assert!(mutating(&env.recorder.take()).is_empty());

    // A dry run of promote and of rollback reports the move each would make, as a change,
    // and makes no write call.
    let dry = DeployOptions {
        dry_run: true,
        ..env.opts.clone()
    };
    for (action, to) in [(Release::Promote, "2"), (Release::Rollback, "1")] {
        let would = release::release(&spec2, action, &dry, &Reporter::discard())
            .await
            .unwrap();
        assert!(would.changed && would.dry_run, "{would:?}");
        assert_eq!(would.from.to_string(), "version 1 (90%) + version 2 (10%)");
        assert_eq!(
            (would.to.version.as_str(), would.to.canary.is_none()),
            (to, true)
        );
    }
    assert!(mutating(&env.recorder.take()).is_empty());
    assert_eq!(
        alias_routing(&env, &name).await,
        ("1".to_string(), vec![("2".to_string(), 0.1)])
    );

    // promote: 2 takes the whole alias.
    let promoted = release::release(&spec2, Release::Promote, &env.opts, &Reporter::discard())
        .await
        .unwrap();
    assert!(promoted.changed);
    assert_eq!(promoted.to.version, "2");
    assert_eq!(alias_routing(&env, &name).await, ("2".to_string(), vec![]));
    // Nothing left to promote.
    let idle = release::release(&spec2, Release::Promote, &env.opts, &Reporter::discard())
        .await
        .unwrap();
    assert!(!idle.changed);

    // Version 3 at 25%, rolled back: the canary goes, the alias stays on 2.
    let spec3 = echo(&dir.path().join("v3"), &name, b"\0v3");
    let third = DeployOptions {
        canary: Weight::parse("25%"),
        ..env.opts.clone()
    };
    deployed(&spec3, &assemble(&spec3), &third).await;
    assert_eq!(
        alias_routing(&env, &name).await,
        ("2".to_string(), vec![("3".to_string(), 0.25)])
    );
    release::release(&spec3, Release::Rollback, &env.opts, &Reporter::discard())
        .await
        .unwrap();
    assert_eq!(alias_routing(&env, &name).await, ("2".to_string(), vec![]));
    // Without a canary, rollback goes to the previous version.
    let back = release::release(&spec3, Release::Rollback, &env.opts, &Reporter::discard())
        .await
        .unwrap();
    assert_eq!(
        (back.from.version.as_str(), back.to.version.as_str()),
        ("2", "1")
    );
    assert_eq!(alias_routing(&env, &name).await, ("1".to_string(), vec![]));

    // A canary needs an alias: refused before any call.
    let mut no_alias = echo(
        &dir.path().join("v4"),
        &unique("deploy-canary-noalias"),
        b"",
    );
    no_alias.deploy.alias = None;
    env.recorder.take();
    let err = deploy::deploy(
        &no_alias,
        &assemble(&no_alias),
        &canary,
        &Reporter::discard(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--canary"), "{err}");
    assert!(
        env.recorder.take().is_empty(),
        "refused before any AWS call"
    );
}

/// moto has no provisioned-concurrency API: this answers PutProvisionedConcurrencyConfig,
/// GetProvisionedConcurrencyConfig and DeleteProvisionedConcurrencyConfig as Lambda does,
/// keeping one configuration that becomes READY after `ready_after` reads (never with None).
fn fake_provisioned(recorder: &Recorder, ready_after: Option<usize>) {
    let state: Arc<Mutex<Option<(i64, usize)>>> = Arc::default();
    recorder.respond_with(Arc::new(move |operation, body| {
        let mut state = state.lock().unwrap();
        match operation {
            "PutProvisionedConcurrencyConfig" => {
                let body: Value = serde_json::from_str(body).unwrap();
                let n = body["ProvisionedConcurrentExecutions"].as_i64().unwrap();
                *state = Some((n, 0));
                let json = format!(
                    r#"{{"RequestedProvisionedConcurrentExecutions":{n},"Status":"IN_PROGRESS"}}"#
                );
                Some((202, json, None))
            }
            "GetProvisionedConcurrencyConfig" => match state.as_mut() {
                None => Some((
                    404,
                    r#"{"message":"No Provisioned Concurrency Config found for this function"}"#
                        .into(),
                    Some("ProvisionedConcurrencyConfigNotFoundException"),
                )),
                Some((n, reads)) => {
                    *reads += 1;
                    let ready = ready_after.is_some_and(|after| *reads > after);
                    let status = if ready { "READY" } else { "IN_PROGRESS" };
                    let json = format!(
                        r#"{{"RequestedProvisionedConcurrentExecutions":{n},"AllocatedProvisionedConcurrentExecutions":{},"Status":"{status}"}}"#,
                        if ready { *n } else { 0 }
                    );
                    Some((200, json, None))
                }
            },
            "DeleteProvisionedConcurrencyConfig" => {
                *state = None;
                Some((204, String::new(), None))
            }
            _ => None,
        }
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioned_concurrency_is_set_on_the_alias_waited_for_and_removed() {
    let env = env().await;
    fake_provisioned(&env.recorder, Some(1));
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-provisioned");
    let mut spec = echo(dir.path(), &name, b"");
    spec.deploy.provisioned_concurrency = Some(2);
    let img = assemble(&spec);
    deployed(&spec, &img, &env.opts).await;
    let log = env.recorder.take();
    let order = mutating(&log);
    let position = |op: &str| order.iter().position(|o| o == op).unwrap();
    assert!(
        position("CreateAlias") < position("PutProvisionedConcurrencyConfig"),
        "{order:?}"
    );
    let put = sent(&log, "PutProvisionedConcurrencyConfig")[0].json();
    assert_eq!(put["ProvisionedConcurrentExecutions"], 2);
    // It waited: the configuration was read until READY.
    assert!(sent(&log, "GetProvisionedConcurrencyConfig").len() >= 2);

    // Unchanged: no write at all.
    let again = deployed(&spec, &img, &env.opts).await;
    assert!(!again.changed);
    assert!(mutating(&env.recorder.take()).is_empty());

    // Removed from the metadata: deleted, and the plan says so.
    spec.deploy.provisioned_concurrency = None;
    let steps = planned(&env, &spec, &img).await;
    let delete = steps
        .iter()
        .find(|s| s.operation == "DeleteProvisionedConcurrencyConfig")
        .expect("planned");
    assert_eq!(delete.changes[0].from, "2");
    env.recorder.take();
    deployed(&spec, &img, &env.opts).await;
    assert_eq!(
        mutating(&env.recorder.take()),
        ["DeleteProvisionedConcurrencyConfig"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioned_concurrency_never_ready_fails_after_the_bound_and_puts_the_alias_back() {
    let env = env().await;
    fake_provisioned(&env.recorder, None);
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-notready");
    let spec1 = echo(&dir.path().join("v1"), &name, b"\0v1");
    deployed(&spec1, &assemble(&spec1), &env.opts).await;
    env.recorder.take();

    let mut spec2 = echo(&dir.path().join("v2"), &name, b"\0v2");
    spec2.deploy.provisioned_concurrency = Some(3);
    let opts = DeployOptions {
        provisioned_timeout: Some(std::time::Duration::from_secs(2)),
        ..env.opts.clone()
    };
    let started = std::time::Instant::now();
    let err = deploy::deploy(&spec2, &assemble(&spec2), &opts, &Reporter::discard())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not ready after 2 s"), "{text}");
    assert!(text.contains("put back on version 1"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // The alias is where it was, and the provisioned concurrency was removed again.
    assert_eq!(alias_routing(&env, &name).await, ("1".to_string(), vec![]));
    let order = mutating(&env.recorder.take());
    assert_eq!(
        order.iter().filter(|o| *o == "UpdateAlias").count(),
        2,
        "moved, then put back: {order:?}"
    );
    assert_eq!(order.last().unwrap(), "DeleteProvisionedConcurrencyConfig");
}

/// The tags of each image of a repository, through our own ECR client.
async fn repository_tags(
    env: &Env,
    repository: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let out = env
        .ecr
        .describe_images()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    out.image_details()
        .iter()
        .map(|d| {
            (
                d.image_digest().unwrap().to_string(),
                d.image_tags().to_vec(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ecr_keep_protects_every_versions_image_and_prune_deletes_only_unused_ones() {
    use cargo_lambda_image::deploy::prune;
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-keep");
    let repository = format!("{name}-repo");

    // Version 1 before `keep` was set.
    let spec1 = echo(&dir.path().join("v1"), &name, b"\0v1");
    let image1 = assemble(&spec1);
    deployed(&spec1, &image1, &env.opts).await;

    // With keep = 2: version 1's image is tagged too, version 2's, then the policy is set.
    let mut spec2 = echo(&dir.path().join("v2"), &name, b"\0v2");
    spec2.deploy.ecr_keep = Some(2);
    let image2 = assemble(&spec2);
    env.recorder.take();
    deployed(&spec2, &image2, &env.opts).await;
    let log = env.recorder.take();
    let order = mutating(&log);
    assert_eq!(
        order.last().map(String::as_str),
        Some("PutLifecyclePolicy"),
        "{order:?}"
    );
    let policy: Value = serde_json::from_str(
        env.ecr
            .get_lifecycle_policy()
            .repository_name(&repository)
            .send()
            .await
            .unwrap()
            .lifecycle_policy_text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["rules"][0]["selection"]["tagPrefixList"],
        serde_json::json!(["lambda-"])
    );
    assert_eq!(policy["rules"][1]["selection"]["countNumber"], 2);
    let tags = repository_tags(&env, &repository).await;
    assert!(
        tags[&image1.digest].contains(&format!("lambda-{name}-v1")),
        "{tags:?}"
    );
    assert!(
        tags[&image2.digest].contains(&format!("lambda-{name}-v2")),
        "{tags:?}"
    );

    // Unchanged: no tagging, no policy write.
    let again = deployed(&spec2, &image2, &env.opts).await;
    assert!(!again.changed);
    let log = env.recorder.take();
    assert!(
        sent(&log, "BatchGetImage").is_empty() && mutating(&log).is_empty(),
        "{:?}",
        mutating(&log)
    );

    // Version 3; then version 1 is deleted: its image is the only unused one.
    let mut spec3 = echo(&dir.path().join("v3"), &name, b"\0v3");
    spec3.deploy.ecr_keep = Some(2);
    let image3 = assemble(&spec3);
    deployed(&spec3, &image3, &env.opts).await;
    env.lambda
        .delete_function()
        .function_name(&name)
        .qualifier("1")
        .send()
        .await
        .unwrap();
    let listed = prune::prune(&[spec3.clone()], &env.opts, false, &Reporter::discard())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let unused: Vec<&str> = listed[0].unused.iter().map(|i| i.digest.as_str()).collect();
    assert_eq!(unused, [image1.digest.as_str()], "{listed:?}");
    assert_eq!(listed[0].used, 2);
    assert!(!listed[0].deleted);
    assert_eq!(
        repository_tags(&env, &repository).await.len(),
        3,
        "listing deletes nothing"
    );

    let pruned = prune::prune(&[spec3.clone()], &env.opts, true, &Reporter::discard())
        .await
        .unwrap();
    assert!(
        pruned[0].deleted && pruned[0].refused.is_empty(),
        "{pruned:?}"
    );
    let left = repository_tags(&env, &repository).await;
    assert!(!left.contains_key(&image1.digest), "{left:?}");
    assert!(left.contains_key(&image2.digest) && left.contains_key(&image3.digest));

    // `keep` removed: the policy goes.
    let mut spec4 = spec3.clone();
    spec4.deploy.ecr_keep = None;
    env.recorder.take();
    deployed(&spec4, &image3, &env.opts).await;
    assert_eq!(mutating(&env.recorder.take()), ["DeleteLifecyclePolicy"]);

    // A function that was never deployed: prune refuses to guess.
    let mut ghost = spec3.clone();
    ghost.lambda_name = unique("deploy-keep-ghost");
    let err = prune::prune(&[ghost], &env.opts, true, &Reporter::discard())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no function deployed from"),
        "{err}"
    );
    assert!(repository_tags(&env, &repository)
        .await
        .contains_key(&image3.digest));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_on_its_old_per_architecture_role_moves_to_the_shared_one() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deploy-legacy");
    let mut spec = echo(dir.path(), &name, b"");
    spec.lambda_name = format!("{name}-arm64");
    // What an earlier version made: a role per architecture, named after the Lambda name.
    let legacy = format!("{name}-arm64-lambda-role");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let legacy_arn = env
        .iam
        .create_role()
        .role_name(&legacy)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    spec.role = Some(legacy_arn.clone());
    let img = assemble(&spec);
    deployed(&spec, &img, &env.opts).await;

    // The role no longer configured: the function moves to `<function>-lambda-role`.
    spec.role = None;
    let steps = planned(&env, &spec, &img).await;
    let shared = format!("arn:aws:iam::{ACCOUNT}:role/{name}-lambda-role");
    assert!(
        steps.iter().any(|s| s.operation == "CreateRole"),
        "{steps:?}"
    );
    let change = steps
        .iter()
        .flat_map(|s| s.changes.iter())
        .find(|c| c.field == "role")
        .expect("the role changes");
    assert_eq!(
        (change.from.as_str(), change.to.as_str()),
        (legacy_arn.as_str(), shared.as_str())
    );
    deployed(&spec, &img, &env.opts).await;
    let configuration = env
        .lambda
        .get_function_configuration()
        .function_name(&spec.lambda_name)
        .send()
        .await
        .unwrap();
    assert_eq!(configuration.role(), Some(shared.as_str()));
}
