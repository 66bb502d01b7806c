//! How busy the machine was in each phase, and how much of that was the
//! bench itself: the host probe reads `/proc/stat` and `/proc/self/stat`
//! every [`crate::probe::CPU_EVERY`].
//!
//! A p99 ratio is only as meaningful as the headroom under it. On a 2-core
//! machine that is close to saturated (the measured cluster, the bench and
//! everything else on it together near both CPUs), queueing multiplies any
//! extra work: a control run with no rebalance at all drifted 1.7x in
//! p99 on one such machine while its CPUs went from about 70% to 80% busy.
//! The report prints each phase's figures next to the host noise, so a
//! reader can tell "the rebalance cost" from "the machine had no room".

use crate::history::Micros;
use crate::schedule::Clock;
use serde::{Deserialize, Serialize};

/// One reading: cumulative clock ticks since boot, all CPUs summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// When it was read, on the load's clock.
    pub at_us: Micros,
    /// Ticks the CPUs ran anything (user, nice, system, irq, softirq).
    pub busy: u64,
    /// Ticks the hypervisor ran something else while a vCPU wanted to run.
    pub steal: u64,
    /// All ticks: busy, idle, iowait and steal.
    pub total: u64,
    /// Ticks the bench process ran (user and system, all its threads).
    pub bench: u64,
}

impl CpuSample {
    /// Reads this machine and process now; None where `/proc` is not
    /// there or not understood (the report then leaves the figures out).
    pub fn read(clock: Clock) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        CpuSample::parse(clock.now_us(), &stat, &own)
    }

    /// From the text of `/proc/stat` and `/proc/<pid>/stat`.
    pub fn parse(at_us: Micros, stat: &str, own: &str) -> Option<CpuSample> {
        let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
        let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().ok()).collect::<Option<_>>()?;
        if f.len() < 4 {
            return None;
        }
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user and nice); older kernels stop earlier.
        let field = |i: usize| f.get(i).copied().unwrap_or(0);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6);
        let steal = field(7);
        let total = busy + field(3) + field(4) + steal;
        // The command name may hold spaces and parentheses: fields count
        // from the last ')'. utime and stime are fields 14 and 15, the
        // 12th and 13th after it.
        let rest = &own[own.rfind(')')? + 1..];
        let mut after = rest.split_whitespace().skip(11);
        let bench = after.next()?.parse::<u64>().ok()? + after.next()?.parse::<u64>().ok()?;
        Some(CpuSample { at_us, busy, steal, total, bench })
    }
}

/// The shortest stretch of `samples` (in time order of `at`) that covers
/// `[from, to)`: the last reading at or before `from` and the first at or
/// after `to`. Where the readings start or end inside the window, the part
/// they cover. None when no two readings bracket any of it (the pair may
/// still be one reading twice, which callers read as no time passing).
/// Binary searches.
pub fn bracket<T>(samples: &[T], at: impl Fn(&T) -> Micros, from: Micros, to: Micros) -> Option<(&T, &T)> {
    let after_from = samples.partition_point(|s| at(s) <= from);
    let first = if after_from > 0 { &samples[after_from - 1] } else { samples.first().filter(|s| at(s) < to)? };
    let before_to = samples.partition_point(|s| at(s) < to);
    let last = samples.get(before_to).or_else(|| samples.last().filter(|s| at(s) > from))?;
    Some((first, last))
}

/// The CPU figures of one window, each in percent of the whole machine
/// (all CPUs): 50% on a 2-CPU machine is one CPU's worth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    pub busy_pct: f64,
    /// The bench's share of `busy_pct`.
    pub bench_pct: f64,
    pub steal_pct: f64,
}

/// Busy share of the machine past which a window's latency is shaped by
/// queueing for the CPUs as much as by the system measured.
pub const CROWDED_BUSY_PCT: f64 = 80.0;

impl CpuUse {
    /// Between the first and last of `samples` (in time order) read inside
    /// `[from, to)`; None with fewer than two or no ticks between them.
    pub fn between(samples: &[CpuSample], from: Micros, to: Micros) -> Option<CpuUse> {
        let mut inside = samples.iter().filter(|s| from <= s.at_us && s.at_us < to);
        CpuUse::from_to(inside.next()?, inside.next_back()?)
    }

    /// Over the shortest stretch of `samples` (in time order) that covers
    /// `[from, to)`: the last reading at or before `from` to the first at or
    /// after `to`. Where the readings start or end inside the window (the
    /// load's first and last second), over the part they cover. None when
    /// no two readings bracket any of it. Binary searches, so a timeline
    /// of many seconds costs a logarithm per second.
    pub fn spanning(samples: &[CpuSample], from: Micros, to: Micros) -> Option<CpuUse> {
        let (first, last) = bracket(samples, |s| s.at_us, from, to)?;
        CpuUse::from_to(first, last)
    }

    /// From reading `first` to the later reading `last`; None when no
    /// ticks passed between them (the same reading, or a clock that did
    /// not move).
    fn from_to(first: &CpuSample, last: &CpuSample) -> Option<CpuUse> {
        let total = last.total.checked_sub(first.total).filter(|t| *t > 0)? as f64;
        let pct = |a: u64, b: u64| 100.0 * a.saturating_sub(b) as f64 / total;
        Some(CpuUse { busy_pct: pct(last.busy, first.busy), bench_pct: pct(last.bench, first.bench), steal_pct: pct(last.steal, first.steal) })
    }

    /// "71% busy (bench 20%)", with the steal when there was any.
    pub fn describe(&self) -> String {
        let steal = if self.steal_pct >= 0.5 { format!(", steal {:.0}%", self.steal_pct) } else { String::new() };
        format!("{:.0}% busy (bench {:.0}%{steal})", self.busy_pct, self.bench_pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 10 3 2 30 0 0\ncpu0 50 2 25 400 5 1 1 15 0 0\nintr 1 2 3\n";
    const OWN: &str = "4242 (evenkeel (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 40 7 0 0 20 0 9 0 100 1000 200";

    #[test]
    fn parses_the_aggregate_cpu_line_and_the_process_times() {
        let s = CpuSample::parse(5, STAT, OWN).unwrap();
        assert_eq!(s, CpuSample { at_us: 5, busy: 100 + 5 + 50 + 3 + 2, steal: 30, total: 160 + 800 + 10 + 30, bench: 47 });
        assert_eq!(CpuSample::parse(0, "cpu0 1 2 3 4\n", OWN), None, "no aggregate line");
        assert_eq!(CpuSample::parse(0, "cpu 1 2 x 4\n", OWN), None);
        assert_eq!(CpuSample::parse(0, STAT, "4242 (short) S 1 2"), None);
    }

    #[test]
    fn a_window_uses_its_first_and_last_reading() {
        let at = |at_us, busy, steal, total, bench| CpuSample { at_us, busy, steal, total, bench };
        let samples = [at(0, 0, 0, 0, 0), at(1_000_000, 100, 0, 200, 10), at(2_000_000, 250, 4, 400, 30), at(3_000_000, 400, 4, 600, 50)];
        let u = CpuUse::between(&samples, 1_000_000, 3_000_000).unwrap();
        assert_eq!(u, CpuUse { busy_pct: 75.0, bench_pct: 10.0, steal_pct: 2.0 });
        assert_eq!(u.describe(), "75% busy (bench 10%, steal 2%)");
        assert_eq!(CpuUse::between(&samples, 1_000_000, 2_000_000), None, "one reading is no window");
        assert_eq!(CpuUse::between(&[at(0, 0, 0, 5, 0), at(1, 0, 0, 5, 0)], 0, 2), None, "no ticks");
        // A second is covered from the reading before it to the one after.
        assert_eq!(CpuUse::spanning(&samples, 1_500_000, 2_500_000).map(|c| c.busy_pct), Some(75.0));
        assert_eq!(CpuUse::spanning(&samples, 2_000_000, 3_000_000).map(|c| c.busy_pct), Some(75.0));
        assert_eq!(CpuUse::spanning(&samples, 2_500_000, 3_500_000).map(|c| c.busy_pct), Some(75.0), "the part the readings cover");
        assert_eq!(CpuUse::spanning(&samples, 3_000_000, 4_000_000), None, "one reading covers nothing");
        assert_eq!(CpuUse::spanning(&samples, 5_000_000, 6_000_000), None);
    }

    #[test]
    fn this_machine_can_be_read() {
        if std::path::Path::new("/proc/stat").exists() {
            let s = CpuSample::read(Clock { start: std::time::Instant::now() }).expect("/proc is readable");
            assert!(s.total >= s.busy + s.steal && s.total > 0, "{s:?}");
        }
    }
}
