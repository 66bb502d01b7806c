//! The `MetaStore` contract, one suite for every backend: each case runs on
//! a fresh embedded store, and with the `etcd` feature on a fresh etcd
//! server too (an `etcd` binary on PATH, started per case on loopback
//! ports; Debian's `etcd-server`), its keys under a namespace. The
//! expectations are absolute revisions,
//! so both backends must agree exactly, as the trait promises: the
//! coordinator, routers and nodes run unchanged on either.

use std::sync::Arc;
use std::time::Duration;

use evenkeel_meta::{CasOutcome, Compare, HeldOutcome, KeyValue, Lock, MetaError, MetaStore, WatchEvent, WatchStream};
use futures::StreamExt;

/// A fresh store of one backend.
type Fresh = Arc<dyn MetaStore>;

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("no event within 10 s").expect("stream ended").expect("watch error")
}

fn put_event(key: &str, value: &[u8], create: u64, modified: u64) -> WatchEvent {
    WatchEvent::Put(KeyValue { key: key.into(), value: value.to_vec(), create_revision: create, mod_revision: modified, lease: None })
}

/// Polls `f` every 100 ms until it holds, up to `limit`.
async fn eventually<F: AsyncFn() -> bool>(limit: Duration, what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod suite {
    use super::*;

    pub async fn put_get_delete_and_prefix(store: Fresh) {
        assert_eq!(store.current_revision().await.unwrap(), 1, "a fresh store is at revision 1");
        assert_eq!(store.put("a", b"1".to_vec(), None).await.unwrap(), 2);
        assert_eq!(store.put("a/b", b"2".to_vec(), None).await.unwrap(), 3);
        assert_eq!(store.put("b", b"3".to_vec(), None).await.unwrap(), 4);
        assert_eq!(store.put("a", b"4".to_vec(), None).await.unwrap(), 5);
        let a = store.get("a").await.unwrap().expect("a");
        assert_eq!((a.value.as_slice(), a.create_revision, a.mod_revision, a.lease), (&b"4"[..], 2, 5, None));
        assert_eq!(store.get("missing").await.unwrap(), None);
        let (under_a, at) = store.get_prefix("a").await.unwrap();
        assert_eq!((keys(&under_a), at), (vec!["a", "a/b"], 5));
        let (all, _) = store.get_prefix("").await.unwrap();
        assert_eq!(keys(&all), vec!["a", "a/b", "b"], "the empty prefix is every key, sorted");
        assert_eq!(store.delete("a").await.unwrap(), Some(6));
        assert_eq!(store.delete("a").await.unwrap(), None, "deleting an absent key changes nothing");
        assert_eq!(store.current_revision().await.unwrap(), 6);
        // A key created again starts a new life.
        assert_eq!(store.put("a", vec![], None).await.unwrap(), 7);
        let a = store.get("a").await.unwrap().unwrap();
        assert_eq!((a.create_revision, a.mod_revision, a.value.len()), (7, 7, 0));
    }

    pub async fn compare_and_swap_cases(store: Fresh) {
        let put = |v: &str| Some(v.as_bytes().to_vec());
        assert_eq!(store.compare_and_swap("k", Compare::Absent, put("1"), None).await.unwrap(), CasOutcome::Swapped(2));
        let current = store.get("k").await.unwrap();
        assert_eq!(store.compare_and_swap("k", Compare::Absent, put("x"), None).await.unwrap(), CasOutcome::Conflict(current.clone()));
        assert_eq!(store.compare_and_swap("k", Compare::ModRevision(0), put("x"), None).await.unwrap(), CasOutcome::Conflict(current));
        assert_eq!(store.compare_and_swap("k", Compare::ModRevision(2), put("2"), None).await.unwrap(), CasOutcome::Swapped(3));
        let current = store.get("k").await.unwrap().unwrap();
        assert_eq!((current.value.as_slice(), current.create_revision), (&b"2"[..], 2));
        assert_eq!(store.compare_and_swap("k", Compare::ModRevision(2), put("stale"), None).await.unwrap(), CasOutcome::Conflict(Some(current.clone())));
        assert_eq!(store.compare_and_swap("k", Compare::ModRevision(2), None, None).await.unwrap(), CasOutcome::Conflict(Some(current)));
        assert_eq!(store.compare_and_swap("k", Compare::ModRevision(3), None, None).await.unwrap(), CasOutcome::Swapped(4));
        assert_eq!(store.get("k").await.unwrap(), None);
        assert_eq!(store.compare_and_swap("k", Compare::ModRevision(3), put("y"), None).await.unwrap(), CasOutcome::Conflict(None));
        // A delete of an absent key whose compare holds reports the current
        // revision and writes nothing.
        assert_eq!(store.compare_and_swap("k", Compare::Absent, None, None).await.unwrap(), CasOutcome::Swapped(4));
        assert_eq!(store.current_revision().await.unwrap(), 4);
    }

    pub async fn invalid_input_is_refused_without_side_effects(store: Fresh) {
        assert!(matches!(store.put("", vec![], None).await, Err(MetaError::InvalidKey(_))));
        assert!(matches!(store.get(&"k".repeat(evenkeel_meta::MAX_KEY_LEN + 1)).await, Err(MetaError::InvalidKey(_))));
        assert!(matches!(store.put("k", vec![0; evenkeel_meta::MAX_VALUE_LEN + 1], None).await, Err(MetaError::InvalidArgument(_))));
        assert!(matches!(store.put("k", vec![], Some(0)).await, Err(MetaError::LeaseNotFound(0))));
        // The largest value the trait accepts, etcd's request cap included.
        assert_eq!(store.put("big", vec![7; evenkeel_meta::MAX_VALUE_LEN], None).await.unwrap(), 2);
        assert_eq!(store.get("big").await.unwrap().unwrap().value.len(), evenkeel_meta::MAX_VALUE_LEN);
        assert_eq!(store.current_revision().await.unwrap(), 2);
    }

    pub async fn leases_own_their_keys(store: Fresh) {
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        assert!(lease > 0);
        store.put("owned/1", vec![], Some(lease)).await.unwrap();
        let cas = store.compare_and_swap("owned/2", Compare::Absent, Some(vec![]), Some(lease)).await.unwrap();
        assert!(matches!(cas, CasOutcome::Swapped(_)));
        store.put("free", vec![], None).await.unwrap();
        assert_eq!(store.get("owned/1").await.unwrap().unwrap().lease, Some(lease));
        store.keep_alive(lease).await.unwrap();
        store.revoke_lease(lease).await.unwrap();
        let (left, _) = store.get_prefix("").await.unwrap();
        assert_eq!(keys(&left), vec!["free"], "revoking deletes the lease's keys");
        assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(l)) if l == lease));
        assert!(matches!(store.revoke_lease(lease).await, Err(MetaError::LeaseNotFound(l)) if l == lease));
        assert!(matches!(store.put("k", vec![], Some(lease)).await, Err(MetaError::LeaseNotFound(l)) if l == lease));
        let cas = store.compare_and_swap("k", Compare::Absent, Some(vec![]), Some(lease)).await;
        assert!(matches!(cas, Err(MetaError::LeaseNotFound(l)) if l == lease), "{cas:?}");
        assert_eq!(store.get("k").await.unwrap(), None);
    }

    /// Real time: a lease of 1 s (etcd raises it to its 2 s minimum) kept
    /// alive outlives its TTL, then expires once let go.
    pub async fn a_lease_lives_while_kept_alive_and_expires_after(store: Fresh) {
        let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
        store.put("session", vec![], Some(lease)).await.unwrap();
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            store.keep_alive(lease).await.unwrap();
        }
        assert!(store.get("session").await.unwrap().is_some(), "kept alive for 3.2 s");
        eventually(Duration::from_secs(10), "the key of an expired lease is deleted", async || store.get("session").await.unwrap().is_none()).await;
        assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(_))));
    }

    pub async fn watch_sees_its_prefix_in_order_and_replays(store: Fresh) {
        let mut live = store.watch_prefix("w/", 0).await.unwrap();
        store.put("w/a", b"1".to_vec(), None).await.unwrap(); // 2
        store.put("x", vec![], None).await.unwrap(); // 3, outside the prefix
        store.put("w/b", b"2".to_vec(), None).await.unwrap(); // 4
        store.delete("w/a").await.unwrap(); // 5
        assert_eq!(next_event(&mut live).await, put_event("w/a", b"1", 2, 2));
        assert_eq!(next_event(&mut live).await, put_event("w/b", b"2", 4, 4));
        assert_eq!(next_event(&mut live).await, WatchEvent::Delete { key: "w/a".into(), mod_revision: 5 });
        // From a past revision: history first, then live events.
        let mut replay = store.watch_prefix("w/", 4).await.unwrap();
        assert_eq!(next_event(&mut replay).await, put_event("w/b", b"2", 4, 4));
        assert_eq!(next_event(&mut replay).await.revision(), 5);
        store.put("w/c", vec![], None).await.unwrap(); // 6
        assert_eq!(next_event(&mut replay).await, put_event("w/c", b"", 6, 6));
        assert_eq!(next_event(&mut live).await.revision(), 6);
        // Every key: the empty prefix.
        let mut all = store.watch_prefix("", 3).await.unwrap();
        assert_eq!(next_event(&mut all).await.key(), "x");
    }

    /// The store was built with a watch buffer of 4.
    pub async fn a_watcher_that_never_reads_lags(store: Fresh) {
        let mut lagging = store.watch_prefix("", 0).await.unwrap();
        let mut other = store.watch_prefix("other/", 0).await.unwrap();
        for i in 0..10u8 {
            store.put(&format!("k{i}"), vec![], None).await.unwrap();
        }
        store.put("other/x", vec![], None).await.unwrap();
        assert_eq!(next_event(&mut other).await.key(), "other/x", "other watchers are unaffected");
        let mut seen = Vec::new();
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(10), lagging.next()).await.expect("the lagging watch ended") {
                Some(Ok(event)) => seen.push(event.revision()),
                Some(Err(e)) => break e,
                None => panic!("ended without an error"),
            }
        };
        assert!(matches!(end, MetaError::WatchLagged), "{end:?}");
        assert!(!seen.is_empty() && seen.len() <= 4 && seen.windows(2).all(|w| w[1] == w[0] + 1) && seen[0] == 2, "buffered events come first, in order: {seen:?}");
        assert!(lagging.next().await.is_none(), "the stream ends after WatchLagged");
    }

    pub async fn locks_are_exclusive_and_their_tokens_grow(store: Fresh) {
        let l1 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let l2 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let first = store.try_lock("locks/a", l1).await.unwrap().expect("a free lock");
        assert_eq!(store.try_lock("locks/a", l2).await.unwrap(), None);
        assert_eq!(store.try_lock("locks/a", l1).await.unwrap(), None, "not re-entrant");
        assert!(store.try_lock("locks/b", l2).await.unwrap().is_some(), "other names are independent");
        let holder = store.get("locks/a").await.unwrap().unwrap();
        assert_eq!((holder.create_revision, holder.lease), (first.fencing_token, Some(l1)));
        let mut last = first.fencing_token;
        store.unlock(&first).await.unwrap();
        for round in 0..4 {
            let lease = if round % 2 == 0 { l2 } else { l1 };
            let lock = store.try_lock("locks/a", lease).await.unwrap().expect("released");
            assert!(lock.fencing_token > last, "{} after {last}", lock.fencing_token);
            last = lock.fencing_token;
            store.unlock(&lock).await.unwrap();
        }
        // A stale holder's unlock leaves the next holder alone.
        let stale = store.try_lock("locks/c", l1).await.unwrap().unwrap();
        store.unlock(&stale).await.unwrap();
        let current = store.try_lock("locks/c", l2).await.unwrap().unwrap();
        store.unlock(&stale).await.unwrap();
        assert_eq!(store.get("locks/c").await.unwrap().unwrap().create_revision, current.fencing_token);
    }

    /// A compare-and-swap under a lock writes only while the lock is held
    /// by that lease with that token, in one step with the compare; a lost
    /// lock refuses whatever the compare, and names who holds it now.
    pub async fn a_compare_and_swap_under_a_lock_needs_the_lock(store: Fresh) {
        let put = |v: &str| Some(v.as_bytes().to_vec());
        let l1 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let l2 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let lock = store.try_lock("L", l1).await.unwrap().unwrap();
        assert_eq!(lock.fencing_token, 2);
        assert_eq!(store.compare_and_swap_holding(&lock, "k", Compare::Absent, put("1"), None).await.unwrap(), HeldOutcome::Swapped(3));
        let k = store.get("k").await.unwrap();
        assert_eq!(store.compare_and_swap_holding(&lock, "k", Compare::Absent, put("2"), None).await.unwrap(), HeldOutcome::Conflict(k.clone()));
        // The same token under another lease: a holder that found its
        // predecessor's lock and has not taken it again.
        let held = store.get("L").await.unwrap();
        let found = Lock { lease: l2, ..lock.clone() };
        assert_eq!(store.compare_and_swap_holding(&found, "k", Compare::ModRevision(3), put("x"), None).await.unwrap(), HeldOutcome::LockLost(held));
        // Released: lost, and then a successor's.
        store.unlock(&lock).await.unwrap();
        assert_eq!(store.compare_and_swap_holding(&lock, "k", Compare::ModRevision(3), put("x"), None).await.unwrap(), HeldOutcome::LockLost(None));
        let successor = store.try_lock("L", l2).await.unwrap().unwrap();
        let held = store.get("L").await.unwrap();
        assert_eq!(store.compare_and_swap_holding(&lock, "k", Compare::ModRevision(3), put("x"), None).await.unwrap(), HeldOutcome::LockLost(held.clone()));
        // Both fail: the lock is what the caller has to know about.
        assert_eq!(store.compare_and_swap_holding(&lock, "k", Compare::Absent, put("x"), None).await.unwrap(), HeldOutcome::LockLost(held));
        assert_eq!(store.get("k").await.unwrap(), k, "nothing refused was written");
        assert_eq!(store.current_revision().await.unwrap(), successor.fencing_token);
        // The successor deletes under its lock; a lease that ends takes the
        // lock with it.
        assert_eq!(store.compare_and_swap_holding(&successor, "k", Compare::ModRevision(3), None, None).await.unwrap(), HeldOutcome::Swapped(successor.fencing_token + 1));
        store.revoke_lease(l2).await.unwrap();
        assert_eq!(store.compare_and_swap_holding(&successor, "k", Compare::Absent, put("y"), None).await.unwrap(), HeldOutcome::LockLost(None));
        assert_eq!(store.get("k").await.unwrap(), None);
        // Bad input is refused as by a plain compare-and-swap.
        assert!(matches!(store.compare_and_swap_holding(&lock, "", Compare::Absent, None, None).await, Err(MetaError::InvalidKey(_))));
    }

    pub async fn lock_waits_for_the_holder(store: Fresh) {
        let l1 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let l2 = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let held = store.try_lock("L", l1).await.unwrap().unwrap();
        let sibling = store.try_lock("L2", l1).await.unwrap().unwrap();
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.lock("L", l2, Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.unlock(&sibling).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "still waiting while L is held (a longer name's release is not ours)");
        store.unlock(&held).await.unwrap();
        let lock = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("the waiter took the lock").unwrap().unwrap();
        assert_eq!(lock.lease, l2);
        assert!(lock.fencing_token > held.fencing_token);
        match store.lock("L", l1, Duration::from_millis(500)).await {
            Err(MetaError::LockTimeout(name)) => assert_eq!(name, "L"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}

/// One `#[tokio::test]` per backend for each suite case; `$buffer` is the
/// store's watch buffer.
macro_rules! conformance {
    ($($case:ident $(buffer $buffer:literal)?),* $(,)?) => {
        mod embedded {
            use super::*;
            use evenkeel_meta::{EmbeddedOptions, EmbeddedStore};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[allow(unused_mut)]
                async fn $case() {
                    let mut opts = EmbeddedOptions::default();
                    $(opts.watch_buffer = $buffer;)?
                    suite::$case(EmbeddedStore::in_memory_with(opts)).await;
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[allow(unused_mut)]
                async fn $case() {
                    let server = etcd_server::EtcdServer::start();
                    let mut opts = server.options();
                    // Under a namespace, which must be invisible.
                    opts.namespace = "/conformance".into();
                    $(opts.watch_buffer = $buffer;)?
                    suite::$case(evenkeel_meta::EtcdStore::connect(opts).await.expect("connect to etcd")).await;
                }
            )*
        }
    };
}

conformance!(
    put_get_delete_and_prefix,
    compare_and_swap_cases,
    invalid_input_is_refused_without_side_effects,
    leases_own_their_keys,
    a_lease_lives_while_kept_alive_and_expires_after,
    watch_sees_its_prefix_in_order_and_replays,
    a_watcher_that_never_reads_lags buffer 4,
    locks_are_exclusive_and_their_tokens_grow,
    lock_waits_for_the_holder,
    a_compare_and_swap_under_a_lock_needs_the_lock,
);

#[cfg(feature = "etcd")]
#[path = "support/etcd_server.rs"]
mod etcd_server;

/// What only the etcd backend has to say.
#[cfg(feature = "etcd")]
mod etcd_only {
    use super::*;
    use evenkeel_meta::{EtcdOptions, EtcdStore};

    #[tokio::test]
    async fn a_watch_from_compacted_history_is_refused() {
        let server = etcd_server::EtcdServer::start();
        let store = EtcdStore::connect(server.options()).await.unwrap();
        for i in 0..5u8 {
            store.put("k", vec![i], None).await.unwrap(); // revisions 2..=6
        }
        let mut client = etcd_client::Client::connect([server.endpoint()], None).await.unwrap();
        client.compact(5, None).await.unwrap();
        let mut watch = store.watch_prefix("k", 3).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap() {
            Some(Err(MetaError::Compacted { requested: 3, oldest })) => assert!(oldest >= 5, "{oldest}"),
            other => panic!("expected Compacted, got {other:?}"),
        }
        // From the compaction point on, history is there.
        let mut watch = store.watch_prefix("k", 6).await.unwrap();
        assert_eq!(next_event(&mut watch).await.revision(), 6);
    }

    /// Two namespaces on one etcd see only their own keys, in reads and
    /// watches; a namespace that is not a path is refused.
    #[tokio::test]
    async fn namespaces_keep_stores_apart() {
        let server = etcd_server::EtcdServer::start();
        let open = async |ns: &str| {
            let mut opts = server.options();
            opts.namespace = ns.into();
            EtcdStore::connect(opts).await
        };
        let (a, b) = (open("/team-a").await.unwrap(), open("/team-b").await.unwrap());
        let mut watch_b = b.watch_prefix("", 0).await.unwrap();
        a.put("/evenkeel/routing", b"a".to_vec(), None).await.unwrap();
        let rev = b.put("/evenkeel/routing", b"b".to_vec(), None).await.unwrap();
        assert_eq!(a.get("/evenkeel/routing").await.unwrap().unwrap().value, b"a");
        let (all_b, _) = b.get_prefix("").await.unwrap();
        assert_eq!((keys(&all_b), all_b[0].value.as_slice()), (vec!["/evenkeel/routing"], &b"b"[..]));
        assert_eq!(next_event(&mut watch_b).await.revision(), rev, "b's watch saw only b's write");
        assert!(matches!(a.compare_and_swap("/evenkeel/routing", Compare::Absent, Some(vec![]), None).await.unwrap(), CasOutcome::Conflict(Some(_))));
        let mut raw = etcd_client::Client::connect([server.endpoint()], None).await.unwrap();
        let stored = raw.get("/team-a/evenkeel/routing", None).await.unwrap();
        assert_eq!(stored.kvs()[0].value(), b"a", "stored under the namespace as given");
        for bad in ["team-a", "/team-a/", "/"] {
            assert!(matches!(open(bad).await, Err(MetaError::InvalidArgument(_))), "{bad}");
        }
    }

    /// An etcd with authentication on: the right user works, no user or a
    /// wrong password is refused with a hint.
    #[tokio::test]
    async fn an_etcd_with_authentication_takes_its_user_and_refuses_others() {
        let server = etcd_server::EtcdServer::start();
        let mut raw = etcd_client::Client::connect([server.endpoint()], None).await.unwrap();
        raw.user_add("root", "s3cret", None).await.unwrap();
        raw.user_grant_role("root", "root").await.unwrap();
        raw.auth_enable().await.unwrap();
        let with = |user: Option<(&str, &str)>| {
            let mut opts = server.options();
            opts.user = user.map(|(name, password)| evenkeel_meta::EtcdUser { name: name.into(), password: password.into() });
            opts
        };
        let store = EtcdStore::connect(with(Some(("root", "s3cret")))).await.unwrap();
        store.put("k", b"v".to_vec(), None).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().unwrap().value, b"v");
        assert!(!format!("{:?}", with(Some(("root", "s3cret")))).contains("s3cret"), "Debug hides the password");
        for user in [None, Some(("root", "wrong"))] {
            match EtcdStore::connect(with(user)).await {
                Err(e) => assert!(e.to_string().contains("authentication"), "{user:?}: {e}"),
                Ok(_) => panic!("{user:?} was let in"),
            }
        }
    }

    /// An etcd that serves TLS and requires client certificates: the CA and
    /// a client certificate get in (and watches work over it); without the
    /// client certificate, or over plain http, the start fails clearly.
    #[tokio::test]
    async fn tls_to_etcd_with_client_certificates() {
        let server = etcd_server::EtcdServer::start_tls(etcd_server::TestCerts::new());
        let certs = server.certs();
        let with = |cert: bool| {
            let mut opts = server.options();
            opts.tls = Some(evenkeel_meta::EtcdTls { ca: certs.path("ca.crt"), cert: cert.then(|| certs.path("client.crt")), key: cert.then(|| certs.path("client.key")) });
            opts
        };
        // The server's port accepts before its TLS is ready: retry a while.
        let mut tries = 0;
        let store = loop {
            match EtcdStore::connect(with(true)).await {
                Ok(store) => break store,
                Err(e) if tries == 50 => panic!("TLS with a client certificate: {e}"),
                Err(_) => tries += 1,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut watch = store.watch_prefix("t/", 0).await.unwrap();
        store.put("t/k", b"v".to_vec(), None).await.unwrap();
        assert_eq!(next_event(&mut watch).await.key(), "t/k");
        assert!(EtcdStore::connect(with(false)).await.is_err(), "etcd requires a client certificate");
        let mut plain = server.options();
        plain.endpoints = vec![server.endpoint().replace("https://", "http://")];
        assert!(matches!(EtcdStore::connect(plain).await, Err(MetaError::Unavailable(_))));
        let mut mismatched = with(true);
        mismatched.endpoints = vec![server.endpoint().replace("https://", "http://")];
        assert!(matches!(EtcdStore::connect(mismatched).await, Err(MetaError::InvalidArgument(_))), "http:// with TLS settings is refused");
        let mut missing = with(true);
        missing.tls.as_mut().unwrap().ca = certs.path("nowhere.crt");
        match EtcdStore::connect(missing).await {
            Err(MetaError::InvalidArgument(why)) => assert!(why.contains("nowhere.crt"), "{why}"),
            other => panic!("expected the missing file named, got {:?}", other.err()),
        }
    }

    /// Watches are not bounded by the request timeout: a quiet watch still
    /// delivers after it.
    #[tokio::test]
    async fn a_quiet_watch_outlives_the_request_timeout() {
        let server = etcd_server::EtcdServer::start();
        let mut opts = server.options();
        opts.request_timeout = Duration::from_millis(500);
        let store = EtcdStore::connect(opts).await.unwrap();
        let mut watch = store.watch_prefix("q/", 0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        store.put("q/x", vec![], None).await.unwrap();
        assert_eq!(next_event(&mut watch).await.key(), "q/x");
    }

    #[tokio::test]
    async fn no_etcd_at_the_endpoint_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut opts = EtcdOptions::new(vec![format!("http://127.0.0.1:{port}")]);
        opts.connect_timeout = Duration::from_secs(1);
        opts.request_timeout = Duration::from_secs(1);
        let started = std::time::Instant::now();
        match EtcdStore::connect(opts).await {
            Err(MetaError::Unavailable(why)) => assert!(why.contains(&port.to_string()), "names the endpoint: {why}"),
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(_) => panic!("connected to nothing"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(matches!(EtcdStore::connect(EtcdOptions::new(vec![])).await, Err(MetaError::InvalidArgument(_))));
    }

    /// The server going away mid-watch ends the watch with an error (so a
    /// follower re-reads) and fails requests, within the request timeout.
    #[tokio::test]
    async fn a_lost_server_ends_watches_and_fails_requests() {
        let mut server = etcd_server::EtcdServer::start();
        let mut opts = server.options();
        opts.request_timeout = Duration::from_secs(2);
        let store = EtcdStore::connect(opts).await.unwrap();
        let mut watch = store.watch_prefix("", 0).await.unwrap();
        server.kill();
        match tokio::time::timeout(Duration::from_secs(30), watch.next()).await.expect("the watch noticed") {
            Some(Err(MetaError::Unavailable(_))) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let started = std::time::Instant::now();
        assert!(matches!(store.put("k", vec![], None).await, Err(MetaError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    /// Keep-alives share one open stream per lease: it survives an etcd
    /// restart (the broken stream is replaced), and a lease revoked by
    /// someone else is reported gone on it.
    #[tokio::test]
    async fn a_lease_is_kept_alive_across_an_etcd_restart_and_its_revocation_seen() {
        let mut server = etcd_server::EtcdServer::start();
        let mut opts = server.options();
        opts.request_timeout = Duration::from_secs(2);
        let store = EtcdStore::connect(opts).await.unwrap();
        let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
        store.put("held", vec![], Some(lease)).await.unwrap();
        for _ in 0..3 {
            store.keep_alive(lease).await.unwrap();
        }
        server.restart();
        eventually(Duration::from_secs(20), "a keep-alive after the restart", async || store.keep_alive(lease).await.is_ok()).await;
        store.keep_alive(lease).await.unwrap();
        let mut raw = etcd_client::Client::connect([server.endpoint()], None).await.unwrap();
        raw.lease_revoke(lease).await.unwrap();
        assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(l)) if l == lease));
        assert!(matches!(store.keep_alive(lease).await, Err(MetaError::LeaseNotFound(l)) if l == lease), "and again, on a new stream");
        assert_eq!(store.get("held").await.unwrap(), None);
    }
}
