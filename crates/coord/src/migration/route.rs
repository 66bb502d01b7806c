//! A migration's route in the routing table, and its verification by
//! routers' shadow reads.
//!
//! While a partition moves, its routing entry carries a [`MigrationRoute`]:
//! the destination, the fencing token and the [`Modes`] routers apply
//! (`router::mirror`). The route is a function of the stored migration,
//! [`desired`]: set once the copy starts (PREPARING has the token), with
//! copy-on-read only while the copy runs, kept through catch-up,
//! verification, pauses and cutover attempts, and gone once the partition
//! flips (the flip replaces the entry) or the migration ends otherwise. No
//! route at all when every mode is off.
//!
//! The driver applies that value by compare-and-swap on the table
//! ([`ensure`], a sibling of the owner flip) whenever it changes and once
//! when it starts. Routes are advisory, so a failure there is logged and
//! the migration goes on; only [`clear`], which an abort runs before
//! dropping the destination, must succeed (it is retried like any action),
//! so that routers stop forwarding to a copy that is going away. They could
//! not harm it anyway: the destination refuses forwards once its import is
//! closed.
//!
//! Verification: routers count shadow-read comparisons per migration and
//! publish them with their latency reports; [`totals`] sums them over
//! routers and [`shadow_check`] refuses a cutover while the mismatch ratio
//! is above `shadow_mismatch_ratio_max`, once `shadow_compared_min`
//! comparisons have been made.

use super::driver::{Driver, Failure, routing, swap_routing};
use super::machine::{Migration, Phase};
use evenkeel_meta::{MetaError, MetaStore};
use evenkeel_types::latency::{MirrorCounts, RouterReport, ShadowCounts};
use evenkeel_types::{MigrationRoute, Modes, keys};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A migration's modes and the shadow-read threshold its verification
/// applies. Defaults come from the coordinator's configuration (`[migration]`);
/// a move request may override the modes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrationModes {
    #[serde(flatten)]
    pub route: Modes,
    /// READY_FOR_CUTOVER does not cut over while mismatched / compared
    /// shadow reads exceed this.
    pub shadow_mismatch_ratio_max: f64,
    /// Fewer comparisons than this say too little to refuse a cutover.
    pub shadow_compared_min: u64,
}

impl Default for MigrationModes {
    fn default() -> Self {
        MigrationModes { route: Modes::default(), shadow_mismatch_ratio_max: 0.001, shadow_compared_min: 100 }
    }
}

impl MigrationModes {
    pub fn validate(&self) -> Result<(), String> {
        self.route.validate()?;
        if !(0.0..=1.0).contains(&self.shadow_mismatch_ratio_max) {
            return Err(format!("shadow_mismatch_ratio_max must be within [0, 1], not {}", self.shadow_mismatch_ratio_max));
        }
        Ok(())
    }
}

/// The route `m`'s stored state calls for.
pub fn desired(m: &Migration) -> Option<MigrationRoute> {
    let token = m.token?;
    let phase = if m.phase == Phase::Paused { m.paused_from? } else { m.phase };
    if !matches!(phase, Phase::Copying | Phase::CatchingUp | Phase::ReadyForCutover | Phase::CuttingOver) {
        return None;
    }
    let mut modes = m.modes.route;
    // Once the copy is done every key is on the destination: pushing what
    // clients read would only repeat what catch-up delivers anyway.
    modes.copy_on_read &= phase == Phase::Copying;
    (modes != Modes::OFF).then(|| MigrationRoute { migration: m.id.clone(), target: m.target, token, modes })
}

/// Why shadow reads forbid the cutover, if they do.
pub fn shadow_check(counts: &ShadowCounts, modes: &MigrationModes) -> Result<(), String> {
    let ratio = counts.mismatch_ratio();
    if counts.compared < modes.shadow_compared_min || ratio <= modes.shadow_mismatch_ratio_max {
        return Ok(());
    }
    Err(format!(
        "shadow reads: {} of {} compared mismatched (ratio {ratio:.4}, at most {} allowed)",
        counts.mismatched, counts.compared, modes.shadow_mismatch_ratio_max
    ))
}

/// The larger of each count: figures from routers never go backwards,
/// even when a router restarts (its counts start again from zero) or stops
/// (its report goes with its lease).
pub fn most(a: &MirrorCounts, b: &MirrorCounts) -> MirrorCounts {
    let shadow = ShadowCounts {
        compared: a.shadow.compared.max(b.shadow.compared),
        lagging: a.shadow.lagging.max(b.shadow.lagging),
        mismatched: a.shadow.mismatched.max(b.shadow.mismatched),
    };
    MirrorCounts {
        dual_writes: a.dual_writes.max(b.dual_writes),
        copied_on_read: a.copied_on_read.max(b.copied_on_read),
        dropped: a.dropped.max(b.dropped),
        withheld: a.withheld.max(b.withheld),
        failed: a.failed.max(b.failed),
        shadow,
    }
}

/// Every migration's counts summed over the routers reporting now.
pub async fn totals(meta: &dyn MetaStore) -> Result<HashMap<String, MirrorCounts>, MetaError> {
    let (reports, _) = meta.get_prefix(keys::ROUTERS_PREFIX).await?;
    let mut sums: HashMap<String, MirrorCounts> = HashMap::new();
    for report in reports.iter().filter_map(|kv| serde_json::from_slice::<RouterReport>(&kv.value).ok()) {
        for m in &report.migrations {
            sums.entry(m.migration.clone()).or_default().add(&m.counts);
        }
    }
    Ok(sums)
}

/// Sets the route `m` calls for. Errors are logged: routes are advisory.
/// A driver restarted by a new leader holds no lock under `m`'s token until
/// its relock, which changes the token and so applies the route again.
pub(super) async fn ensure(d: &Driver, m: &Migration) {
    let want = desired(m);
    match put(d, m, want.clone()).await {
        Ok(()) => {}
        Err(Failure::Fenced(e)) => tracing::debug!(migration = %m.id, error = %e, "routing mode waits for the relock"),
        Err(failure) => tracing::warn!(migration = %m.id, route = ?want, ?failure, "routing mode not applied"),
    }
}

/// Removes `m`'s route; the abort runs this before dropping the destination.
pub(super) async fn clear(d: &Driver, m: &Migration) -> Result<(), Failure> {
    put(d, m, None).await
}

/// Replaces `m`'s route in the table by compare-and-swap, retried while
/// other entries change. Only the source's entry carries it: once the
/// partition has flipped, the flip replaced it; and another migration's
/// route is not ours to touch. As the owner flip, it is written only
/// while the lock is held: a coordinator that lost it must not bring a
/// route back after its successor cleared it (G10).
async fn put(d: &Driver, m: &Migration, want: Option<MigrationRoute>) -> Result<(), Failure> {
    loop {
        let (table, rev) = routing(d).await?;
        let entry = table.entry(m.partition).ok_or_else(|| Failure::Permanent("partition not in table".into()))?;
        let ours = entry.migration.as_ref().is_none_or(|r| r.migration == m.id);
        if entry.owner != m.source || !ours || entry.migration == want {
            return Ok(());
        }
        let next = table.with_route(m.partition, want.clone());
        if swap_routing(d, m, rev, &next).await? {
            tracing::info!(migration = %m.id, partition = m.partition, route = ?want, epoch = next.epoch, "routing mode set");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::machine::{Event, Limits, step};

    fn copying() -> Migration {
        let mut m = Migration::new("m1", 7, 1, 2, Limits::default(), 0);
        step(&mut m, Event::Start, 1).unwrap();
        step(&mut m, Event::Prepared { token: 40, source_log_pos: 10 }, 2).unwrap();
        m
    }

    /// The route follows the phase: copy-on-read only while copying,
    /// through pauses, none once the migration leaves the source.
    #[test]
    fn the_route_follows_the_phase() {
        let mut m = Migration::new("m1", 7, 1, 2, Limits::default(), 0);
        assert_eq!(desired(&m), None, "no token yet");
        m = copying();
        let route = desired(&m).unwrap();
        assert_eq!((route.target, route.token, route.migration.as_str()), (2, 40, "m1"));
        assert!(route.modes.copy_on_read && route.modes.dual_write);
        step(&mut m, Event::Pause { reason: "op".into() }, 3).unwrap();
        assert_eq!(desired(&m), Some(route.clone()), "a paused copy keeps its route");
        step(&mut m, Event::Resume, 4).unwrap();
        step(&mut m, Event::ChunkCopied { cursor: None, keys: 1, bytes: 1, done: true }, 5).unwrap();
        let catching_up = desired(&m).unwrap();
        assert!(!catching_up.modes.copy_on_read && catching_up.modes.dual_write);
        step(&mut m, Event::Failed { error: "x".into() }, 6).unwrap();
        assert_eq!(desired(&m), None);
    }

    #[test]
    fn modes_all_off_need_no_route() {
        let mut m = copying();
        m.modes.route = Modes { copy_on_read: true, ..Modes::OFF };
        assert!(desired(&m).is_some());
        step(&mut m, Event::ChunkCopied { cursor: None, keys: 1, bytes: 1, done: true }, 5).unwrap();
        assert_eq!(desired(&m), None, "copy-on-read was the only mode, and the copy is done");
    }

    #[test]
    fn shadow_mismatches_above_the_threshold_refuse_the_cutover() {
        let modes = MigrationModes::default();
        let counts = |compared, mismatched| ShadowCounts { compared, lagging: 0, mismatched };
        assert!(shadow_check(&counts(0, 0), &modes).is_ok());
        assert!(shadow_check(&counts(50, 50), &modes).is_ok(), "too few compared to judge");
        assert!(shadow_check(&counts(10_000, 10), &modes).is_ok(), "0.001 is allowed");
        let refused = shadow_check(&counts(10_000, 11), &modes).unwrap_err();
        assert!(refused.contains("11 of 10000"), "{refused}");
    }

    #[test]
    fn figures_never_go_backwards() {
        let a = MirrorCounts { dual_writes: 5, shadow: ShadowCounts { compared: 9, lagging: 1, mismatched: 0 }, ..Default::default() };
        let b = MirrorCounts { dual_writes: 2, dropped: 3, shadow: ShadowCounts { compared: 4, lagging: 2, mismatched: 1 }, ..Default::default() };
        let m = most(&a, &b);
        assert_eq!((m.dual_writes, m.dropped, m.shadow.compared, m.shadow.lagging, m.shadow.mismatched), (5, 3, 9, 2, 1));
    }

    async fn table(meta: &dyn MetaStore) -> (evenkeel_types::RoutingTable, u64) {
        let kv = meta.get(keys::ROUTING).await.unwrap().unwrap();
        (evenkeel_types::RoutingTable::from_json(&kv.value).unwrap(), kv.mod_revision)
    }

    /// The compare-and-swap helper sets and clears only this migration's
    /// route on the source's entry, writes nothing when the route is
    /// already right, never changes the entry's epoch, and does nothing
    /// for a driver that no longer holds the partition lock.
    #[tokio::test]
    async fn ensure_and_clear_touch_only_this_migrations_route() {
        let meta = evenkeel_meta::EmbeddedStore::in_memory();
        let bootstrap = evenkeel_types::RoutingTable::bootstrap(8, &[1, 2]).unwrap();
        meta.put(keys::ROUTING, bootstrap.to_json(), None).await.unwrap();
        let lease = meta.grant_lease(std::time::Duration::from_secs(60)).await.unwrap();
        let lock = meta.lock(&keys::partition_lock_key(7), lease, std::time::Duration::from_secs(1)).await.unwrap();
        let d = Driver { meta: meta.clone(), clients: Default::default(), lease, config: Default::default(), throttle: Default::default(), flips: Default::default() };
        let mut m = copying();
        (m.source, m.token) = (bootstrap.entry(7).unwrap().owner, Some(lock.fencing_token));
        m.target = 3 - m.source;
        let zombie = Migration { token: Some(lock.fencing_token - 1), ..m.clone() };
        ensure(&d, &zombie).await;
        assert_eq!(table(meta.as_ref()).await.0, bootstrap, "a stale token sets nothing");
        ensure(&d, &m).await;
        let (t, rev) = table(meta.as_ref()).await;
        assert_eq!(t.route(7), desired(&m).as_ref());
        assert_eq!((t.epoch, t.partitions[7].epoch), (2, 1), "the table's epoch moves, the entry's stays");
        ensure(&d, &m).await;
        assert_eq!(table(meta.as_ref()).await.1, rev, "nothing to change, nothing written");
        let other = Migration { id: "m2".into(), ..m.clone() };
        clear(&d, &other).await.unwrap_or_else(|f| panic!("{f:?}"));
        assert!(table(meta.as_ref()).await.0.route(7).is_some(), "another migration's route stays");
        clear(&d, &m).await.unwrap_or_else(|f| panic!("{f:?}"));
        let (t, _) = table(meta.as_ref()).await;
        assert_eq!((t.route(7), t.epoch, t.partitions[7].epoch), (None, 3, 1));
        // Once flipped, the entry is the destination's: nothing to set.
        let flipped = t.with_owner(7, m.target);
        meta.put(keys::ROUTING, flipped.to_json(), None).await.unwrap();
        ensure(&d, &m).await;
        assert_eq!(table(meta.as_ref()).await.0, flipped);
    }

    /// Migration records stored before modes existed read back with the
    /// defaults; modes written by the API round-trip.
    #[test]
    fn modes_are_backwards_compatible() {
        let mut json = serde_json::to_value(copying()).unwrap();
        let fields = json.as_object_mut().unwrap();
        for f in ["modes", "mirror", "catch_up", "drain"] {
            fields.remove(f).unwrap();
        }
        let old: Migration = serde_json::from_value(json).unwrap();
        assert_eq!(old.modes, MigrationModes::default());
        let modes: MigrationModes = serde_json::from_str(r#"{"dual_write": false, "shadow_read_ratio": 0.5}"#).unwrap();
        assert_eq!((modes.route.dual_write, modes.route.shadow_read_ratio, modes.route.copy_on_read), (false, 0.5, true));
        assert!(MigrationModes { shadow_mismatch_ratio_max: 2.0, ..modes }.validate().is_err());
    }
}
