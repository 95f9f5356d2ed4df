//! The public output contract: one example of every event, as `--message-format json` prints
//! it, kept as an insta snapshot (tests/snapshots/), so that any change to the JSON users read
//! shows up in review. Every reason has an example, and each example's `reason` is its own.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cargo_lambda_image::check::{Finding, Report, Severity};
use cargo_lambda_image::compile::{elf::ElfInfo, Artifact, ExtensionArtifact};
use cargo_lambda_image::config::{self, PlanRequest, Selection};
use cargo_lambda_image::deploy::alias::{Canary, Routing, Weight};
use cargo_lambda_image::deploy::prune::Pruned;
use cargo_lambda_image::deploy::release::{Release, Released};
use cargo_lambda_image::deploy::{self, DeployOutcome, DeployedFunction, PlannedStep};
use cargo_lambda_image::doctor::Check;
use cargo_lambda_image::event::{ErrorEvent, Event, Reason};
use cargo_lambda_image::image::BuiltImage;
use cargo_lambda_image::oci::{self, Descriptor, Platform};
use cargo_lambda_image::progress::Stage;
use cargo_lambda_image::publish::index::IndexPushed;
use cargo_lambda_image::publish::lifecycle::StoredImage;
use cargo_lambda_image::publish::PushedImage;
use cargo_lambda_image::serve::{Invoked, ServedFunction};
use cargo_lambda_image::target::{Arch, GlibcVersion};
use cargo_lambda_image::template::TemplateFormat;
use cargo_lambda_image::testing::Invocation;
use serde_json::json;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const CONFIG: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const LAYER: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
const URI: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders@sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// The plan of the fixture's echo function, its paths made the same on every machine.
fn plan() -> config::Plan {
    let request = PlanRequest {
        selection: Selection {
            manifest_path: Some(crate::support::fixture_workspace().join("Cargo.toml")),
            packages: vec!["echo".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut plan = config::plan(&request).unwrap();
    plan.workspace_root = "/w".into();
    plan.workspace_manifest = "/w/Cargo.toml".into();
    plan.target_directory = "/w/target".into();
    for f in &mut plan.functions {
        f.manifest_path = "/w/crates/echo/Cargo.toml".into();
        f.artifact = format!("/w/target/lambda-image/{}/{}/bootstrap", f.name, f.arch).into();
    }
    plan
}

fn descriptor(digest: &str) -> Descriptor {
    Descriptor::new(oci::MEDIA_OCI_LAYER_GZIP, digest, 1234)
}

/// One example of every event.
fn examples() -> Vec<Event> {
    let plan = plan();
    let served = ServedFunction {
        function: "fixture-echo".into(),
        lambda_name: "fixture-echo".into(),
        arch: Arch::X86_64,
        digest: DIGEST.into(),
        invoke_url: "http://127.0.0.1:9001/2015-03-31/functions/fixture-echo/invocations".into(),
        http: Some("http://127.0.0.1:3000".into()),
    };
    let mut manifest = Descriptor::new(oci::MEDIA_OCI_MANIFEST, DIGEST, 500);
    manifest.platform = Some(Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
    });
    let step = PlannedStep {
        service: "lambda".into(),
        operation: "UpdateFunctionConfiguration".into(),
        target: "orders".into(),
        summary: "update memory".into(),
        changes: vec![deploy::plan::FieldChange {
            field: "memory".into(),
            from: "128".into(),
            to: "256".into(),
        }],
    };
    vec![
        Event::Plan {
            plan,
            commands: None,
        },
        Event::Compiled {
            artifact: Artifact {
                function: "fixture-echo".into(),
                arch: Arch::X86_64,
                target: "x86_64-unknown-linux-musl".into(),
                path: "/w/target/lambda-image/fixture-echo/x86_64/bootstrap".into(),
                size: 3_200_000,
                elf: ElfInfo {
                    arch: Some(Arch::X86_64),
                    machine: 62,
                    interpreter: None,
                    max_glibc: None::<GlibcVersion>,
                },
                extensions: vec![ExtensionArtifact {
                    name: "telemetry".into(),
                    package: "telemetry-ext".into(),
                    path: "/w/target/lambda-image/.extensions/telemetry/x86_64-unknown-linux-musl-cargo/telemetry".into(),
                    size: 400_000,
                }],
            },
        },
        Event::Check {
            report: Report {
                function: "fixture-echo".into(),
                arch: Arch::X86_64,
                digest: Some(DIGEST.into()),
                findings: vec![Finding {
                    rule: "single-manifest",
                    passed: true,
                    severity: Severity::Pass,
                    message: "one image, no index".into(),
                    help: String::new(),
                }],
            },
        },
        Event::Image {
            image: BuiltImage {
                function: "fixture-echo".into(),
                arch: Arch::X86_64,
                layout: "/w/target/lambda-image/fixture-echo/x86_64/images/sha256-1".into(),
                repository: "fixture-echo".into(),
                tag: "0.1.0-x86_64".into(),
                digest: DIGEST.into(),
                manifest_size: 500,
                config_digest: CONFIG.into(),
                layers: vec![descriptor(LAYER)],
                base: "scratch".into(),
                lease: Default::default(),
            },
            docker_archive: None,
            loaded: None,
            layouts: Vec::new(),
            sbom: None,
        },
        Event::Pushed {
            image: PushedImage {
                function: "fixture-echo".into(),
                arch: Arch::X86_64,
                repository: "fixture-echo".into(),
                tag: "0.1.0-x86_64".into(),
                digest: DIGEST.into(),
                image_uri: URI.into(),
                uploaded: vec![LAYER.into()],
                mounted: Vec::new(),
                existing: vec![CONFIG.into()],
                bytes_uploaded: 1234,
                referrer: None,
            },
        },
        Event::Index {
            index: IndexPushed {
                repository: "fixture-echo".into(),
                tag: "0.1.0".into(),
                reference: "127.0.0.1:5000/fixture-echo:0.1.0".into(),
                digest: DIGEST.into(),
                index_uri: URI.into(),
                size: 300,
                manifests: vec![manifest],
            },
        },
        Event::Invocation {
            invocation: Invocation {
                function: "fixture-echo".into(),
                arch: Arch::X86_64,
                event: "events/ping.json".into(),
                status: 200,
                function_error: None,
                response: json!({"ping": "pong"}),
                duration_ms: 3,
                matches_expected: Some(true),
                expected: None,
            },
        },
        Event::Deployed {
            deployment: DeployedFunction {
                function: "orders".into(),
                arch: Arch::X86_64,
                arn: "arn:aws:lambda:eu-west-1:123456789012:function:orders".into(),
                version: Some("3".into()),
                alias: Some("live".into()),
                image_uri: URI.into(),
                resolved_image_uri: Some(URI.into()),
                digest: DIGEST.into(),
                changed: true,
                canary: None,
                url: None,
            },
        },
        Event::Planned {
            deployment: DeployOutcome::Planned {
                function: "orders".into(),
                arch: Arch::X86_64,
                image_uri: URI.into(),
                steps: vec![step],
            },
        },
        Event::Released {
            release: Released {
                function: "orders".into(),
                arch: Arch::X86_64,
                action: Release::Promote,
                alias: "live".into(),
                from: Routing {
                    version: "2".into(),
                    canary: Some(Canary {
                        version: "3".into(),
                        weight: Weight::parse("10%").unwrap(),
                    }),
                },
                to: Routing {
                    version: "3".into(),
                    canary: None,
                },
                changed: true,
                dry_run: false,
            },
        },
        Event::Pruned {
            pruned: Pruned {
                repository: "orders".into(),
                functions: vec!["orders".into()],
                used: 2,
                unused: vec![StoredImage {
                    digest: DIGEST.into(),
                    tags: vec!["0.1.0-x86_64".into()],
                }],
                deleted: false,
                refused: Vec::new(),
            },
        },
        Event::Doctor {
            check: Check {
                name: "rustup".into(),
                ok: true,
                detail: "rustup 1.29.0".into(),
                fix: None,
                needed: true,
            },
        },
        Event::Template {
            format: TemplateFormat::Sam,
            path: Some(PathBuf::from("template.yaml")),
            template: None,
        },
        Event::EventExample {
            kind: "sqs".into(),
            event: json!({"Records": []}),
        },
        Event::New {
            path: "greeter".into(),
            files: vec!["Cargo.toml".into(), "src/main.rs".into()],
            workspace: None,
        },
        Event::Emulator {
            invoke_url: "http://127.0.0.1:8080/2015-03-31/functions/function/invocations".into(),
        },
        Event::Serving {
            endpoint: "http://127.0.0.1:9001".into(),
            functions: vec![served.clone()],
        },
        Event::Reloaded { function: served },
        Event::Invoked {
            invoked: Invoked {
                function: "orders".into(),
                remote: true,
                status: 200,
                executed_version: Some("3".into()),
                function_error: None,
                response: r#"{"ok":true}"#.into(),
                log_tail: None,
            },
        },
        Event::Error(ErrorEvent::of_function(
            "orders",
            Arch::Arm64,
            Stage::Compile,
            &cargo_lambda_image::Error::TestFailed {
                failed: 1,
                total: 2,
            },
        )),
    ]
}

#[test]
fn every_event_has_an_example_of_its_own_reason() {
    let examples = examples();
    let mut covered = BTreeSet::new();
    for event in &examples {
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json["reason"], event.reason().as_str(), "{json}");
        covered.insert(event.reason().as_str());
    }
    // Progress never reaches JSON output.
    for reason in Reason::ALL {
        if reason == Reason::Progress {
            continue;
        }
        assert!(
            covered.contains(reason.as_str()),
            "no example of `{reason}`"
        );
    }
}

#[test]
fn the_json_of_every_event_is_what_it_was() {
    for event in examples() {
        let json = serde_json::to_string_pretty(&event).unwrap();
        insta::assert_snapshot!(format!("event_{}", event.reason().as_str()), json);
    }
}
