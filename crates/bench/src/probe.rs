//! The host-noise probe (`--host-probe`): a thread of the bench's own that
//! sleeps [`PERIOD`] in a loop and notes every wake-up more than
//! [`LATE_MIN_US`] late, in the spirit of cyclictest.
//!
//! On a quiet machine the thread wakes within tens of µs. What delays it
//! delays every other thread too, the measured system's included: the
//! hypervisor taking the vCPU away, the kernel (reclaim, interrupts), or a
//! saturated CPU. Reported per phase next to the latency figures, it tells
//! a window the machine made slow from one the system under test made
//! slow. On a shared 2-core machine the first is often the larger effect:
//! a during/before p99 ratio means little if the host stalled three times
//! as much in one window as in the other.
//!
//! The probe costs one wake-up per millisecond on one thread; it is off
//! unless asked for.
//!
//! A wake-up [`FREEZE_MIN_US`] or more late is a *freeze*. On the 2-core
//! test VM (a nested guest) kernel traces of such stalls in acceptance runs
//! (tracefs `sched_switch`/`sched_waking`/irq events, the trace stopped by
//! a probe like this one) showed no event at all on either vCPU for the
//! stall's length, one vCPU stopped inside an interrupt handler or an IPI
//! send: the hypervisor held the CPUs, no thread of the guest did. Each
//! phase also gets the p99 of its requests that were *not* in flight during
//! a freeze, so a reader can tell a window the host froze from one the
//! system made slow. The budget verdict never uses it.

use crate::cpu::{CpuSample, CpuUse, CROWDED_BUSY_PCT};
use crate::history::Micros;
use crate::recorder::Sample;
use crate::stats::{new_histogram, record};
use crate::phases::{PHASE_NAMES, PhaseTimes};
use crate::report::fmt_us;
use crate::schedule::Clock;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the probe sleeps each time.
pub const PERIOD: Duration = Duration::from_millis(1);
/// A wake-up later than this (past the period) counts as a stall.
pub const LATE_MIN_US: u64 = 1_000;
/// A stall at least this long is a freeze (see the module docs): several
/// times a scheduler slice (a few ms), so a guest that is merely busy
/// rarely makes one; the traced ones were all the hypervisor's.
pub const FREEZE_MIN_US: u64 = 10_000;

/// One wake-up of the probe: when it woke (µs on the load's clock) and how
/// much later than asked. Over [`LATE_MIN_US`] it is a *stall*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeUp {
    pub at_us: Micros,
    pub late_us: u64,
}

/// How often the probe also reads the machine's and the bench's CPU
/// time ([`crate::cpu`]).
pub const CPU_EVERY: Duration = Duration::from_millis(500);

/// The running probe; [`HostProbe::finish`] stops it.
pub struct HostProbe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Probed>,
}

/// What the probe saw, each in time order.
#[derive(Debug, Default)]
pub struct Probed {
    /// Every wake-up (about 1,000 a second, 16 bytes each).
    pub wakes: Vec<WakeUp>,
    pub cpu: Vec<CpuSample>,
}

impl HostProbe {
    /// Starts the probe thread, timing against `clock`.
    pub fn start(clock: Clock) -> std::io::Result<HostProbe> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("bench-probe".into()).spawn(move || {
            let mut seen = Probed::default();
            let mut next_cpu = Instant::now();
            loop {
                // A reading at the start, every CPU_EVERY, and at the stop.
                let stop = stopped.load(Ordering::Relaxed);
                if stop || Instant::now() >= next_cpu {
                    seen.cpu.extend(CpuSample::read(clock));
                    next_cpu = Instant::now() + CPU_EVERY;
                }
                if stop {
                    return seen;
                }
                let asked = Instant::now();
                std::thread::sleep(PERIOD);
                let late_us = asked.elapsed().saturating_sub(PERIOD).as_micros() as u64;
                seen.wakes.push(WakeUp { at_us: clock.now_us(), late_us });
            }
        })?;
        Ok(HostProbe { stop, thread })
    }

    /// Stops the probe and returns what it saw.
    pub fn finish(self) -> Probed {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The probe's figures for one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseNoise {
    pub name: String,
    /// Time the probe woke late, summed, per second of the phase.
    pub stalled_ms_per_s: f64,
    /// Late wake-ups (each over [`LATE_MIN_US`]).
    pub stalls: u64,
    /// The longest one.
    pub worst_us: u64,
    /// Stalls of at least [`FREEZE_MIN_US`].
    #[serde(default)]
    pub freezes: u64,
    /// Requests of the phase (by intended send time) in flight during one
    /// of them: meant to be sent before it ended, answered after it began.
    #[serde(default)]
    pub requests_in_freezes: u64,
    /// p99 of the phase's other requests.
    #[serde(default)]
    pub p99_outside_freezes_us: u64,
    /// How late the probe's wake-ups were, all of them, at the median and
    /// at p99 (None without wake-ups, and in reports written before).
    /// Where a stall counts only the millisecond-scale, these see what a
    /// busy or virtualized machine adds to every thread's wake-up: on the
    /// 2-core test VM the tens of microseconds a wake-up across vCPUs costs.
    #[serde(default)]
    pub wake_p50_us: Option<u64>,
    #[serde(default)]
    pub wake_p99_us: Option<u64>,
    /// How busy the machine's CPUs were, and the bench's share (None
    /// where `/proc` could not be read, and in reports written before).
    #[serde(default)]
    pub cpu: Option<CpuUse>,
}

/// Stalled time per second of a window past which the host, not only the
/// system measured, shapes that window's p99. At 10,000 ops/s a 5 ms stall
/// delays some 50 requests and every one queued behind them: more than the
/// 1% a p99 rests on. A quiet 2-core VM measured 0.1–0.7 ms/s; noisy
/// sessions 2–24 ms/s.
pub const NOISY_MS_PER_S: f64 = 1.0;

/// The probe's figures for the three phases, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostNoise {
    pub phases: Vec<PhaseNoise>,
}

impl HostNoise {
    /// Sums `stalls` per phase of `times` (the warmup counts in none), and
    /// splits each phase's `samples` (sorted by intended time) into those
    /// in flight during a freeze and the rest.
    pub fn of(probed: &Probed, times: &PhaseTimes, samples: &[Sample]) -> HostNoise {
        let stalls: Vec<WakeUp> = probed.wakes.iter().filter(|w| w.late_us > LATE_MIN_US).copied().collect();
        let freezes = freezes(&stalls);
        let phases = PHASE_NAMES
            .iter()
            .enumerate()
            .map(|(p, name)| {
                let (from, to) = times.bounds(p);
                let inside: Vec<&WakeUp> = stalls.iter().filter(|s| from <= s.at_us && s.at_us < to).collect();
                let mut lateness = new_histogram();
                for w in probed.wakes.iter().filter(|w| from <= w.at_us && w.at_us < to) {
                    record(&mut lateness, w.late_us);
                }
                let quantile = |q: f64| (!lateness.is_empty()).then(|| lateness.value_at_quantile(q));
                let seconds = to.saturating_sub(from) as f64 / 1e6;
                let stalled_ms = inside.iter().map(|s| s.late_us).sum::<u64>() as f64 / 1e3;
                let first = samples.partition_point(|s| s.intended < from);
                let mut outside = new_histogram();
                let mut requests_in_freezes = 0;
                for s in samples[first..].iter().take_while(|s| s.intended < to) {
                    if in_freeze(&freezes, s) {
                        requests_in_freezes += 1;
                    } else {
                        record(&mut outside, s.latency());
                    }
                }
                PhaseNoise {
                    name: name.to_string(),
                    stalled_ms_per_s: if seconds > 0.0 { stalled_ms / seconds } else { 0.0 },
                    stalls: inside.len() as u64,
                    worst_us: inside.iter().map(|s| s.late_us).max().unwrap_or(0),
                    freezes: inside.iter().filter(|s| s.late_us >= FREEZE_MIN_US).count() as u64,
                    requests_in_freezes,
                    p99_outside_freezes_us: if outside.is_empty() { 0 } else { outside.value_at_quantile(0.99) },
                    wake_p50_us: quantile(0.5),
                    wake_p99_us: quantile(0.99),
                    cpu: CpuUse::between(&probed.cpu, from, to),
                }
            })
            .collect();
        HostNoise { phases }
    }

    /// The freezes before and during and the p99 of the requests outside
    /// them, or None when neither window had one (the p99s are then the
    /// phases' own).
    pub fn describe_freezes(&self) -> Option<String> {
        let (before, during) = (self.phases.first()?, self.phases.get(1)?);
        if before.freezes + during.freezes == 0 {
            return None;
        }
        let ratio = crate::stats::ratio(during.p99_outside_freezes_us as f64, before.p99_outside_freezes_us as f64);
        Some(format!(
            "host freezes (probe {} or more late): before {} ({} requests in flight), during {} ({} requests); p99 of the other requests: before {}, during {} ({}), not what the budget is judged on",
            fmt_us(FREEZE_MIN_US),
            before.freezes,
            before.requests_in_freezes,
            during.freezes,
            during.requests_in_freezes,
            fmt_us(before.p99_outside_freezes_us),
            fmt_us(during.p99_outside_freezes_us),
            crate::report::fmt_ratio(ratio)
        ))
    }

    /// One line for the report: per phase, the time a 1 ms sleeper woke
    /// late per second, how many times, and the worst.
    pub fn describe(&self) -> String {
        let phases: Vec<String> = self.phases.iter().map(|p| format!("{} {:.1} ms/s ({} stalls, worst {})", p.name, p.stalled_ms_per_s, p.stalls, fmt_us(p.worst_us))).collect();
        format!("a 1 ms sleeper woke over 1 ms late: {}; {}", phases.join("; "), self.verdict())
    }

    /// One line for the report: per phase that has them, the probe's
    /// wake-up lateness at the median and p99, and during's p99 against
    /// before's. None unless before and during have figures.
    pub fn describe_wakes(&self) -> Option<String> {
        let phases: Vec<String> = self.phases.iter().filter_map(|p| Some(format!("{} {}/{}", p.name, fmt_us(p.wake_p50_us?), fmt_us(p.wake_p99_us?)))).collect();
        let (before, during) = (self.phases.first()?.wake_p99_us?, self.phases.get(1)?.wake_p99_us?);
        Some(format!("a 1 ms sleeper's wake-ups were late by (p50/p99) {}; p99 during/before {}", phases.join(", "), crate::report::fmt_ratio(crate::stats::ratio(during as f64, before as f64))))
    }

    /// One line for the report: per phase, how busy the machine's CPUs
    /// were and the bench's share, and which of the two windows a ratio
    /// compares was crowded ([`CROWDED_BUSY_PCT`]). None when no phase
    /// has figures.
    pub fn describe_cpu(&self) -> Option<String> {
        let phases: Vec<String> = self.phases.iter().filter_map(|p| Some(format!("{} {}", p.name, p.cpu?.describe()))).collect();
        if phases.is_empty() {
            return None;
        }
        let crowded: Vec<&str> = self.phases.iter().take(2).filter(|p| p.cpu.is_some_and(|c| c.busy_pct > CROWDED_BUSY_PCT)).map(|p| p.name.as_str()).collect();
        let verdict = if crowded.is_empty() {
            format!("the CPUs had room before and during (at most {CROWDED_BUSY_PCT:.0}% busy)")
        } else {
            format!("the CPUs were over {CROWDED_BUSY_PCT:.0}% busy {}: queueing for them shapes p99 there as much as the system does", crowded.join(" and "))
        };
        Some(format!("{}; {verdict}", phases.join("; ")))
    }

    /// Whether the two windows a during/before ratio compares had a quiet
    /// host ([`NOISY_MS_PER_S`]), said for a reader of the report.
    pub fn verdict(&self) -> String {
        let noisy: Vec<String> = self.phases.iter().take(2).filter(|p| p.stalled_ms_per_s > NOISY_MS_PER_S).map(|p| p.name.clone()).collect();
        if noisy.is_empty() {
            format!("the host was quiet before and during (at most {NOISY_MS_PER_S:.1} ms/s)")
        } else {
            format!("the host was noisy {} (over {NOISY_MS_PER_S:.1} ms/s): the during/before ratios measure the machine as much as the system", noisy.join(" and "))
        }
    }
}

/// `[start, end)` µs of each freeze, in time order and disjoint (the probe
/// times one sleep at a time): from when the probe asked to sleep to when
/// it woke.
fn freezes(stalls: &[WakeUp]) -> Vec<(Micros, Micros)> {
    let period_us = PERIOD.as_micros() as u64;
    stalls.iter().filter(|s| s.late_us >= FREEZE_MIN_US).map(|s| (s.at_us.saturating_sub(s.late_us + period_us), s.at_us)).collect()
}

/// Whether `s` was in flight during one of `freezes`.
fn in_freeze(freezes: &[(Micros, Micros)], s: &Sample) -> bool {
    let next = freezes.partition_point(|&(_, end)| end <= s.intended);
    freezes.get(next).is_some_and(|&(start, _)| start < s.complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_are_summed_per_phase_and_the_warmup_counts_in_none() {
        let times = PhaseTimes { start: 1_000_000, during_start: 3_000_000, during_end: 7_000_000, end: 8_000_000 };
        let stall = |at_us, late_us| WakeUp { at_us, late_us };
        let stalls = [stall(500_000, 9_000), stall(1_000_000, 2_000), stall(2_500_000, 4_000), stall(3_000_000, 1_500), stall(6_999_999, 10_500), stall(7_500_000, 1_200)];
        let noise = HostNoise::of(&Probed { wakes: stalls.to_vec(), cpu: vec![] }, &times, &[]);
        let got: Vec<(&str, f64, u64, u64)> = noise.phases.iter().map(|p| (p.name.as_str(), p.stalled_ms_per_s, p.stalls, p.worst_us)).collect();
        assert_eq!(got, [("before", 3.0, 2, 4_000), ("during", 3.0, 2, 10_500), ("after", 1.2, 1, 1_200)]);
        assert_eq!(
            noise.describe(),
            "a 1 ms sleeper woke over 1 ms late: before 3.0 ms/s (2 stalls, worst 4.00 ms); during 3.0 ms/s (2 stalls, worst 10.50 ms); after 1.2 ms/s (1 stalls, worst 1.20 ms); the host was noisy before and during (over 1.0 ms/s): the during/before ratios measure the machine as much as the system"
        );
    }

    #[test]
    fn requests_in_flight_during_a_freeze_are_counted_apart_from_the_p99_of_the_rest() {
        use crate::config::Cmd;
        use crate::history::{Key, Outcome};
        let times = PhaseTimes { start: 0, during_start: 1_000_000, during_end: 2_000_000, end: 3_000_000 };
        // A 20 ms freeze in the during window, woken at 1.5 s: [1.479, 1.5) s
        // with the period; a 5 ms stall before (not a freeze).
        let stalls = [WakeUp { at_us: 500_000, late_us: 5_000 }, WakeUp { at_us: 1_500_000, late_us: 20_000 }];
        let sample = |intended: Micros, latency: Micros| Sample { intended, invoke: intended, complete: intended + latency, cmd: Cmd::Get, outcome: Outcome::Ok, conn: 0, key: Key::Data(0) };
        // 1,000 requests a phase 1 ms apart, 100 µs each; those caught by
        // the freeze took up to 20 ms.
        let mut samples: Vec<Sample> = (0..3_000u64).map(|i| sample(i * 1_000, 100)).collect();
        for s in samples.iter_mut().filter(|s| (1_479_000..1_500_000).contains(&s.intended)) {
            s.complete = 1_500_000 + 50;
        }
        // Sent after the freeze ended; answered before one began; both outside.
        samples.push(sample(1_500_000, 3_000));
        samples.push(sample(1_478_000, 900));
        samples.sort_by_key(|s| s.intended);
        let noise = HostNoise::of(&Probed { wakes: stalls.to_vec(), cpu: vec![] }, &times, &samples);
        let got: Vec<(u64, u64, u64)> = noise.phases.iter().map(|p| (p.freezes, p.requests_in_freezes, p.p99_outside_freezes_us)).collect();
        // During: the 21 requests meant for [1.479, 1.5) s are in the
        // freeze; of the other 981, the 3 ms one is the top 0.1%.
        assert_eq!(got, [(0, 0, 100), (1, 21, 100), (0, 0, 100)]);
        assert_eq!(
            noise.describe_freezes().unwrap(),
            "host freezes (probe 10.00 ms or more late): before 0 (0 requests in flight), during 1 (21 requests); p99 of the other requests: before 100 µs, during 100 µs (1.00x), not what the budget is judged on"
        );
        // Without a freeze before or during there is nothing to say.
        assert_eq!(HostNoise::of(&Probed { wakes: stalls[..1].to_vec(), cpu: vec![] }, &times, &samples).describe_freezes(), None);
    }

    #[test]
    fn every_wakeup_counts_in_its_phase_lateness_and_only_late_ones_are_stalls() {
        let times = PhaseTimes { start: 0, during_start: 1_000_000, during_end: 2_000_000, end: 3_000_000 };
        // 1,000 wake-ups a phase: before 20 µs late each but twenty at
        // 90 µs; during 40 µs but twenty at 300 µs and one stall of 2 ms;
        // after none.
        let wakes: Vec<WakeUp> = (0..2_000u64)
            .map(|i| {
                let late_us = match (i / 1_000, i % 1_000) {
                    (1, 500) => 2_000,
                    (0, k) if k % 50 == 7 => 90,
                    (1, k) if k % 50 == 7 => 300,
                    (0, _) => 20,
                    _ => 40,
                };
                WakeUp { at_us: i * 1_000 + late_us, late_us }
            })
            .collect();
        let noise = HostNoise::of(&Probed { wakes, cpu: vec![] }, &times, &[]);
        let got: Vec<(Option<u64>, Option<u64>, u64)> = noise.phases.iter().map(|p| (p.wake_p50_us, p.wake_p99_us, p.stalls)).collect();
        assert_eq!(got, [(Some(20), Some(90), 0), (Some(40), Some(300), 1), (None, None, 0)]);
        assert_eq!(noise.describe_wakes().unwrap(), "a 1 ms sleeper's wake-ups were late by (p50/p99) before 20 µs/90 µs, during 40 µs/300 µs; p99 during/before 3.33x");
        // A report written before these figures existed has no line.
        let mut old = noise.clone();
        old.phases[0].wake_p99_us = None;
        assert_eq!(old.describe_wakes(), None);
    }

    #[test]
    fn the_verdict_names_the_noisy_windows_and_ignores_the_after_window() {
        let noise = |before: f64, during: f64, after: f64| HostNoise {
            phases: [("before", before), ("during", during), ("after", after)].map(|(name, ms)| PhaseNoise { name: name.into(), stalled_ms_per_s: ms, stalls: 1, worst_us: 1_000, freezes: 0, requests_in_freezes: 0, p99_outside_freezes_us: 0, wake_p50_us: None, wake_p99_us: None, cpu: None }).to_vec(),
        };
        assert_eq!(noise(0.4, 1.0, 9.0).verdict(), "the host was quiet before and during (at most 1.0 ms/s)");
        assert!(noise(0.4, 1.1, 0.0).verdict().starts_with("the host was noisy during (over"));
        assert!(noise(6.0, 0.2, 0.0).verdict().starts_with("the host was noisy before (over"));
    }

    #[test]
    fn the_probe_stops_when_told_and_records_its_wakeups_in_order() {
        let clock = Clock { start: Instant::now() };
        let started = Instant::now();
        let probe = HostProbe::start(clock).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let Probed { wakes, cpu } = probe.finish();
        let (elapsed, ended) = (started.elapsed(), clock.now_us());
        // Each wake-up ends a sleep of at least the period.
        assert!(!wakes.is_empty() && wakes.len() as u128 <= elapsed.as_millis(), "{} wake-ups in {elapsed:?}", wakes.len());
        assert!(wakes.iter().all(|w| w.at_us <= ended), "{wakes:?}");
        assert!(wakes.windows(2).all(|w| w[0].at_us + PERIOD.as_micros() as u64 <= w[1].at_us), "{wakes:?}");
        // A reading when it starts and one when it stops, at least.
        if std::path::Path::new("/proc/stat").exists() {
            assert!(cpu.len() >= 2 && cpu.windows(2).all(|w| w[0].at_us <= w[1].at_us && w[0].idle <= w[1].idle), "{cpu:?}");
        }
    }

    #[test]
    fn cpu_figures_are_given_per_phase_and_a_crowded_window_is_named() {
        let times = PhaseTimes { start: 0, during_start: 2_000_000, during_end: 4_000_000, end: 6_000_000 };
        // A reading every second (two CPUs, 200 ticks a second); the CPUs
        // 60% busy before, 90% during, 50% after; the bench 20% throughout.
        let mut cpu = Vec::new();
        let (mut idle, mut bench) = (0, 0);
        for second in 0..=6u64 {
            cpu.push(CpuSample { at_us: second * 1_000_000, idle, steal: 0, bench, capacity_per_s: 200 });
            idle += [80, 80, 20, 20, 100, 100, 0][second as usize];
            bench += 40;
        }
        let noise = HostNoise::of(&Probed { wakes: vec![], cpu }, &times, &[]);
        let got: Vec<Option<f64>> = noise.phases.iter().map(|p| p.cpu.map(|c| c.busy_pct)).collect();
        // Each window spans its first to last reading: [0, 1] s, [2, 3] s, [4, 5] s.
        assert_eq!(got, [Some(60.0), Some(90.0), Some(50.0)]);
        assert_eq!(
            noise.describe_cpu().unwrap(),
            "before 60% busy (bench 20%); during 90% busy (bench 20%); after 50% busy (bench 20%); the CPUs were over 80% busy during: queueing for them shapes p99 there as much as the system does"
        );
        let none = HostNoise::of(&Probed::default(), &times, &[]);
        assert_eq!(none.describe_cpu(), None, "no readings, no line");
    }
}
