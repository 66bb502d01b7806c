//! A list value: the value bytes of a [`crate::ValueType::List`] record.
//!
//! Encoding, little-endian: `count:u32`, then per element
//! `len:u32 | element`, head first: the layout of a [`crate::hash`]
//! without values.

use crate::hash::Cursor;
use crate::record::CorruptRecord;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub VecDeque<Bytes>);

impl List {
    /// Decodes `raw`, sharing its bytes.
    pub fn decode(raw: &Bytes) -> Result<List, CorruptRecord> {
        let mut cursor = Cursor { raw, at: 0 };
        let count = cursor.u32("list shorter than its count")? as usize;
        // The count is not trusted for allocation: each element takes 4 bytes.
        let mut items = VecDeque::with_capacity(count.min(raw.len() / 4));
        for _ in 0..count {
            items.push_back(cursor.chunk("list element cut short")?);
        }
        if cursor.at != raw.len() {
            return Err(CorruptRecord("bytes after the list's last element"));
        }
        Ok(List(items))
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_u32_le(self.0.len() as u32);
        for item in &self.0 {
            buf.put_u32_le(item.len() as u32);
            buf.put_slice(item);
        }
        buf.freeze()
    }

    pub fn encoded_len(&self) -> usize {
        4 + self.0.iter().map(|i| 4 + i.len()).sum::<usize>()
    }

    /// Redis's index range for a list of `len` (LRANGE, LTRIM): negative
    /// indexes count from the end, both ends are clamped; None when empty.
    pub fn range(len: usize, start: i64, stop: i64) -> Option<std::ops::RangeInclusive<usize>> {
        let len = len as i64;
        let start = if start < 0 { (len + start).max(0) } else { start };
        let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
        (start <= stop && start < len).then_some(start as usize..=stop as usize)
    }

    /// The position of `index` (negative from the end), if inside.
    pub fn position(len: usize, index: i64) -> Option<usize> {
        let i = if index < 0 { len as i64 + index } else { index };
        (0..len as i64).contains(&i).then_some(i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_and_positions_like_redis() {
        assert_eq!(List::range(5, 0, -1), Some(0..=4));
        assert_eq!(List::range(5, -2, 100), Some(3..=4));
        assert_eq!(List::range(5, 3, 1), None);
        assert_eq!(List::range(5, 5, 9), None);
        assert_eq!(List::range(5, -100, -6), None);
        assert_eq!(List::range(0, 0, -1), None);
        assert_eq!(List::range(5, i64::MIN, i64::MAX), Some(0..=4));
        assert_eq!((List::position(3, -1), List::position(3, 3), List::position(3, -4)), (Some(2), None, None));
    }

    proptest! {
        #[test]
        fn round_trips(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5), 0..20)) {
            let list = List(items.into_iter().map(Bytes::from).collect());
            prop_assert_eq!(List::decode(&list.encode()).unwrap(), list.clone());
            prop_assert_eq!(list.encode().len(), list.encoded_len());
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = List::decode(&Bytes::from(raw));
        }
    }
}
