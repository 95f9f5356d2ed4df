//! The `bench` task: measures cargo-lambda-image against the tools people use
//! instead (docker build, docker push, skopeo, plain cargo, AWS's RIE) and
//! writes the medians to `BENCHMARKS.md`.
//!
//! It is a benchmark, not a test: nothing fails when a target is missed, and
//! a tool that is missing or fails turns its cell into the reason instead of
//! stopping the run. It needs the test services (`cargo xtask services`):
//! dockerd through `DOCKER_HOST` and the registry on 127.0.0.1:5000.
//!
//! Everything it creates lives in `<target dir>/xtask-bench`: a copy of the
//! fixture workspace (so repositories and sources can be changed per run), a
//! workspace with padded binaries, a busybox base image, and the cargo target
//! directory they share.

use std::{
    env,
    ffi::c_int,
    fmt::Write as _,
    fs,
    io::{self, BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{cmd, project_root, Result};

/// The registry the test services run.
const REGISTRY: &str = "127.0.0.1:5000";
/// The target triple every measurement builds for.
const TRIPLE: &str = "x86_64-unknown-linux-musl";
/// How long each emulator throughput window lasts.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);
/// The event every invocation sends.
const EVENT: &[u8] = br#"{"bench":true}"#;
/// Docker's name of the locally made base image.
const DOCKER_BASE: &str = "xtask-bench-busybox:latest";

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, PartialEq)]
struct Options {
    /// Repetitions of every timed step; the table shows medians.
    runs: usize,
}

/// Parses `--runs N` and `--quick`.
fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options { runs: 5 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.runs = 2,
            "--runs" => {
                let value = args.next().ok_or("--runs needs a number")?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--runs needs a positive number, got `{value}`"))?;
            }
            other => return Err(format!("unknown bench option `{other}`").into()),
        }
    }
    Ok(options)
}

/// One line of the results table.
struct Row {
    what: String,
    ours: String,
    theirs: String,
    ratio: String,
    target: String,
    met: String,
}

impl Row {
    /// A row for a section that could not run at all.
    fn failed(what: &str, err: &dyn std::fmt::Display) -> Row {
        Row {
            what: what.to_owned(),
            ours: format!("not measured: {err}"),
            theirs: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            met: "—".into(),
        }
    }
}

/// One part of the benchmark; its rows, or why it could not run.
type Section = fn(&Bench) -> Result<Vec<Row>>;

/// Runs the benchmark and writes `BENCHMARKS.md`.
pub(crate) fn bench(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    let bench = Bench::prepare(&options)?;
    let mut rows = Vec::new();
    let sections: [(&str, Section); 5] = [
        ("image assembly", Bench::assembly),
        ("push", Bench::push),
        ("emulator", Bench::emulator),
        ("compile", Bench::compile),
        ("determinism", Bench::determinism),
    ];
    for (name, section) in sections {
        cmd::check_interrupted()?;
        say!("bench: {name}");
        match section(&bench) {
            Ok(mut section_rows) => rows.append(&mut section_rows),
            Err(err) => {
                say!("warning: {name} failed: {err}");
                rows.push(Row::failed(name, &err));
            }
        }
    }
    let report = render(&bench, &rows)?;
    let path = project_root().join("BENCHMARKS.md");
    fs::write(&path, report).map_err(|err| format!("failed to write {}: {err}", path.display()))?;
    say!("wrote {}", path.display());
    Ok(())
}

/// Paths and settings shared by every section.
struct Bench {
    runs: usize,
    /// The release binary of cargo-lambda-image.
    tool: PathBuf,
    /// `<target dir>/xtask-bench`.
    work: PathBuf,
    /// The cargo target directory of the bench workspaces.
    target: PathBuf,
    /// The copy of `tests/fixtures/workspace`.
    fixture: PathBuf,
    /// The busybox base as an OCI layout, as `oci:DIR:latest`; `None` when it
    /// could not be made, with the reason.
    base: std::result::Result<String, String>,
    /// Whether `DOCKER_BASE` exists in Docker, or why not.
    docker_base: std::result::Result<(), String>,
    /// Makes repository names unique across bench invocations.
    stamp: u64,
}

impl Bench {
    /// Builds the tool, copies the fixture, compiles it once and makes the base image.
    fn prepare(options: &Options) -> Result<Bench> {
        let root = project_root();
        let target_dir =
            env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        cmd::run(
            Command::new("cargo")
                .args(["build", "--release", "--quiet"])
                .current_dir(&root),
        )?;
        let tool = target_dir.join("release/cargo-lambda-image");
        let work = target_dir.join("xtask-bench");
        let fixture = work.join("fixture");
        let _ = fs::remove_dir_all(&fixture);
        copy_dir(
            &root.join("tests/fixtures/workspace"),
            &fixture,
            &["target"],
        )?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (base, docker_base) = make_base(&work);
        let bench = Bench {
            runs: options.runs,
            tool,
            target: work.join("target"),
            fixture,
            work,
            base,
            docker_base,
            stamp,
        };
        say!("bench: compiling the fixture workspace once");
        read(
            bench
                .tool(&["build", "--workspace"])
                .arg("--manifest-path")
                .arg(bench.manifest()),
        )?;
        Ok(bench)
    }

    /// A `cargo-lambda-image` command for x86_64 with the bench's environment.
    fn tool(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.tool);
        command.args(args).args(["--arch", "x86_64", "--quiet"]);
        self.bench_env(&mut command);
        command
    }

    /// Points `command` at the bench target directory, offline.
    fn bench_env(&self, command: &mut Command) {
        command
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_NET_OFFLINE", "true")
            .env("CARGO_TERM_COLOR", "never");
    }

    fn manifest(&self) -> PathBuf {
        self.fixture.join("Cargo.toml")
    }

    /// The compiled bootstrap of `function`.
    fn bootstrap(&self, function: &str) -> PathBuf {
        self.target
            .join("lambda-image")
            .join(function)
            .join("x86_64/bootstrap")
    }

    /// The OCI layout `image` writes for `function`.
    fn layout(&self, function: &str) -> PathBuf {
        self.target
            .join("lambda-image")
            .join(function)
            .join("x86_64/oci")
    }

    fn base(&self) -> Result<&str> {
        self.base
            .as_deref()
            .map_err(|why| format!("no base image: {why}").into())
    }
}

// ---------------------------------------------------------------------------
// 1. Image assembly

impl Bench {
    /// `image` vs `docker build` for a 5 MB and a 50 MB bootstrap.
    fn assembly(&self) -> Result<Vec<Row>> {
        let pad = self.pad_workspace()?;
        let mut rows = Vec::new();
        for (bin, megabytes) in [("pad5", 5), ("pad50", 50)] {
            rows.extend(self.assembly_of(&pad, bin, megabytes)?);
        }
        Ok(rows)
    }

    fn assembly_of(&self, pad: &Path, bin: &str, megabytes: u64) -> Result<Vec<Row>> {
        let image = |base: &str, no_build: bool| {
            let mut command = self.tool(&["image", "--no-check", "-p", "pad", "--bin", bin]);
            command
                .arg("--manifest-path")
                .arg(pad.join("Cargo.toml"))
                .args(["--base-image", base]);
            if no_build {
                command.arg("--no-build");
            }
            command
        };
        // The first run compiles; every timed run finds cargo up to date.
        read(&mut image("scratch", false))?;
        let size = file_size(&self.bootstrap(bin))?;
        let label = format!("{:.1} MB", size as f64 / 1_048_576.0);
        let noop = self.median(|_| {
            timed(
                self.tool(&["build", "-p", "pad", "--bin", bin])
                    .arg("--manifest-path")
                    .arg(pad.join("Cargo.toml")),
            )
        })?;
        let scratch = self.median(|_| timed(&mut image("scratch", true)))?;
        // From an already-built bootstrap (`--no-build`), as `docker build` starts from one.
        let ours = match self.base() {
            Ok(base) => Ok(self.median(|_| timed(&mut image(base, true)))?),
            Err(err) => Err(err.to_string()),
        };
        let with_cargo = match self.base() {
            Ok(base) => Ok(self.median(|_| timed(&mut image(base, false)))?),
            Err(err) => Err(err.to_string()),
        };
        let theirs = self.docker_build_median(&self.bootstrap(bin));
        let mut rows = vec![Row {
            what: format!("image assembly, {label} bootstrap, busybox base (`image --no-build` vs `docker build --no-cache`)"),
            ours: show(&ours),
            theirs: show(&theirs),
            ratio: speedup(&ours, &theirs),
            target: "≥ 20× faster".into(),
            met: met(&ours, &theirs, |o, t| t >= 20.0 * o),
        }];
        if megabytes == 5 {
            rows.push(Row {
                what: format!("image assembly, {label} bootstrap, absolute"),
                ours: show(&ours),
                theirs: "—".into(),
                ratio: "—".into(),
                target: "< 200 ms".into(),
                met: yes_no(ours.as_ref().is_ok_and(|d| *d < Duration::from_millis(200))),
            });
        }
        rows.push(info_row(
            &format!("  `image` with the cargo no-op (no `--no-build`), {label}"),
            show(&with_cargo),
        ));
        rows.push(info_row(
            &format!("  of which: `build` no-op (cargo up to date), {label}"),
            ms(noop),
        ));
        rows.push(info_row(
            &format!("  `image --no-build --base-image scratch`, {label}"),
            ms(scratch),
        ));
        Ok(rows)
    }

    /// A workspace with two binaries padded with random bytes to about 5 and
    /// 50 MB, so that incompressible data dominates, as in a real big binary.
    fn pad_workspace(&self) -> Result<PathBuf> {
        let dir = self.work.join("pad");
        let src = dir.join("src");
        fs::create_dir_all(&src)
            .map_err(|err| format!("failed to create {}: {err}", src.display()))?;
        let manifest = "\
[package]
name = \"pad\"
version = \"0.1.0\"
edition = \"2021\"
publish = false

[[bin]]
name = \"pad5\"
path = \"src/pad5.rs\"

[[bin]]
name = \"pad50\"
path = \"src/pad50.rs\"

[package.metadata.lambda]

[profile.release]
strip = true

[workspace]
";
        write(&dir.join("Cargo.toml"), manifest.as_bytes())?;
        for (name, megabytes) in [("pad5", 5u64), ("pad50", 50)] {
            // A std-only static binary is about 0.4 MB; the rest is padding.
            let padding = megabytes * 1_048_576 - 400 * 1024;
            let data = src.join(format!("{name}.bin"));
            if fs::metadata(&data).map(|m| m.len()).ok() != Some(padding) {
                write(&data, &random_bytes(padding as usize, megabytes))?;
            }
            let main = format!(
                "//! Generated by `cargo xtask bench`: a binary padded to about {megabytes} MB.\n\
                 static PAD: &[u8] = include_bytes!(\"{name}.bin\");\n\
                 fn main() {{\n    println!(\"{{}}\", std::hint::black_box(PAD).len());\n}}\n"
            );
            write(&src.join(format!("{name}.rs")), main.as_bytes())?;
        }
        Ok(dir)
    }

    /// The median of `docker build --no-cache` of the equivalent Dockerfile.
    fn docker_build_median(&self, bootstrap: &Path) -> std::result::Result<Duration, String> {
        self.docker_base.clone()?;
        let context = self.work.join("docker-context");
        let tag = format!("xtask-bench-build:{}", self.stamp);
        let result = docker_context(&context, bootstrap)
            .and_then(|()| self.median(|_| timed(&mut docker_build(&context, &tag))));
        let _ = read(Command::new("docker").args(["rmi", "--force", &tag]));
        result.map_err(|err| format!("docker build failed: {err}"))
    }

    /// The median of `self.runs` durations measured by `step`.
    fn median(&self, mut step: impl FnMut(usize) -> Result<Duration>) -> Result<Duration> {
        let mut samples = Vec::with_capacity(self.runs);
        for run in 0..self.runs {
            cmd::check_interrupted()?;
            samples.push(step(run)?);
        }
        Ok(median(&mut samples))
    }
}

/// Writes a build context with the bootstrap and a Dockerfile equivalent to
/// what `image` assembles on a base without an entrypoint.
fn docker_context(dir: &Path, bootstrap: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
    let dockerfile = format!(
        "FROM {DOCKER_BASE}\nCOPY bootstrap /var/runtime/bootstrap\n\
         ENTRYPOINT [\"/var/runtime/bootstrap\"]\nCMD [\"bootstrap\"]\n"
    );
    write(&dir.join("Dockerfile"), dockerfile.as_bytes())?;
    let dest = dir.join("bootstrap");
    fs::copy(bootstrap, &dest)
        .map_err(|err| format!("failed to copy to {}: {err}", dest.display()))?;
    Ok(())
}

/// `docker build --no-cache` with the classic builder (BuildKit is not
/// installed with Debian's docker.io).
fn docker_build(context: &Path, tag: &str) -> Command {
    let mut command = Command::new("docker");
    command
        .args(["build", "--no-cache", "--quiet", "--tag", tag])
        .arg(context)
        .env("DOCKER_BUILDKIT", "0");
    command
}

/// Makes a busybox base image, in Docker (`docker import`) and as an OCI
/// layout (`docker save`, then `skopeo copy` with gzip layers).
fn make_base(
    work: &Path,
) -> (
    std::result::Result<String, String>,
    std::result::Result<(), String>,
) {
    let tarball = work.join("busybox-rootfs.tar");
    if let Err(err) = busybox_tarball(work, &tarball) {
        let why = format!("could not make a busybox rootfs: {err}");
        return (Err(why.clone()), Err(why));
    }
    let imported = read(
        Command::new("docker")
            .arg("import")
            .arg(&tarball)
            .arg(DOCKER_BASE),
    )
    .map(drop)
    .map_err(|err| format!("docker import failed: {err}"));
    let layout = match &imported {
        Ok(()) => oci_base(work),
        Err(why) => Err(why.clone()),
    };
    (layout, imported)
}

/// `busybox-rootfs.tar`: `/bin/busybox` (static) and `/bin/sh`.
fn busybox_tarball(work: &Path, tarball: &Path) -> Result<()> {
    let rootfs = work.join("busybox-rootfs");
    let _ = fs::remove_dir_all(&rootfs);
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).map_err(|err| format!("failed to create {}: {err}", bin.display()))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .ok_or("busybox is not installed (Debian busybox-static)")?;
    fs::copy(busybox, bin.join("busybox"))
        .map_err(|err| format!("failed to copy busybox: {err}"))?;
    std::os::unix::fs::symlink("busybox", bin.join("sh"))
        .map_err(|err| format!("failed to link /bin/sh: {err}"))?;
    read(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(tarball)
            .arg("."),
    )?;
    Ok(())
}

/// The Docker base as an OCI layout with gzip layers; returns `oci:DIR:latest`.
fn oci_base(work: &Path) -> std::result::Result<String, String> {
    let saved = work.join("busybox-save.tar");
    let layout = work.join("busybox-oci");
    let _ = fs::remove_dir_all(&layout);
    read(
        Command::new("docker")
            .args(["save", "--output"])
            .arg(&saved)
            .arg(DOCKER_BASE),
    )
    .map_err(|err| format!("docker save failed: {err}"))?;
    let mut copy = Command::new("skopeo");
    copy.args([
        "copy",
        "--quiet",
        "--dest-compress",
        "--dest-compress-format",
        "gzip",
    ])
    .arg(format!("docker-archive:{}", saved.display()))
    .arg(format!("oci:{}:latest", layout.display()));
    read(&mut copy).map_err(|err| format!("skopeo copy failed: {err}"))?;
    Ok(format!("oci:{}:latest", layout.display()))
}

/// `len` bytes from a xorshift generator: incompressible, and the same on
/// every run so that an existing file can be reused.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// 2. Push

/// Time and bytes of a first push and of a re-push after a binary change.
#[derive(Default)]
struct PushSamples {
    first: Vec<Duration>,
    first_bytes: Vec<u64>,
    again: Vec<Duration>,
    again_bytes: Vec<u64>,
}

impl PushSamples {
    fn add(&mut self, again: bool, (time, bytes): (Duration, u64)) {
        if again {
            self.again.push(time);
            self.again_bytes.push(bytes);
        } else {
            self.first.push(time);
            self.first_bytes.push(bytes);
        }
    }

    /// Median time and bytes.
    fn medians(&mut self, again: bool) -> (Duration, u64) {
        if again {
            (median(&mut self.again), median(&mut self.again_bytes))
        } else {
            (median(&mut self.first), median(&mut self.first_bytes))
        }
    }
}

impl Bench {
    /// `push` vs `docker push` and `skopeo copy`, through a byte-counting proxy.
    fn push(&self) -> Result<Vec<Row>> {
        let base = self.base()?.to_owned();
        let proxy = CountingProxy::start(REGISTRY)?;
        let mut ours = PushSamples::default();
        let mut docker: std::result::Result<PushSamples, String> =
            self.docker_base.clone().map(|()| PushSamples::default());
        let mut skopeo: std::result::Result<PushSamples, String> = Ok(PushSamples::default());
        let mut changed_layers = Vec::new();
        for run in 0..self.runs {
            cmd::check_interrupted()?;
            let dir = self.work.join(format!("push/{run}"));
            let _ = fs::remove_dir_all(&dir);
            let repository = format!("xtask-bench-{}-{run}", self.stamp);
            for (revision, again) in [("a", false), ("b", true)] {
                self.set_echo_revision(&repository, &format!("{}-{run}-{revision}", self.stamp))?;
                read(
                    self.tool(&["build", "-p", "echo"])
                        .arg("--manifest-path")
                        .arg(self.manifest()),
                )?;
                let (sample, changed) = self.push_ours(&proxy, &base)?;
                ours.add(again, sample);
                if again {
                    changed_layers.push(changed);
                }
                let saved = dir.join(revision);
                copy_dir(&self.layout("fixture-echo"), &saved.join("oci"), &[])?;
                let bootstrap = saved.join("bootstrap");
                fs::copy(self.bootstrap("fixture-echo"), &bootstrap)
                    .map_err(|err| format!("failed to copy to {}: {err}", bootstrap.display()))?;
                if let Ok(samples) = &mut docker {
                    let reference = format!("{}/{repository}-docker:{revision}", proxy.address);
                    match self.push_docker(&proxy, &saved, &reference) {
                        Ok(sample) => samples.add(again, sample),
                        Err(err) => docker = Err(format!("docker failed: {err}")),
                    }
                }
                if let Ok(samples) = &mut skopeo {
                    let reference = format!("{}/{repository}-skopeo:{revision}", proxy.address);
                    match push_skopeo(&proxy, &saved.join("oci"), &reference) {
                        Ok(sample) => samples.add(again, sample),
                        Err(err) => skopeo = Err(format!("skopeo failed: {err}")),
                    }
                }
            }
        }
        let changed = median(&mut changed_layers);
        let mut rows = Vec::new();
        for again in [false, true] {
            rows.extend(push_rows(
                again,
                &mut ours,
                &mut docker,
                &mut skopeo,
                changed,
            ));
        }
        Ok(rows)
    }

    /// Gives the copy's echo a unique repository and a binary that differs
    /// from every earlier one.
    fn set_echo_revision(&self, repository: &str, revision: &str) -> Result<()> {
        let original = project_root().join("tests/fixtures/workspace/crates/echo");
        let copy = self.fixture.join("crates/echo");
        let manifest = fs::read_to_string(original.join("Cargo.toml"))
            .map_err(|err| format!("failed to read the echo manifest: {err}"))?;
        let manifest = format!(
            "{manifest}\n[package.metadata.lambda.image]\nrepository = \"{repository}\"\ntag = \"bench\"\n"
        );
        write(&copy.join("Cargo.toml"), manifest.as_bytes())?;
        let main = fs::read_to_string(original.join("src/main.rs"))
            .map_err(|err| format!("failed to read the echo source: {err}"))?;
        let main = main.replace(
            "async fn main() -> Result<(), Error> {",
            &format!(
                "async fn main() -> Result<(), Error> {{\n    std::hint::black_box(\"{revision}\");"
            ),
        );
        write(&copy.join("src/main.rs"), main.as_bytes())
    }

    /// One timed `push`; returns (time, bytes sent) and the size of the
    /// image's own layer.
    fn push_ours(&self, proxy: &CountingProxy, base: &str) -> Result<((Duration, u64), u64)> {
        let mut push = self.tool(&["push", "--message-format", "json", "-p", "echo"]);
        push.arg("--manifest-path")
            .arg(self.manifest())
            .args(["--base-image", base, "--registry", &proxy.address])
            .env(
                "CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES",
                format!("{REGISTRY},{}", proxy.address),
            );
        proxy.reset();
        let started = Instant::now();
        let stdout = read(&mut push)?;
        let elapsed = started.elapsed();
        let bytes = proxy.bytes();
        let image = event(&stdout, "image")?;
        let layer = image
            .get("image")
            .and_then(|image| image.get("layers"))
            .and_then(json::Value::as_array)
            .and_then(|layers| layers.last())
            .and_then(|layer| layer.get("size"))
            .and_then(json::Value::as_u64)
            .ok_or("the image event has no layers")?;
        Ok(((elapsed, bytes), layer))
    }

    /// `docker build` (not timed), then a timed `docker push` of `reference`.
    fn push_docker(
        &self,
        proxy: &CountingProxy,
        saved: &Path,
        reference: &str,
    ) -> Result<(Duration, u64)> {
        let context = saved.join("docker-context");
        docker_context(&context, &saved.join("bootstrap"))?;
        read(&mut docker_build(&context, reference))?;
        proxy.reset();
        let started = Instant::now();
        let pushed = read(Command::new("docker").args(["push", "--quiet", reference]));
        let sample = (started.elapsed(), proxy.bytes());
        let _ = read(Command::new("docker").args(["rmi", "--force", reference]));
        pushed.map(|_| sample)
    }
}

/// A timed `skopeo copy` of an OCI layout to `reference`.
fn push_skopeo(proxy: &CountingProxy, layout: &Path, reference: &str) -> Result<(Duration, u64)> {
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{reference}"));
    proxy.reset();
    let elapsed = timed(&mut copy)?;
    Ok((elapsed, proxy.bytes()))
}

/// The rows of a first push (`again == false`) or a re-push.
fn push_rows(
    again: bool,
    ours: &mut PushSamples,
    docker: &mut std::result::Result<PushSamples, String>,
    skopeo: &mut std::result::Result<PushSamples, String>,
    changed_layer: u64,
) -> Vec<Row> {
    let (our_time, our_bytes) = ours.medians(again);
    let ours_shown = format!("{} · {}", ms(our_time), kib(our_bytes));
    let kind = if again {
        "re-push after a binary-only change"
    } else {
        "first push to a new repository"
    };
    let mut rows = Vec::new();
    for (tool, theirs) in [("docker push", docker), ("skopeo copy", skopeo)] {
        let theirs = match theirs {
            Ok(samples) => Ok(samples.medians(again)),
            Err(why) => Err(why.clone()),
        };
        let their_time = theirs.as_ref().map(|(time, _)| *time).map_err(Clone::clone);
        rows.push(Row {
            what: format!("push: {kind} (`push` incl. assembly vs `{tool}`); time · bytes sent"),
            ours: ours_shown.clone(),
            theirs: match &theirs {
                Ok((time, bytes)) => format!("{} · {}", ms(*time), kib(*bytes)),
                Err(why) => why.clone(),
            },
            ratio: speedup(&Ok(our_time), &their_time),
            target: if tool == "docker push" {
                "≥ 2× faster than docker push".into()
            } else {
                "—".into()
            },
            met: if tool == "docker push" {
                met(&Ok(our_time), &their_time, |o, t| t >= 2.0 * o)
            } else {
                "—".into()
            },
        });
    }
    if again {
        let limit = changed_layer + 8 * 1024;
        rows.push(Row {
            what: "push: bytes sent on re-push vs the changed layer".into(),
            ours: kib(our_bytes),
            theirs: format!("changed layer {}", kib(changed_layer)),
            ratio: format!(
                "{:+.1} KiB",
                (our_bytes as f64 - changed_layer as f64) / 1024.0
            ),
            target: "≤ changed layer + 8 KiB".into(),
            met: yes_no(our_bytes <= limit),
        });
    }
    rows
}

/// A TCP proxy to the registry that counts the bytes clients send.
struct CountingProxy {
    /// `127.0.0.1:PORT`.
    address: String,
    sent: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(upstream: &'static str) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|err| format!("failed to start the counting proxy: {err}"))?;
        let address = listener
            .local_addr()
            .map_err(|err| format!("the counting proxy has no address: {err}"))?
            .to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        // The thread lives as long as the process; the bench exits soon after.
        thread::spawn(move || {
            for client in listener.incoming().map_while(io::Result::ok) {
                if let Err(err) = forward(client, upstream, &counter) {
                    say!("warning: counting proxy: {err}");
                }
            }
        });
        Ok(CountingProxy { address, sent })
    }

    fn reset(&self) {
        self.sent.store(0, Ordering::SeqCst);
    }

    fn bytes(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Connects `client` to `upstream` with one thread per direction.
fn forward(client: TcpStream, upstream: &str, sent: &Arc<AtomicU64>) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (client_read, server_write) = (client.try_clone()?, server.try_clone()?);
    let counter = Arc::clone(sent);
    thread::spawn(move || pump(client_read, server_write, Some(&counter)));
    thread::spawn(move || pump(server, client, None));
    Ok(())
}

/// Copies `from` to `to` until either side closes, counting into `count`.
fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<&AtomicU64>) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(count) = count {
            count.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------------------
// 3. Emulator

/// A running emulator: the tool's or AWS's RIE.
struct Emulator {
    child: Child,
    /// `127.0.0.1:PORT`.
    address: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGINT is the emulator's orderly shutdown: it stops its runtimes too.
        interrupt(&self.child);
        cmd::stop(&mut self.child, Duration::from_secs(5));
    }
}

impl Bench {
    /// Cold start and throughput of `emulator` (and of `aws-lambda-rie` if present).
    fn emulator(&self) -> Result<Vec<Row>> {
        let bootstrap = self.bootstrap("fixture-echo");
        let rie = which("aws-lambda-rie");
        let cold = self.median(|_| self.start_ours(&bootstrap, 1).map(|(_, cold)| cold))?;
        let their_cold = match &rie {
            Some(rie) => self
                .median(|_| start_rie(rie, &bootstrap).map(|(_, cold)| cold))
                .map_err(|err| format!("aws-lambda-rie failed: {err}")),
            None => Err(RIE_MISSING.to_owned()),
        };
        let mut rows = vec![Row {
            what: "emulator: cold start to first response (fixture-echo)".into(),
            ours: ms(cold),
            theirs: show(&their_cold),
            ratio: speedup(&Ok(cold), &their_cold),
            target: "—".into(),
            met: "—".into(),
        }];
        for clients in [1, 4] {
            let (emulator, _) = self.start_ours(&bootstrap, clients)?;
            let ours = throughput(&emulator.address, clients)?;
            drop(emulator);
            // AWS's RIE serves one invocation at a time.
            let theirs = match &rie {
                Some(rie) => start_rie(rie, &bootstrap)
                    .and_then(|(emulator, _)| throughput(&emulator.address, clients))
                    .map_err(|err| format!("aws-lambda-rie failed: {err}")),
                None => Err(RIE_MISSING.to_owned()),
            };
            rows.push(Row {
                what: format!(
                    "emulator: invocations/s, {clients} keep-alive client(s) for {} s{}",
                    THROUGHPUT_WINDOW.as_secs(),
                    if clients > 1 {
                        " (`--concurrency 4`)"
                    } else {
                        ""
                    }
                ),
                ours: format!("{ours:.0}/s"),
                theirs: theirs
                    .as_ref()
                    .map_or_else(Clone::clone, |t| format!("{t:.0}/s")),
                ratio: theirs
                    .as_ref()
                    .map_or("—".into(), |t| format!("{:.2}×", ours / t)),
                target: "—".into(),
                met: "—".into(),
            });
        }
        Ok(rows)
    }

    /// Starts `emulator` on a free port; returns it with the time from process
    /// start to the first successful response.
    fn start_ours(&self, bootstrap: &Path, concurrency: usize) -> Result<(Emulator, Duration)> {
        let log = self.work.join("emulator.log");
        let log = fs::File::create(&log)
            .map_err(|err| format!("failed to create {}: {err}", log.display()))?;
        let mut command = Command::new(&self.tool);
        command
            .args(["emulator", "--bind", "127.0.0.1:0", "--concurrency"])
            .arg(concurrency.to_string())
            .arg("--")
            .arg(bootstrap)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let started = Instant::now();
        let mut child = cmd::spawn(&mut command)?;
        let stdout = child.stdout.take().ok_or("the emulator has no stdout")?;
        let mut emulator = Emulator {
            child,
            address: String::new(),
        };
        // The first line is the invoke URL; keep draining the rest.
        let mut lines = BufReader::new(stdout);
        let mut url = String::new();
        lines
            .read_line(&mut url)
            .map_err(|err| format!("failed to read the emulator's address: {err}"))?;
        thread::spawn(move || io::copy(&mut lines, &mut io::sink()));
        emulator.address = url
            .trim()
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| format!("the emulator printed no invoke URL (got {url:?})"))?
            .to_owned();
        let cold = first_response(&emulator.address, started)?;
        Ok((emulator, cold))
    }
}

const RIE_MISSING: &str = "not available on this machine (no network to download it)";

/// Starts AWS's RIE on a free port.
fn start_rie(rie: &Path, bootstrap: &Path) -> Result<(Emulator, Duration)> {
    let address = free_address()?;
    let mut command = Command::new(rie);
    command
        .arg("--runtime-interface-emulator-address")
        .arg(&address)
        .arg(bootstrap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd::spawn(&mut command)?;
    let emulator = Emulator { child, address };
    let cold = first_response(&emulator.address, started)?;
    Ok((emulator, cold))
}

/// Invokes until the first success; returns the time since `started`.
fn first_response(address: &str, started: Instant) -> Result<Duration> {
    let mut client = InvokeClient::new(address);
    loop {
        if let Ok(200) = client.invoke(EVENT) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("no successful invocation on {address} within 30 s").into());
        }
        cmd::check_interrupted()?;
        thread::sleep(Duration::from_millis(2));
    }
}

/// Successful invocations per second with `clients` concurrent clients.
fn throughput(address: &str, clients: usize) -> Result<f64> {
    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let address = address.to_owned();
            thread::spawn(move || {
                let mut client = InvokeClient::new(&address);
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    match client.invoke(EVENT) {
                        Ok(200) => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.join().map_err(|_| "a client thread panicked")?;
        ok += o;
        failed += f;
    }
    if failed > 0 {
        say!("warning: {failed} of {} invocations failed", ok + failed);
    }
    Ok(ok as f64 / started.elapsed().as_secs_f64())
}

/// A minimal HTTP/1.1 keep-alive client for the Invoke API.
struct InvokeClient {
    address: String,
    connection: Option<BufReader<TcpStream>>,
}

impl InvokeClient {
    fn new(address: &str) -> InvokeClient {
        InvokeClient {
            address: address.to_owned(),
            connection: None,
        }
    }

    /// POSTs `body`; returns the status. A failed connection is dropped and
    /// reopened on the next call.
    fn invoke(&mut self, body: &[u8]) -> io::Result<u16> {
        let result = self.exchange(body);
        if !matches!(result, Ok((_, true))) {
            self.connection = None;
        }
        result.map(|(status, _)| status)
    }

    /// One request and response; returns the status and whether the
    /// connection can be reused.
    fn exchange(&mut self, body: &[u8]) -> io::Result<(u16, bool)> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect(&self.address)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                self.connection.insert(BufReader::new(stream))
            }
        };
        let head = format!(
            "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        let stream = connection.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        read_response(connection)
    }
}

/// Reads one response (Content-Length or chunked); returns the status and
/// whether the connection stays open.
fn read_response(reader: &mut impl BufRead) -> io::Result<(u16, bool)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    let (mut length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("the connection closed in the headers"));
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match (name.trim(), value.trim()) {
                ("content-length", value) => length = value.parse().ok(),
                ("transfer-encoding", value) => chunked = value.contains("chunked"),
                ("connection", "close") => keep_alive = false,
                _ => {}
            }
        }
    }
    if chunked {
        read_chunks(reader)?;
    } else if let Some(length) = length {
        io::copy(&mut reader.take(length), &mut io::sink())?;
    } else {
        io::copy(reader, &mut io::sink())?;
        keep_alive = false;
    }
    Ok((status, keep_alive))
}

/// Skips a chunked body, trailers included.
fn read_chunks(reader: &mut impl BufRead) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        io::copy(&mut reader.take(size + 2), &mut io::sink())?;
    }
}

/// An address with a port that was free a moment ago.
fn free_address() -> Result<String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|err| format!("no free port: {err}"))?;
    let address = listener
        .local_addr()
        .map_err(|err| format!("no free port: {err}"))?;
    Ok(address.to_string())
}

/// Sends SIGINT to `child`.
fn interrupt(child: &Child) {
    extern "C" {
        fn kill(pid: c_int, sig: c_int) -> c_int;
    }
    const SIGINT: c_int = 2;
    if let Ok(pid) = c_int::try_from(child.id()) {
        // SAFETY: plain syscall wrapper; the pid is our own unreaped child.
        unsafe { kill(pid, SIGINT) };
    }
}

// ---------------------------------------------------------------------------
// 4. Compile overhead

impl Bench {
    /// `build -p echo` vs `cargo build` of the same package and target, both
    /// after `cargo clean -p echo`.
    fn compile(&self) -> Result<Vec<Row>> {
        // Start from the original sources: the push section edits them.
        copy_dir(
            &project_root().join("tests/fixtures/workspace/crates/echo"),
            &self.fixture.join("crates/echo"),
            &[],
        )?;
        let cargo = |args: &[&str]| {
            let mut command = Command::new("cargo");
            command
                .args(args)
                .arg("--manifest-path")
                .arg(self.manifest());
            self.bench_env(&mut command);
            command
        };
        let clean = || {
            read(&mut cargo(&[
                "clean",
                "--quiet",
                "-p",
                "echo",
                "--release",
                "--target",
                TRIPLE,
            ]))
        };
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..self.runs {
            cmd::check_interrupted()?;
            clean()?;
            ours.push(timed(
                self.tool(&["build", "-p", "echo"])
                    .arg("--manifest-path")
                    .arg(self.manifest()),
            )?);
            clean()?;
            theirs.push(timed(&mut cargo(&[
                "build",
                "--quiet",
                "--release",
                "--target",
                TRIPLE,
                "-p",
                "echo",
            ]))?);
        }
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        let overhead = (ours.as_secs_f64() / theirs.as_secs_f64() - 1.0) * 100.0;
        Ok(vec![Row {
            what: format!("compile `-p echo` from `cargo clean -p echo` (`build` vs `cargo build --release --target {TRIPLE}`)"),
            ours: ms(ours),
            theirs: ms(theirs),
            ratio: format!("{overhead:+.1}% overhead"),
            target: "≤ 5% overhead".into(),
            met: yes_no(overhead <= 5.0),
        }])
    }
}

// ---------------------------------------------------------------------------
// 5. Determinism

impl Bench {
    /// The same image built twice, the second time after `cargo clean -p
    /// echo`: equal manifest digests? And Docker's image IDs, for comparison.
    fn determinism(&self) -> Result<Vec<Row>> {
        let base = self
            .base()
            .map(str::to_owned)
            .unwrap_or_else(|_| "scratch".into());
        let image = || -> Result<String> {
            let mut command = self.tool(&["image", "--message-format", "json", "-p", "echo"]);
            command
                .arg("--manifest-path")
                .arg(self.manifest())
                .args(["--base-image", &base]);
            let stdout = read(&mut command)?;
            event(&stdout, "image")?
                .get("image")
                .and_then(|image| image.get("digest"))
                .and_then(json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "the image event has no digest".into())
        };
        let first = image()?;
        read(
            Command::new("cargo")
                .args([
                    "clean",
                    "--quiet",
                    "-p",
                    "echo",
                    "--release",
                    "--target",
                    TRIPLE,
                ])
                .arg("--manifest-path")
                .arg(self.manifest())
                .env("CARGO_TARGET_DIR", &self.target),
        )?;
        let second = image()?;
        let docker = self.docker_ids_equal();
        Ok(vec![Row {
            what: format!("determinism: `image -p echo` twice, recompiled in between ({base_kind} base); docker: `docker build --no-cache` twice", base_kind = if base == "scratch" { "scratch" } else { "busybox" }),
            ours: if first == second {
                format!("equal ({})", short_digest(&first))
            } else {
                format!("differ ({} vs {})", short_digest(&first), short_digest(&second))
            },
            theirs: match docker {
                Ok(true) => "equal image IDs".into(),
                Ok(false) => "different image IDs".into(),
                Err(why) => why,
            },
            ratio: "—".into(),
            target: "equal digests".into(),
            met: yes_no(first == second),
        }])
    }

    /// Whether two `docker build --no-cache` of the same context give the same image ID.
    fn docker_ids_equal(&self) -> std::result::Result<bool, String> {
        self.docker_base.clone()?;
        let context = self.work.join("docker-determinism");
        let tag = format!("xtask-bench-determinism:{}", self.stamp);
        let build_id = || -> Result<String> {
            read(&mut docker_build(&context, &tag))?;
            let id = read(
                Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &tag]),
            )?;
            let _ = read(Command::new("docker").args(["rmi", "--force", &tag]));
            Ok(id.trim().to_owned())
        };
        let result = docker_context(&context, &self.bootstrap("fixture-echo"))
            .and_then(|()| Ok(build_id()? == build_id()?));
        result.map_err(|err| format!("docker build failed: {err}"))
    }
}

fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

// ---------------------------------------------------------------------------
// The report

/// The Markdown report.
fn render(bench: &Bench, rows: &[Row]) -> Result<String> {
    let mut out = String::new();
    let date = read(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map_or_else(|err| format!("unknown ({err})"), |d| d.trim().to_owned());
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `cargo xtask bench` on {date}; medians of {} run(s) per cell \
         (throughput: one {} s window). Regenerate with `cargo xtask bench` (`--runs N`, \
         `--quick` = 2 runs) while `cargo xtask services` runs.\n",
        bench.runs,
        THROUGHPUT_WINDOW.as_secs()
    );
    let _ = writeln!(out, "## Machine\n");
    for (name, value) in machine() {
        let _ = writeln!(out, "- {name}: {value}");
    }
    let _ = writeln!(out, "\n## Versions\n");
    for (name, value) in versions(bench) {
        let _ = writeln!(out, "- {name}: {value}");
    }
    let _ = writeln!(out, "\n## Results\n");
    let _ = writeln!(out, "| what | ours | theirs | ratio | target | met? |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let cells = [
            &row.what,
            &row.ours,
            &row.theirs,
            &row.ratio,
            &row.target,
            &row.met,
        ];
        let cells: Vec<String> = cells
            .iter()
            .map(|cell| cell.replace('|', "\\|").replace('\n', " "))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push_str(METHOD);
    Ok(out)
}

const METHOD: &str = "
## How it is measured

- **Image assembly**: `cargo-lambda-image image --no-build --no-check -p pad --bin padN` on a workspace
  whose binaries embed 5 or 50 MB of random bytes (incompressible), from the bootstrap an
  earlier `build` left (`--no-build`: reading the metadata, assembling and writing the OCI
  layout); `image` without `--no-build`, which adds cargo's up-to-date check, and that check
  alone are shown on their own rows. The base is a
  busybox rootfs (`/bin/busybox` from Debian busybox-static) made with `docker import` and copied
  to an OCI layout with gzip layers by `skopeo copy`; `image` reads it as `oci:DIR:latest`.
  Docker runs `docker build --no-cache` (classic builder) of `FROM base`, `COPY bootstrap
  /var/runtime/bootstrap`, `ENTRYPOINT`, `CMD` on the same base, the build context holding only
  the Dockerfile and the bootstrap.
- **Push**: through a TCP proxy in the bench that counts client-to-registry bytes, to the
  registry on 127.0.0.1:5000, a new repository per run (fixture-echo on the busybox base). Ours is
  `push` with cargo up to date, so it includes the cargo no-op, assembly and the check; docker's
  image is built before the timed `docker push`; skopeo copies the OCI layout `push` wrote. The
  re-push follows a one-string change in the function's source (recompiled before timing).
- **Emulator**: `cargo-lambda-image emulator --bind 127.0.0.1:0 [--concurrency 4] -- bootstrap`
  of fixture-echo; cold start is process start to the first 200 response; throughput uses
  HTTP/1.1 keep-alive clients written with std `TcpStream`.
- **Compile**: both commands run after `cargo clean -p echo --release --target
  x86_64-unknown-linux-musl` in the same target directory, so only the function crate compiles.
- **Determinism**: `image -p echo` twice with `cargo clean -p echo` in between; compares the
  manifest digests of the `image` events.
";

/// Name and value of each machine fact.
fn machine() -> Vec<(&'static str, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
        })
        .map_or("unknown".to_owned(), |(_, model)| model.trim().to_owned());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or("unknown".to_owned(), |kb| {
            format!("{:.1} GiB", kb / 1_048_576.0)
        });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".to_owned(), |k| k.trim().to_owned());
    let cores = thread::available_parallelism().map_or("unknown".to_owned(), |n| n.to_string());
    vec![
        ("CPUs (nproc)", cores),
        ("CPU model", cpu),
        ("memory", memory),
        ("kernel", kernel),
    ]
}

/// Name and version of each tool involved.
fn versions(bench: &Bench) -> Vec<(&'static str, String)> {
    let version = |command: &mut Command| {
        read(command).map_or_else(
            |err| format!("unavailable ({err})"),
            |out| out.lines().next().unwrap_or("").trim().to_owned(),
        )
    };
    vec![
        (
            "cargo-lambda-image",
            version(Command::new(&bench.tool).arg("--version")),
        ),
        ("rustc", version(Command::new("rustc").arg("--version"))),
        (
            "docker (server)",
            version(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"])),
        ),
        ("skopeo", version(Command::new("skopeo").arg("--version"))),
        (
            "aws-lambda-rie",
            if which("aws-lambda-rie").is_some() {
                "on PATH".into()
            } else {
                RIE_MISSING.into()
            },
        ),
    ]
}

// ---------------------------------------------------------------------------
// Small helpers

/// Runs `command` with its output captured; returns stdout.
fn read(command: &mut Command) -> Result<String> {
    cmd::read(command)
}

/// Runs `command` quietly and returns how long it took.
fn timed(command: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    read(command)?;
    Ok(started.elapsed())
}

/// The median of `samples` (the mean of the middle two for an even count).
fn median<T: Copy + Ord + Default + Midpoint>(samples: &mut [T]) -> T {
    samples.sort_unstable();
    match samples.len() {
        0 => T::default(),
        n if n % 2 == 1 => samples[n / 2],
        n => samples[n / 2 - 1].midpoint_with(samples[n / 2]),
    }
}

/// The value halfway between two others.
trait Midpoint {
    fn midpoint_with(self, other: Self) -> Self;
}

impl Midpoint for Duration {
    fn midpoint_with(self, other: Duration) -> Duration {
        (self + other) / 2
    }
}

impl Midpoint for u64 {
    fn midpoint_with(self, other: u64) -> u64 {
        self / 2 + other / 2 + (self % 2 + other % 2) / 2
    }
}

fn ms(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis >= 10_000.0 {
        format!("{:.1} s", millis / 1000.0)
    } else if millis >= 100.0 {
        format!("{millis:.0} ms")
    } else {
        format!("{millis:.1} ms")
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn show(value: &std::result::Result<Duration, String>) -> String {
    value.as_ref().map_or_else(Clone::clone, |d| ms(*d))
}

/// `theirs / ours` as "N× faster", or "—" when either is missing.
fn speedup(
    ours: &std::result::Result<Duration, String>,
    theirs: &std::result::Result<Duration, String>,
) -> String {
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => format!("{:.1}×", theirs.as_secs_f64() / ours.as_secs_f64()),
        _ => "—".into(),
    }
}

/// Whether `target(ours, theirs)` holds, in seconds; "—" when either is missing.
fn met(
    ours: &std::result::Result<Duration, String>,
    theirs: &std::result::Result<Duration, String>,
    target: impl Fn(f64, f64) -> bool,
) -> String {
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => yes_no(target(ours.as_secs_f64(), theirs.as_secs_f64())),
        _ => "—".into(),
    }
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.into()
}

/// A row that only reports a number.
fn info_row(what: &str, ours: String) -> Row {
    Row {
        what: what.to_owned(),
        ours,
        theirs: "—".into(),
        ratio: "—".into(),
        target: "—".into(),
        met: "—".into(),
    }
}

/// The first JSON line of `stdout` whose `reason` is `reason`.
fn event(stdout: &str, reason: &str) -> Result<json::Value> {
    stdout
        .lines()
        .filter_map(|line| json::parse(line).ok())
        .find(|value| value.get("reason").and_then(json::Value::as_str) == Some(reason))
        .ok_or_else(|| format!("no `{reason}` event in the output").into())
}

/// The program `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .map_err(|err| format!("failed to read {}: {err}", path.display()))?
        .len())
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).map_err(|err| format!("failed to write {}: {err}", path.display()).into())
}

/// Copies the tree `from` into `to`, skipping top-level entries named in `skip`.
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to).map_err(|err| format!("failed to create {}: {err}", to.display()))?;
    let entries =
        fs::read_dir(from).map_err(|err| format!("failed to read {}: {err}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|err| format!("failed to read {}: {err}", from.display()))?;
        let name = entry.file_name();
        if skip.iter().any(|skipped| name == *skipped) {
            continue;
        }
        let (source, dest) = (entry.path(), to.join(&name));
        let kind = entry
            .file_type()
            .map_err(|err| format!("failed to read {}: {err}", source.display()))?;
        if kind.is_dir() {
            copy_dir(&source, &dest, &[])?;
        } else {
            fs::copy(&source, &dest)
                .map_err(|err| format!("failed to copy {}: {err}", source.display()))?;
        }
    }
    Ok(())
}

/// Just enough JSON to read the tool's `--message-format json` events, so
/// that xtask keeps having no dependencies.
mod json {
    /// A JSON value; objects keep their order.
    #[derive(Debug, PartialEq)]
    pub(super) enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub(super) fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub(super) fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        pub(super) fn as_u64(&self) -> Option<u64> {
            match self {
                // Sizes are integers well below 2^53, so the cast is exact.
                Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u64),
                _ => None,
            }
        }

        pub(super) fn as_array(&self) -> Option<&[Value]> {
            match self {
                Value::Array(items) => Some(items),
                _ => None,
            }
        }
    }

    /// Parses one complete JSON document.
    pub(super) fn parse(text: &str) -> Result<Value, String> {
        let mut parser = Parser {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let value = parser.value()?;
        parser.skip_space();
        if parser.pos == parser.bytes.len() {
            Ok(value)
        } else {
            Err(format!("trailing characters at {}", parser.pos))
        }
    }

    struct Parser<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn skip_space(&mut self) {
            while self
                .bytes
                .get(self.pos)
                .is_some_and(u8::is_ascii_whitespace)
            {
                self.pos += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.skip_space();
            self.bytes.get(self.pos).copied()
        }

        fn expect(&mut self, byte: u8) -> Result<(), String> {
            if self.peek() == Some(byte) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("expected `{}` at {}", byte as char, self.pos))
            }
        }

        fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
            if self.bytes[self.pos..].starts_with(word.as_bytes()) {
                self.pos += word.len();
                Ok(value)
            } else {
                Err(format!("unexpected token at {}", self.pos))
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            match self.peek().ok_or("unexpected end")? {
                b'{' => self.object(),
                b'[' => self.array(),
                b'"' => self.string().map(Value::String),
                b't' => self.literal("true", Value::Bool(true)),
                b'f' => self.literal("false", Value::Bool(false)),
                b'n' => self.literal("null", Value::Null),
                _ => self.number(),
            }
        }

        fn object(&mut self) -> Result<Value, String> {
            self.expect(b'{')?;
            let mut fields = Vec::new();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(fields));
            }
            loop {
                self.skip_space();
                let key = self.string()?;
                self.expect(b':')?;
                fields.push((key, self.value()?));
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Value::Object(fields));
                    }
                    _ => return Err(format!("expected `,` or `}}` at {}", self.pos)),
                }
            }
        }

        fn array(&mut self) -> Result<Value, String> {
            self.expect(b'[')?;
            let mut items = Vec::new();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            loop {
                items.push(self.value()?);
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(Value::Array(items));
                    }
                    _ => return Err(format!("expected `,` or `]` at {}", self.pos)),
                }
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = Vec::new();
            loop {
                let byte = *self.bytes.get(self.pos).ok_or("unterminated string")?;
                self.pos += 1;
                match byte {
                    b'"' => return String::from_utf8(out).map_err(|err| err.to_string()),
                    b'\\' => self.escape(&mut out)?,
                    _ => out.push(byte),
                }
            }
        }

        fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
            let byte = *self.bytes.get(self.pos).ok_or("unterminated escape")?;
            self.pos += 1;
            let plain = match byte {
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'u' => {
                    let hex = self
                        .bytes
                        .get(self.pos..self.pos + 4)
                        .ok_or("short \\u escape")?;
                    self.pos += 4;
                    let code = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .ok_or("bad \\u escape")?;
                    // Surrogate pairs only occur in text the bench never reads.
                    char::from_u32(code).unwrap_or('\u{fffd}')
                }
                other => other as char,
            };
            let mut buf = [0; 4];
            out.extend_from_slice(plain.encode_utf8(&mut buf).as_bytes());
            Ok(())
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.pos;
            while self
                .bytes
                .get(self.pos)
                .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
            {
                self.pos += 1;
            }
            std::str::from_utf8(&self.bytes[start..self.pos])
                .ok()
                .and_then(|text| text.parse().ok())
                .map(Value::Number)
                .ok_or_else(|| format!("bad number at {start}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_default_to_five_runs_and_quick_means_two() {
        assert_eq!(
            parse_args(&[]).map_err(|e| e.to_string()),
            Ok(Options { runs: 5 })
        );
        let quick = parse_args(&["--quick".into()]).map_err(|e| e.to_string());
        assert_eq!(quick, Ok(Options { runs: 2 }));
        let runs = parse_args(&["--runs".into(), "3".into()]).map_err(|e| e.to_string());
        assert_eq!(runs, Ok(Options { runs: 3 }));
        assert!(parse_args(&["--runs".into(), "0".into()]).is_err());
        assert!(parse_args(&["--fast".into()]).is_err());
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&mut [3u64, 1, 2]), 2);
        assert_eq!(median(&mut [4u64, 1, 3, 2]), 2);
        assert_eq!(median::<u64>(&mut []), 0);
        let mut durations = [Duration::from_millis(10), Duration::from_millis(30)];
        assert_eq!(median(&mut durations), Duration::from_millis(20));
    }

    #[test]
    fn json_reads_an_image_event() {
        let line = r#"{"image":{"digest":"sha256:ab","layers":[{"size":10},{"size":2048}],"tag":"a\"b\u00e9"},"reason":"image"}"#;
        let value = json::parse(line).expect("valid JSON");
        let image = value.get("image").expect("image");
        assert_eq!(
            image.get("digest").and_then(json::Value::as_str),
            Some("sha256:ab")
        );
        let last = image
            .get("layers")
            .and_then(json::Value::as_array)
            .and_then(|l| l.last());
        assert_eq!(
            last.and_then(|l| l.get("size"))
                .and_then(json::Value::as_u64),
            Some(2048)
        );
        assert_eq!(
            image.get("tag").and_then(json::Value::as_str),
            Some("a\"bé")
        );
        assert!(event(&format!("noise\n{line}\n"), "image").is_ok());
        assert!(json::parse("{\"a\":1} x").is_err());
    }

    #[test]
    fn responses_are_read_with_length_or_chunks() {
        let mut fixed = io::Cursor::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"[..]);
        assert_eq!(read_response(&mut fixed).ok(), Some((200, true)));
        let mut chunked = io::Cursor::new(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"[..],
        );
        assert_eq!(read_response(&mut chunked).ok(), Some((200, false)));
        assert_eq!(chunked.position() as usize, chunked.get_ref().len());
    }

    #[test]
    fn random_bytes_are_reproducible_and_sized() {
        assert_eq!(random_bytes(13, 5), random_bytes(13, 5));
        assert_eq!(random_bytes(13, 5).len(), 13);
        assert_ne!(random_bytes(16, 5), random_bytes(16, 50));
    }
}
