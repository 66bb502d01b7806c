//! Reading a cluster's state through its admin HTTP API.

use evenkeel_coord::api::{ClusterStatus, MigrationInfo, MigrationList, RebalanceStatus};
use std::time::{Duration, Instant};

/// Every migration the coordinator lists, oldest first.
pub async fn migrations(http: &reqwest::Client, admin: &str) -> Vec<MigrationInfo> {
    let list: MigrationList = http.get(format!("{admin}/v1/migrations")).send().await.unwrap().json().await.unwrap();
    list.migrations
}

pub async fn cluster(http: &reqwest::Client, admin: &str) -> ClusterStatus {
    http.get(format!("{admin}/v1/cluster")).send().await.unwrap().json().await.unwrap()
}

/// Waits until the coordinator answering at `admin` holds the leader lease.
pub async fn wait_for_leader(http: &reqwest::Client, admin: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if cluster(http, admin).await.leader {
            return;
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the stats poll has seen `nodes` healthy nodes and a size for
/// every partition (the planner balances bytes from it).
pub async fn wait_stats(http: &reqwest::Client, admin: &str, nodes: usize, within: Duration) -> ClusterStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = cluster(http, admin).await;
        if s.nodes.len() == nodes && s.nodes.iter().all(|n| n.healthy) && s.partitions.iter().all(|p| p.bytes > 0) {
            return s;
        }
        assert!(Instant::now() < deadline, "stats never covered {nodes} healthy nodes and every partition: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn rebalance(http: &reqwest::Client, admin: &str) -> RebalanceStatus {
    http.get(format!("{admin}/v1/rebalance")).send().await.unwrap().json().await.unwrap()
}

/// Waits until the current rebalance is neither running nor paused and
/// returns its last status.
pub async fn wait_rebalance_end(http: &reqwest::Client, admin: &str, within: Duration) -> RebalanceStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = rebalance(http, admin).await;
        if !s.rebalance.as_ref().expect("a rebalance was started").state.is_active() {
            return s;
        }
        assert!(Instant::now() < deadline, "the rebalance did not end within {within:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 30 s) until migration `id` is in `state`; fails at once if
/// it ended FAILED or CANCELLED instead.
pub async fn wait_state(http: &reqwest::Client, admin: &str, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = migrations(http, admin).await;
        let m = all.iter().find(|m| m.id == id).expect("migration listed");
        if m.state == state {
            return;
        }
        assert!(!matches!(m.state.as_str(), "FAILED" | "CANCELLED") || state == m.state, "migration ended {}: {:?}", m.state, m.error);
        assert!(Instant::now() < deadline, "{id} never reached {state}: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
