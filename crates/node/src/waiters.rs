//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN and the like): what a
//! write to one of their keys wakes.
//!
//! A blocked op registers one [`Waiting`] for all its keys, tries to pop,
//! and if there was nothing waits on it. Every committed write wakes the
//! waiters of the keys it wrote ([`Waiters::wake`], called by the store
//! after a commit); a woken op tries again. A wake that comes between the
//! try and the wait is kept (a `Notify` permit), so none is lost. Writes
//! pay one atomic load while nobody waits on this node.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    /// Registrations alive, for the writers' fast path.
    active: AtomicUsize,
    /// Per data key, the waiters on it.
    keys: Mutex<HashMap<Vec<u8>, Vec<Arc<Notify>>>>,
}

impl Waiters {
    /// Registers a waiter on `data_keys` until the returned guard drops.
    pub fn register(&self, data_keys: Vec<Vec<u8>>) -> Waiting<'_> {
        let notify = Arc::new(Notify::new());
        let mut keys = self.keys.lock();
        for k in &data_keys {
            keys.entry(k.clone()).or_default().push(notify.clone());
        }
        self.active.fetch_add(1, Ordering::Release);
        Waiting { waiters: self, data_keys, notify }
    }

    /// Wakes every waiter on `data_key` (each tries its pop again).
    pub fn wake(&self, data_key: &[u8]) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(waiting) = self.keys.lock().get(data_key) {
            for n in waiting {
                n.notify_one();
            }
        }
    }

    /// Waiters registered now, for metrics.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
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
    /// registration (or since the last time this resolved).
    pub async fn woken(&self) {
        self.notify.notified().await
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut keys = self.waiters.keys.lock();
        for k in &self.data_keys {
            if let Some(list) = keys.get_mut(k) {
                list.retain(|n| !Arc::ptr_eq(n, &self.notify));
                if list.is_empty() {
                    keys.remove(k);
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
    async fn a_write_wakes_the_waiters_of_its_key_only() {
        let waiters = Waiters::default();
        let a = waiters.register(vec![b"a".to_vec(), b"b".to_vec()]);
        let c = waiters.register(vec![b"c".to_vec()]);
        waiters.wake(b"b");
        tokio::time::timeout(Duration::from_secs(1), a.woken()).await.expect("a write to b wakes a waiter on a and b");
        assert!(tokio::time::timeout(Duration::from_millis(50), c.woken()).await.is_err(), "c was not written");
        waiters.wake(b"c");
        // The wake came before the wait: kept, not lost.
        tokio::time::timeout(Duration::from_secs(1), c.woken()).await.expect("a wake before the wait is kept");
        assert_eq!(waiters.active(), 2);
        drop(a);
        drop(c);
        assert_eq!((waiters.active(), waiters.keys.lock().len()), (0, 0), "dropping a registration removes it");
    }
}
