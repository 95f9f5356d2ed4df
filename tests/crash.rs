//! Crash safety: `image`, `push`, `deploy` (against moto) and `serve` are killed with SIGKILL
//! (the whole process group: cargo and the runtimes too) at [`KILLS`] points spread over a run.
//! After each kill the next run must succeed, the cache must hold no blob whose digest is not
//! its name, every tag must name a whole image (skopeo copies it, checking every digest), and
//! no temporary file of the killed run may be left once the next run is done.

use crate::support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{cli, json_lines, noise, service_env, texts};

/// Kills per command.
const KILLS: usize = 50;

/// What each case works in: a workspace, its own target directory and its own cache. For
/// `image`, `push` and `deploy`, a function whose image includes `data/`, rewritten before every
/// run, so that every run builds, compresses, caches and uploads a new layer; for `serve`, the
/// echo fixture (a `lambda_runtime` function), its bootstrap copied in and run `--no-build`.
struct Bench {
    root: PathBuf,
    manifest: PathBuf,
    /// The function's (and its repository's) name.
    name: String,
    /// Arguments every command gets (the selection).
    args: Vec<String>,
}

impl Bench {
    fn new(case: &str) -> Bench {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{case}"));
        let package = root.join("crashfn");
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::create_dir_all(package.join("data")).unwrap();
        write_if_changed(
            &root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crashfn\"]\nresolver = \"2\"\n",
        );
        write_if_changed(
            &package.join("Cargo.toml"),
            "[package]\nname = \"crashfn\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [package.metadata.lambda]\nbase-image = \"scratch\"\nlibc = \"musl\"\n\n\
             [package.metadata.lambda.image]\ninclude = [\"data/\"]\n",
        );
        write_if_changed(&package.join("src/main.rs"), "fn main() {}\n");
        Bench::fresh(Bench {
            manifest: root.join("Cargo.toml"),
            root,
            name: "crashfn".into(),
            args: Vec::new(),
        })
    }

    /// The echo fixture, its x86_64 musl bootstrap copied into this case's target directory.
    fn echo(case: &str) -> Bench {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{case}"));
        let bench = Bench::fresh(Bench {
            manifest: support::fixture_workspace().join("Cargo.toml"),
            root,
            name: "fixture-echo".into(),
            args: [
                "-p",
                "echo",
                "--no-build",
                "--arch",
                "x86_64",
                "--libc",
                "musl",
                "--base-image",
                "scratch",
            ]
            .map(String::from)
            .to_vec(),
        });
        let bootstrap = bench
            .target()
            .join("lambda-image/fixture-echo/x86_64/bootstrap");
        std::fs::create_dir_all(bootstrap.parent().unwrap()).unwrap();
        std::fs::copy(
            support::images::echo_bootstrap(cargo_lambda_image::target::Arch::X86_64),
            &bootstrap,
        )
        .unwrap();
        bench
    }

    /// Without what an earlier test run left: all of it is part of what is checked.
    fn fresh(bench: Bench) -> Bench {
        let _ = std::fs::remove_dir_all(bench.cache());
        let _ = std::fs::remove_dir_all(bench.target().join("lambda-image"));
        bench
    }

    /// Rewrites the included data: 4 MB that do not compress, different every time.
    fn change(&self, seed: u64) {
        let data = self.root.join("crashfn/data");
        if data.is_dir() {
            std::fs::write(data.join("blob.bin"), noise(4 << 20, seed + 1)).unwrap();
        }
    }

    fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// The CLI on this workspace, in its own process group, with its own cache.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = cli();
        cmd.args(args)
            .args(&self.args)
            .args(["--message-format", "json", "--manifest-path"])
            .arg(&self.manifest)
            .env("CARGO_TARGET_DIR", self.target())
            .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", self.cache())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap();
    }
}

/// Runs `cmd` to its end, asserting it succeeds; returns its output and how long it took.
fn complete(mut cmd: Command, what: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = cmd.output().expect("the CLI starts");
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "{what} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    (out, started.elapsed())
}

/// The shortest of three complete runs of `cmd`, each on changed data: the kill offsets must
/// fall within a run even when the machine is less busy than during one measurement (the
/// other tests run side by side).
fn shortest(bench: &Bench, cmd: &dyn Fn() -> Command, what: &str) -> Duration {
    (2..5)
        .map(|seed| {
            bench.change(seed);
            complete(cmd(), what).1
        })
        .min()
        .unwrap_or_default()
}

/// Starts `cmd`, hands it to `started` (which may start clients), and SIGKILLs its process
/// group after `after`. Returns whether it was still running then.
fn kill_after(mut cmd: Command, after: Duration, started: &dyn Fn(&mut Child)) -> bool {
    let mut child = cmd.spawn().expect("the CLI starts");
    started(&mut child);
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2).min(deadline - Instant::now()));
    }
    kill_group(&mut child);
    true
}

fn kill_group(child: &mut Child) {
    // SAFETY: signals the process group the child leads (`process_group(0)`).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// The offset of kill `i` of [`KILLS`] over a run of `length`: spread evenly over its first 90%
/// (a run under load may take longer or shorter than the one measured), the first at the very
/// start.
fn offset(i: usize, length: Duration) -> Duration {
    length.mul_f64(0.9 * i as f64 / KILLS as f64)
}

/// Every blob in the cache whose file changed since `since` hashes to its name.
fn cache_blobs_are_whole(cache: &Path, since: std::time::SystemTime) {
    let mut dirs = vec![cache.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // Blobs (pulled, and the layers built) are kept in `blobs/sha256/<hex>`.
            let is_blob = dir.ends_with("blobs/sha256")
                && name.len() == 64
                && name.bytes().all(|b| b.is_ascii_hexdigit());
            if is_blob && meta.modified().unwrap() >= since {
                let data = std::fs::read(&path).unwrap();
                assert_eq!(
                    hex::encode(Sha256::digest(&data)),
                    name,
                    "the cache holds {} under another digest",
                    path.display()
                );
            }
        }
    }
}

/// No staging entry (a temporary file or directory of ours) under `dirs`.
fn no_temporary_files(dirs: &[PathBuf]) {
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(cargo_lambda_image::store::STAGING),
                "{} outlived the next run",
                entry.path().display()
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}

/// `skopeo copy` of `reference` into a fresh OCI layout: every blob is fetched and its digest
/// checked, so the reference names a whole image.
fn whole_in_registry(reference: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:x", dir.path().display()))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "{reference} does not name a whole image: {}",
        texts(&out).1
    );
}

/// The kill loop of one command: for each of [`KILLS`] offsets over `length`, change the data,
/// start and kill a run, then run `check` (which runs the command to completion and checks
/// what it must).
fn kill_loop(
    bench: &Bench,
    length: Duration,
    start: &dyn Fn() -> Command,
    started: &dyn Fn(&mut Child),
    check: &dyn Fn(u64),
) {
    let mut killed = 0;
    for i in 0..KILLS {
        let seed = 1000 + i as u64 * 2;
        bench.change(seed);
        if kill_after(start(), offset(i, length), started) {
            killed += 1;
        }
        let since = std::time::SystemTime::now() - Duration::from_secs(1);
        bench.change(seed + 1);
        check(seed + 1);
        cache_blobs_are_whole(&bench.cache(), since);
        no_temporary_files(&[bench.target().join("lambda-image"), bench.cache()]);
    }
    // Nearly every run must have been cut: the offsets cover the run.
    assert!(
        killed >= KILLS * 4 / 5,
        "only {killed} of {KILLS} runs were killed"
    );
    cache_blobs_are_whole(&bench.cache(), std::time::UNIX_EPOCH);
    // The figures README.md's Reliability section quotes.
    eprintln!(
        "crash: {} killed {killed} of {KILLS} times over {length:?}; every next run succeeded",
        bench.root.display()
    );
}

/// Nothing to start beside the command.
fn alone(_: &mut Child) {}

#[test]
fn image_killed_at_fifty_points_leaves_nothing_broken() {
    let bench = Bench::new("image");
    bench.change(1);
    // A first run compiles the function; the loop measures the run it kills.
    complete(bench.command(&["image"]), "image");
    let length = shortest(&bench, &|| bench.command(&["image"]), "image");
    kill_loop(
        &bench,
        length,
        &|| bench.command(&["image"]),
        &alone,
        &|_| {
            let (out, _) = complete(bench.command(&["image"]), "image after a kill");
            let events = json_lines(&out);
            let image = events.iter().find(|e| e["reason"] == "image").unwrap();
            let layout = image["image"]["layout"].as_str().unwrap();
            assert!(Path::new(layout).join("index.json").is_file());
        },
    );
}

#[test]
fn push_killed_at_fifty_points_never_tags_a_partial_image() {
    let bench = Bench::new("push");
    let registry = service_env("CLI_TEST_REGISTRY");
    let push = || {
        let mut cmd = bench.command(&["push", "--registry", &registry]);
        cmd.env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry);
        cmd
    };
    bench.change(1);
    complete(push(), "push");
    let length = shortest(&bench, &push, "push");
    let repository = &bench.name;
    kill_loop(&bench, length, &push, &alone, &|_| {
        // What the killed run may have tagged, before the next run moves the tag.
        whole_in_registry(&format!("{registry}/{repository}:0.1.0-x86_64"));
        let (out, _) = complete(push(), "push after a kill");
        let pushed: Vec<Value> = json_lines(&out)
            .into_iter()
            .filter(|e| e["reason"] == "pushed")
            .collect();
        whole_in_registry(pushed[0]["image"]["image_uri"].as_str().unwrap());
    });
}

#[test]
fn deploy_killed_at_fifty_points_never_points_the_function_at_a_missing_image() {
    let bench = Bench::new("deploy");
    let registry = service_env("CLI_TEST_REGISTRY");
    let moto = support::moto::Moto::start();
    let deploy = || {
        let mut cmd = bench.command(&["deploy", "--registry", &registry]);
        cmd.args(["--region", "us-east-1", "--endpoint-url", &moto.endpoint])
            .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", &registry)
            .env("AWS_ACCESS_KEY_ID", "AKIAFAKEFORTESTS0001")
            .env("AWS_SECRET_ACCESS_KEY", "fake-secret-for-the-crash-test")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL");
        cmd
    };
    bench.change(1);
    complete(deploy(), "deploy");
    let length = shortest(&bench, &deploy, "deploy");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sdk = runtime.block_on(support::moto::sdk_config(&moto.endpoint));
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function_image = || {
        let function = runtime
            .block_on(lambda.get_function().function_name(&bench.name).send())
            .unwrap();
        let uri = function.code().unwrap().image_uri().unwrap().to_string();
        // The ECR URI's repository and digest, on the registry that holds the bytes.
        let (_, path) = uri.split_once('/').unwrap();
        format!("{registry}/{path}")
    };
    kill_loop(&bench, length, &deploy, &alone, &|_| {
        // Whatever the killed run left the function on is a whole image.
        whole_in_registry(&function_image());
        let (out, _) = complete(deploy(), "deploy after a kill");
        let deployed = json_lines(&out)
            .into_iter()
            .find(|e| e["reason"] == "deployed")
            .unwrap();
        let digest = deployed["deployment"]["digest"].as_str().unwrap();
        let now = function_image();
        assert!(now.ends_with(digest), "{now} is not the deployed {digest}");
        whole_in_registry(&now);
    });
}

/// `serve` until it answers one invocation: the run its kills are spread over (and past, into
/// the invocations a client keeps sending).
fn serve_once(bench: &Bench) -> Duration {
    let started = Instant::now();
    let mut child = bench
        .command(&["serve", "--bind", "127.0.0.1:0"])
        .spawn()
        .expect("the CLI starts");
    let endpoint = serving_endpoint(&mut child);
    let url = format!("{endpoint}/2015-03-31/functions/{}/invocations", bench.name);
    let answer = support::http::post(&url, br#"{"ping":1}"#).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), serde_json::json!({"ping": 1}));
    let length = started.elapsed();
    kill_group(&mut child);
    length
}

/// Reads the child's JSON events until `serving`, and returns its endpoint.
fn serving_endpoint(child: &mut Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["reason"] == "serving" {
            return event["endpoint"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    panic!("serve ended before serving: {stderr}");
}

#[test]
fn serve_killed_at_fifty_points_starts_again_cleanly() {
    let bench = Bench::echo("serve");
    complete(bench.command(&["image"]), "image");
    let length = serve_once(&bench) + Duration::from_millis(300);
    // While it serves, a client invokes it again and again, so that kills land in
    // invocations too.
    let invoking = |child: &mut Child| {
        let stdout = child.stdout.take().unwrap();
        let name = bench.name.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["reason"] == "serving" {
                    let endpoint = event["endpoint"].as_str().unwrap().trim_end_matches('/');
                    let url = format!("{endpoint}/2015-03-31/functions/{name}/invocations");
                    while support::http::post(&url, br#"{"ping":2}"#).is_ok() {}
                    return;
                }
            }
        });
    };
    kill_loop(
        &bench,
        length,
        &|| bench.command(&["serve", "--bind", "127.0.0.1:0"]),
        &invoking,
        &|_| {
            serve_once(&bench);
        },
    );
}
