//! The routing table and membership records.
//!
//! The routing table maps every partition to its owner node. It is one value
//! in the metadata store, replaced only by compare-and-swap, and every change
//! bumps its `epoch`. Each entry remembers the epoch at which it last changed:
//! a node refuses a request stamped with an epoch older than that, because the
//! sender routed with a table that predates the change (TiKV's "epoch not
//! match"). Requests with older epochs for unchanged partitions stay valid, so
//! a change to one partition does not disturb traffic to the others.

use crate::slot::{PartitionId, key_partition};
use serde::{Deserialize, Serialize};

/// A storage node's id, assigned at join and never reused.
pub type NodeId = u32;
/// The routing table's version; increases with every change.
pub type Epoch = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub owner: NodeId,
    /// The table epoch at which this entry last changed.
    pub epoch: Epoch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl RoutingTable {
    /// A new table at epoch 1 spreading `num_partitions` evenly over `nodes`
    /// (round-robin, so counts differ by at most one).
    pub fn bootstrap(num_partitions: u16, nodes: &[NodeId]) -> Result<Self, RoutingError> {
        if nodes.is_empty() {
            return Err(RoutingError::NoNodes);
        }
        let partitions = (0..num_partitions as usize)
            .map(|p| PartitionEntry { owner: nodes[p % nodes.len()], epoch: 1 })
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

    /// A copy with `partition` owned by `owner` under the next epoch.
    pub fn with_owner(&self, partition: PartitionId, owner: NodeId) -> RoutingTable {
        let mut next = self.clone();
        next.epoch += 1;
        next.partitions[partition as usize] = PartitionEntry { owner, epoch: next.epoch };
        next
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
        assert_eq!(u.partitions[3], PartitionEntry { owner: 1, epoch: 2 });
        assert_eq!(u.partitions[2], t.partitions[2]);
        assert_eq!(RoutingTable::from_json(&u.to_json()).unwrap(), u);
    }

    #[test]
    fn rejects_entries_from_the_future() {
        let mut t = RoutingTable::bootstrap(2, &[1]).unwrap();
        t.partitions[1].epoch = 9;
        assert!(RoutingTable::from_json(&t.to_json()).is_err());
    }
}
