//! Where a client request runs: inline on the calling runtime worker, or on
//! one of the node's own threads (the writer for writes, the reader for
//! reads).
//!
//! Inline is cheapest: no thread hop. But fjall serializes a node's writes
//! on its journal lock and sometimes holds that lock across an fsync (its
//! flush worker syncs the journal before each memtable flush, fjall issue
//! 329) or sleeps the writing thread (its write brakes, when flushes or
//! compactions fall behind). A write waiting there on a runtime worker
//! takes the worker with it, and in `evenkeel up` there is one worker per
//! core: a slow disk once stalled every request, heartbeat and lease
//! renewal of the process for 2.4 s. The writer thread isolates that, but a
//! hop costs a wakeup each way (measured: about 0.1 core more at 5k ops/s
//! on the 2-core test machine, 20% of the process's CPU).
//!
//! So writes run inline until there is a sign they may wait: an inline
//! write to this node has been running for longer than [`STUCK_AFTER`]
//! (normal ones take microseconds), or the engine is close to its brakes.
//! Then they go to the writer thread. The first write caught by a stall
//! still holds one worker until it ends; the others do not pile up behind
//! it, so the rest of the process keeps going.
//!
//! Reads follow the same rule with their own [`Inline`] and the reader
//! thread. They take no journal lock, but every read takes lsm-tree's
//! version lock, which a memtable flush or compaction holds for writing
//! across an fsync (`persist_version`: 5–40 ms measured, more under load).
//! A node that has just imported partitions flushes soon after: in the
//! acceptance runs its seal was followed by a second of 7–13 ms p99 on
//! every node and 21 ms of runtime scheduling delay, both workers stuck
//! in reads of that one node.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An inline write running longer than this is waiting on the engine.
pub const STUCK_AFTER: Duration = Duration::from_millis(2);

/// Where one request runs.
pub(crate) enum Route<'a> {
    /// On the calling worker; hold the ticket while it runs.
    Inline(Ticket<'a>),
    /// On the node's thread for this kind of request.
    Offload,
}

/// The inline requests of one kind (reads or writes) to one node: when the
/// oldest still running began, in µs since process start (0: none running).
#[derive(Default)]
pub(crate) struct Inline {
    busy_since_us: AtomicU64,
}

/// Marks an inline request in progress; the one that set the mark clears it.
pub(crate) struct Ticket<'a> {
    inline: &'a Inline,
    marked: Option<u64>,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_us() -> u64 {
    // Never 0, which means "none running".
    EPOCH.elapsed().as_micros() as u64 + 1
}

impl Inline {
    /// Decides where the next request runs; `engine_at_risk`: the engine is
    /// near its write brakes (always false for reads).
    pub fn route(&self, engine_at_risk: bool) -> Route<'_> {
        if engine_at_risk {
            return Route::Offload;
        }
        let now = now_us();
        match self.busy_since_us.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Route::Inline(Ticket { inline: self, marked: Some(now) }),
            Err(since) if now.saturating_sub(since) > STUCK_AFTER.as_micros() as u64 => Route::Offload,
            Err(_) => Route::Inline(Ticket { inline: self, marked: None }),
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(mark) = self.marked {
            let _ = self.inline.busy_since_us.compare_exchange(mark, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_go_inline_until_one_is_stuck() {
        let w = Inline::default();
        let first = w.route(false);
        assert!(matches!(first, Route::Inline(_)));
        // A second write while the first is young also runs inline.
        assert!(matches!(w.route(false), Route::Inline(_)));
        std::thread::sleep(STUCK_AFTER + Duration::from_millis(1));
        assert!(matches!(w.route(false), Route::Offload), "the first has been running too long");
        drop(first);
        assert!(matches!(w.route(false), Route::Inline(_)), "once it ends, inline again");
    }

    #[test]
    fn an_engine_near_its_brakes_sends_writes_to_the_writer() {
        let w = Inline::default();
        assert!(matches!(w.route(true), Route::Offload));
        assert!(matches!(w.route(false), Route::Inline(_)), "routing to the writer marks nothing");
    }
}
