//! Parts of a collection, cut from its encoding without decoding it: what a
//! node answers a point read of a hash, set, sorted set or list with (the
//! RPC's `Get.project`), so that HGET, SISMEMBER, ZSCORE, ZRANK, SCARD,
//! LINDEX or a short LRANGE of a collection of 100,000 elements neither
//! ships the whole value to the router nor builds its index there.
//!
//! A projection is itself a valid encoding of the same type (a sub-sequence
//! of the entries, in stored order, with their count), so the router
//! answers from it with the code that answers from a whole value; what the
//! part cannot tell (the whole count, where the part starts) comes beside
//! it in [`Projected`].
//!
//! The walk reads each entry's length prefixes only: it allocates nothing
//! per entry, copies only what it keeps, and stops once it has every name
//! it was asked for (names are unique in a hash, set or sorted set). A
//! malformed encoding is a [`CorruptRecord`], as decoding it would be.

use crate::list::List;
use crate::record::{CorruptRecord, ValueType};
use crate::zset::{LexBound, ScoreBound};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::ops::Range;

/// A part of a collection and what it cannot tell by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projected {
    /// The part: an encoding of the collection's type.
    pub value: Bytes,
    /// The whole collection's element count.
    pub elements: u64,
    /// Where the part's first entry stands in the whole (stored order);
    /// 0 for an empty part.
    pub first: u64,
}

/// How one type lays out an entry after the `count:u32` all share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `len:u32 | field | len:u32 | value` (hashes; sets, with empty values).
    Pairs,
    /// `len:u32 | element` (lists).
    Single,
    /// `score:f64 | len:u32 | member` (sorted sets).
    Scored,
}

impl Layout {
    pub(crate) fn of(ty: ValueType) -> Option<Layout> {
        match ty {
            ValueType::Hash | ValueType::Set => Some(Layout::Pairs),
            ValueType::List => Some(Layout::Single),
            ValueType::ZSet => Some(Layout::Scored),
            ValueType::String | ValueType::Stream => None,
        }
    }
}

/// Whether values of `ty` can be projected.
pub fn projectable(ty: ValueType) -> bool {
    Layout::of(ty).is_some()
}

/// The entries of an encoding, each as (its bytes, its name's bytes).
pub(crate) struct Walk<'a> {
    raw: &'a [u8],
    at: usize,
    left: u32,
    layout: Layout,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(layout: Layout, raw: &'a [u8]) -> Result<(Walk<'a>, u32), CorruptRecord> {
        let count = raw.get(..4).ok_or(CorruptRecord("collection shorter than its count"))?;
        let count = u32::from_le_bytes(count.try_into().expect("4 bytes"));
        Ok((Walk { raw, at: 4, left: count, layout }, count))
    }

    fn take(&mut self, n: usize) -> Result<Range<usize>, CorruptRecord> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.raw.len()).ok_or(CorruptRecord("collection entry cut short"))?;
        let range = self.at..end;
        self.at = end;
        Ok(range)
    }

    fn chunk(&mut self) -> Result<Range<usize>, CorruptRecord> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes(self.raw[len].try_into().expect("4 bytes")) as usize;
        self.take(len)
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<(Range<usize>, Range<usize>), CorruptRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let start = self.at;
        let name = match self.layout {
            Layout::Pairs => self.chunk().and_then(|name| self.chunk().map(|_| name)),
            Layout::Single => self.chunk(),
            Layout::Scored => self.take(8).and_then(|_| self.chunk()),
        };
        Some(name.map(|name| (start..self.at, name)))
    }
}

/// Whether an entry's name is one asked for: a few are compared directly
/// (most entries fail on the length alone), more looked up.
pub(crate) struct Names<'a> {
    few: Vec<(&'a [u8], usize)>,
    many: HashMap<&'a [u8], usize>,
}

impl<'a> Names<'a> {
    /// Each distinct name with the index of its last mention (`first`:
    /// of its first).
    pub(crate) fn new(names: impl Iterator<Item = &'a [u8]>, first: bool) -> Names<'a> {
        let mut many = HashMap::new();
        for (i, name) in names.enumerate() {
            if !first || !many.contains_key(name) {
                many.insert(name, i);
            }
        }
        let few = if many.len() <= 8 { many.iter().map(|(n, i)| (*n, *i)).collect() } else { Vec::new() };
        Names { few, many }
    }

    /// How many distinct names.
    pub(crate) fn len(&self) -> usize {
        self.many.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.many.is_empty()
    }

    pub(crate) fn find(&self, name: &[u8]) -> Option<usize> {
        if self.many.len() <= 8 {
            self.few.iter().find(|(n, _)| n.len() == name.len() && *n == name).map(|(_, i)| *i)
        } else {
            self.many.get(name).copied()
        }
    }
}

/// A part made of `count` entries whose bytes are `body`.
pub(crate) fn part(count: usize, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32_le(count as u32);
    out.put_slice(body);
    out.freeze()
}

/// The entries of `raw` (a value of `ty`) named in `names`: a hash's
/// fields, a set's or sorted set's members (a list's elements are not
/// unique; ask by [`window`]). No names: an empty part, for the count.
/// `None` if `ty` is not a collection.
pub fn entries(ty: ValueType, raw: &Bytes, names: &[Bytes]) -> Option<Result<Projected, CorruptRecord>> {
    let layout = Layout::of(ty)?;
    Some(entries_of(layout, raw, names))
}

fn entries_of(layout: Layout, raw: &Bytes, names: &[Bytes]) -> Result<Projected, CorruptRecord> {
    let (walk, count) = Walk::new(layout, raw)?;
    let wanted = Names::new(names.iter().map(|n| n.as_ref()), false);
    let (mut body, mut kept, mut first) = (Vec::new(), 0usize, None);
    if !wanted.is_empty() {
        for (i, entry) in walk.enumerate() {
            let (bytes, name) = entry?;
            if wanted.find(&raw[name]).is_some() {
                first.get_or_insert(i as u64);
                body.extend_from_slice(&raw[bytes]);
                kept += 1;
                if kept == wanted.len() {
                    break;
                }
            }
        }
    }
    Ok(Projected { value: part(kept, &body), elements: count as u64, first: first.unwrap_or(0) })
}

/// The entries of `raw` (a value of `ty`) at positions `start..=stop` as
/// LRANGE reads them (negative from the end, clamped), counted from the
/// end with `rev` (ZREVRANGE); the part keeps stored order. The whole
/// value when the span covers it (shared, not copied). `None` if `ty` is
/// not a collection.
pub fn window(ty: ValueType, raw: &Bytes, start: i64, stop: i64, rev: bool) -> Option<Result<Projected, CorruptRecord>> {
    let layout = Layout::of(ty)?;
    Some(window_of(layout, raw, start, stop, rev))
}

fn window_of(layout: Layout, raw: &Bytes, start: i64, stop: i64, rev: bool) -> Result<Projected, CorruptRecord> {
    let (_, count) = Walk::new(layout, raw)?;
    let len = count as usize;
    let span = match List::range(len, start, stop) {
        None => 0..0,
        Some(span) if rev => len - 1 - span.end()..len - span.start(),
        Some(span) => *span.start()..span.end() + 1,
    };
    cut(layout, raw, span)
}

/// The entries at positions `span` (stored order) as a part: the whole
/// value when the span covers it (shared, not copied); else one copy of
/// their bytes, which are consecutive in the encoding.
fn cut(layout: Layout, raw: &Bytes, span: Range<usize>) -> Result<Projected, CorruptRecord> {
    let (walk, count) = Walk::new(layout, raw)?;
    let elements = count as u64;
    if span.is_empty() {
        return Ok(Projected { value: part(0, &[]), elements, first: 0 });
    }
    if span.len() == count as usize {
        return Ok(Projected { value: raw.clone(), elements, first: 0 });
    }
    let bytes = bytes_of(walk, span.clone())?;
    Ok(Projected { value: part(span.len(), &raw[bytes]), elements, first: span.start as u64 })
}

/// Where the entries at positions `span` (not empty) lie in the encoding
/// `walk` walks: one run of bytes.
pub(crate) fn bytes_of(walk: Walk<'_>, span: Range<usize>) -> Result<Range<usize>, CorruptRecord> {
    let (mut from, mut to) = (0, 0);
    for (i, entry) in walk.enumerate().take(span.end) {
        let (bytes, _) = entry?;
        if i == span.start {
            from = bytes.start;
        }
        to = bytes.end;
    }
    Ok(from..to)
}

/// Most picks a negative HRANDFIELD, SRANDMEMBER or ZRANDMEMBER count may
/// ask for. Redis builds whatever reply is asked for (`SRANDMEMBER k
/// -9223372036854775807` grows its output buffer until memory runs out);
/// here a reply is built whole before it is sent, so a larger count is
/// refused instead.
pub const RANDOM_REPEATS_MAX: u64 = 1_000_000;

/// The entries of `raw` (a value of `ty`) at `positions`, in that order and
/// as often as named (random picks, which a negative count lets repeat): a
/// part that may name an entry more than once, so it is walked, not
/// decoded into a map. `None` if `ty` is not a collection; a position past
/// the end is an error.
pub fn picks(ty: ValueType, raw: &Bytes, positions: &[usize]) -> Option<Result<Projected, CorruptRecord>> {
    let layout = Layout::of(ty)?;
    Some(picks_of(layout, raw, positions))
}

fn picks_of(layout: Layout, raw: &Bytes, positions: &[usize]) -> Result<Projected, CorruptRecord> {
    let (walk, count) = Walk::new(layout, raw)?;
    let mut wanted: Vec<usize> = positions.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.last().is_some_and(|&last| last >= count as usize) {
        return Err(CorruptRecord("a pick past the collection's end"));
    }
    // Each wanted position's bytes, in position order: one walk.
    let mut found: Vec<Range<usize>> = Vec::with_capacity(wanted.len());
    let mut next = wanted.iter().peekable();
    for (i, entry) in walk.enumerate() {
        let Some(&&at) = next.peek() else { break };
        let (bytes, _) = entry?;
        if i == at {
            found.push(bytes);
            next.next();
        }
    }
    let mut body = Vec::new();
    for p in positions {
        let at = wanted.binary_search(p).expect("every position is wanted");
        body.extend_from_slice(&raw[found[at].clone()]);
    }
    Ok(Projected { value: part(positions.len(), &body), elements: count as u64, first: 0 })
}

/// Where an entry stands in HSCAN's, SSCAN's and ZSCAN's order: a 63-bit
/// hash of its name (FNV-1a, then SplitMix64's finalizer to spread close
/// names), fixed forever, so a cursor stays good across versions, nodes
/// and moves.
pub fn scan_order(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 31)) >> 1
}

/// HSCAN's, SSCAN's and ZSCAN's page of `raw` (a value of `ty`) from
/// `cursor`, and the next cursor (0: done). A collection Redis 7.0 keeps
/// in a listpack or an intset is answered whole with cursor 0, as Redis
/// answers it whatever the cursor; so is one of at most `count` entries
/// (Redis's table scan returns all of those in one call). A bigger one
/// pages in [`scan_order`]: the `count` entries of the lowest order at
/// least `cursor` (with every entry tied with the last of them), the next
/// cursor one past that order. An entry present from a scan's start to
/// its end is returned at least once, whatever is written meanwhile, as
/// Redis guarantees. `None` if `ty` has no scan.
pub fn scan(ty: ValueType, raw: &Bytes, cursor: u64, count: usize) -> Option<Result<(Projected, u64), CorruptRecord>> {
    let layout = match ty {
        ValueType::Hash | ValueType::Set | ValueType::ZSet => Layout::of(ty)?,
        _ => return None,
    };
    Some(scan_of(ty, layout, raw, cursor, count))
}

fn scan_of(ty: ValueType, layout: Layout, raw: &Bytes, cursor: u64, count: usize) -> Result<(Projected, u64), CorruptRecord> {
    use crate::encoding::{HASH_LISTPACK_ENTRIES, INTSET_ENTRIES, LISTPACK_VALUE, ZSET_LISTPACK_ENTRIES};
    let (walk, n) = Walk::new(layout, raw)?;
    let n = n as usize;
    let whole = || Ok((Projected { value: raw.clone(), elements: n as u64, first: 0 }, 0));
    if n <= count.max(1) {
        return whole();
    }
    let compact_max = match ty {
        ValueType::Hash => HASH_LISTPACK_ENTRIES,
        ValueType::Set => INTSET_ENTRIES,
        _ => ZSET_LISTPACK_ENTRIES,
    };
    let mut compact = n <= compact_max;
    let mut candidates: Vec<(u64, u32)> = Vec::new();
    for (i, entry) in walk.enumerate() {
        let (bytes, name) = entry?;
        let m = &raw[name.clone()];
        if compact {
            compact = match ty {
                // Field and value within the listpack's value limit.
                ValueType::Hash => m.len() <= LISTPACK_VALUE && bytes.len() - 8 - m.len() <= LISTPACK_VALUE,
                ValueType::Set => crate::int::parse_i64(m).is_some(),
                _ => m.len() <= LISTPACK_VALUE,
            };
        }
        let order = scan_order(m);
        if order >= cursor {
            candidates.push((order, i as u32));
        }
    }
    if compact {
        return whole();
    }
    let take = count.max(1);
    let mut next = 0;
    if candidates.len() > take {
        candidates.select_nth_unstable(take - 1);
        let last = candidates[take - 1].0;
        // More to come if an entry lies past the page's last order (ties
        // with it join the page).
        if candidates.iter().any(|(order, _)| *order > last) {
            next = last + 1;
        }
        candidates.retain(|(order, _)| *order <= last);
    }
    let mut positions: Vec<usize> = candidates.iter().map(|(_, i)| *i as usize).collect();
    positions.sort_unstable();
    let part = picks_of(layout, raw, &positions)?;
    Ok((part, next))
}

/// The members of `raw` (a sorted set's encoding) that `range` selects
/// (by score or lex, LIMIT and REV included: the members `ZSet::select`
/// lists), as a part in stored order, and how many they are. With
/// `count_only` the part holds none of them (ZCOUNT, ZLEXCOUNT). By rank,
/// the window of those ranks.
///
/// What a range selects is one run of consecutive entries (scores ascend
/// in the encoding; a lex range is a run by Redis's own walk), so a first
/// walk finds the run's positions, LIMIT cuts them, and a second walk
/// copies their bytes. Walking forward stops past a score range's end, or
/// once LIMIT has what it takes; a lex range walks the whole encoding, as
/// Redis's answer depends on the last member.
pub fn select(raw: &Bytes, range: &crate::zset::Range, count_only: bool) -> Result<(Projected, u64), CorruptRecord> {
    let span = run_of(raw, range)?;
    let selected = span.len() as u64;
    if count_only {
        let elements = Walk::new(Layout::Scored, raw)?.1 as u64;
        return Ok((Projected { value: part(0, &[]), elements, first: span.start as u64 }, selected));
    }
    Ok((cut(Layout::Scored, raw, span)?, selected))
}

/// The positions, in stored order, of the members of `raw` (a sorted
/// set's encoding) that `range` selects: one run (see [`select`]).
pub(crate) fn run_of(raw: &Bytes, range: &crate::zset::Range) -> Result<Range<usize>, CorruptRecord> {
    use crate::zset::Bounds;
    let (skip, take) = match range.limit {
        None => (0, usize::MAX),
        Some((offset, _)) if offset < 0 => (usize::MAX, 0),
        Some((offset, n)) => (usize::try_from(offset).unwrap_or(usize::MAX), usize::try_from(n).unwrap_or(usize::MAX)),
    };
    // Walking forward, the run needs no more than LIMIT takes.
    let enough = if range.rev { usize::MAX } else { skip.saturating_add(take) };
    let span = match &range.bounds {
        Bounds::Score { min, max } => score_span(raw, *min, *max, enough)?,
        Bounds::Lex { min, max } => lex_span(raw, min, max, range.rev, enough)?,
        Bounds::Rank { start, stop } => {
            let count = Walk::new(Layout::Scored, raw)?.1 as usize;
            match List::range(count, *start, *stop) {
                None => 0..0,
                Some(span) if range.rev => count - 1 - span.end()..count - span.start(),
                Some(span) => *span.start()..span.end() + 1,
            }
        }
    };
    Ok(limited(span, range.rev, skip, take))
}

/// The members of `raw` (a sorted set's encoding) whose scores lie in
/// `min..max`, walked from the highest with `rev`, then LIMIT's `offset`
/// and `count` applied in that walk (a negative count: all the rest; a
/// negative offset: none), as `ZSet::select` chooses them; the part keeps
/// stored order (see [`select`]).
pub fn scores(raw: &Bytes, min: ScoreBound, max: ScoreBound, rev: bool, limit: Option<(i64, i64)>) -> Result<Projected, CorruptRecord> {
    let range = crate::zset::Range { bounds: crate::zset::Bounds::Score { min, max }, rev, limit };
    Ok(select(raw, &range, false)?.0)
}

/// Positions of the entries whose scores lie in `min..max` (one run:
/// scores ascend), at most `enough` of them from the lowest.
fn score_span(raw: &Bytes, min: ScoreBound, max: ScoreBound, enough: usize) -> Result<Range<usize>, CorruptRecord> {
    let (walk, _) = Walk::new(Layout::Scored, raw)?;
    let mut span: Option<Range<usize>> = None;
    for (i, entry) in walk.enumerate() {
        let (bytes, _) = entry?;
        let score = f64::from_le_bytes(raw[bytes.start..bytes.start + 8].try_into().expect("8 bytes"));
        if !max.above(score) || span.as_ref().is_some_and(|s| s.len() >= enough) {
            break;
        }
        if min.below(score) {
            span.get_or_insert(i..i).end = i + 1;
        }
    }
    Ok(span.unwrap_or(0..0))
}

/// Positions of the members a lex range selects, as Redis walks a small
/// sorted set (`ZSet::lex_run`): nothing if the range is empty, the last
/// member is below it or the first above it; else, walking forward, from
/// the first member at least `min` while members are at most `max` (at
/// most `enough` of them); walking backward (`rev`), from the last member
/// at most `max` while members are at least `min`. Found in one forward
/// walk either way.
fn lex_span(raw: &Bytes, min: &LexBound, max: &LexBound, rev: bool, enough: usize) -> Result<Range<usize>, CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Scored, raw)?;
    if count == 0 || LexBound::empty_range(min, max) {
        return Ok(0..0);
    }
    let (mut span, mut done, mut low, mut last) = (None::<Range<usize>>, false, 0, 0..0);
    for (i, entry) in walk.enumerate() {
        let (_, name) = entry?;
        let m = &raw[name.clone()];
        if i == 0 && !max.at_most(m) {
            return Ok(0..0);
        }
        if rev {
            // The run ending at the latest member at most max: back to
            // the latest member below min.
            if !min.at_least(m) {
                low = i + 1;
            }
            if max.at_most(m) {
                span = Some(low..(i + 1).max(low));
            }
        } else if !done {
            if span.is_none() && min.at_least(m) {
                span = Some(i..i);
            }
            if let Some(s) = &mut span {
                if max.at_most(m) && s.len() < enough {
                    s.end = i + 1;
                } else {
                    done = true;
                }
            }
        }
        last = name;
    }
    if !min.at_least(&raw[last]) {
        return Ok(0..0);
    }
    Ok(span.unwrap_or(0..0))
}

/// LIMIT's `skip` and `take` applied to the run `span`, counted from its
/// start (from its end with `rev`).
fn limited(span: Range<usize>, rev: bool, skip: usize, take: usize) -> Range<usize> {
    let n = span.len();
    let (lo, hi) = if rev { (n.saturating_sub(skip.saturating_add(take)), n.saturating_sub(skip)) } else { (skip.min(n), skip.saturating_add(take).min(n)) };
    span.start + lo..span.start + hi.max(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::list::List;
    use crate::set::Set;
    use crate::zset::ZSet;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn hash(pairs: &[(&str, &str)]) -> Bytes {
        let mut h = Hash::default();
        for (f, v) in pairs {
            h.set(b(f), b(v));
        }
        h.encode()
    }

    #[test]
    fn a_hash_part_holds_the_fields_asked_for_in_stored_order() {
        let raw = hash(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let p = entries(ValueType::Hash, &raw, &[b("c"), b("zz"), b("a"), b("c")]).unwrap().unwrap();
        let part = Hash::decode(&p.value).unwrap();
        assert_eq!(part.iter().map(|(f, v)| (f.clone(), v.clone())).collect::<Vec<_>>(), vec![(b("a"), b("1")), (b("c"), b("3"))]);
        assert_eq!((p.elements, p.first), (4, 0));
        let p = entries(ValueType::Hash, &raw, &[b("d")]).unwrap().unwrap();
        assert_eq!((Hash::decode(&p.value).unwrap().len(), p.first), (1, 3));
        let none = entries(ValueType::Hash, &raw, &[]).unwrap().unwrap();
        assert_eq!((Hash::decode(&none.value).unwrap().len(), none.elements), (0, 4), "no names: the count alone");
        assert!(entries(ValueType::String, &raw, &[]).is_none());
    }

    #[test]
    fn sets_and_sorted_sets_project_by_member() {
        let s: Set = ["x", "y", "z"].into_iter().map(b).collect();
        let p = entries(ValueType::Set, &s.encode(), &[b("z"), b("q")]).unwrap().unwrap();
        let part = Set::decode(&p.value).unwrap();
        assert!(part.contains(b"z") && !part.contains(b"x"));
        assert_eq!((part.len(), p.elements, p.first), (1, 3, 2));

        let z: ZSet = [(b("a"), 3.0), (b("b"), 1.0), (b("c"), 2.0)].into_iter().collect();
        let p = entries(ValueType::ZSet, &z.encode(), &[b("a")]).unwrap().unwrap();
        let part = ZSet::decode(&p.value).unwrap();
        assert_eq!((part.score(b"a"), p.first), (Some(3.0), 2), "a is the highest: rank 2");
    }

    #[test]
    fn windows_follow_lrange_and_zrevrange() {
        let l: List = List((0..10).map(|i| b(&i.to_string())).collect());
        let raw = l.encode();
        let items = |p: &Projected| List::decode(&p.value).unwrap().0.into_iter().collect::<Vec<_>>();
        let p = window(ValueType::List, &raw, 2, 4, false).unwrap().unwrap();
        assert_eq!((items(&p), p.elements, p.first), (vec![b("2"), b("3"), b("4")], 10, 2));
        let p = window(ValueType::List, &raw, -2, -1, false).unwrap().unwrap();
        assert_eq!((items(&p), p.first), (vec![b("8"), b("9")], 8));
        let p = window(ValueType::List, &raw, 0, 1, true).unwrap().unwrap();
        assert_eq!((items(&p), p.first), (vec![b("8"), b("9")], 8), "rev: the last two, in stored order");
        let p = window(ValueType::List, &raw, 5, 3, false).unwrap().unwrap();
        assert_eq!((items(&p), p.elements), (vec![], 10));
        let all = window(ValueType::List, &raw, 0, -1, false).unwrap().unwrap();
        assert_eq!(all.value.as_ptr(), raw.as_ptr(), "the whole value is shared, not copied");
    }

    #[test]
    fn a_malformed_encoding_is_corrupt_not_a_panic() {
        let raw = hash(&[("a", "1"), ("b", "2")]);
        for cut in 0..raw.len() {
            let short = raw.slice(..cut);
            assert!(entries(ValueType::Hash, &short, &[b("b")]).unwrap().is_err(), "cut at {cut}");
        }
        let mut lying = raw.to_vec();
        lying[0] = 200;
        assert!(window(ValueType::Hash, &Bytes::from(lying), 0, -2, false).unwrap().is_err());
    }

    proptest! {
        /// A score range's part lists what `ZSet::select` lists.
        #[test]
        fn a_score_part_selects_as_the_whole(given in proptest::collection::vec(-5i32..5, 0..20), min in -6i32..6, span in 0i32..8, exclusive in any::<(bool, bool)>(), rev in any::<bool>(), limit in proptest::option::of((-1i64..4, -1i64..4))) {
            use crate::zset::{Bounds, Range as ZRange};
            let z: ZSet = given.iter().enumerate().map(|(i, s)| (b(&format!("m{i}")), *s as f64)).collect();
            let (lo, hi) = (ScoreBound { value: min as f64, exclusive: exclusive.0 }, ScoreBound { value: (min + span) as f64, exclusive: exclusive.1 });
            let range = ZRange { bounds: Bounds::Score { min: lo, max: hi }, rev, limit };
            let p = scores(&z.encode(), lo, hi, rev, limit).unwrap();
            let part = ZSet::decode(&p.value).unwrap();
            let all = ZRange { bounds: Bounds::Rank { start: 0, stop: -1 }, rev, limit: None };
            prop_assert_eq!(part.select(&all), z.select(&range));
            prop_assert_eq!(p.elements as usize, z.len());
        }

        /// Any range's part (by score, lex or rank; LIMIT, REV) lists what
        /// `ZSet::select` lists, and its count says how many; counted only,
        /// the count is the same. Scores are mixed, so lex ranges meet
        /// Redis's walk where members are not in lex order.
        #[test]
        fn a_selection_selects_as_the_whole(given in proptest::collection::vec(("[a-d]{0,2}", -2i32..2), 0..16), by in 0u8..3, lo in "[-+]|[\\[(][a-d]{0,2}", hi in "[-+]|[\\[(][a-d]{0,2}", scores in (-3i32..3, 0i32..4, any::<(bool, bool)>()), ranks in (-18i64..18, -18i64..18), rev in any::<bool>(), limit in proptest::option::of((-1i64..5, -1i64..5))) {
            use crate::zset::{Bounds, Range as ZRange};
            let z: ZSet = given.iter().map(|(m, s)| (b(m), *s as f64)).collect();
            let bounds = match by {
                0 => Bounds::Score { min: ScoreBound { value: scores.0 as f64, exclusive: scores.2.0 }, max: ScoreBound { value: (scores.0 + scores.1) as f64, exclusive: scores.2.1 } },
                1 => Bounds::Lex { min: LexBound::parse(&b(&lo)).unwrap(), max: LexBound::parse(&b(&hi)).unwrap() },
                _ => Bounds::Rank { start: ranks.0, stop: ranks.1 },
            };
            let limit = if by == 2 { None } else { limit };
            let range = ZRange { bounds, rev, limit };
            let want = z.select(&range);
            let raw = z.encode();
            let (p, n) = select(&raw, &range, false).unwrap();
            let part = ZSet::decode(&p.value).unwrap();
            let all = ZRange { bounds: Bounds::Rank { start: 0, stop: -1 }, rev, limit: None };
            prop_assert_eq!(part.select(&all), want.clone());
            prop_assert_eq!((n as usize, p.elements as usize), (want.len(), z.len()));
            if let Some((first, _)) = part.iter().next() {
                prop_assert_eq!(z.iter().position(|(m, _)| m == first), Some(p.first as usize));
            }
            let (counted, n) = select(&raw, &range, true).unwrap();
            prop_assert_eq!((n as usize, ZSet::decode(&counted.value).unwrap().len()), (want.len(), 0));
        }

        /// Picks are the entries at their positions, in order, repeats
        /// included.
        #[test]
        fn picks_are_the_entries_at_their_positions(n in 1usize..20, positions in proptest::collection::vec(0usize..20, 0..30)) {
            let positions: Vec<usize> = positions.into_iter().map(|p| p % n).collect();
            let mut h = Hash::default();
            for i in 0..n {
                h.set(b(&format!("f{i}")), b(&i.to_string()));
            }
            let p = picks(ValueType::Hash, &h.encode(), &positions).unwrap().unwrap();
            let want: Vec<(Bytes, Bytes)> = positions.iter().map(|&i| (b(&format!("f{i}")), b(&i.to_string()))).collect();
            prop_assert_eq!(Hash::pairs(&p.value).unwrap(), want);
            prop_assert_eq!(p.elements as usize, n);
            prop_assert!(picks(ValueType::Hash, &h.encode(), &[n]).unwrap().is_err(), "past the end");
        }

        /// A scan from cursor 0 to 0 returns every entry present all
        /// through it, whatever is written between its calls; a compact
        /// or small collection comes whole at once.
        #[test]
        fn a_scan_returns_every_entry_present_throughout(n in 0usize..400, count in 1usize..40, writes in proptest::collection::vec((0usize..600, any::<bool>()), 0..60), big in any::<bool>()) {
            let value = if big { "v".repeat(70) } else { "v".to_string() };
            let mut h = Hash::default();
            for i in 0..n {
                h.set(b(&format!("f{i}")), b(&value));
            }
            let start = h.clone();
            let (mut seen, mut deleted) = (std::collections::HashSet::new(), std::collections::HashSet::new());
            let (mut cursor, mut calls, mut writes) = (0u64, 0, writes.into_iter());
            loop {
                let (p, next) = scan(ValueType::Hash, &h.encode(), cursor, count).unwrap().unwrap();
                let page = Hash::pairs(&p.value).unwrap();
                if !big || h.len() <= count {
                    prop_assert_eq!(page.len(), h.len(), "compact or small: whole");
                    prop_assert_eq!(next, 0);
                } else if next != 0 {
                    prop_assert!(page.len() >= count, "a page holds at least COUNT until the last");
                }
                seen.extend(page.into_iter().map(|(f, _)| f));
                calls += 1;
                prop_assert!(calls <= 1000, "the scan ends");
                if next == 0 {
                    break;
                }
                cursor = next;
                // Writes between calls: new fields, deletions.
                if let Some((f, add)) = writes.next() {
                    if add {
                        h.set(b(&format!("f{f}")), b(&value));
                    } else {
                        h.remove(format!("f{f}").as_bytes());
                        deleted.insert(b(&format!("f{f}")));
                    }
                }
            }
            for (f, _) in start.iter() {
                if !deleted.contains(f) {
                    prop_assert!(seen.contains(f), "{:?} present throughout but not returned", f);
                }
            }
            prop_assert!(scan(ValueType::String, &h.encode(), 0, count).is_none());
        }

        /// A part answers every point read as the whole value does.
        #[test]
        fn a_part_answers_as_the_whole(fields in proptest::collection::vec("[a-e]{0,3}", 0..24), asked in proptest::collection::vec("[a-e]{0,3}", 0..6)) {
            let mut h = Hash::default();
            for (i, f) in fields.iter().enumerate() {
                h.set(b(f), b(&i.to_string()));
            }
            let raw = h.encode();
            let asked: Vec<Bytes> = asked.iter().map(|a| b(a)).collect();
            let p = entries(ValueType::Hash, &raw, &asked).unwrap().unwrap();
            let part = Hash::decode(&p.value).unwrap();
            prop_assert_eq!(p.elements as usize, h.len());
            for a in &asked {
                prop_assert_eq!(part.get(a), h.get(a));
            }
            if let Some((first, _)) = part.iter().next() {
                prop_assert_eq!(h.iter().position(|(f, _)| f == first), Some(p.first as usize));
            }
        }

        #[test]
        fn a_window_is_the_range_of_the_whole(n in 0usize..30, start in -40i64..40, stop in -40i64..40, rev in any::<bool>()) {
            let l = List((0..n).map(|i| b(&i.to_string())).collect());
            let p = window(ValueType::List, &l.encode(), start, stop, rev).unwrap().unwrap();
            let got: Vec<Bytes> = List::decode(&p.value).unwrap().0.into_iter().collect();
            let walk: Vec<Bytes> = if rev { l.0.iter().rev().cloned().collect() } else { l.0.iter().cloned().collect() };
            let mut want: Vec<Bytes> = List::range(n, start, stop).map(|r| walk[r].to_vec()).unwrap_or_default();
            if rev {
                want.reverse();
            }
            prop_assert_eq!(&got, &want);
            if let Some(first) = got.first() {
                prop_assert_eq!(l.0.iter().position(|e| e == first), Some(p.first as usize));
            }
        }
    }
}
