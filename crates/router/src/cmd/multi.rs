//! MULTI, EXEC, DISCARD: transactions, atomic within one hash slot.
//!
//! Between MULTI and EXEC a session queues commands (`+QUEUED`). As in
//! Redis Cluster, every key of a transaction must be in one hash slot (the
//! command that brings another slot answers `CROSSSLOT`); then all of it
//! lives on one partition, and EXEC sends its ops to the owner as one
//! `Transaction` op, which the node runs under the partition's lock and
//! commits in one batch (`Store::execute_transaction`): no other client,
//! and no migration, sees part of it. Each command's reply is built from
//! its ops' results as it would be alone.
//!
//! Redis's rules for errors: an unknown command or a wrong arity while
//! queueing is answered and dooms the transaction (EXEC answers
//! EXECABORT); an argument error (a bad SET option) is that command's
//! element of EXEC's reply, and the others still run. Queued besides data
//! commands: EVAL and its forms (a `Script` op of the transaction, its
//! declared keys in the transaction's slot), PING, ECHO, TIME, UNWATCH,
//! PUBLISH and SPUBLISH; other commands (SCAN, KEYS, FLUSHALL, INFO,
//! CLIENT, ...) are refused while queueing.
//!
//! WATCH (optimistic locking): the session reads each watched key's
//! version from its owner (a `Watch` op) and EXEC hands them to the node
//! with the transaction, which runs nothing if one has changed (EXEC then
//! answers a null array). Watched keys share the transaction's hash slot.
//! A version survives a migration (records are copied with it), so a
//! partition that moves between WATCH and EXEC does not abort the
//! transaction by itself. Where versions differ from Redis's idea of a
//! change: a key already expired when watched counts as changed once
//! expiry deletes it, and a watched tombstone once it is collected (both
//! aborts). A key absent when watched, then created and deleted, reads
//! absent again once its tombstone is collected, which takes the nodes'
//! tombstone grace (10 minutes by default): so a watch that found a key
//! absent is trusted for half the grace (`watch_absent_max`), and EXEC
//! aborts after that.

use super::plan::{self, Planned, Shape};
use super::{dispatch_error, op_error, unexpected};
use crate::dispatch::KeyOp;
use crate::{Router, Session};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::Slot;
use evenkeel_types::slot::key_slot;

/// Most commands, and argument bytes, one transaction may queue: past
/// either, the command is refused and the transaction doomed, so a client
/// cannot grow a router's memory without bound (EXEC then sends the whole
/// transaction to one node in one request).
const QUEUED_MAX: usize = 100_000;
const QUEUED_BYTES_MAX: usize = 256 << 20;

/// A session's transaction being queued.
#[derive(Debug, Default)]
pub struct Multi {
    queued: Vec<(&'static str, Vec<Bytes>)>,
    queued_bytes: usize,
    /// An error while queueing: EXEC discards the transaction.
    doomed: bool,
    /// The hash slot of every key so far.
    slot: Option<Slot>,
}

impl Multi {
    /// Commands queued so far (CLIENT LIST's `multi`).
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

/// Commands queued besides data commands: they read no data.
const STATELESS: &[&str] = &["ping", "echo", "time", "unwatch", "publish", "spublish"];

/// Most keys a session may watch at once, for the same reason as
/// [`QUEUED_MAX`].
const WATCHED_MAX: usize = 100_000;

/// The keys a session watches, with what WATCH saw of each.
#[derive(Debug, Default)]
pub struct Watched {
    keys: Vec<pb::WatchedKey>,
    /// Their hash slot, which the transaction's keys must share.
    slot: Option<Slot>,
    /// When a key was first found absent (nothing stored), if one was.
    absent_since: Option<std::time::Instant>,
}

/// WATCH: reads the keys' versions now, for EXEC to compare.
pub async fn watch(r: &Router, s: &mut Session, a: &[Bytes]) -> Frame {
    if s.multi.is_some() {
        return Frame::error("ERR WATCH inside MULTI is not allowed");
    }
    let keys = &a[1..];
    let mut slot = s.watched.slot;
    for key in keys {
        let here = key_slot(key);
        if *slot.get_or_insert(here) != here {
            return super::keys::cross_slot();
        }
    }
    if s.watched.keys.len() + keys.len() > WATCHED_MAX {
        return Frame::error(format!("ERR too many watched keys: at most {WATCHED_MAX}"));
    }
    let ops: Vec<KeyOp> = keys.iter().map(|k| KeyOp::new(k.clone(), Kind::Watch(pb::Watch {}))).collect();
    let mut seen = Vec::with_capacity(keys.len());
    for outcome in r.dispatcher.run(&ops).await {
        match outcome.map_err(|e| dispatch_error(&e)).and_then(op_error) {
            Ok(R::Watched(w)) => seen.push(w),
            Ok(other) => return unexpected(&other),
            Err(e) => return e,
        }
    }
    s.watched.slot = slot;
    if seen.iter().any(|w| w.version == 0) {
        s.watched.absent_since.get_or_insert_with(std::time::Instant::now);
    }
    for (key, seen) in keys.iter().zip(seen) {
        // A key watched twice keeps what it was first seen as, as in Redis.
        if !s.watched.keys.iter().any(|w| w.key == key) {
            s.watched.keys.push(pb::WatchedKey { key: key.clone(), seen: Some(seen) });
        }
    }
    Frame::ok()
}

pub fn unwatch(s: &mut Session) -> Frame {
    s.watched = Watched::default();
    Frame::ok()
}

/// `error`, which dooms the session's transaction if one is being queued.
pub(crate) fn flag(session: &mut Session, error: Frame) -> Frame {
    if let Some(multi) = session.multi.as_mut() {
        multi.doomed = true;
    }
    error
}

pub fn begin(s: &mut Session) -> Frame {
    if s.multi.is_some() {
        return Frame::error("ERR MULTI calls can not be nested");
    }
    s.multi = Some(Multi { slot: s.watched.slot, ..Multi::default() });
    Frame::ok()
}

pub fn discard(s: &mut Session) -> Frame {
    match s.multi.take() {
        Some(_) => unwatch(s),
        None => Frame::error("ERR DISCARD without MULTI"),
    }
}

/// Queues a command (arity already checked) of a session in MULTI.
pub fn queue(s: &mut Session, name: &'static str, args: Vec<Bytes>) -> Frame {
    let multi = s.multi.as_mut().expect("queueing in MULTI");
    let bytes: usize = args.iter().map(Bytes::len).sum();
    if multi.queued.len() >= QUEUED_MAX || multi.queued_bytes + bytes > QUEUED_BYTES_MAX {
        multi.doomed = true;
        return Frame::error(format!("ERR transaction too large: at most {QUEUED_MAX} commands and {} MiB of arguments are queued", QUEUED_BYTES_MAX >> 20));
    }
    match super::plan(name, &args) {
        Some(Ok(planned)) => {
            for op in &planned.ops {
                let slot = key_slot(&op.key);
                if *multi.slot.get_or_insert(slot) != slot {
                    multi.doomed = true;
                    return super::keys::cross_slot();
                }
            }
        }
        // Answered at EXEC, as Redis answers an argument error then.
        Some(Err(_)) => {}
        None if STATELESS.contains(&name) => {}
        None if super::scripting::is_eval(name) => {
            for key in super::scripting::declared_keys(&args).unwrap_or_default() {
                let slot = key_slot(key);
                if *multi.slot.get_or_insert(slot) != slot {
                    multi.doomed = true;
                    return super::keys::cross_slot();
                }
            }
        }
        None => {
            multi.doomed = true;
            return Frame::error(format!("ERR '{name}' is not supported inside a transaction"));
        }
    }
    multi.queued_bytes += bytes;
    multi.queued.push((name, args));
    Frame::Simple("QUEUED".into())
}

/// One queued command's part of EXEC's reply.
enum Step {
    /// Its ops are these many of the transaction's, in order.
    Ops(Shape, usize),
    Done(Frame),
    /// PUBLISH or SPUBLISH: sent once the transaction has run.
    Publish(&'static str, Vec<Bytes>),
    /// EVAL and its forms: one op of the transaction, answering a reply.
    Script,
}

pub async fn exec(r: &Router, s: &mut Session) -> Frame {
    let Some(multi) = s.multi.take() else { return Frame::error("ERR EXEC without MULTI") };
    let watched = std::mem::take(&mut s.watched);
    if multi.doomed {
        return Frame::error("EXECABORT Transaction discarded because of previous errors.");
    }
    if watched.absent_since.is_some_and(|t| t.elapsed() >= r.config.watch_absent_max) {
        return Frame::NullArray;
    }
    let watched = watched.keys;
    let (mut steps, mut ops) = (Vec::with_capacity(multi.queued.len()), Vec::new());
    // Planned again (queueing only checked the slots): relative expiries
    // count from EXEC, as in Redis.
    for (name, args) in &multi.queued {
        // The user's rules may have changed since the command was queued:
        // checked again, as Redis does.
        if let Err(denied) = super::find(name).map_or(Ok(()), |spec| s.user.check(spec, args)) {
            super::acl::refuse(r, s, &denied, "multi");
            steps.push(Step::Done(Frame::error("NOPERM ACLs rules changed between the moment the transaction was accumulated and its execution")));
            continue;
        }
        match super::plan(name, args) {
            Some(Ok(Planned { ops: mut planned, shape })) => {
                steps.push(Step::Ops(shape, planned.len()));
                // CLIENT TRACKING: the transaction's reads are tracked as a
                // lone command's are.
                crate::tracking::mark_reads(r, s, super::find(name).is_some_and(|spec| spec.flags.contains(&"readonly")), &mut planned);
                ops.extend(planned.into_iter().map(|op| pb::Op { partition: 0, key: op.key, kind: Some(op.kind), want_record: false, track: op.track, waiter: 0 }));
            }
            Some(Err(e)) => steps.push(Step::Done(e)),
            // The watches are already released.
            None if *name == "unwatch" => steps.push(Step::Done(Frame::ok())),
            None if matches!(*name, "publish" | "spublish") => steps.push(Step::Publish(name, args.clone())),
            None if super::scripting::is_eval(name) => match super::scripting::prepare(r, &s.user, name, args) {
                Ok(script) => {
                    steps.push(Step::Script);
                    ops.push(pb::Op { partition: 0, key: script.keys.first().cloned().unwrap_or_default(), kind: Some(Kind::Script(script)), want_record: false, track: false, waiter: 0 });
                }
                Err(e) => steps.push(Step::Done(e)),
            },
            None => steps.push(Step::Done(super::server::run(r, s, name, args).await)),
        }
    }
    let mut results = Vec::new().into_iter();
    // Sent when there is something to run or to check: a transaction of
    // PINGs on watched keys still aborts if one changed.
    // Routed by a key (a keyless script's empty one only if nothing else
    // names a key).
    let keyed = |op: &&pb::Op| !matches!(&op.kind, Some(Kind::Script(s)) if s.keys.is_empty());
    let route = ops.iter().find(keyed).or(ops.first()).map(|op| &op.key);
    if let Some(key) = route.or(watched.first().map(|w| &w.key)) {
        let mut op = KeyOp::new(key.clone(), Kind::Transaction(pb::Transaction { ops, watched }));
        op.track = matches!(&op.kind, Kind::Transaction(t) if t.ops.iter().any(|o| o.track));
        let outcome = r.dispatcher.run(std::slice::from_ref(&op)).await.pop().expect("one outcome per op");
        match outcome.map_err(|e| dispatch_error(&e)).and_then(op_error) {
            Ok(R::Transaction(t)) if t.aborted => return Frame::NullArray,
            Ok(R::Transaction(t)) => results = t.results.into_iter(),
            Ok(other) => return unexpected(&other),
            // Not run (refused, unreachable) or failed whole: no element
            // would be true, so EXEC answers the error.
            Err(e) => return e,
        }
    }
    let missing = || R::Error(pb::OpError { kind: pb::op_error::Kind::Internal as i32, message: "the node answered fewer results than ops".into() });
    let mut replies = Vec::with_capacity(steps.len());
    for step in steps {
        replies.push(match step {
            Step::Done(frame) => frame,
            Step::Ops(shape, n) => {
                let outcomes = (0..n).map(|_| Ok(results.next().and_then(|r| r.result).unwrap_or_else(missing))).collect();
                plan::reply(shape, outcomes)
            }
            // After the writes, so a subscriber told of a change can read it.
            Step::Publish(name, args) => super::pubsub::publish(r, name, &args).await,
            Step::Script => match op_error(results.next().and_then(|r| r.result).unwrap_or_else(missing)) {
                Ok(R::Reply(reply)) => plan::reply_frame(reply),
                Ok(other) => unexpected(&other),
                Err(e) => e,
            },
        });
    }
    Frame::Array(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_queues_a_bounded_number_of_commands() {
        let mut s = Session { id: 1, client: std::sync::Arc::new(crate::clients::Client::new(1, String::new(), String::new(), -1)), authenticated: true, user: std::sync::Arc::new(crate::acl::User::default_user(None)), acl_changes: tokio::sync::watch::channel(Default::default()).1, multi: None, watched: Watched::default(), subscriber: None, replies: Default::default(), monitor: None, protocol: Default::default(), tracking: None, caching: None, caching_now: None };
        assert_eq!(begin(&mut s), Frame::ok());
        let set = |k: usize| vec![Bytes::from_static(b"SET"), Bytes::from(format!("{{t}}{k}")), Bytes::from_static(b"v")];
        for k in 0..QUEUED_MAX {
            assert_eq!(queue(&mut s, "set", set(k)), Frame::Simple("QUEUED".into()));
        }
        assert!(matches!(queue(&mut s, "set", set(QUEUED_MAX)), Frame::Error(e) if e.contains("transaction too large")));
        assert!(s.multi.as_ref().unwrap().doomed, "EXEC will answer EXECABORT");
        assert_eq!(discard(&mut s), Frame::ok());
        assert_eq!(begin(&mut s), Frame::ok());
        let big = vec![Bytes::from_static(b"SET"), Bytes::from_static(b"{t}k"), Bytes::from(vec![b'x'; QUEUED_BYTES_MAX])];
        assert!(matches!(queue(&mut s, "set", big), Frame::Error(_)), "too many bytes");
    }
}
