//! The Pub/Sub relay: every node relays messages for every channel.
//!
//! Each router opens a *link* to every node: a feed (a server stream of
//! [`pb::PubSubMessage`]) and the link's subscriptions, which the router
//! keeps current with `PubSubInterest` calls (how many of its clients hold
//! each channel, pattern and shard channel). `Publish` reaches one node,
//! which counts the subscriptions each link has for the message (a
//! channel's clients plus those of every matching pattern, as Redis
//! counts), puts the message on the feed of every link with at least one,
//! and answers the sum. The router fans it out to its own clients.
//!
//! Nothing here waits on a router: a feed holds at most
//! [`FEED_BACKLOG_BYTES`] of unread messages, and a router that falls that
//! far behind loses its link (and the router opens a new one), as Redis
//! disconnects a subscriber past its output buffer limit. Delivery is at
//! most once, as in Redis: a message published while a link is down is
//! not kept for it.

use bytes::Bytes;
use evenkeel_rpc::pb::{self, SubscriptionKind};
use evenkeel_types::glob::glob_match;
use evenkeel_types::notify::{self, Flags};
use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::Status;

/// Unread bytes (channel and payload) one feed may hold; past this the
/// link is dropped.
pub const FEED_BACKLOG_BYTES: usize = 64 << 20;

/// Keys [`Relay::track`] holds at most; past it an older one is
/// invalidated to make room (Redis's `tracking-table-max-keys` default).
pub const TRACKED_KEYS_MAX: usize = 1_000_000;

/// The relay of one node; cheap to clone.
#[derive(Clone, Default)]
pub struct Relay {
    state: Arc<Mutex<State>>,
    tracked: Arc<Tracked>,
}

/// CLIENT TRACKING on this node: each key a router's clients read with
/// `track`, and which routers, until it is next written.
#[derive(Default)]
struct Tracked {
    keys: Mutex<HashMap<Bytes, Vec<u64>>>,
    /// How many keys `keys` holds: a write checks this, not the lock.
    count: AtomicUsize,
    /// Whether a link has a BCAST prefix (as of its last update).
    broadcasting: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    links: HashMap<u64, Link>,
    /// Feeds opened, so a feed that ends removes only its own link.
    opened: u64,
    /// Set at shutdown: feeds end and no new one opens.
    closed: bool,
}

struct Link {
    router: u64,
    serial: u64,
    tx: mpsc::UnboundedSender<pb::PubSubMessage>,
    /// Bytes on the feed not yet taken by the router's stream.
    backlog: Arc<AtomicUsize>,
    channels: HashMap<Bytes, u32>,
    patterns: HashMap<Bytes, u32>,
    shard: HashMap<Bytes, u32>,
    /// CLIENT TRACKING BCAST's prefixes.
    prefixes: HashMap<Bytes, u32>,
}

impl Link {
    fn of_kind(&mut self, kind: SubscriptionKind) -> &mut HashMap<Bytes, u32> {
        match kind {
            SubscriptionKind::Channel => &mut self.channels,
            SubscriptionKind::Pattern => &mut self.patterns,
            SubscriptionKind::ShardChannel => &mut self.shard,
            SubscriptionKind::TrackingPrefix => &mut self.prefixes,
        }
    }

    /// Whether a BCAST prefix of the link covers `key`.
    fn broadcasts(&self, key: &[u8]) -> bool {
        self.prefixes.keys().any(|p| key.starts_with(p))
    }

    /// The link's subscriptions that receive a message on `channel`.
    fn receivers(&self, shard: bool, channel: &[u8]) -> u64 {
        if shard {
            return self.shard.get(channel).copied().unwrap_or(0) as u64;
        }
        let direct = self.channels.get(channel).copied().unwrap_or(0) as u64;
        direct + self.patterns.iter().filter(|(p, _)| glob_match(p, channel)).map(|(_, &n)| n as u64).sum::<u64>()
    }
}

fn size(m: &pb::PubSubMessage) -> usize {
    m.channel.len() + m.payload.len()
}

impl Relay {
    /// Opens the feed of `link` (replacing an earlier feed of the same
    /// link), with no subscriptions yet.
    pub fn open(&self, link: u64, router: u64) -> Result<FeedStream, Status> {
        let mut state = self.state.lock().expect("relay lock");
        if state.closed {
            return Err(Status::unavailable("node is shutting down"));
        }
        state.opened += 1;
        let serial = state.opened;
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let fresh = Link { router, serial, tx, backlog: backlog.clone(), channels: HashMap::new(), patterns: HashMap::new(), shard: HashMap::new(), prefixes: HashMap::new() };
        if state.links.insert(link, fresh).is_some() {
            tracing::info!(link, router, "pub/sub link reopened");
        }
        metrics::gauge!("evenkeel_node_pubsub_links").set(state.links.len() as f64);
        Ok(FeedStream { rx, backlog, relay: self.state.clone(), link, serial })
    }

    /// Applies a link's subscription changes.
    pub fn interest(&self, request: pb::InterestRequest) -> Result<(), Status> {
        let mut state = self.state.lock().expect("relay lock");
        let Some(link) = state.links.get_mut(&request.link) else {
            return Err(Status::not_found(format!("no pub/sub link {} here (its feed ended)", request.link)));
        };
        if request.replace {
            (link.channels, link.patterns, link.shard, link.prefixes) = Default::default();
        }
        for s in request.subscriptions {
            let kind = SubscriptionKind::try_from(s.kind).map_err(|_| Status::invalid_argument(format!("unknown subscription kind {}", s.kind)))?;
            let held = link.of_kind(kind);
            if s.clients == 0 {
                held.remove(&s.name);
            } else {
                held.insert(s.name, s.clients);
            }
        }
        self.refresh_broadcasting(&state);
        Ok(())
    }

    /// Puts a message on every link with a subscription that receives
    /// it; answers how many subscriptions do.
    pub fn publish(&self, request: pb::PublishRequest) -> u64 {
        let message = pb::PubSubMessage { shard: request.shard, channel: request.channel, payload: request.payload, invalidate: false };
        let receivers = self.send(&message, |link| link.receivers(message.shard, &message.channel));
        metrics::counter!("evenkeel_node_pubsub_published_total").increment(1);
        receivers
    }

    /// Queues `message` on each link `receivers` counts a receiver on;
    /// answers their sum. A link whose feed is past its backlog (or gone)
    /// is dropped.
    fn send(&self, message: &pb::PubSubMessage, receivers: impl Fn(&Link) -> u64) -> u64 {
        let mut state = self.state.lock().expect("relay lock");
        let (mut total, mut lost) = (0, Vec::new());
        for (&id, link) in &state.links {
            let n = receivers(link);
            if n == 0 {
                continue;
            }
            let queued = link.backlog.fetch_add(size(message), Ordering::Relaxed) + size(message);
            if queued > FEED_BACKLOG_BYTES || link.tx.send(message.clone()).is_err() {
                lost.push((id, queued > FEED_BACKLOG_BYTES));
                continue;
            }
            total += n;
        }
        for (id, overflow) in lost {
            if let Some(link) = state.links.remove(&id)
                && overflow
            {
                metrics::counter!("evenkeel_node_pubsub_links_dropped_total").increment(1);
                tracing::warn!(link = id, router = link.router, limit_bytes = FEED_BACKLOG_BYTES, "pub/sub feed fell too far behind; link dropped (its router opens a new one)");
            }
        }
        metrics::gauge!("evenkeel_node_pubsub_links").set(state.links.len() as f64);
        // A write checks this before locking: links that ended (here, or
        // dropped by their router) take their prefixes along.
        self.refresh_broadcasting(&state);
        total
    }

    /// Notes whether any link has a BCAST prefix.
    fn refresh_broadcasting(&self, state: &State) {
        self.tracked.broadcasting.store(state.links.values().any(|l| !l.prefixes.is_empty()), Ordering::Relaxed);
    }

    /// CLIENT TRACKING: a client of `router` is about to read `key` and
    /// cache it. Noted before the read, so a write that commits after the
    /// read began finds it (a write before it is what the read returns).
    pub fn track(&self, router: u64, key: &[u8]) {
        let evicted = {
            let mut keys = self.tracked.keys.lock().expect("tracking lock");
            let routers = keys.entry(Bytes::copy_from_slice(key)).or_default();
            if !routers.contains(&router) {
                routers.push(router);
            }
            let evicted = if keys.len() > TRACKED_KEYS_MAX { keys.keys().find(|k| k[..] != *key).cloned().and_then(|k| keys.remove_entry(&k)) } else { None };
            self.tracked.count.store(keys.len(), Ordering::Relaxed);
            evicted
        };
        if let Some((key, routers)) = evicted {
            metrics::counter!("evenkeel_node_tracking_evicted_total").increment(1);
            self.tell(key, &routers);
        }
    }

    /// `key` was written (or expired): the routers whose clients read it
    /// are told, and it is forgotten until it is read again.
    pub fn invalidate(&self, key: &[u8]) {
        let broadcasting = self.tracked.broadcasting.load(Ordering::Relaxed);
        let routers = if self.tracked.count.load(Ordering::Relaxed) == 0 {
            None
        } else {
            let mut keys = self.tracked.keys.lock().expect("tracking lock");
            let routers = keys.remove(key);
            self.tracked.count.store(keys.len(), Ordering::Relaxed);
            routers
        };
        if routers.is_some() || broadcasting {
            self.tell(Bytes::copy_from_slice(key), routers.as_deref().unwrap_or_default());
        }
    }

    /// Invalidates every tracked key `which` picks (a partition fenced
    /// for a move, or dropped): its next reader reads, and tracks it, at
    /// the new owner. Answers how many.
    pub fn invalidate_where(&self, which: impl Fn(&[u8]) -> bool) -> usize {
        if self.tracked.count.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let picked: Vec<(Bytes, Vec<u64>)> = {
            let mut keys = self.tracked.keys.lock().expect("tracking lock");
            let picked = keys.extract_if(|k, _| which(k)).collect();
            self.tracked.count.store(keys.len(), Ordering::Relaxed);
            picked
        };
        for (key, routers) in &picked {
            self.tell(key.clone(), routers);
        }
        picked.len()
    }

    /// Keys tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.tracked.count.load(Ordering::Relaxed)
    }

    /// Sends `key`'s invalidation down the feed of each of `routers`, and
    /// of each link with a BCAST prefix covering it: once per link.
    fn tell(&self, key: Bytes, routers: &[u64]) {
        let message = pb::PubSubMessage { channel: key, invalidate: true, ..Default::default() };
        let sent = self.send(&message, |link| (routers.contains(&link.router) || link.broadcasts(&message.channel)) as u64);
        metrics::counter!("evenkeel_node_tracking_invalidations_total").increment(sent);
    }

    /// How many subscriptions a message on `channel` would reach now
    /// (what [`Self::publish`] would answer).
    pub fn receivers(&self, shard: bool, channel: &[u8]) -> u64 {
        let state = self.state.lock().expect("relay lock");
        state.links.values().map(|link| link.receivers(shard, channel)).sum()
    }

    /// Subscriptions summed over every link (see `PubSubQueryRequest`).
    pub fn query(&self, request: &pb::PubSubQueryRequest) -> Vec<pb::Subscription> {
        let state = self.state.lock().expect("relay lock");
        let kind = SubscriptionKind::try_from(request.kind).unwrap_or(SubscriptionKind::Channel);
        let mut sums: BTreeMap<Bytes, u32> = BTreeMap::new();
        for link in state.links.values() {
            let held = match kind {
                SubscriptionKind::Channel => &link.channels,
                SubscriptionKind::Pattern => &link.patterns,
                SubscriptionKind::ShardChannel => &link.shard,
                SubscriptionKind::TrackingPrefix => &link.prefixes,
            };
            for (name, &n) in held {
                *sums.entry(name.clone()).or_default() += n;
            }
        }
        let subscription = |name: Bytes, clients: u32| pb::Subscription { kind: kind as i32, name, clients };
        if !request.names.is_empty() {
            return request.names.iter().map(|n| subscription(n.clone(), sums.get(n).copied().unwrap_or(0))).collect();
        }
        let wanted = |name: &Bytes| request.pattern.as_ref().is_none_or(|p| glob_match(p, name));
        sums.into_iter().filter(|(name, _)| wanted(name)).map(|(name, n)| subscription(name, n)).collect()
    }

    /// Ends every feed and refuses new ones: a node that stops must not
    /// wait on streams its routers would keep open.
    pub fn close(&self) {
        let mut state = self.state.lock().expect("relay lock");
        state.closed = true;
        state.links.clear();
        metrics::gauge!("evenkeel_node_pubsub_links").set(0.0);
    }

    /// Links open now.
    pub fn links(&self) -> usize {
        self.state.lock().expect("relay lock").links.len()
    }
}

/// Keyspace notifications: the `notify-keyspace-events` flags in force on
/// this node (from the metadata store) and the relay their events go
/// through. The owner of a key raises its events, so every event is
/// raised once, by the node that made the change.
#[derive(Default)]
pub struct Notifier {
    flags: std::sync::atomic::AtomicU32,
    relay: Relay,
}

impl Notifier {
    pub fn set(&self, flags: Flags) {
        self.flags.store(flags.0, Ordering::Relaxed);
    }

    pub fn flags(&self) -> Flags {
        Flags(self.flags.load(Ordering::Relaxed))
    }

    /// Whether any event is published: what a write checks before working
    /// out its events.
    pub fn on(&self) -> bool {
        self.flags().0 & (notify::KEYSPACE | notify::KEYEVENT) != 0
    }

    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Publishes one event on `key`, if its class is enabled.
    pub fn raise(&self, key: &[u8], class: u32, event: &str) {
        for (channel, payload) in self.flags().messages(class, event, key) {
            self.relay.publish(pb::PublishRequest { shard: false, channel: channel.into(), payload: payload.into() });
        }
    }
}

/// One link's feed. It ends when the relay drops the link; when the
/// router drops it, the link goes with it.
pub struct FeedStream {
    rx: mpsc::UnboundedReceiver<pb::PubSubMessage>,
    backlog: Arc<AtomicUsize>,
    relay: Arc<Mutex<State>>,
    link: u64,
    serial: u64,
}

impl tokio_stream::Stream for FeedStream {
    type Item = Result<pb::PubSubMessage, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| {
            m.map(|m| {
                self.backlog.fetch_sub(size(&m), Ordering::Relaxed);
                Ok(m)
            })
        })
    }
}

impl Drop for FeedStream {
    fn drop(&mut self) {
        let mut state = self.relay.lock().expect("relay lock");
        if state.links.get(&self.link).is_some_and(|l| l.serial == self.serial) {
            state.links.remove(&self.link);
            metrics::gauge!("evenkeel_node_pubsub_links").set(state.links.len() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn sub(kind: SubscriptionKind, name: &str, clients: u32) -> pb::Subscription {
        pb::Subscription { kind: kind as i32, name: Bytes::copy_from_slice(name.as_bytes()), clients }
    }

    fn publish(relay: &Relay, channel: &str, payload: &str) -> u64 {
        relay.publish(pb::PublishRequest { shard: false, channel: Bytes::copy_from_slice(channel.as_bytes()), payload: Bytes::copy_from_slice(payload.as_bytes()) })
    }

    #[tokio::test]
    async fn a_message_reaches_links_with_a_matching_subscription_and_is_counted_per_subscription() {
        let relay = Relay::default();
        let mut a = relay.open(1, 10).unwrap();
        let mut b = relay.open(2, 20).unwrap();
        let c = relay.open(3, 30).unwrap();
        relay.interest(pb::InterestRequest { link: 1, replace: true, subscriptions: vec![sub(SubscriptionKind::Channel, "news", 2), sub(SubscriptionKind::Pattern, "n*", 1)] }).unwrap();
        relay.interest(pb::InterestRequest { link: 2, replace: true, subscriptions: vec![sub(SubscriptionKind::Pattern, "*s", 3)] }).unwrap();
        relay.interest(pb::InterestRequest { link: 3, replace: true, subscriptions: vec![sub(SubscriptionKind::ShardChannel, "news", 5)] }).unwrap();
        assert_eq!(publish(&relay, "news", "hi"), 2 + 1 + 3, "shard subscriptions are another namespace");
        assert_eq!(a.next().await.unwrap().unwrap().payload, "hi");
        assert_eq!(b.next().await.unwrap().unwrap().payload, "hi");
        assert_eq!(publish(&relay, "other", "x"), 0);
        // Unsubscribing the last client removes the channel.
        relay.interest(pb::InterestRequest { link: 1, replace: false, subscriptions: vec![sub(SubscriptionKind::Channel, "news", 0)] }).unwrap();
        assert_eq!(publish(&relay, "news", "again"), 1 + 3);
        let shard = relay.publish(pb::PublishRequest { shard: true, channel: "news".into(), payload: "s".into() });
        assert_eq!(shard, 5);
        drop(c);
        assert_eq!(relay.links(), 2, "a feed the router dropped takes its link along");
        let status = relay.interest(pb::InterestRequest { link: 3, ..Default::default() }).unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn tracked_keys_are_invalidated_once_on_their_routers_links() {
        let relay = Relay::default();
        let mut a = relay.open(1, 10).unwrap();
        let mut b = relay.open(2, 20).unwrap();
        let invalidation = |key: &str| pb::PubSubMessage { channel: Bytes::copy_from_slice(key.as_bytes()), invalidate: true, ..Default::default() };
        relay.invalidate(b"k");
        assert_eq!(relay.tracked_keys(), 0, "nothing tracked: a write sends nothing");
        relay.track(10, b"k");
        relay.track(10, b"k");
        relay.track(20, b"k");
        relay.track(20, b"j");
        relay.invalidate(b"k");
        assert_eq!(a.next().await.unwrap().unwrap(), invalidation("k"));
        assert_eq!(b.next().await.unwrap().unwrap(), invalidation("k"));
        relay.invalidate(b"k");
        assert_eq!(relay.tracked_keys(), 1, "k forgotten until read again");
        // A fenced partition's keys: every one its routers read.
        assert_eq!(relay.invalidate_where(|key| key == b"j"), 1);
        assert_eq!(b.next().await.unwrap().unwrap(), invalidation("j"));
        // BCAST: a link's prefix covers every write under it, tracked or not.
        relay.interest(pb::InterestRequest { link: 1, replace: false, subscriptions: vec![sub(SubscriptionKind::TrackingPrefix, "user:", 1)] }).unwrap();
        relay.invalidate(b"user:1");
        relay.invalidate(b"other");
        relay.track(20, b"user:2");
        relay.invalidate(b"user:2");
        assert_eq!(a.next().await.unwrap().unwrap(), invalidation("user:1"));
        assert_eq!(a.next().await.unwrap().unwrap(), invalidation("user:2"), "once per link, not for `other`");
        assert_eq!(b.next().await.unwrap().unwrap(), invalidation("user:2"));
    }

    #[tokio::test]
    async fn queries_sum_every_link() {
        let relay = Relay::default();
        let _a = relay.open(1, 10).unwrap();
        let _b = relay.open(2, 20).unwrap();
        relay.interest(pb::InterestRequest { link: 1, replace: true, subscriptions: vec![sub(SubscriptionKind::Channel, "a", 1), sub(SubscriptionKind::Channel, "b", 2)] }).unwrap();
        relay.interest(pb::InterestRequest { link: 2, replace: true, subscriptions: vec![sub(SubscriptionKind::Channel, "b", 1), sub(SubscriptionKind::Pattern, "x*", 1)] }).unwrap();
        let names = |r: Vec<pb::Subscription>| r.into_iter().map(|s| (String::from_utf8(s.name.to_vec()).unwrap(), s.clients)).collect::<Vec<_>>();
        let all = pb::PubSubQueryRequest { kind: SubscriptionKind::Channel as i32, ..Default::default() };
        assert_eq!(names(relay.query(&all)), [("a".to_string(), 1), ("b".to_string(), 3)]);
        let some = pb::PubSubQueryRequest { kind: SubscriptionKind::Channel as i32, names: vec!["b".into(), "zz".into()], ..Default::default() };
        assert_eq!(names(relay.query(&some)), [("b".to_string(), 3), ("zz".to_string(), 0)]);
        let matching = pb::PubSubQueryRequest { kind: SubscriptionKind::Channel as i32, pattern: Some("a*".into()), ..Default::default() };
        assert_eq!(names(relay.query(&matching)), [("a".to_string(), 1)]);
        let patterns = pb::PubSubQueryRequest { kind: SubscriptionKind::Pattern as i32, ..Default::default() };
        assert_eq!(relay.query(&patterns).len(), 1);
    }

    #[tokio::test]
    async fn a_feed_past_its_backlog_loses_its_link_and_close_ends_every_feed() {
        let relay = Relay::default();
        let mut slow = relay.open(1, 10).unwrap();
        let mut other = relay.open(2, 20).unwrap();
        let everything = vec![sub(SubscriptionKind::Pattern, "*", 1)];
        relay.interest(pb::InterestRequest { link: 1, replace: true, subscriptions: everything.clone() }).unwrap();
        relay.interest(pb::InterestRequest { link: 2, replace: true, subscriptions: everything }).unwrap();
        let payload = Bytes::from(vec![b'x'; 1 << 20]);
        let big = || pb::PublishRequest { shard: false, channel: "c".into(), payload: payload.clone() };
        for _ in 0..40 {
            // The other link keeps up.
            assert_eq!(relay.publish(big()), 2);
            other.next().await.unwrap().unwrap();
        }
        let mut delivered = 40;
        while relay.publish(big()) == 2 {
            delivered += 1;
            other.next().await.unwrap().unwrap();
        }
        assert_eq!(delivered, FEED_BACKLOG_BYTES / ((1 << 20) + 1), "the slow link held what fits in its backlog");
        assert_eq!(relay.links(), 1);
        // What was queued before the drop still arrives, then the feed ends.
        let mut got = 0;
        while let Some(m) = slow.next().await {
            m.unwrap();
            got += 1;
        }
        assert_eq!(got, delivered);
        relay.close();
        // The message that overflowed the slow link reached this one.
        assert!(other.next().await.is_some());
        assert!(other.next().await.is_none(), "close ends the feed");
        assert_eq!(relay.open(3, 30).err().map(|s| s.code()), Some(tonic::Code::Unavailable));
    }
}
