//! The routing table and membership records.
//!
//! The routing table maps every partition to its owner node. It is one value
//! in the metadata store, replaced only by compare-and-swap, and every change
//! bumps its `epoch`. Each entry remembers the epoch at which it last changed:
//! a node refuses a request stamped with an epoch older than that, because the
//! sender routed with a table that predates the change (TiKV's "epoch not
//! match"). Requests with older epochs for unchanged partitions stay valid, so
//! a change to one partition does not disturb traffic to the others.
//!
//! While a partition moves, its entry also carries a [`MigrationRoute`]: the
//! destination, the migration's fencing token and the [`Modes`] routers
//! apply (dual-write, shadow reads, copy-on-read). Setting or clearing it
//! advances the table's epoch (so a router never swaps a newer table for an
//! older one with the same epoch) but not the entry's: nodes would refuse
//! every request routed before the change with `STALE_EPOCH`, a retry storm
//! for nothing, since a router that has not seen the route yet merely does
//! not mirror, and the change log covers what it does not mirror.

use crate::slot::{PartitionId, key_partition};
use serde::{Deserialize, Serialize};

/// A storage node's id, assigned at join and never reused.
pub type NodeId = u32;
/// The routing table's version; increases with every change.
pub type Epoch = u64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub owner: NodeId,
    /// The table epoch at which this entry last changed owner.
    pub epoch: Epoch,
    /// Set while the partition moves; absent in tables written before
    /// routes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationRoute>,
}

/// Where a moving partition goes and what routers do meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRoute {
    /// The migration's id: routers count shadow reads under it.
    pub migration: String,
    /// The destination node.
    pub target: NodeId,
    /// The migration's fencing token, which routers' mirrored requests
    /// carry (nodes refuse tokens older than the newest they have seen).
    pub token: u64,
    pub modes: Modes,
}

/// What routers do for a moving partition (DESIGN.md: "during a migration
/// [the router] applies the partition's migration mode"). Every mode is a
/// bounded asynchronous side effect after the client's reply: none decides
/// what a client sees, and correctness rests on the change log and the
/// fenced cutover, not on them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Modes {
    /// Every write the source acknowledges is sent on to the destination.
    pub dual_write: bool,
    /// The fraction of source-served GETs also read on the destination and
    /// compared, in [0, 1].
    pub shadow_read_ratio: f64,
    /// A source-served GET pushes the record it read to the destination
    /// (hot keys arrive before the bulk copy reaches them). The coordinator
    /// turns it on only while the copy runs.
    pub copy_on_read: bool,
}

impl Default for Modes {
    fn default() -> Self {
        Modes { dual_write: true, shadow_read_ratio: 0.01, copy_on_read: true }
    }
}

impl Modes {
    /// All off: a route that only names the destination.
    pub const OFF: Modes = Modes { dual_write: false, shadow_read_ratio: 0.0, copy_on_read: false };

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.shadow_read_ratio) {
            return Err(format!("shadow_read_ratio must be within [0, 1], not {}", self.shadow_read_ratio));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingTable {
    pub epoch: Epoch,
    pub partitions: Vec<PartitionEntry>,
}

/// Why a routing table is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    #[error("routing table has no partitions")]
    Empty,
    #[error("routing table has {0} partitions; at most 16384 are allowed")]
    TooManyPartitions(usize),
    #[error("partition {0} changed at epoch {1}, after the table's epoch {2}")]
    EntryFromFuture(PartitionId, Epoch, Epoch),
    #[error("cannot bootstrap a cluster without nodes")]
    NoNodes,
    #[error("partition {0} would move to its own owner")]
    RouteToOwner(PartitionId),
    #[error("partition {0}: {1}")]
    BadModes(PartitionId, String),
}

impl RoutingTable {
    /// A new table at epoch 1 spreading `num_partitions` evenly over `nodes`
    /// (round-robin, so counts differ by at most one).
    pub fn bootstrap(num_partitions: u16, nodes: &[NodeId]) -> Result<Self, RoutingError> {
        if nodes.is_empty() {
            return Err(RoutingError::NoNodes);
        }
        let partitions = (0..num_partitions as usize)
            .map(|p| PartitionEntry { owner: nodes[p % nodes.len()], epoch: 1, migration: None })
            .collect();
        let table = RoutingTable { epoch: 1, partitions };
        table.validate()?;
        Ok(table)
    }

    pub fn validate(&self) -> Result<(), RoutingError> {
        if self.partitions.is_empty() {
            return Err(RoutingError::Empty);
        }
        if self.partitions.len() > crate::SLOT_COUNT as usize {
            return Err(RoutingError::TooManyPartitions(self.partitions.len()));
        }
        for (p, e) in self.partitions.iter().enumerate() {
            if e.epoch > self.epoch {
                return Err(RoutingError::EntryFromFuture(p as PartitionId, e.epoch, self.epoch));
            }
            if let Some(route) = &e.migration {
                if route.target == e.owner {
                    return Err(RoutingError::RouteToOwner(p as PartitionId));
                }
                route.modes.validate().map_err(|m| RoutingError::BadModes(p as PartitionId, m))?;
            }
        }
        Ok(())
    }

    pub fn num_partitions(&self) -> u16 {
        self.partitions.len() as u16
    }

    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        key_partition(key, self.num_partitions())
    }

    pub fn entry(&self, partition: PartitionId) -> Option<&PartitionEntry> {
        self.partitions.get(partition as usize)
    }

    /// Partitions owned by `node`, ascending.
    pub fn partitions_of(&self, node: NodeId) -> Vec<PartitionId> {
        (0..self.num_partitions()).filter(|&p| self.partitions[p as usize].owner == node).collect()
    }

    /// A copy with `partition` owned by `owner` under the next epoch. The
    /// flip ends the partition's migration route, if it had one.
    pub fn with_owner(&self, partition: PartitionId, owner: NodeId) -> RoutingTable {
        let mut next = self.clone();
        next.epoch += 1;
        next.partitions[partition as usize] = PartitionEntry { owner, epoch: next.epoch, migration: None };
        next
    }

    /// A copy with `partition`'s migration route replaced, under the next
    /// table epoch; the entry's epoch stays (see the module overview).
    pub fn with_route(&self, partition: PartitionId, route: Option<MigrationRoute>) -> RoutingTable {
        let mut next = self.clone();
        next.epoch += 1;
        next.partitions[partition as usize].migration = route;
        next
    }

    /// `partition`'s migration route, if it is moving.
    pub fn route(&self, partition: PartitionId) -> Option<&MigrationRoute> {
        self.partitions.get(partition as usize)?.migration.as_ref()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("routing table serializes")
    }

    pub fn from_json(raw: &[u8]) -> Result<Self, String> {
        let table: RoutingTable = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        table.validate().map_err(|e| e.to_string())?;
        Ok(table)
    }
}

/// Lifecycle of a member node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Serves and may receive partitions.
    Active,
    /// Serves its partitions but receives no new ones; the planner moves its
    /// partitions away.
    Draining,
}

/// A member node as recorded in the metadata store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// host:port of the node's internal RPC service.
    pub addr: String,
    /// Relative capacity used by the planner; 100 is a standard node.
    pub weight: u32,
    pub state: NodeState,
    /// Where the node keeps its data, when the node runs inside `evenkeel up`.
    pub data_dir: Option<String>,
    /// The failure domain the operator placed the node in (a zone, rack or
    /// region): a staged rebalance's `rings` stage moves partitions into one
    /// zone at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// Cluster-wide settings fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub num_partitions: u16,
    pub created_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_spreads_evenly() {
        let t = RoutingTable::bootstrap(128, &[1, 2, 3]).unwrap();
        let counts: Vec<usize> = [1, 2, 3].iter().map(|&n| t.partitions_of(n).len()).collect();
        assert_eq!(counts, vec![43, 43, 42]);
        assert_eq!(RoutingTable::bootstrap(4, &[]), Err(RoutingError::NoNodes));
    }

    #[test]
    fn with_owner_bumps_only_that_entry() {
        let t = RoutingTable::bootstrap(8, &[1, 2]).unwrap();
        let u = t.with_owner(3, 1);
        assert_eq!(u.epoch, 2);
        assert_eq!(u.partitions[3], PartitionEntry { owner: 1, epoch: 2, migration: None });
        assert_eq!(u.partitions[2], t.partitions[2]);
        assert_eq!(RoutingTable::from_json(&u.to_json()).unwrap(), u);
    }

    fn route(target: NodeId) -> MigrationRoute {
        MigrationRoute { migration: "p3-1".into(), target, token: 42, modes: Modes::default() }
    }

    /// A route bumps the table's epoch, never the entry's (requests routed
    /// before it stay valid), and the flip to a new owner removes it.
    #[test]
    fn with_route_bumps_the_table_not_the_entry() {
        let t = RoutingTable::bootstrap(8, &[1, 2]).unwrap();
        let u = t.with_route(3, Some(route(1)));
        assert_eq!((u.epoch, u.partitions[3].epoch), (2, 1));
        assert_eq!(u.route(3), Some(&route(1)));
        assert_eq!(u.route(2), None);
        assert_eq!(RoutingTable::from_json(&u.to_json()).unwrap(), u);
        let flipped = u.with_owner(3, 1);
        assert_eq!((flipped.epoch, flipped.partitions[3].epoch, flipped.route(3)), (3, 3, None));
        assert_eq!(u.with_route(3, None).route(3), None);
    }

    /// Tables written before routes existed still parse, and a table
    /// without routes is written exactly as before.
    #[test]
    fn routes_are_backwards_compatible() {
        let old = br#"{"epoch":4,"partitions":[{"owner":1,"epoch":1},{"owner":2,"epoch":4}]}"#;
        let t = RoutingTable::from_json(old).unwrap();
        assert_eq!(t.partitions[1], PartitionEntry { owner: 2, epoch: 4, migration: None });
        assert_eq!(t.to_json(), old.to_vec());
        // Modes left out take their defaults.
        let partial = br#"{"epoch":4,"partitions":[{"owner":1,"epoch":1,"migration":{"migration":"m","target":2,"token":9,"modes":{"dual_write":false}}}]}"#;
        let t = RoutingTable::from_json(partial).unwrap();
        assert_eq!(t.route(0).unwrap().modes, Modes { dual_write: false, ..Modes::default() });
    }

    #[test]
    fn rejects_bad_routes() {
        let t = RoutingTable::bootstrap(2, &[1, 2]).unwrap();
        assert_eq!(RoutingTable::from_json(&t.with_route(0, Some(route(1))).to_json()), Err(RoutingError::RouteToOwner(0).to_string()));
        let mut bad = route(2);
        bad.modes.shadow_read_ratio = 1.5;
        assert!(RoutingTable::from_json(&t.with_route(0, Some(bad)).to_json()).is_err());
    }

    #[test]
    fn rejects_entries_from_the_future() {
        let mut t = RoutingTable::bootstrap(2, &[1]).unwrap();
        t.partitions[1].epoch = 9;
        assert!(RoutingTable::from_json(&t.to_json()).is_err());
    }
}
