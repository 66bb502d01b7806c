//! Dropping a partition by retiring it: O(1) now, the engine's compactions
//! remove the data later.
//!
//! Deleting a partition key by key (what a drop did before) writes a
//! tombstone for every record, index entry and change-log entry: for a
//! 1M-key cluster's rebalance a quarter of a million deletions through the
//! journal, memtables and flushes, on the nodes still serving clients, and
//! every one of them compacted again later. It was the longest phase of a
//! rebalance and the one where client latency rose most.
//!
//! Retiring instead (the approach of TiKV's and CockroachDB's range
//! deletion, done with fjall's compaction filters):
//! - [`Store::retire`] writes one durable marker (`retired/<partition>`) and
//!   the log floor in one batch, and zeroes the partition's counters. From
//!   then on the partition reads as empty here: the recovery scan skips its
//!   records, and reads, scans, snapshots and checksum scans of it return
//!   nothing.
//! - [`RetiredFilter`] is installed on the `data`, `log`, `expiring` and
//!   `tombstones` keyspaces. Whenever a compaction rewrites a table it turns
//!   every item of a retired partition into a tombstone, which the last
//!   level drops. The disk space comes back as compactions run, as it did
//!   for key-by-key deletes.
//! - [`Store::drop_retired_tables`], run in the background after a drop,
//!   hands whole engine tables that hold nothing but the partition's items
//!   to lsm-tree's `drop_range`, which deletes their files at once. A large
//!   partition's disk space then comes back without waiting for (or
//!   rewriting in) a compaction; small ones share tables with their
//!   neighbours and wait for the filter.
//! - Before the partition is written again (an import of it, or anything
//!   else that writes under its lock) [`Store::revive`] deletes what is
//!   still there key by key (records, index entries, change-log entries
//!   below the floor) and only then removes the marker. Without that a key
//!   deleted elsewhere meanwhile, or one whose copy here carries the same
//!   version as the import's, would come back or be miscounted. A
//!   partition moved back soon after it left pays this cost; the usual
//!   drop does not.
//!
//! - The marker stays until the partition is revived, even once compactions
//!   have removed every item. fjall (3.1) replays at open every journal
//!   batch newer than a keyspace's highest *persisted* seqno, and that comes
//!   from its tables: after a compaction that removed the items (and
//!   rewrote the tables, or left none), the journal's older batches of the
//!   partition's writes, if the journal is still there, are replayed and
//!   the items are back in the engine. Measured: 30 records, 40 log
//!   entries and 30 index entries compacted away, all back after a reopen.
//!   The marker keeps them hidden and for the filter to remove again, and a
//!   revive deletes them; a marker cleared because the range read empty
//!   would have let them resurrect. The count of retired partitions is each
//!   node's `retired_partitions` (`Store::retired_partitions`).
//!
//! Why the filter never removes a live item: it reads the flag per item,
//! and the flag goes down only after `revive` has written tombstones over
//! every stale item, before any new write of the partition exists. An item
//! it sees while the flag is up is therefore stale; an item it keeps once
//! the flag is down is stale only if a newer tombstone shadows it.

use super::{PartitionCounters, Store, StoreError, index, log_key};
use evenkeel_types::PartitionId;
use evenkeel_types::slot::slot_partition;
use fjall::compaction::filter::{CompactionFilter, CompactionFilterResult, Context, Factory, ItemAccessor, Verdict};
use fjall::{AbstractTree, Keyspace};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Records (with their index entries) or change-log entries deleted per
/// batch while reviving a partition.
const REVIVE_BATCH: usize = 1024;

/// Which partitions are retired: shared between the store and the
/// compaction filters of its keyspaces.
pub(super) struct Retired {
    flags: Vec<AtomicBool>,
    num_partitions: u16,
}

impl Retired {
    pub(super) fn new(num_partitions: u16) -> Arc<Self> {
        Arc::new(Retired { flags: (0..num_partitions).map(|_| AtomicBool::new(false)).collect(), num_partitions })
    }

    pub(super) fn is(&self, partition: PartitionId) -> bool {
        self.flags.get(partition as usize).is_some_and(|f| f.load(Ordering::Acquire))
    }

    fn count(&self) -> usize {
        self.flags.iter().filter(|f| f.load(Ordering::Acquire)).count()
    }

    fn set(&self, partition: PartitionId, retired: bool) {
        self.flags[partition as usize].store(retired, Ordering::Release);
    }

    /// The compaction filter factory for `keyspace`, by how its keys name
    /// their partition; None for keyspaces that hold no partition's items.
    pub(super) fn factory(self: &Arc<Self>, keyspace: &str) -> Option<Arc<dyn Factory>> {
        let layout = match keyspace {
            "data" => KeyLayout::Slot,
            "log" | "expiring" | "tombstones" => KeyLayout::Partition,
            _ => return None,
        };
        Some(Arc::new(RetiredFilter { retired: self.clone(), layout }))
    }

    fn partition_of(&self, layout: KeyLayout, key: &[u8]) -> Option<PartitionId> {
        let prefix = u16::from_be_bytes(key.get(..2)?.try_into().ok()?);
        match layout {
            KeyLayout::Slot => Some(slot_partition(prefix, self.num_partitions)),
            KeyLayout::Partition => Some(prefix),
        }
    }
}

/// How a keyspace's keys begin.
#[derive(Debug, Clone, Copy)]
enum KeyLayout {
    /// `slot:u16be ++ …` (`data`).
    Slot,
    /// `partition:u16be ++ …` (`log` and the time indexes).
    Partition,
}

/// Removes the items of retired partitions when a compaction rewrites them.
pub(super) struct RetiredFilter {
    retired: Arc<Retired>,
    layout: KeyLayout,
}

impl Factory for RetiredFilter {
    fn name(&self) -> &str {
        "evenkeel-retired-partitions"
    }

    fn make_filter(&self, _: &Context) -> Box<dyn CompactionFilter> {
        Box::new(RetiredFilter { retired: self.retired.clone(), layout: self.layout })
    }
}

impl CompactionFilter for RetiredFilter {
    fn filter_item(&mut self, item: ItemAccessor<'_>, _: &Context) -> CompactionFilterResult {
        // A tombstone, not `Destroy`: an older version of the key in a
        // level this compaction does not touch must not show through.
        let retired = self.retired.partition_of(self.layout, item.key()).is_some_and(|p| self.retired.is(p));
        Ok(if retired { Verdict::Remove } else { Verdict::Keep })
    }
}

impl Store {
    /// Drops `partition` here: from now on it holds nothing, and
    /// compactions remove its records, index entries and change log (see
    /// the module docs). Returns how many records and change-log entries it
    /// held; 0 if there was nothing to drop or it was already retired.
    /// Change-log positions stay used: the floor is written with the
    /// marker, so a later import's log never reuses one.
    pub fn retire(&self, partition: PartitionId) -> Result<u64, StoreError> {
        let mut counters = self.lock_partition(partition)?;
        let c = *counters;
        let held = c.keys + c.tombstones + (c.log_next - c.log_first);
        if self.retired.is(partition) || held == 0 {
            return Ok(0);
        }
        let mut batch = self.db.batch();
        batch.insert(&self.meta, retired_key(partition), c.log_next.to_be_bytes());
        batch.insert(&self.meta, super::log_floor_key(partition), c.log_next.to_be_bytes());
        batch.commit()?;
        self.retired.set(partition, true);
        self.rows.forget_partition(partition);
        *counters = PartitionCounters { log_first: c.log_next, log_next: c.log_next, ..PartitionCounters::default() };
        tracing::info!(partition, records = c.keys + c.tombstones, log_entries = c.log_next - c.log_first, "partition retired; compactions remove its data");
        Ok(held)
    }

    /// Deletes the engine tables of every keyspace that hold only items of
    /// the retired `partition`, without rewriting anything (lsm-tree's
    /// `drop_range`). Returns how many tables it dropped. Does nothing once
    /// the partition has been revived.
    ///
    /// Runs under the partition's lock: a revive waits for it, so no table
    /// holding the revival's tombstones or a newer write can be chosen. A
    /// table wholly inside the partition's range holds only its stale items
    /// (nothing writes a retired partition), tombstones included, which
    /// shadow only older stale items. `drop_range` is called only where
    /// such a table exists: with none it still rewrites and fsyncs the
    /// tree's version under the lock every read takes.
    pub fn drop_retired_tables(&self, partition: PartitionId) -> Result<usize, StoreError> {
        let _counters = self.lock_partition(partition)?;
        if !self.retired.is(partition) {
            return Ok(0);
        }
        let (start, end) = self.partition_range(partition)?;
        let next = partition.checked_add(1).map_or_else(|| vec![0xff; 3], |n| n.to_be_bytes().to_vec());
        let prefix = (partition.to_be_bytes().to_vec(), next);
        let mut dropped = 0;
        for (ks, (lo, hi)) in [(&self.data, (start, end)), (&self.log, prefix.clone()), (&self.expiring.keys, prefix.clone()), (&self.tombstones.keys, prefix)] {
            let inside = whole_tables_inside(ks, &lo, &hi);
            if inside > 0 {
                ks.tree.drop_range(lo..hi).map_err(fjall::Error::from)?;
                dropped += inside;
            }
        }
        if dropped > 0 {
            tracing::info!(partition, tables = dropped, "retired partition's own tables deleted");
        }
        Ok(dropped)
    }

    /// Whether `partition` is retired: it reads as empty, and its items
    /// wait for compaction or [`Self::revive`].
    pub fn is_retired(&self, partition: PartitionId) -> bool {
        self.retired.is(partition)
    }

    /// How many partitions are retired here (dropped and not revived).
    pub fn retired_partitions(&self) -> usize {
        self.retired.count()
    }

    /// Makes a retired `partition` writable again: deletes whatever of its
    /// old records, index entries and change-log entries compaction has not
    /// removed yet, then removes the marker. The caller holds the
    /// partition's lock (`counters`), so nothing writes the partition
    /// meanwhile. Does nothing if the partition is not retired.
    pub(super) fn revive(&self, partition: PartitionId, counters: &PartitionCounters) -> Result<(), StoreError> {
        if !self.retired.is(partition) {
            return Ok(());
        }
        // Before the marker goes: a read that finds the partition live
        // again must not take an entry cached before it was retired.
        self.rows.forget_partition(partition);
        let started = std::time::Instant::now();
        let (start, end) = self.partition_range(partition)?;
        let mut from = Bound::Included(start);
        let mut removed = 0;
        loop {
            let mut batch = self.db.batch();
            let mut last = None;
            for kv in self.data.range((from.clone(), Bound::Excluded(end.clone()))).take(REVIVE_BATCH) {
                let (k, v) = kv.into_inner()?;
                let r = super::decode_record(&v)?;
                for (index, at) in self.index_entries(&r) {
                    batch.remove(&index.keys, index::key(partition, at, &k));
                }
                batch.remove(&self.data, k.clone());
                last = Some(k);
            }
            let Some(k) = last else { break };
            removed += batch.len();
            batch.commit()?;
            from = Bound::Excluded(k.to_vec());
        }
        // Change-log entries below the floor: every one of the partition's,
        // since retiring left it empty. Keys only; each batch starts past
        // the previous one's last key.
        let mut from = log_key(partition, 0).to_vec();
        let floor = log_key(partition, counters.log_first);
        loop {
            let mut batch = self.db.batch();
            let mut last = None;
            for k in self.log.range(from.clone()..floor.to_vec()).take(REVIVE_BATCH) {
                let k = k.key()?;
                batch.remove(&self.log, k.clone());
                last = Some(k);
            }
            let Some(k) = last else { break };
            removed += batch.len();
            batch.commit()?;
            from = [&k[..], &[0]].concat();
        }
        self.meta.remove(retired_key(partition))?;
        self.retired.set(partition, false);
        tracing::info!(partition, removed, took_ms = started.elapsed().as_millis() as u64, "retired partition revived: removed what compaction had not");
        Ok(())
    }

    /// Reads the retired markers (before the recovery scan, which skips
    /// retired partitions' records).
    pub(super) fn recover_retired(&self) -> Result<(), StoreError> {
        for p in self.partitions_under(RETIRED_PREFIX, "retired marker")? {
            self.retired.set(p, true);
        }
        Ok(())
    }
}

/// Tables of `ks` whose keys all lie in `[lo, hi)`.
fn whole_tables_inside(ks: &Keyspace, lo: &[u8], hi: &[u8]) -> usize {
    let version = ks.tree.current_version();
    version
        .iter_tables()
        .filter(|t| {
            let range = &t.metadata.key_range;
            range.min().as_ref() >= lo && range.max().as_ref() < hi
        })
        .count()
}

const RETIRED_PREFIX: &[u8] = b"retired/";

fn retired_key(partition: PartitionId) -> Vec<u8> {
    super::partition_meta_key(RETIRED_PREFIX, partition)
}
