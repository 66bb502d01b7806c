//! A hash value: the value bytes of a [`crate::ValueType::Hash`] record.
//!
//! Encoding, little-endian: `count:u32`, then per field
//! `field_len:u32 | field | value_len:u32 | value`. Fields are in
//! insertion order, each once: a new field goes last, a field set again
//! keeps its place, as Redis keeps a small hash (its listpack encoding), so
//! HGETALL, HKEYS and HVALS list small hashes in Redis's order.
//!
//! A hash is one record: a write reads, changes and rewrites all of it, so
//! a write costs time in proportion to the hash's size. Like Redis's
//! listpack, it suits hashes of up to some thousands of fields.

use crate::record::CorruptRecord;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;

/// A decoded hash: its fields in order, with an index to find them.
#[derive(Debug, Clone, Default)]
pub struct Hash {
    /// `None`: a field removed since decoding (skipped when encoding).
    entries: Vec<Option<(Bytes, Bytes)>>,
    index: HashMap<Bytes, usize>,
}

impl PartialEq for Hash {
    fn eq(&self, other: &Hash) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Hash {
    /// Decodes `raw`, sharing its bytes.
    pub fn decode(raw: &Bytes) -> Result<Hash, CorruptRecord> {
        let mut cursor = Cursor { raw, at: 0 };
        let count = cursor.u32("hash shorter than its count")? as usize;
        // The count is not trusted for allocation: each field takes 8 bytes.
        let capacity = count.min(raw.len() / 8);
        let mut hash = Hash { entries: Vec::with_capacity(capacity), index: HashMap::with_capacity(capacity) };
        for _ in 0..count {
            let field = cursor.chunk("hash field cut short")?;
            let value = cursor.chunk("hash value cut short")?;
            if hash.index.insert(field.clone(), hash.entries.len()).is_some() {
                return Err(CorruptRecord("hash field twice"));
            }
            hash.entries.push(Some((field, value)));
        }
        if cursor.at != raw.len() {
            return Err(CorruptRecord("bytes after the hash's last field"));
        }
        Ok(hash)
    }

    /// The fields and values of `raw` in order, sharing its bytes, without
    /// the index [`Self::decode`] builds (for reads that list the whole
    /// hash: HGETALL, HKEYS, SMEMBERS, ..., where building it was most of
    /// the work). Duplicate fields are not looked for.
    pub fn pairs(raw: &Bytes) -> Result<Vec<(Bytes, Bytes)>, CorruptRecord> {
        let mut cursor = Cursor { raw, at: 0 };
        let count = cursor.u32("hash shorter than its count")? as usize;
        let mut pairs = Vec::with_capacity(count.min(raw.len() / 8));
        for _ in 0..count {
            pairs.push((cursor.chunk("hash field cut short")?, cursor.chunk("hash value cut short")?));
        }
        if cursor.at != raw.len() {
            return Err(CorruptRecord("bytes after the hash's last field"));
        }
        Ok(pairs)
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_u32_le(self.len() as u32);
        for (field, value) in self.iter() {
            buf.put_u32_le(field.len() as u32);
            buf.put_slice(field);
            buf.put_u32_le(value.len() as u32);
            buf.put_slice(value);
        }
        buf.freeze()
    }

    /// Bytes [`Self::encode`] produces.
    pub fn encoded_len(&self) -> usize {
        4 + self.iter().map(|(f, v)| 8 + f.len() + v.len()).sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        let i = *self.index.get(field)?;
        self.entries[i].as_ref().map(|(_, v)| v)
    }

    /// Sets `field`; true if it is new (it then goes last).
    pub fn set(&mut self, field: Bytes, value: Bytes) -> bool {
        match self.index.get(&field) {
            Some(&i) => {
                self.entries[i].as_mut().expect("indexed fields are present").1 = value;
                false
            }
            None => {
                self.index.insert(field.clone(), self.entries.len());
                self.entries.push(Some((field, value)));
                true
            }
        }
    }

    /// Removes `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.index.remove(field) {
            Some(i) => {
                self.entries[i] = None;
                true
            }
            None => false,
        }
    }

    /// Fields and values in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.entries.iter().flatten().map(|(f, v)| (f, v))
    }
}

/// Reads the length-prefixed layout hashes, sets and lists share.
pub(crate) struct Cursor<'a> {
    pub(crate) raw: &'a Bytes,
    pub(crate) at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<std::ops::Range<usize>, CorruptRecord> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.raw.len()).ok_or(CorruptRecord(what))?;
        let range = self.at..end;
        self.at = end;
        Ok(range)
    }

    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), CorruptRecord> {
        self.take(n, what).map(|_| ())
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, CorruptRecord> {
        let r = self.take(1, what)?;
        Ok(self.raw[r.start])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, CorruptRecord> {
        let r = self.take(4, what)?;
        Ok(u32::from_le_bytes(self.raw[r].try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, CorruptRecord> {
        let r = self.take(8, what)?;
        Ok(u64::from_le_bytes(self.raw[r].try_into().expect("8 bytes")))
    }

    /// A length-prefixed run of bytes, shared with the encoding.
    pub(crate) fn chunk(&mut self, what: &'static str) -> Result<Bytes, CorruptRecord> {
        let len = self.u32(what)? as usize;
        Ok(self.raw.slice(self.take(len, what)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn fields_keep_their_place_and_new_ones_go_last() {
        let mut h = Hash::default();
        assert!(h.set(b("a"), b("1")) && h.set(b("b"), b("2")) && h.set(b("c"), b("3")));
        assert!(!h.set(b("a"), b("one")), "not new");
        assert!(h.remove(b"b") && !h.remove(b"b"));
        assert!(h.set(b("b"), b("again")));
        let order: Vec<(&[u8], &[u8])> = h.iter().map(|(f, v)| (&f[..], &v[..])).collect();
        assert_eq!(order, vec![(&b"a"[..], &b"one"[..]), (b"c", b"3"), (b"b", b"again")]);
        let decoded = Hash::decode(&h.encode()).unwrap();
        assert_eq!(decoded, h);
        assert_eq!((decoded.len(), decoded.get(b"c"), decoded.get(b"x")), (3, Some(&b("3")), None));
        assert_eq!(h.encode().len(), h.encoded_len());
    }

    #[test]
    fn corrupt_encodings_are_refused() {
        assert!(Hash::decode(&Bytes::from_static(b"\x01\x00")).is_err());
        assert!(Hash::decode(&Bytes::from_static(b"\x01\x00\x00\x00\x05\x00\x00\x00ab")).is_err());
        assert!(Hash::decode(&Bytes::from_static(b"\x00\x00\x00\x00x")).is_err(), "trailing bytes");
        let twice = b"\x02\x00\x00\x00\x01\x00\x00\x00a\x00\x00\x00\x00\x01\x00\x00\x00a\x00\x00\x00\x00";
        assert_eq!(Hash::decode(&Bytes::from_static(twice)), Err(CorruptRecord("hash field twice")));
        assert!(Hash::decode(&Bytes::from_static(b"\xff\xff\xff\xff")).is_err(), "a huge count allocates nothing");
    }

    proptest! {
        #[test]
        fn round_trips(ops in proptest::collection::vec((0u8..8, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..6)), 0..40)) {
            let mut h = Hash::default();
            let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for (f, set, v) in ops {
                let field = vec![f];
                if set {
                    h.set(Bytes::from(field.clone()), Bytes::from(v.clone()));
                    match model.iter_mut().find(|(k, _)| *k == field) {
                        Some(e) => e.1 = v,
                        None => model.push((field, v)),
                    }
                } else {
                    h.remove(&field);
                    model.retain(|(k, _)| *k != field);
                }
            }
            let decoded = Hash::decode(&h.encode()).unwrap();
            let got: Vec<(Vec<u8>, Vec<u8>)> = decoded.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(got, model);
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Hash::decode(&Bytes::from(raw));
        }
    }
}
