//! Model test: random put/delete/CAS sequences, interleaved with reopens of
//! the durable store, must agree with a plain BTreeMap model on every result,
//! every value and every revision.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use evenkeel_meta::{
    CasOutcome, Compare, EmbeddedOptions, EmbeddedStore, KeyValue, MetaStore, Revision,
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

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8),
    Delete(usize),
    Cas(usize, Expect, Option<u8>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let expect = prop_oneof![
        Just(Expect::Absent),
        Just(Expect::Current),
        (0..40u64).prop_map(Expect::Arbitrary)
    ];
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => key.clone().prop_map(Op::Delete),
        4 => (key, expect, proptest::option::of(any::<u8>())).prop_map(|(k, e, v)| Op::Cas(k, e, v)),
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
            lease: None,
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

async fn run(dir: &Path, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut store: Arc<EmbeddedStore> = EmbeddedStore::open(dir, options()).await.unwrap();
    let mut model = Model {
        revision: 1,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let got = store.put(KEYS[k], vec![v], None).await.unwrap();
                prop_assert_eq!(got, model.put(KEYS[k], v));
            }
            Op::Delete(k) => {
                let got = store.delete(KEYS[k]).await.unwrap();
                prop_assert_eq!(got, model.delete(KEYS[k]));
            }
            Op::Cas(k, expect, value) => {
                let compare = match expect {
                    Expect::Absent => Compare::Absent,
                    Expect::Current => {
                        Compare::ModRevision(model.kvs.get(KEYS[k]).map_or(0, |kv| kv.mod_revision))
                    }
                    Expect::Arbitrary(rev) => Compare::ModRevision(rev),
                };
                let got = store
                    .compare_and_swap(KEYS[k], compare, value.map(|v| vec![v]), None)
                    .await
                    .unwrap();
                prop_assert_eq!(got, model.cas(KEYS[k], compare, value));
            }
            Op::Reopen => {
                drop(store);
                store = EmbeddedStore::open(dir, options()).await.unwrap();
            }
        }
        let (kvs, revision) = store.get_prefix("").await.unwrap();
        prop_assert_eq!(revision, model.revision);
        prop_assert_eq!(kvs, model.kvs.values().cloned().collect::<Vec<_>>());
        let (under_a, _) = store.get_prefix("a").await.unwrap();
        prop_assert_eq!(
            under_a.len(),
            model.kvs.keys().filter(|k| k.starts_with('a')).count()
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
        runtime.block_on(run(dir.path(), ops))?;
    }
}
