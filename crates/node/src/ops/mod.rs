//! What each data operation does to one key, as pure functions.
//!
//! [`apply`] takes the key's stored record (if any), the operation, the time
//! and the version a write would get, and returns the record to store (if the
//! operation changes anything) and the reply. Nothing here touches storage or
//! reads a clock, so Redis's semantics are unit-tested on their own.

use bytes::{Bytes, BytesMut};
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::hash::Hash;
use evenkeel_types::set::Set;
use evenkeel_types::int::parse_i64;
use evenkeel_types::{Record, ValueType, Version};

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

/// The keys a multi-key operation (RENAME, COPY, MSETNX, SMOVE, the set
/// STORE commands) reads and may write, its own `key` first; None for a
/// single-key operation.
pub fn multi_keys<'a>(kind: &'a Kind, key: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    match kind {
        Kind::Rename(pb::Rename { to, .. }) | Kind::Copy(pb::Copy { to, .. }) if to == key => Some(vec![key]),
        Kind::Rename(pb::Rename { to, .. }) | Kind::Copy(pb::Copy { to, .. }) => Some(vec![key, to]),
        Kind::SMove(pb::SMove { to, .. }) if to == key => Some(vec![key]),
        Kind::SMove(pb::SMove { to, .. }) => Some(vec![key, to]),
        Kind::SetStore(st) => Some(std::iter::once(key).chain(st.sources.iter().map(|k| &k[..])).collect()),
        Kind::MsetNx(m) => Some(m.keys.iter().map(|k| &k[..]).collect()),
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
                return none(R::Error(pb::OpError { kind: pb::op_error::Kind::Internal as i32, message: "source and destination objects are the same".into() }));
            }
            let Some(source) = live(0) else { return none(R::Integer(0)) };
            if live(1).is_some() && !c.replace {
                return none(R::Integer(0));
            }
            let copied = source.restamped(source.expire_at_ms, versions[1]);
            AppliedMulti { writes: vec![(1, copied)], reply: R::Integer(1) }
        }
        Kind::SMove(m) => s_move(m, &live, versions),
        Kind::SetStore(st) => set_store(st, &live, versions[0]),
        Kind::MsetNx(m) => {
            if m.keys.is_empty() || m.keys.len() != m.values.len() {
                return none(R::Error(pb::OpError { kind: pb::op_error::Kind::Internal as i32, message: "malformed MSETNX: a value for each key".into() }));
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
        Kind::Get(g) => read(live, g.meta_only),
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
        Kind::HSet(h) => h_set(h, live, version, limits),
        Kind::HDel(h) => h_del(h, live, version),
        Kind::HIncrBy(h) => h_incr_by(h, live, version, limits),
        Kind::HIncrByFloat(h) => h_incr_by_float(h, live, version, limits),
        Kind::SAdd(a) => s_add(&a.members, live, version, limits),
        Kind::SRem(r) => s_rem(&r.members, live, version),
        Kind::SPop(p) => s_pop(p, live, version),
        Kind::Rename(_) | Kind::Copy(_) | Kind::MsetNx(_) | Kind::SMove(_) | Kind::SetStore(_) => unreachable!("multi-key operations run through apply_multi"),
        Kind::Transaction(_) => unreachable!("a transaction runs through Store::execute_transaction"),
    }
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
        }),
    }
}

/// A value type as the wire names it.
pub fn value_type(ty: ValueType) -> pb::ValueType {
    match ty {
        ValueType::String => pb::ValueType::String,
        ValueType::Hash => pb::ValueType::Hash,
        ValueType::Set => pb::ValueType::Set,
    }
}

/// A value type the wire names; None for a number this node does not know.
pub fn value_type_from(raw: i32) -> Option<ValueType> {
    match pb::ValueType::try_from(raw).ok()? {
        pb::ValueType::String => Some(ValueType::String),
        pb::ValueType::Hash => Some(ValueType::Hash),
        pb::ValueType::Set => Some(ValueType::Set),
    }
}

fn read(live: Option<&Record>, meta_only: bool) -> Applied {
    no_write(value_reply(live, meta_only))
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
            let reply = R::Value(pb::Value { value: value.clone(), len: value.len() as u64, expire_at_ms: expire.unwrap_or(0), value_type: 0 });
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

/// The hash `live` holds (absent: none yet), or the error to answer: the
/// key holds another type, or its encoding is corrupt.
fn hash_of(live: Option<&Record>) -> Result<Option<Hash>, R> {
    let Some(record) = live else { return Ok(None) };
    if record.ty != ValueType::Hash {
        return Err(wrong_type());
    }
    let encoded = record.value.as_ref().expect("a live record has a value");
    Hash::decode(encoded).map(Some).map_err(|e| error(pb::op_error::Kind::Internal, &e.to_string()))
}

/// Stores `hash` (the key goes with its last field), keeping the expiry.
fn write_hash(hash: &Hash, live: Option<&Record>, version: Version, limits: OpLimits, reply: R) -> Applied {
    if hash.is_empty() {
        return Applied { write: Some(Record::tombstone(version)), reply };
    }
    if hash.encoded_len() > limits.max_value_bytes {
        return no_write(error(pb::op_error::Kind::TooLarge, "hash exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    let expire = live.and_then(|r| r.expire_at_ms);
    Applied { write: Some(Record::hash(hash.encode(), expire, version)), reply }
}

fn h_set(h: &pb::HSet, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    if h.fields.is_empty() || h.fields.len() != h.values.len() {
        return no_write(error(pb::op_error::Kind::Internal, "malformed HSET: a value for each field"));
    }
    let mut hash = match hash_of(live) {
        Ok(hash) => hash.unwrap_or_default(),
        Err(e) => return no_write(e),
    };
    let mut added = 0;
    for (field, value) in h.fields.iter().zip(&h.values) {
        if h.nx && hash.get(field).is_some() {
            continue;
        }
        added += hash.set(field.clone(), value.clone()) as i64;
    }
    if h.nx && added == 0 {
        return no_write(R::Integer(0));
    }
    write_hash(&hash, live, version, limits, R::Integer(added))
}

fn h_del(h: &pb::HDel, live: Option<&Record>, version: Version) -> Applied {
    let mut hash = match hash_of(live) {
        Ok(Some(hash)) => hash,
        Ok(None) => return no_write(R::Integer(0)),
        Err(e) => return no_write(e),
    };
    let removed = h.fields.iter().filter(|f| hash.remove(f)).count() as i64;
    if removed == 0 {
        return no_write(R::Integer(0));
    }
    // Smaller than before: no limit to check.
    write_hash(&hash, live, version, OpLimits { max_value_bytes: usize::MAX }, R::Integer(removed))
}

fn h_incr_by(h: &pb::HIncrBy, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    let mut hash = match hash_of(live) {
        Ok(hash) => hash.unwrap_or_default(),
        Err(e) => return no_write(e),
    };
    let current = match hash.get(&h.field) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return no_write(error(pb::op_error::Kind::NotInteger, "hash value is not an integer")),
        },
    };
    let Some(next) = current.checked_add(h.delta) else { return no_write(op_error(pb::op_error::Kind::Overflow)) };
    hash.set(h.field.clone(), Bytes::from(next.to_string()));
    write_hash(&hash, live, version, limits, R::Integer(next))
}

/// HINCRBYFLOAT, its checks in Redis's order: the increment (a float, and
/// finite), the key's type, the field's value, the sum.
fn h_incr_by_float(h: &pb::HIncrByFloat, live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    use evenkeel_types::float::{FloatError, LongDouble};
    let Some(increment) = LongDouble::parse(&h.increment) else { return no_write(op_error(pb::op_error::Kind::NotFloat)) };
    if increment.checked_add(LongDouble::zero()).is_err() {
        return no_write(error(pb::op_error::Kind::NanOrInfinity, "value is NaN or Infinity"));
    }
    let mut hash = match hash_of(live) {
        Ok(hash) => hash.unwrap_or_default(),
        Err(e) => return no_write(e),
    };
    let current = match hash.get(&h.field) {
        None => LongDouble::zero(),
        Some(v) => match LongDouble::parse(v) {
            Some(x) => x,
            None => return no_write(error(pb::op_error::Kind::NotFloat, "hash value is not a float")),
        },
    };
    let text = match current.checked_add(increment) {
        Ok(sum) => Bytes::from(sum.to_human()),
        Err(FloatError::NanOrInfinity) => return no_write(op_error(pb::op_error::Kind::NanOrInfinity)),
        Err(FloatError::NotFloat) => unreachable!("adding two floats"),
    };
    hash.set(h.field.clone(), text.clone());
    let reply = R::Value(pb::Value { len: text.len() as u64, value: text, ..Default::default() });
    write_hash(&hash, live, version, limits, reply)
}

/// The set `live` holds (absent: none yet), or the error to answer.
fn set_of(live: Option<&Record>) -> Result<Option<Set>, R> {
    let Some(record) = live else { return Ok(None) };
    if record.ty != ValueType::Set {
        return Err(wrong_type());
    }
    let encoded = record.value.as_ref().expect("a live record has a value");
    Set::decode(encoded).map(Some).map_err(|e| error(pb::op_error::Kind::Internal, &e.to_string()))
}

/// The record storing `set` (None: it is empty, so the key goes), with
/// `expire`, or the error for a set past the value limit.
fn set_record(set: &Set, expire: Option<u64>, version: Version, limits: OpLimits) -> Result<Record, R> {
    if set.is_empty() {
        return Ok(Record::tombstone(version));
    }
    if set.encoded_len() > limits.max_value_bytes {
        return Err(error(pb::op_error::Kind::TooLarge, "set exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    Ok(Record::typed(ValueType::Set, set.encode(), expire, version))
}

/// Applies a change to the set at `live`, writing it (with its expiry)
/// only if the change says it changed something.
fn change_set(live: Option<&Record>, version: Version, limits: OpLimits, change: impl FnOnce(&mut Set) -> (bool, R)) -> Applied {
    let mut set = match set_of(live) {
        Ok(set) => set.unwrap_or_default(),
        Err(e) => return no_write(e),
    };
    let (changed, reply) = change(&mut set);
    if !changed {
        return no_write(reply);
    }
    match set_record(&set, live.and_then(|r| r.expire_at_ms), version, limits) {
        Ok(record) => Applied { write: Some(record), reply },
        Err(e) => no_write(e),
    }
}

fn s_add(members: &[Bytes], live: Option<&Record>, version: Version, limits: OpLimits) -> Applied {
    change_set(live, version, limits, |set| {
        let added = members.iter().filter(|m| set.insert((*m).clone())).count() as i64;
        (added > 0, R::Integer(added))
    })
}

fn s_rem(members: &[Bytes], live: Option<&Record>, version: Version) -> Applied {
    if live.is_none() {
        return no_write(R::Integer(0));
    }
    // Smaller than before: no limit to check.
    change_set(live, version, OpLimits { max_value_bytes: usize::MAX }, |set| {
        let removed = members.iter().filter(|m| set.remove(m)).count() as i64;
        (removed > 0, R::Integer(removed))
    })
}

/// SPOP: random members, distinct, chosen from the op's seed.
fn s_pop(p: &pb::SPop, live: Option<&Record>, version: Version) -> Applied {
    use rand::SeedableRng;
    let empty = || match p.count {
        None => R::Nil(pb::Nil {}),
        Some(_) => R::Members(pb::Members { members: Vec::new() }),
    };
    if live.is_none() {
        return no_write(empty());
    }
    change_set(live, version, OpLimits { max_value_bytes: usize::MAX }, |set| {
        let members: Vec<Bytes> = set.members().cloned().collect();
        let want = p.count.map_or(1, |c| c.min(members.len() as u64) as usize);
        if want == 0 {
            return (false, empty());
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(p.seed);
        let popped: Vec<Bytes> = rand::seq::index::sample(&mut rng, members.len(), want).into_iter().map(|i| members[i].clone()).collect();
        for m in &popped {
            set.remove(m);
        }
        let reply = match p.count {
            None => R::Value(pb::Value { len: popped[0].len() as u64, value: popped[0].clone(), ..Default::default() }),
            Some(_) => R::Members(pb::Members { members: popped }),
        };
        (true, reply)
    })
}

/// SMOVE, in Redis's order: a missing source answers 0; then both keys
/// must hold sets (or the target nothing); one key is a membership test.
fn s_move<'a>(m: &pb::SMove, live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version]) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let source = match set_of(live(0)) {
        Ok(Some(set)) => set,
        Ok(None) => return none(R::Integer(0)),
        Err(e) => return none(e),
    };
    if versions.len() < 2 {
        return none(R::Integer(source.contains(&m.member) as i64));
    }
    let target = match set_of(live(1)) {
        Ok(set) => set,
        Err(e) => return none(e),
    };
    let mut source = source;
    if !source.remove(&m.member) {
        return none(R::Integer(0));
    }
    let mut target = target.unwrap_or_default();
    target.insert(m.member.clone());
    let unlimited = OpLimits { max_value_bytes: usize::MAX };
    let writes = [(0, &source, live(0)), (1, &target, live(1))].map(|(i, set, was)| {
        let record = set_record(set, was.and_then(|r| r.expire_at_ms), versions[i], unlimited).expect("no limit");
        (i, record)
    });
    AppliedMulti { writes: writes.into(), reply: R::Integer(1) }
}

/// SUNIONSTORE, SINTERSTORE, SDIFFSTORE: key 0 takes the result of the
/// sets at keys 1.. (each checked to be a set or nothing).
fn set_store<'a>(st: &pb::SetStore, live: &dyn Fn(usize) -> Option<&'a Record>, version: Version) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let mut sources = Vec::with_capacity(st.sources.len());
    for i in 1..=st.sources.len() {
        match set_of(live(i)) {
            Ok(set) => sources.push(set.unwrap_or_default()),
            Err(e) => return none(e),
        }
    }
    use evenkeel_types::set::Combine;
    let op = match pb::set_store::Op::try_from(st.op) {
        Ok(pb::set_store::Op::Union) => Combine::Union,
        Ok(pb::set_store::Op::Inter) => Combine::Inter,
        Ok(pb::set_store::Op::Diff) => Combine::Diff,
        Err(_) => return none(error(pb::op_error::Kind::Internal, "malformed set store: unknown operation")),
    };
    let result = evenkeel_types::set::combine(op, &sources);
    let card = result.len() as i64;
    if result.is_empty() {
        return match live(0) {
            Some(_) => AppliedMulti { writes: vec![(0, Record::tombstone(version))], reply: R::Integer(0) },
            None => none(R::Integer(0)),
        };
    }
    let record = set_record(&result, None, version, OpLimits { max_value_bytes: usize::MAX }).expect("no limit");
    AppliedMulti { writes: vec![(0, record)], reply: R::Integer(card) }
}

fn wrong_type() -> R {
    op_error(pb::op_error::Kind::WrongType)
}

fn error(kind: pb::op_error::Kind, message: &str) -> R {
    R::Error(pb::OpError { kind: kind as i32, message: message.to_string() })
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
    };
    R::Error(pb::OpError { kind: kind as i32, message: message.to_string() })
}

fn too_large() -> R {
    op_error(pb::op_error::Kind::TooLarge)
}

#[cfg(test)]
mod tests;
