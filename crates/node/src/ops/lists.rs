//! List operations: LPUSH/RPUSH(X), LPOP/RPOP, LSET, LREM, LTRIM, LINSERT,
//! and the multi-key LMOVE (RPOPLPUSH).

use super::collection::{UNLIMITED, corrupt, edited, edited_record, encoded, m_pop, record};
use super::{Applied, AppliedMulti, OpLimits, error, no_write, op_error};
use evenkeel_types::edit;
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::int::parse_i64;
use evenkeel_types::list::List;
use evenkeel_types::{Record, Version};

/// LPUSH/RPUSH(X), on the encoding ([`edit::push`]: the list's elements
/// are not walked).
pub(super) fn l_push(p: &pb::LPush, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let raw = match encoded::<List>(live) {
        Ok(raw) => raw,
        Err(e) => return no_write(e),
    };
    if p.only_existing && raw.is_none() {
        return no_write(R::Integer(0));
    }
    let e = match edit::push(raw, &p.elements, p.left) {
        Ok(e) => e,
        Err(e) => return no_write(corrupt(e)),
    };
    let count = e.count as i64;
    edited::<List>(e, live, version, limits, R::Integer(count))
}

/// LPOP/RPOP: no list answers Nil (a null array, with a count); a count of
/// 0 answers an empty array. On the encoding ([`edit::pop`]).
pub(super) fn l_pop(p: &pb::LPop, live: Option<&Record>, version: Version) -> Applied {
    let raw = match encoded::<List>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(R::Nil(pb::Nil {})),
        Err(e) => return no_write(e),
    };
    let (popped, rest) = match edit::pop(raw, p.count.map_or(1, |c| c.min(usize::MAX as u64) as usize), p.left) {
        Ok(popped) => popped,
        Err(e) => return no_write(corrupt(e)),
    };
    let reply = match p.count {
        Some(_) => R::Members(pb::Members { members: popped.clone() }),
        None => popped.first().map_or(R::Nil(pb::Nil {}), |e| R::Value(pb::Value { len: e.len() as u64, value: e.clone(), ..Default::default() })),
    };
    if popped.is_empty() {
        return no_write(reply);
    }
    edited::<List>(rest, live, version, UNLIMITED, reply)
}

/// LSET, in Redis's order: the key, its type, then the index.
/// On the encoding ([`edit::set_at`]).
pub(super) fn l_set(l: &pb::LSet, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let raw = match encoded::<List>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(op_error(pb::op_error::Kind::NoSuchKey)),
        Err(e) => return no_write(e),
    };
    let Some(index) = parse_i64(&l.index) else { return no_write(op_error(pb::op_error::Kind::NotInteger)) };
    match edit::set_at(raw, index, &l.element) {
        Err(e) => no_write(corrupt(e)),
        Ok(None) => no_write(error(pb::op_error::Kind::Internal, "index out of range")),
        Ok(Some(e)) => edited::<List>(e, live, version, limits, R::Integer(0)),
    }
}

/// LREM, on the encoding ([`edit::remove_equal`]): a reliable queue's
/// acknowledgement (LREM of one item from its processing list) copies the
/// list once.
pub(super) fn l_rem(l: &pb::LRem, live: Option<&Record>, version: Version) -> Applied {
    let raw = match encoded::<List>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(R::Integer(0)),
        Err(e) => return no_write(e),
    };
    match edit::remove_equal(raw, &l.element, l.count) {
        Err(e) => no_write(corrupt(e)),
        Ok((_, 0)) => no_write(R::Integer(0)),
        Ok((e, removed)) => edited::<List>(e, live, version, UNLIMITED, R::Integer(removed as i64)),
    }
}

/// LTRIM: writes even when it keeps everything, as Redis touches the key.
/// On the encoding ([`edit::trim`]): capping a list (LPUSH then LTRIM 0 999)
/// copies what it keeps.
pub(super) fn l_trim(t: &pb::LTrim, live: Option<&Record>, version: Version) -> Applied {
    let raw = match encoded::<List>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(R::Integer(0)),
        Err(e) => return no_write(e),
    };
    match edit::trim(raw, t.start, t.stop) {
        Ok(e) => edited::<List>(e, live, version, UNLIMITED, R::Integer(0)),
        Err(e) => no_write(corrupt(e)),
    }
}

/// On the encoding ([`edit::insert_at_pivot`]).
pub(super) fn l_insert(i: &pb::LInsert, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let raw = match encoded::<List>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(R::Integer(0)),
        Err(e) => return no_write(e),
    };
    match edit::insert_at_pivot(raw, &i.pivot, &i.element, i.before) {
        Err(e) => no_write(corrupt(e)),
        Ok(None) => no_write(R::Integer(-1)),
        Ok(Some(e)) => {
            let count = e.count as i64;
            edited::<List>(e, live, version, limits, R::Integer(count))
        }
    }
}

/// LMOVE, in Redis's order: no source list answers Nil; the source's type,
/// then the target's. One key rotates the list.
pub(super) fn l_move<'a>(m: &pb::LMove, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version], limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let source = match encoded::<List>(live(0)) {
        Ok(Some(raw)) => raw,
        Ok(None) => return none(R::Nil(pb::Nil {})),
        Err(e) => return none(e),
    };
    // None: the target is the source (a rotation).
    let target = match versions.len() {
        1 => None,
        _ => match encoded::<List>(live(1)) {
            Ok(raw) => Some(raw),
            Err(e) => return none(e),
        },
    };
    // On the encodings: one pop, one push (each a copy of its list).
    let moved = edit::pop(source, 1, m.from_left).and_then(|(popped, rest)| {
        let element = popped.into_iter().next().expect("a live list has an element");
        match target {
            None => Ok((element.clone(), edit::push(Some(&rest.value), std::slice::from_ref(&element), m.to_left)?, None)),
            Some(target) => Ok((element.clone(), rest, Some(edit::push(target, std::slice::from_ref(&element), m.to_left)?))),
        }
    });
    let (element, source, target) = match moved {
        Ok(moved) => moved,
        Err(e) => return none(corrupt(e)),
    };
    let reply = R::Value(pb::Value { len: element.len() as u64, value: element, ..Default::default() });
    let mut writes = vec![(0, edited_record::<List>(source, live(0), versions[0], UNLIMITED).expect("no limit"))];
    if let Some(target) = target {
        match edited_record::<List>(target, live(1), versions[1], limits) {
            Ok(written) => writes.push((1, written)),
            Err(e) => return none(e),
        }
    }
    AppliedMulti { writes, reply }
}

/// LMPOP (BLPOP, BRPOP, BLMPOP): elements from the first key that exists
/// (later keys are not looked at, as in Redis), popped on the encoding
/// ([`edit::pop`]); answers that key and the elements.
pub(super) fn l_m_pop<'a>(m: &pb::LmPop, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version]) -> AppliedMulti {
    m_pop::<List>(&m.keys, live, versions, |raw| edit::pop(raw, m.count.max(1).min(usize::MAX as u64) as usize, m.left))
}

/// The elements SORT reads from a list, set or sorted set (missing: none),
/// in their stored order, and whether they are a set's.
pub(crate) fn sortable(live: Option<&Record>) -> Result<(Vec<bytes::Bytes>, bool), R> {
    let Some(record) = live else { return Ok((Vec::new(), false)) };
    let raw = record.value.as_ref().expect("a live record has a value");
    match evenkeel_types::sort::elements(record.ty, raw) {
        None => Err(super::wrong_type()),
        Some(Err(e)) => Err(super::error(pb::op_error::Kind::Internal, &e.to_string())),
        Some(Ok(found)) => Ok((found, record.ty == evenkeel_types::ValueType::Set)),
    }
}

/// SORT ... STORE: key 0 takes the sorted elements of the last key (key 0
/// itself when they are the same) as a list.
pub(super) fn sort_store<'a>(st: &pb::SortStore, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version], limits: OpLimits) -> AppliedMulti {
    use evenkeel_types::sort::{SortSpec, sort};
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let (elements, is_set) = match sortable(live(versions.len() - 1)) {
        Ok(found) => found,
        Err(e) => return none(e),
    };
    // Redis sorts a set for STORE even with BY <constant>, so the result
    // does not depend on its hash table.
    let forced = is_set && st.dont_sort;
    let spec = SortSpec { desc: st.desc, alpha: st.alpha || forced, dont_sort: st.dont_sort && !forced, limit: st.offset.map(|o| (o, st.count)) };
    let sorted = match sort(elements, spec) {
        Ok(sorted) => sorted,
        Err(_) => return none(error(pb::op_error::Kind::NotFloat, "One or more scores can't be converted into double")),
    };
    let stored: List = List(if st.gets.is_empty() { sorted.into() } else { sorted.iter().flat_map(|e| st.gets.iter().map(move |&hash| if hash { e.clone() } else { bytes::Bytes::new() })).collect() });
    let reply = R::Integer(stored.0.len() as i64);
    if stored.0.is_empty() && live(0).is_none() {
        return none(reply);
    }
    match record(&stored, None, versions[0], limits) {
        Ok(written) => AppliedMulti { writes: vec![(0, written)], reply },
        Err(e) => none(e),
    }
}
