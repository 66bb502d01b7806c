//! The background lane: migration work gives way to foreground requests.
//!
//! Foreground requests (`Execute`, `Scan`) hold a [`Foreground`] guard while
//! in flight. Bulk migration work (`MigrateSnapshot`, `MigrateReadLog`,
//! `MigrateApply`, `MigrateDrop`) first takes one of a few permits, so at most
//! that many of them occupy runtime threads at once, then, before each piece
//! of store work, waits in short steps while foreground requests are in
//! flight. The wait is bounded per request (`yield_max`), so a node under
//! constant foreground load still moves its partitions: the lane sets a
//! floor on migration progress, not just a ceiling.
//!
//! A `MigrateReadLog` with nothing past its position answers before the
//! lane (`migrate_rpc::read_log`): there is no store work to defer.
//!
//! The cutover's own RPCs (`MigrateBegin`, `MigrateFence`, `MigrateChecksum`)
//! bypass the lane: they run while the partition is paused, and delaying
//! them lengthens exactly the pause the lane exists to protect.

use evenkeel_types::NodeId;
use metrics::Counter;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long one step of a yield sleeps. tokio's timer rounds this up to its
/// 1 ms resolution; sleeping (rather than `yield_now`) keeps a waiting
/// migration from spinning on a core the foreground needs.
const YIELD_STEP: Duration = Duration::from_micros(200);

/// How migration work shares the node with foreground requests; set from
/// the `background_*` fields of [`crate::NodeConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneConfig {
    /// Off: migration work neither takes permits nor yields.
    pub enabled: bool,
    /// Migration requests doing store work at once; at least 1.
    pub permits: usize,
    /// Longest one migration request waits for foreground work, in total.
    pub yield_max: Duration,
}

pub(crate) struct Lane {
    config: LaneConfig,
    permits: Semaphore,
    foreground: AtomicUsize,
    yields: AtomicU64,
    yields_metric: Counter,
}

/// Marks one foreground request in flight until dropped.
pub(crate) struct Foreground<'a>(&'a AtomicUsize);

/// One migration request's turn in the lane: its permit and yield budget.
pub(crate) struct Background<'a> {
    lane: &'a Lane,
    _permit: Option<SemaphorePermit<'a>>,
    /// None when the lane is off.
    budget: Option<YieldBudget>,
}

impl Lane {
    pub fn new(id: NodeId, config: LaneConfig) -> Self {
        assert!(config.permits >= 1, "the background lane needs at least one permit");
        Lane {
            config,
            permits: Semaphore::new(config.permits),
            foreground: AtomicUsize::new(0),
            yields: AtomicU64::new(0),
            yields_metric: metrics::counter!("evenkeel_node_background_yields_total", "node" => id.to_string()),
        }
    }

    pub fn foreground(&self) -> Foreground<'_> {
        self.foreground.fetch_add(1, Ordering::Relaxed);
        Foreground(&self.foreground)
    }

    /// Waits for a permit, then yields to foreground work once; the caller
    /// yields again between pieces of a large request.
    pub async fn background(&self) -> Background<'_> {
        let permit = if self.config.enabled { Some(self.permits.acquire().await.expect("the lane's semaphore is never closed")) } else { None };
        let budget = self.config.enabled.then(|| YieldBudget { deadline: Instant::now() + self.config.yield_max });
        let work = Background { lane: self, _permit: permit, budget };
        work.yield_to_foreground().await;
        work
    }

    /// Times migration work waited for foreground requests, since start.
    pub fn yields_total(&self) -> u64 {
        self.yields.load(Ordering::Relaxed)
    }

    fn busy(&self) -> bool {
        self.foreground.load(Ordering::Relaxed) > 0
    }

    /// Whether work with `budget` should still wait: foreground requests
    /// are in flight and the budget is not spent.
    fn waiting(&self, budget: Option<YieldBudget>) -> bool {
        self.busy() && budget.is_some_and(|b| Instant::now() < b.deadline)
    }

    /// [`Self::waiting`], counting a yield when it starts one.
    fn starts_yield(&self, budget: Option<YieldBudget>) -> bool {
        let waiting = self.waiting(budget);
        if waiting {
            self.yields.fetch_add(1, Ordering::Relaxed);
            self.yields_metric.increment(1);
        }
        waiting
    }
}

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before > 0, "foreground in-flight count underflow");
    }
}

/// What is left of one migration request's yield budget, for its store
/// work on a bulk thread, which yields between pieces itself
/// ([`Lane::yield_blocking`]) rather than coming back to the runtime
/// between them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct YieldBudget {
    deadline: Instant,
}

impl Lane {
    /// [`Background::yield_to_foreground`] for a blocking thread: sleeps in
    /// short steps (a thread sleep) while foreground requests are in
    /// flight, until there are none or `budget` is spent. No budget (the
    /// lane is off, or the work is urgent): returns at once.
    pub fn yield_blocking(&self, budget: Option<YieldBudget>) {
        if self.starts_yield(budget) {
            while self.waiting(budget) {
                std::thread::sleep(YIELD_STEP);
            }
        }
    }
}

impl Background<'_> {
    /// The rest of this request's yield budget; None when the lane is off.
    pub fn budget(&self) -> Option<YieldBudget> {
        self.budget
    }

    /// Sleeps in short steps while foreground requests are in flight, until
    /// there are none or this request's budget is spent. Counts one yield per
    /// wait that happened.
    pub async fn yield_to_foreground(&self) {
        if self.lane.starts_yield(self.budget) {
            while self.lane.waiting(self.budget) {
                tokio::time::sleep(YIELD_STEP).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane_with(enabled: bool, yield_max: Duration) -> Lane {
        Lane::new(1, LaneConfig { enabled, permits: 1, yield_max })
    }

    fn lane(enabled: bool) -> Lane {
        lane_with(enabled, Duration::from_millis(20))
    }

    #[tokio::test]
    async fn migration_waits_for_foreground_at_most_its_budget() {
        let lane = lane(true);
        let _fg = lane.foreground();
        let started = Instant::now();
        let work = lane.background().await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(20) && waited < Duration::from_secs(1), "{waited:?}");
        assert_eq!(lane.yields_total(), 1);
        // The budget is per request: later pieces go ahead without waiting.
        work.yield_to_foreground().await;
        assert_eq!(lane.yields_total(), 1);
    }

    #[tokio::test]
    async fn migration_goes_ahead_when_foreground_is_idle_or_the_lane_is_off() {
        let on = lane(true);
        drop(on.background().await);
        assert_eq!(on.yields_total(), 0);
        let off = lane(false);
        let _fg = off.foreground();
        let started = Instant::now();
        drop(off.background().await);
        assert!(started.elapsed() < Duration::from_millis(20));
        assert_eq!(off.yields_total(), 0);
    }

    #[tokio::test]
    async fn migration_resumes_once_foreground_finishes() {
        // A long budget, so resuming early cannot be mistaken for its end.
        let lane = std::sync::Arc::new(lane_with(true, Duration::from_secs(5)));
        let fg = lane.foreground();
        let l = lane.clone();
        let waiter = tokio::spawn(async move {
            let _work = l.background().await;
            Instant::now()
        });
        while lane.yields_total() == 0 {
            tokio::task::yield_now().await;
        }
        let released = Instant::now();
        drop(fg);
        let resumed = waiter.await.unwrap();
        assert!(resumed - released < Duration::from_secs(1), "resumed {:?} after release", resumed - released);
    }

    #[tokio::test]
    async fn a_blocking_thread_yields_within_the_same_budget() {
        let lane = lane(true);
        let work = lane.background().await;
        let budget = work.budget();
        assert!(budget.is_some());
        let fg = lane.foreground();
        let started = std::time::Instant::now();
        lane.yield_blocking(budget);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(15) && waited < Duration::from_secs(1), "waited {waited:?} of a 20 ms budget");
        assert_eq!(lane.yields_total(), 1);
        let started = std::time::Instant::now();
        lane.yield_blocking(budget);
        assert!(started.elapsed() < Duration::from_millis(10), "the budget is spent");
        drop(fg);
        lane.yield_blocking(None);
        let off = lane_with(false, Duration::from_secs(5));
        let _fg = off.foreground();
        assert!(off.background().await.budget().is_none(), "a lane that is off gives no budget");
    }

    #[tokio::test]
    async fn permits_bound_concurrent_migration_work() {
        let lane = lane(true);
        let first = lane.background().await;
        let second = tokio::time::timeout(Duration::from_millis(30), lane.background()).await;
        assert!(second.is_err(), "a second request must wait for the only permit");
        drop(first);
        drop(tokio::time::timeout(Duration::from_secs(1), lane.background()).await.expect("permit freed"));
    }
}
