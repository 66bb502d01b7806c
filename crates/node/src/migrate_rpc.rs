//! The node's migration RPCs: token admission, then a store call.
//!
//! Every handler first admits the request's fencing token for the partition
//! (a stale one is refused with status `ABORTED`), then performs one bounded
//! piece of work. Page sizes are capped here whatever the caller asks for.
//!
//! The bulk ones (snapshot, log read, apply, drop) are async: they take their
//! turn in the background lane ([`crate::lane`]) before admitting the token,
//! so admission stays right next to the work it admits. Fence, checksum and
//! begin are on the cutover's critical path and run at once, as do log reads
//! and applies marked `urgent` (the drain under the fence).
//!
//! Routers send two of their own while a partition moves: applies marked
//! `forwarded` (dual-write and copy-on-read records) and shadow reads. They
//! are foreground-sized (the records of one client batch), so they skip the
//! lane, and they are accepted only while this node imports the partition:
//! it does not own it (after the flip it serves the partition itself, and a
//! late forward has nothing to add) and no drop has closed the import
//! ([`crate::store::Store::close_import`]).

use crate::service::NodeInner;
use std::sync::Arc;
use crate::store::{HoldFrom, KeyRecord, LogRead, StoreError};
use evenkeel_rpc::pb;
use evenkeel_types::{PartitionId, Record};
use tonic::Status;

/// Largest page of records one snapshot or log read returns.
pub const PAGE_KEYS_MAX: u32 = 10_000;
/// Largest page of bytes one snapshot or log read returns (about).
pub const PAGE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Records applied under one hold of the partition lock; between such
/// sub-batches an apply yields to foreground requests. Measured (`cargo
/// bench -p evenkeel-node --bench apply`): a 500-record page of 100 B
/// values applies in about 3-5 ms, some 6-10 µs a record (on a noisy
/// machine: sub-batches of 16, 32 and 500 were within each other's
/// noise), so a sub-batch of 16 holds the lock (and, for its commit,
/// fjall's journal lock, which every write on the node takes) for about
/// 0.1 ms.
pub const APPLY_BATCH_RECORDS: usize = 16;

fn status(e: StoreError) -> Status {
    match e {
        StoreError::StaleToken { .. } => Status::aborted(e.to_string()),
        StoreError::NoSuchPartition(_) | StoreError::WrongPartition { .. } => Status::invalid_argument(e.to_string()),
        StoreError::NotImporting { .. } => Status::failed_precondition(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// How a store call that scans or writes many records runs: `Bulk` on the
/// node's low-priority threads (`crate::pool`), `Urgent` (the drain under a
/// cutover's fence) on the blocking pool of the node's own runtime, at
/// normal priority, whichever runtime the caller runs on. Never on a
/// runtime worker: in `evenkeel up` the router and the nodes share one runtime with a
/// worker per core, and a partition-sized scan or a page of applies there
/// stalls every client request (and the cutover's own timeout) behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Urgency {
    Bulk,
    Urgent,
}

impl Urgency {
    fn of(urgent: bool) -> Self {
        if urgent { Urgency::Urgent } else { Urgency::Bulk }
    }
}

async fn blocking<T: Send + 'static>(inner: &Arc<NodeInner>, urgency: Urgency, f: impl FnOnce(&NodeInner) -> Result<T, StoreError> + Send + 'static) -> Result<T, Status> {
    let i = inner.clone();
    let call = move || f(&i);
    let result = match (&inner.bulk, urgency) {
        (Some(pool), Urgency::Bulk) => pool.run(inner.id, call).await.map_err(|e| Status::unavailable(e.to_string()))?,
        _ => {
            let task = match inner.runtime.get() {
                Some(runtime) => runtime.spawn_blocking(call),
                None => tokio::task::spawn_blocking(call),
            };
            task.await.map_err(|e| Status::internal(format!("store task failed: {e}")))?
        }
    };
    result.map_err(status)
}

/// Validates the header and admits its token.
pub(crate) fn admit(inner: &NodeInner, header: Option<&pb::MigrateHeader>) -> Result<PartitionId, Status> {
    let h = header.ok_or_else(|| Status::invalid_argument("missing migration header"))?;
    let partition = PartitionId::try_from(h.partition).map_err(|_| Status::invalid_argument("partition out of range"))?;
    inner.store.admit_token(partition, h.token).map_err(status)?;
    Ok(partition)
}

pub(crate) fn position(inner: &NodeInner, partition: PartitionId) -> Result<pb::PositionResponse, Status> {
    Ok(pb::PositionResponse { log_next: inner.store.log_next(partition).map_err(status)?, clock: inner.store.clock().current() })
}

/// Where a migration begins: the partition's log position, held from
/// there (`Store::hold_log`, `HoldFrom::Begin`) so the copy's catch-up
/// finds it.
pub(crate) fn begin(inner: &NodeInner, partition: PartitionId) -> Result<pb::PositionResponse, Status> {
    inner.store.hold_log(partition, HoldFrom::Begin, evenkeel_types::unix_ms()).map_err(status)?;
    position(inner, partition)
}

/// In `Durability::Sync`, waits until everything read or written so far
/// is durable here (group commit lets a write be read before its fsync).
/// A migration ships only that: a position or a record a power cut could
/// take back from this node, once on the destination, would leave the two
/// copies apart and this node's later writes at log positions already
/// shipped. And it answers an apply or a fence only then: the coordinator
/// checkpoints past an applied page, and goes on to drain and flip once a
/// fence is answered. The fsync runs on the syncer thread, shared with
/// every writer waiting, never on the caller's (a runtime worker).
pub(crate) async fn durable_here(inner: &NodeInner) -> Result<(), Status> {
    match inner.store.durable_background() {
        Some(durable) => durable.await.map_err(Status::internal),
        None => Ok(()),
    }
}

pub(crate) async fn snapshot(inner: &Arc<NodeInner>, req: &pb::SnapshotRequest) -> Result<pb::SnapshotResponse, Status> {
    let _turn = inner.lane.background().await;
    let p = admit(inner, req.header.as_ref())?;
    // The copy goes on: its catch-up's start stays held.
    inner.store.hold_log(p, HoldFrom::Renew, evenkeel_types::unix_ms()).map_err(status)?;
    let max_keys = req.max_keys.clamp(1, PAGE_KEYS_MAX) as usize;
    let max_bytes = req.max_bytes.clamp(1, PAGE_BYTES_MAX);
    let cursor = req.cursor.clone();
    let chunk = blocking(inner, Urgency::Bulk, move |i| i.store.snapshot_chunk(p, cursor.as_deref(), max_keys, max_bytes)).await?;
    durable_here(inner).await?;
    Ok(pb::SnapshotResponse { records: chunk.records.iter().map(to_pb).collect(), cursor: chunk.cursor, bytes: chunk.bytes })
}

pub(crate) async fn read_log(inner: &Arc<NodeInner>, req: &pb::ReadLogRequest) -> Result<pb::ReadLogResponse, Status> {
    // Nothing new since `from`: answered here, without the lane or a bulk
    // thread. Reverse capture asks every baking migration's destination
    // each second (about 30 at once in the acceptance rebalance); for a
    // partition nobody wrote to since, a read through the lane cost a wait
    // of up to `background_yield_max` and two thread hand-offs for nothing.
    let p = admit(inner, req.header.as_ref())?;
    // What this reader has yet to read stays (catch-up, drain, reverse
    // capture, rollback).
    inner.store.hold_log(p, HoldFrom::Reader(req.from), evenkeel_types::unix_ms()).map_err(status)?;
    let log_next = inner.store.log_next(p).map_err(status)?;
    if req.from >= log_next {
        return Ok(pb::ReadLogResponse { entries: vec![], next: req.from, truncated: false, first: 0, log_next });
    }
    // The cutover's drain runs while clients are paused: no lane for it.
    let _turn = if req.urgent { None } else { Some(inner.lane.background().await) };
    // Where the log ends now, after the lane's wait.
    let log_next = inner.store.log_next(p).map_err(status)?;
    let (from, max) = (req.from, req.max.clamp(1, PAGE_KEYS_MAX) as usize);
    let max_bytes = if req.max_bytes == 0 { PAGE_BYTES_MAX } else { req.max_bytes.min(PAGE_BYTES_MAX) };
    let read = blocking(inner, Urgency::of(req.urgent), move |i| i.store.read_log(p, from, max, max_bytes)).await?;
    durable_here(inner).await?;
    match read {
        LogRead::Truncated { first } => Ok(pb::ReadLogResponse { entries: vec![], next: req.from, truncated: true, first, log_next }),
        LogRead::Entries { entries, next } => Ok(pb::ReadLogResponse {
            entries: entries.iter().map(|(pos, kr)| pb::LogEntry { position: *pos, record: Some(to_pb(kr)) }).collect(),
            next,
            truncated: false,
            first: 0,
            log_next: log_next.max(next),
        }),
    }
}

/// Applies in sub-batches, yielding between them. Splitting is safe: the
/// store applies and logs each record on its own (newer wins per key, one
/// atomic batch per record, log position taken under the partition lock),
/// so a sub-batch boundary is like a boundary between two requests.
///
/// The whole page is one piece of store work on a bulk thread, which
/// yields to foreground requests between sub-batches itself: going back to
/// the runtime between them woke a runtime worker, one of the threads
/// clients are served on, for every sub-batch (about a thousand times a
/// second for a node importing 4 MB/s of 100-byte values at 32 a batch).
pub(crate) async fn apply(inner: &Arc<NodeInner>, req: pb::ApplyRequest) -> Result<pb::ApplyResponse, Status> {
    if req.forwarded {
        return apply_forwarded(inner, req);
    }
    let turn = if req.urgent { None } else { Some(inner.lane.background().await) };
    let p = admit(inner, req.header.as_ref())?;
    let records: Vec<KeyRecord> = req.records.into_iter().map(from_pb).collect::<Result<_, _>>()?;
    let budget = turn.as_ref().and_then(|t| t.budget());
    let applied = blocking(inner, Urgency::of(req.urgent), move |i| {
        let mut applied = 0;
        for (n, batch) in records.chunks(APPLY_BATCH_RECORDS).enumerate() {
            if n > 0 {
                i.lane.yield_blocking(budget);
            }
            applied += i.store.apply(p, batch)?;
        }
        Ok(applied)
    })
    .await?;
    drop(turn);
    durable_here(inner).await?;
    Ok(pb::ApplyResponse { applied: applied as u32 })
}

/// A router's dual-write or copy-on-read records: applied inline, as an
/// Execute's writes are, while the import is open. Answered without a
/// durability wait also in `Durability::Sync`: the router sends them
/// after answering its client, and nothing counts on them (the change log
/// carries every write); the next page the migration applies here waits
/// for an fsync that covers them too.
fn apply_forwarded(inner: &NodeInner, req: pb::ApplyRequest) -> Result<pb::ApplyResponse, Status> {
    let (p, token) = importing(inner, req.header.as_ref())?;
    let records: Vec<KeyRecord> = req.records.into_iter().map(from_pb).collect::<Result<_, _>>()?;
    let applied = inner.store.apply_forwarded(p, token, &records).map_err(status)?;
    Ok(pb::ApplyResponse { applied: applied as u32 })
}

/// The records a router's shadow read asks for; version 0 where none.
pub(crate) fn shadow_read(inner: &NodeInner, req: &pb::ShadowReadRequest) -> Result<pb::ShadowReadResponse, Status> {
    if req.keys.len() > PAGE_KEYS_MAX as usize {
        return Err(Status::invalid_argument(format!("at most {PAGE_KEYS_MAX} keys per shadow read")));
    }
    let (p, token) = importing(inner, req.header.as_ref())?;
    let records = inner.store.shadow_read(p, token, &req.keys).map_err(status)?;
    let records = req
        .keys
        .iter()
        .zip(records)
        .map(|(key, r)| r.map_or_else(|| pb::KeyRecord { key: key.clone(), ..Default::default() }, |record| to_pb(&KeyRecord { key: key.clone(), record })))
        .collect();
    Ok(pb::ShadowReadResponse { records })
}

/// The partition and token of a router's request, if this node is not
/// serving the partition; the store checks the token and the import.
fn importing(inner: &NodeInner, header: Option<&pb::MigrateHeader>) -> Result<(PartitionId, u64), Status> {
    let h = header.ok_or_else(|| Status::invalid_argument("missing migration header"))?;
    let p = PartitionId::try_from(h.partition).map_err(|_| Status::invalid_argument("partition out of range"))?;
    if inner.ownership.owns(p) {
        return Err(Status::failed_precondition(format!("partition {p} is served here; nothing to forward")));
    }
    Ok((p, h.token))
}

pub(crate) async fn fence(inner: &Arc<NodeInner>, req: &pb::FenceRequest) -> Result<pb::PositionResponse, Status> {
    let p = admit(inner, req.header.as_ref())?;
    // Stored before it takes effect, both ways, so a restart between the
    // two comes back in the state the coordinator asked for.
    inner.store.persist_fence(p, req.fenced).map_err(status)?;
    if req.fenced {
        inner.ownership.fence(p);
        // No read is served here from now on: clients caching keys of `p`
        // drop them, and read (and track) them at the next owner.
        inner.store.invalidate_tracked(p);
    } else {
        inner.ownership.unfence(p, (req.grant_epoch > 0).then_some(req.grant_epoch));
    }
    tracing::info!(node = inner.id, partition = p, fenced = req.fenced, grant_epoch = req.grant_epoch, "fence changed");
    if !req.fenced && req.grant_epoch > 0 {
        warm_rows(inner.clone(), p);
    }
    let position = position(inner, p)?;
    durable_here(inner).await?;
    Ok(position)
}

/// Starts warming the row cache with `p`, which this node was just
/// granted: by a cutover (`Store::warm_rows`: the import cached nothing),
/// or by a rollback (reverse capture's applies forgot its entries). In
/// the background lane, on a bulk thread, yielding to foreground work
/// between pages; the cutover does not wait for it, and a failure only
/// leaves reads to fill the cache as usual.
fn warm_rows(inner: Arc<NodeInner>, p: PartitionId) {
    tokio::spawn(async move {
        let turn = inner.lane.background().await;
        let budget = turn.budget();
        match blocking(&inner, Urgency::Bulk, move |i| i.store.warm_rows(p, || i.lane.yield_blocking(budget))).await {
            Ok(warmed) => {
                inner.metrics.row_cache_warmed.increment(warmed.records);
                tracing::debug!(node = inner.id, partition = p, ?warmed, "row cache warmed");
            }
            Err(e) => tracing::warn!(node = inner.id, partition = p, error = %e, "warming the row cache failed; reads fill it instead"),
        }
    });
}

/// The partition's checksum: from the counters (O(1), what the cutover
/// uses under the fence), or with `scan` by reading every record.
pub(crate) async fn checksum(inner: &Arc<NodeInner>, req: &pb::ChecksumRequest) -> Result<pb::ChecksumResponse, Status> {
    let p = admit(inner, req.header.as_ref())?;
    if !req.scan {
        let (sum, log_next) = inner.store.checksum(p).map_err(status)?;
        return Ok(pb::ChecksumResponse { keys: sum.keys, digest: sum.digest, log_next });
    }
    let sum = blocking(inner, Urgency::Bulk, move |i| i.store.checksum_scan(p)).await?;
    inner.metrics.checksum_scans.increment(1);
    inner.metrics.checksum_scanned_keys.increment(sum.keys);
    // Read after the scan: every write the scan saw is then below
    // `log_next`. Read before it, a write landing in between would be in
    // the digest but not counted as unapplied, and the verification would
    // take a difference it can explain for a mismatch.
    let log_next = inner.store.log_next(p).map_err(status)?;
    Ok(pb::ChecksumResponse { keys: sum.keys, digest: sum.digest, log_next })
}

/// Drops the partition's copy here: retires it (O(1); compactions remove
/// the items, see `store::retire`) after closing its import, then deletes
/// the engine tables holding nothing else in the background.
pub(crate) async fn drop_partition(inner: &Arc<NodeInner>, req: &pb::DropRequest) -> Result<pb::DropResponse, Status> {
    let _turn = inner.lane.background().await;
    let p = admit(inner, req.header.as_ref())?;
    if inner.ownership.owns(p) {
        return Err(Status::failed_precondition(format!("partition {p} is owned by this node; refusing to drop it")));
    }
    inner.store.close_import(p, req.header.as_ref().map_or(0, |h| h.token)).map_err(status)?;
    let removed = blocking(inner, Urgency::Bulk, move |i| i.store.retire(p)).await?;
    inner.store.invalidate_tracked(p);
    if removed > 0 {
        // Tables holding only this partition go now, in the background:
        // `drop_range` may wait for a running compaction.
        let i = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = blocking(&i, Urgency::Bulk, move |i| i.store.drop_retired_tables(p)).await {
                tracing::warn!(node = i.id, partition = p, error = %e, "dropping a retired partition's tables failed; compaction removes its items instead");
            }
        });
    }
    Ok(pb::DropResponse { removed })
}

pub fn to_pb(kr: &KeyRecord) -> pb::KeyRecord {
    let r = &kr.record;
    pb::KeyRecord {
        key: kr.key.clone(),
        tombstone: r.value.is_none(),
        value: r.value.clone().unwrap_or_default(),
        expire_at_ms: r.expire_at_ms.unwrap_or(0),
        version: r.version,
        value_type: crate::ops::value_type(r.ty) as i32,
    }
}

pub fn from_pb(r: pb::KeyRecord) -> Result<KeyRecord, Status> {
    if r.version == 0 {
        return Err(Status::invalid_argument("record without a version"));
    }
    let expire = (r.expire_at_ms != 0).then_some(r.expire_at_ms);
    let record = match (r.tombstone, crate::ops::value_type_from(r.value_type)) {
        (true, _) => Record::tombstone(r.version),
        (false, Some(ty)) => Record::typed(ty, r.value, expire, r.version),
        (false, None) => return Err(Status::invalid_argument(format!("record of an unknown value type {}", r.value_type))),
    };
    Ok(KeyRecord { key: r.key, record })
}
