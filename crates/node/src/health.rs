//! What a node reports about its own health in `Stats`: foreground latency
//! of the last complete second, and the space left on its data directory's
//! file system.
//!
//! [`LatencyWindow`] is on the hot path (every `Execute` records into it), so
//! it is one uncontended-in-practice mutex around two fixed-size histograms:
//! the second being filled and the last complete one. Time is passed in as a
//! second number, never read here, so rotation is unit-testable.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::path::Path;

/// Longest latency the window tells apart; slower calls count as this.
const LATENCY_US_MAX: u64 = 60_000_000;

/// Foreground latency of one complete second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// 99th percentile over ops, in microseconds; 0 when there were none.
    pub p99_us: u64,
    pub ops: u64,
}

/// Per-op latency, bucketed by second.
///
/// Every op of an `Execute` call is recorded with that call's duration: a
/// client's command waits for the whole call that carries it, so the
/// percentile is the one clients see, and the histogram's count is the op
/// count.
pub struct LatencyWindow {
    windows: Mutex<Windows>,
}

struct Windows {
    /// The second `current` is filling.
    second: u64,
    current: Histogram<u64>,
    /// Always the second before `second` (empty if nothing ran then).
    previous: Histogram<u64>,
}

impl LatencyWindow {
    pub fn new() -> Self {
        // Two significant digits: p99 within 1%, about 20 KiB per histogram.
        let histogram = || Histogram::new_with_bounds(1, LATENCY_US_MAX, 2).expect("static bounds are valid");
        LatencyWindow { windows: Mutex::new(Windows { second: 0, current: histogram(), previous: histogram() }) }
    }

    /// Records `ops` ops that each took `took_us`, finished in second `now_s`.
    pub fn record(&self, now_s: u64, took_us: u64, ops: u64) {
        let mut w = self.windows.lock();
        w.rotate(now_s);
        w.current.saturating_record_n(took_us, ops);
    }

    /// The last complete second before `now_s`.
    pub fn last_second(&self, now_s: u64) -> LatencySummary {
        let mut w = self.windows.lock();
        w.rotate(now_s);
        if w.previous.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary { p99_us: w.previous.value_at_quantile(0.99), ops: w.previous.len() }
    }
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl Windows {
    /// Moves the window forward to `now_s`. A time before the current second
    /// (impossible with a monotonic clock) is folded into the current one.
    fn rotate(&mut self, now_s: u64) {
        if now_s <= self.second {
            return;
        }
        if now_s == self.second + 1 {
            std::mem::swap(&mut self.current, &mut self.previous);
        } else {
            // Whole seconds passed with no calls: the last complete one is empty.
            self.previous.reset();
        }
        self.current.reset();
        self.second = now_s;
    }
}

/// Free and total bytes of the file system holding `dir`: free is what an
/// unprivileged writer can still use (`f_bavail`), as fjall runs unprivileged.
pub fn disk_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let block = st.fragment_size() as u64;
    let free = st.blocks_available() as u64 * block;
    let total = st.blocks() as u64 * block;
    debug_assert!(free <= total, "statvfs: {free} free of {total}");
    Ok((free, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_last_complete_second_only() {
        let w = LatencyWindow::new();
        w.record(5, 100, 3);
        assert_eq!(w.last_second(5), LatencySummary::default(), "second 5 is not complete yet");
        let s = w.last_second(6);
        assert_eq!(s.ops, 3);
        assert!((99..=101).contains(&s.p99_us), "{s:?}");
        assert_eq!(w.last_second(7), LatencySummary::default(), "nothing ran in second 6");
    }

    #[test]
    fn a_gap_of_seconds_empties_the_previous_window() {
        let w = LatencyWindow::new();
        w.record(1, 500, 10);
        w.record(4, 200, 1);
        assert_eq!(w.last_second(4), LatencySummary::default(), "second 3 had no calls");
        assert_eq!(w.last_second(5).ops, 1);
    }

    #[test]
    fn p99_is_over_ops_weighted_by_call() {
        let w = LatencyWindow::new();
        // 99 of 100 ops fast: p99 is the fast latency.
        w.record(1, 100, 99);
        w.record(1, 50_000, 1);
        assert!(w.last_second(2).p99_us < 200);
        // 2 of 100 slow: p99 is the slow one.
        w.record(2, 100, 98);
        w.record(2, 50_000, 2);
        let s = w.last_second(3);
        assert_eq!(s.ops, 100);
        assert!((49_500..=50_500).contains(&s.p99_us), "{s:?}");
    }

    #[test]
    fn latencies_past_the_maximum_saturate() {
        let w = LatencyWindow::new();
        w.record(0, u64::MAX, 1);
        assert!(w.last_second(1).p99_us >= LATENCY_US_MAX);
    }

    #[test]
    fn disk_space_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = disk_space(dir.path()).unwrap();
        assert!(total > 0 && free <= total, "{free} of {total}");
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
