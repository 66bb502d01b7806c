//! Tests of the planner: the examples from the issue, the add-a-node bound as
//! a property, and invariants every plan must keep on arbitrary input.

use super::*;
use proptest::prelude::*;

const MB: u64 = 1 << 20;

fn standard_nodes(ids: std::ops::RangeInclusive<NodeId>) -> Vec<NodeLoad> {
    ids.map(|id| NodeLoad { id, weight: 100, draining: false }).collect()
}

/// Partition `p` on `owners[p % owners.len()]`, as `RoutingTable::bootstrap`
/// places them, with `sizes[p]` bytes.
fn round_robin(owners: &[NodeId], sizes: &[u64]) -> Vec<PartitionLoad> {
    sizes
        .iter()
        .enumerate()
        .map(|(p, &bytes)| PartitionLoad { id: p as PartitionId, owner: owners[p % owners.len()], bytes, ops_per_s: 0 })
        .collect()
}

fn count_of(partitions: &[PartitionLoad], node: NodeId) -> usize {
    partitions.iter().filter(|p| p.owner == node).count()
}

/// Sizes from a fixed linear congruential sequence: varied but reproducible.
fn varied_sizes(n: usize, max: u64) -> Vec<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % max
        })
        .collect()
}

/// The fewest bytes any plan could move when `moved_from[node]` partitions
/// must leave each node: each node's smallest ones.
fn least_bytes(partitions: &[PartitionLoad], moved_from: &BTreeMap<NodeId, usize>) -> u64 {
    moved_from
        .iter()
        .map(|(&node, &k)| {
            let mut sizes: Vec<u64> = partitions.iter().filter(|p| p.owner == node).map(|p| p.bytes).collect();
            sizes.sort_unstable();
            sizes[..k].iter().sum::<u64>()
        })
        .sum()
}

fn moves_from(plan: &Plan) -> BTreeMap<NodeId, usize> {
    let mut from = BTreeMap::new();
    for m in &plan.moves {
        *from.entry(m.from).or_insert(0) += 1;
    }
    from
}

#[test]
fn adding_a_fourth_node_moves_a_quarter() {
    let mut nodes = standard_nodes(1..=3);
    let parts = round_robin(&[1, 2, 3], &[MB; 128]);
    nodes.push(NodeLoad { id: 4, weight: 100, draining: false });
    let plan = plan(&nodes, &parts).unwrap();
    assert_eq!(plan.moves.len(), 32);
    assert!(plan.moves.iter().all(|m| m.to == 4));
    assert_eq!(plan.moved_bytes, 32 * MB);
    assert!(plan.moved_bytes <= plan.total_bytes / 4 + MB);
    let after = apply(&parts, &plan);
    for id in 1..=4 {
        assert_eq!(count_of(&after, id), 32, "node {id}");
    }
    let expected: Vec<NodeSummary> = (1..=4).map(|id| NodeSummary { id, partitions: 32, bytes: 32 * MB }).collect();
    assert_eq!(plan.after, expected);
    assert_eq!(plan.before[3], NodeSummary { id: 4, partitions: 0, bytes: 0 });
}

#[test]
fn bytes_decide_which_partitions_move() {
    // Moving the two 10-byte partitions would balance counts but leave the
    // new node with 20 of 100 bytes; a 10 and a 40 balance both.
    let parts = vec![
        PartitionLoad { id: 0, owner: 1, bytes: 10, ops_per_s: 0 },
        PartitionLoad { id: 1, owner: 1, bytes: 40, ops_per_s: 0 },
        PartitionLoad { id: 2, owner: 1, bytes: 10, ops_per_s: 0 },
        PartitionLoad { id: 3, owner: 1, bytes: 40, ops_per_s: 0 },
    ];
    let plan = plan(&standard_nodes(1..=2), &parts).unwrap();
    assert_eq!(plan.moves, vec![Move { partition: 0, from: 1, to: 2, bytes: 10, ops_per_s: 0 }, Move { partition: 1, from: 1, to: 2, bytes: 40, ops_per_s: 0 }]);
    assert_eq!(plan.after, vec![NodeSummary { id: 1, partitions: 2, bytes: 50 }, NodeSummary { id: 2, partitions: 2, bytes: 50 }]);
}

#[test]
fn one_partition_over_the_share_can_force_more_than_a_share_of_bytes() {
    // Ten nodes, 22 partitions round-robin: nodes 1 and 2 hold three, the
    // others two. An eleventh node's share is exactly two, so nodes 1 and 2
    // must each give one, and all their partitions are 1 MB while the others
    // are empty. Every plan reaching the targets moves 2 MB, more than the
    // 6/11 MB share plus the largest partition; the planner moves just that.
    let owners: Vec<NodeId> = (1..=10).collect();
    let sizes: Vec<u64> = (0..22).map(|p| if p % 10 < 2 { MB } else { 0 }).collect();
    let parts = round_robin(&owners, &sizes);
    let plan = plan(&standard_nodes(1..=11), &parts).unwrap();
    assert_eq!(plan.moves.len(), 2);
    assert_eq!(plan.moved_bytes, 2 * MB);
    assert_eq!(plan.moved_bytes, least_bytes(&parts, &moves_from(&plan)));
    assert!(plan.moved_bytes > plan.total_bytes / 11 + MB);
}

#[test]
fn weight_200_takes_twice_the_partitions() {
    let nodes = vec![
        NodeLoad { id: 1, weight: 100, draining: false },
        NodeLoad { id: 2, weight: 100, draining: false },
        NodeLoad { id: 3, weight: 200, draining: false },
        NodeLoad { id: 4, weight: 0, draining: false },
    ];
    let parts = round_robin(&[1, 2, 4], &varied_sizes(130, 4 * MB));
    let plan = plan(&nodes, &parts).unwrap();
    let after = apply(&parts, &plan);
    let (one, two, three) = (count_of(&after, 1), count_of(&after, 2), count_of(&after, 3));
    // Shares are 32.5, 32.5 and 65.
    assert_eq!((one + two, three), (65, 65));
    assert!(one.abs_diff(two) <= 1);
    assert!(three.abs_diff(2 * one) <= 1 && three.abs_diff(2 * two) <= 1, "{one} {two} {three}");
    assert_eq!(count_of(&after, 4), 0, "weight 0 keeps nothing");
    assert!(plan.moves.iter().all(|m| m.to != 4));
}

#[test]
fn draining_node_is_emptied_evenly() {
    let nodes: Vec<NodeLoad> = (1..=4).map(|id| NodeLoad { id, weight: 100, draining: id == 4 }).collect();
    let parts = round_robin(&[1, 2, 3, 4], &varied_sizes(128, 8 * MB));
    let plan = plan(&nodes, &parts).unwrap();
    assert_eq!(plan.moves.len(), 32);
    assert!(plan.moves.iter().all(|m| m.from == 4 && m.to != 4));
    let after = apply(&parts, &plan);
    assert_eq!(count_of(&after, 4), 0);
    let counts: Vec<usize> = (1..=3).map(|id| count_of(&after, id)).collect();
    assert_eq!(counts, vec![43, 43, 42], "128/3 each, the two left over to the lowest ids");
    assert_eq!(plan.after[3], NodeSummary { id: 4, partitions: 0, bytes: 0 });
}

#[test]
fn nowhere_to_go() {
    let only = [NodeLoad { id: 1, weight: 100, draining: true }];
    let parts = round_robin(&[1], &[MB; 4]);
    assert_eq!(plan(&only, &parts), Err(PlanError::NoEligibleNodes));
    let weightless = [NodeLoad { id: 1, weight: 0, draining: false }];
    assert_eq!(plan(&weightless, &parts), Err(PlanError::NoEligibleNodes));
    // Nothing to place is not an error.
    assert_eq!(plan(&only, &[]).unwrap().moves, vec![]);
}

#[test]
fn balanced_input_gives_an_empty_plan() {
    let parts = round_robin(&[1, 2, 3], &varied_sizes(128, MB));
    let plan = plan(&standard_nodes(1..=3), &parts).unwrap();
    assert_eq!(plan.moves, vec![]);
    assert_eq!(plan.moved_bytes, 0);
    assert_eq!(plan.before, plan.after);
    assert_eq!(plan.total_bytes, parts.iter().map(|p| p.bytes).sum::<u64>());
}

#[test]
fn deterministic_whatever_the_input_order() {
    let mut nodes = standard_nodes(1..=5);
    nodes[4].draining = true;
    let parts = round_robin(&[1, 2, 5], &varied_sizes(200, 8 * MB));
    let first = plan(&nodes, &parts).unwrap();
    assert_eq!(plan(&nodes, &parts).unwrap(), first);
    let (mut nodes_rev, mut parts_rev) = (nodes.clone(), parts.clone());
    nodes_rev.reverse();
    parts_rev.reverse();
    assert_eq!(plan(&nodes_rev, &parts_rev).unwrap(), first);
}

#[test]
fn bad_input_is_rejected() {
    let nodes = standard_nodes(1..=2);
    let mut parts = round_robin(&[1, 2], &[1; 4]);
    parts[2].owner = 9;
    assert_eq!(plan(&nodes, &parts), Err(PlanError::UnknownOwner(2, 9)));
    parts[2].owner = 1;
    parts[3].id = 0;
    assert_eq!(plan(&nodes, &parts), Err(PlanError::DuplicatePartition(0)));
    let twice = [nodes[0], nodes[1], nodes[0]];
    assert_eq!(plan(&twice, &round_robin(&[1], &[1])), Err(PlanError::DuplicateNode(1)));
    let huge = round_robin(&[1, 2], &[u64::MAX, 1]);
    assert_eq!(plan(&nodes, &huge), Err(PlanError::TooManyBytes));
}

#[test]
#[should_panic(expected = "moves from its owner")]
fn applying_a_plan_to_other_input_panics() {
    let parts = round_robin(&[1], &[1, 1]);
    let plan = plan(&standard_nodes(1..=2), &parts).unwrap();
    apply(&round_robin(&[2], &[1, 1]), &plan);
}

/// N nodes with P partitions spread round-robin, sizes below 10 MB.
fn grown_cluster() -> impl Strategy<Value = (usize, Vec<u64>)> {
    (1usize..=8).prop_flat_map(|n| (Just(n), (n..=512).prop_flat_map(|p| proptest::collection::vec(0..10 * MB, p))))
}

proptest! {
    /// The bound from the module documentation, exactly: adding an (N+1)th
    /// node to N balanced equal-weight nodes moves ⌊P/(N+1)⌋ partitions, all
    /// to the new node, and at most max(L, ⌊B/(N+1)⌋) bytes, L being the
    /// fewest bytes any plan that reaches the count targets moves.
    #[test]
    fn adding_a_node_is_bounded((n, sizes) in grown_cluster()) {
        let owners: Vec<NodeId> = (1..=n as NodeId).collect();
        let parts = round_robin(&owners, &sizes);
        let nodes = standard_nodes(1..=n as NodeId + 1);
        let plan = plan(&nodes, &parts).unwrap();
        let (p, share) = (parts.len(), plan.total_bytes / (n as u64 + 1));
        prop_assert_eq!(plan.moves.len(), p / (n + 1));
        prop_assert!(plan.moves.len() <= p.div_ceil(n + 1));
        prop_assert!(plan.moves.iter().all(|m| m.to == n as NodeId + 1));
        let least = least_bytes(&parts, &moves_from(&plan));
        prop_assert!(plan.moved_bytes <= least.max(share), "moved {} least {} share {}", plan.moved_bytes, least, share);
        let after = apply(&parts, &plan);
        for node in &nodes {
            // Within one of the share P/(N+1): its floor or its ceiling.
            let count = count_of(&after, node.id);
            prop_assert!(count >= p / (n + 1) && count <= p.div_ceil(n + 1), "node {} holds {}", node.id, count);
        }
        prop_assert_eq!(super::plan(&nodes, &after).unwrap().moves, vec![]);
    }

    /// The same bound holds when load picks among the partitions the byte
    /// guard allows (the count phase of a plan that balances load).
    #[test]
    fn adding_a_node_is_bounded_when_load_picks_the_partitions((n, sizes) in grown_cluster(), seed in any::<u64>()) {
        let owners: Vec<NodeId> = (1..=n as NodeId).collect();
        let mut parts = round_robin(&owners, &sizes);
        let mut x = seed | 1;
        for p in &mut parts {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            p.ops_per_s = (x >> 33) % 2_000;
        }
        let nodes = standard_nodes(1..=n as NodeId + 1);
        let options = LoadBalance { max_swaps: 0, min_ops_per_s: 0, ..LoadBalance::default() };
        let plan = plan_with(&nodes, &parts, Some(options)).unwrap();
        let share = plan.total_bytes / (n as u64 + 1);
        prop_assert_eq!(plan.moves.len(), parts.len() / (n + 1));
        prop_assert!(plan.moves.iter().all(|m| m.to == n as NodeId + 1));
        let least = least_bytes(&parts, &moves_from(&plan));
        prop_assert!(plan.moved_bytes <= least.max(share), "moved {} least {} share {}", plan.moved_bytes, least, share);
    }

    /// Invariants on arbitrary clusters: weights, draining and weightless
    /// nodes, any owners.
    #[test]
    fn every_plan_is_valid_minimal_and_idempotent(
        specs in proptest::collection::vec((0u32..=300, proptest::bool::weighted(0.2)), 1..7),
        placed in proptest::collection::vec((any::<prop::sample::Index>(), 0u64..1000), 0..200),
    ) {
        let nodes: Vec<NodeLoad> = specs.iter().enumerate().map(|(i, &(weight, draining))| NodeLoad { id: 10 + i as NodeId, weight, draining }).collect();
        let parts: Vec<PartitionLoad> = placed.iter().enumerate().map(|(p, (owner, bytes))| PartitionLoad { id: p as PartitionId, owner: nodes[owner.index(nodes.len())].id, bytes: *bytes, ops_per_s: 0 }).collect();
        let eligible: Vec<&NodeLoad> = nodes.iter().filter(|n| !n.draining && n.weight > 0).collect();
        let result = plan(&nodes, &parts);
        if eligible.is_empty() && !parts.is_empty() {
            prop_assert_eq!(result, Err(PlanError::NoEligibleNodes));
            return Ok(());
        }
        let plan = result.unwrap();
        check_moves(&nodes, &parts, &plan)?;
        let after = apply(&parts, &plan);
        check_counts(&nodes, &parts, &after, &plan)?;
        prop_assert_eq!(super::plan(&nodes, &after).unwrap().moves, vec![]);
        prop_assert_eq!(super::plan(&nodes, &parts).unwrap(), plan);
    }
}

/// Each move takes a partition from its owner to an eligible other node, and
/// no partition moves twice; the summaries and byte totals agree with it.
fn check_moves(nodes: &[NodeLoad], parts: &[PartitionLoad], plan: &Plan) -> Result<(), TestCaseError> {
    let owner: BTreeMap<PartitionId, &PartitionLoad> = parts.iter().map(|p| (p.id, p)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for m in &plan.moves {
        prop_assert!(seen.insert(m.partition), "partition {} moves twice", m.partition);
        let p = owner[&m.partition];
        prop_assert_eq!((m.from, m.bytes), (p.owner, p.bytes));
        prop_assert_ne!(m.to, m.from);
        let to = nodes.iter().find(|n| n.id == m.to).unwrap();
        prop_assert!(!to.draining && to.weight > 0, "move to ineligible node {}", to.id);
    }
    prop_assert_eq!(plan.moved_bytes, plan.moves.iter().map(|m| m.bytes).sum::<u64>());
    prop_assert_eq!(plan.total_bytes, parts.iter().map(|p| p.bytes).sum::<u64>());
    let after = apply(parts, plan);
    for (summaries, state) in [(&plan.before, parts), (&plan.after, &after[..])] {
        for s in summaries {
            let held: Vec<&PartitionLoad> = state.iter().filter(|p| p.owner == s.id).collect();
            prop_assert_eq!((s.partitions, s.bytes), (held.len(), held.iter().map(|p| p.bytes).sum::<u64>()));
        }
        prop_assert_eq!(summaries.len(), nodes.len());
    }
    Ok(())
}

/// Afterwards ineligible nodes are empty and every eligible node holds its
/// weighted share rounded down or up; and no plan could get there in fewer
/// moves: each node must lose what it holds above its share rounded up and
/// gain what it lacks below its share rounded down.
fn check_counts(nodes: &[NodeLoad], parts: &[PartitionLoad], after: &[PartitionLoad], plan: &Plan) -> Result<(), TestCaseError> {
    let weight = |n: &NodeLoad| if n.draining { 0 } else { n.weight as usize };
    let total_weight: usize = nodes.iter().map(weight).sum();
    let (mut must_lose, mut must_gain) = (0, 0);
    for n in nodes {
        let (low, high) = match total_weight {
            0 => (0, 0),
            w => (parts.len() * weight(n) / w, (parts.len() * weight(n)).div_ceil(w)),
        };
        let (before, now) = (count_of(parts, n.id), count_of(after, n.id));
        prop_assert!(low <= now && now <= high, "node {} holds {}, share is {}..={}", n.id, now, low, high);
        must_lose += before.saturating_sub(high);
        must_gain += low.saturating_sub(before);
    }
    prop_assert_eq!(plan.moves.len(), must_lose.max(must_gain));
    Ok(())
}

fn loaded(owners: &[NodeId], loads: &[u64]) -> Vec<PartitionLoad> {
    loads.iter().enumerate().map(|(p, &ops)| PartitionLoad { id: p as PartitionId, owner: owners[p % owners.len()], bytes: MB, ops_per_s: ops }).collect()
}

#[test]
fn swaps_even_out_a_busy_node_and_keep_every_count() {
    let nodes = standard_nodes(1..=3);
    // Node 1 holds partitions 0, 3, 6, each at 100 ops/s; the others 10.
    let loads: Vec<u64> = (0..9).map(|p| if p % 3 == 0 { 100 } else { 10 }).collect();
    let parts = loaded(&[1, 2, 3], &loads);
    assert!(plan(&nodes, &parts).unwrap().moves.is_empty(), "counts and bytes are even");
    let p = plan_with(&nodes, &parts, Some(LoadBalance::default())).unwrap();
    let load = p.load.unwrap();
    assert!((load.spread_before - 2.5).abs() < 1e-9, "300 of 360 ops/s on a third of the cluster: {load:?}");
    // One busy partition per node: even.
    assert_eq!((load.swaps, load.spread_after), (2, 1.0), "{load:?}");
    assert_eq!(p.moves.len(), 4);
    // Each swap gives a busy partition of node 1 for a quiet one.
    for pair in p.moves.chunks(2) {
        assert_eq!((pair[0].from, pair[0].ops_per_s, pair[1].to, pair[1].ops_per_s), (1, 100, 1, 10), "{pair:?}");
        assert_eq!(pair[0].to, pair[1].from);
    }
    let after = apply(&parts, &p);
    for id in 1..=3 {
        assert_eq!(count_of(&after, id), 3, "node {id}");
    }
    assert_eq!(p.after, p.before, "a swap of equal sizes changes no summary");
    // Planning again on the result: nothing left to even out.
    let again = plan_with(&nodes, &after, Some(LoadBalance::default())).unwrap();
    assert!(again.moves.is_empty(), "{again:?}");
}

#[test]
fn a_joining_node_takes_the_busy_nodes_load_in_the_count_phase() {
    // Node 1's four partitions at 100 ops/s, the others' at 10; all 1 MB.
    let mut nodes = standard_nodes(1..=3);
    let loads: Vec<u64> = (0..12).map(|p| if p % 3 == 0 { 100 } else { 10 }).collect();
    let parts = loaded(&[1, 2, 3], &loads);
    nodes.push(NodeLoad { id: 4, weight: 100, draining: false });
    let plain = plan(&nodes, &parts).unwrap();
    let p = plan_with(&nodes, &parts, Some(LoadBalance::default())).unwrap();
    let count_phase = &p.moves[..plain.moves.len()];
    assert_eq!(count_phase.len(), 3);
    for m in count_phase {
        assert_eq!((m.to, m.ops_per_s), (4, if m.from == 1 { 100 } else { 10 }), "{m:?}");
    }
    assert!(plain.moves.iter().any(|m| m.from == 1 && m.ops_per_s == 100), "by bytes alone node 1 gives one of its partitions too (all are busy)");
    // Node 1 still carries 300 of 480 ops/s: swaps even out the rest.
    let load = p.load.unwrap();
    assert!(load.spread_after <= 1.25 && load.swaps >= 1, "{load:?}");
    assert_eq!(p.moved_bytes, (3 + 2 * load.swaps as u64) * MB);
}

#[test]
fn a_hot_key_is_not_moved_around_and_a_quiet_cluster_is_left_alone() {
    let nodes = standard_nodes(1..=3);
    let mut loads = vec![1; 12];
    loads[0] = 1_000;
    let p = plan_with(&nodes, &loaded(&[1, 2, 3], &loads), Some(LoadBalance::default())).unwrap();
    assert!(p.moves.is_empty(), "moving the hot partition would only move the problem: {p:?}");
    assert!(p.load.unwrap().spread_before > 2.9);
    // 40 + 8 ops/s in all: under the 100 a load phase needs.
    let loads: Vec<u64> = (0..12).map(|p| if p % 3 == 0 { 10 } else { 1 }).collect();
    let p = plan_with(&nodes, &loaded(&[1, 2, 3], &loads), Some(LoadBalance::default())).unwrap();
    assert!(p.moves.is_empty());
    let p = plan_with(&nodes, &loaded(&[1, 2, 3], &loads), Some(LoadBalance { min_ops_per_s: 0, ..LoadBalance::default() })).unwrap();
    assert!(!p.moves.is_empty(), "with no minimum the same cluster is evened out");
}

#[test]
fn a_heavier_node_takes_more_load() {
    // Node 2 weighs 200: its share is half the load, and half the partitions.
    let nodes = vec![NodeLoad { id: 1, weight: 100, draining: false }, NodeLoad { id: 2, weight: 200, draining: false }, NodeLoad { id: 3, weight: 100, draining: false }];
    let owners = [1, 2, 2, 3];
    let loads: Vec<u64> = (0..16).map(|p| if owners[p % 4] == 2 { 10 } else { 60 }).collect();
    let parts = loaded(&owners, &loads);
    assert!(plan(&nodes, &parts).unwrap().moves.is_empty());
    let p = plan_with(&nodes, &parts, Some(LoadBalance::default())).unwrap();
    let load = p.load.unwrap();
    assert!(load.spread_before > 1.7 && load.spread_after <= 1.25 && load.swaps > 0, "{load:?}");
    assert!(p.moves.chunks(2).all(|pair| pair[0].to == 2 && pair[1].from == 2), "load goes to the heavy node: {p:?}");
}

proptest! {
    #[test]
    fn the_load_phase_keeps_counts_moves_each_partition_once_and_narrows_the_spread(
        owners in prop::collection::vec(0usize..4, 8..64),
        loads in prop::collection::vec(0u64..2_000, 64),
        sizes in prop::collection::vec(1u64..10 * MB, 64),
        add in any::<bool>(),
    ) {
        let mut nodes = standard_nodes(1..=4);
        if add {
            nodes.push(NodeLoad { id: 5, weight: 100, draining: false });
        }
        let parts: Vec<PartitionLoad> = owners.iter().enumerate().map(|(p, &o)| PartitionLoad { id: p as PartitionId, owner: o as NodeId + 1, bytes: sizes[p], ops_per_s: loads[p] }).collect();
        let plain = plan(&nodes, &parts).unwrap();
        let options = LoadBalance { tolerance: 0.1, max_swaps: 6, min_ops_per_s: 0 };
        let p = plan_with(&nodes, &parts, Some(options)).unwrap();
        // The count phase comes first: as many moves as without load (the
        // fewest), reaching the same counts (load may pick other
        // partitions, and so other donors next).
        let counts = Plan { moves: p.moves[..plain.moves.len()].to_vec(), ..plain.clone() };
        for n in &nodes {
            prop_assert_eq!(count_of(&apply(&parts, &counts), n.id), count_of(&apply(&parts, &plain), n.id));
        }
        let load = p.load.unwrap();
        prop_assert!(load.swaps <= options.max_swaps);
        prop_assert_eq!(p.moves.len(), counts.moves.len() + 2 * load.swaps);
        let mut seen = std::collections::BTreeSet::new();
        prop_assert!(p.moves.iter().all(|m| seen.insert(m.partition)), "each partition moves at most once");
        let after = apply(&parts, &p);
        let by_counts = apply(&parts, &counts);
        for n in &nodes {
            prop_assert_eq!(count_of(&after, n.id), count_of(&by_counts, n.id));
        }
        // Against the spread the count phase leaves (its own moves may
        // widen it: they balance counts and bytes, not load).
        let spread = |ps: &[PartitionLoad]| Cluster::new(&nodes, ps).unwrap().load_spread();
        let counted = spread(&by_counts);
        prop_assert!(load.spread_after <= counted + 1e-9, "{:?} after the count phase {}", load, counted);
        prop_assert!((spread(&after) - load.spread_after).abs() < 1e-9);
        prop_assert!((spread(&parts) - load.spread_before).abs() < 1e-9);
        // No swap takes a node past 110% of its byte share unless it was there.
        let total: u64 = parts.iter().map(|q| q.bytes).sum();
        let bytes_of = |ps: &[PartitionLoad], id: NodeId| ps.iter().filter(|q| q.owner == id).map(|q| q.bytes).sum::<u64>();
        for n in &nodes {
            let share = total / nodes.len() as u64;
            let cap = bytes_of(&by_counts, n.id).max(share + share / 10);
            prop_assert!(bytes_of(&after, n.id) <= cap, "node {} holds {} > {}", n.id, bytes_of(&after, n.id), cap);
        }
        prop_assert_eq!(p.moved_bytes, p.moves.iter().map(|m| m.bytes).sum::<u64>());
        let expected: Vec<NodeSummary> = p.after.iter().map(|s| NodeSummary { id: s.id, partitions: count_of(&after, s.id), bytes: after.iter().filter(|q| q.owner == s.id).map(|q| q.bytes).sum() }).collect();
        prop_assert_eq!(&p.after, &expected);
    }
}

#[test]
fn a_computed_plan_given_back_is_the_same_plan() {
    let mut nodes = standard_nodes(1..=4);
    nodes[2].draining = true;
    let parts = round_robin(&[1, 2, 3], &varied_sizes(48, 10 * MB));
    let computed = plan(&nodes, &parts).unwrap();
    assert!(!computed.moves.is_empty());
    let specs: Vec<MoveSpec> = computed.moves.iter().map(MoveSpec::from).collect();
    assert_eq!(given(&nodes, &parts, &specs).unwrap(), computed, "the reviewed plan runs as computed");
    // A subset runs as given, in its order, with summaries that add up.
    let some = [specs[3], specs[0]];
    let p = given(&nodes, &parts, &some).unwrap();
    assert_eq!(p.moves.iter().map(|m| m.partition).collect::<Vec<_>>(), vec![specs[3].partition, specs[0].partition]);
    assert_eq!(p.moved_bytes, parts[specs[3].partition as usize].bytes + parts[specs[0].partition as usize].bytes);
    assert_eq!(p.before, computed.before);
    let after = apply(&parts, &p);
    for s in &p.after {
        assert_eq!(s.partitions, count_of(&after, s.id), "node {}", s.id);
    }
    assert_eq!(p.load, None);
}

#[test]
fn a_given_plan_is_checked_against_the_cluster_as_it_is() {
    let mut nodes = standard_nodes(1..=3);
    nodes.push(NodeLoad { id: 4, weight: 0, draining: false });
    nodes[1].draining = true;
    let parts = round_robin(&[1, 2, 3], &[MB; 6]);
    let m = |partition, from, to| MoveSpec { partition, from, to };
    let err = |moves: &[MoveSpec]| given(&nodes, &parts, moves).unwrap_err();
    assert!(given(&nodes, &parts, &[]).unwrap().moves.is_empty(), "no moves: an empty plan, as a balanced cluster's");
    assert_eq!(err(&[m(6, 1, 3)]), GivenPlanError::NoSuchPartition(6, 6));
    assert_eq!(err(&[m(0, 1, 3), m(0, 1, 3)]), GivenPlanError::Repeated(0));
    assert_eq!(err(&[m(0, 1, 1)]), GivenPlanError::ToItself(0, 1));
    assert_eq!(err(&[m(0, 1, 9)]), GivenPlanError::NotAMember { partition: 0, to: 9 });
    let moved = err(&[m(1, 1, 3)]);
    assert_eq!(moved, GivenPlanError::OwnerChanged { partition: 1, from: 1, owner: 2 });
    assert!(moved.is_stale());
    assert_eq!(err(&[m(0, 1, 2)]), GivenPlanError::NotEligible { partition: 0, to: 2, why: "is draining" });
    assert_eq!(err(&[m(0, 1, 4)]).to_string(), "node 4, to which the plan moves partition 0, has weight 0");
    assert!(!err(&[m(0, 1, 9)]).is_stale(), "an unknown node is not the cluster moving on");
    // Moving partitions off a draining node is what draining asks for.
    let p = given(&nodes, &parts, &[m(1, 2, 3), m(4, 2, 1)]).unwrap();
    assert_eq!((p.after[1].partitions, p.after[0].partitions, p.after[2].partitions), (0, 3, 3));
    assert_eq!(p.after.len(), 4, "every member is summarized");
}
