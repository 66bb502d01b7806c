//! Membership changes: add, drain, remove.
//!
//! Adding a node allocates the next id and records the member (compare-and-
//! swap on an absent key, so racing adds get distinct ids); if the process
//! can start nodes itself (`evenkeel up` installs a [`NodeLauncher`]), it then
//! starts it. Draining marks a node so the planner moves everything off it
//! and nothing onto it. Removing is refused while the node owns partitions
//! or takes part in an unfinished migration; it writes a removal record
//! before deleting the membership record, so ids are never reused (`add`
//! counts removed ids as taken) and a removed node's process, started
//! again, refuses to join (`evenkeel_node`'s registration reads the removal
//! record after the membership record).

use crate::migration::manager;
use evenkeel_meta::{CasOutcome, Compare, MetaError, MetaStore};
use evenkeel_types::routing::NodeState;
use evenkeel_types::{NodeId, NodeInfo, RoutingTable, keys};

/// Starts and stops storage nodes inside this process (`evenkeel up`).
#[async_trait::async_trait]
pub trait NodeLauncher: Send + Sync + 'static {
    /// Where node `id` keeps its data.
    fn data_dir(&self, id: NodeId) -> String;
    /// Opens and starts node `info.id`; returns once it is serving.
    async fn launch(&self, info: &NodeInfo) -> Result<(), String>;
    /// Stops node `id` cleanly.
    async fn stop(&self, id: NodeId) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum NodeAdminError {
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("no node {0}")]
    NotFound(NodeId),
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong (a bad zone name).
    #[error("{0}")]
    Invalid(String),
    #[error("this coordinator cannot start nodes; start the node process on its machine and it will join")]
    NoLauncher,
    #[error("node {0} was recorded but failed to start: {1}")]
    LaunchFailed(NodeId, String),
}

pub async fn members(meta: &dyn MetaStore) -> Result<Vec<NodeInfo>, MetaError> {
    let (kvs, _) = meta.get_prefix(keys::NODES_PREFIX).await?;
    Ok(kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

/// The ids of removed nodes (their removal records), in order.
pub(crate) async fn removed_ids(meta: &dyn MetaStore) -> Result<Vec<NodeId>, MetaError> {
    let (removed, _) = meta.get_prefix(keys::REMOVED_PREFIX).await?;
    Ok(removed.iter().filter_map(|kv| keys::node_id_of(&kv.key)).collect())
}

/// The highest node id ever given out: members' and removed nodes'.
async fn highest_id(meta: &dyn MetaStore) -> Result<NodeId, MetaError> {
    let members = members(meta).await?.into_iter().map(|n| n.id);
    Ok(members.chain(removed_ids(meta).await?).max().unwrap_or(0))
}

/// Deletes the membership record of every node that has a removal record:
/// a removal cut off between writing the one and deleting the other (a
/// crash) is finished, so the node is not started and does not count as a
/// member.
pub async fn finish_removals(meta: &dyn MetaStore) -> Result<(), MetaError> {
    for id in removed_ids(meta).await? {
        if let Some(kv) = meta.get(&keys::node_key(id)).await?
            && let CasOutcome::Swapped(_) = meta.compare_and_swap(&kv.key, Compare::ModRevision(kv.mod_revision), None, None).await?
        {
            tracing::warn!(node = id, "finished the removal of node {id}, which was cut off before its membership record was deleted");
        }
    }
    Ok(())
}

/// Records and (with a launcher) starts a new node with `weight`, in `zone`.
pub async fn add(meta: &dyn MetaStore, launcher: Option<&dyn NodeLauncher>, weight: u32, zone: Option<String>) -> Result<NodeInfo, NodeAdminError> {
    let launcher = launcher.ok_or(NodeAdminError::NoLauncher)?;
    if weight == 0 {
        return Err(NodeAdminError::Refused("weight must be positive".into()));
    }
    let zone = zone.map(check_zone).transpose()?;
    loop {
        let id = highest_id(meta).await? + 1;
        let info = NodeInfo { id, addr: String::new(), weight, state: NodeState::Active, data_dir: Some(launcher.data_dir(id)), zone: zone.clone() };
        let value = serde_json::to_vec(&info).expect("node info serializes");
        if let CasOutcome::Swapped(_) = meta.compare_and_swap(&keys::node_key(id), Compare::Absent, Some(value), None).await? {
            launcher.launch(&info).await.map_err(|e| NodeAdminError::LaunchFailed(id, e))?;
            return Ok(info);
        }
    }
}

/// The longest zone name.
pub const ZONE_MAX: usize = 64;

/// A zone name as given, if it is one: 1 to [`ZONE_MAX`] characters of
/// letters, digits, `-`, `_`, `.` and `/`.
pub fn check_zone(zone: String) -> Result<String, NodeAdminError> {
    let ok = !zone.is_empty() && zone.len() <= ZONE_MAX && zone.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok { Ok(zone) } else { Err(NodeAdminError::Invalid(format!("zone {zone:?}: use 1 to {ZONE_MAX} letters, digits, '-', '_', '.' or '/'"))) }
}

/// Sets a member's state (drain, or back to active).
pub async fn set_state(meta: &dyn MetaStore, id: NodeId, state: NodeState) -> Result<NodeInfo, NodeAdminError> {
    update(meta, id, |info| info.state = state).await
}

/// Places a member in `zone` (None: in none).
pub async fn set_zone(meta: &dyn MetaStore, id: NodeId, zone: Option<String>) -> Result<NodeInfo, NodeAdminError> {
    let zone = zone.map(check_zone).transpose()?;
    update(meta, id, |info| info.zone = zone.clone()).await
}

/// Changes a member's record by compare-and-swap, retrying on conflict.
async fn update(meta: &dyn MetaStore, id: NodeId, change: impl Fn(&mut NodeInfo)) -> Result<NodeInfo, NodeAdminError> {
    loop {
        let kv = meta.get(&keys::node_key(id)).await?.ok_or(NodeAdminError::NotFound(id))?;
        let mut info: NodeInfo = serde_json::from_slice(&kv.value).map_err(|e| MetaError::Corrupt(e.to_string()))?;
        change(&mut info);
        let value = serde_json::to_vec(&info).expect("node info serializes");
        if let CasOutcome::Swapped(_) = meta.compare_and_swap(&kv.key, Compare::ModRevision(kv.mod_revision), Some(value), None).await? {
            return Ok(info);
        }
    }
}

/// Removes an empty member, stopping it first when this process runs it.
pub async fn remove(meta: &dyn MetaStore, launcher: Option<&dyn NodeLauncher>, id: NodeId) -> Result<(), NodeAdminError> {
    let kv = meta.get(&keys::node_key(id)).await?.ok_or(NodeAdminError::NotFound(id))?;
    if let Some(t) = meta.get(keys::ROUTING).await? {
        let table = RoutingTable::from_json(&t.value).map_err(MetaError::Corrupt)?;
        let owned = table.partitions_of(id).len();
        if owned > 0 {
            return Err(NodeAdminError::Refused(format!("node {id} still owns {owned} partitions; drain it first (evenkeel node drain {id})")));
        }
    }
    let busy = manager::list(meta).await?.into_iter().filter(|m| !m.phase.is_terminal() && (m.source == id || m.target == id)).count();
    if busy > 0 {
        return Err(NodeAdminError::Refused(format!("node {id} takes part in {busy} unfinished migrations")));
    }
    if let Some(l) = launcher {
        l.stop(id).await.map_err(NodeAdminError::Refused)?;
    }
    // The removal record first: from here the node cannot register again,
    // so the membership record can only change under us by a registration
    // that started before (a new address), and the delete is retried.
    meta.put(&keys::removed_key(id), kv.value.clone(), None).await?;
    let mut revision = kv.mod_revision;
    while let CasOutcome::Conflict(Some(current)) = meta.compare_and_swap(&kv.key, Compare::ModRevision(revision), None, None).await? {
        revision = current.mod_revision;
    }
    Ok(())
}
