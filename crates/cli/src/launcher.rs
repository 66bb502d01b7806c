//! Starting and stopping storage nodes inside the `evenkeel up` process.
//!
//! [`Launcher`] implements the coordinator's `NodeLauncher`, so
//! `evenkeel node add` starts a real node here (own data directory, own
//! port) and `node remove` stops one. Every node, the first ones included,
//! starts through it. A node that fails while starting fails its start
//! with its own error; one that stops on its own later reports its error
//! on the failure channel, which `evenkeel up` watches.

use crate::claims::Claims;
use anyhow::Context;
use evenkeel_coord::nodes::NodeLauncher;
use evenkeel_meta::MetaStore;
use evenkeel_node::priority::Priority;
use evenkeel_node::{CpuBudget, Durability, Node, NodeConfig, StoreConfig};
use evenkeel_types::{NodeId, NodeInfo, keys};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Settings every node of this process shares.
pub struct NodeDefaults {
    pub data_root: PathBuf,
    pub num_partitions: u16,
    pub durability: Durability,
    pub cache_bytes: u64,
    /// Memtable size of each node's data and change-log keyspaces.
    pub memtable_bytes: u64,
    /// Row cache of each node.
    pub row_cache_bytes: u64,
    /// Migration work yields to client requests on every node.
    pub background_lane: bool,
    /// Nodes also serve this process's callers without the network.
    pub in_process: bool,
    /// OS priority of each node's bulk migration threads.
    pub bulk_priority: Priority,
    /// The ceiling on their CPU time, shared by every node of the process.
    pub bulk_cpu_budget: Option<CpuBudget>,
    /// Age past which a node collects tombstones no migration needs.
    pub tombstone_grace: Duration,
    /// Change-log entries a node keeps per partition.
    pub log_retention_entries: u64,
    /// Change-log bytes a node keeps per partition.
    pub log_retention_bytes: u64,
    /// Free disk under which a node refuses ops that add data.
    pub min_free_disk_bytes: u64,
}

impl NodeDefaults {
    /// Node `id`'s configuration, its store in `dir`.
    pub fn config(&self, id: NodeId, dir: PathBuf) -> NodeConfig {
        let mut store = StoreConfig::new(dir, self.num_partitions);
        store.durability = self.durability;
        store.cache_bytes = self.cache_bytes;
        store.memtable_bytes = self.memtable_bytes;
        store.row_cache_bytes = self.row_cache_bytes;
        store.log_retention_entries = self.log_retention_entries;
        store.log_retention_bytes = self.log_retention_bytes;
        store.min_free_disk_bytes = self.min_free_disk_bytes;
        store.scripts = Some(Arc::new(evenkeel_script::Engine::new(Arc::new(evenkeel_router::cmd::scripting::ScriptCommands), evenkeel_script::Limits::default())));
        let mut config = NodeConfig::new(id, store);
        config.background_lane = self.background_lane;
        config.in_process = self.in_process;
        config.bulk_priority = self.bulk_priority;
        config.bulk_cpu_budget = self.bulk_cpu_budget.clone();
        config.tombstone_grace = self.tombstone_grace;
        config
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Launcher {
    meta: Arc<dyn MetaStore>,
    defaults: NodeDefaults,
    stop_all: CancellationToken,
    running: Mutex<HashMap<NodeId, Running>>,
    failures: mpsc::Sender<anyhow::Error>,
    /// The runtime nodes run on (the one that created the launcher), also
    /// for nodes launched from the coordinator's own runtime (`node add`).
    runtime: tokio::runtime::Handle,
    /// With the metadata in etcd: each node is claimed before it starts.
    claims: Option<Arc<Claims>>,
}

/// How long a launched node may take to register its heartbeat.
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Launcher {
    pub fn new(meta: Arc<dyn MetaStore>, defaults: NodeDefaults, claims: Option<Arc<Claims>>, stop_all: CancellationToken) -> (Arc<Launcher>, mpsc::Receiver<anyhow::Error>) {
        let (failures, rx) = mpsc::channel(16);
        let runtime = tokio::runtime::Handle::current();
        (Arc::new(Launcher { meta, defaults, stop_all, running: Mutex::new(HashMap::new()), failures, runtime, claims }), rx)
    }

    async fn start(&self, info: &NodeInfo) -> anyhow::Result<()> {
        if let Some(claims) = &self.claims {
            claims.claim(info.id).await?;
        }
        let dir = info.data_dir.clone().map_or_else(|| self.node_dir(info.id), PathBuf::from);
        let node = Node::open(self.defaults.config(info.id, dir)).with_context(|| format!("opening node {}", info.id))?;
        // Bound here, registered with the nodes' runtime in the task: a
        // tokio listener belongs to the reactor of the runtime that made it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a node port")?;
        listener.set_nonblocking(true).context("binding a node port")?;
        let stop = self.stop_all.child_token();
        let (meta, token, failures, id) = (self.meta.clone(), stop.clone(), self.failures.clone(), info.id);
        // A node that fails while starting fails its start with its own
        // error; one that fails later is reported to `up` as a failure.
        let (failed_starting, start_failure) = tokio::sync::oneshot::channel();
        let task = self.runtime.spawn(async move {
            let run = async { node.run(tokio::net::TcpListener::from_std(listener)?, meta, token.cancelled_owned()).await };
            if let Err(e) = run.await {
                let e = anyhow::Error::new(e).context(format!("node {id} failed"));
                if let Err(e) = failed_starting.send(e) {
                    let _ = failures.try_send(e);
                }
            }
        });
        self.running.lock().await.insert(info.id, Running { stop, task });
        tokio::select! {
            live = self.wait_live(info.id) => live,
            Ok(e) = start_failure => Err(e),
        }
    }

    async fn wait_live(&self, id: NodeId) -> anyhow::Result<()> {
        let mut live = evenkeel_meta::follow::follow_key(self.meta.clone(), keys::live_key(id));
        match tokio::time::timeout(START_TIMEOUT, live.wait_for(|kv| kv.is_some())).await {
            Ok(Ok(_)) => Ok(()),
            _ => anyhow::bail!("node {id} did not start heartbeating within {START_TIMEOUT:?}"),
        }
    }

    fn node_dir(&self, id: NodeId) -> PathBuf {
        self.defaults.data_root.join(format!("node-{id}"))
    }

    /// Waits for every node to stop (after `stop_all` was cancelled).
    pub async fn join_all(&self) {
        for (_, r) in self.running.lock().await.drain() {
            let _ = r.task.await;
        }
    }
}

#[async_trait::async_trait]
impl NodeLauncher for Launcher {
    fn data_dir(&self, id: NodeId) -> String {
        self.node_dir(id).display().to_string()
    }

    async fn launch(&self, info: &NodeInfo) -> Result<(), String> {
        self.start(info).await.map_err(|e| format!("{e:#}"))
    }

    async fn stop(&self, id: NodeId) -> Result<(), String> {
        let Some(r) = self.running.lock().await.remove(&id) else { return Ok(()) };
        r.stop.cancel();
        r.task.await.map_err(|e| format!("node {id} panicked: {e}"))?;
        if let Some(claims) = &self.claims {
            claims.release(id).await.map_err(|e| format!("node {id} stopped, but releasing its claim failed: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evenkeel_meta::EmbeddedStore;
    use evenkeel_types::routing::NodeState;
    use std::time::Instant;

    /// A node whose run fails before it is live (here: its id was removed)
    /// fails its start at once with its own error, not after the start
    /// timeout with "did not start heartbeating".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_that_fails_while_starting_fails_its_start_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let meta = EmbeddedStore::in_memory();
        meta.put(&keys::removed_key(3), b"{}".to_vec(), None).await.unwrap();
        let defaults = crate::up::UpOptions::ephemeral(dir.path()).node_defaults(8).unwrap();
        let (launcher, _failures) = Launcher::new(meta, defaults, None, CancellationToken::new());
        let info = NodeInfo { id: 3, addr: String::new(), weight: 100, state: NodeState::Active, data_dir: None, zone: None };
        let started = Instant::now();
        let e = launcher.start(&info).await.expect_err("a removed node cannot start");
        assert!(format!("{e:#}").contains("node 3 was removed"), "{e:#}");
        assert!(started.elapsed() < START_TIMEOUT / 3, "{:?}", started.elapsed());
    }
}
