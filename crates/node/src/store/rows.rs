//! The row cache: each partition's recently read and written records, kept
//! in memory so that a client's GET, and a write's read of the record it
//! replaces, skip the storage engine.
//!
//! Why: a point read in the engine searches the active memtable's skiplist,
//! then each sealed memtable's, then the tables (filters, index blocks,
//! data blocks). Under the acceptance load that was about a fifth of the
//! runtime workers' CPU samples (skiplist searches and the `memcmp` of
//! their key comparisons: cache misses on a machine whose memory accesses
//! are slow). A hit here is one hash-table lookup.
//!
//! Measured with the acceptance load and no rebalance (10,000 ops/s, half
//! reads, 1M keys over four nodes; `perf record -F 499` of the up process
//! for 20 s, the cache off and on in one pair of runs of the same binary,
//! `EXTRA_TOML='[cluster]\nrow_cache_mib = 0'`): the runtime workers' samples
//! fell from 7,542 to 5,327; skiplist searches and their `memcmp` from
//! 1,357 to 646 (the inserts remain), the engine's table reads from 687 to
//! 70. About 13% of a core less, 18% of the workers' CPU. Once the preload
//! has written every key, nearly every read hits. Whole-process CPU in
//! four interleaved pairs (`scripts/cpu-ab.sh` with `EXTRA_TOML_A`): medians
//! 73.8% of a core off, 68.0% on; this VM's drift between runs (62–89% for
//! the same build) is larger than the gain, which the profile isolates.
//!
//! What is cached: the stored record of a data key (`slot ++ key`), or that
//! there is none, with the generation of its partition at the time.
//!
//! Consistency. The engine is the truth; the cache must never answer with
//! a record the engine has already replaced once anyone could have seen the
//! replacement. The rules, all resting on the partition lock every write
//! to a partition's data holds ([`super::PartitionLock`]):
//!
//! - A writer, under the lock, commits to the engine first and then puts
//!   the new record in the cache (or removes the key), and then bumps the
//!   partition's write sequence ([`RowCache::wrote`]). A lock-free hit in
//!   between returns the record the write replaces, as a read that came
//!   just before the write would; nobody can have read the new one from
//!   the cache yet, and whoever reads the engine instead misses here, so
//!   found no entry for the key, and finds the new record in the cache or
//!   none from then on.
//! - A reader that misses reads the engine without the lock, and fills the
//!   cache only if it then gets the lock at once and the partition's write
//!   sequence has not moved since before its read: no write to the
//!   partition came in between, so what it read is still the record
//!   ([`RowCache::fill`]). A busy lock skips the fill rather than wait.
//! - Dropping a partition (retire) and making it writable again (revive)
//!   bump its generation: every entry of the partition made before no
//!   longer counts, in O(1).
//!
//! Bounded: entries are weighed by their key and value bytes plus a fixed
//! overhead, and the least useful are evicted past the capacity
//! (`StoreConfig::row_cache_bytes`; 0 turns the cache off).
//!
//! A migration's applies forget the partition's cached records, one
//! generation bump per page, and cache none: the node applying them does
//! not serve the partition meanwhile (an import, or reverse capture into
//! the old owner in bake). Caching every applied record instead cost the
//! destination's bulk threads about 30 ms more per MB copied (99-107
//! against 70-79 ms, the bench's `migrations:` line), in the copy, the
//! stage the disruption budget is judged in. Left to fill from reads, the
//! new owner's cache stayed cold for minutes under a uniform load (about
//! 2,000 misses a second on the new node in the minute after the moves,
//! under 60 on the old ones), so once the cutover grants it the partition
//! it warms the cache from its copy, page by page
//! ([`RowCache::fill_page`], `Store::warm_rows`): the same rule as a
//! read's fill (no write to the partition since the page was read), and
//! free room only, so what clients read is never evicted for it.
//!
//! On by default, 64 MiB per node (`DEFAULT_ROW_CACHE_BYTES`). It was off
//! for a while because of what rebalances did with it on, and the
//! rebalance figures are what decided it both ways, so here they are. The
//! default acceptance run (`scripts/rebalance-acceptance.sh default`; the
//! nested 2-vCPU VM, whose per-run ratios are draws: see docs/disruption-budget.md):
//!
//! - First (2026-12-05, a noisy host, runs not interleaved): with the cache
//!   on, typical second during/before 2.26x, 3.39x, 2.51x (caching applied
//!   records), 1.63x (forgetting them instead), 1.77x (and client values
//!   copied), after/before 1.47-2.91x; the one run with it off in between
//!   1.03x, after 0.71x; then two on/off pairs: on 1.52x and 1.45x, off
//!   1.19x and 1.63x.
//! - Then (the next session, a quieter host) five pairs in ABBA order
//!   (on, off, off, on, on, off, off, on, on, off), one binary per half,
//!   `EXTRA_TOML='[cluster]\nrow_cache_mib = 64'` against `= 0`:
//!   typical second during/before on 1.06x, 1.15x, 0.97x, 1.14x, 1.19x
//!   (after 0.94x, 1.15x, 1.05x, 0.60x, 0.70x); off 1.73x, 1.77x, 1.75x,
//!   1.31x, 1.64x (after 1.80x, 1.27x, 1.83x, 1.30x, 1.99x). The window
//!   p99: on 0.79x, 1.50x, 0.94x, 1.19x, 0.99x; off 1.42x, 1.93x, 0.87x,
//!   1.12x, 0.83x. 0 errors and 0 anomalies in every run; RSS at the end
//!   about 950 MB on against 700 MB off (four caches of 64 MiB, full).
//!
//! The balanced series, the cleaner design, has the ratio better with the
//! cache in every pair, and the CPU it saves is measured apart from any
//! rebalance, so it is on. Read the absolute figures before quoting the
//! ratios, though: with the cache on, the bench's typical second *before*
//! the moves was higher in all five pairs (median 597 against 359 µs),
//! during about equal (688 against 621 µs), after lower (596 against 716
//! µs); the routers' own p99 was lower with it (92-102 against 108-147 µs
//! before) and stayed flat after the moves, where without it the engine's
//! read path, and the compactions that follow a rebalance (the fjall
//! workers at 6-7% of a core in the minute after, in both arms), raised
//! it. Why the client sees a higher baseline tail while the servers see a
//! lower one is not found; one untested candidate is this VM's idle
//! wake-ups (a less busy cluster leaves the vCPUs halted more often).
//! No-rebalance controls (mode `none`, `NONE_SECONDS=60`) do not settle
//! it: a first pair had the typical second before at 358 µs with the cache
//! and 416 µs without (routers 97 against 137 µs); six more the next
//! session, in the order on, off, off, on, on, off, had 769, 554, 520,
//! 772, 486, 575 µs, so on 486-772 against off 520-575, overlapping. What
//! they did settle is the CPU: the runtime workers (router and nodes) ran
//! at 48.8-51.4% of a core with the cache and 54.8-57.7% without before
//! the window, no overlap. The same controls' during/before ratios, with
//! nothing moving (0.92-1.29x typical second, 0.94-1.45x window p99), are
//! as wide as the gap between the arms, which is why the cache stays on
//! for the CPU it saves. One
//! run with 128 MiB looked like the runs without a cache (1.81x, after
//! 1.76x). What made the earlier session's cache-on runs worse is not
//! found either; its candidates were the new node starting cold (reads miss
//! and fill there, 52% hits over a run against 73% on the old nodes) and
//! the sources keeping entries of partitions they gave away until
//! eviction reaches them (the generation check skips them, the weight
//! still counts them).

use evenkeel_types::{PartitionId, Record};
use quick_cache::Weighter;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes an entry is charged beyond its key and value: the table slot, the
/// key's and record's headers, the allocator's rounding.
const ENTRY_OVERHEAD: u64 = 96;

#[derive(Clone)]
struct Cached {
    generation: u64,
    record: Option<Record>,
}

#[derive(Clone, Copy)]
struct Weigh;

impl Weighter<Vec<u8>, Cached> for Weigh {
    fn weight(&self, key: &Vec<u8>, cached: &Cached) -> u64 {
        let value = cached.record.as_ref().and_then(|r| r.value.as_ref()).map_or(0, |v| v.len());
        key.len() as u64 + value as u64 + ENTRY_OVERHEAD
    }
}

#[derive(Default)]
struct PartitionState {
    /// Bumped under the partition lock after every write to its data.
    writes: AtomicU64,
    /// Bumped under the partition lock when it is retired or revived.
    generation: AtomicU64,
}

/// Hits and misses since the store opened, and what the cache holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
}

/// What [`RowCache::fill_page`] did with a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PageFill {
    /// Cached, this many records.
    Cached(usize),
    /// A write to the partition came after the page was read: not cached.
    Raced,
    /// The cache has no room for it (or is off): not cached.
    Full,
}

#[cfg(test)]
thread_local! {
    /// Run by this thread between a missed read of the engine and its fill
    /// (tests: a write that lands in between).
    pub(super) static BETWEEN_READ_AND_FILL: std::cell::RefCell<Option<Box<dyn FnMut()>>> = const { std::cell::RefCell::new(None) };
}

/// A read that missed: pass it back to [`RowCache::fill`] with what the
/// engine returned.
#[must_use]
pub(super) struct Miss {
    partition: PartitionId,
    writes: u64,
    generation: u64,
}

pub(super) struct RowCache {
    /// None when configured off.
    entries: Option<quick_cache::sync::Cache<Vec<u8>, Cached, Weigh>>,
    parts: Vec<PartitionState>,
    capacity_bytes: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl RowCache {
    pub(super) fn new(num_partitions: u16, capacity_bytes: u64) -> RowCache {
        // quick_cache sizes its tables from the expected count: assume
        // entries of about a 100-byte value.
        let estimated = (capacity_bytes / 160).max(16) as usize;
        let entries = (capacity_bytes > 0).then(|| quick_cache::sync::Cache::with_weighter(estimated, capacity_bytes, Weigh));
        let parts = (0..num_partitions).map(|_| PartitionState::default()).collect();
        RowCache { entries, parts, capacity_bytes, hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// The cached record of `data_key` (`Some(None)`: cached as absent), or
    /// the [`Miss`] to fill with after reading the engine. Takes no lock.
    pub(super) fn get(&self, partition: PartitionId, data_key: &[u8]) -> Result<Option<Record>, Miss> {
        let miss = self.before_read(partition);
        let Some(entries) = &self.entries else { return Err(miss) };
        match entries.get(data_key) {
            Some(c) if c.generation == miss.generation => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(c.record)
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(miss)
            }
        }
    }

    /// Caches `record`, read from the engine after `miss`, if no write to
    /// the partition has happened since: `try_lock` is the partition's
    /// lock, taken without waiting (None: held by someone, skip).
    pub(super) fn fill<G>(&self, miss: Miss, data_key: &[u8], record: &Option<Record>, try_lock: impl FnOnce() -> Option<G>) {
        let Some(entries) = &self.entries else { return };
        #[cfg(test)]
        BETWEEN_READ_AND_FILL.with_borrow_mut(|hook| hook.as_mut().map(|h| h()));
        let Some(_locked) = try_lock() else { return };
        if self.unchanged_since(&miss) {
            entries.insert(data_key.to_vec(), Cached { generation: miss.generation, record: record.clone() });
        }
    }

    /// The cached record of `data_key` for a caller holding the partition
    /// lock, reading the engine with `read` on a miss and caching what it
    /// found: under the lock nothing can change it in between.
    pub(super) fn get_locked<E>(&self, partition: PartitionId, data_key: &[u8], read: impl FnOnce() -> Result<Option<Record>, E>) -> Result<Option<Record>, E> {
        match self.get(partition, data_key) {
            Ok(record) => Ok(record),
            Err(miss) => {
                let record = read()?;
                if let Some(entries) = &self.entries {
                    entries.insert(data_key.to_vec(), Cached { generation: miss.generation, record: record.clone() });
                }
                Ok(record)
            }
        }
    }

    /// After a write of `data_key` in `partition` under its lock, committed
    /// or not: `stored` (the record the engine now holds) replaces what is
    /// cached for the key; None (the key was removed, or the commit failed)
    /// drops it. Then the partition's write sequence moves, so no read that
    /// began before fills the cache with what it found.
    pub(super) fn wrote(&self, partition: PartitionId, data_key: &[u8], stored: Option<&Record>) {
        let state = &self.parts[partition as usize];
        if let Some(entries) = &self.entries {
            match stored {
                Some(record) => entries.insert(data_key.to_vec(), Cached { generation: state.generation.load(Ordering::Acquire), record: Some(owned(record)) }),
                None => {
                    entries.remove(data_key);
                }
            }
        }
        state.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Where `partition` stands before its records are read from the
    /// engine (one for [`Self::fill`], a page for [`Self::fill_page`]):
    /// what is read after this can be cached if nothing has written the
    /// partition since.
    pub(super) fn before_read(&self, partition: PartitionId) -> Miss {
        let state = &self.parts[partition as usize];
        Miss { partition, writes: state.writes.load(Ordering::Acquire), generation: state.generation.load(Ordering::Acquire) }
    }

    /// Whether nothing has written or forgotten `since.partition` since
    /// [`Self::before_read`] returned `since`: what was read in between
    /// may then be cached. Meaningful under the partition's lock.
    fn unchanged_since(&self, since: &Miss) -> bool {
        let state = &self.parts[since.partition as usize];
        state.writes.load(Ordering::Acquire) == since.writes && state.generation.load(Ordering::Acquire) == since.generation
    }

    /// Whether the cache is on (a capacity above zero).
    pub(super) fn is_on(&self) -> bool {
        self.entries.is_some()
    }

    /// Caches a page of `partition`'s stored records (data key and record),
    /// read from the engine after `since`, for a caller holding the
    /// partition's lock: as [`Self::fill`] does for one key, only if no
    /// write to the partition came in between. Fills free room only: a
    /// page that would take the cache past its capacity is not cached, so
    /// warming never evicts what clients read.
    pub(super) fn fill_page(&self, since: Miss, page: Vec<(Vec<u8>, Record)>) -> PageFill {
        let Some(entries) = &self.entries else { return PageFill::Full };
        if !self.unchanged_since(&since) {
            return PageFill::Raced;
        }
        let cached: Vec<(Vec<u8>, Cached)> = page.into_iter().map(|(k, r)| (k, Cached { generation: since.generation, record: Some(r) })).collect();
        let weight: u64 = cached.iter().map(|(k, c)| Weigh.weight(k, c)).sum();
        if entries.weight() + weight > self.capacity_bytes {
            return PageFill::Full;
        }
        let n = cached.len();
        for (k, c) in cached {
            entries.insert(k, c);
        }
        PageFill::Cached(n)
    }

    /// Forgets every cached record of `partition`, under its lock: it was
    /// retired or revived, or a migration applied records to it.
    pub(super) fn forget_partition(&self, partition: PartitionId) {
        let state = &self.parts[partition as usize];
        state.generation.fetch_add(1, Ordering::AcqRel);
        state.writes.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn stats(&self) -> RowCacheStats {
        let (entries, bytes) = self.entries.as_ref().map_or((0, 0), |e| (e.len() as u64, e.weight()));
        RowCacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed), entries, bytes, capacity_bytes: self.capacity_bytes }
    }
}

/// A copy of `record` whose value holds only its own bytes. A client's value
/// is a slice of its connection's read buffer: cached as it came, it would
/// keep that whole buffer alive for as long as the entry lives, memory the
/// cache's weight does not count. (Records read from the engine are decoded
/// into their own buffers already.)
fn owned(record: &Record) -> Record {
    Record { value: record.value.as_deref().map(bytes::Bytes::copy_from_slice), ..*record }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(v: &str, version: u64) -> Record {
        Record::value(Bytes::from(v.to_string()), None, version)
    }

    #[test]
    fn a_fill_after_a_write_to_the_partition_is_refused() {
        let cache = RowCache::new(4, 1 << 20);
        let key = b"\x00\x01k".as_slice();
        let Err(miss) = cache.get(1, key) else { panic!("empty cache hit") };
        // A write to the partition (any key) lands between the read and the fill.
        cache.wrote(1, b"\x00\x01other", Some(&rec("x", 2)));
        cache.fill(miss, key, &Some(rec("stale", 1)), || Some(()));
        assert!(cache.get(1, key).is_err(), "a read from before the write must not be cached");
        // Without a write in between it is cached, absence included.
        let Err(miss) = cache.get(1, key) else { panic!() };
        cache.fill(miss, key, &None, || Some(()));
        assert_eq!(cache.get(1, key).ok(), Some(None));
    }

    #[test]
    fn a_written_value_is_cached_in_its_own_buffer_not_the_request_s() {
        let cache = RowCache::new(1, 1 << 20);
        // A request buffer with the value in its middle, as the RESP decoder
        // hands it over.
        let request = Bytes::from(vec![b'x'; 8192]);
        let value = request.slice(100..200);
        let record = Record::value(value, None, 1);
        cache.wrote(0, b"\x00\x00k", Some(&record));
        let cached = cache.get(0, b"\x00\x00k").ok().flatten().and_then(|r| r.value).expect("cached");
        assert_eq!(cached, request.slice(100..200));
        let inside = request.as_ptr_range().contains(&cached.as_ptr());
        assert!(!inside, "the cached value must not point into the request buffer");
    }

    #[test]
    fn a_busy_lock_skips_the_fill() {
        let cache = RowCache::new(4, 1 << 20);
        let key = b"\x00\x01k".as_slice();
        let Err(miss) = cache.get(1, key) else { panic!() };
        cache.fill(miss, key, &Some(rec("v", 1)), || None::<()>);
        assert!(cache.get(1, key).is_err());
    }

    #[test]
    fn writes_replace_or_drop_entries_and_a_retire_forgets_the_partition() {
        let cache = RowCache::new(4, 1 << 20);
        let (a, b) = (b"\x00\x02a".as_slice(), b"\x00\x02b".as_slice());
        cache.wrote(2, a, Some(&rec("1", 1)));
        cache.wrote(2, b, Some(&rec("1", 1)));
        assert_eq!(cache.get(2, a).ok().flatten().and_then(|r| r.value), Some(Bytes::from("1")));
        cache.wrote(2, a, Some(&rec("2", 2)));
        assert_eq!(cache.get(2, a).ok().flatten().map(|r| r.version), Some(2));
        cache.wrote(2, a, None);
        assert!(cache.get(2, a).is_err(), "dropped, not cached as absent");
        cache.forget_partition(2);
        assert!(cache.get(2, b).is_err(), "an entry from before the retire no longer counts");
        // Other partitions keep theirs.
        let Err(miss) = cache.get(3, b"\x00\x03c") else { panic!("empty cache hit") };
        cache.fill(miss, b"\x00\x03c", &None, || Some(()));
        cache.forget_partition(2);
        assert_eq!(cache.get(3, b"\x00\x03c").ok(), Some(None));
        let stats = cache.stats();
        assert!(stats.hits >= 3 && stats.misses >= 2 && stats.entries >= 1, "{stats:?}");
    }

    #[test]
    fn capacity_bounds_what_is_held_and_zero_turns_it_off() {
        let cache = RowCache::new(1, 64 * 1024);
        let value = "v".repeat(100);
        for i in 0..10_000u32 {
            let key = format!("\x00\x00key{i}").into_bytes();
            cache.wrote(0, &key, Some(&rec(&value, 1)));
        }
        let stats = cache.stats();
        assert!(stats.bytes <= 64 * 1024 && stats.entries < 10_000 && stats.entries > 100, "{stats:?}");
        let off = RowCache::new(1, 0);
        off.wrote(0, b"\x00\x00k", Some(&rec("v", 1)));
        assert!(off.get(0, b"\x00\x00k").is_err());
        assert_eq!(off.stats().entries, 0);
    }
}
