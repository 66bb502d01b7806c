//! Which process runs which node, when the metadata lives in etcd.
//!
//! A node must run in exactly one process: two processes serving node 2
//! would publish two addresses for it and write two data directories. With
//! the embedded store one process holds the store's lock file and runs every
//! node; with etcd, `evenkeel up` and `evenkeel serve node` processes share
//! one store, so each process takes, for every node it runs, the lock
//! [`keys::node_lock_key`] on a lease of its own ([`Claims`]), kept alive by
//! [`Claims::keep`]. A second process asking for a node waits out a crashed
//! holder's lease ([`CLAIM_TTL`]) and otherwise refuses to start it.

use anyhow::{Context, bail};
use evenkeel_meta::{LeaseId, Lock, MetaError, MetaStore};
use evenkeel_types::{NodeId, keys};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a claim outlives its process: a crashed process's nodes can be
/// started elsewhere this long after it stopped keeping its lease alive.
pub const CLAIM_TTL: Duration = Duration::from_secs(10);

/// This process's lease and the node locks it holds on it.
pub struct Claims {
    meta: Arc<dyn MetaStore>,
    lease: parking_lot::Mutex<LeaseId>,
    nodes: parking_lot::Mutex<Vec<NodeId>>,
}

impl Claims {
    pub async fn new(meta: Arc<dyn MetaStore>) -> anyhow::Result<Arc<Claims>> {
        let lease = meta.grant_lease(CLAIM_TTL).await.context("granting the lease this process claims its nodes on")?;
        Ok(Arc::new(Claims { meta, lease: parking_lot::Mutex::new(lease), nodes: parking_lot::Mutex::new(Vec::new()) }))
    }

    /// Takes node `id`'s lock, waiting up to [`CLAIM_TTL`] and a little
    /// more for a crashed holder's lease to lapse.
    pub async fn claim(&self, id: NodeId) -> anyhow::Result<()> {
        let key = keys::node_lock_key(id);
        let lease = *self.lease.lock();
        let wait = CLAIM_TTL + Duration::from_secs(2);
        let locked = match self.meta.try_lock(&key, lease).await {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) => {
                tracing::info!(node = id, "another process runs node {id} ({key}); waiting up to {wait:?} for it to stop or its lease to lapse");
                self.meta.lock(&key, lease, wait).await
            }
            Err(e) => Err(e),
        };
        match locked {
            Ok(_) => {
                self.nodes.lock().push(id);
                Ok(())
            }
            Err(MetaError::LockTimeout(_)) => {
                let by = self.meta.get(&key).await.ok().flatten().and_then(|kv| kv.lease).map_or_else(|| "?".into(), |l| l.to_string());
                bail!("node {id} runs in another process (it holds {key} on lease {by}; waited {wait:?}): stop that process first (`evenkeel up` runs every node of its cluster)")
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("claiming node {id}"))),
        }
    }

    /// Gives node `id`'s claim up: the node stopped running here (removed,
    /// or stopped to be started again). Its lock goes if this process's
    /// lease still holds it, so the id is free for any process, this one
    /// included (locks are not re-entrant: a node added later under the
    /// same id would otherwise wait on this process's own claim).
    pub async fn release(&self, id: NodeId) -> Result<(), MetaError> {
        self.nodes.lock().retain(|n| *n != id);
        let key = keys::node_lock_key(id);
        let lease = *self.lease.lock();
        match self.meta.get(&key).await? {
            Some(kv) if kv.lease == Some(lease) => self.meta.unlock(&Lock { key, lease, fencing_token: kv.create_revision }).await,
            _ => Ok(()),
        }
    }

    /// Keeps the lease alive until `stop` is cancelled, then revokes it
    /// (releasing every claim at once). If the lease is lost (etcd
    /// unreachable for longer than [`CLAIM_TTL`]) it claims the same nodes
    /// again on a new lease; if another process took one meanwhile it
    /// fails, and the caller stops rather than run that node twice.
    pub async fn keep(self: Arc<Self>, stop: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(CLAIM_TTL / 4);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let lease = *self.lease.lock();
                    let _ = self.meta.revoke_lease(lease).await;
                    return Ok(());
                }
                _ = tick.tick() => {
                    let lease = *self.lease.lock();
                    match self.meta.keep_alive(lease).await {
                        Ok(()) => {}
                        Err(MetaError::LeaseNotFound(_)) => {
                            tracing::warn!(lease, "the lease of this process's node claims expired; claiming them again");
                            match self.reclaim().await {
                                Ok(None) => {}
                                Ok(Some(id)) => bail!("node {id}'s claim was lost and another process holds it now: stopping rather than run node {id} twice"),
                                // etcd still unreachable: try again next tick.
                                Err(e) => tracing::warn!(error = %e, "claiming nodes again"),
                            }
                        }
                        // etcd unreachable for a moment: the lease outlives
                        // a few missed keep-alives.
                        Err(e) => tracing::warn!(error = %e, "keeping this process's node claims alive"),
                    }
                }
            }
        }
    }

    /// Every claimed node's lock on a new lease; `Some(id)` if another
    /// process holds node `id`'s now (then nothing is claimed).
    async fn reclaim(&self) -> Result<Option<NodeId>, MetaError> {
        let lease = self.meta.grant_lease(CLAIM_TTL).await?;
        let nodes = self.nodes.lock().clone();
        for id in nodes {
            let taken = match self.meta.try_lock(&keys::node_lock_key(id), lease).await {
                Ok(Some(_)) => continue,
                Ok(None) => Ok(Some(id)),
                Err(e) => Err(e),
            };
            let _ = self.meta.revoke_lease(lease).await;
            return taken;
        }
        *self.lease.lock() = lease;
        Ok(None)
    }
}
