//! Starting a node on loopback and the requests the tests send it.

use evenkeel_meta::{EmbeddedStore, MetaStore};
use evenkeel_node::{Node, NodeConfig, StoreConfig};
use evenkeel_rpc::{NodeClient, pb};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const PARTITIONS: u16 = 4;

pub type Client = NodeClient;

/// A running node with its own data directory and metadata store.
pub struct TestNode {
    pub client: Client,
    pub addr: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The default configuration of node `id` over a fresh directory.
pub fn config(id: evenkeel_types::NodeId, dir: &std::path::Path) -> NodeConfig {
    NodeConfig::new(id, StoreConfig::new(dir, PARTITIONS))
}

/// Starts node `id`, letting `tune` change its configuration first.
pub async fn start(id: evenkeel_types::NodeId, tune: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(id, dir.path());
    tune(&mut cfg);
    let node = Node::open(cfg).unwrap();
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move { node.run(listener, meta, s.cancelled_owned()).await.unwrap() });
    let client = evenkeel_rpc::connect_lazy(&addr.to_string()).unwrap();
    TestNode { client, addr: addr.to_string(), stop, task, _dir: dir }
}

impl TestNode {
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    pub async fn stats(&self) -> pb::StatsResponse {
        self.client.clone().stats(pb::StatsRequest::default()).await.unwrap().into_inner()
    }
}

/// The partition a key hashes to.
pub fn partition_of(key: &[u8]) -> u32 {
    evenkeel_types::slot::key_partition(key, PARTITIONS) as u32
}

/// One GET. The node owns nothing (no routing table), so it is refused, but
/// it runs the whole Execute path: in-flight count, failpoints, latency.
pub fn get(key: &str) -> pb::ExecuteRequest {
    let op = pb::Op { partition: partition_of(key.as_bytes()), key: key.to_string().into(), kind: Some(pb::op::Kind::Get(pb::Get::default())), want_record: false, track: false, waiter: 0 };
    pb::ExecuteRequest { epoch: 1, ops: vec![op], router: 0 }
}

pub fn header(partition: u32) -> Option<pb::MigrateHeader> {
    Some(pb::MigrateHeader { partition, token: 1 })
}

pub fn snapshot(partition: u32) -> pb::SnapshotRequest {
    pb::SnapshotRequest { header: header(partition), cursor: None, max_keys: 100, max_bytes: 1 << 20 }
}

/// An apply of `n` distinct keys, all in `partition` (by hash tag).
pub fn apply_many(partition_key: &str, n: usize) -> pb::ApplyRequest {
    let records = (0..n)
        .map(|i| pb::KeyRecord { key: format!("{{{partition_key}}}{i}").into(), tombstone: false, value: "v".into(), expire_at_ms: 0, version: 1 + i as u64, ..Default::default() })
        .collect();
    pb::ApplyRequest { header: header(partition_of(partition_key.as_bytes())), records, urgent: false, forwarded: false }
}
