//! Set commands: SADD SREM SPOP SMOVE SISMEMBER SMISMEMBER SMEMBERS SCARD
//! SRANDMEMBER SSCAN SUNION SINTER SDIFF SINTERCARD and SUNIONSTORE
//! SINTERSTORE SDIFFSTORE.
//!
//! A set is one record, as a hash is ([`evenkeel_types::set`]). Writes are
//! node operations (SMOVE and the STORE forms multi-key steps on one hash
//! slot, as RENAME); reads GET the set and answer here. SUNION, SINTER and
//! SDIFF read each key as MGET does (each key atomic, the command as a
//! whole only inside MULTI).
//!
//! Redis 7.0 lists a set of integers (its intset, up to 512 members) in
//! ascending order and any other set in its hash table's order; we list
//! the first the same way and the second in insertion order.

use super::collection;
use super::plan::{Planned, SetRead, Shape};
use super::{int_arg, syntax_error};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::set::{Combine, Set};
use rand::RngExt;

/// Redis's `set-max-intset-entries`: a set of integers up to this size is
/// an intset, listed in ascending order.
const INTSET_MAX: usize = 512;

pub fn sadd(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::SAdd(pb::SAdd { members: a[2..].to_vec() }), Shape::Integer))
}

pub fn srem(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::SRem(pb::SRem { members: a[2..].to_vec() }), Shape::Integer))
}

/// SPOP [count]: the count is checked before the key, as in Redis.
pub fn spop(a: &[Bytes]) -> Result<Planned, Frame> {
    let count = match a.len() {
        2 => None,
        // Redis's message for any count but a non-negative integer.
        3 => Some(int_arg(&a[2]).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| Frame::error("ERR value is out of range, must be positive"))?),
        _ => return Err(syntax_error()),
    };
    let seed = rand::rng().random();
    let shape = if count.is_some() { Shape::Members } else { Shape::Value };
    Ok(Planned::one(&a[1], Kind::SPop(pb::SPop { count, seed }), shape))
}

pub fn smove(a: &[Bytes]) -> Result<Planned, Frame> {
    super::keys::one_slot(a[1..3].iter())?;
    Ok(Planned::one(&a[1], Kind::SMove(pb::SMove { to: a[2].clone(), member: a[3].clone() }), Shape::Integer))
}

/// SUNIONSTORE, SINTERSTORE, SDIFFSTORE: one node step over keys of one
/// hash slot.
pub fn store(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    super::keys::one_slot(a[1..].iter())?;
    let op = match name {
        "sunionstore" => pb::set_store::Op::Union,
        "sinterstore" => pb::set_store::Op::Inter,
        _ => pb::set_store::Op::Diff,
    };
    Ok(Planned::one(&a[1], Kind::SetStore(pb::SetStore { op: op as i32, sources: a[2..].to_vec() }), Shape::Integer))
}

/// SUNION, SINTER, SDIFF: a GET per key, combined by [`combined`].
pub fn combine(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    super::keys::one_slot(a[1..].iter())?;
    let op = match name {
        "sunion" => Combine::Union,
        "sinter" => Combine::Inter,
        _ => Combine::Diff,
    };
    Ok(Planned::per_key(&a[1..], Kind::Get(pb::Get::default()), Shape::SetCombine(op)))
}

/// SINTERCARD numkeys key... [LIMIT n]: the intersection's size (at most
/// `n` if not 0), over a GET per key as SINTER.
pub fn intercard(a: &[Bytes]) -> Result<Planned, Frame> {
    let numkeys = int_arg(&a[1]).ok().filter(|n| *n >= 1).ok_or_else(|| Frame::error("ERR numkeys should be greater than 0"))?;
    if numkeys > a.len() as i64 - 2 {
        return Err(Frame::error("ERR Number of keys can't be greater than number of args"));
    }
    let (keys, options) = a[2..].split_at(numkeys as usize);
    let mut limit = 0;
    let mut i = 0;
    while i < options.len() {
        match options.get(i + 1) {
            Some(value) if options[i].eq_ignore_ascii_case(b"limit") => {
                limit = int_arg(value).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| Frame::error("ERR LIMIT can't be negative"))?;
                i += 2;
            }
            _ => return Err(syntax_error()),
        }
    }
    super::keys::one_slot(keys.iter())?;
    Ok(Planned::per_key(keys, Kind::Get(pb::Get::default()), Shape::SetInterCard(limit)))
}

/// The read commands of one set: a GET (of the members SISMEMBER and
/// SMISMEMBER name, of SCARD's count alone, else of the set), answered by
/// [`answer`].
pub fn read(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let read = match name {
        "sismember" => SetRead::IsMember(a[2].clone()),
        "smismember" => SetRead::MIsMember(a[2..].to_vec()),
        "smembers" => SetRead::Members,
        "scard" => SetRead::Card,
        "srandmember" => {
            let count = match a.len() {
                2 => None,
                3 => Some(collection::rand_count(&a[2])?),
                _ => return Err(syntax_error()),
            };
            SetRead::Rand(count)
        }
        "sscan" => {
            let (options, get) = collection::scan_args(a)?;
            return Ok(Planned::one(&a[1], get, Shape::SetRead(SetRead::Scan(options))));
        }
        other => unreachable!("{other} is not a set read"),
    };
    let get = match &read {
        SetRead::IsMember(m) => collection::get_entries(vec![m.clone()]),
        SetRead::MIsMember(ms) => collection::get_entries(ms.clone()),
        SetRead::Card => collection::get_entries(Vec::new()),
        SetRead::Rand(count) if let Some(get) = collection::get_random(*count) => get,
        _ => Kind::Get(pb::Get::default()),
    };
    Ok(Planned::one(&a[1], get, Shape::SetRead(read)))
}

/// The set a GET found (None: no key), or the reply for a value that is
/// not one.
fn decode(value: Option<&pb::Value>) -> Result<Option<Set>, Frame> {
    collection::typed_value(value, pb::ValueType::Set, Set::decode)
}

/// Members in the order Redis 7.0 lists them, from the set's encoding (a
/// hash of empty values: walked, not indexed).
fn listed(raw: &Bytes) -> Result<Vec<Bytes>, evenkeel_types::record::CorruptRecord> {
    Ok(ordered(evenkeel_types::hash::Hash::pairs(raw)?.into_iter().map(|(m, _)| m).collect()))
}

/// Members in the order Redis 7.0 lists them (see the module doc).
fn ordered(mut members: Vec<Bytes>) -> Vec<Bytes> {
    if members.len() <= INTSET_MAX {
        let numbers: Option<Vec<i64>> = members.iter().map(|m| evenkeel_types::int::parse_i64(m)).collect();
        if let Some(numbers) = numbers {
            let mut pairs: Vec<(i64, Bytes)> = numbers.into_iter().zip(members).collect();
            pairs.sort_unstable_by_key(|(n, _)| *n);
            members = pairs.into_iter().map(|(_, m)| m).collect();
        }
    }
    members
}

/// Members as a set reply (RESP3's set; an array in RESP2).
fn bulks(members: Vec<Bytes>) -> Frame {
    Frame::Set(members.into_iter().map(Frame::Bulk).collect())
}

/// The reply to a one-set read, from the GET's value (None: no key).
pub(crate) fn answer(read: &SetRead, value: Option<&pb::Value>) -> Frame {
    // Reads that list the set walk its encoding; membership looks it up.
    // The node's picks, in order: a negative count's may repeat, and keep
    // the order drawn; distinct ones list in the set's order.
    if let (SetRead::Rand(count), true) = (read, collection::is_part(value)) {
        let walk = |raw: &Bytes| evenkeel_types::hash::Hash::pairs(raw).map(|p| p.into_iter().map(|(m, _)| m).collect::<Vec<_>>());
        let picks = if count.is_some_and(|c| c < 0) { collection::typed_value(value, pb::ValueType::Set, walk) } else { collection::typed_value(value, pb::ValueType::Set, listed) };
        return match picks {
            Ok(picks) => collection::picks_reply(picks.iter().flatten().map(|m| (m, &Frame::Null)).collect(), *count, false),
            Err(e) => e,
        };
    }
    if matches!(read, SetRead::Members | SetRead::Rand(_) | SetRead::Scan(_)) {
        return match collection::typed_value(value, pb::ValueType::Set, listed) {
            Ok(members) => listing(read, members, collection::next_cursor(value)),
            Err(e) => e,
        };
    }
    let set = match decode(value) {
        Ok(set) => set,
        Err(e) => return e,
    };
    let has = |m: &Bytes| set.as_ref().is_some_and(|s| s.contains(m));
    match read {
        SetRead::IsMember(m) => Frame::Integer(has(m) as i64),
        SetRead::MIsMember(ms) => Frame::Array(ms.iter().map(|m| Frame::Integer(has(m) as i64)).collect()),
        SetRead::Card => Frame::Integer(collection::elements(value, set.as_ref().map_or(0, Set::len))),
        SetRead::Members | SetRead::Rand(_) | SetRead::Scan(_) => unreachable!("answered by listing"),
    }
}

/// The reply to a read that lists the set, from its members as listed
/// (None: no key).
fn listing(read: &SetRead, members: Option<Vec<Bytes>>, cursor: u64) -> Frame {
    match read {
        SetRead::Members => bulks(members.unwrap_or_default()),
        SetRead::Rand(count) => {
            let members = members.unwrap_or_default();
            let entries: Vec<(&Bytes, &Frame)> = members.iter().map(|m| (m, &Frame::Null)).collect();
            collection::random_entries(&entries, *count, false)
        }
        SetRead::Scan(options) => {
            let Some(members) = members else { return super::keys::scan_reply(0, Vec::new()) };
            let pattern = match options {
                Ok(pattern) => pattern,
                Err(e) => return e.clone(),
            };
            let matching = members.into_iter().filter(|m| pattern.as_ref().is_none_or(|p| crate::glob::glob_match(p, m)));
            super::keys::scan_reply(cursor, matching.map(Frame::Bulk).collect())
        }
        other => unreachable!("{other:?} does not list the set"),
    }
}

/// SPOP's reply with a count: the members popped, listed as a set (Redis
/// lists a whole intset popped at once in order).
pub(crate) fn popped(members: Vec<Bytes>) -> Frame {
    bulks(ordered(members))
}

/// SUNION, SINTER, SDIFF's reply from each key's GET: WRONGTYPE if any key
/// holds something else, as Redis checks every key.
pub(crate) fn combined(op: Combine, results: Vec<R>) -> Frame {
    match combine_results(op, results) {
        Ok(set) => bulks(ordered(set.members().cloned().collect())),
        Err(e) => e,
    }
}

/// SINTERCARD's reply: the intersection's size, capped at `limit` (0: no
/// cap).
pub(crate) fn inter_card(limit: u64, results: Vec<R>) -> Frame {
    match combine_results(Combine::Inter, results) {
        Ok(set) => Frame::Integer(if limit == 0 { set.len() as u64 } else { (set.len() as u64).min(limit) } as i64),
        Err(e) => e,
    }
}

fn combine_results(op: Combine, results: Vec<R>) -> Result<Set, Frame> {
    let mut sets = Vec::with_capacity(results.len());
    for r in results {
        let value = match r {
            R::Value(v) => Some(v),
            R::Nil(_) => None,
            other => return Err(super::unexpected(&other)),
        };
        sets.push(decode(value.as_ref())?.unwrap_or_default());
    }
    Ok(evenkeel_types::set::combine(op, &sets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_value(members: &[&str]) -> pb::Value {
        let set: Set = members.iter().map(|m| Bytes::copy_from_slice(m.as_bytes())).collect();
        let value = set.encode();
        pb::Value { len: value.len() as u64, value, value_type: pb::ValueType::Set as i32, ..Default::default() }
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn random_members_answer_the_nodes_picks() {
        let v = set_value(&["10", "-3", "2"]);
        let distinct = collection::picked_part(&v, &[0, 1]);
        assert_eq!(answer(&SetRead::Rand(Some(2)), Some(&distinct)), Frame::Array(vec![bulk("-3"), bulk("10")]), "distinct picks: in the set's order");
        let repeats = collection::picked_part(&v, &[2, 0, 2]);
        assert_eq!(answer(&SetRead::Rand(Some(-3)), Some(&repeats)), Frame::Array(vec![bulk("2"), bulk("10"), bulk("2")]), "repeats keep the order drawn");
        assert_eq!(answer(&SetRead::Rand(None), Some(&collection::picked_part(&v, &[1]))), bulk("-3"));
    }

    #[test]
    fn integer_sets_list_in_ascending_order_others_as_inserted() {
        let ints = set_value(&["10", "-3", "2"]);
        assert_eq!(answer(&SetRead::Members, Some(&ints)), Frame::Set(vec![bulk("-3"), bulk("2"), bulk("10")]));
        let mixed = set_value(&["b", "10", "a"]);
        assert_eq!(answer(&SetRead::Members, Some(&mixed)), Frame::Set(vec![bulk("b"), bulk("10"), bulk("a")]));
        let leading_zero = set_value(&["2", "01"]);
        assert_eq!(answer(&SetRead::Members, Some(&leading_zero)), Frame::Set(vec![bulk("2"), bulk("01")]), "01 is not an integer to Redis");
        assert_eq!(answer(&SetRead::Card, Some(&ints)), Frame::Integer(3));
        assert_eq!(answer(&SetRead::MIsMember(vec![Bytes::from_static(b"2"), Bytes::from_static(b"x")]), Some(&ints)), Frame::Array(vec![Frame::Integer(1), Frame::Integer(0)]));
        assert_eq!(answer(&SetRead::Members, None), Frame::Set(vec![]));
        let string = pb::Value { value: Bytes::from_static(b"x"), len: 1, ..Default::default() };
        assert_eq!(answer(&SetRead::Card, Some(&string)), super::super::wrong_type());
    }

    #[test]
    fn combinations_check_every_key_and_list_like_a_set() {
        let (a, b) = (R::Value(set_value(&["3", "1", "2"])), R::Value(set_value(&["2", "4"])));
        assert_eq!(combined(Combine::Union, vec![a.clone(), b.clone()]), Frame::Set(["1", "2", "3", "4"].map(bulk).to_vec()));
        assert_eq!(combined(Combine::Diff, vec![a.clone(), R::Nil(pb::Nil {})]), Frame::Set(["1", "2", "3"].map(bulk).to_vec()));
        let string = R::Value(pb::Value { value: Bytes::from_static(b"x"), len: 1, ..Default::default() });
        assert_eq!(combined(Combine::Inter, vec![R::Nil(pb::Nil {}), string]), super::super::wrong_type(), "a missing key does not end the checks");
    }
}
