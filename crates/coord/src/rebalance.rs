//! A rebalance: the planner's moves, run under concurrency limits.
//!
//! `start` snapshots the cluster (members with weights and drain flags,
//! partition owners, bytes from the last stats poll), asks [`crate::plan`]
//! for the fewest moves, and stores the result at `/evenkeel/rebalance`.
//! The leader's scheduler ([`schedule`], every tick) starts moves while at
//! most `moves_per_node` run on any node and `moves_cluster` in total, and
//! (migrations in bake do not count) and marks the rebalance DONE once every move ended DONE (FAILED if any ended
//! otherwise). Pause, resume, cancel and rollback apply to the rebalance and
//! to its migrations.

use crate::Coordinator;
use crate::migration::machine::{Event, Phase};
use crate::migration::manager::{self, StartError};
use crate::plan::{self, NodeLoad, PartitionLoad, Plan};
use evenkeel_meta::{CasOutcome, Compare, MetaError, MetaStore, Revision};
use evenkeel_types::routing::NodeState;
use evenkeel_types::{RoutingTable, unix_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where the current (or last) rebalance is stored.
pub const KEY: &str = "/evenkeel/rebalance";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub moves_per_node: usize,
    pub moves_cluster: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { moves_per_node: 1, moves_cluster: 2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Running,
    Paused,
    Cancelled,
    Done,
    Failed,
}

impl State {
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Paused)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rebalance {
    pub id: String,
    pub state: State,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    pub plan: Plan,
    /// Per move: the migration running it, once started.
    pub migrations: Vec<Option<String>>,
    /// Per move: why it was skipped, if it was.
    pub skipped: Vec<Option<String>>,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum RebalanceError {
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Plan(#[from] plan::PlanError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// The plan the cluster would run now.
pub async fn current_plan(coord: &Coordinator) -> Result<Plan, RebalanceError> {
    let meta = coord.meta();
    let table = meta.get(evenkeel_types::keys::ROUTING).await?.ok_or_else(|| RebalanceError::Invalid("the cluster is not bootstrapped".into()))?;
    let table = RoutingTable::from_json(&table.value).map_err(RebalanceError::Invalid)?;
    let nodes: Vec<NodeLoad> = crate::nodes::members(meta)
        .await?
        .iter()
        .map(|n| NodeLoad { id: n.id, weight: n.weight, draining: n.state == NodeState::Draining })
        .collect();
    let status = coord.status();
    let bytes: HashMap<u16, u64> = status.partitions.iter().map(|p| (p.id, p.bytes)).collect();
    let partitions: Vec<PartitionLoad> = table
        .partitions
        .iter()
        .enumerate()
        .map(|(p, e)| PartitionLoad { id: p as u16, owner: e.owner, bytes: bytes.get(&(p as u16)).copied().unwrap_or(0) })
        .collect();
    Ok(plan::plan(&nodes, &partitions)?)
}

pub async fn load(meta: &dyn MetaStore) -> Result<Option<(Rebalance, Revision)>, RebalanceError> {
    let Some(kv) = meta.get(KEY).await? else { return Ok(None) };
    let r = serde_json::from_slice(&kv.value).map_err(|e| MetaError::Corrupt(format!("rebalance record: {e}")))?;
    Ok(Some((r, kv.mod_revision)))
}

async fn store(meta: &dyn MetaStore, r: &Rebalance, expect: Compare) -> Result<(), RebalanceError> {
    let value = serde_json::to_vec(r).expect("rebalance serializes");
    match meta.compare_and_swap(KEY, expect, Some(value), None).await? {
        CasOutcome::Swapped(_) => Ok(()),
        CasOutcome::Conflict(_) => Err(RebalanceError::Conflict("the rebalance changed concurrently; retry".into())),
    }
}

/// Plans and records a new rebalance; refused while one is active.
pub async fn start(coord: &Coordinator, limits: Limits) -> Result<Rebalance, RebalanceError> {
    if !coord.is_leader() {
        return Err(RebalanceError::Conflict("this coordinator is not the leader".into()));
    }
    let existing = load(coord.meta()).await?;
    if let Some((r, _)) = &existing
        && r.state.is_active()
    {
        return Err(RebalanceError::Conflict(format!("rebalance {} is {:?}; cancel it first", r.id, r.state)));
    }
    let plan = current_plan(coord).await?;
    let now = unix_ms();
    let n = plan.moves.len();
    let state = if n == 0 { State::Done } else { State::Running };
    let r = Rebalance { id: format!("r{now}"), state, created_ms: now, finished_ms: (n == 0).then_some(now), plan, migrations: vec![None; n], skipped: vec![None; n], limits };
    let expect = existing.map_or(Compare::Absent, |(_, rev)| Compare::ModRevision(rev));
    store(coord.meta(), &r, expect).await?;
    Ok(r)
}

/// One scheduling round: start what the limits allow, finish when done.
pub async fn schedule(coord: &Coordinator) -> Result<(), RebalanceError> {
    let meta = coord.meta();
    let Some((mut r, rev)) = load(meta).await? else { return Ok(()) };
    if r.state != State::Running {
        return Ok(());
    }
    let all = manager::list(meta).await?;
    let phase: HashMap<&str, Phase> = all.iter().map(|m| (m.id.as_str(), m.phase)).collect();
    // Migrations in bake only run reverse capture (cheap), so they do not
    // hold a slot; otherwise every move would wait out its predecessors'
    // bake time.
    let busy_phase = |p: Phase| !p.is_terminal() && p != Phase::Completed;
    let mut per_node: HashMap<u32, usize> = HashMap::new();
    for m in all.iter().filter(|m| busy_phase(m.phase)) {
        *per_node.entry(m.source).or_default() += 1;
        *per_node.entry(m.target).or_default() += 1;
    }
    let mut running = all.iter().filter(|m| busy_phase(m.phase)).count();
    // The operator's overrides and the active time window apply at once,
    // also to a rebalance started before they changed.
    let limits = coord.throttle.concurrency(r.limits);
    let mut changed = false;
    for i in 0..r.plan.moves.len() {
        if r.migrations[i].is_some() || r.skipped[i].is_some() {
            continue;
        }
        let mv = r.plan.moves[i];
        let busy = |n: u32| per_node.get(&n).copied().unwrap_or(0) >= limits.moves_per_node;
        if running >= limits.moves_cluster || busy(mv.from) || busy(mv.to) {
            continue;
        }
        match coord.migrations.start(mv.partition, mv.to, coord.limits(), coord.modes()).await {
            Ok(m) => {
                r.migrations[i] = Some(m.id);
                running += 1;
                *per_node.entry(mv.from).or_default() += 1;
                *per_node.entry(mv.to).or_default() += 1;
            }
            // Someone else is moving this partition; try again next round.
            Err(StartError::Busy(..)) => continue,
            Err(StartError::Invalid(why)) => r.skipped[i] = Some(why),
            Err(e) => return Err(RebalanceError::Conflict(e.to_string())),
        }
        changed = true;
    }
    changed |= finish_if_done(&mut r, &phase);
    if changed {
        store(meta, &r, Compare::ModRevision(rev)).await?;
    }
    Ok(())
}

/// Marks the rebalance DONE or FAILED once every move has ended.
fn finish_if_done(r: &mut Rebalance, phase: &HashMap<&str, Phase>) -> bool {
    let ended = |i: usize| r.skipped[i].is_some() || r.migrations[i].as_deref().and_then(|id| phase.get(id)).is_some_and(|p| p.is_terminal());
    if !(0..r.plan.moves.len()).all(ended) {
        return false;
    }
    let all_done = r.migrations.iter().flatten().all(|id| phase.get(id.as_str()) == Some(&Phase::Done));
    r.state = if all_done { State::Done } else { State::Failed };
    r.finished_ms = Some(unix_ms());
    true
}

/// pause, resume, cancel or rollback the current rebalance and its moves.
pub async fn control(coord: &Coordinator, action: &str) -> Result<Rebalance, RebalanceError> {
    let meta = coord.meta();
    let (mut r, rev) = load(meta).await?.ok_or_else(|| RebalanceError::Invalid("no rebalance has run".into()))?;
    let (next, event) = match (action, r.state) {
        ("pause", State::Running) => (State::Paused, Some(Event::Pause { reason: "rebalance paused by operator".into() })),
        ("resume", State::Paused) => (State::Running, Some(Event::Resume)),
        ("cancel", State::Running | State::Paused) => (State::Cancelled, Some(Event::Cancel)),
        ("rollback", _) => (State::Cancelled, Some(Event::Rollback)),
        (a, s) => return Err(RebalanceError::Conflict(format!("cannot {a} a rebalance that is {s:?}"))),
    };
    r.state = next;
    if !next.is_active() {
        r.finished_ms = Some(unix_ms());
    }
    store(meta, &r, Compare::ModRevision(rev)).await?;
    // Each migration takes the request only if its phase allows it (a move
    // already cutting over finishes; one already done ignores a pause).
    if let Some(e) = event {
        for id in r.migrations.iter().flatten() {
            let _ = coord.migrations.control(id, e.clone()).await;
        }
    }
    Ok(r)
}
