//! Watch fan-out for the embedded store: a ring of recent events for replay
//! and one bounded channel per watcher. Both are touched only under the
//! store's mutex, so registration (replay + subscribe) cannot miss or repeat
//! an event.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::error::{MetaError, Result};
use crate::store::{Revision, WatchEvent, WatchStream};

struct Watcher {
    prefix: String,
    /// Live events below this revision are not wanted (a watch from the future).
    from: Revision,
    tx: mpsc::Sender<WatchEvent>,
    lagged: Arc<AtomicBool>,
}

pub(crate) struct WatchHub {
    watchers: Vec<Watcher>,
    history: VecDeque<WatchEvent>,
    history_len: usize,
    buffer: usize,
    /// Highest revision whose event was dropped from `history` (0 = none).
    compacted: Revision,
}

impl WatchHub {
    /// `compacted` is the newest revision already unavailable for replay
    /// (after recovery: the snapshot's revision).
    pub(crate) fn new(history_len: usize, buffer: usize, compacted: Revision) -> WatchHub {
        WatchHub {
            watchers: Vec::new(),
            history: VecDeque::new(),
            history_len,
            buffer: buffer.max(1),
            compacted,
        }
    }

    /// Records events in the history only (recovery: nobody is watching yet).
    pub(crate) fn remember(&mut self, events: &[WatchEvent]) {
        for event in events {
            self.history.push_back(event.clone());
            while self.history.len() > self.history_len {
                let dropped = self.history.pop_front().expect("non-empty");
                self.compacted = dropped.revision();
            }
        }
    }

    pub(crate) fn publish(&mut self, events: Vec<WatchEvent>) {
        self.remember(&events);
        for event in events {
            self.watchers.retain(|w| {
                if event.revision() < w.from || !event.key().starts_with(&w.prefix) {
                    return !w.tx.is_closed();
                }
                match w.tx.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Dropping the sender ends the stream after what it buffered.
                        w.lagged.store(true, Ordering::Release);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
    }

    /// Registers a watcher for events with revision >= `from` (0 = after `current`).
    pub(crate) fn subscribe(
        &mut self,
        prefix: &str,
        from: Revision,
        current: Revision,
    ) -> Result<WatchStream> {
        if from != 0 && from <= self.compacted {
            return Err(MetaError::Compacted {
                requested: from,
                oldest: self.compacted + 1,
            });
        }
        // Replay is handed over whole, outside the channel, so a long replay
        // does not count against the live buffer.
        let replay: VecDeque<WatchEvent> = if from == 0 || from > current {
            VecDeque::new()
        } else {
            self.history
                .iter()
                .filter(|e| e.revision() >= from && e.key().starts_with(prefix))
                .cloned()
                .collect()
        };
        let (tx, rx) = mpsc::channel(self.buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        self.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            from,
            tx,
            lagged: lagged.clone(),
        });
        Ok(Box::pin(EventStream {
            replay,
            rx,
            lagged,
            done: false,
        }))
    }

    #[cfg(test)]
    pub(crate) fn watcher_count(&self) -> usize {
        self.watchers.len()
    }
}

struct EventStream {
    replay: VecDeque<WatchEvent>,
    rx: mpsc::Receiver<WatchEvent>,
    lagged: Arc<AtomicBool>,
    done: bool,
}

impl futures::Stream for EventStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(event) = self.replay.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) => {
                // The sender is gone: either we lagged, or the store was dropped.
                self.done = true;
                let err = if self.lagged.load(Ordering::Acquire) {
                    MetaError::WatchLagged
                } else {
                    MetaError::Closed
                };
                Poll::Ready(Some(Err(err)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn del(key: &str, rev: Revision) -> WatchEvent {
        WatchEvent::Delete {
            key: key.into(),
            mod_revision: rev,
        }
    }

    #[tokio::test]
    async fn history_ring_bounds_replay() {
        let mut hub = WatchHub::new(2, 8, 0);
        hub.publish(vec![del("a", 2), del("b", 3), del("a", 4)]);
        let err = hub.subscribe("", 2, 4).err().unwrap();
        assert!(matches!(
            err,
            MetaError::Compacted {
                requested: 2,
                oldest: 3
            }
        ));
        let mut s = hub.subscribe("a", 3, 4).unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), del("a", 4));
    }

    #[tokio::test]
    async fn closed_watchers_are_pruned() {
        let mut hub = WatchHub::new(0, 8, 0);
        let s = hub.subscribe("x", 0, 1).unwrap();
        drop(s);
        hub.publish(vec![del("y", 2)]);
        assert_eq!(
            hub.watcher_count(),
            0,
            "dropped stream's watcher pruned even for other prefixes"
        );
        assert!(
            matches!(hub.subscribe("", 2, 2), Err(MetaError::Compacted { .. })),
            "no history kept"
        );
    }
}
