//! The tonic service: turns RPCs into store calls, checking ownership first.

use crate::failpoints::Failpoints;
use crate::health::disk_space;
use evenkeel_types::latency::SecondWindow;
use crate::lane::Lane;
use crate::migrate_rpc;
use crate::ownership::Ownership;
use crate::store::{KeyRecord, Store, partition_stats};
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::gc::GcHorizon;
use evenkeel_types::{NodeId, PartitionId, unix_ms};
use metrics::{Counter, Histogram};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Largest number of ops one Execute may carry.
pub const MAX_OPS_PER_REQUEST: usize = 10_000;

/// A node starts an `Execute`'s ops only within this share of the
/// request's deadline (its `grpc-timeout`). An op it cannot start by then
/// (queued behind slower work: a stalled engine, a busy writer thread) is
/// refused `OVERLOADED`, certainly not executed, and the rest of the
/// deadline is left for the reply to get back in time. Without this, work
/// queued past the deadline ran after the caller had given up: a write the
/// router had to report as indeterminate (`CLUSTERDOWN ... Timeout
/// expired`) and that might still apply. Refused, it is retried within the
/// router's budget like any refusal, and the client sees latency, or a
/// `TRYAGAIN` once the budget is spent: backpressure, not a maybe.
pub const START_WITHIN_PERCENT: u32 = 75;

/// When ops of a request that arrived at `arrived` with `timeout` left must
/// have started.
pub fn start_by(arrived: Instant, timeout: Duration) -> Instant {
    arrived + timeout * START_WITHIN_PERCENT / 100
}

/// A node's own threads for store work kept off the runtime's workers
/// (see `crate::pool`).
pub(crate) struct OwnThreads {
    pub writer: crate::pool::Pool,
    pub reader: crate::pool::Pool,
    /// None when the background lane is off.
    pub bulk: Option<crate::pool::Pool>,
}

pub(crate) struct NodeInner {
    pub id: NodeId,
    pub store: Store,
    pub ownership: Ownership,
    pub metrics: NodeMetrics,
    pub lane: Lane,
    /// Low-priority threads for bulk migration store work; None when the
    /// lane is off (then it runs on tokio's blocking pool like the rest).
    pub bulk: Option<crate::pool::Pool>,
    /// The node's writer thread, for client writes that may wait on the
    /// engine (see `crate::inline`).
    pub writer: crate::pool::Pool,
    pub inline_writes: crate::inline::Inline,
    /// The node's reader thread, for client reads while an inline read of
    /// this node is stuck (see `crate::inline`).
    pub reader: crate::pool::Pool,
    pub inline_reads: crate::inline::Inline,
    /// Per-op Execute latency, summarized per wall-clock second.
    pub latency: SecondWindow,
    /// Client ops served per partition (`crate::load`).
    pub op_counts: crate::load::OpCounts,
    /// The busiest keys, sampled (`crate::hotkeys`).
    pub hot_keys: crate::hotkeys::HotKeys,
    pub failpoints: Failpoints,
    /// The free disk kept: ops that add data are refused below it.
    pub disk: crate::health::DiskReserve,
    /// The GC horizon the coordinator published, as last seen; None until
    /// one is read, and then no tombstone is collected.
    pub gc_horizon: arc_swap::ArcSwapOption<GcHorizon>,
    /// Pub/Sub: the routers' links and what they subscribe to (the
    /// store's notifier raises keyspace events through it too).
    pub relay: crate::pubsub::Relay,
    /// The runtime the node serves on (set by `Node::run`). Urgent store
    /// work goes to its blocking pool, at the node's own priority, even when
    /// the caller runs elsewhere: `evenkeel up`'s coordinator calls nodes
    /// in-process from its own lower-priority runtime.
    pub(crate) runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

pub(crate) struct NodeMetrics {
    ops: Counter,
    refused: Counter,
    errors: Counter,
    /// Write requests sent to the writer thread (see `crate::inline`).
    offloaded: Counter,
    /// Read-only requests sent to the reader thread.
    reads_offloaded: Counter,
    /// Ops refused OVERLOADED: not started within their deadline.
    shed: Counter,
    /// The same count as `shed`, readable for `Stats`.
    shed_total: AtomicU64,
    /// The same count as `errors`, readable for `Stats`.
    errors_total: AtomicU64,
    latency: Histogram,
    tombstones_collected: Counter,
    /// Flushed memtables freed off the engine's lock (`store::memtables`).
    memtables_freed: Counter,
    memtables_freed_bytes: Counter,
    /// The row cache (`store::rows`), read when memtables are tended.
    row_cache_hits: Counter,
    row_cache_misses: Counter,
    row_cache_bytes: metrics::Gauge,
    row_cache_entries: metrics::Gauge,
    /// Verification scans (`MigrateChecksum` with `scan`: a full read of a
    /// partition each, on the bulk threads) and the live keys they counted.
    pub checksum_scans: Counter,
    pub checksum_scanned_keys: Counter,
    /// Records a warm-up put in the row cache for partitions this node
    /// began to serve (`Store::warm_rows`).
    pub row_cache_warmed: Counter,
    /// Ops refused because the disk was below its reserve.
    out_of_space: Counter,
}

impl NodeMetrics {
    pub fn new(id: NodeId) -> Self {
        let node = id.to_string();
        NodeMetrics {
            ops: metrics::counter!("evenkeel_node_ops_total", "node" => node.clone()),
            refused: metrics::counter!("evenkeel_node_refused_total", "node" => node.clone()),
            errors: metrics::counter!("evenkeel_node_errors_total", "node" => node.clone()),
            offloaded: metrics::counter!("evenkeel_node_writes_offloaded_total", "node" => node.clone()),
            reads_offloaded: metrics::counter!("evenkeel_node_reads_offloaded_total", "node" => node.clone()),
            shed: metrics::counter!("evenkeel_node_shed_ops_total", "node" => node.clone()),
            shed_total: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            latency: metrics::histogram!("evenkeel_node_execute_seconds", "node" => node.clone()),
            tombstones_collected: metrics::counter!("evenkeel_node_tombstones_collected_total", "node" => node.clone()),
            memtables_freed: metrics::counter!("evenkeel_node_memtables_freed_total", "node" => node.clone()),
            memtables_freed_bytes: metrics::counter!("evenkeel_node_memtables_freed_bytes_total", "node" => node.clone()),
            row_cache_hits: metrics::counter!("evenkeel_node_row_cache_hits_total", "node" => node.clone()),
            row_cache_misses: metrics::counter!("evenkeel_node_row_cache_misses_total", "node" => node.clone()),
            row_cache_bytes: metrics::gauge!("evenkeel_node_row_cache_bytes", "node" => node.clone()),
            row_cache_entries: metrics::gauge!("evenkeel_node_row_cache_entries", "node" => node.clone()),
            checksum_scans: metrics::counter!("evenkeel_node_checksum_scans_total", "node" => node.clone()),
            checksum_scanned_keys: metrics::counter!("evenkeel_node_checksum_scanned_keys_total", "node" => node.clone()),
            row_cache_warmed: metrics::counter!("evenkeel_node_row_cache_warmed_total", "node" => node.clone()),
            out_of_space: metrics::counter!("evenkeel_node_out_of_space_refusals_total", "node" => node),
        }
    }

    pub fn collected(&self, tombstones: usize) {
        self.tombstones_collected.increment(tombstones as u64);
    }

    pub fn memtables_freed(&self, tended: crate::store::Tended) {
        self.memtables_freed.increment(tended.released as u64);
        self.memtables_freed_bytes.increment(tended.released_bytes);
    }

    pub fn row_cache(&self, stats: crate::store::RowCacheStats) {
        self.row_cache_hits.absolute(stats.hits);
        self.row_cache_misses.absolute(stats.misses);
        self.row_cache_bytes.set(stats.bytes as f64);
        self.row_cache_entries.set(stats.entries as f64);
    }

    fn shed(&self, ops: u64) {
        self.shed.increment(ops);
        self.shed_total.fetch_add(ops, Ordering::Relaxed);
    }

    fn error(&self) {
        self.errors.increment(1);
        self.errors_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `Node` gRPC service of one storage node.
#[derive(Clone)]
pub struct NodeService {
    pub(crate) inner: Arc<NodeInner>,
}

impl NodeInner {
    pub fn new(id: NodeId, store: Store, lane: Lane, threads: OwnThreads) -> Self {
        let disk = crate::health::DiskReserve::new(store.dir(), store.min_free_disk_bytes());
        let relay = store.notifier().relay().clone();
        let op_counts = crate::load::OpCounts::new(store.num_partitions());
        NodeInner {
            id,
            store,
            ownership: Ownership::new(id),
            metrics: NodeMetrics::new(id),
            lane,
            writer: threads.writer,
            inline_writes: Default::default(),
            reader: threads.reader,
            inline_reads: Default::default(),
            bulk: threads.bulk,
            latency: SecondWindow::default(),
            op_counts,
            hot_keys: crate::hotkeys::HotKeys::new(unix_ms()),
            failpoints: Failpoints::new(id),
            disk,
            gc_horizon: Default::default(),
            relay,
            runtime: std::sync::OnceLock::new(),
        }
    }

    /// Fills the foreground-health fields of a `Stats` reply.
    fn health(&self, stats: &mut pb::StatsResponse) {
        let last = self.latency.last_second(unix_ms());
        stats.execute_p99_us = last.p99_us;
        stats.execute_ops_last_s = last.count;
        stats.errors_total = self.metrics.errors_total.load(Ordering::Relaxed);
        stats.shed_ops_total = self.metrics.shed_total.load(Ordering::Relaxed);
        stats.bulk_cpu_us_total = self.bulk.as_ref().map_or(0, |b| b.cpu_time().as_micros() as u64);
        stats.background_yields_total = self.lane.yields_total();
        let (l0, sealed) = self.store.engine_debt();
        (stats.l0_tables, stats.sealed_memtables) = (l0 as u32, sealed as u32);
        stats.retired_partitions = self.store.retired_partitions() as u32;
        let (compacting, active) = self.store.engine_compactions();
        (stats.compaction_us_total, stats.compactions_active) = (compacting.as_micros() as u64, active as u32);
        let rows = self.store.row_cache_stats();
        (stats.row_cache_hits_total, stats.row_cache_misses_total) = (rows.hits, rows.misses);
        stats.group_syncs_total = self.store.group_syncs();
        // Zero total means unknown; a gate must not read it as a full disk.
        let (free, total) = disk_space(self.store.dir()).unwrap_or_else(|e| {
            tracing::warn!(node = self.id, error = %e, "statvfs of the data directory failed");
            (0, 0)
        });
        stats.disk_free_bytes = self.failpoints.disk_free_bytes().unwrap_or(free);
        stats.disk_total_bytes = total;
    }

    /// Runs one `Execute`'s ops: inline or on the writer or reader thread,
    /// then (with `Durability::Sync`) waits for their fsync; records the
    /// call's latency from `started`.
    async fn execute_request(self: &Arc<Self>, req: Arc<pb::ExecuteRequest>, started: Instant, start_by: Option<Instant>) -> Result<Vec<pb::OpResult>, Status> {
        let inner = self;
        let now = unix_ms();
        let ops = req.ops.len() as u64;
        // Inline on this worker unless the request may wait on the engine
        // (`crate::inline`): then on the node's writer or reader thread.
        let write = req.ops.iter().any(is_write);
        // A script may run for as long as its time limit: never on a
        // worker of the async runtime.
        let script = req.ops.iter().any(|op| match &op.kind {
            Some(Kind::Script(_)) => true,
            Some(Kind::Transaction(t)) => t.ops.iter().any(|op| matches!(op.kind, Some(Kind::Script(_)))),
            _ => false,
        });
        let route = if write { inner.inline_writes.route(script || inner.store.write_may_stall()) } else { inner.inline_reads.route(false) };
        let results = match route {
            crate::inline::Route::Offload => {
                let (pool, offloaded) = if write { (&inner.writer, &inner.metrics.offloaded) } else { (&inner.reader, &inner.metrics.reads_offloaded) };
                offloaded.increment(1);
                let (i, request) = (self.clone(), req.clone());
                let ops = req.ops.len();
                let results = pool.run_started_by(inner.id, start_by, move || i.execute_all(&request, now, start_by)).await.map_err(|e| Status::unavailable(e.to_string()))?;
                results.unwrap_or_else(|| {
                    // Never started: every op is certainly not executed.
                    inner.metrics.shed(ops as u64);
                    vec![pb::OpResult { result: Some(R::Refused(overloaded())), ..Default::default() }; ops]
                })
            }
            crate::inline::Route::Inline(_ticket) => inner.execute_all(&req, now, start_by),
        };
        // `Durability::Sync`: answered once an fsync covers the writes (one
        // for every writer waiting). If it fails, their durability is
        // unknown, and so is the answer.
        if write && let Some(durable) = inner.store.durable() {
            durable.await.map_err(Status::internal)?;
        }
        inner.metrics.ops.increment(ops);
        let took = started.elapsed();
        inner.metrics.latency.record(took.as_secs_f64());
        // Every op of the call waited for the whole call.
        inner.latency.record_n(took.as_micros() as u64, ops, 0, unix_ms());
        Ok(results)
    }

    /// A blocking pop alone in its request (`crate::ops::blocking_wait`):
    /// runs it, and while it finds nothing to pop waits, up to `wait`, for
    /// a write to one of its keys ([`crate::waiters`]) or a change of
    /// ownership (then it runs again and is refused if the partition
    /// moved), and runs it again. Each run is an ordinary request, in the
    /// foreground lane and the latency figures; the waits are neither.
    async fn execute_blocking(self: &Arc<Self>, req: Arc<pb::ExecuteRequest>, wait: Duration, started: Instant, mut start_by: Option<Instant>) -> Result<Vec<pb::OpResult>, Status> {
        let op = &req.ops[0];
        let kind = op.kind.as_ref().expect("a blocking op has a kind");
        // LMOVE waits on its source only.
        let keys = match kind {
            pb::op::Kind::LMove(_) => vec![&op.key[..]],
            _ => crate::ops::multi_keys(kind, &op.key).unwrap_or_else(|| vec![&op.key[..]]),
        };
        let data_keys = keys.iter().map(|k| crate::store::data_key(evenkeel_types::slot::key_slot(k), k)).collect();
        let waiting = self.store.waiters().register(data_keys, kind.blocked_since_us());
        // CLIENT UNBLOCK, or the client gone: ends the wait, never a pop.
        let cancel = (op.waiter != 0).then(|| self.store.waiters().watch((req.router, op.waiter, kind.blocked_since_us())));
        let deadline = tokio::time::Instant::now() + wait;
        let mut attempt = started;
        let nil = || vec![pb::OpResult { result: Some(R::Nil(pb::Nil {})), ..Default::default() }];
        loop {
            if cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                return Ok(nil());
            }
            let moved = self.ownership.changed();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let cancelled = async {
                match &cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            let results = {
                let _in_flight = self.lane.foreground();
                self.execute_request(req.clone(), attempt, start_by).await?
            };
            let nothing = matches!(results.first().and_then(|r| r.result.as_ref()), Some(R::Nil(_)));
            if !nothing || tokio::time::Instant::now() >= deadline {
                return Ok(results);
            }
            tokio::select! {
                _ = waiting.woken() => {}
                _ = &mut moved => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = cancelled => return Ok(results),
            }
            // Started once in time: the runs after a wake are the same op.
            start_by = None;
            attempt = Instant::now();
        }
    }

    /// Runs a request's ops in order. Those not started by `start_by` are
    /// refused `OVERLOADED`: a suffix of the request, since the clock only
    /// moves on, so no later op overtakes a refused one.
    fn execute_all(&self, req: &pb::ExecuteRequest, now: u64, start_by: Option<Instant>) -> Vec<pb::OpResult> {
        let mut refused = RefusedSoFar::default();
        req.ops.iter().map(|op| self.execute_one(req.epoch, req.router, op, now, start_by, &mut refused)).collect()
    }

    fn execute_one(&self, epoch: u64, router: u64, op: &pb::Op, now_ms: u64, start_by: Option<Instant>, refused: &mut RefusedSoFar) -> pb::OpResult {
        if op.track {
            // Before the read (see `Relay::track`); a transaction's keys are
            // its tracked ops'.
            let relay = self.store.notifier().relay();
            match &op.kind {
                Some(Kind::Transaction(t)) => t.ops.iter().filter(|o| o.track).for_each(|o| relay.track(router, &o.key)),
                _ => relay.track(router, &op.key),
            }
        }
        let result = match (u16::try_from(op.partition), &op.kind) {
            (Err(_), _) => internal(format!("no partition {}", op.partition)),
            (_, None) => internal("op without a kind".to_string()),
            (_, Some(Kind::CancelWait(c))) => R::Integer(self.store.waiters().cancel((router, c.waiter, c.since_us)) as i64),
            // The real disk, not the `disk-free` failpoint: that one tests
            // the coordinator's health gates, which act before the reserve.
            (Ok(_), Some(kind)) if let Some(free) = crate::ops::adds_data(kind).then(|| self.disk.check(now_ms, None).err()).flatten() => {
                self.metrics.out_of_space.increment(1);
                let message = format!("command not allowed: node {} has {} MiB of disk free, under its {} MiB reserve; delete data or add space", self.id, free >> 20, self.disk.min_free() >> 20);
                R::Error(pb::OpError { kind: pb::op_error::Kind::OutOfSpace as i32, message })
            }
            (Ok(p), Some(kind)) => {
                // Asked under the partition's lock for a write (see
                // `Store::execute_admitted`): a fence cannot slip in
                // between the check and the commit.
                let admit = || {
                    if start_by.is_some_and(|t| Instant::now() >= t) {
                        return Err(overloaded());
                    }
                    refused.check(p, || self.ownership.check(p, epoch))?;
                    if let Some(delay) = is_write(op).then(|| self.failpoints.admitted_write_delay()).flatten() {
                        std::thread::sleep(delay);
                    }
                    Ok(())
                };
                match self.store.execute_admitted(p, &op.key, kind, now_ms, admit) {
                    Ok(Ok((reply, record))) => {
                        self.op_counts.record(p, is_write(op));
                        self.hot_keys.op(p, &op.key, now_ms);
                        return match record.filter(|_| op.want_record) {
                            Some(record) if record.encoded_len() > MIRROR_RECORD_MAX => pb::OpResult { result: Some(reply), record: None, record_withheld: true },
                            record => pb::OpResult { result: Some(reply), record: record.map(|record| migrate_rpc::to_pb(&KeyRecord { key: op.key.clone(), record })), record_withheld: false },
                        };
                    }
                    Ok(Err(refused)) => {
                        if refused.reason == pb::refused::Reason::Overloaded as i32 {
                            self.metrics.shed(1);
                        } else {
                            self.metrics.refused.increment(1);
                        }
                        R::Refused(refused)
                    }
                    Err(e) => {
                        self.metrics.error();
                        tracing::error!(node = self.id, partition = p, error = %e, "execute failed");
                        internal(e.to_string())
                    }
                }
            }
        };
        pb::OpResult { result: Some(result), ..Default::default() }
    }
}

/// Partitions refused earlier in one `Execute`, with their refusal. Once an
/// op on a partition is refused, the later ops on it in the same request are
/// refused too, even if the partition became servable meanwhile (unfenced
/// after a rolled-back cutover, granted to a target). The router retries
/// refused ops after the others of the request have been answered, so a
/// later op served now would overtake an earlier one on the same key: a
/// pipelined `SET k 1`, `SET k 2` could end with k = 1. Refusing more is
/// always safe, since a refused op was not applied.
#[derive(Default)]
struct RefusedSoFar(Vec<(PartitionId, pb::Refused)>);

impl RefusedSoFar {
    fn check(&mut self, p: PartitionId, ownership: impl FnOnce() -> Result<(), pb::Refused>) -> Result<(), pb::Refused> {
        if let Some((_, refused)) = self.0.iter().find(|(q, _)| *q == p) {
            return Err(*refused);
        }
        ownership().inspect_err(|refused| self.0.push((p, *refused)))
    }
}

/// The largest record a node returns for a router to mirror
/// (`Op.want_record`: dual-write, copy-on-read, shadow reads); a larger one
/// is withheld (`OpResult.record_withheld`). A write to a big collection
/// rewrites its whole record, so mirroring it shipped the whole collection
/// twice per write (to the router, then to the destination: 6 MB each for
/// a 100,000-field hash), and a projected read (HGET) shipped the whole
/// collection to the router to compare a record it never answered from.
/// The change log carries such writes to the destination anyway, once per
/// page however often the key was written (`Store::read_log`).
pub const MIRROR_RECORD_MAX: usize = 64 * 1024;

fn is_write(op: &pb::Op) -> bool {
    op.kind.as_ref().is_some_and(|kind| !crate::ops::is_read(kind))
}

fn overloaded() -> pb::Refused {
    pb::Refused { reason: pb::refused::Reason::Overloaded as i32, epoch: 0 }
}

fn internal(message: String) -> R {
    R::Error(pb::OpError { kind: pb::op_error::Kind::Internal as i32, message })
}

#[tonic::async_trait]
impl pb::node_server::Node for NodeService {
    async fn execute(&self, request: Request<pb::ExecuteRequest>) -> Result<Response<pb::ExecuteResponse>, Status> {
        let started = Instant::now();
        let start_by = evenkeel_rpc::request_timeout(&request).map(|t| start_by(started, t));
        let inner = &self.inner;
        let in_flight = inner.lane.foreground();
        if let Some(delay) = inner.failpoints.execute_delay() {
            // Stands for a queue the request waits in before it starts, so
            // it waits no longer than a queue would: its start deadline.
            let until = start_by.map_or(started + delay, |t| t.min(started + delay));
            tokio::time::sleep_until(until.into()).await;
        }
        let req = request.into_inner();
        if req.ops.len() > MAX_OPS_PER_REQUEST {
            return Err(Status::invalid_argument(format!("at most {MAX_OPS_PER_REQUEST} ops per request")));
        }
        let wait = match &req.ops[..] {
            [op] => op.kind.as_ref().and_then(crate::ops::blocking_wait),
            _ => None,
        };
        let req = Arc::new(req);
        if let Some(wait) = wait {
            // A blocked client is not foreground work in flight: while it
            // waits, migrations need not yield to it.
            drop(in_flight);
            let results = self.inner.execute_blocking(req, wait, started, start_by).await?;
            return Ok(Response::new(pb::ExecuteResponse { results }));
        }
        let results = self.inner.execute_request(req, started, start_by).await?;
        Ok(Response::new(pb::ExecuteResponse { results }))
    }

    async fn scan(&self, request: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
        let _in_flight = self.inner.lane.foreground();
        let req = request.into_inner();
        let partition = PartitionId::try_from(req.partition).map_err(|_| Status::invalid_argument("partition"))?;
        if let Err(refused) = self.inner.ownership.check(partition, req.epoch) {
            return Ok(Response::new(pb::ScanResponse { keys: vec![], next_slot: req.start_slot, refused: Some(refused) }));
        }
        let ty = req.value_type.map(|t| crate::ops::value_type_from(t).ok_or_else(|| Status::invalid_argument("unknown value type"))).transpose()?;
        let (keys, next_slot) = self
            .inner
            .store
            .scan(partition, req.start_slot, req.count as usize, unix_ms(), ty)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ScanResponse { keys, next_slot, refused: None }))
    }

    async fn stats(&self, _: Request<pb::StatsRequest>) -> Result<Response<pb::StatsResponse>, Status> {
        let inner = &self.inner;
        if let Some(delay) = inner.failpoints.stats_delay() {
            tokio::time::sleep(delay).await;
        }
        let partitions = inner
            .store
            .counters()
            .iter()
            .enumerate()
            .filter_map(|(p, c)| {
                let p = p as PartitionId;
                let epoch = inner.ownership.entry_epoch(p);
                // Owned, or holding data (tombstones too) all the same.
                (epoch.is_some() || c.bytes > 0).then(|| partition_stats(p, c, epoch.unwrap_or(0), inner.op_counts.get(p)))
            })
            .collect();
        let hot_keys = inner
            .hot_keys
            .report(unix_ms())
            .into_iter()
            .map(|h| pb::HotKey { key: h.key, partition: h.partition as u32, ops_per_s: h.ops_per_s, error_ops_per_s: h.error_ops_per_s, truncated: h.truncated })
            .collect();
        let mut stats = pb::StatsResponse {
            node_id: inner.id,
            clock: inner.store.clock().current(),
            partitions,
            hot_keys,
            disk_bytes: inner.store.disk_bytes(),
            ..Default::default()
        };
        inner.health(&mut stats);
        Ok(Response::new(stats))
    }

    async fn migrate_begin(&self, request: Request<pb::MigrateHeader>) -> Result<Response<pb::PositionResponse>, Status> {
        let p = migrate_rpc::admit(&self.inner, Some(request.get_ref()))?;
        let position = migrate_rpc::begin(&self.inner, p)?;
        migrate_rpc::durable_here(&self.inner).await?;
        Ok(Response::new(position))
    }

    async fn migrate_snapshot(&self, request: Request<pb::SnapshotRequest>) -> Result<Response<pb::SnapshotResponse>, Status> {
        Ok(Response::new(migrate_rpc::snapshot(&self.inner, request.get_ref()).await?))
    }

    async fn migrate_read_log(&self, request: Request<pb::ReadLogRequest>) -> Result<Response<pb::ReadLogResponse>, Status> {
        Ok(Response::new(migrate_rpc::read_log(&self.inner, request.get_ref()).await?))
    }

    async fn migrate_apply(&self, request: Request<pb::ApplyRequest>) -> Result<Response<pb::ApplyResponse>, Status> {
        Ok(Response::new(migrate_rpc::apply(&self.inner, request.into_inner()).await?))
    }

    async fn migrate_fence(&self, request: Request<pb::FenceRequest>) -> Result<Response<pb::PositionResponse>, Status> {
        Ok(Response::new(migrate_rpc::fence(&self.inner, request.get_ref()).await?))
    }

    async fn migrate_checksum(&self, request: Request<pb::ChecksumRequest>) -> Result<Response<pb::ChecksumResponse>, Status> {
        Ok(Response::new(migrate_rpc::checksum(&self.inner, request.get_ref()).await?))
    }

    async fn migrate_drop(&self, request: Request<pb::DropRequest>) -> Result<Response<pb::DropResponse>, Status> {
        Ok(Response::new(migrate_rpc::drop_partition(&self.inner, request.get_ref()).await?))
    }

    async fn migrate_shadow_read(&self, request: Request<pb::ShadowReadRequest>) -> Result<Response<pb::ShadowReadResponse>, Status> {
        Ok(Response::new(migrate_rpc::shadow_read(&self.inner, request.get_ref())?))
    }

    type PubSubFeedStream = evenkeel_rpc::Feed;

    async fn pub_sub_feed(&self, request: Request<pb::FeedRequest>) -> Result<Response<Self::PubSubFeedStream>, Status> {
        let pb::FeedRequest { link, router } = request.into_inner();
        Ok(Response::new(Box::pin(self.inner.relay.open(link, router)?)))
    }

    async fn pub_sub_interest(&self, request: Request<pb::InterestRequest>) -> Result<Response<pb::InterestResponse>, Status> {
        if let Some(delay) = self.inner.failpoints.pubsub_interest_delay() {
            tokio::time::sleep(delay).await;
        }
        self.inner.relay.interest(request.into_inner())?;
        Ok(Response::new(pb::InterestResponse {}))
    }

    async fn publish(&self, request: Request<pb::PublishRequest>) -> Result<Response<pb::PublishResponse>, Status> {
        Ok(Response::new(pb::PublishResponse { receivers: self.inner.relay.publish(request.into_inner()) }))
    }

    async fn pub_sub_query(&self, request: Request<pb::PubSubQueryRequest>) -> Result<Response<pb::PubSubQueryResponse>, Status> {
        Ok(Response::new(pb::PubSubQueryResponse { subscriptions: self.inner.relay.query(request.get_ref()) }))
    }

    async fn kill_scripts(&self, request: Request<pb::KillScriptsRequest>) -> Result<Response<pb::KillScriptsResponse>, Status> {
        let killed = self.inner.store.scripts().map_or(0, |engine| engine.kill(request.get_ref().functions));
        Ok(Response::new(pb::KillScriptsResponse { killed: killed as u32 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_partition_stays_refused_for_the_rest_of_a_request() {
        let fenced = pb::Refused { reason: pb::refused::Reason::Fenced as i32, ..Default::default() };
        let mut so_far = RefusedSoFar::default();
        assert_eq!(so_far.check(3, || Ok(())), Ok(()));
        assert_eq!(so_far.check(5, || Err(fenced)), Err(fenced));
        // Partition 5 became servable, but an earlier op on it was refused.
        assert_eq!(so_far.check(5, || Ok(())), Err(fenced));
        assert_eq!(so_far.check(3, || Ok(())), Ok(()), "other partitions are unaffected");
    }
}
