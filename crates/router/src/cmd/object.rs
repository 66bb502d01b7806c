//! OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP.
//!
//! A GET of the key, answered here. ENCODING names the encoding Redis 7.0
//! would pick for the value as it is now: a string is `int` (an integer
//! of up to 20 bytes), `embstr` (up to 44 bytes) or `raw`; a hash
//! `listpack` while it has at most 512 fields (Redis 7.0's built-in
//! `hash-max-listpack-entries`; its sample redis.conf says 128), a sorted
//! set while it has at most 128 members, each of at most 64 bytes, else
//! `hashtable` or `skiplist`; a set `intset` while it holds at most 512
//! integers, else `hashtable`; a list `quicklist`. Redis keeps a value's
//! encoding from how it was written (APPEND leaves `raw`, a hash that once
//! grew past the limits stays `hashtable`), which a record here
//! does not remember. REFCOUNT is 1, or 2147483647 for the integers 0 to
//! 9999 Redis shares. Neither an access time nor a frequency is kept, so
//! IDLETIME and FREQ answer an error saying so.

use super::plan::{Planned, Shape};
use super::wrong_arity;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::hash::Hash;
use evenkeel_types::int::parse_i64;
use evenkeel_types::set::Set;
use evenkeel_types::zset::ZSet;

/// What OBJECT asks of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Encoding,
    RefCount,
    IdleTime,
    Freq,
}

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

pub fn object(a: &[Bytes]) -> Result<Planned, Frame> {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
    let query = match (sub.as_str(), a.len()) {
        ("HELP", 2) => return Err(Frame::Array(HELP.iter().map(|l| Frame::Simple(l.to_string())).collect())),
        ("ENCODING", 3) => Query::Encoding,
        ("REFCOUNT", 3) => Query::RefCount,
        ("IDLETIME", 3) => Query::IdleTime,
        ("FREQ", 3) => Query::Freq,
        ("HELP" | "ENCODING" | "REFCOUNT" | "IDLETIME" | "FREQ", _) => return Err(wrong_arity(&format!("object|{}", sub.to_ascii_lowercase()))),
        _ => return Err(Frame::error(format!("ERR unknown subcommand '{}'. Try OBJECT HELP.", super::c_str(&a[1], 128)))),
    };
    Ok(Planned::one(&a[2], Kind::Get(pb::Get::default()), Shape::Object(query)))
}

/// The reply from the key's GET (Nil: no key, answered null).
pub(crate) fn answer(query: Query, r: R) -> Frame {
    let v = match r {
        R::Value(v) => v,
        R::Nil(_) => return Frame::Null,
        other => return super::unexpected(&other),
    };
    match query {
        Query::Encoding => encoding(&v).map_or_else(|e| e, Frame::bulk),
        Query::RefCount => {
            let shared = v.value_type == pb::ValueType::String as i32 && v.value.len() <= 20 && parse_i64(&v.value).is_some_and(|n| (0..10_000).contains(&n));
            Frame::Integer(if shared { i32::MAX as i64 } else { 1 })
        }
        Query::IdleTime => Frame::error("ERR evenkeel does not track when a key was last accessed, so it has no idle time to report"),
        Query::Freq => Frame::error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
    }
}

fn encoding(v: &pb::Value) -> Result<&'static str, Frame> {
    use evenkeel_types::encoding::{hash_is_listpack, set_as_intset, zset_is_listpack};
    let corrupt = super::corrupt_value;
    Ok(match pb::ValueType::try_from(v.value_type) {
        Ok(pb::ValueType::String) => {
            // PFADD and PFMERGE make their value raw, whatever its length
            // (Redis unshares it into a raw string before writing).
            if evenkeel_types::hll::check(&v.value).is_ok() {
                "raw"
            } else if v.value.len() <= 20 && parse_i64(&v.value).is_some() {
                "int"
            } else if v.value.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Ok(pb::ValueType::Hash) => {
            let hash = Hash::decode(&v.value).map_err(corrupt)?;
            if hash_is_listpack(&hash) { "listpack" } else { "hashtable" }
        }
        Ok(pb::ValueType::Set) => {
            let set = Set::decode(&v.value).map_err(corrupt)?;
            if set_as_intset(&set).is_some() { "intset" } else { "hashtable" }
        }
        Ok(pb::ValueType::List) => "quicklist",
        Ok(pb::ValueType::Stream) => "stream",
        Ok(pb::ValueType::Zset) => {
            let z = ZSet::decode(&v.value).map_err(corrupt)?;
            if zset_is_listpack(&z) { "listpack" } else { "skiplist" }
        }
        Err(_) => return Err(Frame::error("ERR internal error: a value of an unknown type")),
    })
}

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

/// MEMORY USAGE key [SAMPLES n] and MEMORY HELP. USAGE answers the bytes
/// the key takes in its node's store: the key, the record's header and
/// its encoded value (the key's GET without the value, `meta_only`);
/// Redis answers its in-memory object's size, which is larger. Redis's
/// DOCTOR, STATS, MALLOC-STATS and PURGE describe its allocator and are
/// not served.
pub fn memory(a: &[Bytes]) -> Result<Planned, Frame> {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
    match (sub.as_str(), a.len()) {
        ("HELP", 2) => Err(Frame::Array(MEMORY_HELP.iter().map(|l| Frame::Simple(l.to_string())).collect())),
        ("USAGE", n) if n >= 3 => {
            let mut j = 3;
            while j < a.len() {
                if !a[j].eq_ignore_ascii_case(b"samples") || j + 1 >= a.len() {
                    return Err(super::syntax_error());
                }
                if super::int_arg(&a[j + 1])? < 0 {
                    return Err(super::syntax_error());
                }
                j += 2;
            }
            Ok(Planned::one(&a[2], Kind::Get(pb::Get { meta_only: true, ..Default::default() }), Shape::MemoryUsage(a[2].len())))
        }
        ("HELP" | "USAGE", _) => Err(wrong_arity(&format!("memory|{}", sub.to_ascii_lowercase()))),
        ("DOCTOR" | "STATS" | "MALLOC-STATS" | "PURGE", _) => Err(Frame::error(format!("ERR MEMORY {sub} is not served by evenkeel (its memory is per node; see INFO memory and /metrics)"))),
        _ => Err(Frame::error(format!("ERR unknown subcommand '{}'. Try MEMORY HELP.", super::c_str(&a[1], 128)))),
    }
}

/// MEMORY USAGE's answer: the key, the record header and the value.
pub(crate) fn memory_usage(key_len: usize, r: R) -> Frame {
    match r {
        R::Value(v) => Frame::Integer((key_len + evenkeel_types::record::HEADER_LEN + v.len as usize) as i64),
        R::Nil(_) => Frame::Null,
        other => super::unexpected(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> R {
        R::Value(pb::Value { value: Bytes::copy_from_slice(s.as_bytes()), ..Default::default() })
    }

    #[test]
    fn encodings_follow_redis_7_0_rules() {
        let enc = |r| answer(Query::Encoding, r);
        assert_eq!(enc(string("12345")), Frame::bulk("int"));
        assert_eq!(enc(string("012")), Frame::bulk("embstr"), "not an integer to Redis");
        assert_eq!(enc(string(&"x".repeat(44))), Frame::bulk("embstr"));
        assert_eq!(enc(string(&"x".repeat(45))), Frame::bulk("raw"));
        assert_eq!(enc(R::Nil(pb::Nil {})), Frame::Null);
        let set: Set = (0..513).map(|i| Bytes::from(i.to_string())).collect();
        let set_value = |s: &Set| R::Value(pb::Value { value: s.encode(), value_type: pb::ValueType::Set as i32, ..Default::default() });
        assert_eq!(enc(set_value(&set)), Frame::bulk("hashtable"), "past 512 integers");
        let small: Set = (0..512).map(|i| Bytes::from(i.to_string())).collect();
        assert_eq!(enc(set_value(&small)), Frame::bulk("intset"));
        let mut hash = Hash::default();
        hash.set(Bytes::from_static(b"f"), Bytes::from(vec![b'v'; 65]));
        assert_eq!(enc(R::Value(pb::Value { value: hash.encode(), value_type: pb::ValueType::Hash as i32, ..Default::default() })), Frame::bulk("hashtable"), "a value past 64 bytes");
        assert_eq!(answer(Query::RefCount, string("9999")), Frame::Integer(2147483647));
        assert_eq!(answer(Query::RefCount, string("10000")), Frame::Integer(1));
    }
}
