//! Helpers for tests that run a whole cluster in their own process
//! ([`LocalCluster`]): options, the routing table, keys of one partition,
//! filling a partition and reading it back, the throttle's status.

use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::ThrottleStatus;
use evenkeel_types::{PartitionId, RoutingTable, keys, slot};
use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// A cutover pause budget a debug build can meet.
pub const PAUSE_BUDGET_MS: u64 = 500;

/// Ephemeral ports, `partitions` partitions, a short (or long) bake, and
/// [`PAUSE_BUDGET_MS`].
pub fn options(dir: &std::path::Path, partitions: u32, bake_ms: u64) -> UpOptions {
    let mut opts = UpOptions::ephemeral(dir);
    opts.partitions = partitions;
    opts.coord.limits.bake_ms = bake_ms;
    opts.coord.driver.pause_budget_ms = PAUSE_BUDGET_MS;
    opts.coord.throttle = Some(host_independent_throttle());
    opts
}

/// [`options`] with the metadata in the etcd at `endpoint` (http://).
pub fn on_etcd(dir: &std::path::Path, partitions: u32, bake_ms: u64, endpoint: String) -> UpOptions {
    let mut opts = options(dir, partitions, bake_ms);
    opts.meta = evenkeel::up::MetaBackend::Etcd(Box::new(evenkeel_meta::EtcdOptions::new(vec![endpoint])));
    opts
}

/// Default throttle settings, except that the host's own disk cannot pause
/// migrations: a build machine can be under the 10% free that pauses a
/// production node, and a test must not depend on that. Under 2% free it
/// still pauses, and a failpoint reporting a full disk is still critical.
pub fn host_independent_throttle() -> evenkeel_throttle::ThrottleConfig {
    let mut throttle = evenkeel_throttle::ThrottleConfig::default();
    throttle.health.pause_disk_free_ratio = 0.02;
    throttle
}

/// The stored routing table.
pub async fn routing(cluster: &LocalCluster) -> RoutingTable {
    let kv = cluster.meta.get(keys::ROUTING).await.unwrap().unwrap();
    RoutingTable::from_json(&kv.value).unwrap()
}

/// The first `n` keys named `{prefix}{i}` that fall in `partition` (of
/// `partitions`).
pub fn keys_in(prefix: &str, partition: PartitionId, partitions: u32, n: usize) -> Vec<String> {
    (0..).map(|i| format!("{prefix}{i}")).filter(|k| slot::key_partition(k.as_bytes(), partitions as u16) == partition).take(n).collect()
}

/// Adds a node through the admin API (node 4 of a 3-node cluster), writes
/// 20 keys of partition 0 (of `partitions`) named `{prefix}{i}`, each with
/// itself as its value, moves partition 0 to the new node and waits until
/// the move is DONE. Returns the keys.
pub async fn move_partition_0_to_a_new_node(cluster: &LocalCluster, partitions: u32, prefix: &str) -> Vec<String> {
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    let added = http.post(format!("{admin}/v1/nodes")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(added.status(), 201, "{}", added.text().await.unwrap());
    let info: evenkeel_types::NodeInfo = added.json().await.unwrap();
    assert_eq!(info.id, 4);
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = keys_in(prefix, 0, partitions, 20);
    for k in &keys {
        let () = conn.set(k, k).await.unwrap();
    }
    let request = evenkeel_coord::api::MoveRequest { partition: 0, target: 4 };
    let m: evenkeel_coord::api::MigrationInfo = http.post(format!("{admin}/v1/migrations")).json(&request).send().await.unwrap().json().await.unwrap();
    super::admin::wait_state(&http, &admin, &m.id, "DONE").await;
    keys
}

/// Every key reads back through the cluster's router with itself as its
/// value (as [`move_partition_0_to_a_new_node`] wrote them).
pub async fn check_self_valued(cluster: &LocalCluster, keys: &[String]) {
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for k in keys {
        let v: Option<String> = conn.get(k).await.unwrap();
        assert_eq!(v.as_deref(), Some(k.as_str()), "{k}");
    }
}

/// Writes every key with a value of `size` bytes, in MSETs of 200.
pub async fn fill(client: &redis::Client, keys: &[String], size: usize) {
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let value = "v".repeat(size);
    for chunk in keys.chunks(200) {
        let pairs: Vec<(&String, &String)> = chunk.iter().map(|k| (k, &value)).collect();
        let () = conn.mset(&pairs).await.unwrap();
    }
}

/// Every key reads back through the router with its `size`-byte value.
pub async fn check_filled(client: &redis::Client, keys: &[String], size: usize) {
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for chunk in keys.chunks(200) {
        let got: Vec<Option<String>> = conn.mget(chunk).await.unwrap();
        for (k, v) in chunk.iter().zip(got) {
            assert_eq!(v.map(|v| v.len()), Some(size), "{k} lost");
        }
    }
}

pub async fn throttle_status(http: &reqwest::Client, admin: &str) -> ThrottleStatus {
    http.get(format!("{admin}/v1/throttle")).send().await.unwrap().json().await.unwrap()
}

/// Waits until the throttle's published status satisfies `f`.
pub async fn wait_throttle(http: &reqwest::Client, admin: &str, what: &str, f: impl Fn(&ThrottleStatus) -> bool) -> ThrottleStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = throttle_status(http, admin).await;
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "throttle never showed {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
