//! The admin API's JSON shapes, shared with the CLI that reads them.

use crate::migration::machine::{MigrationModes, Shipped};
use evenkeel_types::latency::MirrorCounts;
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
    /// Ids of nodes removed from the cluster (`node remove`): never given
    /// out again, and their processes, started again, refuse to join.
    #[serde(default)]
    pub removed_nodes: Vec<NodeId>,
    /// The busiest keys over the nodes' last sampling windows (about 10 s),
    /// busiest first, at most [`HOT_KEYS_SHOWN`].
    #[serde(default)]
    pub hot_keys: Vec<HotKeyStatus>,
}

/// Hot keys a cluster status lists.
pub const HOT_KEYS_SHOWN: usize = 20;

/// A key among the cluster's busiest (`evenkeel_node::hotkeys`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HotKeyStatus {
    /// The key as redis-cli prints it (quoted, `\xhh` escapes); at most its
    /// first 256 bytes when `truncated`.
    pub key: String,
    pub node: NodeId,
    pub partition: PartitionId,
    /// Client ops per second, an overestimate by at most `error_ops_per_s`.
    pub ops_per_s: f64,
    pub error_ops_per_s: f64,
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub addr: String,
    pub state: NodeState,
    pub weight: u32,
    /// The zone the operator placed the node in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
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
    /// Ops refused OVERLOADED (not started within their deadline) since
    /// the node started; not among `errors_total`.
    #[serde(default)]
    pub shed_ops_total: u64,
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
    /// Partitions dropped here (retired) and not imported again since;
    /// compactions reclaim their space, which `disk_bytes` counts until then.
    #[serde(default)]
    pub retired_partitions: u32,
    /// CPU time the node's bulk threads (its share of migration work) have
    /// used since it started, in ms; 0 without a background lane.
    #[serde(default)]
    pub bulk_cpu_ms_total: u64,
    /// Wall time the node's storage engine has spent compacting since it
    /// started, in ms, and how many compactions run now: the engine's own
    /// cycle, which costs the machine's clients whether or not anything
    /// moves.
    #[serde(default)]
    pub compaction_ms_total: u64,
    #[serde(default)]
    pub compactions_active: u32,
    /// The node's row cache since it started: point reads answered from
    /// memory and those that went to the storage engine. A rise in misses
    /// per second is a node whose reads turned cold (a flush, an arriving
    /// partition), which its p99 may follow.
    #[serde(default)]
    pub row_cache_hits_total: u64,
    #[serde(default)]
    pub row_cache_misses_total: u64,
    /// fsyncs the node's group commit has run since it started, in
    /// `--durability sync` (0 in buffered): writes acknowledged per fsync
    /// is how many shared one.
    #[serde(default)]
    pub group_syncs_total: u64,
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
    /// Tombstones the owner holds, not yet collected.
    #[serde(default)]
    pub tombstones: u64,
    /// Client reads and writes per second on the partition, averaged over
    /// about a minute (`crate::load`); 0 until two polls measured it.
    #[serde(default)]
    pub reads_per_s: f64,
    #[serde(default)]
    pub writes_per_s: f64,
}

impl PartitionStatus {
    /// Client ops per second, reads and writes.
    pub fn ops_per_s(&self) -> f64 {
        self.reads_per_s + self.writes_per_s
    }
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

/// `POST /v1/migrations`: move one partition. The same JSON object may
/// carry [`ModeOverrides`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoveRequest {
    pub partition: PartitionId,
    pub target: NodeId,
}

/// Per-move changes to the coordinator's default routing modes, given as
/// extra fields of a [`MoveRequest`]: `{"partition": 3, "target": 2,
/// "dual_write": false}`. Absent fields keep the default.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ModeOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dual_write: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_read_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_on_read: Option<bool>,
}

impl ModeOverrides {
    /// `defaults` with these overrides applied.
    pub fn apply(&self, defaults: MigrationModes) -> MigrationModes {
        let mut m = defaults;
        m.route.dual_write = self.dual_write.unwrap_or(m.route.dual_write);
        m.route.shadow_read_ratio = self.shadow_read_ratio.unwrap_or(m.route.shadow_read_ratio);
        m.route.copy_on_read = self.copy_on_read.unwrap_or(m.route.copy_on_read);
        m
    }
}

/// A [`MoveRequest`] with [`ModeOverrides`], as the CLI sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoveWithModes {
    #[serde(flatten)]
    pub request: MoveRequest,
    #[serde(flatten)]
    pub modes: ModeOverrides,
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
    /// Change-log entries not yet shipped: while catching up, the source's
    /// not yet applied on the destination; in bake, the destination's not
    /// yet captured back to the source (what a rollback would still apply;
    /// as of reverse capture's last checkpoint, every 10 s by default).
    #[serde(default)]
    pub lag_entries: Option<u64>,
    /// The routing modes and shadow-read threshold in force.
    #[serde(default)]
    pub modes: Option<MigrationModes>,
    /// Routers' dual-writes, copy-on-read pushes and shadow-read
    /// comparisons for this migration, summed over routers.
    #[serde(default)]
    pub mirror: MirrorCounts,
    /// Change-log entries catch-up shipped, and how many the destination
    /// did not already hold.
    #[serde(default)]
    pub catch_up: Shipped,
    /// The same for the last cutover attempt's drain under the fence.
    #[serde(default)]
    pub drain: Shipped,
}

impl MigrationInfo {
    /// Whether the migration reached a phase with no way out (DONE,
    /// FAILED, CANCELLED, ROLLED_BACK).
    pub fn has_ended(&self) -> bool {
        matches!(self.state.as_str(), "DONE" | "FAILED" | "CANCELLED" | "ROLLED_BACK")
    }

    /// Times its copy began: more than one when its change log was trimmed
    /// under it and the copy started over (`bytes_copied` counts them all).
    pub fn copies(&self) -> usize {
        self.transitions.iter().filter(|t| t.state == "COPYING").count()
    }

    /// Milliseconds spent in `state` (all its spells; a spell still open
    /// counts up to `now_ms`).
    pub fn ms_in(&self, state: &str, now_ms: u64) -> u64 {
        let ends = self.transitions.iter().skip(1).map(|t| t.at_ms).chain(std::iter::once(self.finished_ms.unwrap_or(now_ms)));
        self.transitions.iter().zip(ends).filter(|(t, _)| t.state == state).map(|(t, end)| end.saturating_sub(t.at_ms)).sum()
    }

    /// The bulk copy's achieved rate: bytes copied over the time spent
    /// COPYING (pauses excluded). None before any time was spent copying.
    pub fn copy_rate_bytes_per_s(&self, now_ms: u64) -> Option<f64> {
        let ms = self.ms_in("COPYING", now_ms);
        (ms > 0).then(|| self.bytes_copied as f64 * 1000.0 / ms as f64)
    }
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
    /// The node's zone (failure domain), for staged rebalances' rings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// `POST /v1/nodes/{id}/zone`: place a node in a zone (`null`: in none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ZoneRequest {
    pub zone: Option<String>,
}

/// `GET /v1/rebalance`: the current (or last) rebalance and its migrations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RebalanceStatus {
    pub rebalance: Option<crate::rebalance::Rebalance>,
    pub migrations: Vec<MigrationInfo>,
    /// The throttle's current rate and why.
    #[serde(default)]
    pub throttle: Option<ThrottleStatus>,
    /// Automatic rebalancing's last decision ("balanced", "settling", ...);
    /// None when it is off (or has not looked yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<String>,
    /// How long the active rebalance still needs (`crate::estimate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<crate::estimate::Estimate>,
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
    /// Frozen while migrations are in flight.
    pub baseline_frozen: bool,
    /// The p99 at the floor the controller steers against instead of the
    /// baseline, once p99 stayed over budget at the floor (see
    /// `evenkeel_throttle::aimd`, "Latency that does not respond to the
    /// rate").
    #[serde(default)]
    pub floor_reference_p99_us: Option<u64>,
    /// Foreground p99, ops and errors of the last complete second.
    pub p99_us: u64,
    /// The routers' scheduling delay p99 over the same second.
    #[serde(default)]
    pub sched_p99_us: Option<u64>,
    /// The routers' p99 over the same second measured from when the kernel
    /// received each request (the wait in the socket included).
    #[serde(default)]
    pub arrival_p99_us: Option<u64>,
    pub ops_last_s: u64,
    pub errors_last_s: u64,
    /// Errors of the store's making (TRYAGAIN after the retry budget,
    /// CLUSTERDOWN) clients saw since this coordinator began leading, summed
    /// over routers. The disruption budget allows none.
    #[serde(default)]
    pub client_unavailable_total: u64,
    /// Where the foreground signal came from: "routers" or "nodes".
    pub signal: String,
    /// What the controller steers by: the median of the last
    /// `aimd.signal_window_s` seconds' p99s over the baseline.
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

#[cfg(test)]
impl NodeStatus {
    /// A healthy active node of weight 100 holding one partition and
    /// nothing else, serving 1,000 ops/s: tests change what they need.
    pub(crate) fn for_tests(id: NodeId) -> NodeStatus {
        NodeStatus {
            id,
            addr: String::new(),
            state: NodeState::Active,
            weight: 100,
            zone: None,
            healthy: true,
            live: true,
            problem: None,
            partitions: 1,
            keys: 0,
            bytes: 0,
            disk_bytes: 0,
            p99_us: 0,
            ops_last_s: 1000,
            errors_total: 0,
            shed_ops_total: 0,
            disk_free_bytes: 0,
            disk_total_bytes: 100 << 30,
            l0_tables: 0,
            sealed_memtables: 0,
            retired_partitions: 0,
            bulk_cpu_ms_total: 0,
            compaction_ms_total: 0,
            compactions_active: 0,
            row_cache_hits_total: 0,
            row_cache_misses_total: 0,
            group_syncs_total: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rate_counts_only_time_spent_copying() {
        let t = |state: &str, at_ms| Transition { state: state.into(), at_ms };
        let m = MigrationInfo {
            id: "m".into(),
            partition: 1,
            source: 1,
            target: 2,
            state: "DONE".into(),
            started_ms: 0,
            finished_ms: Some(20_000),
            bytes_copied: 5_000_000,
            keys_copied: 1,
            cutover_pause_ms: None,
            // 1 s copying, 5 s paused, 1 s copying, then the rest.
            transitions: vec![t("PENDING", 0), t("COPYING", 1_000), t("PAUSED", 2_000), t("COPYING", 7_000), t("CATCHING_UP", 8_000), t("DONE", 9_000)],
            error: None,
            bytes_total: None,
            lag_entries: None,
            modes: None,
            mirror: MirrorCounts::default(),
            catch_up: Shipped::default(),
            drain: Shipped::default(),
        };
        assert_eq!(m.ms_in("COPYING", 30_000), 2_000);
        assert_eq!(m.ms_in("DONE", 30_000), 11_000, "the last spell ends when the migration finished");
        assert_eq!(m.copy_rate_bytes_per_s(30_000), Some(2_500_000.0));
    }
}
