//! The background lane over the wire: bulk migration requests wait while a
//! foreground request is in flight, for a bounded time only, and not at all
//! with the lane off. The execute-delay failpoint keeps one Execute in flight
//! for as long as the test needs.

use crate::support::{TestNode, apply_many, get, partition_of, snapshot, start};
use evenkeel_node::failpoints::execute_delay;
use evenkeel_rpc::pb;
use std::time::{Duration, Instant};

/// How long the slow Execute stays in flight; far longer than the lane's
/// 20 ms budget, so a migration request that finishes meanwhile did not wait
/// for it.
const FOREGROUND_MS: u64 = 1_500;

/// Starts an Execute that stays in flight for `FOREGROUND_MS`.
fn slow_execute(node: &TestNode) -> tokio::task::JoinHandle<Duration> {
    let mut client = node.client.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        client.execute(get("k")).await.unwrap();
        started.elapsed()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_yields_to_foreground_in_flight_and_still_completes() {
    let _scenario = fail::FailScenario::setup();
    let node = start(41, |_| {}).await;
    fail::cfg(execute_delay(41), &format!("return({FOREGROUND_MS})")).unwrap();
    let slow = slow_execute(&node);
    let mut client = node.client.clone();
    // The first snapshot that yields shows the Execute is in its handler.
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.stats().await.background_yields_total == 0 {
        assert!(Instant::now() < deadline, "no migration request ever yielded");
        client.migrate_snapshot(snapshot(partition_of(b"k"))).await.unwrap();
    }
    // A large apply yields too, yet applies everything, while the Execute
    // is still in flight: its wait was bounded.
    let applied = client.migrate_apply(apply_many("t", 1_000)).await.unwrap().into_inner().applied;
    assert_eq!(applied, 1_000);
    assert_eq!(node.stats().await.background_yields_total, 2, "one yield per request; its budget is then spent");
    assert!(!slow.is_finished(), "migration requests must not wait for the foreground request to finish");
    assert!(slow.await.unwrap() >= Duration::from_millis(FOREGROUND_MS));
    // Idle foreground: no more yields.
    client.migrate_snapshot(snapshot(partition_of(b"k"))).await.unwrap();
    assert_eq!(node.stats().await.background_yields_total, 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_lane_off_migration_never_yields() {
    let _scenario = fail::FailScenario::setup();
    let node = start(42, |c| c.background_lane = false).await;
    fail::cfg(execute_delay(42), &format!("return({FOREGROUND_MS})")).unwrap();
    let slow = slow_execute(&node);
    let mut client = node.client.clone();
    // Migration requests for a third of the Execute's flight: loopback
    // delivers it long before that ends.
    let until = Instant::now() + Duration::from_millis(FOREGROUND_MS / 3);
    while Instant::now() < until {
        client.migrate_snapshot(snapshot(partition_of(b"k"))).await.unwrap();
        client.migrate_apply(apply_many("t", 300)).await.unwrap();
    }
    assert!(!slow.is_finished(), "the Execute must still be in flight");
    assert_eq!(node.stats().await.background_yields_total, 0);
    slow.await.unwrap();
    node.stop().await;
}

/// Stats count the CPU the bulk threads spend on migration requests (what
/// moves cost a node); without a background lane there are no bulk threads
/// and the figure stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_bulk_threads_cpu() {
    for (id, lane) in [(44, true), (45, false)] {
        let node = start(id, |c| c.background_lane = lane).await;
        let mut client = node.client.clone();
        // Starting the threads (setting their priority) costs microseconds.
        let idle = node.stats().await.bulk_cpu_us_total;
        assert!(idle < 1_000, "lane {lane}: {idle} µs before any migration request");
        for round in 0..4 {
            let applied = client.migrate_apply(apply_many(&format!("cpu{round}"), 2_000)).await.unwrap().into_inner().applied;
            assert_eq!(applied, 2_000);
        }
        let cpu = node.stats().await.bulk_cpu_us_total;
        match lane {
            // 8,000 records applied: milliseconds of CPU, never 0.
            true => assert!(cpu >= idle + 1_000, "bulk threads used {} µs for 8,000 records", cpu - idle),
            false => assert_eq!(cpu, 0, "no bulk threads without the lane"),
        }
        node.stop().await;
    }
}

/// The cutover's drain (log reads and applies marked urgent) runs while
/// clients are fenced, so it never waits in the lane, even with foreground
/// requests in flight and the lane on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_drain_requests_skip_the_lane() {
    let _scenario = fail::FailScenario::setup();
    let node = start(43, |_| {}).await;
    fail::cfg(execute_delay(43), &format!("return({FOREGROUND_MS})")).unwrap();
    let slow = slow_execute(&node);
    let mut client = node.client.clone();
    // Wait until the slow Execute is in its handler (a normal snapshot yields).
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.stats().await.background_yields_total == 0 {
        assert!(Instant::now() < deadline, "the Execute never got in flight");
        client.migrate_snapshot(snapshot(partition_of(b"k"))).await.unwrap();
    }
    let before = node.stats().await.background_yields_total;
    let mut urgent = apply_many("u", 1_000);
    urgent.urgent = true;
    assert_eq!(client.migrate_apply(urgent).await.unwrap().into_inner().applied, 1_000);
    let header = apply_many("u", 1).header;
    let read = evenkeel_rpc::pb::ReadLogRequest { header, from: 0, max: 100, urgent: true, max_bytes: 0 };
    client.migrate_read_log(read).await.unwrap();
    assert!(!slow.is_finished(), "the Execute must still be in flight");
    assert_eq!(node.stats().await.background_yields_total, before, "urgent requests never yield");
    slow.await.unwrap();
    node.stop().await;
}

/// A log read with nothing new to return (what reverse capture asks each
/// baking migration's destination every second) is answered at once: it
/// neither waits in the lane for a foreground request in flight nor takes
/// a bulk thread. One with entries still yields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_read_with_nothing_new_skips_the_lane() {
    let _scenario = fail::FailScenario::setup();
    let node = start(46, |_| {}).await;
    let mut client = node.client.clone();
    // Ten client writes to a partition the node is granted: ten log entries.
    let p = partition_of(b"k");
    let header = crate::support::header(p);
    client.migrate_fence(pb::FenceRequest { header, fenced: false, grant_epoch: 1 }).await.unwrap();
    for i in 0..10 {
        let kind = pb::op::Kind::Set(pb::Set { value: "v".into(), ..Default::default() });
        let op = pb::Op { partition: p, key: format!("{{k}}{i}").into(), kind: Some(kind), want_record: false, track: false, waiter: 0 };
        client.execute(pb::ExecuteRequest { epoch: 1, ops: vec![op], router: 0 }).await.unwrap();
    }
    let read = |from| pb::ReadLogRequest { header, from, max: 100, urgent: false, max_bytes: 0 };
    let all = client.migrate_read_log(read(0)).await.unwrap().into_inner();
    assert_eq!((all.entries.len(), all.next, all.log_next), (10, 10, 10));
    fail::cfg(execute_delay(46), &format!("return({FOREGROUND_MS})")).unwrap();
    let slow = slow_execute(&node);
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.stats().await.background_yields_total == 0 {
        assert!(Instant::now() < deadline, "the Execute never got in flight");
        client.migrate_snapshot(snapshot(partition_of(b"k"))).await.unwrap();
    }
    let (yields, cpu_before) = (node.stats().await.background_yields_total, node.stats().await.bulk_cpu_us_total);
    for _ in 0..20 {
        let empty = client.migrate_read_log(read(10)).await.unwrap().into_inner();
        assert_eq!((empty.entries.len(), empty.next, empty.log_next, empty.truncated), (0, 10, 10, false));
    }
    assert!(!slow.is_finished(), "the Execute must still be in flight");
    assert_eq!(node.stats().await.background_yields_total, yields, "an empty read never yields");
    assert_eq!(node.stats().await.bulk_cpu_us_total, cpu_before, "nor runs on a bulk thread");
    let some = client.migrate_read_log(read(5)).await.unwrap().into_inner();
    assert_eq!((some.entries.len(), some.next), (5, 10));
    assert_eq!(node.stats().await.background_yields_total, yields + 1, "a read with entries waits for the foreground");
    slow.await.unwrap();
    node.stop().await;
}
