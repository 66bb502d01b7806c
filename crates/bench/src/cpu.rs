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
//!
//! Busy is what the CPUs could have run in the wall-clock time between two
//! readings (seconds × CPUs online × clock ticks per second) less what they
//! spent idle and stolen, not the kernel's count of busy ticks. On the
//! nested 2-vCPU test VM, under the cluster's load, those counts drifted
//! from wall time (all ticks over 10 s were 17% short of it once and 10%
//! over it another time) and user plus system ticks were 23% under, then
//! 29% over, what the processes themselves had used, while idle time
//! (measured rather than sampled on a tickless kernel) kept wall time minus
//! idle within 10% of the processes' own CPU both times. The bench's share is
//! its own CPU time over the same capacity.

use crate::history::Micros;
use crate::schedule::Clock;
use serde::{Deserialize, Serialize};

/// One reading: cumulative clock ticks since boot, all CPUs summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// When it was read, on the load's clock.
    pub at_us: Micros,
    /// Ticks the CPUs were idle (idle and iowait).
    pub idle: u64,
    /// Ticks the hypervisor ran something else while a vCPU wanted to run.
    pub steal: u64,
    /// Ticks the bench process ran (user and system, all its threads).
    pub bench: u64,
    /// Ticks the machine offers per second: CPUs online × ticks per second.
    pub capacity_per_s: u64,
}

impl CpuSample {
    /// Reads this machine and process now; None where `/proc` is not
    /// there or not understood (the report then leaves the figures out).
    pub fn read(clock: Clock) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // SAFETY: sysconf only reads a constant of the running system.
        let ticks_per_s = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|t| *t > 0)?;
        CpuSample::parse(clock.now_us(), &stat, &own, ticks_per_s)
    }

    /// From the text of `/proc/stat` and `/proc/<pid>/stat`, with the
    /// kernel's clock ticks per second (`_SC_CLK_TCK`).
    pub fn parse(at_us: Micros, stat: &str, own: &str, ticks_per_s: u64) -> Option<CpuSample> {
        let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
        let f: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().ok()).collect::<Option<_>>()?;
        if f.len() < 4 {
            return None;
        }
        // user nice system idle iowait irq softirq steal; older kernels
        // stop earlier.
        let field = |i: usize| f.get(i).copied().unwrap_or(0);
        let cpus = stat.lines().filter(|l| l.strip_prefix("cpu").is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))).count() as u64;
        if cpus == 0 {
            return None;
        }
        // The command name may hold spaces and parentheses: fields count
        // from the last ')'. utime and stime are fields 14 and 15, the
        // 12th and 13th after it.
        let rest = &own[own.rfind(')')? + 1..];
        let mut after = rest.split_whitespace().skip(11);
        let bench = after.next()?.parse::<u64>().ok()? + after.next()?.parse::<u64>().ok()?;
        Some(CpuSample { at_us, idle: field(3) + field(4), steal: field(7), bench, capacity_per_s: cpus * ticks_per_s })
    }
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
    /// `[from, to)`; None with fewer than two or no time between them.
    pub fn between(samples: &[CpuSample], from: Micros, to: Micros) -> Option<CpuUse> {
        let mut inside = samples.iter().filter(|s| from <= s.at_us && s.at_us < to);
        CpuUse::from_to(inside.next()?, inside.next_back()?)
    }

    /// Over the shortest stretch of `samples` (in time order) that covers
    /// `[from, to)` ([`bracket`]). None when no two readings bracket any
    /// of it. Binary searches, so a timeline of many seconds costs a
    /// logarithm per second.
    pub fn spanning(samples: &[CpuSample], from: Micros, to: Micros) -> Option<CpuUse> {
        let (first, last) = bracket(samples, |s| s.at_us, from, to)?;
        CpuUse::from_to(first, last)
    }

    /// From reading `first` to the later reading `last`, against what the
    /// CPUs could have run in the wall-clock time between them (see the
    /// module docs); None when no time passed (the same reading twice).
    fn from_to(first: &CpuSample, last: &CpuSample) -> Option<CpuUse> {
        let capacity = last.at_us.checked_sub(first.at_us).filter(|t| *t > 0)? as f64 / 1e6 * last.capacity_per_s as f64;
        if capacity <= 0.0 {
            return None;
        }
        let spent = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let pct = |ticks: f64| (100.0 * ticks / capacity).clamp(0.0, 100.0);
        let (idle, steal) = (spent(last.idle, first.idle), spent(last.steal, first.steal));
        Some(CpuUse { busy_pct: pct(capacity - idle - steal), bench_pct: pct(spent(last.bench, first.bench)), steal_pct: pct(steal) })
    }

    /// "71% busy (bench 20%)", with the steal when there was any.
    pub fn describe(&self) -> String {
        let steal = if self.steal_pct >= 0.5 { format!(", steal {:.0}%", self.steal_pct) } else { String::new() };
        format!("{:.0}% busy (bench {:.0}%{steal})", self.busy_pct, self.bench_pct)
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

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 10 3 2 30 0 0\ncpu0 50 2 25 400 5 1 1 15 0 0\nintr 1 2 3\n";
    const OWN: &str = "4242 (evenkeel (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 40 7 0 0 20 0 9 0 100 1000 200";

    #[test]
    fn parses_the_aggregate_cpu_line_and_the_process_times() {
        let s = CpuSample::parse(5, STAT, OWN, 100).unwrap();
        assert_eq!(s, CpuSample { at_us: 5, idle: 800 + 10, steal: 30, bench: 47, capacity_per_s: 100 });
        let two = format!("{STAT}cpu1 50 3 25 400 5 2 1 15 0 0\n");
        assert_eq!(CpuSample::parse(5, &two, OWN, 250).map(|s| s.capacity_per_s), Some(500), "two CPUs online");
        assert_eq!(CpuSample::parse(0, "cpu0 1 2 3 4\n", OWN, 100), None, "no aggregate line");
        assert_eq!(CpuSample::parse(0, "cpu 1 2 3 4\n", OWN, 100), None, "no CPU lines");
        assert_eq!(CpuSample::parse(0, "cpu 1 2 x 4\ncpu0 1 2 3 4\n", OWN, 100), None);
        assert_eq!(CpuSample::parse(0, STAT, "4242 (short) S 1 2", 100), None);
    }

    #[test]
    fn a_window_uses_its_first_and_last_reading() {
        // Two CPUs at 100 ticks a second: 200 ticks of capacity a second.
        let at = |at_us, idle, steal, bench| CpuSample { at_us, idle, steal, bench, capacity_per_s: 200 };
        let samples = [at(0, 0, 0, 0), at(1_000_000, 100, 0, 10), at(2_000_000, 146, 4, 30), at(3_000_000, 196, 4, 50)];
        let u = CpuUse::between(&samples, 1_000_000, 3_000_000).unwrap();
        assert_eq!(u, CpuUse { busy_pct: 75.0, bench_pct: 10.0, steal_pct: 2.0 });
        assert_eq!(u.describe(), "75% busy (bench 10%, steal 2%)");
        assert_eq!(CpuUse::between(&samples, 1_000_000, 2_000_000), None, "one reading is no window");
        assert_eq!(CpuUse::between(&[at(5, 0, 0, 0), at(5, 0, 0, 0)], 0, 10), None, "no time between");
        // A second is covered from the reading before it to the one after.
        assert_eq!(CpuUse::spanning(&samples, 1_500_000, 2_500_000).map(|c| c.busy_pct), Some(75.0));
        assert_eq!(CpuUse::spanning(&samples, 2_000_000, 3_000_000).map(|c| c.busy_pct), Some(75.0));
        assert_eq!(CpuUse::spanning(&samples, 2_500_000, 3_500_000).map(|c| c.busy_pct), Some(75.0), "the part the readings cover");
        assert_eq!(CpuUse::spanning(&samples, 3_000_000, 4_000_000), None, "one reading covers nothing");
        assert_eq!(CpuUse::spanning(&samples, 5_000_000, 6_000_000), None);
    }

    /// Busy is wall-clock capacity less idle and steal, whatever the
    /// kernel's busy ticks add up to (see the module docs); a reading
    /// whose idle count ran ahead of wall time gives 0%, not less.
    #[test]
    fn busy_is_what_the_wall_clock_offered_less_idle() {
        let at = |at_us, idle| CpuSample { at_us, idle, steal: 0, bench: 0, capacity_per_s: 200 };
        assert_eq!(CpuUse::from_to(&at(0, 0), &at(10_000_000, 746)).map(|c| c.busy_pct), Some(62.7));
        assert_eq!(CpuUse::from_to(&at(0, 0), &at(1_000_000, 230)).map(|c| c.busy_pct), Some(0.0));
    }

    #[test]
    fn this_machine_can_be_read() {
        if std::path::Path::new("/proc/stat").exists() {
            let s = CpuSample::read(Clock { start: std::time::Instant::now() }).expect("/proc is readable");
            assert!(s.capacity_per_s > 0 && s.idle > 0, "{s:?}");
        }
    }
}
