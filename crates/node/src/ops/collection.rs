//! What the hash, set, list and sorted set operations share: a value that is one
//! record of its own type, read, changed and written whole.

use super::{Applied, AppliedMulti, OpLimits, error, no_write, wrong_type};
use bytes::Bytes;
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::hash::Hash;
use evenkeel_types::list::List;
use evenkeel_types::record::CorruptRecord;
use evenkeel_types::set::Set;
use evenkeel_types::zset::ZSet;
use evenkeel_types::{Record, ValueType, Version};

/// A value type stored as one record.
pub(super) trait Collection: Default + Sized {
    const TYPE: ValueType;
    /// Redis's word for it in "... exceeds maximum allowed size".
    const NAME: &'static str;
    fn decode(raw: &Bytes) -> Result<Self, CorruptRecord>;
    fn encode(&self) -> Bytes;
    fn encoded_len(&self) -> usize;
    fn is_empty(&self) -> bool;
}

impl Collection for Hash {
    const TYPE: ValueType = ValueType::Hash;
    const NAME: &'static str = "hash";
    fn decode(raw: &Bytes) -> Result<Self, CorruptRecord> {
        Hash::decode(raw)
    }
    fn encode(&self) -> Bytes {
        Hash::encode(self)
    }
    fn encoded_len(&self) -> usize {
        Hash::encoded_len(self)
    }
    fn is_empty(&self) -> bool {
        Hash::is_empty(self)
    }
}

impl Collection for Set {
    const TYPE: ValueType = ValueType::Set;
    const NAME: &'static str = "set";
    fn decode(raw: &Bytes) -> Result<Self, CorruptRecord> {
        Set::decode(raw)
    }
    fn encode(&self) -> Bytes {
        Set::encode(self)
    }
    fn encoded_len(&self) -> usize {
        Set::encoded_len(self)
    }
    fn is_empty(&self) -> bool {
        Set::is_empty(self)
    }
}

impl Collection for List {
    const TYPE: ValueType = ValueType::List;
    const NAME: &'static str = "list";
    fn decode(raw: &Bytes) -> Result<Self, CorruptRecord> {
        List::decode(raw)
    }
    fn encode(&self) -> Bytes {
        List::encode(self)
    }
    fn encoded_len(&self) -> usize {
        List::encoded_len(self)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Collection for ZSet {
    const TYPE: ValueType = ValueType::ZSet;
    const NAME: &'static str = "zset";
    fn decode(raw: &Bytes) -> Result<Self, CorruptRecord> {
        ZSet::decode(raw)
    }
    fn encode(&self) -> Bytes {
        ZSet::encode(self)
    }
    fn encoded_len(&self) -> usize {
        ZSet::encoded_len(self)
    }
    fn is_empty(&self) -> bool {
        ZSet::is_empty(self)
    }
}

/// The value `live` holds (absent: none yet), or the error to answer: the
/// key holds another type, or its encoding is corrupt.
pub(super) fn read<C: Collection>(live: Option<&Record>) -> Result<Option<C>, R> {
    let Some(record) = live else { return Ok(None) };
    if record.ty != C::TYPE {
        return Err(wrong_type());
    }
    let encoded = record.value.as_ref().expect("a live record has a value");
    C::decode(encoded).map(Some).map_err(|e| error(pb::op_error::Kind::Internal, &e.to_string()))
}

/// The record storing `value` with `expire` (a tombstone when it is empty:
/// the key goes with its last element), or the error for a value past the
/// limit.
pub(super) fn record<C: Collection>(value: &C, expire: Option<u64>, version: Version, limits: OpLimits) -> Result<Record, R> {
    if value.is_empty() {
        return Ok(Record::tombstone(version));
    }
    if value.encoded_len() > limits.max_value_bytes {
        return Err(error(pb::op_error::Kind::TooLarge, &format!("{} exceeds maximum allowed size (proto-max-bulk-len)", C::NAME)));
    }
    Ok(Record::typed(C::TYPE, value.encode(), expire, version))
}

/// The encoding `live` holds (None: no key), for a write that edits it in
/// place (`evenkeel_types::edit`), or the error: the key holds another
/// type.
pub(super) fn encoded<C: Collection>(live: Option<&Record>) -> Result<Option<&Bytes>, R> {
    match live {
        None => Ok(None),
        Some(r) if r.ty != C::TYPE => Err(wrong_type()),
        Some(r) => Ok(Some(r.value.as_ref().expect("a live record has a value"))),
    }
}

/// The error for an encoding an edit refused: the store is corrupt.
pub(super) fn corrupt(e: CorruptRecord) -> R {
    error(pb::op_error::Kind::Internal, &e.to_string())
}

/// The write of an edited value (a tombstone once it is empty) answered
/// with `reply`, or the error for one past the limit.
pub(super) fn edited<C: Collection>(e: evenkeel_types::edit::Edited, live: Option<&Record>, version: Version, limits: OpLimits, reply: R) -> Applied {
    match edited_record::<C>(e, live, version, limits) {
        Ok(record) => Applied { write: Some(record), reply },
        Err(e) => no_write(e),
    }
}

pub(super) fn edited_record<C: Collection>(e: evenkeel_types::edit::Edited, live: Option<&Record>, version: Version, limits: OpLimits) -> Result<Record, R> {
    if e.count == 0 {
        return Ok(Record::tombstone(version));
    }
    if e.value.len() > limits.max_value_bytes {
        return Err(error(pb::op_error::Kind::TooLarge, &format!("{} exceeds maximum allowed size (proto-max-bulk-len)", C::NAME)));
    }
    Ok(Record::typed(C::TYPE, e.value, live.and_then(|r| r.expire_at_ms), version))
}

/// HDEL and SREM, on the encoding (`evenkeel_types::edit::remove`).
pub(super) fn remove<C: Collection>(names: &[Bytes], live: Option<&Record>, version: Version) -> Applied {
    let raw = match encoded::<C>(live) {
        Ok(Some(raw)) => raw,
        Ok(None) => return no_write(R::Integer(0)),
        Err(e) => return no_write(e),
    };
    match evenkeel_types::edit::remove(raw, names) {
        Err(e) => no_write(corrupt(e)),
        Ok((_, 0)) => no_write(R::Integer(0)),
        Ok((e, removed)) => edited::<C>(e, live, version, UNLIMITED, R::Integer(removed as i64)),
    }
}

/// As [`change`], for a write that reads and changes only the entries it
/// names (ZADD, ZREM, HINCRBY, ...): `change` gets the projection of
/// `names` (`evenkeel_types::project`), not the whole value, and what it
/// leaves is merged back into the encoding (`evenkeel_types::edit::merge`),
/// the other entries copied as they are. `missing` set: no key answers it
/// and writes nothing.
pub(super) fn change_named<C: Collection>(live: Option<&Record>, names: &[Bytes], version: Version, limits: OpLimits, missing: Option<R>, change: impl FnOnce(&mut C) -> (bool, R)) -> Applied {
    let raw = match encoded::<C>(live) {
        Ok(None) if missing.is_some() => return no_write(missing.expect("checked")),
        Ok(raw) => raw,
        Err(e) => return no_write(e),
    };
    let projected = raw.map(|raw| evenkeel_types::project::entries(C::TYPE, raw, names).expect("a collection type"));
    let mut part = match projected.map(|p| p.and_then(|p| C::decode(&p.value))) {
        None => C::default(),
        Some(Ok(part)) => part,
        Some(Err(e)) => return no_write(corrupt(e)),
    };
    let (changed, reply) = change(&mut part);
    if !changed {
        return no_write(reply);
    }
    match evenkeel_types::edit::merge(C::TYPE, raw, names, &part.encode()).expect("a hash, set or sorted set") {
        Ok(e) => edited::<C>(e, live, version, limits, reply),
        Err(e) => no_write(corrupt(e)),
    }
}

/// No limit: for a value that only shrinks.
pub(super) const UNLIMITED: OpLimits = OpLimits { max_value_bytes: usize::MAX };

/// Applies `change` to the value at `live` (a new, empty one if absent),
/// writing the result with the old expiry only if `change` says it
/// changed something.
pub(super) fn change<C: Collection>(live: Option<&Record>, version: Version, limits: OpLimits, change: impl FnOnce(&mut C) -> (bool, R)) -> Applied {
    let mut value = match read::<C>(live) {
        Ok(value) => value.unwrap_or_default(),
        Err(e) => return no_write(e),
    };
    let (changed, reply) = change(&mut value);
    if !changed {
        return no_write(reply);
    }
    match record(&value, live.and_then(|r| r.expire_at_ms), version, limits) {
        Ok(record) => Applied { write: Some(record), reply },
        Err(e) => no_write(e),
    }
}

/// As [`change`], for a command that answers `missing` for no key and
/// writes nothing then.
pub(super) fn change_existing<C: Collection>(live: Option<&Record>, version: Version, limits: OpLimits, missing: R, f: impl FnOnce(&mut C) -> (bool, R)) -> Applied {
    match live {
        None => no_write(missing),
        Some(_) => change(live, version, limits, f),
    }
}

/// LMPOP and ZMPOP (and the blocking pops): `pop` takes what it pops from
/// the encoding at the first of `keys` that exists, which must be a `C`
/// (later keys are not looked at, as in Redis), and answers it with the
/// rest (`evenkeel_types::edit`). Answers that key and what was popped,
/// or Nil when no key exists.
pub(super) fn m_pop<'a, C: Collection>(keys: &[Bytes], live: &dyn Fn(usize) -> Option<&'a Record>, versions: &[Version], pop: impl FnOnce(&Bytes) -> Result<(Vec<Bytes>, evenkeel_types::edit::Edited), CorruptRecord>) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    let Some(i) = (0..keys.len()).find(|&i| live(i).is_some()) else { return none(R::Nil(pb::Nil {})) };
    let raw = match encoded::<C>(live(i)) {
        Ok(raw) => raw.expect("a live record"),
        Err(e) => return none(e),
    };
    let (popped, rest) = match pop(raw) {
        Ok(popped) => popped,
        Err(e) => return none(corrupt(e)),
    };
    let written = edited_record::<C>(rest, live(i), versions[i], UNLIMITED).expect("no limit");
    let members = std::iter::once(keys[i].clone()).chain(popped).collect();
    AppliedMulti { writes: vec![(i, written)], reply: R::Members(pb::Members { members }) }
}
