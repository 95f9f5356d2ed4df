//! Medians, throughput rates, and how numbers, ratios and targets are shown
//! in the table.

use std::time::Duration;

/// The median of `samples` (the mean of the middle two for an even count).
pub(super) fn median<T: Copy + Ord + Default + Midpoint>(samples: &mut [T]) -> T {
    samples.sort_unstable();
    match samples.len() {
        0 => T::default(),
        n if n % 2 == 1 => samples[n / 2],
        n => samples[n / 2 - 1].midpoint_with(samples[n / 2]),
    }
}

/// The value halfway between two others.
pub(super) trait Midpoint {
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

/// What the clients of one throughput window counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rate {
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) seconds: f64,
}

impl Rate {
    /// Successful invocations per second.
    pub(super) fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// "N/s", with the failures when there were any.
    pub(super) fn show(&self) -> String {
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

pub(super) fn ms(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis >= 10_000.0 {
        format!("{:.1} s", millis / 1000.0)
    } else if millis >= 100.0 {
        format!("{millis:.0} ms")
    } else {
        format!("{millis:.1} ms")
    }
}

pub(super) fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

pub(super) fn show(value: &std::result::Result<Duration, String>) -> String {
    value.as_ref().map_or_else(Clone::clone, |d| ms(*d))
}

/// `theirs / ours` as "N× faster", or "—" when either is missing.
pub(super) fn speedup(
    ours: &std::result::Result<Duration, String>,
    theirs: &std::result::Result<Duration, String>,
) -> String {
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => format!("{:.1}×", theirs.as_secs_f64() / ours.as_secs_f64()),
        _ => "—".into(),
    }
}

/// Whether `target(ours, theirs)` holds, in seconds; "—" when either is missing.
pub(super) fn met(
    ours: &std::result::Result<Duration, String>,
    theirs: &std::result::Result<Duration, String>,
    target: impl Fn(f64, f64) -> bool,
) -> String {
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => yes_no(target(ours.as_secs_f64(), theirs.as_secs_f64())),
        _ => "—".into(),
    }
}

pub(super) fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&mut [3u64, 1, 2]), 2);
        assert_eq!(median(&mut [4u64, 1, 3, 2]), 2);
        assert_eq!(median::<u64>(&mut []), 0);
        let mut durations = [Duration::from_millis(10), Duration::from_millis(30)];
        assert_eq!(median(&mut durations), Duration::from_millis(20));
    }
}
