//! The local loop after a code change: `test --no-build` (assemble, unpack, run, one invoke)
//! against what a Docker user does for the same check, `docker build` + `docker run -p` + an
//! invoke through AWS's RIE in the container + `docker rm -f`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    docker::DOCKER_BASE,
    helpers::{read, timed, write},
    net::{free_addresses, InvokeClient},
    report::Row,
    setup::Bench,
    stats::{median, ms, yes_no},
};
use crate::Result;

/// The Docker image of the bench's busybox base with AWS's RIE in it, as provided.al2 has it.
const RIE_BASE: &str = "xtask-bench-busybox-rie:latest";

impl Bench {
    /// Each run changes the bootstrap (bytes appended: it still runs), then times both loops.
    pub(super) fn local_loop(&self) -> Result<Vec<Row>> {
        let base = self.base()?.to_owned();
        let rie = self.rie()?;
        let bootstrap = self.bootstrap("fixture-echo");
        let original = fs::read(&bootstrap)
            .map_err(|err| format!("failed to read {}: {err}", bootstrap.display()))?;
        let context = self.work.join("local-loop");
        rie_base(&context.join("base"), &rie)?;
        // Untimed: the layout and the unpacked base exist, as in a loop under way.
        read(&mut self.loop_test(&base, 0))?;
        let result = (|| -> Result<(Duration, Duration)> {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for run in 1..=self.runs {
                crate::cmd::check_interrupted()?;
                let changed = [original.as_slice(), format!("loop {run}").as_bytes()].concat();
                write(&bootstrap, &changed)?;
                ours.push(timed(&mut self.loop_test(&base, run))?);
                theirs.push(docker_loop(&context.join("image"), &bootstrap, run)?);
            }
            Ok((median(&mut ours), median(&mut theirs)))
        })();
        write(&bootstrap, &original)?;
        let (ours, theirs) = result?;
        let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
        Ok(vec![Row {
            what: "local loop after a code change: `test --no-build -p echo` (assemble, unpack, \
                   run, one invoke) vs `docker build` + `docker run -p` + one invoke through \
                   the RIE in the image + `docker rm -f`"
                .into(),
            ours: ms(ours),
            theirs: ms(theirs),
            ratio: format!("{ratio:.1}×"),
            target: "≥ 8× faster".into(),
            met: yes_no(ratio >= 8.0),
        }])
    }

    /// `test --no-build -p echo` on `base` with one event.
    fn loop_test(&self, base: &str, run: usize) -> Command {
        let mut command = self.tool(&["test", "--no-build", "-p", "echo"]);
        command
            .arg("--manifest-path")
            .arg(self.manifest())
            .args(["--base-image", base, "--event"])
            .arg(format!("{{\"loop\": {run}}}"));
        command
    }
}

/// Builds (once) the busybox base with the RIE at `/usr/local/bin/aws-lambda-rie`.
fn rie_base(context: &Path, rie: &Path) -> Result<()> {
    fs::create_dir_all(context)
        .map_err(|err| format!("failed to create {}: {err}", context.display()))?;
    fs::copy(rie, context.join("aws-lambda-rie"))
        .map_err(|err| format!("failed to copy {}: {err}", rie.display()))?;
    write(
        &context.join("Dockerfile"),
        format!("FROM {DOCKER_BASE}\nCOPY aws-lambda-rie /usr/local/bin/aws-lambda-rie\n")
            .as_bytes(),
    )?;
    read(
        Command::new("docker")
            .args(["build", "--quiet", "--tag", RIE_BASE])
            .arg(context)
            .env("DOCKER_BUILDKIT", "0"),
    )
    .map(drop)
}

/// One Docker loop: build the changed function's image (the base from Docker's cache), run it,
/// invoke it once through the RIE, remove the container. Returns how long it all took.
fn docker_loop(context: &Path, bootstrap: &Path, run: usize) -> Result<Duration> {
    fs::create_dir_all(context)
        .map_err(|err| format!("failed to create {}: {err}", context.display()))?;
    write(
        &context.join("Dockerfile"),
        format!(
            "FROM {RIE_BASE}\nCOPY bootstrap /var/runtime/bootstrap\n\
             ENTRYPOINT [\"/usr/local/bin/aws-lambda-rie\", \"/var/runtime/bootstrap\"]\n"
        )
        .as_bytes(),
    )?;
    fs::copy(bootstrap, context.join("bootstrap"))
        .map_err(|err| format!("failed to copy {}: {err}", bootstrap.display()))?;
    let [address] = free_addresses::<1>()?;
    let tag = "xtask-bench-local-loop:latest";
    let name = format!("xtask-bench-local-loop-{}-{run}", std::process::id());
    let started = Instant::now();
    read(
        Command::new("docker")
            .args(["build", "--quiet", "--tag", tag])
            .arg(context)
            .env("DOCKER_BUILDKIT", "0"),
    )?;
    read(Command::new("docker").args([
        "run",
        "--detach",
        "--name",
        &name,
        "--publish",
        &format!("{address}:8080"),
        tag,
    ]))?;
    let invoked = invoke_when_up(&address);
    let removed = read(Command::new("docker").args(["rm", "--force", &name]));
    let took = started.elapsed();
    invoked?;
    removed?;
    Ok(took)
}

/// Invokes the container's RIE once it listens; errors after 20 s without a 200.
fn invoke_when_up(address: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = InvokeClient::new(address);
    loop {
        match client.invoke(b"{\"loop\": true}") {
            Ok(200) => return Ok(()),
            outcome if Instant::now() > deadline => {
                return Err(format!("the container never answered 200: {outcome:?}").into())
            }
            // Docker's proxy accepts before the RIE listens: the exchange fails until it does.
            _ => thread::sleep(Duration::from_millis(2)),
        }
    }
}
