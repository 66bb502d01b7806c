//! Sorted set operations: ZADD (and ZINCRBY), ZREM, ZPOPMIN/ZPOPMAX,
//! ZREMRANGEBYRANK/BYSCORE/BYLEX, and the multi-key ZUNIONSTORE,
//! ZINTERSTORE, ZDIFFSTORE, ZRANGESTORE and ZMPOP.

use super::collection::{UNLIMITED, change_existing, change_named, m_pop, read, record};
use super::{Applied, AppliedMulti, OpLimits, error, no_write};
use bytes::Bytes;
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::float::format_double;
use evenkeel_types::set::Set;
use evenkeel_types::zset::{Aggregate, By, Combine, Range, ZSet};
use evenkeel_types::{Record, ValueType, Version};

fn malformed(what: &str) -> R {
    error(pb::op_error::Kind::Internal, &format!("malformed {what}"))
}

/// ZADD's rules for each member, in Redis 7.0's order: NX skips a member
/// that exists, XX one that does not; INCR adds to the current score (a
/// NaN sum is an error); GT/LT skip a score that is not higher/lower.
pub(super) fn z_add(a: &pb::ZAdd, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    if a.scores.len() != a.members.len() || a.scores.is_empty() || a.scores.iter().any(|s| s.is_nan()) || (a.incr && a.scores.len() != 1) {
        return no_write(malformed("ZADD: one score, never NaN, per member"));
    }
    let nothing = || if a.incr { R::Nil(pb::Nil {}) } else { R::Integer(0) };
    if a.xx && live.is_none() {
        return no_write(nothing());
    }
    change_named::<ZSet>(live, &a.members, version, limits, None, |z| {
        let (mut added, mut updated, mut last) = (0, 0, None);
        for (&score, member) in a.scores.iter().zip(&a.members) {
            match z.score(member) {
                Some(current) => {
                    if a.nx {
                        continue;
                    }
                    let new = if a.incr { current + score } else { score };
                    if new.is_nan() {
                        return (false, error(pb::op_error::Kind::NotFloat, "resulting score is not a number (NaN)"));
                    }
                    if (a.lt && new >= current) || (a.gt && new <= current) {
                        continue;
                    }
                    last = Some(new);
                    if new != current {
                        z.insert(member.clone(), new);
                        updated += 1;
                    }
                }
                None if a.xx => continue,
                None => {
                    z.insert(member.clone(), score);
                    added += 1;
                    last = Some(score);
                }
            }
        }
        let reply = match (a.incr, last) {
            (true, Some(score)) => text(format_double(score)),
            (true, None) => nothing(),
            (false, _) => R::Integer(if a.ch { added + updated } else { added }),
        };
        (added + updated > 0, reply)
    })
}

fn text(s: String) -> R {
    R::Value(pb::Value { len: s.len() as u64, value: Bytes::from(s), ..Default::default() })
}

pub(super) fn z_rem(members: &[Bytes], live: Option<&Record>, version: Version) -> Applied {
    change_named::<ZSet>(live, members, version, UNLIMITED, Some(R::Integer(0)), |z| {
        let removed = members.iter().filter(|m| z.remove(m).is_some()).count() as i64;
        (removed > 0, R::Integer(removed))
    })
}

/// ZPOPMIN/ZPOPMAX: the key's type is checked before a count of 0 is.
/// On the encoding ([`evenkeel_types::edit::pop_scored`]).
pub(super) fn z_pop(p: &pb::ZPop, live: Option<&Record>, version: Version) -> Applied {
    let raw = match super::collection::encoded::<ZSet>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(R::Members(pb::Members::default())),
        Err(e) => return no_write(e),
    };
    match evenkeel_types::edit::pop_scored(raw, p.count.map_or(1, |c| c.min(usize::MAX as u64) as usize), p.max) {
        Err(e) => no_write(super::collection::corrupt(e)),
        Ok((popped, _)) if popped.is_empty() => no_write(R::Members(pb::Members::default())),
        Ok((popped, rest)) => super::collection::edited::<ZSet>(rest, live, version, UNLIMITED, R::Members(pb::Members { members: flat(popped) })),
    }
}

/// Popped members and their scores' text, flat, in the order popped.
fn flat(popped: Vec<(Bytes, f64)>) -> Vec<Bytes> {
    popped.into_iter().flat_map(|(m, s)| [m, Bytes::from(format_double(s))]).collect()
}

/// The selection a [`pb::ZRange`] describes (the router has checked it).
pub(crate) fn range(r: Option<&pb::ZRange>) -> Result<Range, R> {
    let Some(r) = r else { return Err(malformed("sorted set range: none given")) };
    let by = match pb::z_range::By::try_from(r.by) {
        Ok(pb::z_range::By::Rank) => By::Rank,
        Ok(pb::z_range::By::Score) => By::Score,
        Ok(pb::z_range::By::Lex) => By::Lex,
        Err(_) => return Err(malformed("sorted set range: unknown kind")),
    };
    Range::parse(by, &r.min, &r.max, r.rev, r.offset.map(|o| (o, r.count))).map_err(|e| malformed(&format!("sorted set range: {e:?}")))
}

pub(super) fn z_rem_range(r: &pb::ZRemRange, live: Option<&Record>, version: Version) -> Applied {
    let range = match range(r.range.as_ref()) {
        Ok(range) => range,
        Err(e) => return no_write(e),
    };
    // The run is cut out of the encoding.
    if let Some(raw) = live.filter(|r| r.ty == ValueType::ZSet).and_then(|r| r.value.as_ref()) {
        return match evenkeel_types::edit::remove_run(raw, &range.bounds) {
            Err(e) => no_write(super::collection::corrupt(e)),
            Ok((_, 0)) => no_write(R::Integer(0)),
            Ok((e, removed)) => super::collection::edited::<ZSet>(e, live, version, UNLIMITED, R::Integer(removed as i64)),
        };
    }
    // No key, or another type (WRONGTYPE).
    change_existing::<ZSet>(live, version, UNLIMITED, R::Integer(0), |_| (false, R::Integer(0)))
}

/// A ZUNION/ZINTER/ZDIFF input: a sorted set, or a set whose members all
/// score 1; missing, an empty one; any other type, WRONGTYPE.
pub(crate) fn input(live: Option<&Record>) -> Result<ZSet, R> {
    if live.is_some_and(|r| r.ty == ValueType::Set) {
        return Ok(read::<Set>(live)?.unwrap_or_default().members().map(|m| (m.clone(), 1.0)).collect());
    }
    Ok(read::<ZSet>(live)?.unwrap_or_default())
}

/// Writes `result` at key 0 for a STORE command: without an expiry, or a
/// deletion when it is empty (nothing when there was nothing either).
fn store(result: &ZSet, target: Option<&Record>, version: Version, limits: OpLimits) -> AppliedMulti {
    let reply = R::Integer(result.len() as i64);
    if result.is_empty() && target.is_none() {
        return AppliedMulti { writes: vec![], reply };
    }
    match record(result, None, version, limits) {
        Ok(written) => AppliedMulti { writes: vec![(0, written)], reply },
        Err(e) => AppliedMulti { writes: vec![], reply: e },
    }
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: key 0 takes the combination of
/// the inputs at keys 1.. (every one checked, in order).
pub(super) fn z_store<'a>(st: &pb::ZStore, live: &dyn Fn(usize) -> Option<&'a Record>, version: Version, limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let op = match pb::z_store::Op::try_from(st.op) {
        Ok(pb::z_store::Op::Union) => Combine::Union,
        Ok(pb::z_store::Op::Inter) => Combine::Inter,
        Ok(pb::z_store::Op::Diff) => Combine::Diff,
        Err(_) => return none(malformed("sorted set store: unknown operation")),
    };
    let aggregate = match pb::z_store::Aggregate::try_from(st.aggregate) {
        Ok(pb::z_store::Aggregate::Sum) => Aggregate::Sum,
        Ok(pb::z_store::Aggregate::Min) => Aggregate::Min,
        Ok(pb::z_store::Aggregate::Max) => Aggregate::Max,
        Err(_) => return none(malformed("sorted set store: unknown aggregate")),
    };
    if !st.weights.is_empty() && st.weights.len() != st.sources.len() {
        return none(malformed("sorted set store: one weight per source"));
    }
    let mut inputs = Vec::with_capacity(st.sources.len());
    for i in 0..st.sources.len() {
        match input(live(i + 1)) {
            Ok(z) => inputs.push((z, st.weights.get(i).copied().unwrap_or(1.0))),
            Err(e) => return none(e),
        }
    }
    store(&evenkeel_types::zset::combine(op, &inputs, aggregate), live(0), version, limits)
}

/// ZRANGESTORE: key 0 takes what the range selects from the sorted set at
/// the last key (key 0 itself when they are the same).
pub(super) fn z_range_store<'a>(rs: &pb::ZRangeStore, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version], limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let range = match range(rs.range.as_ref()) {
        Ok(range) => range,
        Err(e) => return none(e),
    };
    let source = match read::<ZSet>(live(versions.len() - 1)) {
        Ok(z) => z.unwrap_or_default(),
        Err(e) => return none(e),
    };
    let result: ZSet = source.select(&range).into_iter().collect();
    store(&result, live(0), versions[0], limits)
}

/// ZMPOP (BZPOPMIN, BZPOPMAX, BZMPOP): members and scores from the first
/// key that exists.
pub(super) fn z_m_pop<'a>(m: &pb::ZmPop, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version]) -> AppliedMulti {
    m_pop::<ZSet>(&m.keys, live, versions, |raw| {
        let (popped, rest) = evenkeel_types::edit::pop_scored(raw, m.count.max(1).min(usize::MAX as u64) as usize, m.max)?;
        Ok((flat(popped), rest))
    })
}
