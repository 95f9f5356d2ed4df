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
//! This file holds the options, the section table and the driver. Each
//! section lives in a submodule of `bench/`: `assembly`, `caches` (the layer
//! cache), `push`, `shared` (shared base), `apples` (push against skopeo),
//! `emulator` (with `rie` for AWS's emulator), `local_loop`, `compile`,
//! `determinism` and `big`. They share `setup` (the `Bench` every section
//! gets), `docker` (build contexts and the busybox base), `layout` (reading
//! and writing OCI layouts), `events` (the tool's JSON events), `net` (the
//! byte-counting proxy and the Invoke API client), `stats` (medians, rates and
//! how numbers are shown), `report` (the table and `BENCHMARKS.md`) and
//! `helpers` (running commands, writing and copying files).

use std::{fs, time::Instant};

use crate::{cmd, project_root, Result};

use report::{render, Row};
use setup::Bench;
use stats::ms;

mod apples;
mod assembly;
mod big;
mod caches;
mod compile;
mod determinism;
mod docker;
mod emulator;
mod events;
mod helpers;
mod layout;
mod local_loop;
mod net;
mod push;
mod report;
pub(crate) mod rie;
mod setup;
mod shared;
mod stats;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
