//! Cutover and rollback: moving ownership with a bounded pause.
//!
//! Cutover: fence the source (it refuses reads and writes), drain its last
//! changes to the destination, compare checksums under the fence, record the
//! destination's log position (reverse capture starts there), flip the owner
//! in the routing table by compare-and-swap, then unfence the destination
//! with a grant of the new epoch. If the drain or check does not fit the
//! pause budget, the source is unfenced and the migration catches up again.
//! The source stays fenced after a successful flip until it sees the new
//! table, so a router with the old table cannot read a stale value there.
//!
//! Rollback is the same dance in the other direction, draining the
//! destination's changes made since cutover back to the source.

use super::driver::{Driver, apply_failure, checksum, client, elapsed_ms, header, routing, set_owner, ship_log};
use super::machine::{Event, Migration, Shipped};
use crate::failpoints::{self, hit};
use evenkeel_rpc::pb;
use evenkeel_types::NodeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Outcome = super::driver::Outcome;

async fn fence(d: &Driver, m: &Migration, node: NodeId, fenced: bool, grant_epoch: u64) -> Result<pb::PositionResponse, super::driver::Failure> {
    let req = pb::FenceRequest { header: header(m), fenced, grant_epoch };
    Ok(client(d, node).await?.migrate_fence(req).await.map_err(apply_failure)?.into_inner())
}

/// Ships `from_node`'s log from `from` to `to_node` until it reaches `end`,
/// adding what it shipped to `tally`. Returns None if the log was truncated
/// under us.
async fn drain(d: &Driver, m: &Migration, from_node: NodeId, to_node: NodeId, from: u64, end: u64, tally: &mut Shipped) -> Result<Option<u64>, super::driver::Failure> {
    let mut at = from;
    while at < end {
        let (page, _, shipped) = ship_log(d, m, from_node, to_node, at, true).await?;
        tally.add(shipped.entries, shipped.applied);
        if page.truncated {
            return Ok(None);
        }
        at = page.next;
    }
    Ok(Some(at))
}

pub(super) async fn cutover(d: &Driver, m: &mut Migration, from: u64) -> Outcome {
    let (table, _) = routing(d).await?;
    if table.entry(m.partition).is_some_and(|e| e.owner == m.target) {
        // A previous attempt flipped the table before a crash; finish it.
        // The destination may have served writes since (it follows the
        // table), so reverse capture starts where verification saw its log,
        // not where it is now.
        let epoch = table.entry(m.partition).expect("checked").epoch;
        hit(failpoints::CUTOVER_UNFENCE)?;
        fence(d, m, m.target, false, epoch).await?;
        return Ok(Some(Event::CutoverDone { pause_ms: m.cutover_pause_ms.unwrap_or(0), reverse_log_pos: m.reverse_log_pos }));
    }
    let started = Instant::now();
    let end = fence(d, m, m.source, true, 0).await?.log_next;
    hit(failpoints::CUTOVER_FENCED)?;
    // The drain and the check get what is left of the budget after the
    // flip's share, and no more: past it the source is unfenced at once,
    // not when they finish. The flip cannot be abandoned once started, so
    // its share is set aside up front; that keeps the whole pause inside
    // the budget (G8), not just the part that can be cut short.
    let budget = Duration::from_millis(d.config.pause_budget_ms);
    let checks = budget.saturating_sub(started.elapsed()).saturating_sub(d.flips.reserve(budget));
    let mut drained = Shipped::default();
    let checked = tokio::time::timeout(checks, drain_and_check(d, m, from, end, &mut drained)).await;
    // What the drain found to apply: with dual-writes, most of it was
    // already on the destination.
    m.drain = drained;
    let checked = match checked {
        Ok(result) => result,
        Err(_) => {
            fence(d, m, m.source, false, 0).await?;
            tracing::info!(migration = %m.id, elapsed_ms = elapsed_ms(started), "cutover over budget; catching up again");
            return Ok(Some(Event::CutoverTimedOut));
        }
    };
    let reverse_from = match checked {
        Ok(Checked::Matched { target_log_next }) => target_log_next,
        Ok(Checked::Ended(event)) => {
            fence(d, m, m.source, false, 0).await?;
            return Ok(Some(event));
        }
        Err(f) => {
            // Do not leave clients paused while the driver retries.
            let _ = fence(d, m, m.source, false, 0).await;
            return Err(f);
        }
    };
    hit(failpoints::CUTOVER_DRAINED)?;
    let flip_started = Instant::now();
    let epoch = set_owner(d, m, m.target).await?;
    hit(failpoints::CUTOVER_FLIPPED)?;
    hit(failpoints::CUTOVER_UNFENCE)?;
    fence(d, m, m.target, false, epoch).await?;
    d.flips.observe(flip_started.elapsed());
    let pause_ms = elapsed_ms(started);
    metrics::histogram!("evenkeel_migration_cutover_pause_seconds").record(pause_ms as f64 / 1000.0);
    tracing::info!(migration = %m.id, partition = m.partition, pause_ms, epoch, "cutover done");
    Ok(Some(Event::CutoverDone { pause_ms, reverse_log_pos: reverse_from }))
}

/// How the checks under the fence ended.
enum Checked {
    /// Both sides match; the destination's log ends at `target_log_next`.
    /// Nothing writes to the destination until it is unfenced after the
    /// flip (routers' late dual-writes and copy-on-read pushes still
    /// arrive, but carry records the drain already delivered, which a
    /// versioned apply neither applies nor logs), so reverse capture starts
    /// there and misses nothing the destination serves.
    Matched { target_log_next: u64 },
    /// The attempt ends with this event instead of a flip.
    Ended(Event),
}

/// Under the fence: drains the source's last changes and compares both
/// sides' running digests (concurrently, O(1) each).
async fn drain_and_check(d: &Driver, m: &Migration, from: u64, end: u64, drained: &mut Shipped) -> Result<Checked, super::driver::Failure> {
    if drain(d, m, m.source, m.target, from, end, drained).await?.is_none() {
        return Ok(Checked::Ended(Event::LogTruncated { source_log_pos: end }));
    }
    let (src, dst) = tokio::try_join!(checksum(d, m, m.source, false), checksum(d, m, m.target, false))?;
    if (src.keys, src.digest) != (dst.keys, dst.digest) {
        let error = format!("checksums differ under fence: source {} keys, destination {} keys", src.keys, dst.keys);
        return Ok(Checked::Ended(Event::Failed { error }));
    }
    Ok(Checked::Matched { target_log_next: dst.log_next })
}

/// A running estimate of how long a flip takes (routing-table CAS, with its
/// metadata fsync, and the destination's unfence): the slowest of recent
/// flips, decaying by a fifth per cutover so one slow disk moment does not
/// shrink every later drain's share for good.
#[derive(Debug)]
pub struct FlipEstimate(AtomicU64);

/// The estimate before any flip was seen.
const FLIP_START_US: u64 = 10_000;

impl Default for FlipEstimate {
    fn default() -> Self {
        FlipEstimate(AtomicU64::new(FLIP_START_US))
    }
}

impl FlipEstimate {
    /// The share of `budget` to set aside for the flip: the estimate, at
    /// most half the budget (the drain needs some too).
    pub fn reserve(&self, budget: Duration) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed)).min(budget / 2)
    }

    pub fn observe(&self, took: Duration) {
        let took = took.as_micros() as u64;
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some(took.max(old - old / 5)));
    }
}

pub(super) async fn roll_back(d: &Driver, m: &Migration, from: u64) -> Outcome {
    let (table, _) = routing(d).await?;
    if table.entry(m.partition).is_some_and(|e| e.owner == m.source) {
        // Never flipped (or already flipped back): the source just resumes.
        let epoch = table.entry(m.partition).expect("checked").epoch;
        fence(d, m, m.source, false, epoch).await?;
        return Ok(Some(Event::RolledBack));
    }
    let end = fence(d, m, m.target, true, 0).await?.log_next;
    hit(failpoints::ROLLBACK_FENCED)?;
    if drain(d, m, m.target, m.source, from, end, &mut Shipped::default()).await?.is_none() {
        return Err(super::driver::Failure::Permanent("destination log truncated; rollback would lose writes".into()));
    }
    let epoch = set_owner(d, m, m.source).await?;
    hit(failpoints::ROLLBACK_FLIPPED)?;
    fence(d, m, m.source, false, epoch).await?;
    tracing::info!(migration = %m.id, partition = m.partition, epoch, "rolled back");
    Ok(Some(Event::RolledBack))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flip_reserve_follows_slow_flips_and_decays() {
        let f = FlipEstimate::default();
        let budget = Duration::from_millis(50);
        assert_eq!(f.reserve(budget), Duration::from_millis(10));
        f.observe(Duration::from_millis(18));
        assert_eq!(f.reserve(budget), Duration::from_millis(18), "a slower flip raises it at once");
        f.observe(Duration::from_millis(2));
        assert_eq!(f.reserve(budget), Duration::from_micros(14_400), "faster ones bring it down by a fifth each");
        f.observe(Duration::from_millis(40));
        assert_eq!(f.reserve(budget), Duration::from_millis(25), "never more than half the budget");
    }
}
