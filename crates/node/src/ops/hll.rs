//! HyperLogLog commands (PFADD, PFCOUNT, PFMERGE) over string values in
//! Redis's representation (`evenkeel_types::hll`). A value that is not a
//! HyperLogLog answers Redis's own error line (`WRONGTYPE Key is not a
//! valid HyperLogLog string value.`, `INVALIDOBJ ...`) as a `Reply`.

use super::{Applied, AppliedMulti, OpLimits, error_line, no_write, wrong_type};
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::hll::{self, HllError};
use evenkeel_types::{Record, ValueType, Version};

fn failed(e: HllError) -> R {
    error_line(e.message())
}

/// The string value of a live record, or the reply for another type.
fn string_value(live: Option<&Record>) -> Result<Option<&[u8]>, R> {
    match live {
        None => Ok(None),
        Some(r) if r.ty != ValueType::String => Err(wrong_type()),
        Some(r) => Ok(r.value.as_deref()),
    }
}

pub(super) fn pf_add(a: &pb::PfAdd, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let value = match string_value(live) {
        Ok(v) => v,
        Err(reply) => return no_write(reply),
    };
    match hll::add(value, &a.elements) {
        Err(e) => no_write(failed(e)),
        Ok(None) => no_write(R::Integer(0)),
        Ok(Some(v)) if v.len() > limits.max_value_bytes => no_write(super::too_large()),
        Ok(Some(v)) => Applied { write: Some(Record::value(v, live.and_then(|r| r.expire_at_ms), version)), reply: R::Integer(1) },
    }
}

/// PFCOUNT of one key: a stale cache is written back.
pub(super) fn pf_count(live: Option<&Record>, version: Version) -> Applied {
    let value = match string_value(live) {
        Ok(Some(v)) => v,
        Ok(None) => return no_write(R::Integer(0)),
        Err(reply) => return no_write(reply),
    };
    match hll::count(value) {
        Err(e) => no_write(failed(e)),
        Ok((card, None)) => no_write(R::Integer(card as i64)),
        Ok((card, Some(fresh))) => Applied { write: Some(Record::value(fresh, live.and_then(|r| r.expire_at_ms), version)), reply: R::Integer(card as i64) },
    }
}

/// PFCOUNT of several keys: the union's cardinality; nothing written.
pub(super) fn pf_count_union<'a>(keys: usize, live: &dyn Fn(usize) -> Option<&'a Record>) -> AppliedMulti {
    let mut values = Vec::with_capacity(keys);
    for i in 0..keys {
        match string_value(live(i)) {
            Ok(v) => values.push(v),
            Err(reply) => return AppliedMulti { writes: vec![], reply },
        }
    }
    let reply = match hll::count_union(values) {
        Ok(card) => R::Integer(card as i64),
        Err(e) => failed(e),
    };
    AppliedMulti { writes: vec![], reply }
}

/// PFMERGE: key 0 takes the union of itself and the sources (keys 1..).
pub(super) fn pf_merge<'a>(keys: usize, live: &dyn Fn(usize) -> Option<&'a Record>, version: Version) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let mut values = Vec::with_capacity(keys);
    for i in 0..keys {
        match string_value(live(i)) {
            Ok(v) => values.push(v),
            Err(reply) => return none(reply),
        }
    }
    match hll::merge(values[0], values.iter().copied()) {
        Err(e) => none(failed(e)),
        Ok(v) => AppliedMulti { writes: vec![(0, Record::value(v, live(0).and_then(|r| r.expire_at_ms), version))], reply: R::Integer(1) },
    }
}

/// PFDEBUG: the answer, and the dense value stored when GETREG or TODENSE
/// converted a sparse one.
pub(super) fn pf_debug(d: &pb::PfDebug, live: Option<&Record>, version: Version) -> Applied {
    use evenkeel_types::hll::Debug;
    use pb::reply::Kind as K;
    let value = match string_value(live) {
        Ok(Some(v)) => v,
        Ok(None) => return no_write(error_line("ERR The specified key does not exist")),
        Err(reply) => return no_write(reply),
    };
    let (answer, dense) = match hll::debug(&d.subcommand, value) {
        Ok(done) => done,
        Err(l) => return no_write(error_line(l)),
    };
    let kind = match answer {
        Debug::Registers(r) => K::Array(pb::ReplyArray { items: r.into_iter().map(|v| pb::Reply { kind: Some(K::Integer(v as i64)) }).collect() }),
        Debug::Decoded(text) => K::Bulk(text.into()),
        Debug::Encoding(name) => K::Simple(name.into()),
        Debug::Converted(done) => K::Integer(done as i64),
    };
    let write = dense.map(|v| Record::value(v, live.and_then(|r| r.expire_at_ms), version));
    Applied { write, reply: R::Reply(pb::Reply { kind: Some(kind) }) }
}
