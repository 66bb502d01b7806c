//! Model test: random put/delete/CAS sequences (plain, and under a lock on
//! another key), interleaved with reopens of the durable store, must agree
//! with a plain BTreeMap model on every result, every value and every
//! revision; with the `etcd` feature, on etcd too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_meta::{
    CasOutcome, Compare, EmbeddedOptions, EmbeddedStore, HeldOutcome, KeyValue, LeaseId, Lock,
    MetaStore, Revision,
};
use proptest::prelude::*;

const KEYS: [&str; 4] = ["a", "a/b", "b", "c"];

#[derive(Debug, Clone)]
enum Expect {
    Absent,
    /// The key's true mod revision (0 when absent: etcd's "absent" spelling).
    Current,
    Arbitrary(Revision),
}

/// The fencing token of a lock held on a key.
#[derive(Debug, Clone)]
enum Token {
    /// The lock key's true create revision (0 when absent).
    Current,
    Arbitrary(Revision),
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8),
    /// A put under the case's lease: what a lock key is.
    PutLeased(usize, u8),
    Delete(usize),
    Cas(usize, Expect, Option<u8>),
    /// A compare-and-swap of the first key under a lock on the second,
    /// with that token, under the case's lease (true) or another one.
    Holding(usize, usize, Token, bool, Expect, Option<u8>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let expect = prop_oneof![
        Just(Expect::Absent),
        Just(Expect::Current),
        (0..40u64).prop_map(Expect::Arbitrary)
    ];
    let token = prop_oneof![3 => Just(Token::Current), 1 => (0..40u64).prop_map(Token::Arbitrary)];
    let value = proptest::option::of(any::<u8>());
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::PutLeased(k, v)),
        2 => key.clone().prop_map(Op::Delete),
        4 => (key.clone(), expect.clone(), value.clone()).prop_map(|(k, e, v)| Op::Cas(k, e, v)),
        3 => (key.clone(), key, token, prop::bool::weighted(0.8), expect, value).prop_map(|(k, l, t, ours, e, v)| Op::Holding(k, l, t, ours, e, v)),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default)]
struct Model {
    kvs: BTreeMap<String, KeyValue>,
    revision: Revision,
}

impl Model {
    fn put(&mut self, key: &str, value: u8) -> Revision {
        self.put_leased(key, value, None)
    }

    fn put_leased(&mut self, key: &str, value: u8, lease: Option<LeaseId>) -> Revision {
        self.revision += 1;
        let create_revision = self
            .kvs
            .get(key)
            .map_or(self.revision, |kv| kv.create_revision);
        let kv = KeyValue {
            key: key.into(),
            value: vec![value],
            create_revision,
            mod_revision: self.revision,
            lease,
        };
        self.kvs.insert(key.into(), kv);
        self.revision
    }

    fn delete(&mut self, key: &str) -> Option<Revision> {
        self.kvs.remove(key)?;
        self.revision += 1;
        Some(self.revision)
    }

    fn cas(&mut self, key: &str, expect: Compare, value: Option<u8>) -> CasOutcome {
        let current = self.kvs.get(key).cloned();
        let holds = match expect {
            Compare::Absent | Compare::ModRevision(0) => current.is_none(),
            Compare::ModRevision(rev) => current.as_ref().is_some_and(|kv| kv.mod_revision == rev),
        };
        if !holds {
            return CasOutcome::Conflict(current);
        }
        CasOutcome::Swapped(match value {
            Some(v) => self.put(key, v),
            None => self.delete(key).unwrap_or(self.revision),
        })
    }

    fn cas_holding(&mut self, lock: &Lock, key: &str, expect: Compare, value: Option<u8>) -> HeldOutcome {
        let held = self.kvs.get(&lock.key);
        let is_lock = held.is_some_and(|kv| kv.create_revision == lock.fencing_token && kv.lease == Some(lock.lease));
        if !is_lock {
            return HeldOutcome::LockLost(held.cloned());
        }
        match self.cas(key, expect, value) {
            CasOutcome::Swapped(revision) => HeldOutcome::Swapped(revision),
            CasOutcome::Conflict(current) => HeldOutcome::Conflict(current),
        }
    }
}

fn options() -> EmbeddedOptions {
    // Small compaction threshold so sequences cross snapshots too; no fsync for speed
    // (a clean drop still writes everything to the OS).
    EmbeddedOptions {
        fsync: false,
        compact_after_records: 5,
        ..EmbeddedOptions::default()
    }
}

/// Where a case's store lives: reopening it is what `Op::Reopen` does.
enum Backend {
    Embedded(PathBuf),
    #[cfg(feature = "etcd")]
    Etcd(String),
}

impl Backend {
    async fn open(&self) -> Arc<dyn MetaStore> {
        match self {
            Backend::Embedded(dir) => EmbeddedStore::open(dir, options()).await.unwrap(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(endpoint) => evenkeel_meta::EtcdStore::connect(evenkeel_meta::EtcdOptions::new(vec![endpoint.clone()])).await.unwrap(),
        }
    }
}

/// Runs `ops` on keys under `prefix` (a store shared by several cases
/// keeps them apart by prefix) from the store's current revision: every
/// result, value and revision must match the model's.
async fn run(backend: &Backend, prefix: &str, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut store = backend.open().await;
    let base = store.current_revision().await.unwrap();
    let mut model = Model {
        revision: base,
        ..Model::default()
    };
    // Leases change no revision; they outlive reopens (the embedded
    // store's log keeps them, etcd is the same server).
    let lease = store.grant_lease(Duration::from_secs(600)).await.unwrap();
    let other_lease = store.grant_lease(Duration::from_secs(600)).await.unwrap();
    let key = |k: usize| format!("{prefix}{}", KEYS[k]);
    let compare_of = |model: &Model, k: usize, expect: Expect| match expect {
        Expect::Absent => Compare::Absent,
        Expect::Current => Compare::ModRevision(model.kvs.get(&key(k)).map_or(0, |kv| kv.mod_revision)),
        // Revisions near this case's own (0 stays "absent").
        Expect::Arbitrary(0) => Compare::ModRevision(0),
        Expect::Arbitrary(rev) => Compare::ModRevision(base - 1 + rev),
    };
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let got = store.put(&key(k), vec![v], None).await.unwrap();
                prop_assert_eq!(got, model.put(&key(k), v));
            }
            Op::PutLeased(k, v) => {
                let got = store.put(&key(k), vec![v], Some(lease)).await.unwrap();
                prop_assert_eq!(got, model.put_leased(&key(k), v, Some(lease)));
            }
            Op::Holding(k, l, token, ours, expect, value) => {
                let fencing_token = match token {
                    Token::Current => model.kvs.get(&key(l)).map_or(0, |kv| kv.create_revision),
                    Token::Arbitrary(0) => 0,
                    Token::Arbitrary(rev) => base - 1 + rev,
                };
                let lock = Lock { key: key(l), lease: if ours { lease } else { other_lease }, fencing_token };
                let compare = compare_of(&model, k, expect);
                let got = store.compare_and_swap_holding(&lock, &key(k), compare, value.map(|v| vec![v]), None).await.unwrap();
                prop_assert_eq!(got, model.cas_holding(&lock, &key(k), compare, value));
            }
            Op::Delete(k) => {
                let got = store.delete(&key(k)).await.unwrap();
                prop_assert_eq!(got, model.delete(&key(k)));
            }
            Op::Cas(k, expect, value) => {
                let compare = compare_of(&model, k, expect);
                let got = store
                    .compare_and_swap(&key(k), compare, value.map(|v| vec![v]), None)
                    .await
                    .unwrap();
                prop_assert_eq!(got, model.cas(&key(k), compare, value));
            }
            Op::Reopen => {
                drop(store);
                store = backend.open().await;
            }
        }
        let (kvs, revision) = store.get_prefix(prefix).await.unwrap();
        prop_assert_eq!(revision, model.revision);
        prop_assert_eq!(kvs, model.kvs.values().cloned().collect::<Vec<_>>());
        let (under_a, _) = store.get_prefix(&format!("{prefix}a")).await.unwrap();
        prop_assert_eq!(
            under_a.len(),
            model.kvs.keys().filter(|k| k.starts_with(&format!("{prefix}a"))).count()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(&Backend::Embedded(dir.path().to_path_buf()), "", ops))?;
    }
}

#[cfg(feature = "etcd")]
#[path = "support/etcd_server.rs"]
mod etcd_server;

/// The same model on etcd: one server for every case, each case under a
/// prefix of its own, reopening = a new client.
#[cfg(feature = "etcd")]
#[test]
fn etcd_agrees_with_model() {
    let server = etcd_server::EtcdServer::start();
    let backend = Backend::Etcd(server.endpoint());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let case = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 96, ..ProptestConfig::default() });
    let outcome = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        case.set(case.get() + 1);
        runtime.block_on(run(&backend, &format!("case{:04}/", case.get()), ops))
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
