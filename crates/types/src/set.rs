//! A set value: the value bytes of a [`crate::ValueType::Set`] record.
//!
//! Encoded as a [`crate::hash`] whose fields are the members and whose
//! values are empty: the same length-prefixed layout, members in insertion
//! order, each once. The order Redis lists a set in is the router's
//! concern; this keeps the members as they came.

use crate::hash::Hash;
use crate::record::CorruptRecord;
use bytes::Bytes;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Set(Hash);

impl Set {
    /// Decodes `raw`, sharing its bytes. A member with a value is corrupt.
    pub fn decode(raw: &Bytes) -> Result<Set, CorruptRecord> {
        let hash = Hash::decode(raw)?;
        if hash.iter().any(|(_, v)| !v.is_empty()) {
            return Err(CorruptRecord("set member with a value"));
        }
        Ok(Set(hash))
    }

    pub fn encode(&self) -> Bytes {
        self.0.encode()
    }

    pub fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.0.get(member).is_some()
    }

    /// Adds `member`; true if it is new.
    pub fn insert(&mut self, member: Bytes) -> bool {
        self.0.set(member, Bytes::new())
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.0.remove(member)
    }

    /// Members in insertion order.
    pub fn members(&self) -> impl Iterator<Item = &Bytes> {
        self.0.iter().map(|(m, _)| m)
    }
}

/// How SUNION, SINTER and SDIFF (and their STORE forms) combine sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Union,
    Inter,
    /// The first set less the others.
    Diff,
}

/// `sets` combined, members in the order the first set holding them lists
/// them.
pub fn combine(op: Combine, sets: &[Set]) -> Set {
    let Some((first, rest)) = sets.split_first() else { return Set::default() };
    match op {
        Combine::Union => sets.iter().flat_map(Set::members).cloned().collect(),
        Combine::Inter => first.members().filter(|m| rest.iter().all(|s| s.contains(m))).cloned().collect(),
        Combine::Diff => first.members().filter(|m| !rest.iter().any(|s| s.contains(m))).cloned().collect(),
    }
}

impl FromIterator<Bytes> for Set {
    fn from_iter<I: IntoIterator<Item = Bytes>>(members: I) -> Set {
        let mut set = Set::default();
        for m in members {
            set.insert(m);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> Set {
        members.iter().map(|m| Bytes::copy_from_slice(m.as_bytes())).collect()
    }

    fn listed(s: &Set) -> Vec<&str> {
        s.members().map(|m| std::str::from_utf8(m).unwrap()).collect()
    }

    #[test]
    fn union_intersection_and_difference() {
        let sets = [set(&["a", "b", "c"]), set(&["c", "d", "a"]), set(&["a", "e"])];
        assert_eq!(listed(&combine(Combine::Union, &sets)), vec!["a", "b", "c", "d", "e"]);
        assert_eq!(listed(&combine(Combine::Inter, &sets)), vec!["a"]);
        assert_eq!(listed(&combine(Combine::Diff, &sets)), vec!["b"]);
        assert_eq!(listed(&combine(Combine::Inter, &[set(&["a"]), Set::default()])), Vec::<&str>::new(), "with an empty set");
        assert!(combine(Combine::Union, &[]).is_empty());
    }

    #[test]
    fn members_once_in_insertion_order_and_round_trip() {
        let mut s: Set = ["b", "a", "b"].iter().map(|m| Bytes::copy_from_slice(m.as_bytes())).collect();
        assert_eq!(s.len(), 2);
        assert!(!s.insert(Bytes::from_static(b"a")) && s.insert(Bytes::from_static(b"c")));
        assert!(s.remove(b"b") && !s.remove(b"b") && s.contains(b"c") && !s.contains(b"b"));
        let decoded = Set::decode(&s.encode()).unwrap();
        assert_eq!(decoded.members().collect::<Vec<_>>(), vec![&Bytes::from_static(b"a"), &Bytes::from_static(b"c")]);
        assert_eq!(s.encode().len(), s.encoded_len());
        let mut with_value = Hash::default();
        with_value.set(Bytes::from_static(b"m"), Bytes::from_static(b"v"));
        assert_eq!(Set::decode(&with_value.encode()), Err(CorruptRecord("set member with a value")));
    }
}
