//! The stored form of one key.
//!
//! Encoding (value side of the node's data keyspace), little-endian:
//! `flags:u8 | version:u64 | expire_at_ms:u64 (0 = none) | value bytes`.
//! Flags: 0 a string, 1 a tombstone (no value bytes), 2 a hash (the value
//! bytes are its [`crate::hash`] encoding), 3 a set ([`crate::set`]), 4 a
//! list ([`crate::list`]), 5 a sorted set ([`crate::zset`]).

use crate::hlc::Version;
use bytes::{BufMut, Bytes, BytesMut};

const TOMBSTONE: u8 = 1;
const HASH: u8 = 2;
const SET: u8 = 3;
const LIST: u8 = 4;
const ZSET: u8 = 5;
const STREAM: u8 = 6;
/// Bytes of an encoded record before its value: flags, version, expiry.
pub const HEADER_LEN: usize = 1 + 8 + 8;

/// What a live record's value bytes hold: Redis's value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueType {
    #[default]
    String,
    /// A field-value map, encoded as [`crate::hash`] describes.
    Hash,
    /// Members, encoded as [`crate::set`] describes.
    Set,
    /// Elements, encoded as [`crate::list`] describes.
    List,
    /// Members with scores, encoded as [`crate::zset`] describes.
    ZSet,
    /// Entries and consumer groups, encoded as [`crate::stream`] describes.
    Stream,
}

/// Value or tombstone, optional absolute expiry, version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `None` is a tombstone: the key was deleted at `version`.
    pub value: Option<Bytes>,
    /// Absolute expiry in Unix milliseconds.
    pub expire_at_ms: Option<u64>,
    pub version: Version,
    /// The value's type (a tombstone's is String).
    pub ty: ValueType,
}

/// A stored record that could not be decoded: the store is corrupt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("corrupt record: {0}")]
pub struct CorruptRecord(pub &'static str);

impl Record {
    /// A string value.
    pub fn value(value: impl Into<Bytes>, expire_at_ms: Option<u64>, version: Version) -> Self {
        Record { value: Some(value.into()), expire_at_ms, version, ty: ValueType::String }
    }

    /// A value of type `ty`, given its encoding.
    pub fn typed(ty: ValueType, encoded: impl Into<Bytes>, expire_at_ms: Option<u64>, version: Version) -> Self {
        Record { value: Some(encoded.into()), expire_at_ms, version, ty }
    }

    /// A hash, given its encoding.
    pub fn hash(encoded: impl Into<Bytes>, expire_at_ms: Option<u64>, version: Version) -> Self {
        Record::typed(ValueType::Hash, encoded, expire_at_ms, version)
    }

    pub fn tombstone(version: Version) -> Self {
        Record { value: None, expire_at_ms: None, version, ty: ValueType::String }
    }

    /// The same value and type at another version and expiry (RENAME,
    /// COPY, EXPIRE, PERSIST).
    pub fn restamped(&self, expire_at_ms: Option<u64>, version: Version) -> Self {
        Record { value: self.value.clone(), expire_at_ms, version, ty: self.ty }
    }

    /// The value if the record is live at `now_ms` (not deleted, not expired).
    pub fn live_value(&self, now_ms: u64) -> Option<&Bytes> {
        if self.is_expired(now_ms) { None } else { self.value.as_ref() }
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms.is_some_and(|at| at <= now_ms)
    }

    pub fn is_live(&self, now_ms: u64) -> bool {
        self.live_value(now_ms).is_some()
    }

    /// Bytes this record occupies when encoded.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.value.as_ref().map_or(0, Bytes::len)
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut buf);
        buf.freeze()
    }

    pub fn encode_into(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.header());
        if let Some(v) = &self.value {
            buf.put_slice(v);
        }
    }

    /// The encoding's fixed-size head; the value bytes follow it.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = match (&self.value, self.ty) {
            (None, _) => TOMBSTONE,
            (Some(_), ValueType::String) => 0,
            (Some(_), ValueType::Hash) => HASH,
            (Some(_), ValueType::Set) => SET,
            (Some(_), ValueType::List) => LIST,
            (Some(_), ValueType::ZSet) => ZSET,
            (Some(_), ValueType::Stream) => STREAM,
        };
        h[1..9].copy_from_slice(&self.version.to_le_bytes());
        h[9..17].copy_from_slice(&self.expire_at_ms.unwrap_or(0).to_le_bytes());
        h
    }

    /// Whether `raw`, an encoded record, holds a value (false: a
    /// tombstone), checked as [`Record::decode`] checks it (it calls this)
    /// but without copying the value out: for a reader that only needs the
    /// encoding itself, which is the record's [`Record::header`] and then
    /// its value.
    pub fn encoded_has_value(raw: &[u8]) -> Result<bool, CorruptRecord> {
        match (raw.first(), raw.len()) {
            (_, len) if len < HEADER_LEN => Err(CorruptRecord("shorter than header")),
            (Some(0 | &HASH | &SET | &LIST | &ZSET | &STREAM), _) => Ok(true),
            (Some(&TOMBSTONE), HEADER_LEN) => Ok(false),
            (Some(&TOMBSTONE), _) => Err(CorruptRecord("tombstone with a body")),
            _ => Err(CorruptRecord("unknown flags")),
        }
    }

    pub fn decode(raw: &[u8]) -> Result<Record, CorruptRecord> {
        let value = Self::encoded_has_value(raw)?.then(|| Bytes::copy_from_slice(&raw[HEADER_LEN..]));
        let version = u64::from_le_bytes(raw[1..9].try_into().expect("8 bytes"));
        let expire = u64::from_le_bytes(raw[9..17].try_into().expect("8 bytes"));
        let ty = match raw[0] {
            HASH => ValueType::Hash,
            SET => ValueType::Set,
            LIST => ValueType::List,
            ZSET => ValueType::ZSet,
            STREAM => ValueType::Stream,
            _ => ValueType::String,
        };
        Ok(Record { value, expire_at_ms: (expire != 0).then_some(expire), version, ty })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                       expire in proptest::option::of(1u64..u64::MAX), version: u64, ty in 0u8..6) {
            let ty = match (ty, value.is_some()) {
                (1, true) => ValueType::Hash,
                (2, true) => ValueType::Set,
                (3, true) => ValueType::List,
                (4, true) => ValueType::ZSet,
                (5, true) => ValueType::Stream,
                _ => ValueType::String,
            };
            let r = Record { value: value.map(Bytes::from), expire_at_ms: expire, version, ty };
            let enc = r.encode();
            prop_assert_eq!(enc.len(), r.encoded_len());
            prop_assert_eq!(Record::decode(&enc).unwrap(), r.clone());
            prop_assert_eq!(Record::encoded_has_value(&enc), Ok(r.value.is_some()));
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Record::decode(&raw);
        }

        /// The check without the copy accepts and refuses what decoding
        /// does, and says what decoding finds.
        #[test]
        fn encoded_has_value_agrees_with_decode(flags in 0u8..8, rest in proptest::collection::vec(any::<u8>(), 0..40)) {
            let raw: Vec<u8> = std::iter::once(flags).chain(rest).collect();
            prop_assert_eq!(Record::encoded_has_value(&raw), Record::decode(&raw).map(|r| r.value.is_some()));
        }
    }

    #[test]
    fn liveness() {
        let r = Record::value("v", Some(100), 1);
        assert!(r.is_live(99));
        assert!(!r.is_live(100));
        assert!(!Record::tombstone(2).is_live(0));
        assert_eq!(Record::decode(&[9; 17]), Err(CorruptRecord("unknown flags")));
    }
}
