//! The [`Report`]: everything a run found, serialisable as JSON, and its
//! terminal rendering. The HTML page is in [`crate::html`].

use crate::checker::{Anomaly, AnomalyKind, Findings};
use crate::engine::EngineCycle;
use crate::machine::Machine;
use crate::migrations::MigrationSummary;
use crate::partitions::PartitionSplit;
use crate::phases::CommandRun;
use crate::probe::HostNoise;
use crate::stats::{PhaseStats, Second, Timeline, ratio};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Anomaly examples kept per kind.
pub const EXAMPLES_PER_KIND: usize = 5;
/// Achieved throughput this far below the requested rate is called out.
pub const SHORTFALL_PCT: f64 = 2.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    /// Unix ms when the load started; every `_s` and `t` is relative to it.
    pub started_unix_ms: u64,
    pub settings: Settings,
    pub timeline: Timeline,
    pub ratios: Ratios,
    pub rate: RateSummary,
    pub errors: ErrorSummary,
    pub correctness: Correctness,
    pub command: Option<CommandRun>,
    pub migrations: MigrationSummary,
    pub budget: Budget,
    /// Seconds spent on `--preload`, if it ran.
    pub preload_seconds: Option<f64>,
    /// The machine's own noise per phase, with `--host-probe`.
    #[serde(default)]
    pub host: Option<HostNoise>,
    /// The storage engines' compaction per phase ([`crate::engine`]), when
    /// `--admin` names a cluster that reports it.
    #[serde(default)]
    pub engine: Option<EngineCycle>,
    /// The machine's CPUs and idle policy ([`crate::machine`]); absent in
    /// reports written before it was recorded.
    #[serde(default)]
    pub machine: Option<Machine>,
    /// The "during" window's requests split by whether their partition
    /// was being moved ([`crate::partitions`]); absent without moves.
    #[serde(default)]
    pub partitions: Option<PartitionSplit>,
    /// The median per-second p99 of each window ([`TypicalSecond`]), as the
    /// report prints it, for scripts that compare runs.
    #[serde(default)]
    pub typical_second: Option<TypicalSecond>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub rate: u64,
    pub seconds: f64,
    /// Load before the baseline, in no phase (see `--warmup-seconds`).
    #[serde(default)]
    pub warmup_seconds: f64,
    pub connections: usize,
    pub window: usize,
    pub mix: String,
    pub mget_keys: usize,
    pub dist: String,
    pub keys: u32,
    pub counter_keys: u32,
    pub value_size: usize,
    pub preload: bool,
    pub during_cmd: Option<String>,
    pub seed: u64,
    /// The id in every value this run wrote.
    pub run_id: String,
}

/// during ÷ before; `None` when the baseline figure is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub throughput: Option<f64>,
}

impl Ratios {
    pub fn of(before: &PhaseStats, during: &PhaseStats) -> Ratios {
        let (b, d) = (&before.latency, &during.latency);
        Ratios {
            p50: ratio(d.p50_us as f64, b.p50_us as f64),
            p99: ratio(d.p99_us as f64, b.p99_us as f64),
            p999: ratio(d.p999_us as f64, b.p999_us as f64),
            max: ratio(d.max_us as f64, b.max_us as f64),
            throughput: ratio(during.throughput, before.throughput),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateSummary {
    pub requested_per_s: f64,
    /// Requests handed to sockets per second of load.
    pub sent_per_s: f64,
    /// Successful replies per second of load.
    pub achieved_per_s: f64,
    /// How far achieved fell below requested, in %, when more than 2 %.
    pub shortfall_pct: Option<f64>,
    /// Requests that found their connection's in-flight window full.
    pub behind_schedule: u64,
    pub reconnects: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// Error replies (and requests that could not be sent).
    pub errors: u64,
    /// Requests without a reply: timeouts and lost connections.
    pub timeouts: u64,
    /// Messages, most frequent first.
    pub by_message: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correctness {
    pub reads_checked: u64,
    pub writes_acked: u64,
    /// Writes that errored or timed out: they may or may not have happened.
    pub writes_indeterminate: u64,
    pub incrs_acked: u64,
    pub keys_read_back: u64,
    /// Why the final read-back could not be done, if it could not.
    pub read_back_error: Option<String>,
    pub anomalies: Vec<AnomalyCount>,
    /// Up to five examples of each kind.
    pub examples: Vec<Anomaly>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnomalyCount {
    pub kind: AnomalyKind,
    pub count: u64,
}

impl Correctness {
    pub fn from_findings(f: &Findings, keys_read_back: u64, read_back_error: Option<String>) -> Correctness {
        let anomalies = AnomalyKind::ALL.iter().map(|&kind| AnomalyCount { kind, count: f.count(kind) as u64 }).collect();
        let examples = AnomalyKind::ALL.iter().flat_map(|&k| f.anomalies.iter().filter(move |a| a.kind == k).take(EXAMPLES_PER_KIND).cloned()).collect();
        Correctness { reads_checked: f.reads_checked, writes_acked: f.writes_acked, writes_indeterminate: f.writes_indeterminate, incrs_acked: f.incrs_acked, keys_read_back, read_back_error, anomalies, examples }
    }

    pub fn total(&self) -> u64 {
        self.anomalies.iter().map(|a| a.count).sum()
    }
}

/// The disruption budget: p99 during the disruption against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub ratio: f64,
    pub baseline_p99_us: u64,
    pub limit_us: f64,
    pub during_p99_us: u64,
    pub within: bool,
}

impl Budget {
    pub fn of(ratio: f64, before: &PhaseStats, during: &PhaseStats) -> Budget {
        let limit_us = ratio * before.latency.p99_us as f64;
        Budget { ratio, baseline_p99_us: before.latency.p99_us, limit_us, during_p99_us: during.latency.p99_us, within: during.latency.p99_us as f64 <= limit_us }
    }
}

impl RateSummary {
    pub fn of(requested: u64, sent: u64, ok: u64, load_s: f64, behind_schedule: u64, reconnects: u64) -> RateSummary {
        let per_s = |n: u64| if load_s > 0.0 { n as f64 / load_s } else { 0.0 };
        let achieved = per_s(ok);
        let shortfall = (requested as f64 - achieved) / requested as f64 * 100.0;
        RateSummary { requested_per_s: requested as f64, sent_per_s: per_s(sent), achieved_per_s: achieved, shortfall_pct: (shortfall > SHORTFALL_PCT).then_some(shortfall), behind_schedule, reconnects }
    }
}

/// `123 µs`, `1.23 ms`, `1.23 s`.
pub fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "–".to_string())
}

impl Report {
    pub fn phase(&self, name: &str) -> &PhaseStats {
        self.timeline.phases.iter().find(|p| p.name == name).expect("every report has the three phases")
    }

    /// The terminal summary.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(out, "evenkeel bench: {} at {} req/s over {} connections for {:.1} s", self.target, s.rate, s.connections, self.phase("after").end_s);
        let _ = writeln!(out, "  mix {}, {} over {} keys (+{} counters), {} B values{}", s.mix, s.dist, s.keys, s.counter_keys, s.value_size, if s.preload { ", preloaded" } else { "" });
        if s.warmup_seconds > 0.0 {
            let _ = writeln!(out, "  first {:.1} s: warmup, in no phase (replies still checked)", s.warmup_seconds);
        }
        out += "\n";
        self.render_phases(&mut out);
        out += "\n";
        self.render_rate(&mut out);
        self.render_disruption(&mut out);
        self.render_errors(&mut out);
        self.render_correctness(&mut out);
        out
    }

    fn render_phases(&self, out: &mut String) {
        let _ = writeln!(out, "{:<14} {:>13} {:>9} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11}", "phase", "window", "requests", "errors", "timeouts", "p50", "p99", "p99.9", "max", "ok/s");
        for p in &self.timeline.phases {
            let l = &p.latency;
            let window = format!("{:.1}–{:.1} s", p.start_s, p.end_s);
            let _ = writeln!(out, "{:<14} {:>13} {:>9} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11.0}", p.name, window, p.requests, p.errors, p.timeouts, fmt_us(l.p50_us), fmt_us(l.p99_us), fmt_us(l.p999_us), fmt_us(l.max_us), p.throughput);
        }
        let r = &self.ratios;
        let _ = writeln!(out, "{:<14} {:>13} {:>9} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11}", "during/before", "", "", "", "", fmt_ratio(r.p50), fmt_ratio(r.p99), fmt_ratio(r.p999), fmt_ratio(r.max), fmt_ratio(r.throughput));
    }

    fn render_rate(&self, out: &mut String) {
        let r = &self.rate;
        let verdict = match r.shortfall_pct {
            Some(pct) => format!("BEHIND: achieved is {pct:.1}% below the requested rate"),
            None => "on target".to_string(),
        };
        let _ = writeln!(out, "rate: requested {:.0}/s, sent {:.0}/s, achieved {:.0}/s ({verdict})", r.requested_per_s, r.sent_per_s, r.achieved_per_s);
        let lag = &self.timeline.send_lag;
        let _ = writeln!(
            out,
            "send lag: p50 {}, p99 {}, max {}; {} sent >1 ms late; {} behind schedule (window full); {} reconnects",
            fmt_us(lag.p50_us),
            fmt_us(lag.p99_us),
            fmt_us(lag.max_us),
            lag.late_over_1ms,
            r.behind_schedule,
            r.reconnects
        );
    }

    fn render_disruption(&self, out: &mut String) {
        let b = &self.budget;
        let verdict = if b.within { "within budget".to_string() } else { format!("OVER budget by {:.0}%", (b.during_p99_us as f64 / b.limit_us - 1.0) * 100.0) };
        let _ = writeln!(out, "budget: p99 during {} vs {:.2} × baseline {} = {}: {verdict}", fmt_us(b.during_p99_us), b.ratio, fmt_us(b.baseline_p99_us), fmt_us(b.limit_us as u64));
        if let Some(t) = self.typical_second {
            let after_part = t.after_us.map_or(String::new(), |a| format!(", after {} ({})", fmt_us(a), fmt_ratio(ratio(a as f64, t.before_us as f64))));
            let _ = writeln!(
                out,
                "typical second: median per-second p99 before {}, during {} ({}){after_part}; {} of {} seconds during over 10 × the before median",
                fmt_us(t.before_us),
                fmt_us(t.during_us),
                fmt_ratio(ratio(t.during_us as f64, t.before_us as f64)),
                t.during_spikes,
                t.during_seconds
            );
            if let Some(outlasted) = t.outlasted(self.budget.ratio) {
                let _ = writeln!(out, "  {outlasted}");
            }
            if let Some(by_stage) = crate::stages::describe(&crate::stages::of(&self.migrations.migrations, &self.timeline.seconds), t.before_us) {
                let _ = writeln!(out, "  by stage of the moves: {by_stage}");
            }
            if let Some(split) = &self.partitions {
                let _ = writeln!(out, "  by partition: {}", split.describe(self.budget.ratio));
            }
        }
        if let Some(machine) = &self.machine {
            let _ = writeln!(out, "machine: {}", machine.describe());
            if let Some(caution) = machine.caution() {
                let _ = writeln!(out, "  {caution}");
            }
        }
        if let Some(host) = &self.host {
            let _ = writeln!(out, "host noise: {}", host.describe());
            if let Some(freezes) = host.describe_freezes() {
                let _ = writeln!(out, "  {freezes}");
            }
            if let Some(wakes) = host.describe_wakes() {
                let _ = writeln!(out, "  {wakes}");
            }
            if let Some(cpu) = host.describe_cpu() {
                let _ = writeln!(out, "machine CPU: {cpu}");
            }
        }
        if let Some(engine) = &self.engine {
            let _ = writeln!(out, "storage engines: {}", engine.describe());
        }
        match &self.command {
            Some(c) => {
                let status = match (&c.problem, c.exit_code) {
                    (Some(p), _) => p.clone(),
                    (None, Some(code)) => format!("exit {code}"),
                    (None, None) => "killed by a signal".to_string(),
                };
                let _ = writeln!(out, "command: `{}`: {status}, ran {:.1}–{:.1} s", c.command, c.started_us as f64 / 1e6, c.ended_us as f64 / 1e6);
                for line in c.output_tail.iter().rev().take(5).rev() {
                    let _ = writeln!(out, "  | {line}");
                }
            }
            None => out.push_str("command: none (before/during/after are thirds of the run)\n"),
        }
        let m = &self.migrations;
        match &m.note {
            Some(note) => {
                let _ = writeln!(out, "migrations: {note}");
            }
            None => {
                let pause = m.largest_cutover_pause_ms.map(|p| format!("{p} ms")).unwrap_or_else(|| "–".into());
                let rate = m.moved_mb_per_s.map(|r| format!("{r:.2} MB/s")).unwrap_or_else(|| "–".into());
                let _ = writeln!(out, "migrations: {} during the run, {:.1} MB / {} keys copied, moved {rate}, largest cutover pause {pause}{}", m.migrations.len(), m.bytes_copied as f64 / 1e6, m.keys_copied, m.cpu_text().map(|c| format!("; {c}")).unwrap_or_default());
                let restarted = m.copies_restarted();
                if restarted > 0 {
                    let _ = writeln!(out, "  {restarted} copies started over: a change log was trimmed under them (see `log_retention_mib`)");
                }
                for line in &m.stages {
                    let _ = writeln!(out, "  stage {line}");
                }
            }
        }
    }

    fn render_errors(&self, out: &mut String) {
        let e = &self.errors;
        if e.errors + e.timeouts == 0 {
            out.push_str("errors: none\n");
            return;
        }
        let _ = writeln!(out, "errors: {} error replies, {} without reply (indeterminate)", e.errors, e.timeouts);
        for (message, n) in e.by_message.iter().take(10) {
            let _ = writeln!(out, "  {n:>8}  {message}");
        }
    }

    fn render_correctness(&self, out: &mut String) {
        let c = &self.correctness;
        let _ = writeln!(
            out,
            "correctness: {} reads checked ({} keys read back), {} writes acknowledged, {} indeterminate",
            c.reads_checked, c.keys_read_back, c.writes_acked, c.writes_indeterminate
        );
        if let Some(e) = &c.read_back_error {
            let _ = writeln!(out, "  final read-back FAILED, lost writes not checked: {e}");
        }
        if c.total() == 0 {
            out.push_str("anomalies: none\n");
            return;
        }
        let counts: Vec<String> = c.anomalies.iter().map(|a| format!("{} {}", a.count, a.kind.label())).collect();
        let _ = writeln!(out, "ANOMALIES: {}", counts.join(", "));
        for a in &c.examples {
            let _ = writeln!(out, "  [{}] {}: {}", a.kind.label(), a.key, a.detail);
        }
    }
}

/// A phase's p99 over its whole window is set by its worst 1 % of
/// requests, so one stalled second (an engine flush, say) in a long window
/// decides it. The median of the per-second p99s says what a typical second
/// was like; together with the count of spike seconds it separates "slower
/// throughout" from "a few stalls".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypicalSecond {
    pub before_us: u64,
    pub during_us: u64,
    /// Seconds of the during window whose p99 exceeded 10 × `before_us`.
    pub during_spikes: usize,
    pub during_seconds: usize,
    /// The after window's median, when it holds [`TypicalSecond::MIN_AFTER_SECONDS`]
    /// whole seconds or more: the seconds once the disruption has ended,
    /// the check on whether what raised "during" was the disruption at all.
    pub after_us: Option<u64>,
}

impl TypicalSecond {
    /// Fewer whole seconds after the disruption than this and their median
    /// is not shown: a handful of seconds on a shared machine is a draw.
    pub const MIN_AFTER_SECONDS: usize = 20;

    /// None if either of before and during holds no whole second.
    pub fn of(seconds: &[Second], before: &PhaseStats, during: &PhaseStats, after: &PhaseStats) -> Option<TypicalSecond> {
        let p99s = |p: &PhaseStats| -> Vec<u64> {
            let mut v: Vec<u64> = seconds.iter().filter(|s| s.t as f64 >= p.start_s && ((s.t + 1) as f64) <= p.end_s && s.requests > 0).map(|s| s.p99_us).collect();
            v.sort_unstable();
            v
        };
        let median = |v: &[u64]| (!v.is_empty()).then(|| v[v.len() / 2]);
        let (b, d) = (p99s(before), p99s(during));
        let (before_us, during_us) = (median(&b)?, median(&d)?);
        let during_spikes = d.iter().filter(|&&p| p > before_us.saturating_mul(10)).count();
        let a = p99s(after);
        let after_us = if a.len() >= Self::MIN_AFTER_SECONDS { median(&a) } else { None };
        Some(TypicalSecond { before_us, during_us, during_spikes, during_seconds: d.len(), after_us })
    }

    /// When a typical second during was over `budget` × before and the
    /// seconds after the disruption were about as slow (at least 0.9 ×
    /// during), says so: what raised p99 outlasted the disruption, so it
    /// was not the disruption's own work (the moves' copying, say) but the
    /// machine drifting, or the state the disruption left (a rebalanced
    /// cluster). A no-rebalance control run tells the two apart.
    pub fn outlasted(&self, budget: f64) -> Option<String> {
        let after = self.after_us?;
        let over = self.during_us as f64 > budget * self.before_us as f64;
        let as_slow = after as f64 >= 0.9 * self.during_us as f64;
        (over && as_slow).then(|| {
            format!(
                "the seconds after it were as slow (after {} = {} of during): what raised p99 outlasted the disruption, so it was the machine drifting or the state it left, not its own work; compare a run without it",
                fmt_us(after),
                fmt_ratio(ratio(after as f64, self.during_us as f64))
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn second(t: u64, p99_us: u64) -> Second {
        Second { t, requests: 100, ok: 100, failed: 0, p50_us: 1, p99_us, p999_us: p99_us, max_us: p99_us, lag_p99_us: 0, cpu_busy_pct: None }
    }

    fn phase(start_s: f64, end_s: f64) -> PhaseStats {
        PhaseStats { name: "x".into(), start_s, end_s, requests: 0, ok: 0, errors: 0, timeouts: 0, throughput: 0.0, latency: Latency::default() }
    }

    #[test]
    fn a_typical_second_ignores_a_few_stalled_ones() {
        let mut seconds: Vec<Second> = (0..10).map(|t| second(t, 1_000 + t)).collect();
        seconds.extend((10..30).map(|t| second(t, 2_000)));
        seconds[20] = second(20, 900_000);
        seconds[21] = second(21, 12_000);
        let no_after = phase(30.0, 30.0);
        let t = TypicalSecond::of(&seconds, &phase(0.0, 10.0), &phase(10.0, 30.0), &no_after).unwrap();
        assert_eq!(t, TypicalSecond { before_us: 1_005, during_us: 2_000, during_spikes: 2, during_seconds: 20, after_us: None });
        // A partial last second is left out; an empty window has no median.
        assert_eq!(TypicalSecond::of(&seconds, &phase(0.0, 9.5), &phase(10.0, 30.0), &no_after).unwrap().before_us, 1_004);
        assert_eq!(TypicalSecond::of(&seconds, &phase(30.0, 30.0), &phase(10.0, 30.0), &no_after), None);
    }

    #[test]
    fn the_after_window_shows_whether_the_rise_outlasted_the_disruption() {
        // 20 s at 1 ms, 20 s at 2 ms during, then 30 s after at `after_us`.
        let run = |after_us: u64| -> Vec<Second> { (0..20).map(|t| second(t, 1_000)).chain((20..40).map(|t| second(t, 2_000))).chain((40..70).map(|t| second(t, after_us))).collect() };
        let (before, during) = (phase(0.0, 20.0), phase(20.0, 40.0));

        // Still slow after the disruption: said, with the after/during ratio.
        let slow = TypicalSecond::of(&run(1_900), &before, &during, &phase(40.0, 70.0)).unwrap();
        assert_eq!(slow.after_us, Some(1_900));
        let said = slow.outlasted(1.10).expect("after was as slow as during");
        assert!(said.contains("after 1.90 ms = 0.95x of during"), "{said}");

        // Back to the baseline after it: the rise was the disruption's.
        let recovered = TypicalSecond::of(&run(1_000), &before, &during, &phase(40.0, 70.0)).unwrap();
        assert_eq!(recovered.after_us, Some(1_000));
        assert_eq!(recovered.outlasted(1.10), None);

        // Within the budget during: nothing to explain.
        assert_eq!(slow.outlasted(2.5), None);

        // Too few seconds after to say anything.
        let short = TypicalSecond::of(&run(1_900), &before, &during, &phase(40.0, 40.0 + (TypicalSecond::MIN_AFTER_SECONDS - 1) as f64)).unwrap();
        assert_eq!(short.after_us, None);
        assert_eq!(short.outlasted(1.10), None);
    }

    #[test]
    fn formats_durations_and_ratios() {
        assert_eq!(fmt_us(999), "999 µs");
        assert_eq!(fmt_us(1_234), "1.23 ms");
        assert_eq!(fmt_us(2_500_000), "2.50 s");
        assert_eq!(fmt_ratio(Some(1.234)), "1.23x");
        assert_eq!(fmt_ratio(None), "–");
    }

    #[test]
    fn shortfall_is_reported_only_past_two_percent() {
        assert_eq!(RateSummary::of(10_000, 600_000, 594_000, 60.0, 0, 0).shortfall_pct, None);
        let r = RateSummary::of(10_000, 600_000, 540_000, 60.0, 0, 0);
        assert!((r.shortfall_pct.unwrap() - 10.0).abs() < 1e-9);
    }
}
