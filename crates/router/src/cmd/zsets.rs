//! Sorted set commands: ZADD ZINCRBY ZREM ZPOPMIN ZPOPMAX ZMPOP
//! ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZUNIONSTORE
//! ZINTERSTORE ZDIFFSTORE ZRANGESTORE (node operations) and ZSCORE
//! ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK ZRANGE ZRANGEBYSCORE
//! ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZRANDMEMBER ZSCAN
//! ZUNION ZINTER ZDIFF ZINTERCARD (reads of a GET, answered here).
//!
//! A sorted set is one record ([`evenkeel_types::zset`]), ordered by score
//! then member as Redis orders one, so every listing matches Redis's.
//! Scores print as Redis 7.0 prints them (`%.17g`). Ranges are read by
//! the same code on both sides ([`Range::parse`]); the router checks them
//! first so their errors answer before the key is looked up, as in Redis.
//!
//! ZUNION, ZINTER, ZDIFF and ZINTERCARD read each key as MGET does (each
//! key atomic, the command as a whole only inside MULTI); they take sets
//! too (every member scoring 1). Redis checks their keys' types before
//! their options, so an option error waits in the reply shape until the
//! GETs show every key is a set, a sorted set or nothing.

use super::collection;
use super::plan::{Planned, Shape, ZCombine, ZSetRead};
use super::{int_arg, syntax_error};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::float::{format_double, parse_double};
use evenkeel_types::set::Set;
use evenkeel_types::zset::{Aggregate, Bounds, By, Combine, Range, RangeError, ZSet};

fn not_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}

fn range_error(e: RangeError) -> Frame {
    Frame::error(match e {
        RangeError::NotInteger => "ERR value is not an integer or out of range",
        RangeError::NotFloat => "ERR min or max is not a float",
        RangeError::NotLexItem => "ERR min or max not valid string range item",
    })
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...],
/// checked in Redis 7.0's order: the pairs, the option conflicts, INCR's
/// single pair, then every score, all before the key.
pub fn zadd(a: &[Bytes]) -> Result<Planned, Frame> {
    let mut op = pb::ZAdd::default();
    let mut at = 2;
    while let Some(option) = a.get(at) {
        let flag = match option.to_ascii_lowercase().as_slice() {
            b"nx" => &mut op.nx,
            b"xx" => &mut op.xx,
            b"gt" => &mut op.gt,
            b"lt" => &mut op.lt,
            b"ch" => &mut op.ch,
            b"incr" => &mut op.incr,
            _ => break,
        };
        *flag = true;
        at += 1;
    }
    let pairs = &a[at..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(syntax_error());
    }
    if op.nx && op.xx {
        return Err(Frame::error("ERR XX and NX options at the same time are not compatible"));
    }
    if (op.nx && (op.gt || op.lt)) || (op.gt && op.lt) {
        return Err(Frame::error("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if op.incr && pairs.len() > 2 {
        return Err(Frame::error("ERR INCR option supports a single increment-element pair"));
    }
    for pair in pairs.chunks(2) {
        op.scores.push(parse_double(&pair[0]).ok_or_else(not_float)?);
        op.members.push(pair[1].clone());
    }
    let shape = if op.incr { Shape::Score } else { Shape::Integer };
    Ok(Planned::one(&a[1], Kind::ZAdd(op), shape))
}

/// ZINCRBY key increment member: ZADD INCR.
pub fn zincrby(a: &[Bytes]) -> Result<Planned, Frame> {
    let increment = parse_double(&a[2]).ok_or_else(not_float)?;
    let op = pb::ZAdd { scores: vec![increment], members: vec![a[3].clone()], incr: true, ..Default::default() };
    Ok(Planned::one(&a[1], Kind::ZAdd(op), Shape::Score))
}

pub fn zrem(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::ZRem(pb::ZRem { members: a[2..].to_vec() }), Shape::Integer))
}

/// ZPOPMIN/ZPOPMAX key [count]: Redis answers any count but a
/// non-negative integer with "must be positive".
pub fn zpop(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let count = match a.len() {
        2 => None,
        3 => Some(int_arg(&a[2]).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| Frame::error("ERR value is out of range, must be positive"))?),
        _ => return Err(syntax_error()),
    };
    Ok(Planned::one(&a[1], Kind::ZPop(pb::ZPop { max: name == "zpopmax", count }), Shape::ZPopped { nested: count.is_some() }))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count].
pub fn zmpop(a: &[Bytes]) -> Result<Planned, Frame> {
    let m = collection::mpop_args(a, 1, b"min", b"max")?;
    let op = pb::ZmPop { keys: m.keys.to_vec(), max: !m.first_end, count: m.count, wait_ms: 0, blocked_since_us: 0 };
    Ok(Planned::one(&m.keys[0], Kind::ZMPop(op), Shape::MPopped { pairs: true }))
}

/// A range as a command gave it: the wire form the node reads, and the
/// same range read here.
struct RangeArgs {
    wire: pb::ZRange,
    range: Range,
    withscores: bool,
}

fn wire_by(by: By) -> pb::z_range::By {
    match by {
        By::Rank => pb::z_range::By::Rank,
        By::Score => pb::z_range::By::Score,
        By::Lex => pb::z_range::By::Lex,
    }
}

/// Reads `min max` and the options after them as Redis 7.0's
/// `zrangeGenericCommand` does, for a command that fixes `by` and `rev`
/// (ZRANGEBYSCORE and the like) or leaves them to the options (ZRANGE,
/// ZRANGESTORE: None). `a[at]`, `a[at + 1]` are the bounds as sent (max
/// first for a reverse score or lex range).
fn range_args(a: &[Bytes], at: usize, by: Option<By>, rev: Option<bool>, store: bool) -> Result<RangeArgs, Frame> {
    let (mut by_opt, mut rev_opt, mut withscores, mut limit) = (by, rev, false, (0i64, -1i64));
    let mut j = at + 2;
    while j < a.len() {
        let option = a[j].to_ascii_lowercase();
        let left = a.len() - j - 1;
        match option.as_slice() {
            b"withscores" if !store => withscores = true,
            b"limit" if left >= 2 => {
                limit = (int_arg(&a[j + 1])?, int_arg(&a[j + 2])?);
                j += 2;
            }
            b"rev" if rev_opt.is_none() => rev_opt = Some(true),
            b"bylex" if by_opt.is_none() => by_opt = Some(By::Lex),
            b"byscore" if by_opt.is_none() => by_opt = Some(By::Score),
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    let (by, rev) = (by_opt.unwrap_or(By::Rank), rev_opt.unwrap_or(false));
    if limit.1 != -1 && by == By::Rank {
        return Err(Frame::error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
    }
    if withscores && by == By::Lex {
        return Err(Frame::error("ERR syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    let (min, max) = if rev && by != By::Rank { (&a[at + 1], &a[at]) } else { (&a[at], &a[at + 1]) };
    let limit = (by != By::Rank).then_some(limit);
    let range = Range::parse(by, min, max, rev, limit).map_err(range_error)?;
    let wire = pb::ZRange { by: wire_by(by) as i32, min: min.clone(), max: max.clone(), rev, offset: limit.map(|l| l.0), count: limit.map_or(0, |l| l.1) };
    Ok(RangeArgs { wire, range, withscores })
}

/// ZRANGE and its older forms: a GET, answered by [`answer`].
pub fn zrange(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let (by, rev) = match name {
        "zrange" => (None, None),
        "zrevrange" => (Some(By::Rank), Some(true)),
        "zrangebyscore" => (Some(By::Score), Some(false)),
        "zrevrangebyscore" => (Some(By::Score), Some(true)),
        "zrangebylex" => (Some(By::Lex), Some(false)),
        _ => (Some(By::Lex), Some(true)),
    };
    let args = range_args(a, 2, by, rev, false)?;
    // By score or lex: only the members the range and its LIMIT select
    // (by score as the first nodes with projections read it).
    let get = match args.range.bounds {
        Bounds::Score { .. } => Some(collection::get_scores(args.wire)),
        Bounds::Lex { .. } => Some(collection::get_selection(args.wire, false)),
        Bounds::Rank { .. } => None,
    };
    let planned = read_of(&a[1], ZSetRead::Range { range: args.range, withscores: args.withscores });
    Ok(match get {
        Some(get) => Planned { ops: vec![crate::dispatch::KeyOp::new(a[1].clone(), get)], ..planned },
        None => planned,
    })
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
pub fn zrangestore(a: &[Bytes]) -> Result<Planned, Frame> {
    let args = range_args(a, 3, None, None, true)?;
    super::keys::one_slot(a[1..3].iter())?;
    Ok(Planned::one(&a[1], Kind::ZRangeStore(pb::ZRangeStore { source: a[2].clone(), range: Some(args.wire) }), Shape::Integer))
}

/// ZREMRANGEBYRANK/BYSCORE/BYLEX key min max.
pub fn zremrange(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let by = match name {
        "zremrangebyrank" => By::Rank,
        "zremrangebyscore" => By::Score,
        _ => By::Lex,
    };
    Range::parse(by, &a[2], &a[3], false, None).map_err(range_error)?;
    let wire = pb::ZRange { by: wire_by(by) as i32, min: a[2].clone(), max: a[3].clone(), ..Default::default() };
    Ok(Planned::one(&a[1], Kind::ZRemRange(pb::ZRemRange { range: Some(wire) }), Shape::Integer))
}

/// A read's GET: of the members it names, of the count alone, of a span
/// of ranks, or of the whole set.
fn read_of(key: &Bytes, read: ZSetRead) -> Planned {
    let get = match &read {
        ZSetRead::Score(m) | ZSetRead::Rank { member: m, .. } => collection::get_entries(vec![m.clone()]),
        ZSetRead::MScore(ms) => collection::get_entries(ms.clone()),
        ZSetRead::Card => collection::get_entries(Vec::new()),
        ZSetRead::Rand { count, .. } if let Some(get) = collection::get_random(*count) => get,
        ZSetRead::Range { range: Range { bounds: Bounds::Rank { start, stop }, rev, limit: None }, .. } => collection::get_window(*start, *stop, *rev),
        _ => Kind::Get(pb::Get::default()),
    };
    Planned::one(key, get, Shape::ZSet(Box::new(read)))
}

/// The other one-key reads: a GET, answered by [`answer`].
pub fn read(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let read = match name {
        "zscore" => ZSetRead::Score(a[2].clone()),
        "zmscore" => ZSetRead::MScore(a[2..].to_vec()),
        "zcard" => ZSetRead::Card,
        "zcount" | "zlexcount" => {
            // Only how many: the node counts them.
            let by = if name == "zcount" { By::Score } else { By::Lex };
            let range = Range::parse(by, &a[2], &a[3], false, None).map_err(range_error)?;
            let wire = pb::ZRange { by: wire_by(by) as i32, min: a[2].clone(), max: a[3].clone(), ..Default::default() };
            let planned = read_of(&a[1], ZSetRead::Count(range));
            return Ok(Planned { ops: vec![crate::dispatch::KeyOp::new(a[1].clone(), collection::get_selection(wire, true))], ..planned });
        }
        "zrank" | "zrevrank" => ZSetRead::Rank { member: a[2].clone(), rev: name == "zrevrank" },
        "zrandmember" => {
            let (count, withscores) = collection::rand_args(a, b"withscores")?;
            ZSetRead::Rand { count, withscores }
        }
        "zscan" => {
            let (options, get) = collection::scan_args(a)?;
            return Ok(Planned::one(&a[1], get, Shape::ZSet(Box::new(ZSetRead::Scan(options)))));
        }
        other => unreachable!("{other} is not a sorted set read"),
    };
    Ok(read_of(&a[1], read))
}

/// `numkeys` and the keys after it at `a[at]`, checked as Redis 7.0's
/// `zunionInterDiffGenericCommand` does.
fn numkeys<'a>(name: &str, a: &'a [Bytes], at: usize) -> Result<(&'a [Bytes], &'a [Bytes]), Frame> {
    let n = int_arg(&a[at])?;
    if n < 1 {
        return Err(Frame::error(format!("ERR at least 1 input key is needed for '{name}' command")));
    }
    if n > (a.len() - at - 1) as i64 {
        return Err(syntax_error());
    }
    Ok(a[at + 1..].split_at(n as usize))
}

/// The options of ZUNION, ZINTER, ZDIFF and their STORE forms.
fn combine_options(op: Combine, keys: usize, options: &[Bytes], store: bool) -> Result<ZCombine, Frame> {
    let mut c = ZCombine { op, weights: Vec::new(), aggregate: Aggregate::Sum, withscores: false };
    let mut j = 0;
    while j < options.len() {
        let left = options.len() - j;
        match options[j].to_ascii_lowercase().as_slice() {
            b"weights" if op != Combine::Diff && left > keys => {
                c.weights = options[j + 1..=j + keys].iter().map(|w| parse_double(w).ok_or_else(|| Frame::error("ERR weight value is not a float"))).collect::<Result<_, _>>()?;
                j += keys + 1;
            }
            b"aggregate" if op != Combine::Diff && left >= 2 => {
                c.aggregate = match options[j + 1].to_ascii_lowercase().as_slice() {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return Err(syntax_error()),
                };
                j += 2;
            }
            b"withscores" if !store => {
                c.withscores = true;
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
    }
    Ok(c)
}

fn combine_op(name: &str) -> Combine {
    match name.trim_end_matches("store") {
        "zunion" => Combine::Union,
        "zinter" => Combine::Inter,
        _ => Combine::Diff,
    }
}

/// ZUNION, ZINTER, ZDIFF numkeys key... [options]: a GET per key,
/// combined by [`combined`].
pub fn combine(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let (keys, options) = numkeys(name, a, 1)?;
    super::keys::one_slot(keys.iter())?;
    let combine = combine_options(combine_op(name), keys.len(), options, false);
    Ok(Planned::per_key(keys, Kind::Get(pb::Get::default()), Shape::ZCombine(Box::new(combine))))
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE dst numkeys key... [options]: one
/// node step over keys of one hash slot. With an option error, the
/// sources are read instead, to answer it once their types are checked.
pub fn store(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let (keys, options) = numkeys(name, a, 2)?;
    super::keys::one_slot(std::iter::once(&a[1]).chain(keys))?;
    match combine_options(combine_op(name), keys.len(), options, true) {
        Err(e) => Ok(Planned::per_key(keys, Kind::Get(pb::Get::default()), Shape::ZCombine(Box::new(Err(e))))),
        Ok(c) => {
            let op = match c.op {
                Combine::Union => pb::z_store::Op::Union,
                Combine::Inter => pb::z_store::Op::Inter,
                Combine::Diff => pb::z_store::Op::Diff,
            };
            let aggregate = match c.aggregate {
                Aggregate::Sum => pb::z_store::Aggregate::Sum,
                Aggregate::Min => pb::z_store::Aggregate::Min,
                Aggregate::Max => pb::z_store::Aggregate::Max,
            };
            let st = pb::ZStore { op: op as i32, sources: keys.to_vec(), weights: c.weights, aggregate: aggregate as i32 };
            Ok(Planned::one(&a[1], Kind::ZStore(st), Shape::Integer))
        }
    }
}

/// ZINTERCARD numkeys key... [LIMIT n].
pub fn intercard(a: &[Bytes]) -> Result<Planned, Frame> {
    let (keys, options) = numkeys("zintercard", a, 1)?;
    super::keys::one_slot(keys.iter())?;
    let limit = intercard_limit(options);
    Ok(Planned::per_key(keys, Kind::Get(pb::Get::default()), Shape::ZInterCard(limit)))
}

/// ZINTERCARD's options: LIMIT n, any number of times (the last counts).
fn intercard_limit(options: &[Bytes]) -> Result<u64, Frame> {
    let mut limit = 0;
    for pair in options.chunks(2) {
        match pair {
            [option, value] if option.eq_ignore_ascii_case(b"limit") => {
                limit = int_arg(value).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| Frame::error("ERR LIMIT can't be negative"))?;
            }
            _ => return Err(syntax_error()),
        }
    }
    Ok(limit)
}

/// The sorted set a GET found (None: no key), or the reply for a value
/// that is not one.
fn decode(value: Option<&pb::Value>) -> Result<Option<ZSet>, Frame> {
    collection::typed_value(value, pb::ValueType::Zset, ZSet::decode)
}

/// A score as Redis answers it: a double (`%.17g`; a bulk string in RESP2).
pub(crate) fn score_frame(score: f64) -> Frame {
    Frame::Double(format_double(score))
}

/// A score the node wrote as text (a pop's), as [`score_frame`] answers it.
fn score_text(text: &Bytes) -> Frame {
    Frame::Double(String::from_utf8_lossy(text).into_owned())
}

/// Members and scores as a pop lists them (member, score, ...).
fn scored(flat: Vec<Bytes>) -> Vec<(Frame, Frame)> {
    flat.chunks(2).map(|p| (Frame::Bulk(p[0].clone()), p.get(1).map_or(Frame::Null, score_text))).collect()
}

/// ZPOPMIN/ZPOPMAX's reply: flat, or (with a count) pairs in RESP3, as
/// Redis 7.0 answers.
pub(crate) fn popped(flat: Vec<Bytes>, nested: bool) -> Frame {
    let pairs = scored(flat);
    if nested { Frame::Pairs(pairs) } else { Frame::Array(pairs.into_iter().flat_map(|(m, s)| [m, s]).collect()) }
}

/// BZPOPMIN/BZPOPMAX's reply: `[key, member, score]`.
pub(crate) fn keyed_score(popped: Vec<Bytes>) -> Frame {
    let mut items = popped.into_iter();
    let key = items.next().map_or(Frame::Null, Frame::Bulk);
    Frame::Array(std::iter::once(key).chain(scored(items.collect()).into_iter().flat_map(|(m, s)| [m, s])).collect())
}

/// ZMPOP's `[[member, score], ...]`.
pub(crate) fn mpopped_pairs(flat: Vec<Bytes>) -> Vec<Frame> {
    scored(flat).into_iter().map(|(m, s)| Frame::Array(vec![m, s])).collect()
}

/// A score as ZSCAN answers it: Redis returns a small sorted set's
/// listpack entries as stored, where a whole score of magnitude up to 2^62
/// is an integer (`1e17` answers `100000000000000000`; ZRANGE's `%.17g`
/// answers `1e+17`).
fn stored_score(score: f64) -> String {
    const LIMIT: f64 = 4_611_686_018_427_387_904.0;
    if score.fract() == 0.0 && score.abs() <= LIMIT { (score as i64).to_string() } else { format_double(score) }
}

/// Members, each with its score when `withscores` (pairs in RESP3).
fn listing(entries: impl IntoIterator<Item = (Bytes, f64)>, withscores: bool) -> Frame {
    let entries = entries.into_iter();
    if withscores {
        Frame::Pairs(entries.map(|(m, s)| (Frame::Bulk(m), score_frame(s))).collect())
    } else {
        Frame::Array(entries.map(|(m, _)| Frame::Bulk(m)).collect())
    }
}

/// The reply to a one-key read, from the GET's value (None: no key).
pub(crate) fn answer(read: &ZSetRead, value: Option<&pb::Value>) -> Frame {
    // A window or a range by score or lex holds just what it lists, in
    // stored order: walked, not indexed.
    if let (ZSetRead::Range { range: Range { rev, .. }, withscores }, true) = (read, collection::is_part(value)) {
        return match collection::typed_value(value, pb::ValueType::Zset, ZSet::entries) {
            Ok(entries) => {
                let mut entries = entries.unwrap_or_default();
                if *rev {
                    entries.reverse();
                }
                listing(entries, *withscores)
            }
            Err(e) => e,
        };
    }
    // The node's picks, in order (they may repeat), listed from the
    // highest as Redis walks the set for them.
    if let (ZSetRead::Rand { count, withscores }, true) = (read, collection::is_part(value)) {
        return match collection::typed_value(value, pb::ValueType::Zset, ZSet::entries) {
            Ok(entries) => {
                let picks: Vec<(Bytes, Frame)> = entries.unwrap_or_default().into_iter().rev().map(|(m, s)| (m, score_frame(s))).collect();
                collection::picks_reply(picks.iter().map(|(m, s)| (m, s)).collect(), *count, *withscores)
            }
            Err(e) => e,
        };
    }
    let z = match decode(value) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let part = collection::is_part(value);
    let score = |m: &Bytes| z.as_ref().and_then(|z| z.score(m)).map_or(Frame::Null, score_frame);
    let all = || z.iter().flat_map(|z| z.iter()).map(|(m, s)| (m.clone(), s));
    match read {
        ZSetRead::Score(m) => score(m),
        ZSetRead::MScore(ms) => Frame::Array(ms.iter().map(score).collect()),
        ZSetRead::Card => Frame::Integer(collection::elements(value, z.as_ref().map_or(0, ZSet::len))),
        ZSetRead::Count(_) if part => Frame::Integer(value.and_then(|v| v.selected).unwrap_or(0) as i64),
        ZSetRead::Count(range) => Frame::Integer(z.as_ref().map_or(0, |z| z.select(range).len()) as i64),
        // A part holding the member says where it stands in the whole.
        ZSetRead::Rank { member, rev } if part => match (z.as_ref().and_then(|z| z.score(member)), value) {
            (Some(_), Some(v)) => Frame::Integer(if *rev { collection::elements(value, 0) - 1 - v.first as i64 } else { v.first as i64 }),
            _ => Frame::Null,
        },
        ZSetRead::Rank { member, rev } => z.as_ref().and_then(|z| z.rank(member, *rev)).map_or(Frame::Null, |r| Frame::Integer(r as i64)),
        ZSetRead::Range { range, withscores } => listing(z.as_ref().map(|z| z.select(range)).unwrap_or_default(), *withscores),
        ZSetRead::Rand { count, withscores } => {
            // Highest first: Redis answers a count past the size with the
            // whole set, walked from its end.
            let entries: Vec<(Bytes, Frame)> = all().rev().map(|(m, s)| (m, score_frame(s))).collect();
            let refs: Vec<(&Bytes, &Frame)> = entries.iter().map(|(m, s)| (m, s)).collect();
            collection::random_entries(&refs, *count, *withscores)
        }
        ZSetRead::Scan(options) => {
            let Some(z) = z else { return super::keys::scan_reply(0, Vec::new()) };
            let pattern = match options {
                Ok(pattern) => pattern,
                Err(e) => return e.clone(),
            };
            let matching = z.iter().filter(|(m, _)| pattern.as_ref().is_none_or(|p| crate::glob::glob_match(p, m)));
            let items = matching.flat_map(|(m, s)| [Frame::Bulk(m.clone()), Frame::Bulk(Bytes::from(stored_score(s)))]).collect();
            super::keys::scan_reply(collection::next_cursor(value), items)
        }
    }
}

/// Each key's GET as a combination input: a sorted set, a set (scores of
/// 1) or nothing; WRONGTYPE for anything else, as Redis checks every key.
fn inputs(results: Vec<R>) -> Result<Vec<ZSet>, Frame> {
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        let value = match r {
            R::Value(v) => v,
            R::Nil(_) => {
                out.push(ZSet::default());
                continue;
            }
            other => return Err(super::unexpected(&other)),
        };
        if value.value_type == pb::ValueType::Set as i32 {
            let set = collection::typed_value(Some(&value), pb::ValueType::Set, Set::decode)?.unwrap_or_default();
            out.push(set.members().map(|m| (m.clone(), 1.0)).collect());
        } else {
            out.push(decode(Some(&value))?.unwrap_or_default());
        }
    }
    Ok(out)
}

/// ZUNION, ZINTER, ZDIFF's reply (or a STORE form's option error) from
/// each key's GET.
pub(crate) fn combined(c: &Result<ZCombine, Frame>, results: Vec<R>) -> Frame {
    let sets = match inputs(results) {
        Ok(sets) => sets,
        Err(e) => return e,
    };
    let c = match c {
        Ok(c) => c,
        Err(e) => return e.clone(),
    };
    let weighted: Vec<(ZSet, f64)> = sets.into_iter().enumerate().map(|(i, z)| (z, c.weights.get(i).copied().unwrap_or(1.0))).collect();
    let result = evenkeel_types::zset::combine(c.op, &weighted, c.aggregate);
    listing(result.iter().map(|(m, s)| (m.clone(), s)), c.withscores)
}

/// ZINTERCARD's reply: the intersection's size, capped at the limit (0:
/// none); a LIMIT error answers once the keys' types are checked.
pub(crate) fn inter_card(limit: &Result<u64, Frame>, results: Vec<R>) -> Frame {
    let sets = match inputs(results) {
        Ok(sets) => sets,
        Err(e) => return e,
    };
    let limit = match limit {
        Ok(limit) => *limit,
        Err(e) => return e.clone(),
    };
    let weighted: Vec<(ZSet, f64)> = sets.into_iter().map(|z| (z, 1.0)).collect();
    let n = evenkeel_types::zset::combine(Combine::Inter, &weighted, Aggregate::Sum).len() as u64;
    Frame::Integer(if limit == 0 { n } else { n.min(limit) } as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn zset_value(entries: &[(&str, f64)]) -> pb::Value {
        let z: ZSet = entries.iter().map(|(m, s)| (Bytes::copy_from_slice(m.as_bytes()), *s)).collect();
        let value = z.encode();
        pb::Value { len: value.len() as u64, value, value_type: pb::ValueType::Zset as i32, ..Default::default() }
    }

    /// What the node answers a projected GET with, cut from `whole`.
    fn part_of(whole: &pb::Value, get: &Kind) -> pb::Value {
        let ty = evenkeel_types::record::ValueType::ZSet;
        if let Kind::Get(pb::Get { select: Some(s), .. }) = get {
            let r = s.range.as_ref().unwrap();
            let by = [By::Rank, By::Score, By::Lex][r.by as usize];
            let range = Range::parse(by, &r.min, &r.max, r.rev, r.offset.map(|o| (o, r.count))).unwrap();
            let (part, selected) = evenkeel_types::project::select(&whole.value, &range, s.count_only).unwrap();
            return pb::Value { len: part.value.len() as u64, value: part.value, elements: Some(part.elements), first: part.first, selected: Some(selected), ..whole.clone() };
        }
        let Kind::Get(pb::Get { project: Some(p), .. }) = get else { panic!("not projected: {get:?}") };
        let part = match (&p.window, &p.scores) {
            (Some(w), _) => evenkeel_types::project::window(ty, &whole.value, w.start, w.stop, w.rev).unwrap(),
            (None, Some(r)) => {
                let Ok(Range { bounds: Bounds::Score { min, max }, rev, limit }) = Range::parse(By::Score, &r.min, &r.max, r.rev, r.offset.map(|o| (o, r.count))) else { panic!("{r:?}") };
                evenkeel_types::project::scores(&whole.value, min, max, rev, limit)
            }
            (None, None) => evenkeel_types::project::entries(ty, &whole.value, &p.entries).unwrap(),
        };
        let part = part.unwrap();
        pb::Value { len: part.value.len() as u64, value: part.value, elements: Some(part.elements), first: part.first, ..whole.clone() }
    }

    #[test]
    fn point_reads_answer_from_a_part_as_from_the_whole() {
        let whole = zset_value(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0), ("e", 5.0)]);
        for line in ["zrank k c", "zrevrank k c", "zrank k zz", "zscore k d", "zmscore k e zz a", "zcard k", "zrange k 1 3 withscores", "zrange k -2 -1 rev", "zrevrange k 0 1", "zrange k 3 1", "zrangebyscore k (1 4 limit 1 1", "zrevrangebyscore k +inf 2 withscores", "zcount k (1 4", "zcount k 9 10", "zlexcount k [b +", "zrangebylex k [b (e limit 1 2", "zrevrangebylex k + (b", "zrange k [e [c bylex rev limit 0 1", "zrangebylex k [zz +"] {
            let a = args(line);
            let name = &line[..line.find(' ').unwrap()];
            let planned = if name.contains("range") { zrange(name, &a) } else { read(name, &a) }.unwrap();
            let Shape::ZSet(zread) = planned.shape else { panic!() };
            let part = part_of(&whole, &planned.ops[0].kind);
            assert!(part.value.len() < whole.value.len() || line == "zrange k 3 1", "{line}: a part, not the whole");
            assert_eq!(answer(&zread, Some(&part)), answer(&zread, Some(&whole)), "{line}");
        }
    }

    #[test]
    fn random_members_answer_the_nodes_picks_from_the_highest() {
        let whole = zset_value(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        let a = args("zrandmember k 2 withscores");
        let planned = read("zrandmember", &a).unwrap();
        assert!(matches!(&planned.ops[0].kind, Kind::Get(pb::Get { random: Some(pb::Random { count: Some(2), .. }), .. })), "picked on the node");
        let Shape::ZSet(zread) = planned.shape else { panic!() };
        let part = collection::picked_part(&whole, &[0, 2]);
        let b = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(answer(&zread, Some(&part)).into_resp2(), Frame::Array(vec![b("c"), b("3"), b("a"), b("1")]));
        let all = collection::picked_part(&whole, &[0, 1, 2]);
        let Shape::ZSet(every) = read("zrandmember", &args("zrandmember k 3 withscores")).unwrap().shape else { panic!() };
        assert_eq!(answer(&every, Some(&all)), answer(&every, Some(&whole)), "the whole: as from the whole value");
    }

    fn bulks(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))).collect())
    }

    #[test]
    fn zadd_checks_pairs_then_options_then_scores() {
        assert_eq!(zadd(&args("ZADD k NX XX 1")).unwrap_err(), syntax_error(), "an odd pair count comes first");
        assert_eq!(zadd(&args("ZADD k NX XX x a")).unwrap_err(), Frame::error("ERR XX and NX options at the same time are not compatible"));
        assert_eq!(zadd(&args("ZADD k INCR 1 a 2 b")).unwrap_err(), Frame::error("ERR INCR option supports a single increment-element pair"));
        assert_eq!(zadd(&args("ZADD k 1 a nan b")).unwrap_err(), not_float());
        let planned = zadd(&args("ZADD k ch 1 nx")).unwrap();
        let Kind::ZAdd(op) = &planned.ops[0].kind else { panic!() };
        assert!(op.ch && !op.nx && op.members == vec![Bytes::from_static(b"nx")], "options end at the first score");
    }

    #[test]
    fn reverse_score_ranges_take_max_first() {
        let z = zset_value(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        let answered = |line: &str| {
            let a = args(line);
            let planned = zrange(&String::from_utf8_lossy(&a[0]).to_ascii_lowercase(), &a).unwrap();
            let Shape::ZSet(read) = planned.shape else { panic!() };
            answer(&read, Some(&z))
        };
        assert_eq!(answered("ZREVRANGEBYSCORE k 2 -inf WITHSCORES").into_resp2(), bulks(&["b", "2", "a", "1"]));
        assert_eq!(answered("ZRANGE k (3 1 BYSCORE REV LIMIT 1 1"), bulks(&["a"]));
        assert_eq!(answered("ZRANGE k 0 0 REV"), bulks(&["c"]));
        assert_eq!(answered("ZREVRANGEBYLEX k + [b"), bulks(&["c", "b"]));
    }

    #[test]
    fn combinations_check_types_before_options() {
        let set: Set = [Bytes::from_static(b"x")].into_iter().collect();
        let set_value = pb::Value { value: set.encode(), value_type: pb::ValueType::Set as i32, ..Default::default() };
        let results = || vec![R::Value(zset_value(&[("x", 2.0), ("y", 1.0)])), R::Value(set_value.clone())];
        let c = |op, withscores| Ok(ZCombine { op, weights: vec![], aggregate: Aggregate::Sum, withscores });
        assert_eq!(combined(&c(Combine::Inter, true), results()), Frame::Pairs(vec![(Frame::bulk("x"), Frame::Double("3".into()))]), "a set's member scores 1");
        assert_eq!(combined(&c(Combine::Diff, false), results()), bulks(&["y"]));
        let string = R::Value(pb::Value { value: Bytes::from_static(b"v"), ..Default::default() });
        assert_eq!(combined(&Err(syntax_error()), vec![R::Nil(pb::Nil {}), string]), super::super::wrong_type(), "WRONGTYPE before the option error");
        assert_eq!(combined(&Err(syntax_error()), results()), syntax_error());
        assert_eq!(inter_card(&Ok(1), results()), Frame::Integer(1));
    }

    #[test]
    fn zscan_answers_whole_scores_as_integers() {
        assert_eq!((stored_score(1e17), stored_score(2.5), stored_score(-4_611_686_018_427_387_904.0)), ("100000000000000000".into(), "2.5".into(), "-4611686018427387904".into()));
        assert_eq!((stored_score(5e18), stored_score(f64::INFINITY), stored_score(-0.0)), ("5e+18".into(), "inf".into(), "0".into()));
    }

    #[test]
    fn zmpop_replies_nest_pairs_under_the_key() {
        let reply = collection::mpopped(["k", "a", "1", "b", "2"].iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect(), true);
        let pair = |m: &'static str, s: &str| Frame::Array(vec![Frame::Bulk(Bytes::from_static(m.as_bytes())), Frame::Double(s.into())]);
        assert_eq!(reply, Frame::Array(vec![Frame::Bulk(Bytes::from_static(b"k")), Frame::Array(vec![pair("a", "1"), pair("b", "2")])]));
        assert_eq!(zmpop(&args("ZMPOP 0 k MIN")).unwrap_err(), Frame::error("ERR numkeys should be greater than 0"));
        assert_eq!(zmpop(&args("ZMPOP 2 k MIN")).unwrap_err(), syntax_error());
        assert_eq!(zmpop(&args("ZMPOP 1 k MIN COUNT 0")).unwrap_err(), Frame::error("ERR count should be greater than 0"));
    }
}
