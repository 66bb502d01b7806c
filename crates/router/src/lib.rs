//! evenkeel router: a RESP2 server that routes Redis commands to the nodes
//! that own their keys.
//!
//! Layout, in the order a request meets it:
//! - [`arrival`]: when a request's bytes reached the host (kernel receive
//!   timestamps), so latency can count the wait in the socket.
//! - [`session`]: one task per client connection. Decodes requests with
//!   `evenkeel_resp`, runs them in order, writes replies in batches
//!   (flushing before it waits for more input, so pipelines cost one write).
//! - [`batch`]: consecutive pipelined data commands whose ops go out
//!   together, one `Execute` per node, each command answered in order.
//! - [`cmd`]: every command, parsed and answered as Redis 7 does. Multi-key
//!   commands are split into single-key operations.
//! - [`dispatch`]: single-key operations grouped by owner node and sent over
//!   gRPC; refusals from nodes (not owner, stale epoch, fenced) are retried
//!   transparently after a routing refresh within a bounded budget.
//! - [`routes`]: the cached routing table (key → slot → partition → owner)
//!   and a gRPC client per node, kept current by watching the metadata store.
//! - [`mirror`]: for a moving partition, after the reply: dual-writes,
//!   copy-on-read and shadow reads to the destination, bounded and counted.
//! - [`pubsub`]: Pub/Sub: this router's subscribers, its link to every
//!   node (which relay messages between routers), fan-out to clients.
//! - [`report`]: per-second latency of every command, published to the
//!   metadata store for the coordinator's throttle.
//!
//! [`Router::serve`] takes a listener and a shutdown future, so tests and
//! `evenkeel up` pass their own sockets.

pub mod acl;
pub mod arrival;
pub mod batch;
pub mod clients;
pub mod followed;
pub mod cmd;
pub mod dispatch;
pub use evenkeel_types::glob;
pub mod mirror;
pub mod monitor;
pub mod pubsub;
pub mod report;
pub mod routes;
pub mod session;
pub mod slowlog;
pub mod stats;
pub mod tracking;

use dispatch::{Dispatcher, RetryBudget};
use evenkeel_meta::MetaStore;
use evenkeel_resp::Limits;
pub use session::Session;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub limits: Limits,
    /// Connections beyond this get `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// The password of the user `default` until ACL SETUSER stores one:
    /// when set, clients must AUTH with it.
    pub requirepass: Option<String>,
    pub retry: RetryBudget,
    /// Bounds on dual-writes, copy-on-read and shadow reads.
    pub mirror: mirror::MirrorConfig,
    /// SLOWLOG logs commands taking at least this many microseconds
    /// (negative: none), keeping the newest `slowlog_max_len`.
    pub slowlog_slower_than_us: i64,
    pub slowlog_max_len: usize,
    /// How long WATCH trusts that a key it found absent stayed so: past
    /// this, EXEC aborts, since the key may have been created, deleted
    /// and its tombstone collected (which takes the nodes' tombstone
    /// grace). Half the grace.
    pub watch_absent_max: std::time::Duration,
    /// When set, clients connect with TLS (the certificate, key and
    /// client-certificate rule it holds; the CLI builds it from
    /// `[router] tls_cert`, `tls_key`, `tls_client_ca`); plain RESP is not
    /// served then.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            limits: Limits::default(),
            max_clients: 10_000,
            requirepass: None,
            retry: RetryBudget::default(),
            mirror: Default::default(),
            slowlog_slower_than_us: slowlog::DEFAULT_SLOWER_THAN_US,
            slowlog_max_len: slowlog::DEFAULT_MAX_LEN,
            watch_absent_max: std::time::Duration::from_secs(300),
            tls: None,
        }
    }
}

/// Shared state of all connections.
pub struct Router {
    pub config: RouterConfig,
    pub dispatcher: Dispatcher,
    pub started: Instant,
    /// This router's id in its latency reports (random per process start).
    pub id: u64,
    /// INFO replication's `master_replid`: 40 random hex digits per start,
    /// as Redis draws one.
    pub replid: String,
    /// Latency of every command, summarized per second.
    pub latency: Arc<evenkeel_types::latency::SecondWindow>,
    /// Latency of every command from when its bytes reached the host (see
    /// [`arrival`]), summarized per second: `latency` plus the wait in the
    /// socket.
    pub arrival: Arc<evenkeel_types::latency::SecondWindow>,
    /// SLOWLOG's entries.
    pub slowlog: slowlog::SlowLog,
    /// The connected clients (CLIENT LIST, CLIENT KILL).
    pub registry: clients::Registry,
    /// INFO's counters.
    pub stats: stats::Stats,
    /// Pub/Sub: subscriptions and the links to the nodes.
    pub pubsub: Arc<pubsub::Hub>,
    /// MONITOR's feed of this router's commands.
    pub monitor: monitor::Monitor,
    /// EVALSHA's scripts: SCRIPT LOAD's, the cluster's (followed in the
    /// metadata store), and those EVAL ran here.
    pub scripts: cmd::scripting::ScriptCache,
    /// FUNCTION's libraries, the cluster's (followed in the metadata store).
    pub functions: cmd::functions::Functions,
    /// ACL's users, the cluster's (followed in the metadata store).
    pub acl: acl::Acl,
    meta: Arc<dyn MetaStore>,
    clients: AtomicUsize,
    /// Clients in a blocking command (INFO's `blocked_clients`).
    blocked: AtomicUsize,
    next_client_id: AtomicU64,
    /// Cancelled when `serve` stops: open sessions close too.
    pub(crate) stop: tokio_util::sync::CancellationToken,
    /// Handshakes clients' TLS ([`RouterConfig::tls`]).
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Router {
    /// Builds a router that follows the routing table in `meta`.
    pub async fn new(config: RouterConfig, meta: Arc<dyn MetaStore>) -> Arc<Router> {
        let routes = routes::RouteCache::start(meta.clone()).await;
        let id = random_id();
        let acl = acl::Acl::new(meta.clone(), config.requirepass.clone()).await;
        Arc::new(Router {
            acl,
            pubsub: pubsub::Hub::new(id),
            monitor: Default::default(),
            scripts: cmd::scripting::ScriptCache::new(meta.clone()),
            functions: cmd::functions::Functions::new(meta.clone()),
            dispatcher: Dispatcher { routes, budget: config.retry, mirror: mirror::Mirror::new(config.mirror), router: id, unavailable: Default::default() },
            slowlog: slowlog::SlowLog::new(config.slowlog_slower_than_us, config.slowlog_max_len),
            registry: clients::Registry::default(),
            stats: stats::Stats::default(),
            tls: config.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            config,
            started: Instant::now(),
            id,
            replid: (0..20).map(|_| format!("{:02x}", rand::random::<u8>())).collect(),
            latency: Arc::default(),
            arrival: Arc::default(),
            meta,
            clients: AtomicUsize::new(0),
            blocked: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Ok when this router can route every key: it has the routing table
    /// and an address for every node that owns a partition; otherwise why
    /// not. For a readiness probe (`evenkeel serve router --admin`'s `GET
    /// /readyz`). A router that loses its metadata store keeps routing
    /// with what it has, and stays ready.
    pub fn ready(&self) -> Result<(), String> {
        let routes = self.dispatcher.routes.load();
        let Some(table) = &routes.table else {
            return Err("no routing table yet (is the metadata store reachable, the cluster bootstrapped?)".into());
        };
        let unknown: std::collections::BTreeSet<_> = table.partitions.iter().map(|e| e.owner).filter(|owner| !routes.nodes.contains_key(owner)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("no address for node(s) {unknown:?}, which own partitions"))
        }
    }

    /// Connected clients right now.
    pub fn connected(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Clients waiting in a blocking command now.
    pub fn blocked(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Counts a client as blocked until the guard drops (its command
    /// answered, or given up with its connection).
    pub(crate) fn block(&self) -> Blocked<'_> {
        self.blocked.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("evenkeel_router_blocked_clients").increment(1.0);
        Blocked(self)
    }

    /// Accepts connections on `listener` until `shutdown` resolves. Each
    /// connection runs in its own task; shutdown stops accepting and closes
    /// open connections once their current command has been answered.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "router listening");
        let reporter = tokio::spawn(report::run(self.meta.clone(), self.id, report::Windows { commands: self.latency.clone(), arrival: self.arrival.clone(), unavailable: self.dispatcher.unavailable.clone() }, self.dispatcher.mirror.clone()));
        let mut stop_reporter = AbortOnDrop(Some(reporter));
        let links = tokio::spawn(self.pubsub.clone().run_links(self.dispatcher.routes.clone(), self.stop.clone()));
        let mut stop_links = AbortOnDrop(Some(links));
        // Every connection's task, so shutdown can wait for them: each holds
        // the router, and through it the metadata store, which a restart
        // in the same process must be able to open again.
        let mut sessions = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while sessions.try_join_next().is_some() {}
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => {
                    self.stop.cancel();
                    stop_reporter.stop().await;
                    stop_links.stop().await;
                    // Sessions end at the stop (a blocked command gives up
                    // its wait); one stuck past this is aborted.
                    let drained = tokio::time::timeout(std::time::Duration::from_secs(5), async { while sessions.join_next().await.is_some() {} }).await;
                    if drained.is_err() {
                        tracing::warn!(left = sessions.len(), "connections still running 5 s after the stop; aborted");
                        sessions.shutdown().await;
                    }
                    return Ok(());
                }
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let router = self.clone();
            let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
            sessions.spawn(async move {
                let over_limit = router.clients.fetch_add(1, Ordering::AcqRel) >= router.config.max_clients;
                let counter = if over_limit { &router.stats.rejected_connections } else { &router.stats.connections };
                counter.fetch_add(1, Ordering::Relaxed);
                metrics::gauge!("evenkeel_router_connected_clients").increment(1.0);
                if let Err(e) = session::run(&router, socket, id, over_limit).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                router.clients.fetch_sub(1, Ordering::AcqRel);
                metrics::gauge!("evenkeel_router_connected_clients").decrement(1.0);
            });
        }
    }
}

/// One client in a blocking command ([`Router::block`]).
pub(crate) struct Blocked<'a>(&'a Router);

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("evenkeel_router_blocked_clients").decrement(1.0);
    }
}

/// Aborts a background task when the owner returns.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts the task and waits until it is gone (with what it held).
    async fn stop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// A process-unique id without a random-number dependency: the clock's
/// nanoseconds mixed with the process id.
fn random_id() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ ((std::process::id() as u64) << 32);
    // splitmix64 finalizer, so ids from close clock readings differ widely.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}
