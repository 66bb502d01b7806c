//! Set operations: SADD, SREM, SPOP, and the multi-key SMOVE and
//! SUNIONSTORE/SINTERSTORE/SDIFFSTORE.

use super::collection::{UNLIMITED, corrupt, edited, edited_record, encoded, read, record, remove};
use super::{Applied, AppliedMulti, OpLimits, error, no_write};
use bytes::Bytes;
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::set::{Combine, Set};
use evenkeel_types::{Record, Version};

/// SADD, on the encoding ([`evenkeel_types::edit::upsert`]: a set is a
/// hash of empty values).
pub(super) fn s_add(members: &[Bytes], live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let raw = match encoded::<Set>(live) {
        Ok(raw) => raw,
        Err(e) => return no_write(e),
    };
    let pairs: Vec<(Bytes, Bytes)> = members.iter().map(|m| (m.clone(), Bytes::new())).collect();
    match evenkeel_types::edit::upsert(raw, &pairs, true) {
        Err(e) => no_write(corrupt(e)),
        Ok((_, 0)) => no_write(R::Integer(0)),
        Ok((e, added)) => edited::<Set>(e, live, version, limits, R::Integer(added as i64)),
    }
}

pub(super) fn s_rem(members: &[Bytes], live: Option<&Record>, version: Version) -> Applied {
    remove::<Set>(members, live, version)
}

/// SPOP: random members, distinct, chosen from the op's seed.
pub(super) fn s_pop(p: &pb::SPop, live: Option<&Record>, version: Version) -> Applied {
    use rand::SeedableRng;
    let empty = || match p.count {
        None => R::Nil(pb::Nil {}),
        Some(_) => R::Members(pb::Members { members: Vec::new() }),
    };
    let raw = match encoded::<Set>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(empty()),
        Err(e) => return no_write(e),
    };
    // The positions drawn in the stored order; the members there are
    // taken out of the encoding ([`evenkeel_types::edit::take_positions`]).
    let len = match evenkeel_types::edit::count_of(raw) {
        Ok(len) => len,
        Err(e) => return no_write(corrupt(e)),
    };
    let want = p.count.map_or(1, |c| c.min(len as u64) as usize);
    if want == 0 {
        return no_write(empty());
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(p.seed);
    let positions = rand::seq::index::sample(&mut rng, len, want).into_vec();
    let (popped, rest) = match evenkeel_types::edit::take_positions(raw, &positions) {
        Ok(taken) => taken,
        Err(e) => return no_write(corrupt(e)),
    };
    let reply = match p.count {
        None => R::Value(pb::Value { len: popped[0].len() as u64, value: popped[0].clone(), ..Default::default() }),
        Some(_) => R::Members(pb::Members { members: popped }),
    };
    edited::<Set>(rest, live, version, UNLIMITED, reply)
}

/// SMOVE, in Redis's order: a missing source answers 0; then both keys
/// must hold sets (or the target nothing); one key is a membership test.
pub(super) fn s_move<'a>(m: &pb::SMove, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version], limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let source = match encoded::<Set>(live(0)) {
        Ok(Some(raw)) => raw,
        Ok(None) => return none(R::Integer(0)),
        Err(e) => return none(e),
    };
    let member = std::slice::from_ref(&m.member);
    // On the encodings: a removal and an upsert, each a copy of its set.
    let removed = evenkeel_types::edit::remove(source, member);
    if versions.len() < 2 {
        return none(match removed {
            Ok((_, n)) => R::Integer(n as i64),
            Err(e) => corrupt(e),
        });
    }
    let target = match encoded::<Set>(live(1)) {
        Ok(raw) => raw,
        Err(e) => return none(e),
    };
    let moved = removed.and_then(|(left, n)| Ok((left, n, evenkeel_types::edit::upsert(target, &[(m.member.clone(), Bytes::new())], true)?.0)));
    let (left, moved_to) = match moved {
        Ok((_, 0, _)) => return none(R::Integer(0)),
        Ok((left, _, to)) => (left, to),
        Err(e) => return none(corrupt(e)),
    };
    let moved_to = match edited_record::<Set>(moved_to, live(1), versions[1], limits) {
        Ok(written) => written,
        Err(e) => return none(e),
    };
    let left = edited_record::<Set>(left, live(0), versions[0], UNLIMITED).expect("no limit");
    AppliedMulti { writes: vec![(0, left), (1, moved_to)], reply: R::Integer(1) }
}

/// SUNIONSTORE, SINTERSTORE, SDIFFSTORE: key 0 takes the result of the
/// sets at keys 1.. (each checked to be a set or nothing), without an
/// expiry; an empty result deletes it.
pub(super) fn set_store<'a>(st: &pb::SetStore, live: &dyn Fn(usize) -> Option<&'a Record>, version: Version, limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let op = match pb::set_store::Op::try_from(st.op) {
        Ok(pb::set_store::Op::Union) => Combine::Union,
        Ok(pb::set_store::Op::Inter) => Combine::Inter,
        Ok(pb::set_store::Op::Diff) => Combine::Diff,
        Err(_) => return none(error(pb::op_error::Kind::Internal, "malformed set store: unknown operation")),
    };
    let mut sources = Vec::with_capacity(st.sources.len());
    for i in 1..=st.sources.len() {
        match read::<Set>(live(i)) {
            Ok(set) => sources.push(set.unwrap_or_default()),
            Err(e) => return none(e),
        }
    }
    let result = evenkeel_types::set::combine(op, &sources);
    if result.is_empty() && live(0).is_none() {
        return none(R::Integer(0));
    }
    let stored = match record(&result, None, version, limits) {
        Ok(stored) => stored,
        Err(e) => return none(e),
    };
    AppliedMulti { writes: vec![(0, stored)], reply: R::Integer(result.len() as i64) }
}
