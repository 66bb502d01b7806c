//! Pub/Sub commands: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN-
//! forms, PUBLISH, SPUBLISH, PUBSUB. The machinery is [`crate::pubsub`].
//!
//! As Redis Cluster does, SSUBSCRIBE's channels must share a hash slot
//! (CROSSSLOT otherwise). Unlike Redis Cluster, where PUBLISH's count and
//! PUBSUB's answers cover one node, here they cover the whole cluster, as
//! a single Redis does.

use crate::{Router, Session};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, SubscriptionKind};
use evenkeel_types::slot::key_slot;

/// The commands a client may send while it subscribes to anything
/// (RESP2).
pub fn allowed_when_subscribed(name: &str) -> bool {
    matches!(name, "ping" | "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe" | "sunsubscribe" | "quit" | "reset")
}

/// Redis's refusal of any other command then.
pub fn refused_when_subscribed(name: &str) -> Frame {
    Frame::error(format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
}

/// Whether the session subscribes to anything now.
pub fn subscribed(s: &Session) -> bool {
    s.subscriber.as_ref().is_some_and(|sub| sub.total() > 0)
}

/// RESP2's subscribed mode: a RESP2 connection holding a subscription
/// runs only the Pub/Sub commands (and PING answers as a message). Over
/// RESP3, messages are pushes and every command runs, as in Redis.
pub fn subscribed_mode(s: &Session) -> bool {
    s.protocol == evenkeel_resp::Protocol::Resp2 && subscribed(s)
}

fn kind(name: &str) -> SubscriptionKind {
    match name {
        "psubscribe" | "punsubscribe" => SubscriptionKind::Pattern,
        "ssubscribe" | "sunsubscribe" => SubscriptionKind::ShardChannel,
        _ => SubscriptionKind::Channel,
    }
}

/// SSUBSCRIBE's and SUNSUBSCRIBE's channels must share a slot.
fn one_slot(kind: SubscriptionKind, names: &[Bytes]) -> Result<(), Frame> {
    if kind == SubscriptionKind::ShardChannel && names.iter().any(|n| key_slot(n) != key_slot(&names[0])) {
        return Err(super::keys::cross_slot());
    }
    Ok(())
}

/// The session's subscriber, made at its first (UN)SUBSCRIBE (or when
/// it turns CLIENT TRACKING on, or RESP3 on: then it takes pushes).
pub fn subscriber<'s>(r: &Router, s: &'s mut Session) -> &'s mut crate::pubsub::Subscriber {
    s.subscriber.get_or_insert_with(|| r.pubsub.subscriber(s.id, s.client.kill.clone(), s.protocol))
}

/// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE.
pub async fn subscribe(r: &Router, s: &mut Session, name: &str, a: &[Bytes]) -> Frame {
    let kind = kind(name);
    if let Err(e) = one_slot(kind, &a[1..]) {
        return e;
    }
    let sub = subscriber(r, s);
    let replies = r.pubsub.subscribe(sub, kind, &a[1..]).await;
    let counts = sub.counts();
    s.client.set_subscriptions(counts);
    Frame::Replies(replies)
}

/// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE. The subscriber stays with the
/// session, so messages it was sent before are still written.
pub async fn unsubscribe(r: &Router, s: &mut Session, name: &str, a: &[Bytes]) -> Frame {
    let kind = kind(name);
    if let Err(e) = one_slot(kind, &a[1..]) {
        return e;
    }
    let sub = subscriber(r, s);
    let replies = r.pubsub.unsubscribe(sub, kind, &a[1..]).await;
    let counts = sub.counts();
    s.client.set_subscriptions(counts);
    Frame::Replies(replies)
}

/// Drops every subscription (RESET), returning once the nodes did.
pub async fn reset(s: &mut Session) {
    if let Some(sub) = s.subscriber.take() {
        sub.leave().await;
    }
    s.client.set_subscriptions([0; 3]);
}

/// PUBLISH, SPUBLISH.
pub async fn publish(r: &Router, name: &str, a: &[Bytes]) -> Frame {
    match r.pubsub.publish(&r.dispatcher.routes, name == "spublish", a[1].clone(), a[2].clone()).await {
        Ok(n) => Frame::Integer(n as i64),
        Err(e) => e,
    }
}

const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB, HELP:
/// over every router's clients.
pub async fn pubsub(r: &Router, a: &[Bytes]) -> Frame {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
    let query = |kind: SubscriptionKind, pattern: Option<Bytes>, names: Vec<Bytes>| pb::PubSubQueryRequest { kind: kind as i32, pattern, names };
    let request = match (sub.as_str(), a.len()) {
        ("HELP", 2) => return Frame::Array(HELP.iter().map(|l| Frame::simple(*l)).collect()),
        ("CHANNELS", 2 | 3) => query(SubscriptionKind::Channel, a.get(2).cloned(), Vec::new()),
        ("SHARDCHANNELS", 2 | 3) => query(SubscriptionKind::ShardChannel, a.get(2).cloned(), Vec::new()),
        ("NUMSUB", _) => query(SubscriptionKind::Channel, None, a[2..].to_vec()),
        ("SHARDNUMSUB", _) => query(SubscriptionKind::ShardChannel, None, a[2..].to_vec()),
        ("NUMPAT", 2) => query(SubscriptionKind::Pattern, None, Vec::new()),
        ("HELP" | "NUMPAT", _) => return super::wrong_arity(&format!("pubsub|{}", sub.to_ascii_lowercase())),
        ("CHANNELS" | "SHARDCHANNELS", _) => {
            return Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.", super::c_str(&a[1], 128)));
        }
        _ => return Frame::error(format!("ERR unknown subcommand '{}'. Try PUBSUB HELP.", super::c_str(&a[1], 128))),
    };
    // NUMSUB with no channels asks nothing.
    if request.names.is_empty() && matches!(sub.as_str(), "NUMSUB" | "SHARDNUMSUB") {
        return Frame::Array(Vec::new());
    }
    let found = match r.pubsub.query(&r.dispatcher.routes, request).await {
        Ok(found) => found,
        Err(e) => return e,
    };
    match sub.as_str() {
        "NUMPAT" => Frame::Integer(found.len() as i64),
        "NUMSUB" | "SHARDNUMSUB" => Frame::Array(found.into_iter().flat_map(|s| [Frame::Bulk(s.name), Frame::Integer(s.clients as i64)]).collect()),
        _ => Frame::Array(found.into_iter().map(|s| Frame::Bulk(s.name)).collect()),
    }
}

/// PING while subscribed: `pong` and the argument (or an empty string),
/// as an array.
pub fn ping(a: &[Bytes]) -> Frame {
    Frame::Array(vec![Frame::bulk("pong"), Frame::Bulk(a.get(1).cloned().unwrap_or_default())])
}
