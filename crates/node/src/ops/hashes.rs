//! Hash operations: HSET/HSETNX/HMSET, HDEL, HINCRBY, HINCRBYFLOAT.

use super::collection::{change_named, corrupt, edited, encoded, remove};
use super::{Applied, OpLimits, error, no_write, op_error};
use bytes::Bytes;
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::edit;
use evenkeel_types::hash::Hash;
use evenkeel_types::int::parse_i64;
use evenkeel_types::{Record, Version};

pub(super) fn h_set(h: &pb::HSet, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    if h.fields.is_empty() || h.fields.len() != h.values.len() {
        return no_write(error(pb::op_error::Kind::Internal, "malformed HSET: a value for each field"));
    }
    let raw = match encoded::<Hash>(live) {
        Ok(raw) => raw,
        Err(e) => return no_write(e),
    };
    let pairs: Vec<(Bytes, Bytes)> = h.fields.iter().cloned().zip(h.values.iter().cloned()).collect();
    let (e, added) = match edit::upsert(raw, &pairs, h.nx) {
        Ok(upserted) => upserted,
        Err(e) => return no_write(corrupt(e)),
    };
    // HSET writes even when nothing changes, as Redis (WATCH sees it).
    if h.nx && added == 0 {
        return no_write(R::Integer(0));
    }
    edited::<Hash>(e, live, version, limits, R::Integer(added as i64))
}

pub(super) fn h_del(h: &pb::HDel, live: Option<&Record>, version: Version) -> Applied {
    remove::<Hash>(&h.fields, live, version)
}

pub(super) fn h_incr_by(h: &pb::HIncrBy, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    change_named::<Hash>(live, std::slice::from_ref(&h.field), version, limits, None, |hash| {
        let current = match hash.get(&h.field) {
            None => 0,
            Some(v) => match parse_i64(v) {
                Some(n) => n,
                None => return (false, error(pb::op_error::Kind::NotInteger, "hash value is not an integer")),
            },
        };
        let Some(next) = current.checked_add(h.delta) else { return (false, op_error(pb::op_error::Kind::Overflow)) };
        hash.set(h.field.clone(), Bytes::from(next.to_string()));
        (true, R::Integer(next))
    })
}

/// HINCRBYFLOAT, its checks in Redis's order: the increment (a float, and
/// finite), the key's type, the field's value, the sum.
pub(super) fn h_incr_by_float(h: &pb::HIncrByFloat, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    use evenkeel_types::float::{FloatError, LongDouble};
    let Some(increment) = LongDouble::parse(&h.increment) else { return no_write(op_error(pb::op_error::Kind::NotFloat)) };
    if increment.checked_add(LongDouble::zero()).is_err() {
        return no_write(error(pb::op_error::Kind::NanOrInfinity, "value is NaN or Infinity"));
    }
    change_named::<Hash>(live, std::slice::from_ref(&h.field), version, limits, None, |hash| {
        let current = match hash.get(&h.field) {
            None => LongDouble::zero(),
            Some(v) => match LongDouble::parse(v) {
                Some(x) => x,
                None => return (false, error(pb::op_error::Kind::NotFloat, "hash value is not a float")),
            },
        };
        let text = match current.checked_add(increment) {
            Ok(sum) => Bytes::from(sum.to_human()),
            Err(FloatError::NanOrInfinity) => return (false, op_error(pb::op_error::Kind::NanOrInfinity)),
            Err(FloatError::NotFloat) => unreachable!("adding two floats"),
        };
        hash.set(h.field.clone(), text.clone());
        (true, R::Value(pb::Value { len: text.len() as u64, value: text, ..Default::default() }))
    })
}
