//! Compile overhead: `build` against plain `cargo build --release --target`
//! of the same packages, both from `cargo clean` of those packages.

use std::time::Duration;

use super::{
    helpers::{copy_dir, read, timed},
    report::Row,
    setup::{Bench, TRIPLE},
    stats::{median, ms, yes_no},
};
use crate::{cmd, project_root, Result};

impl Bench {
    /// `build` vs `cargo build` of the same packages and target, both after
    /// `cargo clean` of those packages: one package, then both of the fixture's.
    pub(super) fn compile(&self) -> Result<Vec<Row>> {
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
