//! Pub/Sub on the router: its clients' subscriptions, its links to every
//! node, and fan-out to its clients.
//!
//! Every node relays for every channel (`evenkeel_node::pubsub`). This
//! router keeps one *link* per node: a feed the node streams messages down,
//! and the link's subscriptions (how many of this router's clients hold
//! each channel, pattern and shard channel), which [`Hub`] keeps current on
//! the node with `PubSubInterest` calls sent in order, one link at a time.
//! When a link (re)opens, its first update replaces whatever the node had.
//!
//! Guarantees, as a Redis client sees them:
//! - A SUBSCRIBE is answered once every link that is up (or opening) has
//!   applied it (at most [`ACK_WAIT`]), so a message published after the
//!   confirmation reaches the subscriber, whichever router or node it goes
//!   through. An UNSUBSCRIBE likewise, so a PUBLISH sent after its
//!   confirmation no longer counts the client.
//! - Messages of one channel from one publisher arrive in order: PUBLISH
//!   goes to the owner of the channel's hash slot, and each node's feed is
//!   one ordered stream.
//! - At most once, as in Redis: a message published on a node whose link
//!   is down (the node restarting, or a feed that fell more than the
//!   node's backlog behind) is lost; the link reopens by itself.
//! - A client that does not read its messages is disconnected once
//!   [`CLIENT_BACKLOG_BYTES`] of them wait for it, as Redis's
//!   `client-output-buffer-limit pubsub` does.

use crate::routes::RouteCache;
use bytes::{Bytes, BytesMut};
use evenkeel_resp::{Frame, Protocol};
use evenkeel_rpc::NodeClient;
use evenkeel_rpc::pb::{self, SubscriptionKind};
use evenkeel_types::NodeId;
use evenkeel_types::glob::glob_match;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// How long a SUBSCRIBE waits for the nodes to take it.
pub const ACK_WAIT: Duration = Duration::from_secs(1);
/// Messages waiting for one client, in bytes, past which it is
/// disconnected (Redis's default hard limit for Pub/Sub clients).
pub const CLIENT_BACKLOG_BYTES: usize = 32 << 20;
/// How often the links are checked when the membership does not change
/// (a link whose task ended is restarted).
const TEND_EVERY: Duration = Duration::from_secs(1);
/// How long a link must have been open before PUBLISH prefers its node:
/// the other routers follow the same membership and open theirs to a new
/// node at about the same time.
pub const LINK_MATURITY: Duration = Duration::from_secs(1);
/// The deadline of a PUBLISH or PUBSUB call to one node.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The three namespaces: SUBSCRIBE's channels, PSUBSCRIBE's patterns,
/// SSUBSCRIBE's shard channels.
const KINDS: [SubscriptionKind; 3] = [SubscriptionKind::Channel, SubscriptionKind::Pattern, SubscriptionKind::ShardChannel];

fn index(kind: SubscriptionKind) -> usize {
    kind as usize
}

/// Where a client's messages go: its session's queue.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    kill: CancellationToken,
}

impl Outbox {
    fn push(&self, message: &Bytes, client: u64) {
        let queued = self.queued.fetch_add(message.len(), Ordering::Relaxed) + message.len();
        if queued > CLIENT_BACKLOG_BYTES {
            if !self.kill.is_cancelled() {
                metrics::counter!("evenkeel_router_pubsub_clients_dropped_total").increment(1);
                tracing::warn!(client, limit_bytes = CLIENT_BACKLOG_BYTES, "pub/sub client does not read its messages; disconnecting it");
                self.kill.cancel();
            }
            return;
        }
        let _ = self.tx.send(message.clone());
    }
}

/// One client's subscriptions, held by its session.
pub struct Subscriber {
    id: u64,
    hub: Arc<Hub>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    outbox: Outbox,
    held: [BTreeSet<Bytes>; 3],
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("id", &self.id).field("counts", &self.counts()).finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Subscriptions of every kind.
    pub fn total(&self) -> usize {
        self.held.iter().map(BTreeSet::len).sum()
    }

    /// Channels, patterns, shard channels.
    pub fn counts(&self) -> [usize; 3] {
        [self.held[0].len(), self.held[1].len(), self.held[2].len()]
    }

    /// The count a (un)subscribe reply carries: channels and patterns
    /// together, shard channels on their own (Redis 7.0).
    fn count(&self, kind: SubscriptionKind) -> i64 {
        match kind {
            SubscriptionKind::ShardChannel => self.held[2].len() as i64,
            _ => (self.held[0].len() + self.held[1].len()) as i64,
        }
    }

    /// Whether `user` may still hold every subscription (channels and
    /// shard channels by its channel patterns, patterns only if they are
    /// its own).
    pub fn allowed_by(&self, user: &crate::acl::User) -> bool {
        self.held[0].iter().chain(&self.held[2]).all(|c| user.may_use_channel(c, false)) && self.held[1].iter().all(|p| user.may_use_channel(p, true))
    }

    /// The next message for the client, encoded.
    pub async fn next(&mut self) -> Option<Bytes> {
        let m = self.rx.recv().await?;
        self.outbox.queued.fetch_sub(m.len(), Ordering::Relaxed);
        Some(m)
    }

    /// A message already waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Bytes> {
        let m = self.rx.try_recv().ok()?;
        self.outbox.queued.fetch_sub(m.len(), Ordering::Relaxed);
        Some(m)
    }
}

impl Subscriber {
    /// The client's protocol changed (HELLO): how invalidations reach it.
    pub fn set_protocol(&self, protocol: Protocol) {
        if let Some(target) = self.hub.state.lock().expect("pubsub lock").targets.get_mut(&self.id) {
            target.1 = protocol;
        }
    }

    /// Drops every subscription; what to wait for to know each node
    /// applied that.
    fn release(&mut self) -> Vec<(watch::Receiver<u64>, u64)> {
        let mut state = self.hub.state.lock().expect("pubsub lock");
        let mut changed = Vec::new();
        for kind in KINDS {
            for name in std::mem::take(&mut self.held[index(kind)]) {
                changed.push(state.remove(kind, name, self.id));
            }
        }
        state.send(changed)
    }

    /// RESET: every subscription dropped, returning once the nodes
    /// dropped them (as UNSUBSCRIBE does).
    pub async fn leave(mut self) {
        let waits = self.release();
        applied(waits, "unsubscription").await;
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.release();
        let mut state = self.hub.state.lock().expect("pubsub lock");
        state.targets.remove(&self.id);
        let changed = state.tracking.disable(self.id);
        state.send(changed.into_iter().map(prefix_update).collect());
    }
}

/// An update of one link's subscriptions on its node.
struct Update {
    seq: u64,
    replace: bool,
    subscriptions: Vec<pb::Subscription>,
}

struct LinkHandle {
    /// Which opening of the link this is.
    serial: u64,
    updates: mpsc::UnboundedSender<Update>,
    /// The last update the node applied.
    acked: watch::Receiver<u64>,
    sent: u64,
    /// When the node took the link's first update (its whole view).
    ready_at: Option<std::time::Instant>,
}

#[derive(Default)]
struct State {
    /// Per kind: name → the clients holding it.
    subs: [HashMap<Bytes, HashMap<u64, Outbox>>; 3],
    links: HashMap<NodeId, LinkHandle>,
    /// Every subscriber's queue and protocol, by client: where CLIENT
    /// TRACKING's invalidations go.
    targets: HashMap<u64, (Outbox, Protocol)>,
    tracking: crate::tracking::Table,
}

impl State {
    /// Adds a client's subscription; the link update if the count changed.
    fn add(&mut self, kind: SubscriptionKind, name: Bytes, client: u64, outbox: &Outbox) -> pb::Subscription {
        let holders = self.subs[index(kind)].entry(name.clone()).or_default();
        holders.insert(client, outbox.clone());
        pb::Subscription { kind: kind as i32, name, clients: holders.len() as u32 }
    }

    fn remove(&mut self, kind: SubscriptionKind, name: Bytes, client: u64) -> pb::Subscription {
        let by_name = &mut self.subs[index(kind)];
        let clients = match by_name.get_mut(&name) {
            Some(holders) => {
                holders.remove(&client);
                holders.len()
            }
            None => 0,
        };
        if clients == 0 {
            by_name.remove(&name);
        }
        pb::Subscription { kind: kind as i32, name, clients: clients as u32 }
    }

    /// Queues `changed` on every link; what to wait for to know each node
    /// applied it.
    fn send(&mut self, changed: Vec<pb::Subscription>) -> Vec<(watch::Receiver<u64>, u64)> {
        if changed.is_empty() {
            return Vec::new();
        }
        let mut waits = Vec::with_capacity(self.links.len());
        for link in self.links.values_mut() {
            link.sent += 1;
            if link.updates.send(Update { seq: link.sent, replace: false, subscriptions: changed.clone() }).is_ok() {
                waits.push((link.acked.clone(), link.sent));
            }
        }
        waits
    }

    /// Sends CLIENT TRACKING's invalidation of `key` (None: of everything)
    /// to each of `targets`, as Redis does: a push to a RESP3 client; to a
    /// RESP2 one (a REDIRECT target) a message on `__redis__:invalidate`
    /// if it subscribes to it; nothing otherwise.
    fn tell(&self, targets: &[u64], key: Option<&Bytes>) {
        let keys = key.map_or(Frame::NullArray, |k| Frame::Array(vec![Frame::Bulk(k.clone())]));
        for target in targets {
            let Some((outbox, protocol)) = self.targets.get(target) else { continue };
            let frame = match protocol {
                Protocol::Resp3 => Frame::Push(vec![Frame::bulk("invalidate"), keys.clone()]),
                Protocol::Resp2 if self.subs[index(SubscriptionKind::Channel)].get(crate::tracking::INVALIDATE_CHANNEL.as_bytes()).is_some_and(|h| h.contains_key(target)) => {
                    Frame::Array(vec![Frame::bulk("message"), Frame::bulk(crate::tracking::INVALIDATE_CHANNEL), keys.clone()])
                }
                Protocol::Resp2 => continue,
            };
            let mut out = BytesMut::new();
            frame.encode_as(*protocol, &mut out);
            outbox.push(&out.freeze(), *target);
            metrics::counter!("evenkeel_router_tracking_invalidations_total").increment(1);
        }
    }

    /// Every subscription this router holds (and CLIENT TRACKING's BCAST
    /// prefixes), as a link's first update.
    fn snapshot(&self) -> Vec<pb::Subscription> {
        let subscriptions = KINDS.iter().flat_map(|&kind| self.subs[index(kind)].iter().map(move |(name, holders)| pb::Subscription { kind: kind as i32, name: name.clone(), clients: holders.len() as u32 }));
        subscriptions.chain(self.tracking.prefixes().map(|(p, n)| prefix_update((p.clone(), n)))).collect()
    }
}

/// The router's Pub/Sub state.
pub struct Hub {
    router: u64,
    state: Mutex<State>,
    next_serial: AtomicU64,
}

impl Hub {
    pub fn new(router: u64) -> Arc<Hub> {
        Arc::new(Hub { router, state: Mutex::default(), next_serial: AtomicU64::new(1) })
    }

    /// A subscriber for client `id` (unique in this router), whose
    /// disconnection `kill` asks for.
    pub fn subscriber(self: &Arc<Self>, id: u64, kill: CancellationToken, protocol: Protocol) -> Subscriber {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox { tx, queued: Arc::default(), kill };
        self.state.lock().expect("pubsub lock").targets.insert(id, (outbox.clone(), protocol));
        Subscriber { id, hub: self.clone(), rx, outbox, held: Default::default() }
    }

    /// CLIENT TRACKING ON for `sub`'s client in `mode`, its invalidations
    /// going to client `target` (itself without REDIRECT). With BCAST,
    /// answered once every node broadcasts its new prefixes (as SUBSCRIBE
    /// waits), so a write after the reply is invalidated.
    pub async fn track(&self, sub: &Subscriber, target: u64, mode: &crate::tracking::Mode) {
        let waits = {
            let mut state = self.state.lock().expect("pubsub lock");
            let changed = state.tracking.enable(sub.id, target, mode);
            state.send(changed.into_iter().map(prefix_update).collect())
        };
        applied(waits, "tracking prefix").await;
    }

    /// CLIENT TRACKING OFF: the client's keys and prefixes are forgotten.
    pub fn untrack(&self, client: u64) {
        let mut state = self.state.lock().expect("pubsub lock");
        let changed = state.tracking.disable(client);
        state.send(changed.into_iter().map(prefix_update).collect());
    }

    /// CLIENT TRACKING's figures for INFO: clients, keys, items, prefixes.
    pub fn tracking_counts(&self) -> [usize; 4] {
        self.state.lock().expect("pubsub lock").tracking.counts()
    }

    /// A tracking client is about to read `keys` (before its ops go out,
    /// so an invalidation that comes back at once finds it).
    pub fn remember(&self, client: u64, keys: impl IntoIterator<Item = Bytes>) {
        let mut state = self.state.lock().expect("pubsub lock");
        for (key, targets) in state.tracking.remember(client, keys) {
            metrics::counter!("evenkeel_router_tracking_evicted_total").increment(1);
            state.tell(&targets, Some(&key));
        }
        metrics::gauge!("evenkeel_router_tracking_keys").set(state.tracking.len() as f64);
    }

    /// A NOLOOP client writes `keys`: it is not told of these writes.
    pub fn written_by(&self, client: u64, keys: &[Bytes]) {
        let mut state = self.state.lock().expect("pubsub lock");
        for key in keys {
            state.tracking.written_by(client, key);
        }
    }

    /// The NOLOOP client's write of `keys` failed (or may not have run):
    /// the keys are as they were but no longer tracked for it, so it is
    /// told to drop them.
    pub fn write_failed(&self, client: u64, keys: &[Bytes]) {
        let state = self.state.lock().expect("pubsub lock");
        if let Some(target) = state.tracking.target(client) {
            for key in keys {
                state.tell(&[target], Some(key));
            }
        }
    }

    /// Every tracking client drops everything it caches: a link to a node
    /// opened or ended, so invalidations may have been lost.
    fn flush_tracking(&self) {
        let mut state = self.state.lock().expect("pubsub lock");
        let targets = state.tracking.flushed();
        if !targets.is_empty() {
            metrics::counter!("evenkeel_router_tracking_flushes_total").increment(1);
            state.tell(&targets, None);
        }
    }

    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: one confirmation per name, sent
    /// once the nodes hold the subscriptions.
    pub async fn subscribe(&self, sub: &mut Subscriber, kind: SubscriptionKind, names: &[Bytes]) -> Vec<Frame> {
        let mut replies = Vec::with_capacity(names.len());
        let waits = {
            let mut state = self.state.lock().expect("pubsub lock");
            let mut changed = Vec::new();
            for name in names {
                if sub.held[index(kind)].insert(name.clone()) {
                    changed.push(state.add(kind, name.clone(), sub.id, &sub.outbox));
                }
                replies.push(confirmation(subscribe_word(kind), Frame::Bulk(name.clone()), sub.count(kind)));
            }
            state.send(changed)
        };
        applied(waits, "subscription").await;
        replies
    }

    /// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE: `names`, or every
    /// subscription of the kind when empty, answered once the nodes
    /// dropped them (so a PUBLISH sent after the confirmation no longer
    /// counts this client). No message of a name reaches the client after
    /// its confirmation.
    pub async fn unsubscribe(&self, sub: &mut Subscriber, kind: SubscriptionKind, names: &[Bytes]) -> Vec<Frame> {
        let word = unsubscribe_word(kind);
        let names: Vec<Bytes> = if names.is_empty() { sub.held[index(kind)].iter().cloned().collect() } else { names.to_vec() };
        if names.is_empty() {
            return vec![confirmation(word, Frame::Null, sub.count(kind))];
        }
        let mut replies = Vec::with_capacity(names.len());
        let waits = {
            let mut state = self.state.lock().expect("pubsub lock");
            let mut changed = Vec::new();
            for name in names {
                if sub.held[index(kind)].remove(&name) {
                    changed.push(state.remove(kind, name.clone(), sub.id));
                }
                replies.push(confirmation(word, Frame::Bulk(name), sub.count(kind)));
            }
            state.send(changed)
        };
        applied(waits, "unsubscription").await;
        replies
    }

    /// Hands a message from a node to this router's clients.
    fn deliver(&self, m: &pb::PubSubMessage) {
        let mut state = self.state.lock().expect("pubsub lock");
        if m.invalidate {
            let targets = state.tracking.invalidated(&m.channel);
            state.tell(&targets, Some(&m.channel));
            metrics::gauge!("evenkeel_router_tracking_keys").set(state.tracking.len() as f64);
            return;
        }
        let encode = |parts: Vec<Frame>| {
            let mut out = BytesMut::new();
            Frame::Array(parts).encode(&mut out);
            out.freeze()
        };
        let (direct, word) = if m.shard { (&state.subs[index(SubscriptionKind::ShardChannel)], "smessage") } else { (&state.subs[index(SubscriptionKind::Channel)], "message") };
        if let Some(holders) = direct.get(&m.channel) {
            let frame = encode(vec![Frame::bulk(word), Frame::Bulk(m.channel.clone()), Frame::Bulk(m.payload.clone())]);
            for (&client, outbox) in holders {
                outbox.push(&frame, client);
            }
        }
        if !m.shard {
            for (pattern, holders) in &state.subs[index(SubscriptionKind::Pattern)] {
                if glob_match(pattern, &m.channel) {
                    let frame = encode(vec![Frame::bulk("pmessage"), Frame::Bulk(pattern.clone()), Frame::Bulk(m.channel.clone()), Frame::Bulk(m.payload.clone())]);
                    for (&client, outbox) in holders {
                        outbox.push(&frame, client);
                    }
                }
            }
        }
    }

    /// Opens a link's handle with every current subscription as its first
    /// update, so nothing subscribed before or after the link opens is
    /// missed.
    fn attach(&self, node: NodeId) -> (u64, mpsc::UnboundedReceiver<Update>, watch::Sender<u64>) {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let (updates, rx) = mpsc::unbounded_channel();
        let (acked_tx, acked) = watch::channel(0);
        let mut state = self.state.lock().expect("pubsub lock");
        let _ = updates.send(Update { seq: 1, replace: true, subscriptions: state.snapshot() });
        state.links.insert(node, LinkHandle { serial, updates, acked, sent: 1, ready_at: None });
        (serial, rx, acked_tx)
    }

    /// The node took the link's update: the first time, every tracking
    /// client drops what it caches (invalidations sent while the link was
    /// not open are lost).
    fn ready(&self, node: NodeId, serial: u64) {
        let first = {
            let mut state = self.state.lock().expect("pubsub lock");
            match state.links.get_mut(&node).filter(|l| l.serial == serial) {
                Some(link) if link.ready_at.is_none() => {
                    link.ready_at = Some(std::time::Instant::now());
                    true
                }
                _ => false,
            }
        };
        if first {
            self.flush_tracking();
        }
    }

    fn detach(&self, node: NodeId, serial: u64) {
        let removed = {
            let mut state = self.state.lock().expect("pubsub lock");
            state.links.get(&node).is_some_and(|l| l.serial == serial) && state.links.remove(&node).is_some()
        };
        if removed {
            self.flush_tracking();
        }
    }

    /// Nodes with a link open (or opening).
    pub fn links(&self) -> usize {
        self.state.lock().expect("pubsub lock").links.len()
    }

    /// Channels, patterns and shard channels this router's clients hold
    /// (INFO's `pubsub_channels` and friends count this router's).
    pub fn local_counts(&self) -> [usize; 3] {
        let state = self.state.lock().expect("pubsub lock");
        [state.subs[0].len(), state.subs[1].len(), state.subs[2].len()]
    }

    /// Keeps a link open to every member node until `stop`.
    pub async fn run_links(self: Arc<Self>, routes: Arc<RouteCache>, stop: CancellationToken) {
        let mut running: HashMap<NodeId, (String, tokio::task::AbortHandle)> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut changes = routes.changes();
        loop {
            let current = routes.load();
            running.retain(|node, (addr, task)| {
                let keep = current.nodes.get(node).is_some_and(|(a, _)| a == addr) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for (&node, (addr, client)) in &current.nodes {
                if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(node) {
                    slot.insert((addr.clone(), tasks.spawn(link(self.clone(), node, client.clone()))));
                }
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(TEND_EVERY) => {}
            }
        }
        tasks.shutdown().await;
    }

    /// PUBLISH and SPUBLISH: through the owner of the channel's slot (or,
    /// if it cannot be reached, any other node: each relays to every
    /// router); the subscriptions that received it.
    pub async fn publish(&self, routes: &RouteCache, shard: bool, channel: Bytes, payload: Bytes) -> Result<u64, Frame> {
        let request = pb::PublishRequest { shard, channel, payload };
        let mut last = None;
        for (node, mut client) in self.relay_order(routes, Some(&request.channel))? {
            match client.publish(timed(request.clone())).await {
                Ok(r) => return Ok(r.into_inner().receivers),
                Err(e) => last = Some((node, e)),
            }
        }
        Err(unreachable(last))
    }

    /// PUBSUB's cluster-wide questions, asked of one node (each knows
    /// every router's subscriptions).
    pub async fn query(&self, routes: &RouteCache, request: pb::PubSubQueryRequest) -> Result<Vec<pb::Subscription>, Frame> {
        let mut last = None;
        for (node, mut client) in self.relay_order(routes, None)? {
            match client.pub_sub_query(timed(request.clone())).await {
                Ok(r) => return Ok(r.into_inner().subscriptions),
                Err(e) => last = Some((node, e)),
            }
        }
        Err(unreachable(last))
    }

    /// The nodes to try, in order: those this router's link to has been
    /// open for [`LINK_MATURITY`] first (so a node that just joined, which
    /// other routers may not have linked to yet, relays only once they
    /// likely have), and within each group the owner of `channel`'s slot
    /// first (so one channel's messages take one path), then by id.
    fn relay_order(&self, routes: &RouteCache, channel: Option<&Bytes>) -> Result<Vec<(NodeId, NodeClient)>, Frame> {
        let current = routes.load();
        let Some(table) = &current.table else { return Err(Frame::error("CLUSTERDOWN the cluster is not bootstrapped yet")) };
        let first = channel.and_then(|c| table.entry(table.partition_of(c))).map(|e| e.owner);
        let mature: std::collections::HashSet<NodeId> = {
            let state = self.state.lock().expect("pubsub lock");
            state.links.iter().filter(|(_, l)| l.ready_at.is_some_and(|t| t.elapsed() >= LINK_MATURITY)).map(|(&n, _)| n).collect()
        };
        let mut nodes: Vec<(NodeId, NodeClient)> = current.nodes.iter().map(|(&id, (_, c))| (id, c.clone())).collect();
        nodes.sort_by_key(|&(id, _)| (!mature.contains(&id), Some(id) != first, id));
        Ok(nodes)
    }
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

fn unreachable(last: Option<(NodeId, tonic::Status)>) -> Frame {
    match last {
        Some((node, e)) => Frame::error(format!("CLUSTERDOWN node {node} unreachable: {}", e.message())),
        None => Frame::error("CLUSTERDOWN no node is known yet"),
    }
}

/// Keeps the link to `node` open: opens it, keeps the node's view of
/// this router's subscriptions current, hands on what the feed brings;
/// when it breaks, opens it again after a backoff.
async fn link(hub: Arc<Hub>, node: NodeId, client: NodeClient) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (serial, updates, acked) = hub.attach(node);
        // Detaches when this opening ends, or when the task is aborted
        // (the node left the membership or changed address).
        let attached = Attached { hub: &hub, node, serial };
        let opened = std::time::Instant::now();
        let ended = serve_link(&hub, node, client.clone(), serial, updates, acked).await;
        drop(attached);
        match ended {
            Err(e) if e.code() == tonic::Code::Unavailable => tracing::debug!(router = hub.router, node, error = %e, "pub/sub link to node down; retrying"),
            Err(e) => tracing::warn!(router = hub.router, node, error = %e, "pub/sub link to node ended; reopening (messages published there meanwhile are lost)"),
            Ok(()) => {}
        }
        backoff = if opened.elapsed() > Duration::from_secs(5) { Duration::from_millis(50) } else { (backoff * 2).min(Duration::from_secs(2)) };
        tokio::time::sleep(backoff).await;
    }
}

/// A link's handle in the hub, for as long as one opening of it lasts.
struct Attached<'a> {
    hub: &'a Hub,
    node: NodeId,
    serial: u64,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.hub.detach(self.node, self.serial);
    }
}

/// One opening of a link, until its feed or an update fails.
async fn serve_link(hub: &Hub, node: NodeId, mut client: NodeClient, serial: u64, mut updates: mpsc::UnboundedReceiver<Update>, acked: watch::Sender<u64>) -> Result<(), tonic::Status> {
    // The serial is unique in this router; with the router's id it names
    // the link on the node.
    let link_id = hub.router.rotate_left(20) ^ serial;
    let mut feed = client.pub_sub_feed(pb::FeedRequest { link: link_id, router: hub.router }).await?;
    tracing::debug!(router = hub.router, node, link = link_id, "pub/sub link open");
    let update = async {
        while let Some(first) = updates.recv().await {
            let mut request = pb::InterestRequest { link: link_id, replace: first.replace, subscriptions: first.subscriptions };
            let mut seq = first.seq;
            // Everything queued since goes in the same call, in order.
            while let Ok(next) = updates.try_recv() {
                request.subscriptions.extend(next.subscriptions);
                seq = next.seq;
            }
            client.pub_sub_interest(timed(request)).await?;
            acked.send_replace(seq);
            hub.ready(node, serial);
        }
        Ok(())
    };
    let read = async {
        while let Some(message) = feed.next().await {
            hub.deliver(&message?);
        }
        Err(tonic::Status::unavailable(format!("node {node} ended the pub/sub feed")))
    };
    tokio::select! {
        r = update => r,
        r = read => r,
    }
}

/// A BCAST prefix's client count, as a link's subscription.
fn prefix_update((prefix, clients): (Bytes, u32)) -> pb::Subscription {
    pb::Subscription { kind: SubscriptionKind::TrackingPrefix as i32, name: prefix, clients }
}

/// Waits (at most [`ACK_WAIT`]) until every link's node applied the
/// update each of `waits` names.
async fn applied(waits: Vec<(watch::Receiver<u64>, u64)>, what: &str) {
    let all = futures::future::join_all(waits.into_iter().map(|(mut acked, seq)| async move { acked.wait_for(|a| *a >= seq).await.map(|_| ()) }));
    if tokio::time::timeout(ACK_WAIT, all).await.is_err() {
        metrics::counter!("evenkeel_router_pubsub_slow_subscribes_total").increment(1);
        tracing::warn!(wait_ms = ACK_WAIT.as_millis() as u64, what, "a node did not confirm a change of subscriptions in time; answering anyway");
    }
}

fn subscribe_word(kind: SubscriptionKind) -> &'static str {
    match kind {
        SubscriptionKind::Channel => "subscribe",
        SubscriptionKind::Pattern => "psubscribe",
        SubscriptionKind::ShardChannel => "ssubscribe",
        SubscriptionKind::TrackingPrefix => unreachable!("no command subscribes to a tracking prefix"),
    }
}

fn unsubscribe_word(kind: SubscriptionKind) -> &'static str {
    match kind {
        SubscriptionKind::Channel => "unsubscribe",
        SubscriptionKind::Pattern => "punsubscribe",
        SubscriptionKind::ShardChannel => "sunsubscribe",
        SubscriptionKind::TrackingPrefix => unreachable!("no command subscribes to a tracking prefix"),
    }
}

fn confirmation(word: &'static str, name: Frame, count: i64) -> Frame {
    Frame::Push(vec![Frame::bulk(word), name, Frame::Integer(count)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|n| Bytes::copy_from_slice(n.as_bytes())).collect()
    }

    fn message(shard: bool, channel: &str, payload: &str) -> pb::PubSubMessage {
        pb::PubSubMessage { shard, channel: Bytes::copy_from_slice(channel.as_bytes()), payload: Bytes::copy_from_slice(payload.as_bytes()), invalidate: false }
    }

    fn encoded(parts: &[&str]) -> Bytes {
        Frame::Array(parts.iter().map(|p| Frame::bulk(p.to_string())).collect()).to_bytes()
    }

    #[tokio::test]
    async fn replies_count_as_redis_and_messages_reach_each_matching_subscription() {
        let hub = Hub::new(1);
        let mut a = hub.subscriber(1, CancellationToken::new(), Protocol::Resp2);
        let mut b = hub.subscriber(2, CancellationToken::new(), Protocol::Resp2);
        let confirm = |w: &'static str, n: &str, c: i64| confirmation(w, Frame::bulk(n.to_string()), c);
        assert_eq!(hub.subscribe(&mut a, SubscriptionKind::Channel, &names(&["x", "y", "x"])).await, [confirm("subscribe", "x", 1), confirm("subscribe", "y", 2), confirm("subscribe", "x", 2)]);
        assert_eq!(hub.subscribe(&mut a, SubscriptionKind::Pattern, &names(&["*"])).await, [confirm("psubscribe", "*", 3)]);
        assert_eq!(hub.subscribe(&mut a, SubscriptionKind::ShardChannel, &names(&["x"])).await, [confirm("ssubscribe", "x", 1)], "shard channels count apart");
        hub.subscribe(&mut b, SubscriptionKind::Channel, &names(&["x"])).await;
        assert_eq!(hub.local_counts(), [2, 1, 1]);
        hub.deliver(&message(false, "x", "m"));
        hub.deliver(&message(true, "x", "s"));
        assert_eq!(a.try_next(), Some(encoded(&["message", "x", "m"])));
        assert_eq!(a.try_next(), Some(encoded(&["pmessage", "*", "x", "m"])));
        assert_eq!(a.try_next(), Some(encoded(&["smessage", "x", "s"])));
        assert_eq!(a.try_next(), None);
        assert_eq!(b.try_next(), Some(encoded(&["message", "x", "m"])));
        assert_eq!(hub.unsubscribe(&mut a, SubscriptionKind::Channel, &[]).await, [confirm("unsubscribe", "x", 2), confirm("unsubscribe", "y", 1)]);
        assert_eq!(hub.unsubscribe(&mut a, SubscriptionKind::Channel, &[]).await, [confirmation("unsubscribe", Frame::Null, 1)]);
        hub.deliver(&message(false, "y", "gone"));
        assert_eq!(a.try_next(), Some(encoded(&["pmessage", "*", "y", "gone"])), "only the pattern now");
        drop(b);
        assert_eq!(hub.local_counts(), [0, 1, 1], "a dropped subscriber leaves nothing behind");
        assert_eq!(a.counts(), [0, 1, 1]);
    }

    #[tokio::test]
    async fn a_client_past_its_backlog_is_disconnected() {
        let hub = Hub::new(1);
        let kill = CancellationToken::new();
        let mut slow = hub.subscriber(1, kill.clone(), Protocol::Resp2);
        hub.subscribe(&mut slow, SubscriptionKind::Channel, &names(&["c"])).await;
        let payload = "x".repeat(1 << 20);
        for _ in 0..31 {
            hub.deliver(&message(false, "c", &payload));
        }
        assert!(!kill.is_cancelled());
        // Reading makes room.
        slow.try_next().unwrap();
        hub.deliver(&message(false, "c", &payload));
        hub.deliver(&message(false, "c", &payload));
        assert!(kill.is_cancelled(), "past 32 MiB waiting");
    }
}
