//! The embedded, single-process `MetaStore`: an in-memory map made durable by
//! a write-ahead log with snapshot compaction (see `wal` for the files).
//!
//! Two copies of the state. Mutations plan against the *planner's* state,
//! under a short lock and never across the disk: the plan reads it, its
//! records are applied to it at once, and they join the queue of records
//! waiting for the log. The *visible* state is what readers see (routers
//! refreshing their table, the coordinator's polls) and what watchers are
//! told; records reach it only once durable. So a mutation is durable
//! before anyone can observe it, and observers see revision order.
//!
//! Group commit. After planning, a mutation takes the writer lock. If an
//! earlier holder already made its records durable it is done; otherwise
//! it takes every queued record (its own and those of whoever planned
//! while the last fsync ran), appends them as one commit (one frame, one
//! fsync) and applies them to the visible state in order. Concurrent
//! writers so share fsyncs instead of queueing one fsync each, and a lone
//! writer pays what it did before. The wait and the fsync run with
//! `block_in_place`, so the runtime moves other tasks off the thread; a
//! mutation has no await point, so a cancelled caller cannot leave its
//! records planned but not written. A mutation that writes nothing (a
//! refused compare-and-swap) still waits for the records planned before
//! it, since its answer may show them.
//!
//! If a commit fails, its records and every record planned on top of them
//! are refused, and the planner's state is rebuilt from the visible one.
//! Lease deadlines are not logged: the planner's copy holds the ones that
//! count (keep-alives extend them there).

mod codec;
mod state;
mod wal;
mod watch;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use self::codec::Record;
use self::state::{State, ttl_to_ms};
use self::wal::Wal;
use self::watch::WatchHub;
use crate::error::{MetaError, Result};
use crate::store::{
    CasOutcome, Compare, HeldOutcome, KeyValue, LeaseId, Lock, MetaStore, Revision, WatchStream, validate_key,
    validate_lease, validate_prefix, validate_write,
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

/// What readers see: the durable state, and the watchers it notifies.
struct Inner {
    state: State,
    watch: WatchHub,
}

/// What mutations plan against.
struct Planner {
    /// The visible state with the queued records applied; its lease
    /// deadlines are the ones that count.
    state: State,
    /// Planned mutations whose records are not durable yet, in order.
    queue: Vec<Planned>,
    /// Planned mutations not yet committed: the queue and the commit
    /// running now, whose records readers cannot see yet.
    uncommitted: usize,
    /// Set once the store refuses writes (a failed fsync, an internal error).
    poisoned: Option<String>,
}

/// One planned mutation waiting for its commit.
struct Planned {
    records: Vec<Record>,
    done: Arc<Committed>,
}

/// Set once by whoever commits a planned mutation.
type Committed = OnceLock<Result<()>>;

/// What a mutation decided from the planner's state: the records to make
/// durable and apply (in order, none for a refusal or a no-op), and the
/// answer to give once they are applied.
struct Plan<T> {
    records: Vec<Record>,
    result: Result<T>,
}

impl<T> Plan<T> {
    fn answer(result: Result<T>) -> Self {
        Plan { records: Vec::new(), result }
    }

    fn write(record: Record, value: T) -> Self {
        Plan { records: vec![record], result: Ok(value) }
    }
}

pub struct EmbeddedStore {
    inner: Mutex<Inner>,
    planner: Mutex<Planner>,
    /// The writer lock; holds the log (None for the in-memory store).
    wal: Mutex<Option<Wal>>,
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
        let inner = Inner { state: recovered.state, watch };
        let store = Self::build(inner, Some(recovered.wal), opts, Some(dir.to_path_buf()), Some(dir_lock));
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
        Self::build(Inner { state: State::new(), watch }, None, opts, None, None)
    }

    fn build(
        inner: Inner,
        wal: Option<Wal>,
        opts: EmbeddedOptions,
        dir: Option<PathBuf>,
        dir_lock: Option<File>,
    ) -> Arc<Self> {
        let planner = Planner { state: inner.state.clone(), queue: Vec::new(), uncommitted: 0, poisoned: None };
        Arc::new_cyclic(|me| EmbeddedStore {
            inner: Mutex::new(inner),
            planner: Mutex::new(planner),
            wal: Mutex::new(wal),
            opts,
            dir,
            me: me.clone(),
            reaper_started: AtomicBool::new(false),
            _dir_lock: dir_lock,
        })
    }

    /// Runs one mutation: `plan` decides from the planner's state (it may
    /// also change what is not logged: lease deadlines); its records are
    /// applied there and queued, then committed (by this caller or by one
    /// that commits the queue with it), and only then is the answer given.
    async fn mutate<T>(&self, plan: impl FnOnce(&mut State, Instant) -> Plan<T>) -> Result<T> {
        let (result, done) = {
            let mut planner = self.planner.lock();
            if let Some(reason) = &planner.poisoned {
                return Err(MetaError::Unavailable(reason.clone()));
            }
            let now = Instant::now();
            let Plan { records, result } = plan(&mut planner.state, now);
            if records.is_empty() && planner.uncommitted == 0 {
                // Nothing to write, and nothing it saw is still undurable.
                return result;
            }
            for record in &records {
                if let Err(e) = planner.state.apply(record, now) {
                    // Records are built from the state they apply to, so
                    // this is a bug, and the planner's state is now unknown.
                    let reason = format!("internal error applying {record:?}: {e}");
                    planner.poisoned = Some(reason.clone());
                    return Err(MetaError::Corrupt(reason));
                }
            }
            let done = Arc::new(Committed::new());
            planner.queue.push(Planned { records, done: done.clone() });
            planner.uncommitted += 1;
            (result, done)
        };
        self.wait_for_commit(&done)?;
        result
    }

    /// Returns once `done` is set, committing the queue if nobody has.
    fn wait_for_commit(&self, done: &Committed) -> Result<()> {
        let commit = || {
            let mut wal = self.wal.lock();
            if done.get().is_none() {
                self.commit_queue(wal.as_mut());
            }
            match done.get() {
                Some(outcome) => outcome.as_ref().map(|_| ()).map_err(copy_error),
                None => Err(MetaError::Corrupt("a queued mutation was left out of its commit".into())),
            }
        };
        // The in-memory store never waits for a disk.
        if self.dir.is_some() { off_runtime(commit) } else { commit() }
    }

    /// Under the writer lock: makes every queued record durable in one
    /// commit, applies them to the visible state and sets their outcomes.
    fn commit_queue(&self, mut wal: Option<&mut Wal>) {
        let batch = std::mem::take(&mut self.planner.lock().queue);
        let records: Vec<&Record> = batch.iter().flat_map(|p| &p.records).collect();
        if let Some(w) = wal.as_deref_mut()
            && !records.is_empty()
            && let Err(e) = w.append(&records)
        {
            self.refuse(batch, e, w);
            return;
        }
        let applied = {
            let mut inner = self.inner.lock();
            let applied = records.into_iter().try_for_each(|r| self.apply(&mut inner, wal.as_deref_mut(), r));
            metrics::gauge!("evenkeel_meta_revision").set(inner.state.revision as f64);
            if applied.is_ok() {
                self.maybe_compact(&inner, wal);
            }
            applied
        };
        metrics::histogram!("evenkeel_meta_wal_commit_mutations").record(batch.len() as f64);
        {
            let mut planner = self.planner.lock();
            planner.uncommitted -= batch.len();
            if let Err(e) = &applied {
                // The log holds what the state could not take: write no more.
                planner.poisoned = Some(e.to_string());
            }
        }
        for planned in batch {
            let _ = planned.done.set(applied.as_ref().map(|_| ()).map_err(copy_error));
        }
    }

    /// A commit failed: its mutations, and every one planned on top of
    /// them since, are refused, and the planner's state goes back to the
    /// visible (durable) one, keeping the lease deadlines it had.
    fn refuse(&self, batch: Vec<Planned>, error: MetaError, wal: &Wal) {
        let mut planner = self.planner.lock();
        let later = std::mem::take(&mut planner.queue);
        let mut state = self.inner.lock().state.clone();
        for (id, lease) in &mut state.leases {
            if let Some(planned) = planner.state.leases.get(id) {
                lease.deadline = planned.deadline;
            }
        }
        planner.state = state;
        planner.uncommitted -= batch.len() + later.len();
        if let Err(unusable) = wal.check_usable() {
            planner.poisoned = Some(unusable.to_string());
        }
        drop(planner);
        for planned in batch.into_iter().chain(later) {
            let _ = planned.done.set(Err(copy_error(&error)));
        }
    }

    /// Applies a durable record to the visible state and notifies watchers.
    fn apply(&self, inner: &mut Inner, wal: Option<&mut Wal>, record: &Record) -> Result<()> {
        match inner.state.apply(record, Instant::now()) {
            Ok(events) => {
                inner.watch.publish(events);
                Ok(())
            }
            Err(e) => {
                // The planner's state took this record, so this is a bug;
                // the log now holds a record that replay would reject.
                let reason = format!("internal error applying {record:?}: {e}");
                if let Some(wal) = wal {
                    wal.poison(reason.clone());
                }
                Err(MetaError::Corrupt(reason))
            }
        }
    }

    fn maybe_compact(&self, inner: &Inner, wal: Option<&mut Wal>) {
        let Some(wal) = wal else { return };
        if wal.records <= self.opts.compact_after_records {
            return;
        }
        // Already on the writer's thread, off the runtime where it can be.
        if let Err(e) = wal.compact(&inner.state) {
            // The write itself is durable; retry after another batch rather
            // than on every write while, say, the disk is full.
            tracing::warn!(error = %e, "metadata snapshot failed; keeping the current log");
            wal.records = 0;
        }
    }

    /// Expires every lease whose deadline has passed, one record each.
    async fn expire_due_leases(&self) {
        loop {
            // Most ticks find nothing due: answer them without a mutation,
            // which would wait for whatever commit is running.
            let now = Instant::now();
            if !self.planner.lock().state.leases.values().any(|l| l.deadline <= now) {
                return;
            }
            let expired = self
                .mutate(|state, now| {
                    let due = state.leases.iter().find(|(_, l)| l.deadline <= now).map(|(id, _)| *id);
                    match due.and_then(|id| state.revoke_record(id)) {
                        Some(record) => Plan::write(record, true),
                        None => Plan::answer(Ok(false)),
                    }
                })
                .await;
            match expired {
                Ok(true) => continue,
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not expire leases; will retry");
                    return;
                }
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
                store.expire_due_leases().await;
            }
        });
    }
}

/// The same failure again, for each mutation a failed commit refuses
/// (errors are not `Clone`: an I/O error keeps its kind and text).
fn copy_error(e: &MetaError) -> MetaError {
    match e {
        MetaError::Io(io) => MetaError::Io(std::io::Error::new(io.kind(), io.to_string())),
        MetaError::Corrupt(reason) => MetaError::Corrupt(reason.clone()),
        MetaError::Unavailable(reason) => MetaError::Unavailable(reason.clone()),
        other => MetaError::Unavailable(other.to_string()),
    }
}

/// Runs blocking file work (write + fsync) so that the runtime moves other
/// tasks off this thread meanwhile. Inline where that is impossible (a
/// current-thread runtime, as in tests, or no runtime).
fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Whether lease `id` may be used at `now`. An overdue lease is expired on
/// the spot (the returned record), so the answer never depends on when the
/// reaper last ran.
fn check_lease(state: &State, id: LeaseId, now: Instant) -> std::result::Result<(), Option<Record>> {
    match state.leases.get(&id) {
        None => Err(None),
        Some(l) if l.deadline <= now => Err(state.revoke_record(id)),
        Some(_) => Ok(()),
    }
}

/// The plan of a put: the record, or the lease's refusal (with its expiry).
fn plan_put(state: &State, key: &str, value: Vec<u8>, lease: Option<LeaseId>, now: Instant) -> Plan<Revision> {
    if let Some(id) = lease
        && let Err(expiry) = check_lease(state, id, now)
    {
        return Plan { records: expiry.into_iter().collect(), result: Err(MetaError::LeaseNotFound(id)) };
    }
    let revision = state.revision + 1;
    Plan::write(Record::Put { revision, key: key.to_owned(), value, lease }, revision)
}

/// The plan of a delete: None (and no record) if the key is absent.
fn plan_delete(state: &State, key: &str) -> Plan<Option<Revision>> {
    if !state.kvs.contains_key(key) {
        return Plan::answer(Ok(None));
    }
    let revision = state.revision + 1;
    Plan::write(Record::Delete { revision, key: key.to_owned() }, Some(revision))
}

/// The plan of a compare-and-swap.
fn plan_cas(state: &State, key: &str, expect: Compare, value: Option<Vec<u8>>, lease: Option<LeaseId>, now: Instant) -> Plan<CasOutcome> {
    let current = state.kvs.get(key);
    if !expect.holds(current) {
        return Plan::answer(Ok(CasOutcome::Conflict(current.cloned())));
    }
    match value {
        Some(value) => {
            let Plan { records, result } = plan_put(state, key, value, lease, now);
            Plan { records, result: result.map(CasOutcome::Swapped) }
        }
        // Deleting an absent key changes nothing, so no revision is spent.
        None => {
            let current = state.revision;
            let Plan { records, result } = plan_delete(state, key);
            Plan { records, result: result.map(|r| CasOutcome::Swapped(r.unwrap_or(current))) }
        }
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
        Ok((inner.state.range(prefix).cloned().collect(), inner.state.revision))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        validate_write(key, Some(&value), lease)?;
        self.mutate(|state, now| plan_put(state, key, value, lease, now)).await
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        validate_key(key)?;
        self.mutate(|state, _| plan_delete(state, key)).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Compare,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome> {
        validate_write(key, value.as_deref(), lease)?;
        self.mutate(|state, now| plan_cas(state, key, expect, value, lease, now)).await
    }

    async fn compare_and_swap_holding(
        &self,
        lock: &Lock,
        key: &str,
        expect: Compare,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<HeldOutcome> {
        validate_key(&lock.key)?;
        validate_write(key, value.as_deref(), lease)?;
        self.mutate(|state, now| {
            let current = state.kvs.get(&lock.key);
            if !lock.is(current) {
                return Plan::answer(Ok(HeldOutcome::LockLost(current.cloned())));
            }
            // The lock's lease is overdue but not reaped yet: it is lost,
            // and expires now (its keys, the lock's among them, go).
            if let Err(expiry) = check_lease(state, lock.lease, now) {
                return Plan { records: expiry.into_iter().collect(), result: Ok(HeldOutcome::LockLost(None)) };
            }
            let Plan { records, result } = plan_cas(state, key, expect, value, lease, now);
            Plan { records, result: result.map(HeldOutcome::from) }
        })
        .await
    }

    async fn watch_prefix(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        let mut inner = self.inner.lock();
        let current = inner.state.revision;
        inner.watch.subscribe(prefix, from_revision, current)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl.is_zero() {
            return Err(MetaError::InvalidArgument("lease TTL must be positive".into()));
        }
        let id = self
            .mutate(|state, _| {
                let id = state.next_lease_id;
                Plan::write(Record::GrantLease { id, ttl_ms: ttl_to_ms(ttl) }, id)
            })
            .await?;
        self.ensure_reaper();
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        validate_lease(Some(lease))?;
        // The common case changes only the deadline, which is not logged:
        // no writer lock, no disk.
        {
            let mut planner = self.planner.lock();
            let now = Instant::now();
            match planner.state.leases.get_mut(&lease) {
                None => return Err(MetaError::LeaseNotFound(lease)),
                Some(l) if l.deadline > now => {
                    l.deadline = now + l.ttl;
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        // Overdue: expire it now (unless the reaper just did).
        self.mutate(|state, now| match check_lease(state, lease, now) {
            Ok(()) => {
                // Not reachable in practice: an overdue lease is never
                // extended. Treat it as alive, which it is.
                if let Some(l) = state.leases.get_mut(&lease) {
                    l.deadline = now + l.ttl;
                }
                Plan::answer(Ok(()))
            }
            Err(expiry) => Plan { records: expiry.into_iter().collect(), result: Err(MetaError::LeaseNotFound(lease)) },
        })
        .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        validate_lease(Some(lease))?;
        self.mutate(|state, _| match state.revoke_record(lease) {
            Some(record) => Plan::write(record, ()),
            None => Plan::answer(Err(MetaError::LeaseNotFound(lease))),
        })
        .await
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

    /// A lock whose lease is overdue is lost even before the reaper has
    /// removed it: a compare-and-swap under it expires the lease instead
    /// of writing.
    #[tokio::test(start_paused = true)]
    async fn a_lock_on_an_overdue_lease_guards_nothing() {
        let store = EmbeddedStore::in_memory();
        store.reaper_started.store(true, Ordering::Release); // keep the reaper out of it
        let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
        let lock = store.try_lock("L", lease).await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(store.get("L").await.unwrap().is_some(), "nobody expired it yet");
        let outcome = store.compare_and_swap_holding(&lock, "k", Compare::Absent, Some(vec![1]), None).await.unwrap();
        assert_eq!(outcome, HeldOutcome::LockLost(None));
        assert_eq!((store.get("L").await.unwrap(), store.get("k").await.unwrap()), (None, None), "the lease expired, nothing was written");
        assert_eq!(store.current_revision().await.unwrap(), 3);
    }

    /// The log's commits: how many records each frame holds.
    fn commit_sizes(dir: &Path) -> Vec<usize> {
        let bytes = std::fs::read(dir.join(format!("wal-{:016x}.log", 0))).unwrap();
        let frames = codec::parse_frames(&bytes, 8).unwrap();
        frames.payloads.iter().map(|(_, p)| Record::decode_commit(p).unwrap().len()).collect()
    }

    /// Waits until `n` mutations are planned and waiting for their commit.
    async fn until_uncommitted(store: &EmbeddedStore, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.planner.lock().uncommitted != n {
            assert!(std::time::Instant::now() < deadline, "{n} mutations never queued");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Writers that plan while a commit runs share the next one: one frame,
    /// one fsync, every record durable and in revision order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(clippy::await_holding_lock, reason = "the test holds the writer lock as a running commit would, while tasks on other threads queue")]
    async fn writers_queued_behind_a_commit_share_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        store.put("first", vec![], None).await.unwrap();
        let writer = store.wal.lock(); // as if a commit were running
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.put(&format!("k{i}"), vec![i], None).await.unwrap() })
            })
            .collect();
        until_uncommitted(&store, 8).await;
        assert_eq!(store.get_prefix("k").await.unwrap().0.len(), 0, "nothing visible before its commit");
        drop(writer);
        let mut revisions = Vec::new();
        for t in tasks {
            revisions.push(t.await.unwrap());
        }
        revisions.sort_unstable();
        assert_eq!(revisions, (3..11).collect::<Vec<_>>());
        assert_eq!(commit_sizes(dir.path()), vec![1, 8], "one commit for the eight");
        drop(store);
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        assert_eq!(store.get_prefix("k").await.unwrap().0.len(), 8);
        assert_eq!(store.current_revision().await.unwrap(), 10);
    }

    /// A refused compare-and-swap writes nothing, but its answer shows what
    /// was planned before it: it is given only once that is durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(clippy::await_holding_lock, reason = "the test holds the writer lock as a running commit would, while tasks on other threads queue")]
    async fn an_answer_showing_a_queued_write_waits_for_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        let writer = store.wal.lock();
        let put = tokio::spawn({
            let store = store.clone();
            async move { store.put("a", b"queued".to_vec(), None).await.unwrap() }
        });
        until_uncommitted(&store, 1).await;
        let refused = tokio::spawn({
            let store = store.clone();
            async move { store.compare_and_swap("a", Compare::Absent, Some(vec![]), None).await.unwrap() }
        });
        until_uncommitted(&store, 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!refused.is_finished(), "answered before what it saw was durable");
        drop(writer);
        let CasOutcome::Conflict(Some(seen)) = refused.await.unwrap() else { panic!("a conflict") };
        assert_eq!((seen.value.as_slice(), seen.mod_revision), (&b"queued"[..], put.await.unwrap()));
        assert_eq!(commit_sizes(dir.path()), vec![1]);
    }

    /// A failed commit refuses its mutations and those planned on top of
    /// them while it ran; the planner forgets them, so the next write takes
    /// the same revision and the log stays gap-free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_refuses_what_was_planned_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        let base = store.put("a", b"1".to_vec(), None).await.unwrap();
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let (started, running) = std::sync::mpsc::channel();
        let (fail, failing) = std::sync::mpsc::channel::<()>();
        let mut once = true;
        store.wal.lock().as_mut().unwrap().before_append = Some(Box::new(move || {
            if !std::mem::take(&mut once) {
                return Ok(());
            }
            started.send(()).unwrap();
            failing.recv().unwrap();
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "injected"))
        }));
        let first = tokio::spawn({
            let store = store.clone();
            async move { store.compare_and_swap("a", Compare::ModRevision(base), Some(b"2".to_vec()), None).await }
        });
        running.recv_timeout(Duration::from_secs(10)).expect("the first commit runs");
        // Planned on top of the first while its commit runs: it expects the
        // first's revision, base + 1 (granting a lease spends none).
        let second = tokio::spawn({
            let store = store.clone();
            async move { store.compare_and_swap("a", Compare::ModRevision(base + 1), Some(b"3".to_vec()), None).await }
        });
        until_uncommitted(&store, 2).await;
        fail.send(()).unwrap();
        for refused in [first.await.unwrap(), second.await.unwrap()] {
            assert!(matches!(&refused, Err(MetaError::Io(e)) if e.kind() == std::io::ErrorKind::StorageFull), "{refused:?}");
        }
        assert_eq!(store.get("a").await.unwrap().unwrap().value, b"1");
        // The lease survived the rebuilt planner with its deadline.
        store.keep_alive(lease).await.unwrap();
        let outcome = store.compare_and_swap("a", Compare::ModRevision(base), Some(b"4".to_vec()), None).await.unwrap();
        assert_eq!(outcome, CasOutcome::Swapped(base + 1));
        drop(store);
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        assert_eq!(store.get("a").await.unwrap().unwrap().value, b"4");
        assert_eq!(store.current_revision().await.unwrap(), base + 1);
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
