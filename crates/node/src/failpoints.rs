//! Failpoints (tikv/fail-rs) for fault-injection tests.
//!
//! Each is named after the node, so a test running a whole cluster in one
//! process can slow down or fill up one node:
//! - `node-<id>-execute-delay`, `return(MS)`: every `Execute` first sleeps MS
//!   milliseconds (a tokio sleep; the runtime thread stays free). The delay
//!   counts in the node's latency stats and its in-flight foreground count.
//!   It stands for a queue the request waits in before its ops start, so,
//!   as a queue would, it ends at the request's start deadline
//!   (`service::START_WITHIN_PERCENT` of its `grpc-timeout`), and then the
//!   ops are refused `OVERLOADED`.
//! - `node-<id>-admitted-write-delay`, `return(MS)`: every client write,
//!   once admitted (ownership checked, under its partition's lock), sleeps
//!   MS ms before it commits. This one blocks its thread, as a slow commit
//!   would; it exists to hold a write inside that window while a fence
//!   arrives.
//! - `node-<id>-disk-free`, `return(BYTES)`: `Stats` reports BYTES free.
//! - `node-<id>-stats-delay`, `return(MS)`: every `Stats` first sleeps MS ms.
//! - `node-<id>-pubsub-interest-delay`, `return(MS)`: every
//!   `PubSubInterest` (a router's subscription change) first sleeps MS ms.
//!
//! Only `return(N)` is meant: fail's own `sleep`/`delay`/`pause` actions
//! block the runtime thread (where a failpoint blocks, it says so).
//! Configure with `fail::cfg(name, "return(80)")` and clear with
//! `fail::remove(name)`; the registry is process-global, so tests that
//! configure failpoints hold a `fail::FailScenario` meanwhile.
//!
//! The checks compile to nothing unless the `fail` crate's `failpoints`
//! feature is on, which this crate's `failpoints` feature turns on; so does
//! any crate in the build that depends on `fail` with that feature (this
//! crate's own tests do).

use evenkeel_types::NodeId;
use std::time::Duration;

pub fn execute_delay(id: NodeId) -> String {
    format!("node-{id}-execute-delay")
}

pub fn admitted_write_delay(id: NodeId) -> String {
    format!("node-{id}-admitted-write-delay")
}

pub fn disk_free(id: NodeId) -> String {
    format!("node-{id}-disk-free")
}

pub fn stats_delay(id: NodeId) -> String {
    format!("node-{id}-stats-delay")
}

pub fn pubsub_interest_delay(id: NodeId) -> String {
    format!("node-{id}-pubsub-interest-delay")
}

/// One node's failpoint names, formatted once so the hot path does not.
pub(crate) struct Failpoints {
    execute_delay: String,
    admitted_write_delay: String,
    disk_free: String,
    stats_delay: String,
    pubsub_interest_delay: String,
}

impl Failpoints {
    pub fn new(id: NodeId) -> Self {
        Failpoints { execute_delay: execute_delay(id), admitted_write_delay: admitted_write_delay(id), disk_free: disk_free(id), stats_delay: stats_delay(id), pubsub_interest_delay: pubsub_interest_delay(id) }
    }

    pub fn execute_delay(&self) -> Option<Duration> {
        return_u64(&self.execute_delay).map(Duration::from_millis)
    }

    pub fn admitted_write_delay(&self) -> Option<Duration> {
        return_u64(&self.admitted_write_delay).map(Duration::from_millis)
    }

    pub fn disk_free_bytes(&self) -> Option<u64> {
        return_u64(&self.disk_free)
    }

    pub fn stats_delay(&self) -> Option<Duration> {
        return_u64(&self.stats_delay).map(Duration::from_millis)
    }

    pub fn pubsub_interest_delay(&self) -> Option<Duration> {
        return_u64(&self.pubsub_interest_delay).map(Duration::from_millis)
    }
}

/// The number in `name`'s `return(N)` action, if it is configured so and
/// fires. `fail_point!` returns from this function with the closure's value;
/// compiled out, it leaves `None`.
fn return_u64(name: &str) -> Option<u64> {
    fail::fail_point!(name, |arg: Option<String>| {
        let n = arg.as_deref().and_then(|a| a.trim().parse().ok());
        if n.is_none() {
            tracing::warn!(failpoint = name, ?arg, "failpoint wants return(N); ignored");
        }
        n
    });
    let _ = name;
    None
}
