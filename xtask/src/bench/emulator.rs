//! The emulator: cold start and throughput of `emulator` against AWS's
//! `aws-lambda-rie` (run by `rie`), with one and four keep-alive clients.

use std::{
    ffi::c_int,
    fs,
    io::{self, BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{
    net::InvokeClient,
    report::Row,
    rie,
    setup::Bench,
    stats::{met, ms, show, speedup, yes_no, Rate},
};
use crate::{cmd, Result};

/// How long each emulator throughput window lasts.
pub(super) const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);
/// The event every invocation sends.
const EVENT: &[u8] = br#"{"bench":true}"#;

/// A running emulator: the tool's or AWS's RIE.
pub(super) struct Emulator {
    pub(super) child: Child,
    /// `127.0.0.1:PORT`.
    pub(super) address: String,
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
    pub(super) fn emulator(&self) -> Result<Vec<Row>> {
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
pub(super) fn first_response(address: &str, started: Instant) -> Result<Duration> {
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

/// Invocations with `clients` concurrent keep-alive clients for one window.
pub(super) fn throughput(address: &str, clients: usize) -> Result<Rate> {
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
