//! Per-partition load: client ops per second on each partition, smoothed.
//!
//! Nodes count the ops they answer per partition (`evenkeel_node::load`) and
//! report the cumulative counts in `Stats`. Every poll feeds the owner's
//! counts here; the rate between two samples of the same owner updates an
//! exponentially weighted average with a time constant of [`TAU_MS`], so one
//! busy second does not make a partition hot, and a partition that turned
//! quiet reads quiet within a few minutes. The estimate belongs to the
//! partition, not to its owner: when the partition moves (a sample from
//! another owner), or its owner restarts (counts go back), the next sample
//! starts a new baseline and the estimate is kept until a rate can be taken
//! again. A poll the owner did not answer changes nothing.
//!
//! Used to pick partitions by load (`crate::stages`: the quietest moves
//! first, so a canary puts the fewest clients at risk), shown by `cluster
//! partitions`, the dashboard and `/metrics`. In memory: a new leader
//! starts without estimates, and until its second poll every partition
//! reads 0 (stages then order by size alone, as before loads were known).

use evenkeel_types::{NodeId, PartitionId};
use std::collections::HashMap;

/// The average's time constant: a step change in load is 63% reflected
/// after this long.
pub const TAU_MS: f64 = 60_000.0;

/// A partition's estimated client load.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub reads_per_s: f64,
    pub writes_per_s: f64,
}

impl Rates {
    pub fn ops_per_s(&self) -> f64 {
        self.reads_per_s + self.writes_per_s
    }
}

#[derive(Debug)]
struct Track {
    owner: NodeId,
    reads: u64,
    writes: u64,
    at_ms: u64,
    rates: Option<Rates>,
}

/// Every partition's baseline sample and estimate.
#[derive(Debug, Default)]
pub struct LoadTracker {
    parts: HashMap<PartitionId, Track>,
}

impl LoadTracker {
    /// Feeds the `(reads, writes)` counts `owner` reported for `partition`
    /// at `now_ms` (None: no sample this time) and returns the estimate
    /// (zero while none is known).
    pub fn observe(&mut self, partition: PartitionId, owner: NodeId, sample: Option<(u64, u64)>, now_ms: u64) -> Rates {
        let Some((reads, writes)) = sample else {
            return self.parts.get(&partition).and_then(|t| t.rates).unwrap_or_default();
        };
        let t = self.parts.entry(partition).or_insert(Track { owner, reads, writes, at_ms: now_ms, rates: None });
        let same_run = t.owner == owner && reads >= t.reads && writes >= t.writes;
        if same_run && now_ms > t.at_ms {
            let dt_ms = (now_ms - t.at_ms) as f64;
            let now = Rates { reads_per_s: (reads - t.reads) as f64 * 1000.0 / dt_ms, writes_per_s: (writes - t.writes) as f64 * 1000.0 / dt_ms };
            t.rates = Some(match t.rates {
                None => now,
                Some(old) => {
                    let alpha = 1.0 - (-dt_ms / TAU_MS).exp();
                    Rates {
                        reads_per_s: old.reads_per_s + alpha * (now.reads_per_s - old.reads_per_s),
                        writes_per_s: old.writes_per_s + alpha * (now.writes_per_s - old.writes_per_s),
                    }
                }
            });
        }
        if !same_run || now_ms > t.at_ms {
            (t.owner, t.reads, t.writes, t.at_ms) = (owner, reads, writes, now_ms);
        }
        t.rates.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    #[test]
    fn the_first_rate_is_taken_as_is_then_averaged() {
        let mut l = LoadTracker::default();
        assert_eq!(l.observe(7, 1, Some((0, 0)), 10 * S), Rates::default(), "one sample has no rate");
        let r = l.observe(7, 1, Some((300, 100)), 11 * S);
        assert_eq!(r, Rates { reads_per_s: 300.0, writes_per_s: 100.0 });
        // Then nothing for a second: the average moves by 1 - e^(-1/60).
        let r = l.observe(7, 1, Some((300, 100)), 12 * S);
        let alpha = 1.0 - (-1.0f64 / 60.0).exp();
        assert!((r.reads_per_s - 300.0 * (1.0 - alpha)).abs() < 1e-9, "{r:?}");
        assert!((r.ops_per_s() - 400.0 * (1.0 - alpha)).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn a_steady_load_converges_and_a_busy_second_moves_it_little() {
        let mut l = LoadTracker::default();
        let (mut total, mut r) = (0, Rates::default());
        l.observe(1, 1, Some((0, 0)), 0);
        for s in 1..=600 {
            // 50 ops/s, but the first measured second had 1000.
            total += if s == 1 { 1000 } else { 50 };
            r = l.observe(1, 1, Some((total, 0)), s * S);
        }
        // Ten time constants: the first second's excess of 950 is down to
        // 950·e⁻¹⁰ ≈ 0.04.
        assert!((r.reads_per_s - 50.0).abs() < 0.05, "after ten minutes at 50 ops/s: {r:?}");
        total += 5000;
        let r = l.observe(1, 1, Some((total, 0)), 601 * S);
        assert!(r.reads_per_s < 50.0 + 5000.0 / 59.0, "one busy second moves it by about a sixtieth: {r:?}");
    }

    #[test]
    fn a_move_or_a_restart_starts_a_new_baseline_and_keeps_the_estimate() {
        let mut l = LoadTracker::default();
        l.observe(3, 1, Some((1000, 0)), 0);
        l.observe(3, 1, Some((1100, 0)), S);
        // The partition moved to node 2, whose counts are its own.
        assert_eq!(l.observe(3, 2, Some((5, 0)), 2 * S).reads_per_s, 100.0, "estimate kept, no rate from another node's counts");
        let r = l.observe(3, 2, Some((105, 0)), 3 * S);
        assert!((r.reads_per_s - 100.0).abs() < 1e-9, "then rates from node 2: {r:?}");
        // Node 2 restarted: its counts went back.
        assert!((l.observe(3, 2, Some((0, 0)), 4 * S).reads_per_s - 100.0).abs() < 1e-9);
        // No sample (the owner did not answer): nothing changes, and the
        // next sample is measured from the last one taken.
        assert!((l.observe(3, 2, None, 5 * S).reads_per_s - 100.0).abs() < 1e-9);
        let r = l.observe(3, 2, Some((200, 0)), 6 * S);
        assert!((r.reads_per_s - 100.0).abs() < 1e-9, "200 ops over the two seconds since the restart: {r:?}");
        assert_eq!(l.observe(9, 1, None, 0), Rates::default(), "unknown partition");
    }

    #[test]
    fn a_second_sample_at_the_same_instant_changes_nothing() {
        let mut l = LoadTracker::default();
        l.observe(0, 1, Some((0, 0)), S);
        l.observe(0, 1, Some((10, 0)), S);
        let r = l.observe(0, 1, Some((20, 0)), 2 * S);
        assert_eq!(r.reads_per_s, 20.0);
    }
}
