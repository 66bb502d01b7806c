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
    /// Why the node is unhealthy, when it is.
    pub problem: Option<String>,
    pub partitions: usize,
    pub keys: u64,
    pub bytes: u64,
    pub disk_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionStatus {
    pub id: PartitionId,
    pub owner: NodeId,
    pub epoch: Epoch,
    pub keys: u64,
    pub bytes: u64,
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
}
