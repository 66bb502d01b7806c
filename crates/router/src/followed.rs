//! A prefix of the metadata store this router keeps a copy of and writes
//! through: the cluster's function libraries and SCRIPT LOAD's scripts.
//!
//! The copy follows the store ([`evenkeel_meta::follow::follow_prefix`]);
//! a write through [`Followed::put`] or [`Followed::delete`] returns once
//! the copy shows it (at most [`SEEN_WAIT`]), so the client that made a
//! change sees it on its next command through this router. Other routers
//! see it as soon as their own copies follow.

use evenkeel_meta::MetaStore;
use evenkeel_meta::follow::{Snapshot, follow_prefix};
use evenkeel_resp::Frame;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest a write waits for this router's copy to show it.
pub const SEEN_WAIT: Duration = Duration::from_secs(2);

pub struct Followed {
    meta: Arc<dyn MetaStore>,
    rx: Mutex<watch::Receiver<Snapshot>>,
    prefix: &'static str,
}

impl Followed {
    pub fn new(meta: Arc<dyn MetaStore>, prefix: &'static str) -> Followed {
        let rx = follow_prefix(meta.clone(), prefix.to_string());
        Followed { meta, rx: Mutex::new(rx), prefix }
    }

    /// `f` of the copy as it is now.
    pub fn with<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.rx.lock().borrow())
    }

    /// A receiver of the copy, for a follower of its changes.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.rx.lock().clone()
    }

    /// The value `built` holds, rebuilt by `build` first if the copy changed
    /// since the last rebuild. The check and the rebuild happen under
    /// `built`'s lock: a caller that comes while another rebuilds waits for
    /// the new value instead of taking the old one (the change is already
    /// marked seen by then, so it would not rebuild it either).
    pub fn derived<T>(&self, built: &Mutex<Arc<T>>, build: impl FnOnce(&Snapshot) -> T) -> Arc<T> {
        let mut held = built.lock();
        let mut rx = self.rx.lock();
        if rx.has_changed().unwrap_or(false) {
            *held = Arc::new(build(&rx.borrow_and_update()));
        }
        held.clone()
    }

    /// The store key of `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Writes `name`, and waits until the copy shows it.
    pub async fn put(&self, name: &str, value: Vec<u8>) -> Result<(), Frame> {
        let key = self.key(name);
        let written = self.meta.put(&key, value, None).await.map_err(|e| Frame::error(format!("ERR could not write to the metadata store: {e}")))?;
        self.wait_for(&key, |kv| kv.is_some_and(|kv| kv.mod_revision >= written)).await;
        Ok(())
    }

    /// Deletes `name`, and waits until the copy shows it.
    pub async fn delete(&self, name: &str) -> Result<(), Frame> {
        let key = self.key(name);
        self.meta.delete(&key).await.map_err(|e| Frame::error(format!("ERR could not delete from the metadata store: {e}")))?;
        self.wait_for(&key, |kv| kv.is_none()).await;
        Ok(())
    }

    async fn wait_for(&self, key: &str, seen: impl Fn(Option<&evenkeel_meta::KeyValue>) -> bool) {
        let mut rx = self.rx.lock().clone();
        let _ = tokio::time::timeout(SEEN_WAIT, rx.wait_for(|s| seen(s.get(key)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that comes while another rebuilds after a change gets the
    /// rebuilt value, never the one from before the change (the router's
    /// first connections, arriving together, were refused as NOAUTH by an
    /// ACL still holding its before-the-first-read users).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_during_a_rebuild_waits_for_it() {
        let meta: Arc<dyn MetaStore> = evenkeel_meta::EmbeddedStore::in_memory();
        let followed = Followed::new(meta, "/test/derived/");
        followed.put("k", b"v".to_vec()).await.unwrap();
        let built: Mutex<Arc<usize>> = Mutex::new(Arc::new(0));
        let (first, second) = std::thread::scope(|s| {
            let first = s.spawn(|| {
                followed.derived(&built, |snap| {
                    std::thread::sleep(Duration::from_millis(300));
                    snap.len()
                })
            });
            let second = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                followed.derived(&built, |_| panic!("one change is built once"))
            });
            (first.join().unwrap(), second.join().unwrap())
        });
        assert_eq!((*first, *second), (1, 1), "both see the stored key");
        assert_eq!(*followed.derived(&built, |_| panic!("nothing changed since")), 1);
    }
}
