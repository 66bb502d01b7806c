//! The etcd v3 backend: the same [`MetaStore`] contract on a shared etcd
//! cluster, so coordinators, routers and nodes on different machines see one
//! metadata store (feature `etcd`).
//!
//! Each trait method is one etcd request; nothing is cached here, so every
//! read is linearizable (etcd's default) and every revision is etcd's own
//! store-wide revision, which the trait's model was built on:
//!
//! - `compare_and_swap` is one transaction: compare the key's `version`
//!   (absent: 0) or `mod_revision`, then put or delete it, else read it for
//!   the conflict's current value; `compare_and_swap_holding` compares the
//!   lock key's `create_revision` and `lease` in the same transaction.
//! - `watch_prefix` relays one etcd watch through a bounded channel of
//!   `watch_buffer` events. A consumer that falls that far behind gets
//!   `WatchLagged` and the stream ends, as with the embedded store; a watch
//!   from a compacted revision gets `Compacted`; a watch the server cancels
//!   or whose connection breaks ends with `Unavailable`. Callers then re-read
//!   and re-watch (`follow`).
//! - Leases are etcd's: TTLs are whole seconds (rounded up) and etcd raises
//!   a TTL below its minimum (1.5 s rounded up, with its default election
//!   timeout) to that minimum. Keep-alives of a lease share one open etcd
//!   keep-alive stream (`keepers`), the one state this store keeps.
//!
//! With a `namespace`, every key is stored under it and handed back without
//! it, so several clusters can share one etcd; revisions stay etcd's, shared
//! by every namespace.
//!
//! Unary requests are bounded by `request_timeout`; a request that times
//! out or loses its connection reports `Unavailable`, and may or may not
//! have taken effect (a CAS caller re-reads, as after any conflict).
//! Watches are not bounded by it: they last as long as their consumer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, EventType, GetOptions,
    LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use crate::error::{MetaError, Result};
use crate::{EtcdOptions, EtcdTls};
use crate::store::{
    CasOutcome, Compare, HeldOutcome, KeyValue, LeaseId, Lock, MetaStore, Revision, WatchEvent, WatchStream,
    prefix_range_end, validate_key, validate_lease, validate_prefix, validate_write,
};

/// Largest answer a prefix read takes (tonic's default, 4 MiB, is below
/// what the cluster's own prefixes can reach: migration records of a long
/// history; etcd's own cap on a response is 2 GiB).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

impl EtcdTls {
    pub(crate) fn options(&self) -> Result<etcd_client::TlsOptions> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|e| MetaError::InvalidArgument(format!("reading {what} {}: {e}", path.display())))
        };
        let mut tls = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read(&self.ca, "the etcd CA certificate")?));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert, "the etcd client certificate")?, read(key, "the etcd client key")?));
            }
            (None, None) => {}
            _ => return Err(MetaError::InvalidArgument("an etcd client certificate and its key go together".into())),
        }
        Ok(tls)
    }
}

/// A [`MetaStore`] on an etcd cluster.
pub struct EtcdStore {
    client: Client,
    opts: EtcdOptions,
    /// An open keep-alive stream per lease this store keeps alive, so a
    /// keep-alive is one message each way on it rather than a stream
    /// opened and closed per call. Dropped when etcd answers that the
    /// lease is gone, when the stream breaks (the next call opens a new
    /// one), and when this store revokes the lease.
    keepers: parking_lot::Mutex<HashMap<LeaseId, Keeper>>,
}

/// One lease's open keep-alive stream; a call holds it for its round trip.
type Keeper = Arc<tokio::sync::Mutex<(LeaseKeeper, LeaseKeepAliveStream)>>;

/// One keep-alive on an open stream: the lease's TTL now (0 when etcd no
/// longer has it).
async fn renew(keeper: &Keeper) -> EtcdResult<i64> {
    let mut open = keeper.lock().await;
    let (keeper, stream) = &mut *open;
    keeper.keep_alive().await?;
    match stream.message().await? {
        Some(resp) => Ok(resp.ttl()),
        None => Err(etcd_client::Error::LeaseKeepAliveError("the keep-alive stream ended".into())),
    }
}

impl EtcdStore {
    /// Connects to `opts.endpoints` and checks that etcd answers.
    pub async fn connect(opts: EtcdOptions) -> Result<Arc<Self>> {
        if opts.endpoints.is_empty() {
            return Err(MetaError::InvalidArgument("no etcd endpoint given".into()));
        }
        if opts.watch_buffer == 0 {
            return Err(MetaError::InvalidArgument("watch_buffer must be at least 1".into()));
        }
        let ns = &opts.namespace;
        if !ns.is_empty() && (!ns.starts_with('/') || ns.ends_with('/') || ns.len() > 256) {
            return Err(MetaError::InvalidArgument(format!("etcd namespace {ns:?}: give a path such as /team-a (a leading slash, no trailing one, at most 256 bytes)")));
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(user) = &opts.user {
            connect = connect.with_user(&user.name, &user.password).with_auto_token_refresh(true);
        }
        let https = opts.endpoints.iter().filter(|e| e.starts_with("https://")).count();
        match &opts.tls {
            Some(tls) if https == opts.endpoints.len() => connect = connect.with_tls(tls.options()?),
            None if https == 0 => {}
            _ => return Err(MetaError::InvalidArgument("etcd endpoints: https:// (all of them) goes with TLS settings, http:// without".into())),
        }
        let endpoints = opts.endpoints.clone();
        let client = bounded(opts.connect_timeout, "a connection", Client::connect(endpoints, Some(connect))).await?.map_err(|e| error("a connection", e))?;
        let store = Arc::new(EtcdStore { client, opts, keepers: parking_lot::Mutex::default() });
        // `connect` is lazy about the channel; a first request tells an
        // endpoint with no etcd behind it from one that answers.
        store.current_revision().await.map_err(|e| match e {
            MetaError::Unavailable(why) => {
                MetaError::Unavailable(format!("etcd at {} does not answer: {why}", store.opts.endpoints.join(",")))
            }
            other => other,
        })?;
        Ok(store)
    }

    /// `key` as stored in etcd.
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.opts.namespace)
    }

    /// The range of etcd keys under `prefix`: first key and range end.
    fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let full = self.full(prefix);
        // etcd refuses an empty key; `\0` to `\0` is its "every key".
        if full.is_empty() { (vec![0], vec![0]) } else { (full.as_bytes().to_vec(), prefix_range_end(&full)) }
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        key_value(kv, &self.opts.namespace)
    }

    /// One unary request, bounded by `request_timeout`.
    async fn call<T>(&self, what: &str, f: impl Future<Output = EtcdResult<T>>) -> Result<T> {
        self.ask(what, f).await?.map_err(|e| error(what, e))
    }

    /// [`Self::call`] that leaves the etcd error to the caller (lease
    /// requests tell "no such lease" apart); only a timeout is mapped.
    async fn ask<T>(&self, what: &str, f: impl Future<Output = EtcdResult<T>>) -> Result<EtcdResult<T>> {
        bounded(self.opts.request_timeout, what, f).await
    }

    /// A compare-and-swap of `key` as one etcd transaction, guarded by
    /// `lock` when given: the lock key's create revision and lease are
    /// compared too (an absent key has 0 for both, which no lock has).
    async fn cas(&self, lock: Option<&Lock>, key: &str, expect: Compare, value: Option<Vec<u8>>, lease: Option<LeaseId>) -> Result<Txned> {
        validate_write(key, value.as_deref(), lease)?;
        let key = self.full(key);
        let key = key.as_str();
        let mut compares = vec![match expect {
            // An absent key has version 0 in etcd's comparisons.
            Compare::Absent | Compare::ModRevision(0) => EtcdCompare::version(key, CompareOp::Equal, 0),
            Compare::ModRevision(rev) => EtcdCompare::mod_revision(key, CompareOp::Equal, i64::try_from(rev).unwrap_or(i64::MAX)),
        }];
        let mut reads = vec![TxnOp::get(key, None)];
        if let Some(lock) = lock {
            let held = self.full(&lock.key);
            compares.push(EtcdCompare::create_revision(held.as_str(), CompareOp::Equal, i64::try_from(lock.fencing_token).unwrap_or(i64::MAX)));
            compares.push(EtcdCompare::lease(held.as_str(), CompareOp::Equal, lock.lease));
            reads.push(TxnOp::get(held, None));
        }
        let write = match value {
            Some(v) => TxnOp::put(key, v, lease.map(|id| PutOptions::new().with_lease(id))),
            None => TxnOp::delete(key, None),
        };
        let txn = Txn::new().when(compares).and_then([write]).or_else(reads);
        let mut kv = self.client.kv_client();
        let resp = lease_answer("a compare-and-swap", lease.unwrap_or(0), self.ask("a compare-and-swap", kv.txn(txn)).await?)?;
        if resp.succeeded() {
            return Ok(Txned::Swapped(header_revision(resp.header())?));
        }
        let mut reads = resp.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| self.key_value(kv)).transpose(),
            _ => Err(MetaError::Corrupt("etcd's failed compare-and-swap answered other than the reads it asked for".into())),
        });
        let mut next = || reads.next().unwrap_or_else(|| Err(MetaError::Corrupt("etcd's failed compare-and-swap returned fewer reads than it asked for".into())));
        let current = next()?;
        let held = if lock.is_some() { next()? } else { None };
        Ok(Txned::Failed { current, held })
    }
}

type EtcdResult<T> = std::result::Result<T, etcd_client::Error>;

/// What one compare-and-swap transaction did.
enum Txned {
    Swapped(Revision),
    /// A compare failed: the key's value and, for one under a lock, the
    /// lock key's (None otherwise), both read in the transaction (at one
    /// revision).
    Failed { current: Option<KeyValue>, held: Option<KeyValue> },
}

/// `f`, failing with `Unavailable` after `limit`.
async fn bounded<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, f).await.map_err(|_| {
        MetaError::Unavailable(format!("etcd did not answer {what} within {limit:?}; the request may or may not have taken effect"))
    })
}

/// A lease request's answer, "no such lease" told apart.
fn lease_answer<T>(what: &str, lease: LeaseId, answer: EtcdResult<T>) -> Result<T> {
    answer.map_err(|e| if lease_not_found(&e) { MetaError::LeaseNotFound(lease) } else { error(what, e) })
}

/// The trait's error for an etcd client error.
fn error(what: &str, e: etcd_client::Error) -> MetaError {
    use etcd_client::Error as E;
    if let E::GRpcStatus(s) = &e
        && (matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
            || ["user name is empty", "invalid auth token", "authentication failed"].iter().any(|m| s.message().contains(m)))
    {
        return MetaError::Unavailable(format!("etcd refused {what}: {} (authentication: check the etcd user and password)", s.message()));
    }
    match e {
        E::InvalidArgs(m) => MetaError::InvalidArgument(m),
        E::GRpcStatus(s) if s.code() == tonic::Code::InvalidArgument || s.code() == tonic::Code::FailedPrecondition => {
            MetaError::InvalidArgument(format!("etcd refused {what}: {}", s.message()))
        }
        other => MetaError::Unavailable(format!("etcd {what}: {other}")),
    }
}

/// Whether `e` is etcd's answer for a lease it does not have.
fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.code() == tonic::Code::NotFound && s.message().contains("lease not found"),
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

/// etcd's revisions are i64, never negative.
fn revision(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header.map(|h| revision(h.revision())).ok_or_else(|| MetaError::Corrupt("etcd answered without a response header".into()))
}

/// The trait's key for etcd's `key`: UTF-8, under `namespace`, which is
/// taken off.
fn logical_key(key: &[u8], namespace: &str) -> Result<String> {
    let key = std::str::from_utf8(key).map_err(|_| MetaError::Corrupt(format!("etcd key {key:?} is not UTF-8")))?;
    key.strip_prefix(namespace).map(str::to_owned).ok_or_else(|| MetaError::Corrupt(format!("etcd key {key:?} is outside the namespace {namespace:?}")))
}

fn key_value(kv: &etcd_client::KeyValue, namespace: &str) -> Result<KeyValue> {
    Ok(KeyValue {
        key: logical_key(kv.key(), namespace)?,
        value: kv.value().to_vec(),
        create_revision: revision(kv.create_revision()),
        mod_revision: revision(kv.mod_revision()),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

#[async_trait::async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let mut kv = self.client.kv_client();
        let resp = self.call("a get", kv.get(self.full(key), None)).await?;
        resp.kvs().first().map(|kv| self.key_value(kv)).transpose()
    }

    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        validate_prefix(prefix)?;
        let mut kv = self.client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES);
        let (start, end) = self.range(prefix);
        let resp = self.call("a prefix read", kv.get(start, Some(GetOptions::new().with_range(end)))).await?;
        let kvs = resp.kvs().iter().map(|kv| self.key_value(kv)).collect::<Result<Vec<_>>>()?;
        Ok((kvs, header_revision(resp.header())?))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        validate_write(key, Some(&value), lease)?;
        let mut kv = self.client.kv_client();
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        let resp = lease_answer("a put", lease.unwrap_or(0), self.ask("a put", kv.put(self.full(key), value, options)).await?)?;
        header_revision(resp.header())
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>> {
        validate_key(key)?;
        let mut kv = self.client.kv_client();
        let resp = self.call("a delete", kv.delete(self.full(key), None)).await?;
        Ok((resp.deleted() > 0).then(|| header_revision(resp.header())).transpose()?)
    }

    async fn compare_and_swap(&self, key: &str, expect: Compare, value: Option<Vec<u8>>, lease: Option<LeaseId>) -> Result<CasOutcome> {
        Ok(match self.cas(None, key, expect, value, lease).await? {
            Txned::Swapped(revision) => CasOutcome::Swapped(revision),
            Txned::Failed { current, .. } => CasOutcome::Conflict(current),
        })
    }

    async fn compare_and_swap_holding(&self, lock: &Lock, key: &str, expect: Compare, value: Option<Vec<u8>>, lease: Option<LeaseId>) -> Result<HeldOutcome> {
        validate_key(&lock.key)?;
        Ok(match self.cas(Some(lock), key, expect, value, lease).await? {
            Txned::Swapped(revision) => HeldOutcome::Swapped(revision),
            Txned::Failed { held, .. } if !lock.is(held.as_ref()) => HeldOutcome::LockLost(held),
            Txned::Failed { current, .. } => HeldOutcome::Conflict(current),
        })
    }

    async fn watch_prefix(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        let (start, end) = self.range(prefix);
        let mut options = WatchOptions::new().with_range(end);
        if from_revision > 0 {
            options = options.with_start_revision(i64::try_from(from_revision).unwrap_or(i64::MAX));
        }
        let mut watch = self.client.watch_client();
        let mut stream = self.call("a watch", watch.watch(start, Some(options))).await?;
        // The buffered events, then why the watch ended (sent once the
        // consumer has made room for it), then the end of the stream.
        let (tx, rx) = mpsc::channel(self.opts.watch_buffer);
        let namespace = self.opts.namespace.clone();
        tokio::spawn(async move {
            let why = tokio::select! {
                why = relay(&mut stream, &tx, from_revision, &namespace) => why,
                // The consumer dropped the stream: stop watching.
                () = tx.closed() => return,
            };
            // Closes the watch on the server before waiting for room.
            drop(stream);
            let _ = tx.send(Err(why)).await;
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let seconds = i64::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(i64::MAX).max(1);
        let mut lease = self.client.lease_client();
        let resp = self.call("a lease grant", lease.grant(seconds, None)).await?;
        if !resp.error().is_empty() {
            return Err(MetaError::Unavailable(format!("etcd refused a lease: {}", resp.error())));
        }
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        validate_lease(Some(lease))?;
        let open = self.keepers.lock().get(&lease).cloned();
        if let Some(keeper) = open {
            match self.ask("a lease keep-alive", renew(&keeper)).await {
                Ok(Ok(ttl)) if ttl > 0 => return Ok(()),
                // etcd answers 0 for a lease it no longer has.
                Ok(Ok(_)) => {
                    self.keepers.lock().remove(&lease);
                    return Err(MetaError::LeaseNotFound(lease));
                }
                // The stream broke (etcd restarted, the connection went)
                // or did not answer in time: a new one below.
                Ok(Err(_)) | Err(_) => {
                    self.keepers.lock().remove(&lease);
                }
            }
        }
        let mut client = self.client.lease_client();
        // Opening the stream sends the first keep-alive and reads its
        // answer: a TTL above zero, or "lease not found".
        let (keeper, stream) = lease_answer("a lease keep-alive", lease, self.ask("a lease keep-alive", client.keep_alive(lease)).await?)?;
        self.keepers.lock().insert(lease, Arc::new(tokio::sync::Mutex::new((keeper, stream))));
        Ok(())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        validate_lease(Some(lease))?;
        self.keepers.lock().remove(&lease);
        let mut client = self.client.lease_client();
        lease_answer("a lease revoke", lease, self.ask("a lease revoke", client.revoke(lease)).await?)?;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_count_only().with_range(vec![0]);
        let resp = self.call("a revision read", kv.get(vec![0], Some(options))).await?;
        header_revision(resp.header())
    }
}

/// Moves one etcd watch's events into `tx` until it ends; returns why.
async fn relay(stream: &mut etcd_client::WatchStream, tx: &mpsc::Sender<Result<WatchEvent>>, from_revision: Revision, namespace: &str) -> MetaError {
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return MetaError::Unavailable("etcd closed the watch".into()),
            Err(e) => return error("a watch", e),
        };
        if resp.compact_revision() > 0 {
            return MetaError::Compacted { requested: from_revision, oldest: revision(resp.compact_revision()) };
        }
        if resp.canceled() {
            return MetaError::Unavailable(format!("etcd cancelled the watch: {}", resp.cancel_reason()));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let event = match event.event_type() {
                EventType::Put => match key_value(kv, namespace) {
                    Ok(kv) => WatchEvent::Put(kv),
                    Err(e) => return e,
                },
                EventType::Delete => match logical_key(kv.key(), namespace) {
                    Ok(key) => WatchEvent::Delete { key, mod_revision: revision(kv.mod_revision()) },
                    Err(e) => return e,
                },
            };
            match tx.try_send(Ok(event)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => return MetaError::WatchLagged,
                Err(mpsc::error::TrySendError::Closed(_)) => return MetaError::Closed,
            }
        }
    }
}
