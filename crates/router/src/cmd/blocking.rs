//! Blocking commands: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN
//! BZPOPMAX BZMPOP.
//!
//! Each is a pop the node already knows (`LMPop`, `LMove`, `ZMPop`) with a
//! wait: sent alone in a request, it makes the owner wait for a write to
//! one of its keys and pop then (the node's `waiters`), not the router
//! poll. The router asks for at most [`CHUNK`] at a time and asks again
//! until the client's timeout runs out (0: never), so a blocked client
//! follows its keys' partition when it moves (the owner wakes its waiters
//! when its ownership changes, and refuses them; the dispatcher re-routes)
//! and a lost node costs at most one chunk. Then the reply is a null
//! array, as Redis's for a timeout.
//!
//! Inside MULTI these commands do not block (as in Redis): EXEC runs them
//! as their plain pop ([`plan`] without a wait). The session runs one
//! alone, after sending the replies it owes. CLIENT UNBLOCK, and the
//! client disconnecting, cancel its wait on the node ([`unblock`]): the
//! node ends it then and there unless it popped for it, so an element is
//! never popped for a command no one will answer.
//!
//! The keys of one command must share a hash slot (`CROSSSLOT`
//! otherwise), as in Redis Cluster. Clients blocked on one key are
//! served longest waiting first, as in Redis: each request carries when
//! its command began (`blocked_since_us`), and the owner wakes the oldest
//! waiter of a written key, which hands the wake on when it is done.

use super::plan::{Planned, Shape};
use crate::Router;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::float::LongDouble;
use std::time::{Duration, Instant};

/// The longest one request waits on its node.
pub const CHUNK: Duration = Duration::from_secs(2);

/// Whether the command blocks: the blocking pops, and XREAD and
/// XREADGROUP with BLOCK.
pub fn is_blocking(name: &str, a: &[Bytes]) -> bool {
    is_pop(name) || super::streams::blocks(name, a)
}

/// Whether `name` is a blocking pop.
pub fn is_pop(name: &str) -> bool {
    matches!(name, "blpop" | "brpop" | "blmove" | "brpoplpush" | "blmpop" | "bzpopmin" | "bzpopmax" | "bzmpop")
}

/// A timeout as Redis 7.0 reads one (`getTimeoutFromObjectOrReply`): a
/// `long double` of seconds, rounded up to milliseconds; None for 0
/// (wait forever). A value past what a C `long long` of milliseconds holds
/// comes out negative there (x86's conversion of an overflow), so it is
/// "negative" here too.
pub fn timeout(raw: &[u8]) -> Result<Option<Duration>, Frame> {
    let seconds = LongDouble::parse(raw).ok_or_else(|| Frame::error("ERR timeout is not a float or out of range"))?.to_f64();
    let ms = (seconds * 1000.0).ceil();
    // 2^63 ms: what an i64 of milliseconds cannot hold (NaN is outside too).
    if !(0.0..9_223_372_036_854_775_808.0).contains(&ms) {
        return Err(Frame::error("ERR timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// A blocking command's plain pop (what it runs inside MULTI) and its
/// timeout, its arguments checked in Redis's order.
pub fn plan(name: &str, a: &[Bytes]) -> Result<(Planned, Option<Duration>), Frame> {
    match name {
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => {
            let (keys, last) = a[1..].split_at(a.len() - 2);
            let timeout = timeout(&last[0])?;
            super::keys::one_slot(keys.iter())?;
            let kind = match name {
                "blpop" | "brpop" => Kind::LMPop(pb::LmPop { keys: keys.to_vec(), left: name == "blpop", count: 1, wait_ms: 0, blocked_since_us: 0 }),
                _ => Kind::ZMPop(pb::ZmPop { keys: keys.to_vec(), max: name == "bzpopmax", count: 1, wait_ms: 0, blocked_since_us: 0 }),
            };
            // [key, element] or [key, member, score]: the pop's Members.
            let shape = if name.starts_with("bz") { Shape::KeyedScore } else { Shape::Popped };
            Ok((Planned::one(&keys[0], kind, shape), timeout))
        }
        "blmove" | "brpoplpush" => {
            super::lists::lmove_ends(name, a)?;
            let timeout = timeout(&a[a.len() - 1])?;
            let moved = if name == "blmove" { super::lists::lmove(name, &a[..5])? } else { super::lists::lmove("rpoplpush", &a[..3])? };
            Ok((moved, timeout))
        }
        "blmpop" | "bzmpop" => {
            let timeout = timeout(&a[1])?;
            let planned = if name == "blmpop" { super::lists::lmpop(&a[1..])? } else { super::zsets::zmpop(&a[1..])? };
            Ok((planned, timeout))
        }
        "xread" | "xreadgroup" => Ok((super::streams::plan(name, a)?, super::streams::timeout(a))),
        other => unreachable!("{other} is not a blocking command"),
    }
}

/// Runs a blocking command outside MULTI.
pub async fn run(r: &Router, client: &crate::clients::Client, name: &str, a: &[Bytes]) -> Frame {
    let pinned;
    let a = if name == "xread" {
        pinned = pin_dollar_ids(r, a).await;
        &pinned[..]
    } else {
        a
    };
    let (planned, timeout) = match plan(name, a) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let _blocked = r.block();
    // The client's place among the key's waiters, kept on every request,
    // and with the client's id what names its wait for a cancel.
    let since_us = evenkeel_types::unix_us();
    client.set_waiting(planned.ops[0].key.clone(), since_us);
    let unblocked = || match client.unblocked() {
        Some(crate::clients::Unblock::Error) => Some(Frame::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")),
        Some(crate::clients::Unblock::Timeout) => Some(Frame::NullArray),
        None => None,
    };
    loop {
        if let Some(reply) = unblocked() {
            return reply;
        }
        let chunk = deadline.map_or(CHUNK, |d| d.saturating_duration_since(Instant::now()).min(CHUNK));
        let mut ops = planned.ops.clone();
        let blocks = ops[0].kind.set_blocking_wait(chunk.as_millis().max(1) as u64, since_us);
        assert!(blocks, "a blocking command plans a pop that can wait");
        ops[0].waiter = client.id;
        let outcomes = r.dispatcher.run(&ops).await;
        if matches!(outcomes[0], Ok(R::Nil(_))) {
            if let Some(reply) = unblocked() {
                return reply;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Frame::NullArray;
            }
            continue;
        }
        return super::plan::reply(planned.shape.clone(), outcomes);
    }
}

/// Ends client `id`'s blocking command, if it is in one (then true): marks
/// it (`how` it ends) and cancels its wait on the node (`pb::CancelWait`
/// to the owner of the wait's first key), which answers that wait as
/// timed out unless it popped for it already. CLIENT UNBLOCK does this,
/// and so does a session whose blocked client left, so that nothing is
/// popped for a client no longer there.
pub async fn unblock(r: &Router, id: u64, how: crate::clients::Unblock) -> bool {
    let Some(waiting) = r.registry.unblock(id, how) else { return false };
    // None between two waits: the mark ends the command before the next.
    let Some((key, since_us)) = waiting else { return true };
    let op = crate::dispatch::KeyOp::new(key, Kind::CancelWait(pb::CancelWait { waiter: id, since_us }));
    if let Err(e) = &r.dispatcher.run(&[op]).await[0] {
        // The wait still ends with its chunk (at most `CHUNK`).
        tracing::debug!(client = id, error = %e, "could not cancel a blocked command's wait");
    }
    true
}

/// XREAD BLOCK with `$`: each such stream's last ID now, read once, so
/// every wait after the first still reads entries added after the call
/// began. A stream whose GET fails keeps its `$` (its owner reads it at
/// each wait).
async fn pin_dollar_ids(r: &Router, a: &[Bytes]) -> Vec<Bytes> {
    let keys = super::streams::dollar_keys(a);
    if keys.is_empty() {
        return a.to_vec();
    }
    let ops: Vec<_> = keys.iter().map(|k| crate::dispatch::KeyOp::new(k.clone(), Kind::Get(pb::Get::default()))).collect();
    let mut last_ids = Vec::new();
    for (key, outcome) in keys.into_iter().zip(r.dispatcher.run(&ops).await) {
        let id = match outcome {
            Ok(R::Nil(_)) => Some(Bytes::from_static(b"0-0")),
            Ok(R::Value(v)) if v.value_type == pb::ValueType::Stream as i32 => evenkeel_types::stream::Stream::encoded_last_id(&v.value).ok().map(|id| id.to_bytes()),
            _ => None,
        };
        last_ids.extend(id.map(|id| (key, id)));
    }
    super::streams::pin_dollar_ids(a, &last_ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::syntax_error;

    #[test]
    fn timeouts_read_as_redis_7_0_reads_them() {
        assert_eq!(timeout(b"0"), Ok(None), "0 waits forever");
        assert_eq!(timeout(b"1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(timeout(b"0.0001"), Ok(Some(Duration::from_millis(1))), "rounded up to a millisecond");
        assert_eq!(timeout(b"-0.0001"), Ok(None), "rounds up to 0");
        for negative in [&b"-1"[..], b"1e30", b"inf"] {
            assert_eq!(timeout(negative), Err(Frame::error("ERR timeout is negative")), "{negative:?}");
        }
        for bad in [&b"x"[..], b"nan", b""] {
            assert_eq!(timeout(bad), Err(Frame::error("ERR timeout is not a float or out of range")), "{bad:?}");
        }
    }

    #[test]
    fn arguments_are_checked_in_redis_order() {
        let args = |line: &str| line.split(' ').map(|s| Bytes::copy_from_slice(s.as_bytes())).collect::<Vec<_>>();
        assert_eq!(plan("blmove", &args("BLMOVE a b UP LEFT x")).unwrap_err(), syntax_error(), "directions before the timeout");
        assert_eq!(plan("blmpop", &args("BLMPOP x 0 k LEFT")).unwrap_err(), Frame::error("ERR timeout is not a float or out of range"), "the timeout before numkeys");
        let (planned, timeout) = plan("brpop", &args("BRPOP {t}a {t}b 2")).unwrap();
        assert_eq!(timeout, Some(Duration::from_secs(2)));
        let Kind::LMPop(pop) = &planned.ops[0].kind else { panic!() };
        assert_eq!((pop.keys.len(), pop.left, pop.count, pop.wait_ms), (2, false, 1, 0), "MULTI's plan does not wait");
    }
}
