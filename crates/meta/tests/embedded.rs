//! Behaviour of the embedded backend through the public `MetaStore` API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use evenkeel_meta::{
    CasOutcome, Compare, EmbeddedOptions, EmbeddedStore, KeyValue, MetaError, MetaStore,
    WatchEvent, WatchStream,
};
use futures::StreamExt;
use tokio::time::Instant;

fn durable() -> EmbeddedOptions {
    EmbeddedOptions::default()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    stream
        .next()
        .await
        .expect("stream ended")
        .expect("watch error")
}

fn put_event(key: &str, value: &[u8], create: u64, modified: u64) -> WatchEvent {
    WatchEvent::Put(KeyValue {
        key: key.into(),
        value: value.to_vec(),
        create_revision: create,
        mod_revision: modified,
        lease: None,
    })
}

fn wal_file(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wal-"))
        .collect();
    assert_eq!(logs.len(), 1, "exactly one live log in {logs:?}");
    logs.pop().unwrap()
}

// ---------- basic key-value operations ----------

#[tokio::test]
async fn put_get_delete_and_prefix() {
    let store = EmbeddedStore::in_memory();
    assert_eq!(
        store.current_revision().await.unwrap(),
        1,
        "fresh store starts at revision 1"
    );
    assert_eq!(store.put("a", b"1".to_vec(), None).await.unwrap(), 2);
    assert_eq!(store.put("a/x", b"2".to_vec(), None).await.unwrap(), 3);
    assert_eq!(store.put("b", b"3".to_vec(), None).await.unwrap(), 4);
    assert_eq!(store.put("a", b"4".to_vec(), None).await.unwrap(), 5);

    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.lease
        ),
        (&b"4"[..], 2, 5, None)
    );
    assert_eq!(store.get("missing").await.unwrap(), None);

    let (kvs, rev) = store.get_prefix("a").await.unwrap();
    assert_eq!((keys(&kvs), rev), (vec!["a", "a/x"], 5));
    let (all, _) = store.get_prefix("").await.unwrap();
    assert_eq!(keys(&all), ["a", "a/x", "b"]);

    assert_eq!(store.delete("a").await.unwrap(), Some(6));
    assert_eq!(
        store.delete("a").await.unwrap(),
        None,
        "absent delete reports None"
    );
    assert_eq!(
        store.current_revision().await.unwrap(),
        6,
        "absent delete spends no revision"
    );
    // Re-creating starts a new create revision.
    assert_eq!(store.put("a", vec![], None).await.unwrap(), 7);
    assert_eq!(store.get("a").await.unwrap().unwrap().create_revision, 7);
}

#[tokio::test]
async fn invalid_input_is_rejected_without_side_effects() {
    let store = EmbeddedStore::in_memory();
    assert!(matches!(
        store.put("", vec![], None).await,
        Err(MetaError::InvalidKey(_))
    ));
    assert!(matches!(
        store.put("k", vec![], Some(42)).await,
        Err(MetaError::LeaseNotFound(42))
    ));
    let too_big = vec![0; evenkeel_meta::MAX_VALUE_LEN + 1];
    assert!(matches!(
        store.put("k", too_big, None).await,
        Err(MetaError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.grant_lease(Duration::ZERO).await,
        Err(MetaError::InvalidArgument(_))
    ));
    assert_eq!(store.current_revision().await.unwrap(), 1);
    assert_eq!(store.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn compare_and_swap_cases() {
    let store = EmbeddedStore::in_memory();
    let put = |v: &str| Some(v.as_bytes().to_vec());
    assert_eq!(
        store
            .compare_and_swap("k", Compare::Absent, put("1"), None)
            .await
            .unwrap(),
        CasOutcome::Swapped(2)
    );
    let current = store.get("k").await.unwrap();
    assert_eq!(
        store
            .compare_and_swap("k", Compare::Absent, put("x"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict(current.clone()),
        "Absent conflicts with an existing key and returns it"
    );
    assert_eq!(
        store
            .compare_and_swap("k", Compare::ModRevision(2), put("2"), None)
            .await
            .unwrap(),
        CasOutcome::Swapped(3)
    );
    let current = store.get("k").await.unwrap().unwrap();
    assert_eq!(
        (current.value.as_slice(), current.create_revision),
        (&b"2"[..], 2)
    );
    assert_eq!(
        store
            .compare_and_swap("k", Compare::ModRevision(2), put("stale"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict(Some(current.clone()))
    );
    assert_eq!(
        store
            .compare_and_swap("k", Compare::ModRevision(2), None, None)
            .await
            .unwrap(),
        CasOutcome::Conflict(Some(current)),
        "stale CAS-delete does nothing"
    );
    assert_eq!(
        store
            .compare_and_swap("k", Compare::ModRevision(3), None, None)
            .await
            .unwrap(),
        CasOutcome::Swapped(4)
    );
    assert_eq!(store.get("k").await.unwrap(), None);
    assert_eq!(
        store
            .compare_and_swap("k", Compare::ModRevision(3), put("y"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict(None)
    );
    assert_eq!(store.current_revision().await.unwrap(), 4);
}

// ---------- durability ----------

#[tokio::test]
async fn reopen_restores_data_revision_leases_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let (before, lease) = {
        let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        store.put("a", b"1".to_vec(), None).await.unwrap();
        store.put("b", b"2".to_vec(), Some(lease)).await.unwrap();
        store.put("a", b"3".to_vec(), None).await.unwrap();
        store.delete("c").await.unwrap();
        store.put("c", b"4".to_vec(), None).await.unwrap();
        store.delete("c").await.unwrap();
        (store.get_prefix("").await.unwrap(), lease)
    };
    let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
    assert_eq!(store.get_prefix("").await.unwrap(), before);
    assert_eq!(before.1, 6);
    assert_eq!(store.get("b").await.unwrap().unwrap().lease, Some(lease));
    store.keep_alive(lease).await.unwrap();
    // The log is replayed into the watch history, so watchers can resume across a restart.
    let mut watch = store.watch_prefix("", 2).await.unwrap();
    assert_eq!(next_event(&mut watch).await, put_event("a", b"1", 2, 2));
    // New lease ids never collide with recovered ones.
    assert_ne!(
        store.grant_lease(Duration::from_secs(1)).await.unwrap(),
        lease
    );
}

#[tokio::test]
async fn torn_tail_record_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
        for key in ["a", "b", "c"] {
            store.put(key, key.as_bytes().to_vec(), None).await.unwrap();
        }
    }
    let log = wal_file(dir.path());
    let len = std::fs::metadata(&log).unwrap().len();
    // A crash mid-append leaves part of the last record.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
        let (kvs, rev) = store.get_prefix("").await.unwrap();
        assert_eq!((keys(&kvs), rev), (vec!["a", "b"], 3));
        assert_eq!(store.put("d", vec![], None).await.unwrap(), 4);
    }
    // The torn bytes were cut off, so the record written after them is readable.
    let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
    let (kvs, rev) = store.get_prefix("").await.unwrap();
    assert_eq!((keys(&kvs), rev), (vec!["a", "b", "d"], 4));
}

#[tokio::test]
async fn flipped_byte_in_middle_record_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
        for i in 0..5 {
            store
                .put(&format!("key{i}"), vec![i; 32], None)
                .await
                .unwrap();
        }
    }
    let log = wal_file(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    // Five equal-sized records: the middle byte lies inside the third one.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    match EmbeddedStore::open(dir.path(), durable()).await {
        Err(MetaError::Corrupt(msg)) => assert!(msg.contains("checksum mismatch"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn compaction_then_reopen_equals_state_before() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EmbeddedOptions {
        compact_after_records: 3,
        ..durable()
    };
    let (before, lease) = {
        let store = EmbeddedStore::open(dir.path(), opts.clone()).await.unwrap();
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        for i in 0..20u8 {
            let key = format!("k{}", i % 7);
            if i % 5 == 4 {
                store.delete(&key).await.unwrap();
            } else {
                store
                    .put(&key, vec![i], (i % 3 == 0).then_some(lease))
                    .await
                    .unwrap();
            }
        }
        (store.get_prefix("").await.unwrap(), lease)
    };
    assert!(
        dir.path().join("snapshot").exists(),
        "compaction wrote a snapshot"
    );
    let log_len = std::fs::metadata(wal_file(dir.path())).unwrap().len();
    assert!(
        log_len < 200,
        "log restarted after the snapshot ({log_len} bytes)"
    );

    let store = EmbeddedStore::open(dir.path(), opts).await.unwrap();
    assert_eq!(store.get_prefix("").await.unwrap(), before);
    // Events folded into the snapshot can no longer be replayed.
    assert!(matches!(
        store.watch_prefix("", 2).await,
        Err(MetaError::Compacted { requested: 2, .. })
    ));
    // The lease and its attachments survived the snapshot.
    store.revoke_lease(lease).await.unwrap();
    let (after, _) = store.get_prefix("").await.unwrap();
    assert!(after.iter().all(|kv| kv.lease.is_none()));
    assert!(
        before.0.iter().any(|kv| kv.lease == Some(lease)),
        "test covers leased keys"
    );
}

#[tokio::test]
async fn second_open_of_same_dir_fails() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
    match EmbeddedStore::open(dir.path(), durable()).await {
        Err(MetaError::AlreadyOpen(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    drop(first);
    EmbeddedStore::open(dir.path(), durable())
        .await
        .expect("lock released on drop");
}

// ---------- watch ----------

#[tokio::test]
async fn watch_sees_only_its_prefix_in_order() {
    let store = EmbeddedStore::in_memory();
    store.put("a/0", b"before".to_vec(), None).await.unwrap();
    let mut watch = store.watch_prefix("a/", 0).await.unwrap();
    store.put("a/1", b"x".to_vec(), None).await.unwrap(); // 3
    store.put("b/1", b"y".to_vec(), None).await.unwrap(); // 4
    store.put("a/2", b"z".to_vec(), None).await.unwrap(); // 5
    store.delete("a/1").await.unwrap(); // 6
    store.delete("b/1").await.unwrap(); // 7
    store.put("a/2", b"w".to_vec(), None).await.unwrap(); // 8
    assert_eq!(next_event(&mut watch).await, put_event("a/1", b"x", 3, 3));
    assert_eq!(next_event(&mut watch).await, put_event("a/2", b"z", 5, 5));
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Delete {
            key: "a/1".into(),
            mod_revision: 6
        }
    );
    assert_eq!(next_event(&mut watch).await, put_event("a/2", b"w", 5, 8));
}

#[tokio::test]
async fn watch_replays_from_past_revision_then_goes_live() {
    let store = EmbeddedStore::in_memory();
    for i in 0..5u8 {
        store.put("k", vec![i], None).await.unwrap(); // revisions 2..=6
    }
    let mut watch = store.watch_prefix("k", 4).await.unwrap();
    store.put("k", vec![9], None).await.unwrap(); // 7
    let mut revs = Vec::new();
    for _ in 0..4 {
        revs.push(next_event(&mut watch).await.revision());
    }
    assert_eq!(
        revs,
        [4, 5, 6, 7],
        "replay, then the live event, no gap or repeat"
    );
}

#[tokio::test]
async fn watch_from_compacted_revision_fails() {
    let store = EmbeddedStore::in_memory_with(EmbeddedOptions {
        history_len: 3,
        ..Default::default()
    });
    for i in 0..10u8 {
        store.put("k", vec![i], None).await.unwrap(); // revisions 2..=11
    }
    match store.watch_prefix("", 8).await {
        Err(MetaError::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (8, 9)),
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(_) => panic!("expected Compacted, got a stream"),
    }
    let mut watch = store.watch_prefix("", 9).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), 9);
    // A future revision is fine: it waits for it.
    let mut future = store.watch_prefix("", 13).await.unwrap();
    store.put("k", vec![], None).await.unwrap(); // 12
    store.put("k", vec![], None).await.unwrap(); // 13
    assert_eq!(next_event(&mut future).await.revision(), 13);
}

#[tokio::test]
async fn watcher_that_never_reads_lags() {
    let store = EmbeddedStore::in_memory_with(EmbeddedOptions {
        watch_buffer: 4,
        ..Default::default()
    });
    let mut lagging = store.watch_prefix("", 0).await.unwrap();
    let mut other = store.watch_prefix("other/", 0).await.unwrap();
    for i in 0..10u8 {
        store.put(&format!("k{i}"), vec![], None).await.unwrap();
    }
    store.put("other/x", vec![], None).await.unwrap();
    for rev in 2..6 {
        assert_eq!(
            next_event(&mut lagging).await.revision(),
            rev,
            "buffered events still delivered"
        );
    }
    assert!(matches!(
        lagging.next().await,
        Some(Err(MetaError::WatchLagged))
    ));
    assert!(
        lagging.next().await.is_none(),
        "stream ends after WatchLagged"
    );
    assert_eq!(
        next_event(&mut other).await.key(),
        "other/x",
        "other watchers unaffected"
    );
}

#[tokio::test]
async fn watch_ends_with_closed_when_store_dropped() {
    let store = EmbeddedStore::in_memory();
    let mut watch = store.watch_prefix("", 0).await.unwrap();
    drop(store);
    assert!(matches!(watch.next().await, Some(Err(MetaError::Closed))));
    assert!(watch.next().await.is_none());
}

// ---------- leases ----------

#[tokio::test(start_paused = true)]
async fn lease_expiry_deletes_attached_keys() {
    let store = EmbeddedStore::in_memory();
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store.put("leased", vec![], Some(lease)).await.unwrap();
    store.put("plain", vec![], None).await.unwrap();
    let mut watch = store.watch_prefix("", 0).await.unwrap();
    let start = Instant::now();
    // Paused time jumps to the reaper's next tick while we wait.
    let event = next_event(&mut watch).await;
    assert_eq!(
        event,
        WatchEvent::Delete {
            key: "leased".into(),
            mod_revision: 4
        }
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1200),
        "{waited:?}"
    );
    assert_eq!(store.get("leased").await.unwrap(), None);
    assert!(store.get("plain").await.unwrap().is_some());
    assert!(
        matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(id)) if id == lease)
    );
    assert!(matches!(
        store.put("again", vec![], Some(lease)).await,
        Err(MetaError::LeaseNotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_keeps_keys() {
    let store = EmbeddedStore::in_memory();
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    store.put("k", vec![], Some(lease)).await.unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        store.keep_alive(lease).await.unwrap();
    }
    assert!(
        store.get("k").await.unwrap().is_some(),
        "6 s of keepalives outlive a 1 s TTL"
    );
    let mut watch = store.watch_prefix("k", 0).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await.key(),
        "k",
        "expires once keepalives stop"
    );
}

#[tokio::test]
async fn revoke_deletes_keys() {
    let store = EmbeddedStore::in_memory();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    store.put("x/1", vec![], Some(lease)).await.unwrap(); // 2
    store.put("x/2", vec![], Some(lease)).await.unwrap(); // 3
    store.put("x/3", vec![], None).await.unwrap(); // 4
    store.put("x/2", vec![], Some(lease)).await.unwrap(); // 5: still attached once
    let mut watch = store.watch_prefix("x/", 0).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Delete {
            key: "x/1".into(),
            mod_revision: 6
        }
    );
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Delete {
            key: "x/2".into(),
            mod_revision: 7
        }
    );
    let (kvs, rev) = store.get_prefix("x/").await.unwrap();
    assert_eq!(
        (keys(&kvs), rev),
        (vec!["x/3"], 7),
        "one revision per deleted key"
    );
    assert!(matches!(
        store.revoke_lease(lease).await,
        Err(MetaError::LeaseNotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn recovered_lease_gets_full_ttl_from_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(10);
    {
        let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
        let lease = store.grant_lease(ttl).await.unwrap();
        store.put("k", vec![], Some(lease)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
    let reopened = Instant::now();
    let mut watch = store.watch_prefix("k", 0).await.unwrap();
    // Without keepalives the key goes a full TTL after recovery, not 2 s later.
    assert_eq!(next_event(&mut watch).await.key(), "k");
    assert!(reopened.elapsed() >= ttl, "{:?}", reopened.elapsed());
}

// ---------- locks ----------

async fn two_leases(store: &Arc<EmbeddedStore>, ttl: Duration) -> (i64, i64) {
    (
        store.grant_lease(ttl).await.unwrap(),
        store.grant_lease(ttl).await.unwrap(),
    )
}

#[tokio::test]
async fn try_lock_is_exclusive_and_tokens_increase() {
    let store = EmbeddedStore::in_memory();
    let (l1, l2) = two_leases(&store, Duration::from_secs(60)).await;
    let first = store
        .try_lock("locks/a", l1)
        .await
        .unwrap()
        .expect("free lock");
    assert_eq!(store.try_lock("locks/a", l2).await.unwrap(), None);
    assert_eq!(
        store.try_lock("locks/a", l1).await.unwrap(),
        None,
        "not re-entrant"
    );
    assert!(
        store.try_lock("locks/b", l2).await.unwrap().is_some(),
        "other names independent"
    );
    let holder = store.get("locks/a").await.unwrap().unwrap();
    assert_eq!(
        (holder.create_revision, holder.lease),
        (first.fencing_token, Some(l1))
    );

    let mut last = first.fencing_token;
    store.unlock(&first).await.unwrap();
    for round in 0..6 {
        let lease = if round % 2 == 0 { l2 } else { l1 };
        let lock = store
            .try_lock("locks/a", lease)
            .await
            .unwrap()
            .expect("released");
        assert!(
            lock.fencing_token > last,
            "{} after {last}",
            lock.fencing_token
        );
        last = lock.fencing_token;
        store.put("unrelated", vec![], None).await.unwrap();
        store.unlock(&lock).await.unwrap();
    }
}

#[tokio::test]
async fn lock_waits_for_unlock() {
    let store = EmbeddedStore::in_memory();
    let (l1, l2) = two_leases(&store, Duration::from_secs(60)).await;
    let held = store.try_lock("L", l1).await.unwrap().unwrap();
    // A lock whose name extends ours is a different key; its release must not wake us.
    let sibling = store.try_lock("L2", l1).await.unwrap().unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.lock("L", l2, Duration::from_secs(30)).await })
    };
    // Single-threaded runtime: each yield runs the waiter until it blocks on its watch.
    tokio::task::yield_now().await;
    store.unlock(&sibling).await.unwrap();
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "still waiting while L is held");
    store.unlock(&held).await.unwrap();
    let lock = waiter.await.unwrap().unwrap();
    assert_eq!(lock.lease, l2);
    assert!(lock.fencing_token > held.fencing_token);
    assert_eq!(store.get("L").await.unwrap().unwrap().lease, Some(l2));
}

#[tokio::test(start_paused = true)]
async fn lock_acquired_when_holder_lease_expires() {
    let store = EmbeddedStore::in_memory();
    let short = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let long = store.grant_lease(Duration::from_secs(600)).await.unwrap();
    let held = store.try_lock("L", short).await.unwrap().unwrap();
    let start = Instant::now();
    let lock = store
        .lock("L", long, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(lock.fencing_token > held.fencing_token);
}

#[tokio::test(start_paused = true)]
async fn stale_unlock_leaves_new_holder_alone() {
    let store = EmbeddedStore::in_memory();
    let short = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let long = store.grant_lease(Duration::from_secs(600)).await.unwrap();
    let stale = store.try_lock("L", short).await.unwrap().unwrap();
    let current = store
        .lock("L", long, Duration::from_secs(30))
        .await
        .unwrap();
    // The old holder wakes up after its lease expired and "releases".
    store.unlock(&stale).await.unwrap();
    let key = store
        .get("L")
        .await
        .unwrap()
        .expect("new holder's key survives");
    assert_eq!(
        (key.create_revision, key.lease),
        (current.fencing_token, Some(long))
    );
    store.unlock(&current).await.unwrap();
    assert_eq!(store.get("L").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn lock_times_out_while_held() {
    let store = EmbeddedStore::in_memory();
    let (l1, l2) = two_leases(&store, Duration::from_secs(600)).await;
    let held = store.try_lock("L", l1).await.unwrap().unwrap();
    let start = Instant::now();
    match store.lock("L", l2, Duration::from_secs(2)).await {
        Err(MetaError::LockTimeout(name)) => assert_eq!(name, "L"),
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
        "{waited:?}"
    );
    let key = store.get("L").await.unwrap().unwrap();
    assert_eq!(key.create_revision, held.fencing_token, "holder untouched");
}

#[tokio::test(start_paused = true)]
async fn lock_waits_even_when_holder_predates_watch_history() {
    let store = EmbeddedStore::in_memory_with(EmbeddedOptions {
        history_len: 2,
        ..Default::default()
    });
    let short = store.grant_lease(Duration::from_secs(5)).await.unwrap();
    let long = store.grant_lease(Duration::from_secs(600)).await.unwrap();
    let held = store.try_lock("L", short).await.unwrap().unwrap();
    for i in 0..10u8 {
        store.put("noise", vec![i], None).await.unwrap();
    }
    // The holder's revision is no longer replayable; waiting must still work,
    // both up to a timeout and until the holder goes.
    let start = Instant::now();
    assert!(matches!(
        store.lock("L", long, Duration::from_secs(1)).await,
        Err(MetaError::LockTimeout(_))
    ));
    assert!(start.elapsed() >= Duration::from_secs(1));
    let lock = store
        .lock("L", long, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "acquired once the holder's lease expired"
    );
    assert!(lock.fencing_token > held.fencing_token);
}

/// On a multi-threaded runtime the log is fsynced off the runtime
/// (`block_in_place`) while readers keep going. Concurrent writers, CAS
/// increments and readers must still see one total order: every revision
/// spent exactly once, a watcher sees them in order, nothing lost on reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_durable_writes_keep_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
    let mut watch = store.watch_prefix("c/", 0).await.unwrap();
    let first = store.put("counter", b"0".to_vec(), None).await.unwrap() + 1;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..25 {
                revisions.push(store.put(&format!("c/{w}/{i}"), vec![w as u8], None).await.unwrap());
                // A CAS increment: lost updates would show in the final count.
                loop {
                    let kv = store.get("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    if let CasOutcome::Swapped(r) = store.compare_and_swap("counter", Compare::ModRevision(kv.mod_revision), Some(next), None).await.unwrap() {
                        revisions.push(r);
                        break;
                    }
                }
            }
            revisions
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u64> = (first..first + 200).collect();
    assert_eq!(all, expected, "every revision spent exactly once");
    let mut last = 0;
    for _ in 0..100 {
        let WatchEvent::Put(kv) = next_event(&mut watch).await else { panic!("only puts") };
        assert!(kv.mod_revision > last, "watch order follows revisions");
        last = kv.mod_revision;
    }
    drop(watch);
    drop(store);
    let store = EmbeddedStore::open(dir.path(), durable()).await.unwrap();
    assert_eq!(store.get("counter").await.unwrap().unwrap().value, b"100");
    assert_eq!(store.get_prefix("c/").await.unwrap().0.len(), 100);
    assert_eq!(store.current_revision().await.unwrap(), first + 199);
}

/// The store reports its log's work for `/metrics`: each durable record and
/// its bytes, the time each commit's fsync took and how many mutations it
/// held, the revision, and each snapshot. A
/// slow disk shows here first (every routing change and migration step
/// waits for that fsync).
#[test]
fn the_log_reports_records_fsyncs_revision_and_snapshots() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let dir = tempfile::tempdir().unwrap();
    let opts = EmbeddedOptions {
        compact_after_records: 3,
        ..durable()
    };
    let mut wal_bytes = 0;
    metrics::with_local_recorder(&recorder, || {
        // One thread: the store's work, fsyncs included, runs on it, where
        // the local recorder is.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = EmbeddedStore::open(dir.path(), opts).await.unwrap();
            for i in 0..5 {
                store.put(&format!("k{i}"), vec![7; 100], None).await.unwrap();
            }
            // Not a write: nothing to log.
            store.get("k0").await.unwrap();
            wal_bytes = std::fs::metadata(wal_file(dir.path())).unwrap().len();
        });
    });
    let text = handle.render();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
    };
    assert_eq!(value("evenkeel_meta_wal_records_total"), 5.0);
    assert_eq!(value("evenkeel_meta_wal_fsync_seconds_count"), 5.0);
    // One writer at a time: each commit holds one mutation.
    assert_eq!(value("evenkeel_meta_wal_commit_mutations_count"), 5.0);
    assert_eq!(value("evenkeel_meta_wal_commit_mutations_sum"), 5.0);
    // An empty store is at revision 1, as etcd's is; each write adds one.
    assert_eq!(value("evenkeel_meta_revision"), 6.0);
    // The fourth record passed the threshold of 3: one snapshot, and a new
    // log that holds the fifth record after its header.
    assert_eq!(value("evenkeel_meta_snapshots_total"), 1.0);
    let bytes = value("evenkeel_meta_wal_bytes_total");
    assert!(bytes > 5.0 * 100.0, "five records of 100-byte values: {bytes} bytes");
    let header = 8.0;
    assert!(
        (bytes / 5.0 - (wal_bytes as f64 - header)).abs() < 1.0,
        "the new log's one record is the average record: {bytes} bytes in 5, log {wal_bytes} bytes"
    );
}
