//! Latency and throughput figures from the recorded [`Sample`]s: HDR
//! histograms (1 µs .. 60 s, 3 significant digits) per phase and per second.
//!
//! A request belongs to the phase and the second of its *intended* send
//! time (that is when the user wanted it); throughput counts replies by the
//! time they arrived.

use crate::history::{Micros, Outcome};
use crate::phases::{PHASE_NAMES, PhaseTimes};
use crate::recorder::Sample;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 60_000_000;
const SIGFIGS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIGS).expect("valid histogram bounds")
}

/// Percentiles of one histogram, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// One phase's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStats {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    /// Requests whose intended send time fell in the phase.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// No reply (timeout or connection lost): indeterminate.
    pub timeouts: u64,
    /// Successful replies per second that arrived during the phase.
    pub throughput: f64,
    pub latency: Latency,
}

/// One second's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub t: u64,
    /// Requests intended in this second.
    pub requests: u64,
    /// Successful replies that arrived in this second.
    pub ok: u64,
    /// Errors and timeouts, by intended second.
    pub failed: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// p99 of how late the bench itself sent this second's requests
    /// (send lag). A slow second with a small send lag was slow in the
    /// server; one with a large send lag was (also) the bench or the
    /// machine holding the load generator back.
    #[serde(default)]
    pub lag_p99_us: u64,
    /// How busy the machine's CPUs were over this second, in whole percent
    /// of all of them (`--host-probe` only): a slow second on a crowded
    /// machine reads differently from one on an idle machine. An integer,
    /// so the JSON report reads back exactly.
    #[serde(default)]
    pub cpu_busy_pct: Option<u8>,
}

/// How far sending lagged behind the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SendLag {
    /// Requests sent more than 1 ms after their intended time.
    pub late_over_1ms: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Phase figures and the per-second series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub phases: Vec<PhaseStats>,
    pub seconds: Vec<Second>,
    pub send_lag: SendLag,
}

/// Records `us` in `h` (at least 1 µs; past the highest value, as the
/// highest).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(LOWEST_US));
}

/// Builds the [`Timeline`]; sorts `samples` by intended time.
pub fn timeline(samples: &mut [Sample], times: &PhaseTimes) -> Timeline {
    samples.sort_unstable_by_key(|s| s.intended);
    let phases = (0..3).map(|p| phase_stats(samples, times, p)).collect();
    let seconds = per_second(samples, times.end);
    let mut lag = new_histogram();
    let mut late = 0;
    for s in samples.iter() {
        let l = s.invoke.saturating_sub(s.intended);
        late += u64::from(l > 1_000);
        record(&mut lag, l);
    }
    let send_lag = SendLag { late_over_1ms: late, p50_us: lag.value_at_quantile(0.5), p99_us: lag.value_at_quantile(0.99), max_us: lag.max() };
    Timeline { phases, seconds, send_lag }
}

fn phase_stats(samples: &[Sample], times: &PhaseTimes, p: usize) -> PhaseStats {
    let (start, end) = times.bounds(p);
    let mut h = new_histogram();
    let (mut requests, mut ok, mut errors, mut timeouts, mut arrived) = (0, 0, 0, 0, 0u64);
    for s in samples {
        if s.outcome == Outcome::Ok && (start..end).contains(&s.complete) {
            arrived += 1;
        }
        if !(start..end).contains(&s.intended) {
            continue;
        }
        requests += 1;
        match s.outcome {
            Outcome::Ok => ok += 1,
            Outcome::Error => errors += 1,
            Outcome::Timeout => timeouts += 1,
        }
        record(&mut h, s.latency());
    }
    let secs = (end - start) as f64 / 1e6;
    PhaseStats {
        name: PHASE_NAMES[p].to_string(),
        start_s: start as f64 / 1e6,
        end_s: end as f64 / 1e6,
        requests,
        ok,
        errors,
        timeouts,
        throughput: if secs > 0.0 { arrived as f64 / secs } else { 0.0 },
        latency: Latency::of(&h),
    }
}

/// Per-second series over `[0, end)`; `samples` sorted by intended time.
fn per_second(samples: &[Sample], end: Micros) -> Vec<Second> {
    let n = end.div_ceil(1_000_000) as usize;
    let mut out: Vec<Second> = (0..n as u64).map(|t| Second { t, requests: 0, ok: 0, failed: 0, p50_us: 0, p99_us: 0, p999_us: 0, max_us: 0, lag_p99_us: 0, cpu_busy_pct: None }).collect();
    for s in samples.iter().filter(|s| s.outcome == Outcome::Ok) {
        if let Some(sec) = out.get_mut((s.complete / 1_000_000) as usize) {
            sec.ok += 1;
        }
    }
    let (mut h, mut lag) = (new_histogram(), new_histogram());
    for chunk in samples.chunk_by(|a, b| a.intended / 1_000_000 == b.intended / 1_000_000) {
        let Some(sec) = out.get_mut((chunk[0].intended / 1_000_000) as usize) else { continue };
        h.reset();
        lag.reset();
        for s in chunk {
            record(&mut h, s.latency());
            record(&mut lag, s.invoke.saturating_sub(s.intended));
            sec.failed += u64::from(s.outcome != Outcome::Ok);
        }
        let l = Latency::of(&h);
        sec.requests = chunk.len() as u64;
        (sec.p50_us, sec.p99_us, sec.p999_us, sec.max_us) = (l.p50_us, l.p99_us, l.p999_us, l.max_us);
        sec.lag_p99_us = lag.value_at_quantile(0.99);
    }
    out
}

/// during ÷ before, or `None` when the baseline figure is 0.
pub fn ratio(during: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| during / before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cmd;

    fn sample(intended: u64, latency: u64, outcome: Outcome) -> Sample {
        Sample { intended, invoke: intended + 10, complete: intended + latency, cmd: Cmd::Get, outcome, conn: 0, key: crate::history::Key::Data(0) }
    }

    #[test]
    fn splits_by_phase_and_second() {
        let times = PhaseTimes { start: 0, during_start: 1_000_000, during_end: 2_000_000, end: 3_000_000 };
        let mut samples = Vec::new();
        for i in 0..1000 {
            samples.push(sample(i * 1000, 100, Outcome::Ok));
            samples.push(sample(1_000_000 + i * 1000, if i == 999 { 50_000 } else { 1_000 }, Outcome::Ok));
            samples.push(sample(2_000_000 + i * 1000, 200, if i < 10 { Outcome::Timeout } else { Outcome::Ok }));
        }
        // The bench sent 20 of second 1's requests 2 ms late.
        for s in samples.iter_mut().filter(|s| (1_000_000..1_020_000).contains(&s.intended)) {
            s.invoke = s.intended + 2_000;
        }
        let t = timeline(&mut samples, &times);
        let [before, during, after] = [&t.phases[0], &t.phases[1], &t.phases[2]];
        assert_eq!((before.requests, before.latency.p50_us, before.latency.max_us), (1000, 100, 100));
        assert_eq!(during.latency.p50_us, 1000);
        assert!((49_950..=50_050).contains(&during.latency.max_us), "{}", during.latency.max_us);
        assert_eq!((after.ok, after.timeouts), (990, 10));
        // Throughput goes by arrival: the 50 ms reply lands in "after".
        assert!((before.throughput - 1000.0).abs() < 1e-9, "{}", before.throughput);
        assert!((during.throughput - 999.0).abs() < 1e-9, "{}", during.throughput);
        assert_eq!(t.seconds.len(), 3);
        assert_eq!(t.seconds[1].requests, 1000);
        assert_eq!(t.seconds[2].failed, 10);
        assert_eq!(t.seconds.iter().map(|s| s.lag_p99_us).collect::<Vec<_>>(), [10, 2_000, 10]);
        assert_eq!(t.send_lag.p50_us, 10);
        assert_eq!(t.send_lag.late_over_1ms, 20);
        assert_eq!(ratio(during.latency.p50_us as f64, before.latency.p50_us as f64), Some(10.0));
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
