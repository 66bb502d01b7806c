//! Keeping a local copy of part of the metadata store up to date.
//!
//! [`follow_prefix`] reads a prefix, then watches it from the next revision,
//! publishing each new state on a `tokio::sync::watch` channel. When the
//! watch breaks (lagged, compacted, store error) it re-reads and re-watches
//! after a short backoff, so followers converge to the store's state without
//! unbounded queues. The task ends when every receiver is dropped.

use crate::{KeyValue, MetaStore, WatchEvent};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The keys under a prefix, by key.
pub type Snapshot = BTreeMap<String, KeyValue>;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Follows every key under `prefix`.
pub fn follow_prefix(store: Arc<dyn MetaStore>, prefix: String) -> watch::Receiver<Snapshot> {
    let (tx, rx) = watch::channel(Snapshot::new());
    tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        while !tx.is_closed() {
            match follow_once(store.as_ref(), &prefix, &tx).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(%prefix, error = %e, "metadata watch restarting"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = tx.closed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
    rx
}

/// Follows one key; `None` while it is absent.
pub fn follow_key(store: Arc<dyn MetaStore>, key: String) -> watch::Receiver<Option<KeyValue>> {
    let mut all = follow_prefix(store, key.clone());
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        loop {
            let current = all.borrow_and_update().get(&key).cloned();
            tx.send_if_modified(|held| {
                let changed = *held != current;
                *held = current;
                changed
            });
            tokio::select! {
                changed = all.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

/// One read-then-watch cycle. Returns Ok when all receivers are gone.
async fn follow_once(store: &dyn MetaStore, prefix: &str, tx: &watch::Sender<Snapshot>) -> crate::Result<()> {
    let (kvs, revision) = store.get_prefix(prefix).await?;
    let mut state: Snapshot = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    tx.send_replace(state.clone());
    let mut events = store.watch_prefix(prefix, revision + 1).await?;
    loop {
        tokio::select! {
            next = events.next() => match next {
                None => return Err(crate::MetaError::Closed),
                Some(event) => {
                    match event? {
                        WatchEvent::Put(kv) => { state.insert(kv.key.clone(), kv); }
                        WatchEvent::Delete { key, .. } => { state.remove(&key); }
                    }
                    tx.send_replace(state.clone());
                }
            },
            _ = tx.closed() => return Ok(()),
        }
    }
}
