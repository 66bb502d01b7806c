//! The migration state machine (DESIGN.md, "Migration of one partition").
//!
//! ```text
//! PENDING → PREPARING → COPYING → CATCHING_UP → READY_FOR_CUTOVER → CUTTING_OVER
//!         → COMPLETED → CLEANING_UP → DONE
//! any active state → PAUSED → (back);  → FAILED (destination cleaned, source keeps serving)
//! CUTTING_OVER / COMPLETED (during bake) → ROLLING_BACK → ROLLED_BACK
//! PENDING / active states → CANCELLED (as FAILED, by operator request)
//! ```
//!
//! Phase work is requested through [`Action`]s; its outcome comes back as an
//! [`Event`]. Events that do not apply to the current phase are rejected
//! with [`StepError`] and change nothing, so a late or duplicated result (a
//! chunk acknowledged twice after a crash) cannot corrupt the state.

pub use super::route::MigrationModes;
use bytes::Bytes;
use evenkeel_types::latency::MirrorCounts;
use evenkeel_types::{NodeId, PartitionId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    Pending,
    Preparing,
    Copying,
    CatchingUp,
    ReadyForCutover,
    CuttingOver,
    Completed,
    CleaningUp,
    Done,
    Paused,
    Failed,
    Cancelled,
    RollingBack,
    RolledBack,
}

impl Phase {
    /// Phases with no way out.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Cancelled | Phase::RolledBack)
    }

    /// Phases that may be paused, and that a failure aborts cleanly.
    fn is_pausable(self) -> bool {
        matches!(self, Phase::Preparing | Phase::Copying | Phase::CatchingUp | Phase::ReadyForCutover)
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Preparing => "PREPARING",
            Phase::Copying => "COPYING",
            Phase::CatchingUp => "CATCHING_UP",
            Phase::ReadyForCutover => "READY_FOR_CUTOVER",
            Phase::CuttingOver => "CUTTING_OVER",
            Phase::Completed => "COMPLETED",
            Phase::CleaningUp => "CLEANING_UP",
            Phase::Done => "DONE",
            Phase::Paused => "PAUSED",
            Phase::Failed => "FAILED",
            Phase::Cancelled => "CANCELLED",
            Phase::RollingBack => "ROLLING_BACK",
            Phase::RolledBack => "ROLLED_BACK",
        }
    }
}

/// Knobs the machine needs; time values in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CATCHING_UP ends when the change-log lag is at most this many entries.
    pub lag_entries_max: u64,
    /// COMPLETED lasts this long (reverse capture keeps the source current).
    pub bake_ms: u64,
    /// Cutover attempts that time out before the migration fails.
    pub cutover_attempts_max: u32,
    /// Whether READY_FOR_CUTOVER waits for an operator's approval.
    pub needs_approval: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { lag_entries_max: 64, bake_ms: 30_000, cutover_attempts_max: 10, needs_approval: false }
    }
}

/// The durable state of one migration; every field survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub id: String,
    pub partition: PartitionId,
    pub source: NodeId,
    pub target: NodeId,
    pub phase: Phase,
    /// The phase to return to when un-pausing.
    pub paused_from: Option<Phase>,
    pub pause_reason: Option<String>,
    /// Fencing token of the partition's migration lock.
    pub token: Option<u64>,
    /// Source change-log position the snapshot copy started at.
    pub snapshot_log_pos: u64,
    /// Resume cursor of the snapshot copy (last key copied); None = start.
    pub copy_cursor: Option<Bytes>,
    /// Source change-log position applied to the destination so far.
    pub applied_log_pos: u64,
    /// Destination change-log position reverse capture starts from. Until
    /// the flip it is the destination's position at the last verification:
    /// before it owns the partition the destination logs none of its
    /// writes (applied copies are not logged), so a cutover finished after
    /// a crash (or rolled back) loses nothing starting there, whatever the
    /// destination has served since the flip.
    pub reverse_log_pos: u64,
    pub keys_copied: u64,
    pub bytes_copied: u64,
    pub cutover_attempts: u32,
    pub cutover_pause_ms: Option<u64>,
    pub approved: bool,
    pub bake_until_ms: Option<u64>,
    pub error: Option<String>,
    /// Checksums matched in READY_FOR_CUTOVER.
    pub verified: bool,
    /// The abort or cleanup work of a terminal phase has finished.
    pub cleanup_done: bool,
    pub limits: Limits,
    /// Every phase entered, with the time.
    pub history: Vec<(Phase, u64)>,
    /// What routers do while the partition moves, and the shadow-read
    /// threshold verification applies (records written before modes
    /// existed take the defaults).
    #[serde(default)]
    pub modes: MigrationModes,
    /// Routers' mirrored traffic for this migration as of the last
    /// verification (or later, see [`super::route::totals`]).
    #[serde(default)]
    pub mirror: MirrorCounts,
    /// Source change-log entries shipped by catch-up, and how many of them
    /// the destination did not already hold (dual-writes make that few).
    #[serde(default)]
    pub catch_up: Shipped,
    /// The same for the last cutover attempt's drain under the fence.
    #[serde(default)]
    pub drain: Shipped,
}

/// Change-log entries shipped to the destination and how many it applied;
/// the rest it already held, delivered earlier by the copy or by routers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipped {
    pub entries: u64,
    pub applied: u64,
}

impl Shipped {
    pub fn add(&mut self, entries: u64, applied: u64) {
        self.entries += entries;
        self.applied += applied;
    }
}

/// An outcome reported by the driver, or an operator request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start,
    /// Lock taken, destination created as importing. Once COPYING is stored
    /// the driver sets the routing mode ([`super::route::desired`]).
    Prepared { token: u64, source_log_pos: u64 },
    /// A snapshot chunk was applied on the destination.
    ChunkCopied { cursor: Option<Bytes>, keys: u64, bytes: u64, done: bool },
    /// Change-log entries up to `applied_pos` are applied; `lag` remain.
    CaughtUp { applied_pos: u64, lag: u64 },
    /// The source no longer holds the change log from our position.
    LogTruncated { source_log_pos: u64 },
    /// Checksums compared (and shadow reads within threshold), with the
    /// destination's change-log position when its checksum was taken.
    Verified { matched: bool, detail: String, target_log_pos: u64 },
    Approved,
    /// Routing flipped to the target; the pause the source was fenced.
    CutoverDone { pause_ms: u64, reverse_log_pos: u64 },
    /// The drain did not finish in the pause budget; the source is unfenced.
    CutoverTimedOut,
    /// Reverse capture progress during bake.
    ReverseCaughtUp { applied_pos: u64 },
    Tick,
    Cleaned,
    RolledBack,
    Pause { reason: String },
    Resume,
    Cancel,
    Rollback,
    /// The phase's work failed for good (node gone past retries, mismatch).
    Failed { error: String },
    /// A new driver holds the partition lock under a newer fencing token
    /// and both nodes have admitted it.
    Relocked { token: u64 },
}

/// Work for the driver. The new state is persisted before any is performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take the lock, create the importing destination, record the source
    /// log position. (The routing mode is not an action: the driver keeps
    /// it in step with the stored phase, see [`super::route`].)
    Prepare,
    CopyChunk { cursor: Option<Bytes> },
    CatchUp { from_pos: u64 },
    Verify,
    /// Fence the source, drain from `from_pos`, CAS the routing table,
    /// unfence the destination; bounded by the pause budget.
    Cutover { from_pos: u64 },
    /// Keep applying the destination's changes to the source during bake.
    ReverseCapture { from_pos: u64 },
    /// Delete the source copy in the background, throttled.
    DropSource,
    /// Give the partition back to the source (fence target, drain reverse
    /// changes, CAS the table back, unfence the source).
    RollBack { from_pos: u64 },
    /// Abort: unfence the source, clear the routing mode, drop the
    /// destination copy (closing its import).
    Abort,
    ReleaseLock,
    /// Hold the partition lock under this driver's lease; if its token is
    /// new, have both nodes admit it (so they refuse the previous holder).
    Relock,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event} is not valid in phase {phase}")]
pub struct StepError {
    pub phase: &'static str,
    pub event: String,
}

impl Migration {
    pub fn new(id: impl Into<String>, partition: PartitionId, source: NodeId, target: NodeId, limits: Limits, now_ms: u64) -> Self {
        Migration {
            id: id.into(),
            partition,
            source,
            target,
            phase: Phase::Pending,
            paused_from: None,
            pause_reason: None,
            token: None,
            snapshot_log_pos: 0,
            copy_cursor: None,
            applied_log_pos: 0,
            reverse_log_pos: 0,
            keys_copied: 0,
            bytes_copied: 0,
            cutover_attempts: 0,
            cutover_pause_ms: None,
            approved: false,
            bake_until_ms: None,
            error: None,
            verified: false,
            cleanup_done: false,
            limits,
            history: vec![(Phase::Pending, now_ms)],
            modes: MigrationModes::default(),
            mirror: MirrorCounts::default(),
            catch_up: Shipped::default(),
            drain: Shipped::default(),
        }
    }

    /// Nothing is left to do: the phase is terminal and its cleanup done
    /// (DONE's lock release may be pending; a lapsed lease releases it).
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done || self.phase.is_terminal() && self.cleanup_done
    }

    fn enter(&mut self, phase: Phase, now_ms: u64) {
        self.phase = phase;
        self.history.push((phase, now_ms));
    }
}

type Stepped = Result<Vec<Action>, StepError>;

/// Applies `event` to `m` at `now_ms`. On error `m` is unchanged.
pub fn step(m: &mut Migration, event: Event, now_ms: u64) -> Stepped {
    let before = m.clone();
    let result = transition(m, &event, now_ms);
    if result.is_err() {
        *m = before;
    }
    result
}

fn reject(m: &Migration, event: &Event) -> Stepped {
    Err(StepError { phase: m.phase.name(), event: format!("{event:?}") })
}

fn transition(m: &mut Migration, event: &Event, now: u64) -> Stepped {
    use Phase as P;
    match (m.phase, event) {
        (_, Event::Pause { reason }) => pause(m, reason, now, event),
        (P::Paused, Event::Resume) => Ok(resume(m, now)),
        (_, Event::Cancel) => abort(m, P::Cancelled, None, now, event),
        (_, Event::Relocked { token }) if m.token.is_some_and(|t| t < *token) && !m.is_finished() => {
            m.token = Some(*token);
            Ok(vec![])
        }
        (_, Event::Failed { error }) => fail(m, error, now, event),
        (P::Pending, Event::Start) => {
            m.enter(P::Preparing, now);
            Ok(vec![Action::Prepare])
        }
        (P::Preparing, Event::Prepared { token, source_log_pos }) => {
            m.token = Some(*token);
            restart_copy(m, *source_log_pos, now)
        }
        (P::Copying, Event::ChunkCopied { cursor, keys, bytes, done }) => copied(m, cursor.clone(), *keys, *bytes, *done, now),
        (P::CatchingUp, Event::CaughtUp { applied_pos, lag }) => caught_up(m, *applied_pos, *lag, now, event),
        (P::CatchingUp | P::ReadyForCutover | P::CuttingOver, Event::LogTruncated { source_log_pos }) => restart_copy(m, *source_log_pos, now),
        (P::ReadyForCutover, Event::Verified { matched, detail, target_log_pos }) => Ok(verified(m, *matched, detail, *target_log_pos, now)),
        (P::ReadyForCutover, Event::Approved) => {
            m.approved = true;
            Ok(maybe_cut_over(m, now))
        }
        (P::CuttingOver, Event::CutoverDone { pause_ms, reverse_log_pos }) => Ok(cut_over(m, *pause_ms, *reverse_log_pos, now)),
        (P::CuttingOver, Event::CutoverTimedOut) if m.cutover_attempts >= m.limits.cutover_attempts_max => {
            let error = format!("cutover did not fit the pause budget in {} attempts", m.cutover_attempts);
            abort(m, P::Failed, Some(error), now, event)
        }
        (P::CuttingOver, Event::CutoverTimedOut) => {
            m.enter(P::CatchingUp, now);
            Ok(vec![Action::CatchUp { from_pos: m.applied_log_pos }])
        }
        (P::Completed, Event::ReverseCaughtUp { applied_pos }) if *applied_pos >= m.reverse_log_pos => {
            m.reverse_log_pos = *applied_pos;
            Ok(vec![])
        }
        (P::Completed, Event::Tick) if m.bake_until_ms.is_some_and(|t| now >= t) => {
            m.enter(P::CleaningUp, now);
            Ok(vec![Action::DropSource])
        }
        (_, Event::Tick) => Ok(vec![]),
        (P::CleaningUp, Event::Cleaned) => {
            m.cleanup_done = true;
            m.enter(P::Done, now);
            Ok(vec![Action::ReleaseLock])
        }
        (P::Failed | P::Cancelled | P::RolledBack, Event::Cleaned) => {
            m.cleanup_done = true;
            Ok(vec![])
        }
        (P::CuttingOver | P::Completed, Event::Rollback) => {
            m.enter(P::RollingBack, now);
            Ok(vec![Action::RollBack { from_pos: m.reverse_log_pos }])
        }
        (P::RollingBack, Event::RolledBack) => {
            m.enter(P::RolledBack, now);
            Ok(vec![Action::Abort, Action::ReleaseLock])
        }
        _ => reject(m, event),
    }
}

fn resume(m: &mut Migration, now: u64) -> Vec<Action> {
    let back = m.paused_from.take().expect("a paused migration remembers its phase");
    m.pause_reason = None;
    m.enter(back, now);
    resume_actions(m)
}

/// A match records where the destination's log stood (reverse capture of a
/// cutover finished after a crash starts there) and cuts over if approved;
/// a mismatch catches up again.
fn verified(m: &mut Migration, matched: bool, detail: &str, target_log_pos: u64, now: u64) -> Vec<Action> {
    if matched {
        m.verified = true;
        m.reverse_log_pos = target_log_pos;
        return maybe_cut_over(m, now);
    }
    m.error = Some(format!("verification mismatch, catching up again: {detail}"));
    m.enter(Phase::CatchingUp, now);
    vec![Action::CatchUp { from_pos: m.applied_log_pos }]
}

fn cut_over(m: &mut Migration, pause_ms: u64, reverse_log_pos: u64, now: u64) -> Vec<Action> {
    m.cutover_pause_ms = Some(pause_ms);
    m.reverse_log_pos = reverse_log_pos;
    m.bake_until_ms = Some(now + m.limits.bake_ms);
    m.enter(Phase::Completed, now);
    vec![Action::ReverseCapture { from_pos: m.reverse_log_pos }]
}

/// Starts (or restarts) the snapshot copy from the source's current log
/// position. Records already on the destination stay: applies are versioned,
/// so copying them again is harmless.
fn restart_copy(m: &mut Migration, source_log_pos: u64, now: u64) -> Stepped {
    m.snapshot_log_pos = source_log_pos;
    m.applied_log_pos = source_log_pos;
    m.copy_cursor = None;
    m.enter(Phase::Copying, now);
    Ok(vec![Action::CopyChunk { cursor: None }])
}

fn copied(m: &mut Migration, cursor: Option<Bytes>, keys: u64, bytes: u64, done: bool, now: u64) -> Stepped {
    m.copy_cursor = cursor;
    m.keys_copied += keys;
    m.bytes_copied += bytes;
    if done {
        m.enter(Phase::CatchingUp, now);
        return Ok(vec![Action::CatchUp { from_pos: m.applied_log_pos }]);
    }
    Ok(vec![Action::CopyChunk { cursor: m.copy_cursor.clone() }])
}

fn caught_up(m: &mut Migration, applied_pos: u64, lag: u64, now: u64, event: &Event) -> Stepped {
    if applied_pos < m.applied_log_pos {
        return reject(m, event);
    }
    m.applied_log_pos = applied_pos;
    if lag > m.limits.lag_entries_max {
        return Ok(vec![Action::CatchUp { from_pos: applied_pos }]);
    }
    m.verified = false;
    m.enter(Phase::ReadyForCutover, now);
    Ok(vec![Action::Verify])
}

fn maybe_cut_over(m: &mut Migration, now: u64) -> Vec<Action> {
    if !m.verified || (m.limits.needs_approval && !m.approved) {
        return vec![];
    }
    m.cutover_attempts += 1;
    m.enter(Phase::CuttingOver, now);
    vec![Action::Cutover { from_pos: m.applied_log_pos }]
}

fn pause(m: &mut Migration, reason: &str, now: u64, event: &Event) -> Stepped {
    match m.phase {
        Phase::Paused => {
            m.pause_reason = Some(reason.to_string());
            Ok(vec![])
        }
        p if p.is_pausable() => {
            m.paused_from = Some(p);
            m.pause_reason = Some(reason.to_string());
            m.enter(Phase::Paused, now);
            Ok(vec![])
        }
        _ => reject(m, event),
    }
}

/// A failure: before cutover the destination is dropped and the source keeps
/// serving; during cutover the partition is handed back to the source.
fn fail(m: &mut Migration, error: &str, now: u64, event: &Event) -> Stepped {
    match m.phase {
        Phase::CuttingOver => {
            m.error = Some(error.to_string());
            m.enter(Phase::RollingBack, now);
            Ok(vec![Action::RollBack { from_pos: m.reverse_log_pos }])
        }
        Phase::RollingBack | Phase::Completed | Phase::CleaningUp => {
            // The driver retries these phases' work; the error is kept for
            // the operator, and the phase stays so the work resumes.
            m.error = Some(error.to_string());
            Ok(resume_actions(m))
        }
        _ => abort(m, Phase::Failed, Some(error.to_string()), now, event),
    }
}

fn abort(m: &mut Migration, to: Phase, error: Option<String>, now: u64, event: &Event) -> Stepped {
    let from = m.phase;
    if !(from == Phase::Pending || from == Phase::Paused || from.is_pausable() || (to == Phase::Failed && from == Phase::CuttingOver)) {
        return reject(m, event);
    }
    m.error = error.or(m.error.take());
    m.paused_from = None;
    m.enter(to, now);
    if from == Phase::Pending {
        m.cleanup_done = true;
        return Ok(vec![]);
    }
    Ok(vec![Action::Abort, Action::ReleaseLock])
}

/// The actions a driver starting on stored state performs: the phase's work
/// ([`resume_actions`]), and first, if a lock was ever taken and work may
/// remain, [`Action::Relock`]. A driver of a new leader term thus fences off
/// its predecessor: that one's lease and lock are gone, but nodes would
/// still admit its token until they see a newer one (G10).
pub fn restart_actions(m: &Migration) -> Vec<Action> {
    let mut actions = resume_actions(m);
    if m.token.is_some() && !m.is_finished() {
        actions.insert(0, Action::Relock);
    }
    actions
}

/// The actions a driver must (re)issue for `m`'s stored phase, after a
/// restart or on resume. Every action is idempotent, so re-issuing work that
/// had already finished before a crash is safe.
pub fn resume_actions(m: &Migration) -> Vec<Action> {
    match m.phase {
        Phase::Pending | Phase::Paused | Phase::Done => vec![],
        Phase::Preparing => vec![Action::Prepare],
        Phase::Copying => vec![Action::CopyChunk { cursor: m.copy_cursor.clone() }],
        Phase::CatchingUp => vec![Action::CatchUp { from_pos: m.applied_log_pos }],
        Phase::ReadyForCutover if m.verified => vec![],
        Phase::ReadyForCutover => vec![Action::Verify],
        Phase::CuttingOver => vec![Action::Cutover { from_pos: m.applied_log_pos }],
        Phase::Completed => vec![Action::ReverseCapture { from_pos: m.reverse_log_pos }],
        Phase::CleaningUp => vec![Action::DropSource],
        Phase::RollingBack => vec![Action::RollBack { from_pos: m.reverse_log_pos }],
        Phase::Failed | Phase::Cancelled | Phase::RolledBack if !m.cleanup_done => vec![Action::Abort, Action::ReleaseLock],
        Phase::Failed | Phase::Cancelled | Phase::RolledBack => vec![],
    }
}

#[cfg(test)]
mod tests;
