//! Automatic rebalancing: the leader starts a rebalance by itself when the
//! cluster's membership changed (a node joined, is draining, came back
//! active, changed weight) and the plan has moves, once the membership has
//! held still for a settling time.
//!
//! Off by default (`[migration] auto_rebalance`): moving data is the
//! operator's decision until they hand it over. When on:
//!
//! - It runs the configured default stages (`rebalance_stages`), so a
//!   canary and bakes apply to automatic rebalances as to manual ones.
//! - It starts at most one rebalance per membership: every rebalance
//!   records the membership it planned for ([`digest`]), and while the
//!   membership equals the last rebalance's, nothing starts again, whatever
//!   that rebalance's end. So a rebalance an operator cancelled, or that
//!   failed or halted, is not restarted behind their back; a change to the
//!   membership (or a manual `rebalance start`) is what starts the next.
//! - It waits for the membership to hold still for `settle_ms` (nodes
//!   joining one after another make one rebalance, not one per node), and
//!   for every node to be healthy (a rebalance onto a sick node would only
//!   pause at its health gate).
//!
//! With `balance_load` configured, uneven client load starts one too (a
//! *load rebalance*: swaps of busy partitions for quiet ones, see
//! [`crate::plan`]), on the same membership, when:
//!
//! - the plan, with its load phase, has moves: the busiest node carries
//!   more than `1 + tolerance` of its share of a cluster load of at least
//!   `min_ops_per_s` (per-partition loads are minute averages already), and
//!   has for the settling time;
//! - the last rebalance ended DONE at least the cooldown
//!   (`load_rebalance_cooldown_ms`, 30 minutes) ago: one that was
//!   cancelled, failed or halted leaves the cluster to the operator until
//!   the membership changes, and the cooldown keeps load that wanders from
//!   partition to partition from keeping data in motion.
//!
//! The decision ([`decide`]) is a pure function of what the tick sees; the
//! times the membership last changed and the load turned uneven are kept
//! in memory, so a new leader waits a full settling time before starting
//! anything.

use crate::Coordinator;
use crate::rebalance::{self, Rebalance};
use evenkeel_types::routing::{NodeInfo, NodeState};
use parking_lot::Mutex;
use std::hash::{Hash, Hasher};

/// What the planner's input depends on in a membership: ids, weights,
/// drain flags. A digest of it, the same in every process and release.
pub fn digest(members: &[NodeInfo]) -> u64 {
    let mut m: Vec<(u32, u32, bool)> = members.iter().map(|n| (n.id, n.weight, n.state == NodeState::Draining)).collect();
    m.sort_unstable();
    // FNV-1a over the fields' bytes: stable, unlike std's `DefaultHasher`.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for (id, weight, draining) in m {
        id.hash(&mut h);
        weight.hash(&mut h);
        draining.hash(&mut h);
    }
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// What one tick sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub now_ms: u64,
    /// The membership's digest now.
    pub membership: u64,
    /// When this coordinator first saw the membership as it is now.
    pub membership_since_ms: u64,
    /// The last rebalance, if any.
    pub last: Option<Last>,
    /// Moves the plan would make now (with its load phase, if configured).
    pub planned_moves: usize,
    /// Of those, swaps of the load phase (two moves each).
    pub load_swaps: usize,
    /// Since when this coordinator has seen the plan call for swaps.
    pub uneven_since_ms: u64,
    /// Nodes that are not healthy now.
    pub unhealthy: usize,
    pub settle_ms: u64,
    pub cooldown_ms: u64,
}

/// The last rebalance as [`decide`] needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Last {
    pub active: bool,
    /// The membership it planned for (None: recorded before digests were
    /// kept).
    pub membership: Option<u64>,
    /// It ended DONE.
    pub done: bool,
    pub finished_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Start,
    /// Nothing to do, and why (for logs and status).
    Wait(&'static str),
}

pub fn decide(i: &Input) -> Decision {
    let settled = |since: u64| i.now_ms.saturating_sub(since) >= i.settle_ms;
    match i.last {
        Some(Last { active: true, .. }) => return Decision::Wait("a rebalance is running"),
        Some(last) if last.membership == Some(i.membership) => {
            // The membership is as planned for: only load may call for more.
            if i.load_swaps == 0 {
                return Decision::Wait("the last rebalance planned for this membership");
            }
            if !last.done {
                return Decision::Wait("load is uneven, but the last rebalance did not finish: left to the operator");
            }
            if i.now_ms.saturating_sub(last.finished_ms.unwrap_or(0)) < i.cooldown_ms {
                return Decision::Wait("load is uneven: cooling down after the last rebalance");
            }
        }
        _ => {}
    }
    if i.planned_moves == 0 {
        return Decision::Wait("balanced");
    }
    // A plan of swaps alone is for load, which must stay uneven a while.
    if i.planned_moves == 2 * i.load_swaps && !settled(i.uneven_since_ms) {
        return Decision::Wait("load is uneven: settling");
    }
    if !settled(i.membership_since_ms) {
        return Decision::Wait("the membership changed recently: settling");
    }
    if i.unhealthy > 0 {
        return Decision::Wait("a node is unhealthy");
    }
    Decision::Start
}

/// The membership this coordinator last saw and since when, and what it
/// decided last.
#[derive(Default)]
pub struct Watch {
    seen: Mutex<Option<(u64, u64)>>,
    /// Since when the plan has called for swaps.
    uneven: Mutex<Option<u64>>,
    last: Mutex<Option<String>>,
}

impl Watch {
    /// What automatic rebalancing decided at its last look, in words
    /// (None before its first look).
    pub fn last_decision(&self) -> Option<String> {
        self.last.lock().clone()
    }

    fn note(&self, what: &str) {
        *self.last.lock() = Some(what.to_string());
    }

    /// Since when the plan has called for swaps (now, if it did not at the
    /// last look); forgotten when it does not.
    fn uneven_since(&self, swaps: usize, now_ms: u64) -> u64 {
        let mut uneven = self.uneven.lock();
        if swaps == 0 {
            *uneven = None;
            return now_ms;
        }
        *uneven.get_or_insert(now_ms)
    }

    /// Forgets since when load has been uneven.
    fn forget_uneven(&self) {
        *self.uneven.lock() = None;
    }

    /// When `membership` was first seen (now, if it differs from the last).
    fn since(&self, membership: u64, now_ms: u64) -> u64 {
        let mut seen = self.seen.lock();
        match *seen {
            Some((m, since)) if m == membership => since,
            _ => {
                *seen = Some((membership, now_ms));
                now_ms
            }
        }
    }
}

/// One leader tick: starts a rebalance if [`decide`] says so.
pub async fn tick(coord: &Coordinator, settle_ms: u64, cooldown_ms: u64) -> Result<Option<Rebalance>, rebalance::RebalanceError> {
    let now_ms = evenkeel_types::unix_ms();
    let members = crate::nodes::members(coord.meta()).await?;
    let membership = digest(&members);
    let membership_since_ms = coord.auto_watch().since(membership, now_ms);
    let last = rebalance::load(coord.meta()).await?.map(|(r, _)| Last {
        active: r.state.is_active(),
        membership: r.membership,
        done: r.state == rebalance::State::Done,
        finished_ms: r.finished_ms,
    });
    let load_on = coord.balance_load().is_some();
    // Cheap checks first: planning reads the routing table and stats.
    let early = Input {
        now_ms,
        membership,
        membership_since_ms,
        last,
        planned_moves: 1,
        load_swaps: load_on as usize,
        uneven_since_ms: 0,
        unhealthy: 0,
        settle_ms,
        cooldown_ms,
    };
    if let Decision::Wait(why) = decide(&early) {
        coord.auto_watch().note(why);
        // The plan is not looked at meanwhile (a rebalance runs, or cools
        // down): uneven load must be seen anew for its settling time.
        coord.auto_watch().forget_uneven();
        return Ok(None);
    }
    let status = coord.status();
    // The stats poll has not seen every member yet: wait for it.
    if members.iter().any(|m| !status.nodes.iter().any(|n| n.id == m.id)) {
        coord.auto_watch().note("waiting for the stats of a new node");
        return Ok(None);
    }
    let plan = rebalance::current_plan(coord).await?;
    let load_swaps = plan.load.map_or(0, |l| l.swaps);
    let input = Input {
        planned_moves: plan.moves.len(),
        load_swaps,
        uneven_since_ms: coord.auto_watch().uneven_since(load_swaps, now_ms),
        unhealthy: status.nodes.iter().filter(|n| !n.healthy).count(),
        ..early
    };
    match decide(&input) {
        Decision::Start => {
            let options = rebalance::StartOptions {
                limits: coord.rebalance_limits(),
                stages: coord.rebalance_stages(),
                on_stage_failure: Default::default(),
                auto: true,
                stage_p99_ratio_max: coord.stage_p99_ratio_max(),
                load: coord.balance_load(),
                moves: None,
            };
            let r = rebalance::start(coord, options).await?;
            let why = if last.is_some_and(|l| l.membership == Some(membership)) { "load uneven" } else { "membership changed" };
            tracing::info!(rebalance = %r.id, moves = r.plan.moves.len(), swaps = load_swaps, "{why}: rebalance started automatically");
            metrics::counter!("evenkeel_rebalance_auto_started_total").increment(1);
            coord.auto_watch().note(&format!("started rebalance {}", r.id));
            Ok(Some(r))
        }
        Decision::Wait(why) => {
            coord.auto_watch().note(why);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, weight: u32, state: NodeState) -> NodeInfo {
        NodeInfo { id, addr: format!("10.0.0.{id}:7000"), weight, state, data_dir: None, zone: None }
    }

    #[test]
    fn the_digest_covers_what_the_planner_reads_and_nothing_else() {
        let three = vec![node(1, 100, NodeState::Active), node(2, 100, NodeState::Active), node(3, 100, NodeState::Active)];
        let d = digest(&three);
        let mut reordered = three.clone();
        reordered.reverse();
        assert_eq!(digest(&reordered), d, "order does not matter");
        let mut moved = three.clone();
        moved[0].addr = "10.9.9.9:1".into();
        moved[0].zone = Some("a".into());
        assert_eq!(digest(&moved), d, "addresses and zones do not change the plan");
        let mut four = three.clone();
        four.push(node(4, 100, NodeState::Active));
        let mut heavier = three.clone();
        heavier[1].weight = 200;
        let mut draining = three.clone();
        draining[2].state = NodeState::Draining;
        let all = [d, digest(&four), digest(&heavier), digest(&draining)];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| a != b), "{all:?}");
        }
        // Stable across processes and releases: a fixed value.
        assert_eq!(digest(&[]), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn starts_once_per_membership_after_it_settles() {
        let base = input();
        assert_eq!(decide(&base), Decision::Start, "a new cluster's first membership change");
        assert_eq!(decide(&Input { membership_since_ms: 80_000, ..base.clone() }), Decision::Wait("the membership changed recently: settling"));
        assert_eq!(decide(&Input { last: Some(last(true, Some(6), false)), ..base.clone() }), Decision::Wait("a rebalance is running"));
        // Whatever the last one's end (done, cancelled, failed), not again
        // for the membership it planned for.
        for done in [true, false] {
            assert_eq!(decide(&Input { last: Some(last(false, Some(7), done)), ..base.clone() }), Decision::Wait("the last rebalance planned for this membership"));
        }
        assert_eq!(decide(&Input { last: Some(last(false, Some(6), false)), ..base.clone() }), Decision::Start, "the membership changed since");
        assert_eq!(decide(&Input { last: Some(last(false, None, false)), ..base.clone() }), Decision::Start);
        assert_eq!(decide(&Input { planned_moves: 0, ..base.clone() }), Decision::Wait("balanced"));
        assert_eq!(decide(&Input { unhealthy: 1, ..base.clone() }), Decision::Wait("a node is unhealthy"));
    }

    fn input() -> Input {
        Input {
            now_ms: 100_000,
            membership: 7,
            membership_since_ms: 60_000,
            last: None,
            planned_moves: 8,
            load_swaps: 0,
            uneven_since_ms: 0,
            unhealthy: 0,
            settle_ms: 30_000,
            cooldown_ms: 1_800_000,
        }
    }

    fn last(active: bool, membership: Option<u64>, done: bool) -> Last {
        Last { active, membership, done, finished_ms: Some(10_000) }
    }

    #[test]
    fn uneven_load_starts_a_rebalance_after_the_cooldown_if_the_last_one_finished() {
        let now = 10_000 + 1_800_000;
        let base = Input { now_ms: now, last: Some(last(false, Some(7), true)), planned_moves: 4, load_swaps: 2, uneven_since_ms: now - 30_000, ..input() };
        assert_eq!(decide(&base), Decision::Start, "same membership, uneven load, cooled down, settled");
        assert_eq!(decide(&Input { load_swaps: 0, planned_moves: 0, ..base.clone() }), Decision::Wait("the last rebalance planned for this membership"));
        assert_eq!(decide(&Input { now_ms: now - 1, uneven_since_ms: 0, ..base.clone() }), Decision::Wait("load is uneven: cooling down after the last rebalance"));
        assert_eq!(decide(&Input { uneven_since_ms: now - 29_999, ..base.clone() }), Decision::Wait("load is uneven: settling"));
        let first = Input { last: None, uneven_since_ms: now - 1, ..base.clone() };
        assert_eq!(decide(&first), Decision::Wait("load is uneven: settling"), "no rebalance yet: load settles all the same");
        assert_eq!(decide(&Input { planned_moves: 6, ..first }), Decision::Start, "moves for counts too: the membership's settling is what counts");
        assert_eq!(
            decide(&Input { last: Some(last(false, Some(7), false)), ..base.clone() }),
            Decision::Wait("load is uneven, but the last rebalance did not finish: left to the operator")
        );
        assert_eq!(decide(&Input { unhealthy: 1, ..base.clone() }), Decision::Wait("a node is unhealthy"));
        assert_eq!(decide(&Input { last: Some(last(true, Some(7), false)), ..base }), Decision::Wait("a rebalance is running"));
    }

    #[test]
    fn the_watch_dates_uneven_load_from_when_it_was_first_seen() {
        let w = Watch::default();
        assert_eq!(w.uneven_since(0, 5), 5);
        assert_eq!(w.uneven_since(2, 10), 10);
        assert_eq!(w.uneven_since(1, 40), 10, "still uneven");
        assert_eq!(w.uneven_since(0, 50), 50);
        assert_eq!(w.uneven_since(3, 60), 60, "uneven again: a new start");
        w.forget_uneven();
        assert_eq!(w.uneven_since(3, 90), 90, "not looked at in between (a rebalance ran): a new start");
    }

    #[test]
    fn the_watch_dates_a_membership_from_when_it_was_first_seen() {
        let w = Watch::default();
        assert_eq!(w.since(1, 10), 10);
        assert_eq!(w.since(1, 50), 10);
        assert_eq!(w.since(2, 60), 60);
        assert_eq!(w.since(1, 70), 70, "back to an earlier membership counts as a change");
    }
}
