//! Per-partition time indexes and the bounded passes over them.
//!
//! Two keyspaces share one layout, `partition:u16be ++ at_ms:u64be ++
//! slot:u16be ++ key` → empty:
//! - `expiring`: every record holding a value with an expiry, at its expiry
//!   time. The expiry sweeper reads what is due.
//! - `tombstones`: every tombstone, at its version's wall-clock time. Tombstone
//!   collection reads what is older than the grace period.
//!
//! Both are exact: an entry exists exactly while the data record it names is
//! such a record with that time, because [`Store::commit`] changes entries
//! in the same atomic batch as the record (a retired partition's entries
//! go with its records: compaction or `Store::revive` removes both). The partition comes first so a pass reads only partitions it may
//! act on: entries of a partition this node imports or has just handed over
//! (which must stay, see the store's invariants) sit in their own range and
//! never stand in front of an owned partition's.
//!
//! A pass visits partitions round robin from where the previous one ran out
//! of budget, so one partition with much to do cannot keep the others
//! waiting, and skips a partition without reading when its `earliest` bound
//! says nothing is due.

use super::{PartitionCounters, Store, StoreError};
use evenkeel_types::PartitionId;
use fjall::Keyspace;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One index, with what its passes remember.
pub(super) struct TimeIndex {
    pub(super) keys: Keyspace,
    /// Entries a pass handles under one hold of a partition's lock. Client
    /// writes to the partition wait for the hold (blocking a runtime worker,
    /// and past `inline::STUCK_AFTER` sending the node's writes to its
    /// writer thread), so it stays well under a millisecond.
    hold_max: usize,
    /// Per partition, a time no entry is earlier than (0: unknown, so the
    /// first pass reads it). Lowered by every insert and set from a fresh
    /// read only under the partition's lock, so a pass that skips a
    /// partition because of it skips nothing due.
    earliest: Vec<AtomicU64>,
    /// The partition the next pass starts at.
    next_partition: AtomicUsize,
}

/// One index entry: its time and the data key it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub at_ms: u64,
    pub data_key: Vec<u8>,
}

impl TimeIndex {
    pub(super) fn new(keys: Keyspace, num_partitions: u16, hold_max: usize) -> Self {
        let earliest = (0..num_partitions).map(|_| AtomicU64::new(0)).collect();
        TimeIndex { keys, hold_max: hold_max.max(1), earliest, next_partition: AtomicUsize::new(0) }
    }

    /// Notes an entry at `at_ms` just committed; the caller holds the
    /// partition's lock.
    pub(super) fn noted(&self, partition: PartitionId, at_ms: u64) {
        self.earliest[partition as usize].fetch_min(at_ms, Ordering::AcqRel);
    }

    /// Up to `max` entries of `partition` earlier than `until_ms`, oldest
    /// first.
    pub(super) fn due(&self, partition: PartitionId, until_ms: u64, max: usize) -> Result<Vec<Entry>, StoreError> {
        let range = key(partition, 0, &[])..key(partition, until_ms, &[]);
        self.keys.range(range).take(max).map(|kv| decode(&kv.key()?)).collect()
    }

    /// Sets the partition's bound from its first entry; the caller holds
    /// the partition's lock, so no insert can slip under it.
    fn settle(&self, partition: PartitionId) -> Result<(), StoreError> {
        let first = self.keys.prefix(partition.to_be_bytes()).next().map(|kv| kv.key().map_err(StoreError::from).and_then(|k| decode(&k))).transpose()?;
        self.earliest[partition as usize].store(first.map_or(u64::MAX, |e| e.at_ms), Ordering::Release);
        Ok(())
    }

    /// Notes that nothing in `partition` is due, whatever its entries: the
    /// partition is retired, so they are stale (compaction removes them,
    /// or `Store::revive` before the partition is written again, and that
    /// write's [`Self::noted`] lowers the bound). The caller holds the
    /// partition's lock. Without it a retired partition's stale entries
    /// kept the bound low and cost every pass a unit of its budget.
    fn retired(&self, partition: PartitionId) {
        self.earliest[partition as usize].store(u64::MAX, Ordering::Release);
    }

    fn may_have_due(&self, partition: PartitionId, until_ms: u64) -> bool {
        self.earliest[partition as usize].load(Ordering::Acquire) < until_ms
    }
}

/// The index key of `data_key` (`slot ++ key`) at `at_ms`.
pub(super) fn key(partition: PartitionId, at_ms: u64, data_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + data_key.len());
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(data_key);
    k
}

fn decode(k: &[u8]) -> Result<Entry, StoreError> {
    let at: [u8; 8] = k.get(2..10).and_then(|s| s.try_into().ok()).ok_or_else(|| StoreError::Corrupt("index key".into()))?;
    if k.len() < 12 {
        return Err(StoreError::Corrupt("index key without a data key".into()));
    }
    Ok(Entry { at_ms: u64::from_be_bytes(at), data_key: k[10..].to_vec() })
}

/// What a pass does with a batch of one partition's due entries, holding
/// the partition's lock: returns how many it acted on. It must remove every
/// entry it is given (or the pass reads them again).
pub(super) type Visit<'a> = dyn FnMut(PartitionId, &mut PartitionCounters, &[Entry]) -> Result<usize, StoreError> + 'a;

impl Store {
    /// Visits the entries of `index` earlier than `until_ms` in partitions
    /// `eligible` accepts, reading at most `max_examined` of them (a visited
    /// partition counts at least one). `eligible` is asked again under the
    /// partition's lock before each batch. Returns the sum of `visit`s.
    pub(super) fn index_pass(&self, index: &TimeIndex, until_ms: u64, max_examined: usize, eligible: &dyn Fn(PartitionId) -> bool, visit: &mut Visit) -> Result<usize, StoreError> {
        let n = self.num_partitions() as usize;
        let start = index.next_partition.load(Ordering::Relaxed) % n;
        let mut left = max_examined.max(1);
        let mut done = 0;
        for p in (start..n).chain(0..start) {
            if left == 0 {
                // The next pass starts after the partition that used it up.
                index.next_partition.store(p, Ordering::Relaxed);
                break;
            }
            let p = p as PartitionId;
            if !index.may_have_due(p, until_ms) || !eligible(p) {
                continue;
            }
            let (acted, examined) = self.pass_partition(index, p, until_ms, left, eligible, visit)?;
            done += acted;
            left -= examined.min(left);
        }
        Ok(done)
    }

    /// One partition's share of a pass, in batches of `hold_max` under its
    /// lock (released between batches so client writes interleave). Returns what `visit` acted on and the entries examined.
    fn pass_partition(&self, index: &TimeIndex, p: PartitionId, until_ms: u64, left: usize, eligible: &dyn Fn(PartitionId) -> bool, visit: &mut Visit) -> Result<(usize, usize), StoreError> {
        let (mut acted, mut examined) = (0, 0);
        while examined < left {
            let mut counters = self.lock_partition(p)?;
            if !eligible(p) {
                break;
            }
            // A retired partition's entries are stale: compaction removes
            // them, or `revive` before the partition is written again.
            if self.retired.is(p) {
                index.retired(p);
                break;
            }
            let want = (left - examined).min(index.hold_max);
            let due = index.due(p, until_ms, want)?;
            examined += due.len().max(1);
            acted += visit(p, &mut counters, &due)?;
            if due.len() < want {
                index.settle(p)?;
                break;
            }
        }
        Ok((acted, examined.max(1)))
    }
}
