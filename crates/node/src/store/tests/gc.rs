//! Tombstone collection, the expiry sweep, and the per-partition indexes
//! both read.

use super::migration::{keys_in, sum};
use super::*;
use std::collections::{BTreeMap, BTreeSet};

fn del(s: &Store, key: &[u8], now: u64) {
    exec(s, key, Kind::Del(pb::Del::default()), now);
}

/// The data records of partitions that are not retired (a retired
/// partition's wait for compaction and read as nothing).
pub(super) fn records(s: &Store) -> BTreeMap<Vec<u8>, Record> {
    let rows = s.data.iter().map(|kv| kv.into_inner().unwrap());
    rows.filter(|(k, _)| !s.is_retired(partition_of(k))).map(|(k, v)| (k.to_vec(), decode_record(&v).unwrap())).collect()
}

pub(super) fn partition_of(data_key: &[u8]) -> PartitionId {
    slot_partition(u16::from_be_bytes([data_key[0], data_key[1]]), N)
}

/// An index's entries, less those of retired partitions.
fn index_keys(s: &Store, index: &TimeIndex) -> BTreeSet<Vec<u8>> {
    let keys = index.keys.iter().map(|kv| kv.key().unwrap().to_vec());
    keys.filter(|k| !s.is_retired(u16::from_be_bytes([k[0], k[1]]))).collect()
}

fn tombstones(s: &Store) -> u64 {
    s.counters().iter().map(|c| c.tombstones).sum()
}

/// Counters (keys, bytes, tombstones, digest) equal a scan of the data,
/// and both indexes hold exactly the entries the data calls for.
pub(super) fn check_exact(s: &Store) {
    let mut expected = vec![PartitionCounters::default(); N as usize];
    let (mut expiring, mut tombs) = (BTreeSet::new(), BTreeSet::new());
    for (k, r) in records(s) {
        let p = partition_of(&k);
        let c = &mut expected[p as usize];
        c.bytes += (k.len() - 2 + r.encoded_len()) as u64;
        if r.value.is_some() {
            c.keys += 1;
            c.digest = c.digest.wrapping_add(record_digest(&k[2..], &r));
        } else {
            c.tombstones += 1;
            tombs.insert(index::key(p, version_ms(r.version), &k));
        }
        if let Some(at) = r.expire_at_ms {
            expiring.insert(index::key(p, at, &k));
        }
    }
    for (p, (c, e)) in s.counters().iter().zip(&expected).enumerate() {
        assert_eq!((c.keys, c.bytes, c.tombstones, c.digest), (e.keys, e.bytes, e.tombstones, e.digest), "counters of partition {p}");
    }
    assert_eq!(index_keys(s, &s.expiring), expiring, "expiry index");
    assert_eq!(index_keys(s, &s.tombstones), tombs, "tombstone index");
}

#[test]
fn collection_removes_old_tombstones_only_and_keeps_counters_exact() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let keys: Vec<String> = (0..40).map(|i| format!("g{i}")).collect();
    for k in &keys {
        exec(&s, k.as_bytes(), set("v", None), 1_000);
    }
    for k in &keys[..20] {
        del(&s, k.as_bytes(), 2_000);
    }
    for k in &keys[20..30] {
        del(&s, k.as_bytes(), 5_000);
    }
    check_exact(&s);
    assert_eq!(tombstones(&s), 30);
    let logs: Vec<(u64, u64)> = s.counters().iter().map(|c| (c.log_first, c.log_next)).collect();
    assert_eq!(s.collect_tombstones(3_000, 1_000, |_| true).unwrap(), 20);
    check_exact(&s);
    assert_eq!(tombstones(&s), 10, "the young ones stay");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(get(&s, k.as_bytes(), 6_000), (i >= 30).then(|| Bytes::from_static(b"v")), "{k}");
    }
    // Collection is not a change of the key: the change log, which
    // catch-up and reverse capture read, is left as it was.
    assert_eq!(s.counters().iter().map(|c| (c.log_first, c.log_next)).collect::<Vec<_>>(), logs);
    assert_eq!(s.collect_tombstones(3_000, 1_000, |_| true).unwrap(), 0);
    assert_eq!(s.collect_tombstones(5_001, 1_000, |_| true).unwrap(), 10);
    check_exact(&s);
    let counters = s.counters();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.counters(), counters);
    check_exact(&s);
}

/// A migrating partition (not eligible) keeps its tombstones, however many
/// and however old, and they do not stand in the way of other partitions'.
#[test]
fn tombstones_of_partitions_not_eligible_stay_and_block_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (held, free) = (1, 6);
    let (held_keys, free_keys) = (keys_in(held, 1_500), keys_in(free, 10));
    for k in held_keys.iter().chain(&free_keys) {
        exec(&s, k.as_bytes(), set("v", None), 100);
    }
    for k in &held_keys {
        del(&s, k.as_bytes(), 200);
    }
    for k in &free_keys {
        del(&s, k.as_bytes(), 300);
    }
    assert_eq!(s.collect_tombstones(1_000, 1_000, |p| p != held).unwrap(), 10);
    assert_eq!(s.counters()[held as usize].tombstones, 1_500);
    assert_eq!(s.counters()[free as usize].tombstones, 0);
    check_exact(&s);
    // Eligible again (its migration ended): a bounded batch per pass.
    assert_eq!(s.collect_tombstones(1_000, 1_000, |_| true).unwrap(), 1_000);
    assert_eq!(s.collect_tombstones(1_000, 1_000, |_| true).unwrap(), 500);
    check_exact(&s);
}

#[test]
fn a_key_written_again_after_its_deletion_is_never_collected() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let p = key_partition(b"k", N);
    exec(&s, b"k", set("1", None), 100);
    del(&s, b"k", 200);
    exec(&s, b"k", set("2", Some(10_000)), 300);
    // A newer tombstone applied over an older one of the same millisecond
    // keeps exactly one index entry.
    exec(&s, b"j", set("1", None), 400);
    del(&s, b"j", 500);
    let newer = KeyRecord { key: Bytes::from_static(b"j"), record: Record::tombstone(s.clock().current() + 1) };
    assert_eq!(version_ms(newer.record.version), 500);
    assert_eq!(s.apply(key_partition(b"j", N), &[newer]).unwrap(), 1);
    check_exact(&s);
    assert_eq!(s.collect_tombstones(1_000, 1_000, |_| true).unwrap(), 1, "only j's tombstone");
    assert_eq!(get(&s, b"k", 1_000), Some(Bytes::from_static(b"2")));
    assert_eq!(s.counters()[p as usize].keys, 1);
    check_exact(&s);
}

/// A writer rewrites and deletes keys while collection runs on another
/// thread with no grace at all: every key reads as its last write.
#[test]
fn collection_racing_writes_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let keys: Vec<String> = (0..32).map(|i| format!("r{i}")).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut model = BTreeMap::new();
    std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let mut collected = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                collected += s.collect_tombstones(u64::MAX, 8, |_| true).unwrap();
            }
            collected
        });
        for round in 0..3_000u64 {
            let k = &keys[(round * 7 % 32) as usize];
            if round % 3 == 0 {
                del(&s, k.as_bytes(), 1_000 + round);
                model.insert(k.clone(), None);
            } else {
                exec(&s, k.as_bytes(), set(&round.to_string(), None), 1_000 + round);
                model.insert(k.clone(), Some(Bytes::from(round.to_string())));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(collector.join().unwrap() > 0, "the collector never collected: the race was not run");
    });
    for (k, v) in &model {
        assert_eq!(&get(&s, k.as_bytes(), 10_000), v, "{k}");
    }
    check_exact(&s);
}

/// A collected tombstone may have been its partition's newest write; the
/// clock must still resume above it, or a later write to the key would get
/// an older version than the deletion other nodes may have seen.
#[test]
fn versions_stay_above_a_collected_tombstone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let deleted_at = {
        let s = open(dir.path());
        exec(&s, b"k", set("v", None), 1_000);
        del(&s, b"k", 5_000);
        let version = s.clock().current();
        assert_eq!(s.collect_tombstones(6_000, 100, |_| true).unwrap(), 1);
        assert!(records(&s).is_empty());
        version
    };
    let s = open(dir.path());
    assert!(s.clock().current() >= deleted_at, "the clock resumed below a version it issued");
}

/// More due entries of a partition this node no longer owns (in bake
/// after a move, or imported and not yet cut over) than one sweep examines
/// must not keep an owned partition's keys from expiring, and stay for
/// whoever owns the partition next.
#[test]
fn due_entries_of_partitions_not_owned_do_not_starve_owned_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (moved, owned) = (1, 6);
    for k in keys_in(moved, 1_500) {
        exec(&s, k.as_bytes(), set("v", Some(100)), 10);
    }
    for k in keys_in(owned, 20) {
        exec(&s, k.as_bytes(), set("v", Some(200)), 10);
    }
    assert_eq!(s.sweep_expired(1_000, 1_000, |p| p != moved).unwrap(), 20);
    assert_eq!(s.counters()[owned as usize].keys, 0);
    assert_eq!(s.counters()[moved as usize].keys, 1_500, "another node's partition is not touched");
    // Owned again (a rollback): its entries were all kept.
    assert_eq!(s.sweep_expired(1_000, 1_000, |_| true).unwrap(), 1_000);
    assert_eq!(s.sweep_expired(1_000, 1_000, |_| true).unwrap(), 500);
    assert_eq!(s.counters()[moved as usize].keys, 0);
}

/// A retired partition's index entries are stale until compaction removes
/// them: a pass charges the partition once, to find it retired, and
/// skips it for free after that, as it does a partition with nothing due.
/// It used to charge it every pass (the interleaved proptest below found
/// two stores, one retired partition and one emptied by tombstone
/// collection, sweeping different keys with the same budgets).
#[test]
fn a_retired_partition_costs_a_pass_nothing_after_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (retired, live) = (0, 1);
    for k in keys_in(retired, 3).iter().chain(&keys_in(live, 2)) {
        exec(&s, k.as_bytes(), set("v", Some(100)), 10);
    }
    // Nothing is due yet: every partition's bound is read and settled.
    assert_eq!(s.sweep_expired(50, 1_000, |_| true).unwrap(), 0);
    assert!(s.retire(retired).unwrap() > 0);
    // Passes of one entry, round robin from partition 0: the first finds
    // it retired (its one unit), the second expires a key of partition 1.
    assert_eq!(s.sweep_expired(1_000, 1, |_| true).unwrap(), 0);
    assert_eq!(s.sweep_expired(1_000, 1, |_| true).unwrap(), 1);
    // The third comes round to partition 0 again and, charged nothing
    // there, reaches partition 1's other key.
    assert_eq!(s.sweep_expired(1_000, 1, |_| true).unwrap(), 1);
    assert_eq!(s.counters()[live as usize].keys, 0);
}

/// A store written before the indexes were partition-major (a time-major
/// `expiry` keyspace, no tombstone index) gets both rebuilt at open.
#[test]
fn indexes_of_an_older_store_are_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let s = open(dir.path());
        for i in 0..50 {
            let k = format!("o{i}");
            exec(&s, k.as_bytes(), set("v", (i % 2 == 0).then_some(1_000 + i)), 10);
            if i % 5 == 0 {
                del(&s, k.as_bytes(), 20);
            }
        }
        let expected = (index_keys(&s, &s.expiring), index_keys(&s, &s.tombstones));
        let legacy = s.db.keyspace(LEGACY_EXPIRY, KeyspaceCreateOptions::default).unwrap();
        legacy.insert(b"old-layout-entry", b"").unwrap();
        for index in [&s.expiring, &s.tombstones] {
            for k in index_keys(&s, index) {
                index.keys.remove(k).unwrap();
            }
        }
        s.meta.remove(INDEX_FORMAT_KEY).unwrap();
        expected
    };
    let s = open(dir.path());
    assert_eq!((index_keys(&s, &s.expiring), index_keys(&s, &s.tombstones)), expected);
    assert!(!s.db.keyspace_exists(LEGACY_EXPIRY));
    check_exact(&s);
    assert_eq!(s.sweep_expired(2_000, 1_000, |_| true).unwrap(), 20, "keys 0, 2, .. 48 less the deleted 0, 10, .. 40");
}

/// Interleaves writes, deletions, expiries, applies, sweeps, collections,
/// drops and reopens on a store that collects (`gc`) and one that never
/// does (`kept`), with the same clock readings, so both issue the same
/// versions. What `gc` holds must be `kept` less some tombstones: every
/// read, key count and digest equal; counters and indexes exact.
mod interleaved {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Set { key: u8, value: u8, ttl: Option<u8> },
        Del { key: u8 },
        Incr { key: u8 },
        Expire { key: u8, in_ms: u8 },
        /// A record from elsewhere, newer than anything here.
        Apply { key: u8, tombstone: bool },
        Sweep { advance: u8, max: u8 },
        Collect { grace: u8, max: u8, skip: Option<u8> },
        DropAll { partition: u8 },
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..24u8, any::<u8>(), proptest::option::of(1..40u8)).prop_map(|(key, value, ttl)| Step::Set { key, value, ttl }),
            3 => (0..24u8).prop_map(|key| Step::Del { key }),
            1 => (0..24u8).prop_map(|key| Step::Incr { key }),
            1 => (0..24u8, 0..40u8).prop_map(|(key, in_ms)| Step::Expire { key, in_ms }),
            1 => (0..24u8, any::<bool>()).prop_map(|(key, tombstone)| Step::Apply { key, tombstone }),
            2 => (0..50u8, 0..8u8).prop_map(|(advance, max)| Step::Sweep { advance, max }),
            3 => (0..30u8, 0..8u8, proptest::option::of(0..N as u8)).prop_map(|(grace, max, skip)| Step::Collect { grace, max, skip }),
            1 => (0..N as u8).prop_map(|partition| Step::DropAll { partition }),
            1 => Just(Step::Reopen),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        format!("k{k}").into_bytes()
    }

    /// A pass budget: small ones stop passes midway; 0 stands for "all".
    fn budget(max: u8) -> usize {
        if max == 0 { 10_000 } else { max as usize }
    }

    /// The clock reading, and the highest `before` any collection used.
    struct Clock {
        now: u64,
        collected_below: u64,
    }

    /// Runs `step` on both stores (collections on `gc` only).
    fn run(gc: &Store, kept: &Store, step: &Step, clock: &mut Clock) {
        clock.now += 1;
        let now = &mut clock.now;
        let both = |f: &dyn Fn(&Store)| {
            f(gc);
            f(kept);
        };
        let t = *now;
        match step {
            Step::Set { key: k, value, ttl } => both(&|s| {
                let _ = exec(s, &key(*k), set(&value.to_string(), ttl.map(|d| t + d as u64)), t);
            }),
            Step::Del { key: k } => both(&|s| del(s, &key(*k), t)),
            Step::Incr { key: k } => both(&|s| {
                let _ = exec(s, &key(*k), Kind::IncrBy(pb::IncrBy { delta: 1 }), t);
            }),
            Step::Expire { key: k, in_ms } => {
                let expire = Kind::Expire(pb::Expire { at_ms: (t + *in_ms as u64) as i64, condition: 0 });
                both(&|s| {
                    let _ = exec(s, &key(*k), expire.clone(), t);
                });
            }
            Step::Apply { key: k, tombstone } => {
                let version = t << 16 | 0x8000;
                let record = if *tombstone { Record::tombstone(version) } else { Record::value(Bytes::from_static(b"a"), None, version) };
                let kr = KeyRecord { key: Bytes::from(key(*k)), record };
                both(&|s| {
                    s.apply(key_partition(&key(*k), N), std::slice::from_ref(&kr)).unwrap();
                });
            }
            Step::Sweep { advance, max } => {
                *now += *advance as u64;
                let t = *now;
                both(&|s| {
                    s.sweep_expired(t, budget(*max), |_| true).unwrap();
                });
                if *max == 0 {
                    let due = records(gc).into_values().filter(|r| r.value.is_some() && r.is_expired(t)).count();
                    assert_eq!(due, 0, "a full sweep left expired values");
                }
            }
            Step::Collect { grace, max, skip } => {
                let before = t.saturating_sub(*grace as u64);
                clock.collected_below = clock.collected_below.max(before);
                collect(gc, before, *max, skip.map(|p| p as PartitionId));
            }
            Step::DropAll { partition } => both(&|s| {
                s.retire(*partition as PartitionId).unwrap();
            }),
            Step::Reopen => unreachable!("the caller reopens"),
        }
    }

    fn collect(gc: &Store, before: u64, max: u8, skip: Option<PartitionId>) {
        gc.collect_tombstones(before, budget(max), |p| Some(p) != skip).unwrap();
        if max == 0 {
            let old = records(gc).into_iter().filter(|(k, r)| r.value.is_none() && version_ms(r.version) < before && Some(partition_of(k)) != skip).count();
            assert_eq!(old, 0, "a full collection left old tombstones of eligible partitions");
        }
    }

    /// `gc` holds `kept`'s records less some tombstones older than any
    /// collection's horizon, reads the same, and keeps exact counters and
    /// indexes.
    fn compare(gc: &Store, kept: &Store, clock: &Clock) {
        let (now, kept_records) = (clock.now, records(kept));
        for (k, r) in records(gc) {
            assert_eq!(kept_records.get(&k), Some(&r), "a record the other store does not hold");
        }
        let gc_records = records(gc);
        for (k, r) in &kept_records {
            assert!(gc_records.contains_key(k) || r.value.is_none(), "a value was collected");
            assert!(gc_records.contains_key(k) || version_ms(r.version) < clock.collected_below, "a tombstone younger than the grace was collected");
        }
        for k in 0..24 {
            assert_eq!(get(gc, &key(k), now), get(kept, &key(k), now));
        }
        for p in 0..N {
            assert_eq!(sum(gc, p), sum(kept, p));
        }
        check_exact(gc);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn collecting_tombstones_changes_nothing_a_client_or_checksum_sees(steps in proptest::collection::vec(step(), 1..60)) {
            let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (mut gc, mut kept) = (open(d1.path()), open(d2.path()));
            let mut clock = Clock { now: 10, collected_below: 0 };
            for step in &steps {
                if let Step::Reopen = step {
                    let counters = gc.counters();
                    drop(gc);
                    drop(kept);
                    (gc, kept) = (open(d1.path()), open(d2.path()));
                    prop_assert_eq!(gc.counters(), counters);
                } else {
                    run(&gc, &kept, step, &mut clock);
                }
                compare(&gc, &kept, &clock);
            }
        }
    }
}
