//! The admin API's JSON shapes, shared with the CLI that reads them.

use evenkeel_types::{Epoch, NodeId, PartitionId};
use evenkeel_types::routing::NodeState;
use serde::{Deserialize, Serialize};

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterStatus {
    /// False until the routing table exists.
    pub bootstrapped: bool,
    pub epoch: Epoch,
    pub num_partitions: u16,
    /// Whether the coordinator answering holds the leader lease.
    pub leader: bool,
    pub nodes: Vec<NodeStatus>,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub addr: String,
    pub state: NodeState,
    pub weight: u32,
    /// Heartbeating and answering stats.
    pub healthy: bool,
    /// Heartbeating (its liveness key exists), whether or not stats answered.
    #[serde(default)]
    pub live: bool,
    /// Why the node is unhealthy, when it is.
    pub problem: Option<String>,
    pub partitions: usize,
    pub keys: u64,
    pub bytes: u64,
    pub disk_bytes: u64,
    /// Foreground Execute p99 and ops over the node's last complete second.
    #[serde(default)]
    pub p99_us: u64,
    #[serde(default)]
    pub ops_last_s: u64,
    /// Failed ops since the node started.
    #[serde(default)]
    pub errors_total: u64,
    #[serde(default)]
    pub disk_free_bytes: u64,
    #[serde(default)]
    pub disk_total_bytes: u64,
    /// Storage-engine debt: most level-0 tables and sealed memtables of any
    /// of the node's keyspaces.
    #[serde(default)]
    pub l0_tables: u32,
    #[serde(default)]
    pub sealed_memtables: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionStatus {
    pub id: PartitionId,
    pub owner: NodeId,
    pub epoch: Epoch,
    pub keys: u64,
    pub bytes: u64,
    /// The owner's next change-log position (for migration lag).
    #[serde(default)]
    pub log_next: u64,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub error: String,
}

/// `GET /v1/migrations`: every migration the coordinator knows, newest last.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MigrationList {
    pub migrations: Vec<MigrationInfo>,
}

/// `POST /v1/migrations`: move one partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoveRequest {
    pub partition: PartitionId,
    pub target: NodeId,
}

/// One partition move as the admin API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationInfo {
    pub id: String,
    pub partition: PartitionId,
    pub source: NodeId,
    pub target: NodeId,
    /// The state machine's state, SCREAMING_SNAKE_CASE as in DESIGN.md.
    pub state: String,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub bytes_copied: u64,
    pub keys_copied: u64,
    /// Writes were fenced for this long at cutover.
    pub cutover_pause_ms: Option<u64>,
    /// Every state entered, in order.
    pub transitions: Vec<Transition>,
    /// Why the migration failed or is paused, when it did or is.
    #[serde(default)]
    pub error: Option<String>,
    /// The partition's size as of the last stats poll (the copy's goal).
    #[serde(default)]
    pub bytes_total: Option<u64>,
    /// Source change-log entries not yet applied on the destination.
    #[serde(default)]
    pub lag_entries: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transition {
    pub state: String,
    pub at_ms: u64,
}

/// `POST /v1/nodes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AddNodeRequest {
    /// Relative capacity; 100 (the default) is a standard node.
    pub weight: Option<u32>,
}

/// `GET /v1/rebalance`: the current (or last) rebalance and its migrations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RebalanceStatus {
    pub rebalance: Option<crate::rebalance::Rebalance>,
    pub migrations: Vec<MigrationInfo>,
    /// The throttle's current rate and why.
    #[serde(default)]
    pub throttle: Option<ThrottleStatus>,
}

/// `GET /v1/throttle`: the throttle's settings and what it decided last.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ThrottleStatus {
    /// Migrations moving data now (bake does not count).
    pub migrations_moving: usize,
    /// Per-migration rate in force (None: unlimited).
    pub rate_bytes_per_s: Option<f64>,
    /// The adaptive controller's cluster-wide rate, when adaptive is on.
    pub adaptive_rate_bytes_per_s: Option<f64>,
    /// Why the rate is what it is, e.g. "cut: p99 1.18x baseline".
    pub reason: String,
    pub baseline_p99_us: Option<u64>,
    /// Frozen while migrations move data.
    pub baseline_frozen: bool,
    /// Foreground p99, ops and errors of the last complete second.
    pub p99_us: u64,
    pub ops_last_s: u64,
    pub errors_last_s: u64,
    /// Where the foreground signal came from: "routers" or "nodes".
    pub signal: String,
    pub p99_ratio: Option<f64>,
    pub budget_ratio: f64,
    /// (p99 ratio - 1) / (budget - 1): 1.0 means the budget is used up.
    pub budget_used: Option<f64>,
    /// Cluster-wide concurrency from the active time window.
    pub max_concurrent: Option<usize>,
    pub nodes: Vec<NodeGateStatus>,
    pub settings: crate::throttle::Settings,
}

/// One node's health gate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeGateStatus {
    pub node: NodeId,
    /// "open", "paused" or "abort".
    pub state: String,
    pub reasons: Vec<String>,
}
