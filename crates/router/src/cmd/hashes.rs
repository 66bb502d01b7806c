//! Hash commands: HSET HSETNX HMSET HGET HMGET HGETALL HDEL HLEN HEXISTS
//! HKEYS HVALS HSTRLEN HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN.
//!
//! A hash is one record on its owner ([`evenkeel_types::hash`]). Writes are
//! node operations (`HSet`, `HDel`, `HIncrBy`, `HIncrByFloat`), each a
//! read-modify-write of the whole hash under the partition's lock. Reads
//! GET the hash and answer here from its encoding: HGET, HMGET, HEXISTS
//! and HSTRLEN only the fields they name and HLEN only the count
//! ([`collection::get_entries`]: the node cuts them out of the value), the
//! others all of it.
//!
//! Argument errors come in Redis's order: those Redis checks before it
//! looks the key up are answered at once, those it checks after (HSCAN's
//! options) wait in the reply shape, since a missing key answers first.

use super::collection;
use super::plan::{HashRead, Planned, Shape};
use super::{int_arg, wrong_arity};
use crate::glob::glob_match;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::hash::Hash;

/// HSET and HMSET: field-value pairs, HSET answering how many were new,
/// HMSET OK.
pub fn hset(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    if !a.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    let (fields, values) = a[2..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).unzip();
    let shape = if name == "hmset" { Shape::Ok } else { Shape::Integer };
    Ok(Planned::one(&a[1], Kind::HSet(pb::HSet { fields, values, nx: false }), shape))
}

pub fn hsetnx(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::HSet(pb::HSet { fields: vec![a[2].clone()], values: vec![a[3].clone()], nx: true }), Shape::Integer))
}

pub fn hdel(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::HDel(pb::HDel { fields: a[2..].to_vec() }), Shape::Integer))
}

pub fn hincrby(a: &[Bytes]) -> Result<Planned, Frame> {
    let delta = int_arg(&a[3])?;
    Ok(Planned::one(&a[1], Kind::HIncrBy(pb::HIncrBy { field: a[2].clone(), delta }), Shape::Integer))
}

/// The increment is read on the node, where Redis's order of checks
/// (increment, type, field, sum) can be kept.
pub fn hincrbyfloat(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::HIncrByFloat(pb::HIncrByFloat { field: a[2].clone(), increment: a[3].clone() }), Shape::Value))
}

/// The read commands: a GET of the fields they name (HLEN: of the count
/// alone), or of the whole hash, answered by [`answer`].
pub fn read(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let read = match name {
        "hget" => HashRead::Get(a[2].clone()),
        "hmget" => HashRead::MGet(a[2..].to_vec()),
        "hgetall" => HashRead::GetAll,
        "hlen" => HashRead::Len,
        "hexists" => HashRead::Exists(a[2].clone()),
        "hkeys" => HashRead::Keys,
        "hvals" => HashRead::Vals,
        "hstrlen" => HashRead::StrLen(a[2].clone()),
        "hrandfield" => {
            let (count, with_values) = collection::rand_args(a, b"withvalues")?;
            HashRead::RandField { count, with_values }
        }
        "hscan" => {
            let (options, get) = collection::scan_args(a)?;
            return Ok(Planned::one(&a[1], get, Shape::Hash(HashRead::Scan(options))));
        }
        other => unreachable!("{other} is not a hash read"),
    };
    let get = match &read {
        HashRead::Get(f) | HashRead::Exists(f) | HashRead::StrLen(f) => collection::get_entries(vec![f.clone()]),
        HashRead::MGet(fields) => collection::get_entries(fields.clone()),
        HashRead::Len => collection::get_entries(Vec::new()),
        HashRead::RandField { count, .. } if let Some(get) = collection::get_random(*count) => get,
        _ => Kind::Get(pb::Get::default()),
    };
    Ok(Planned::one(&a[1], get, Shape::Hash(read)))
}

/// The reply to a hash read, from the GET's value (None: no key).
pub(crate) fn answer(read: &HashRead, value: Option<&pb::Value>) -> Frame {
    // Reads that list the hash walk its encoding; point reads (of a part,
    // or of the whole from an older node) look fields up.
    if matches!(read, HashRead::GetAll | HashRead::Keys | HashRead::Vals | HashRead::RandField { .. } | HashRead::Scan(_)) {
        return match collection::typed_value(value, pb::ValueType::Hash, Hash::pairs) {
            // The node's picks, in order (they may repeat).
            Ok(pairs) if let (HashRead::RandField { count, with_values }, true) = (read, collection::is_part(value)) => {
                let values: Vec<(&Bytes, Frame)> = pairs.iter().flatten().map(|(f, v)| (f, Frame::Bulk(v.clone()))).collect();
                collection::picks_reply(values.iter().map(|(f, v)| (*f, v)).collect(), *count, *with_values)
            }
            Ok(pairs) => listing(read, pairs.as_deref(), collection::next_cursor(value)),
            Err(e) => e,
        };
    }
    let hash = match collection::typed_value(value, pb::ValueType::Hash, Hash::decode) {
        Ok(hash) => hash,
        Err(e) => return e,
    };
    let field = |f: &Bytes| hash.as_ref().and_then(|h| h.get(f).cloned());
    match read {
        HashRead::Get(f) => field(f).map_or(Frame::Null, Frame::Bulk),
        HashRead::MGet(fields) => Frame::Array(fields.iter().map(|f| field(f).map_or(Frame::Null, Frame::Bulk)).collect()),
        HashRead::Len => Frame::Integer(collection::elements(value, hash.as_ref().map_or(0, Hash::len))),
        HashRead::Exists(f) => Frame::Integer(field(f).is_some() as i64),
        HashRead::StrLen(f) => Frame::Integer(field(f).map_or(0, |v| v.len()) as i64),
        HashRead::GetAll | HashRead::Keys | HashRead::Vals | HashRead::RandField { .. } | HashRead::Scan(_) => unreachable!("answered by listing"),
    }
}

/// The reply to a read that lists the hash, from its fields and values in
/// order (None: no key).
fn listing(read: &HashRead, pairs: Option<&[(Bytes, Bytes)]>, cursor: u64) -> Frame {
    let all = pairs.unwrap_or_default();
    match read {
        HashRead::GetAll => Frame::Map(all.iter().map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v.clone()))).collect()),
        HashRead::Keys => Frame::Array(all.iter().map(|(f, _)| Frame::Bulk(f.clone())).collect()),
        HashRead::Vals => Frame::Array(all.iter().map(|(_, v)| Frame::Bulk(v.clone())).collect()),
        HashRead::RandField { count, with_values } => {
            let values: Vec<(&Bytes, Frame)> = all.iter().map(|(f, v)| (f, Frame::Bulk(v.clone()))).collect();
            let entries: Vec<(&Bytes, &Frame)> = values.iter().map(|(f, v)| (*f, v)).collect();
            collection::random_entries(&entries, *count, *with_values)
        }
        HashRead::Scan(options) => {
            if pairs.is_none() {
                return super::keys::scan_reply(0, Vec::new());
            }
            let pattern = match options {
                Ok(pattern) => pattern,
                Err(e) => return e.clone(),
            };
            let matching = all.iter().filter(|(f, _)| pattern.as_ref().is_none_or(|p| glob_match(p, f)));
            super::keys::scan_reply(cursor, matching.flat_map(|(f, v)| [Frame::Bulk(f.clone()), Frame::Bulk(v.clone())]).collect())
        }
        other => unreachable!("{other:?} does not list the hash"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::syntax_error;

    fn hash_value(pairs: &[(&str, &str)]) -> pb::Value {
        let mut h = Hash::default();
        for (f, v) in pairs {
            h.set(Bytes::copy_from_slice(f.as_bytes()), Bytes::copy_from_slice(v.as_bytes()));
        }
        let value = h.encode();
        pb::Value { len: value.len() as u64, value, value_type: pb::ValueType::Hash as i32, ..Default::default() }
    }

    #[test]
    fn reads_answer_from_the_encoding_in_field_order() {
        let v = hash_value(&[("b", "2"), ("a", "1")]);
        let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(answer(&HashRead::GetAll, Some(&v)), Frame::Map(vec![(bulk("b"), bulk("2")), (bulk("a"), bulk("1"))]));
        assert_eq!(answer(&HashRead::Get(Bytes::from_static(b"a")), Some(&v)), bulk("1"));
        assert_eq!(answer(&HashRead::Get(Bytes::from_static(b"z")), Some(&v)), Frame::Null);
        assert_eq!(answer(&HashRead::Len, Some(&v)), Frame::Integer(2));
        assert_eq!(answer(&HashRead::Len, None), Frame::Integer(0));
        assert_eq!(answer(&HashRead::Keys, None), Frame::Array(vec![]));
        let string = pb::Value { value: Bytes::from_static(b"x"), len: 1, ..Default::default() };
        assert_eq!(answer(&HashRead::Len, Some(&string)), super::super::wrong_type());
        let all = answer(&HashRead::RandField { count: Some(5), with_values: false }, Some(&v));
        assert_eq!(all, Frame::Array(vec![bulk("b"), bulk("a")]), "a count past the size: the whole hash in order");
        let Frame::Array(picks) = answer(&HashRead::RandField { count: Some(-7), with_values: true }, Some(&v)).into_resp2() else { panic!() };
        assert_eq!(picks.len(), 14, "a negative count: that many picks, with values");
        let huge = answer(&HashRead::RandField { count: Some(-(collection::RANDOM_REPEATS_MAX as i64) - 1), with_values: false }, Some(&v));
        assert!(matches!(huge, Frame::Error(ref e) if e.contains("too large")), "refused, not built: {huge:?}");
        assert_eq!(answer(&HashRead::RandField { count: Some(i64::MIN + 1), with_values: false }, None), Frame::Array(vec![]), "no key: empty, as in Redis");
        let Frame::Array(one) = answer(&HashRead::RandField { count: Some(1), with_values: false }, Some(&v)) else { panic!() };
        assert!(one == vec![bulk("a")] || one == vec![bulk("b")]);
        let scan = answer(&HashRead::Scan(Ok(Some(Bytes::from_static(b"a*")))), Some(&v));
        assert_eq!(scan, Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("a"), bulk("1")])]));
        assert_eq!(answer(&HashRead::Scan(Err(syntax_error())), None), Frame::Array(vec![bulk("0"), Frame::Array(vec![])]), "no key: no option error");
    }

    #[test]
    fn random_fields_answer_the_nodes_picks_in_order() {
        let v = hash_value(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let rand = |count, with_values| HashRead::RandField { count, with_values };
        let Planned { ops, .. } = read("hrandfield", &[Bytes::from_static(b"hrandfield"), Bytes::from_static(b"k"), Bytes::from_static(b"-2")]).unwrap();
        assert!(matches!(&ops[0].kind, Kind::Get(pb::Get { random: Some(pb::Random { count: Some(-2), .. }), .. })), "picked on the node");
        let repeats = collection::picked_part(&v, &[2, 0, 2]);
        assert_eq!(answer(&rand(Some(-3), true), Some(&repeats)), Frame::Pairs(vec![(bulk("c"), bulk("3")), (bulk("a"), bulk("1")), (bulk("c"), bulk("3"))]));
        assert_eq!(answer(&rand(None, false), Some(&collection::picked_part(&v, &[1]))), bulk("b"));
        assert_eq!(answer(&rand(Some(0), false), Some(&collection::picked_part(&v, &[]))), Frame::Array(vec![]));
    }
}
