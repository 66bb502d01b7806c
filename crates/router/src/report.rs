//! Telling the coordinator what clients feel.
//!
//! Every command's latency (from the moment the request was decoded to the
//! moment its reply was ready) goes into a [`SecondWindow`]. Once a second
//! the router publishes the last complete second's summary at
//! `/evenkeel/routers/<id>`, attached to its own lease so a router that
//! stops leaves no stale report behind. The coordinator's throttle reads
//! these to measure the baseline and to keep a rebalance inside the
//! disruption budget. The report also carries what the router mirrored
//! for each moving partition's migration ([`crate::mirror`]); the
//! coordinator sums those over routers to verify a migration before cutover.
//!
//! Command latency starts once a request has been read, so it misses the
//! time a request waits in the socket for a busy process to get to it:
//! on a CPU-bound host that wait is most of what clients feel. So the
//! report also carries the process's *scheduling delay*, sampled by
//! [`probe_scheduling`]: a task that yields to the back of the run queue
//! every few milliseconds and measures how long it takes to run again
//! (waiting behind other tasks, or for the OS to give the worker thread a
//! core). It is the signal CockroachDB's elastic CPU limiter throttles
//! bulk work on (Go's scheduler latency). The report's `arrival` is the
//! direct measure: each command's latency from when the kernel received
//! its bytes (see [`crate::arrival`]).

use crate::mirror::Mirror;
use evenkeel_meta::{LeaseId, MetaStore};
use evenkeel_types::latency::{RouterReport, SecondWindow};
use evenkeel_types::{keys, unix_ms};
use std::sync::Arc;
use std::time::Duration;

/// TTL of a router's report lease; reports come every second.
const LEASE_TTL: Duration = Duration::from_secs(5);

/// How often the scheduling probe samples.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// The per-second latencies a router reports.
pub(crate) struct Windows {
    /// From decode to reply.
    pub commands: Arc<SecondWindow>,
    /// From the kernel's receipt of the request's bytes to reply.
    pub arrival: Arc<SecondWindow>,
    /// The dispatcher's count of operations that failed for the store's
    /// reasons ([`crate::dispatch::Dispatcher::unavailable`]).
    pub unavailable: Arc<std::sync::atomic::AtomicU64>,
}

/// Publishes `windows`, `mirror`'s counts and the scheduling delay it
/// samples itself every second until the task is dropped.
pub(crate) async fn run(meta: Arc<dyn MetaStore>, router: u64, windows: Windows, mirror: Arc<Mirror>) {
    let sched = Arc::new(SecondWindow::default());
    let probe = tokio::spawn(probe_scheduling(sched.clone(), PROBE_EVERY));
    let _stop_probe = crate::AbortOnDrop(Some(probe));
    let mut lease: Option<LeaseId> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = publish(meta.as_ref(), router, &windows, &sched, &mirror, &mut lease).await {
            tracing::debug!(error = %e, "router report not published");
            lease = None;
        }
    }
}

/// Records, every `every`, how long a task that yields waits to run again.
pub(crate) async fn probe_scheduling(window: Arc<SecondWindow>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let asked = std::time::Instant::now();
        tokio::task::yield_now().await;
        let waited = asked.elapsed().as_micros() as u64;
        window.record(waited, false, unix_ms());
        metrics::histogram!("evenkeel_router_sched_delay_seconds").record(waited as f64 / 1e6);
    }
}

async fn publish(meta: &dyn MetaStore, router: u64, windows: &Windows, sched: &SecondWindow, mirror: &Mirror, lease: &mut Option<LeaseId>) -> Result<(), evenkeel_meta::MetaError> {
    let id = match *lease {
        Some(id) => {
            meta.keep_alive(id).await?;
            id
        }
        None => *lease.insert(meta.grant_lease(LEASE_TTL).await?),
    };
    let now = unix_ms();
    let report = RouterReport { router, at_ms: now, last_second: windows.commands.last_second(now), sched: Some(sched.last_second(now)), arrival: Some(windows.arrival.last_second(now)), unavailable_total: windows.unavailable.load(std::sync::atomic::Ordering::Relaxed), migrations: mirror.book.snapshot() };
    meta.put(&keys::router_key(router), serde_json::to_vec(&report).expect("report serializes"), Some(id)).await?;
    Ok(())
}
