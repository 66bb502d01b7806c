//! `evenkeel serve node|router|coordinator`: one role of a cluster per
//! process, every process sharing the metadata in etcd.
//!
//! The roles only ever talk through the metadata store and gRPC, so the
//! code `evenkeel up` runs in one process runs here apart:
//!
//! - **node** (`--id N`): opens `DATA_DIR/node-N`, claims node N in etcd
//!   (`claims`: no other process may run it), registers its address (the one
//!   it listens on, so it must be an address the others can dial) and
//!   heartbeats. A new id joins the cluster as a new node; the coordinator
//!   gives it partitions when a rebalance runs.
//! - **router** (`--listen`): the RESP endpoint; any number can run.
//! - **coordinator** (`--admin`): any number can run; one holds the leader
//!   lease and drives migrations, the others stand by and take over from
//!   the stored state when it stops. It bootstraps the routing table once
//!   `--nodes` nodes are live. `node add` is refused here (it cannot start
//!   a node on another machine): start `serve node` with a new id instead.
//!
//! Each stops cleanly on Ctrl-C or SIGTERM. A node or router process serves
//! its `/metrics`, `/healthz` (liveness) and `/readyz` (readiness: a node
//! registered and live, a router with a routing table and every owner's
//! address) on `--admin` when given (a coordinator serves them with its
//! admin API, where `/readyz` is its `/healthz`).

use crate::claims::Claims;
use crate::up::{MetaBackend, UpOptions, bind, open_meta};
use anyhow::{Context, bail};
use evenkeel_coord::{CoordConfig, Coordinator, bootstrap};
use evenkeel_node::Node;
use evenkeel_router::Router;
use evenkeel_coord::http::ReadyCheck;
use evenkeel_types::NodeId;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Node,
    Router,
    Coordinator,
}

/// Runs `role` until `stop` is cancelled (or it fails); a node or router
/// also serves its `/metrics` on `metrics` if given.
pub async fn serve(role: Role, id: Option<NodeId>, zone: Option<String>, opts: UpOptions, metrics: Option<std::net::SocketAddr>, stop: CancellationToken) -> anyhow::Result<()> {
    if !matches!(opts.meta, MetaBackend::Etcd(_)) {
        bail!("`serve` runs one role of a cluster whose metadata the processes share: give --etcd-endpoints (one process running every role is `evenkeel up`)");
    }
    // Settings first, before anything connects.
    let id = match role {
        Role::Node => {
            let id = id.context("`serve node` needs --id N: the node's id (a new id joins the cluster as a new node)")?;
            anyhow::ensure!(id > 0, "--id must be at least 1");
            if let Some(z) = &zone {
                evenkeel_coord::nodes::check_zone(z.clone()).map_err(|e| anyhow::anyhow!("--zone: {e}"))?;
            }
            anyhow::ensure!(!opts.listen.ip().is_unspecified(), "--listen {}: a node publishes the address it listens on for the others to dial; give this machine's address, not an unspecified one", opts.listen);
            id
        }
        _ => {
            anyhow::ensure!(id.is_none(), "--id is for `serve node` only");
            anyhow::ensure!(zone.is_none(), "--zone is for `serve node` only (a node's zone)");
            anyhow::ensure!(opts.nodes > 0, "--nodes (the nodes the routing table is bootstrapped with) must be at least 1");
            0
        }
    };
    anyhow::ensure!(metrics.is_none() || role != Role::Coordinator, "a coordinator serves /metrics on its --admin address");
    evenkeel_coord::metrics_handle();
    // What `/readyz` asks, once the role has something to say.
    let readiness: Arc<OnceLock<ReadyCheck>> = Arc::default();
    if let Some(addr) = metrics {
        let listener = bind(addr, "metrics endpoint").await?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics");
        let stopped = stop.clone().cancelled_owned();
        let readiness = readiness.clone();
        let ready: ReadyCheck = Arc::new(move || readiness.get().map_or_else(|| Err("starting: not serving yet".into()), |check| check()));
        tokio::spawn(async move {
            if let Err(e) = evenkeel_coord::http::serve_metrics(listener, ready, stopped).await {
                tracing::warn!(error = %e, "the metrics endpoint stopped");
            }
        });
    }
    let meta = open_meta(&opts).await?;
    let config = bootstrap::ensure_cluster_config(meta.as_ref(), opts.partitions).await?;
    match role {
        Role::Node => {
            let claims = Claims::new(meta.clone()).await?;
            claims.claim(id).await?;
            let mut defaults = opts.node_defaults(config.num_partitions)?;
            // Nothing else of the cluster runs in this process.
            defaults.in_process = false;
            let dir = opts.data_dir.join(format!("node-{id}"));
            let mut config = defaults.config(id, dir.clone());
            config.zone = zone;
            let node = Node::open(config).with_context(|| format!("opening node {id} in {}", dir.display()))?;
            let ready = node.readiness();
            let _ = readiness.set(Arc::new(move || ready.check()));
            let listener = bind(opts.listen, "node").await?;
            tracing::info!(node = id, addr = %listener.local_addr()?, dir = %dir.display(), "serving node");
            let claims_stop = CancellationToken::new();
            let mut kept = tokio::spawn(claims.keep(claims_stop.clone()));
            let node_stop = stop.child_token();
            let removal = removed(meta.clone(), id);
            let mut run = tokio::spawn(node.run(listener, meta, node_stop.clone().cancelled_owned()));
            let result = tokio::select! {
                ran = &mut run => ran.context("the node panicked")?.map_err(anyhow::Error::new),
                kept = &mut kept => {
                    // Lost the claim to another process: stop serving at once.
                    node_stop.cancel();
                    let _ = run.await;
                    return kept.context("the node claims' task panicked")?.and(Err(anyhow::anyhow!("node {id}'s claim ended")));
                }
                () = removal => {
                    tracing::info!(node = id, dir = %dir.display(), "node removed from the cluster (evenkeel node remove): stopping; its data directory is left as it is");
                    node_stop.cancel();
                    run.await.context("the node panicked")?.map_err(anyhow::Error::new)
                }
            };
            claims_stop.cancel();
            kept.await.context("the node claims' task panicked")??;
            result.with_context(|| format!("node {id} failed"))
        }
        Role::Router => {
            let listener = bind(opts.listen, "router").await?;
            tracing::info!(addr = %listener.local_addr()?, "serving the router");
            let router = Router::new(opts.router.clone(), meta).await;
            let ready = router.clone();
            let _ = readiness.set(Arc::new(move || ready.ready()));
            Ok(router.serve(listener, stop.cancelled_owned()).await?)
        }
        Role::Coordinator => {
            let listener = crate::up::bind_admin(&opts).await?;
            tracing::info!(admin = %listener.local_addr()?, "serving a coordinator (leads once it holds the leader lease)");
            let coord = Coordinator::new(meta, CoordConfig { bootstrap_nodes: opts.nodes, ..opts.coord.clone() });
            Ok(coord.run(listener, stop.cancelled_owned()).await?)
        }
    }
}

/// Resolves once node `id`'s membership record, after being there, is
/// gone: an operator removed the node (`evenkeel node remove`, refused
/// while it owns a partition or takes part in a migration), so its process
/// has nothing left to serve. A record not there yet (a new node before it
/// registers) is not a removal.
async fn removed(meta: Arc<dyn evenkeel_meta::MetaStore>, id: NodeId) {
    let mut record = evenkeel_meta::follow::follow_key(meta, evenkeel_types::keys::node_key(id));
    let mut registered = false;
    loop {
        match record.borrow_and_update().is_some() {
            true => registered = true,
            false if registered => return,
            false => {}
        }
        if record.changed().await.is_err() {
            // The follower ended (the store is gone): never a removal.
            return std::future::pending().await;
        }
    }
}
