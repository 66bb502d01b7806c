//! Creating a cluster.
//!
//! The partition count is fixed at creation ([`ensure_cluster_config`]):
//! nodes need it before they open their stores. The first routing table is
//! created once enough nodes are live ([`ensure_routing`]). Both steps are
//! compare-and-swap on an absent key, so any number of processes may race
//! to do them and exactly one wins.

use evenkeel_meta::{CasOutcome, Compare, MetaError, MetaStore};
use evenkeel_types::routing::ClusterConfig;
use evenkeel_types::{NodeId, RoutingTable, keys, unix_ms};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("stored cluster state is unreadable: {0}")]
    Corrupt(String),
    #[error("{live} of {needed} nodes are live")]
    NotEnoughNodes { live: usize, needed: usize },
    #[error("partition count must be between 1 and 16384, not {0}")]
    BadPartitionCount(u32),
}

/// Returns the cluster's configuration, creating it with `num_partitions`
/// if the cluster is new. An existing cluster keeps its partition count.
pub async fn ensure_cluster_config(meta: &dyn MetaStore, num_partitions: u32) -> Result<ClusterConfig, BootstrapError> {
    if num_partitions == 0 || num_partitions > evenkeel_types::SLOT_COUNT as u32 {
        return Err(BootstrapError::BadPartitionCount(num_partitions));
    }
    let fresh = ClusterConfig { num_partitions: num_partitions as u16, created_ms: unix_ms() };
    let value = serde_json::to_vec(&fresh).expect("config serializes");
    match meta.compare_and_swap(keys::CLUSTER, Compare::Absent, Some(value), None).await? {
        CasOutcome::Swapped(_) => Ok(fresh),
        CasOutcome::Conflict(Some(kv)) => {
            let existing: ClusterConfig = serde_json::from_slice(&kv.value).map_err(|e| BootstrapError::Corrupt(e.to_string()))?;
            if existing.num_partitions as u32 != num_partitions {
                tracing::warn!(existing = existing.num_partitions, requested = num_partitions, "cluster exists; keeping its partition count");
            }
            Ok(existing)
        }
        CasOutcome::Conflict(None) => Err(BootstrapError::Corrupt("cluster config vanished during creation".into())),
    }
}

/// Creates the first routing table over the live nodes once at least
/// `min_nodes` are live. Does nothing if a table exists.
pub async fn ensure_routing(meta: &dyn MetaStore, min_nodes: usize) -> Result<(), BootstrapError> {
    if meta.get(keys::ROUTING).await?.is_some() {
        return Ok(());
    }
    let config = match meta.get(keys::CLUSTER).await? {
        Some(kv) => serde_json::from_slice::<ClusterConfig>(&kv.value).map_err(|e| BootstrapError::Corrupt(e.to_string()))?,
        None => return Err(BootstrapError::Corrupt("no cluster config".into())),
    };
    let (live, _) = meta.get_prefix(keys::LIVE_PREFIX).await?;
    let ids: Vec<NodeId> = live.iter().filter_map(|kv| keys::node_id_of(&kv.key)).collect();
    if ids.len() < min_nodes.max(1) {
        return Err(BootstrapError::NotEnoughNodes { live: ids.len(), needed: min_nodes.max(1) });
    }
    let table = RoutingTable::bootstrap(config.num_partitions, &ids).map_err(|e| BootstrapError::Corrupt(e.to_string()))?;
    if let CasOutcome::Swapped(_) = meta.compare_and_swap(keys::ROUTING, Compare::Absent, Some(table.to_json()), None).await? {
        tracing::info!(nodes = ?ids, partitions = config.num_partitions, "cluster bootstrapped");
    }
    Ok(())
}
