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
//! fixture workspace (so repositories and sources can be changed per run),
//! workspaces with padded binaries, six shared-base functions and a big
//! function, a busybox base image, a 1 GiB zero-filled base, AWS's RIE (taken
//! once from PyPI's aws-sam-cli wheel), the layer cache the tool uses here
//! (`CARGO_LAMBDA_IMAGE_CACHE_DIR`, plus fresh ones for timed runs that must
//! compress), and the cargo target directory the workspaces share.
//!
//! The sections live in the submodules of `bench/` where they are new
//! (`caches`, `shared`, `apples`, `big`, `rie`); `layout` reads and writes OCI
//! layouts for them.

use std::{
    cell::{Cell, OnceCell},
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

mod apples;
mod big;
mod caches;
mod layout;
mod local_loop;
mod rie;
mod shared;

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
    /// `--quick`: two runs, and one of each slow big-image step.
    quick: bool,
    /// `--only`: the sections to run (all when empty).
    only: Vec<String>,
}

/// Parses `--runs N`, `--quick` and `--only SECTION[,SECTION...]`.
fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 5,
        quick: false,
        only: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                options.runs = 2;
                options.quick = true;
            }
            "--runs" => {
                let value = args.next().ok_or("--runs needs a number")?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--runs needs a positive number, got `{value}`"))?;
            }
            "--only" => {
                let value = args.next().ok_or("--only needs a section name")?;
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if !SECTIONS.iter().any(|(known, _)| *known == name) {
                        let known: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
                        return Err(format!(
                            "unknown bench section `{name}`; the sections are {}",
                            known.join(", ")
                        )
                        .into());
                    }
                    options.only.push(name.to_owned());
                }
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

/// Every section, by the name `--only` takes, in the order they run (later ones
/// rely on the order: `push-skopeo` pushes the image `push` built, `compile`
/// restores the sources `push` edits before `determinism` builds them).
const SECTIONS: [(&str, Section); 10] = [
    ("assembly", Bench::assembly),
    ("cache", Bench::layer_cache),
    ("push", Bench::push),
    ("shared-base", Bench::shared_base),
    ("push-skopeo", Bench::push_vs_skopeo),
    ("emulator", Bench::emulator),
    ("local-loop", Bench::local_loop),
    ("compile", Bench::compile),
    ("determinism", Bench::determinism),
    ("big", Bench::big_images),
];

/// Runs the benchmark and writes `BENCHMARKS.md` (with `--only`, a partial
/// report in the bench directory instead).
pub(crate) fn bench(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    let started = Instant::now();
    let bench = Bench::prepare(&options)?;
    let mut rows = Vec::new();
    for (name, section) in SECTIONS {
        if !options.only.is_empty() && !options.only.iter().any(|only| only == name) {
            continue;
        }
        cmd::check_interrupted()?;
        say!("bench: {name}");
        let section_started = Instant::now();
        match section(&bench) {
            Ok(mut section_rows) => rows.append(&mut section_rows),
            Err(err) => {
                say!("warning: {name} failed: {err}");
                rows.push(Row::failed(name, &err));
            }
        }
        say!("bench: {name} took {}", ms(section_started.elapsed()));
    }
    let report = render(&bench, &rows, started.elapsed())?;
    let path = if options.only.is_empty() {
        project_root().join("BENCHMARKS.md")
    } else {
        bench.work.join("BENCHMARKS.only.md")
    };
    fs::write(&path, report).map_err(|err| format!("failed to write {}: {err}", path.display()))?;
    say!("wrote {} in {}", path.display(), ms(started.elapsed()));
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
    /// `--quick`: one run of each slow big-image step.
    quick: bool,
    /// The layer, blob and location cache every command uses unless a row
    /// needs a fresh one (`CARGO_LAMBDA_IMAGE_CACHE_DIR`); emptied by `prepare`.
    cache: PathBuf,
    /// Numbers the fresh cache directories.
    fresh: Cell<u64>,
    /// AWS's RIE, once looked for (or downloaded), or why it is missing.
    rie: OnceCell<std::result::Result<PathBuf, String>>,
    /// The byte-counting proxy to the registry, one for the whole run: the
    /// tools remember where blobs are per registry address, as they would
    /// for a real registry.
    proxy: OnceCell<CountingProxy>,
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
        optimized_like_users(&fixture.join("Cargo.toml"))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (base, docker_base) = make_base(&work);
        let cache = work.join("cache");
        let _ = fs::remove_dir_all(&cache);
        fs::create_dir_all(&cache)
            .map_err(|err| format!("failed to create {}: {err}", cache.display()))?;
        let bench = Bench {
            runs: options.runs,
            tool,
            target: work.join("target"),
            fixture,
            work,
            base,
            docker_base,
            stamp,
            quick: options.quick,
            cache,
            fresh: Cell::new(0),
            rie: OnceCell::new(),
            proxy: OnceCell::new(),
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

    /// Points `command` at the bench target directory and cache, offline.
    fn bench_env(&self, command: &mut Command) {
        command
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", &self.cache)
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

    /// The counting proxy, started on first use.
    fn proxy(&self) -> Result<&CountingProxy> {
        if let Some(proxy) = self.proxy.get() {
            return Ok(proxy);
        }
        let proxy = CountingProxy::start(REGISTRY)?;
        Ok(self.proxy.get_or_init(|| proxy))
    }

    fn base(&self) -> Result<&str> {
        self.base
            .as_deref()
            .map_err(|why| format!("no base image: {why}").into())
    }
}

// ---------------------------------------------------------------------------
// 1. Image assembly

/// The medians of the assembly measurements of one bootstrap.
struct Assembly {
    /// The bootstrap's size, as "5.0 MB".
    label: String,
    /// `image --no-build` on the busybox base, from a fresh cache.
    ours: std::result::Result<Duration, String>,
    /// `docker build --no-cache` of the same files.
    theirs: std::result::Result<Duration, String>,
    /// `image` (cargo's no-op included) on the busybox base, from a fresh cache.
    with_cargo: std::result::Result<Duration, String>,
    /// `build` with cargo up to date.
    noop: Duration,
    /// `image --no-build --base-image scratch`, from a fresh cache.
    scratch: Duration,
    /// The bootstrap layer's size and `gzip -6` of the same tar, in bytes.
    sizes: std::result::Result<(u64, u64), String>,
}

impl Bench {
    /// `image` vs `docker build` for a 5 MB and a 50 MB bootstrap.
    fn assembly(&self) -> Result<Vec<Row>> {
        let pad = self.pad_workspace()?;
        let mut rows = Vec::new();
        for (bin, megabytes) in [("pad5", 5), ("pad50", 50)] {
            let measured = self.measure_assembly(&pad, bin)?;
            rows.extend(assembly_rows(&measured, megabytes));
        }
        Ok(rows)
    }

    /// `image --no-check` of the pad workspace's `bin` on `base`.
    fn pad_image(&self, pad: &Path, bin: &str, base: &str, no_build: bool) -> Command {
        let mut command = self.tool(&["image", "--no-check", "-p", "pad", "--bin", bin]);
        command
            .arg("--manifest-path")
            .arg(pad.join("Cargo.toml"))
            .args(["--base-image", base]);
        if no_build {
            command.arg("--no-build");
        }
        command
    }

    /// Every timed run of a fresh assembly gets an empty cache directory, so
    /// that the layer is really compressed.
    fn measure_assembly(&self, pad: &Path, bin: &str) -> Result<Assembly> {
        // The first run compiles; every timed run finds cargo up to date.
        read(&mut self.pad_image(pad, bin, "scratch", false))?;
        let size = file_size(&self.bootstrap(bin))?;
        let noop = self.median(|_| {
            timed(
                self.tool(&["build", "-p", "pad", "--bin", bin])
                    .arg("--manifest-path")
                    .arg(pad.join("Cargo.toml")),
            )
        })?;
        let scratch =
            self.median(|_| self.timed_fresh(&mut self.pad_image(pad, bin, "scratch", true)))?;
        let on_base = |no_build: bool| -> std::result::Result<Duration, String> {
            let base = self.base().map_err(|err| err.to_string())?;
            self.median(|_| self.timed_fresh(&mut self.pad_image(pad, bin, base, no_build)))
                .map_err(|err| err.to_string())
        };
        // From an already-built bootstrap (`--no-build`), as `docker build` starts from one.
        let ours = on_base(true);
        // The last run's layout holds a layer compressed from scratch; the
        // bootstrap's layer is the same whatever the base.
        let sizes = layout::last_layer(&self.layout(bin))
            .and_then(|blob| Ok((file_size(&blob)?, layout::gzip6_size(&blob)?)))
            .map_err(|err| err.to_string());
        let with_cargo = on_base(false);
        let theirs = self.docker_build_median(&self.bootstrap(bin));
        Ok(Assembly {
            label: format!("{:.1} MB", size as f64 / 1_048_576.0),
            ours,
            theirs,
            with_cargo,
            noop,
            scratch,
            sizes,
        })
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
        // Each image is removed after its (timed) build, so that no run
        // leaves an untagged image behind.
        let result = docker_context(&context, bootstrap).and_then(|()| {
            self.median(|_| {
                let time = timed(&mut docker_build(&context, &tag));
                let _ = read(Command::new("docker").args(["rmi", "--force", &tag]));
                time
            })
        });
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

/// The rows of one bootstrap size: against `docker build` (the first target,
/// and the issue's per-size one), the absolute time, the layer's size against
/// `gzip -6`, and the parts.
fn assembly_rows(m: &Assembly, megabytes: u64) -> Vec<Row> {
    let label = &m.label;
    let against_docker = |what: String, target: &str, factor: f64| Row {
        what,
        ours: show(&m.ours),
        theirs: show(&m.theirs),
        ratio: speedup(&m.ours, &m.theirs),
        target: target.into(),
        met: met(&m.ours, &m.theirs, |o, t| t >= factor * o),
    };
    let what = format!("image assembly, {label} bootstrap, busybox base (`image --no-build` vs `docker build --no-cache`)");
    let again = format!("  the same medians, {label} bootstrap, against the issue's target");
    let mut rows = vec![against_docker(what, "≥ 20× faster", 20.0)];
    if megabytes == 5 {
        rows.push(against_docker(
            again,
            "5 MB bootstrap: ≥ 5× faster than `docker build --no-cache`",
            5.0,
        ));
        rows.push(Row {
            what: format!("image assembly, {label} bootstrap, absolute"),
            ours: show(&m.ours),
            theirs: "—".into(),
            ratio: "—".into(),
            target: "< 200 ms".into(),
            met: yes_no(
                m.ours
                    .as_ref()
                    .is_ok_and(|d| *d < Duration::from_millis(200)),
            ),
        });
    } else {
        rows.push(against_docker(
            again,
            "50 MB incompressible bootstrap: ≥ 3× faster",
            3.0,
        ));
    }
    rows.push(match &m.sizes {
        Ok((ours, gzip)) => Row {
            what: format!("layer size vs one-stream gzip level 6, {label} bootstrap layer (`gzip -6` of the same tar)"),
            ours: kib(*ours),
            theirs: kib(*gzip),
            ratio: format!("{:+.2}%", (*ours as f64 / *gzip as f64 - 1.0) * 100.0),
            target: "within 2%".into(),
            met: yes_no(*ours as f64 <= *gzip as f64 * 1.02),
        },
        Err(why) => Row::failed(&format!("layer size vs one-stream gzip level 6, {label}"), why),
    });
    rows.push(info_row(
        &format!("  `image` with the cargo no-op (no `--no-build`), fresh cache, {label}"),
        show(&m.with_cargo),
    ));
    rows.push(info_row(
        &format!("  of which: `build` no-op (cargo up to date), {label}"),
        ms(m.noop),
    ));
    rows.push(info_row(
        &format!("  `image --no-build --base-image scratch`, fresh cache, {label}"),
        ms(m.scratch),
    ));
    rows
}

/// Writes a build context with the bootstrap and a Dockerfile equivalent to
/// what `image` assembles on a base without an entrypoint.
fn docker_context(dir: &Path, bootstrap: &Path) -> Result<()> {
    docker_context_from(dir, bootstrap, DOCKER_BASE)
}

/// [`docker_context`] on the Docker image `base`.
fn docker_context_from(dir: &Path, bootstrap: &Path, base: &str) -> Result<()> {
    fs::create_dir_all(dir).map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
    let dockerfile = format!(
        "FROM {base}\nCOPY bootstrap /var/runtime/bootstrap\n\
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
    if let Err(err) = busybox_tarball(&work.join("busybox-rootfs"), &tarball, None) {
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
        Ok(()) => oci_base(work, DOCKER_BASE, &work.join("busybox-oci")),
        Err(why) => Err(why.clone()),
    };
    (layout, imported)
}

/// A tarball of the directory `rootfs`, made with `/bin/busybox` (static) and
/// `/bin/sh`, and with `/etc/xtask-bench-stamp` holding `stamp` if given (a
/// base layer no earlier run has made).
fn busybox_tarball(rootfs: &Path, tarball: &Path, stamp: Option<&str>) -> Result<()> {
    let _ = fs::remove_dir_all(rootfs);
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
    if let Some(stamp) = stamp {
        let etc = rootfs.join("etc");
        fs::create_dir_all(&etc)
            .map_err(|err| format!("failed to create {}: {err}", etc.display()))?;
        write(&etc.join("xtask-bench-stamp"), stamp.as_bytes())?;
    }
    read(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .arg("-cf")
            .arg(tarball)
            .arg("."),
    )?;
    Ok(())
}

/// The Docker image `image` as an OCI layout with gzip layers at `layout`;
/// returns `oci:DIR:latest`.
fn oci_base(work: &Path, image: &str, layout: &Path) -> std::result::Result<String, String> {
    let saved = work.join("busybox-save.tar");
    let _ = fs::remove_dir_all(layout);
    read(
        Command::new("docker")
            .args(["save", "--output"])
            .arg(&saved)
            .arg(image),
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
        let proxy = self.proxy()?;
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
                let (sample, changed) = self.push_ours(proxy, &base)?;
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
                    match self.push_docker(proxy, &saved, &reference) {
                        Ok(sample) => samples.add(again, sample),
                        Err(err) => docker = Err(format!("docker failed: {err}")),
                    }
                }
                if let Ok(samples) = &mut skopeo {
                    let reference = format!("{}/{repository}-skopeo:{revision}", proxy.address);
                    match push_skopeo(proxy, &saved.join("oci"), &reference) {
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
        let layer = last_layer_size(&stdout)?;
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
    /// Cold start and throughput of `emulator` and of AWS's `aws-lambda-rie`.
    fn emulator(&self) -> Result<Vec<Row>> {
        let bootstrap = self.bootstrap("fixture-echo");
        let rie = self.rie();
        let cold = self.median(|_| self.start_ours(&bootstrap, 1).map(|(_, cold)| cold))?;
        let their_cold = rie.clone().and_then(|rie| {
            self.median(|_| rie::start_rie(&rie, &bootstrap).map(|(_, cold)| cold))
                .map_err(|err| format!("aws-lambda-rie failed: {err}"))
        });
        let ours = |clients: usize| -> Result<Rate> {
            let (emulator, _) = self.start_ours(&bootstrap, clients)?;
            throughput(&emulator.address, clients)
        };
        let ours_1 = ours(1)?;
        let ours_4 = ours(4)?;
        let rie_1 = rie
            .clone()
            .and_then(|rie| rie::rie_rate(&rie, &bootstrap, 1));
        let rie_4 = rie.and_then(|rie| rie::rie_rate(&rie, &bootstrap, 4));
        Ok(emulator_rows(
            cold,
            &their_cold,
            [ours_1, ours_4],
            [&rie_1, &rie_4],
        ))
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

/// The emulator's rows: cold start, one client, and four clients against the
/// RIE's one, then what the RIE does with four.
fn emulator_rows(
    cold: Duration,
    their_cold: &std::result::Result<Duration, String>,
    [ours_1, ours_4]: [Rate; 2],
    [rie_1, rie_4]: [&std::result::Result<rie::RieRate, String>; 2],
) -> Vec<Row> {
    let window = THROUGHPUT_WINDOW.as_secs();
    let versus = |ours: Rate, theirs: &std::result::Result<rie::RieRate, String>, factor: f64| {
        let theirs = theirs
            .as_ref()
            .ok()
            .map(|t| t.rate.per_second())
            .filter(|t| *t > 0.0)
            .ok_or(());
        (
            theirs.map_or("—".into(), |t| format!("{:.2}×", ours.per_second() / t)),
            theirs.map_or("—".into(), |t| yes_no(ours.per_second() >= factor * t)),
        )
    };
    let (ratio_1, met_1) = versus(ours_1, rie_1, 1.5);
    let (ratio_4, met_4) = versus(ours_4, rie_1, 3.0);
    let (ratio_44, _) = versus(ours_4, rie_4, 0.0);
    vec![
        Row {
            what: "emulator: cold start to first response (fixture-echo; `emulator` vs `aws-lambda-rie`)".into(),
            ours: ms(cold),
            theirs: show(their_cold),
            ratio: speedup(&Ok(cold), their_cold),
            target: "no slower than the RIE".into(),
            met: met(&Ok(cold), their_cold, |o, t| o <= t),
        },
        Row {
            what: format!("emulator: invocations/s, 1 keep-alive client for {window} s"),
            ours: ours_1.show(),
            theirs: rie::show_rate(rie_1),
            ratio: ratio_1,
            target: "≥ 1.5× the RIE".into(),
            met: met_1,
        },
        Row {
            what: format!(
                "emulator: invocations/s, 4 keep-alive clients for {window} s (`--concurrency 4`) vs the RIE with 1 client"
            ),
            ours: ours_4.show(),
            theirs: rie::show_rate(rie_1),
            ratio: ratio_4,
            target: "≥ 3× the RIE's single-client rate".into(),
            met: met_4,
        },
        Row {
            what: format!(
                "  the RIE with 4 keep-alive clients for {window} s (it has no concurrency option)"
            ),
            ours: ours_4.show(),
            theirs: rie::show_rate(rie_4),
            ratio: ratio_44,
            target: "—".into(),
            met: "—".into(),
        },
    ]
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

/// What the clients of one throughput window counted.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    ok: u64,
    failed: u64,
    seconds: f64,
}

impl Rate {
    /// Successful invocations per second.
    fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// "N/s", with the failures when there were any.
    fn show(&self) -> String {
        if self.failed == 0 {
            format!("{:.0}/s", self.per_second())
        } else {
            format!(
                "{:.0}/s ({} of {} invocations failed)",
                self.per_second(),
                self.failed,
                self.ok + self.failed
            )
        }
    }
}

/// Invocations with `clients` concurrent keep-alive clients for one window.
fn throughput(address: &str, clients: usize) -> Result<Rate> {
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
                        _ => {
                            failed += 1;
                            // A server that is gone refuses at once; do not spin.
                            thread::sleep(Duration::from_millis(1));
                        }
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
    Ok(Rate {
        ok,
        failed,
        seconds: started.elapsed().as_secs_f64(),
    })
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

/// `N` addresses with ports that were free a moment ago (and distinct: they
/// are all held until every one is chosen).
fn free_addresses<const N: usize>() -> Result<[String; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| format!("no free port: {err}"))?;
    let addresses = listeners
        .iter()
        .map(|listener| listener.local_addr().map(|a| a.to_string()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| format!("no free port: {err}"))?;
    addresses.try_into().map_err(|_| "no free port".into())
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
    /// `build` vs `cargo build` of the same packages and target, both after
    /// `cargo clean` of those packages: one package, then both of the fixture's.
    fn compile(&self) -> Result<Vec<Row>> {
        // Start from the original sources: the push sections edit them.
        copy_dir(
            &project_root().join("tests/fixtures/workspace/crates/echo"),
            &self.fixture.join("crates/echo"),
            &[],
        )?;
        let (ours, theirs) = self.compile_pair(&["echo"])?;
        let overhead = (ours.as_secs_f64() / theirs.as_secs_f64() - 1.0) * 100.0;
        let mut rows = vec![Row {
            what: format!("compile `-p echo` from `cargo clean -p echo` (`build` vs `cargo build --release --target {TRIPLE}`)"),
            ours: ms(ours),
            theirs: ms(theirs),
            ratio: format!("{overhead:+.1}% overhead"),
            target: "≤ 5% overhead".into(),
            met: yes_no(overhead <= 5.0),
        }];
        let (ours, theirs) = self.compile_pair(&["echo", "greet"])?;
        let overhead = (ours.as_secs_f64() / theirs.as_secs_f64() - 1.0) * 100.0;
        rows.push(Row {
            what: format!("compile `-p echo -p greet` (3 functions, x86_64) from `cargo clean -p echo -p greet` (`build` vs `cargo build --release --target {TRIPLE} -p echo -p greet`)"),
            ours: ms(ours),
            theirs: ms(theirs),
            ratio: format!("{overhead:+.1}% overhead"),
            target: "≤ 3% overhead".into(),
            met: yes_no(overhead <= 3.0),
        });
        Ok(rows)
    }

    /// Medians of `build -p P...` and of plain `cargo build -p P...`, each
    /// run after `cargo clean -p P... --release --target TRIPLE`.
    fn compile_pair(&self, packages: &[&str]) -> Result<(Duration, Duration)> {
        let manifest = self.manifest();
        let selected: Vec<&str> = packages.iter().flat_map(|p| ["-p", *p]).collect();
        let with = |args: &[&'static str]| -> Vec<&str> { [args, &selected].concat() };
        let clean = || {
            read(&mut self.cargo(
                &manifest,
                &with(&["clean", "--quiet", "--release", "--target", TRIPLE]),
            ))
        };
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..self.runs {
            cmd::check_interrupted()?;
            clean()?;
            ours.push(timed(
                self.tool(&with(&["build"]))
                    .arg("--manifest-path")
                    .arg(&manifest),
            )?);
            clean()?;
            theirs.push(timed(&mut self.cargo(
                &manifest,
                &with(&["build", "--quiet", "--release", "--target", TRIPLE]),
            ))?);
        }
        Ok((median(&mut ours), median(&mut theirs)))
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
        // A fresh cache each time: a cached layer would make the digests equal
        // without the layer being made again.
        let image = || -> Result<String> {
            let cache = self.fresh_cache()?;
            let mut command = self.tool(&["image", "--message-format", "json", "-p", "echo"]);
            command
                .arg("--manifest-path")
                .arg(self.manifest())
                .args(["--base-image", &base])
                .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache.path());
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
fn render(bench: &Bench, rows: &[Row], took: Duration) -> Result<String> {
    let mut out = String::new();
    let date = read(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map_or_else(|err| format!("unknown ({err})"), |d| d.trim().to_owned());
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `cargo xtask bench{}` on {date} in {}; medians of {} run(s) per cell \
         (throughput: one {} s window; big images: {} run(s)). Regenerate with `cargo xtask \
         bench` (`--runs N`, `--quick` = 2 runs and one run of each big-image step, `--only \
         SECTION` to run some sections into a scratch report) while `cargo xtask services` runs.\n",
        if bench.quick { " --quick" } else { "" },
        ms(took),
        bench.runs,
        THROUGHPUT_WINDOW.as_secs(),
        bench.big_runs()
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
    out.push_str(&kept_section(&project_root().join("BENCHMARKS.md")));
    out.push_str(METHOD);
    Ok(out)
}

/// The heading of the section of `BENCHMARKS.md` that is written by hand (why the targets not
/// met are not met, with the measurements behind it) and carried over when the bench rewrites
/// the file.
const KEPT_HEADING: &str = "## Targets not met, and why";

/// The hand-written section of the report at `path`, up to the next heading, or nothing.
fn kept_section(path: &Path) -> String {
    let Ok(old) = fs::read_to_string(path) else {
        return String::new();
    };
    let Some(start) = old.find(KEPT_HEADING) else {
        return String::new();
    };
    let rest = &old[start..];
    let end = rest[KEPT_HEADING.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| i + KEPT_HEADING.len() + 1);
    format!("\n{}", rest[..end].trim_end_matches('\n').to_owned() + "\n")
}

const METHOD: &str = "
## How it is measured

Every command of the tool runs with `CARGO_LAMBDA_IMAGE_CACHE_DIR` in the bench directory
(emptied when the bench starts), never the user's cache. A row that measures making an image
(\"fresh cache\", \"empty cache\") gives every timed run a new, empty cache directory, so
the layers are really compressed (the base's layers are hard-linked from its OCI layout, as
always); a row that measures the cached path says so. All pushes go through one TCP proxy in
the bench, started once per bench run, that counts client-to-registry bytes; it stands for the
registry (127.0.0.1:5000), so the tools' memory of where blobs are (ours in the cache's
`locations/`, docker's and skopeo's own) works as with a real registry. MB is 2^20 bytes in
the labels of bootstrap sizes.

- **Image assembly**: `cargo-lambda-image image --no-build --no-check -p pad --bin padN` on a
  workspace whose binaries embed 5 or 50 MB of random bytes (incompressible), from the bootstrap
  an earlier `build` left (`--no-build`: reading the metadata, assembling and writing the OCI
  layout), from a fresh cache each run. The same medians are held against the first target
  (≥ 20×) and against the issue's per-size target (≥ 5× for 5 MB, ≥ 3× for 50 MB). `image`
  without `--no-build`, which adds cargo's up-to-date check, and that check alone (`build`) are
  shown on their own rows. The base is a busybox rootfs (`/bin/busybox` from Debian
  busybox-static) made with `docker import` and copied to an OCI layout with gzip layers by
  `skopeo copy`; `image` reads it as `oci:DIR:latest`. Docker runs `docker build --no-cache`
  (classic builder) of `FROM base`, `COPY bootstrap /var/runtime/bootstrap`, `ENTRYPOINT`, `CMD`
  on the same base, the build context holding only the Dockerfile and the bootstrap.
- **Layer size vs gzip -6**: the last layer of the OCI layout the last fresh run wrote
  (`target/lambda-image/padN/x86_64/oci`; the bootstrap's layer), against `gzip -dc < layer |
  gzip -6 -c | wc -c`, i.e. one-stream `gzip -6` of the very same tar. \"Within 2%\" is met
  when our layer is at most 2% larger (smaller is better, and also met).
- **Layer cache**: `image` (no `--no-build`) of the pad binaries with nothing changed: the
  bootstrap built, the layer in the bench's cache from two earlier runs (the second remembers
  the bootstrap's content hash, as any later run would find it), so the time is the cargo
  no-op, the metadata, the cache lookup and writing the layout. Against it: plain `cargo build
  --release --target x86_64-unknown-linux-musl -p pad --bin padN --quiet` finding everything up
  to date. The ratio cell is the difference; the target allows the cargo no-op plus 30 ms.
  `image --no-build` with the cached layer is shown below it.
- **Push**: a new repository per run (fixture-echo on the busybox base). Ours is `push` with
  cargo up to date, so it includes the cargo no-op, assembly (the changed layer is compressed;
  the base's come from its layout) and the check; docker's image is built before the timed
  `docker push`; skopeo copies the OCI layout `push` wrote. In the first run the base is
  uploaded (the proxy's address is new to every tool); later runs mount it, so with 2 runs
  the first-push medians are the mean of both cases. The re-push follows a one-string change in the function's source
  (recompiled before timing).
- **Shared base**: a package with 6 std-only binaries, each its own function (`function-name`
  and `image.repository` per binary in `[package.metadata.lambda.bin.NAME]`), the repositories
  new in every run. Every run makes a base no tool has seen: the busybox rootfs plus a file
  holding the run's name, imported into Docker and copied to an OCI layout. Ours: an untimed
  `image --no-build --workspace` fills a fresh cache with the layers (and no known blob
  locations), then the timed `push --no-build --workspace` sends the 6 images in one run. The
  base layer's fate comes from the `pushed` events (`uploaded`, `mounted`, `existing`). Docker:
  the 6 images are built with `docker build` from the same bootstraps on the same base
  (untimed), then 6 `docker push` run one after another (timed together); the layer counts are
  the `Pushed`, `Mounted from` and `Layer already exists` lines of its output.
- **Push vs skopeo**: the image of fixture-echo on the busybox base is built once (untimed);
  each run gives echo a new repository (metadata only, the bootstrap is unchanged), then runs
  `push --no-build -p echo` twice (to the new repository, then the same image again) and
  `skopeo copy --dest-tls-verify=false oci:LAYOUT docker://REGISTRY/REPO-skopeo:bench` twice,
  of the very layout `push` wrote. Both tools know that the registry already has the blobs
  (earlier sections pushed them) and mount them. Our time includes what skopeo does not do:
  process start, `cargo metadata`, assembly from the layer cache and the check. It is not
  subtracted.
- **Emulator**: `cargo-lambda-image emulator --bind 127.0.0.1:0 [--concurrency 4] -- bootstrap`
  and AWS's `aws-lambda-rie --runtime-interface-emulator-address 127.0.0.1:P
  --runtime-api-address 127.0.0.1:Q bootstrap` of fixture-echo. The RIE is the
  `samcli/local/rapid/aws-lambda-rie-x86_64` of the PyPI `aws-sam-cli` wheel (`pip download
  --no-deps aws-sam-cli`, once, kept in the bench directory), unless `aws-lambda-rie` is on
  PATH. Cold start is process start to the first 200 response. Throughput counts 200 responses of HTTP/1.1 keep-alive
  clients written with std `TcpStream`, each in a loop for the window; a failed invocation
  (error status or broken connection) is counted and shown, and a client whose server is gone
  retries after 1 ms. The RIE has no concurrency setting; the row with 4 clients against it
  shows what it does (failures, and whether its process exited).
- **Local loop**: each run appends a few bytes to fixture-echo's bootstrap (a code change
  that leaves it runnable), then times `test --no-build -p echo --base-image oci:BUSYBOX
  --event '{...}'` (assembles the changed layer, unpacks what changed, runs the function under
  the default runner and invokes it once) and, for Docker, `docker build` of `FROM
  busybox+RIE`, `COPY bootstrap`, `ENTRYPOINT [aws-lambda-rie, bootstrap]` (the base layers
  from Docker's cache, as in a loop), `docker run --detach --publish`, POSTs to the RIE until
  one answers 200, and `docker rm --force`. The busybox+RIE base (the RIE of the emulator
  rows) is built once, untimed, as is one `test` run before the first timed one.
- **Compile**: both commands run after `cargo clean -p PACKAGE... --release --target
  x86_64-unknown-linux-musl` in the same target directory, so only the function crates compile:
  `build -p echo` vs `cargo build -p echo`, and `build -p echo -p greet` (3 functions: echo,
  greet and goodbye, one cargo invocation) vs `cargo build -p echo -p greet`.
- **Determinism**: `image -p echo` twice with `cargo clean -p echo` in between, each from a
  fresh cache (a cached layer would give the same digest without being made again); compares
  the manifest digests of the `image` events.
- **Big images**: a copy of fixture-echo (so it answers events) with `include = [\"data\"]`,
  its own workspace in the same target directory. Memory: `data/` holds one 4 GiB sparse file
  (`File::set_len`: no disk used, but every reader sees 4 GiB of zeros), the base is an OCI
  layout written by the bench (one gzip layer with a 1 GiB zero-filled file, made once with
  `tar | gzip -1` and kept); each command runs under `/usr/bin/time -f %M` (peak RSS in KiB, of
  the process and the children it waited for): `image --no-build` from an empty cache (so the
  4 GiB are compressed), then `push --no-build` (to the registry directly), `check --no-build`
  and `test --no-build --runner unconfined --event '{}'` with that cache. \"< 256 MB\" is read
  as 256·10^6 bytes, and the rows show MB of 10^6 bytes. Throughput: `data/` holds 1 GiB of
  generated log text (timestamps, ids, paths, statuses from a xorshift generator; about 4.5:1
  with gzip), and `image --no-build` runs on the busybox base from an empty cache each run; the
  rate is 1 GiB over the time, in MiB/s (so \"≥ 100 MB/s\" is held to 100 MiB/s, the stricter
  reading); the same with `--no-check`, and with 1 GiB of one repeated line, are shown below.
  Re-push: the log-text function is pushed to a new repository (untimed), one string in its
  code changes, `build` recompiles it, and `push --no-build` pushes again; bytes sent against
  the new bootstrap layer's size (the include's layer is unchanged and already there). With
  `--quick`, each big-image step runs once. The big files (include data, the 5 GiB root file
  system `test` unpacks, the layouts) are deleted at the end of the section.
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
        ("aws-lambda-rie", bench.rie_version()),
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
/// The size of the last layer (the function's own) of the `image` event in `stdout`.
fn last_layer_size(stdout: &str) -> Result<u64> {
    event(stdout, "image")?
        .get("image")
        .and_then(|image| image.get("layers"))
        .and_then(json::Value::as_array)
        .and_then(|layers| layers.last())
        .and_then(|layer| layer.get("size"))
        .and_then(json::Value::as_u64)
        .ok_or_else(|| "the image event has no layers".into())
}

fn event(stdout: &str, reason: &str) -> Result<json::Value> {
    stdout
        .lines()
        .filter_map(|line| json::parse(line).ok())
        .find(|value| value.get("reason").and_then(json::Value::as_str) == Some(reason))
        .ok_or_else(|| format!("no `{reason}` event in the output").into())
}

/// Every JSON line of `stdout` whose `reason` is `reason`.
fn event_lines(stdout: &str, reason: &str) -> Vec<json::Value> {
    stdout
        .lines()
        .filter_map(|line| json::parse(line).ok())
        .filter(|value| value.get("reason").and_then(json::Value::as_str) == Some(reason))
        .collect()
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
/// The line of the fixture's manifest that compiles it unoptimized for the tests.
const TESTS_OPT_LEVEL: &str = "opt-level = 0\n";

/// Removes the fixture's unoptimized release profile (a saving for the tests) from the bench's
/// copy, so every row measures the optimized build users make.
fn optimized_like_users(manifest: &Path) -> Result<()> {
    let text = fs::read_to_string(manifest)
        .map_err(|err| format!("failed to read {}: {err}", manifest.display()))?;
    if !text.contains(TESTS_OPT_LEVEL) {
        return Err(format!(
            "{} has no `{}` line to remove: update xtask's bench with the fixture",
            manifest.display(),
            TESTS_OPT_LEVEL.trim_end()
        )
        .into());
    }
    write(manifest, text.replacen(TESTS_OPT_LEVEL, "", 1).as_bytes())
}

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
    fn the_hand_written_section_is_carried_over() {
        let path = std::env::temp_dir().join(format!("bench-kept-{}.md", std::process::id()));
        std::fs::write(
            &path,
            "# Benchmarks\n\n## Results\n\n| a |\n\n## Targets not met, and why\n\n- X is \
             slow: measured.\n\n## How it is measured\n\nstuff\n",
        )
        .unwrap();
        assert_eq!(
            kept_section(&path),
            "\n## Targets not met, and why\n\n- X is slow: measured.\n"
        );
        std::fs::write(&path, "# Benchmarks\n").unwrap();
        assert_eq!(kept_section(&path), "");
        let _ = std::fs::remove_file(&path);
    }

    fn options(runs: usize, quick: bool, only: &[&str]) -> Options {
        Options {
            runs,
            quick,
            only: only.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn parsed(args: &[&str]) -> std::result::Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        parse_args(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn args_default_to_five_runs_and_quick_means_two() {
        assert_eq!(parsed(&[]), Ok(options(5, false, &[])));
        assert_eq!(parsed(&["--quick"]), Ok(options(2, true, &[])));
        assert_eq!(parsed(&["--runs", "3"]), Ok(options(3, false, &[])));
        assert!(parsed(&["--runs", "0"]).is_err());
        assert!(parsed(&["--fast"]).is_err());
    }

    #[test]
    fn only_takes_known_sections() {
        assert_eq!(
            parsed(&["--quick", "--only", "big,emulator", "--only", "cache"]),
            Ok(options(2, true, &["big", "emulator", "cache"]))
        );
        let err = parsed(&["--only", "bigg"]).expect_err("unknown section");
        assert!(err.contains("shared-base"), "{err}");
        assert!(parsed(&["--only"]).is_err());
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
