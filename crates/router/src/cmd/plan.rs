//! Data commands as operations plus the shape of their reply.
//!
//! A data command (GET, SET, MGET, DEL, ...) is planned in two halves: its
//! arguments become [`KeyOp`]s ([`Planned::ops`]), and a [`Shape`] says how
//! the ops' results become the reply. Splitting them lets the session run
//! the ops of many pipelined commands in one dispatch and still answer each
//! command exactly as running it alone would. Both halves are pure.

use super::{dispatch_error, op_error, unexpected};
use crate::dispatch::{DispatchError, KeyOp};
use evenkeel_resp::Frame;
use evenkeel_rpc::pb;
use evenkeel_rpc::pb::op_result::Result as R;
use evenkeel_types::unix_ms;

/// A data command's operations and how to answer it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub ops: Vec<KeyOp>,
    pub shape: Shape,
}

/// How the results of a command's ops become its reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// GET, GETDEL: the value, or null.
    Value,
    /// ZINCRBY, ZADD INCR: the new score the node wrote as text, as a
    /// double (null when NX/XX/GT/LT prevented it).
    Score,
    /// STRLEN: the value's length, 0 when absent.
    Length,
    /// APPEND, INCR and friends, EXPIRE, PERSIST: the node's integer.
    Integer,
    /// SET: OK, or null when NX/XX was not met; with GET, the old value.
    Set { get: bool },
    /// SETNX: 1 if it wrote, 0 if not.
    Applied,
    /// TYPE: `string`, or `none` when absent.
    Type,
    /// GETRANGE: these bytes of the value (empty when absent).
    Range { start: i64, end: i64 },
    /// GETBIT: the bit at this offset (0 past the end or when absent).
    Bit { offset: u64 },
    /// BITCOUNT: set bits in the range (0 when absent, whatever the
    /// arguments: Redis looks the key up first).
    BitCount(super::bits::BitCountArgs),
    /// BITPOS: the first position of the bit (absent: -1 for a 1, 0 for
    /// a 0, whatever the range).
    BitPos(super::bits::BitPosArgs),
    /// A hash read, answered from the hash's encoding
    /// ([`super::hashes::answer`]).
    Hash(HashRead),
    /// A one-set read ([`super::sets::answer`]).
    SetRead(SetRead),
    /// SUNION, SINTER, SDIFF over each key's GET ([`super::sets::combined`]).
    SetCombine(evenkeel_types::set::Combine),
    /// SINTERCARD over each key's GET, with its LIMIT (0: none).
    SetInterCard(u64),
    /// SPOP with a count: the members popped.
    Members,
    /// A list read ([`super::lists::answer`]).
    List(ListRead),
    /// LPOP/RPOP with a count, BLPOP/BRPOP: what was popped, in order (a
    /// null array for no list).
    Popped,
    /// ZPOPMIN/ZPOPMAX: each member then its score; with a count
    /// (`nested`), RESP3 pairs them.
    ZPopped { nested: bool },
    /// BZPOPMIN/BZPOPMAX: the key, the member and its score.
    KeyedScore,
    /// A one-key sorted set read ([`super::zsets::answer`]).
    ZSet(Box<ZSetRead>),
    /// ZUNION, ZINTER, ZDIFF over each key's GET, or a STORE form's
    /// option error, answered once the keys' types are checked
    /// ([`super::zsets::combined`]).
    ZCombine(Box<Result<ZCombine, Frame>>),
    /// SORT and SORT_RO without STORE ([`super::sort::answer`]).
    Sort(Box<super::sort::SortRead>),
    /// OBJECT ENCODING and friends ([`super::object::answer`]).
    Object(super::object::Query),
    /// DUMP: the value as Redis's payload ([`super::dump::answer`]).
    Dump,
    /// RESTORE with a bad TTL or payload, from the key's GET: BUSYKEY if
    /// it exists, else this error ([`super::dump::refused`]).
    RestoreRefused(Frame),
    /// The owner's reply as it is (`R::Reply`: stream commands, BITFIELD's
    /// writes); a null array for Nil (a stream read that found nothing).
    Reply,
    /// GEOPOS, GEODIST, GEOHASH and the searches, from the sorted set's
    /// GET ([`super::geo::answer`]).
    Geo(Box<super::geo::GeoRead>),
    /// MEMORY USAGE: the key's length, for the record's size.
    MemoryUsage(usize),
    /// BITFIELD and BITFIELD_RO with GETs only, from the key's GET.
    BitField(Vec<evenkeel_types::bitfield::Field>),
    /// LCS over its two keys' GETs, with its options or their error
    /// ([`super::lcs::reply`]).
    Lcs(Box<Result<super::lcs::LcsArgs, Frame>>),
    /// ZINTERCARD over each key's GET, with its LIMIT (0: none) or the
    /// LIMIT's error.
    ZInterCard(Result<u64, Frame>),
    /// LMPOP: `[key, [element, ...]]`; ZMPOP (`pairs`): `[key, [[member,
    /// score], ...]]`; a null array when no key held anything.
    MPopped { pairs: bool },
    /// EXPIRETIME (seconds, rounded) or PEXPIRETIME: the absolute expiry;
    /// -2 absent, -1 no expiry.
    ExpireTime { millis: bool },
    /// TTL (seconds, rounded) or PTTL; -2 absent, -1 no expiry.
    Ttl { millis: bool },
    /// MGET: one value or null per key.
    Values,
    /// DEL: keys deleted.
    Deleted,
    /// EXISTS: keys present.
    Present,
    /// MSET: OK.
    Ok,
}

/// What a hash read answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashRead {
    Get(bytes::Bytes),
    MGet(Vec<bytes::Bytes>),
    GetAll,
    Len,
    Exists(bytes::Bytes),
    Keys,
    Vals,
    StrLen(bytes::Bytes),
    /// HRANDFIELD: no count, one field; a count, an array.
    RandField { count: Option<i64>, with_values: bool },
    /// HSCAN's MATCH pattern, or its option error (answered only for a
    /// key that exists).
    Scan(Result<Option<bytes::Bytes>, Frame>),
}

/// What a list read answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRead {
    Len,
    /// LINDEX's index, or its error (answered only for a key that exists).
    Index(Result<i64, Frame>),
    Range(i64, i64),
    Pos { element: bytes::Bytes, rank: i64, count: Option<i64>, maxlen: i64 },
}

/// What a one-key sorted set read answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ZSetRead {
    Score(bytes::Bytes),
    MScore(Vec<bytes::Bytes>),
    Card,
    /// ZCOUNT, ZLEXCOUNT: how many members the range holds.
    Count(evenkeel_types::zset::Range),
    Rank { member: bytes::Bytes, rev: bool },
    Range { range: evenkeel_types::zset::Range, withscores: bool },
    /// ZRANDMEMBER: no count, one member; a count, an array.
    Rand { count: Option<i64>, withscores: bool },
    /// ZSCAN's MATCH pattern or option error, as for HSCAN.
    Scan(Result<Option<bytes::Bytes>, Frame>),
}

/// How ZUNION, ZINTER and ZDIFF (and their STORE forms) combine their
/// inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ZCombine {
    pub op: evenkeel_types::zset::Combine,
    /// One per input, or none (all 1).
    pub weights: Vec<f64>,
    pub aggregate: evenkeel_types::zset::Aggregate,
    pub withscores: bool,
}

/// What a one-set read answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRead {
    IsMember(bytes::Bytes),
    MIsMember(Vec<bytes::Bytes>),
    Members,
    Card,
    /// SRANDMEMBER: no count, one member; a count, an array.
    Rand(Option<i64>),
    /// SSCAN's MATCH pattern or option error, as for HSCAN.
    Scan(Result<Option<bytes::Bytes>, Frame>),
}

impl Planned {
    pub(crate) fn one(key: &bytes::Bytes, kind: evenkeel_rpc::pb::op::Kind, shape: Shape) -> Planned {
        Planned { ops: vec![KeyOp::new(key.clone(), kind)], shape }
    }

    /// The same op on each key (DEL, EXISTS, MGET, SUNION, ...).
    pub(crate) fn per_key(keys: &[bytes::Bytes], kind: evenkeel_rpc::pb::op::Kind, shape: Shape) -> Planned {
        Planned { ops: keys.iter().map(|k| KeyOp::new(k.clone(), kind.clone())).collect(), shape }
    }
}

/// The reply for a command whose ops ended with `outcomes` (one per op, in
/// order). The first failing op, in key order, answers for the command, as
/// a multi-key command does in Redis when one key fails.
pub fn reply(shape: Shape, outcomes: Vec<Result<R, DispatchError>>) -> Frame {
    let results: Result<Vec<R>, Frame> = outcomes.into_iter().map(|o| o.map_err(|e| dispatch_error(&e)).and_then(op_error)).collect();
    match results {
        Ok(results) => success(shape, results),
        Err(e) => e,
    }
}

fn success(shape: Shape, mut results: Vec<R>) -> Frame {
    match shape {
        Shape::Values => Frame::Array(results.into_iter().map(value_frame).collect()),
        Shape::Deleted => Frame::Integer(results.iter().map(|r| if let R::Integer(n) = r { *n } else { 0 }).sum()),
        Shape::Present => Frame::Integer(results.iter().filter(|r| matches!(r, R::Value(_))).count() as i64),
        Shape::Ok => Frame::ok(),
        Shape::SetCombine(op) => super::sets::combined(op, results),
        Shape::SetInterCard(limit) => super::sets::inter_card(limit, results),
        Shape::ZCombine(c) => super::zsets::combined(&c, results),
        Shape::ZInterCard(limit) => super::zsets::inter_card(&limit, results),
        Shape::Lcs(args) => super::lcs::reply(&args, results),
        single => {
            assert_eq!(results.len(), 1, "a single-key shape has one op");
            single_key(single, results.pop().expect("one result"))
        }
    }
}

fn single_key(shape: Shape, r: R) -> Frame {
    match (&shape, r) {
        (Shape::Hash(read), R::Value(v)) => super::hashes::answer(read, Some(&v)),
        (Shape::Hash(read), R::Nil(_)) => super::hashes::answer(read, None),
        (Shape::SetRead(read), R::Value(v)) => super::sets::answer(read, Some(&v)),
        (Shape::SetRead(read), R::Nil(_)) => super::sets::answer(read, None),
        (Shape::Members, R::Members(m)) => super::sets::popped(m.members),
        (Shape::List(read), R::Value(v)) => super::lists::answer(read, Some(&v)),
        (Shape::List(read), R::Nil(_)) => super::lists::answer(read, None),
        (Shape::Popped, R::Members(m)) => Frame::Array(m.members.into_iter().map(Frame::Bulk).collect()),
        (Shape::ZPopped { nested }, R::Members(m)) => super::zsets::popped(m.members, *nested),
        (Shape::KeyedScore, R::Members(m)) => super::zsets::keyed_score(m.members),
        (Shape::Popped | Shape::ZPopped { .. } | Shape::KeyedScore | Shape::MPopped { .. }, R::Nil(_)) => Frame::NullArray,
        (Shape::Object(query), r) => super::object::answer(*query, r),
        (Shape::Dump, r) => super::dump::answer(r),
        (Shape::RestoreRefused(error), r) => super::dump::refused(error.clone(), r),
        (Shape::Sort(read), r) => super::sort::answer(read, r),
        (Shape::ZSet(read), R::Value(v)) => super::zsets::answer(read, Some(&v)),
        (Shape::ZSet(read), R::Nil(_)) => super::zsets::answer(read, None),
        (Shape::MPopped { pairs }, R::Members(m)) => super::collection::mpopped(m.members, *pairs),
        (Shape::Reply, R::Reply(r)) => reply_frame(r),
        (Shape::Reply, R::Nil(_)) => Frame::NullArray,
        (Shape::BitField(fields), r) => super::bits::bitfield_read(fields, r),
        (Shape::Geo(read), r) => super::geo::answer(read, r),
        (Shape::MemoryUsage(key_len), r) => super::object::memory_usage(*key_len, r),
        (Shape::Hash(_) | Shape::SetRead(_) | Shape::Members | Shape::List(_) | Shape::Popped | Shape::ZPopped { .. } | Shape::KeyedScore | Shape::ZSet(_) | Shape::MPopped { .. } | Shape::Reply, other) => unexpected(&other),
        (_, r) => string_key(shape, r),
    }
}

/// The reply of a command for strings, or for any type.
fn string_key(shape: Shape, r: R) -> Frame {
    // The other shapes that read a value are for strings; those that read
    // only the key's existence, type or expiry take any type.
    if let R::Value(v) = &r
        && v.value_type != pb::ValueType::String as i32
        && !matches!(shape, Shape::Type | Shape::Ttl { .. } | Shape::ExpireTime { .. } | Shape::Integer | Shape::Set { .. } | Shape::Applied)
    {
        return super::wrong_type();
    }
    match (shape, r) {
        (Shape::Value, r) => value_frame(r),
        (Shape::Score, r) => match value_frame(r) {
            Frame::Bulk(text) => Frame::Double(String::from_utf8_lossy(&text).into_owned()),
            other => other,
        },
        (Shape::Length, R::Value(v)) => Frame::Integer(v.len as i64),
        (Shape::Length, R::Nil(_)) => Frame::Integer(0),
        (Shape::Integer, R::Integer(n)) => Frame::Integer(n),
        (Shape::Set { get: true }, R::Written(w)) => w.previous.map_or(Frame::Null, Frame::Bulk),
        (Shape::Set { get: false }, R::Written(w)) => if w.applied { Frame::ok() } else { Frame::Null },
        (Shape::Applied, R::Written(w)) => Frame::Integer(w.applied as i64),
        (Shape::Type, R::Value(v)) => Frame::Simple(type_name(v.value_type)),
        (Shape::Type, R::Nil(_)) => Frame::Simple("none".into()),
        (Shape::Range { .. }, R::Nil(_)) => Frame::Bulk(bytes::Bytes::new()),
        (Shape::Range { start, end }, R::Value(v)) => Frame::Bulk(v.value.slice(super::strings::range(v.value.len(), start, end))),
        (Shape::Bit { .. } | Shape::BitCount(_), R::Nil(_)) => Frame::Integer(0),
        (Shape::Bit { offset }, R::Value(v)) => Frame::Integer(super::bits::bit_at(&v.value, offset)),
        (Shape::BitCount(args), R::Value(v)) => super::bits::count_bits(&v.value, args),
        (Shape::BitPos(args), R::Nil(_)) => Frame::Integer(if args.bit { -1 } else { 0 }),
        (Shape::BitPos(args), R::Value(v)) => super::bits::bit_position(&v.value, args),
        (Shape::ExpireTime { .. }, R::Nil(_)) => Frame::Integer(-2),
        (Shape::ExpireTime { .. }, R::Value(v)) if v.expire_at_ms == 0 => Frame::Integer(-1),
        (Shape::ExpireTime { millis }, R::Value(v)) => {
            let at = v.expire_at_ms as i64;
            Frame::Integer(if millis { at } else { (at + 500) / 1000 })
        }
        (Shape::Ttl { .. }, R::Nil(_)) => Frame::Integer(-2),
        (Shape::Ttl { .. }, R::Value(v)) if v.expire_at_ms == 0 => Frame::Integer(-1),
        (Shape::Ttl { millis }, R::Value(v)) => {
            // Read the clock when answering, as Redis computes TTL at reply time.
            let left = (v.expire_at_ms as i64 - unix_ms() as i64).max(0);
            Frame::Integer(if millis { left } else { (left + 500) / 1000 })
        }
        (_, other) => unexpected(&other),
    }
}

/// TYPE's answer for a value of this wire type: its proto name, which is
/// Redis's in capitals.
fn type_name(value_type: i32) -> String {
    pb::ValueType::try_from(value_type).map_or_else(|_| "none".into(), |t| t.as_str_name().to_ascii_lowercase())
}

/// MGET's element: bulk for a string, null for none or another type.
fn value_frame(r: R) -> Frame {
    match r {
        R::Value(v) if v.value_type != pb::ValueType::String as i32 => Frame::Null,
        R::Value(v) => Frame::Bulk(v.value),
        R::Nil(_) => Frame::Null,
        other => unexpected(&other),
    }
}

/// A map's alternating keys and values as pairs.
fn pairs(a: pb::ReplyArray) -> Vec<(Frame, Frame)> {
    let mut items = a.items.into_iter().map(reply_frame);
    std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
}

/// A reply the owner built (`pb::Reply`) as the client sees it.
pub(crate) fn reply_frame(r: pb::Reply) -> Frame {
    use pb::reply::Kind as K;
    match r.kind {
        Some(K::Bulk(b)) => Frame::Bulk(b),
        Some(K::Integer(n)) => Frame::Integer(n),
        Some(K::Simple(s)) => Frame::Simple(s),
        Some(K::Error(e)) => Frame::Error(e),
        Some(K::Null(_)) => Frame::Null,
        Some(K::NullArray(_)) | None => Frame::NullArray,
        Some(K::Array(a)) => Frame::Array(a.items.into_iter().map(reply_frame).collect()),
        Some(K::Map(a)) => Frame::Map(pairs(a)),
        Some(K::NestedMap(a)) => Frame::NestedMap(pairs(a)),
        Some(K::Set(a)) => Frame::Set(a.items.into_iter().map(reply_frame).collect()),
        Some(K::Double(d)) => Frame::Double(d),
        Some(K::BigNumber(n)) => Frame::BigNumber(n),
        Some(K::Verbatim(v)) => match <[u8; 3]>::try_from(&v.format[..]) {
            Ok(format) => Frame::Verbatim { format, text: v.text },
            Err(_) => Frame::Bulk(v.text),
        },
        Some(K::Boolean(b)) => Frame::Boolean(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &str) -> R {
        R::Value(pb::Value { value: bytes::Bytes::from(v.to_string()), ..Default::default() })
    }

    #[test]
    fn first_failing_op_answers_for_a_multi_key_command() {
        let outcomes = vec![Ok(value("a")), Err(DispatchError::TryAgain(5)), Err(DispatchError::NoTable)];
        assert_eq!(reply(Shape::Values, outcomes), Frame::error("TRYAGAIN partition is moving; retry budget of 5 ms spent"));
        let node_error = R::Error(pb::OpError { kind: 1, message: "value is not an integer or out of range".into() });
        assert_eq!(reply(Shape::Integer, vec![Ok(node_error)]), Frame::error("ERR value is not an integer or out of range"));
    }

    #[test]
    fn shapes_build_redis_replies() {
        let nil = || R::Nil(pb::Nil {});
        assert_eq!(reply(Shape::Values, vec![Ok(value("a")), Ok(nil())]), Frame::Array(vec![Frame::Bulk("a".into()), Frame::Null]));
        assert_eq!(reply(Shape::Deleted, vec![Ok(R::Integer(1)), Ok(R::Integer(0)), Ok(R::Integer(1))]), Frame::Integer(2));
        assert_eq!(reply(Shape::Present, vec![Ok(value("a")), Ok(nil()), Ok(value("b"))]), Frame::Integer(2));
        assert_eq!(reply(Shape::Length, vec![Ok(nil())]), Frame::Integer(0));
        assert_eq!(reply(Shape::Ttl { millis: true }, vec![Ok(nil())]), Frame::Integer(-2));
        assert_eq!(reply(Shape::Ttl { millis: false }, vec![Ok(value("a"))]), Frame::Integer(-1));
        let written = |applied| R::Written(pb::Written { applied, previous: None });
        assert_eq!(reply(Shape::Set { get: false }, vec![Ok(written(true))]), Frame::ok());
        assert_eq!(reply(Shape::Set { get: false }, vec![Ok(written(false))]), Frame::Null);
        assert_eq!(reply(Shape::Set { get: true }, vec![Ok(written(true))]), Frame::Null);
        assert_eq!(reply(Shape::Applied, vec![Ok(written(true))]), Frame::Integer(1));
        assert_eq!(reply(Shape::Applied, vec![Ok(written(false))]), Frame::Integer(0));
        assert_eq!(reply(Shape::Type, vec![Ok(value("a"))]), Frame::Simple("string".into()));
        assert_eq!(reply(Shape::Type, vec![Ok(nil())]), Frame::Simple("none".into()));
        assert_eq!(reply(Shape::Range { start: 1, end: -2 }, vec![Ok(value("hello"))]), Frame::Bulk("ell".into()));
        assert_eq!(reply(Shape::Range { start: 0, end: -1 }, vec![Ok(nil())]), Frame::Bulk("".into()));
        let expiring = |at| R::Value(pb::Value { expire_at_ms: at, ..Default::default() });
        assert_eq!(reply(Shape::ExpireTime { millis: false }, vec![Ok(expiring(1_700_000_000_499))]), Frame::Integer(1_700_000_000));
        assert_eq!(reply(Shape::ExpireTime { millis: false }, vec![Ok(expiring(1_700_000_000_500))]), Frame::Integer(1_700_000_001));
        assert_eq!(reply(Shape::ExpireTime { millis: true }, vec![Ok(expiring(1_700_000_000_500))]), Frame::Integer(1_700_000_000_500));
        assert_eq!(reply(Shape::ExpireTime { millis: true }, vec![Ok(expiring(0))]), Frame::Integer(-1));
        assert_eq!(reply(Shape::ExpireTime { millis: false }, vec![Ok(nil())]), Frame::Integer(-2));
    }
}

