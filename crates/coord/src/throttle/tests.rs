use super::*;
use crate::api::{NodeStatus, PartitionStatus};
use crate::migration::machine::Limits;
use std::sync::Arc;

fn node(id: NodeId, p99_us: u64, free: u64) -> NodeStatus {
    NodeStatus { p99_us, disk_free_bytes: free, ..NodeStatus::for_tests(id) }
}

fn migration(id: &str, source: NodeId, target: NodeId, phase: Phase) -> Migration {
    let mut m = Migration::new(id, 0, source, target, Limits::default(), 0);
    m.phase = phase;
    m
}

fn input(nodes: Vec<NodeStatus>, migrations: Vec<Migration>, router_p99_us: Option<(u64, u64)>, now_ms: u64) -> TickInput {
    let status = ClusterStatus {
        bootstrapped: true,
        epoch: 1,
        num_partitions: 1,
        leader: true,
        nodes,
        partitions: vec![PartitionStatus { id: 0, owner: 1, epoch: 1, keys: 0, bytes: 0, log_next: 0, tombstones: 0, reads_per_s: 0.0, writes_per_s: 0.0 }],
        removed_nodes: vec![],
        hot_keys: vec![],
    };
    let routers = router_p99_us
        .map(|(p99_us, count)| {
            let last_second = evenkeel_types::latency::SecondSummary { second: now_ms / 1000 - 1, count, errors: 0, p50_us: p99_us / 2, p99_us, max_us: p99_us };
            vec![RouterReport { router: 7, at_ms: now_ms, last_second, sched: None, arrival: None, unavailable_total: 0, migrations: vec![] }]
        })
        .unwrap_or_default();
    TickInput { settings: Settings::default(), status: Arc::new(status), routers, migrations }
}

const GOOD_DISK: u64 = 50 << 30;

fn two_nodes() -> Vec<NodeStatus> {
    vec![node(1, 1_000, GOOD_DISK), node(2, 1_000, GOOD_DISK)]
}

/// `seconds` ticks from t = 100 s, nothing in flight, routers at 2 ms p99:
/// the baseline.
fn calm_seconds(t: &Throttle, seconds: u64) {
    for s in 0..seconds {
        let now = 100_000 + s * 1000;
        t.tick(&input(two_nodes(), vec![], Some((2_000, 5_000)), now), now);
    }
}

#[test]
fn a_slow_node_pauses_its_migrations_and_they_resume_after_recovery() {
    let t = Throttle::default();
    let moving = migration("m1", 1, 2, Phase::Copying);
    let other = migration("m2", 3, 4, Phase::Copying);
    let slow = vec![node(1, 200_000, GOOD_DISK), node(2, 1_000, GOOD_DISK), node(3, 1_000, GOOD_DISK), node(4, 1_000, GOOD_DISK)];
    let reqs = t.tick(&input(slow, vec![moving.clone(), other.clone()], None, 10_000), 10_000);
    assert_eq!(reqs.len(), 1, "only the migration touching node 1 pauses: {reqs:?}");
    let (id, Event::Pause { reason }) = &reqs[0] else { panic!("{reqs:?}") };
    assert_eq!(id, "m1");
    assert!(reason.starts_with(HEALTH_PAUSE_PREFIX) && reason.contains("node 1"), "{reason}");

    // The node recovers; the paused migration resumes only after it has
    // been healthy for recover_after_ms.
    let mut paused = moving.clone();
    paused.phase = Phase::Paused;
    paused.paused_from = Some(Phase::Copying);
    paused.pause_reason = Some(reason.clone());
    let recover_ms = Settings::default().health.recover_after_ms;
    let healthy = || vec![node(1, 1_000, GOOD_DISK), node(2, 1_000, GOOD_DISK)];
    let mut now = 11_000;
    let mut resumed_at = None;
    while now <= 11_000 + recover_ms + 2_000 {
        let reqs = t.tick(&input(healthy(), vec![paused.clone()], None, now), now);
        if reqs.iter().any(|(id, e)| id == "m1" && *e == Event::Resume) {
            resumed_at = Some(now);
            break;
        }
        assert!(reqs.is_empty(), "{reqs:?}");
        now += 1_000;
    }
    let resumed_at = resumed_at.expect("the migration resumes");
    assert!(resumed_at >= 11_000 + recover_ms, "resumed at {resumed_at}, too early");
}

/// A node that sheds ops (refuses them OVERLOADED) between two ticks has
/// no headroom left: its migrations pause with the reason shown. The count
/// is a running total; only its growth since the previous tick counts, so
/// a node that shed once long ago is healthy again.
#[test]
fn a_node_that_sheds_load_pauses_its_migrations() {
    let t = Throttle::default();
    let moving = migration("m1", 1, 2, Phase::Copying);
    let shed = |total| {
        let mut n = two_nodes();
        n[1].shed_ops_total = total;
        n
    };
    assert!(t.tick(&input(shed(40), vec![moving.clone()], None, 10_000), 10_000).is_empty(), "a total from before the first tick is history");
    let reqs = t.tick(&input(shed(47), vec![moving.clone()], None, 11_000), 11_000);
    let [(id, Event::Pause { reason })] = &reqs[..] else { panic!("{reqs:?}") };
    assert_eq!(id, "m1");
    assert!(reason.starts_with(HEALTH_PAUSE_PREFIX) && reason.contains("node 2") && reason.contains("7 ops shed"), "{reason}");
    let gate = t.status().nodes.into_iter().find(|n| n.node == 2).unwrap();
    assert_eq!(gate.state, "paused", "{gate:?}");
}

#[test]
fn an_operator_pause_is_not_resumed_by_the_health_gate() {
    let t = Throttle::default();
    let mut m = migration("m1", 1, 2, Phase::Paused);
    m.paused_from = Some(Phase::Copying);
    m.pause_reason = Some("paused by operator".into());
    for now in (10_000..30_000).step_by(1_000) {
        let reqs = t.tick(&input(vec![node(1, 1_000, GOOD_DISK), node(2, 1_000, GOOD_DISK)], vec![m.clone()], None, now), now);
        assert!(reqs.is_empty(), "{reqs:?}");
    }
}

#[test]
fn a_full_disk_fails_migrations_before_cutover_only() {
    let t = Throttle::default();
    let copying = migration("m1", 1, 2, Phase::Copying);
    let baking = migration("m2", 1, 3, Phase::Completed);
    let nodes = vec![node(1, 1_000, 0), node(2, 1_000, GOOD_DISK), node(3, 1_000, GOOD_DISK)];
    let reqs = t.tick(&input(nodes, vec![copying, baking], None, 10_000), 10_000);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let (id, Event::Failed { error }) = &reqs[0] else { panic!("{reqs:?}") };
    assert_eq!(id, "m1");
    assert!(error.contains("node 1 critical") && error.contains("disk"), "{error}");
}

#[test]
fn latency_noise_while_nothing_moves_leaves_the_rate_alone() {
    let t = Throttle::default();
    let nodes = two_nodes;
    calm_seconds(&t, 10);
    let start = t.status().adaptive_rate_bytes_per_s.unwrap();
    // The workload's own spikes (3x the baseline) with no migration moving
    // data: nothing to cut, and no reason to grow either.
    for s in 10..20u64 {
        let now = 100_000 + s * 1000;
        let p99 = if s % 2 == 0 { 6_000 } else { 500 };
        t.tick(&input(nodes(), vec![migration("m0", 1, 2, Phase::Completed)], Some((p99, 5_000)), now), now);
    }
    let s = t.status();
    assert_eq!(s.adaptive_rate_bytes_per_s, Some(start), "{s:?}");
    assert_eq!(s.reason.split(';').next(), Some("hold: nothing moving"), "{s:?}");
}

#[test]
fn the_baseline_freezes_while_data_moves_and_the_rate_is_cut_above_budget() {
    let t = Throttle::default();
    let nodes = two_nodes;
    // Ten calm seconds at 2 ms p99 give the baseline.
    calm_seconds(&t, 10);
    assert_eq!(t.status().baseline_p99_us.map(|b| (1_900..=2_100).contains(&b)), Some(true), "{:?}", t.status());
    let m = migration("m1", 1, 2, Phase::Copying);
    let before = {
        t.tick(&input(nodes(), vec![m.clone()], Some((2_000, 5_000)), 110_000), 110_000);
        t.status().adaptive_rate_bytes_per_s.unwrap()
    };
    // p99 jumps to 3x the baseline. One or two such seconds are not the
    // typical recent second yet; the third is, and that tick cuts.
    for now in [111_000, 112_000] {
        t.tick(&input(nodes(), vec![m.clone()], Some((6_000, 5_000)), now), now);
        assert!(!t.status().reason.starts_with("cut"), "{:?}", t.status());
    }
    t.tick(&input(nodes(), vec![m.clone()], Some((6_000, 5_000)), 113_000), 113_000);
    let s = t.status();
    assert!(s.baseline_frozen);
    assert!(s.adaptive_rate_bytes_per_s.unwrap() < before, "{before} -> {s:?}");
    assert!(s.reason.starts_with("cut"), "{}", s.reason);
    assert_eq!(s.rate_bytes_per_s, s.adaptive_rate_bytes_per_s, "one migration gets the whole adaptive rate");
    assert!(s.budget_used.unwrap() > 1.0, "{s:?}");
}

/// A small partition copies in a fraction of a second: by the tick, the
/// move that disturbed the second is already baking. It still counts as
/// moving (it booked work on the throttle), so p99 over budget cuts the
/// rate instead of being written off as noise.
#[test]
fn a_move_that_copies_between_two_ticks_counts_as_moving() {
    let t = Throttle::default();
    calm_seconds(&t, 10);
    let start = t.status().adaptive_rate_bytes_per_s.unwrap();
    let mut reasons = Vec::new();
    for (i, now) in [110_000u64, 111_000, 112_000, 113_000].into_iter().enumerate() {
        let mut m = migration(&format!("m{i}"), 1, 2, Phase::Copying);
        assert!(t.reserve(&m, 256 << 10, 500).is_some(), "no limit pauses it");
        m.phase = Phase::Completed;
        t.tick(&input(two_nodes(), vec![m], Some((6_000, 5_000)), now), now);
        let s = t.status();
        assert_eq!(s.migrations_moving, 1, "{s:?}");
        reasons.push(s.reason);
    }
    assert!(reasons.iter().any(|r| r.starts_with("cut")), "{reasons:?}");
    let s = t.status();
    assert!(s.adaptive_rate_bytes_per_s.unwrap() < start, "{start} -> {s:?}");
    // A second in which nothing booked work moves nothing again.
    t.tick(&input(two_nodes(), vec![migration("m9", 1, 2, Phase::Completed)], Some((6_000, 5_000)), 114_000), 114_000);
    let s = t.status();
    assert_eq!((s.migrations_moving, s.reason.split(';').next()), (0, Some("hold: nothing moving")), "{s:?}");
}

#[test]
fn the_baseline_stays_frozen_between_the_moves_of_a_rebalance() {
    let t = Throttle::default();
    let nodes = two_nodes;
    calm_seconds(&t, 10);
    // A move copies, then bakes while the next one waits to start: nothing
    // moves data for these seconds, but the first move's after-effects
    // (here 2x) are still in the p99s and must not become the baseline.
    let mut now = 110_000;
    for phase in [Phase::Copying, Phase::Completed, Phase::Completed, Phase::Completed] {
        for _ in 0..5 {
            t.tick(&input(nodes(), vec![migration("m1", 1, 2, phase), migration("m2", 1, 2, Phase::Pending)], Some((4_000, 5_000)), now), now);
            now += 1000;
        }
        let s = t.status();
        assert!(s.baseline_frozen, "{phase:?}: {s:?}");
        assert!((1_900..=2_100).contains(&s.baseline_p99_us.unwrap()), "{phase:?}: {s:?}");
    }
    // Once every migration has ended (or is paused by the operator), the
    // baseline follows the workload again.
    let mut paused = migration("m2", 1, 2, Phase::Paused);
    paused.paused_from = Some(Phase::Copying);
    for _ in 0..12 {
        t.tick(&input(nodes(), vec![migration("m1", 1, 2, Phase::Done), paused.clone()], Some((4_000, 5_000)), now), now);
        now += 1000;
    }
    let s = t.status();
    assert!(!s.baseline_frozen, "{s:?}");
    assert!((3_800..=4_200).contains(&s.baseline_p99_us.unwrap()), "{s:?}");
}

#[test]
fn per_second_noise_while_moving_is_not_read_as_disruption() {
    // Each second's p99 jitters ±5% around 2 ms and every fourth second
    // spikes to 2.5x: the workload's own noise, the same before and during
    // the move. Compared second by second with the baseline (the median),
    // every spike looked over budget and was cut; the median of the last 5
    // seconds sees the typical second, which the move does not change.
    let p99 = |s: u64| if s % 4 == 3 { 5_000 } else { 1_900 + (s * 37) % 200 };
    let t = Throttle::default();
    let nodes = || vec![node(1, 1_000, GOOD_DISK), node(2, 1_000, GOOD_DISK)];
    for s in 0..12u64 {
        let now = 100_000 + s * 1000;
        t.tick(&input(nodes(), vec![], Some((p99(s), 5_000)), now), now);
    }
    let start = t.status().adaptive_rate_bytes_per_s.unwrap();
    let m = migration("m1", 1, 2, Phase::Copying);
    for s in 12..72u64 {
        let now = 100_000 + s * 1000;
        t.tick(&input(nodes(), vec![m.clone()], Some((p99(s), 5_000)), now), now);
        let status = t.status();
        assert!(!status.reason.starts_with("cut"), "second {s}: {status:?}");
    }
    assert!(t.status().adaptive_rate_bytes_per_s.unwrap() > start, "{:?}", t.status());
}

#[test]
fn a_one_second_signal_window_cuts_on_the_first_slow_second() {
    let mut settings = Settings::default();
    settings.aimd.signal_window_s = 1;
    let t = Throttle::new(settings.clone());
    let nodes = || vec![node(1, 1_000, GOOD_DISK), node(2, 1_000, GOOD_DISK)];
    let tick = |p99: u64, migrations: Vec<Migration>, now: u64| {
        let mut i = input(nodes(), migrations, Some((p99, 5_000)), now);
        i.settings = settings.clone();
        t.tick(&i, now);
    };
    for s in 0..10u64 {
        tick(2_000, vec![], 100_000 + s * 1000);
    }
    let m = migration("m1", 1, 2, Phase::Copying);
    tick(2_000, vec![m.clone()], 110_000);
    tick(6_000, vec![m], 111_000);
    assert!(t.status().reason.starts_with("cut"), "{:?}", t.status());
}

#[test]
fn the_static_limit_caps_the_adaptive_rate_and_pace_books_it() {
    let t = Throttle::default();
    let mut i = input(vec![node(1, 1_000, GOOD_DISK), node(2, 1_000, GOOD_DISK)], vec![migration("m1", 1, 2, Phase::Copying)], None, 10_000);
    i.settings.migration_rate_bytes_per_s = Some(1_000_000.0);
    t.tick(&i, 10_000);
    assert_eq!(t.status().rate_bytes_per_s, Some(1_000_000.0));
    let m = &i.migrations[0];
    // The first chunk goes out of the burst; the next 1 MB must wait ~1 s.
    assert_eq!(t.reserve(m, 200_000, 10), Some(0));
    let wait = t.reserve(m, 1_000_000, 10).unwrap();
    assert!((800_000..=1_100_000).contains(&wait), "waited {wait} µs");
}

#[test]
fn catch_up_paces_the_backlog_and_lets_the_partitions_own_writes_through() {
    assert_eq!(catch_up_paced(500_000, 500, 0), ((500_000, 500), 0));
    assert_eq!(catch_up_paced(500_000, 500, 200), ((300_000, 300), 200));
    assert_eq!(catch_up_paced(500_000, 500, 2_000), ((0, 0), 500));
    assert_eq!(catch_up_paced(0, 0, 10), ((0, 0), 0), "an empty page");
    // Pages of 500 entries (1 KB each) while clients write 2,000 entries
    // between every other page (what a 200 KB/s limit against 800 KB/s
    // of writes did before the credit carried over).
    let t = Throttle::default();
    let m = migration("m1", 1, 2, Phase::CatchingUp);
    assert_eq!(t.catch_up_booking(&m, 500_000, 500, 4_040, 1_554), (500_000, 500), "the first page: nothing known to have arrived");
    assert_eq!(t.catch_up_booking(&m, 500_000, 500, 6_040, 2_054), (0, 0), "2,000 arrived: this page is theirs");
    assert_eq!(t.catch_up_booking(&m, 500_000, 500, 6_040, 2_554), (0, 0), "and so is the next: the credit carries over");
    assert_eq!(t.catch_up_booking(&m, 500_000, 500, 6_040, 3_054), (0, 0));
    assert_eq!(t.catch_up_booking(&m, 500_000, 500, 6_040, 3_554), (0, 0), "four pages: the 2,000 that arrived");
    assert_eq!(t.catch_up_booking(&m, 500_000, 500, 6_040, 4_054), (500_000, 500), "then the backlog, paced");
    // The credit never exceeds what is left to ship.
    let m2 = migration("m2", 1, 2, Phase::CatchingUp);
    t.catch_up_booking(&m2, 1_000, 1, 100, 99);
    assert_eq!(t.catch_up_booking(&m2, 1_000, 1, 1_000_000, 999_999), (0, 0));
    assert_eq!(t.inner.lock().log_heads[&m2.id], (1_000_000, 1), "the lag left after the page: one entry");
}

#[test]
fn concurrency_overrides_apply_to_a_running_rebalance() {
    let t = Throttle::default();
    let limits = crate::rebalance::Limits { moves_per_node: 1, moves_cluster: 2 };
    assert_eq!(t.concurrency(limits), limits);
    let mut i = input(vec![], vec![], None, 10_000);
    i.settings.moves_cluster = Some(4);
    t.tick(&i, 10_000);
    assert_eq!(t.concurrency(limits).moves_cluster, 4);
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let target = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
    let patch = serde_json::json!({"a": null, "b": {"c": 5}, "f": [1]});
    assert_eq!(merge_patch(target, patch), serde_json::json!({"b": {"c": 5, "d": 3}, "e": 4, "f": [1]}));
}

/// A router's summary of the second before `now_ms` with this p99.
fn second(now_ms: u64, p99_us: u64) -> evenkeel_types::latency::SecondSummary {
    evenkeel_types::latency::SecondSummary { second: now_ms / 1000 - 1, count: 5_000, errors: 0, p50_us: p99_us / 2, p99_us, max_us: p99_us }
}

/// Ten calm seconds with nothing in flight, then six with a migration
/// copying, under `settings`; `report(moving, now_ms)` is the router's
/// report of each second. Returns the baseline learned in the calm
/// seconds and the status after the last one.
fn calm_then_copying(settings: Settings, report: impl Fn(bool, u64) -> RouterReport) -> (Option<u64>, ThrottleStatus) {
    let t = Throttle::default();
    let tick = |moving: bool, now: u64| {
        let migrations = if moving { vec![migration("m1", 1, 2, Phase::Copying)] } else { vec![] };
        let mut i = input(two_nodes(), migrations, None, now);
        i.settings = settings.clone();
        i.routers = vec![report(moving, now)];
        t.tick(&i, now);
    };
    for s in 0..10u64 {
        tick(false, 100_000 + s * 1000);
    }
    let baseline = t.status().baseline_p99_us;
    for s in 10..16u64 {
        tick(true, 100_000 + s * 1000);
    }
    (baseline, t.status())
}

#[test]
fn with_sched_in_the_signal_a_congested_runtime_is_cut_even_when_the_router_p99_is_flat() {
    // Moving: the router's own p99 stays at 400 µs, the scheduling delay
    // doubles.
    let report = |moving: bool, now: u64| {
        let sched_us = if moving { 4_800 } else { 2_400 };
        RouterReport { router: 7, at_ms: now, last_second: second(now, 400), sched: Some(second(now, sched_us)), arrival: None, unavailable_total: 0, migrations: vec![] }
    };
    let run = |include: bool| {
        let mut settings = Settings::default();
        settings.aimd.signal_includes_sched = include;
        calm_then_copying(settings, report)
    };
    let (baseline, s) = run(false);
    assert_eq!(baseline.map(|b| (380..=420).contains(&b)), Some(true), "{s:?}");
    assert!(!s.reason.starts_with("cut"), "the router p99 alone did not move: {s:?}");
    let (baseline, s) = run(true);
    assert_eq!(baseline.map(|b| (2_700..=2_900).contains(&b)), Some(true), "p99 + sched: {s:?}");
    assert!(s.reason.starts_with("cut") || s.reason.contains("over budget"), "{s:?}");
    assert_eq!(s.p99_us, 400, "the status still shows the router's own p99");
}

/// With `aimd.signal_from_arrival` the controller steers by the routers'
/// p99 from arrival: a wait in the socket that the router's own p99 does
/// not show cuts the rate; without it, the same seconds hold.
#[test]
fn from_arrival_a_wait_in_the_socket_cuts_even_when_the_router_p99_is_flat() {
    let report = |moving: bool, now: u64| {
        let arrival_us = if moving { 900 } else { 600 };
        RouterReport { router: 7, at_ms: now, last_second: second(now, 400), sched: Some(second(now, 100)), arrival: Some(second(now, arrival_us)), unavailable_total: 0, migrations: vec![] }
    };
    let run = |from_arrival: bool| {
        let mut settings = Settings::default();
        settings.aimd.signal_from_arrival = from_arrival;
        calm_then_copying(settings, report)
    };
    let (baseline, s) = run(false);
    assert_eq!(baseline.map(|b| (380..=420).contains(&b)), Some(true), "{s:?}");
    assert!(!s.reason.starts_with("cut") && !s.reason.contains("over budget"), "the router p99 did not move: {s:?}");
    assert_eq!(s.arrival_p99_us, Some(900), "shown either way: {s:?}");
    let (baseline, s) = run(true);
    assert_eq!(baseline.map(|b| (570..=630).contains(&b)), Some(true), "from arrival: {s:?}");
    assert!(s.reason.starts_with("cut") || s.reason.contains("over budget"), "{s:?}");
    assert_eq!(s.p99_us, 400, "the status still shows the router's own p99");
}

#[test]
fn client_errors_of_the_stores_making_are_summed_over_routers_and_restarts() {
    let t = Throttle::default();
    let tick = |now: u64, reports: &[(u64, u64)]| {
        let mut i = input(two_nodes(), vec![], Some((2_000, 5_000)), now);
        let template = i.routers[0].clone();
        i.routers = reports.iter().map(|&(router, unavailable_total)| RouterReport { router, unavailable_total, ..template.clone() }).collect();
        t.tick(&i, now);
    };
    // A router already counting when first seen counts whole.
    tick(100_000, &[(1, 3), (2, 0)]);
    tick(101_000, &[(1, 5), (2, 4)]);
    // Router 2 restarted (its count began again at 0) and counted 2.
    tick(102_000, &[(1, 5), (2, 2)]);
    let samples = t.samples_since(101_000);
    assert_eq!(t.client_unavailable_total(), 3 + (2 + 4) + 2);
    assert_eq!(t.status().client_unavailable_total, 11);
    // Each tick's second, from the asked time on, as the baseline sees it.
    assert_eq!(samples.iter().map(|s| (s.at_ms, s.p99_us, s.ops)).collect::<Vec<_>>(), vec![(101_000, 2_000, 10_000), (102_000, 2_000, 10_000)]);
    assert!(t.samples_since(u64::MAX).is_empty());
    // A router no report named for ten minutes is forgotten (restarts make
    // new router ids; the map does not grow with them): seen again, its
    // count is new.
    tick(500_000, &[(1, 5)]);
    tick(800_000, &[(1, 5)]);
    tick(801_000, &[(1, 5), (2, 2)]);
    assert_eq!(t.client_unavailable_total(), 11 + 2);
}
