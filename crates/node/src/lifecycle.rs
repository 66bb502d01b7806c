//! Starting, running and stopping a node.
//!
//! [`Node::open`] opens the store. [`Node::run`] registers the node in the
//! metadata store with its address, keeps a lease-bound liveness key alive
//! (the heartbeat the coordinator watches), follows the routing table and
//! the GC horizon, runs the sweeper (expired keys, then old tombstones) and
//! the background flusher, and serves gRPC on the given listener until
//! `shutdown` resolves. On shutdown it stops serving,
//! revokes its lease and fsyncs the store.

use crate::cpu_budget::CpuBudget;
use crate::priority::Priority;
use crate::lane::{Lane, LaneConfig};
use crate::service::{NodeInner, NodeService, OwnThreads};
use crate::store::{Store, StoreConfig, StoreError};
use evenkeel_meta::{MetaError, MetaStore, follow};
use evenkeel_rpc::NodeServer;
use evenkeel_types::routing::NodeState;
use evenkeel_types::gc::GcHorizon;
use evenkeel_types::{NodeId, NodeInfo, PartitionId, RoutingTable, keys, unix_ms};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    pub store: StoreConfig,
    /// TTL of the liveness lease; the node refreshes it every third of this.
    pub heartbeat_ttl: Duration,
    /// How often the sweeper deletes expired keys and collects tombstones.
    pub sweep_interval: Duration,
    /// How old a tombstone must be before it may be collected (where the GC
    /// horizon allows it at all). It bounds how long a record may be in
    /// flight (router forwards, RPC retries, a zombie coordinator's last
    /// request) and the clock skew between nodes: anything older arriving
    /// after the tombstone is gone would come back.
    pub tombstone_grace: Duration,
    /// How often buffered writes are fsynced in `Durability::Buffered` mode.
    pub fsync_interval: Duration,
    /// Run bulk migration work (snapshot, log reads, applies, drops) in the
    /// background lane, where it yields to foreground requests (see
    /// [`crate::lane`]). Off, it competes with them as equals.
    pub background_lane: bool,
    /// Bulk migration requests doing store work at once, when the lane is
    /// on; at least 1.
    pub background_permits: usize,
    /// Longest one bulk migration request waits for foreground requests, in
    /// total, so migrations progress under any load.
    pub background_yield_max: Duration,
    /// Threads running bulk migration store work, at `bulk_priority` (when
    /// the background lane is on); see `crate::pool`.
    pub bulk_threads: usize,
    /// Their OS priority; `SCHED_IDLE` by default (see `crate::priority`).
    pub bulk_priority: Priority,
    /// A ceiling on their CPU time, which nodes of one process may share
    /// (see `crate::cpu_budget`); None: no ceiling.
    pub bulk_cpu_budget: Option<CpuBudget>,
    /// Also serve callers in this process directly, without the network
    /// (see `evenkeel_rpc::transport`); `evenkeel up` turns it on.
    pub in_process: bool,
    /// The zone to record in the node's membership entry when it starts
    /// (`serve node --zone`); None keeps what is recorded.
    pub zone: Option<String>,
}

impl NodeConfig {
    pub fn new(id: NodeId, store: StoreConfig) -> Self {
        NodeConfig {
            id,
            store,
            heartbeat_ttl: Duration::from_secs(3),
            sweep_interval: Duration::from_millis(100),
            tombstone_grace: Duration::from_secs(600),
            fsync_interval: Duration::from_secs(1),
            background_lane: true,
            background_permits: 1,
            background_yield_max: Duration::from_millis(20),
            bulk_threads: 1,
            bulk_priority: Priority::Idle,
            bulk_cpu_budget: None,
            in_process: false,
            zone: None,
        }
    }

    fn lane(&self) -> LaneConfig {
        LaneConfig { enabled: self.background_lane, permits: self.background_permits, yield_max: self.background_yield_max }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("rpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("node {0} was removed from the cluster (evenkeel node remove) and node ids are never reused: to bring this machine back, start it with a new --id (its data goes to a new, empty directory)")]
    Removed(NodeId),
}

/// Client requests queued for a node's writer or reader thread before
/// callers wait for room.
const OWN_THREAD_QUEUE: usize = 1024;
/// Bulk migration jobs queued; the lane's permits keep it far lower.
const BULK_QUEUE: usize = 64;

/// The nice value bulk threads get when `SCHED_IDLE` is asked for but this
/// process could not leave it while holding a lock (see [`boostable_or_niced`]).
const IDLE_FALLBACK_NICE: i32 = 10;

/// `wanted`, unless it is `SCHED_IDLE` and threads of this process cannot
/// boost themselves out of it while they hold a lock clients take
/// (`crate::priority`): an idle-class holder could then wait indefinitely
/// for a core on a busy machine, and every client write to the node with it.
/// A niced holder still gets its share of a core.
fn boostable_or_niced(wanted: Priority) -> Priority {
    static IDLE_BOOSTABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if wanted != Priority::Idle || *IDLE_BOOSTABLE.get_or_init(|| Priority::Idle.boostable()) {
        return wanted;
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(nice = IDLE_FALLBACK_NICE, "bulk threads run niced, not SCHED_IDLE: this process may not raise a thread's priority (needs CAP_SYS_NICE or RLIMIT_NICE >= 20)");
    });
    Priority::Nice(IDLE_FALLBACK_NICE)
}

/// A storage node: its store and ownership view, ready to run.
pub struct Node {
    inner: Arc<NodeInner>,
    config: NodeConfig,
    readiness: Readiness,
}

/// Whether a node is ready, for a readiness probe (`evenkeel serve node
/// --admin`'s `GET /readyz`): it has registered its address and its
/// liveness lease was renewed within the lease's TTL, so the coordinator
/// counts it live and routers can reach it. A node whose metadata store is
/// unreachable keeps serving what it owns, but is not ready: nothing can
/// move to or from it, and an orchestrator rolling a restart through the
/// cluster should wait. Cheap to clone; [`Node::run`] keeps it current.
#[derive(Clone, Default)]
pub struct Readiness(Arc<parking_lot::Mutex<ReadyState>>);

#[derive(Default)]
struct ReadyState {
    /// When the liveness lease was last granted or renewed; None before
    /// the node registered and after it stopped.
    live_at: Option<tokio::time::Instant>,
    ttl: Duration,
    /// The last heartbeat's failure, while the lease is not renewed.
    error: Option<String>,
    stopped: bool,
}

impl Readiness {
    /// Ok when ready; otherwise why not.
    pub fn check(&self) -> Result<(), String> {
        let s = self.0.lock();
        match s.live_at {
            _ if s.stopped => Err("the node is stopping".into()),
            None => Err("not registered with the metadata store yet".into()),
            Some(at) if at.elapsed() <= s.ttl => Ok(()),
            Some(at) => Err(format!("liveness lease not renewed for {:.1} s{}", at.elapsed().as_secs_f64(), s.error.as_ref().map_or(String::new(), |e| format!(" (last error: {e})")))),
        }
    }

    fn live(&self, ttl: Duration) {
        let mut s = self.0.lock();
        (s.live_at, s.ttl, s.error) = (Some(tokio::time::Instant::now()), ttl, None);
    }

    fn failed(&self, error: &MetaError) {
        self.0.lock().error = Some(error.to_string());
    }

    fn stopped(&self) {
        self.0.lock().stopped = true;
    }
}

impl Node {
    pub fn open(config: NodeConfig) -> Result<Node, NodeError> {
        let store = Store::open(config.store.clone())?;
        let bulk_priority = boostable_or_niced(config.bulk_priority);
        let bulk = config.background_lane.then(|| crate::pool::Pool::new("bulk", config.id, config.bulk_threads, bulk_priority, BULK_QUEUE, config.bulk_cpu_budget.clone())).transpose()?;
        let writer = crate::pool::Pool::new("writer", config.id, 1, Priority::Normal, OWN_THREAD_QUEUE, None)?;
        let reader = crate::pool::Pool::new("reader", config.id, 1, Priority::Normal, OWN_THREAD_QUEUE, None)?;
        let fenced = store.fenced_partitions()?;
        let inner = NodeInner::new(config.id, store, Lane::new(config.id, config.lane()), OwnThreads { writer, reader, bulk });
        // Fences outlive a restart (`Store::persist_fence`): a cutover in
        // progress finds its source still fenced, and the coordinator lifts
        // the fence as it would have.
        for p in fenced {
            tracing::info!(node = config.id, partition = p, "fenced before the restart; fenced again");
            inner.ownership.fence(p);
        }
        Ok(Node { inner: Arc::new(inner), config, readiness: Readiness::default() })
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// This node's readiness, kept current by [`Self::run`].
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn run(self, listener: TcpListener, meta: Arc<dyn MetaStore>, shutdown: impl Future<Output = ()> + Send) -> Result<(), NodeError> {
        let addr = listener.local_addr()?.to_string();
        let _ = self.inner.runtime.set(tokio::runtime::Handle::current());
        let service = NodeService { inner: self.inner.clone() };
        // Reachable in-process before the address is published, so every
        // client built from the membership record takes the direct path.
        let local = self.config.in_process.then(|| evenkeel_rpc::serve_local(&addr, service.clone(), crate::MAX_MESSAGE_BYTES));
        if !self.config.in_process {
            evenkeel_rpc::forget_local(&addr);
        }
        register(meta.as_ref(), self.config.id, &addr, &self.config.store.dir, self.config.zone.as_deref()).await?;
        let lease = meta.grant_lease(self.config.heartbeat_ttl).await?;
        meta.put(&keys::live_key(self.config.id), addr.clone().into_bytes(), Some(lease)).await?;
        self.readiness.live(self.config.heartbeat_ttl);
        let mut tasks = JoinSet::new();
        tasks.spawn(heartbeat(meta.clone(), self.config.id, addr.clone(), lease, self.config.heartbeat_ttl, self.readiness.clone()));
        tasks.spawn(follow_routing(meta.clone(), self.inner.clone()));
        tasks.spawn(follow_gc_horizon(meta.clone(), self.inner.clone()));
        tasks.spawn(follow_notify_flags(meta.clone(), self.inner.clone()));
        tasks.spawn(follow_script_time_limit(meta.clone(), self.inner.clone()));
        tasks.spawn(sweep(self.inner.clone(), self.config.sweep_interval, self.config.tombstone_grace));
        tasks.spawn(flush(self.inner.clone(), self.config.fsync_interval));
        tasks.spawn(tend_memtables(self.inner.clone()));
        tracing::info!(node = self.config.id, %addr, in_process = self.config.in_process, "node serving");
        // Pub/Sub feeds never end by themselves: close them at the stop, or
        // the server would wait for them.
        let relay = self.inner.relay.clone();
        let shutdown = async move {
            shutdown.await;
            relay.close();
        };
        let server = tonic::transport::Server::builder().add_service(node_server(service));
        // Accepted sockets must have TCP_NODELAY: a gRPC reply is several
        // small HTTP/2 frames, and with Nagle on, the later ones wait for the
        // router's delayed ACK, adding ~40 ms to every request. tonic applies
        // its own `tcp_nodelay` setting only to sockets it binds itself, so
        // the incoming stream of our listener sets it (`Handshaking` does
        // too).
        let served = match evenkeel_rpc::cluster_tls() {
            // Mutual TLS when the process has it: callers present a
            // certificate of the cluster's CA. The handshakes are ours, so
            // that renewed certificates and CAs are taken as they come.
            Some(tls) => {
                let incoming = evenkeel_rpc::tls::Handshaking::new(listener, tls.server_config(), "node gRPC", "evenkeel_internal_tls_handshake_failures_total")?;
                server.serve_with_incoming_shutdown(incoming, shutdown).await
            }
            None => server.serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown).await,
        };
        self.readiness.stopped();
        drop(local);
        tasks.shutdown().await;
        if let Err(e) = meta.revoke_lease(lease).await {
            tracing::warn!(node = self.config.id, error = %e, "could not revoke liveness lease");
        }
        self.inner.store.sync()?;
        tracing::info!(node = self.config.id, "node stopped");
        Ok(served?)
    }
}

fn node_server(service: NodeService) -> NodeServer<NodeService> {
    NodeServer::new(service).max_decoding_message_size(crate::MAX_MESSAGE_BYTES).max_encoding_message_size(crate::MAX_MESSAGE_BYTES)
}

/// Records this node's address (and `zone`, if given) in its membership
/// entry, creating the entry if the node is new. Other fields (state,
/// weight) belong to the coordinator and are kept. Refused for a removed node: the removal record is read
/// after the membership record, and a removal writes it before deleting
/// that, so a removal that races this registration is always seen (or the
/// registration's swap fails and it looks again).
async fn register(meta: &dyn MetaStore, id: NodeId, addr: &str, dir: &std::path::Path, zone: Option<&str>) -> Result<(), NodeError> {
    use evenkeel_meta::{CasOutcome, Compare};
    let key = keys::node_key(id);
    loop {
        let current = meta.get(&key).await?;
        if meta.get(&keys::removed_key(id)).await?.is_some() {
            return Err(NodeError::Removed(id));
        }
        let (expect, mut info) = match &current {
            Some(kv) => (Compare::ModRevision(kv.mod_revision), serde_json::from_slice::<NodeInfo>(&kv.value).map_err(|e| MetaError::Corrupt(e.to_string()))?),
            None => (Compare::Absent, NodeInfo { id, addr: String::new(), weight: 100, state: NodeState::Active, data_dir: Some(dir.display().to_string()), zone: None }),
        };
        info.addr = addr.to_string();
        if let Some(z) = zone {
            info.zone = Some(z.to_string());
        }
        let value = serde_json::to_vec(&info).expect("node info serializes");
        if let CasOutcome::Swapped(_) = meta.compare_and_swap(&key, expect, Some(value), None).await? {
            return Ok(());
        }
    }
}

/// Keeps the liveness lease alive; if it expired (a long stall), takes a new
/// lease and writes the liveness key again. Notes each renewal and failure
/// in `ready`.
async fn heartbeat(meta: Arc<dyn MetaStore>, id: NodeId, addr: String, mut lease: i64, ttl: Duration, ready: Readiness) {
    let mut tick = tokio::time::interval(ttl / 3);
    loop {
        tick.tick().await;
        match meta.keep_alive(lease).await {
            Ok(()) => {
                ready.live(ttl);
                continue;
            }
            Err(MetaError::LeaseNotFound(_)) => tracing::warn!(node = id, "liveness lease expired; renewing"),
            Err(e) => {
                tracing::warn!(node = id, error = %e, "heartbeat failed");
                ready.failed(&e);
                continue;
            }
        }
        let renewed = async {
            let l = meta.grant_lease(ttl).await?;
            meta.put(&keys::live_key(id), addr.clone().into_bytes(), Some(l)).await?;
            Ok::<_, MetaError>(l)
        };
        match renewed.await {
            Ok(l) => {
                lease = l;
                ready.live(ttl);
            }
            Err(e) => {
                tracing::warn!(node = id, error = %e, "could not renew liveness");
                ready.failed(&e);
            }
        }
    }
}

async fn follow_routing(meta: Arc<dyn MetaStore>, inner: Arc<NodeInner>) {
    let mut rx = follow::follow_key(meta, keys::ROUTING.to_string());
    loop {
        if let Some(kv) = rx.borrow_and_update().clone() {
            match RoutingTable::from_json(&kv.value) {
                Ok(table) => {
                    // A fence the table made moot goes from the store too.
                    for p in inner.ownership.update(&table) {
                        if let Err(e) = inner.store.persist_fence(p, false) {
                            tracing::warn!(node = inner.id, partition = p, error = %e, "could not forget a lifted fence; it returns after a restart until the table is seen");
                        }
                    }
                }
                Err(e) => tracing::error!(node = inner.id, error = %e, "unreadable routing table"),
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the coordinator's GC horizon. An unreadable one is not adopted
/// (the previous one stays, or none: then nothing is collected).
async fn follow_gc_horizon(meta: Arc<dyn MetaStore>, inner: Arc<NodeInner>) {
    let mut rx = follow::follow_key(meta, keys::GC_HORIZON.to_string());
    loop {
        if let Some(kv) = rx.borrow_and_update().clone() {
            match GcHorizon::from_json(&kv.value) {
                Ok(horizon) => inner.gc_horizon.store(Some(Arc::new(horizon))),
                Err(e) => tracing::error!(node = inner.id, error = %e, "GC horizon not adopted"),
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the store's keyspace-notification flags as CONFIG SET last
/// stored them.
async fn follow_notify_flags(meta: Arc<dyn MetaStore>, inner: Arc<NodeInner>) {
    follow_setting(meta, keys::NOTIFY_KEYSPACE_EVENTS, |stored| {
        let raw = stored.unwrap_or_default();
        match evenkeel_types::notify::Flags::from_stored(raw) {
            Some(flags) => inner.store.notifier().set(flags),
            None => tracing::error!(node = inner.id, value = %String::from_utf8_lossy(raw), "unreadable notify-keyspace-events; keeping the flags in force"),
        }
    })
    .await
}

/// Calls `apply` with a cluster setting's stored value (None while it is
/// absent), now and after each change, until the store's follower ends.
async fn follow_setting(meta: Arc<dyn MetaStore>, key: &str, mut apply: impl FnMut(Option<&[u8]>)) {
    let mut rx = follow::follow_key(meta, key.to_string());
    loop {
        apply(rx.borrow_and_update().as_ref().map(|kv| &kv.value[..]));
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the script engine's time limit as the cluster's setting says
/// (the default while it is absent).
async fn follow_script_time_limit(meta: Arc<dyn MetaStore>, inner: Arc<NodeInner>) {
    let Some(engine) = inner.store.scripts().cloned() else { return };
    follow_setting(meta, keys::SCRIPT_TIME_LIMIT, |stored| match evenkeel_script::time_limit_from_stored(stored) {
        Some(limit) => engine.set_time_limit(limit),
        None => tracing::error!(node = inner.id, "unreadable script time limit in the metadata store; keeping the one in force"),
    })
    .await
}

/// Index entries one sweep tick examines, for expiry and for tombstones
/// each.
const SWEEP_EXAMINED_MAX: usize = 1_000;

/// Each tick: deletes expired keys of owned partitions, then collects old
/// tombstones, a bounded batch of each, on the blocking pool (it reads and
/// writes the store).
async fn sweep(inner: Arc<NodeInner>, every: Duration, grace: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let i = inner.clone();
        match tokio::task::spawn_blocking(move || sweep_once(&i, unix_ms(), grace)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(node = inner.id, error = %e, "sweep failed"),
            Err(e) => tracing::error!(node = inner.id, error = %e, "sweep panicked"),
        }
    }
}

fn sweep_once(inner: &NodeInner, now_ms: u64, grace: Duration) -> Result<(), StoreError> {
    inner.store.sweep_expired(now_ms, SWEEP_EXAMINED_MAX, |p| inner.ownership.writable(p))?;
    let Some(horizon) = inner.gc_horizon.load_full() else { return Ok(()) };
    let before_ms = now_ms.saturating_sub(grace.as_millis() as u64);
    let collected = inner.store.collect_tombstones(before_ms, SWEEP_EXAMINED_MAX, |p| collectable(inner, &horizon, p))?;
    inner.metrics.collected(collected);
    Ok(())
}

/// Tombstones of `partition` may go: this node owns it and is not cutting
/// it over (writable), and no migration of it is unfinished, including one
/// the horizon does not show yet but whose token this node has admitted.
fn collectable(inner: &NodeInner, horizon: &GcHorizon, partition: PartitionId) -> bool {
    inner.ownership.writable(partition) && horizon.allows(partition, inner.store.admitted_token(partition))
}

/// Keeps the engine from freeing flushed memtables under its version lock
/// (`store::memtables`). On the blocking pool: taking a reference waits for
/// that lock, which a flush or compaction may hold across an fsync.
async fn tend_memtables(inner: Arc<NodeInner>) {
    let mut tick = tokio::time::interval(crate::store::TEND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let i = inner.clone();
        match tokio::task::spawn_blocking(move || i.store.tend_memtables()).await {
            Ok(tended) => {
                inner.metrics.memtables_freed(tended);
                inner.metrics.row_cache(inner.store.row_cache_stats());
            }
            Err(e) => tracing::error!(node = inner.id, error = %e, "memtable tending panicked"),
        }
    }
}

/// fsyncs the journal every `every`, on the blocking pool and without
/// stopping writers (`Store::sync_journals`): an fsync takes milliseconds,
/// and on a runtime worker it would stall every request of the process.
async fn flush(inner: Arc<NodeInner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let i = inner.clone();
        match tokio::task::spawn_blocking(move || i.store.sync_journals()).await {
            Ok(Ok(0)) => tracing::error!(node = inner.id, "background fsync found no journal file; writes are not being fsynced"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(node = inner.id, error = %e, "background fsync failed"),
            Err(e) => tracing::error!(node = inner.id, error = %e, "background fsync panicked"),
        }
    }
}
