//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LINDEX LRANGE
//! LPOS LSET LREM LTRIM LINSERT LMOVE RPOPLPUSH.
//!
//! A list is one record, as a hash is ([`evenkeel_types::list`]). Writes
//! are node operations (LMOVE a multi-key step on one hash slot); reads
//! GET the list and answer here. Not yet: the blocking forms (BLPOP and
//! friends).

use super::plan::{ListRead, Planned, Shape};
use super::{int_arg, syntax_error, wrong_arity};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::list::List;

pub fn push(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let left = name.starts_with('l');
    let only_existing = name.ends_with('x');
    Ok(Planned::one(&a[1], Kind::LPush(pb::LPush { elements: a[2..].to_vec(), left, only_existing }), Shape::Integer))
}

/// LPOP/RPOP [count]: the count is checked before the key.
pub fn pop(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let count = match a.len() {
        2 => None,
        3 => Some(int_arg(&a[2]).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| Frame::error("ERR value is out of range, must be positive"))?),
        _ => return Err(wrong_arity(name)),
    };
    let shape = if count.is_some() { Shape::Popped } else { Shape::Value };
    Ok(Planned::one(&a[1], Kind::LPop(pb::LPop { left: name == "lpop", count }), shape))
}

/// LSET: the index travels as sent, since Redis reads it only after
/// finding the key.
pub fn lset(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::LSet(pb::LSet { index: a[2].clone(), element: a[3].clone() }), Shape::Ok))
}

pub fn lrem(a: &[Bytes]) -> Result<Planned, Frame> {
    let count = int_arg(&a[2])?;
    Ok(Planned::one(&a[1], Kind::LRem(pb::LRem { count, element: a[3].clone() }), Shape::Integer))
}

pub fn ltrim(a: &[Bytes]) -> Result<Planned, Frame> {
    let (start, stop) = (int_arg(&a[2])?, int_arg(&a[3])?);
    Ok(Planned::one(&a[1], Kind::LTrim(pb::LTrim { start, stop }), Shape::Ok))
}

pub fn linsert(a: &[Bytes]) -> Result<Planned, Frame> {
    let before = side(&a[2], b"before", b"after")?;
    Ok(Planned::one(&a[1], Kind::LInsert(pb::LInsert { before, pivot: a[3].clone(), element: a[4].clone() }), Shape::Integer))
}

/// `raw` as one of two words (any case): true for the first.
fn side(raw: &[u8], first: &[u8], second: &[u8]) -> Result<bool, Frame> {
    if raw.eq_ignore_ascii_case(first) {
        Ok(true)
    } else if raw.eq_ignore_ascii_case(second) {
        Ok(false)
    } else {
        Err(syntax_error())
    }
}

/// LMOVE's (and BLMOVE's) ends: from the left, to the left.
pub(crate) fn lmove_ends(name: &str, a: &[Bytes]) -> Result<(bool, bool), Frame> {
    match name {
        "rpoplpush" | "brpoplpush" => Ok((false, true)),
        _ => Ok((side(&a[3], b"left", b"right")?, side(&a[4], b"left", b"right")?)),
    }
}

/// LMOVE src dst LEFT|RIGHT LEFT|RIGHT, and RPOPLPUSH (RIGHT LEFT).
pub fn lmove(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let (from_left, to_left) = lmove_ends(name, a)?;
    super::keys::one_slot(a[1..3].iter())?;
    Ok(Planned::one(&a[1], Kind::LMove(pb::LMove { to: a[2].clone(), from_left, to_left, wait_ms: 0, blocked_since_us: 0 }), Shape::Value))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count].
pub fn lmpop(a: &[Bytes]) -> Result<Planned, Frame> {
    let m = super::collection::mpop_args(a, 1, b"left", b"right")?;
    let op = pb::LmPop { keys: m.keys.to_vec(), left: m.first_end, count: m.count, wait_ms: 0, blocked_since_us: 0 };
    Ok(Planned::one(&m.keys[0], Kind::LMPop(op), Shape::MPopped { pairs: false }))
}

/// The read commands: a GET (LLEN of the count alone, LINDEX and LRANGE of
/// their span, LPOS of the list), answered by [`answer`].
pub fn read(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let read = match name {
        "llen" => ListRead::Len,
        // Redis reads LINDEX's index after finding the key.
        "lindex" => ListRead::Index(int_arg(&a[2])),
        "lrange" => ListRead::Range(int_arg(&a[2])?, int_arg(&a[3])?),
        "lpos" => lpos_args(a)?,
        other => unreachable!("{other} is not a list read"),
    };
    let get = match &read {
        ListRead::Len | ListRead::Index(Err(_)) => super::collection::get_entries(Vec::new()),
        ListRead::Index(Ok(i)) => super::collection::get_window(*i, *i, false),
        ListRead::Range(start, stop) => super::collection::get_window(*start, *stop, false),
        ListRead::Pos { .. } => Kind::Get(pb::Get::default()),
    };
    Ok(Planned::one(&a[1], get, Shape::List(read)))
}

/// LPOS's options, checked before the key as in Redis 7.0.
fn lpos_args(a: &[Bytes]) -> Result<ListRead, Frame> {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0i64);
    let mut i = 3;
    while i < a.len() {
        let Some(value) = a.get(i + 1) else { return Err(syntax_error()) };
        let positive = |what: &str| int_arg(value).ok().filter(|n| *n >= 0).ok_or_else(|| Frame::error(format!("ERR {what} can't be negative")));
        match String::from_utf8_lossy(&a[i]).to_ascii_uppercase().as_str() {
            "RANK" => {
                rank = int_arg(value)?;
                if rank == 0 {
                    return Err(Frame::error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
                }
            }
            "COUNT" => count = Some(positive("COUNT")?),
            "MAXLEN" => maxlen = positive("MAXLEN")?,
            _ => return Err(syntax_error()),
        }
        i += 2;
    }
    Ok(ListRead::Pos { element: a[2].clone(), rank, count, maxlen })
}

/// The reply to a list read, from the GET's value (None: no key).
pub(crate) fn answer(read: &ListRead, value: Option<&pb::Value>) -> Frame {
    let list = match super::collection::typed_value(value, pb::ValueType::List, List::decode) {
        Ok(list) => list,
        Err(e) => return e,
    };
    let items = list.map(|l| l.0).unwrap_or_default();
    // A window holds just what LINDEX or LRANGE answers.
    let part = super::collection::is_part(value);
    match read {
        ListRead::Len => Frame::Integer(super::collection::elements(value, items.len())),
        ListRead::Index(_) if value.is_none() => Frame::Null,
        ListRead::Index(Err(e)) => e.clone(),
        ListRead::Index(Ok(_)) if part => items.front().map_or(Frame::Null, |e| Frame::Bulk(e.clone())),
        ListRead::Index(Ok(i)) => List::position(items.len(), *i).map_or(Frame::Null, |at| Frame::Bulk(items[at].clone())),
        ListRead::Range(..) if part => Frame::Array(items.into_iter().map(Frame::Bulk).collect()),
        ListRead::Range(start, stop) => {
            let range = List::range(items.len(), *start, *stop);
            Frame::Array(range.into_iter().flatten().map(|i| Frame::Bulk(items[i].clone())).collect())
        }
        ListRead::Pos { element, rank, count, maxlen } => positions(&items, element, *rank, *count, *maxlen, value.is_some()),
    }
}

/// LPOS by Redis 7.0's `lposCommand`, down to its sign arithmetic on the
/// rank (the most negative rank stays negative, so it matches at once).
fn positions(items: &std::collections::VecDeque<Bytes>, element: &[u8], rank: i64, count: Option<i64>, maxlen: i64, exists: bool) -> Frame {
    if !exists {
        return if count.is_some() { Frame::Array(vec![]) } else { Frame::Null };
    }
    let from_tail = rank < 0;
    let rank = if from_tail { rank.wrapping_neg() } else { rank };
    let len = items.len();
    let order: Box<dyn Iterator<Item = usize>> = if from_tail { Box::new((0..len).rev()) } else { Box::new(0..len) };
    let mut found = Vec::new();
    let mut matches = 0i64;
    for (seen, i) in order.enumerate() {
        if maxlen != 0 && seen as i64 >= maxlen {
            break;
        }
        if items[i] != element {
            continue;
        }
        matches += 1;
        if matches >= rank {
            found.push(i as i64);
            if count.is_none_or(|c| c != 0 && found.len() as i64 >= c) {
                break;
            }
        }
    }
    match count {
        None => found.first().map_or(Frame::Null, |&i| Frame::Integer(i)),
        Some(_) => Frame::Array(found.into_iter().map(Frame::Integer).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_value(items: &[&str]) -> pb::Value {
        let list = List(items.iter().map(|i| Bytes::copy_from_slice(i.as_bytes())).collect());
        let value = list.encode();
        pb::Value { len: value.len() as u64, value, value_type: pb::ValueType::List as i32, ..Default::default() }
    }

    #[test]
    fn reads_answer_like_redis() {
        let v = list_value(&["a", "b", "a", "c", "a"]);
        let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(answer(&ListRead::Range(1, -2), Some(&v)), Frame::Array(vec![bulk("b"), bulk("a"), bulk("c")]));
        assert_eq!(answer(&ListRead::Index(Ok(-1)), Some(&v)), bulk("a"));
        assert_eq!(answer(&ListRead::Index(Err(syntax_error())), None), Frame::Null, "no key: the index is not read");
        let pos = |rank, count, maxlen| ListRead::Pos { element: Bytes::from_static(b"a"), rank, count, maxlen };
        assert_eq!(answer(&pos(1, None, 0), Some(&v)), Frame::Integer(0));
        assert_eq!(answer(&pos(2, None, 0), Some(&v)), Frame::Integer(2));
        assert_eq!(answer(&pos(-1, Some(2), 0), Some(&v)), Frame::Array(vec![Frame::Integer(4), Frame::Integer(2)]));
        assert_eq!(answer(&pos(1, Some(0), 0), Some(&v)), Frame::Array(vec![Frame::Integer(0), Frame::Integer(2), Frame::Integer(4)]));
        assert_eq!(answer(&pos(1, Some(0), 2), Some(&v)), Frame::Array(vec![Frame::Integer(0)]), "MAXLEN compares that many");
        assert_eq!(answer(&pos(i64::MIN, None, 0), Some(&v)), Frame::Integer(4), "C's negation of the most negative rank");
        assert_eq!(answer(&pos(1, Some(1), 0), None), Frame::Array(vec![]));
    }
}
