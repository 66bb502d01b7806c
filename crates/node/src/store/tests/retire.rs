//! Dropping a partition by retiring it: it reads as empty at once, the
//! compaction filter removes its items, and it is revived (what is left
//! deleted) before it is written again.

use super::gc::{check_exact, partition_of};
use super::migration::{copy_all, keys_in, sum};
use super::*;

/// Items of `partition` physically in each keyspace (stale ones included).
fn held(s: &Store, partition: PartitionId) -> [usize; 4] {
    let (start, end) = s.partition_range(partition).unwrap();
    let prefix = partition.to_be_bytes();
    [
        s.data.range(start..end).count(),
        s.log.prefix(prefix).count(),
        s.expiring.keys.prefix(prefix).count(),
        s.tombstones.keys.prefix(prefix).count(),
    ]
}

/// Flushes every partition keyspace's memtable into a table.
fn flush_all(s: &Store) {
    for ks in s.partition_keyspaces() {
        ks.rotate_memtable_and_wait().unwrap();
    }
}

/// Flushes every keyspace and compacts it into its last level, so the
/// compaction filter sees every item.
fn compact_all(s: &Store) {
    flush_all(s);
    for ks in s.partition_keyspaces() {
        ks.major_compact().unwrap();
    }
}

/// Writes `n` keys of `p` with an expiry, then deletes every third, so the
/// partition has records, tombstones, both index kinds and a change log.
fn fill(s: &Store, p: PartitionId, n: usize, now: u64) -> Vec<String> {
    let keys = keys_in(p, n);
    for k in &keys {
        exec(s, k.as_bytes(), set("v", Some(1_000_000)), now);
    }
    for k in keys.iter().step_by(3) {
        exec(s, k.as_bytes(), Kind::Del(pb::Del::default()), now);
    }
    keys
}

#[test]
fn a_retired_partition_reads_as_empty_at_once_and_compaction_removes_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (p, other) = (2, 5);
    let keys = fill(&s, p, 30, 10);
    fill(&s, other, 6, 10);
    let before = s.counters()[p as usize];
    assert_eq!((before.keys, before.tombstones, before.log_next - before.log_first), (20, 10, 40));

    assert_eq!(s.retire(p).unwrap(), 20 + 10 + 40, "records and change-log entries");
    // Nothing was deleted: the items are still there, and nothing reads them.
    assert!(held(&s, p).iter().all(|&n| n > 0), "{:?}", held(&s, p));
    let c = s.counters()[p as usize];
    assert_eq!((c.keys, c.bytes, c.tombstones, c.digest, c.log_first, c.log_next), (0, 0, 0, 0, before.log_next, before.log_next));
    assert_eq!(get(&s, keys[1].as_bytes(), 20), None);
    assert!(s.snapshot_chunk(p, None, 100, u64::MAX).unwrap().records.is_empty());
    assert_eq!(sum(&s, p), Checksum::default());
    assert_eq!(s.scan(p, 0, 100, 20, None).unwrap().0, Vec::<Bytes>::new());
    assert!(matches!(s.read_log(p, before.log_next, 100, u64::MAX).unwrap(), LogRead::Entries { ref entries, .. } if entries.is_empty()));
    assert_eq!(s.sweep_expired(2_000_000, 1000, |_| true).unwrap(), 6 - 2, "only the other partition's values expire");
    assert_eq!(s.collect_tombstones(u64::MAX, 1000, |_| true).unwrap(), 2 + 4, "only the other partition's tombstones");
    assert_eq!(s.retire(p).unwrap(), 0, "retiring again finds nothing");
    check_exact(&s);

    // Across a restart it stays retired: the recovery scan counts nothing of it.
    drop(s);
    let s = open(dir.path());
    assert!(s.is_retired(p));
    assert_eq!(s.counters()[p as usize], c);
    assert_eq!(get(&s, keys[1].as_bytes(), 20), None);

    // Compaction removes every item of the partition and none of the other's.
    assert_eq!(s.retired_partitions(), 1);
    let other_after_gc = held(&s, other);
    compact_all(&s);
    assert_eq!(held(&s, p), [0; 4]);
    assert_eq!(held(&s, other), other_after_gc);
    check_exact(&s);

    // A restart may replay the partition's writes from the journal (see the
    // module docs): the marker must, and does, still hide them.
    drop(s);
    let s = open(dir.path());
    assert!(s.is_retired(p));
    assert_eq!(s.retired_partitions(), 1);
    assert_eq!(s.counters()[p as usize], c);
    assert_eq!(get(&s, keys[1].as_bytes(), 20), None);
    assert!(s.snapshot_chunk(p, None, 100, u64::MAX).unwrap().records.is_empty());
    check_exact(&s);
}

#[test]
fn a_partition_imported_again_is_revived_first_so_no_old_record_comes_back_or_miscounts() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s, source) = (open(d1.path()), open(d2.path()));
    let p = 3;
    let keys = fill(&s, p, 24, 10);
    // The partition moves away: the source gets the same records (same
    // versions), then this node's copy is dropped.
    copy_all(&s, &source, p, 7);
    s.retire(p).unwrap();
    drop(s);
    let s = open(d1.path());
    // Meanwhile, at the new owner: one key deleted and its tombstone
    // collected (so the import never mentions it), one key rewritten.
    exec(&source, keys[1].as_bytes(), Kind::Del(pb::Del::default()), 30);
    source.collect_tombstones(u64::MAX, 1000, |_| true).unwrap();
    exec(&source, keys[2].as_bytes(), set("new", None), 30);

    // It moves back before compaction removed the old copy here.
    assert!(held(&s, p)[0] > 0, "the old records are still in the engine");
    copy_all(&source, &s, p, 5);
    assert!(!s.is_retired(p));
    assert_eq!(sum(&s, p), sum(&source, p), "unchanged keys (same version as the old copy) are counted");
    assert_eq!(get(&s, keys[1].as_bytes(), 40), None, "the key deleted elsewhere does not come back");
    assert_eq!(get(&s, keys[2].as_bytes(), 40), Some(Bytes::from_static(b"new")));
    check_exact(&s);
    // The old change log is gone; the new one continues after the floor.
    let c = s.counters()[p as usize];
    assert_eq!(s.log.prefix(p.to_be_bytes()).count() as u64, c.log_next - c.log_first);
    drop(s);
    let s = open(d1.path());
    assert!(!s.is_retired(p));
    assert_eq!(sum(&s, p), sum(&source, p));
    check_exact(&s);
}

#[test]
fn a_client_write_to_a_retired_partition_revives_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let p = 4;
    let keys = fill(&s, p, 12, 10);
    s.retire(p).unwrap();
    exec(&s, keys[1].as_bytes(), Kind::IncrBy(pb::IncrBy { delta: 5 }), 20);
    assert!(!s.is_retired(p));
    assert_eq!(get(&s, keys[1].as_bytes(), 20), Some(Bytes::from_static(b"5")), "the old value is gone, not incremented");
    assert_eq!(get(&s, keys[4].as_bytes(), 20), None);
    assert_eq!(s.counters()[p as usize].keys, 1);
    assert_eq!(held(&s, p)[0], 1, "the old records were deleted");
    check_exact(&s);
    for k in s.data.iter().map(|kv| kv.key().unwrap()) {
        assert!(partition_of(&k) != p || k[2..] == *keys[1].as_bytes());
    }
}

#[test]
fn tables_holding_only_a_retired_partition_are_deleted_at_once_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (p, q) = (1, 6);
    // One flush with only p's items, then one with only q's: a table of
    // each in every partition keyspace.
    let keys = fill(&s, p, 40, 10);
    flush_all(&s);
    let others = fill(&s, q, 20, 10);
    flush_all(&s);
    let tables: usize = s.partition_keyspaces().iter().map(|ks| ks.table_count()).sum();
    let q_before = (s.counters()[q as usize], held(&s, q));
    assert_eq!(s.drop_retired_tables(p).unwrap(), 0, "nothing is dropped while the partition is live");

    s.retire(p).unwrap();
    assert_eq!(s.drop_retired_tables(p).unwrap(), 4, "p's table in each of the four keyspaces");
    assert_eq!(s.partition_keyspaces().iter().map(|ks| ks.table_count()).sum::<usize>(), tables - 4);
    assert_eq!(held(&s, p), [0; 4], "gone without a compaction");
    assert_eq!((s.counters()[q as usize], held(&s, q)), q_before);
    assert_eq!(get(&s, others[1].as_bytes(), 20), Some(Bytes::from_static(b"v")));
    check_exact(&s);

    // A revived partition is never touched: its new data survives.
    exec(&s, keys[0].as_bytes(), set("new", None), 30);
    flush_all(&s);
    assert_eq!(s.drop_retired_tables(p).unwrap(), 0);
    assert_eq!(get(&s, keys[0].as_bytes(), 40), Some(Bytes::from_static(b"new")));
    drop(s);
    let s = open(dir.path());
    assert_eq!(get(&s, keys[0].as_bytes(), 40), Some(Bytes::from_static(b"new")));
    assert_eq!(get(&s, others[1].as_bytes(), 40), Some(Bytes::from_static(b"v")));
    check_exact(&s);
}

#[test]
fn a_partition_revived_after_compaction_emptied_it_stays_clean_across_restarts() {
    // Compaction removed the items and a restart may replay journal batches
    // (see the module docs); neither may bring an old record back once a
    // write has revived the partition.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let p = 2;
    let keys = fill(&s, p, 30, 10);
    fill(&s, 5, 6, 10);
    s.retire(p).unwrap();
    drop(s);
    let mut s = open(dir.path());
    compact_all(&s);
    assert_eq!(held(&s, p), [0; 4]);
    exec(&s, keys[1].as_bytes(), set("new", None), 20);
    assert!(!s.is_retired(p));
    for _ in 0..2 {
        drop(s);
        s = open(dir.path());
        assert!(!s.is_retired(p));
        assert_eq!(held(&s, p), [1, 1, 0, 0], "the new record and its log entry, nothing old");
        assert_eq!(get(&s, keys[0].as_bytes(), 30), None);
        assert_eq!(get(&s, keys[1].as_bytes(), 30), Some(Bytes::from_static(b"new")));
        check_exact(&s);
    }
}
