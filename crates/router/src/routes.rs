//! The router's cached view of the routing table and node addresses.
//!
//! A background task follows the routing key and the membership prefix and
//! swaps in a new [`Routes`] whenever either changes, reusing gRPC channels
//! whose address did not change. When a node refuses a request because the
//! router's epoch is stale, the dispatcher calls [`RouteCache::refresh`],
//! which reads the store directly instead of waiting for the watch.

use arc_swap::ArcSwap;
use evenkeel_meta::{MetaStore, follow};
use evenkeel_rpc::NodeClient;
use evenkeel_types::{Epoch, NodeId, NodeInfo, RoutingTable, keys};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A routing table together with a client for every member node.
pub struct Routes {
    pub table: Option<RoutingTable>,
    pub nodes: HashMap<NodeId, (String, NodeClient)>,
}

impl Routes {
    pub fn epoch(&self) -> Epoch {
        self.table.as_ref().map_or(0, |t| t.epoch)
    }

    pub fn client(&self, node: NodeId) -> Option<NodeClient> {
        self.nodes.get(&node).map(|(_, c)| c.clone())
    }
}

pub struct RouteCache {
    meta: Arc<dyn MetaStore>,
    current: ArcSwap<Routes>,
    refreshing: tokio::sync::Mutex<Instant>,
    /// Bumped at every install, for those who act on a change of members.
    changes: tokio::sync::watch::Sender<u64>,
    /// Dropped with the cache, which ends the follower task.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Refreshes closer together than this share one read of the store.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(2);

impl RouteCache {
    /// Builds the cache and starts following the store.
    pub async fn start(meta: Arc<dyn MetaStore>) -> Arc<RouteCache> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let cache = Arc::new(RouteCache {
            meta: meta.clone(),
            current: ArcSwap::from_pointee(Routes { table: None, nodes: HashMap::new() }),
            refreshing: tokio::sync::Mutex::new(Instant::now() - MIN_REFRESH_GAP),
            changes: tokio::sync::watch::Sender::new(0),
            _stop: stop_tx,
        });
        let _ = cache.refresh().await;
        tokio::spawn(follow(Arc::downgrade(&cache), meta, stop_rx));
        cache
    }

    pub fn load(&self) -> Arc<Routes> {
        self.current.load_full()
    }

    /// Changes whenever new routes are installed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Reads the routing table and membership from the store now.
    pub async fn refresh(&self) -> Result<(), evenkeel_meta::MetaError> {
        let mut last = self.refreshing.lock().await;
        if last.elapsed() < MIN_REFRESH_GAP {
            return Ok(());
        }
        let table = self.meta.get(keys::ROUTING).await?.and_then(|kv| parse_table(&kv.value));
        let (members, _) = self.meta.get_prefix(keys::NODES_PREFIX).await?;
        let infos: Vec<NodeInfo> = members.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
        self.install(table, &infos);
        *last = Instant::now();
        Ok(())
    }

    /// Swaps in new routes unless they would move the epoch backwards.
    fn install(&self, table: Option<RoutingTable>, infos: &[NodeInfo]) {
        let old = self.current.load();
        let table = match (table, &old.table) {
            (Some(new), Some(cur)) if new.epoch < cur.epoch => Some(cur.clone()),
            (None, cur) => cur.clone(),
            (new, _) => new,
        };
        let nodes = infos
            .iter()
            .filter(|i| !i.addr.is_empty())
            .filter_map(|i| match old.nodes.get(&i.id) {
                Some((addr, client)) if *addr == i.addr => Some((i.id, (addr.clone(), client.clone()))),
                _ => connect(&i.addr).map(|c| (i.id, (i.addr.clone(), c))),
            })
            .collect();
        self.current.store(Arc::new(Routes { table, nodes }));
        self.changes.send_modify(|n| *n += 1);
    }
}

fn parse_table(raw: &[u8]) -> Option<RoutingTable> {
    RoutingTable::from_json(raw).map_err(|e| tracing::error!(error = %e, "unreadable routing table")).ok()
}

/// A lazily connecting client: no I/O until the first request.
fn connect(addr: &str) -> Option<NodeClient> {
    evenkeel_rpc::connect_lazy(addr).map_err(|e| tracing::error!(%addr, error = %e, "bad node address")).ok()
}

async fn follow(cache: std::sync::Weak<RouteCache>, meta: Arc<dyn MetaStore>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let mut routing = follow::follow_key(meta.clone(), keys::ROUTING.to_string());
    let mut members = follow::follow_prefix(meta, keys::NODES_PREFIX.to_string());
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = routing.changed() => if r.is_err() { return },
            m = members.changed() => if m.is_err() { return },
        }
        let Some(cache) = cache.upgrade() else { return };
        let table = routing.borrow_and_update().as_ref().and_then(|kv| parse_table(&kv.value));
        let infos: Vec<NodeInfo> = members.borrow_and_update().values().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
        cache.install(table, &infos);
    }
}
