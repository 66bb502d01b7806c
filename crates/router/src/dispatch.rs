//! Sending single-key operations to their owners, retrying what moves.
//!
//! [`Dispatcher::run`] groups operations by owner node, sends one `Execute`
//! per node concurrently, and collects one result per operation. Operations a
//! node refuses (not the owner, stale epoch, fenced, overloaded) were not
//! applied, so they are retried with exponential backoff (after a routing
//! refresh, unless the node was only overloaded) until the retry budget runs
//! out. Each attempt's deadline is the per-attempt timeout or what is left
//! of the budget, whichever is less, so an operation ends within its budget;
//! a node starts no op after most of that deadline has passed
//! (`OVERLOADED`), which keeps a write stuck in a queue from being sent
//! twice or reported as indeterminate. Reads are also retried when a node cannot be
//! reached; writes are retried only when they certainly were not sent,
//! because an INCR that may have been applied must not be applied twice.
//!
//! Ops on a partition that is moving may ask the source for their records
//! ([`crate::mirror`]); once a node has answered, those are handed to the
//! mirror, which works in the background: nothing waits for it.

use crate::mirror::{Mirror, Tap};
use crate::routes::{RouteCache, Routes};
use bytes::Bytes;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::{NodeId, PartitionId};
use futures::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One single-key operation.
#[derive(Debug, Clone)]
pub struct KeyOp {
    pub key: Bytes,
    pub kind: Kind,
    /// CLIENT TRACKING: the owner notes the key as cached by a client of
    /// this router (`pb::Op.track`).
    pub track: bool,
    /// A blocking op's client id (`pb::Op.waiter`), so CLIENT UNBLOCK can
    /// end its wait; 0 otherwise.
    pub waiter: u64,
}

impl KeyOp {
    pub fn new(key: Bytes, kind: Kind) -> KeyOp {
        KeyOp { key, kind, track: false, waiter: 0 }
    }
}

/// Why an operation failed without a reply from its owner. The router turns
/// these into Redis Cluster style errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// Still refused or unroutable when the retry budget ran out.
    #[error("TRYAGAIN partition is moving; retry budget of {0} ms spent")]
    TryAgain(u64),
    /// Last refused because its owner could not start it before its
    /// deadline when the retry budget ran out; it was not executed.
    #[error("TRYAGAIN node {0} is overloaded: the operation was not executed; retry budget of {1} ms spent")]
    Overloaded(NodeId, u64),
    /// The cluster has no routing table yet.
    #[error("CLUSTERDOWN the cluster is not bootstrapped yet")]
    NoTable,
    /// The owner could not be reached, and the op may not be retried.
    #[error("CLUSTERDOWN node {0} unreachable: {1}")]
    Unreachable(NodeId, String),
}

/// Bounds on transparent retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryBudget {
    /// Total time an operation may spend being retried.
    pub total_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Per-attempt RPC deadline, cut to what is left of `total_ms` (but
    /// never below [`MIN_ATTEMPT_MS`]).
    pub rpc_timeout_ms: u64,
}

/// The shortest deadline an attempt is given, however little of the retry
/// budget is left: enough for a node to answer at all.
pub const MIN_ATTEMPT_MS: u64 = 50;

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget { total_ms: 5_000, backoff_min_ms: 1, backoff_max_ms: 50, rpc_timeout_ms: 2_000 }
    }
}

pub struct Dispatcher {
    pub routes: Arc<RouteCache>,
    pub budget: RetryBudget,
    pub mirror: Arc<Mirror>,
    /// This router's id, which nodes send CLIENT TRACKING's
    /// invalidations to (`pb::ExecuteRequest.router`).
    pub router: u64,
    /// Operations answered with a [`DispatchError`] since the router
    /// started: the errors clients saw because of the store (a move that
    /// outlasted the retry budget, an overloaded or unreachable node), not
    /// because of their commands. Reported to the coordinator, which
    /// judges a staged rebalance's stages by it.
    pub unavailable: Arc<std::sync::atomic::AtomicU64>,
}

type Outcome = Result<R, DispatchError>;

/// What happened to one batch sent to one node.
enum Attempt {
    Done(NodeId, Vec<(usize, pb::OpResult)>),
    Failed { node: NodeId, indices: Vec<usize>, error: String, maybe_sent: bool },
}

impl Dispatcher {
    /// Runs `ops`, returning one outcome per op, in order.
    pub async fn run(&self, ops: &[KeyOp]) -> Vec<Outcome> {
        let outcomes = self.attempt_all(ops).await;
        let failed = outcomes.iter().filter(|o| o.is_err()).count() as u64;
        if failed > 0 {
            self.unavailable.fetch_add(failed, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("evenkeel_router_unavailable_total").increment(failed);
        }
        outcomes
    }

    /// [`Dispatcher::run`], retrying inside the budget.
    async fn attempt_all(&self, ops: &[KeyOp]) -> Vec<Outcome> {
        let mut results: Vec<Option<Outcome>> = vec![None; ops.len()];
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        let started = Instant::now();
        // A blocking pop may be held by its node that long on top of the
        // usual deadline and budget.
        let wait_ms = ops.iter().map(|op| op.kind.blocking_wait_ms()).max().unwrap_or(0);
        let total_ms = self.budget.total_ms + wait_ms;
        let mut backoff = self.budget.backoff_min_ms;
        // Ops whose last refusal was OVERLOADED, and by which node.
        let mut overloaded: Vec<(usize, NodeId)> = Vec::new();
        loop {
            let routes = self.routes.load();
            let (groups, unroutable) = match group_by_owner(&routes, ops, &pending) {
                Some(g) => g,
                None => return fill(results, &pending, |_| DispatchError::NoTable),
            };
            let left = total_ms.saturating_sub(started.elapsed().as_millis() as u64);
            let timeout = Duration::from_millis(self.budget.rpc_timeout_ms.min(left).max(MIN_ATTEMPT_MS) + wait_ms);
            let attempts = join_all(groups.into_iter().map(|(node, idx)| self.send(&routes, node, ops, idx, timeout))).await;
            pending = unroutable;
            overloaded.clear();
            let mut refresh = false;
            for attempt in attempts {
                self.settle(attempt, ops, &mut results, &mut pending, &mut refresh, &mut overloaded);
            }
            if pending.is_empty() {
                return results.into_iter().map(|r| r.expect("every op settled")).collect();
            }
            if started.elapsed().as_millis() as u64 >= total_ms {
                metrics::counter!("evenkeel_router_retry_budget_exhausted_total").increment(1);
                let total = self.budget.total_ms;
                return fill(results, &pending, |i| match overloaded.iter().find(|(j, _)| *j == i) {
                    Some(&(_, node)) => DispatchError::Overloaded(node, total),
                    None => DispatchError::TryAgain(total),
                });
            }
            metrics::counter!("evenkeel_router_retries_total").increment(pending.len() as u64);
            if refresh || routes.table.is_none() {
                let _ = self.routes.refresh().await;
            }
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.budget.backoff_max_ms);
        }
    }

    /// Records finished results; puts retryable ops back on `pending`.
    fn settle(&self, attempt: Attempt, ops: &[KeyOp], results: &mut [Option<Outcome>], pending: &mut Vec<usize>, refresh: &mut bool, overloaded: &mut Vec<(usize, NodeId)>) {
        match attempt {
            Attempt::Done(node, items) => {
                for (i, r) in items {
                    match r.result {
                        Some(R::Refused(refused)) if refused.reason == pb::refused::Reason::Overloaded as i32 => {
                            // Not started in time: the routing is fine, the
                            // backoff gives the node room.
                            metrics::counter!("evenkeel_router_overloaded_total").increment(1);
                            overloaded.push((i, node));
                            pending.push(i);
                        }
                        Some(R::Refused(_)) => {
                            // A fenced partition is either mid-cutover (the
                            // table will move on) or about to be unfenced;
                            // refreshing is cheap (rate-limited) either way.
                            *refresh = true;
                            pending.push(i);
                        }
                        Some(other) => results[i] = Some(Ok(other)),
                        None => results[i] = Some(Ok(R::Error(internal("empty result")))),
                    }
                }
            }
            Attempt::Failed { node, indices, error, maybe_sent } => {
                *refresh = true;
                for i in indices {
                    if maybe_sent && !is_read(&ops[i].kind) {
                        results[i] = Some(Err(DispatchError::Unreachable(node, error.clone())));
                    } else {
                        pending.push(i);
                    }
                }
            }
        }
    }

    async fn send(&self, routes: &Arc<Routes>, node: NodeId, ops: &[KeyOp], indices: Vec<usize>, timeout: Duration) -> Attempt {
        let Some(mut client) = routes.client(node) else {
            return Attempt::Failed { node, indices, error: "no address".into(), maybe_sent: false };
        };
        let (request, taps) = self.request(routes, ops, &indices);
        let mut request = tonic::Request::new(request);
        request.set_timeout(timeout);
        match client.execute(request).await {
            Ok(resp) => {
                let results = resp.into_inner().results;
                if results.len() != indices.len() {
                    return Attempt::Failed { node, indices, error: "result count mismatch".into(), maybe_sent: true };
                }
                if !taps.is_empty() {
                    let jobs = taps.into_iter().filter_map(|(j, p, tap)| Mirror::job(p, &ops[indices[j]].key, tap, &results[j])).collect();
                    self.mirror.submit(routes, node, jobs);
                }
                Attempt::Done(node, indices.into_iter().zip(results).collect())
            }
            Err(status) => {
                let maybe_sent = !is_connect_failure(&status);
                Attempt::Failed { node, indices, error: status.message().to_string(), maybe_sent }
            }
        }
    }
}

/// An op's position in its request, its partition, and what to mirror.
type Taps = Vec<(usize, PartitionId, Tap)>;

impl Dispatcher {
    /// The `Execute` for `indices`, and the ops whose records the mirror
    /// wants: those on a moving partition whose modes pick them. The route
    /// is read once per op; with no partition moving nothing is allocated.
    fn request(&self, routes: &Routes, ops: &[KeyOp], indices: &[usize]) -> (pb::ExecuteRequest, Taps) {
        let table = routes.table.as_ref().expect("grouped with a table");
        let mut taps = Taps::new();
        let ops = indices
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let partition = table.partition_of(&ops[i].key);
                let tap = table.route(partition).and_then(|r| self.mirror.tap(&r.modes, &ops[i].kind));
                if let Some(tap) = tap {
                    taps.push((j, partition, tap));
                }
                pb::Op { partition: partition as u32, key: ops[i].key.clone(), kind: Some(ops[i].kind.clone()), want_record: tap.is_some(), track: ops[i].track, waiter: ops[i].waiter }
            })
            .collect();
        (pb::ExecuteRequest { epoch: table.epoch, ops, router: self.router }, taps)
    }
}

/// Pending ops' indices grouped by owner, and those with no owner to send
/// to yet.
type Grouped = (Vec<(NodeId, Vec<usize>)>, Vec<usize>);

/// Groups pending ops by owner. `None` when there is no table; ops whose
/// owner has no client yet are returned separately to be retried.
fn group_by_owner(routes: &Routes, ops: &[KeyOp], pending: &[usize]) -> Option<Grouped> {
    let table = routes.table.as_ref()?;
    let mut groups: Vec<(NodeId, Vec<usize>)> = Vec::new();
    let mut unroutable = Vec::new();
    for &i in pending {
        let p = table.partition_of(&ops[i].key);
        let owner = table.entry(p).expect("partition in table").owner;
        if !routes.nodes.contains_key(&owner) {
            unroutable.push(i);
            continue;
        }
        match groups.iter_mut().find(|(n, _)| *n == owner) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((owner, vec![i])),
        }
    }
    Some((groups, unroutable))
}

fn fill(mut results: Vec<Option<Outcome>>, pending: &[usize], error: impl Fn(usize) -> DispatchError) -> Vec<Outcome> {
    for &i in pending {
        results[i] = Some(Err(error(i)));
    }
    results.into_iter().map(|r| r.expect("every op settled")).collect()
}

fn is_read(kind: &Kind) -> bool {
    match kind {
        // A cancel may be sent again: it ends a wait or is kept for one.
        Kind::Get(_) | Kind::Watch(_) | Kind::CancelWait(_) => true,
        Kind::Stream(s) => s.args.first().is_some_and(|name| evenkeel_types::stream::command::is_read_only(name)),
        _ => false,
    }
}

/// True when the request certainly never reached the node (the connection
/// could not be established), so even a write may be retried.
fn is_connect_failure(status: &tonic::Status) -> bool {
    use std::error::Error;
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn Error + 'static)> = status.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        if e.to_string().contains("tcp connect error") {
            return true;
        }
        source = e.source();
    }
    false
}

fn internal(message: &str) -> pb::OpError {
    pb::OpError { kind: pb::op_error::Kind::Internal as i32, message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_of_the_stores_making_are_counted_for_the_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn evenkeel_meta::MetaStore> = evenkeel_meta::EmbeddedStore::open(dir.path(), Default::default()).await.unwrap();
        let dispatcher = Dispatcher { routes: RouteCache::start(meta).await, budget: RetryBudget::default(), mirror: Mirror::new(Default::default()), router: 1, unavailable: Default::default() };
        // No routing table yet: every op fails with CLUSTERDOWN.
        let ops = [KeyOp::new(Bytes::from_static(b"a"), Kind::Get(Default::default())), KeyOp::new(Bytes::from_static(b"b"), Kind::Get(Default::default()))];
        let outcomes = dispatcher.run(&ops).await;
        assert!(outcomes.iter().all(|o| *o == Err(DispatchError::NoTable)), "{outcomes:?}");
        assert_eq!(dispatcher.unavailable.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
