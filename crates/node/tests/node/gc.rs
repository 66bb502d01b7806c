//! Tombstone collection as a running node does it: nothing without a GC
//! horizon; then only in partitions the horizon allows, and not in one
//! whose newer migration token the node has admitted until the horizon
//! releases that token. Each "still there" is checked once a sweep has
//! provably run past it (another partition's tombstones went, or an
//! expired key was swept), not after a sleep.

use crate::support::{PARTITIONS, partition_of};
use evenkeel_meta::{EmbeddedStore, MetaStore};
use evenkeel_node::{Node, NodeConfig, StoreConfig};
use evenkeel_rpc::{NodeClient, pb};
use evenkeel_types::gc::GcHorizon;
use evenkeel_types::{RoutingTable, keys, unix_ms};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Keys `{tag}0..n`, all in the partition of `tag`.
fn keys_of(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{{tag}}}{i}")).collect()
}

fn op(key: &str, kind: pb::op::Kind) -> pb::Op {
    pb::Op { partition: partition_of(key.as_bytes()), key: key.to_string().into(), kind: Some(kind), want_record: false, track: false, waiter: 0 }
}

fn set(key: &str, expire_at_ms: Option<u64>) -> pb::Op {
    let expiry = expire_at_ms.map(pb::set::Expiry::ExpireAtMs);
    op(key, pb::op::Kind::Set(pb::Set { value: "v".into(), expiry, condition: 0, get: false }))
}

/// Runs `ops` (as the routing table's owner), failing on any refusal.
async fn execute(client: &mut NodeClient, ops: Vec<pb::Op>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.execute(pb::ExecuteRequest { epoch: 1, ops: ops.clone(), router: 0 }).await.unwrap().into_inner();
        // Refused only until the node has read the routing table.
        if reply.results.iter().all(|r| !matches!(r.result, Some(pb::op_result::Result::Refused(_)))) {
            return;
        }
        assert!(Instant::now() < deadline, "the node never took the routing table");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn write_and_delete(client: &mut NodeClient, keys: &[String]) {
    execute(client, keys.iter().map(|k| set(k, None)).collect()).await;
    execute(client, keys.iter().map(|k| op(k, pb::op::Kind::Del(pb::Del::default()))).collect()).await;
}

async fn partition_stats(client: &mut NodeClient, tag: &str) -> pb::PartitionStats {
    let p = partition_of(tag.as_bytes());
    let stats = client.stats(pb::StatsRequest::default()).await.unwrap().into_inner();
    stats.partitions.into_iter().find(|s| s.partition == p).unwrap_or_default()
}

/// Waits until partition `tag`'s stats satisfy `f`.
async fn wait(client: &mut NodeClient, tag: &str, what: &str, f: impl Fn(&pb::PartitionStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = partition_stats(client, tag).await;
        if f(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn publish(meta: &dyn MetaStore, horizon: &GcHorizon) {
    meta.put(keys::GC_HORIZON, horizon.to_json(), None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_collects_only_what_the_horizon_and_its_tokens_allow() {
    let (held, free) = ("held", "gone");
    let (p_held, p_free) = (partition_of(held.as_bytes()), partition_of(free.as_bytes()));
    assert_ne!(p_held, p_free, "the test needs two partitions");
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory();
    meta.put(keys::ROUTING, RoutingTable::bootstrap(PARTITIONS, &[1]).unwrap().to_json(), None).await.unwrap();
    let mut config = NodeConfig::new(1, StoreConfig::new(dir.path(), PARTITIONS));
    (config.tombstone_grace, config.sweep_interval) = (Duration::ZERO, Duration::from_millis(10));
    let node = Node::open(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = evenkeel_rpc::connect_lazy(&listener.local_addr().unwrap().to_string()).unwrap();
    let stop = CancellationToken::new();
    let (m, s) = (meta.clone(), stop.clone());
    let task = tokio::spawn(async move { node.run(listener, m, s.cancelled_owned()).await.unwrap() });

    write_and_delete(&mut client, &keys_of(held, 5)).await;
    write_and_delete(&mut client, &keys_of(free, 5)).await;
    // No horizon: a sweep runs (an expired key goes) and collects nothing.
    execute(&mut client, vec![set(&format!("{{{free}}}ttl"), Some(unix_ms() + 20))]).await;
    wait(&mut client, free, "the expired key swept", |s| s.keys == 0 && s.tombstones == 6).await;
    assert_eq!(partition_stats(&mut client, held).await.tombstones, 5);

    let hold = |p: u32| GcHorizon { held: [p as u16].into(), ..Default::default() };
    publish(meta.as_ref(), &hold(p_held)).await;
    wait(&mut client, free, "the free partition's tombstones collected", |s| s.tombstones == 0).await;
    assert_eq!(partition_stats(&mut client, held).await.tombstones, 5, "a held partition keeps its tombstones");

    // A coordinator begins moving the free partition; its horizon does not
    // show that migration yet.
    let token = 7;
    client.migrate_begin(pb::MigrateHeader { partition: p_free, token }).await.unwrap();
    write_and_delete(&mut client, &keys_of(free, 3)).await;
    publish(meta.as_ref(), &GcHorizon::default()).await;
    wait(&mut client, held, "the released partition's tombstones collected", |s| s.tombstones == 0).await;
    assert_eq!(partition_stats(&mut client, free).await.tombstones, 3, "the admitted token holds the partition");

    let released = GcHorizon { released: [(p_free as u16, token)].into(), ..Default::default() };
    publish(meta.as_ref(), &released).await;
    wait(&mut client, free, "tombstones collected once the migration finished", |s| s.tombstones == 0).await;
    stop.cancel();
    task.await.unwrap();
}
