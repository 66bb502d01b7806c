use super::*;
use evenkeel_types::slot::key_partition;

const N: u16 = 8;

fn open(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir, N);
    cfg.log_retention_entries = 10;
    cfg.cache_bytes = 8 << 20;
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
    match store.execute(key_partition(key, N), key, &Kind::Get(pb::Get { meta_only: false }), now).unwrap() {
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
        exec(&s, b"a", Kind::Del(pb::Del {}), 1000);
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
    exec(&s, b"key:7", Kind::Del(pb::Del {}), 10);
    let mut seen = Vec::new();
    for p in 0..N {
        let (start, end) = partition_slots(p, N);
        let mut slot = start;
        while slot < end {
            let (found, next) = s.scan(p, slot, 5, 11).unwrap();
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
    assert_eq!(s.expiry.iter().count(), 0);
    assert_eq!(s.sweep_expired(1_000, 100, |_| true).unwrap(), 0);
    assert_eq!(get(&s, b"k", 1_000), Some(Bytes::from_static(b"w")));
}
