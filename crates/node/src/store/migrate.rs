//! The store's side of moving a partition: what a migration reads from the
//! source and writes to the destination.
//!
//! - [`Store::snapshot_chunk`]: records of a partition in key order from a
//!   resume cursor, tombstones included (a destination must learn deletions
//!   too), bounded by keys and bytes.
//! - [`Store::read_log`]: change-log entries from a position; says so when
//!   the position has been trimmed away, so the orchestrator re-copies.
//! - [`Store::apply`]: idempotent versioned apply: a record is written only
//!   if newer than what is stored, so snapshot, change log, dual-writes and
//!   copy-on-read may arrive in any order and still converge. Applied records
//!   are copies and stay out of this node's change log (`Log::Skip`): the
//!   log holds the writes this node served, which is what reverse capture
//!   reads.
//! - [`Store::apply_forwarded`] and [`Store::shadow_read`]: what routers
//!   send a destination while the partition moves (dual-write and
//!   copy-on-read records, shadow reads), accepted only while the import
//!   is open: [`Store::close_import`] (the first drop) ends it for good.
//! - [`Store::checksum`]: an order-independent digest of the live records.
//! - [`Store::retire`] (in `retire`): drops a partition in O(1); the
//!   engine's compactions remove its items.

use super::rows::PageFill;
use super::{Log, PartitionCounters, PartitionLock, Store, StoreError, data_key, decode_record, fenced_key, import_closed_key, log_key, log_position, stored_digest, token_key};
use crate::priority::Boost;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use evenkeel_types::slot::slot_partition;
use evenkeel_types::{PartitionId, Record, Slot};

/// Fewest keys in order for which [`Store::stored_records`] reads a range
/// rather than each key.
const RANGE_READ_MIN: usize = 4;
/// Entries of keys already covered a log page passes over at most
/// ([`Store::read_log`]): a few MB of reading, however hot the key.
pub const LOG_PASS_OVER_MAX: usize = 100_000;
/// Records a row-cache warm-up reads and caches at once (one lock hold).
const WARM_PAGE_RECORDS: usize = 256;
/// Times a warm-up reads a page again after a write to the partition
/// raced it, before skipping the page.
const WARM_RETRIES: u32 = 3;

/// What [`Store::warm_rows`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Warmed {
    /// Records cached.
    pub records: u64,
    /// Pages read again because a write raced them.
    pub retries: u64,
    /// Records left uncached after as many races.
    pub skipped: u64,
    /// Stopped because the cache had no free room left.
    pub full: bool,
}

/// One record in transit between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: Bytes,
    pub record: Record,
}

/// A page of a snapshot scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub records: Vec<KeyRecord>,
    /// Pass back to continue after the last record; None when done.
    pub cursor: Option<Bytes>,
    pub bytes: u64,
}

/// A page of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRead {
    Entries { entries: Vec<(u64, KeyRecord)>, next: u64 },
    /// `from` is older than the oldest retained entry.
    Truncated { first: u64 },
}

/// An order-independent digest of a partition's records that hold a value
/// (tombstones left out; expired records in, until swept: both sides hold
/// the same ones, and the answer must not depend on the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checksum {
    pub keys: u64,
    pub digest: u64,
}

impl Store {
    /// Accepts a migration request's fencing token for `partition` if it is
    /// at least the newest seen (which it then becomes, durably). A
    /// coordinator whose lock expired holds an older token than its
    /// successor, so everything it sends afterwards is refused (G10).
    pub fn admit_token(&self, partition: PartitionId, token: u64) -> Result<(), StoreError> {
        let mut tokens = self.tokens.lock();
        let seen = *tokens.get(partition as usize).ok_or(StoreError::NoSuchPartition(partition))?;
        if token < seen {
            return Err(StoreError::StaleToken { partition, seen, got: token });
        }
        if token > seen {
            self.meta.insert(token_key(partition), token.to_be_bytes())?;
            tokens[partition as usize] = token;
        }
        Ok(())
    }

    /// The newest fencing token admitted for `partition` (0: none). Nodes
    /// compare it with the GC horizon ([`evenkeel_types::gc::GcHorizon`]).
    pub fn admitted_token(&self, partition: PartitionId) -> u64 {
        self.tokens.lock().get(partition as usize).copied().unwrap_or(0)
    }

    /// The partition's next change-log position.
    pub fn log_next(&self, partition: PartitionId) -> Result<u64, StoreError> {
        Ok(self.counters_of(partition)?.log_next)
    }

    /// Holds `partition`'s change log for [`super::LOG_HOLD_MS`] after
    /// `now_ms` (see [`super::LogHold`]), from where `from` says.
    pub fn hold_log(&self, partition: PartitionId, from: HoldFrom, now_ms: u64) -> Result<(), StoreError> {
        let mut c = self.lock_partition(partition)?;
        let live = c.log_hold.filter(|h| now_ms < h.until_ms).map(|h| h.from);
        let from = match from {
            HoldFrom::Reader(at) => at,
            HoldFrom::Begin => live.unwrap_or(c.log_next),
            HoldFrom::Renew => live.unwrap_or(c.log_first),
        };
        c.log_hold = Some(super::LogHold { from, until_ms: now_ms + super::LOG_HOLD_MS });
        Ok(())
    }

    /// Up to `max_keys` records (and about `max_bytes`) of `partition` after
    /// `cursor` (an opaque position returned by the previous call).
    pub fn snapshot_chunk(&self, partition: PartitionId, cursor: Option<&[u8]>, max_keys: usize, max_bytes: u64) -> Result<SnapshotChunk, StoreError> {
        let (start, end) = self.partition_range(partition)?;
        let lower = match cursor {
            Some(c) => std::ops::Bound::Excluded(c.to_vec()),
            None => std::ops::Bound::Included(start),
        };
        let mut chunk = SnapshotChunk { records: Vec::new(), cursor: None, bytes: 0 };
        if self.retired.is(partition) {
            return Ok(chunk);
        }
        for kv in self.data.range::<Vec<u8>, _>((lower, std::ops::Bound::Excluded(end))) {
            let (k, v) = kv.into_inner()?;
            let record = decode_record(&v)?;
            chunk.bytes += (k.len() - 2 + record.encoded_len()) as u64;
            chunk.records.push(KeyRecord { key: Bytes::copy_from_slice(&k[2..]), record });
            if chunk.records.len() >= max_keys.max(1) || chunk.bytes >= max_bytes {
                chunk.cursor = Some(Bytes::copy_from_slice(&k));
                break;
            }
        }
        Ok(chunk)
    }

    /// Change-log entries of `partition` from position `from`: up to `max`
    /// of them, and no more once their records reach `max_bytes` (at least
    /// one). An entry by reference ([`Logged::Ref`]) comes with its key's
    /// record as it is now: the entry's or a later one. That record covers
    /// every entry of its key in the range read (all committed before the
    /// record was read), so later entries of the key are passed over, and
    /// the page goes on past its byte bound while it only passes over
    /// entries (up to [`LOG_PASS_OVER_MAX`]): a big key written all through
    /// a move ships once a page, and a page covers every write to it up to
    /// the log's head when the page began, not one write per page. A
    /// reference to a key that holds no record any more (a collected
    /// tombstone, whose own entry comes later) brings nothing.
    pub fn read_log(&self, partition: PartitionId, from: u64, max: usize, max_bytes: u64) -> Result<LogRead, StoreError> {
        let counters = self.counters_of(partition)?;
        if from < counters.log_first {
            return Ok(LogRead::Truncated { first: counters.log_first });
        }
        let mut entries = Vec::new();
        let (mut first, mut next, mut bytes, mut taken, mut passed) = (None, from.max(counters.log_first), 0u64, 0, 0);
        let mut covered: HashSet<Bytes> = HashSet::new();
        for kv in self.log.range(log_key(partition, from)..log_key(partition, counters.log_next)) {
            let (k, v) = kv.into_inner()?;
            let position = log_position(&k)?;
            first.get_or_insert(position);
            let logged = decode_log_entry(&v)?;
            if covered.contains(logged.key()) {
                next = position + 1;
                passed += 1;
                if passed >= LOG_PASS_OVER_MAX {
                    break;
                }
                continue;
            }
            if taken >= max.max(1) || bytes >= max_bytes {
                break;
            }
            next = position + 1;
            taken += 1;
            let kr = match logged {
                Logged::Whole(kr) => kr,
                Logged::Ref { key, .. } => {
                    let now = if self.retired.is(partition) { None } else { self.read(&data_key(self.slot_in(partition, &key)?, &key))? };
                    // Nothing read covers nothing: the deletion's entry
                    // must still ship.
                    let Some(record) = now else { continue };
                    covered.insert(key.clone());
                    KeyRecord { key, record }
                }
            };
            bytes += (kr.key.len() + kr.record.encoded_len()) as u64;
            entries.push((position, kr));
        }
        // Trimming runs under the partition lock after our counters read; if
        // it removed entries we were about to return, report truncation.
        if first.is_some_and(|p| p != from) {
            return Ok(LogRead::Truncated { first: self.counters_of(partition)?.log_first });
        }
        Ok(LogRead::Entries { entries, next })
    }

    /// Writes each record that is newer than the stored one. Returns how many
    /// were applied (the rest were already superseded). One atomic batch
    /// under the partition lock: callers keep `records` short
    /// (`migrate_rpc::APPLY_BATCH_RECORDS`), since client writes to the
    /// partition, and every client write to the node (fjall's journal lock,
    /// held across the batch's memtable inserts), wait for it.
    pub fn apply(&self, partition: PartitionId, records: &[KeyRecord]) -> Result<usize, StoreError> {
        let mut counters = self.lock_partition(partition)?;
        self.apply_locked(partition, &mut counters, records)
    }

    /// [`Self::apply`] for records a router forwards under `token`, refused
    /// unless the import is open. The check runs under the partition lock
    /// that [`Self::close_import`] also takes, so an apply either finishes
    /// before a drop starts (and the drop removes it) or is refused.
    pub fn apply_forwarded(&self, partition: PartitionId, token: u64, records: &[KeyRecord]) -> Result<usize, StoreError> {
        let mut counters = self.lock_partition(partition)?;
        self.check_import(partition, token)?;
        self.apply_locked(partition, &mut counters, records)
    }

    /// The stored records of `keys` (all in `partition`) for a shadow read
    /// under `token`; refused unless the import is open.
    pub fn shadow_read(&self, partition: PartitionId, token: u64, keys: &[Bytes]) -> Result<Vec<Option<Record>>, StoreError> {
        self.check_import(partition, token)?;
        keys.iter().map(|k| self.read(&data_key(self.slot_in(partition, k)?, k))).collect()
    }

    /// Notes in the store (with its journal, like the fencing tokens) that
    /// `partition` is fenced here, or no longer is. A fence must outlive a
    /// restart of the node: a source that came back unfenced in the middle
    /// of a cutover would serve writes the drain had already passed, and
    /// the flip would orphan them. The node fences what
    /// [`Self::fenced_partitions`] lists when it starts, and the cutover
    /// (or its successor after a coordinator crash) lifts it as usual.
    pub fn persist_fence(&self, partition: PartitionId, fenced: bool) -> Result<(), StoreError> {
        if partition >= self.num_partitions() {
            return Err(StoreError::NoSuchPartition(partition));
        }
        match fenced {
            true => self.meta.insert(fenced_key(partition), [])?,
            false => self.meta.remove(fenced_key(partition))?,
        }
        Ok(())
    }

    /// The partitions [`Self::persist_fence`] left fenced.
    pub fn fenced_partitions(&self) -> Result<Vec<PartitionId>, StoreError> {
        self.partitions_under(super::FENCED_PREFIX, "fence marker")
    }

    /// Ends the import of `partition` under `token` and every older token,
    /// durably: forwarded applies and shadow reads carrying them are
    /// refused from now on. Called before a drop, whose data they would
    /// otherwise re-create.
    pub fn close_import(&self, partition: PartitionId, token: u64) -> Result<(), StoreError> {
        let _counters = self.lock_partition(partition)?;
        let mut closed = self.import_closed.lock();
        if token > closed[partition as usize] {
            self.meta.insert(import_closed_key(partition), token.to_be_bytes())?;
            closed[partition as usize] = token;
        }
        Ok(())
    }

    /// A router's token is acceptable while the coordinator has admitted it
    /// (or a newer one: a relocked migration keeps its route's token) and
    /// no drop of it or a newer one has started. Never admits a token:
    /// only the coordinator does that.
    fn check_import(&self, partition: PartitionId, token: u64) -> Result<(), StoreError> {
        let seen = *self.tokens.lock().get(partition as usize).ok_or(StoreError::NoSuchPartition(partition))?;
        let closed = self.import_closed.lock()[partition as usize];
        let why = if token == 0 || token > seen {
            "the coordinator has not begun this migration here"
        } else if token <= closed {
            "its import was closed by a drop"
        } else {
            return Ok(());
        };
        Err(StoreError::NotImporting { partition, token, why })
    }

    /// Applies `records` in one atomic batch (one journal write, not one
    /// per record: a page applies several times faster). A key may come
    /// more than once (a change-log page); records staged earlier in the
    /// batch count as stored for the later ones.
    fn apply_locked(&self, partition: PartitionId, counters: &mut PartitionCounters, records: &[KeyRecord]) -> Result<usize, StoreError> {
        self.revive(partition, counters)?;
        // In the OS only, as a client write's batch: the RPC answers once an
        // fsync shared with every other writer covers it (`Self::durable`).
        let mut batch = self.db.batch();
        let mut after = *counters;
        let mut applied = 0;
        let keys = records.iter().map(|kr| Ok(data_key(self.slot_in(partition, &kr.key)?, &kr.key))).collect::<Result<Vec<_>, StoreError>>()?;
        let in_key_order = keys.windows(2).all(|w| w[0] < w[1]);
        let mut stored_before = self.stored_records(&keys, in_key_order)?;
        // Keys in strictly increasing order (a snapshot page) are distinct:
        // nothing staged earlier in the batch can be one of them, and the
        // map of staged records is skipped (its hashing was about a tenth
        // of a page's apply, `cargo bench -p evenkeel-node --bench apply`).
        let mut staged: Option<HashMap<&[u8], &Record>> = (!in_key_order).then(HashMap::new);
        for ((kr, dk), before) in records.iter().zip(&keys).zip(stored_before.iter_mut()) {
            let stored = match staged.as_ref().and_then(|s| s.get(dk.as_slice())) {
                Some(r) => Some((*r).clone()),
                None => before.take(),
            };
            if stored.as_ref().is_some_and(|s| s.version >= kr.record.version) {
                continue;
            }
            self.clock.observe(kr.record.version);
            self.stage(&mut batch, partition, &mut after, dk, stored.as_ref(), &kr.record, Log::Skip);
            if let Some(staged) = staged.as_mut() {
                staged.insert(dk, &kr.record);
            }
            applied += 1;
        }
        if applied > 0 {
            let committed = batch.commit();
            // The node applying a migration's records does not serve the
            // partition meanwhile (an import, or reverse capture into the
            // old owner in bake): forget its cached records at once rather
            // than cache each applied one on the bulk thread (see `rows`).
            self.rows.forget_partition(partition);
            committed?;
            *counters = after;
        }
        Ok(applied)
    }

    /// The stored record of each of `keys` (data keys; `in_key_order`:
    /// strictly increasing), as the batch being staged found them. A
    /// snapshot page arrives in key order (the
    /// source scans its range), and then one range read over the page's
    /// span finds them all with one seek into the memtables and tables;
    /// a point read per key searched the memtable's skiplist from its top
    /// for every key: over half the destination's bulk-thread CPU in the
    /// acceptance run's copy (perf). Keys in any other order (change-log
    /// pages, forwarded writes) are read one by one.
    fn stored_records(&self, keys: &[Vec<u8>], in_key_order: bool) -> Result<Vec<Option<Record>>, StoreError> {
        let ranged = in_key_order && keys.len() >= RANGE_READ_MIN;
        let (Some(first), Some(last), true) = (keys.first(), keys.last(), ranged) else {
            return keys.iter().map(|k| self.read(k)).collect();
        };
        let mut found = vec![None; keys.len()];
        let mut next = 0;
        for kv in self.data.range(first.as_slice()..=last.as_slice()) {
            let (k, v) = kv.into_inner()?;
            while next < keys.len() && keys[next].as_slice() < &*k {
                next += 1;
            }
            match keys.get(next) {
                Some(key) if key.as_slice() == &*k => {
                    found[next] = Some(decode_record(&v)?);
                    next += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
        Ok(found)
    }

    /// `partition`'s checksum and next log position, read together from
    /// the counters every write keeps in step: O(1).
    pub fn checksum(&self, partition: PartitionId) -> Result<(Checksum, u64), StoreError> {
        let c = self.counters_of(partition)?;
        Ok((Checksum { keys: c.keys, digest: c.digest }, c.log_next))
    }

    /// The same checksum computed from the stored records by a full scan of
    /// the partition (a consistent snapshot): checks the data itself, not
    /// the bookkeeping of the writes that made it.
    pub fn checksum_scan(&self, partition: PartitionId) -> Result<Checksum, StoreError> {
        let (start, end) = self.partition_range(partition)?;
        let mut sum = Checksum::default();
        if self.retired.is(partition) {
            return Ok(sum);
        }
        for kv in self.data.range(start..end) {
            let (k, v) = kv.into_inner()?;
            if let Some(digest) = stored_digest(&k[2..], &v)? {
                sum.keys += 1;
                sum.digest = sum.digest.wrapping_add(digest);
            }
        }
        Ok(sum)
    }

    /// Fills the row cache with `partition`'s stored records, a page at a
    /// time, while the cache has free room: for a node that has just begun
    /// to serve a partition it imported. A migration's applies cache
    /// nothing (see `rows`), so without this every read of a moved key, and
    /// every write's read of the record it replaces, goes to the engine
    /// until the key is touched again: under a uniform load, for minutes
    /// after the moves (the new node missed about 2,000 lookups a second
    /// in the acceptance run's after window, the old ones under 60).
    ///
    /// Each page is read from the engine without the partition lock and
    /// cached under it only if no write to the partition came in between
    /// (otherwise it is read again, up to [`WARM_RETRIES`] times, then
    /// skipped: reads fill those keys as usual). `between` runs between
    /// pages, without the lock (a bulk thread yields to foreground work
    /// there). Stops at the first page the cache has no room for, and
    /// reads nothing when the cache is off.
    pub fn warm_rows(&self, partition: PartitionId, mut between: impl FnMut()) -> Result<Warmed, StoreError> {
        let (mut from, end) = self.partition_range(partition)?;
        if !self.rows.is_on() {
            return Ok(Warmed { full: true, ..Warmed::default() });
        }
        let mut warmed = Warmed::default();
        let mut retries = 0;
        while !self.retired.is(partition) {
            let since = self.rows.before_read(partition);
            let mut page = Vec::with_capacity(WARM_PAGE_RECORDS);
            for kv in self.data.range(from.as_slice()..end.as_slice()).take(WARM_PAGE_RECORDS) {
                let (k, v) = kv.into_inner()?;
                page.push((k.to_vec(), decode_record(&v)?));
            }
            let Some((last, _)) = page.last() else { break };
            let mut next = last.clone();
            next.push(0);
            let records = page.len() as u64;
            #[cfg(test)]
            super::rows::BETWEEN_READ_AND_FILL.with_borrow_mut(|hook| hook.as_mut().map(|h| h()));
            let filled = {
                let _locked = self.lock_partition(partition)?;
                self.rows.fill_page(since, page)
            };
            match filled {
                PageFill::Cached(n) => warmed.records += n as u64,
                PageFill::Raced if retries < WARM_RETRIES => {
                    retries += 1;
                    warmed.retries += 1;
                    continue;
                }
                PageFill::Raced => warmed.skipped += records,
                PageFill::Full => {
                    warmed.full = true;
                    break;
                }
            }
            retries = 0;
            from = next;
            between();
        }
        Ok(warmed)
    }

    pub(super) fn partition_range(&self, partition: PartitionId) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let (first, end) = self.slots_of(partition)?;
        let start = (first as Slot).to_be_bytes().to_vec();
        // The end bound is the first key of the next slot; for the last slot
        // (16383) it is a key no data key reaches.
        let end = if end as usize >= evenkeel_types::SLOT_COUNT as usize { vec![0xff, 0xff, 0xff] } else { (end as Slot).to_be_bytes().to_vec() };
        debug_assert_eq!(slot_partition(first as Slot, self.num_partitions()), partition);
        Ok((start, end))
    }

    fn counters_of(&self, partition: PartitionId) -> Result<PartitionCounters, StoreError> {
        self.parts.get(partition as usize).map(|p| *p.lock()).ok_or(StoreError::NoSuchPartition(partition))
    }

    /// Locks `partition`'s counters for work that writes it; see
    /// [`PartitionLock`] for why the holder's priority is raised.
    pub(super) fn lock_partition(&self, partition: PartitionId) -> Result<PartitionLock<'_>, StoreError> {
        let counters = self.parts.get(partition as usize).ok_or(StoreError::NoSuchPartition(partition))?;
        let boost = Boost::normal();
        Ok(PartitionLock { counters: counters.lock(), _boost: boost })
    }
}

/// Where [`Store::hold_log`] holds a partition's change log from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldFrom {
    /// A reader at this position (catch-up, drain, reverse capture,
    /// rollback): what it has yet to read.
    Reader(u64),
    /// A migration beginning: the log's head, unless a live hold is kept
    /// (a new leader taking the migration over begins again, and still
    /// needs what lies between).
    Begin,
    /// A copy going on: where the live hold is, or the log's start without
    /// one (the node restarted: keep what is left).
    Renew,
}

/// One change-log entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Logged {
    /// The record the write wrote.
    Whole(KeyRecord),
    /// A write of a record larger than [`super::LOG_WHOLE_MAX`]: its key
    /// and version; the record is the key's in the data.
    Ref { key: Bytes, version: u64 },
}

impl Logged {
    fn key(&self) -> &[u8] {
        match self {
            Logged::Whole(kr) => &kr.key,
            Logged::Ref { key, .. } => key,
        }
    }

    /// The version the write gave its key.
    pub(super) fn version(&self) -> u64 {
        match self {
            Logged::Whole(kr) => kr.record.version,
            Logged::Ref { version, .. } => *version,
        }
    }
}

pub(super) fn decode_log_entry(raw: &[u8]) -> Result<Logged, StoreError> {
    let corrupt = || StoreError::Corrupt("change-log entry".into());
    let head = u32::from_le_bytes(raw.get(..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
    let len = (head & !super::LOG_REF) as usize;
    let key = raw.get(4..4 + len).ok_or_else(corrupt)?;
    let rest = &raw[4 + len..];
    if head & super::LOG_REF != 0 {
        let version = u64::from_le_bytes(rest.try_into().map_err(|_| corrupt())?);
        return Ok(Logged::Ref { key: Bytes::copy_from_slice(key), version });
    }
    Ok(Logged::Whole(KeyRecord { key: Bytes::copy_from_slice(key), record: decode_record(rest)? }))
}
