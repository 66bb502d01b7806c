//! The node's storage: partitions in one fjall database.
//!
//! Keyspaces:
//! - `data`: `slot:u16be ++ key` → [`Record`]. A partition is a contiguous
//!   slot range, so its data is one contiguous key range (cheap snapshot scans
//!   and drops).
//! - `log`: `partition:u16be ++ position:u64be` → `key_len:u32le ++ key ++
//!   record`. The partition's change log (its change-data-capture stream):
//!   every write appends the resulting record at the next position, in the
//!   same atomic batch as the data write, so the log is exactly the sequence
//!   of states the partition went through. Retention is bounded per partition.
//! - `expiring` and `tombstones`: `partition:u16be ++ at_ms:u64be ++
//!   slot:u16be ++ key` → empty ([`index`]). Let the expiry sweeper find
//!   due keys, and tombstone collection old tombstones, of the partitions
//!   they may act on without scanning anything else.
//! - `meta`: the partition count, per-partition fencing tokens and log
//!   floors, retired markers, the index format.
//!
//! A dropped partition is *retired* ([`retire`]): one marker, and the
//! engine's compactions remove its items later; it reads as empty here
//! until it is revived (deleted key by key) before its next write.
//!
//! Tombstones are collected ([`Store::collect_tombstones`]) once no
//! migration could still need them; the rule and why it is safe are in
//! ARCHITECTURE.md (crates/node, invariants) and [`evenkeel_types::gc`].
//! Collecting one is not a change of the key (absent and deleted read the
//! same), so it is not logged; the change log keeps its own copy of the
//! deletion until retention trims it.
//!
//! Writes to one partition are serialized by that partition's mutex, which
//! makes read-modify-write operations atomic and keeps log order equal to
//! version order. Reads take no lock.
//!
//! Durability: every acknowledged write has been handed to the OS
//! ([`Durability::Buffered`], the default: survives a crash of the process,
//! and the background flusher fsyncs every `fsync_interval_ms`) or fsynced
//! ([`Durability::Sync`]: survives power loss, costs an fsync per write).

use crate::ops::{self, OpLimits};
use crate::priority::Boost;
use bytes::{BufMut, Bytes, BytesMut};
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::hlc::version_ms;
use evenkeel_types::slot::{key_slot, partition_slots, slot_partition};
use evenkeel_types::{Hlc, PartitionId, Record, Slot, ValueType};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use xxhash_rust::xxh3::Xxh3Default;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Handed to the OS before the ack; fsynced in the background.
    #[default]
    Buffered,
    /// fsynced before the ack.
    Sync,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub dir: PathBuf,
    pub num_partitions: u16,
    pub durability: Durability,
    /// Change-log entries kept per partition.
    pub log_retention_entries: u64,
    /// Change-log bytes kept per partition: the older entries go past it,
    /// whatever their count (a log of large records, such as a big hash or
    /// stream rewritten per write, would otherwise hold
    /// `log_retention_entries` copies of it). The newest entry always stays.
    pub log_retention_bytes: u64,
    /// Free disk space under which the node refuses ops that add data
    /// (`ops::adds_data`) with an OOM error, so the engine never runs out
    /// of space mid-flush (fjall then poisons the store and every write
    /// fails); deletions still run. 0: no reserve.
    pub min_free_disk_bytes: u64,
    /// fjall block cache size.
    pub cache_bytes: u64,
    /// Largest memtable of the data and change-log keyspaces before it is
    /// flushed, for stores created with it (fjall keeps a keyspace's
    /// setting from its creation).
    pub memtable_bytes: u64,
    /// Row cache capacity ([`rows`]): records kept in memory so reads skip
    /// the engine; 0 turns it off.
    pub row_cache_bytes: u64,
    pub limits: OpLimits,
    /// Runs EVAL's scripts; None: scripts are refused (a node started
    /// without the router's command layer, as in this crate's tests).
    pub scripts: Option<Arc<evenkeel_script::Engine>>,
}

/// Memtable size of the data and change-log keyspaces unless configured
/// otherwise: a quarter of fjall's 64 MiB. A node's memtables only grow
/// until their first flush, and at 64 MiB no node under the acceptance
/// load (10,000 ops/s over four nodes) flushed in a whole run (fjall's
/// workers used no CPU): the process's resident memory grew by 2-3 MB/s
/// all run, every page of it a first touch (10 µs a page on the test VM),
/// and a destination grew fastest while partitions moved in. Two
/// interleaved pairs of acceptance runs, 16 against 64: peak resident
/// memory 639-640 MB against 1,196-1,296 MB, page faults 78,000-96,000
/// against 189,000-245,000, bulk-thread CPU 32.0 ms per MB copied against
/// 37.6-37.7, the process's CPU over the run 71.8 s and 75.2 s against
/// 78.5 s and 74.5 s; window p99 0.99x and 1.22x against 1.23x and 1.06x
/// (no difference this machine can show). Flushed memtables are freed off
/// the engine's lock (`store::memtables`).
pub const DEFAULT_MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

/// Row cache capacity unless configured otherwise: 64 MiB, room for about
/// 300,000 records of a 100-byte value, more than each of four nodes holds
/// of the acceptance data set (250,000). It took 13% of a core off the acceptance
/// load; [`rows`] has the figures, and those of the rebalances with it on
/// and off. 0 turns it off (`cluster.row_cache_mib`).
pub const DEFAULT_ROW_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Default [`StoreConfig::log_retention_bytes`]: 64 MiB per partition,
/// which 50,000 entries of records up to about 1 KiB stay under.
pub const DEFAULT_LOG_RETENTION_BYTES: u64 = 64 * 1024 * 1024;

/// Default [`StoreConfig::min_free_disk_bytes`]: 512 MiB, room for a
/// few memtable flushes and a compaction's output.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 512 * 1024 * 1024;

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>, num_partitions: u16) -> Self {
        StoreConfig {
            dir: dir.into(),
            num_partitions,
            durability: Durability::default(),
            log_retention_entries: 50_000,
            log_retention_bytes: DEFAULT_LOG_RETENTION_BYTES,
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES,
            cache_bytes: 256 * 1024 * 1024,
            memtable_bytes: DEFAULT_MEMTABLE_BYTES,
            row_cache_bytes: DEFAULT_ROW_CACHE_BYTES,
            limits: OpLimits::default(),
            scripts: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("data directory was created with {found} partitions, the cluster has {expected}")]
    PartitionCountMismatch { found: u16, expected: u16 },
    #[error("key belongs to partition {actual}, not {requested}")]
    WrongPartition { requested: PartitionId, actual: PartitionId },
    #[error("no partition {0}")]
    NoSuchPartition(PartitionId),
    #[error("stale fencing token {got} for partition {partition}: {seen} was already seen")]
    StaleToken { partition: PartitionId, seen: u64, got: u64 },
    /// A router's forwarded apply or shadow read for a partition this node
    /// is not importing under that token.
    #[error("partition {partition} is not importing under token {token}: {why}")]
    NotImporting { partition: PartitionId, token: u64, why: &'static str },
}

/// Live counters and change-log positions of one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionCounters {
    /// Records holding a value (expired ones too, until swept).
    pub keys: u64,
    /// Encoded bytes of keys and records, tombstones included.
    pub bytes: u64,
    /// Tombstones held (in `bytes`, not in `keys` or `digest`), until
    /// collected.
    pub tombstones: u64,
    pub log_first: u64,
    pub log_next: u64,
    /// Encoded bytes (keys and values) of the change-log entries from
    /// `log_first` to `log_next`.
    pub log_bytes: u64,
    /// Order-independent digest of the records holding a value: the
    /// wrapping sum of each one's [`record_digest`], kept in step with every
    /// write, so a partition's checksum costs nothing to read (the cutover
    /// compares both sides' under the fence) and equals a full scan's.
    pub digest: u64,
    /// A migration reading this partition's change log holds it from where
    /// it reads (in memory only; see [`LogHold`]).
    pub log_hold: Option<LogHold>,
}

/// A migration's hold on a partition's change log: entries from `from` are
/// kept past the retention limits until `until_ms`, renewed by each
/// snapshot page and log read of the migration, so the log a copy will
/// catch up from is not trimmed under it. Without it, a partition whose
/// writes during its copy exceeded the retention (50,000 entries by
/// default) was truncated below the catch-up's start and copied again,
/// which took as long and was truncated again: a big, busy partition
/// never moved. A hold keeps at most [`LOG_HOLD_ENTRIES_FACTOR`] times the
/// entry retention and [`LOG_HOLD_BYTES_FACTOR`] times the byte retention
/// (past that the log is trimmed as without one, and the migration copies
/// again, as before); one a migration stopped renewing (ended, paused, its
/// coordinator gone) lapses after [`LOG_HOLD_MS`]. Lost on restart: the
/// next read renews it, and what was trimmed meanwhile makes the copy
/// start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHold {
    pub from: u64,
    pub until_ms: u64,
}

/// How long a hold lasts without renewal.
pub const LOG_HOLD_MS: u64 = 60_000;
/// A hold keeps at most this many times `log_retention_entries`...
pub const LOG_HOLD_ENTRIES_FACTOR: u64 = 16;
/// ... and this many times `log_retention_bytes`.
pub const LOG_HOLD_BYTES_FACTOR: u64 = 4;

/// The node's partitions and the clock that versions their writes.
pub struct Store {
    db: Database,
    data: Keyspace,
    log: Keyspace,
    expiring: TimeIndex,
    tombstones: TimeIndex,
    /// Store-level facts: the partition count, per-partition fencing tokens
    /// and log floors, the index format.
    meta: Keyspace,
    parts: Vec<Mutex<PartitionCounters>>,
    /// Newest migration fencing token seen per partition (persisted).
    tokens: Mutex<Vec<u64>>,
    /// Per partition, the newest token whose import was closed by a drop
    /// (persisted): routers' forwarded applies and shadow reads carrying it
    /// or an older one are refused, so none lands after the drop.
    import_closed: Mutex<Vec<u64>>,
    clock: Hlc,
    config: StoreConfig,
    /// The journal files whose directory entries `sync_journals` last
    /// made durable.
    journals_synced: Mutex<Vec<std::path::PathBuf>>,
    /// The group commit of [`Durability::Sync`].
    group: Option<group_sync::GroupSync>,
    /// Keeps flushed memtables from being freed under the engine's lock.
    memtables: memtables::Keeper,
    /// Partitions dropped here whose items compaction is removing.
    retired: std::sync::Arc<retire::Retired>,
    /// Recently read and written records ([`rows`]).
    rows: rows::RowCache,
    /// Blocked pops, woken by the writes to their keys.
    waiters: crate::waiters::Waiters,
    /// Keyspace notifications of this store's writes and expiries.
    notifier: crate::pubsub::Notifier,
}

/// A keyspace event waiting for its write to commit: key, class, name.
/// What a step publishes once it has committed: a keyspace event (key,
/// class, name), or a script's PUBLISH.
enum Notice {
    Event(Vec<u8>, u32, &'static str),
    Message(pb::PublishRequest),
}

const TRIM_SLACK: u64 = 256;

/// Whether a write enters its partition's change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Log {
    /// A write this node makes (a client's, the expiry sweeper's): logged,
    /// for a migration's catch-up and drain (this node the source) or its
    /// reverse capture and rollback (this node the destination).
    Append,
    /// A copy of another node's write (a migration's apply): not logged.
    /// Nothing reads it there: reverse capture and a rollback start at the
    /// destination's log position at verification or under the cutover's
    /// fence, below which it holds only copies; a later move of the
    /// partition copies a snapshot and catches up from its own start. Not
    /// logging copies halves what an import writes (journal, memtables,
    /// flushes, compactions) on a node that is serving clients meanwhile.
    Skip,
}

/// A partition's counters, locked ([`Store::lock_partition`]). Client
/// writes to the partition wait for this lock, and a holder's commit takes
/// the engine's journal lock every write to the node waits for; so a thread
/// running at a lowered priority (a bulk thread) runs at normal priority
/// while it holds it ([`Boost`], `crate::priority` has the measurements).
pub(crate) struct PartitionLock<'a> {
    // Fields drop in order: the lock is released before the boost ends.
    counters: parking_lot::MutexGuard<'a, PartitionCounters>,
    _boost: Boost,
}

impl std::ops::Deref for PartitionLock<'_> {
    type Target = PartitionCounters;
    fn deref(&self) -> &PartitionCounters {
        &self.counters
    }
}

impl std::ops::DerefMut for PartitionLock<'_> {
    fn deref_mut(&mut self) -> &mut PartitionCounters {
        &mut self.counters
    }
}

mod group_sync;
mod index;
mod memtables;
mod migrate;
mod retire;
mod rows;
use index::TimeIndex;
pub use rows::RowCacheStats;
pub use memtables::{TEND_EVERY, Tended};
pub use migrate::{Checksum, HoldFrom, KeyRecord, LogRead, SnapshotChunk, Warmed};
const NUM_PARTITIONS_KEY: &[u8] = b"num_partitions";
/// Present once both indexes are partition-major and complete. Stores
/// written before had a time-major `expiry` keyspace and no tombstone
/// index; opening one rebuilds both from the data and drops `expiry`.
const INDEX_FORMAT_KEY: &[u8] = b"index_format";
const INDEX_FORMAT: u16 = 2;
const LEGACY_EXPIRY: &str = "expiry";
/// Index entries per batch while rebuilding them at open.
const REBUILD_BATCH_ENTRIES: usize = 10_000;

impl Store {
    /// Opens (or creates) the store and recovers counters, log positions and
    /// the clock floor from what is on disk.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let retired = retire::Retired::new(config.num_partitions);
        let filters = retired.clone();
        let db = Database::builder(&config.dir)
            .cache_size(config.cache_bytes)
            .with_compaction_filter_factories(std::sync::Arc::new(move |keyspace: &str| filters.factory(keyspace)))
            .open()?;
        let sized = || KeyspaceCreateOptions::default().max_memtable_size(config.memtable_bytes);
        let data = db.keyspace("data", sized)?;
        let log = db.keyspace("log", sized)?;
        let n = config.num_partitions;
        // An expiry is a versioned write each (log append included); a
        // batch of collected tombstones is one engine batch.
        let expiring = TimeIndex::new(db.keyspace("expiring", KeyspaceCreateOptions::default)?, n, 16);
        let tombstones = TimeIndex::new(db.keyspace("tombstones", KeyspaceCreateOptions::default)?, n, 64);
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        check_partition_count(&meta, n)?;
        let parts = (0..n).map(|_| Mutex::new(PartitionCounters::default())).collect();
        let tokens = Mutex::new(vec![0; n as usize]);
        let import_closed = Mutex::new(vec![0; n as usize]);
        let rows = rows::RowCache::new(n, config.row_cache_bytes);
        let group = (config.durability == Durability::Sync).then(|| group_sync::GroupSync::start(config.dir.clone())).transpose()?;
        let store = Store { db, data, log, expiring, tombstones, meta, parts, tokens, import_closed, clock: Hlc::default(), config, journals_synced: Mutex::default(), group, memtables: Default::default(), retired, rows, waiters: Default::default(), notifier: Default::default() };
        store.recover()?;
        Ok(store)
    }

    pub fn num_partitions(&self) -> u16 {
        self.config.num_partitions
    }

    /// The highest version issued or seen.
    /// The blocked pops waiting on this store's keys.
    pub fn waiters(&self) -> &crate::waiters::Waiters {
        &self.waiters
    }

    /// Keyspace notifications: their flags and the Pub/Sub relay.
    pub fn notifier(&self) -> &crate::pubsub::Notifier {
        &self.notifier
    }

    /// What runs EVAL's scripts, if this store runs them.
    pub fn scripts(&self) -> Option<&Arc<evenkeel_script::Engine>> {
        self.config.scripts.as_ref()
    }

    /// Works out the events of an applied op (keys `keys`, live records
    /// `before`, `writes` by key index) into `out`, if any is published.
    fn notices(&self, kind: &Kind, keys: &[&[u8]], before: &[Option<&Record>], writes: &[(usize, &Record)], now_ms: u64, out: &mut Vec<Notice>) {
        if writes.is_empty() || !self.notifier.on() {
            return;
        }
        out.extend(ops::notify::events(kind, before, writes, now_ms).into_iter().map(|e| Notice::Event(keys[e.key].to_vec(), e.class, e.name)));
    }

    /// Publishes events whose writes have committed.
    fn raise(&self, notices: Vec<Notice>) {
        for notice in notices {
            match notice {
                Notice::Event(key, class, name) => self.notifier.raise(&key, class, name),
                Notice::Message(message) => {
                    self.notifier.relay().publish(message);
                }
            }
        }
    }

    pub fn clock(&self) -> &Hlc {
        &self.clock
    }

    /// CLIENT TRACKING: invalidates every tracked key of `partition`,
    /// which is fenced for a move or dropped (its readers read, and track,
    /// at its next owner). Answers how many.
    pub fn invalidate_tracked(&self, partition: PartitionId) -> usize {
        let n = self.num_partitions();
        self.notifier.relay().invalidate_where(|key| slot_partition(key_slot(key), n) == partition)
    }

    /// Executes one operation on `key` in `partition` at `now_ms`.
    pub fn execute(&self, partition: PartitionId, key: &[u8], kind: &Kind, now_ms: u64) -> Result<R, StoreError> {
        match self.execute_admitted(partition, key, kind, now_ms, || Ok::<(), std::convert::Infallible>(()))? {
            Ok((reply, _)) => Ok(reply),
            Err(never) => match never {},
        }
    }

    /// [`Self::execute`] if `admit` lets it run (else `admit`'s refusal),
    /// also returning the record involved: for a read the stored record
    /// (tombstone or expired value included), for a write the record
    /// written; None when there is none. Routers forward these to a moving
    /// partition's destination and compare them there.
    ///
    /// A write asks `admit` under the partition's lock, the lock a fence's
    /// log position is read under ([`Self::log_next`]). So a write either
    /// commits before that position is read, and the cutover's drain ships
    /// it, or finds the fence and is refused. Asked before the lock, a
    /// write could pass the check, the fence could report the log's end,
    /// and the write commit after it, acknowledged but never shipped: the
    /// drain would stop short of it and the partition would change hands
    /// without it (the crash simulation lost a write to a rollback so).
    pub fn execute_admitted<E>(&self, partition: PartitionId, key: &[u8], kind: &Kind, now_ms: u64, admit: impl FnOnce() -> Result<(), E>) -> Result<Result<(R, Option<Record>), E>, StoreError> {
        let slot = self.slot_in(partition, key)?;
        let data_key = data_key(slot, key);
        if ops::is_read(kind) {
            // A read takes no lock. One admitted just before a fence
            // returns what the source held when the fence came: nothing is
            // written here after it, and any write the destination takes
            // later began after this read did.
            if let Err(refused) = admit() {
                return Ok(Err(refused));
            }
            let stored = if self.retired.is(partition) { None } else { self.read_cached(partition, &data_key)? };
            let reply = ops::apply(kind, stored.as_ref(), now_ms, 0, self.config.limits).reply;
            return Ok(Ok((reply, stored)));
        }
        let mut counters = self.lock_partition(partition)?;
        if let Err(refused) = admit() {
            return Ok(Err(refused));
        }
        self.revive(partition, &counters)?;
        if let Kind::Transaction(t) = kind {
            return self.execute_transaction(partition, &mut counters, key, t, now_ms).map(Ok);
        }
        if let Kind::Script(s) = kind {
            return self.execute_script(partition, &mut counters, key, s, now_ms).map(Ok);
        }
        if ops::multi_keys(kind, key).is_some() {
            let (mut pending, mut notices) = (Vec::new(), Vec::new());
            let reply = self.run_in_step(partition, &mut pending, &mut notices, key, kind, now_ms)?;
            let written = self.commit_step(partition, &mut counters, pending, key)?;
            self.raise(notices);
            return Ok(Ok((reply, written)));
        }
        let stored = self.rows.get_locked(partition, &data_key, || self.read(&data_key))?;
        let version = self.clock.tick(now_ms);
        let applied = ops::apply(kind, stored.as_ref(), now_ms, version, self.config.limits);
        if let Some(record) = &applied.write {
            assert!(stored.as_ref().is_none_or(|s| s.version < record.version), "versions must increase");
            self.commit(partition, &mut counters, &data_key, stored.as_ref(), record)?;
            let mut notices = Vec::new();
            self.notices(kind, &[key], &[stored.as_ref().filter(|r| r.is_live(now_ms))], &[(0, record)], now_ms, &mut notices);
            self.raise(notices);
        }
        Ok(Ok((applied.reply, applied.write)))
    }

    /// Runs one op of a multi-key step under the partition's lock: a RENAME
    /// or MSETNX, or one op of a MULTI/EXEC transaction. Each of its keys
    /// is read from `pending` (the step's writes so far) or else the store,
    /// and its writes join `pending`, to be committed together by
    /// [`Self::commit_step`]. A key outside the partition fails the step.
    fn run_in_step(&self, partition: PartitionId, pending: &mut Vec<Pending>, notices: &mut Vec<Notice>, key: &[u8], kind: &Kind, now_ms: u64) -> Result<R, StoreError> {
        let multi = ops::multi_keys(kind, key);
        let keys = multi.clone().unwrap_or_else(|| vec![key]);
        let data_keys = keys.iter().map(|k| Ok(data_key(self.slot_in(partition, k)?, k))).collect::<Result<Vec<_>, StoreError>>()?;
        let mut stored = Vec::with_capacity(data_keys.len());
        for dk in &data_keys {
            stored.push(match pending.iter().find(|p| &p.data_key == dk) {
                Some(p) => Some(p.last.clone()),
                None => self.rows.get_locked(partition, dk, || self.read(dk))?,
            });
        }
        let (writes, reply) = if multi.is_some() {
            let versions: Vec<u64> = keys.iter().map(|_| self.clock.tick(now_ms)).collect();
            let applied = ops::apply_multi_within(kind, &stored, now_ms, &versions, self.config.limits);
            (applied.writes, applied.reply)
        } else {
            let applied = ops::apply(kind, stored[0].as_ref(), now_ms, self.clock.tick(now_ms), self.config.limits);
            (applied.write.map(|w| (0, w)).into_iter().collect::<Vec<_>>(), applied.reply)
        };
        // Nothing is worked out (or allocated) while notifications are off.
        if self.notifier.on() {
            let live: Vec<Option<&Record>> = stored.iter().map(|r| r.as_ref().filter(|r| r.is_live(now_ms))).collect();
            let written: Vec<(usize, &Record)> = writes.iter().map(|(i, r)| (*i, r)).collect();
            self.notices(kind, &keys, &live, &written, now_ms, notices);
        }
        for (i, record) in writes {
            match pending.iter_mut().find(|p| p.data_key == data_keys[i]) {
                Some(p) => p.last = record,
                None => pending.push(Pending { data_key: data_keys[i].clone(), before: stored[i].clone(), last: record }),
            }
        }
        Ok(reply)
    }

    /// Commits a multi-key step's writes (each key's last record, with one
    /// change-log entry per key) in one batch, so no reader or migration
    /// sees part of it. Returns `key`'s last write, what a router forwards.
    fn commit_step(&self, partition: PartitionId, counters: &mut PartitionCounters, pending: Vec<Pending>, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let writes: Vec<(&[u8], Option<&Record>, &Record)> = pending.iter().map(|p| (p.data_key.as_slice(), p.before.as_ref(), &p.last)).collect();
        if !writes.is_empty() {
            self.commit_all(partition, counters, &writes)?;
        }
        let own = data_key(self.slot_in(partition, key)?, key);
        Ok(pending.into_iter().find(|p| p.data_key == own).map(|p| p.last))
    }

    /// A MULTI/EXEC transaction under the partition's lock: if a watched
    /// key changed since WATCH read it, nothing runs (`aborted`). Else its
    /// ops run in order as one step ([`Self::run_in_step`]), each reading
    /// the writes of those before it, and commit together. A key outside
    /// the partition fails the whole transaction with nothing written.
    fn execute_transaction(&self, partition: PartitionId, counters: &mut PartitionCounters, key: &[u8], t: &pb::Transaction, now_ms: u64) -> Result<(R, Option<Record>), StoreError> {
        for w in &t.watched {
            let dk = data_key(self.slot_in(partition, &w.key)?, &w.key);
            let now = ops::watched(self.rows.get_locked(partition, &dk, || self.read(&dk))?.as_ref(), now_ms);
            let seen = w.seen.unwrap_or_default();
            if now.version != seen.version || (seen.live && !now.live) {
                return Ok((R::Transaction(pb::TransactionResults { results: Vec::new(), aborted: true }), None));
            }
        }
        let (mut pending, mut notices) = (Vec::new(), Vec::new());
        let mut results = Vec::with_capacity(t.ops.len());
        for op in &t.ops {
            let reply = match &op.kind {
                Some(Kind::Transaction(_)) | None => {
                    let message = "malformed transaction: an op without a kind, or a nested transaction".to_string();
                    R::Error(pb::OpError { kind: pb::op_error::Kind::Internal as i32, message })
                }
                // EVAL queued in MULTI: a key of another partition is no
                // use to it here.
                Some(Kind::Script(script)) => match self.run_script_in_step(partition, &mut pending, &mut notices, script, now_ms)? {
                    R::ScriptElsewhere(_) => {
                        let error = "ERR Script attempted to access keys that do not hash to the same slot as the transaction's".to_string();
                        R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error(error)) })
                    }
                    reply => reply,
                },
                Some(kind) => self.run_in_step(partition, &mut pending, &mut notices, &op.key, kind, now_ms)?,
            };
            results.push(pb::OpResult { result: Some(reply), ..Default::default() });
        }
        let own = self.commit_step(partition, counters, pending, key)?;
        self.raise(notices);
        Ok((R::Transaction(pb::TransactionResults { results, aborted: false }), own))
    }

    /// An EVAL script under the partition's lock, as one step
    /// ([`Self::run_script_in_step`]); what it wrote commits together when
    /// it returns or fails (Redis keeps a failed script's writes too).
    fn execute_script(&self, partition: PartitionId, counters: &mut PartitionCounters, key: &[u8], script: &pb::Script, now_ms: u64) -> Result<(R, Option<Record>), StoreError> {
        let (mut pending, mut notices) = (Vec::new(), Vec::new());
        let reply = self.run_script_in_step(partition, &mut pending, &mut notices, script, now_ms)?;
        let own = self.commit_step(partition, counters, pending, key)?;
        self.raise(notices);
        Ok((reply, own))
    }

    /// Runs a script in a step: each op of its `redis.call`s as one op of
    /// the step ([`Self::run_in_step`]), reading the writes before it.
    /// Stopped by a limit, the script's writes leave the step (those of a
    /// transaction's ops before it stay). Every key it touches must share
    /// the slot of its first declared key; a script that declares none
    /// takes the slot of the first key it touches, and if that key is in
    /// another partition it stops there, with nothing written, and the
    /// answer says where to run it.
    fn run_script_in_step(&self, partition: PartitionId, pending: &mut Vec<Pending>, notices: &mut Vec<Notice>, script: &pb::Script, now_ms: u64) -> Result<R, StoreError> {
        use evenkeel_script::{Access, Outcome, Request};
        let Some(engine) = &self.config.scripts else {
            let error = "ERR this node runs no scripts: it was started without the command layer scripts need".to_string();
            return Ok(R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error(error)) }));
        };
        const OTHER_SLOT: &str = "ERR Script attempted to access keys that do not hash to the same slot as its first key (in a cluster, a script's keys must share one hash slot: use {hash tags})";
        enum Stop {
            Elsewhere(Bytes),
            Failed(StoreError),
        }
        let (pending_before, notices_before) = (pending.clone(), notices.len());
        let mut slot = script.keys.first().map(|k| key_slot(k));
        let outcome = engine.run(script, &mut |request: Request<'_>| {
            let (op_key, kind) = match request {
                Request::Op(key, kind) => (key, kind),
                // Counted now, sent once the script's writes commit.
                Request::Publish { shard, channel, message } => {
                    if shard {
                        let here = key_slot(channel);
                        match slot {
                            Some(s) if s != here => return Err(Access::Denied(OTHER_SLOT.into())),
                            _ => {}
                        }
                    }
                    let receivers = self.notifier.relay().receivers(shard, channel);
                    notices.push(Notice::Message(pb::PublishRequest { shard, channel: Bytes::copy_from_slice(channel), payload: Bytes::copy_from_slice(message) }));
                    return Ok(R::Integer(receivers as i64));
                }
            };
            if matches!(kind, Kind::Transaction(_) | Kind::Script(_)) {
                return Err(Access::Denied("ERR This Redis command is not allowed from script".into()));
            }
            for k in ops::multi_keys(kind, op_key).unwrap_or_else(|| vec![op_key]) {
                let here = key_slot(k);
                match slot {
                    Some(s) if s == here => {}
                    Some(_) => return Err(Access::Denied(OTHER_SLOT.into())),
                    None if self.slot_in(partition, k).is_err() => return Err(Access::Abort(Stop::Elsewhere(Bytes::copy_from_slice(k)))),
                    None => slot = Some(here),
                }
            }
            self.run_in_step(partition, pending, notices, op_key, kind, now_ms).map_err(|e| Access::Abort(Stop::Failed(e)))
        });
        let undo = |pending: &mut Vec<Pending>, notices: &mut Vec<Notice>| {
            *pending = pending_before;
            notices.truncate(notices_before);
        };
        let counted = match &outcome {
            Outcome::Answered(_) => "answered",
            Outcome::Stopped(_) => "stopped",
            Outcome::Aborted(Stop::Elsewhere(_)) => "elsewhere",
            Outcome::Aborted(Stop::Failed(_)) => "failed",
        };
        metrics::counter!("evenkeel_node_scripts_total", "outcome" => counted).increment(1);
        match outcome {
            Outcome::Answered(reply) => Ok(R::Reply(reply)),
            Outcome::Stopped(reply) => {
                undo(pending, notices);
                Ok(R::Reply(reply))
            }
            Outcome::Aborted(Stop::Elsewhere(key)) => {
                undo(pending, notices);
                Ok(R::ScriptElsewhere(pb::ScriptElsewhere { key }))
            }
            Outcome::Aborted(Stop::Failed(e)) => Err(e),
        }
    }

    /// Live keys of whole slots starting at `start_slot` within `partition`
    /// (only those holding `ty`, if given), stopping at the first slot
    /// boundary after `count` keys. Returns the keys and the next slot (the
    /// partition's end when exhausted).
    pub fn scan(&self, partition: PartitionId, start_slot: u32, count: usize, now_ms: u64, ty: Option<ValueType>) -> Result<(Vec<Bytes>, u32), StoreError> {
        let (first, end) = self.slots_of(partition)?;
        if self.retired.is(partition) {
            return Ok((Vec::new(), end));
        }
        let mut slot = start_slot.max(first);
        let mut keys = Vec::new();
        while slot < end && keys.len() < count.max(1) {
            for kv in self.data.prefix((slot as u16).to_be_bytes()) {
                let (k, v) = kv.into_inner()?;
                let record = decode_record(&v)?;
                if record.is_live(now_ms) && ty.is_none_or(|ty| record.ty == ty) {
                    keys.push(Bytes::copy_from_slice(&k[2..]));
                }
            }
            slot += 1;
        }
        Ok((keys, slot))
    }

    /// Counters of every partition, indexed by partition.
    pub fn counters(&self) -> Vec<PartitionCounters> {
        self.parts.iter().map(|p| *p.lock()).collect()
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.config.dir
    }

    /// The free space under which ops that add data are refused.
    pub fn min_free_disk_bytes(&self) -> u64 {
        self.config.min_free_disk_bytes
    }

    /// The storage engine's debt: the most level-0 tables and sealed
    /// memtables of any keyspace (see `StatsResponse`).
    pub fn engine_debt(&self) -> (usize, usize) {
        let spaces = self.partition_keyspaces();
        let l0 = spaces.iter().map(|k| k.l0_table_count()).max().unwrap_or(0);
        let sealed = spaces.iter().map(|k| k.sealed_memtable_count()).max().unwrap_or(0);
        (l0, sealed)
    }

    /// The storage engine's compactions: wall time spent in them since the
    /// store opened, and how many run now (see `StatsResponse`). From
    /// fjall's runtime stats, which it marks experimental (hidden from its
    /// docs): the version is pinned by `Cargo.lock`, and an upgrade that
    /// drops them fails the build here, not silently.
    pub fn engine_compactions(&self) -> (std::time::Duration, usize) {
        (self.db.time_compacting(), self.db.active_compactions())
    }

    /// Takes references to the keyspaces' active memtables and frees the
    /// flushed ones the engine let go of on a low-priority thread, so the
    /// engine does not free them under its version lock (see
    /// `store::memtables`). Call every [`TEND_EVERY`].
    pub fn tend_memtables(&self) -> Tended {
        self.memtables.tend(&[&self.data, &self.log, &self.expiring.keys, &self.tombstones.keys, &self.meta])
    }

    /// Whether a write might now hit the engine's brakes: fjall sleeps the
    /// writing thread (10 ms steps from 20 level-0 runs, 100 ms steps from 4
    /// sealed memtables) until flushes and compactions catch up. Checked
    /// with margin, since a batch can push it over.
    pub fn write_may_stall(&self) -> bool {
        let (l0, sealed) = self.engine_debt();
        stall_risk(l0, sealed)
    }

    /// Bytes the database occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    /// fsyncs everything written so far.
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    /// fsyncs every write handed to the OS before the call, without
    /// stopping writers. `sync` holds the engine's journal lock for the
    /// whole fsync, so every write to this node would wait for the disk
    /// (milliseconds, more under load); this fsyncs the journal files
    /// through descriptors of its own instead. In `Buffered` durability each
    /// acknowledged batch is already in the OS (`PersistMode::Buffer`), and
    /// an fsync covers a file's data whichever descriptor asks, so this
    /// gives the same guarantee as `sync` for everything acknowledged
    /// before it started. Flushed tables are fsynced by the engine itself.
    /// Returns how many journal files it synced (at least one while open).
    pub fn sync_journals(&self) -> Result<usize, StoreError> {
        let mut journals = Vec::new();
        for entry in std::fs::read_dir(&self.config.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "jnl") {
                continue;
            }
            match std::fs::File::open(&path) {
                Ok(file) => {
                    file.sync_data()?;
                    journals.push(path);
                }
                // Rotated away and deleted after its memtable was flushed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // A journal created since the last call needs its directory entry.
        // Only then: a directory fsync commits the file system's journal,
        // and every node doing one each second kept the disk busy for the
        // fsync the engine does under its journal lock when it flushes.
        journals.sort();
        let mut synced = self.journals_synced.lock();
        if !journals.iter().all(|j| synced.binary_search(j).is_ok()) {
            std::fs::File::open(&self.config.dir)?.sync_all()?;
        }
        let count = journals.len();
        *synced = journals;
        Ok(count)
    }

    /// In [`Durability::Sync`], a future that resolves once every write
    /// committed before this call is durable (group commit: one fsync for
    /// all the writers waiting, see [`group_sync`]); an error if an fsync
    /// failed first. None in [`Durability::Buffered`], where a write is
    /// acknowledged once it is in the OS.
    pub fn durable(&self) -> Option<impl Future<Output = Result<(), String>> + Send + 'static> {
        self.group.as_ref().map(|g| g.durable(true))
    }

    /// [`Self::durable`] for background work: the fsync never runs on
    /// the caller's thread (a runtime worker that clients need more).
    pub fn durable_background(&self) -> Option<impl Future<Output = Result<(), String>> + Send + 'static> {
        self.group.as_ref().map(|g| g.durable(false))
    }

    /// fsyncs the group commit has run (0 outside [`Durability::Sync`]).
    pub fn group_syncs(&self) -> u64 {
        self.group.as_ref().map_or(0, group_sync::GroupSync::syncs)
    }

    /// Deletes keys whose expiry has passed, in partitions for which `owned`
    /// holds, looking at no more than `max_examined` index entries. Deletions
    /// are ordinary versioned writes, so they reach the change log like a DEL.
    /// Entries of other partitions are neither read nor deleted: an
    /// importing destination sweeps them once it owns the partition, and a
    /// source in bake may get its partition back by a rollback.
    pub fn sweep_expired(&self, now_ms: u64, max_examined: usize, owned: impl Fn(PartitionId) -> bool) -> Result<usize, StoreError> {
        let mut visit = |p: PartitionId, c: &mut PartitionCounters, due: &[index::Entry]| self.expire_due(p, c, due, now_ms);
        self.index_pass(&self.expiring, now_ms.saturating_add(1), max_examined, &owned, &mut visit)
    }

    /// Removes tombstones stamped before `before_ms` in partitions for
    /// which `eligible` holds (asked again under the partition's lock),
    /// looking at no more than `max_examined` index entries. Each is removed
    /// only if it is still the key's record, under the partition's lock, so
    /// a write to the key since is never lost. Returns how many it removed.
    /// The caller decides eligibility: owned, not fenced, and allowed by the
    /// GC horizon (see [`evenkeel_types::gc`]).
    pub fn collect_tombstones(&self, before_ms: u64, max_examined: usize, eligible: impl Fn(PartitionId) -> bool) -> Result<usize, StoreError> {
        let mut visit = |p: PartitionId, c: &mut PartitionCounters, due: &[index::Entry]| self.collect_due(p, c, due);
        self.index_pass(&self.tombstones, before_ms, max_examined, &eligible, &mut visit)
    }
}

/// A key's write in a multi-key step: its record before the step and its
/// latest in it.
#[derive(Clone)]
struct Pending {
    data_key: Vec<u8>,
    before: Option<Record>,
    last: Record,
}

// Private machinery.
impl Store {
    /// The keyspaces that hold partitions' items.
    fn partition_keyspaces(&self) -> [&Keyspace; 4] {
        [&self.data, &self.log, &self.expiring.keys, &self.tombstones.keys]
    }

    fn read(&self, data_key: &[u8]) -> Result<Option<Record>, StoreError> {
        self.data.get(data_key)?.map(|raw| decode_record(&raw)).transpose()
    }

    /// [`Self::read`] through the row cache, for a caller that does not
    /// hold the partition's lock (a client's read).
    fn read_cached(&self, partition: PartitionId, data_key: &[u8]) -> Result<Option<Record>, StoreError> {
        match self.rows.get(partition, data_key) {
            Ok(record) => Ok(record),
            Err(miss) => {
                let record = self.read(data_key)?;
                self.rows.fill(miss, data_key, &record, || self.parts[partition as usize].try_lock());
                Ok(record)
            }
        }
    }

    /// The row cache's hits, misses and size.
    pub fn row_cache_stats(&self) -> RowCacheStats {
        self.rows.stats()
    }

    fn slot_in(&self, partition: PartitionId, key: &[u8]) -> Result<Slot, StoreError> {
        if partition >= self.num_partitions() {
            return Err(StoreError::NoSuchPartition(partition));
        }
        let slot = key_slot(key);
        let actual = slot_partition(slot, self.num_partitions());
        if actual != partition {
            return Err(StoreError::WrongPartition { requested: partition, actual });
        }
        Ok(slot)
    }

    fn slots_of(&self, partition: PartitionId) -> Result<(u32, u32), StoreError> {
        if partition >= self.num_partitions() {
            return Err(StoreError::NoSuchPartition(partition));
        }
        Ok(partition_slots(partition, self.num_partitions()))
    }

    /// Writes `record` for `data_key`, appends it to the change log, keeps
    /// the expiry index and counters in step, all in one atomic batch. The
    /// caller holds the partition's lock (`counters`).
    fn commit(
        &self,
        partition: PartitionId,
        counters: &mut PartitionCounters,
        data_key: &[u8],
        old: Option<&Record>,
        record: &Record,
    ) -> Result<(), StoreError> {
        self.commit_all(partition, counters, &[(data_key, old, record)])
    }

    /// [`Self::commit`] for several keys (distinct data keys, each with its
    /// stored record and the record to write), in one atomic batch.
    fn commit_all(&self, partition: PartitionId, counters: &mut PartitionCounters, writes: &[(&[u8], Option<&Record>, &Record)]) -> Result<(), StoreError> {
        // To the OS only, in both durabilities: with `Sync` the caller waits
        // for the group commit's fsync (`Self::durable`) without the
        // partition's lock.
        let mut batch = self.db.batch();
        let mut after = *counters;
        for (data_key, old, record) in writes {
            self.stage(&mut batch, partition, &mut after, data_key, *old, record, Log::Append);
        }
        let committed = batch.commit();
        for (data_key, _, record) in writes {
            self.rows.wrote(partition, data_key, committed.as_ref().ok().map(|_| *record));
        }
        committed?;
        *counters = after;
        for (data_key, _, _) in writes {
            self.waiters.wake(data_key);
            // CLIENT TRACKING: readers of the key (after its two-byte slot)
            // drop what they cached.
            self.notifier.relay().invalidate(&data_key[2..]);
        }
        Ok(())
    }

    /// Adds one record's write to `batch`: the data record, the expiry
    /// index, and with [`Log::Append`] its change-log entry at the next
    /// position and any log trimming due; `counters` (a copy the caller
    /// stores once the batch commits) moves with it.
    #[allow(clippy::too_many_arguments)]
    fn stage(&self, batch: &mut fjall::OwnedWriteBatch, partition: PartitionId, counters: &mut PartitionCounters, data_key: &[u8], old: Option<&Record>, record: &Record, log: Log) {
        batch.insert(&self.data, data_key, record.encode());
        // An entry both records have stays as it is: a batch must not both
        // remove and insert one key.
        let kept = |index: &TimeIndex, at: u64| self.index_entries(record).any(|(i, a)| std::ptr::eq(i, index) && a == at);
        for (index, at) in old.into_iter().flat_map(|o| self.index_entries(o)).filter(|(i, a)| !kept(i, *a)) {
            batch.remove(&index.keys, index::key(partition, at, data_key));
        }
        for (index, at) in self.index_entries(record) {
            batch.insert(&index.keys, index::key(partition, at, data_key), Bytes::new());
        }
        // Noted before the commit, under the partition's lock: `settle`
        // cannot run in between, and a bound noted for a batch that then
        // fails is only lower than it need be.
        for (index, at) in self.index_entries(record) {
            index.noted(partition, at);
        }
        if log == Log::Append {
            let entry = log_entry(&data_key[2..], record);
            counters.log_bytes += (LOG_KEY_LEN + entry.len()) as u64;
            batch.insert(&self.log, log_key(partition, counters.log_next), entry);
            counters.log_next += 1;
            let (trim_to, freed) = self.trim_point(partition, counters);
            for pos in counters.log_first..trim_to {
                batch.remove(&self.log, log_key(partition, pos));
            }
            counters.log_first = counters.log_first.max(trim_to);
            counters.log_bytes -= freed;
        }
        adjust(counters, &data_key[2..], old, record);
    }

    /// The index entries `record` has: its expiry, if it has one, and its
    /// version's time if it is a tombstone.
    fn index_entries(&self, record: &Record) -> impl Iterator<Item = (&TimeIndex, u64)> {
        let expiring = record.expire_at_ms.map(|at| (&self.expiring, at));
        let tombstone = record.value.is_none().then(|| (&self.tombstones, version_ms(record.version)));
        expiring.into_iter().chain(tombstone)
    }

    /// Where the log should start after an append (the entries before it
    /// go) and the bytes that frees. Past `log_retention_entries` it keeps
    /// that many, trimming in steps of `TRIM_SLACK` so the cost is
    /// amortized over many writes; past `log_retention_bytes` it trims to
    /// 7/8 of that, for the same reason, reading the entries it removes
    /// for their sizes. The newest entry always stays, and an entry of the
    /// batch being staged is never removed (only committed ones are read).
    fn trim_point(&self, partition: PartitionId, c: &PartitionCounters) -> (u64, u64) {
        let keep = self.config.log_retention_entries.max(1);
        let by_count = if c.log_next - c.log_first > keep + TRIM_SLACK { c.log_next - keep } else { c.log_first };
        let limit = self.config.log_retention_bytes;
        if by_count == c.log_first && c.log_bytes <= limit {
            return (c.log_first, 0);
        }
        // A migration's hold, while it lasts and within its bounds.
        let held = c.log_hold.filter(|h| {
            let within = c.log_next.saturating_sub(h.from) <= keep.saturating_mul(LOG_HOLD_ENTRIES_FACTOR) && c.log_bytes <= limit.saturating_mul(LOG_HOLD_BYTES_FACTOR);
            within && evenkeel_types::unix_ms() < h.until_ms
        });
        let (by_count, limit) = match held {
            Some(h) => (by_count.min(h.from.max(c.log_first)), limit.saturating_mul(LOG_HOLD_BYTES_FACTOR)),
            None => (by_count, limit),
        };
        if by_count == c.log_first && c.log_bytes <= limit {
            return (c.log_first, 0);
        }
        let target = if c.log_bytes > limit { limit - limit / 8 } else { u64::MAX };
        let (mut to, mut freed) = (c.log_first, 0u64);
        for kv in self.log.range(log_key(partition, c.log_first)..log_key(partition, c.log_next - 1)) {
            if to >= by_count && c.log_bytes - freed <= target {
                break;
            }
            if held.is_some_and(|h| to >= h.from) {
                break;
            }
            let (k, v) = match kv.into_inner() {
                Ok(kv) => kv,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "reading the change log to trim it");
                    break;
                }
            };
            match log_position(&k) {
                Ok(pos) if pos == to => {}
                _ => break,
            }
            freed += (k.len() + v.len()) as u64;
            to += 1;
        }
        (to, freed)
    }

    /// Writes a tombstone over each due entry's expired value. The caller
    /// holds the partition's lock (`counters`). An entry that no longer
    /// names its record (none should: the index is exact) is removed, so it
    /// cannot stand in the partition's way for good.
    fn expire_due(&self, partition: PartitionId, counters: &mut PartitionCounters, due: &[index::Entry], now_ms: u64) -> Result<usize, StoreError> {
        let mut expired = 0;
        for e in due {
            match self.read(&e.data_key)? {
                Some(stored) if stored.value.is_some() && stored.expire_at_ms == Some(e.at_ms) => {
                    debug_assert!(stored.is_expired(now_ms), "a due entry names an expired value");
                    let tombstone = Record::tombstone(self.clock.tick(now_ms));
                    self.commit(partition, counters, &e.data_key, Some(&stored), &tombstone)?;
                    // The key after its two-byte slot.
                    self.notifier.raise(&e.data_key[2..], evenkeel_types::notify::EXPIRED, "expired");
                    expired += 1;
                }
                _ => self.remove_stray(&self.expiring, partition, e)?,
            }
        }
        Ok(expired)
    }

    /// Removes each due tombstone that is still its key's record, with its
    /// index entry, in one batch; counters change once it is committed. The
    /// caller holds the partition's lock (`counters`), so no write to these
    /// keys can come between the read and the removal.
    fn collect_due(&self, partition: PartitionId, counters: &mut PartitionCounters, due: &[index::Entry]) -> Result<usize, StoreError> {
        let mut batch = self.db.batch();
        let mut after = *counters;
        let mut collected = 0;
        let mut removed = Vec::new();
        for e in due {
            batch.remove(&self.tombstones.keys, index::key(partition, e.at_ms, &e.data_key));
            match self.read(&e.data_key)? {
                Some(stored) if stored.value.is_none() && version_ms(stored.version) == e.at_ms => {
                    batch.remove(&self.data, e.data_key.as_slice());
                    remove_from(&mut after, &e.data_key[2..], &stored);
                    removed.push(e.data_key.as_slice());
                    collected += 1;
                }
                _ => tracing::warn!(partition, "tombstone index entry without its tombstone; removed"),
            }
        }
        let committed = batch.commit();
        for key in removed {
            self.rows.wrote(partition, key, None);
        }
        committed?;
        *counters = after;
        Ok(collected)
    }

    fn remove_stray(&self, index: &TimeIndex, partition: PartitionId, e: &index::Entry) -> Result<(), StoreError> {
        tracing::warn!(partition, at_ms = e.at_ms, "index entry without its record; removed");
        Ok(index.keys.remove(index::key(partition, e.at_ms, &e.data_key))?)
    }

    /// Rebuilds counters, log positions and the clock floor by scanning;
    /// rebuilds the indexes of a store written in the old format. Records
    /// of retired partitions count for nothing (their versions still raise
    /// the clock floor).
    fn recover(&self) -> Result<(), StoreError> {
        self.recover_retired()?;
        let rebuild = self.meta.get(INDEX_FORMAT_KEY)?.is_none_or(|v| v[..] != INDEX_FORMAT.to_be_bytes());
        let mut pending = self.db.batch();
        for kv in self.data.iter() {
            let (k, v) = kv.into_inner()?;
            let record = decode_record(&v)?;
            if k.len() < 2 {
                return Err(StoreError::Corrupt("data key shorter than its slot prefix".into()));
            }
            self.clock.observe(record.version);
            let partition = slot_partition(u16::from_be_bytes([k[0], k[1]]), self.num_partitions());
            if self.retired.is(partition) {
                continue;
            }
            adjust(&mut self.parts[partition as usize].lock(), &k[2..], None, &record);
            if rebuild {
                for (index, at) in self.index_entries(&record) {
                    pending.insert(&index.keys, index::key(partition, at, &k), Bytes::new());
                }
                if pending.len() >= REBUILD_BATCH_ENTRIES {
                    std::mem::replace(&mut pending, self.db.batch()).commit()?;
                }
            }
        }
        if rebuild {
            // Entries first, then the mark: a crash in between rebuilds
            // again (no write can come before `open` returns).
            pending.commit()?;
            self.meta.insert(INDEX_FORMAT_KEY, INDEX_FORMAT.to_be_bytes())?;
        }
        if self.db.keyspace_exists(LEGACY_EXPIRY) {
            self.db.delete_keyspace(self.db.keyspace(LEGACY_EXPIRY, KeyspaceCreateOptions::default)?)?;
        }
        (0..self.num_partitions()).try_for_each(|p| self.recover_partition(p))
    }

    /// The partitions with a meta key under `prefix` ([`partition_meta_key`]);
    /// `what` names the key in the error if one is malformed.
    fn partitions_under(&self, prefix: &[u8], what: &str) -> Result<Vec<PartitionId>, StoreError> {
        let mut partitions = Vec::new();
        for kv in self.meta.prefix(prefix) {
            let k = kv.key()?;
            match k.get(prefix.len()..).and_then(|s| s.try_into().ok()).map(u16::from_be_bytes) {
                Some(p) if p < self.num_partitions() => partitions.push(p),
                _ => return Err(StoreError::Corrupt(what.into())),
            }
        }
        Ok(partitions)
    }

    /// Log positions, fencing tokens and log floor of one partition.
    fn recover_partition(&self, p: PartitionId) -> Result<(), StoreError> {
        let prefix = p.to_be_bytes();
        let mut c = self.parts[p as usize].lock();
        if let Some(first) = self.log.prefix(prefix).next() {
            c.log_first = log_position(&first.key()?)?;
        }

        if let Some(last) = self.log.prefix(prefix).next_back() {
            let (k, v) = last.into_inner()?;
            c.log_next = log_position(&k)? + 1;
            // The partition's newest version is in its newest log entry,
            // even when its data record (a collected tombstone) is gone.
            self.clock.observe(migrate::decode_log_entry(&v)?.version());
        }
        if let Some(raw) = self.meta.get(token_key(p))? {
            self.tokens.lock()[p as usize] = u64::from_be_bytes(raw[..].try_into().map_err(|_| StoreError::Corrupt("token".into()))?);
        }
        if let Some(raw) = self.meta.get(import_closed_key(p))? {
            self.import_closed.lock()[p as usize] = u64::from_be_bytes(raw[..].try_into().map_err(|_| StoreError::Corrupt("import closed".into()))?);
        }
        // A dropped partition's log is gone but its positions stay used.
        if let Some(floor) = self.meta.get(log_floor_key(p))? {
            let floor = u64::from_be_bytes(floor[..].try_into().map_err(|_| StoreError::Corrupt("log floor".into()))?);
            c.log_first = c.log_first.max(floor);
            c.log_next = c.log_next.max(floor);
        }
        // What retention trims by: the entries from the first position on
        // (any below a drop's floor are on their way out).
        for kv in self.log.range(log_key(p, c.log_first)..log_key(p, c.log_next)) {
            let (k, v) = kv.into_inner()?;
            c.log_bytes += (k.len() + v.len()) as u64;
        }
        Ok(())
    }
}

/// Level-0 tables and sealed memtables from which a write is sent where a
/// stall cannot hurt (fjall's own brakes are at 20 runs and 4 memtables).
const STALL_RISK_L0: usize = 14;
const STALL_RISK_SEALED: usize = 2;

fn stall_risk(l0_tables: usize, sealed_memtables: usize) -> bool {
    l0_tables >= STALL_RISK_L0 || sealed_memtables >= STALL_RISK_SEALED
}

/// Applies the change from `old` to `new` of `key` to the partition's
/// counters and digest.
fn adjust(c: &mut PartitionCounters, key: &[u8], old: Option<&Record>, new: &Record) {
    if let Some(o) = old {
        remove_from(c, key, o);
    }
    c.bytes += key.len() as u64 + new.encoded_len() as u64;
    if new.value.is_some() {
        c.keys += 1;
        c.digest = c.digest.wrapping_add(record_digest(key, new));
    } else {
        c.tombstones += 1;
    }
}

/// Takes `record` of `key`, which is leaving the partition (overwritten or
/// dropped), out of the counters and digest.
fn remove_from(c: &mut PartitionCounters, key: &[u8], record: &Record) {
    c.bytes -= key.len() as u64 + record.encoded_len() as u64;
    if record.value.is_some() {
        c.keys -= 1;
        c.digest = c.digest.wrapping_sub(record_digest(key, record));
    } else {
        c.tombstones -= 1;
    }
}

/// One record's share of a partition digest: a 64-bit XXH3 of the key's
/// length, the key and the encoded record (version and expiry included, so
/// a destination holding an older or differently-expiring copy differs).
/// Every write computes it twice (the old record out, the new one in) and
/// the verification's scan once per record on the destination, so it must be
/// cheap: XXH3 hashes a 130-byte record in a fraction of the time of the
/// table-driven CRC-64 it replaced (`cargo bench -p evenkeel-node --bench
/// apply -- checksum_scan`). Digests are never stored (`recover` sums them
/// again at open), so the function can change between releases; nodes of
/// different releases would disagree on every checksum and refuse cutovers
/// between them, never accept a wrong copy.
pub(crate) fn record_digest(key: &[u8], record: &Record) -> u64 {
    let mut d = key_digest(key);
    d.update(&record.header());
    if let Some(v) = &record.value {
        d.update(v);
    }
    d.digest()
}

/// A digest's start: the key's length, then the key.
fn key_digest(key: &[u8]) -> Xxh3Default {
    let mut d = Xxh3Default::new();
    d.update(&(key.len() as u64).to_le_bytes());
    d.update(key);
    d
}

/// [`record_digest`] of a record as stored, from its encoding (`raw`, the
/// record's header and then its value: the same bytes in the same order),
/// or None for a tombstone, which digests leave out. A verification scan
/// reads every record of a partition; this spares it a copy of each value.
fn stored_digest(key: &[u8], raw: &[u8]) -> Result<Option<u64>, StoreError> {
    if !Record::encoded_has_value(raw).map_err(|e| StoreError::Corrupt(e.to_string()))? {
        return Ok(None);
    }
    let mut d = key_digest(key);
    d.update(raw);
    Ok(Some(d.digest()))
}

fn check_partition_count(meta: &Keyspace, expected: u16) -> Result<(), StoreError> {
    match meta.get(NUM_PARTITIONS_KEY)? {
        None => Ok(meta.insert(NUM_PARTITIONS_KEY, expected.to_be_bytes())?),
        Some(raw) => {
            let bytes: [u8; 2] = raw[..].try_into().map_err(|_| StoreError::Corrupt("partition count".into()))?;
            let found = u16::from_be_bytes(bytes);
            if found == expected { Ok(()) } else { Err(StoreError::PartitionCountMismatch { found, expected }) }
        }
    }
}

fn decode_record(raw: &[u8]) -> Result<Record, StoreError> {
    Record::decode(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn data_key(slot: Slot, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len());
    k.extend_from_slice(&slot.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// A meta key of `partition`'s: `prefix` and the partition, big-endian.
fn partition_meta_key(prefix: &[u8], partition: PartitionId) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn token_key(partition: PartitionId) -> Vec<u8> {
    partition_meta_key(b"token/", partition)
}

fn import_closed_key(partition: PartitionId) -> Vec<u8> {
    partition_meta_key(b"import_closed/", partition)
}

fn log_floor_key(partition: PartitionId) -> Vec<u8> {
    partition_meta_key(b"log_floor/", partition)
}

const FENCED_PREFIX: &[u8] = b"fenced/";

/// Present while the partition is fenced here (see `Store::persist_fence`).
fn fenced_key(partition: PartitionId) -> Vec<u8> {
    partition_meta_key(FENCED_PREFIX, partition)
}

const LOG_KEY_LEN: usize = 10;

fn log_key(partition: PartitionId, position: u64) -> [u8; LOG_KEY_LEN] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&partition.to_be_bytes());
    k[2..].copy_from_slice(&position.to_be_bytes());
    k
}

fn log_position(key: &[u8]) -> Result<u64, StoreError> {
    let raw: [u8; 8] = key.get(2..10).and_then(|s| s.try_into().ok()).ok_or_else(|| StoreError::Corrupt("log key".into()))?;
    Ok(u64::from_be_bytes(raw))
}

/// A record whose encoding is larger than this enters the change log by
/// reference: its key and version, not the record. Every write of a big
/// hash, set, list or sorted set rewrites its whole record (one record per
/// key), and a whole-record entry wrote it a second time: the journal,
/// memtable, flushes and compactions of the log carried as many bytes as
/// the data (a 100,000-field hash: 6 MB twice per HSET), and its byte
/// retention held only a few such entries, so a partition with a hot big
/// key could not keep a migration's catch-up in its log. A reader resolves
/// a reference to the key's record when it reads ([`Store::read_log`]):
/// that record is the entry's or a later one, which the destination's
/// newer-wins apply takes as it would the later entries themselves. Below
/// this size a whole entry is cheaper: the reader takes it from the log's
/// sequential read instead of a point read of the data. fjall compresses
/// journal entries over 4 KiB, which is where copying starts to cost.
pub const LOG_WHOLE_MAX: usize = 8 * 1024;

/// Set in a change-log entry's key length when the entry is a reference.
/// An older binary reads such an entry as a key longer than the entry and
/// reports the log corrupt rather than misreading it.
pub(crate) const LOG_REF: u32 = 1 << 31;

fn log_entry(key: &[u8], record: &Record) -> Bytes {
    if record.encoded_len() > LOG_WHOLE_MAX {
        let mut buf = BytesMut::with_capacity(4 + key.len() + 8);
        buf.put_u32_le(key.len() as u32 | LOG_REF);
        buf.put_slice(key);
        buf.put_u64_le(record.version);
        return buf.freeze();
    }
    let mut buf = BytesMut::with_capacity(4 + key.len() + record.encoded_len());
    buf.put_u32_le(key.len() as u32);
    buf.put_slice(key);
    record.encode_into(&mut buf);
    buf.freeze()
}

/// Converts a pb `PartitionStats` from counters and the `(reads, writes)`
/// served on the partition (`crate::load`).
pub fn partition_stats(partition: PartitionId, c: &PartitionCounters, epoch: u64, (reads_total, writes_total): (u64, u64)) -> pb::PartitionStats {
    pb::PartitionStats {
        reads_total,
        writes_total,
        partition: partition as u32,
        keys: c.keys,
        bytes: c.bytes,
        tombstones: c.tombstones,
        log_first: c.log_first,
        log_next: c.log_next,
        epoch,
    }
}

#[cfg(test)]
mod tests;
