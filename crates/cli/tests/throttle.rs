//! The disruption budget's machinery against a real in-process cluster:
//! static limits hold, settings change at runtime through the admin API,
//! a slowed node pauses its migrations until it recovers, a node whose
//! disk fills aborts them cleanly while the source keeps serving, and a node
//! too busy to start a request in time sheds it rather than run it late.
//!
//! Node faults are injected with failpoints (`fail` crate). The failpoint
//! registry is process-wide and every test's cluster has nodes 1..3, so
//! every test here holds `FAILPOINTS`: a fault set for one test's node 1
//! must not hit another's.

mod common;

use common::cluster;
use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::{MigrationInfo, MigrationList, MoveRequest, ThrottleStatus};
use redis::AsyncCommands;
use serde_json::json;
use std::time::{Duration, Instant};

static FAILPOINTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PARTITIONS: u32 = 8;
const P: u16 = 5;

fn options(dir: &std::path::Path) -> UpOptions {
    let mut opts = UpOptions::ephemeral(dir);
    opts.partitions = PARTITIONS;
    opts.coord.limits.bake_ms = 200;
    opts.coord.driver.pause_budget_ms = 500;
    opts.coord.throttle = Some(common::cluster::host_independent_throttle());
    opts
}

struct Harness {
    cluster: LocalCluster,
    http: reqwest::Client,
    admin: String,
    redis: redis::Client,
}

impl Harness {
    async fn start(dir: &std::path::Path) -> Harness {
        Harness::start_with(options(dir)).await
    }

    async fn start_with(opts: UpOptions) -> Harness {
        let cluster = LocalCluster::start(opts).await.unwrap();
        let admin = format!("http://{}", cluster.admin_addr);
        let redis = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
        let h = Harness { cluster, http: reqwest::Client::new(), admin, redis };
        h.wait_for_leader().await;
        h
    }

    async fn wait_for_leader(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s: evenkeel_coord::api::ClusterStatus = self.http.get(format!("{}/v1/cluster", self.admin)).send().await.unwrap().json().await.unwrap();
            if s.leader && s.bootstrapped {
                return;
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fills partition `P` with `n` keys of `size` bytes; returns the keys.
    async fn fill(&self, n: usize, size: usize) -> Vec<String> {
        let keys = cluster::keys_in("t", P, PARTITIONS, n);
        cluster::fill(&self.redis, &keys, size).await;
        keys
    }

    async fn patch_throttle(&self, body: serde_json::Value) -> reqwest::Response {
        self.http.patch(format!("{}/v1/throttle", self.admin)).json(&body).send().await.unwrap()
    }

    async fn throttle(&self) -> ThrottleStatus {
        cluster::throttle_status(&self.http, &self.admin).await
    }

    async fn wait_throttle(&self, what: &str, f: impl Fn(&ThrottleStatus) -> bool) -> ThrottleStatus {
        cluster::wait_throttle(&self.http, &self.admin, what, f).await
    }

    async fn owner(&self, p: u16) -> u32 {
        let kv = self.cluster.meta.get(evenkeel_types::keys::ROUTING).await.unwrap().unwrap();
        evenkeel_types::RoutingTable::from_json(&kv.value).unwrap().entry(p).unwrap().owner
    }

    async fn start_move(&self, target: u32) -> MigrationInfo {
        let resp = self.http.post(format!("{}/v1/migrations", self.admin)).json(&MoveRequest { partition: P, target }).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    async fn migration(&self, id: &str) -> MigrationInfo {
        let list: MigrationList = self.http.get(format!("{}/v1/migrations", self.admin)).send().await.unwrap().json().await.unwrap();
        list.migrations.into_iter().find(|m| m.id == id).expect("migration listed")
    }

    async fn wait_migration(&self, id: &str, timeout: Duration, f: impl Fn(&MigrationInfo) -> bool) -> MigrationInfo {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.migration(id).await;
            if f(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "migration never reached the expected state: {m:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every key reads back with its value through the router.
    async fn check_keys(&self, keys: &[String], size: usize) {
        cluster::check_filled(&self.redis, keys, size).await
    }
}

fn at(m: &MigrationInfo, state: &str) -> Option<u64> {
    m.transitions.iter().find(|t| t.state == state).map(|t| t.at_ms)
}

/// A 1 MB/s static limit (adaptive off) holds over the copy of ~3 MB: the
/// copy cannot finish faster than the limit allows (one chunk of burst
/// aside), and it does not crawl either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_rate_limit_holds_over_a_move() {
    let _serial = FAILPOINTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let keys = h.fill(3000, 1000).await;
    let limit = 1_000_000.0;
    let resp = h.patch_throttle(json!({"migration_rate_bytes_per_s": limit, "adaptive": false})).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    h.wait_throttle("the static rate", |s| s.rate_bytes_per_s == Some(limit)).await;
    let source = h.owner(P).await;
    let target = h.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let m = h.start_move(target).await;
    let done = h.wait_migration(&m.id, Duration::from_secs(60), |m| m.state == "DONE").await;
    let copy_ms = at(&done, "CATCHING_UP").unwrap() - at(&done, "COPYING").unwrap();
    let burst = 256.0 * 1024.0;
    let rate = (done.bytes_copied as f64 - burst).max(0.0) / (copy_ms as f64 / 1000.0);
    eprintln!("copied {} bytes in {copy_ms} ms: {:.0} B/s against a limit of {limit:.0}", done.bytes_copied, rate);
    assert!(done.bytes_copied >= 3_000_000, "{done:?}");
    assert!(rate <= limit * 1.10, "copy ran at {rate:.0} B/s, over the {limit} limit");
    assert!(rate >= limit * 0.5, "copy ran at {rate:.0} B/s, far under the {limit} limit");
    h.check_keys(&keys, 1000).await;
    h.cluster.shutdown().await.unwrap();
}

/// Bad settings are refused with the reason and change nothing; good ones
/// apply within a second; `null` resets one field; PUT replaces all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_settings_are_validated_and_apply_at_runtime() {
    let _serial = FAILPOINTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    for bad in [
        json!({"migration_rate_bytes_per_s": -5}),
        json!({"moves_cluster": 0}),
        json!({"schedule": {"windows": [{"start": "25:00", "end": "06:00"}]}}),
        json!({"schedule": {"windows": [{"start": "02:00", "end": "06:00", "tz": "Mars/Olympus"}]}}),
        json!({"adaptive": "sometimes"}),
    ] {
        let resp = h.patch_throttle(bad.clone()).await;
        assert_eq!(resp.status(), 400, "{bad} was accepted");
        let body: evenkeel_coord::api::ApiError = resp.json().await.unwrap();
        assert!(body.error.starts_with("invalid throttle settings"), "{}", body.error);
    }
    let started_with = common::cluster::host_independent_throttle();
    assert_eq!(h.throttle().await.settings, started_with, "refused settings changed nothing");

    let resp = h.patch_throttle(json!({"node_rate_bytes_per_s": 2e6, "moves_cluster": 3})).await;
    assert_eq!(resp.status(), 200);
    let s = h.wait_throttle("the new settings", |s| s.settings.moves_cluster == Some(3)).await;
    assert_eq!(s.settings.node_rate_bytes_per_s, Some(2e6));
    let resp = h.patch_throttle(json!({"node_rate_bytes_per_s": null})).await;
    assert_eq!(resp.status(), 200);
    let s = h.wait_throttle("the cleared limit", |s| s.settings.node_rate_bytes_per_s.is_none()).await;
    assert_eq!(s.settings.moves_cluster, Some(3), "a patch leaves other fields alone");
    let resp = h.http.put(format!("{}/v1/throttle", h.admin)).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    h.wait_throttle("the defaults", |s| s.settings == Default::default()).await;
    h.cluster.shutdown().await.unwrap();
}

/// Foreground reads on `keys` until `stop` is set, so the node owning
/// them has a measured p99.
fn background_reads(client: redis::Client, keys: Vec<String>, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let _: Option<String> = conn.get(&keys[i % keys.len()]).await.unwrap();
            i += 1;
        }
    })
}

/// A source node slowed by a failpoint (every Execute delayed 80 ms, over
/// the 50 ms pause threshold) pauses its migration with the reason shown;
/// once the delay is lifted and the node has been healthy for
/// `recover_after_ms`, the migration resumes by itself and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_node_pauses_its_migration_until_it_recovers() {
    let _serial = FAILPOINTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let keys = h.fill(2000, 500).await;
    // Slow copying so the migration is still before cutover when the node
    // turns slow; quick recovery so the test is short.
    let resp = h.patch_throttle(json!({"migration_rate_bytes_per_s": 100_000, "adaptive": false, "health": {"recover_after_ms": 2000}})).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    h.wait_throttle("the settings", |s| s.rate_bytes_per_s == Some(100_000.0)).await;
    let source = h.owner(P).await;
    let target = h.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = background_reads(h.redis.clone(), keys[..50].to_vec(), stop.clone());
    let m = h.start_move(target).await;
    h.wait_migration(&m.id, Duration::from_secs(20), |m| m.state == "COPYING").await;

    let failpoint = format!("node-{source}-execute-delay");
    fail::cfg(&failpoint, "return(80)").unwrap();
    let paused = h.wait_migration(&m.id, Duration::from_secs(20), |m| m.state == "PAUSED").await;
    let reason = paused.error.clone().unwrap_or_default();
    assert!(reason.starts_with("health: ") && reason.contains(&format!("node {source}")) && reason.contains("p99"), "{reason}");
    let gate = h.throttle().await.nodes.into_iter().find(|n| n.node == source).unwrap();
    assert_eq!(gate.state, "paused", "{gate:?}");

    fail::remove(&failpoint);
    let lifted = Instant::now();
    // Faster copying from here on, so the test ends soon.
    assert_eq!(h.patch_throttle(json!({"migration_rate_bytes_per_s": null})).await.status(), 200);
    let resumed = h.wait_migration(&m.id, Duration::from_secs(30), |m| m.state != "PAUSED").await;
    assert!(lifted.elapsed() >= Duration::from_millis(1500), "resumed {:?} after recovery, before recover_after_ms", lifted.elapsed());
    assert!(!matches!(resumed.state.as_str(), "FAILED" | "CANCELLED"), "{resumed:?}");
    h.wait_migration(&m.id, Duration::from_secs(60), |m| m.state == "DONE").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reads.await.unwrap();
    assert_eq!(h.owner(P).await, target);
    h.check_keys(&keys, 500).await;
    h.cluster.shutdown().await.unwrap();
}

/// The destination's disk reported full (a critical condition) fails the
/// migration before cutover: the source still owns the partition and
/// serves every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_aborts_a_migration_cleanly() {
    let _serial = FAILPOINTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let keys = h.fill(2000, 500).await;
    let resp = h.patch_throttle(json!({"migration_rate_bytes_per_s": 100_000, "adaptive": false})).await;
    assert_eq!(resp.status(), 200);
    h.wait_throttle("the settings", |s| s.rate_bytes_per_s == Some(100_000.0)).await;
    let source = h.owner(P).await;
    let target = h.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let m = h.start_move(target).await;
    h.wait_migration(&m.id, Duration::from_secs(20), |m| m.state == "COPYING").await;

    let failpoint = format!("node-{target}-disk-free");
    fail::cfg(&failpoint, "return(0)").unwrap();
    let failed = h.wait_migration(&m.id, Duration::from_secs(20), |m| m.state == "FAILED").await;
    fail::remove(&failpoint);
    let error = failed.error.unwrap_or_default();
    assert!(error.contains(&format!("node {target} critical")) && error.contains("disk"), "{error}");
    assert_eq!(h.owner(P).await, source, "the source keeps the partition");
    h.check_keys(&keys, 500).await;
    h.cluster.shutdown().await.unwrap();
}

/// A node that cannot start an op before most of its deadline has passed
/// (here: every Execute held longer than the router's 2 s attempt timeout)
/// refuses it OVERLOADED instead of running it after the router gave up,
/// which made a write indeterminate (`CLUSTERDOWN ... Timeout expired`).
/// The router retries such refusals: a write held once succeeds, applied
/// exactly once; a write held every time ends in TRYAGAIN within the retry
/// budget and was never executed. The node's shed count reaches the
/// coordinator's cluster status, apart from its errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_node_sheds_ops_it_cannot_start_in_time_and_the_router_retries_them() {
    let _serial = FAILPOINTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let key = cluster::keys_in("shed", P, PARTITIONS, 1).remove(0);
    let owner = h.owner(P).await;
    let failpoint = format!("node-{owner}-execute-delay");
    let mut conn = h.redis.get_multiplexed_async_connection().await.unwrap();

    fail::cfg(&failpoint, "1*return(3000)").unwrap();
    let started = Instant::now();
    let n: i64 = conn.incr(&key, 1).await.expect("shed once, then retried");
    assert_eq!(n, 1, "applied exactly once");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1400), "the first attempt waited for its start deadline (3/4 of 2 s): {took:?}");

    fail::cfg(&failpoint, "return(3000)").unwrap();
    let started = Instant::now();
    let err = conn.incr::<_, _, i64>(&key, 1).await.expect_err("shed every time");
    let took = started.elapsed();
    fail::remove(&failpoint);
    let message = err.to_string();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{message}");
    assert!(message.contains(&format!("node {owner} is overloaded")) && message.contains("not executed"), "{message}");
    assert!(took < Duration::from_millis(6_000), "answered within the 5 s retry budget (and one short attempt): {took:?}");
    let v: i64 = conn.get(&key).await.unwrap();
    assert_eq!(v, 1, "the refused INCR never ran");

    let metrics = h.http.get(format!("{}/metrics", h.admin)).send().await.unwrap().text().await.unwrap();
    let shed = metrics.lines().find(|l| l.starts_with(&format!("evenkeel_node_shed_ops_total{{node=\"{owner}\"}}"))).unwrap_or_else(|| panic!("no shed count for node {owner}:\n{metrics}"));
    assert!(shed.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 4.0, "{shed}");
    // The coordinator sees it too (health gating pauses migrations on it).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: evenkeel_coord::api::ClusterStatus = h.http.get(format!("{}/v1/cluster", h.admin)).send().await.unwrap().json().await.unwrap();
        let node = status.nodes.iter().find(|n| n.id == owner).unwrap();
        if node.shed_ops_total >= 4 {
            assert_eq!(node.errors_total, 0, "shed ops are not errors: {node:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the cluster status never showed node {owner}'s shed ops: {node:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.cluster.shutdown().await.unwrap();
}

/// A partition written faster than the migration rate limit still moves:
/// catch-up paces only the backlog, not the partition's own writes, or it
/// would never catch up (with every page paced, this move was 36,000
/// entries behind after a minute); and in bake, reverse capture keeps up
/// with the writes at the new owner; and the source keeps the change log
/// the catch-up needs although the copy's writes pass its retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_written_faster_than_the_rate_limit_still_moves() {
    let _serial = FAILPOINTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.coord.limits.bake_ms = 9_000;
    // The status reads reverse capture's position as last recorded.
    opts.coord.driver.bake_checkpoint_interval = Duration::from_millis(200);
    // The copy's 1,400 or so writes pass the log's retention: only the
    // migration's hold keeps them for its catch-up.
    opts.log_retention_entries = 300;
    let h = Harness::start_with(opts).await;
    let keys = h.fill(600, 1000).await;
    let limit = 200_000.0;
    let resp = h.patch_throttle(json!({"migration_rate_bytes_per_s": limit, "adaptive": false})).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    h.wait_throttle("the static rate", |s| s.rate_bytes_per_s == Some(limit)).await;
    // A writer rewrites the partition's keys at about 800 KB/s, four times
    // the limit, until the move ends.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, keys, stop) = (h.redis.clone(), keys.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let value = "w".repeat(1000);
            let mut written = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let pairs: Vec<(&String, &String)> = keys.iter().take(80).map(|k| (k, &value)).collect();
                let () = conn.mset(&pairs).await.unwrap();
                written += 80;
                tokio::time::sleep(Duration::from_millis(100).saturating_sub(started.elapsed())).await;
            }
            written
        })
    };
    let source = h.owner(P).await;
    let target = h.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let m = h.start_move(target).await;
    // In bake, the writes go on at the new owner and reverse capture keeps
    // the source up to date with them, so a rollback would have little to
    // apply: about a second of writes (800 entries) at most. With one page
    // a second (500 entries) it fell 300 entries further behind each
    // second: 2,400 after 8 s.
    let baking = h.wait_migration(&m.id, Duration::from_secs(60), |m| m.state == "COMPLETED" || m.state == "FAILED").await;
    assert_eq!(baking.state, "COMPLETED", "{baking:?}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let late = h.migration(&m.id).await;
    assert_eq!(late.state, "COMPLETED");
    let reverse_lag = late.lag_entries.expect("a lag in bake");
    assert!(reverse_lag < 1_500, "reverse capture fell {reverse_lag} entries behind");
    let done = h.wait_migration(&m.id, Duration::from_secs(60), |m| m.state == "DONE" || m.state == "FAILED").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    eprintln!("{written} writes; reverse lag {reverse_lag} after 8 s of bake; catch-up {:?}; {:?}", done.catch_up, done.transitions.iter().map(|t| (&t.state, t.at_ms)).collect::<Vec<_>>());
    assert_eq!(done.state, "DONE", "{done:?}");
    assert_eq!(done.transitions.iter().filter(|t| t.state == "COPYING").count(), 1, "copied once: the log was held for its catch-up");
    assert_eq!(h.owner(P).await, target);
    h.check_keys(&keys, 1000).await;
    h.cluster.shutdown().await.unwrap();
}
