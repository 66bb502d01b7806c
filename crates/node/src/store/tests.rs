use super::*;
use evenkeel_types::slot::key_partition;

const N: u16 = 8;

fn open(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir, N);
    cfg.log_retention_entries = 10;
    cfg.cache_bytes = 8 << 20;
    // Every store test runs through a small row cache, so evictions happen
    // too.
    cfg.row_cache_bytes = 1 << 20;
    Store::open(cfg).unwrap()
}

fn set(value: &str, expire_at_ms: Option<u64>) -> Kind {
    Kind::Set(pb::Set {
        value: Bytes::from(value.to_string()),
        expiry: expire_at_ms.map(pb::set::Expiry::ExpireAtMs),
        condition: 0,
        get: false,
    })
}

fn get(store: &Store, key: &[u8], now: u64) -> Option<Bytes> {
    match store.execute(key_partition(key, N), key, &Kind::Get(pb::Get::default()), now).unwrap() {
        R::Value(v) => Some(v.value),
        R::Nil(_) => None,
        other => panic!("unexpected {other:?}"),
    }
}

fn exec(store: &Store, key: &[u8], kind: Kind, now: u64) -> R {
    store.execute(key_partition(key, N), key, &kind, now).unwrap()
}

#[test]
fn writes_survive_reopen_with_counters_log_and_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (counters, clock) = {
        let s = open(dir.path());
        exec(&s, b"a", set("1", None), 1000);
        exec(&s, b"b", set("22", Some(5000)), 1000);
        exec(&s, b"a", Kind::Del(pb::Del::default()), 1000);
        (s.counters(), s.clock().current())
    };
    let s = open(dir.path());
    assert_eq!(s.counters(), counters);
    assert!(s.clock().current() >= clock);
    assert_eq!(get(&s, b"a", 1001), None);
    assert_eq!(get(&s, b"b", 1001), Some(Bytes::from_static(b"22")));
    let total: u64 = s.counters().iter().map(|c| c.keys).sum();
    assert_eq!(total, 1, "a is a tombstone, b is live");
    let logged: u64 = s.counters().iter().map(|c| c.log_next - c.log_first).sum();
    assert_eq!(logged, 3);
}

/// RENAME and MSETNX read and write several keys of one partition under
/// its lock and commit them in one batch: each key's record, its change-log
/// entry and the counters move together, as they would for single writes,
/// and survive a reopen. A key of another partition is refused.
#[test]
fn multi_key_operations_commit_their_keys_together() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (&b"{multi}a"[..], &b"{multi}b"[..]);
    let p = key_partition(a, N);
    let counters = {
        let s = open(dir.path());
        exec(&s, a, set("v", Some(9_000)), 1_000);
        exec(&s, b, set("old", None), 1_000);
        let before = s.counters()[p as usize];
        assert_eq!(exec(&s, a, Kind::Rename(pb::Rename { to: Bytes::from_static(b"{multi}b"), nx: false }), 1_000), R::Integer(1));
        let after = s.counters()[p as usize];
        assert_eq!(after.log_next, before.log_next + 2, "a tombstone and a value logged");
        assert_eq!((after.keys, after.tombstones), (1, 1));
        assert_eq!(get(&s, a, 1_000), None);
        assert_eq!(get(&s, b, 1_000), Some(Bytes::from_static(b"v")));
        let (keys, values) = (vec![Bytes::from_static(b"{multi}a"), Bytes::from_static(b"{multi}c")], vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]);
        assert_eq!(exec(&s, a, Kind::MsetNx(pb::MsetNx { keys: keys.clone(), values: values.clone() }), 1_000), R::Integer(1));
        assert_eq!(s.counters()[p as usize].keys, 3);
        let blocked = pb::MsetNx { keys: vec![Bytes::from_static(b"{multi}d"), Bytes::from_static(b"{multi}b")], values };
        assert_eq!(exec(&s, a, Kind::MsetNx(blocked), 1_000), R::Integer(0));
        assert_eq!(get(&s, b"{multi}d", 1_000), None, "nothing set when one key exists");
        let elsewhere = (0u32..).map(|i| format!("other{i}").into_bytes()).find(|k| key_partition(k, N) != p).unwrap();
        let refused = s.execute(p, a, &Kind::Rename(pb::Rename { to: Bytes::from(elsewhere), nx: false }), 1_000);
        assert!(matches!(refused, Err(StoreError::WrongPartition { .. })), "{refused:?}");
        s.counters()
    };
    let s = open(dir.path());
    assert_eq!(s.counters(), counters);
    assert_eq!(get(&s, b, 1_000), Some(Bytes::from_static(b"v")));
    assert_eq!(get(&s, b"{multi}c", 1_000), Some(Bytes::from_static(b"2")));
}

/// A transaction's ops see its earlier writes, and only each key's last
/// record is stored (one log entry per key), all in one batch; a key
/// outside the partition fails it whole, with nothing written.
#[test]
fn a_transaction_reads_its_own_writes_and_commits_them_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (a, b) = (Bytes::from_static(b"{tx}a"), Bytes::from_static(b"{tx}b"));
    let p = key_partition(&a, N);
    let op = |key: &Bytes, kind: Kind| pb::Op { partition: 0, key: key.clone(), kind: Some(kind), want_record: false, track: false, waiter: 0 };
    let tx = |ops| Kind::Transaction(pb::Transaction { ops, watched: Vec::new() });
    let before = s.counters()[p as usize];
    let ops = vec![
        op(&a, set("1", None)),
        op(&a, Kind::IncrBy(pb::IncrBy { delta: 5 })),
        op(&a, Kind::Get(pb::Get::default())),
        op(&a, Kind::Rename(pb::Rename { to: b.clone(), nx: false })),
        op(&b, Kind::Append(pb::Append { value: Bytes::from_static(b"x") })),
    ];
    let R::Transaction(t) = exec(&s, &a, tx(ops), 1_000) else { panic!("a transaction's results") };
    let replies: Vec<R> = t.results.into_iter().map(|r| r.result.unwrap()).collect();
    assert_eq!(replies[1], R::Integer(6));
    assert!(matches!(&replies[2], R::Value(v) if &v.value[..] == b"6"), "{:?}", replies[2]);
    assert_eq!((replies[3].clone(), replies[4].clone()), (R::Integer(1), R::Integer(2)));
    let after = s.counters()[p as usize];
    assert_eq!(after.log_next, before.log_next + 2, "one entry per key: a's tombstone, b's value");
    assert_eq!((get(&s, &a, 1_000), get(&s, &b, 1_000)), (None, Some(Bytes::from_static(b"6x"))));
    let elsewhere = (0u32..).map(|i| Bytes::from(format!("other{i}"))).find(|k| key_partition(k, N) != p).unwrap();
    let failed = s.execute(p, &a, &tx(vec![op(&a, set("lost", None)), op(&elsewhere, set("x", None))]), 1_000);
    assert!(matches!(failed, Err(StoreError::WrongPartition { .. })), "{failed:?}");
    assert_eq!(get(&s, &a, 1_000), None, "nothing of a failed transaction is written");
    assert_eq!(s.counters()[p as usize], after);
}

/// A transaction runs only if every watched key is as WATCH saw it: the
/// same stored version, and still live if it was. A write (even one that
/// changes nothing a reader sees), a deletion, or an expiry since aborts
/// it with nothing written; an untouched key, live or absent, does not.
#[test]
fn a_transaction_runs_only_if_its_watched_keys_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (a, b, c) = (Bytes::from_static(b"{w}a"), Bytes::from_static(b"{w}b"), Bytes::from_static(b"{w}c"));
    let watch = |key: &Bytes, now| match exec(&s, key, Kind::Watch(pb::Watch {}), now) {
        R::Watched(w) => pb::WatchedKey { key: key.clone(), seen: Some(w) },
        other => panic!("a watch answers Watched: {other:?}"),
    };
    let run = |watched: Vec<pb::WatchedKey>, now| {
        let ops = vec![pb::Op { partition: 0, key: c.clone(), kind: Some(Kind::IncrBy(pb::IncrBy { delta: 1 })), want_record: false, track: false, waiter: 0 }];
        match exec(&s, &c, Kind::Transaction(pb::Transaction { ops, watched }), now) {
            R::Transaction(t) => (t.aborted, t.results.len()),
            other => panic!("a transaction's results: {other:?}"),
        }
    };
    exec(&s, &a, set("1", None), 1_000);
    let (live, absent) = (watch(&a, 1_000), watch(&b, 1_000));
    assert!(live.seen.unwrap().live && live.seen.unwrap().version > 0);
    assert_eq!(absent.seen, Some(pb::Watched { version: 0, live: false }));
    assert_eq!(run(vec![live.clone(), absent.clone()], 1_000), (false, 1), "nothing changed");
    exec(&s, &a, set("1", None), 1_001);
    assert_eq!(run(vec![live, absent.clone()], 1_001), (true, 0), "rewritten with the same value");
    assert_eq!(get(&s, &c, 1_001), Some(Bytes::from_static(b"1")), "the aborted INCR did not run");
    exec(&s, &b, set("x", None), 1_002);
    exec(&s, &b, Kind::Del(pb::Del::default()), 1_003);
    assert_eq!(run(vec![absent], 1_003), (true, 0), "created and deleted again");
    exec(&s, &a, set("v", Some(2_000)), 1_004);
    let expiring = watch(&a, 1_004);
    assert_eq!(run(vec![expiring.clone()], 1_999), (false, 1), "still live");
    assert_eq!(run(vec![expiring], 2_000), (true, 0), "expired since WATCH");
}

#[test]
fn writes_are_called_at_risk_of_stalling_before_the_engine_brakes() {
    assert!(!stall_risk(0, 0));
    assert!(!stall_risk(13, 1));
    assert!(stall_risk(14, 0), "well before fjall's 20 level-0 runs");
    assert!(stall_risk(0, 2), "well before fjall's 4 sealed memtables");
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    exec(&s, b"a", set("1", None), 1000);
    assert!(!s.write_may_stall(), "a fresh store has no debt");
}

/// The background fsync finds the engine's journal by its file name; if a
/// new fjall named it differently, nothing would be fsynced any more.
#[test]
fn background_fsync_finds_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    exec(&s, b"a", set("1", None), 1000);
    assert!(s.sync_journals().unwrap() >= 1, "no journal file found in {}", dir.path().display());
}

#[test]
fn change_log_retention_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let p = key_partition(b"k", N) as usize;
    for i in 0..1000 {
        exec(&s, b"k", set(&i.to_string(), None), 1000);
    }
    let c = s.counters()[p];
    assert_eq!(c.log_next, 1000);
    assert!(c.log_next - c.log_first <= 10 + TRIM_SLACK, "{c:?}");
    let on_disk = s.log.prefix((p as u16).to_be_bytes()).count() as u64;
    assert_eq!(on_disk, c.log_next - c.log_first);
    drop(s);
    assert_eq!(open(dir.path()).counters()[p], c);
}

/// A migration's hold keeps the log from where it reads, past the
/// retention; it follows the reader, is bounded, lapses, and is not kept
/// across a reopen.
#[test]
fn a_migrations_hold_keeps_the_change_log_it_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let open_held = || {
        let mut cfg = StoreConfig::new(dir.path(), N);
        cfg.log_retention_entries = 100;
        Store::open(cfg).unwrap()
    };
    let s = open_held();
    let p = key_partition(b"k", N);
    let write = |n: usize| {
        for i in 0..n {
            exec(&s, b"k", set(&i.to_string(), None), 1000);
        }
    };
    let now = evenkeel_types::unix_ms;
    write(20);
    s.hold_log(p, HoldFrom::Reader(5), now()).unwrap();
    write(1000);
    let c = s.counters()[p as usize];
    assert_eq!((c.log_first, c.log_next), (5, 1020), "held from 5: only what lies before it trimmed (100 kept without the hold)");
    assert!(matches!(s.read_log(p, 5, 10, u64::MAX).unwrap(), LogRead::Entries { .. }));
    // The reader moved on to 900: the log behind it goes.
    s.hold_log(p, HoldFrom::Reader(900), now()).unwrap();
    write(400);
    assert_eq!(s.counters()[p as usize].log_first, 900);
    // Renewed where it is (a snapshot page), it stays at 900.
    s.hold_log(p, HoldFrom::Renew, now()).unwrap();
    assert_eq!(s.counters()[p as usize].log_hold.map(|h| h.from), Some(900));
    // A begin over a live hold (a new leader taking the migration over)
    // keeps it where it is.
    s.hold_log(p, HoldFrom::Begin, now()).unwrap();
    assert_eq!(s.counters()[p as usize].log_hold.map(|h| h.from), Some(900));
    // Bounded: past 16 times the retention (1,600 entries) it holds nothing.
    s.hold_log(p, HoldFrom::Reader(1420), now()).unwrap();
    write(1700);
    let c = s.counters()[p as usize];
    assert!(c.log_next == 3120 && c.log_first > 1420, "trimmed as without a hold: {c:?}");
    assert!(matches!(s.read_log(p, 1420, 10, u64::MAX).unwrap(), LogRead::Truncated { .. }));
    // A hold nobody renewed for a minute has lapsed.
    s.hold_log(p, HoldFrom::Reader(3100), now() - 2 * LOG_HOLD_MS).unwrap();
    write(400);
    assert!(s.counters()[p as usize].log_first > 3100, "{:?}", s.counters()[p as usize]);
    // With none live, a begin holds from the log's head.
    s.hold_log(p, HoldFrom::Reader(0), now() - 2 * LOG_HOLD_MS).unwrap();
    s.hold_log(p, HoldFrom::Begin, now()).unwrap();
    assert_eq!(s.counters()[p as usize].log_hold.map(|h| h.from), Some(3520));
    drop(s);
    assert_eq!(open_held().counters()[p as usize].log_hold, None, "holds are in memory only");
}

/// Large records are bounded by bytes, not only by count: 200 writes of a
/// 64 KiB value under a 1 MiB bound keep about 14 entries (7/8 of the
/// bound after each trim), the byte count matches what is on disk, and it
/// survives a reopen.
#[test]
fn change_log_retention_is_bounded_by_bytes_too() {
    let dir = tempfile::tempdir().unwrap();
    let open_bounded = |bytes: u64| {
        let mut cfg = StoreConfig::new(dir.path(), N);
        cfg.log_retention_bytes = bytes;
        Store::open(cfg).unwrap()
    };
    let s = open_bounded(1 << 20);
    let p = key_partition(b"big", N) as usize;
    // Whole entries (a bigger record is logged by reference).
    let value = "x".repeat(6 << 10);
    for _ in 0..200 {
        exec(&s, b"big", set(&value, None), 1000);
    }
    let c = s.counters()[p];
    assert_eq!(c.log_next, 200);
    let on_disk: Vec<(usize, u64)> = s.log.prefix((p as u16).to_be_bytes()).map(|kv| kv.into_inner().unwrap()).map(|(k, v)| (k.len() + v.len(), log_position(&k).unwrap())).collect();
    assert_eq!(on_disk.iter().map(|(len, _)| *len as u64).sum::<u64>(), c.log_bytes, "the count is of what is on disk");
    assert_eq!(on_disk.first().map(|(_, pos)| *pos), Some(c.log_first));
    assert!(c.log_bytes <= 1 << 20 && c.log_next - c.log_first >= 10, "{c:?}");
    drop(s);
    assert_eq!(open_bounded(1 << 20).counters()[p], c, "rebuilt at open");
    // One record past the bound on its own stays: the newest entry is kept.
    let s = open_bounded(4 << 10);
    exec(&s, b"big", set(&"y".repeat(6 << 10), None), 1000);
    let c = s.counters()[p];
    assert_eq!((c.log_next - c.log_first, c.log_next), (1, 201), "{c:?}");
}

#[test]
fn refuses_keys_of_other_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let right = key_partition(b"x", N);
    let wrong = (right + 1) % N;
    let err = s.execute(wrong, b"x", &set("v", None), 1).unwrap_err();
    assert!(matches!(err, StoreError::WrongPartition { .. }));
    assert!(matches!(s.execute(N, b"x", &set("v", None), 1), Err(StoreError::NoSuchPartition(_))));
}

#[test]
fn partition_count_is_fixed_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let err = Store::open(StoreConfig::new(dir.path(), N + 1)).err().unwrap();
    assert!(matches!(err, StoreError::PartitionCountMismatch { found: 8, expected: 9 }));
}

#[test]
fn scan_returns_each_live_key_once_across_calls() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let keys: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    for k in &keys {
        exec(&s, k.as_bytes(), set("v", None), 10);
    }
    exec(&s, b"key:7", Kind::Del(pb::Del::default()), 10);
    let mut seen = Vec::new();
    for p in 0..N {
        let (start, end) = partition_slots(p, N);
        let mut slot = start;
        while slot < end {
            let (found, next) = s.scan(p, slot, 5, 11, None).unwrap();
            assert!(next > slot);
            seen.extend(found);
            slot = next;
        }
    }
    seen.sort();
    let mut expected: Vec<Bytes> = keys.iter().filter(|k| *k != "key:7").map(|k| Bytes::from(k.clone())).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn sweeper_deletes_expired_keys_of_owned_partitions_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    exec(&s, b"gone", set("v", Some(100)), 10);
    exec(&s, b"stays", set("v", Some(10_000)), 10);
    exec(&s, b"kept", set("v", Some(100)), 10);
    let kept_partition = key_partition(b"kept", N);
    assert_ne!(kept_partition, key_partition(b"gone", N), "test needs distinct partitions");
    let p = key_partition(b"gone", N) as usize;
    let log_before = s.counters()[p].log_next;
    let deleted = s.sweep_expired(200, 100, |p| p != kept_partition).unwrap();
    assert_eq!(deleted, 1);
    let total: u64 = s.counters().iter().map(|c| c.keys).sum();
    assert_eq!(total, 2);
    // The expired key's deletion went through the change log.
    assert_eq!(s.counters()[p].log_next, log_before + 1);
    // A second sweep finds nothing new for owned partitions.
    assert_eq!(s.sweep_expired(200, 100, |p| p != kept_partition).unwrap(), 0);
}

#[test]
fn overwriting_a_ttl_key_drops_its_expiry_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    exec(&s, b"k", set("v", Some(100)), 10);
    exec(&s, b"k", set("w", None), 10);
    assert_eq!(s.expiring.keys.iter().count(), 0);
    assert_eq!(s.sweep_expired(1_000, 100, |_| true).unwrap(), 0);
    assert_eq!(get(&s, b"k", 1_000), Some(Bytes::from_static(b"w")));
}

mod migration {
    use super::*;

    /// The partition's checksum, after checking that the running digest
    /// equals a full scan's.
    pub(super) fn sum(s: &Store, p: PartitionId) -> Checksum {
        let (fast, _) = s.checksum(p).unwrap();
        assert_eq!(fast, s.checksum_scan(p).unwrap(), "running digest of partition {p} drifted from its data");
        fast
    }

    pub(super) fn copy_all(src: &Store, dst: &Store, p: PartitionId, page: usize) -> (usize, u64) {
        let (mut cursor, mut pages, mut bytes) = (None::<Bytes>, 0, 0);
        loop {
            let chunk = src.snapshot_chunk(p, cursor.as_deref(), page, u64::MAX).unwrap();
            dst.apply(p, &chunk.records).unwrap();
            bytes += chunk.bytes;
            pages += 1;
            match chunk.cursor {
                Some(c) => cursor = Some(c),
                None => return (pages, bytes),
            }
        }
    }

    pub(super) fn keys_in(p: PartitionId, n: usize) -> Vec<String> {
        (0..).map(|i| format!("k{i}")).filter(|k| key_partition(k.as_bytes(), N) == p).take(n).collect()
    }

    /// A bulk thread (lowered priority) runs at normal priority while it
    /// holds a partition's lock, and lowered again once it lets go.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_lowered_thread_holds_a_partition_lock_at_normal_priority() {
        use crate::priority::{Priority, current_thread_priority};
        if !Priority::Idle.boostable() {
            eprintln!("no privilege to raise a thread's priority; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let (held, after) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    Priority::Idle.apply_to_current_thread().unwrap();
                    let held = {
                        let _lock = s.lock_partition(2).unwrap();
                        current_thread_priority().0
                    };
                    (held, current_thread_priority().0)
                })
                .join()
                .unwrap()
        });
        assert_eq!((held, after), (libc::SCHED_OTHER, libc::SCHED_IDLE));
    }

    #[test]
    fn snapshot_plus_log_converges_with_concurrent_writes() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, dst) = (open(d1.path()), open(d2.path()));
        let p = 3;
        let keys = keys_in(p, 50);
        for k in &keys {
            exec(&src, k.as_bytes(), set("v0", None), 10);
        }
        let start_pos = src.counters()[p as usize].log_next;
        // Writes land between snapshot pages: they must arrive via the log.
        let chunk = src.snapshot_chunk(p, None, 20, u64::MAX).unwrap();
        dst.apply(p, &chunk.records).unwrap();
        exec(&src, keys[0].as_bytes(), set("v1", None), 11);
        exec(&src, keys[45].as_bytes(), Kind::Del(pb::Del::default()), 11);
        let rest = src.snapshot_chunk(p, chunk.cursor.as_deref(), 1000, u64::MAX).unwrap();
        assert!(rest.cursor.is_none());
        dst.apply(p, &rest.records).unwrap();
        let LogRead::Entries { entries, next } = src.read_log(p, start_pos, 1000, u64::MAX).unwrap() else { panic!("truncated") };
        assert_eq!(entries.len(), 2);
        let records: Vec<KeyRecord> = entries.into_iter().map(|(_, r)| r).collect();
        dst.apply(p, &records).unwrap();
        // Applying everything again changes nothing (idempotent).
        assert_eq!(dst.apply(p, &records).unwrap(), 0);
        assert_eq!(next, src.counters()[p as usize].log_next);
        assert_eq!(sum(&src, p), sum(&dst, p));
        assert_eq!(get(&dst, keys[0].as_bytes(), 12), Some(Bytes::from_static(b"v1")));
        assert_eq!(get(&dst, keys[45].as_bytes(), 12), None);
        assert_eq!(dst.counters()[p as usize].keys, 49);
    }

    /// What a migration applies is a copy and stays out of the change log
    /// (nothing reads it there: reverse capture starts at the position the
    /// destination had before it served anything); what the node then
    /// serves is logged. After a reopen the copies, the counters and the
    /// clock (which must stay ahead of every version the node holds) come
    /// back from the data itself.
    #[test]
    fn applied_copies_stay_out_of_the_change_log_and_survive_a_reopen() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = open(d1.path());
        let p = 5;
        let keys = keys_in(p, 30);
        for k in &keys {
            exec(&src, k.as_bytes(), set("copied", None), 10);
        }
        let dst = open(d2.path());
        let (pages, _) = copy_all(&src, &dst, p, 7);
        assert!(pages > 1);
        let copied = dst.counters()[p as usize];
        assert_eq!((copied.keys, copied.log_first, copied.log_next), (30, 0, 0), "copies are counted but not logged");
        assert_eq!(dst.read_log(p, 0, 100, u64::MAX).unwrap(), LogRead::Entries { entries: vec![], next: 0 });
        let newest = src.clock().current();
        assert!(dst.clock().current() >= newest);

        exec(&dst, keys[3].as_bytes(), set("served", None), 20);
        let LogRead::Entries { entries, next } = dst.read_log(p, 0, 100, u64::MAX).unwrap() else { panic!("truncated") };
        assert_eq!((entries.len(), next), (1, 1), "a write the node serves is logged");
        assert_eq!((entries[0].1.key.as_ref(), entries[0].1.record.value.as_deref()), (keys[3].as_bytes(), Some(&b"served"[..])));

        let counters = dst.counters();
        drop(dst);
        let dst = open(d2.path());
        assert_eq!(dst.counters(), counters);
        assert!(dst.clock().current() >= newest, "the clock comes back above every copied version");
        assert_eq!(get(&dst, keys[0].as_bytes(), 30), Some(Bytes::from_static(b"copied")));
        assert_eq!(get(&dst, keys[3].as_bytes(), 30), Some(Bytes::from_static(b"served")));
        assert_eq!(sum(&src, p).keys, sum(&dst, p).keys);
    }

    #[test]
    fn older_versions_never_overwrite_newer_ones() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, dst) = (open(d1.path()), open(d2.path()));
        let p = key_partition(b"x", N);
        exec(&src, b"x", set("old", None), 10);
        let old = src.snapshot_chunk(p, None, 10, u64::MAX).unwrap().records;
        exec(&src, b"x", set("new", None), 10);
        let new = src.snapshot_chunk(p, None, 10, u64::MAX).unwrap().records;
        assert_eq!(dst.apply(p, &new).unwrap(), 1);
        assert_eq!(dst.apply(p, &old).unwrap(), 0);
        assert_eq!(get(&dst, b"x", 11), Some(Bytes::from_static(b"new")));
        // The destination's clock moved past what it applied, so its own
        // writes to the key will be newer.
        assert!(dst.clock().current() >= new[0].record.version);
    }

    /// A page in key order (as a snapshot sends it) finds what the
    /// destination already holds with one range read: keys it wrote
    /// itself since (newer) stay, older copies are replaced, and keys it
    /// holds that the page lacks, inside the page's span, are untouched.
    #[test]
    fn a_page_in_key_order_keeps_newer_replaces_older_and_skips_what_it_lacks() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, dst) = (open(d1.path()), open(d2.path()));
        let p = 2;
        let all = keys_in(p, 48);
        // Every sixth key exists only on the destination.
        let (only_dst, shared): (Vec<_>, Vec<_>) = all.iter().enumerate().partition(|(i, _)| i % 6 == 0);
        let shared: Vec<&String> = shared.into_iter().map(|(_, k)| k).collect();
        for k in &shared {
            exec(&src, k.as_bytes(), set("v0", None), 10);
        }
        let first = src.snapshot_chunk(p, None, 20, u64::MAX).unwrap();
        dst.apply(p, &first.records).unwrap();
        for (_, k) in &only_dst {
            exec(&dst, k.as_bytes(), set("only here", None), 30);
        }
        let mine = [shared[5], shared[17]];
        for k in mine {
            exec(&dst, k.as_bytes(), set("mine", None), 30);
        }
        for k in &shared {
            exec(&src, k.as_bytes(), set("v1", None), 20);
        }
        let page = src.snapshot_chunk(p, None, 1000, u64::MAX).unwrap().records;
        assert_eq!(page.len(), shared.len());
        // The case the range read exists for: destination-only keys inside
        // the span of a sub-batch.
        let dk = |k: &[u8]| data_key(key_slot(k), k);
        let inside = page.chunks(8).any(|c| only_dst.iter().any(|(_, k)| dk(k.as_bytes()) > dk(&c[0].key) && dk(k.as_bytes()) < dk(&c[c.len() - 1].key)));
        assert!(inside, "no destination-only key inside a sub-batch: the test would not test the range read");
        let applied: usize = page.chunks(8).map(|c| dst.apply(p, c).unwrap()).sum();
        assert_eq!(applied, shared.len() - mine.len());
        for k in &shared {
            let want: &[u8] = if mine.contains(k) { b"mine" } else { b"v1" };
            assert_eq!(get(&dst, k.as_bytes(), 40).as_deref(), Some(want), "{k}");
        }
        for (_, k) in &only_dst {
            assert_eq!(get(&dst, k.as_bytes(), 40).as_deref(), Some(&b"only here"[..]), "{k}");
        }
        assert_eq!(sum(&dst, p).keys, all.len() as u64);
    }

    #[test]
    fn paging_resumes_from_the_cursor_without_gaps_or_repeats() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, dst) = (open(d1.path()), open(d2.path()));
        // The last partition ends at slot 16384: its range bound is special.
        for p in [0, N - 1] {
            for k in keys_in(p, 37) {
                exec(&src, k.as_bytes(), set(&k, Some(1_000_000)), 10);
            }
            let (pages, bytes) = copy_all(&src, &dst, p, 5);
            assert_eq!(pages, 8);
            assert_eq!(bytes, src.counters()[p as usize].bytes);
            assert_eq!(sum(&src, p), sum(&dst, p));
            assert_eq!(sum(&dst, p).keys, 37);
        }
    }

    #[test]
    fn reading_a_trimmed_log_reports_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let p = key_partition(b"k", N);
        for i in 0..600 {
            exec(&s, b"k", set(&i.to_string(), None), 10);
        }
        let first = s.counters()[p as usize].log_first;
        assert!(first > 0);
        assert_eq!(s.read_log(p, 0, 10, u64::MAX).unwrap(), LogRead::Truncated { first });
        let LogRead::Entries { entries, next } = s.read_log(p, first, 3, u64::MAX).unwrap() else { panic!() };
        assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), vec![first, first + 1, first + 2]);
        assert_eq!(next, first + 3);
        let end = s.counters()[p as usize].log_next;
        assert_eq!(s.read_log(p, end, 10, u64::MAX).unwrap(), LogRead::Entries { entries: vec![], next: end });
    }

    /// A value past `LOG_WHOLE_MAX` bytes, filled with `fill`.
    pub(super) fn big(fill: u8) -> String {
        String::from_utf8(vec![fill; LOG_WHOLE_MAX + 1]).unwrap()
    }

    /// A big record enters the log as its key and version; a reader gets
    /// the key's record as it is when it reads, once per page (it covers the
    /// key's later entries, passed over even past the page's byte bound),
    /// pages end at their byte bound, and the entries survive a reopen (the
    /// clock comes back above their versions).
    #[test]
    fn a_big_write_is_logged_by_reference_and_read_as_the_record_now() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let p = 2;
        let keys = keys_in(p, 3);
        let before = s.counters()[p as usize];
        exec(&s, keys[0].as_bytes(), set(&big(b'a'), None), 10);
        let after = s.counters()[p as usize];
        assert_eq!(after.log_next, before.log_next + 1);
        assert!(after.log_bytes - before.log_bytes < 64, "a reference, not the record: {} bytes", after.log_bytes - before.log_bytes);
        exec(&s, keys[0].as_bytes(), set(&big(b'b'), None), 11);
        exec(&s, keys[1].as_bytes(), set("small", None), 12);
        exec(&s, keys[0].as_bytes(), set(&big(b'c'), None), 13);
        exec(&s, keys[2].as_bytes(), set(&big(b'd'), None), 14);
        let LogRead::Entries { entries, next } = s.read_log(p, 0, 100, u64::MAX).unwrap() else { panic!("truncated") };
        assert_eq!(next, 5);
        let got: Vec<(u64, &[u8], u8)> = entries.iter().map(|(pos, kr)| (*pos, kr.key.as_ref(), kr.record.value.as_ref().unwrap()[0])).collect();
        assert_eq!(got, vec![(0, keys[0].as_bytes(), b'c'), (2, keys[1].as_bytes(), b's'), (4, keys[2].as_bytes(), b'd')], "the first reference brings the record now; the later ones to the same key bring nothing");
        // A byte bound of one byte: one entry a page, and each page goes on
        // where the last ended.
        let (mut from, mut pages) = (0, vec![]);
        while from < 5 {
            let LogRead::Entries { entries, next } = s.read_log(p, from, 100, 1).unwrap() else { panic!("truncated") };
            pages.push(entries.iter().map(|(pos, _)| *pos).collect::<Vec<_>>());
            from = next;
        }
        assert_eq!(pages, vec![vec![0], vec![2], vec![3], vec![4]], "a page ends at its first record past the bound, but passes over the entries its records cover (1: the record 0 brought is newer); a reference read again in a later page brings the record again");
        let (counters, clock) = (s.counters(), s.clock().current());
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.counters(), counters);
        assert!(s.clock().current() >= clock);
        assert_eq!(s.read_log(p, 0, 100, u64::MAX).unwrap(), LogRead::Entries { entries, next: 5 });
    }

    /// A reference whose key holds no record any more (its tombstone was
    /// collected) brings nothing: the deletion's own entry follows it.
    #[test]
    fn a_reference_to_a_collected_key_brings_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let p = 4;
        let k = &keys_in(p, 1)[0];
        exec(&s, k.as_bytes(), set(&big(b'a'), None), 10);
        exec(&s, k.as_bytes(), Kind::Del(pb::Del::default()), 11);
        assert_eq!(s.collect_tombstones(u64::MAX, 100, |_| true).unwrap(), 1);
        let LogRead::Entries { entries, next } = s.read_log(p, 0, 100, u64::MAX).unwrap() else { panic!("truncated") };
        assert_eq!(next, 2);
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].0, entries[0].1.record.value.is_none()), (1, true), "only the tombstone's own entry");
    }

    mod converges {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Small { key: u8, value: u8 },
            Big { key: u8, fill: u8 },
            Del { key: u8 },
            /// A snapshot page of this many records.
            Copy(u8),
            /// A log page of at most this many entries and this many bytes.
            Ship(u8, u16),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                3 => (0..6u8, any::<u8>()).prop_map(|(key, value)| Step::Small { key, value }),
                3 => (0..6u8, b'a'..=b'z').prop_map(|(key, fill)| Step::Big { key, fill }),
                1 => (0..6u8).prop_map(|key| Step::Del { key }),
                2 => (1..4u8).prop_map(Step::Copy),
                2 => (1..6u8, 1..40_000u16).prop_map(|(n, b)| Step::Ship(n, b)),
            ]
        }

        fn ship(src: &Store, dst: &Store, p: PartitionId, from: u64, max: usize, max_bytes: u64) -> u64 {
            let LogRead::Entries { entries, next } = src.read_log(p, from, max, max_bytes).unwrap() else { panic!("truncated at {from}") };
            let records: Vec<KeyRecord> = entries.into_iter().map(|(_, r)| r).collect();
            dst.apply(p, &records).unwrap();
            next
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
            /// A move (snapshot pages, then the log from where the copy
            /// began, in pages bounded by entries and bytes) with writes of
            /// small and big values and deletions between its pages ends
            /// with the destination holding what the source holds, record
            /// for record.
            #[test]
            fn a_move_converges_with_whole_and_referenced_entries(steps in proptest::collection::vec(step(), 1..50)) {
                let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
                let (src, dst) = (open(d1.path()), open(d2.path()));
                let p = 6;
                let keys = keys_in(p, 6);
                for k in &keys[..3] {
                    exec(&src, k.as_bytes(), set(&big(b'0'), None), 10);
                }
                src.hold_log(p, HoldFrom::Begin, evenkeel_types::unix_ms()).unwrap();
                let (mut from, mut cursor, mut copied) = (src.counters()[p as usize].log_next, None::<Bytes>, false);
                let mut now = 10;
                for step in &steps {
                    now += 1;
                    match step {
                        Step::Small { key, value } => { exec(&src, keys[*key as usize].as_bytes(), set(&value.to_string(), None), now); }
                        Step::Big { key, fill } => { exec(&src, keys[*key as usize].as_bytes(), set(&big(*fill), None), now); }
                        Step::Del { key } => { exec(&src, keys[*key as usize].as_bytes(), Kind::Del(pb::Del::default()), now); }
                        Step::Copy(n) if !copied => {
                            let chunk = src.snapshot_chunk(p, cursor.as_deref(), *n as usize, u64::MAX).unwrap();
                            dst.apply(p, &chunk.records).unwrap();
                            copied = chunk.cursor.is_none();
                            cursor = chunk.cursor;
                        }
                        Step::Copy(_) => {}
                        Step::Ship(n, b) if copied => from = ship(&src, &dst, p, from, *n as usize, *b as u64),
                        Step::Ship(..) => {}
                    }
                }
                if !copied {
                    loop {
                        let chunk = src.snapshot_chunk(p, cursor.as_deref(), 2, u64::MAX).unwrap();
                        dst.apply(p, &chunk.records).unwrap();
                        match chunk.cursor { Some(c) => cursor = Some(c), None => break }
                    }
                }
                while from < src.counters()[p as usize].log_next {
                    from = ship(&src, &dst, p, from, 3, 10_000);
                }
                prop_assert_eq!(sum(&src, p), sum(&dst, p));
                for k in &keys {
                    let dk = data_key(key_slot(k.as_bytes()), k.as_bytes());
                    prop_assert_eq!(src.read(&dk).unwrap(), dst.read(&dk).unwrap(), "{}", k);
                }
            }
        }
    }

    #[test]
    fn checksums_differ_when_contents_differ() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (open(d1.path()), open(d2.path()));
        let p = key_partition(b"x", N);
        exec(&a, b"x", set("1", None), 10);
        copy_all(&a, &b, p, 10);
        assert_eq!(sum(&a, p), sum(&b, p));
        exec(&b, b"x", set("2", None), 10);
        assert_ne!(sum(&a, p), sum(&b, p));
    }
}

#[test]
fn stale_fencing_tokens_are_refused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.admit_token(1, 5).unwrap();
        s.admit_token(1, 5).unwrap();
        assert!(matches!(s.admit_token(1, 4), Err(StoreError::StaleToken { partition: 1, seen: 5, got: 4 })));
        s.admit_token(2, 1).unwrap();
    }
    let s = open(dir.path());
    assert!(matches!(s.admit_token(1, 4), Err(StoreError::StaleToken { .. })));
    s.admit_token(1, 6).unwrap();
    assert!(s.admit_token(2, 1).is_ok());
}

/// Routers' forwarded applies and shadow reads are accepted only for a token
/// the coordinator has admitted, and never again once a drop closed the
/// import: a late dual-write must not re-create a dropped copy, not even
/// after a restart.
#[test]
fn forwarded_records_need_an_open_import_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let key = Bytes::from_static(b"{fw}1");
    let p = key_partition(&key, N);
    let rec = |version| vec![KeyRecord { key: key.clone(), record: Record::value("v", None, version) }];
    let refused = |r: Result<usize, StoreError>| matches!(r, Err(StoreError::NotImporting { .. }));
    {
        let s = open(dir.path());
        assert!(refused(s.apply_forwarded(p, 3, &rec(10))), "no migration begun here");
        s.admit_token(p, 3).unwrap();
        assert_eq!(s.apply_forwarded(p, 3, &rec(10)).unwrap(), 1);
        assert_eq!(s.apply_forwarded(p, 3, &rec(10)).unwrap(), 0, "versioned: a repeat changes nothing");
        assert!(refused(s.apply_forwarded(p, 4, &rec(11))), "a token the coordinator never sent");
        let read = s.shadow_read(p, 3, &[key.clone(), Bytes::from_static(b"{fw}absent")]).unwrap();
        assert_eq!(read[0].as_ref().map(|r| r.version), Some(10));
        assert!(read[1].is_none());
        s.close_import(p, 3).unwrap();
        assert!(refused(s.apply_forwarded(p, 3, &rec(12))));
        assert!(matches!(s.shadow_read(p, 3, std::slice::from_ref(&key)), Err(StoreError::NotImporting { .. })));
    }
    let s = open(dir.path());
    assert!(refused(s.apply_forwarded(p, 3, &rec(13))), "the closed import survives a restart");
    s.admit_token(p, 7).unwrap();
    assert_eq!(s.apply_forwarded(p, 7, &rec(14)).unwrap(), 1, "a later migration imports again");
    assert!(refused(s.apply_forwarded(p, 3, &rec(15))));
}

/// `execute_admitted` returns the record a read found or a write wrote.
#[test]
fn execute_admitted_returns_the_record_involved() {
    let recorded = |s: &Store, p, kind: &Kind| s.execute_admitted(p, b"r", kind, 1000, || Ok::<(), ()>(())).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let p = key_partition(b"r", N);
    let get = Kind::Get(pb::Get::default());
    assert_eq!(recorded(&s, p, &get).1, None);
    let (_, written) = recorded(&s, p, &set("1", Some(9000)));
    let written = written.expect("a write returns its record");
    assert_eq!((written.value.as_deref(), written.expire_at_ms), (Some(&b"1"[..]), Some(9000)));
    assert_eq!(recorded(&s, p, &get).1, Some(written.clone()));
    let (_, deleted) = recorded(&s, p, &Kind::Del(pb::Del::default()));
    assert!(deleted.as_ref().is_some_and(|d| d.value.is_none() && d.version > written.version));
    assert_eq!(recorded(&s, p, &get).1, deleted, "reads return tombstones too");
    let (_, nothing) = recorded(&s, p, &Kind::Del(pb::Del::default()));
    assert_eq!(nothing, None, "a write that changes nothing has no record");
}

/// A write is admitted under its partition's lock, the lock a fence's log
/// position is read under, so no write can pass the fence check and then
/// commit past the position the cutover drains to. A refused write
/// changes nothing.
#[test]
fn a_write_is_admitted_under_the_partition_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let p = key_partition(b"r", N);
    let held = |s: &Store| s.parts[p as usize].try_lock().is_none();
    let asked = std::cell::Cell::new(None);
    let admit = || {
        asked.set(Some(held(&s)));
        Ok::<(), ()>(())
    };
    s.execute_admitted(p, b"r", &set("1", None), 1000, admit).unwrap().unwrap();
    assert_eq!(asked.get(), Some(true), "a write asks with the partition locked");
    s.execute_admitted(p, b"r", &Kind::Get(pb::Get::default()), 1000, admit).unwrap().unwrap();
    assert_eq!(asked.get(), Some(false), "a read takes no lock");
    let log_next = s.log_next(p).unwrap();
    assert_eq!(s.execute_admitted(p, b"r", &set("2", None), 1000, || Err("fenced")).unwrap(), Err("fenced"));
    assert_eq!(s.log_next(p).unwrap(), log_next, "a refused write logs nothing");
    assert_eq!(get(&s, b"r", 1000).as_deref(), Some(&b"1"[..]));
}

/// The running digest and key count (what the cutover compares under the
/// fence) must equal a full scan of the data after any mix of writes,
/// expiries, sweeps, versioned applies, drops and reopens.
mod running_digest {
    use super::migration::sum;
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Set { key: u8, value: u8, ttl: Option<u8> },
        Del { key: u8 },
        Incr { key: u8 },
        Append { key: u8 },
        /// Copies the other store's partition in (versioned apply).
        ImportFromOther,
        Sweep { at: u8 },
        /// Drops the partition (retires it); later writes revive it.
        Drop,
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..24u8, any::<u8>(), proptest::option::of(1..50u8)).prop_map(|(key, value, ttl)| Step::Set { key, value, ttl }),
            2 => (0..24u8).prop_map(|key| Step::Del { key }),
            1 => (0..24u8).prop_map(|key| Step::Incr { key }),
            1 => (0..24u8).prop_map(|key| Step::Append { key }),
            1 => Just(Step::ImportFromOther),
            1 => (0..100u8).prop_map(|at| Step::Sweep { at }),
            1 => Just(Step::Drop),
            1 => Just(Step::Reopen),
        ]
    }

    /// All keys land in one partition (hash tag), so drops and imports hit
    /// the data the other steps wrote.
    fn key(k: u8) -> Vec<u8> {
        format!("{{t}}{k}").into_bytes()
    }

    fn run(s: &Store, other: &Store, step: &Step, now: &mut u64) {
        let p = key_partition(b"{t}", N);
        *now += 1;
        match step {
            Step::Set { key: k, value, ttl } => {
                exec(s, &key(*k), set(&value.to_string(), ttl.map(|t| *now + t as u64)), *now);
            }
            Step::Del { key: k } => {
                exec(s, &key(*k), Kind::Del(pb::Del::default()), *now);
            }
            Step::Incr { key: k } => {
                exec(s, &key(*k), Kind::IncrBy(pb::IncrBy { delta: 1 }), *now);
            }
            Step::Append { key: k } => {
                exec(s, &key(*k), Kind::Append(pb::Append { value: Bytes::from_static(b"x") }), *now);
            }
            Step::ImportFromOther => {
                let chunk = other.snapshot_chunk(p, None, 1000, u64::MAX).unwrap();
                s.apply(p, &chunk.records).unwrap();
            }
            Step::Sweep { at } => {
                *now += *at as u64;
                s.sweep_expired(*now, 1000, |_| true).unwrap();
            }
            Step::Drop => {
                s.retire(p).unwrap();
            }
            Step::Reopen => unreachable!("the caller reopens"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn running_digest_equals_a_full_scan(steps in proptest::collection::vec(step(), 1..40)) {
            let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let mut s = open(d1.path());
            let other = open(d2.path());
            for k in 0..24u8 {
                exec(&other, &key(k), set(&format!("o{k}"), None), 5);
            }
            let p = key_partition(b"{t}", N);
            let mut now = 10;
            for step in &steps {
                if let Step::Reopen = step {
                    drop(s);
                    s = open(d1.path());
                } else {
                    run(&s, &other, step, &mut now);
                }
                let c = sum(&s, p);
                prop_assert_eq!(c.keys, s.counters()[p as usize].keys);
            }
        }
    }
}

mod gc;
mod retire;
mod rows;

#[test]
fn flushed_memtables_are_freed_by_the_keeper_once_the_engine_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    exec(&s, b"a", set("1", None), 1000);
    let first = s.tend_memtables();
    assert_eq!(first.released, 0, "every memtable is still active");
    assert_eq!(first.held, 5, "one active memtable per keyspace");
    assert_eq!(s.tend_memtables(), first, "tending again takes no second reference");
    // Flush the data keyspace's memtable; the next writes land in a new one.
    s.data.rotate_memtable_and_wait().unwrap();
    exec(&s, b"b", set("2", None), 1000);
    s.data.rotate_memtable_and_wait().unwrap();
    let after = s.tend_memtables();
    assert!(after.released >= 1, "the flushed memtable is freed here, not under the engine's lock: {after:?}");
    assert!(after.released_bytes > 0);
    assert_eq!(get(&s, b"a", 1001), Some(Bytes::from_static(b"1")), "its data is in a table now");
    assert_eq!(get(&s, b"b", 1001), Some(Bytes::from_static(b"2")));
}

/// The data keyspace flushes at the configured memtable size: 3 MB of
/// writes leave tables behind with 1 MiB memtables, none with the default.
#[test]
fn the_data_memtable_flushes_at_the_configured_size() {
    // Sealing is asynchronous: waits up to 10 s for one when `wait`.
    let tables_after_3mb = |memtable_bytes: u64, wait: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path(), N);
        cfg.cache_bytes = 8 << 20;
        cfg.memtable_bytes = memtable_bytes;
        let store = Store::open(cfg).unwrap();
        let value = "v".repeat(1000);
        for i in 0..3000 {
            exec(&store, format!("k{i}").as_bytes(), set(&value, None), 1_000);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while wait && store.data.table_count() == 0 && store.data.sealed_memtable_count() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        store.data.table_count() + store.data.sealed_memtable_count()
    };
    assert!(tables_after_3mb(1 << 20, true) >= 1, "1 MiB memtables were never sealed");
    assert_eq!(tables_after_3mb(DEFAULT_MEMTABLE_BYTES, false), 0, "a default-sized memtable was sealed after 3 MB");
}

/// The engine's compaction time (what `StatsResponse` reports) grows when
/// flushes leave level-0 tables for the background compactions, and no
/// compaction is left running once they are done.
#[test]
fn compaction_time_grows_as_the_engine_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (before, _) = s.engine_compactions();
    let value = "v".repeat(1000);
    for round in 0..6 {
        for i in 0..200 {
            exec(&s, format!("k{round}-{i}").as_bytes(), set(&value, None), 1000);
        }
        s.data.rotate_memtable_and_wait().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let settled = loop {
        let (spent, active) = s.engine_compactions();
        if (spent > before && active == 0 && s.data.l0_table_count() < 6) || std::time::Instant::now() > deadline {
            break (spent, active);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(settled.0 > before, "six flushes and no time compacting: {settled:?} (from {before:?})");
    assert_eq!(settled.1, 0, "a compaction still running after 20 s");
    assert!(s.data.l0_table_count() < 6, "the level-0 tables were compacted: {}", s.data.l0_table_count());
}

/// `Durability::Sync` is a group commit: a write's batch goes to the OS
/// under the partition lock, and its acknowledgement waits for an fsync
/// that writers running at the same time share; what was acknowledged is
/// there after a reopen. `Buffered` has nothing to wait for.
#[test]
fn sync_durability_acknowledges_writes_after_a_shared_fsync() {
    let dir = tempfile::tempdir().unwrap();
    assert!(open(dir.path()).durable().is_none(), "buffered: acknowledged once in the OS");
    let mut cfg = StoreConfig::new(dir.path(), N);
    cfg.durability = Durability::Sync;
    let store = Store::open(cfg.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (store, runtime) = (&store, &runtime);
            s.spawn(move || {
                for i in 0..50 {
                    let key = format!("sync-{t}-{i}");
                    exec(store, key.as_bytes(), set("v", None), 1_000);
                    runtime.block_on(store.durable().expect("sync durability")).expect("fsynced");
                }
            });
        }
    });
    let syncs = store.group_syncs();
    assert!((1..=200).contains(&syncs), "{syncs} fsyncs for 200 writes");
    drop(store);
    let store = Store::open(cfg).unwrap();
    assert!((0..4).all(|t| (0..50).all(|i| get(&store, format!("sync-{t}-{i}").as_bytes(), 1_000).is_some())));
}

/// GET and SET for scripts, planned as the router plans them.
struct ScriptCommands;

impl evenkeel_script::Commands for ScriptCommands {
    fn plan(&self, a: &[Bytes], _resp3: bool, _acl: &[String]) -> evenkeel_script::Call {
        use evenkeel_script::Call;
        let reply = |kind| pb::Reply { kind: Some(kind) };
        match (&a[0][..], a.len()) {
            (b"get", 2) => Call::Ops {
                ops: vec![(a[1].clone(), Kind::Get(pb::Get::default()))],
                write: false,
                answer: Box::new(move |mut r| match r.pop() {
                    Some(R::Value(v)) => reply(pb::reply::Kind::Bulk(v.value)),
                    _ => reply(pb::reply::Kind::Null(pb::Nil {})),
                }),
            },
            (b"set", 3) => Call::Ops { ops: vec![(a[1].clone(), set(&String::from_utf8_lossy(&a[2]), None))], write: true, answer: Box::new(move |_| reply(pb::reply::Kind::Simple("OK".into()))) },
            _ => Call::Reply(reply(pb::reply::Kind::Error("ERR Unknown Redis command called from script".into()))),
        }
    }
}

fn script(body: &str, keys: &[&[u8]], args: &[&[u8]]) -> pb::Script {
    let b = |v: &[&[u8]]| v.iter().map(|s| Bytes::copy_from_slice(s)).collect();
    pb::Script { body: Bytes::copy_from_slice(body.as_bytes()), sha: evenkeel_script::sha1_hex(body.as_bytes()), keys: b(keys), args: b(args), read_only: false, function: String::new(), acl: vec![] }
}

fn error_reply(r: &R) -> &str {
    match r {
        R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error(e)) }) => e,
        other => panic!("an error reply, not {other:?}"),
    }
}

/// A script's writes commit together when it returns (or fails, as in
/// Redis); stopped by its time limit it writes nothing, also inside a
/// transaction, whose other ops still commit. Keys share the first
/// declared key's slot; a keyless script whose first key is in another
/// partition stops before writing and says where that key is.
#[test]
fn scripts_commit_as_one_step_and_a_stopped_one_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path(), N);
    let limits = evenkeel_script::Limits { time: std::time::Duration::from_millis(100), ..Default::default() };
    cfg.scripts = Some(Arc::new(evenkeel_script::Engine::new(Arc::new(ScriptCommands), limits)));
    let s = Store::open(cfg).unwrap();
    let (a, b) = (&b"{sc}a"[..], &b"{sc}b"[..]);
    let p = key_partition(a, N);
    let run = |keys: &[&[u8]], body: &str| exec(&s, keys.first().copied().unwrap_or(a), Kind::Script(script(body, keys, &[])), 1_000);

    let before = s.counters()[p as usize];
    let r = run(&[a, b], "redis.call('set', KEYS[1], '1') redis.call('set', KEYS[2], '2') redis.call('set', KEYS[1], '3') return redis.call('get', KEYS[1])");
    assert_eq!(r, R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Bulk(Bytes::from_static(b"3"))) }));
    assert_eq!((get(&s, a, 1_000), get(&s, b, 1_000)), (Some(Bytes::from_static(b"3")), Some(Bytes::from_static(b"2"))));
    assert_eq!(s.counters()[p as usize].log_next, before.log_next + 2, "one change-log entry per key written");

    let c = &b"{sc}c"[..];
    let committed = s.counters()[p as usize];
    let r = run(&[c], "redis.call('set', KEYS[1], 'x') while true do end");
    assert!(error_reply(&r).starts_with("ERR script stopped: it ran longer than 100 ms"), "{r:?}");
    assert_eq!(get(&s, c, 1_000), None);
    assert_eq!(s.counters()[p as usize], committed, "nothing of a stopped script is written");
    let r = run(&[c], "redis.call('set', KEYS[1], 'kept') error('boom')");
    assert!(error_reply(&r).starts_with("ERR user_script:1: boom"), "{r:?}");
    assert_eq!(get(&s, c, 1_000), Some(Bytes::from_static(b"kept")), "a failed script keeps what it wrote, as in Redis");

    let other_slot = (0u32..).map(|i| format!("k{i}")).find(|k| key_partition(k.as_bytes(), N) == p && key_slot(k.as_bytes()) != key_slot(a)).unwrap();
    let r = exec(&s, a, Kind::Script(script("return redis.call('get', ARGV[1])", &[a], &[other_slot.as_bytes()])), 1_000);
    assert!(error_reply(&r).starts_with("ERR Script attempted to access keys that do not hash to the same slot"), "{r:?}");
    // Keyless: the first key picks the slot, in this partition or not.
    let r = exec(&s, a, Kind::Script(script("redis.call('set', ARGV[1], 'v') return redis.call('get', ARGV[1])", &[], &[other_slot.as_bytes()])), 1_000);
    assert_eq!(r, R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Bulk(Bytes::from_static(b"v"))) }));
    let far = (0u32..).map(|i| format!("far{i}")).find(|k| key_partition(k.as_bytes(), N) != p).unwrap();
    let r = exec(&s, a, Kind::Script(script("return redis.call('set', ARGV[1], 'no')", &[], &[far.as_bytes()])), 1_000);
    assert_eq!(r, R::ScriptElsewhere(pb::ScriptElsewhere { key: Bytes::from(far.clone()) }));

    // In a transaction: the stopped script's writes go, the others stay.
    let (t1, t2, t3) = (&b"{sc}t1"[..], &b"{sc}t2"[..], &b"{sc}t3"[..]);
    let op = |key: &[u8], kind: Kind| pb::Op { partition: 0, key: Bytes::copy_from_slice(key), kind: Some(kind), want_record: false, track: false, waiter: 0 };
    let ops = vec![op(t1, set("1", None)), op(t2, Kind::Script(script("redis.call('set', KEYS[1], 'x') while true do end", &[t2], &[]))), op(t3, set("3", None))];
    let R::Transaction(t) = exec(&s, t1, Kind::Transaction(pb::Transaction { ops, watched: Vec::new() }), 1_000) else { panic!("a transaction's results") };
    assert!(error_reply(t.results[1].result.as_ref().unwrap()).starts_with("ERR script stopped"));
    assert_eq!((get(&s, t1, 1_000), get(&s, t2, 1_000), get(&s, t3, 1_000)), (Some(Bytes::from_static(b"1")), None, Some(Bytes::from_static(b"3"))));

    // A store without the command layer refuses scripts.
    let plain = tempfile::tempdir().unwrap();
    let s = open(plain.path());
    let r = exec(&s, a, Kind::Script(script("return 1", &[a], &[])), 1_000);
    assert!(error_reply(&r).contains("runs no scripts"), "{r:?}");
}
