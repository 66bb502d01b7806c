//! The backend-neutral `MetaStore` trait, its data types, and helpers every
//! backend shares (key validation, the lock protocol).
//!
//! Everything here is expressible with etcd v3 primitives, so an etcd backend
//! only has to implement the required methods; locks come for free.

use std::time::Duration;

use futures::StreamExt;

use crate::error::{MetaError, Result};

/// Store-wide revision; increases by one on every key mutation.
pub type Revision = u64;
/// Lease handle. Backends never hand out 0 (etcd's "no lease").
pub type LeaseId = i64;

/// Longest accepted key, in bytes. Keeps keys well inside etcd's limits.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest accepted value, in bytes: below etcd's default 1.5 MiB request cap,
/// so anything the embedded store accepts the etcd backend accepts too.
pub const MAX_VALUE_LEN: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the latest put to the key.
    pub mod_revision: Revision,
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    Delete { key: String, mod_revision: Revision },
}

impl WatchEvent {
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    /// The revision at which this mutation happened.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

/// Condition for `compare_and_swap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent,
    /// The key's `mod_revision` equals this. As in etcd, `ModRevision(0)`
    /// holds exactly when the key is absent.
    ModRevision(Revision),
}

impl Compare {
    /// Evaluates the condition against the key's current value.
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        match (self, current) {
            (Compare::Absent, current) => current.is_none(),
            (Compare::ModRevision(0), current) => current.is_none(),
            (Compare::ModRevision(rev), Some(kv)) => kv.mod_revision == *rev,
            (Compare::ModRevision(_), None) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The write happened at this revision. A delete of an absent key changes
    /// nothing, so it reports the current revision instead.
    Swapped(Revision),
    /// The compare failed; carries the key's current value.
    Conflict(Option<KeyValue>),
}

/// What [`MetaStore::compare_and_swap_holding`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldOutcome {
    /// The lock was held and the compare held: written at this revision
    /// (a delete of an absent key: the current revision, as for
    /// [`CasOutcome::Swapped`]).
    Swapped(Revision),
    /// The lock was held, the compare failed; carries the key's value.
    Conflict(Option<KeyValue>),
    /// The lock is no longer held, whatever the compare: nothing was
    /// written. Carries the lock key's current value (a successor's lock,
    /// or None).
    LockLost(Option<KeyValue>),
}

/// A held lock. The lock key is attached to `lease`, so it vanishes if the
/// holder stops keeping the lease alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub key: String,
    pub lease: LeaseId,
    /// The lock key's create revision: strictly larger for every later holder,
    /// so resources can reject writes carrying an older token.
    pub fencing_token: Revision,
}

impl Lock {
    /// Whether `current` (the lock key's value) is this lock: the key
    /// created with this fencing token, under this lease. A successor's
    /// lock has a later create revision; a predecessor's, found by a holder
    /// that has not taken the lock again yet, another lease.
    pub fn is(&self, current: Option<&KeyValue>) -> bool {
        current.is_some_and(|kv| kv.key == self.key && kv.create_revision == self.fencing_token && kv.lease == Some(self.lease))
    }
}

impl From<CasOutcome> for HeldOutcome {
    /// A compare-and-swap done while the lock was held.
    fn from(outcome: CasOutcome) -> Self {
        match outcome {
            CasOutcome::Swapped(revision) => HeldOutcome::Swapped(revision),
            CasOutcome::Conflict(current) => HeldOutcome::Conflict(current),
        }
    }
}

pub type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<WatchEvent>> + Send>>;

#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// All keys with the prefix, sorted, plus the store revision they were read at.
    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)>;
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;
    /// Returns the revision of the delete, None if the key was absent.
    async fn delete(&self, key: &str) -> Result<Option<Revision>>;
    /// value None = delete when the compare holds.
    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Compare,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome>;
    /// [`Self::compare_and_swap`] of `key`, done only if `lock` is still
    /// held ([`Lock::is`]), in one atomic step: no successor can take the
    /// lock between the check and the write. For a key that no resource
    /// guards with the lock's fencing token itself (the routing table: the
    /// nodes check tokens, the metadata store does not), this is what makes
    /// a holder whose lease lapsed unable to write it.
    async fn compare_and_swap_holding(
        &self,
        lock: &Lock,
        key: &str,
        expect: Compare,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<HeldOutcome>;
    /// Events for keys under prefix with revision >= from_revision (0 = only
    /// future events), in revision order.
    /// The stream is bounded: a consumer that falls behind by more than the
    /// buffer gets Err(WatchLagged) and the stream ends; a from_revision older
    /// than retained history gets Err(Compacted). Callers then re-read with
    /// get_prefix and re-watch.
    async fn watch_prefix(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream>;
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;
    /// Err(LeaseNotFound) if it already expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;
    /// Deletes every key attached to the lease. Err(LeaseNotFound) if unknown.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;
    async fn current_revision(&self) -> Result<Revision>;

    /// Creates `name` under the lease if absent; returns None if it exists
    /// (locks are not re-entrant: None even when `lease` itself holds it).
    async fn try_lock(&self, name: &str, lease: LeaseId) -> Result<Option<Lock>> {
        validate_key(name)?;
        let value = Some(lock_value(lease));
        let outcome = self
            .compare_and_swap(name, Compare::Absent, value, Some(lease))
            .await?;
        Ok(match outcome {
            CasOutcome::Swapped(rev) => Some(Lock {
                key: name.to_owned(),
                lease,
                fencing_token: rev,
            }),
            CasOutcome::Conflict(_) => None,
        })
    }

    /// Waits (watching for the holder's key to go) up to `timeout`.
    async fn lock(&self, name: &str, lease: LeaseId, timeout: Duration) -> Result<Lock> {
        lock_with_watch(self, name, lease, timeout).await
    }

    /// Deletes the lock key only if it still has the lock's create revision.
    /// A stale holder's unlock is a no-op, not an error: either way the caller
    /// no longer holds the lock.
    async fn unlock(&self, lock: &Lock) -> Result<()> {
        // Lock keys are written once, so mod_revision == create_revision for
        // as long as this holder's key exists.
        let expect = Compare::ModRevision(lock.fencing_token);
        self.compare_and_swap(&lock.key, expect, None, None).await?;
        Ok(())
    }
}

/// Rejects keys no backend can store identically.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(MetaError::InvalidKey("key is empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(MetaError::InvalidKey(format!(
            "key of {} bytes exceeds {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

/// Prefixes may be empty (= every key) but obey the key length limit.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_LEN {
        return Err(MetaError::InvalidKey(format!(
            "prefix of {} bytes exceeds {MAX_KEY_LEN}",
            prefix.len()
        )));
    }
    Ok(())
}

pub fn validate_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(MetaError::InvalidArgument(format!(
            "value of {} bytes exceeds {MAX_VALUE_LEN}",
            value.len()
        )));
    }
    Ok(())
}

/// Rejects lease ids no backend ever hands out, before a backend looks them up.
pub fn validate_lease(lease: Option<LeaseId>) -> Result<()> {
    match lease {
        Some(id) if id <= 0 => Err(MetaError::LeaseNotFound(id)),
        _ => Ok(()),
    }
}

/// The checks of a write's arguments: its key, the value it would write
/// (None: a delete) and that value's lease.
pub fn validate_write(key: &str, value: Option<&[u8]>, lease: Option<LeaseId>) -> Result<()> {
    validate_key(key)?;
    if let Some(value) = value {
        validate_value(value)?;
    }
    validate_lease(lease)
}

/// The exclusive end of the key range covered by `prefix`, as etcd's
/// `range_end` wants it: the prefix with its last non-0xff byte incremented.
/// An empty prefix (or one of only 0xff) yields `[0]`, etcd's "to the end".
pub fn prefix_range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The lock key's value: the holder's lease, so an operator can tell who holds it.
fn lock_value(lease: LeaseId) -> Vec<u8> {
    lease.to_string().into_bytes()
}

/// The generic blocking lock: try, and while someone holds the key, watch it
/// until it is deleted, then try again.
///
/// The watch starts just after the revision of a read that saw the holder,
/// not after the holder's own revision: that one may be older than the
/// retained history, which would make every watch fail with `Compacted`.
/// Only the waiting is bounded by `timeout`; an attempt is never cancelled
/// midway, so a remote backend cannot create the key and then report a timeout.
pub async fn lock_with_watch<S: MetaStore + ?Sized>(
    store: &S,
    name: &str,
    lease: LeaseId,
    timeout: Duration,
) -> Result<Lock> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(lock) = store.try_lock(name, lease).await? {
            return Ok(lock);
        }
        let (holders, read_at) = store.get_prefix(name).await?;
        if !holders.iter().any(|kv| kv.key == name) {
            continue; // released between the attempt and the read: try again at once
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MetaError::LockTimeout(name.to_owned()));
        }
        let waited =
            tokio::time::timeout_at(deadline, wait_for_delete(store, name, read_at + 1)).await;
        match waited {
            Err(_elapsed) => return Err(MetaError::LockTimeout(name.to_owned())),
            Ok(Ok(())) => {}
            // Compacted between read and watch, or we fell behind: the key may
            // be gone already, so try again.
            Ok(Err(MetaError::Compacted { .. } | MetaError::WatchLagged)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Resolves once `key` is deleted at a revision >= `from`.
async fn wait_for_delete<S: MetaStore + ?Sized>(
    store: &S,
    key: &str,
    from: Revision,
) -> Result<()> {
    let mut events = store.watch_prefix(key, from).await?;
    while let Some(event) = events.next().await {
        // The prefix watch also reports longer keys; only the exact key matters.
        if let WatchEvent::Delete { key: deleted, .. } = event?
            && deleted == key
        {
            return Ok(());
        }
    }
    Err(MetaError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(mod_revision: Revision) -> KeyValue {
        KeyValue {
            key: "k".into(),
            value: vec![],
            create_revision: 2,
            mod_revision,
            lease: None,
        }
    }

    #[test]
    fn compare_semantics_match_etcd() {
        assert!(Compare::Absent.holds(None));
        assert!(!Compare::Absent.holds(Some(&kv(3))));
        assert!(Compare::ModRevision(3).holds(Some(&kv(3))));
        assert!(!Compare::ModRevision(4).holds(Some(&kv(3))));
        assert!(!Compare::ModRevision(3).holds(None));
        assert!(Compare::ModRevision(0).holds(None));
        assert!(!Compare::ModRevision(0).holds(Some(&kv(3))));
    }

    #[test]
    fn validation_limits() {
        assert!(matches!(validate_key(""), Err(MetaError::InvalidKey(_))));
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"x".repeat(MAX_KEY_LEN)).is_ok());
        assert!(validate_key(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate_prefix("").is_ok());
        assert!(validate_value(&vec![0; MAX_VALUE_LEN]).is_ok());
        assert!(validate_value(&vec![0; MAX_VALUE_LEN + 1]).is_err());
        assert!(matches!(
            validate_lease(Some(0)),
            Err(MetaError::LeaseNotFound(0))
        ));
        assert!(validate_lease(Some(1)).is_ok());
        assert!(validate_lease(None).is_ok());
    }

    #[test]
    fn range_end_increments_last_byte() {
        assert_eq!(prefix_range_end("abc"), b"abd".to_vec());
        assert_eq!(prefix_range_end(""), vec![0]);
        assert_eq!(prefix_range_end("a\u{7f}"), b"a\x80".to_vec());
        // "é" is [0xc3, 0xa9]: increment the last byte.
        assert_eq!(prefix_range_end("é"), vec![0xc3, 0xaa]);
    }

    #[test]
    fn watch_event_accessors() {
        let put = WatchEvent::Put(kv(7));
        assert_eq!((put.key(), put.revision()), ("k", 7));
        let del = WatchEvent::Delete {
            key: "d".into(),
            mod_revision: 9,
        };
        assert_eq!((del.key(), del.revision()), ("d", 9));
    }
}
