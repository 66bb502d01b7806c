//! The rebalance planner: which partitions to move where so that every node
//! holds its weighted share, with as few moves as possible. A pure function of
//! its input (no I/O, no clock, no randomness): the same input, in any order,
//! gives the same [`Plan`].
//!
//! **Targets.** A node is eligible when it is not draining and its weight is
//! above 0. Of `P` partitions and `B` bytes, eligible node `i` should hold
//! `P·wᵢ/W` partitions and `B·wᵢ/W` bytes (`W` the eligible weights' sum).
//! Its count target is that share rounded down, plus one for the nodes with a
//! fractional share that receive the `P − Σ floor` left over, chosen by most
//! partitions held now (so they keep one instead of giving it away), then the
//! larger fraction, then the lower id. Ineligible nodes' targets are 0.
//!
//! **Moves.** Counts decide how many moves; bytes decide which. The plan has
//! exactly `Σ max(0, countᵢ − targetᵢ)` moves, the fewest that reach the
//! targets (and, by the choice of the left-over ones, the fewest that bring
//! every node within its rounded share). A cluster at its targets gets an empty
//! plan, so planning again after applying a plan gives no moves. Each move
//! goes to the under-count node lacking the most bytes, from the most
//! over-count node, and takes the donor's partition closest to the size both
//! want, among those that keep the receiver's least reachable final size at or
//! below its byte target when any does (`least_fill`).
//!
//! **Bound.** Add an `(N+1)`th node to `N` equal-weight nodes whose counts
//! differ by at most one. Every old node stays at or above its target, so all
//! moves go to the new node and there are exactly `⌊P/(N+1)⌋` of them. Let `L`
//! be the fewest bytes any plan reaching the count targets moves (each old
//! node's `eᵢ` smallest partitions). The guard keeps "bytes received + least
//! still to receive" ≤ `max(L, ⌊B/(N+1)⌋)` after every move, so
//! `moved_bytes ≤ max(L, ⌊B/(N+1)⌋)`. `B/(N+1)` plus one partition cannot be
//! promised for every input: when the old nodes with one partition too many
//! hold the largest partitions, `L` itself exceeds it (see the tests).
//!
//! **Load.** Optionally ([`plan_with`], [`LoadBalance`]), client load
//! (ops/s, [`crate::load`]) counts too. In the count phase, of the donor's
//! partitions the byte guard allows and within a tenth of the wanted size
//! of the closest one, the move takes the one that lowers
//! `Σ loadᵢ² / targetᵢ` over donor and receiver most (the bound above
//! rests on the guard alone, so it still holds). Then a second phase
//! evens out what is left once counts are at their targets, by *swaps*: a busy partition of the node furthest over its
//! load share for a quieter one of a node under its share, two moves that
//! leave every count as it was. Each node's load target is its weighted
//! share of the cluster's load; the phase runs while the busiest node
//! carries more than `1 + tolerance` times its target, and takes each time
//! the swap that lowers `Σ loadᵢ² / targetᵢ` the most (so every swap makes
//! the spread strictly smaller, and the phase ends), among those that leave
//! both nodes at least `tolerance / 4` under the busiest node's ratio
//! before it (two moves must buy a clear gain). A swap never takes a
//! node's bytes past `max(its bytes before, 110% of its byte target)`, and
//! never touches a partition the count phase moved. A partition busier
//! than a node's whole share (a hot key) cannot be evened out by moving it:
//! its new node would be as busy, so no such swap is made. Each partition
//! is swapped at most once per plan. Below
//! [`LoadBalance::min_ops_per_s`] of cluster load nothing is swapped
//! (noise).

use evenkeel_types::{NodeId, PartitionId};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// A member node as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub id: NodeId,
    /// Relative capacity: 100 is a standard node, 0 takes nothing.
    pub weight: u32,
    /// The node must end with no partitions.
    pub draining: bool,
}

/// A partition, its current owner and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLoad {
    pub id: PartitionId,
    pub owner: NodeId,
    pub bytes: u64,
    /// Client ops per second on it, rounded up (`crate::load`): carried into
    /// its move for ordering stages, not planned by.
    #[serde(default)]
    pub ops_per_s: u64,
}

/// Move `partition` (of size `bytes`) from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub partition: PartitionId,
    pub from: NodeId,
    pub to: NodeId,
    pub bytes: u64,
    /// The partition's client load when planned (ops/s, rounded up).
    #[serde(default)]
    pub ops_per_s: u64,
}

/// What one node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub id: NodeId,
    pub partitions: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// In the order the planner chose them; each partition appears at most once.
    pub moves: Vec<Move>,
    pub moved_bytes: u64,
    pub total_bytes: u64,
    /// Every node, ascending by id, before and after the moves.
    pub before: Vec<NodeSummary>,
    pub after: Vec<NodeSummary>,
    /// With load balancing: the swaps (pairs of moves, after the count
    /// phase's moves) and the busiest node's load over its share before and
    /// after the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadOutcome>,
}

/// What the load phase did (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadOutcome {
    pub swaps: usize,
    /// The most any eligible node carries over its load share (1.0 is even),
    /// before the plan and once it is carried out.
    pub spread_before: f64,
    pub spread_after: f64,
}

/// Options of the load phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadBalance {
    /// Swap while the busiest node carries more than `1 + tolerance` times
    /// its share.
    pub tolerance: f64,
    /// At most this many swaps (two moves each).
    pub max_swaps: usize,
    /// Below this much cluster load (ops/s), nothing is swapped.
    pub min_ops_per_s: u64,
}

impl Default for LoadBalance {
    fn default() -> Self {
        LoadBalance { tolerance: 0.25, max_swaps: 8, min_ops_per_s: 100 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no node can take partitions: every node is draining or has weight 0")]
    NoEligibleNodes,
    #[error("partition {0} is owned by node {1}, which is not a member")]
    UnknownOwner(PartitionId, NodeId),
    #[error("node {0} is listed more than once")]
    DuplicateNode(NodeId),
    #[error("partition {0} is listed more than once")]
    DuplicatePartition(PartitionId),
    #[error("the partitions' sizes add up to more than 2^64 - 1 bytes")]
    TooManyBytes,
}

/// Plans the fewest moves that bring every node to its target (see the module
/// documentation). Fails when a partition's owner is not in `nodes`, when an
/// id is listed twice, or when partitions exist but no node may take them.
pub fn plan(nodes: &[NodeLoad], partitions: &[PartitionLoad]) -> Result<Plan, PlanError> {
    plan_with(nodes, partitions, None)
}

/// [`plan`], then with `load` the load phase's swaps (see the module
/// documentation).
pub fn plan_with(nodes: &[NodeLoad], partitions: &[PartitionLoad], load: Option<LoadBalance>) -> Result<Plan, PlanError> {
    let mut cluster = Cluster::new(nodes, partitions)?;
    let options = load.filter(|o| cluster.total_load > 0.0 && cluster.total_load >= o.min_ops_per_s as f64);
    cluster.by_load = options.is_some();
    let spread_before = cluster.load_spread();
    let before = cluster.summaries();
    let mut moves = Vec::new();
    while let Some(receiver) = cluster.receiver() {
        // Targets sum to the partition count, so a node below its target
        // implies one above it.
        let donor = cluster.donor().expect("a deficit implies an excess");
        let index = cluster.choose(donor, receiver);
        moves.push(cluster.transfer(donor, index, receiver));
    }
    for n in &cluster.nodes {
        assert_eq!(n.count, n.count_target, "node {} ends at its count target", n.id);
    }
    let load = load.map(|_| {
        let swaps = options.map_or(0, |o| cluster.swap_for_load(o, &mut moves));
        LoadOutcome { swaps, spread_before, spread_after: cluster.load_spread() }
    });
    Ok(Plan { moved_bytes: moves.iter().map(|m| m.bytes).sum(), total_bytes: cluster.total_bytes, moves, before, after: cluster.summaries(), load })
}

/// The partitions as they are once `plan` has been carried out.
///
/// Panics if `plan` moves a partition from a node that does not own it in
/// `partitions`, or a partition that is not there: the plan was made for
/// other input, which is a programming error.
pub fn apply(partitions: &[PartitionLoad], plan: &Plan) -> Vec<PartitionLoad> {
    let moves: BTreeMap<PartitionId, &Move> = plan.moves.iter().map(|m| (m.partition, m)).collect();
    let mut applied = 0;
    let after = partitions
        .iter()
        .map(|p| match moves.get(&p.id) {
            Some(m) => {
                assert_eq!(m.from, p.owner, "partition {} moves from its owner", p.id);
                applied += 1;
                PartitionLoad { owner: m.to, ..*p }
            }
            None => *p,
        })
        .collect();
    assert_eq!(applied, moves.len(), "every move names a partition of the input");
    after
}

/// A move as an operator gives it: a reviewed plan (`rebalance plan
/// --json`) run as it is by `rebalance start --plan FILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveSpec {
    pub partition: PartitionId,
    pub from: NodeId,
    pub to: NodeId,
}

impl From<&Move> for MoveSpec {
    fn from(m: &Move) -> Self {
        MoveSpec { partition: m.partition, from: m.from, to: m.to }
    }
}

/// Why a given plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GivenPlanError {
    #[error("partition {0} does not exist (the cluster has {1} partitions)")]
    NoSuchPartition(PartitionId, usize),
    #[error("partition {0} is in the plan more than once")]
    Repeated(PartitionId),
    #[error("partition {0} moves from node {1} to node {1}")]
    ToItself(PartitionId, NodeId),
    #[error("node {to}, to which the plan moves partition {partition}, is not a member")]
    NotAMember { partition: PartitionId, to: NodeId },
    #[error("partition {partition} is owned by node {owner} now, not node {from} as the plan says")]
    OwnerChanged { partition: PartitionId, from: NodeId, owner: NodeId },
    #[error("node {to}, to which the plan moves partition {partition}, {why}")]
    NotEligible { partition: PartitionId, to: NodeId, why: &'static str },
}

impl GivenPlanError {
    /// The plan was right when made and the cluster has changed since
    /// (planning again answers it), as opposed to a plan that never was.
    pub fn is_stale(&self) -> bool {
        matches!(self, GivenPlanError::OwnerChanged { .. } | GivenPlanError::NotEligible { .. })
    }
}

/// The [`Plan`] of exactly `moves`, in their order, checked against the
/// cluster as it is: each partition exists and appears once, is owned by
/// the move's `from`, and goes to another member that may take
/// partitions (not draining, weight above 0). Sizes and loads are the
/// partitions' current ones. Nothing is added or reordered, and no load
/// outcome is claimed; no moves is an empty plan, as a balanced cluster's.
pub fn given(nodes: &[NodeLoad], partitions: &[PartitionLoad], moves: &[MoveSpec]) -> Result<Plan, GivenPlanError> {
    let by_id: BTreeMap<PartitionId, &PartitionLoad> = partitions.iter().map(|p| (p.id, p)).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut planned = Vec::with_capacity(moves.len());
    for m in moves {
        let Some(p) = by_id.get(&m.partition) else { return Err(GivenPlanError::NoSuchPartition(m.partition, partitions.len())) };
        if !seen.insert(m.partition) {
            return Err(GivenPlanError::Repeated(m.partition));
        }
        if m.from == m.to {
            return Err(GivenPlanError::ToItself(m.partition, m.from));
        }
        let Some(to) = nodes.iter().find(|n| n.id == m.to) else { return Err(GivenPlanError::NotAMember { partition: m.partition, to: m.to }) };
        if p.owner != m.from {
            return Err(GivenPlanError::OwnerChanged { partition: m.partition, from: m.from, owner: p.owner });
        }
        if to.draining || to.weight == 0 {
            let why = if to.draining { "is draining" } else { "has weight 0" };
            return Err(GivenPlanError::NotEligible { partition: m.partition, to: m.to, why });
        }
        planned.push(Move { partition: m.partition, from: m.from, to: m.to, bytes: p.bytes, ops_per_s: p.ops_per_s });
    }
    let summaries = |parts: &[PartitionLoad]| -> Vec<NodeSummary> {
        let mut ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter()
            .map(|&id| {
                let held = parts.iter().filter(|p| p.owner == id);
                NodeSummary { id, partitions: held.clone().count(), bytes: held.map(|p| p.bytes).sum() }
            })
            .collect()
    };
    let mut plan = Plan {
        moved_bytes: planned.iter().map(|m| m.bytes).sum(),
        total_bytes: partitions.iter().map(|p| p.bytes).sum(),
        moves: planned,
        before: summaries(partitions),
        after: Vec::new(),
        load: None,
    };
    plan.after = summaries(&apply(partitions, &plan));
    Ok(plan)
}

/// A partition as the planner tracks it. Ordered by size, then id, so that
/// "the smallest" and "the closest" are always one well-defined partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Part {
    bytes: u64,
    id: PartitionId,
    /// Carried along (ids are unique, so it never decides the order).
    ops_per_s: u64,
}

#[derive(Debug)]
struct NodeState {
    id: NodeId,
    eligible: bool,
    count: usize,
    bytes: u64,
    count_target: usize,
    byte_target: u64,
    /// Client ops/s it carries, and its weighted share of the cluster's
    /// (0 when ineligible); read only when the count phase goes by load.
    load: f64,
    load_target: f64,
    /// Partitions the node holds from the start and still holds, ascending.
    /// Received partitions are not added: a receiver never gives any away.
    held: Vec<Part>,
}

impl NodeState {
    /// Partitions above the count target (what a donor still has to give).
    fn excess(&self) -> usize {
        self.count.saturating_sub(self.count_target)
    }

    /// Partitions below the count target (what a receiver still has to take).
    fn slots(&self) -> usize {
        self.count_target.saturating_sub(self.count)
    }

    /// Bytes below the byte target; negative when above it.
    fn byte_deficit(&self) -> i128 {
        self.byte_target as i128 - self.bytes as i128
    }
}

struct Cluster {
    /// Ascending by id.
    nodes: Vec<NodeState>,
    total_bytes: u64,
    /// Client ops/s over every partition.
    total_load: f64,
    /// Among the partitions the byte guard allows and about as close to the
    /// wanted size, choose the one that evens out load best
    /// ([`Cluster::choose`]).
    by_load: bool,
}

impl Cluster {
    /// Validates the input and computes every node's targets.
    fn new(nodes: &[NodeLoad], partitions: &[PartitionLoad]) -> Result<Cluster, PlanError> {
        let mut sorted_nodes = nodes.to_vec();
        sorted_nodes.sort_by_key(|n| n.id);
        if let Some(w) = sorted_nodes.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(PlanError::DuplicateNode(w[0].id));
        }
        let mut sorted_parts = partitions.to_vec();
        sorted_parts.sort_by_key(|p| p.id);
        if let Some(w) = sorted_parts.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(PlanError::DuplicatePartition(w[0].id));
        }
        let mut states: Vec<NodeState> = sorted_nodes
            .iter()
            .map(|n| NodeState {
                id: n.id,
                eligible: !n.draining && n.weight > 0,
                count: 0,
                bytes: 0,
                count_target: 0,
                byte_target: 0,
                load: 0.0,
                load_target: 0.0,
                held: Vec::new(),
            })
            .collect();
        let mut total_bytes: u64 = 0;
        for p in &sorted_parts {
            let i = sorted_nodes.binary_search_by_key(&p.owner, |n| n.id).map_err(|_| PlanError::UnknownOwner(p.id, p.owner))?;
            total_bytes = total_bytes.checked_add(p.bytes).ok_or(PlanError::TooManyBytes)?;
            let node = &mut states[i];
            node.count += 1;
            node.bytes += p.bytes;
            node.load += p.ops_per_s as f64;
            node.held.push(Part { bytes: p.bytes, id: p.id, ops_per_s: p.ops_per_s });
        }
        let weights: Vec<u64> = sorted_nodes.iter().zip(&states).map(|(n, s)| if s.eligible { n.weight as u64 } else { 0 }).collect();
        if !partitions.is_empty() && weights.iter().all(|&w| w == 0) {
            return Err(PlanError::NoEligibleNodes);
        }
        let counts: Vec<usize> = states.iter().map(|s| s.count).collect();
        let count_targets = count_targets(&weights, &counts, partitions.len());
        let total_load: f64 = states.iter().map(|s| s.load).sum();
        let weight_sum: u64 = weights.iter().sum();
        for ((state, target), &w) in states.iter_mut().zip(count_targets).zip(&weights) {
            state.count_target = target;
            state.byte_target = share(total_bytes as u128, w, &weights).0 as u64;
            state.load_target = if weight_sum > 0 { total_load * w as f64 / weight_sum as f64 } else { 0.0 };
            state.held.sort_unstable();
        }
        Ok(Cluster { nodes: states, total_bytes, total_load, by_load: false })
    }

    /// The most any eligible node carries over its share of the load (1.0
    /// is even, and what a cluster without load reads).
    fn load_spread(&self) -> f64 {
        self.nodes.iter().filter(|n| n.eligible && n.load_target > 0.0).map(|n| n.load / n.load_target).fold(1.0, f64::max)
    }

    /// The load phase (see the module documentation): swaps between
    /// eligible nodes of partitions each still holds from the start (none
    /// the count phase moved, none swapped before), appended to `moves` two
    /// by two. Returns how many.
    fn swap_for_load(&mut self, options: LoadBalance, moves: &mut Vec<Move>) -> usize {
        let eligible: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].eligible && self.nodes[i].load_target > 0.0).collect();
        if eligible.len() < 2 {
            return 0;
        }
        let caps: Vec<u64> = self.nodes.iter().map(|n| n.bytes.max(n.byte_target.saturating_add(n.byte_target / 10))).collect();
        let ratio = |n: &NodeState| n.load / n.load_target;
        let mut swaps = 0;
        while swaps < options.max_swaps {
            // The busiest node relative to its share, the lowest id on a tie.
            let h = eligible.iter().copied().max_by(|&a, &b| ratio(&self.nodes[a]).total_cmp(&ratio(&self.nodes[b])).then(b.cmp(&a))).expect("two nodes or more");
            let hn = &self.nodes[h];
            if hn.load <= hn.load_target * (1.0 + options.tolerance) {
                break;
            }
            let mut give: Vec<usize> = (0..hn.held.len()).collect();
            give.sort_by_key(|&i| (Reverse(hn.held[i].ops_per_s), hn.held[i].id));
            give.truncate(SWAP_CANDIDATES);
            // (gain, bytes moved, h's partition, partner, partner's
            // partition): the largest fall of Σ load²/target, then the
            // fewest bytes moved, then ids.
            let mut best: Option<(f64, u64, usize, usize, usize)> = None;
            for &c in eligible.iter().filter(|&&c| c != h) {
                let cn = &self.nodes[c];
                let mut take: Vec<usize> = (0..cn.held.len()).collect();
                take.sort_by_key(|&i| (cn.held[i].ops_per_s, cn.held[i].id));
                take.truncate(SWAP_CANDIDATES);
                for &pi in &give {
                    let p = hn.held[pi];
                    for &qi in take.iter().filter(|&&qi| cn.held[qi].ops_per_s < p.ops_per_s) {
                        let q = cn.held[qi];
                        let h_bytes = hn.bytes as i128 - p.bytes as i128 + q.bytes as i128;
                        let c_bytes = cn.bytes as i128 + p.bytes as i128 - q.bytes as i128;
                        if h_bytes > caps[h] as i128 || c_bytes > caps[c] as i128 {
                            continue;
                        }
                        let d = (p.ops_per_s - q.ops_per_s) as f64;
                        let before = hn.load * hn.load / hn.load_target + cn.load * cn.load / cn.load_target;
                        let after = (hn.load - d).powi(2) / hn.load_target + (cn.load + d).powi(2) / cn.load_target;
                        let gain = before - after;
                        // Worth two moves only if the pair's busier side ends
                        // clearly below where the busiest node was: moving a
                        // hot key's partition only moves the problem.
                        let worst = ((hn.load - d) / hn.load_target).max((cn.load + d) / cn.load_target);
                        if gain <= 0.0 || worst > ratio(hn) - options.tolerance / 4.0 {
                            continue;
                        }
                        let moved = p.bytes + q.bytes;
                        let better = match best {
                            None => true,
                            Some((g, b, bpi, bc, bqi)) => {
                                gain > g || (gain == g && (moved, p.id, cn.id, q.id) < (b, hn.held[bpi].id, self.nodes[bc].id, self.nodes[bc].held[bqi].id))
                            }
                        };
                        if better {
                            best = Some((gain, moved, pi, c, qi));
                        }
                    }
                }
            }
            let Some((_, _, pi, c, qi)) = best else {
                break;
            };
            // Neither partition goes back into a `held` list: each is
            // swapped once.
            moves.push(self.transfer(h, pi, c));
            moves.push(self.transfer(c, qi, h));
            swaps += 1;
        }
        swaps
    }

    fn summaries(&self) -> Vec<NodeSummary> {
        self.nodes.iter().map(|n| NodeSummary { id: n.id, partitions: n.count, bytes: n.bytes }).collect()
    }

    /// The node below its count target that lacks the most bytes, lowest id
    /// first; `None` once every node is at its target.
    fn receiver(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].slots() > 0)
            .max_by_key(|&i| (self.nodes[i].byte_deficit(), Reverse(i)))
    }

    /// The node furthest above its count target, then with the most bytes
    /// above its byte target, then the lowest id.
    fn donor(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].excess() > 0)
            .max_by_key(|&i| (self.nodes[i].excess(), -self.nodes[i].byte_deficit(), Reverse(i)))
    }

    /// The index in `donor`'s `held` of the partition to give to `receiver`:
    /// the one closest to the size both want, among those that keep the
    /// receiver's least reachable final size at or below its byte target (or
    /// that do not raise it, when it is already above). The donor's smallest
    /// is always allowed, so there is always a choice.
    fn choose(&self, donor: usize, receiver: usize) -> usize {
        let (least, pivot) = self.least_fill(donor, receiver);
        let slack = (self.nodes[receiver].byte_target as i128 - least as i128).max(0) as u128;
        let limit = (pivot as u128 + slack).min(u64::MAX as u128) as u64;
        let held = &self.nodes[donor].held;
        let allowed = held.partition_point(|p| p.bytes <= limit).max(1);
        let wanted = self.wanted_size(donor, receiver);
        let best = closest(&held[..allowed], wanted);
        if !self.by_load {
            return best;
        }
        // About as close: within a tenth of the wanted size of the closest.
        // The guard alone bounds the bytes moved, so any of these keeps
        // the bound.
        let distance = |p: &Part| p.bytes.abs_diff(wanted);
        let near = distance(&held[best]).saturating_add(wanted / 10);
        let (d, r) = (&self.nodes[donor], &self.nodes[receiver]);
        let spread = |x: f64| {
            let term = |load: f64, target: f64| if target > 0.0 { load * load / target } else { 0.0 };
            term(d.load - x, d.load_target) + term(r.load + x, r.load_target)
        };
        (0..allowed)
            .filter(|&i| distance(&held[i]) <= near)
            .min_by(|&a, &b| {
                let (pa, pb) = (&held[a], &held[b]);
                spread(pa.ops_per_s as f64).total_cmp(&spread(pb.ops_per_s as f64)).then(distance(pa).cmp(&distance(pb))).then(pa.id.cmp(&pb.id))
            })
            .unwrap_or(best)
    }

    /// The least bytes `receiver` can end with, given what it holds and that
    /// it must still fill its slots with partitions donors have to give (at
    /// most each donor's excess, each donor's smallest first); and the pivot:
    /// the largest of `donor`'s partitions in that cheapest fill, or, if it
    /// has none there, the fill's largest partition.
    ///
    /// Taking partition `x` from `donor` raises that least final size by at
    /// most `max(0, x − pivot)`: `x` replaces the pivot in the cheapest fill
    /// (or is already in it). With a single receiver the donors' excesses sum
    /// to its slots, so this is exact, which is what the module's bound rests on.
    fn least_fill(&self, donor: usize, receiver: usize) -> (u128, u64) {
        let slots = self.nodes[receiver].slots();
        let mut pool: Vec<(Part, usize)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            pool.extend(n.held[..n.excess()].iter().map(|&p| (p, i)));
        }
        assert!(slots >= 1 && pool.len() >= slots, "donors have enough to fill the receiver");
        pool.select_nth_unstable(slots - 1);
        let fill = &pool[..slots];
        let least = self.nodes[receiver].bytes as u128 + fill.iter().map(|(p, _)| p.bytes as u128).sum::<u128>();
        // A donor's partitions in the fill are a prefix of its sorted `held`.
        let from_donor = fill.iter().filter(|(_, i)| *i == donor).count();
        let pivot = match from_donor {
            0 => fill.iter().map(|(p, _)| p.bytes).max().expect("slots >= 1"),
            k => self.nodes[donor].held[k - 1].bytes,
        };
        (least, pivot)
    }

    /// The size that would suit this move: what the receiver lacks per slot
    /// left, averaged with what the donor has to spare per partition it must
    /// give. A node that must empty has no byte preference.
    fn wanted_size(&self, donor: usize, receiver: usize) -> u64 {
        let r = &self.nodes[receiver];
        let want = per_slot(r.byte_deficit(), r.slots());
        let d = &self.nodes[donor];
        if !d.eligible {
            return want;
        }
        let spare = per_slot(-d.byte_deficit(), d.excess());
        ((want as u128 + spare as u128) / 2) as u64
    }

    fn transfer(&mut self, donor: usize, index: usize, receiver: usize) -> Move {
        let part = self.nodes[donor].held.remove(index);
        let d = &mut self.nodes[donor];
        d.count -= 1;
        d.bytes -= part.bytes;
        d.load -= part.ops_per_s as f64;
        let from = d.id;
        let r = &mut self.nodes[receiver];
        r.count += 1;
        r.bytes += part.bytes;
        r.load += part.ops_per_s as f64;
        Move { partition: part.id, from, to: r.id, bytes: part.bytes, ops_per_s: part.ops_per_s }
    }
}

/// Candidates looked at per node and swap: a node's busiest partitions to
/// give, the partner's quietest to take back.
const SWAP_CANDIDATES: usize = 32;

/// Count targets: every weighted share rounded down, then one more for as many
/// nodes with a fractional share as there are partitions left over. Those are
/// the nodes holding the most partitions relative to their rounded-down share
/// (each such node then keeps a partition rather than giving it away, which
/// makes the plan minimal), then the larger fraction, then the lower id.
fn count_targets(weights: &[u64], counts: &[usize], total: usize) -> Vec<usize> {
    let shares: Vec<(u128, u128)> = weights.iter().map(|&w| share(total as u128, w, weights)).collect();
    let mut targets: Vec<usize> = shares.iter().map(|&(whole, _)| whole as usize).collect();
    let left_over = total - targets.iter().sum::<usize>();
    let mut fractional: Vec<usize> = (0..weights.len()).filter(|&i| shares[i].1 > 0).collect();
    fractional.sort_by_key(|&i| (Reverse(counts[i] as i64 - targets[i] as i64), Reverse(shares[i].1), i));
    // The fractions sum to `left_over`, each below one, so more than
    // `left_over` nodes have one whenever anything is left over.
    assert!(fractional.len() >= left_over, "enough fractional shares for the left-over partitions");
    for &i in &fractional[..left_over] {
        targets[i] += 1;
    }
    assert_eq!(targets.iter().sum::<usize>(), total, "count targets cover every partition");
    targets
}

/// `amount · weight / Σ weights` as a whole part and a remainder (out of
/// `Σ weights`); `(0, 0)` when no weight is positive.
fn share(amount: u128, weight: u64, weights: &[u64]) -> (u128, u128) {
    let sum: u128 = weights.iter().map(|&w| w as u128).sum();
    if sum == 0 {
        return (0, 0);
    }
    let scaled = amount * weight as u128;
    (scaled / sum, scaled % sum)
}

/// `amount` (clamped at 0) spread over `slots`.
fn per_slot(amount: i128, slots: usize) -> u64 {
    (amount.max(0) / slots.max(1) as i128).min(u64::MAX as i128) as u64
}

/// The index in `parts` (ascending, non-empty) of the partition whose size is
/// closest to `wanted`; the smaller size on a tie, the lowest id among equal
/// sizes.
fn closest(parts: &[Part], wanted: u64) -> usize {
    let above = parts.partition_point(|p| p.bytes < wanted);
    let Some(last_below) = above.checked_sub(1) else {
        return 0;
    };
    let below = parts.partition_point(|p| p.bytes < parts[last_below].bytes);
    if above == parts.len() || wanted - parts[below].bytes <= parts[above].bytes - wanted {
        below
    } else {
        above
    }
}

#[cfg(test)]
mod tests;
