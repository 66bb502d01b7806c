//! The row cache (`store::rows`) through the store: every way a record
//! changes is seen by the next read, and concurrent readers never see a
//! value older than one already acknowledged.

use super::migration::keys_in;
use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

fn open_with_cache(dir: &std::path::Path, row_cache_bytes: u64) -> Store {
    let mut cfg = StoreConfig::new(dir, N);
    cfg.cache_bytes = 8 << 20;
    cfg.row_cache_bytes = row_cache_bytes;
    Store::open(cfg).unwrap()
}

fn hits(s: &Store) -> u64 {
    s.row_cache_stats().hits
}

#[test]
fn every_way_a_record_changes_is_seen_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with_cache(dir.path(), 1 << 20);
    let p = 3;
    let keys = keys_in(p, 4);
    let (a, b, c) = (keys[0].as_bytes(), keys[1].as_bytes(), keys[2].as_bytes());

    // A client write caches what it wrote; reads hit.
    exec(&s, a, set("1", None), 10);
    let before = hits(&s);
    assert_eq!(get(&s, a, 11), Some(Bytes::from_static(b"1")));
    assert_eq!(get(&s, a, 11), Some(Bytes::from_static(b"1")));
    assert_eq!(hits(&s), before + 2, "both reads from the cache");
    // A read that missed fills the cache, absence included.
    assert_eq!(get(&s, b, 11), None);
    let before = hits(&s);
    assert_eq!(get(&s, b, 11), None);
    assert_eq!(hits(&s), before + 1);

    // A migration's apply of a newer record replaces the cached one.
    let newer = Record::value(Bytes::from_static(b"applied"), None, s.clock().current() + 1000);
    assert_eq!(s.apply(p, &[KeyRecord { key: Bytes::copy_from_slice(a), record: newer.clone() }]).unwrap(), 1);
    assert_eq!(get(&s, a, 12), Some(Bytes::from_static(b"applied")));
    // ...and an older one changes nothing.
    let older = Record::value(Bytes::from_static(b"old"), None, 1);
    assert_eq!(s.apply(p, &[KeyRecord { key: Bytes::copy_from_slice(a), record: older }]).unwrap(), 0);
    assert_eq!(get(&s, a, 12), Some(Bytes::from_static(b"applied")));

    // Expiry: the sweeper's tombstone replaces the cached value.
    exec(&s, c, set("ttl", Some(100)), 20);
    assert_eq!(get(&s, c, 50), Some(Bytes::from_static(b"ttl")));
    assert_eq!(s.sweep_expired(200, 100, |_| true).unwrap(), 1);
    let stored = s.execute_admitted(p, c, &Kind::Get(pb::Get::default()), 50, || Ok::<(), ()>(())).unwrap().unwrap().1;
    assert!(stored.is_some_and(|r| r.value.is_none()), "the sweeper's tombstone, even read at a time before the expiry");

    // A delete, then the tombstone's collection: the cached tombstone goes.
    exec(&s, a, Kind::Del(pb::Del::default()), 300);
    assert_eq!(get(&s, a, 301), None);
    assert!(s.collect_tombstones(u64::MAX, 100, |_| true).unwrap() >= 1);
    let stored = s.execute_admitted(p, a, &Kind::Get(pb::Get::default()), 302, || Ok::<(), ()>(())).unwrap().unwrap().1;
    assert_eq!(stored, None, "collected: no record at all, not the cached tombstone");

    // Retire: reads find nothing at once; after the revive (the next
    // write), nothing cached before the retire comes back.
    exec(&s, b, set("kept?", None), 400);
    assert_eq!(get(&s, b, 401), Some(Bytes::from_static(b"kept?")));
    assert!(s.retire(p).unwrap() > 0);
    assert_eq!(get(&s, b, 402), None);
    exec(&s, keys[3].as_bytes(), set("revives", None), 403);
    assert_eq!(get(&s, b, 404), None, "the revive deleted it; the cache must not remember it");
    assert_eq!(get(&s, keys[3].as_bytes(), 404), Some(Bytes::from_static(b"revives")));
}

#[test]
fn with_the_cache_off_reads_go_to_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with_cache(dir.path(), 0);
    exec(&s, b"k", set("v", None), 1);
    assert_eq!(get(&s, b"k", 2), Some(Bytes::from_static(b"v")));
    let stats = s.row_cache_stats();
    assert_eq!((stats.hits, stats.entries, stats.capacity_bytes), (0, 0, 0));
}

/// Writers increment a few counters while readers read them, through a
/// cache small enough that entries are evicted all the time (so reads miss
/// and fill while writes land). A reader must never see a counter below
/// the value whose increment was acknowledged before its read began: a
/// fill with a read from before a write would do that.
#[test]
fn concurrent_reads_never_go_back_behind_an_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    // About 40 entries: far fewer than the keys below.
    let s = Arc::new(open_with_cache(dir.path(), 40 * 120));
    let p = 1;
    let keys: Arc<Vec<String>> = Arc::new(keys_in(p, 8));
    // Filler keys in the same partition, read to keep evicting the counters.
    let fillers: Arc<Vec<String>> = Arc::new(keys_in(p, 208).split_off(8));
    let acked: Arc<Vec<AtomicI64>> = Arc::new((0..keys.len()).map(|_| AtomicI64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    for f in fillers.iter() {
        exec(&s, f.as_bytes(), set("f", None), 1);
    }
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (s, keys, acked) = (s.clone(), keys.clone(), acked.clone());
            std::thread::spawn(move || {
                for round in 0..1500 {
                    // Each writer owns half the keys, so its acknowledged
                    // value is exact.
                    let i = (round % (keys.len() / 2)) * 2 + w;
                    let R::Integer(n) = exec(&s, keys[i].as_bytes(), Kind::IncrBy(pb::IncrBy { delta: 1 }), 2) else { panic!("INCR") };
                    acked[i].store(n, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (s, keys, fillers, acked, stop) = (s.clone(), keys.clone(), fillers.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut i: usize = r;
                while !stop.load(Ordering::SeqCst) {
                    i = i.wrapping_mul(31).wrapping_add(7);
                    let k = i % keys.len();
                    let floor = acked[k].load(Ordering::SeqCst);
                    let seen = get(&s, keys[k].as_bytes(), 3).map_or(0, |v| std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap());
                    assert!(seen >= floor, "read {seen} of {} after {floor} was acknowledged", keys[k]);
                    get(&s, fillers[i % fillers.len()].as_bytes(), 3);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let stats = s.row_cache_stats();
    assert!(reads > 1000 && stats.hits > 0 && stats.misses > 1000, "the cache was exercised both ways: {reads} reads, {stats:?}");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(get(&s, k.as_bytes(), 4), Some(Bytes::from(acked[i].load(Ordering::SeqCst).to_string())));
    }
}

/// The interleaving the concurrent test can only hope for, forced: a write
/// to the key lands between a read's miss of the engine and its fill.
#[test]
fn a_read_that_missed_does_not_cache_what_a_write_replaced_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open_with_cache(dir.path(), 1 << 20));
    let key = keys_in(2, 1).remove(0);
    exec(&s, key.as_bytes(), set("old", None), 1);
    // Evict it: a retire and revive forgets the partition; write it back.
    s.retire(2).unwrap();
    exec(&s, key.as_bytes(), set("old", None), 2);
    s.rows.forget_partition(2);
    let (writer, k) = (s.clone(), key.clone());
    crate::store::rows::BETWEEN_READ_AND_FILL.with_borrow_mut(|hook| {
        *hook = Some(Box::new(move || {
            exec(&writer, k.as_bytes(), set("new", None), 3);
        }))
    });
    assert_eq!(get(&s, key.as_bytes(), 4), Some(Bytes::from_static(b"old")), "read before the write landed");
    crate::store::rows::BETWEEN_READ_AND_FILL.with_borrow_mut(|hook| *hook = None);
    assert_eq!(get(&s, key.as_bytes(), 5), Some(Bytes::from_static(b"new")));
}

/// `count` records of partition `p` applied as a migration applies them:
/// stored, and not cached.
fn import(s: &Store, p: PartitionId, count: usize) -> Vec<String> {
    let keys = keys_in(p, count);
    let version = s.clock().current() + 1000;
    let records: Vec<KeyRecord> = keys.iter().map(|k| KeyRecord { key: Bytes::from(k.clone()), record: Record::value(Bytes::from(format!("v-{k}")), None, version) }).collect();
    for page in records.chunks(64) {
        s.apply(p, page).unwrap();
    }
    keys
}

#[test]
fn a_warmed_partition_is_read_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with_cache(dir.path(), 8 << 20);
    let p = 5;
    // Over two pages of the warm-up, so it pages on from each last key.
    let keys = import(&s, p, 600);
    let warmed = s.warm_rows(p, || {}).unwrap();
    assert_eq!(warmed, Warmed { records: 600, retries: 0, skipped: 0, full: false });
    let before = s.row_cache_stats();
    for k in &keys {
        assert_eq!(get(&s, k.as_bytes(), 1), Some(Bytes::from(format!("v-{k}"))));
    }
    let after = s.row_cache_stats();
    assert_eq!((after.hits - before.hits, after.misses - before.misses), (600, 0), "every read of the imported keys hit");
    // Other partitions were not touched.
    assert_eq!(s.warm_rows(p + 1, || {}).unwrap().records, 0);
}

/// A write to a key of the page lands between the warm-up's read of the
/// page and its fill: the page is read again, and the cache ends up with
/// the write's record, never the one it replaced.
#[test]
fn warming_does_not_cache_what_a_write_replaced_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open_with_cache(dir.path(), 8 << 20));
    let p = 6;
    let keys = import(&s, p, 100);
    let (writer, k) = (s.clone(), keys[0].clone());
    let mut once = true;
    crate::store::rows::BETWEEN_READ_AND_FILL.with_borrow_mut(|hook| {
        *hook = Some(Box::new(move || {
            if std::mem::take(&mut once) {
                exec(&writer, k.as_bytes(), set("new", None), 3);
            }
        }))
    });
    let warmed = s.warm_rows(p, || {}).unwrap();
    crate::store::rows::BETWEEN_READ_AND_FILL.with_borrow_mut(|hook| *hook = None);
    assert_eq!(warmed, Warmed { records: 100, retries: 1, skipped: 0, full: false });
    assert_eq!(get(&s, keys[0].as_bytes(), 4), Some(Bytes::from_static(b"new")));
    assert_eq!(get(&s, keys[1].as_bytes(), 4), Some(Bytes::from(format!("v-{}", keys[1]))));
}

/// A warm-up fills free room only: what clients read stays cached.
#[test]
fn warming_stops_at_a_full_cache_and_evicts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with_cache(dir.path(), 64 << 10);
    let hot = keys_in(2, 1).remove(0);
    exec(&s, hot.as_bytes(), set("hot", None), 1);
    let keys = import(&s, 7, 2_000);
    let warmed = s.warm_rows(7, || {}).unwrap();
    assert!(warmed.full && warmed.records > 0 && warmed.records < keys.len() as u64, "{warmed:?}");
    assert!(s.row_cache_stats().bytes <= 64 << 10);
    let before = hits(&s);
    assert_eq!(get(&s, hot.as_bytes(), 2), Some(Bytes::from_static(b"hot")));
    assert_eq!(hits(&s), before + 1, "the hot key is still cached");
}

/// With the cache off a warm-up caches nothing and says the cache had no
/// room; reads still answer from the engine.
#[test]
fn warming_with_the_cache_off_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_with_cache(dir.path(), 0);
    let keys = import(&s, 3, 10);
    assert_eq!(s.warm_rows(3, || {}).unwrap(), Warmed { records: 0, retries: 0, skipped: 0, full: true });
    assert_eq!(get(&s, keys[0].as_bytes(), 1), Some(Bytes::from(format!("v-{}", keys[0]))));
    assert_eq!(s.row_cache_stats().entries, 0);
}
