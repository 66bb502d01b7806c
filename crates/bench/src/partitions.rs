//! Whose requests a rebalance slowed: those to the partitions it was moving,
//! or everyone's.
//!
//! A request to a partition that is being moved takes a longer path than
//! one to a partition left alone: dual writes and copy-on-read pushes to the
//! destination, fences and refusals at cutover, a new owner with a cold
//! engine. Work that every request shares (the copy's CPU, the machine's
//! scheduling, the routing-table changes) slows both alike. The split
//! compares the p99 of the two groups over the same "during" window, so a
//! slow stretch of the machine weighs on both: when the moving partitions'
//! requests are no slower than the rest, the path is not where the cost is.
//!
//! A request counts as *moving* when the partition of the (first) key it
//! names had a move in flight at the request's intended send time, from
//! the move's start to its end (its bake and cleanup included: the new
//! owner serves it then, and the old one still captures its changes).
//! Measured on the 2-core test machine (`SAMPLES=1` acceptance run, split
//! in 5 s steps by a script): both groups had the same p99 in every step
//! (for example 1,225 against 1,146 µs, then 386 against 373 µs).

use crate::history::Micros;
use crate::migrations::MigrationWindow;
use crate::recorder::Sample;
use crate::report::{fmt_ratio, fmt_us};
use crate::stats::{new_histogram, ratio, record};
use evenkeel_types::slot::key_partition;
use serde::{Deserialize, Serialize};

/// Fewer requests than this in either group and the split is not made: a
/// p99 of fewer is its one or two slowest requests.
pub const MIN_REQUESTS: u64 = 1_000;

/// One group's requests in the window and their p99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub requests: u64,
    pub p99_us: u64,
}

/// The "during" window's requests, split by whether their partition was
/// being moved when they were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSplit {
    pub moving: Group,
    pub rest: Group,
}

impl PartitionSplit {
    /// Splits the requests intended in `[start, end)` (run-relative µs);
    /// `None` without moves or when a group has fewer than
    /// [`MIN_REQUESTS`].
    pub fn of(samples: &[Sample], moves: &[MigrationWindow], num_partitions: u16, (start, end): (Micros, Micros)) -> Option<PartitionSplit> {
        if moves.is_empty() || num_partitions == 0 {
            return None;
        }
        // Each partition's moves as run-relative µs intervals; a move still
        // running when the run ended stays open.
        let mut in_flight: Vec<Vec<(Micros, Micros)>> = vec![Vec::new(); num_partitions as usize];
        for m in moves {
            let us = |s: f64| (s.max(0.0) * 1e6) as Micros;
            if let Some(slot) = in_flight.get_mut(m.partition as usize) {
                slot.push((us(m.start_s), m.end_s.map_or(Micros::MAX, us)));
            }
        }
        let (mut moving, mut rest) = (new_histogram(), new_histogram());
        let mut partition_of = std::collections::HashMap::new();
        for s in samples.iter().filter(|s| (start..end).contains(&s.intended)) {
            let p = *partition_of.entry(s.key).or_insert_with(|| key_partition(s.key.name().as_bytes(), num_partitions));
            let moved = in_flight[p as usize].iter().any(|&(from, to)| (from..to).contains(&s.intended));
            record(if moved { &mut moving } else { &mut rest }, s.latency());
        }
        let group = |h: &hdrhistogram::Histogram<u64>| Group { requests: h.len(), p99_us: h.value_at_quantile(0.99) };
        let split = PartitionSplit { moving: group(&moving), rest: group(&rest) };
        (split.moving.requests >= MIN_REQUESTS && split.rest.requests >= MIN_REQUESTS).then_some(split)
    }

    /// The moving partitions' p99 over the rest's; `None` when the rest's
    /// is 0.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.moving.p99_us as f64, self.rest.p99_us as f64)
    }

    /// `requests to moving partitions p99 810 µs (75,284), the rest 734 µs
    /// (328,063): 1.10x`, and what it means when one side stands out.
    pub fn describe(&self, budget_ratio: f64) -> String {
        let r = self.ratio();
        let verdict = match r {
            None => "",
            Some(r) if r > budget_ratio => {
                "; the moving partitions' path (dual writes, forwards, fences, the new owner) cost their requests more than the rest"
            }
            Some(r) if r >= 1.0 / budget_ratio => "; alike: what the rebalance cost, it cost every request, not the moving partitions' path",
            Some(_) => "; the rest were slower: the moving partitions' requests were not what the rebalance slowed",
        };
        format!(
            "requests to moving partitions p99 {} ({}), the rest {} ({}): {}{verdict}",
            fmt_us(self.moving.p99_us),
            self.moving.requests,
            fmt_us(self.rest.p99_us),
            self.rest.requests,
            fmt_ratio(r)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cmd;
    use crate::history::{Key, Outcome};

    const PARTITIONS: u16 = 16;

    fn key_in(partition: u16, skip: usize) -> Key {
        (0..).map(Key::Data).filter(|k| key_partition(k.name().as_bytes(), PARTITIONS) == partition).nth(skip).unwrap()
    }

    fn sample(intended: Micros, latency: Micros, key: Key) -> Sample {
        Sample { intended, invoke: intended, complete: intended + latency, cmd: Cmd::Get, outcome: Outcome::Ok, conn: 0, key }
    }

    fn moving(partition: u16, start_s: f64, end_s: Option<f64>) -> MigrationWindow {
        MigrationWindow { id: format!("p{partition}"), partition, source: 1, target: 2, state: "DONE".into(), start_s, end_s, cutover_s: None, copy_s: None, completed_s: None, cleanup_s: None, bytes_copied: 0, keys_copied: 0, cutover_pause_ms: None, copies: 1 }
    }

    /// 2,000 requests a second for `seconds` from `from_s`, alternating
    /// between a key of partition 3 and one of partition 5; those to
    /// partition 3 take `slow` µs, the others 100.
    fn load(from_s: u64, seconds: u64, slow: Micros) -> Vec<Sample> {
        let (a, b) = (key_in(3, 0), key_in(5, 0));
        (0..seconds * 2_000).map(|i| from_s * 1_000_000 + i * 500).enumerate().map(|(i, t)| if i % 2 == 0 { sample(t, slow, a) } else { sample(t, 100, b) }).collect()
    }

    #[test]
    fn a_slow_path_on_the_moving_partition_shows_against_the_rest() {
        let samples = load(10, 4, 900);
        let split = PartitionSplit::of(&samples, &[moving(3, 9.0, Some(20.0))], PARTITIONS, (10_000_000, 14_000_000)).unwrap();
        assert_eq!((split.moving.requests, split.rest.requests), (4_000, 4_000));
        assert!(split.moving.p99_us >= 895 && split.rest.p99_us <= 101, "{split:?}");
        assert!(split.describe(1.10).contains("path (dual writes"), "{}", split.describe(1.10));
    }

    #[test]
    fn only_requests_sent_while_the_move_was_in_flight_count_as_moving() {
        // Partition 3's move ran from 12 s to 13 s; the window is 10-14 s.
        let samples = load(10, 4, 100);
        let split = PartitionSplit::of(&samples, &[moving(3, 12.0, Some(13.0))], PARTITIONS, (10_000_000, 14_000_000)).unwrap();
        assert_eq!((split.moving.requests, split.rest.requests), (1_000, 7_000));
        assert!(split.describe(1.10).contains("alike"), "{}", split.describe(1.10));
        // A move still running when the run ended counts to the end.
        let open = PartitionSplit::of(&samples, &[moving(3, 12.0, None)], PARTITIONS, (10_000_000, 14_000_000)).unwrap();
        assert_eq!(open.moving.requests, 2_000);
    }

    #[test]
    fn requests_outside_the_window_are_left_out() {
        let samples = load(10, 4, 900);
        let split = PartitionSplit::of(&samples, &[moving(3, 0.0, None)], PARTITIONS, (11_000_000, 13_000_000)).unwrap();
        assert_eq!(split.moving.requests + split.rest.requests, 4_000);
    }

    #[test]
    fn no_split_without_moves_or_with_too_few_requests_in_a_group() {
        let samples = load(10, 4, 900);
        let window = (10_000_000, 14_000_000);
        assert_eq!(PartitionSplit::of(&samples, &[], PARTITIONS, window), None);
        // A move of a partition nobody asked for leaves "moving" empty.
        assert_eq!(PartitionSplit::of(&samples, &[moving(7, 0.0, None)], PARTITIONS, window), None);
        // 500 requests to the moving partition: too few for a p99.
        assert_eq!(PartitionSplit::of(&samples, &[moving(3, 10.0, Some(10.5))], PARTITIONS, window), None);
    }
}
