//! Big images: peak memory of every command on a function with a 4 GiB
//! include over a 1 GiB base, `image` throughput with a 1 GiB compressible
//! include, and what a re-push sends after a code-only change.
//!
//! The 4 GiB include is a sparse file and the base is made once (its layer
//! is a zero-filled file, about 1 MB gzipped), so the section costs little
//! disk; the big files are deleted at its end.

use std::{
    fs::{self, File},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::{
    caches::FreshCache,
    events::last_layer_size,
    helpers::{file_size, read, timed, write},
    layout,
    report::{info_row, Row},
    setup::{Bench, REGISTRY},
    stats::{kib, median, ms, yes_no},
};
use crate::{cmd, project_root, Result};

const GIB: u64 = 1 << 30;
/// "< 256 MB": MB read as 10^6 bytes, the stricter reading.
const MEMORY_LIMIT: u64 = 256_000_000;
/// The function's name (and so its directory under `target/lambda-image`).
const FUNCTION: &str = "xtask-bench-big";

/// Deletes the section's big files however it ends.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        }
    }
}

impl Bench {
    /// The big-image section; each part that fails becomes a row of its own.
    pub(super) fn big_images(&self) -> Result<Vec<Row>> {
        let workspace = self.big_workspace()?;
        let _cleanup = Cleanup(vec![
            workspace.join("data"),
            self.target.join("lambda-image").join(FUNCTION),
        ]);
        let mut rows = match self.big_memory(&workspace) {
            Ok(rows) => rows,
            Err(err) => vec![Row::failed("big images: peak memory", &err)],
        };
        // The 4 GiB include and the 5 GiB root file system `test` unpacked.
        let _ = fs::remove_file(workspace.join("data/sparse.bin"));
        let function = self.target.join("lambda-image").join(FUNCTION);
        let _ = fs::remove_dir_all(function.join("x86_64/rootfs"));
        cmd::check_interrupted()?;
        let warm = match self.big_throughput(&workspace) {
            Ok((mut part, warm)) => {
                rows.append(&mut part);
                Some(warm)
            }
            Err(err) => {
                rows.push(Row::failed("big images: throughput", &err));
                None
            }
        };
        cmd::check_interrupted()?;
        match self.big_repush(&workspace, warm) {
            Ok(row) => rows.push(row),
            Err(err) => rows.push(Row::failed("big images: re-push", &err)),
        }
        Ok(rows)
    }

    /// Runs of the slow steps: one with `--quick`.
    pub(super) fn big_runs(&self) -> usize {
        if self.quick {
            1
        } else {
            self.runs
        }
    }

    /// A copy of the fixture's echo function (so its dependencies are already
    /// compiled in the bench target directory) with `include = ["data"]`;
    /// compiled, with an empty `data`.
    fn big_workspace(&self) -> Result<PathBuf> {
        let dir = self.work.join("big");
        let data = dir.join("data");
        let _ = fs::remove_dir_all(&data);
        fs::create_dir_all(&data)
            .map_err(|err| format!("failed to create {}: {err}", data.display()))?;
        let lock = dir.join("Cargo.lock");
        if !lock.is_file() {
            fs::copy(
                project_root().join("tests/fixtures/workspace/Cargo.lock"),
                &lock,
            )
            .map_err(|err| format!("failed to copy the fixture's Cargo.lock: {err}"))?;
        }
        write_big_manifest(&dir, "xtask-bench-big")?;
        write_big_source(&dir, "first")?;
        read(
            self.tool(&["build"])
                .arg("--manifest-path")
                .arg(dir.join("Cargo.toml")),
        )?;
        Ok(dir)
    }

    /// A command of the tool on the big workspace, `--no-build`, with the
    /// cache `cache`.
    fn big_command(&self, workspace: &Path, cache: &Path, args: &[&str], base: &str) -> Command {
        let mut command = self.tool(args);
        command
            .args(["--no-build", "--base-image", base])
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .env("CARGO_LAMBDA_IMAGE_CACHE_DIR", cache)
            .env("CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES", REGISTRY);
        command
    }

    /// Peak RSS of `image`, `push`, `check` and `test` with a 4 GiB include on
    /// a 1 GiB base; `image` from an empty cache, the others after it.
    fn big_memory(&self, workspace: &Path) -> Result<Vec<Row>> {
        let base = layout::zero_base(&self.work.join("big-base"), GIB)?;
        let include = workspace.join("data/sparse.bin");
        File::create(&include)
            .and_then(|file| file.set_len(4 * GIB))
            .map_err(|err| format!("failed to create {}: {err}", include.display()))?;
        write_big_manifest(workspace, &format!("xtask-bench-{}-big", self.stamp))?;
        let cache = self.fresh_cache()?;
        let steps: [(&str, &[&str]); 4] = [
            ("`image --no-build` (from an empty cache)", &["image"]),
            ("`push --no-build`", &["push", "--registry", REGISTRY]),
            ("`check --no-build`", &["check"]),
            (
                "`test --no-build --runner unconfined --event '{}'`",
                &["test", "--runner", "unconfined", "--event", "{}"],
            ),
        ];
        let mut rows = Vec::new();
        for (what, args) in steps {
            cmd::check_interrupted()?;
            let mut command = self.big_command(workspace, cache.path(), args, &base);
            let measured = peak_rss(&mut command, &self.work.join("time.out"));
            let what =
                format!("big image memory: peak RSS of {what}, 4 GiB include on a 1 GiB base");
            rows.push(match measured {
                Ok((kib_peak, time)) => {
                    let bytes = kib_peak * 1024;
                    Row {
                        what,
                        ours: format!("{:.1} MB (in {})", bytes as f64 / 1e6, ms(time)),
                        theirs: "—".into(),
                        ratio: "—".into(),
                        target: "< 256 MB".into(),
                        met: yes_no(bytes < MEMORY_LIMIT),
                    }
                }
                Err(err) => Row::failed(&what, &err),
            });
        }
        Ok(rows)
    }

    /// `image --no-build` with a 1 GiB compressible include from an empty
    /// cache (log text, then one repeated line); returns the rows and a cache
    /// that holds the log text's layers.
    fn big_throughput(&self, workspace: &Path) -> Result<(Vec<Row>, FreshCache)> {
        let base = self.base().unwrap_or("scratch").to_owned();
        let repeated = workspace.join("data/repeated.txt");
        write_repeated(&repeated, GIB)?;
        let (repeated_time, _) = self.image_runs(workspace, &base, &["image"])?;
        fs::remove_file(&repeated)
            .map_err(|err| format!("failed to remove {}: {err}", repeated.display()))?;
        write_text(&workspace.join("data/text.log"), GIB)?;
        // Not with `--quick`: it costs another 1 GiB compression.
        let no_check = if self.quick {
            None
        } else {
            Some(
                self.image_runs(workspace, &base, &["image", "--no-check"])?
                    .0,
            )
        };
        let (time, cache) = self.image_runs(workspace, &base, &["image"])?;
        let function_layout = self.layout(FUNCTION);
        let compressed = layout::layer_digests(&function_layout)
            .and_then(|digests| {
                let include = digests.len().checked_sub(2).ok_or("no include layer")?;
                file_size(&layout::blob_path(&function_layout, &digests[include])?)
            })
            .map_or_else(
                |err| format!("unknown ({err})"),
                |size| format!("{:.0} MiB", size as f64 / 1_048_576.0),
            );
        let rate = |time: Duration| GIB as f64 / 1_048_576.0 / time.as_secs_f64();
        let rows = vec![
            Row {
                what: "big image throughput: `image --no-build` with a 1 GiB compressible include (generated log text), empty cache".into(),
                ours: format!("{:.0} MiB/s ({})", rate(time), ms(time)),
                theirs: "—".into(),
                ratio: "—".into(),
                target: "≥ 100 MB/s".into(),
                met: yes_no(rate(time) >= 100.0),
            },
            info_row(
                "  the same with `--no-check`; the log text's compressed layer",
                format!(
                    "{}; 1024 MiB → {compressed}",
                    no_check.map_or("not run with `--quick`".into(), |time| format!(
                        "{:.0} MiB/s ({})",
                        rate(time),
                        ms(time)
                    ))
                ),
            ),
            info_row(
                "  the same with 1 GiB of one repeated line instead (`image --no-build`, empty cache)",
                format!("{:.0} MiB/s ({})", rate(repeated_time), ms(repeated_time)),
            ),
        ];
        Ok((rows, cache))
    }

    /// The median time of `args` (`image ...`) on the big function, each run
    /// from an empty cache; and the last run's cache.
    fn image_runs(
        &self,
        workspace: &Path,
        base: &str,
        args: &[&str],
    ) -> Result<(Duration, FreshCache)> {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..self.big_runs() {
            cmd::check_interrupted()?;
            drop(last.take());
            let cache = self.fresh_cache()?;
            times.push(timed(&mut self.big_command(
                workspace,
                cache.path(),
                args,
                base,
            ))?);
            last = Some(cache);
        }
        Ok((median(&mut times), last.ok_or("no run")?))
    }

    /// Pushes the function with its 1 GiB include, changes one string in its
    /// code, rebuilds and pushes again: bytes sent against the new bootstrap layer.
    fn big_repush(&self, workspace: &Path, warm: Option<FreshCache>) -> Result<Row> {
        let include = workspace.join("data/text.log");
        write_text(&include, GIB)?;
        let cache = match warm {
            Some(cache) => cache,
            None => self.fresh_cache()?,
        };
        let base = self.base().unwrap_or("scratch").to_owned();
        let proxy = self.proxy()?;
        write_big_manifest(workspace, &format!("xtask-bench-{}-big-repush", self.stamp))?;
        let push = |cache: &Path| {
            let mut push = self.big_command(
                workspace,
                cache,
                &["push", "--message-format", "json"],
                &base,
            );
            push.args(["--registry", &proxy.address]).env(
                "CARGO_LAMBDA_IMAGE_INSECURE_REGISTRIES",
                format!("{REGISTRY},{}", proxy.address),
            );
            push
        };
        read(&mut push(cache.path()))?;
        write_big_source(workspace, &format!("changed-{}", self.stamp))?;
        read(
            self.tool(&["build"])
                .arg("--manifest-path")
                .arg(workspace.join("Cargo.toml")),
        )?;
        proxy.reset();
        let stdout = read(&mut push(cache.path()))?;
        let bytes = proxy.bytes();
        let layer = last_layer_size(&stdout)?;
        Ok(Row {
            what: "big image: re-push after a code-only change with a 1 GiB include (`push --no-build` after `build`); bytes sent vs the bootstrap layer".into(),
            ours: kib(bytes),
            theirs: format!("bootstrap layer {}", kib(layer)),
            ratio: format!("{:+.1} KiB", (bytes as f64 - layer as f64) / 1024.0),
            target: "≤ bootstrap layer + 8 KiB".into(),
            met: yes_no(bytes <= layer + 8 * 1024),
        })
    }
}

/// Runs `command` under `/usr/bin/time -f %M`; returns its peak RSS in KiB
/// and how long it took.
fn peak_rss(command: &mut Command, out: &Path) -> Result<(u64, Duration)> {
    let mut timed_command = Command::new("/usr/bin/time");
    timed_command
        .args(["-f", "%M", "-o"])
        .arg(out)
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => timed_command.env(name, value),
            None => timed_command.env_remove(name),
        };
    }
    let time = timed(&mut timed_command)?;
    let report = fs::read_to_string(out)
        .map_err(|err| format!("failed to read {}: {err}", out.display()))?;
    Ok((parse_peak(&report)?, time))
}

/// The KiB figure `time -f %M` wrote (its last line).
fn parse_peak(report: &str) -> Result<u64> {
    report
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| format!("`time` wrote {report:?}").into())
}

/// The manifest of the big function, pushed to `repository`.
fn write_big_manifest(dir: &Path, repository: &str) -> Result<()> {
    let manifest = format!(
        "[package]\nname = \"big\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nlambda_runtime = \"1.5\"\nserde_json = \"1\"\n\
         tokio = {{ version = \"1\", features = [\"macros\", \"rt\"] }}\n\n\
         [package.metadata.lambda]\nfunction-name = \"{FUNCTION}\"\n\n\
         [package.metadata.lambda.image]\nrepository = \"{repository}\"\ntag = \"bench\"\ninclude = [\"data\"]\n\n\
         [profile.release]\nstrip = true\n\n[workspace]\n"
    );
    write(&dir.join("Cargo.toml"), manifest.as_bytes())
}

/// The fixture's echo, with `revision` in its code (unchanged source when
/// `revision` is unchanged, so cargo does not rebuild).
fn write_big_source(dir: &Path, revision: &str) -> Result<()> {
    let echo = project_root().join("tests/fixtures/workspace/crates/echo/src/main.rs");
    let main = fs::read_to_string(&echo)
        .map_err(|err| format!("failed to read {}: {err}", echo.display()))?
        .replace(
            "async fn main() -> Result<(), Error> {",
            &format!(
                "async fn main() -> Result<(), Error> {{\n    std::hint::black_box(\"{revision}\");"
            ),
        );
    let path = dir.join("src/main.rs");
    if fs::read_to_string(&path).ok().as_deref() == Some(main.as_str()) {
        return Ok(());
    }
    fs::create_dir_all(dir.join("src"))
        .map_err(|err| format!("failed to create {}: {err}", dir.display()))?;
    write(&path, main.as_bytes())
}

/// Writes `size` bytes of one line of text, over and over.
fn write_repeated(path: &Path, size: u64) -> Result<()> {
    let line =
        b"The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let file =
        File::create(path).map_err(|err| format!("failed to create {}: {err}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut written = 0u64;
    while written < size {
        let take = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..take])
            .map_err(|err| format!("failed to write {}: {err}", path.display()))?;
        written += take as u64;
    }
    out.flush()
        .map_err(|err| format!("failed to write {}: {err}", path.display()).into())
}

/// Writes `size` bytes of log-like text (timestamps, ids, paths, statuses
/// from a xorshift generator), unless the file is already there.
fn write_text(path: &Path, size: u64) -> Result<()> {
    if fs::metadata(path).is_ok_and(|meta| meta.len() == size) {
        return Ok(());
    }
    const WORDS: [&str; 8] = [
        "orders", "users", "invoices", "carts", "search", "health", "items", "login",
    ];
    const STATUS: [&str; 4] = ["200", "200", "404", "500"];
    let file =
        File::create(path).map_err(|err| format!("failed to create {}: {err}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut written = 0u64;
    let mut line = String::new();
    while written < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        line.clear();
        let n = written / 97;
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            "2026-01-01T{:02}:{:02}:{:02}.{:03}Z INFO request_id={:016x} GET /api/{}/{} status={} ms={}",
            n / 3_600_000 % 24,
            n / 60_000 % 60,
            n / 1000 % 60,
            n % 1000,
            state,
            WORDS[(state >> 8) as usize % WORDS.len()],
            state % 10_000,
            STATUS[(state >> 20) as usize % STATUS.len()],
            (state >> 32) % 900 + 1
        );
        let take = (size - written).min(line.len() as u64) as usize;
        out.write_all(&line.as_bytes()[..take])
            .map_err(|err| format!("failed to write {}: {err}", path.display()))?;
        written += take as u64;
    }
    out.flush()
        .map_err(|err| format!("failed to write {}: {err}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_last_line_time_wrote() {
        assert_eq!(parse_peak("123456\n").ok(), Some(123_456));
        assert_eq!(
            parse_peak("Command exited with non-zero status 1\n2048\n").ok(),
            Some(2048)
        );
        assert!(parse_peak("").is_err());
    }

    #[test]
    fn text_is_written_to_the_exact_size() {
        let dir = env_temp("xtask-bench-text");
        let path = dir.join("t.log");
        write_text(&path, 10_000).expect("written");
        let text = fs::read_to_string(&path).expect("text");
        assert_eq!(text.len(), 10_000);
        assert!(text.starts_with("2026-01-01T00:00:00.000Z INFO request_id="));
        let _ = fs::remove_dir_all(dir);
    }

    fn env_temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
