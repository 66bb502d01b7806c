//! Starting, resuming and listing migrations on the leader.
//!
//! The leader runs one driver task per unfinished migration. On becoming
//! leader it resumes every stored migration that is not finished; every
//! leader tick it restarts drivers that stopped on a transient error. A
//! migration is started only if its partition has no unfinished migration,
//! its target is an active member other than the current owner.

use super::driver::{self, DriveError, Driver};
use super::machine::{self, Event, Limits, Migration, MigrationModes, Phase};
use crate::api::{ClusterStatus, MigrationInfo, MigrationList, Transition};
use evenkeel_meta::{MetaError, MetaStore};
use evenkeel_types::routing::NodeState;
use evenkeel_types::{NodeId, NodeInfo, PartitionId, RoutingTable, keys, unix_ms};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Why a migration request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("this coordinator is not the leader")]
    NotLeader,
    #[error("{0}")]
    Invalid(String),
    #[error("partition {0} already has an unfinished migration ({1})")]
    Busy(PartitionId, String),
    #[error("{0}")]
    Conflict(String),
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
}

/// Operator requests queued per migration before the driver takes them.
const INBOX_CAPACITY: usize = 8;

struct Running {
    task: JoinHandle<Result<Phase, String>>,
    inbox: mpsc::Sender<Event>,
}

#[derive(Default)]
pub struct Manager {
    driver: Mutex<Option<Arc<Driver>>>,
    running: Mutex<HashMap<String, Running>>,
}

impl Manager {
    /// Installs the driver of a new leader term and resumes stored work.
    pub async fn lead(&self, driver: Arc<Driver>) -> Result<(), MetaError> {
        *self.driver.lock() = Some(driver);
        self.resume_all().await
    }

    /// Stops every driver (leadership lost).
    pub fn step_down(&self) {
        *self.driver.lock() = None;
        for (_, r) in self.running.lock().drain() {
            r.task.abort();
        }
    }

    /// Spawns drivers for unfinished migrations that have none running.
    pub async fn resume_all(&self) -> Result<(), MetaError> {
        let Some(driver) = self.driver.lock().clone() else { return Ok(()) };
        for m in list(driver.meta.as_ref()).await? {
            if !m.is_finished() {
                self.spawn(driver.clone(), m.id);
            }
        }
        Ok(())
    }

    /// Starts a driver for `id` unless one is running; returns its inbox.
    fn spawn(&self, driver: Arc<Driver>, id: String) -> mpsc::Sender<Event> {
        let mut running = self.running.lock();
        if let Some(r) = running.get(&id).filter(|r| !r.task.is_finished()) {
            return r.inbox.clone();
        }
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let result = driver::drive(driver, task_id.clone(), rx).await;
            match &result {
                Ok(phase) => tracing::info!(migration = %task_id, phase = phase.name(), "driver finished"),
                Err(e) => tracing::warn!(migration = %task_id, error = %e, "driver stopped"),
            }
            if let Err(DriveError::Crashed(_)) = result {
                // A simulated crash (a failpoint): as far as this migration
                // goes the coordinator is dead, so the task stays, unfinished,
                // and the leader's tick does not restart it; the test stops
                // the coordinator, which aborts it.
                std::future::pending::<()>().await;
            }
            result.map_err(|e| e.to_string())
        });
        running.insert(id, Running { task, inbox: tx.clone() });
        tx
    }

    /// Waits for the running driver of `id` to stop; returns how it stopped
    /// (its final phase, or why it gave up), None if none was running. The
    /// driver is taken out of the manager, so a leader tick may start
    /// another meanwhile: this is for tests that watch a driver end.
    pub async fn join(&self, id: &str) -> Option<Result<Phase, String>> {
        let running = self.running.lock().remove(id)?;
        Some(running.task.await.unwrap_or_else(|e| Err(format!("driver task ended: {e}"))))
    }

    /// Delivers an operator request (pause, resume, cancel, rollback,
    /// approve) after checking the stored phase accepts it.
    pub async fn control(&self, id: &str, event: Event) -> Result<Migration, StartError> {
        let driver = self.driver.lock().clone().ok_or(StartError::NotLeader)?;
        let mut m = list(driver.meta.as_ref())
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| StartError::Invalid(format!("no migration {id}")))?;
        machine::step(&mut m, event.clone(), unix_ms()).map_err(|e| StartError::Conflict(e.to_string()))?;
        let inbox = self.spawn(driver, id.to_string());
        inbox.try_send(event).map_err(|_| StartError::Conflict(format!("migration {id} has requests pending; retry")))?;
        Ok(m)
    }

    /// Validates and starts moving `partition` to `target` under `modes`.
    pub async fn start(&self, partition: PartitionId, target: NodeId, limits: Limits, modes: MigrationModes) -> Result<Migration, StartError> {
        modes.validate().map_err(StartError::Invalid)?;
        let driver = self.driver.lock().clone().ok_or(StartError::NotLeader)?;
        let meta = driver.meta.as_ref();
        // Busy first: while a move is unfinished, a second request for the
        // partition is a conflict, even once the first has cut over (and
        // the owner already equals the requested target).
        if let Some(busy) = list(meta).await?.into_iter().find(|m| m.partition == partition && !m.phase.is_terminal()) {
            return Err(StartError::Busy(partition, busy.id));
        }
        let source = validate(meta, partition, target).await?;
        let now = unix_ms();
        let m = Migration { modes, ..Migration::new(format!("p{partition}-{now}"), partition, source, target, limits, now) };
        if !driver::create(meta, &m).await? {
            return Err(StartError::Invalid(format!("migration {} already exists", m.id)));
        }
        self.spawn(driver, m.id.clone());
        Ok(m)
    }
}

/// Checks the request against the table and membership; returns the owner.
async fn validate(meta: &dyn MetaStore, partition: PartitionId, target: NodeId) -> Result<NodeId, StartError> {
    let invalid = |s: String| StartError::Invalid(s);
    let table = meta.get(keys::ROUTING).await?.ok_or_else(|| invalid("the cluster is not bootstrapped".into()))?;
    let table = RoutingTable::from_json(&table.value).map_err(invalid)?;
    let entry = table.entry(partition).ok_or_else(|| invalid(format!("no partition {partition}; the cluster has {}", table.num_partitions())))?;
    let info = meta.get(&keys::node_key(target)).await?.ok_or_else(|| invalid(format!("node {target} is not a member")))?;
    let info: NodeInfo = serde_json::from_slice(&info.value).map_err(|e| invalid(e.to_string()))?;
    if info.state != NodeState::Active {
        return Err(invalid(format!("node {target} is {:?}, not active", info.state)));
    }
    if meta.get(&keys::live_key(target)).await?.is_none() {
        return Err(invalid(format!("node {target} is not heartbeating")));
    }
    if entry.owner == target {
        return Err(invalid(format!("partition {partition} is already on node {target}")));
    }
    Ok(entry.owner)
}

/// Every stored migration, oldest first.
pub async fn list(meta: &dyn MetaStore) -> Result<Vec<Migration>, MetaError> {
    let (kvs, _) = meta.get_prefix(keys::MIGRATIONS_PREFIX).await?;
    let mut all: Vec<Migration> = kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
    all.sort_by_key(|m: &Migration| m.history.first().map_or(0, |h| h.1));
    Ok(all)
}

pub fn info(m: &Migration) -> MigrationInfo {
    MigrationInfo {
        id: m.id.clone(),
        partition: m.partition,
        source: m.source,
        target: m.target,
        state: m.phase.name().to_string(),
        started_ms: m.history.first().map_or(0, |h| h.1),
        finished_ms: m.phase.is_terminal().then(|| m.history.last().map_or(0, |h| h.1)),
        bytes_copied: m.bytes_copied,
        keys_copied: m.keys_copied,
        cutover_pause_ms: m.cutover_pause_ms,
        transitions: m.history.iter().map(|(p, at)| Transition { state: p.name().to_string(), at_ms: *at }).collect(),
        error: m.pause_reason.clone().or_else(|| m.error.clone()),
        bytes_total: None,
        lag_entries: None,
        modes: Some(m.modes),
        mirror: m.mirror,
        catch_up: m.catch_up,
        drain: m.drain,
    }
}

/// [`info`] plus what the last stats poll knows: the partition's size and
/// the change-log lag: while catching up, the source's entries not yet
/// applied on the destination; in bake, the destination's not yet captured
/// back to the source (what a rollback would still have to apply).
pub fn info_with(m: &Migration, status: &ClusterStatus) -> MigrationInfo {
    let mut i = info(m);
    if let Some(p) = status.partitions.iter().find(|p| p.id == m.partition) {
        i.bytes_total = Some(p.bytes);
        let catching_up = matches!(m.phase, Phase::CatchingUp | Phase::ReadyForCutover) || (m.phase == Phase::Paused && m.paused_from.is_some_and(|f| f != Phase::Copying));
        i.lag_entries = if catching_up && p.owner == m.source {
            Some(p.log_next.saturating_sub(m.applied_log_pos))
        } else if m.phase == Phase::Completed && p.owner == m.target {
            Some(p.log_next.saturating_sub(m.reverse_log_pos))
        } else {
            None
        };
    }
    i
}

/// Every migration, with routers' mirror counts as they report them now
/// where those exceed the stored ones (stored at verification).
pub async fn list_info(meta: &dyn MetaStore, status: &ClusterStatus) -> Result<MigrationList, MetaError> {
    let live = super::route::totals(meta).await?;
    let migrations = list(meta)
        .await?
        .iter()
        .map(|m| {
            let mut i = info_with(m, status);
            if let Some(counts) = live.get(&m.id) {
                i.mirror = super::route::most(&i.mirror, counts);
            }
            i
        })
        .collect();
    Ok(MigrationList { migrations })
}
