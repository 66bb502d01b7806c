//! A rebalance: the planner's moves, run under concurrency limits.
//!
//! `start` snapshots the cluster (members with weights and drain flags,
//! partition owners, bytes from the last stats poll), asks [`crate::plan`]
//! for the fewest moves, and stores the result at `/evenkeel/rebalance`.
//! Or it runs a reviewed plan as given (`moves`: `rebalance start --plan
//! FILE`), once [`plan::given`] has checked it against the cluster as it
//! is: a plan the cluster has moved on from is refused, never adjusted.
//! The leader's scheduler ([`schedule`], every tick) starts moves while at
//! most `moves_per_node` run on any node and `moves_cluster` in total, and
//! (migrations in bake do not count) and marks the rebalance DONE once every move ended DONE (FAILED if any ended
//! otherwise). Pause, resume, cancel and rollback apply to the rebalance and
//! to its migrations.
//!
//! A rebalance started with stages ([`crate::stages`]) starts only the
//! current stage's moves; once they have cut over, the stage bakes, is
//! judged, and waits for `approve` where it has a gate. A stage that fails
//! halts the rebalance (PAUSED, `halted` saying why; its running moves are
//! paused too); `resume` goes on past it.

use crate::Coordinator;
use crate::migration::machine::{Event, Phase};
use crate::migration::manager::{self, StartError};
use crate::estimate::{self, Estimate, MoveCost, Pending, StageRun};
use crate::plan::{self, GivenPlanError, LoadBalance, MoveSpec, NodeLoad, PartitionLoad, Plan};
use crate::stages::{self, MoveState, Observation, Stage, StageSpec, Step};
use evenkeel_meta::{CasOutcome, Compare, MetaError, MetaStore, Revision};
use evenkeel_types::routing::{NodeInfo, NodeState};
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
    /// The stages the moves run in; empty: all at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// The current stage (an index into `stages`).
    #[serde(default)]
    pub stage: usize,
    /// Why a stage halted the rebalance, while it is PAUSED for that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    /// The throttle's baseline p99 (µs) when the rebalance started (or
    /// when one was first known): what stages' bakes are judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_p99_us: Option<u64>,
    /// What a stage that fails does to the rebalance.
    #[serde(default)]
    pub on_stage_failure: OnStageFailure,
    /// The membership the plan was made for ([`crate::auto::digest`]):
    /// automatic rebalancing starts nothing more for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<u64>,
    /// Started by the coordinator itself (`auto_rebalance`), not by a request.
    #[serde(default)]
    pub auto: bool,
    /// The p99 ratio a stage's bake may reach (None: the throttle's budget
    /// ratio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_p99_ratio_max: Option<f64>,
}

/// How to run a rebalance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartOptions {
    pub limits: Limits,
    /// Its stages (none: every move at once).
    pub stages: Vec<StageSpec>,
    pub on_stage_failure: OnStageFailure,
    /// Started by the coordinator itself.
    pub auto: bool,
    /// The p99 ratio a stage's bake may reach (None: the throttle's budget
    /// ratio).
    pub stage_p99_ratio_max: Option<f64>,
    /// Also even out client load by swaps (`plan::plan_with`).
    pub load: Option<LoadBalance>,
    /// Run exactly these moves instead of planning (`plan::given`).
    pub moves: Option<Vec<MoveSpec>>,
}

/// What a failed stage does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStageFailure {
    /// Halt: the rebalance PAUSED, its running moves paused, until an
    /// operator resumes, rolls back or cancels it.
    #[default]
    Pause,
    /// Roll back at once, as `rebalance rollback` does: every move still
    /// in its bake handed back to its source, every move not yet cut over
    /// cancelled, the rebalance CANCELLED.
    Rollback,
}

impl Rebalance {
    /// Why automatic rebalancing started it (None: a request did).
    pub fn started_because(&self) -> Option<&'static str> {
        let for_load = self.plan.load.is_some_and(|l| l.swaps > 0 && self.plan.moves.len() == 2 * l.swaps);
        self.auto.then_some(if for_load { "client load was uneven" } else { "the membership changed" })
    }

    /// The stage now running, if the rebalance is staged.
    pub fn current_stage(&self) -> Option<&Stage> {
        self.stages.get(self.stage)
    }

    /// Whether move `i` may start now: every move of an unstaged
    /// rebalance, the current stage's of a staged one.
    fn may_start(&self, i: usize) -> bool {
        self.stages.is_empty() || self.current_stage().is_some_and(|s| s.started_ms.is_some() && s.moves.contains(&i))
    }
}

/// `POST /v1/rebalance`'s optional body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StartRequest {
    /// The stages to run the moves in, as a list or in the CLI's notation
    /// (`canary=1%:10m:approve,100%`); absent: the configured default.
    #[serde(default)]
    pub stages: Option<StagesArg>,
    /// What a failed stage does (default: pause).
    #[serde(default)]
    pub on_stage_failure: Option<OnStageFailure>,
    /// The p99 ratio a stage's bake may reach (default: the configured
    /// one, else the throttle's budget ratio).
    #[serde(default)]
    pub stage_p99_ratio_max: Option<f64>,
    /// Also even out client load (default: as configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_load: Option<bool>,
    /// The load spread tolerated (default: as configured, else 0.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_tolerance: Option<f64>,
    /// A reviewed plan's moves, run as they are (in this order, each
    /// checked against the cluster: 409 if it moved on since the plan).
    /// Not with `balance_load` or `load_tolerance`, which shape a plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moves: Option<Vec<MoveSpec>>,
}

/// The load phase `balance_load` and `load_tolerance` ask for, given the
/// configured one (None: off).
pub fn load_balance(balance_load: Option<bool>, load_tolerance: Option<f64>, configured: Option<LoadBalance>) -> Result<Option<LoadBalance>, RebalanceError> {
    if let Some(t) = load_tolerance
        && !(t.is_finite() && t > 0.0)
    {
        return Err(RebalanceError::Invalid(format!("load_tolerance must be above 0, not {t}")));
    }
    let on = balance_load.unwrap_or(configured.is_some() || load_tolerance.is_some());
    let base = configured.unwrap_or_default();
    Ok(on.then(|| LoadBalance { tolerance: load_tolerance.unwrap_or(base.tolerance), ..base }))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StagesArg {
    Spec(String),
    List(Vec<StageSpec>),
}

impl StagesArg {
    pub fn resolve(self) -> Result<Vec<StageSpec>, String> {
        match self {
            StagesArg::Spec(s) => stages::parse(&s),
            StagesArg::List(l) => stages::validate(&l).map(|()| l),
        }
    }
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

/// The plan the cluster would run now, with the configured load phase.
pub async fn current_plan(coord: &Coordinator) -> Result<Plan, RebalanceError> {
    plan_for(coord, &crate::nodes::members(coord.meta()).await?, coord.balance_load()).await
}

/// The plan for `members` (read once by the caller, so that the plan, the
/// membership digest and the zones a rebalance records agree).
async fn plan_for(coord: &Coordinator, members: &[NodeInfo], load: Option<LoadBalance>) -> Result<Plan, RebalanceError> {
    let (nodes, partitions) = planner_input(coord, members).await?;
    Ok(plan::plan_with(&nodes, &partitions, load)?)
}

/// `moves` as a plan, if they still fit the cluster of `members`.
async fn given_plan(coord: &Coordinator, members: &[NodeInfo], moves: &[MoveSpec]) -> Result<Plan, RebalanceError> {
    let (nodes, partitions) = planner_input(coord, members).await?;
    plan::given(&nodes, &partitions, moves).map_err(|e: GivenPlanError| {
        if e.is_stale() {
            RebalanceError::Conflict(format!("{e}: the cluster changed since the plan was made; plan again"))
        } else {
            RebalanceError::Invalid(format!("the given plan: {e}"))
        }
    })
}

/// The planner's view of the cluster: `members`, and every partition's
/// owner (the routing table), size and load (the last stats poll).
async fn planner_input(coord: &Coordinator, members: &[NodeInfo]) -> Result<(Vec<NodeLoad>, Vec<PartitionLoad>), RebalanceError> {
    let meta = coord.meta();
    let table = meta.get(evenkeel_types::keys::ROUTING).await?.ok_or_else(|| RebalanceError::Invalid("the cluster is not bootstrapped".into()))?;
    let table = RoutingTable::from_json(&table.value).map_err(RebalanceError::Invalid)?;
    let nodes: Vec<NodeLoad> = members.iter().map(|n| NodeLoad { id: n.id, weight: n.weight, draining: n.state == NodeState::Draining }).collect();
    let status = coord.status();
    let known: HashMap<u16, (u64, u64)> = status.partitions.iter().map(|p| (p.id, (p.bytes, p.ops_per_s().ceil() as u64))).collect();
    let partitions: Vec<PartitionLoad> = table
        .partitions
        .iter()
        .enumerate()
        .map(|(p, e)| {
            let (bytes, ops_per_s) = known.get(&(p as u16)).copied().unwrap_or_default();
            PartitionLoad { id: p as u16, owner: e.owner, bytes, ops_per_s }
        })
        .collect();
    Ok((nodes, partitions))
}

/// `GET /v1/rebalance/plan[?stages=SPEC]`: the plan, and with stages the
/// stages its moves would run in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPreview {
    #[serde(flatten)]
    pub plan: Plan,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// How long it would take (none for an empty plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

/// The plan the cluster would run now, split into `specs`' stages, with
/// how long it would take.
pub async fn preview(coord: &Coordinator, specs: &[StageSpec], load: Option<LoadBalance>) -> Result<PlanPreview, RebalanceError> {
    let members = crate::nodes::members(coord.meta()).await?;
    let plan = plan_for(coord, &members, load).await?;
    let stages = stages::assign(specs, &plan.moves, zone_of(&members));
    let now = unix_ms();
    let basis = basis(coord, &manager::list(coord.meta()).await?, coord.rebalance_limits(), now);
    let estimate = (!plan.moves.is_empty()).then(|| lay_out(&plan, &stages, 0, |_| MoveNow::Waiting, &basis, now));
    Ok(PlanPreview { plan, stages, estimate })
}

/// What an estimate made at `now` rests on: a move's cost learned from
/// the cluster's recent moves (`migrations`, [`estimate::MoveCost::learn`];
/// with none, the static per-migration rate or the window's, else the
/// throttle's starting rate), capped by the static rate and the rate of
/// the time window in force once moves may run; `limits` as the settings
/// and that window make them; and the wait until then
/// (`Schedule::next_open`).
pub fn basis(coord: &Coordinator, migrations: &[crate::migration::machine::Migration], limits: Limits, now: u64) -> estimate::Basis {
    let settings = coord.throttle.settings();
    let open = settings.schedule.next_open(now);
    let window = settings.schedule.effective(open.unwrap_or(now));
    let cap = [settings.migration_rate_bytes_per_s, window.rate_bytes_per_s.filter(|r| *r > 0.0)].into_iter().flatten().reduce(f64::min);
    let start = if settings.adaptive { cap.map_or(settings.aimd.start_bytes_per_s, |c| c.min(settings.aimd.start_bytes_per_s)) } else { cap.unwrap_or(settings.aimd.start_bytes_per_s) };
    estimate::Basis {
        cost: MoveCost::learn(migrations, start, coord.limits().bake_ms, cap),
        limits: crate::throttle::concurrency_under(&settings, window.max_concurrent, limits),
        waiting_ms: open.map(|t| t - now),
    }
}

/// Where one move of a rebalance stands, for its estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MoveNow {
    Waiting,
    /// Under way for this long, with this many bytes copied.
    Running { elapsed_ms: u64, copied: u64 },
    /// Cut over (baking or DONE), skipped or ended otherwise: no time left.
    Finished,
}

/// The estimate of `plan` in `stages` from stage `first` on, each move
/// where `state` says; `now` for the current stage's bake.
fn lay_out(plan: &Plan, stages: &[Stage], first: usize, state: impl Fn(usize) -> MoveNow, basis: &estimate::Basis, now: u64) -> Estimate {
    let (cost, limits) = (&basis.cost, basis.limits);
    let run_of = |moves: &mut dyn Iterator<Item = usize>, bake_ms: f64| {
        let mut run = StageRun { bake_ms, ..Default::default() };
        for i in moves {
            let p = Pending::of(&plan.moves[i], cost);
            match state(i) {
                MoveNow::Waiting => run.waiting.push(p),
                MoveNow::Running { elapsed_ms, copied } => run.running.push(Pending { ms: cost.left_ms(plan.moves[i].bytes, copied, elapsed_ms), ..p }),
                MoveNow::Finished => {}
            }
        }
        run
    };
    let runs: Vec<StageRun> = if stages.is_empty() {
        vec![run_of(&mut (0..plan.moves.len()), 0.0)]
    } else {
        stages
            .iter()
            .skip(first)
            .map(|st| {
                let bake = match st.bake_until_ms {
                    Some(until) => until.saturating_sub(now),
                    None => st.spec.bake_ms,
                };
                run_of(&mut st.moves.iter().copied(), bake as f64)
            })
            .collect()
    };
    let approvals = stages.iter().enumerate().skip(first).filter(|(i, st)| i + 1 < stages.len() && st.spec.approval && st.approved_ms.is_none()).count();
    basis.estimate(estimate::total_ms(&runs, limits, cost.tail_ms), approvals)
}

/// How long the active rebalance `r` still needs (None once it ended),
/// its moves' migrations among `migrations`.
pub fn remaining(r: &Rebalance, migrations: &[crate::migration::machine::Migration], basis: &estimate::Basis, now: u64) -> Option<Estimate> {
    if !r.state.is_active() {
        return None;
    }
    let by_id: HashMap<&str, &crate::migration::machine::Migration> = migrations.iter().map(|m| (m.id.as_str(), m)).collect();
    let state = |i: usize| match r.migrations[i].as_deref().map(|id| by_id.get(id)) {
        None if r.skipped[i].is_some() => MoveNow::Finished,
        None => MoveNow::Waiting,
        // Its record is gone: long finished.
        Some(None) => MoveNow::Finished,
        Some(Some(m)) => {
            let before_cutover = m.phase == Phase::Paused && m.paused_from.is_some_and(|p| !matches!(p, Phase::Completed | Phase::CleaningUp));
            if before_cutover || matches!(m.phase, Phase::Pending | Phase::Preparing | Phase::Copying | Phase::CatchingUp | Phase::ReadyForCutover | Phase::CuttingOver) {
                MoveNow::Running { elapsed_ms: now.saturating_sub(m.history.first().map_or(now, |h| h.1)), copied: m.bytes_copied }
            } else {
                MoveNow::Finished
            }
        }
    };
    if (0..r.plan.moves.len()).all(|i| state(i) == MoveNow::Finished) {
        // Every move has cut over: what is left is their bake, which no
        // window holds up.
        let bake = r.migrations.iter().flatten().filter_map(|id| by_id.get(id.as_str())?.bake_until_ms).map(|t| t.saturating_sub(now)).max().unwrap_or(0);
        let stage_bake = r.current_stage().and_then(|s| s.bake_until_ms).map_or(0, |t| t.saturating_sub(now));
        let open_now = estimate::Basis { waiting_ms: Some(0), ..*basis };
        return Some(open_now.estimate(bake.max(stage_bake) as f64, 0));
    }
    Some(lay_out(&r.plan, &r.stages, r.stage, state, basis, now))
}

/// A member's zone by node id, for [`stages::assign`].
fn zone_of(members: &[NodeInfo]) -> impl Fn(u32) -> Option<String> + '_ {
    |node| members.iter().find(|n| n.id == node).and_then(|n| n.zone.clone())
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

/// Plans and records a new rebalance run as `options` say; refused while
/// one is active.
pub async fn start(coord: &Coordinator, options: StartOptions) -> Result<Rebalance, RebalanceError> {
    let StartOptions { limits, stages: specs, on_stage_failure, auto, stage_p99_ratio_max, load: load_phase, moves } = options;
    if moves.is_some() && load_phase.is_some() {
        return Err(RebalanceError::Invalid("a given plan runs as it is: balance_load and load_tolerance shape a computed plan, not a given one".into()));
    }
    stages::validate(&specs).map_err(RebalanceError::Invalid)?;
    if let Some(r) = stage_p99_ratio_max
        && !(r.is_finite() && r >= 1.0)
    {
        return Err(RebalanceError::Invalid(format!("stage_p99_ratio_max must be a number of at least 1.0, not {r}")));
    }
    if !coord.is_leader() {
        return Err(RebalanceError::Conflict("this coordinator is not the leader".into()));
    }
    let existing = load(coord.meta()).await?;
    if let Some((r, _)) = &existing
        && r.state.is_active()
    {
        return Err(RebalanceError::Conflict(format!("rebalance {} is {:?}; cancel it first", r.id, r.state)));
    }
    let members = crate::nodes::members(coord.meta()).await?;
    let plan = match &moves {
        Some(moves) => given_plan(coord, &members, moves).await?,
        None => plan_for(coord, &members, load_phase).await?,
    };
    let now = unix_ms();
    let n = plan.moves.len();
    let state = if n == 0 { State::Done } else { State::Running };
    let membership = crate::auto::digest(&members);
    let stages = if n == 0 { Vec::new() } else { stages::assign(&specs, &plan.moves, zone_of(&members)) };
    let r = Rebalance {
        id: format!("r{now}"),
        state,
        created_ms: now,
        finished_ms: (n == 0).then_some(now),
        plan,
        migrations: vec![None; n],
        skipped: vec![None; n],
        limits,
        stages,
        stage: 0,
        halted: None,
        baseline_p99_us: coord.throttle.baseline_p99_us(),
        on_stage_failure,
        membership: Some(membership),
        auto,
        stage_p99_ratio_max,
    };
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
    let by_id: HashMap<&str, &crate::migration::machine::Migration> = all.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut changed = advance_stages(coord, &mut r, &by_id, unix_ms());
    if r.state != State::Running {
        // A stage halted it: recorded first, then its moves paused (or
        // rolled back).
        let why = r.halted.clone().unwrap_or_default();
        let roll_back = r.on_stage_failure == OnStageFailure::Rollback;
        if roll_back {
            r.state = State::Cancelled;
            r.finished_ms = Some(unix_ms());
        }
        store(meta, &r, Compare::ModRevision(rev)).await?;
        tracing::warn!(rebalance = %r.id, %why, roll_back, "rebalance halted by a stage");
        if roll_back {
            undo(coord, &r).await;
        } else {
            for id in r.migrations.iter().flatten() {
                let _ = coord.migrations.control(id, Event::Pause { reason: why.clone() }).await;
            }
        }
        return Ok(());
    }
    for i in 0..r.plan.moves.len() {
        if r.migrations[i].is_some() || r.skipped[i].is_some() || !r.may_start(i) {
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

/// Where move `i` of `r` stands, for its stage.
fn move_state(r: &Rebalance, i: usize, by_id: &HashMap<&str, &crate::migration::machine::Migration>) -> MoveState {
    let partition = r.plan.moves[i].partition;
    if let Some(why) = &r.skipped[i] {
        return MoveState::Failed(format!("partition {partition}'s move was skipped: {why}"));
    }
    let Some(id) = &r.migrations[i] else { return MoveState::NotStarted };
    match by_id.get(id.as_str()) {
        // Listed by the manager until it is garbage-collected; a
        // migration no longer listed ended long ago.
        None => MoveState::Landed,
        Some(m) => match m.phase {
            Phase::Completed | Phase::CleaningUp | Phase::Done => MoveState::Landed,
            p if p.is_terminal() => MoveState::Failed(format!("partition {partition}'s move {id} ended {}{}", p.name(), m.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())),
            _ => MoveState::Moving,
        },
    }
}

/// Takes the current stage as far as it can go now: starts it, lands it,
/// judges it after its bake, moves on to the next. Returns whether the
/// record changed; a stage that halts leaves the rebalance PAUSED with
/// `halted` set.
fn advance_stages(coord: &Coordinator, r: &mut Rebalance, by_id: &HashMap<&str, &crate::migration::machine::Migration>, now: u64) -> bool {
    let mut changed = false;
    if r.baseline_p99_us.is_none() && !r.stages.is_empty() {
        r.baseline_p99_us = coord.throttle.baseline_p99_us();
        changed |= r.baseline_p99_us.is_some();
    }
    while let Some(stage) = r.stages.get(r.stage) {
        let key = format!("{}/{}", r.id, r.stage);
        if stage.started_ms.is_none() {
            tracing::info!(rebalance = %r.id, stage = %stage.spec.name, moves = stage.moves.len(), "stage starts");
            r.stages[r.stage].started_ms = Some(now);
            coord.stage_mark(&key);
            changed = true;
        }
        let states: Vec<MoveState> = r.stages[r.stage].moves.iter().map(|&i| move_state(r, i, by_id)).collect();
        let stage = &mut r.stages[r.stage];
        let step = if stage.moves.is_empty() { Step::Next } else { stages::step(stage, &states, now) };
        match step {
            Step::Run | Step::Bake | Step::AwaitApproval => break,
            Step::Landed { bake_until_ms } => {
                tracing::info!(rebalance = %r.id, stage = %stage.spec.name, bake = %stages::format_ms(stage.spec.bake_ms), "stage landed; baking");
                stage.landed_ms = Some(now);
                stage.bake_until_ms = Some(bake_until_ms);
            }
            Step::Judge => {
                let started = stage.started_ms.unwrap_or(now);
                let landed = stage.landed_ms.unwrap_or(now);
                let samples = coord.throttle.samples_since(started);
                let until = stage.bake_until_ms.unwrap_or(now);
                let involved: Vec<u32> = stage.moves.iter().flat_map(|&i| [r.plan.moves[i].from, r.plan.moves[i].to]).collect();
                let throttle = coord.throttle.status();
                let observation = Observation {
                    seconds: samples.iter().filter(|s| stage.spec.bake_ms > 0 && s.at_ms > landed && s.at_ms <= until).map(|s| (s.p99_us, s.ops)).collect(),
                    moving_seconds: samples.iter().filter(|s| s.at_ms <= landed).map(|s| (s.p99_us, s.ops)).collect(),
                    unavailable: coord.throttle.client_unavailable_total().saturating_sub(coord.stage_mark(&key)),
                    baseline_p99_us: r.baseline_p99_us,
                    budget_ratio: r.stage_p99_ratio_max.unwrap_or(throttle.budget_ratio),
                    unhealthy: throttle
                        .nodes
                        .iter()
                        .filter(|n| n.state != "open" && involved.contains(&n.node))
                        .map(|n| format!("node {} {} ({})", n.node, n.state, n.reasons.join(", ")))
                        .collect(),
                };
                let verdict = stages::judge(stage, &observation, now);
                tracing::info!(rebalance = %r.id, stage = %stage.spec.name, passed = verdict.passed, detail = %verdict.detail, "stage judged");
                metrics::counter!("evenkeel_rebalance_stages_judged_total", "outcome" => if verdict.passed { "passed" } else { "failed" }).increment(1);
                stage.verdict = Some(verdict);
            }
            Step::Next => {
                let newly = stage.finished_ms.is_none();
                stage.finished_ms.get_or_insert(now);
                if r.stage + 1 == r.stages.len() {
                    // The last stage passed; its moves may still bake.
                    // Written once, not at every tick until they end.
                    changed |= newly;
                    break;
                }
                r.stage += 1;
            }
            Step::Halt(why) => {
                r.state = State::Paused;
                r.halted = Some(why);
                changed = true;
                break;
            }
        }
        changed = true;
    }
    metrics::gauge!("evenkeel_rebalance_stage").set(if r.stages.is_empty() { 0.0 } else { (r.stage + 1) as f64 });
    changed
}

/// Marks the rebalance DONE or FAILED once every move has ended (and,
/// when staged, the last stage has passed).
fn finish_if_done(r: &mut Rebalance, phase: &HashMap<&str, Phase>) -> bool {
    if r.stages.last().is_some_and(|s| s.finished_ms.is_none()) {
        return false;
    }
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
    let now = unix_ms();
    if action == "approve" {
        // An operator's pause does not stop an approval; a halt is lifted
        // by `resume` instead.
        let waiting = r.state.is_active() && r.halted.is_none() && r.current_stage().is_some_and(|s| s.phase() == stages::StagePhase::AwaitingApproval);
        let Some(stage) = r.stages.get_mut(r.stage).filter(|_| waiting) else {
            return Err(RebalanceError::Conflict(format!("rebalance {} has no stage waiting for approval{}", r.id, r.current_stage().map(|s| format!(" (stage {:?} is {})", s.spec.name, s.phase())).unwrap_or_default())));
        };
        stage.approved_ms = Some(now);
        tracing::info!(rebalance = %r.id, stage = %stage.spec.name, "stage approved");
        store(meta, &r, Compare::ModRevision(rev)).await?;
        return Ok(r);
    }
    let (next, event) = match (action, r.state) {
        ("pause", State::Running) => (State::Paused, Some(Event::Pause { reason: "rebalance paused by operator".into() })),
        ("resume", State::Paused) => {
            // Resuming past a halted stage is the operator's approval of it.
            if r.halted.take().is_some()
                && let Some(stage) = r.stages.get_mut(r.stage)
            {
                stage.approved_ms = Some(now);
            }
            (State::Running, Some(Event::Resume))
        }
        ("cancel", State::Running | State::Paused) => (State::Cancelled, Some(Event::Cancel)),
        ("rollback", _) => (State::Cancelled, None),
        (a, s) => return Err(RebalanceError::Conflict(format!("cannot {a} a rebalance that is {s:?}"))),
    };
    r.state = next;
    if !next.is_active() {
        r.finished_ms = Some(now);
    }
    store(meta, &r, Compare::ModRevision(rev)).await?;
    // Each migration takes the request only if its phase allows it (a move
    // already cutting over finishes; one already done ignores a pause).
    if let Some(e) = event {
        for id in r.migrations.iter().flatten() {
            let _ = coord.migrations.control(id, e.clone()).await;
        }
    }
    if action == "rollback" {
        undo(coord, &r).await;
    }
    Ok(r)
}

/// Undoes what can be undone of `r`'s moves: each one cutting over or in its
/// bake is rolled back (its partition handed back to the source, losing
/// nothing), each one not yet cut over is cancelled (so no partition moves
/// after a rollback was asked for). Moves past their bake stay.
async fn undo(coord: &Coordinator, r: &Rebalance) {
    for id in r.migrations.iter().flatten() {
        if coord.migrations.control(id, Event::Rollback).await.is_err() {
            let _ = coord.migrations.control(id, Event::Cancel).await;
        }
    }
}
