//! The cluster's storage engines in each phase: how long each node spent
//! compacting (`compaction_ms_total` of `GET /v1/cluster`, read every
//! [`ENGINE_EVERY`] while the load runs, when `--admin` names the cluster).
//!
//! An LSM engine has a cycle of its own under a steady load: memtables
//! flush every half-minute or so, and every few minutes a compaction
//! rewrites most of a level, for tens of seconds. On the 2-core test VM
//! that compaction (0.5-1 s of wall time per node, the old nodes all at
//! once, since they carry the same load from the same start) landed in
//! the acceptance run's after window in every traced run, costing clients
//! there whether or not a partition had moved. A window the cycle lands in
//! is slower for reasons that are not the migration's: the report names
//! the windows that held more of it, so a during/before ratio is read
//! against it, as it is against the host's noise.
//!
//! The figure is the engine's wall time inside compaction runs (fjall's
//! own count), not CPU: a run preempted by client threads counts its wait
//! too, and every check that finds nothing to do adds about a millisecond.

use crate::history::Micros;
use crate::migrations;
use crate::phases::{PHASE_NAMES, PhaseTimes};
use crate::schedule::Clock;
use evenkeel_types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often the sampler reads the cluster's compaction totals.
pub const ENGINE_EVERY: Duration = Duration::from_secs(1);

/// Compaction in a window counts as more than in another past this factor
/// (per second of each), and only if it adds up to [`NOTABLE_MS`].
const MORE_FACTOR: f64 = 2.0;
/// Less compaction than this in a window is not worth a remark: the flushes'
/// own compactions add up to a few hundred ms a minute over a cluster.
const NOTABLE_MS: u64 = 1_000;

/// One reading: each node's compaction total (ms since it started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSample {
    pub at_us: Micros,
    pub compaction_ms: BTreeMap<NodeId, u64>,
}

/// The running sampler; [`EngineSampler::finish`] stops it, and so does
/// dropping it (a load that failed halfway leaves no task polling).
pub struct EngineSampler {
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    task: JoinHandle<Vec<EngineSample>>,
}

/// How long the last reading, at the end of the load, may take: a cluster
/// that went away must not hold the report up for the client's timeout.
const LAST_READING_TIMEOUT: Duration = Duration::from_secs(2);

impl EngineSampler {
    /// Reads `admin`'s `/v1/cluster` now and every [`ENGINE_EVERY`]; a
    /// reading that fails is skipped (the report only loses resolution).
    pub fn start(admin: String, clock: Clock) -> EngineSampler {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let Ok(client) = migrations::http_client() else { return samples };
            let read = || async {
                let status = migrations::cluster(&client, &admin).await.ok()?;
                Some(EngineSample { at_us: clock.now_us(), compaction_ms: status.nodes.iter().map(|n| (n.id, n.compaction_ms_total)).collect() })
            };
            let mut tick = tokio::time::interval(ENGINE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = token.cancelled() => break,
                }
                tokio::select! {
                    sample = read() => samples.extend(sample),
                    _ = token.cancelled() => break,
                }
            }
            // One last reading, so the after window's end is bracketed.
            if let Ok(sample) = tokio::time::timeout(LAST_READING_TIMEOUT, read()).await {
                samples.extend(sample);
            }
            samples
        });
        EngineSampler { _stop_on_drop: stop.clone().drop_guard(), stop, task }
    }

    /// Stops the sampler and returns its readings, in time order.
    pub async fn finish(self) -> Vec<EngineSample> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// One phase's compaction: per node, ms spent compacting in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCompaction {
    pub name: String,
    /// Length of the stretch the readings cover (about the phase's).
    pub seconds: f64,
    pub by_node: BTreeMap<NodeId, u64>,
}

impl PhaseCompaction {
    pub fn total_ms(&self) -> u64 {
        self.by_node.values().sum()
    }

    fn ms_per_s(&self) -> f64 {
        if self.seconds > 0.0 { self.total_ms() as f64 / self.seconds } else { 0.0 }
    }

    /// "0.4 s", or "6.1 s (n1 2.0 s, n2 2.1 s, n3 2.0 s)" once it is notable.
    fn describe(&self) -> String {
        let total = secs(self.total_ms());
        if self.total_ms() < NOTABLE_MS {
            return format!("{} {total}", self.name);
        }
        let nodes: Vec<String> = self.by_node.iter().filter(|(_, ms)| **ms > 0).map(|(id, ms)| format!("n{id} {}", secs(*ms))).collect();
        format!("{} {total} ({})", self.name, nodes.join(", "))
    }
}

/// The engines' compaction in the three phases, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineCycle {
    pub phases: Vec<PhaseCompaction>,
}

impl EngineCycle {
    /// Each phase of `times` from the readings that bracket it (see
    /// [`crate::cpu::bracket`]): a node that appeared in between counts
    /// from zero. None without two readings around any phase, or when no
    /// node reported any compaction at all (a cluster that does not report
    /// it: under load the engines always flush and compact some).
    pub fn of(samples: &[EngineSample], times: &PhaseTimes) -> Option<EngineCycle> {
        let phases: Vec<PhaseCompaction> = PHASE_NAMES
            .iter()
            .enumerate()
            .filter_map(|(p, name)| {
                let (from, to) = times.bounds(p);
                let (first, last) = crate::cpu::bracket(samples, |s| s.at_us, from, to)?;
                let by_node = migrations::spent_by_node(&first.compaction_ms, &last.compaction_ms);
                Some(PhaseCompaction { name: name.to_string(), seconds: last.at_us.saturating_sub(first.at_us) as f64 / 1e6, by_node })
            })
            .collect();
        (phases.len() == PHASE_NAMES.len() && phases.iter().any(|p| p.total_ms() > 0)).then_some(EngineCycle { phases })
    }

    /// One line for the report: each phase's time compacting, over all
    /// nodes, which of the two windows a ratio compares held more, and
    /// whether the after window held more than the baseline (its typical
    /// second then carries the engines' cycle too).
    pub fn describe(&self) -> String {
        let phases: Vec<String> = self.phases.iter().map(PhaseCompaction::describe).collect();
        let after = match (self.phases.first(), self.phases.get(2)) {
            (Some(before), Some(after)) if more(after, before) => "; the after window held more than before, so its seconds carry the engines' cycle too",
            _ => "",
        };
        format!("time compacting, all nodes: {}; {}{after}", phases.join(", "), self.verdict())
    }

    /// Whether before or during held notably more compaction (per second)
    /// than the other, said for a reader of the ratios.
    pub fn verdict(&self) -> String {
        let (Some(before), Some(during)) = (self.phases.first(), self.phases.get(1)) else {
            return String::new();
        };
        if more(during, before) {
            "the engines compacted more during than before: part of during's cost is their own cycle, which runs whether or not anything moves".to_string()
        } else if more(before, during) {
            "the engines compacted more before than during: the baseline carries their cycle, which flatters the during/before ratios".to_string()
        } else {
            "before and during held about as much compaction".to_string()
        }
    }
}

/// Whether `a` held notably more compaction per second than `b`.
fn more(a: &PhaseCompaction, b: &PhaseCompaction) -> bool {
    a.total_ms() >= NOTABLE_MS && a.ms_per_s() > MORE_FACTOR * b.ms_per_s()
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: u64, nodes: &[(NodeId, u64)]) -> EngineSample {
        EngineSample { at_us: at_s * 1_000_000, compaction_ms: nodes.iter().copied().collect() }
    }

    fn times() -> PhaseTimes {
        PhaseTimes { start: 10_000_000, during_start: 70_000_000, during_end: 130_000_000, end: 190_000_000 }
    }

    /// A reading a second, with node totals given by `ms(node, second)`.
    fn run(nodes: &[NodeId], ms: impl Fn(NodeId, u64) -> u64) -> Vec<EngineSample> {
        (0..=190).map(|t| sample(t, &nodes.iter().map(|n| (*n, ms(*n, t))).collect::<Vec<_>>())).collect()
    }

    #[test]
    fn each_phase_gets_what_each_node_compacted_in_it() {
        // Every node compacts 10 ms a second; node 2 also 3 s in the after window.
        let samples = run(&[1, 2], |n, t| 10 * t + if n == 2 && t >= 150 { 3_000 } else { 0 });
        let cycle = EngineCycle::of(&samples, &times()).unwrap();
        let totals: Vec<u64> = cycle.phases.iter().map(PhaseCompaction::total_ms).collect();
        assert_eq!(totals, vec![1_200, 1_200, 4_200]);
        assert_eq!(cycle.phases[2].by_node, BTreeMap::from([(1, 600), (2, 3_600)]));
        assert_eq!(cycle.phases[2].seconds, 60.0);
        assert_eq!(
            cycle.describe(),
            "time compacting, all nodes: before 1.2 s (n1 0.6 s, n2 0.6 s), during 1.2 s (n1 0.6 s, n2 0.6 s), after 4.2 s (n1 0.6 s, n2 3.6 s); before and during held about as much compaction; the after window held more than before, so its seconds carry the engines' cycle too"
        );
        let even = run(&[1, 2], |_, t| 10 * t);
        assert!(EngineCycle::of(&even, &times()).unwrap().describe().ends_with("before and during held about as much compaction"), "nothing said of an after window like the others");
    }

    #[test]
    fn a_node_that_joins_counts_from_zero() {
        // Node 3 is first seen at 80 s, having compacted 25 ms already.
        let mut samples = run(&[1, 3], |n, t| if n == 3 { 5 * t.saturating_sub(75) } else { t });
        for s in samples.iter_mut().filter(|s| s.at_us < 80_000_000) {
            s.compaction_ms.remove(&3);
        }
        let cycle = EngineCycle::of(&samples, &times()).unwrap();
        assert_eq!(cycle.phases[1].by_node, BTreeMap::from([(1, 60), (3, 275)]), "node 3 counts from zero, not from its first reading");
        assert_eq!(cycle.phases[0].by_node, BTreeMap::from([(1, 60)]));
    }

    #[test]
    fn the_verdict_names_the_window_that_compacted_more() {
        let during_heavy = run(&[1, 2, 3], |_, t| t + if t >= 100 { 900 } else { 0 });
        assert!(EngineCycle::of(&during_heavy, &times()).unwrap().verdict().starts_with("the engines compacted more during than before"));
        let before_heavy = run(&[1, 2, 3], |_, t| t + if t >= 40 { 900 } else { 0 });
        assert!(EngineCycle::of(&before_heavy, &times()).unwrap().verdict().starts_with("the engines compacted more before than during"));
        // Three times as much during, but 360 ms in all: not notable.
        let small = run(&[1, 2, 3], |_, t| t + if t >= 70 { 2 * (t.min(130) - 70) } else { 0 });
        assert_eq!(EngineCycle::of(&small, &times()).unwrap().verdict(), "before and during held about as much compaction");
    }

    /// An admin API that never answers gives no readings, and stopping
    /// the sampler waits neither for the reading in flight nor for the
    /// client's 5 s timeout on the last one.
    #[tokio::test]
    async fn a_silent_admin_api_gives_no_readings_and_does_not_hold_the_report_up() {
        // The kernel completes connections to a listener nobody accepts on.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sampler = EngineSampler::start(silent.local_addr().unwrap().to_string(), Clock { start: std::time::Instant::now() });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stopping = std::time::Instant::now();
        assert_eq!(sampler.finish().await, vec![]);
        assert!(stopping.elapsed() < LAST_READING_TIMEOUT + Duration::from_secs(1), "{:?}", stopping.elapsed());
    }

    #[test]
    fn no_figures_without_readings_around_every_phase_or_without_any_compaction() {
        assert_eq!(EngineCycle::of(&[], &times()), None);
        assert_eq!(EngineCycle::of(&[sample(5, &[(1, 0)]), sample(100, &[(1, 50)])], &times()), None, "nothing brackets the after window");
        assert_eq!(EngineCycle::of(&run(&[1, 2], |_, _| 0), &times()), None, "a cluster that does not report compaction");
    }
}
