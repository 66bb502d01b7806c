//! A sorted set value: the value bytes of a [`crate::ValueType::ZSet`]
//! record, and the range and combination rules both the router (reads)
//! and the node (writes) apply to it.
//!
//! Encoding, little-endian: `count:u32`, then per member
//! `score:f64 | len:u32 | member`, in the set's order: by score, then by
//! member bytes (shorter first on a common prefix), as Redis orders one.
//! Scores are never NaN, and a zero is stored as +0 (Redis answers `0`
//! for `ZADD k -0 m`).
//!
//! A sorted set is one record, as a hash is: each write rewrites it, so
//! it suits sets of up to some thousands of members. Point reads take
//! only the part they need ([`crate::project`]), ranges by score too;
//! ranges by lex fetch it whole.

use crate::hash::Cursor;
use crate::list::List;
use crate::record::CorruptRecord;
use bytes::{BufMut, Bytes, BytesMut};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A score with the total order sorted sets use (never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        self.0.partial_cmp(&other.0).expect("scores are never NaN")
    }
}

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Bytes, f64>,
    order: BTreeSet<(Score, Bytes)>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.order == other.order
    }
}

impl ZSet {
    /// Decodes `raw`, sharing its bytes. Members out of order, twice, or
    /// with a NaN score make it corrupt.
    pub fn decode(raw: &Bytes) -> Result<ZSet, CorruptRecord> {
        let mut cursor = Cursor { raw, at: 0 };
        let count = cursor.u32("sorted set shorter than its count")? as usize;
        let mut entries = Vec::with_capacity(count.min(raw.len() / 12));
        let mut scores = HashMap::with_capacity(entries.capacity());
        for _ in 0..count {
            let score = f64::from_bits(cursor.u64("sorted set score cut short")?);
            let member = cursor.chunk("sorted set member cut short")?;
            if score.is_nan() || (score == 0.0 && score.is_sign_negative()) {
                return Err(CorruptRecord("sorted set score NaN or -0"));
            }
            let entry = (Score(score), member);
            if entries.last().is_some_and(|last| *last >= entry) {
                return Err(CorruptRecord("sorted set members out of order"));
            }
            if scores.insert(entry.1.clone(), score).is_some() {
                return Err(CorruptRecord("sorted set member twice"));
            }
            entries.push(entry);
        }
        if cursor.at != raw.len() {
            return Err(CorruptRecord("bytes after the sorted set's last member"));
        }
        Ok(ZSet { scores, order: entries.into_iter().collect() })
    }

    /// The members and scores of `raw` in order, sharing its bytes,
    /// without the indexes [`Self::decode`] builds (for reads that list
    /// a span as stored). Order and uniqueness are not checked.
    pub fn entries(raw: &Bytes) -> Result<Vec<(Bytes, f64)>, CorruptRecord> {
        let mut cursor = Cursor { raw, at: 0 };
        let count = cursor.u32("sorted set shorter than its count")? as usize;
        let mut entries = Vec::with_capacity(count.min(raw.len() / 12));
        for _ in 0..count {
            let score = f64::from_bits(cursor.u64("sorted set score cut short")?);
            entries.push((cursor.chunk("sorted set member cut short")?, score));
        }
        if cursor.at != raw.len() {
            return Err(CorruptRecord("bytes after the sorted set's last member"));
        }
        Ok(entries)
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_u32_le(self.len() as u32);
        for (Score(score), member) in &self.order {
            buf.put_u64_le(if *score == 0.0 { 0 } else { score.to_bits() });
            buf.put_u32_le(member.len() as u32);
            buf.put_slice(member);
        }
        buf.freeze()
    }

    pub fn encoded_len(&self) -> usize {
        4 + self.order.iter().map(|(_, m)| 12 + m.len()).sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score, returning the old one. `score` must not be
    /// NaN; -0 is taken as 0 (as Redis stores it in a small sorted set).
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        self.insert_exact(member, if score == 0.0 { 0.0 } else { score })
    }

    /// [`Self::insert`] keeping a -0 (which compares equal to 0): a
    /// computed result Redis answers without storing it (ZUNION's
    /// `WEIGHTS -1` over a 0) prints as `-0`. Encoding writes it as 0.
    fn insert_exact(&mut self, member: Bytes, score: f64) -> Option<f64> {
        assert!(!score.is_nan(), "a sorted set score is never NaN");
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.order.remove(&(Score(old), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Removes `member`, returning its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (member, score) = self.scores.remove_entry(member)?;
        self.order.remove(&(Score(score), member));
        Some(score)
    }

    /// Members and scores in order, lowest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + ExactSizeIterator {
        self.order.iter().map(|(Score(s), m)| (m, *s))
    }

    /// `member`'s rank counted from the lowest (or, `rev`, the highest).
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let score = self.score(member)?;
        let below = self.order.range(..(Score(score), Bytes::copy_from_slice(member))).count();
        Some(if rev { self.len() - 1 - below } else { below })
    }

    /// The members `range` selects, in the order it lists them.
    pub fn select(&self, range: &Range) -> Vec<(Bytes, f64)> {
        let ordered = || -> Vec<(&Bytes, f64)> { if range.rev { self.iter().rev().collect() } else { self.iter().collect() } };
        let chosen: Vec<(&Bytes, f64)> = match &range.bounds {
            Bounds::Rank { start, stop } => {
                let all = ordered();
                match List::range(all.len(), *start, *stop) {
                    Some(r) => all[r].to_vec(),
                    None => Vec::new(),
                }
            }
            // Scores are sorted: the members in range are one run.
            Bounds::Score { min, max } => ordered().into_iter().filter(|(_, s)| min.below(*s) && max.above(*s)).collect(),
            Bounds::Lex { min, max } => self.lex_run(min, max, range.rev),
        };
        let Some((offset, count)) = range.limit else { return owned(chosen) };
        if offset < 0 {
            return Vec::new();
        }
        let taken = chosen.into_iter().skip(offset as usize);
        owned(if count < 0 { taken.collect() } else { taken.take(count as usize).collect() })
    }

    /// The members a lex range selects, as Redis walks a small sorted set
    /// (its listpack): nothing if the range is empty, the last member is
    /// below it or the first above it; else from the first member (walking
    /// forward, or backward for `rev`) on the near side of the range's
    /// start, while members stay on the near side of its end. With equal
    /// scores, which lex ranges are meant for, that is every member in
    /// range; with mixed scores it is Redis's answer too.
    fn lex_run(&self, min: &LexBound, max: &LexBound, rev: bool) -> Vec<(&Bytes, f64)> {
        let (Some((first, _)), Some((last, _))) = (self.iter().next(), self.iter().next_back()) else { return Vec::new() };
        if LexBound::empty_range(min, max) || !min.at_least(last) || !max.at_most(first) {
            return Vec::new();
        }
        let walk: Vec<(&Bytes, f64)> = if rev { self.iter().rev().collect() } else { self.iter().collect() };
        // Walking forward: start at the first member at least min, keep
        // while at most max; backward, the other way round.
        let (start, end) = if rev { (max, min) } else { (min, max) };
        let inside = |bound: &LexBound, is_start: bool, m: &[u8]| if is_start != rev { bound.at_least(m) } else { bound.at_most(m) };
        let Some(first) = walk.iter().position(|(m, _)| inside(start, true, m)) else { return Vec::new() };
        walk[first..].iter().take_while(|(m, _)| inside(end, false, m)).copied().collect()
    }
}

fn owned(entries: Vec<(&Bytes, f64)>) -> Vec<(Bytes, f64)> {
    entries.into_iter().map(|(m, s)| (m.clone(), s)).collect()
}

/// One end of a score range: `(1` is exclusive, `1` inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    /// Reads a bound as Redis's `zslParseRange`; None: "min or max is not
    /// a float".
    pub fn parse(raw: &[u8]) -> Option<ScoreBound> {
        let (exclusive, number) = match raw.strip_prefix(b"(") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let value = crate::float::parse_range_double(number)?;
        Some(ScoreBound { value, exclusive })
    }

    /// Whether `score` is at or past this bound taken as a minimum.
    pub(crate) fn below(&self, score: f64) -> bool {
        if self.exclusive { score > self.value } else { score >= self.value }
    }

    /// Whether `score` is at or before this bound taken as a maximum.
    pub(crate) fn above(&self, score: f64) -> bool {
        if self.exclusive { score < self.value } else { score <= self.value }
    }
}

/// One end of a lex range: `-`, `+`, `[member` or `(member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    Lowest,
    Highest,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    /// Reads a bound as Redis's `zslParseLexRangeItem`; None: "min or max
    /// not valid string range item".
    pub fn parse(raw: &Bytes) -> Option<LexBound> {
        match raw.first() {
            Some(b'-') if raw.len() == 1 => Some(LexBound::Lowest),
            Some(b'+') if raw.len() == 1 => Some(LexBound::Highest),
            Some(b'[') => Some(LexBound::Inclusive(raw.slice(1..))),
            Some(b'(') => Some(LexBound::Exclusive(raw.slice(1..))),
            _ => None,
        }
    }

    /// Redis's check before walking: min above max, or equal with either
    /// exclusive (`-` and `+` count as exclusive).
    pub(crate) fn empty_range(min: &LexBound, max: &LexBound) -> bool {
        let rank = |b: &LexBound| match b {
            LexBound::Lowest => (0, None, true),
            LexBound::Inclusive(m) => (1, Some(m.clone()), false),
            LexBound::Exclusive(m) => (1, Some(m.clone()), true),
            LexBound::Highest => (2, None, true),
        };
        let ((a, am, aex), (b, bm, bex)) = (rank(min), rank(max));
        match (a, am).cmp(&(b, bm)) {
            Ordering::Greater => true,
            Ordering::Equal => aex || bex,
            Ordering::Less => false,
        }
    }

    /// Whether `member` is inside this bound taken as a minimum.
    pub(crate) fn at_least(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Lowest => true,
            LexBound::Highest => false,
            LexBound::Inclusive(b) => member >= &b[..],
            LexBound::Exclusive(b) => member > &b[..],
        }
    }

    /// Whether `member` is inside this bound taken as a maximum.
    pub(crate) fn at_most(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Lowest => false,
            LexBound::Highest => true,
            LexBound::Inclusive(b) => member <= &b[..],
            LexBound::Exclusive(b) => member < &b[..],
        }
    }
}

/// What a range selects by.
#[derive(Debug, Clone, PartialEq)]
pub enum Bounds {
    /// Ranks, negative from the end, as LRANGE's indexes.
    Rank { start: i64, stop: i64 },
    Score { min: ScoreBound, max: ScoreBound },
    Lex { min: LexBound, max: LexBound },
}

/// A ZRANGE-style selection: bounds (min before max, whatever the
/// command's argument order), direction, and LIMIT offset and count (a
/// negative count: all the rest; a negative offset: nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub bounds: Bounds,
    pub rev: bool,
    pub limit: Option<(i64, i64)>,
}

/// What a ZRANGE-style command selects by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Rank,
    Score,
    Lex,
}

/// A range bound that does not read (each has Redis's error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// "value is not an integer or out of range"
    NotInteger,
    /// "min or max is not a float"
    NotFloat,
    /// "min or max not valid string range item"
    NotLexItem,
}

impl Range {
    /// Reads a range's bounds as the client sent them (`min` first, for
    /// ranks the start), as Redis reads them.
    pub fn parse(by: By, min: &Bytes, max: &Bytes, rev: bool, limit: Option<(i64, i64)>) -> Result<Range, RangeError> {
        let bounds = match by {
            By::Rank => {
                let rank = |raw: &Bytes| crate::int::parse_i64(raw).ok_or(RangeError::NotInteger);
                Bounds::Rank { start: rank(min)?, stop: rank(max)? }
            }
            By::Score => {
                let bound = |raw: &Bytes| ScoreBound::parse(raw).ok_or(RangeError::NotFloat);
                Bounds::Score { min: bound(min)?, max: bound(max)? }
            }
            By::Lex => {
                let bound = |raw: &Bytes| LexBound::parse(raw).ok_or(RangeError::NotLexItem);
                Bounds::Lex { min: bound(min)?, max: bound(max)? }
            }
        };
        Ok(Range { bounds, rev, limit })
    }

    /// The whole of a score or lex range, lowest first, no limit (ZCOUNT,
    /// ZLEXCOUNT, ZREMRANGEBYSCORE, ZREMRANGEBYLEX).
    pub fn all_of(bounds: Bounds) -> Range {
        Range { bounds, rev: false, limit: None }
    }
}

/// How ZUNION, ZINTER and ZDIFF (and their STORE forms) combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Union,
    Inter,
    /// The first input less the others, with the first's scores.
    Diff,
}

/// How ZUNION and ZINTER merge a member's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    #[default]
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, acc: f64, value: f64) -> f64 {
        match self {
            // inf + -inf is NaN, which Redis stores as 0.
            Aggregate::Sum => zero_nan(acc + value),
            Aggregate::Min => acc.min(value),
            Aggregate::Max => acc.max(value),
        }
    }
}

fn zero_nan(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v }
}

/// `inputs` (each a sorted set, or a plain set given scores of 1, with
/// its weight) combined as Redis 7.0 does, summing in the same order so
/// the last bits of a sum agree: for a union or intersection the inputs
/// are taken smallest first (a stable sort, as glibc's qsort is for small
/// arrays); a weighted score that is NaN (0 x inf) counts as 0.
pub fn combine(op: Combine, inputs: &[(ZSet, f64)], aggregate: Aggregate) -> ZSet {
    let mut result = ZSet::default();
    let mut order: Vec<&(ZSet, f64)> = inputs.iter().collect();
    if op != Combine::Diff {
        order.sort_by_key(|(z, _)| z.len());
    }
    let Some(((first, first_weight), rest)) = order.split_first() else { return result };
    match op {
        Combine::Union => {
            for (z, weight) in &order {
                for (member, score) in z.iter() {
                    let weighted = zero_nan(weight * score);
                    let merged = match result.score(member) {
                        Some(acc) => aggregate.apply(acc, weighted),
                        None => weighted,
                    };
                    result.insert_exact(member.clone(), merged);
                }
            }
        }
        Combine::Inter => {
            'members: for (member, score) in first.iter() {
                let mut acc = zero_nan(first_weight * score);
                for (z, weight) in rest {
                    let Some(other) = z.score(member) else { continue 'members };
                    acc = aggregate.apply(acc, zero_nan(weight * other));
                }
                result.insert_exact(member.clone(), acc);
            }
        }
        Combine::Diff => {
            for (member, score) in first.iter() {
                if !rest.iter().any(|(z, _)| z.score(member).is_some()) {
                    result.insert_exact(member.clone(), score);
                }
            }
        }
    }
    result
}

impl FromIterator<(Bytes, f64)> for ZSet {
    fn from_iter<I: IntoIterator<Item = (Bytes, f64)>>(entries: I) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in entries {
            z.insert(m, s);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zset(entries: &[(&str, f64)]) -> ZSet {
        entries.iter().map(|(m, s)| (Bytes::copy_from_slice(m.as_bytes()), *s)).collect()
    }

    fn names(selected: &[(Bytes, f64)]) -> Vec<&str> {
        selected.iter().map(|(m, _)| std::str::from_utf8(m).unwrap()).collect()
    }

    fn lex(raw: &str) -> LexBound {
        LexBound::parse(&Bytes::copy_from_slice(raw.as_bytes())).unwrap()
    }

    fn score(raw: &str) -> ScoreBound {
        ScoreBound::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn ordered_by_score_then_member_and_round_trips() {
        let mut z = zset(&[("b", 1.0), ("a", 1.0), ("c", 0.5), ("ab", 1.0)]);
        assert_eq!(z.iter().map(|(m, _)| &m[..]).collect::<Vec<_>>(), vec![&b"c"[..], b"a", b"ab", b"b"]);
        assert_eq!(z.insert(Bytes::from_static(b"c"), 2.0), Some(0.5));
        assert_eq!((z.rank(b"c", false), z.rank(b"c", true), z.rank(b"a", true), z.rank(b"x", false)), (Some(3), Some(0), Some(3), None));
        assert_eq!(z.remove(b"a"), Some(1.0));
        assert_eq!(z.remove(b"a"), None);
        let decoded = ZSet::decode(&z.encode()).unwrap();
        assert_eq!(decoded, z);
        assert_eq!(z.encode().len(), z.encoded_len());
        z.insert(Bytes::from_static(b"n"), -0.0);
        assert!(z.score(b"n").unwrap().is_sign_positive(), "-0 is stored as 0");
    }

    #[test]
    fn corrupt_encodings_are_errors() {
        let z = zset(&[("a", 1.0), ("b", 2.0)]);
        let mut swapped = z.encode().to_vec();
        let (first, second) = (swapped[4..17].to_vec(), swapped[17..30].to_vec());
        swapped[4..17].copy_from_slice(&second);
        swapped[17..30].copy_from_slice(&first);
        assert_eq!(ZSet::decode(&Bytes::from(swapped)), Err(CorruptRecord("sorted set members out of order")));
        let mut nan = z.encode().to_vec();
        nan[4..12].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert_eq!(ZSet::decode(&Bytes::from(nan)), Err(CorruptRecord("sorted set score NaN or -0")));
        let mut extra = z.encode().to_vec();
        extra.push(0);
        assert!(ZSet::decode(&Bytes::from(extra)).is_err());
    }

    #[test]
    fn ranges_select_as_redis_does() {
        let z = zset(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
        let range = |bounds, rev, limit| z.select(&Range { bounds, rev, limit });
        assert_eq!(names(&range(Bounds::Rank { start: 1, stop: -2 }, false, None)), vec!["b", "c"]);
        assert_eq!(names(&range(Bounds::Rank { start: 0, stop: 0 }, true, None)), vec!["d"]);
        assert_eq!(names(&range(Bounds::Score { min: score("(1"), max: score("+inf") }, false, None)), vec!["b", "c", "d"]);
        assert_eq!(names(&range(Bounds::Score { min: score("2"), max: score("3") }, true, None)), vec!["c", "b"]);
        assert_eq!(names(&range(Bounds::Score { min: score("-inf"), max: score("inf") }, false, Some((1, 2)))), vec!["b", "c"]);
        assert_eq!(names(&range(Bounds::Score { min: score("-inf"), max: score("inf") }, false, Some((1, -1)))), vec!["b", "c", "d"]);
        assert!(range(Bounds::Score { min: score("-inf"), max: score("inf") }, false, Some((-1, 2))).is_empty(), "a negative offset");
        assert!(range(Bounds::Score { min: score("(2"), max: score("2") }, false, None).is_empty());
        assert_eq!(names(&range(Bounds::Lex { min: lex("(a"), max: lex("[c") }, false, None)), vec!["b", "c"]);
        assert_eq!(names(&range(Bounds::Lex { min: lex("-"), max: lex("(c") }, true, None)), vec!["b", "a"]);
        assert!(range(Bounds::Lex { min: lex("+"), max: lex("+") }, false, None).is_empty());
        assert_eq!((LexBound::parse(&Bytes::from_static(b"a")), LexBound::parse(&Bytes::new())), (None, None));
        assert_eq!(ScoreBound::parse(b"(x"), None);
    }

    #[test]
    fn lex_ranges_over_mixed_scores_walk_like_a_listpack() {
        // Listed c(1) a(2) b(3).
        let z = zset(&[("c", 1.0), ("a", 2.0), ("b", 3.0)]);
        let forward = z.select(&Range::all_of(Bounds::Lex { min: lex("[b"), max: lex("[c") }));
        assert_eq!(names(&forward), vec!["c", "a", "b"], "from c (the first at least b), while at most c: a is below the minimum, but only the maximum ends the walk");
        let all = z.select(&Range::all_of(Bounds::Lex { min: lex("-"), max: lex("[b") }));
        assert!(all.is_empty(), "the first member (c) is past the maximum");
        let rev = z.select(&Range { bounds: Bounds::Lex { min: lex("[a"), max: lex("[b") }, rev: true, limit: None });
        assert!(rev.is_empty(), "the first member (c) is past the maximum, whichever way the walk goes");
        let z = zset(&[("a", 1.0), ("c", 2.0), ("b", 3.0)]);
        let rev = z.select(&Range { bounds: Bounds::Lex { min: lex("[a"), max: lex("[b") }, rev: true, limit: None });
        assert_eq!(names(&rev), vec!["b", "c", "a"], "backward from b while at least a");
        for (min, max) in [("-", "-"), ("+", "+"), ("[b", "[a"), ("(a", "[a"), ("+", "-")] {
            assert!(z.select(&Range::all_of(Bounds::Lex { min: lex(min), max: lex(max) })).is_empty(), "{min} {max} is an empty range");
        }
    }

    #[test]
    fn combinations_weigh_aggregate_and_keep_the_first_for_diff() {
        let a = zset(&[("x", 1.0), ("y", 2.0)]);
        let b = zset(&[("y", 10.0), ("z", 5.0)]);
        let union = combine(Combine::Union, &[(a.clone(), 1.0), (b.clone(), 2.0)], Aggregate::Sum);
        assert_eq!(union.iter().map(|(m, s)| (m.to_vec(), s)).collect::<Vec<_>>(), vec![(b"x".to_vec(), 1.0), (b"z".to_vec(), 10.0), (b"y".to_vec(), 22.0)]);
        let inter = combine(Combine::Inter, &[(a.clone(), 1.0), (b.clone(), 1.0)], Aggregate::Max);
        assert_eq!(inter.iter().map(|(m, s)| (m.to_vec(), s)).collect::<Vec<_>>(), vec![(b"y".to_vec(), 10.0)]);
        let diff = combine(Combine::Diff, &[(b.clone(), 3.0), (a.clone(), 1.0)], Aggregate::Sum);
        assert_eq!(diff.iter().map(|(m, s)| (m.to_vec(), s)).collect::<Vec<_>>(), vec![(b"z".to_vec(), 5.0)], "the first's own scores");
        let inf = zset(&[("x", f64::INFINITY)]);
        let nan_sum = combine(Combine::Union, &[(inf.clone(), 1.0), (inf, -1.0)], Aggregate::Sum);
        assert_eq!(nan_sum.score(b"x"), Some(0.0), "inf + -inf is NaN, stored as 0");
        let zero_weight = combine(Combine::Union, &[(zset(&[("x", f64::INFINITY)]), 0.0)], Aggregate::Sum);
        assert_eq!(zero_weight.score(b"x"), Some(0.0), "0 x inf is NaN, counted as 0");
        let negated = combine(Combine::Union, &[(zset(&[("x", 0.0)]), -1.0)], Aggregate::Sum);
        assert!(negated.score(b"x").unwrap().is_sign_negative(), "-1 x 0 is -0, as Redis answers it");
        assert!(ZSet::decode(&negated.encode()).unwrap().score(b"x").unwrap().is_sign_positive(), "and is stored as 0");
        assert!(combine(Combine::Inter, &[(a, 1.0), (ZSet::default(), 1.0)], Aggregate::Sum).is_empty());
    }

    proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..4), -1e3f64..1e3), 0..20)) {
            let z: ZSet = entries.into_iter().map(|(m, s)| (Bytes::from(m), s)).collect();
            prop_assert_eq!(ZSet::decode(&z.encode()).unwrap(), z.clone());
            prop_assert_eq!(z.encode().len(), z.encoded_len());
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = ZSet::decode(&Bytes::from(raw));
        }
    }
}
