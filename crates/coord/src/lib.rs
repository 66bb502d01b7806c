//! evenkeel coordinator.
//!
//! - [`bootstrap`]: cluster creation: the fixed partition count, then the
//!   first routing table spreading partitions evenly over the first nodes.
//! - [`Coordinator`]: holds the leader lease (only the leader changes cluster
//!   state; others stand by and serve the read API), polls every node's stats
//!   each `stats_interval`, tracks health from liveness keys, and keeps the
//!   [`api::ClusterStatus`] the admin API serves.
//! - [`http`]: the admin HTTP API (`/v1/cluster`, `/metrics`, `/healthz`).
//!
//! - [`migration`]: the migration state machine, its driver and the
//!   leader's manager of running migrations.
//!
//! - [`throttle`]: the disruption budget: baseline, adaptive and static
//!   rates, time windows and health gates, fed once a second by the poll.
//! - [`plan`], [`rebalance`], [`nodes`]: the planner, the rebalance
//!   scheduler, membership changes.
//! - [`gc`]: the tombstone-collection horizon the leader derives from the
//!   migration records and publishes for nodes.
//! - [`failpoints`]: crash and freeze points at the migration driver's
//!   state boundaries, compiled in for tests only.

pub mod api;
pub mod auth;
pub mod auto;
pub mod bootstrap;
pub mod clients;
pub mod dashboard;
pub mod estimate;
pub mod failpoints;
pub use evenkeel_rpc::followed;
pub mod gc;
pub mod http;
pub mod load;
pub mod migration;
pub mod nodes;
pub mod plan;
pub mod rebalance;
pub mod stages;
pub mod throttle;
pub mod tls;
mod poll;

use arc_swap::ArcSwap;
use evenkeel_meta::{LeaseId, MetaError, MetaStore};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct CoordConfig {
    /// Live nodes to wait for before creating the first routing table.
    pub bootstrap_nodes: usize,
    pub stats_interval: Duration,
    /// TTL of the leader lease.
    pub leader_ttl: Duration,
    pub driver: migration::driver::DriverConfig,
    pub limits: migration::machine::Limits,
    /// Routing modes of new migrations (a move request may override them)
    /// and the shadow-read threshold their verification applies.
    pub modes: migration::machine::MigrationModes,
    /// Concurrency of a rebalance started through the API.
    pub rebalance: rebalance::Limits,
    /// The stages a rebalance runs in when its request names none (empty:
    /// all moves at once).
    pub rebalance_stages: Vec<stages::StageSpec>,
    /// Start a rebalance by itself when the membership changed and held
    /// still this long ([`auto`]); None: only on request.
    pub auto_rebalance_settle: Option<Duration>,
    /// The p99 ratio a stage's bake may reach, unless a request says
    /// otherwise; None: the throttle's budget ratio.
    pub stage_p99_ratio_max: Option<f64>,
    /// Rebalances also even out client load ([`plan::plan_with`]), unless
    /// a request says otherwise; with automatic rebalancing, a load spread
    /// past the tolerance starts one too ([`auto`]). None: counts and bytes
    /// only.
    pub balance_load: Option<plan::LoadBalance>,
    /// The least time between the end of one rebalance and a rebalance
    /// automatic rebalancing starts for load.
    pub load_rebalance_cooldown: Duration,
    /// Throttle settings stored when the coordinator starts (from the
    /// configuration file); None keeps what is stored.
    pub throttle: Option<throttle::Settings>,
    /// The tokens the admin API asks for ([`auth`]); None: it answers
    /// anyone (refused off loopback unless meant: [`auth::check_exposure`]).
    pub admin_auth: Option<auth::AdminAuth>,
    /// Serve the admin API over TLS with this configuration ([`tls`]).
    pub admin_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for CoordConfig {
    fn default() -> Self {
        CoordConfig {
            bootstrap_nodes: 1,
            stats_interval: Duration::from_secs(1),
            leader_ttl: Duration::from_secs(5),
            driver: Default::default(),
            limits: Default::default(),
            modes: Default::default(),
            rebalance: Default::default(),
            rebalance_stages: Vec::new(),
            auto_rebalance_settle: None,
            stage_p99_ratio_max: None,
            balance_load: None,
            load_rebalance_cooldown: Duration::from_secs(1800),
            throttle: None,
            admin_auth: None,
            admin_tls: None,
        }
    }
}

pub struct Coordinator {
    meta: Arc<dyn MetaStore>,
    config: CoordConfig,
    status: ArcSwap<api::ClusterStatus>,
    leader: AtomicBool,
    clients: Arc<clients::NodeClients>,
    pub migrations: migration::manager::Manager,
    pub throttle: Arc<throttle::Throttle>,
    launcher: Option<Arc<dyn nodes::NodeLauncher>>,
    /// Per rebalance stage ("id/index"): the throttle's count of client
    /// errors of the store's making when this coordinator first saw the
    /// stage running. In memory: a new leader judges from its takeover.
    stage_marks: parking_lot::Mutex<std::collections::HashMap<String, u64>>,
    /// The membership automatic rebalancing last saw, and since when.
    auto_watch: auto::Watch,
    /// Per-partition client load, from the stats polls (`load`).
    load: parking_lot::Mutex<load::LoadTracker>,
}

impl Coordinator {
    pub fn new(meta: Arc<dyn MetaStore>, config: CoordConfig) -> Arc<Coordinator> {
        Self::with_launcher(meta, config, None)
    }

    /// A coordinator that can also start and stop nodes in this process.
    pub fn with_launcher(meta: Arc<dyn MetaStore>, config: CoordConfig, launcher: Option<Arc<dyn nodes::NodeLauncher>>) -> Arc<Coordinator> {
        let empty = api::ClusterStatus { bootstrapped: false, epoch: 0, num_partitions: 0, leader: false, nodes: vec![], partitions: vec![], removed_nodes: vec![], hot_keys: vec![] };
        Arc::new(Coordinator { meta, config, status: ArcSwap::from_pointee(empty), leader: AtomicBool::new(false),
            clients: Arc::default(),
            migrations: Default::default(),
            throttle: Arc::default(),
            launcher,
            stage_marks: Default::default(),
            auto_watch: Default::default(),
            load: Default::default(),
        })
    }

    /// The latest cluster status, as of the last stats poll.
    pub fn status(&self) -> Arc<api::ClusterStatus> {
        self.status.load_full()
    }

    pub fn meta(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }

    pub fn launcher(&self) -> Option<&dyn nodes::NodeLauncher> {
        self.launcher.as_deref()
    }

    pub fn limits(&self) -> migration::machine::Limits {
        self.config.limits
    }

    pub fn modes(&self) -> migration::machine::MigrationModes {
        self.config.modes
    }

    pub fn rebalance_limits(&self) -> rebalance::Limits {
        self.config.rebalance
    }

    /// The stages a rebalance started without any runs in.
    pub fn rebalance_stages(&self) -> Vec<stages::StageSpec> {
        self.config.rebalance_stages.clone()
    }

    /// The configured p99 ratio a stage's bake may reach.
    pub fn stage_p99_ratio_max(&self) -> Option<f64> {
        self.config.stage_p99_ratio_max
    }

    /// The load phase rebalances run with unless a request says otherwise.
    pub fn balance_load(&self) -> Option<plan::LoadBalance> {
        self.config.balance_load
    }

    pub(crate) fn auto_watch(&self) -> &auto::Watch {
        &self.auto_watch
    }

    /// Automatic rebalancing's last decision, when it is on.
    pub fn auto_rebalance_status(&self) -> Option<String> {
        self.config.auto_rebalance_settle.and(self.auto_watch.last_decision())
    }

    /// The error count at `stage`'s start as this coordinator saw it,
    /// recorded now if it had not seen the stage yet.
    fn stage_mark(&self, stage: &str) -> u64 {
        let now = self.throttle.client_unavailable_total();
        let mut marks = self.stage_marks.lock();
        // Only the current rebalance's stages are kept.
        let rebalance = stage.split('/').next().unwrap_or_default();
        marks.retain(|k, _| k.split('/').next() == Some(rebalance));
        *marks.entry(stage.to_string()).or_insert(now)
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Runs the coordinator and serves the admin API on `listener` until
    /// `shutdown` resolves.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // A configuration file's throttle settings replace the stored ones
        // when the process starts; `evenkeel throttle set` changes them later.
        if let Some(s) = &self.config.throttle
            && let Err(e) = throttle::store_settings(self.meta.as_ref(), s).await
        {
            tracing::error!(error = %e, "throttle settings from the configuration not stored");
        }
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().lead());
        tasks.spawn(poll::run(self.clone()));
        tracing::info!(addr = %listener.local_addr()?, "admin API listening");
        // The peer's address reaches handlers (the audit log names it).
        let app = http::routes(self.clone()).into_make_service_with_connect_info::<http::Peer>();
        let served = match &self.config.admin_tls {
            None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
            Some(config) => axum::serve(tls::TlsListener::new(listener, config.clone())?, app).with_graceful_shutdown(shutdown).await,
        };
        tasks.shutdown().await;
        // Drivers run in their own tasks; stop them with the coordinator.
        self.migrations.step_down();
        self.leader.store(false, Ordering::Release);
        served
    }

    /// Acquires and keeps the leader lease; as leader, bootstraps the
    /// routing table if the cluster has none.
    async fn lead(self: Arc<Self>) {
        loop {
            if let Err(e) = self.lead_once().await {
                tracing::warn!(error = %e, "leadership lost; standing by");
            }
            self.leader.store(false, Ordering::Release);
            self.migrations.step_down();
            tokio::time::sleep(self.config.leader_ttl / 5).await;
        }
    }

    async fn lead_once(&self) -> Result<(), MetaError> {
        let ttl = self.config.leader_ttl;
        let lease = self.meta.grant_lease(ttl).await?;
        let lock = self.meta.lock(evenkeel_types::keys::COORDINATOR_LEADER, lease, Duration::from_secs(3600));
        let lock = self.keeping_alive(lease, lock).await?;
        tracing::info!(fencing_token = lock.fencing_token, "coordinator is leader");
        let driver = migration::driver::Driver {
            meta: self.meta.clone(),
            clients: self.clients.clone(),
            lease,
            config: self.config.driver.clone(),
            throttle: self.throttle.clone(),
            flips: Default::default(),
        };
        self.migrations.lead(Arc::new(driver)).await?;
        // Only now: a coordinator that says it leads accepts moves.
        self.leader.store(true, Ordering::Release);
        // Ticks drive the rebalance scheduler; the lease is refreshed every
        // third of its TTL.
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut refreshed = tokio::time::Instant::now();
        let mut ticks: u64 = 0;
        loop {
            tick.tick().await;
            if refreshed.elapsed() >= ttl / 3 {
                self.meta.keep_alive(lease).await?;
                refreshed = tokio::time::Instant::now();
                // Restart drivers that stopped on a transient error.
                self.migrations.resume_all().await?;
                if let Err(e) = gc::publish(self.meta.as_ref()).await {
                    tracing::warn!(error = %e, "GC horizon not published");
                }
            }
            if let Err(e) = rebalance::schedule(self).await {
                tracing::warn!(error = %e, "rebalance scheduling failed");
            }
            // Automatic rebalancing looks once a second (five ticks).
            ticks = ticks.wrapping_add(1);
            if let Some(settle) = self.config.auto_rebalance_settle.filter(|_| ticks.is_multiple_of(5))
                && let Err(e) = auto::tick(self, settle.as_millis() as u64, self.config.load_rebalance_cooldown.as_millis() as u64).await
            {
                tracing::warn!(error = %e, "automatic rebalancing could not look at the cluster");
            }
            if let Err(e) = bootstrap::ensure_routing(self.meta.as_ref(), self.config.bootstrap_nodes).await {
                tracing::warn!(error = %e, "bootstrap not possible yet");
            }
        }
    }

    /// Awaits `wait` (the leader lock) while keeping `lease` alive. The
    /// wait can last a whole TTL: after a crash the metadata store gives the
    /// dead leader's lease a full TTL. A lease left alone meanwhile ran out
    /// just after the lock was won, and leadership flapped, aborting every
    /// driver mid-action.
    async fn keeping_alive<T>(&self, lease: LeaseId, wait: impl Future<Output = Result<T, MetaError>>) -> Result<T, MetaError> {
        let mut refresh = tokio::time::interval(self.config.leader_ttl / 3);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                done = &mut wait => return done,
                _ = refresh.tick() => self.meta.keep_alive(lease).await?,
            }
        }
    }
}

/// How often the recorder's histograms are drained ([`start_metrics_upkeep`]).
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with its
/// upkeep running ([`start_metrics_upkeep`]).
pub fn metrics_handle() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .expect("buckets are valid")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        if let Err(e) = start_metrics_upkeep(handle.clone(), METRICS_UPKEEP_INTERVAL) {
            tracing::error!(error = %e, "cannot start the metrics upkeep thread; histograms grow until /metrics is scraped");
        }
        handle
    })
}

/// Histogram buckets, in seconds, for every latency histogram.
pub const LATENCY_BUCKETS: [f64; 15] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Drains `handle`'s histograms into their buckets every `every`, on a
/// thread of its own, for as long as the process lives.
///
/// The recorder keeps every histogram sample in a list until something
/// drains it: a scrape of `/metrics`, or this upkeep. `install_recorder`
/// does not start one (only the exporter's own HTTP listener does), and
/// nothing else drains: a cluster nobody scraped grew by every request's
/// samples (router command and node execute latency, several per
/// request), for ever. A thread, not a task: it must not take a worker
/// from the runtime that serves clients, and each pass is short
/// (bucketing the last interval's samples).
pub fn start_metrics_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle, every: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("ek-metrics".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            handle.run_upkeep();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use evenkeel_meta::EmbeddedStore;
    use evenkeel_types::keys;

    /// After a crash the embedded store gives every recovered lease a full
    /// TTL, so a restarted coordinator waits about that long for the dead
    /// leader's lock. Its own lease, granted before that wait, must still be
    /// alive when the lock is won: leadership won then must be kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leadership_won_after_waiting_out_a_dead_leader_is_kept() {
        let meta = EmbeddedStore::in_memory();
        let ttl = Duration::from_millis(1000);
        let dead = meta.grant_lease(ttl).await.unwrap();
        meta.try_lock(keys::COORDINATOR_LEADER, dead).await.unwrap().expect("the lock is free");
        // The new leader's lease is granted a little later (in `evenkeel up`,
        // after the nodes have started), so it runs out a little after the
        // dead one's, well before the new leader's first keep-alive.
        tokio::time::sleep(ttl * 3 / 20).await;
        let coord = Coordinator::new(meta.clone(), CoordConfig { leader_ttl: ttl, ..Default::default() });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(coord.clone().run(listener, async move {
            let _ = stopped.await;
        }));
        let deadline = tokio::time::Instant::now() + ttl * 5;
        while !coord.is_leader() {
            assert!(tokio::time::Instant::now() < deadline, "never became leader");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let watch_until = tokio::time::Instant::now() + ttl * 2;
        while tokio::time::Instant::now() < watch_until {
            assert!(coord.is_leader(), "leadership was lost again right after it was won");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
    }
}
