//! The node's failpoints, as another crate's tests use them: configured by
//! name with `fail::cfg`, each aimed at one node of several in the process.

use crate::support::{TestNode, get, start};
use evenkeel_node::failpoints::{disk_free, execute_delay, stats_delay};
use std::time::{Duration, Instant};

const DELAY_MS: u64 = 150;

/// Sends Executes to `node` until `stop` is set (at most 200), so every
/// second has some.
fn load(node: &TestNode, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<()> {
    let mut client = node.client.clone();
    tokio::spawn(async move {
        for _ in 0..200 {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            client.execute(get("k")).await.unwrap();
        }
    })
}

/// Polls `node`'s stats until `done` holds for them, for at most 5 s.
async fn stats_until(node: &TestNode, done: impl Fn(&evenkeel_rpc::pb::StatsResponse) -> bool) -> evenkeel_rpc::pb::StatsResponse {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = node.stats().await;
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "stats never got there: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_delay_slows_only_its_node_and_shows_in_its_latency() {
    assert!(fail::has_failpoints(), "test builds compile the failpoints in");
    let _scenario = fail::FailScenario::setup();
    let (slow, fast) = (start(51, |_| {}).await, start(52, |_| {}).await);
    fail::cfg(execute_delay(51), &format!("return({DELAY_MS})")).unwrap();
    let started = Instant::now();
    slow.client.clone().execute(get("k")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(DELAY_MS));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loads = [load(&slow, stop.clone()), load(&fast, stop.clone())];
    let s = stats_until(&slow, |s| s.execute_ops_last_s > 0).await;
    assert!(s.execute_p99_us >= DELAY_MS * 1_000, "{s:?}");
    let f = stats_until(&fast, |s| s.execute_ops_last_s > 0).await;
    assert!(f.execute_p99_us < DELAY_MS * 1_000, "node 52 is not delayed: {f:?}");
    assert_eq!((s.errors_total, f.errors_total), (0, 0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loads {
        l.await.unwrap();
    }
    // Removed, the delay is gone.
    fail::remove(execute_delay(51));
    let started = Instant::now();
    slow.client.clone().execute(get("k")).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(DELAY_MS));
    slow.stop().await;
    fast.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_the_disk_failpoint_and_wait_for_the_stats_delay() {
    let _scenario = fail::FailScenario::setup();
    let node = start(53, |_| {}).await;
    let real = node.stats().await;
    assert!(real.disk_total_bytes > 0 && real.disk_free_bytes <= real.disk_total_bytes, "{real:?}");

    fail::cfg(disk_free(53), "return(4096)").unwrap();
    let full = node.stats().await;
    assert_eq!(full.disk_free_bytes, 4096);
    assert_eq!(full.disk_total_bytes, real.disk_total_bytes, "the failpoint changes free bytes only");

    fail::cfg(stats_delay(53), "return(200)").unwrap();
    let started = Instant::now();
    node.stats().await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    node.stop().await;
}

/// An Execute whose ops cannot start within 3/4 of its deadline (here held
/// by the execute-delay failpoint, which stands for a queue) is answered in
/// time with every op refused OVERLOADED, and none of them ran. Without a
/// deadline the same delay is simply waited out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_not_started_within_their_deadline_are_refused_overloaded_and_never_run() {
    use evenkeel_rpc::pb::{self, op_result::Result as R};
    let _scenario = fail::FailScenario::setup();
    let node = start(54, |_| {}).await;
    let mut client = node.client.clone();
    let p = crate::support::partition_of(b"k");
    let header = Some(pb::MigrateHeader { partition: p, token: 1 });
    client.migrate_fence(pb::FenceRequest { header, fenced: false, grant_epoch: 1 }).await.unwrap();
    let set = |value: &str, timeout: Option<Duration>| {
        let op = |key: &str| pb::Op { partition: p, key: key.to_string().into(), kind: Some(pb::op::Kind::Set(pb::Set { value: value.to_string().into(), ..Default::default() })), want_record: false, track: false, waiter: 0 };
        let mut request = tonic::Request::new(pb::ExecuteRequest { epoch: 1, ops: vec![op("k"), op("k")], router: 0 });
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        request
    };

    fail::cfg(execute_delay(54), "return(2000)").unwrap();
    let started = Instant::now();
    let results = client.execute(set("late", Some(Duration::from_millis(400)))).await.expect("answered before the deadline, not cancelled").into_inner().results;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(400), "held until 3/4 of the deadline: {took:?}");
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(matches!(&r.result, Some(R::Refused(refused)) if refused.reason == pb::refused::Reason::Overloaded as i32), "{results:?}");
    }
    fail::remove(execute_delay(54));
    let read = client.execute(get("k")).await.unwrap().into_inner().results;
    assert!(matches!(read[0].result, Some(R::Nil(_))), "the refused write never ran: {read:?}");

    // Started in time, it runs; with no deadline, a delay is waited out.
    let on_time = client.execute(set("on time", Some(Duration::from_millis(400)))).await.unwrap().into_inner().results;
    assert!(on_time.iter().all(|r| matches!(r.result, Some(R::Written(_)))), "{on_time:?}");
    fail::cfg(execute_delay(54), "return(500)").unwrap();
    let patient = client.execute(set("patient", None)).await.unwrap().into_inner().results;
    fail::remove(execute_delay(54));
    assert!(patient.iter().all(|r| matches!(r.result, Some(R::Written(_)))), "{patient:?}");
    node.stop().await;
}
