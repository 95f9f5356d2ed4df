//! CloudFormation and SAM templates for the fixture workspace, validated by the real
//! `cfn-lint` (PyPI; `cargo xtask ci` installs it into its venv and puts that on PATH). (The
//! example xtask under `templates/xtask` is a member of the workspace, and tests/parity.rs
//! runs it.)

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cargo_lambda_image::config::{
    self, BaseImage, FunctionSpec, Overrides, PlanRequest, Selection,
};
use cargo_lambda_image::oci::sha256_digest;
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::template::{self, ImageRef, LaunchConfig, TemplateFormat};
use serde_json::Value;
use support::{fixture_workspace, texts};

const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const ROLE: &str = "arn:aws:iam::123456789012:role/fixture-greet-role";

/// The plan of the whole fixture workspace for both architectures.
fn workspace_plan() -> Vec<FunctionSpec> {
    workspace_plan_for(&[Arch::X86_64, Arch::Arm64])
}

/// The plan of the whole fixture workspace for these architectures.
fn workspace_plan_for(arches: &[Arch]) -> Vec<FunctionSpec> {
    let request = PlanRequest {
        selection: Selection {
            manifest_path: Some(fixture_workspace().join("Cargo.toml")),
            workspace: true,
            ..Default::default()
        },
        overrides: Overrides {
            arch: Some(arches.to_vec()),
            ..Default::default()
        },
        ..Default::default()
    };
    config::plan(&request).expect("plan").functions
}

/// A made-up (but well-formed) digest per (function, arch).
fn fake_image(spec: &FunctionSpec) -> ImageRef {
    let digest = sha256_digest(format!("{}/{}", spec.name, spec.arch).as_bytes());
    ImageRef::new(format!("{REGISTRY}/{}@{digest}", spec.image.repository))
        .expect("image URI by digest")
        .with_arch(spec.arch)
}

/// The fixture plan with some variety: `hello` runs a configured command, `goodbye` has a
/// role and tags, and echo is on scratch (so its image has no `/lambda-entrypoint.sh`).
fn varied_functions() -> Vec<(FunctionSpec, ImageRef)> {
    workspace_plan()
        .into_iter()
        .map(|mut spec| {
            match spec.bin.as_str() {
                "hello" => spec.image.command = Some(vec!["hello.handler".into()]),
                "goodbye" => {
                    spec.role = Some(ROLE.into());
                    spec.tags.insert("team".into(), "fixtures".into());
                    spec.tags.insert("cost-center".into(), "42".into());
                }
                _ => {
                    spec.base_image = BaseImage::from_reference("scratch");
                    spec.image.workdir = "/tmp".into();
                }
            }
            let image = fake_image(&spec);
            (spec, image)
        })
        .collect()
}

fn cfn_lint(args: &[&str], path: &Path) -> Output {
    let mut candidates = vec![PathBuf::from("cfn-lint")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/cargo-lambda-image/ci/venv/bin/cfn-lint"));
    }
    for program in &candidates {
        if let Ok(out) = Command::new(program)
            .arg("--template")
            .arg(path)
            .args(args)
            .output()
        {
            return out;
        }
    }
    panic!(
        "cfn-lint not found (tried {candidates:?}): run `cargo xtask ci`, or \
         `~/.cache/cargo-lambda-image/ci/venv/bin/pip install cfn-lint`"
    )
}

/// Writes a template to a temporary file and runs cfn-lint on it.
fn lint(template: &Value) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.json");
    std::fs::write(&path, serde_json::to_string_pretty(template).unwrap()).unwrap();
    (cfn_lint(&["--regions", "us-east-1"], &path), dir)
}

fn assert_lint_clean(template: &Value) {
    let (out, _dir) = lint(template);
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "cfn-lint found problems (exit {:?}):\n{stdout}\n{stderr}\ntemplate:\n{}",
        out.status.code(),
        serde_json::to_string_pretty(template).unwrap()
    );
}

/// The resources of a type, by logical ID.
fn resources<'t>(template: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

fn by_name<'t>(template: &'t Value, kind: &str, name: &str) -> &'t Value {
    resources(template, kind)
        .into_iter()
        .map(|(_, r)| &r["Properties"])
        .find(|p| p["FunctionName"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

#[test]
fn cloudformation_template_of_the_workspace_passes_cfn_lint() {
    let functions = varied_functions();
    let template = template::render(&functions, TemplateFormat::CloudFormation).unwrap();
    assert_lint_clean(&template);

    let lambdas = resources(&template, "AWS::Lambda::Function");
    assert_eq!(
        lambdas.len(),
        functions.len(),
        "one resource per (function, arch)"
    );
    assert_eq!(functions.len(), 6, "echo, hello, goodbye x two arches");
    for (id, resource) in &lambdas {
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        let props = &resource["Properties"];
        assert_eq!(props["PackageType"], "Image");
        let uri = props["Code"]["ImageUri"].as_str().unwrap();
        assert!(
            uri.starts_with(REGISTRY) && uri.contains("@sha256:"),
            "{uri}"
        );
        assert!(props.get("ImageUri").is_none());
        assert_eq!(props["Architectures"].as_array().unwrap().len(), 1);
        assert!(props["EphemeralStorage"]["Size"].is_u64());
        let output = template["Outputs"]
            .as_object()
            .unwrap()
            .values()
            .find(|o| o["Value"]["Fn::GetAtt"][0] == id.as_str());
        assert!(output.is_some(), "an ARN output for {id}");
    }

    // Multi-arch: arm64 gets its own name, as `deploy` names it.
    let hello = by_name(&template, "AWS::Lambda::Function", "hello");
    let hello_arm = by_name(&template, "AWS::Lambda::Function", "hello-arm64");
    assert_eq!(hello["Architectures"], serde_json::json!(["x86_64"]));
    assert_eq!(hello_arm["Architectures"], serde_json::json!(["arm64"]));
    assert_ne!(hello["Code"], hello_arm["Code"]);
    assert_eq!(hello["MemorySize"], 512);
    assert_eq!(hello["Timeout"], 10);
    assert_eq!(hello["Environment"]["Variables"]["GREETING"], "hello");

    // A configured command brings ImageConfig with all three fields.
    assert_eq!(
        hello["ImageConfig"],
        serde_json::json!({
            "EntryPoint": ["/lambda-entrypoint.sh"],
            "Command": ["hello.handler"],
            "WorkingDirectory": "/var/task",
        })
    );
    // A configured workdir on scratch: the bootstrap is the entrypoint, there is no CMD.
    let echo = by_name(&template, "AWS::Lambda::Function", "fixture-echo-arm64");
    assert_eq!(
        echo["ImageConfig"],
        serde_json::json!({
            "EntryPoint": ["/var/runtime/bootstrap"],
            "Command": [],
            "WorkingDirectory": "/tmp",
        })
    );
    // Nothing configured: no ImageConfig, the image's own settings apply.
    let goodbye = by_name(&template, "AWS::Lambda::Function", "goodbye");
    assert!(goodbye.get("ImageConfig").is_none());

    // A configured role is used as is; otherwise a role with the basic execution policy.
    assert_eq!(goodbye["Role"], ROLE);
    assert_eq!(
        goodbye["Tags"],
        serde_json::json!([
            {"Key": "cost-center", "Value": "42"},
            {"Key": "team", "Value": "fixtures"},
        ])
    );
    let role_id = hello["Role"]["Fn::GetAtt"][0].as_str().unwrap();
    let role = &template["Resources"][role_id];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    assert!(role["Properties"]["ManagedPolicyArns"][0]["Fn::Sub"]
        .as_str()
        .unwrap()
        .ends_with("service-role/AWSLambdaBasicExecutionRole"));
    assert_eq!(
        resources(&template, "AWS::IAM::Role").len(),
        4,
        "a role for each function but goodbye's two"
    );
}

#[test]
fn sam_template_of_the_workspace_passes_cfn_lint() {
    let functions = varied_functions();
    let template = template::render(&functions, TemplateFormat::Sam).unwrap();
    assert_lint_clean(&template);

    assert_eq!(template["Transform"], "AWS::Serverless-2016-10-31");
    let sam = resources(&template, "AWS::Serverless::Function");
    assert_eq!(sam.len(), 6);
    assert!(
        resources(&template, "AWS::IAM::Role").is_empty(),
        "SAM makes the roles"
    );
    let hello = by_name(&template, "AWS::Serverless::Function", "hello-arm64");
    assert_eq!(hello["PackageType"], "Image");
    assert!(hello["ImageUri"].as_str().unwrap().contains("@sha256:"));
    assert!(hello.get("Code").is_none());
    assert_eq!(hello["Architectures"], serde_json::json!(["arm64"]));
    let config = hello["ImageConfig"].as_object().unwrap();
    for field in ["EntryPoint", "Command", "WorkingDirectory"] {
        assert!(config.contains_key(field), "{field} in {config:?}");
    }
    let goodbye = by_name(&template, "AWS::Serverless::Function", "goodbye");
    assert_eq!(goodbye["Tags"]["team"], "fixtures", "SAM tags are a map");
    assert_eq!(goodbye["Role"], ROLE);
}

#[test]
fn cfn_lint_rejects_a_template_missing_a_required_field() {
    let functions = varied_functions();
    let mut template = template::render(&functions, TemplateFormat::CloudFormation).unwrap();
    let (id, _) = resources(&template, "AWS::Lambda::Function")[0];
    let id = id.clone();
    template["Resources"][&id]["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("Code");
    let (out, _dir) = lint(&template);
    let (stdout, stderr) = texts(&out);
    assert!(
        !out.status.success(),
        "cfn-lint accepted a function without Code:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("'Code' is a required property"),
        "cfn-lint names the missing field: {stdout}"
    );
}

#[test]
fn single_arch_functions_keep_their_names_and_images_must_match_arches() {
    // Planned for arm64 alone, functions keep their names (the plan names them).
    let specs = workspace_plan_for(&[Arch::Arm64]);
    let functions: Vec<(FunctionSpec, ImageRef)> =
        specs.iter().map(|s| (s.clone(), fake_image(s))).collect();
    let template = template::render(&functions, TemplateFormat::CloudFormation).unwrap();
    by_name(&template, "AWS::Lambda::Function", "hello");
    by_name(&template, "AWS::Lambda::Function", "fixture-echo");

    let mut wrong = functions.clone();
    wrong[0].1 = wrong[0].1.clone().with_arch(Arch::X86_64);
    let err = template::render(&wrong, TemplateFormat::Sam).unwrap_err();
    assert!(err.to_string().contains("x86_64 image"), "{err}");

    let twice = vec![functions[0].clone(), functions[0].clone()];
    assert!(template::render(&twice, TemplateFormat::Sam).is_err());
    assert!(template::render(&[], TemplateFormat::Sam).is_err());

    let mut bad_role = functions[0].clone();
    bad_role.0.role = Some("my-role".into());
    assert!(template::render(&[bad_role], TemplateFormat::CloudFormation).is_err());
}

#[test]
fn launch_config_of_an_image_overrides_the_guess() {
    let mut spec = workspace_plan().remove(0);
    spec.base_image = BaseImage::from_reference("registry.example/custom:1");
    spec.image.workdir = "/srv".into();
    let guessed = template::render(
        &[(spec.clone(), fake_image(&spec))],
        TemplateFormat::CloudFormation,
    )
    .unwrap();
    let resource = &resources(&guessed, "AWS::Lambda::Function")[0].1["Properties"];
    assert_eq!(
        resource["ImageConfig"]["EntryPoint"],
        serde_json::json!(["/var/runtime/bootstrap"])
    );
    let launch = LaunchConfig {
        entrypoint: vec!["/custom-entry".into()],
        command: vec!["handler".into()],
        workdir: "/var/task".into(),
    };
    let known = template::render(
        &[(spec.clone(), fake_image(&spec).with_launch(launch))],
        TemplateFormat::CloudFormation,
    )
    .unwrap();
    let resource = &resources(&known, "AWS::Lambda::Function")[0].1["Properties"];
    assert_eq!(
        resource["ImageConfig"],
        serde_json::json!({
            "EntryPoint": ["/custom-entry"],
            "Command": ["handler"],
            "WorkingDirectory": "/srv",
        })
    );
}

/// The guess from the plan matches what an assembled image really runs, on scratch and on a
/// provided.al2 stand-in.
#[test]
fn launch_config_guess_matches_assembled_images() {
    use cargo_lambda_image::image::{self, base, ImageOptions};
    use support::images::{echo_bootstrap, echo_spec, fake_provided_base};

    let dir = tempfile::tempdir().unwrap();
    let bootstrap = echo_bootstrap(Arch::X86_64);
    let scratch = echo_spec(Arch::X86_64, "scratch", &dir.path().join("s"), &bootstrap);
    let built = image::assemble(
        &scratch,
        scratch.artifact.as_std_path(),
        &base::scratch(Arch::X86_64),
        &ImageOptions::default(),
    )
    .unwrap();
    let real = LaunchConfig::from_image(&built).unwrap();
    assert_eq!(real.entrypoint, ["/var/runtime/bootstrap"]);
    assert_eq!(real, LaunchConfig::for_spec(&scratch));

    let base_dir = fake_provided_base(&dir.path().join("base"));
    let reference = format!("oci:{}:al2", base_dir.display());
    let mut provided = echo_spec(Arch::X86_64, &reference, &dir.path().join("p"), &bootstrap);
    // The stand-in is a local layout; classify it as the provided.al2 it stands for.
    provided.base_image = BaseImage::from_reference("public.ecr.aws/lambda/provided:al2");
    let resolved = base::from_layout(&base_dir, Some("al2"), Arch::X86_64, &reference).unwrap();
    let built = image::assemble(
        &provided,
        provided.artifact.as_std_path(),
        &resolved,
        &ImageOptions::default(),
    )
    .unwrap();
    let real = LaunchConfig::from_image(&built).unwrap();
    assert_eq!(real.entrypoint, ["/lambda-entrypoint.sh"]);
    assert_eq!(real.command, ["bootstrap"]);
    assert_eq!(real, LaunchConfig::for_spec(&provided));
}

/// The GitHub Actions example is valid YAML (parsed by PyYAML, which cfn-lint brings into the
/// venv) with a push job per architecture feeding a deploy job.
#[test]
fn github_actions_example_pushes_per_arch_and_deploys() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/ci/github-actions.yml");
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let mut candidates = vec![PathBuf::from("python3")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/cargo-lambda-image/ci/venv/bin/python3"));
    }
    let workflow: Value = candidates
        .iter()
        .filter_map(|python| {
            let out = Command::new(python)
                .args(["-c", script])
                .arg(&path)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| serde_json::from_slice(&out.stdout).expect("JSON from python"))
        })
        .next()
        .unwrap_or_else(|| {
            panic!("no python3 with PyYAML parsed {path:?} (tried {candidates:?}); is it valid YAML? `pip install cfn-lint` brings PyYAML")
        });
    let push = &workflow["jobs"]["push"];
    assert_eq!(
        push["strategy"]["matrix"]["arch"],
        serde_json::json!(["x86_64", "arm64"])
    );
    let runs: Vec<&str> = push["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(runs.iter().any(|r| r.contains("cargo install")), "{runs:?}");
    let push_run = runs
        .iter()
        .find(|r| r.contains("cargo lambda-image push"))
        .expect("a push step");
    assert!(push_run.contains("--arch ${{ matrix.arch }}"), "{push_run}");
    assert!(push_run.contains("--message-format json"), "{push_run}");
    let uses: Vec<&str> = push["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .collect();
    assert!(
        uses.iter()
            .any(|u| u.starts_with("actions/upload-artifact")),
        "{uses:?}"
    );
    assert_eq!(workflow["jobs"]["deploy"]["needs"], "push");
}

/// `template` on the fixture's echo function: with `--push`, a SAM template written to a file
/// names the digest that was pushed and passes cfn-lint; without, a CloudFormation template on
/// stdout names the digest of the image `image` builds from the same inputs.
#[test]
fn template_command_writes_templates_that_name_the_built_digest() {
    let registry = support::service_env("CLI_TEST_REGISTRY");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out/template.json");
    let base_args = |cmd: &mut Command| {
        cmd.args(["-p", "echo", "--base-image", "scratch", "--manifest-path"])
            .arg(fixture_workspace().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", support::fixture_target_dir("musl"))
            .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry);
    };

    let mut cmd = support::cli();
    cmd.args([
        "template",
        "--format",
        "sam",
        "--push",
        "--message-format",
        "json",
    ])
    .args(["--registry", &registry, "-o"])
    .arg(&file);
    base_args(&mut cmd);
    let out = support::run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let events = support::json_lines(&out);
    let pushed: Vec<&Value> = events.iter().filter(|e| e["reason"] == "pushed").collect();
    assert_eq!(pushed.len(), 1, "{stdout}");
    let image_uri = pushed[0]["image"]["image_uri"].as_str().unwrap();
    let written: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "template")
        .collect();
    assert_eq!(written[0]["path"], file.display().to_string());
    let sam: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(sam["Transform"], template::SAM_TRANSFORM);
    let functions = resources(&sam, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 1, "{sam}");
    let properties = &functions[0].1["Properties"];
    assert_eq!(properties["ImageUri"], image_uri);
    assert_eq!(properties["FunctionName"], "fixture-echo");
    assert_eq!(properties["Architectures"], serde_json::json!(["x86_64"]));
    assert_eq!(properties["MemorySize"], 256);
    assert_lint_clean(&sam);
    // The digest the template names is in the registry.
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{image_uri}"))
        .output()
        .expect("skopeo runs");
    assert!(out.status.success(), "{:?}", texts(&out));

    // Without --push, to stdout: the digest is the one `image` reports.
    let mut cmd = support::cli();
    cmd.args(["template", "--registry", REGISTRY]);
    base_args(&mut cmd);
    let out = support::run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let cfn: Value = serde_json::from_str(&stdout).expect("stdout is the template alone");
    let mut cmd = support::cli();
    cmd.args(["image", "--message-format", "json"]);
    base_args(&mut cmd);
    let out = support::run(&mut cmd);
    let digest = support::json_lines(&out)
        .into_iter()
        .find(|e| e["reason"] == "image")
        .map(|e| e["image"]["digest"].as_str().unwrap().to_string())
        .expect("an image event");
    let functions = resources(&cfn, "AWS::Lambda::Function");
    assert_eq!(
        functions[0].1["Properties"]["Code"]["ImageUri"],
        format!("{REGISTRY}/fixture-echo@{digest}")
    );
    assert_lint_clean(&cfn);
}

/// The rendered templates of the varied fixture functions, both kinds, as committed: keys in a
/// stable order, names as the plan decides them, every image by digest.
#[test]
fn rendered_templates_read_the_same_every_time() {
    let functions = varied_functions();
    for format in [TemplateFormat::CloudFormation, TemplateFormat::Sam] {
        let text = template::render_string(&functions, format).unwrap();
        insta::assert_snapshot!(format!("template-{format}"), text);
    }
}

/// `from-env` values, asynchronous settings and a public Function URL, in both formats.
#[test]
fn secrets_async_settings_and_urls_render_as_cfn_lint_accepts_them() {
    let functions: Vec<(FunctionSpec, ImageRef)> = varied_functions()
        .into_iter()
        .map(|(mut spec, image)| {
            if spec.bin == "goodbye" {
                spec.env_from.insert("DB_URL".into(), "DB_URL".into());
                spec.deploy.async_invoke = Some(cargo_lambda_image::config::AsyncSettings {
                    max_retries: Some(0),
                    max_event_age: Some(600),
                    on_success: None,
                    on_failure: Some("arn:aws:sqs:us-east-1:123456789012:failed".into()),
                });
                spec.deploy.url = Some(cargo_lambda_image::config::UrlSettings {
                    auth: cargo_lambda_image::config::values::UrlAuth::None,
                    invoke_mode: cargo_lambda_image::config::values::InvokeMode::ResponseStream,
                    cors: Some(cargo_lambda_image::config::CorsSettings {
                        allow_origins: vec!["https://example.com".into()],
                        max_age: Some(60),
                        ..Default::default()
                    }),
                });
            }
            (spec, image)
        })
        .collect();

    let cfn = template::render(&functions, TemplateFormat::CloudFormation).unwrap();
    assert_lint_clean(&cfn);
    let goodbye = by_name(&cfn, "AWS::Lambda::Function", "goodbye");
    let variables = &goodbye["Environment"]["Variables"];
    let parameter = variables["DB_URL"]["Ref"].as_str().unwrap();
    assert_eq!(cfn["Parameters"][parameter]["NoEcho"], true);
    assert_eq!(variables["GREETING"], "goodbye", "literal values stay");
    let invoke = resources(&cfn, "AWS::Lambda::EventInvokeConfig");
    assert_eq!(invoke.len(), 2, "one per arch of goodbye: {invoke:?}");
    let props = &invoke[0].1["Properties"];
    assert_eq!(props["MaximumRetryAttempts"], 0);
    assert_eq!(
        props["DestinationConfig"]["OnFailure"]["Destination"],
        "arn:aws:sqs:us-east-1:123456789012:failed"
    );
    let urls = resources(&cfn, "AWS::Lambda::Url");
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[0].1["Properties"]["AuthType"], "NONE");
    assert_eq!(urls[0].1["Properties"]["InvokeMode"], "RESPONSE_STREAM");
    assert_eq!(
        urls[0].1["Properties"]["Cors"]["AllowOrigins"],
        serde_json::json!(["https://example.com"])
    );
    let actions: Vec<&Value> = resources(&cfn, "AWS::Lambda::Permission")
        .iter()
        .map(|(_, r)| &r["Properties"]["Action"])
        .collect();
    assert_eq!(
        actions.len(),
        4,
        "two statements per public URL: {actions:?}"
    );
    assert!(actions.iter().any(|a| *a == "lambda:InvokeFunctionUrl"));
    assert!(actions.iter().any(|a| *a == "lambda:InvokeFunction"));
    let url_outputs = cfn["Outputs"]
        .as_object()
        .unwrap()
        .values()
        .filter(|o| o["Value"]["Fn::GetAtt"][1] == "FunctionUrl")
        .count();
    assert_eq!(url_outputs, 2);

    let sam = template::render(&functions, TemplateFormat::Sam).unwrap();
    assert_lint_clean(&sam);
    let goodbye = by_name(&sam, "AWS::Serverless::Function", "goodbye");
    assert_eq!(goodbye["FunctionUrlConfig"]["AuthType"], "NONE");
    assert_eq!(
        goodbye["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"],
        "SQS"
    );
    assert!(sam["Parameters"].as_object().unwrap().len() == 2);
}
