//! What the router does for a moving partition, after the client's reply.
//!
//! A partition whose routing entry carries a [`MigrationRoute`] is moving to
//! `route.target`. While it does, the dispatcher asks the source for the
//! record of each op the route's [`Modes`] pick ([`Mirror::tap`] sets
//! `Op.want_record`), and hands the answered ones to [`Mirror::submit`],
//! which runs them as background tasks:
//! - **dual-write**: the record an acknowledged write wrote is applied on
//!   the destination (`MigrateApply` with `forwarded`), so the destination
//!   is current before the change log gets there, and catch-up and the
//!   cutover's drain find those entries already applied;
//! - **copy-on-read**: the record a GET read is applied there too, once per
//!   version ([`book::Recent`]), so hot keys arrive before the bulk copy
//!   reaches them;
//! - **shadow reads**: a sampled fraction of GETs are read on the
//!   destination (`MigrateShadowRead`) and compared ([`shadow::compare`]);
//!   a key the destination holds newer is re-read on the source before it
//!   counts as a mismatch. Counts per migration ([`book::Book`]) go into the
//!   router's report; the coordinator refuses to cut over while mismatches
//!   are above their threshold.
//!
//! Nothing here can change a client's reply or delay it: it starts once
//! the results are in and runs in tasks that hold one of `in_flight_max`
//! permits each. With none free the side effect is dropped and counted:
//! correctness rests on the change log and the fenced cutover, which carry
//! every write whether or not it was mirrored. Applies are versioned, so
//! forwards may arrive in any order and after the copy or the log delivered
//! the same record. A partition without a route costs one branch per op.

pub mod book;
pub mod shadow;

use crate::routes::Routes;
use book::{Book, Recent, Sampler};
use bytes::Bytes;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_rpc::NodeClient;
use evenkeel_types::latency::MirrorCounts;
use evenkeel_types::{MigrationRoute, Modes, NodeId, PartitionId};
use shadow::Verdict;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bounds on the router's mirrored traffic.
#[derive(Debug, Clone, Copy)]
pub struct MirrorConfig {
    /// Mirror RPCs (forwards, shadow reads) in flight at once; past it,
    /// side effects are dropped and counted.
    pub in_flight_max: usize,
    /// Deadline of each mirror RPC.
    pub rpc_timeout_ms: u64,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig { in_flight_max: 256, rpc_timeout_ms: 1_000 }
    }
}

/// What happens to one op's record once the source has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    DualWrite,
    CopyOnRead,
    /// Compare with the destination; `copy`: push the record there if the
    /// destination lags (copy-on-read is on).
    Shadow { copy: bool },
}

/// One answered op to mirror.
#[derive(Debug, Clone)]
pub struct Job {
    pub partition: PartitionId,
    pub key: Bytes,
    pub tap: Tap,
    /// The record the source returned (None: it holds none).
    pub record: Option<pb::KeyRecord>,
    /// The source withheld the record as too large to mirror
    /// (`OpResult.record_withheld`): nothing is done but counting it.
    pub withheld: bool,
}

pub struct Mirror {
    config: MirrorConfig,
    permits: Arc<Semaphore>,
    pub book: Book,
    sampler: Sampler,
    recent: Recent,
}

impl Mirror {
    pub fn new(config: MirrorConfig) -> Arc<Mirror> {
        let permits = Arc::new(Semaphore::new(config.in_flight_max.max(1)));
        Arc::new(Mirror { config, permits, book: Book::default(), sampler: Sampler::default(), recent: Recent::default() })
    }

    /// The tap for an op of `kind` on a partition moving under `modes`
    /// (the shadow-read sample is drawn here); None: nothing to mirror.
    /// Reads of metadata only (EXISTS, TTL, STRLEN) and WATCH's version
    /// reads are not mirrored.
    pub fn tap(&self, modes: &Modes, kind: &Kind) -> Option<Tap> {
        match kind {
            Kind::Get(g) if g.meta_only => None,
            Kind::Watch(_) => None,
            Kind::Get(_) if self.sampler.sample(modes.shadow_read_ratio) => Some(Tap::Shadow { copy: modes.copy_on_read }),
            Kind::Get(_) => modes.copy_on_read.then_some(Tap::CopyOnRead),
            _ => modes.dual_write.then_some(Tap::DualWrite),
        }
    }

    /// The job for an answered op, if the answer is worth mirroring: the op
    /// was served (not refused, not an error), and a forward has a record
    /// or the source withheld it (a job only counted).
    pub fn job(partition: PartitionId, key: &Bytes, tap: Tap, result: &pb::OpResult) -> Option<Job> {
        if matches!(result.result, None | Some(R::Refused(_)) | Some(R::Error(_))) {
            return None;
        }
        let withheld = result.record_withheld;
        if !matches!(tap, Tap::Shadow { .. }) && result.record.is_none() && !withheld {
            return None;
        }
        Some(Job { partition, key: key.clone(), tap, record: result.record.clone(), withheld })
    }

    /// Starts the side effects of `jobs`, which `source` answered using
    /// `routes`; returns at once.
    pub fn submit(self: &Arc<Self>, routes: &Arc<Routes>, source: NodeId, mut jobs: Vec<Job>) {
        jobs.retain(|j| {
            if j.withheld {
                if let Some(route) = routes.table.as_ref().and_then(|t| t.route(j.partition)) {
                    self.count(route, j.tap, 1, Outcome::Withheld);
                }
                return false;
            }
            j.tap != Tap::CopyOnRead || j.record.as_ref().is_some_and(|r| self.recent.first_time(j.partition, &j.key, r.version))
        });
        jobs.sort_by_key(|j| (j.partition, class(j.tap)));
        for group in jobs.chunk_by(|a, b| (a.partition, class(a.tap)) == (b.partition, class(b.tap))) {
            let Some(route) = routes.table.as_ref().and_then(|t| t.route(group[0].partition)) else { continue };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.count(route, group[0].tap, group.len() as u64, Outcome::Dropped);
                continue;
            };
            let task = Task { mirror: self.clone(), routes: routes.clone(), route: route.clone(), partition: group[0].partition, _permit: permit };
            let group = group.to_vec();
            match group[0].tap {
                Tap::Shadow { .. } => tokio::spawn(task.shadow(source, group)),
                tap => tokio::spawn(task.forward(tap, group.into_iter().filter_map(|j| j.record).collect())),
            };
        }
    }

    fn count(&self, route: &MigrationRoute, tap: Tap, n: u64, outcome: Outcome) {
        let (kind, label) = match tap {
            Tap::DualWrite => ("evenkeel_router_dual_writes_total", outcome.label()),
            Tap::CopyOnRead => ("evenkeel_router_copy_on_read_total", outcome.label()),
            Tap::Shadow { .. } => ("evenkeel_router_shadow_reads_total", outcome.label()),
        };
        metrics::counter!(kind, "outcome" => label).increment(n);
        self.book.count(&route.migration, |c| outcome.add(c, tap, n));
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.rpc_timeout_ms)
    }
}

/// Jobs that go out in one RPC share a partition and a class.
fn class(tap: Tap) -> u8 {
    match tap {
        Tap::DualWrite => 0,
        Tap::CopyOnRead => 1,
        Tap::Shadow { .. } => 2,
    }
}

/// How one side effect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Dropped,
    /// The source withheld the record as too large to mirror.
    Withheld,
    Failed,
    Compared(Verdict),
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Dropped => "dropped",
            Outcome::Withheld => "withheld",
            Outcome::Failed => "failed",
            Outcome::Compared(Verdict::Match) => "match",
            Outcome::Compared(Verdict::Lagging) => "lagging",
            Outcome::Compared(_) => "mismatch",
        }
    }

    fn add(self, c: &mut MirrorCounts, tap: Tap, n: u64) {
        match (self, tap) {
            (Outcome::Sent, Tap::DualWrite) => c.dual_writes += n,
            (Outcome::Sent, _) => c.copied_on_read += n,
            (Outcome::Dropped, _) => c.dropped += n,
            (Outcome::Withheld, _) => c.withheld += n,
            (Outcome::Failed, _) => c.failed += n,
            (Outcome::Compared(v), _) => {
                c.shadow.compared += n;
                match v {
                    Verdict::Match => {}
                    Verdict::Lagging => c.shadow.lagging += n,
                    Verdict::Mismatch | Verdict::DestinationNewer => c.shadow.mismatched += n,
                }
            }
        }
    }
}

/// One mirror RPC (and what follows from it), holding its permit.
struct Task {
    mirror: Arc<Mirror>,
    routes: Arc<Routes>,
    route: MigrationRoute,
    partition: PartitionId,
    _permit: OwnedSemaphorePermit,
}

impl Task {
    fn header(&self) -> Option<pb::MigrateHeader> {
        Some(pb::MigrateHeader { partition: self.partition as u32, token: self.route.token })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(self.mirror.timeout());
        r
    }

    fn destination(&self) -> Option<NodeClient> {
        self.routes.client(self.route.target)
    }

    /// Applies `records` on the destination (dual-write or copy-on-read).
    async fn forward(self, tap: Tap, records: Vec<pb::KeyRecord>) {
        let n = records.len() as u64;
        let req = self.request(pb::ApplyRequest { header: self.header(), records, urgent: false, forwarded: true });
        let outcome = match self.destination() {
            Some(mut c) => c.migrate_apply(req).await.map_err(|s| s.to_string()),
            None => Err(format!("no address for node {}", self.route.target)),
        };
        if let Err(e) = &outcome {
            tracing::debug!(migration = %self.route.migration, partition = self.partition, error = %e, "forward to the destination failed");
        }
        self.mirror.count(&self.route, tap, n, if outcome.is_ok() { Outcome::Sent } else { Outcome::Failed });
    }

    /// Reads `jobs`' keys on the destination, compares, re-reads the source
    /// for keys the destination holds newer, counts, and pushes lagging
    /// keys' records when copy-on-read is on.
    async fn shadow(self, source: NodeId, jobs: Vec<Job>) {
        let tap = jobs[0].tap;
        let Some(copies) = self.shadow_read(&jobs).await else {
            return self.mirror.count(&self.route, tap, jobs.len() as u64, Outcome::Failed);
        };
        let mut verdicts: Vec<Verdict> = jobs.iter().zip(&copies).map(|(j, c)| shadow::compare(j.record.as_ref(), Some(c))).collect();
        let newer: Vec<usize> = (0..jobs.len()).filter(|&i| verdicts[i] == Verdict::DestinationNewer).collect();
        if !newer.is_empty() {
            let again = self.reread_source(source, newer.iter().map(|&i| jobs[i].key.clone()).collect()).await;
            for (k, &i) in newer.iter().enumerate() {
                verdicts[i] = again.as_ref().map_or(Verdict::DestinationNewer, |a| shadow::recheck(shadow::compare(a[k].as_ref(), Some(&copies[i]))));
            }
        }
        let mut lagging = Vec::new();
        for ((job, copy), verdict) in jobs.into_iter().zip(&copies).zip(verdicts) {
            self.settle(&job, copy, verdict, &mut lagging);
        }
        if let (Tap::Shadow { copy: true }, false) = (tap, lagging.is_empty()) {
            self.forward(Tap::CopyOnRead, lagging).await;
        }
    }

    /// Counts one key's verdict; a verdict still undecided after a failed
    /// re-read counts as a failure, not a mismatch.
    fn settle(&self, job: &Job, copy: &pb::KeyRecord, verdict: Verdict, lagging: &mut Vec<pb::KeyRecord>) {
        let outcome = match verdict {
            Verdict::DestinationNewer => Outcome::Failed,
            v => Outcome::Compared(v),
        };
        if verdict == Verdict::Mismatch {
            let source = job.record.as_ref().map_or(0, |r| r.version);
            tracing::warn!(migration = %self.route.migration, partition = self.partition, key = %String::from_utf8_lossy(&job.key), source_version = source, destination_version = copy.version, "shadow read mismatch");
        }
        if let (Verdict::Lagging, Some(r)) = (verdict, &job.record) {
            lagging.push(r.clone());
        }
        self.mirror.count(&self.route, job.tap, 1, outcome);
    }

    /// The destination's records of `jobs`' keys, in order (version 0:
    /// none); None if the read failed or was refused.
    async fn shadow_read(&self, jobs: &[Job]) -> Option<Vec<pb::KeyRecord>> {
        let keys: Vec<Bytes> = jobs.iter().map(|j| j.key.clone()).collect();
        let req = self.request(pb::ShadowReadRequest { header: self.header(), keys });
        let records = match self.destination()?.migrate_shadow_read(req).await {
            Ok(r) => r.into_inner().records,
            Err(e) => {
                tracing::debug!(migration = %self.route.migration, error = %e, "shadow read failed");
                return None;
            }
        };
        (records.len() == jobs.len()).then_some(records)
    }

    /// The source's records of `keys` now; None unless every read was served.
    async fn reread_source(&self, source: NodeId, keys: Vec<Bytes>) -> Option<Vec<Option<pb::KeyRecord>>> {
        let table = self.routes.table.as_ref()?;
        let ops = keys
            .into_iter()
            .map(|key| pb::Op { partition: self.partition as u32, key, kind: Some(Kind::Get(pb::Get::default())), want_record: true, track: false, waiter: 0 })
            .collect();
        let req = self.request(pb::ExecuteRequest { epoch: table.epoch, ops, router: 0 });
        let results = self.routes.client(source)?.execute(req).await.ok()?.into_inner().results;
        results.into_iter().map(|r| matches!(r.result, Some(R::Value(_)) | Some(R::Nil(_))).then_some(r.record)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(meta_only: bool) -> Kind {
        Kind::Get(pb::Get { meta_only, project: None, ..Default::default() })
    }

    fn set() -> Kind {
        Kind::Set(pb::Set { value: "v".into(), ..Default::default() })
    }

    #[test]
    fn taps_follow_the_modes() {
        let m = Mirror::new(MirrorConfig::default());
        let all = Modes { dual_write: true, shadow_read_ratio: 1.0, copy_on_read: true };
        assert_eq!(m.tap(&all, &set()), Some(Tap::DualWrite));
        assert_eq!(m.tap(&all, &Kind::Del(pb::Del::default())), Some(Tap::DualWrite));
        assert_eq!(m.tap(&all, &get(false)), Some(Tap::Shadow { copy: true }));
        assert_eq!(m.tap(&all, &get(true)), None, "EXISTS/TTL/STRLEN are not mirrored");
        let copy_only = Modes { shadow_read_ratio: 0.0, ..all };
        assert_eq!(m.tap(&copy_only, &get(false)), Some(Tap::CopyOnRead));
        assert_eq!(m.tap(&Modes::OFF, &set()), None);
        assert_eq!(m.tap(&Modes::OFF, &get(false)), None);
    }

    /// Only served ops are mirrored, and a forward needs a record; a shadow
    /// read compares even when the source had none.
    #[test]
    fn jobs_come_from_served_results() {
        let key = Bytes::from_static(b"k");
        let record = pb::KeyRecord { key: key.clone(), value: "v".into(), version: 7, ..Default::default() };
        let served = |record| pb::OpResult { result: Some(R::Nil(pb::Nil {})), record, record_withheld: false };
        let refused = pb::OpResult { result: Some(R::Refused(pb::Refused::default())), record: Some(record.clone()), record_withheld: false };
        assert!(Mirror::job(1, &key, Tap::DualWrite, &served(Some(record.clone()))).is_some());
        assert!(Mirror::job(1, &key, Tap::DualWrite, &served(None)).is_none());
        assert!(Mirror::job(1, &key, Tap::DualWrite, &refused).is_none());
        assert!(Mirror::job(1, &key, Tap::Shadow { copy: false }, &served(None)).is_some());
        assert!(Mirror::job(1, &key, Tap::Shadow { copy: false }, &refused).is_none());
        // A record the source withheld as too large: every tap only counts
        // it (a shadow read must not compare it as missing).
        let withheld = pb::OpResult { result: Some(R::Written(pb::Written::default())), record: None, record_withheld: true };
        for tap in [Tap::DualWrite, Tap::CopyOnRead, Tap::Shadow { copy: true }] {
            let job = Mirror::job(1, &key, tap, &withheld).expect("counted");
            assert!(job.withheld && job.record.is_none());
        }
    }

    #[test]
    fn outcomes_land_in_their_counts() {
        let mut c = MirrorCounts::default();
        Outcome::Sent.add(&mut c, Tap::DualWrite, 3);
        Outcome::Sent.add(&mut c, Tap::CopyOnRead, 2);
        Outcome::Dropped.add(&mut c, Tap::DualWrite, 1);
        Outcome::Withheld.add(&mut c, Tap::Shadow { copy: false }, 4);
        Outcome::Compared(Verdict::Match).add(&mut c, Tap::Shadow { copy: false }, 1);
        Outcome::Compared(Verdict::Lagging).add(&mut c, Tap::Shadow { copy: false }, 1);
        Outcome::Compared(Verdict::Mismatch).add(&mut c, Tap::Shadow { copy: false }, 1);
        assert_eq!((c.dual_writes, c.copied_on_read, c.dropped, c.withheld, c.failed), (3, 2, 1, 4, 0));
        assert_eq!((c.shadow.compared, c.shadow.lagging, c.shadow.mismatched), (3, 1, 1));
    }
}
