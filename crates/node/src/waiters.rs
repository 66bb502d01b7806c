//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, XREAD BLOCK and the
//! like): what a write to one of their keys wakes.
//!
//! A blocked op registers one [`Waiting`] for all its keys, tries to pop,
//! and if there was nothing waits on it. Waiters on a key are kept oldest
//! first, by when their client's command began (`since_us`, the same on
//! every request of one command), then by registration. A committed write
//! wakes the oldest waiter of each key it wrote ([`Waiters::wake`], called
//! by the store after a commit); when a waiter goes (it popped, timed out
//! or its client left) it wakes the next oldest of its keys, which tries
//! in turn. So one push of three elements serves three waiters, oldest
//! first, as Redis serves them; a read that does not consume (XREAD) is
//! handed on the same way. A wake that comes between the try and the wait
//! is kept (a `Notify` permit), so none is lost. Writes pay one atomic
//! load while nobody waits on this node.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// A waiter's place: when its command began, then registration order.
type Place = (u64, u64);

/// A key's waiters, oldest first.
type Queue = Vec<(Place, Arc<Notify>)>;

#[derive(Default)]
pub struct Waiters {
    /// Registrations alive, for the writers' fast path.
    active: AtomicUsize,
    /// Registrations made, for the order among equal `since_us`.
    registered: AtomicU64,
    /// Per data key, its waiters, oldest first.
    keys: Mutex<HashMap<Vec<u8>, Queue>>,
    /// Blocked commands a CLIENT UNBLOCK (or their client leaving) may
    /// end early, by router, client and when the command began.
    cancels: Mutex<HashMap<WaitId, Cancel>>,
}

/// Names one blocked command: its router, its client there, and when the
/// command began (so a late cancel never ends the client's next one).
pub type WaitId = (u64, u64, u64);

/// Cancels kept for commands not (yet) waiting here: a cancel may reach
/// the node before the op it cancels, and is then honoured when the op
/// comes. Beyond this many, those older than [`CANCEL_KEPT`] go first.
const CANCELS_KEPT: usize = 4096;
/// How long a cancel no op claimed is kept (longer than any chunk of
/// wait a router asks for).
const CANCEL_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

struct Cancel {
    notify: Arc<Notify>,
    cancelled: bool,
    watched: bool,
    at: std::time::Instant,
}

impl Cancel {
    fn new() -> Cancel {
        Cancel { notify: Arc::new(Notify::new()), cancelled: false, watched: false, at: std::time::Instant::now() }
    }
}

impl Waiters {
    /// Registers a waiter on `data_keys`, placed by `since_us`, until the
    /// returned guard drops.
    pub fn register(&self, data_keys: Vec<Vec<u8>>, since_us: u64) -> Waiting<'_> {
        let notify = Arc::new(Notify::new());
        let place = (since_us, self.registered.fetch_add(1, Ordering::Relaxed));
        let mut keys = self.keys.lock();
        for k in &data_keys {
            let list = keys.entry(k.clone()).or_default();
            let at = list.partition_point(|(p, _)| *p < place);
            list.insert(at, (place, notify.clone()));
        }
        self.active.fetch_add(1, Ordering::Release);
        Waiting { waiters: self, data_keys, notify }
    }

    /// Wakes the oldest waiter on `data_key` (it tries its pop again, and
    /// hands the wake on when it goes).
    pub fn wake(&self, data_key: &[u8]) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some((_, first)) = self.keys.lock().get(data_key).and_then(|list| list.first()) {
            first.notify_one();
        }
    }

    /// Waiters registered now, for metrics.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Makes the blocked command `id` cancellable until the returned guard
    /// drops; it comes cancelled if a cancel came first.
    pub fn watch(&self, id: WaitId) -> Watch<'_> {
        let mut cancels = self.cancels.lock();
        let entry = cancels.entry(id).or_insert_with(Cancel::new);
        entry.watched = true;
        Watch { waiters: self, id, notify: entry.notify.clone() }
    }

    /// Cancels the blocked command `id`: true if it is waiting here (it
    /// stops at once), else the cancel is kept for when it comes.
    pub fn cancel(&self, id: WaitId) -> bool {
        let mut cancels = self.cancels.lock();
        if cancels.len() >= CANCELS_KEPT {
            cancels.retain(|_, c| c.watched || c.at.elapsed() < CANCEL_KEPT);
            if cancels.len() >= CANCELS_KEPT {
                // All recent: the oldest unclaimed go.
                let mut unclaimed: Vec<(std::time::Instant, WaitId)> = cancels.iter().filter(|(_, c)| !c.watched).map(|(id, c)| (c.at, *id)).collect();
                unclaimed.sort_unstable();
                for (_, id) in unclaimed.iter().take(CANCELS_KEPT / 4) {
                    cancels.remove(id);
                }
            }
        }
        let entry = cancels.entry(id).or_insert_with(Cancel::new);
        entry.cancelled = true;
        entry.notify.notify_one();
        entry.watched
    }
}

/// A blocked command that may be cancelled ([`Waiters::watch`]).
pub struct Watch<'a> {
    waiters: &'a Waiters,
    id: WaitId,
    notify: Arc<Notify>,
}

impl Watch<'_> {
    /// Whether a cancel came.
    pub fn is_cancelled(&self) -> bool {
        self.waiters.cancels.lock().get(&self.id).is_some_and(|c| c.cancelled)
    }

    /// Resolves when a cancel comes (at once if one came already).
    pub async fn cancelled(&self) {
        self.notify.notified().await
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.waiters.cancels.lock().remove(&self.id);
    }
}

/// One blocked op's registration.
pub struct Waiting<'a> {
    waiters: &'a Waiters,
    data_keys: Vec<Vec<u8>>,
    notify: Arc<Notify>,
}

impl Waiting<'_> {
    /// Resolves once a write to one of the keys committed since
    /// registration (or since the last time this resolved), and this
    /// waiter's turn came.
    pub async fn woken(&self) {
        self.notify.notified().await
    }
}

impl Drop for Waiting<'_> {
    /// Leaves each key's queue and wakes the next oldest there: what this
    /// waiter was woken for may serve it too (more elements, or a read
    /// that takes nothing away).
    fn drop(&mut self) {
        let mut keys = self.waiters.keys.lock();
        for k in &self.data_keys {
            if let Some(list) = keys.get_mut(k) {
                list.retain(|(_, n)| !Arc::ptr_eq(n, &self.notify));
                match list.first() {
                    Some((_, next)) => next.notify_one(),
                    None => {
                        keys.remove(k);
                    }
                }
            }
        }
        self.waiters.active.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_write_wakes_the_oldest_waiter_of_its_key_which_hands_it_on() {
        let waiters = Waiters::default();
        let woke = |w: &Waiting<'_>| {
            let n = w.notify.clone();
            async move { tokio::time::timeout(Duration::from_millis(100), n.notified()).await.is_ok() }
        };
        let late = waiters.register(vec![b"a".to_vec()], 20);
        let early = waiters.register(vec![b"a".to_vec(), b"b".to_vec()], 10);
        let other = waiters.register(vec![b"c".to_vec()], 5);
        waiters.wake(b"a");
        assert!(woke(&early).await, "the command that began first is first, whatever the registration order");
        assert!(!woke(&late).await, "one wake for the oldest only");
        assert!(!woke(&other).await, "c was not written");
        waiters.wake(b"c");
        assert!(woke(&other).await, "a wake before the wait is kept");
        drop(early);
        assert!(woke(&late).await, "the oldest leaving hands the wake to the next");
        assert_eq!(waiters.active(), 2);
        drop(late);
        drop(other);
        assert_eq!((waiters.active(), waiters.keys.lock().len()), (0, 0), "dropping a registration removes it");
    }

    #[tokio::test]
    async fn a_cancel_ends_its_own_wait_whenever_it_comes() {
        let waiters = Waiters::default();
        let ends = |w: &Watch<'_>| {
            let n = w.notify.clone();
            async move { tokio::time::timeout(Duration::from_millis(100), n.notified()).await.is_ok() }
        };
        let watched = waiters.watch((1, 7, 100));
        assert!(!watched.is_cancelled());
        assert!(!waiters.cancel((1, 7, 99)), "another command of the same client");
        assert!(!waiters.cancel((2, 7, 100)), "the same client id on another router");
        assert!(!ends(&watched).await);
        assert!(waiters.cancel((1, 7, 100)), "it waits here");
        assert!(watched.is_cancelled() && ends(&watched).await);
        drop(watched);
        // Before the op comes: kept, and the op comes cancelled.
        assert!(!waiters.cancel((1, 8, 5)));
        let late = waiters.watch((1, 8, 5));
        assert!(late.is_cancelled() && ends(&late).await);
        drop(late);
        assert_eq!(waiters.cancels.lock().len(), 2, "the two unclaimed cancels of other commands are kept");
        for i in 0..CANCELS_KEPT as u64 {
            waiters.cancel((3, i, 1));
        }
        assert!(waiters.cancels.lock().len() <= CANCELS_KEPT, "unclaimed cancels are bounded");
    }
}
