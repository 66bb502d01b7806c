//! The embedded store's in-memory state machine. Live writes and recovery go
//! through the same `apply`, so the state after replay is the state that was
//! acknowledged. `apply` checks every record against the state and reports an
//! impossible one (revision gap, unknown lease, ...) as an error string, which
//! recovery turns into `MetaError::Corrupt`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::codec::{Record, Snapshot};
use crate::store::{KeyValue, LeaseId, Revision, WatchEvent};

#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub ttl: Duration,
    /// Not durable: recovery restarts every lease's full TTL.
    pub deadline: Instant,
    pub keys: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub revision: Revision,
    pub kvs: BTreeMap<String, KeyValue>,
    pub leases: BTreeMap<LeaseId, Lease>,
    pub next_lease_id: LeaseId,
}

impl State {
    /// A fresh store: revision 1 with no events, as in etcd.
    pub(crate) fn new() -> State {
        State {
            revision: 1,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
            next_lease_id: 1,
        }
    }

    pub(crate) fn from_snapshot(snap: Snapshot, now: Instant) -> Result<State, String> {
        let mut state = State {
            revision: snap.revision,
            next_lease_id: snap.next_lease_id,
            ..State::new()
        };
        for (id, ttl_ms) in snap.leases {
            if id <= 0 || id >= snap.next_lease_id || ttl_ms == 0 {
                return Err(format!(
                    "snapshot lease {id} with ttl {ttl_ms} ms is invalid"
                ));
            }
            state.insert_lease(id, ttl_ms, now);
        }
        for kv in snap.kvs {
            if kv.create_revision > kv.mod_revision || kv.mod_revision > snap.revision {
                return Err(format!(
                    "snapshot key {:?} has impossible revisions",
                    kv.key
                ));
            }
            if let Some(id) = kv.lease {
                let lease = state.leases.get_mut(&id);
                let lease = lease
                    .ok_or_else(|| format!("snapshot key {:?} uses unknown lease {id}", kv.key))?;
                lease.keys.insert(kv.key.clone());
            }
            state.kvs.insert(kv.key.clone(), kv);
        }
        Ok(state)
    }

    pub(crate) fn to_snapshot(&self, generation: u64) -> Snapshot {
        Snapshot {
            generation,
            revision: self.revision,
            next_lease_id: self.next_lease_id,
            leases: self
                .leases
                .iter()
                .map(|(id, l)| (*id, ttl_to_ms(l.ttl)))
                .collect(),
            kvs: self.kvs.values().cloned().collect(),
        }
    }

    pub(crate) fn range<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KeyValue> + 'a {
        self.kvs
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv)
    }

    /// Applies one record, returning the watch events it produced.
    pub(crate) fn apply(
        &mut self,
        record: &Record,
        now: Instant,
    ) -> Result<Vec<WatchEvent>, String> {
        match record {
            Record::Put {
                revision,
                key,
                value,
                lease,
            } => self
                .apply_put(*revision, key, value, *lease)
                .map(|e| vec![e]),
            Record::Delete { revision, key } => self.apply_delete(*revision, key).map(|e| vec![e]),
            Record::GrantLease { id, ttl_ms } => {
                if *id < self.next_lease_id || *ttl_ms == 0 {
                    return Err(format!(
                        "lease grant {id} (ttl {ttl_ms} ms) is out of sequence"
                    ));
                }
                self.insert_lease(*id, *ttl_ms, now);
                self.next_lease_id = id + 1;
                Ok(Vec::new())
            }
            Record::RevokeLease {
                id,
                first_revision,
                keys,
            } => self.apply_revoke(*id, *first_revision, keys),
        }
    }

    fn insert_lease(&mut self, id: LeaseId, ttl_ms: u64, now: Instant) {
        let ttl = Duration::from_millis(ttl_ms);
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
    }

    fn next_revision(&self, revision: Revision) -> Result<(), String> {
        if revision == self.revision + 1 {
            Ok(())
        } else {
            Err(format!(
                "record revision {revision} does not follow {}",
                self.revision
            ))
        }
    }

    fn apply_put(
        &mut self,
        revision: Revision,
        key: &str,
        value: &[u8],
        lease: Option<LeaseId>,
    ) -> Result<WatchEvent, String> {
        self.next_revision(revision)?;
        if let Some(id) = lease {
            let lease = self
                .leases
                .get_mut(&id)
                .ok_or_else(|| format!("put of {key:?} uses unknown lease {id}"))?;
            lease.keys.insert(key.to_owned());
        }
        let previous = self.kvs.get(key);
        let create_revision = previous.map_or(revision, |kv| kv.create_revision);
        // A put replaces the attachment, as in etcd: without a lease it detaches.
        if let Some(old) = previous
            .and_then(|kv| kv.lease)
            .filter(|old| Some(*old) != lease)
        {
            self.detach(old, key);
        }
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision,
            mod_revision: revision,
            lease,
        };
        self.kvs.insert(key.to_owned(), kv.clone());
        self.revision = revision;
        Ok(WatchEvent::Put(kv))
    }

    fn apply_delete(&mut self, revision: Revision, key: &str) -> Result<WatchEvent, String> {
        self.next_revision(revision)?;
        let kv = self
            .kvs
            .remove(key)
            .ok_or_else(|| format!("delete of absent key {key:?}"))?;
        if let Some(id) = kv.lease {
            self.detach(id, key);
        }
        self.revision = revision;
        Ok(WatchEvent::Delete {
            key: key.to_owned(),
            mod_revision: revision,
        })
    }

    fn apply_revoke(
        &mut self,
        id: LeaseId,
        first_revision: Revision,
        keys: &[String],
    ) -> Result<Vec<WatchEvent>, String> {
        let lease = self
            .leases
            .get(&id)
            .ok_or_else(|| format!("revoke of unknown lease {id}"))?;
        if !lease.keys.iter().eq(keys.iter()) {
            return Err(format!(
                "revoke of lease {id} lists keys other than those attached"
            ));
        }
        if !keys.is_empty() {
            self.next_revision(first_revision)?;
        }
        let mut events = Vec::with_capacity(keys.len());
        for (revision, key) in (first_revision..).zip(keys) {
            events.push(self.apply_delete(revision, key)?);
        }
        self.leases.remove(&id);
        Ok(events)
    }

    fn detach(&mut self, lease: LeaseId, key: &str) {
        if let Some(lease) = self.leases.get_mut(&lease) {
            lease.keys.remove(key);
        }
    }

    /// The record that removes `id` and its keys; None if the lease is unknown.
    pub(crate) fn revoke_record(&self, id: LeaseId) -> Option<Record> {
        let lease = self.leases.get(&id)?;
        Some(Record::RevokeLease {
            id,
            first_revision: self.revision + 1,
            keys: lease.keys.iter().cloned().collect(),
        })
    }
}

/// TTLs are kept in whole milliseconds, rounded up so a lease never shortens.
pub(crate) fn ttl_to_ms(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: Revision, key: &str, lease: Option<LeaseId>) -> Record {
        Record::Put {
            revision,
            key: key.into(),
            value: key.as_bytes().to_vec(),
            lease,
        }
    }

    #[test]
    fn put_keeps_create_revision_and_moves_lease() {
        let now = Instant::now();
        let mut s = State::new();
        s.apply(&Record::GrantLease { id: 1, ttl_ms: 10 }, now)
            .unwrap();
        s.apply(&put(2, "k", Some(1)), now).unwrap();
        s.apply(&put(3, "k", None), now).unwrap();
        let kv = &s.kvs["k"];
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.lease),
            (2, 3, None)
        );
        assert!(s.leases[&1].keys.is_empty(), "put without lease detaches");
    }

    #[test]
    fn impossible_records_are_rejected() {
        let now = Instant::now();
        let mut s = State::new();
        assert!(
            s.apply(&put(3, "k", None), now)
                .unwrap_err()
                .contains("does not follow")
        );
        assert!(
            s.apply(&put(2, "k", Some(5)), now)
                .unwrap_err()
                .contains("unknown lease")
        );
        assert!(
            s.apply(
                &Record::Delete {
                    revision: 2,
                    key: "k".into()
                },
                now
            )
            .is_err()
        );
        s.apply(&Record::GrantLease { id: 4, ttl_ms: 10 }, now)
            .unwrap();
        assert!(
            s.apply(&Record::GrantLease { id: 4, ttl_ms: 10 }, now)
                .is_err()
        );
        let wrong_keys = Record::RevokeLease {
            id: 4,
            first_revision: 2,
            keys: vec!["x".into()],
        };
        assert!(s.apply(&wrong_keys, now).is_err());
        assert_eq!(s.revision, 1, "failed records change nothing observable");
    }

    #[test]
    fn revoke_deletes_each_key_at_its_own_revision() {
        let now = Instant::now();
        let mut s = State::new();
        s.apply(&Record::GrantLease { id: 1, ttl_ms: 10 }, now)
            .unwrap();
        s.apply(&put(2, "b", Some(1)), now).unwrap();
        s.apply(&put(3, "a", Some(1)), now).unwrap();
        let events = s.apply(&s.revoke_record(1).unwrap(), now).unwrap();
        let got: Vec<_> = events
            .iter()
            .map(|e| (e.key().to_owned(), e.revision()))
            .collect();
        assert_eq!(got, vec![("a".to_owned(), 4), ("b".to_owned(), 5)]);
        assert!(s.kvs.is_empty() && s.leases.is_empty());
        assert_eq!(s.revision, 5);
    }

    #[test]
    fn snapshot_round_trip_restores_attachments() {
        let now = Instant::now();
        let mut s = State::new();
        s.apply(&Record::GrantLease { id: 1, ttl_ms: 10 }, now)
            .unwrap();
        s.apply(&put(2, "a", Some(1)), now).unwrap();
        s.apply(&put(3, "ab", None), now).unwrap();
        let restored = State::from_snapshot(s.to_snapshot(7), now).unwrap();
        assert_eq!(restored.kvs, s.kvs);
        assert_eq!(restored.leases[&1].keys, s.leases[&1].keys);
        assert_eq!((restored.revision, restored.next_lease_id), (3, 2));
        let keys: Vec<_> = restored.range("a").map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["a", "ab"]);
    }

    #[test]
    fn ttl_rounds_up_to_milliseconds() {
        assert_eq!(ttl_to_ms(Duration::from_micros(1)), 1);
        assert_eq!(ttl_to_ms(Duration::from_millis(1500)), 1500);
    }
}
