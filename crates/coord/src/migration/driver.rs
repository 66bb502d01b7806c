//! Performing a migration's actions and feeding the results back.
//!
//! [`drive`] loads a migration, re-derives the work its stored phase implies
//! ([`machine::resume_actions`]), and then loops: perform an action against
//! the nodes or the metadata store, turn the outcome into an [`Event`], step
//! the machine, persist the new state by compare-and-swap on its revision
//! (so a coordinator that lost leadership cannot overwrite its successor),
//! and only then start the actions the step returned. A crash anywhere
//! leaves a stored state whose resume actions redo at most one idempotent
//! action.
//!
//! A driver starting on stored state first takes the partition lock again
//! under its own lease ([`machine::restart_actions`]) and has both nodes
//! admit the new token, so a previous coordinator that stalled past its
//! lease (a zombie) is refused by the nodes from then on; the routing table
//! is guarded by checking the lock before its compare-and-swap (G10).
//!
//! Node calls that fail transiently are retried with backoff up to
//! `attempts_max`; then the migration fails (before cutover: the destination
//! is cleaned and the source keeps serving). A node refusing our fencing
//! token means another coordinator has taken over: the driver stops.
//!
//! Every state boundary has a failpoint ([`crate::failpoints`]); one firing
//! as a crash makes the driver return at once, cleaning nothing up.
//!
//! The partition's routing mode ([`super::route`]) follows the stored state:
//! whenever a persisted step changes the route it calls for, the driver
//! applies it to the routing table (best effort: routes are advisory), and
//! once when it starts.

use super::machine::{self, Action, Event, Migration, Phase, Shipped};
use crate::clients::NodeClients;
use crate::failpoints::{self, Crashed};
use evenkeel_meta::{CasOutcome, Compare, HeldOutcome, LeaseId, Lock, MetaError, MetaStore, Revision};
use evenkeel_rpc::pb;
use evenkeel_types::{NodeId, PartitionId, RoutingTable, keys, unix_ms};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub chunk_keys: u32,
    pub chunk_bytes: u64,
    /// Longest the source may stay fenced at cutover.
    pub pause_budget_ms: u64,
    /// How often reverse capture runs during bake.
    pub reverse_interval: Duration,
    /// Transient failures of one action before the migration fails.
    pub attempts_max: u32,
    /// Verification mismatches with nothing left to apply before failing.
    pub mismatches_max: u32,
    /// Progress inside a phase (copy cursor, log positions) is persisted at
    /// most this often; phase changes always at once. A crash redoes at most
    /// this much idempotent work, and the metadata store is not fsynced per
    /// chunk.
    pub checkpoint_interval: Duration,
    /// The same for reverse capture's progress during bake. A crash
    /// re-applies at most this much (idempotent; the destination's change
    /// log keeps far more), and a rebalance bakes dozens of migrations at
    /// once: at one write a second each, the metadata store fsynced 31
    /// times a second all bake long (7x its rate outside a rebalance), on
    /// the runtime that serves clients.
    pub bake_checkpoint_interval: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            // Small chunks keep each burst of migration work short, so the
            // throttle's pacing is smooth and foreground requests queued
            // behind a chunk wait little.
            chunk_keys: 500,
            chunk_bytes: 256 << 10,
            pause_budget_ms: 50,
            // Each baking migration polls once per interval; at 100 ms, the
            // 10–30 migrations of a rebalance that bake at once cost
            // foreground latency for the whole bake, and 1 s of lag is
            // nothing for a rollback's drain.
            reverse_interval: Duration::from_secs(1),
            attempts_max: 30,
            mismatches_max: 3,
            checkpoint_interval: Duration::from_secs(1),
            bake_checkpoint_interval: Duration::from_secs(10),
        }
    }
}

/// Why a driver stopped without reaching a terminal phase.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("migration {0} not found")]
    NotFound(String),
    #[error("migration record is unreadable: {0}")]
    Corrupt(String),
    #[error("another coordinator changed migration {0}; stopping")]
    Superseded(String),
    #[error("fencing token refused: {0}")]
    Fenced(String),
    #[error("state machine rejected an event: {0}")]
    Step(#[from] machine::StepError),
    /// A failpoint simulated a crash here (tests only).
    #[error("crashed at failpoint {0}")]
    Crashed(&'static str),
}

impl From<Crashed> for DriveError {
    fn from(c: Crashed) -> Self {
        DriveError::Crashed(c.0)
    }
}

/// What a driver needs; shared by all migrations of one leader term.
pub struct Driver {
    pub meta: Arc<dyn MetaStore>,
    pub clients: Arc<NodeClients>,
    /// The leader lease; partition locks are held under it.
    pub lease: LeaseId,
    pub config: DriverConfig,
    /// Paces copy, catch-up and drop traffic (the disruption budget).
    pub throttle: Arc<crate::throttle::Throttle>,
    /// How long recent cutovers took from the checks to the unfenced
    /// destination; the drain leaves this much of the pause budget for it.
    pub flips: super::cutover::FlipEstimate,
}

/// Why one action did not produce an event.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth retrying (node unreachable, not ready yet).
    Transient(String),
    /// Retrying will not help; the migration fails with this error.
    Permanent(String),
    Fenced(String),
    /// A failpoint simulated a crash; nothing more may happen.
    Crashed(&'static str),
}

impl From<Crashed> for Failure {
    fn from(c: Crashed) -> Self {
        Failure::Crashed(c.0)
    }
}

pub(super) type Outcome = Result<Option<Event>, Failure>;

pub(super) fn apply_failure(s: tonic::Status) -> Failure {
    match s.code() {
        tonic::Code::Aborted => Failure::Fenced(s.message().to_string()),
        tonic::Code::InvalidArgument => Failure::Permanent(s.message().to_string()),
        _ => Failure::Transient(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// Runs migration `id` until it reaches a terminal phase whose cleanup is
/// done, or pauses, or waits for approval. Returns the phase it stopped in.
pub async fn drive(d: Arc<Driver>, id: String, mut inbox: tokio::sync::mpsc::Receiver<Event>) -> Result<Phase, DriveError> {
    let (mut m, rev) = load(d.meta.as_ref(), &id).await?;
    let mut rev = Saved { rev, at: Instant::now(), dirty: false };
    let mut queue: VecDeque<Action> = machine::restart_actions(&m).into();
    // A crash may have come between a persisted step and its route.
    super::route::ensure(&d, &m).await;
    if m.phase == Phase::Pending {
        queue.extend(machine::step(&mut m, Event::Start, unix_ms())?);
        rev.rev = save(d.meta.as_ref(), &m, rev.rev).await?;
    }
    let mut mismatches = 0;
    loop {
        // Operator requests go first; the machine decides what they mean
        // in the current phase (a pause stops new work after this action).
        while let Ok(e) = inbox.try_recv() {
            rev = apply_event(&d, &mut m, rev, e, &mut queue).await?;
        }
        let Some(action) = queue.pop_front() else {
            match idle_event(&d, &m, &mut inbox).await? {
                Some(e) => {
                    rev = apply_event(&d, &mut m, rev, e, &mut queue).await?;
                    continue;
                }
                None => {
                    if rev.dirty {
                        save(d.meta.as_ref(), &m, rev.rev).await?;
                    }
                    return Ok(m.phase);
                }
            }
        };
        let event = match perform_with_retries(&d, &mut m, &action).await {
            Ok(Some(e @ Event::Verified { matched: false, .. })) => verify_failed(&mut mismatches, &d, e),
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(Failure::Fenced(e)) => return Err(DriveError::Fenced(e)),
            Err(Failure::Crashed(point)) => return Err(DriveError::Crashed(point)),
            Err(Failure::Permanent(e) | Failure::Transient(e)) => Event::Failed { error: format!("{action:?}: {e}") },
        };
        rev = apply_event(&d, &mut m, rev, event, &mut queue).await?;
    }
}

/// The revision the driver last wrote, when, and whether the in-memory
/// state has progress not yet stored.
struct Saved {
    rev: Revision,
    at: Instant,
    dirty: bool,
}

/// Steps the machine and persists the result before queueing its actions.
/// Progress within a phase is persisted at most every `checkpoint_interval`
/// (`bake_checkpoint_interval` for reverse capture; the work is idempotent,
/// so a crash only redoes it). An event the phase
/// no longer accepts (a chunk finishing after a pause) is dropped: its work
/// is idempotent and will be redone on resume.
async fn apply_event(d: &Driver, m: &mut Migration, saved: Saved, event: Event, queue: &mut VecDeque<Action>) -> Result<Saved, DriveError> {
    let phase = m.phase;
    let route = super::route::desired(m);
    let progress = match event {
        Event::ChunkCopied { .. } | Event::CaughtUp { .. } => Some(d.config.checkpoint_interval),
        Event::ReverseCaughtUp { .. } => Some(d.config.bake_checkpoint_interval),
        _ => None,
    };
    match machine::step(m, event, unix_ms()) {
        Ok(actions) => {
            queue.extend(actions);
            if progress.is_some_and(|every| m.phase == phase && saved.at.elapsed() < every) {
                return Ok(Saved { dirty: true, ..saved });
            }
            let rev = save(d.meta.as_ref(), m, saved.rev).await?;
            if super::route::desired(m) != route {
                super::route::ensure(d, m).await;
            }
            Ok(Saved { rev, at: Instant::now(), dirty: false })
        }
        Err(e) => {
            tracing::info!(migration = %m.id, error = %e, "event dropped");
            Ok(saved)
        }
    }
}

/// Mismatches with nothing left to apply (or shadow reads over their
/// threshold) mean divergence: after a few the migration fails rather than
/// loop forever.
fn verify_failed(mismatches: &mut u32, d: &Driver, verified: Event) -> Event {
    *mismatches += 1;
    match verified {
        Event::Verified { detail, .. } if *mismatches >= d.config.mismatches_max => Event::Failed { error: format!("verification failed {mismatches} times: {detail}") },
        other => other,
    }
}

/// The event that moves an idle migration on: bake ticks and reverse capture
/// while COMPLETED; an operator's request while paused or awaiting approval;
/// nothing once terminal (the driver then ends).
async fn idle_event(d: &Driver, m: &Migration, inbox: &mut tokio::sync::mpsc::Receiver<Event>) -> Result<Option<Event>, DriveError> {
    if m.phase.is_terminal() {
        return Ok(None);
    }
    if m.phase != Phase::Completed {
        return Ok(inbox.recv().await);
    }
    tokio::select! {
        e = inbox.recv() => if e.is_some() { return Ok(e) },
        _ = tokio::time::sleep(d.config.reverse_interval) => {}
    }
    if m.bake_until_ms.is_some_and(|t| unix_ms() >= t) {
        return Ok(Some(Event::Tick));
    }
    match reverse_capture(d, m, m.reverse_log_pos).await {
        Ok(Some(e)) => Ok(Some(e)),
        // A successor owns the migration, or a simulated crash: stop as
        // the action loop does rather than capture again every tick.
        Err(Failure::Fenced(e)) => Err(DriveError::Fenced(e)),
        Err(Failure::Crashed(point)) => Err(DriveError::Crashed(point)),
        // Anything else is retried at the next tick.
        _ => Ok(Some(Event::Tick)),
    }
}

async fn perform_with_retries(d: &Driver, m: &mut Migration, action: &Action) -> Outcome {
    let mut backoff = Duration::from_millis(20);
    for attempt in 1..=d.config.attempts_max {
        match perform(d, m, action).await {
            Err(Failure::Transient(e)) if attempt < d.config.attempts_max => {
                tracing::warn!(migration = %m.id, ?action, attempt, error = %e, "retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

async fn perform(d: &Driver, m: &mut Migration, action: &Action) -> Outcome {
    match action {
        Action::Prepare => prepare(d, m).await,
        Action::CopyChunk { cursor } => copy_chunk(d, m, cursor.clone()).await,
        Action::CatchUp { from_pos } => catch_up(d, m, *from_pos).await,
        Action::Verify => verify(d, m).await,
        Action::Cutover { from_pos } => super::cutover::cutover(d, m, *from_pos).await,
        Action::ReverseCapture { from_pos } => reverse_capture(d, m, *from_pos).await,
        Action::DropSource => drop_all(d, m, m.source).await.map(|()| Some(Event::Cleaned)),
        Action::RollBack { from_pos } => super::cutover::roll_back(d, m, *from_pos).await,
        Action::Abort => abort(d, m).await,
        Action::ReleaseLock => release(d, m).await,
        Action::Relock => relock(d, m).await,
    }
}

pub(super) fn header(m: &Migration) -> Option<pb::MigrateHeader> {
    Some(pb::MigrateHeader { partition: m.partition as u32, token: m.token.unwrap_or(0) })
}

pub(super) async fn client(d: &Driver, node: NodeId) -> Result<evenkeel_rpc::NodeClient, Failure> {
    d.clients.for_id(d.meta.as_ref(), node).await.map_err(Failure::Transient)
}

/// Takes the partition's migration lock under this driver's lease, or finds
/// it already ours: a driver restarted within one leader term meets its
/// predecessor's lock, and locks are not re-entrant.
async fn partition_lock(d: &Driver, partition: PartitionId) -> Result<Lock, Failure> {
    let key = keys::partition_lock_key(partition);
    let transient = |e: MetaError| Failure::Transient(format!("partition lock: {e}"));
    if let Some(kv) = d.meta.get(&key).await.map_err(transient)?.filter(|kv| kv.lease == Some(d.lease)) {
        return Ok(Lock { key, lease: d.lease, fencing_token: kv.create_revision });
    }
    d.meta.lock(&key, d.lease, Duration::from_secs(10)).await.map_err(transient)
}

/// Makes this driver the migration's only one: holds the lock and, if its
/// token is newer than the stored one, has both nodes admit it before any
/// phase work, so they refuse a predecessor still running somewhere.
async fn relock(d: &Driver, m: &Migration) -> Outcome {
    let lock = partition_lock(d, m.partition).await?;
    if m.token == Some(lock.fencing_token) {
        return Ok(None);
    }
    let header = pb::MigrateHeader { partition: m.partition as u32, token: lock.fencing_token };
    for node in [m.source, m.target] {
        client(d, node).await?.migrate_begin(header).await.map_err(apply_failure)?;
    }
    tracing::info!(migration = %m.id, token = lock.fencing_token, previous = ?m.token, "took the migration over");
    Ok(Some(Event::Relocked { token: lock.fencing_token }))
}

async fn prepare(d: &Driver, m: &mut Migration) -> Outcome {
    let lock = partition_lock(d, m.partition).await?;
    m.token = Some(lock.fencing_token);
    let source_pos = client(d, m.source).await?.migrate_begin(header(m).expect("set")).await.map_err(apply_failure)?.into_inner();
    client(d, m.target).await?.migrate_begin(header(m).expect("set")).await.map_err(apply_failure)?;
    Ok(Some(Event::Prepared { token: lock.fencing_token, source_log_pos: source_pos.log_next }))
}

async fn copy_chunk(d: &Driver, m: &Migration, cursor: Option<bytes::Bytes>) -> Outcome {
    let req = pb::SnapshotRequest { header: header(m), cursor, max_keys: d.config.chunk_keys, max_bytes: d.config.chunk_bytes };
    let chunk = client(d, m.source).await?.migrate_snapshot(req).await.map_err(apply_failure)?.into_inner();
    let keys = chunk.records.len() as u64;
    apply(d, m, m.target, chunk.records, false).await?;
    failpoints::hit(failpoints::COPY_CHUNK)?;
    metrics::counter!("evenkeel_migration_copied_bytes_total").increment(chunk.bytes);
    d.throttle.pace(m, chunk.bytes, keys).await;
    Ok(Some(Event::ChunkCopied { done: chunk.cursor.is_none(), cursor: chunk.cursor, keys, bytes: chunk.bytes }))
}

/// Applies `records` on `node`; returns how many it did not already hold.
pub(super) async fn apply(d: &Driver, m: &Migration, node: NodeId, records: Vec<pb::KeyRecord>, urgent: bool) -> Result<u64, Failure> {
    if records.is_empty() {
        return Ok(0);
    }
    let req = pb::ApplyRequest { header: header(m), records, urgent, forwarded: false };
    Ok(client(d, node).await?.migrate_apply(req).await.map_err(apply_failure)?.into_inner().applied as u64)
}

/// Copies one page of `from_node`'s change log from `from` to `to_node`.
/// Returns the log page (its entries already applied and taken out), the
/// bytes of keys and values it moved, and how many entries it shipped and
/// `to_node` applied. `urgent`: the drain under a fence, which nodes run
/// ahead of their background lane.
pub(super) async fn ship_log(d: &Driver, m: &Migration, from_node: NodeId, to_node: NodeId, from: u64, urgent: bool) -> Result<(pb::ReadLogResponse, u64, Shipped), Failure> {
    let req = pb::ReadLogRequest { header: header(m), from, max: d.config.chunk_keys, urgent, max_bytes: d.config.chunk_bytes };
    let mut page = client(d, from_node).await?.migrate_read_log(req).await.map_err(apply_failure)?.into_inner();
    let (mut bytes, mut shipped) = (0, Shipped::default());
    if !page.truncated {
        let records: Vec<pb::KeyRecord> = std::mem::take(&mut page.entries).into_iter().filter_map(|e| e.record).collect();
        bytes = records.iter().map(|r| (r.key.len() + r.value.len()) as u64).sum();
        let entries = records.len() as u64;
        shipped.add(entries, apply(d, m, to_node, records, urgent).await?);
    }
    Ok((page, bytes, shipped))
}

async fn catch_up(d: &Driver, m: &mut Migration, from: u64) -> Outcome {
    let (page, bytes, shipped) = ship_log(d, m, m.source, m.target, from, false).await?;
    failpoints::hit(failpoints::CATCH_UP_PAGE)?;
    m.catch_up.add(shipped.entries, shipped.applied);
    if page.truncated {
        return Ok(Some(Event::LogTruncated { source_log_pos: page.log_next }));
    }
    d.throttle.pace_catch_up(m, bytes, page.next.saturating_sub(from), page.log_next, page.next).await;
    Ok(Some(Event::CaughtUp { applied_pos: page.next, lag: page.log_next.saturating_sub(page.next) }))
}

/// Compares checksums without fencing: the destination's computed by
/// scanning its stored records (the copy read back, not just the writes'
/// running digest), the source's from its running digest (O(1)). A
/// difference is expected while the source has changes the destination has
/// not applied yet, including changes made during the scan (a dual-write
/// can carry one to the destination before the scan reaches it): the
/// source's log position is read again after the scan. Only a difference
/// with nothing left to apply counts as a mismatch. The authoritative
/// comparison happens under the fence at cutover, from both sides' O(1)
/// running digests.
///
/// The source is not scanned: its running digest was rebuilt from its
/// stored records when the node opened and is kept by every commit since
/// (a property test holds the two equal), and a scan there would read the
/// whole partition a second time on the node that serves it, right after
/// the snapshot read it once: about a fifth of the sources' bulk-thread CPU
/// in the acceptance rebalance (ARCHITECTURE.md, "Moving a partition").
///
/// Shadow reads check what the checksums cannot while writes go on: live
/// keys, compared version by version. Above their mismatch threshold the
/// verification fails too, before any client is paused by a fence.
async fn verify(d: &Driver, m: &mut Migration) -> Outcome {
    let src = checksum(d, m, m.source, false).await?;
    let dst = checksum(d, m, m.target, true).await?;
    let same = (src.keys, src.digest) == (dst.keys, dst.digest);
    let source_log_next = checksum(d, m, m.source, false).await?.log_next;
    let explained = source_log_next > m.applied_log_pos;
    let mut detail = format!("source {} keys, destination {} keys, {} changes unapplied", src.keys, dst.keys, source_log_next.saturating_sub(m.applied_log_pos));
    let live = super::route::totals(d.meta.as_ref()).await.map_err(|e| Failure::Transient(e.to_string()))?;
    m.mirror = super::route::most(&m.mirror, &live.get(&m.id).copied().unwrap_or_default());
    let shadow = super::route::shadow_check(&m.mirror.shadow, &m.modes);
    if let Err(why) = &shadow {
        detail = why.clone();
    }
    Ok(Some(Event::Verified { matched: (same || explained) && shadow.is_ok(), detail, target_log_pos: dst.log_next }))
}

/// The checksum of the migration's partition on `node`; `scan`: computed
/// from the stored records rather than read from the node's counters.
pub(super) async fn checksum(d: &Driver, m: &Migration, node: NodeId, scan: bool) -> Result<pb::ChecksumResponse, Failure> {
    let req = pb::ChecksumRequest { header: header(m), scan };
    Ok(client(d, node).await?.migrate_checksum(req).await.map_err(apply_failure)?.into_inner())
}

/// Pages one reverse capture ships at most, back to back, before it waits
/// for the next interval.
const REVERSE_PAGES_MAX: usize = 32;

/// Ships what the destination has logged since `from` back to the source:
/// page after page until none is left (at most [`REVERSE_PAGES_MAX`]), so a
/// partition written faster than a page per interval does not fall behind
/// all bake long (one page a second was 500 entries a second: a bake under
/// heavier writes left a rollback ever more to apply under its fence, and
/// past the log's retention it could no longer roll back at all).
async fn reverse_capture(d: &Driver, m: &Migration, from: u64) -> Outcome {
    let mut at = from;
    for _ in 0..REVERSE_PAGES_MAX {
        let (page, _, _) = ship_log(d, m, m.target, m.source, at, false).await?;
        failpoints::hit(failpoints::REVERSE_CAPTURE)?;
        if page.truncated {
            return Err(Failure::Transient(format!("destination log truncated below {at}; rollback would lose writes")));
        }
        at = page.next;
        if page.next >= page.log_next {
            break;
        }
    }
    Ok(Some(Event::ReverseCaughtUp { applied_pos: at }))
}

/// Drops the partition's copy on `node`: one request, which the node
/// serves in O(1) (it retires the partition and its compactions remove the
/// items), so nothing is paced against the migration's limits. Repeating it
/// after a crash finds nothing to drop.
async fn drop_all(d: &Driver, m: &Migration, node: NodeId) -> Result<(), Failure> {
    let mut c = client(d, node).await?;
    match c.migrate_drop(pb::DropRequest { header: header(m) }).await {
        Ok(r) => {
            tracing::info!(migration = %m.id, node, removed = r.get_ref().removed, "copy dropped");
            failpoints::hit(failpoints::DROPPED)?;
            Ok(())
        }
        // The node has not yet seen that it lost the partition.
        Err(s) if s.code() == tonic::Code::FailedPrecondition => Err(Failure::Transient(s.message().to_string())),
        Err(s) => Err(apply_failure(s)),
    }
}

async fn abort(d: &Driver, m: &Migration) -> Outcome {
    if m.token.is_some() {
        // Routers stop forwarding first; the drop closes the destination's
        // import anyway, so a forward still in flight cannot re-create it.
        super::route::clear(d, m).await?;
        let unfence = pb::FenceRequest { header: header(m), fenced: false, grant_epoch: 0 };
        client(d, m.source).await?.migrate_fence(unfence).await.map_err(apply_failure)?;
        failpoints::hit(failpoints::ABORT_UNFENCED)?;
        drop_all(d, m, m.target).await?;
    }
    Ok(Some(Event::Cleaned))
}

async fn release(d: &Driver, m: &Migration) -> Outcome {
    if let Some(token) = m.token {
        let lock = Lock { key: keys::partition_lock_key(m.partition), lease: d.lease, fencing_token: token };
        d.meta.unlock(&lock).await.map_err(|e| Failure::Transient(e.to_string()))?;
    }
    Ok(None)
}

/// Reads the routing table and its revision.
pub(super) async fn routing(d: &Driver) -> Result<(RoutingTable, Revision), Failure> {
    let kv = d.meta.get(keys::ROUTING).await.map_err(|e| Failure::Transient(e.to_string()))?.ok_or_else(|| Failure::Permanent("no routing table".into()))?;
    let table = RoutingTable::from_json(&kv.value).map_err(Failure::Permanent)?;
    Ok((table, kv.mod_revision))
}

/// Gives `partition` to `owner` under a new epoch, retrying the CAS if other
/// entries changed meanwhile. Returns the entry's epoch.
pub(super) async fn set_owner(d: &Driver, m: &Migration, owner: NodeId) -> Result<u64, Failure> {
    loop {
        let (table, rev) = routing(d).await?;
        let entry = table.entry(m.partition).ok_or_else(|| Failure::Permanent("partition not in table".into()))?;
        if entry.owner == owner {
            return Ok(entry.epoch);
        }
        let next = table.with_owner(m.partition, owner);
        if swap_routing(d, m, rev, &next).await? {
            return Ok(next.epoch);
        }
    }
}

/// Replaces the routing table stored at `rev` with `next` while this
/// driver holds the partition lock with the token it works under, in one
/// step of the metadata store (`MetaStore::compare_and_swap_holding`).
/// False: another change came first (read again and retry); `Fenced`: the
/// lock is lost. Nodes check tokens on every migration RPC, but the
/// routing table is a metadata key: without the lock in the same step, a
/// driver that stalled past its lease could flip the table after its
/// successor finished or rolled back.
pub(super) async fn swap_routing(d: &Driver, m: &Migration, rev: Revision, next: &RoutingTable) -> Result<bool, Failure> {
    let fenced = || Failure::Fenced(format!("partition {} lock is no longer held with token {:?}", m.partition, m.token));
    let token = m.token.ok_or_else(fenced)?;
    let lock = Lock { key: keys::partition_lock_key(m.partition), lease: d.lease, fencing_token: token };
    match d.meta.compare_and_swap_holding(&lock, keys::ROUTING, Compare::ModRevision(rev), Some(next.to_json()), None).await {
        Ok(HeldOutcome::Swapped(_)) => Ok(true),
        Ok(HeldOutcome::Conflict(_)) => Ok(false),
        Ok(HeldOutcome::LockLost(_)) => Err(fenced()),
        Err(e) => Err(Failure::Transient(e.to_string())),
    }
}

pub(super) fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

async fn load(meta: &dyn MetaStore, id: &str) -> Result<(Migration, Revision), DriveError> {
    let kv = meta.get(&keys::migration_key(id)).await?.ok_or_else(|| DriveError::NotFound(id.to_string()))?;
    let m = serde_json::from_slice(&kv.value).map_err(|e| DriveError::Corrupt(e.to_string()))?;
    Ok((m, kv.mod_revision))
}

/// Persists `m` if nobody changed it since `rev`; returns the new revision.
async fn save(meta: &dyn MetaStore, m: &Migration, rev: Revision) -> Result<Revision, DriveError> {
    failpoints::hit(failpoints::before_save(m.phase))?;
    let value = serde_json::to_vec(m).expect("migration serializes");
    let rev = match meta.compare_and_swap(&keys::migration_key(&m.id), Compare::ModRevision(rev), Some(value), None).await? {
        CasOutcome::Swapped(r) => r,
        CasOutcome::Conflict(_) => return Err(DriveError::Superseded(m.id.clone())),
    };
    failpoints::hit(failpoints::after_save(m.phase))?;
    Ok(rev)
}

/// Stores a new migration; fails if the id exists.
pub async fn create(meta: &dyn MetaStore, m: &Migration) -> Result<bool, MetaError> {
    let value = serde_json::to_vec(m).expect("migration serializes");
    Ok(matches!(meta.compare_and_swap(&keys::migration_key(&m.id), Compare::Absent, Some(value), None).await?, CasOutcome::Swapped(_)))
}
