//! A whole cluster in one process.
//!
//! Start-up order: metadata store (embedded in `DATA_DIR/meta`, or etcd:
//! [`MetaBackend`]) → cluster config (partition count) →
//! membership (first start creates `nodes` members; later starts bring back
//! every recorded member with its data directory) → nodes → coordinator
//! (bootstraps the routing table once every node is live) → router. Shutdown
//! runs in reverse: the router stops accepting, the coordinator stops, the
//! nodes revoke their leases and fsync.
//!
//! Tests can also stop and start single roles: the coordinator (as a crash
//! looks to the others: its lease lapses, nothing is cleaned up) and nodes.

use anyhow::{Context, bail};
use evenkeel_coord::{CoordConfig, Coordinator, bootstrap};
use evenkeel_meta::{CasOutcome, Compare, EmbeddedOptions, EmbeddedStore, EtcdOptions, MetaStore};
use crate::claims::Claims;
use crate::launcher::{Launcher, NodeDefaults};
use evenkeel_coord::nodes::NodeLauncher;
use evenkeel_node::{CpuBudget, Durability};
use evenkeel_node::priority::Priority;
use evenkeel_router::{Router, RouterConfig};
use evenkeel_types::routing::NodeState;
use evenkeel_types::{NodeId, NodeInfo, keys};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The default ceiling on the nodes' bulk migration threads, in percent of
/// one core for all nodes of the process together: none. At 2% the
/// acceptance rebalance took 116-127 s instead of 44 s, its typical-second
/// p99 ratio was no better (median 1.20x both, three interleaved rounds)
/// and its window p99 worse (1.35x against 1.25x): it had 11-15 seconds
/// with p99 over 3x the baseline's against 0-1. What the copy costs clients
/// here is not its bulk threads' CPU rate (see docs/disruption-budget.md,
/// "What the copy costs"); the ceiling is there for operators who want migrations'
/// CPU bounded.
pub const DEFAULT_BULK_CPU_PERCENT: f64 = 0.0;

/// Where the cluster keeps its metadata (membership, routing table,
/// migrations, leases and locks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MetaBackend {
    /// A local log in `DATA_DIR/meta` (`EmbeddedStore`): the default.
    #[default]
    Embedded,
    /// An etcd cluster (`EtcdStore`; needs a build with the `etcd`
    /// feature). Node data stays in `DATA_DIR`.
    Etcd(Box<EtcdOptions>),
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub data_dir: PathBuf,
    /// Where the metadata lives.
    pub meta: MetaBackend,
    /// Nodes to create on first start.
    pub nodes: usize,
    /// Partitions to create on first start.
    pub partitions: u32,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// The file the admin API's tokens were read from (they are in
    /// `coord.admin_auth`), for `--print-config`.
    pub admin_token_file: Option<PathBuf>,
    /// Serve the admin API without a token off loopback
    /// ([`evenkeel_coord::auth::check_exposure`]).
    pub admin_insecure: bool,
    /// The RESP endpoint's TLS files (built into `router.tls`), for
    /// `--print-config`.
    pub tls: Option<crate::tls::TlsFiles>,
    /// The admin API's TLS files (built into `coord.admin_tls`), for
    /// `--print-config`.
    pub admin_tls: Option<crate::tls::TlsFiles>,
    /// Mutual TLS on the internal gRPC; applied by `main` to the process
    /// ([`evenkeel_rpc::set_cluster_tls`]) before anything starts, not by
    /// [`LocalCluster::start`].
    pub internal_tls: Option<evenkeel_rpc::ClusterTls>,
    pub durability: Durability,
    pub router: RouterConfig,
    /// Per-node fjall block cache.
    pub cache_bytes: u64,
    /// Per-node memtable size of the data and change-log keyspaces, for
    /// nodes whose store is created with it.
    pub memtable_bytes: u64,
    /// Per-node row cache (`node::store::rows`); 0 turns it off.
    pub row_cache_bytes: u64,
    /// Coordinator settings (migration limits, bake time, pause budget).
    pub coord: CoordConfig,
    /// Nodes run migration work in a low-priority lane behind client work.
    pub background_lane: bool,
    /// Router and coordinator call this process's nodes directly (same gRPC
    /// contract, no sockets); off, they use loopback gRPC like remote nodes.
    pub in_process_rpc: bool,
    /// The nodes' bulk migration threads (with the lane on) are
    /// `SCHED_IDLE`; off, they run at `bulk_nice`.
    pub bulk_idle: bool,
    /// Nice value of the nodes' bulk migration threads when not idle-class.
    pub bulk_nice: i32,
    /// Percent of one core the bulk migration threads of all this
    /// process's nodes may use together (`evenkeel_node::cpu_budget`);
    /// 0: no ceiling.
    pub bulk_cpu_percent: f64,
    /// Nice value of the coordinator's runtime (its own thread; see
    /// [`CoordRuntime`]).
    pub coordinator_nice: i32,
    /// Age past which nodes collect tombstones no migration needs.
    pub tombstone_grace: Duration,
    /// Change-log entries each node keeps per partition.
    pub log_retention_entries: u64,
    /// Change-log bytes each node keeps per partition.
    pub log_retention_bytes: u64,
    /// Free disk under which nodes refuse commands that add data.
    pub min_free_disk_bytes: u64,
    /// The process runs without transparent huge pages
    /// ([`disable_transparent_huge_pages`]); applied by `evenkeel up`'s
    /// `main` before it starts any thread, not by [`LocalCluster::start`].
    pub disable_thp: bool,
    /// How long the allocator keeps memory the process freed before giving
    /// it back to the kernel, in ms; -1: never ([`set_memory_purge_delay`]).
    /// Applied by `evenkeel up`'s `main`, like `disable_thp`.
    pub memory_purge_delay_ms: i64,
}

/// The allocator keeps what the process frees ([`set_memory_purge_delay`]).
pub const DEFAULT_MEMORY_PURGE_DELAY_MS: i64 = -1;

/// mimalloc's option index for the purge delay (`mi_option_purge_delay` in
/// its `mimalloc.h`; the `libmimalloc-sys` bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

// The options live in mimalloc's C library, which the `mimalloc` crate
// links; naming the crate here keeps it linked into every binary of this
// crate (its tests included), not only the one that installs it.
use mimalloc as _;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Sets how long the global allocator (mimalloc) waits before it gives
/// memory the process freed back to the kernel (`MADV_DONTNEED`), in ms;
/// -1: never, so the process keeps its peak and reuses it.
///
/// mimalloc's own default is 1 s. A rebalance allocates and frees chunk
/// buffers, pages and memtable nodes in bursts, so memory went back to the
/// kernel a second after use and was faulted in and zeroed again moments
/// later: every purge an `madvise` (a TLB shootdown across the process's
/// threads) and every refault a page fault, both traps into the hypervisor
/// on a VM. The evidence that it matters is thin (docs/disruption-budget.md,
/// "Host freezes"): in four interleaved pairs of acceptance runs the window p99
/// was lower with -1 in three (1.08x, 1.00x, 1.10x, 1.39x against 1.28x,
/// 1.38x, 1.29x, 1.09x with 1000), the typical second and the copy's CPU
/// per MB were the same. In steady load the process purged 2-3 times a
/// second with 1000. The cost is resident memory: the process keeps its
/// peak, as a Redis with jemalloc mostly does. Returns the value in force
/// afterwards.
pub fn set_memory_purge_delay(ms: i64) -> i64 {
    // SAFETY: mimalloc's option calls take plain integers, may be called at
    // any time, and the option is read at each purge decision.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, ms as std::ffi::c_long);
        mi_option_get(MI_OPTION_PURGE_DELAY) as i64
    }
}

/// Turns transparent huge pages off for this whole process, for memory it
/// faults in from now on (Linux `PR_SET_THP_DISABLE`; elsewhere nothing).
///
/// mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`), so the
/// first touch of a fresh 2 MiB region zeroes all of it in the page fault,
/// on whichever thread allocated: off-CPU stacks of the runtime workers in
/// the acceptance run showed such faults (`do_huge_pmd_anonymous_page`,
/// `folio_zero_user`) under router allocations, 2.6-4.1 ms each, and while
/// one worker is stuck in one the whole process answers no one. Memory
/// grows while partitions move in, so they came mostly then: the bench saw
/// no reply at all for over 1.5 ms 6.6-9.5 times a second while
/// migrations copied, 2.9-3.2 before. With huge pages off (two interleaved
/// pairs of acceptance runs): 1.6-2.6 such gaps a second in every phase,
/// and the median per-second p99 fell from 0.66-1.2 ms to 0.32-0.36 ms
/// before the rebalance and from 3.0-4.2 ms to 0.45-0.51 ms while
/// migrations copied. Redis turns them off for the same reason.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with these arguments reads and writes no memory.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether transparent huge pages are off for this process (Linux).
#[cfg(target_os = "linux")]
pub fn transparent_huge_pages_disabled() -> bool {
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

impl UpOptions {
    /// What every node this process runs is configured with.
    pub(crate) fn node_defaults(&self, num_partitions: u16) -> anyhow::Result<NodeDefaults> {
        Ok(NodeDefaults {
            data_root: self.data_dir.clone(),
            num_partitions,
            durability: self.durability,
            cache_bytes: self.cache_bytes,
            memtable_bytes: self.memtable_bytes,
            row_cache_bytes: self.row_cache_bytes,
            background_lane: self.background_lane,
            in_process: self.in_process_rpc,
            bulk_priority: Priority::of(self.bulk_idle, self.bulk_nice),
            bulk_cpu_budget: (self.bulk_cpu_percent > 0.0).then(|| CpuBudget::new(self.bulk_cpu_percent)).transpose().map_err(|e| anyhow::anyhow!(e))?,
            tombstone_grace: self.tombstone_grace,
            log_retention_entries: self.log_retention_entries,
            log_retention_bytes: self.log_retention_bytes,
            min_free_disk_bytes: self.min_free_disk_bytes,
        })
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        UpOptions {
            data_dir: data_dir.into(),
            meta: MetaBackend::Embedded,
            nodes: 3,
            partitions: 128,
            listen: "127.0.0.1:6380".parse().expect("valid"),
            admin: "127.0.0.1:7070".parse().expect("valid"),
            admin_token_file: None,
            admin_insecure: false,
            tls: None,
            admin_tls: None,
            internal_tls: None,
            durability: Durability::default(),
            router: RouterConfig::default(),
            cache_bytes: 64 * 1024 * 1024,
            memtable_bytes: evenkeel_node::DEFAULT_MEMTABLE_BYTES,
            row_cache_bytes: evenkeel_node::DEFAULT_ROW_CACHE_BYTES,
            coord: CoordConfig::default(),
            background_lane: true,
            in_process_rpc: true,
            bulk_idle: true,
            bulk_nice: 10,
            bulk_cpu_percent: DEFAULT_BULK_CPU_PERCENT,
            coordinator_nice: 10,
            tombstone_grace: Duration::from_secs(600),
            log_retention_entries: 50_000,
            log_retention_bytes: evenkeel_node::store::DEFAULT_LOG_RETENTION_BYTES,
            min_free_disk_bytes: evenkeel_node::store::DEFAULT_MIN_FREE_DISK_BYTES,
            disable_thp: true,
            memory_purge_delay_ms: DEFAULT_MEMORY_PURGE_DELAY_MS,
        }
    }

    /// Ephemeral loopback ports, for tests. Migration threads at modest
    /// priorities: test binaries run many clusters at once on a saturated
    /// machine, where idle-class bulk threads get a token share and a
    /// lower-priority coordinator can miss its lease; the priorities
    /// themselves have tests of their own.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let mut o = UpOptions::new(data_dir);
        o.listen = "127.0.0.1:0".parse().expect("valid");
        o.admin = "127.0.0.1:0".parse().expect("valid");
        o.bulk_idle = false;
        o.coordinator_nice = 0;
        o
    }
}

/// A running cluster; dropping it without [`LocalCluster::shutdown`] aborts
/// the tasks without a clean stop.
pub struct LocalCluster {
    pub router_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub meta: Arc<dyn MetaStore>,
    pub node_ids: Vec<NodeId>,
    stop: CancellationToken,
    /// With the metadata in etcd: the task keeping this process's node
    /// claims ([`Claims`]), and what stops it (after the nodes, at shutdown).
    claims: JoinSet<anyhow::Result<()>>,
    claims_stop: CancellationToken,
    routers: JoinSet<anyhow::Result<()>>,
    coordinators: JoinSet<anyhow::Result<()>>,
    /// Stops the running coordinator alone (a child of `stop`).
    coord_stop: CancellationToken,
    coord_config: CoordConfig,
    coord_runtime: Arc<CoordRuntime>,
    launcher: Arc<Launcher>,
    node_failures: tokio::sync::mpsc::Receiver<anyhow::Error>,
}

impl LocalCluster {
    pub async fn start(opts: UpOptions) -> anyhow::Result<LocalCluster> {
        evenkeel_coord::metrics_handle();
        std::fs::create_dir_all(&opts.data_dir).with_context(|| format!("creating {}", opts.data_dir.display()))?;
        let meta = open_meta(&opts).await?;
        let stop = CancellationToken::new();
        // On etcd other processes may run nodes of this cluster: claim each
        // node before starting it. Released (not a child of `stop`) only
        // after every node stopped.
        let claims_stop = CancellationToken::new();
        let mut claims = JoinSet::new();
        let node_claims = match opts.meta {
            MetaBackend::Etcd(_) => {
                let c = Claims::new(meta.clone()).await?;
                claims.spawn(c.clone().keep(claims_stop.clone()));
                Some(c)
            }
            MetaBackend::Embedded => None,
        };
        let config = bootstrap::ensure_cluster_config(meta.as_ref(), opts.partitions).await?;
        let members = ensure_members(meta.as_ref(), &opts).await?;
        let router_listener = bind(opts.listen, "router").await?;
        let admin_listener = bind_admin(&opts).await?;
        let defaults = opts.node_defaults(config.num_partitions)?;
        let (launcher, node_failures) = Launcher::new(meta.clone(), defaults, node_claims, stop.clone());
        for info in &members {
            launcher.launch(info).await.map_err(|e| anyhow::anyhow!(e))?;
        }
        let coord_config = CoordConfig { bootstrap_nodes: members.len(), ..opts.coord.clone() };
        let admin_addr = admin_listener.local_addr()?;
        let router_addr = router_listener.local_addr()?;
        let node_ids = members.iter().map(|m| m.id).collect();
        let coord_stop = stop.child_token();
        let coord_runtime = Arc::new(CoordRuntime::new(opts.coordinator_nice)?);
        let mut cluster = LocalCluster { router_addr, admin_addr, meta, node_ids, stop, claims, claims_stop, routers: JoinSet::new(), coordinators: JoinSet::new(), coord_stop, coord_config, coord_runtime, launcher, node_failures };
        cluster.spawn_coordinator(admin_listener);
        // The router accepts clients only once the routing table exists.
        // Serving earlier answered PING (so clients and scripts took the
        // cluster for ready) but failed every data command with CLUSTERDOWN
        // until the coordinator's next bootstrap attempt. The listener is
        // already bound, so clients connecting meanwhile wait in the accept
        // backlog instead of being refused.
        cluster.wait_bootstrapped(Duration::from_secs(30)).await?;
        let router = Router::new(opts.router.clone(), cluster.meta.clone()).await;
        let s = cluster.stop.clone();
        cluster.routers.spawn(async move { Ok(router.serve(router_listener, s.cancelled_owned()).await?) });
        Ok(cluster)
    }

    fn spawn_coordinator(&mut self, listener: TcpListener) {
        let coord = Coordinator::with_launcher(self.meta.clone(), self.coord_config.clone(), Some(self.launcher.clone() as Arc<dyn NodeLauncher>));
        self.coord_stop = self.stop.child_token();
        let s = self.coord_stop.clone();
        let rt = self.coord_runtime.clone();
        self.coordinators.spawn(async move {
            let listener = listener.into_std()?;
            let task = rt.handle().spawn(async move { coord.run(TcpListener::from_std(listener)?, s.cancelled_owned()).await });
            Ok(task.await.context("the coordinator panicked")??)
        });
    }

    /// Stops the coordinator the way a crash looks to the rest of the
    /// cluster: its migration drivers are dropped wherever they are, nothing
    /// is cleaned up, and its leader lease is left to lapse (`leader_ttl`),
    /// as are the partition locks held under it. Its admin API closes.
    pub async fn stop_coordinator(&mut self) -> anyhow::Result<()> {
        self.coord_stop.cancel();
        while let Some(joined) = self.coordinators.join_next().await {
            joined.context("the coordinator panicked")??;
        }
        Ok(())
    }

    /// Starts a new coordinator on the same metadata store and admin
    /// address. It leads once the previous leader's lease is gone and then
    /// resumes every unfinished migration from its stored state.
    pub async fn start_coordinator(&mut self) -> anyhow::Result<()> {
        let listener = bind(self.admin_addr, "admin API").await?;
        self.spawn_coordinator(listener);
        Ok(())
    }

    /// Stops node `id`: it stops serving (in-flight requests finish), drops
    /// its in-memory state (fences, ownership view, caches), revokes its
    /// liveness lease and fsyncs. A process crash loses no acknowledged
    /// write either (buffered durability; see the persistence test).
    pub async fn stop_node(&self, id: NodeId) -> anyhow::Result<()> {
        self.launcher.stop(id).await.map_err(anyhow::Error::msg)
    }

    /// Starts node `id` again on its data directory (on a new port, which it
    /// records in its membership entry) and waits for its heartbeat.
    pub async fn start_node(&self, id: NodeId) -> anyhow::Result<()> {
        let kv = self.meta.get(&keys::node_key(id)).await?.with_context(|| format!("node {id} is not a member"))?;
        let info: NodeInfo = serde_json::from_slice(&kv.value).with_context(|| format!("membership record of node {id}"))?;
        self.launcher.launch(&info).await.map_err(anyhow::Error::msg)
    }

    /// Waits until the routing table exists.
    async fn wait_bootstrapped(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut routing = evenkeel_meta::follow::follow_key(self.meta.clone(), keys::ROUTING.to_string());
        let ready = routing.wait_for(|kv| kv.is_some());
        match tokio::time::timeout(timeout, ready).await {
            Ok(Ok(_)) => Ok(()),
            _ => bail!("the cluster did not bootstrap within {timeout:?}; are all nodes starting? see the log"),
        }
    }

    /// Stops every role in reverse start order and waits for them.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        for set in [&mut self.routers, &mut self.coordinators] {
            while let Some(joined) = set.join_next().await {
                joined.context("a task panicked")??;
            }
        }
        self.launcher.join_all().await;
        self.claims_stop.cancel();
        while let Some(joined) = self.claims.join_next().await {
            joined.context("the node claims' task panicked")??;
        }
        Ok(())
    }

    /// Resolves when any role stops on its own (a failure), with its error.
    pub async fn failed(&mut self) -> anyhow::Error {
        let joined = tokio::select! {
            Some(e) = self.node_failures.recv() => return e,
            Some(j) = self.routers.join_next() => j,
            Some(j) = self.coordinators.join_next() => j,
            Some(j) = self.claims.join_next() => j,
        };
        match joined {
            Ok(Ok(())) => anyhow::anyhow!("a component stopped unexpectedly"),
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("a component panicked: {e}"),
        }
    }
}

/// The coordinator's own runtime: one worker thread, at a raised nice value
/// by default. Migration orchestration (drivers, the in-process snapshot and
/// apply calls they make with their protobuf encoding, metadata writes) then
/// never occupies a worker that client requests are queued on, and gets a
/// smaller share of a contended core. Nodes stay on the main runtime, also
/// those the coordinator launches (`node add`), and urgent node work (the
/// drain under a cutover's fence) runs on the nodes' runtime whoever calls.
struct CoordRuntime(Option<tokio::runtime::Runtime>);

impl CoordRuntime {
    fn new(nice: i32) -> anyhow::Result<CoordRuntime> {
        let priority = Priority::of(false, nice);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ek-coord")
            .on_thread_start(move || priority.apply_or_warn())
            .enable_all()
            .build()
            .context("starting the coordinator's runtime")?;
        Ok(CoordRuntime(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("the runtime lives until drop").handle()
    }
}

impl Drop for CoordRuntime {
    /// Without blocking: the cluster may be dropped inside the main
    /// runtime. The coordinator has stopped by then unless the cluster was
    /// dropped without `shutdown`, which aborts everything anyway.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn node_dir(opts: &UpOptions, id: NodeId) -> PathBuf {
    opts.data_dir.join(format!("node-{id}"))
}

/// Binds the admin API's address, once [`evenkeel_coord::auth::check_exposure`]
/// allows serving it there as configured.
pub async fn bind_admin(opts: &UpOptions) -> anyhow::Result<TcpListener> {
    evenkeel_coord::auth::check_exposure(opts.admin, opts.coord.admin_auth.as_ref(), opts.admin_insecure).map_err(|e| anyhow::anyhow!(e))?;
    bind(opts.admin, "admin API").await
}

pub(crate) async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what}"))
}

/// The metadata store `opts` names.
pub(crate) async fn open_meta(opts: &UpOptions) -> anyhow::Result<Arc<dyn MetaStore>> {
    match &opts.meta {
        MetaBackend::Embedded => {
            let meta_dir = opts.data_dir.join("meta");
            let store = EmbeddedStore::open(&meta_dir, EmbeddedOptions::default())
                .await
                .with_context(|| format!("opening the metadata store in {}", meta_dir.display()))?;
            Ok(store)
        }
        #[cfg(feature = "etcd")]
        MetaBackend::Etcd(etcd) => {
            let store = evenkeel_meta::EtcdStore::connect(etcd.as_ref().clone())
                .await
                .with_context(|| format!("connecting to the metadata store in etcd at {}", etcd.endpoints.join(",")))?;
            Ok(store)
        }
        #[cfg(not(feature = "etcd"))]
        MetaBackend::Etcd(_) => {
            bail!("this evenkeel was built without etcd support: build it with `cargo build --release --features etcd` (needs protoc: apt-get install protobuf-compiler libprotobuf-dev)")
        }
    }
}

/// The members to run: those recorded, or `opts.nodes` new ones.
async fn ensure_members(meta: &dyn MetaStore, opts: &UpOptions) -> anyhow::Result<Vec<NodeInfo>> {
    evenkeel_coord::nodes::finish_removals(meta).await?;
    let (existing, _) = meta.get_prefix(keys::NODES_PREFIX).await?;
    let mut members: Vec<NodeInfo> = existing
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).with_context(|| format!("membership record {} is unreadable", kv.key)))
        .collect::<anyhow::Result<_>>()?;
    if !members.is_empty() {
        if members.len() != opts.nodes {
            tracing::info!(recorded = members.len(), requested = opts.nodes, "existing cluster: starting its recorded nodes");
        }
        return Ok(members);
    }
    if opts.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    for id in 1..=opts.nodes as NodeId {
        let info = NodeInfo { id, addr: String::new(), weight: 100, state: NodeState::Active, data_dir: Some(node_dir(opts, id).display().to_string()), zone: None };
        let value = serde_json::to_vec(&info)?;
        if let CasOutcome::Swapped(_) = meta.compare_and_swap(&keys::node_key(id), Compare::Absent, Some(value), None).await? {
            members.push(info);
        }
    }
    Ok(members)
}

#[cfg(all(test, not(feature = "etcd")))]
mod without_etcd {
    use super::*;

    #[tokio::test]
    async fn a_build_without_etcd_refuses_it_and_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = UpOptions::ephemeral(dir.path());
        opts.meta = MetaBackend::Etcd(Box::new(EtcdOptions::new(vec!["http://127.0.0.1:2379".into()])));
        let e = open_meta(&opts).await.err().expect("refused");
        assert!(e.to_string().contains("--features etcd"), "{e}");
        assert!(!dir.path().join("meta").exists(), "nothing opened instead");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use evenkeel_node::priority::current_thread_priority;

    #[test]
    fn the_purge_delay_is_mimallocs_option_and_takes_what_is_set() {
        // SAFETY: as in `set_memory_purge_delay`.
        let before = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc's own default for the purge delay (its neighbours
        // default to 1 and 0), so the index names the right option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(before, 1000);
        }
        assert_eq!(set_memory_purge_delay(-1), -1);
        assert_eq!(set_memory_purge_delay(250), 250);
        set_memory_purge_delay(before as i64);
    }

    #[tokio::test]
    async fn the_coordinator_runtime_runs_on_its_own_thread_at_its_nice_value() {
        let (_, caller) = current_thread_priority();
        let rt = CoordRuntime::new(7).unwrap();
        let (name, (policy, nice)) = rt.handle().spawn(async { (std::thread::current().name().map(str::to_owned), current_thread_priority()) }).await.unwrap();
        assert_eq!(name.as_deref(), Some("ek-coord"));
        assert_eq!((policy, nice), (libc::SCHED_OTHER, (caller + 7).min(19)));
        assert_eq!(current_thread_priority().1, caller, "the caller's runtime is untouched");
        // Dropped inside a runtime without panicking.
        drop(rt);
    }
}
