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

use crate::mirror::Mirror;
use evenkeel_meta::{LeaseId, MetaStore};
use evenkeel_types::latency::{RouterReport, SecondWindow};
use evenkeel_types::{keys, unix_ms};
use std::sync::Arc;
use std::time::Duration;

/// TTL of a router's report lease; reports come every second.
const LEASE_TTL: Duration = Duration::from_secs(5);

/// Publishes `window` and `mirror`'s counts every second until the task is
/// dropped.
pub(crate) async fn run(meta: Arc<dyn MetaStore>, router: u64, window: Arc<SecondWindow>, mirror: Arc<Mirror>) {
    let mut lease: Option<LeaseId> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = publish(meta.as_ref(), router, &window, &mirror, &mut lease).await {
            tracing::debug!(error = %e, "router report not published");
            lease = None;
        }
    }
}

async fn publish(meta: &dyn MetaStore, router: u64, window: &SecondWindow, mirror: &Mirror, lease: &mut Option<LeaseId>) -> Result<(), evenkeel_meta::MetaError> {
    let id = match *lease {
        Some(id) => {
            meta.keep_alive(id).await?;
            id
        }
        None => *lease.insert(meta.grant_lease(LEASE_TTL).await?),
    };
    let now = unix_ms();
    let report = RouterReport { router, at_ms: now, last_second: window.last_second(now), migrations: mirror.book.snapshot() };
    meta.put(&keys::router_key(router), serde_json::to_vec(&report).expect("report serializes"), Some(id)).await?;
    Ok(())
}
