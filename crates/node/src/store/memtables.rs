//! Frees the engine's flushed memtables away from its version lock.
//!
//! When a flush lands, lsm-tree installs the new table and retires the
//! super version that still referenced the sealed memtable, all under the
//! tree's version lock (`register_tables` → `maintenance`). The retired
//! version held the last reference, so the whole memtable (a skiplist of
//! hundreds of thousands of small allocations for a 64 MiB memtable) is
//! freed right there, with the lock held for writing. Every read and write
//! of the keyspace takes that lock to find the active memtable, so all of
//! them wait. Measured on the 2-core test machine, with timing added to
//! lsm-tree 3.1.10: 183–860 ms per flush, and since reads and writes run
//! inline on runtime workers, it stalled the whole process for as long.
//! That was the 0.3–2.5 s spike every minute or two in the acceptance
//! runs, rebalance or not.
//!
//! The fix keeps one more reference: [`Keeper::tend`] takes a reference to
//! each keyspace's active memtable every [`TEND_EVERY`], so when lsm-tree
//! lets go of a flushed one ours is the last; `tend` then sees it held only
//! here and hands it to a freeing thread at low priority. A memtable that
//! lived less than one `TEND_EVERY` (not seen by any `tend`) is still freed
//! under the lock, as before: only small ones can fill that fast under our
//! loads. Holding the reference changes nothing else: lsm-tree never looks
//! at the reference count, and the write buffer's accounting is fjall's
//! own counter, lowered when the flush lands.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use fjall::{AbstractTree, Keyspace};
use lsm_tree::Memtable;
use parking_lot::Mutex;

/// How often each node takes references to its active memtables.
pub const TEND_EVERY: Duration = Duration::from_millis(100);

/// Nice value of the freeing thread: freeing is pure CPU work that nobody
/// waits for.
const FREER_NICE: i32 = 10;

/// Memtables waiting for the freeing thread; past this, `tend` keeps them
/// for its next round.
const FREER_QUEUE: usize = 64;

/// One freeing thread for the process (each node has a few memtables a
/// minute at most).
static FREER: LazyLock<Option<SyncSender<Arc<Memtable>>>> = LazyLock::new(|| {
    let (tx, rx) = sync_channel::<Arc<Memtable>>(FREER_QUEUE);
    let spawned = std::thread::Builder::new().name("ek-memfree".into()).spawn(move || {
        crate::priority::Priority::Nice(FREER_NICE).apply_or_warn();
        for memtable in rx {
            drop(memtable);
        }
    });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "no memtable freeing thread; flushed memtables are freed under the engine's lock");
            None
        }
    }
});

/// What one [`Keeper::tend`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tended {
    /// Memtables the engine let go of, sent to the freeing thread.
    pub released: usize,
    /// Their approximate size in bytes.
    pub released_bytes: u64,
    /// Memtables still referenced by the engine (active, sealed or in a
    /// version a reader still uses), held here.
    pub held: usize,
}

/// References to the memtables of a store's keyspaces.
#[derive(Default)]
pub(crate) struct Keeper {
    held: Mutex<Vec<Arc<Memtable>>>,
}

impl Keeper {
    /// Takes a reference to each keyspace's active memtable not held yet,
    /// and sends those only this keeper still references to the freeing
    /// thread.
    pub fn tend(&self, spaces: &[&Keyspace]) -> Tended {
        let mut held = self.held.lock();
        for space in spaces {
            let active = space.tree.active_memtable();
            if !held.iter().any(|m| Arc::ptr_eq(m, &active)) {
                held.push(active);
            }
        }
        let mut tended = Tended::default();
        let mut i = 0;
        while i < held.len() {
            // Only this keeper can hand out new references to a memtable
            // the engine no longer has, so a count of 1 stays 1.
            if Arc::strong_count(&held[i]) > 1 {
                i += 1;
                continue;
            }
            let memtable = held.swap_remove(i);
            let bytes = memtable.size();
            // Without a freeing thread (or if it died) the memtable is freed
            // here, by the caller, which is off the engine's lock at least.
            if let Some(tx) = FREER.as_ref()
                && let Err(TrySendError::Full(memtable)) = tx.try_send(memtable)
            {
                // Queue full: keep it for the next round.
                held.push(memtable);
                break;
            }
            tended.released += 1;
            tended.released_bytes += bytes;
        }
        tended.held = held.len();
        tended
    }
}
