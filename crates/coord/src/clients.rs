//! gRPC clients for member nodes, by id, rebuilt when an address changes.

use evenkeel_meta::MetaStore;
use evenkeel_rpc::NodeClient;
use evenkeel_types::{NodeId, NodeInfo, keys};
use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Default)]
pub struct NodeClients {
    by_id: Mutex<HashMap<NodeId, (String, NodeClient)>>,
}

impl NodeClients {
    /// A client for `info`, reusing the cached one if its address is the same.
    pub fn for_info(&self, info: &NodeInfo) -> Option<NodeClient> {
        let mut map = self.by_id.lock();
        if let Some((addr, c)) = map.get(&info.id)
            && *addr == info.addr
        {
            return Some(c.clone());
        }
        let client = evenkeel_rpc::connect_lazy(&info.addr).ok()?;
        map.insert(info.id, (info.addr.clone(), client.clone()));
        Some(client)
    }

    /// A client for node `id`, looking its address up in the store.
    pub async fn for_id(&self, meta: &dyn MetaStore, id: NodeId) -> Result<NodeClient, String> {
        let kv = meta.get(&keys::node_key(id)).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("node {id} is not a member"))?;
        let info: NodeInfo = serde_json::from_slice(&kv.value).map_err(|e| format!("membership record of node {id}: {e}"))?;
        if info.addr.is_empty() {
            return Err(format!("node {id} has never started"));
        }
        self.for_info(&info).ok_or_else(|| format!("node {id} has a bad address {}", info.addr))
    }
}
