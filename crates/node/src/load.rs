//! Per-partition request counts: what each partition costs its owner in
//! client traffic.
//!
//! Each op a client sent and this node answered counts once on its
//! partition, as a read (an op that changes nothing) or a write. The counts
//! are cumulative since the node started and travel in `Stats`; the
//! coordinator takes rates from successive samples. It needs them to pick
//! partitions by load: the quietest go first in a staged rebalance, so a
//! canary puts the fewest clients at risk. Ops refused (not owned, fenced,
//! overloaded) are not counted: they were not served here. Records a
//! migration forwards or applies are not client ops and are not counted
//! either.
//!
//! One relaxed atomic add per op. Two counters per partition of the
//! cluster: 4 KiB at the default 128 partitions, 256 KiB at the most
//! (16,384, one per hash slot).

use evenkeel_types::PartitionId;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads and writes served, per partition.
pub struct OpCounts {
    reads: Box<[AtomicU64]>,
    writes: Box<[AtomicU64]>,
}

impl OpCounts {
    pub fn new(partitions: u16) -> Self {
        let table = || (0..partitions).map(|_| AtomicU64::new(0)).collect();
        OpCounts { reads: table(), writes: table() }
    }

    /// Counts one op answered on `partition` (ignored past the table: the
    /// store refuses such an op before it is answered).
    pub fn record(&self, partition: PartitionId, write: bool) {
        let table = if write { &self.writes } else { &self.reads };
        if let Some(c) = table.get(partition as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(reads, writes)` served on `partition` since the node started.
    pub fn get(&self, partition: PartitionId) -> (u64, u64) {
        let read = |t: &[AtomicU64]| t.get(partition as usize).map_or(0, |c| c.load(Ordering::Relaxed));
        (read(&self.reads), read(&self.writes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_count_on_their_own_partition_by_kind() {
        let c = OpCounts::new(4);
        c.record(1, false);
        c.record(1, false);
        c.record(1, true);
        c.record(3, true);
        c.record(9, true);
        assert_eq!(c.get(0), (0, 0));
        assert_eq!(c.get(1), (2, 1));
        assert_eq!(c.get(3), (0, 1));
        assert_eq!(c.get(9), (0, 0), "past the table: nothing");
    }
}
