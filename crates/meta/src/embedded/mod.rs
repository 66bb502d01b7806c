//! The embedded, single-process `MetaStore`: an in-memory map made durable by
//! a write-ahead log with snapshot compaction (see `wal` for the files).
//!
//! Every operation runs synchronously under one mutex: log append (and fsync)
//! first, then the in-memory apply, then watch fan-out. So a mutation is
//! durable before anyone can observe it, and observers see revision order.
//! The fsync runs on the calling task's thread; metadata writes are rare
//! enough that this beats the complexity of a separate writer thread.

mod codec;
mod state;
mod wal;
mod watch;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use self::codec::Record;
use self::state::{State, ttl_to_ms};
use self::wal::Wal;
use self::watch::WatchHub;
use crate::error::{MetaError, Result};
use crate::store::{
    CasOutcome, Compare, KeyValue, LeaseId, MetaStore, Revision, WatchStream, validate_key,
    validate_lease, validate_prefix, validate_value,
};

/// How often the background task looks for expired leases.
const LEASE_CHECK_PERIOD: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// fsync the log before acknowledging a write (and snapshots before use).
    pub fsync: bool,
    /// Events a watcher may have queued before it is dropped with `WatchLagged`.
    pub watch_buffer: usize,
    /// Recent events kept in memory for `watch_prefix` replay.
    pub history_len: usize,
    /// Log records after which the state is snapshotted and the log restarted.
    pub compact_after_records: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            fsync: true,
            watch_buffer: 1024,
            history_len: 10_000,
            compact_after_records: 10_000,
        }
    }
}

struct Inner {
    state: State,
    /// None for the in-memory store.
    wal: Option<Wal>,
    watch: WatchHub,
}

pub struct EmbeddedStore {
    inner: Mutex<Inner>,
    opts: EmbeddedOptions,
    dir: Option<PathBuf>,
    /// Handed to the lease reaper so it never keeps the store alive.
    me: Weak<EmbeddedStore>,
    reaper_started: AtomicBool,
    /// Declared last: the directory lock is released only after the log is closed.
    _dir_lock: Option<File>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`, recovering its state.
    /// Fails with `AlreadyOpen` while another store has the directory.
    pub async fn open(dir: &Path, opts: EmbeddedOptions) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let dir_lock = wal::lock_dir(dir)?;
        let recovered = wal::recover(dir, opts.fsync, Instant::now())?;
        let mut watch = WatchHub::new(opts.history_len, opts.watch_buffer, recovered.compacted);
        watch.remember(&recovered.events);
        let has_leases = !recovered.state.leases.is_empty();
        let inner = Inner {
            state: recovered.state,
            wal: Some(recovered.wal),
            watch,
        };
        let store = Self::build(inner, opts, Some(dir.to_path_buf()), Some(dir_lock));
        if has_leases {
            store.ensure_reaper();
        }
        Ok(store)
    }

    /// A non-durable store with default options, for tests.
    pub fn in_memory() -> Arc<Self> {
        Self::in_memory_with(EmbeddedOptions::default())
    }

    /// A non-durable store; `fsync` and `compact_after_records` are ignored.
    pub fn in_memory_with(opts: EmbeddedOptions) -> Arc<Self> {
        let watch = WatchHub::new(opts.history_len, opts.watch_buffer, 0);
        Self::build(
            Inner {
                state: State::new(),
                wal: None,
                watch,
            },
            opts,
            None,
            None,
        )
    }

    fn build(
        inner: Inner,
        opts: EmbeddedOptions,
        dir: Option<PathBuf>,
        dir_lock: Option<File>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| EmbeddedStore {
            inner: Mutex::new(inner),
            opts,
            dir,
            me: me.clone(),
            reaper_started: AtomicBool::new(false),
            _dir_lock: dir_lock,
        })
    }

    /// Makes `record` durable, applies it and notifies watchers.
    fn commit(&self, inner: &mut Inner, record: Record) -> Result<()> {
        if let Some(wal) = &mut inner.wal {
            wal.append(&record)?;
        }
        let events = match inner.state.apply(&record, Instant::now()) {
            Ok(events) => events,
            Err(e) => {
                // Records are built from the state they apply to, so this is a
                // bug; the log now holds a record that replay would reject.
                let reason = format!("internal error applying {record:?}: {e}");
                if let Some(wal) = &mut inner.wal {
                    wal.poison(reason.clone());
                }
                return Err(MetaError::Corrupt(reason));
            }
        };
        inner.watch.publish(events);
        self.maybe_compact(inner);
        Ok(())
    }

    fn maybe_compact(&self, inner: &mut Inner) {
        let Some(wal) = &mut inner.wal else { return };
        if wal.records <= self.opts.compact_after_records {
            return;
        }
        if let Err(e) = wal.compact(&inner.state) {
            // The write itself is durable; retry after another batch rather
            // than on every write while, say, the disk is full.
            tracing::warn!(error = %e, "metadata snapshot failed; keeping the current log");
            wal.records = 0;
        }
    }

    /// Refuses writes up front once the log is poisoned, before any check
    /// that could itself try to write (lease expiry).
    fn writable(inner: &Inner) -> Result<()> {
        inner.wal.as_ref().map_or(Ok(()), Wal::check_usable)
    }

    /// Ok if `id` is alive; an overdue lease is expired on the spot, so the
    /// answer never depends on when the reaper last ran.
    fn live_lease(&self, inner: &mut Inner, id: LeaseId, now: Instant) -> Result<()> {
        let deadline = inner
            .state
            .leases
            .get(&id)
            .map(|l| l.deadline)
            .ok_or(MetaError::LeaseNotFound(id))?;
        if deadline <= now {
            self.expire(inner, id)?;
            return Err(MetaError::LeaseNotFound(id));
        }
        Ok(())
    }

    fn expire(&self, inner: &mut Inner, id: LeaseId) -> Result<()> {
        match inner.state.revoke_record(id) {
            Some(record) => self.commit(inner, record),
            None => Err(MetaError::LeaseNotFound(id)),
        }
    }

    fn expire_due_leases(&self) {
        let mut inner = self.inner.lock();
        if Self::writable(&inner).is_err() {
            return; // already reported when the log was poisoned
        }
        let now = Instant::now();
        let due: Vec<LeaseId> = inner
            .state
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Err(e) = self.expire(&mut inner, id) {
                tracing::warn!(lease = id, error = %e, "could not expire lease; will retry");
                return;
            }
        }
    }

    /// Starts the lease reaper once, lazily, so that `in_memory` works outside
    /// a runtime. If even the lease op is polled outside tokio, no task is
    /// started (leases then expire when next used) and a later call retries.
    /// The task holds only a `Weak`, so it ends with the store.
    fn ensure_reaper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.me.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(LEASE_CHECK_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(store) = store.upgrade() else { return };
                store.expire_due_leases();
            }
        });
    }

    fn put_locked(
        &self,
        inner: &mut Inner,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        if let Some(id) = lease {
            self.live_lease(inner, id, Instant::now())?;
        }
        let revision = inner.state.revision + 1;
        self.commit(
            inner,
            Record::Put {
                revision,
                key: key.to_owned(),
                value,
                lease,
            },
        )?;
        Ok(revision)
    }

    fn delete_locked(&self, inner: &mut Inner, key: &str) -> Result<Option<Revision>> {
        if !inner.state.kvs.contains_key(key) {
            return Ok(None);
        }
        let revision = inner.state.revision + 1;
        self.commit(
            inner,
            Record::Delete {
                revision,
                key: key.to_owned(),
            },
        )?;
        Ok(Some(revision))
    }
}

#[async_trait::async_trait]
impl MetaStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        Ok(self.inner.lock().state.kvs.get(key).cloned())
    }

    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        validate_prefix(prefix)?;
        let inner = self.inner.lock();
        Ok((
            inner.state.range(prefix).cloned().collect(),
            inner.state.revision,
        ))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        validate_key(key)?;
        validate_value(&value)?;
        validate_lease(lease)?;
        let mut inner = self.inner.lock();
        Self::writable(&inner)?;
        self.put_locked(&mut inner, key, value, lease)
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        validate_key(key)?;
        let mut inner = self.inner.lock();
        Self::writable(&inner)?;
        self.delete_locked(&mut inner, key)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Compare,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome> {
        validate_key(key)?;
        if let Some(value) = &value {
            validate_value(value)?;
        }
        validate_lease(lease)?;
        let mut inner = self.inner.lock();
        Self::writable(&inner)?;
        let current = inner.state.kvs.get(key);
        if !expect.holds(current) {
            return Ok(CasOutcome::Conflict(current.cloned()));
        }
        let revision = match value {
            Some(value) => self.put_locked(&mut inner, key, value, lease)?,
            // Deleting an absent key changes nothing, so no revision is spent.
            None => self
                .delete_locked(&mut inner, key)?
                .unwrap_or(inner.state.revision),
        };
        Ok(CasOutcome::Swapped(revision))
    }

    async fn watch_prefix(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        let mut inner = self.inner.lock();
        let current = inner.state.revision;
        inner.watch.subscribe(prefix, from_revision, current)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl.is_zero() {
            return Err(MetaError::InvalidArgument(
                "lease TTL must be positive".into(),
            ));
        }
        let id = {
            let mut inner = self.inner.lock();
            Self::writable(&inner)?;
            let id = inner.state.next_lease_id;
            self.commit(
                &mut inner,
                Record::GrantLease {
                    id,
                    ttl_ms: ttl_to_ms(ttl),
                },
            )?;
            id
        };
        self.ensure_reaper();
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        validate_lease(Some(lease))?;
        let mut inner = self.inner.lock();
        let now = Instant::now();
        self.live_lease(&mut inner, lease, now)?;
        // Deadlines are not logged: recovery grants every lease a full TTL anyway.
        let entry = inner
            .state
            .leases
            .get_mut(&lease)
            .ok_or(MetaError::LeaseNotFound(lease))?;
        entry.deadline = now + entry.ttl;
        Ok(())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        validate_lease(Some(lease))?;
        let mut inner = self.inner.lock();
        Self::writable(&inner)?;
        self.expire(&mut inner, lease)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.lock().state.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reaper_ends_when_store_is_dropped() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let store = EmbeddedStore::in_memory();
        store.grant_lease(Duration::from_secs(5)).await.unwrap();
        assert_eq!(metrics.num_alive_tasks(), 1, "grant starts the reaper");
        store.grant_lease(Duration::from_secs(5)).await.unwrap();
        assert_eq!(metrics.num_alive_tasks(), 1, "only one reaper per store");
        drop(store);
        // Let the reaper reach its next tick and find the store gone.
        tokio::time::sleep(LEASE_CHECK_PERIOD * 2).await;
        assert_eq!(metrics.num_alive_tasks(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn overdue_lease_is_expired_on_use_even_without_reaper() {
        let store = EmbeddedStore::in_memory();
        store.reaper_started.store(true, Ordering::Release); // keep the reaper out of it
        let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
        store.put("k", vec![], Some(lease)).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            store.get("k").await.unwrap().is_some(),
            "nobody expired it yet"
        );
        assert!(matches!(
            store.keep_alive(lease).await,
            Err(MetaError::LeaseNotFound(_))
        ));
        assert_eq!(
            store.get("k").await.unwrap(),
            None,
            "the failed keepalive expired the lease"
        );
        assert_eq!(store.current_revision().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn cas_delete_of_absent_key_spends_no_revision() {
        let store = EmbeddedStore::in_memory();
        let outcome = store
            .compare_and_swap("k", Compare::Absent, None, None)
            .await
            .unwrap();
        assert_eq!(outcome, CasOutcome::Swapped(1));
        assert_eq!(store.current_revision().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn watchers_are_released_with_their_streams() {
        let store = EmbeddedStore::in_memory();
        let stream = store.watch_prefix("a", 0).await.unwrap();
        assert_eq!(store.inner.lock().watch.watcher_count(), 1);
        drop(stream);
        store.put("b", vec![], None).await.unwrap();
        assert_eq!(store.inner.lock().watch.watcher_count(), 0);
    }
}
