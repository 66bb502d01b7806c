//! What each data operation does to one key, as pure functions.
//!
//! [`apply`] takes the key's stored record (if any), the operation, the time
//! and the version a write would get, and returns the record to store (if the
//! operation changes anything) and the reply. Nothing here touches storage or
//! reads a clock, so Redis's semantics are unit-tested on their own.

use bytes::{Bytes, BytesMut};
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::int::parse_i64;
use evenkeel_types::{Record, ValueType, Version};
use evenkeel_types::zset::{Bounds, Range};

mod collection;
mod hashes;
mod hll;
mod lists;
mod sets;
mod streams;
pub mod notify;
mod zsets;

/// Whether `kind` only reads one key (GET, WATCH, a read-only stream
/// command on one stream): it runs without the partition's lock.
pub fn is_read(kind: &Kind) -> bool {
    match kind {
        Kind::Get(_) | Kind::Watch(_) | Kind::CancelWait(_) => true,
        Kind::Stream(s) => s.keys.len() <= 1 && s.args.first().is_some_and(|name| evenkeel_types::stream::command::is_read_only(name)),
        _ => false,
    }
}

/// Whether `kind` may add data (Redis's `denyoom` commands): refused while
/// the node's disk is below its reserve. Reads, deletions, pops, expiry
/// changes and renames are not.
pub fn adds_data(kind: &Kind) -> bool {
    match kind {
        Kind::Set(_) | Kind::Append(_) | Kind::IncrBy(_) | Kind::IncrByFloat(_) | Kind::SetRange(_) | Kind::SetBit(_) => true,
        Kind::HSet(_) | Kind::HIncrBy(_) | Kind::HIncrByFloat(_) | Kind::SAdd(_) | Kind::LPush(_) | Kind::LInsert(_) | Kind::LSet(_) | Kind::ZAdd(_) => true,
        Kind::Copy(_) | Kind::MsetNx(_) | Kind::SetStore(_) | Kind::ZStore(_) | Kind::ZRangeStore(_) | Kind::SortStore(_) | Kind::BitOp(_) => true,
        Kind::PfAdd(_) | Kind::PfMerge(_) | Kind::PfDebug(_) | Kind::BitField(_) | Kind::GeoStore(_) | Kind::Restore(_) => true,
        Kind::Stream(s) => s.args.first().is_some_and(|name| ["xadd", "xsetid", "xgroup"].iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))),
        Kind::Transaction(t) => t.ops.iter().filter_map(|op| op.kind.as_ref()).any(adds_data),
        // Whatever its commands: it cannot be known before it runs.
        Kind::Script(s) => !s.read_only,
        _ => false,
    }
}

/// The outcome of one operation on one key.
#[derive(Debug, PartialEq)]
pub struct Applied {
    /// The record to store, when the operation changes the key.
    pub write: Option<Record>,
    pub reply: R,
}

/// Limits that apply while executing operations.
#[derive(Debug, Clone, Copy)]
pub struct OpLimits {
    /// Largest value APPEND or SET may produce (Redis: proto-max-bulk-len).
    pub max_value_bytes: usize,
}

impl Default for OpLimits {
    fn default() -> Self {
        OpLimits { max_value_bytes: 512 * 1024 * 1024 }
    }
}

/// The keys a multi-key operation (RENAME, COPY, MSETNX, SMOVE, LMOVE, the
/// set and sorted set STORE commands, ZRANGESTORE, ZMPOP, LMPOP, BITOP,
/// SORT ... STORE, XREAD and XREADGROUP over several streams) reads and may
/// write, its own `key` first; None for a single-key operation.
pub fn multi_keys<'a>(kind: &'a Kind, key: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    match kind {
        // From the op key to `to`; one key when they are the same.
        Kind::Rename(pb::Rename { to, .. }) | Kind::Copy(pb::Copy { to, .. }) | Kind::SMove(pb::SMove { to, .. }) | Kind::LMove(pb::LMove { to, .. }) => {
            Some(if to == key { vec![key] } else { vec![key, to] })
        }
        Kind::ZRangeStore(pb::ZRangeStore { source: to, .. }) | Kind::SortStore(pb::SortStore { source: to, .. }) | Kind::GeoStore(pb::GeoStore { source: to, .. }) => {
            Some(if to == key { vec![key] } else { vec![key, to] })
        }
        Kind::SetStore(pb::SetStore { sources, .. }) | Kind::ZStore(pb::ZStore { sources, .. }) | Kind::BitOp(pb::BitOp { sources, .. }) => Some(std::iter::once(key).chain(sources.iter().map(|k| &k[..])).collect()),
        Kind::MsetNx(pb::MsetNx { keys, .. }) | Kind::ZMPop(pb::ZmPop { keys, .. }) | Kind::LMPop(pb::LmPop { keys, .. }) => Some(keys.iter().map(|k| &k[..]).collect()),
        Kind::Stream(pb::Stream { keys, .. }) | Kind::PfCount(pb::PfCount { keys }) if keys.len() > 1 => Some(keys.iter().map(|k| &k[..]).collect()),
        Kind::PfMerge(pb::PfMerge { sources }) => Some(std::iter::once(key).chain(sources.iter().map(|k| &k[..])).collect()),
        _ => None,
    }
}

/// The outcome of a multi-key operation: records to store by index into
/// its [`multi_keys`] (each key at most once), and the reply.
#[derive(Debug, PartialEq)]
pub struct AppliedMulti {
    pub writes: Vec<(usize, Record)>,
    pub reply: R,
}

/// Executes a multi-key `kind` against the stored record of each of its
/// [`multi_keys`] (`stored[i]`); the i-th write gets `versions[i]`.
pub fn apply_multi(kind: &Kind, stored: &[Option<Record>], now_ms: u64, versions: &[Version]) -> AppliedMulti {
    apply_multi_within(kind, stored, now_ms, versions, OpLimits::default())
}

/// [`apply_multi`] under `limits`: a value a step writes bigger than its
/// sources (the SMOVE or LMOVE target, a union STORE) is refused past the
/// value limit.
pub fn apply_multi_within(kind: &Kind, stored: &[Option<Record>], now_ms: u64, versions: &[Version], limits: OpLimits) -> AppliedMulti {
    let live = |i: usize| stored[i].as_ref().filter(|r| r.is_live(now_ms));
    let none = |reply| AppliedMulti { writes: vec![], reply };
    match kind {
        Kind::Rename(r) => {
            let Some(source) = live(0) else { return none(op_error(pb::op_error::Kind::NoSuchKey)) };
            let done = R::Integer(1);
            // Same key (one of it): nothing moves (RENAMENX answers 0,
            // RENAME OK).
            if stored.len() < 2 {
                return none(if r.nx { R::Integer(0) } else { done });
            }
            if r.nx && live(1).is_some() {
                return none(R::Integer(0));
            }
            let moved = source.restamped(source.expire_at_ms, versions[1]);
            AppliedMulti { writes: vec![(0, Record::tombstone(versions[0])), (1, moved)], reply: done }
        }
        Kind::Copy(c) => {
            // The router answers this itself, as Redis does, before asking.
            if stored.len() < 2 {
                return none(error(pb::op_error::Kind::Internal, "source and destination objects are the same"));
            }
            let Some(source) = live(0) else { return none(R::Integer(0)) };
            if live(1).is_some() && !c.replace {
                return none(R::Integer(0));
            }
            let copied = source.restamped(source.expire_at_ms, versions[1]);
            AppliedMulti { writes: vec![(1, copied)], reply: R::Integer(1) }
        }
        Kind::SMove(m) => sets::s_move(m, &live, versions, limits),
        Kind::SetStore(st) => sets::set_store(st, &live, versions[0], limits),
        Kind::LMove(m) => lists::l_move(m, &live, versions, limits),
        Kind::ZStore(st) => zsets::z_store(st, &live, versions[0], limits),
        Kind::ZRangeStore(rs) => zsets::z_range_store(rs, &live, versions, limits),
        Kind::ZMPop(m) => zsets::z_m_pop(m, &live, versions),
        Kind::LMPop(m) => lists::l_m_pop(m, &live, versions),
        Kind::BitOp(b) => bit_op(b, &live, versions[0]),
        Kind::SortStore(st) => lists::sort_store(st, &live, versions, limits),
        Kind::Stream(st) => streams::run(st, &live, now_ms, versions, limits),
        Kind::PfCount(c) => hll::pf_count_union(c.keys.len(), &live),
        Kind::PfMerge(m) => hll::pf_merge(m.sources.len() + 1, &live, versions[0]),
        Kind::GeoStore(g) => geo_store(g, &live, stored.len(), versions[0], limits),
        Kind::MsetNx(m) => {
            if m.keys.is_empty() || m.keys.len() != m.values.len() {
                return none(error(pb::op_error::Kind::Internal, "malformed MSETNX: a value for each key"));
            }
            if (0..stored.len()).any(|i| live(i).is_some()) {
                return none(R::Integer(0));
            }
            // The last value of a key given more than once.
            let mut writes: Vec<(usize, Record)> = Vec::new();
            for (i, key) in m.keys.iter().enumerate() {
                let first = m.keys.iter().position(|k| k == key).expect("the key is in the list");
                let value = Record::value(m.values[i].clone(), None, versions[first]);
                match writes.iter_mut().find(|(j, _)| *j == first) {
                    Some(w) => w.1 = value,
                    None => writes.push((first, value)),
                }
            }
            AppliedMulti { writes, reply: R::Integer(1) }
        }
        other => unreachable!("{other:?} is not a multi-key operation"),
    }
}

/// Executes `kind` against `stored` at `now_ms`; a write gets `version`.
pub fn apply(kind: &Kind, stored: Option<&Record>, now_ms: u64, version: Version, limits: OpLimits) -> Applied {
    let live = stored.filter(|r| r.is_live(now_ms));
    // Commands for strings refuse a hash (a SET without GET replaces it).
    let string_only = matches!(kind, Kind::GetDel(_) | Kind::IncrBy(_) | Kind::Append(_) | Kind::GetEx(_) | Kind::SetRange(_) | Kind::IncrByFloat(_) | Kind::SetBit(_))
        || matches!(kind, Kind::Set(s) if s.get);
    if string_only && live.is_some_and(|r| r.ty != ValueType::String) {
        return no_write(wrong_type());
    }
    match kind {
        Kind::Get(g) => read(live, g),
        Kind::Watch(_) => no_write(R::Watched(watched(stored, now_ms))),
        Kind::Set(s) => set(s, live, now_ms, version, limits),
        Kind::Del(_) => delete(live, version, R::Integer(1), R::Integer(0)),
        Kind::GetDel(_) => delete(live, version, value_reply(live, false), R::Nil(pb::Nil {})),
        Kind::IncrBy(i) => incr_by(i.delta, live, version),
        Kind::Append(a) => append(&a.value, live, version, limits),
        Kind::Expire(e) => expire(e, live, now_ms, version),
        Kind::Persist(_) => persist(live, version),
        Kind::GetEx(g) => get_ex(g, live, now_ms, version),
        Kind::SetRange(s) => set_range(s, live, version, limits),
        Kind::IncrByFloat(i) => incr_by_float(&i.increment, live, version),
        Kind::SetBit(b) => set_bit(b, live, version, limits),
        Kind::HSet(h) => hashes::h_set(h, live, version, limits),
        Kind::HDel(h) => hashes::h_del(h, live, version),
        Kind::HIncrBy(h) => hashes::h_incr_by(h, live, version, limits),
        Kind::HIncrByFloat(h) => hashes::h_incr_by_float(h, live, version, limits),
        Kind::SAdd(a) => sets::s_add(&a.members, live, version, limits),
        Kind::SRem(r) => sets::s_rem(&r.members, live, version),
        Kind::SPop(p) => sets::s_pop(p, live, version),
        Kind::LPush(p) => lists::l_push(p, live, version, limits),
        Kind::LPop(p) => lists::l_pop(p, live, version),
        Kind::LSet(l) => lists::l_set(l, live, version, limits),
        Kind::LRem(l) => lists::l_rem(l, live, version),
        Kind::LTrim(t) => lists::l_trim(t, live, version),
        Kind::LInsert(i) => lists::l_insert(i, live, version, limits),
        Kind::ZAdd(a) => zsets::z_add(a, live, version, limits),
        Kind::ZRem(r) => zsets::z_rem(&r.members, live, version),
        Kind::ZPop(p) => zsets::z_pop(p, live, version),
        Kind::ZRemRange(r) => zsets::z_rem_range(r, live, version),
        Kind::PfAdd(a) => hll::pf_add(a, live, version, limits),
        Kind::BitField(b) => bit_field(b, live, version, limits),
        Kind::PfCount(_) => hll::pf_count(live, version),
        Kind::PfDebug(d) => hll::pf_debug(d, live, version),
        Kind::Restore(r) => restore(r, live, now_ms, version, limits),
        Kind::Stream(st) => {
            let applied = streams::run(st, &|_| live, now_ms, &[version], limits);
            Applied { write: applied.writes.into_iter().next().map(|(_, w)| w), reply: applied.reply }
        }
        Kind::Rename(_) | Kind::Copy(_) | Kind::MsetNx(_) | Kind::SMove(_) | Kind::SetStore(_) | Kind::LMove(_) | Kind::ZStore(_) | Kind::ZRangeStore(_) | Kind::ZMPop(_) | Kind::LMPop(_) | Kind::BitOp(_) | Kind::SortStore(_) | Kind::PfMerge(_) | Kind::GeoStore(_) => {
            unreachable!("multi-key operations run through apply_multi")
        }
        Kind::Transaction(_) => unreachable!("a transaction runs through Store::execute_transaction"),
        // Answered by the node before any data op (`service`): never in a
        // transaction or script.
        Kind::CancelWait(_) => no_write(error(pb::op_error::Kind::Internal, "CancelWait is sent alone")),
        Kind::Script(_) => unreachable!("a script runs through Store::execute_script"),
    }
}

/// BITOP: key 0 takes the combination of the strings at keys 1.. (each
/// checked to be a string or nothing).
fn bit_op<'a>(b: &pb::BitOp, live: &dyn Fn(usize) -> Option<&'a Record>, version: Version) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let op = match pb::bit_op::Op::try_from(b.op) {
        Ok(op) if op != pb::bit_op::Op::Not || b.sources.len() == 1 => op,
        _ => return none(error(pb::op_error::Kind::Internal, "malformed BITOP: an operation, and one source for NOT")),
    };
    let mut sources = Vec::with_capacity(b.sources.len());
    for i in 1..=b.sources.len() {
        match live(i) {
            Some(r) if r.ty != ValueType::String => return none(wrong_type()),
            Some(r) => sources.push(r.value.clone().unwrap_or_default()),
            None => sources.push(Bytes::new()),
        }
    }
    let len = sources.iter().map(Bytes::len).max().unwrap_or(0);
    let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| match op {
            pb::bit_op::Op::Not => !byte(&sources[0], i),
            pb::bit_op::Op::And => sources.iter().fold(0xff, |acc, s| acc & byte(s, i)),
            pb::bit_op::Op::Or => sources.iter().fold(0, |acc, s| acc | byte(s, i)),
            pb::bit_op::Op::Xor => sources.iter().fold(0, |acc, s| acc ^ byte(s, i)),
        })
        .collect();
    let reply = R::Integer(len as i64);
    match (len, live(0)) {
        (0, None) => none(reply),
        (0, Some(_)) => AppliedMulti { writes: vec![(0, Record::tombstone(version))], reply },
        _ => AppliedMulti { writes: vec![(0, Record::value(result, None, version))], reply },
    }
}

/// GEOSEARCHSTORE and GEORADIUS ... STORE: key 0 takes the search's
/// matches over the sorted set at the source (key 1, or key 0 when they
/// are the same key: `keys` is 1), or is deleted when none matched.
fn geo_store<'a>(g: &pb::GeoStore, live: &dyn Fn(usize) -> Option<&'a Record>, keys: usize, version: Version, limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let source = match live(keys - 1) {
        None => None,
        Some(r) if r.ty != ValueType::ZSet => return none(wrong_type()),
        Some(r) => match evenkeel_types::zset::ZSet::entries(r.value.as_ref().expect("a live record has a value")) {
            Ok(entries) => Some(entries),
            Err(e) => return none(error(pb::op_error::Kind::Internal, &format!("corrupt sorted set: {}", e.0))),
        },
    };
    let found = match (g.args.is_empty(), evenkeel_types::geo::search(&g.args, source.as_deref())) {
        (true, _) => return none(error(pb::op_error::Kind::Internal, "malformed GEOSTORE: no command")),
        (_, Err(line)) => return none(error_line(line)),
        (_, Ok(found)) => found,
    };
    let Some((_, dist)) = found.store else {
        return none(error(pb::op_error::Kind::Internal, "malformed GEOSTORE: a search without STORE"));
    };
    let stored = found.matches.len() as i64;
    if stored == 0 {
        return match live(0) {
            Some(_) => AppliedMulti { writes: vec![(0, Record::tombstone(version))], reply: R::Integer(0) },
            None => none(R::Integer(0)),
        };
    }
    let encoded = found.stored(dist).encode();
    if encoded.len() > limits.max_value_bytes {
        return none(too_large());
    }
    AppliedMulti { writes: vec![(0, Record::typed(ValueType::ZSet, encoded, None, version))], reply: R::Integer(stored) }
}

/// BITFIELD with writes: the string grown to hold them, then every
/// subcommand in order (`evenkeel_types::bitfield::run`).
fn bit_field(b: &pb::BitField, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    use evenkeel_types::bitfield;
    let fields = match bitfield::parse(&b.args, limits.max_value_bytes as u64) {
        Ok(fields) => fields,
        Err(e) => return no_write(error_line(e.message())),
    };
    if live.is_some_and(|r| r.ty != ValueType::String) {
        return no_write(wrong_type());
    }
    if bitfield::needed_len(&fields).is_some_and(|len| len > limits.max_value_bytes) {
        return no_write(too_large());
    }
    let mut value = live.and_then(|r| r.value.as_ref()).map_or_else(Vec::new, |v| v.to_vec());
    let results = bitfield::run(&mut value, &fields);
    let items = results
        .into_iter()
        .map(|r| pb::Reply { kind: Some(r.map_or(pb::reply::Kind::Null(pb::Nil {}), pb::reply::Kind::Integer)) })
        .collect();
    let reply = R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Array(pb::ReplyArray { items })) });
    Applied { write: Some(Record::value(value, live.and_then(|r| r.expire_at_ms), version)), reply }
}

/// RESTORE: the decoded value stored whole, over a live key only with
/// `replace`; an expiry already past deletes instead (Redis stores
/// nothing then, having deleted the old value for REPLACE).
fn restore(r: &pb::Restore, live: Option<&Record>, now_ms: u64, version: Version, limits: OpLimits) -> Applied {
    if r.value.len() > limits.max_value_bytes {
        return no_write(too_large());
    }
    if live.is_some() && !r.replace {
        return no_write(error_line("BUSYKEY Target key name already exists."));
    }
    let Some(ty) = value_type_from(r.value_type) else {
        return no_write(error(pb::op_error::Kind::Internal, "malformed RESTORE: unknown value type"));
    };
    let ok = R::Integer(1);
    if r.expire_at_ms != 0 && r.expire_at_ms <= now_ms {
        return match live {
            Some(_) => Applied { write: Some(Record::tombstone(version)), reply: ok },
            None => no_write(ok),
        };
    }
    let expire_at_ms = (r.expire_at_ms != 0).then_some(r.expire_at_ms);
    Applied { write: Some(Record::typed(ty, r.value.clone(), expire_at_ms, version)), reply: ok }
}

/// What WATCH records of a key, and what EXEC compares it with: the
/// stored record's version (tombstones and expired values included; 0 for
/// none) and whether it is live.
pub fn watched(stored: Option<&Record>, now_ms: u64) -> pb::Watched {
    pb::Watched { version: stored.map_or(0, |r| r.version), live: stored.is_some_and(|r| r.is_live(now_ms)) }
}

fn no_write(reply: R) -> Applied {
    Applied { write: None, reply }
}

fn value_reply(live: Option<&Record>, meta_only: bool) -> R {
    match live.and_then(|r| r.value.as_ref().map(|v| (r, v))) {
        None => R::Nil(pb::Nil {}),
        Some((r, v)) => R::Value(pb::Value {
            value: if meta_only { Bytes::new() } else { v.clone() },
            len: v.len() as u64,
            expire_at_ms: r.expire_at_ms.unwrap_or(0),
            value_type: value_type(r.ty) as i32,
            elements: None,
            first: 0,
            selected: None,
            cursor: None,
        }),
    }
}

pub use evenkeel_rpc::{value_type, value_type_from};

/// A GET: the value, its metadata only, or with `project` the part of a
/// collection the read needs (`evenkeel_types::project`); a value of
/// another type then answers its metadata (the command answers WRONGTYPE).
fn read(live: Option<&Record>, g: &pb::Get) -> Applied {
    if let Some(selection) = &g.select {
        return select(live, selection);
    }
    if let Some(random) = &g.random {
        return random_picks(live, random);
    }
    if let Some(page) = &g.scan {
        return scan_page(live, page);
    }
    if let Some(search) = &g.geo {
        return geo_matches(live, search);
    }
    let Some(project) = &g.project else { return no_write(value_reply(live, g.meta_only)) };
    let Some((r, v)) = live.and_then(|r| r.value.as_ref().map(|v| (r, v))) else { return no_write(R::Nil(pb::Nil {})) };
    let part = match (&project.window, &project.scores) {
        (Some(w), _) => evenkeel_types::project::window(r.ty, v, w.start, w.stop, w.rev),
        (None, Some(_)) if r.ty != ValueType::ZSet => None,
        (None, Some(range)) => match zsets::range(Some(range)) {
            Ok(Range { bounds: Bounds::Score { min, max }, rev, limit }) => Some(evenkeel_types::project::scores(v, min, max, rev, limit)),
            Ok(_) => return no_write(error(pb::op_error::Kind::Internal, "malformed projection: a range of scores that is not by score")),
            Err(e) => return no_write(e),
        },
        (None, None) => evenkeel_types::project::entries(r.ty, v, &project.entries),
    };
    match part {
        None => no_write(value_reply(live, true)),
        Some(part) => part_reply(r, part, None, None),
    }
}

/// A GET's `select`: the members of a sorted set a range selects, or how
/// many (`evenkeel_types::project::select`); a value of another type
/// answers its metadata (the command answers WRONGTYPE).
fn select(live: Option<&Record>, selection: &pb::Selection) -> Applied {
    let Some((r, v)) = live.and_then(|r| r.value.as_ref().map(|v| (r, v))) else { return no_write(R::Nil(pb::Nil {})) };
    if r.ty != ValueType::ZSet {
        return no_write(value_reply(live, true));
    }
    let range = match zsets::range(selection.range.as_ref()) {
        Ok(range) => range,
        Err(e) => return no_write(e),
    };
    match evenkeel_types::project::select(v, &range, selection.count_only) {
        Ok((part, selected)) => part_reply(r, Ok(part), Some(selected), None),
        Err(e) => part_reply(r, Err(e), None, None),
    }
}

/// A GET's `random`: HRANDFIELD's, SRANDMEMBER's or ZRANDMEMBER's picks of
/// a collection, drawn here from the op's seed (the op stays a pure
/// function of record and op) and cut from the encoding
/// (`evenkeel_types::project::picks`); a count at least the size, the
/// whole value; another type answers its metadata (WRONGTYPE).
fn random_picks(live: Option<&Record>, random: &pb::Random) -> Applied {
    use rand::{RngExt, SeedableRng};
    let Some((r, v)) = live.and_then(|r| r.value.as_ref().map(|v| (r, v))) else { return no_write(R::Nil(pb::Nil {})) };
    if !matches!(r.ty, ValueType::Hash | ValueType::Set | ValueType::ZSet) {
        return no_write(value_reply(live, true));
    }
    let n = match evenkeel_types::edit::count_of(v) {
        Ok(n) => n,
        Err(e) => return part_reply(r, Err(e), None, None),
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(random.seed);
    let positions: Vec<usize> = match random.count {
        _ if n == 0 => Vec::new(),
        None => vec![rng.random_range(0..n)],
        Some(c) if c >= 0 && c as u64 >= n as u64 => {
            let whole = evenkeel_types::project::Projected { value: v.clone(), elements: n as u64, first: 0 };
            return part_reply(r, Ok(whole), None, None);
        }
        Some(c) if c >= 0 => {
            let mut chosen = rand::seq::index::sample(&mut rng, n, c as usize).into_vec();
            chosen.sort_unstable();
            chosen
        }
        Some(c) if c.unsigned_abs() > evenkeel_types::project::RANDOM_REPEATS_MAX => {
            return no_write(error(pb::op_error::Kind::Internal, "malformed random picks: a negative count past the most picks"));
        }
        Some(c) => (0..c.unsigned_abs()).map(|_| rng.random_range(0..n)).collect(),
    };
    part_reply(r, evenkeel_types::project::picks(r.ty, v, &positions).expect("a collection type"), None, None)
}

/// A GET's `scan`: HSCAN's, SSCAN's or ZSCAN's page from its cursor, and
/// the next cursor (`evenkeel_types::project::scan`); another type
/// answers its metadata (WRONGTYPE).
fn scan_page(live: Option<&Record>, page: &pb::ScanPage) -> Applied {
    let Some((r, v)) = live.and_then(|r| r.value.as_ref().map(|v| (r, v))) else { return no_write(R::Nil(pb::Nil {})) };
    let count = usize::try_from(page.count).unwrap_or(usize::MAX);
    match evenkeel_types::project::scan(r.ty, v, page.cursor, count) {
        None => no_write(value_reply(live, true)),
        Some(Ok((part, next))) => part_reply(r, Ok(part), None, Some(next)),
        Some(Err(e)) => part_reply(r, Err(e), None, None),
    }
}

/// A GET's `geo`: the members a geo search matches and its centre member,
/// cut from the sorted set's encoding without building the set (the
/// router runs the search again on the part: the same answer); a search
/// that fails answers the whole value, for the router to give its error;
/// another type answers its metadata (WRONGTYPE).
fn geo_matches(live: Option<&Record>, search: &pb::GeoSearch) -> Applied {
    let Some((r, v)) = live.and_then(|r| r.value.as_ref().map(|v| (r, v))) else { return no_write(R::Nil(pb::Nil {})) };
    if r.ty != ValueType::ZSet {
        return no_write(value_reply(live, true));
    }
    let entries = match evenkeel_types::zset::ZSet::entries(v) {
        Ok(entries) => entries,
        Err(e) => return part_reply(r, Err(e), None, None),
    };
    let Ok(found) = evenkeel_types::geo::search(&search.args, Some(&entries)) else { return no_write(value_reply(live, false)) };
    let keep: std::collections::HashSet<&[u8]> = found.matches.iter().map(|m| &m.member[..]).chain(found.center_member.as_deref()).collect();
    let positions: Vec<usize> = entries.iter().enumerate().filter(|(_, (m, _))| keep.contains(&m[..])).map(|(i, _)| i).collect();
    part_reply(r, evenkeel_types::project::picks(ValueType::ZSet, v, &positions).expect("a collection type"), None, None)
}

/// The reply of a projected read of `r`: the part, or an internal error
/// for a corrupt encoding.
fn part_reply(r: &Record, part: Result<evenkeel_types::project::Projected, evenkeel_types::record::CorruptRecord>, selected: Option<u64>, cursor: Option<u64>) -> Applied {
    match part {
        Err(e) => no_write(error(pb::op_error::Kind::Internal, &e.to_string())),
        Ok(part) => no_write(R::Value(pb::Value {
            len: part.value.len() as u64,
            value: part.value,
            expire_at_ms: r.expire_at_ms.unwrap_or(0),
            value_type: value_type(r.ty) as i32,
            elements: Some(part.elements),
            first: part.first,
            selected,
            cursor,
        })),
    }
}

fn set(s: &pb::Set, live: Option<&Record>, now_ms: u64, version: Version, limits: OpLimits) -> Applied {
    use pb::Condition;
    let exists = live.is_some();
    let blocked = match Condition::try_from(s.condition).unwrap_or(Condition::Always) {
        Condition::Always => false,
        Condition::IfAbsent => exists,
        Condition::IfPresent => !exists,
    };
    let previous = if s.get { live.and_then(|r| r.value.clone()) } else { None };
    if blocked {
        return no_write(R::Written(pb::Written { applied: false, previous }));
    }
    if s.value.len() > limits.max_value_bytes {
        return no_write(too_large());
    }
    let expire_at_ms = match s.expiry {
        None => None,
        Some(pb::set::Expiry::KeepTtl(true)) => live.and_then(|r| r.expire_at_ms),
        Some(pb::set::Expiry::KeepTtl(false)) => None,
        Some(pb::set::Expiry::ExpireAtMs(at)) => Some(at),
    };
    // A value that would already be expired is stored as a deletion, so no
    // dead value lingers until the sweeper finds it.
    let write = match expire_at_ms {
        Some(at) if at <= now_ms => Record::tombstone(version),
        _ => Record::value(s.value.clone(), expire_at_ms, version),
    };
    Applied { write: Some(write), reply: R::Written(pb::Written { applied: true, previous }) }
}

fn delete(live: Option<&Record>, version: Version, hit: R, miss: R) -> Applied {
    match live {
        Some(_) => Applied { write: Some(Record::tombstone(version)), reply: hit },
        None => no_write(miss),
    }
}

fn incr_by(delta: i64, live: Option<&Record>, version: Version) -> Applied {
    let current = match live.and_then(|r| r.value.as_ref()) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return no_write(op_error(pb::op_error::Kind::NotInteger)),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return no_write(op_error(pb::op_error::Kind::Overflow));
    };
    let expire = live.and_then(|r| r.expire_at_ms);
    let write = Record::value(Bytes::from(next.to_string()), expire, version);
    Applied { write: Some(write), reply: R::Integer(next) }
}

fn set_bit(b: &pb::SetBit, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let Some(byte) = usize::try_from(b.offset >> 3).ok().filter(|byte| *byte < limits.max_value_bytes) else { return no_write(too_large()) };
    let mask = 1u8 << (7 - (b.offset & 7));
    let current = live.and_then(|r| r.value.as_ref());
    let old = current.and_then(|v| v.get(byte)).is_some_and(|v| v & mask != 0);
    // Redis writes unless the bit is already as asked in a value long
    // enough (a missing key is created, even to clear a bit).
    if old == b.on && current.is_some_and(|v| byte < v.len()) {
        return no_write(R::Integer(old as i64));
    }
    let mut value = BytesMut::from(current.map_or(&[][..], |v| &v[..]));
    if value.len() <= byte {
        value.resize(byte + 1, 0);
    }
    if b.on { value[byte] |= mask } else { value[byte] &= !mask }
    let expire = live.and_then(|r| r.expire_at_ms);
    Applied { write: Some(Record::value(value.freeze(), expire, version)), reply: R::Integer(old as i64) }
}

fn incr_by_float(increment: &[u8], live: Option<&Record>, version: Version) -> Applied {
    use evenkeel_types::float::FloatError;
    match evenkeel_types::float::incr_by_float(live.and_then(|r| r.value.as_deref()), increment) {
        Ok(text) => {
            let value = Bytes::from(text);
            let expire = live.and_then(|r| r.expire_at_ms);
            let reply = R::Value(pb::Value { value: value.clone(), len: value.len() as u64, expire_at_ms: expire.unwrap_or(0), value_type: 0, elements: None, first: 0, selected: None, cursor: None });
            Applied { write: Some(Record::value(value, expire, version)), reply }
        }
        Err(FloatError::NotFloat) => no_write(op_error(pb::op_error::Kind::NotFloat)),
        Err(FloatError::NanOrInfinity) => no_write(op_error(pb::op_error::Kind::NanOrInfinity)),
    }
}

fn append(suffix: &Bytes, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let current = live.and_then(|r| r.value.clone()).unwrap_or_default();
    let len = current.len() + suffix.len();
    if len > limits.max_value_bytes {
        return no_write(too_large());
    }
    let mut joined = BytesMut::with_capacity(len);
    joined.extend_from_slice(&current);
    joined.extend_from_slice(suffix);
    let expire = live.and_then(|r| r.expire_at_ms);
    Applied { write: Some(Record::value(joined.freeze(), expire, version)), reply: R::Integer(len as i64) }
}

fn expire(e: &pb::Expire, live: Option<&Record>, now_ms: u64, version: Version) -> Applied {
    use pb::ExpireCondition as C;
    let Some(record) = live else { return no_write(R::Integer(0)) };
    let current = record.expire_at_ms;
    let at = e.at_ms;
    // No expiry counts as an infinite TTL for GT and LT, as in Redis.
    let allowed = match C::try_from(e.condition).unwrap_or(C::ExpireAlways) {
        C::ExpireAlways => true,
        C::ExpireNx => current.is_none(),
        C::ExpireXx => current.is_some(),
        C::ExpireGt => current.is_some_and(|c| at > c as i64),
        C::ExpireLt => current.is_none_or(|c| at < c as i64),
        C::ExpireXxLt => current.is_some_and(|c| at < c as i64),
    };
    if !allowed {
        return no_write(R::Integer(0));
    }
    let write = if at <= now_ms as i64 {
        Record::tombstone(version)
    } else {
        record.restamped(Some(at as u64), version)
    };
    Applied { write: Some(write), reply: R::Integer(1) }
}

fn persist(live: Option<&Record>, version: Version) -> Applied {
    match live {
        Some(r) if r.expire_at_ms.is_some() => {
            let write = r.restamped(None, version);
            Applied { write: Some(write), reply: R::Integer(1) }
        }
        _ => no_write(R::Integer(0)),
    }
}

fn get_ex(g: &pb::GetEx, live: Option<&Record>, now_ms: u64, version: Version) -> Applied {
    use pb::get_ex::Change;
    let Some(record) = live else { return no_write(R::Nil(pb::Nil {})) };
    let reply = value_reply(live, false);
    let expire_at_ms = match &g.change {
        None => return no_write(reply),
        Some(Change::Invalid(e)) => return no_write(R::Error(e.clone())),
        Some(Change::Persist(_)) if record.expire_at_ms.is_none() => return no_write(reply),
        Some(Change::Persist(_)) => None,
        Some(Change::AtMs(at)) if *at <= now_ms as i64 => return Applied { write: Some(Record::tombstone(version)), reply },
        Some(Change::AtMs(at)) => Some(*at as u64),
    };
    Applied { write: Some(record.restamped(expire_at_ms, version)), reply }
}

fn set_range(s: &pb::SetRange, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let current = live.and_then(|r| r.value.clone()).unwrap_or_default();
    if s.value.is_empty() {
        return no_write(R::Integer(current.len() as i64));
    }
    let end = match usize::try_from(s.offset).ok().and_then(|o| o.checked_add(s.value.len())) {
        Some(end) if end <= limits.max_value_bytes => end,
        _ => return no_write(too_large()),
    };
    let offset = end - s.value.len();
    let mut value = BytesMut::with_capacity(current.len().max(end));
    value.extend_from_slice(&current);
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset..end].copy_from_slice(&s.value);
    let len = value.len() as i64;
    let expire = live.and_then(|r| r.expire_at_ms);
    Applied { write: Some(Record::value(value.freeze(), expire, version)), reply: R::Integer(len) }
}

fn wrong_type() -> R {
    op_error(pb::op_error::Kind::WrongType)
}

fn error(kind: pb::op_error::Kind, message: &str) -> R {
    R::Error(pb::OpError { kind: kind as i32, message: message.to_string() })
}

/// An error line written whole, code first (`WRONGTYPE Key is not a
/// valid HyperLogLog...`, `ERR ...`), which the router passes on as is.
fn error_line(line: impl Into<String>) -> R {
    R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error(line.into())) })
}

fn op_error(kind: pb::op_error::Kind) -> R {
    let message = match kind {
        pb::op_error::Kind::NotInteger => "value is not an integer or out of range",
        pb::op_error::Kind::Overflow => "increment or decrement would overflow",
        pb::op_error::Kind::TooLarge => "string exceeds maximum allowed size (proto-max-bulk-len)",
        pb::op_error::Kind::NotFloat => "value is not a valid float",
        pb::op_error::Kind::NanOrInfinity => "increment would produce NaN or Infinity",
        pb::op_error::Kind::NoSuchKey => "no such key",
        pb::op_error::Kind::WrongType => "Operation against a key holding the wrong kind of value",
        pb::op_error::Kind::Internal => "internal error",
        pb::op_error::Kind::OutOfSpace => "out of disk space",
    };
    R::Error(pb::OpError { kind: kind as i32, message: message.to_string() })
}

fn too_large() -> R {
    op_error(pb::op_error::Kind::TooLarge)
}

#[cfg(test)]
mod tests;

/// How long a blocking pop may wait for something to pop (see the proto's
/// `LMPop`): None for every other op, and for a pop that does not block.
pub fn blocking_wait(kind: &Kind) -> Option<std::time::Duration> {
    let ms = kind.blocking_wait_ms();
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}
