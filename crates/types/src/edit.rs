//! Writes to a list, hash or set made on its encoding in one pass, without
//! decoding it: LPUSH/RPUSH, LPOP/RPOP (and the blocking pops), HSET and
//! HMSET, HDEL, SADD, SREM. Decoding a collection builds an index (a hash
//! map of every field, a deque of every element) only to be thrown away
//! once the new value is encoded; on a collection of many thousands of
//! elements that was most of a write's work on the node's request thread
//! (the rest is the storage engine writing the record). An edit here
//! copies the unchanged bytes in runs and touches only what changes, so
//! the result is byte for byte what decode, change and encode give (the
//! property tests check that against the decoding types).
//!
//! A push does not walk the elements at all (its count and the bytes only
//! are checked); the others walk every entry's length prefixes, as a
//! projection does ([`crate::project`]), and refuse a malformed encoding
//! as [`CorruptRecord`].

use crate::list::List;
use crate::project::{Layout, Names, Walk, part};
use crate::record::CorruptRecord;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::ops::Range;

/// An edited value: its encoding and its element count (0: the key goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub value: Bytes,
    pub count: usize,
}

/// The element count an encoding starts with.
pub fn count_of(raw: &[u8]) -> Result<usize, CorruptRecord> {
    let count = raw.get(..4).ok_or(CorruptRecord("collection shorter than its count"))?;
    Ok(u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize)
}

/// The encoded length of `value` pushed (`len:u32 | element`).
pub fn pushed_len(elements: &[Bytes]) -> usize {
    elements.iter().map(|e| 4 + e.len()).sum()
}

/// LPUSH (`left`: each element in turn at the head, so they end up
/// reversed) or RPUSH onto the list encoded in `raw` (None: a new list).
pub fn push(raw: Option<&Bytes>, elements: &[Bytes], left: bool) -> Result<Edited, CorruptRecord> {
    let (count, body) = match raw {
        None => (0, &[][..]),
        Some(raw) => {
            let count = count_of(raw)?;
            if (raw.len() - 4) / 4 < count {
                return Err(CorruptRecord("list shorter than its count"));
            }
            (count, &raw[4..])
        }
    };
    let count = count + elements.len();
    if count > u32::MAX as usize {
        return Err(CorruptRecord("list past 2^32 elements"));
    }
    let mut out = BytesMut::with_capacity(4 + body.len() + pushed_len(elements));
    out.put_u32_le(count as u32);
    let put = |out: &mut BytesMut, e: &Bytes| {
        out.put_u32_le(e.len() as u32);
        out.put_slice(e);
    };
    if left {
        elements.iter().rev().for_each(|e| put(&mut out, e));
        out.put_slice(body);
    } else {
        out.put_slice(body);
        elements.iter().for_each(|e| put(&mut out, e));
    }
    Ok(Edited { value: out.freeze(), count })
}

/// LPOP (`left`) or RPOP of up to `n` elements of the list in `raw`: what
/// was popped, in the order popped (shared with `raw`), and the rest.
pub fn pop(raw: &Bytes, n: usize, left: bool) -> Result<(Vec<Bytes>, Edited), CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Single, raw)?;
    let count = count as usize;
    let n = n.min(count);
    let (popped, kept) = if left {
        let (mut popped, mut end) = (Vec::with_capacity(n), 4);
        for entry in walk.take(n) {
            let (bytes, element) = entry?;
            popped.push(raw.slice(element));
            end = bytes.end;
        }
        (popped, end..raw.len())
    } else {
        // The last n entries, found by walking them all.
        let mut last: VecDeque<(Range<usize>, Range<usize>)> = VecDeque::with_capacity(n.min(4096));
        for entry in walk {
            let entry = entry?;
            if n > 0 {
                if last.len() == n {
                    last.pop_front();
                }
                last.push_back(entry);
            }
        }
        let start = last.front().map_or(raw.len(), |(bytes, _)| bytes.start);
        (last.iter().rev().map(|(_, e)| raw.slice(e.clone())).collect(), 4..start)
    };
    Ok((popped, Edited { value: part(count - n, &raw[kept]), count: count - n }))
}

/// LREM: the list in `raw` without its elements equal to `element`, the
/// first `count` of them from the head (a negative count: from the tail;
/// 0: all); answers the rest and how many went.
pub fn remove_equal(raw: &Bytes, element: &[u8], count: i64) -> Result<(Edited, usize), CorruptRecord> {
    let (walk, total) = Walk::new(Layout::Single, raw)?;
    let limit = if count == 0 { usize::MAX } else { usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX) };
    // The entries to drop, in stored order: from the head the first
    // `limit` matches; from the tail the last `limit`, kept while walking.
    let mut drop: VecDeque<Range<usize>> = VecDeque::new();
    for entry in walk {
        let (bytes, e) = entry?;
        if &raw[e] != element {
            continue;
        }
        if count >= 0 && drop.len() == limit {
            break;
        }
        if count < 0 && drop.len() == limit {
            drop.pop_front();
        }
        drop.push_back(bytes);
    }
    if drop.is_empty() {
        return Ok((Edited { value: raw.clone(), count: total as usize }, 0));
    }
    let mut body = Vec::with_capacity(raw.len());
    let mut run = 4;
    for gone in &drop {
        body.extend_from_slice(&raw[run..gone.start]);
        run = gone.end;
    }
    body.extend_from_slice(&raw[run..]);
    let left = total as usize - drop.len();
    Ok((Edited { value: part(left, &body), count: left }, drop.len()))
}

/// LINSERT: the list in `raw` with `element` before (or after) the first
/// element equal to `pivot`; None if there is none.
pub fn insert_at_pivot(raw: &Bytes, pivot: &[u8], element: &[u8], before: bool) -> Result<Option<Edited>, CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Single, raw)?;
    for entry in walk {
        let (bytes, e) = entry?;
        if &raw[e] != pivot {
            continue;
        }
        let at = if before { bytes.start } else { bytes.end };
        let mut body = Vec::with_capacity(raw.len() + 4 + element.len());
        body.extend_from_slice(&raw[4..at]);
        body.extend_from_slice(&(element.len() as u32).to_le_bytes());
        body.extend_from_slice(element);
        body.extend_from_slice(&raw[at..]);
        let count = count as usize + 1;
        return Ok(Some(Edited { value: part(count, &body), count }));
    }
    Ok(None)
}

/// LSET: the list in `raw` with the element at `index` (negative from
/// the end) replaced; None if the index is out of range.
pub fn set_at(raw: &Bytes, index: i64, element: &[u8]) -> Result<Option<Edited>, CorruptRecord> {
    let (mut walk, count) = Walk::new(Layout::Single, raw)?;
    let Some(at) = List::position(count as usize, index) else { return Ok(None) };
    let Some(entry) = walk.nth(at) else { return Err(CorruptRecord("list shorter than its count")) };
    let (bytes, _) = entry?;
    let mut body = Vec::with_capacity(raw.len() + element.len());
    body.extend_from_slice(&raw[4..bytes.start]);
    body.extend_from_slice(&(element.len() as u32).to_le_bytes());
    body.extend_from_slice(element);
    body.extend_from_slice(&raw[bytes.end..]);
    Ok(Some(Edited { value: part(count as usize, &body), count: count as usize }))
}

/// SPOP: the members of the set in `raw` at stored `positions` (distinct,
/// each below its count), in the order given, and the set without them.
pub fn take_positions(raw: &Bytes, positions: &[usize]) -> Result<(Vec<Bytes>, Edited), CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Pairs, raw)?;
    let mut sorted: Vec<(usize, usize)> = positions.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    sorted.sort_unstable();
    let mut taken = vec![Bytes::new(); positions.len()];
    let mut body = Vec::with_capacity(raw.len());
    let (mut run, mut next) = (4, 0);
    for (i, entry) in walk.enumerate() {
        let Some(&(at, slot)) = sorted.get(next) else { break };
        let (bytes, member) = entry?;
        if i != at {
            continue;
        }
        taken[slot] = raw.slice(member);
        body.extend_from_slice(&raw[run..bytes.start]);
        run = bytes.end;
        next += 1;
    }
    if next != sorted.len() {
        return Err(CorruptRecord("set shorter than its count"));
    }
    body.extend_from_slice(&raw[run..]);
    let left = count as usize - positions.len();
    Ok((taken, Edited { value: part(left, &body), count: left }))
}

fn put_pair(out: &mut BytesMut, field: &[u8], value: &[u8]) {
    out.put_u32_le(field.len() as u32);
    out.put_slice(field);
    out.put_u32_le(value.len() as u32);
    out.put_slice(value);
}

/// HSET (or SADD: values empty) of `pairs` in the hash or set in `raw`
/// (None: a new one): a field already there keeps its place and takes the
/// last value given for it, unless `nx`; a new one goes last, in the order
/// first given, with the last value given for it (`nx`: the first).
/// Answers the new value and how many fields were added.
pub fn upsert(raw: Option<&Bytes>, pairs: &[(Bytes, Bytes)], nx: bool) -> Result<(Edited, usize), CorruptRecord> {
    let empty = Bytes::from_static(&[0, 0, 0, 0]);
    let raw = raw.unwrap_or(&empty);
    let (walk, count) = Walk::new(Layout::Pairs, raw)?;
    let names = Names::new(pairs.iter().map(|(f, _)| f.as_ref()), nx);
    // By each distinct name's chosen mention: there already, or appended.
    let mut found = vec![false; pairs.len()];
    let grown: usize = pairs.iter().map(|(f, v)| 8 + f.len() + v.len()).sum();
    let mut out = BytesMut::with_capacity(raw.len() + grown);
    out.put_u32_le(0);
    let mut run = 4;
    for entry in walk {
        let (bytes, name) = entry?;
        let Some(i) = names.find(&raw[name.clone()]) else { continue };
        found[i] = true;
        if !nx {
            out.put_slice(&raw[run..bytes.start]);
            put_pair(&mut out, &raw[name], &pairs[i].1);
            run = bytes.end;
        }
    }
    out.put_slice(&raw[run..]);
    let mut added = 0;
    for (field, _) in pairs {
        let chosen = names.find(field).expect("every name is indexed");
        // A new field, at its first mention, with its chosen value.
        if !found[chosen] {
            found[chosen] = true;
            put_pair(&mut out, field, &pairs[chosen].1);
            added += 1;
        }
    }
    let count = count as usize + added;
    out[..4].copy_from_slice(&(count as u32).to_le_bytes());
    Ok((Edited { value: out.freeze(), count }, added))
}

/// HDEL (or SREM) of `names` from the hash or set in `raw`: the rest, and
/// how many were there.
pub fn remove(raw: &Bytes, names: &[Bytes]) -> Result<(Edited, usize), CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Pairs, raw)?;
    let asked = Names::new(names.iter().map(|n| n.as_ref()), false);
    let mut out = BytesMut::with_capacity(raw.len());
    out.put_u32_le(0);
    let (mut run, mut removed) = (4, 0);
    for entry in walk {
        let (bytes, name) = entry?;
        if asked.find(&raw[name]).is_some() {
            out.put_slice(&raw[run..bytes.start]);
            run = bytes.end;
            removed += 1;
        }
    }
    out.put_slice(&raw[run..]);
    let count = count as usize - removed;
    out[..4].copy_from_slice(&(count as u32).to_le_bytes());
    Ok((Edited { value: out.freeze(), count }, removed))
}

/// A write to the named entries of a hash, set or sorted set, given as
/// what those entries are after it: `part` is an encoding of `ty` holding
/// them (those `names` the write removed are absent, those it added are
/// there), as the write left the projection of `names`
/// ([`crate::project::entries`]) it was applied to. The rest of `raw`
/// (None: a new value) is copied unchanged: a hash's or set's entries keep
/// their places, new ones go last in the part's order; a sorted set's are
/// placed by score. A write that removes a hash field and sets it again
/// is not one this takes (it would keep the field's place); the node's
/// writes set fields or remove them. `None` for a list or a type that is
/// no collection.
pub fn merge(ty: crate::record::ValueType, raw: Option<&Bytes>, names: &[Bytes], part: &Bytes) -> Option<Result<Edited, CorruptRecord>> {
    let layout = match crate::project::Layout::of(ty) {
        Some(Layout::Single) | None => return None,
        Some(layout) => layout,
    };
    let empty = Bytes::from_static(&[0, 0, 0, 0]);
    Some(merge_of(layout, raw.unwrap_or(&empty), names, part))
}

/// LTRIM: the list in `raw` with only the elements at `start..=stop` (as
/// LTRIM reads them: negative from the end, clamped); none left: count 0.
pub fn trim(raw: &Bytes, start: i64, stop: i64) -> Result<Edited, CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Single, raw)?;
    let Some(keep) = List::range(count as usize, start, stop) else { return Ok(Edited { value: part(0, &[]), count: 0 }) };
    let (mut from, mut to) = (4, 4);
    for (i, entry) in walk.enumerate().take(keep.end() + 1) {
        let (bytes, _) = entry?;
        if i == *keep.start() {
            from = bytes.start;
        }
        to = bytes.end;
    }
    let kept = keep.end() + 1 - keep.start();
    Ok(Edited { value: part(kept, &raw[from..to]), count: kept })
}

/// ZPOPMIN (or ZPOPMAX, `max`) of up to `n` members of the sorted set in
/// `raw`: each member and its score in the order popped, and the rest.
pub fn pop_scored(raw: &Bytes, n: usize, max: bool) -> Result<(Vec<(Bytes, f64)>, Edited), CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Scored, raw)?;
    let count = count as usize;
    let n = n.min(count);
    let (first, end) = if max { (count - n, count) } else { (0, n) };
    let (mut popped, mut from, mut to) = (Vec::with_capacity(n), raw.len(), raw.len());
    for (i, entry) in walk.enumerate().take(end) {
        let (bytes, member) = entry?;
        if i == first {
            from = bytes.start;
        }
        if i >= first {
            popped.push((raw.slice(member), score_at(raw, &bytes)));
            to = bytes.end;
        }
    }
    if max {
        popped.reverse();
    }
    if n == 0 {
        return Ok((popped, Edited { value: raw.clone(), count }));
    }
    let mut body = Vec::with_capacity(raw.len() - (to - from));
    body.extend_from_slice(&raw[4..from]);
    body.extend_from_slice(&raw[to..]);
    Ok((popped, Edited { value: part(count - n, &body), count: count - n }))
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE and ZREMRANGEBYLEX: the sorted set
/// in `raw` without the run of members `bounds` selects (ranks as LRANGE
/// reads them, scores between min and max, or a lex range as Redis walks
/// a listpack: one run, [`crate::project::select`]'s), and how many went.
pub fn remove_run(raw: &Bytes, bounds: &crate::zset::Bounds) -> Result<(Edited, usize), CorruptRecord> {
    let (walk, count) = Walk::new(Layout::Scored, raw)?;
    let count = count as usize;
    let span = crate::project::run_of(raw, &crate::zset::Range::all_of(bounds.clone()))?;
    if span.is_empty() {
        return Ok((Edited { value: raw.clone(), count }, 0));
    }
    let removed = span.len();
    let run = crate::project::bytes_of(walk, span)?;
    let mut body = Vec::with_capacity(raw.len() - run.len());
    body.extend_from_slice(&raw[4..run.start]);
    body.extend_from_slice(&raw[run.end..]);
    Ok((Edited { value: part(count - removed, &body), count: count - removed }, removed))
}

/// A sorted set entry's score, read from its first eight bytes.
fn score_at(raw: &[u8], entry: &Range<usize>) -> f64 {
    f64::from_le_bytes(raw[entry.start..entry.start + 8].try_into().expect("8 bytes"))
}

fn merge_of(layout: Layout, raw: &Bytes, names: &[Bytes], part: &Bytes) -> Result<Edited, CorruptRecord> {
    let (news, _) = Walk::new(layout, part)?;
    let news: Vec<(Range<usize>, Range<usize>)> = news.collect::<Result<_, _>>()?;
    let named = Names::new(names.iter().map(|n| n.as_ref()), false);
    let in_part = Names::new(news.iter().map(|(_, n)| &part[n.clone()]), false);
    let mut used = vec![false; news.len()];
    let (walk, count) = Walk::new(layout, raw)?;
    let mut out = BytesMut::with_capacity(raw.len() + part.len());
    out.put_u32_le(0);
    let (mut run, mut count, mut next) = (4, count as usize, 0);
    for entry in walk {
        let (bytes, name) = entry?;
        if layout == Layout::Scored {
            // The part's entries that sort before this one go first.
            let here = (score_at(raw, &bytes), &raw[name.clone()]);
            while let Some((b, n)) = news.get(next) {
                let new = (score_at(part, b), &part[n.clone()]);
                if new.0 > here.0 || (new.0 == here.0 && new.1 >= here.1) {
                    break;
                }
                out.put_slice(&raw[run..bytes.start]);
                run = bytes.start;
                out.put_slice(&part[b.clone()]);
                count += 1;
                next += 1;
            }
        }
        if named.find(&raw[name.clone()]).is_none() {
            continue;
        }
        out.put_slice(&raw[run..bytes.start]);
        run = bytes.end;
        count -= 1;
        if layout == Layout::Pairs
            && let Some(i) = in_part.find(&raw[name])
        {
            out.put_slice(&part[news[i].0.clone()]);
            used[i] = true;
            count += 1;
        }
    }
    out.put_slice(&raw[run..]);
    let rest: Vec<&(Range<usize>, Range<usize>)> = match layout {
        Layout::Scored => news[next..].iter().collect(),
        _ => news.iter().zip(&used).filter(|(_, used)| !**used).map(|(n, _)| n).collect(),
    };
    for (b, _) in rest {
        out.put_slice(&part[b.clone()]);
        count += 1;
    }
    out[..4].copy_from_slice(&(count as u32).to_le_bytes());
    Ok(Edited { value: out.freeze(), count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::list::List;
    use crate::set::Set;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn pushes_and_pops_at_either_end() {
        let l = push(None, &[b("a"), b("b")], false).unwrap();
        let l = push(Some(&l.value), &[b("x"), b("y")], true).unwrap();
        assert_eq!(List::decode(&l.value).unwrap().0, [b("y"), b("x"), b("a"), b("b")]);
        let (popped, rest) = pop(&l.value, 3, false).unwrap();
        assert_eq!((popped, rest.count), (vec![b("b"), b("a"), b("x")], 1));
        let (popped, rest) = pop(&rest.value, 5, true).unwrap();
        assert_eq!((popped, rest.count, rest.value.len()), (vec![b("y")], 0, 4));
    }

    #[test]
    fn an_upsert_keeps_places_and_appends_new_fields_once() {
        let h = Hash::default().encode();
        let pairs = [(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))];
        let (e, added) = upsert(Some(&h), &pairs, false).unwrap();
        let got = Hash::decode(&e.value).unwrap();
        assert_eq!((added, got.get(b"a"), got.len()), (2, Some(&b("3")), 2));
        let (e, added) = upsert(Some(&e.value), &[(b("b"), b("9")), (b("c"), b("4"))], true).unwrap();
        let got: Vec<_> = Hash::decode(&e.value).unwrap().iter().map(|(f, v)| (f.clone(), v.clone())).collect();
        assert_eq!((added, got), (1, vec![(b("a"), b("3")), (b("b"), b("2")), (b("c"), b("4"))]), "nx: b kept");
        let (e, removed) = remove(&e.value, &[b("a"), b("zz"), b("a")]).unwrap();
        assert_eq!((removed, e.count, Hash::decode(&e.value).unwrap().get(b"a")), (1, 2, None));
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let raw = push(None, &[b("abc"), b("de")], false).unwrap().value;
        for cut in 0..raw.len() {
            let short = raw.slice(..cut);
            assert!(pop(&short, 2, false).is_err(), "cut at {cut}");
        }
        assert!(push(Some(&Bytes::from_static(&[9, 0, 0, 0, 1])), &[b("x")], false).is_err());
        assert!(remove(&Bytes::from_static(&[2, 0, 0, 0, 1, 0, 0, 0]), &[b("x")]).is_err());
    }

    proptest! {
        /// A write applied to the projection of the members it names and
        /// merged back gives what it gives applied to the whole set.
        #[test]
        fn a_merged_part_matches_the_whole_written(start in proptest::collection::vec(("[a-e]{1,2}", -3i32..3), 0..12), writes in proptest::collection::vec(("[a-e]{1,2}", proptest::option::of(-3i32..3)), 1..5)) {
            use crate::record::ValueType;
            use crate::zset::ZSet;
            let mut whole: ZSet = start.iter().map(|(m, s)| (b(m), *s as f64)).collect();
            let names: Vec<Bytes> = writes.iter().map(|(m, _)| b(m)).collect();
            let raw = whole.encode();
            let projected = crate::project::entries(ValueType::ZSet, &raw, &names).unwrap().unwrap();
            let mut part = ZSet::decode(&projected.value).unwrap();
            for (m, score) in &writes {
                match score {
                    Some(s) => {
                        whole.insert(b(m), *s as f64);
                        part.insert(b(m), *s as f64);
                    }
                    None => {
                        whole.remove(m.as_bytes());
                        part.remove(m.as_bytes());
                    }
                }
            }
            let merged = merge(ValueType::ZSet, Some(&raw), &names, &part.encode()).unwrap().unwrap();
            prop_assert_eq!((&merged.value, merged.count), (&whole.encode(), whole.len()));
            // The same with a hash: fields keep their places. (A write
            // here sets a field or removes it, never both: a field removed
            // and set again would keep its place, where the whole hash
            // would move it last.)
            let writes: Vec<_> = writes.iter().filter(|(f, v)| v.is_some() || writes.iter().all(|(g, w)| g != f || w.is_none())).collect();
            let names: Vec<Bytes> = writes.iter().map(|(m, _)| b(m)).collect();
            let mut h = Hash::default();
            for (f, v) in &start {
                h.set(b(f), b(&v.to_string()));
            }
            let raw = h.encode();
            let projected = crate::project::entries(ValueType::Hash, &raw, &names).unwrap().unwrap();
            let mut part = Hash::decode(&projected.value).unwrap();
            for (f, v) in writes {
                match v {
                    Some(v) => {
                        h.set(b(f), b(&v.to_string()));
                        part.set(b(f), b(&v.to_string()));
                    }
                    None => {
                        h.remove(f.as_bytes());
                        part.remove(f.as_bytes());
                    }
                }
            }
            let merged = merge(ValueType::Hash, Some(&raw), &names, &part.encode()).unwrap().unwrap();
            prop_assert_eq!((&merged.value, merged.count), (&h.encode(), h.len()));
        }

        #[test]
        fn a_removed_run_matches_the_whole_removed(given in proptest::collection::vec(("[a-d]{0,2}", -4i32..4), 0..14), lo in -6i64..6, hi in -6i64..6, by in 0u8..3, exclusive in any::<(bool, bool)>(), lex in ("[-+]|[\\[(][a-d]{0,2}", "[-+]|[\\[(][a-d]{0,2}")) {
            use crate::zset::{Bounds, LexBound, Range as ZRange, ScoreBound, ZSet};
            // Members of mixed scores: a lex range meets Redis's walk.
            let mut z: ZSet = given.iter().map(|(m, s)| (b(m), *s as f64)).collect();
            let bounds = match by {
                0 => Bounds::Score { min: ScoreBound { value: lo as f64, exclusive: exclusive.0 }, max: ScoreBound { value: hi as f64, exclusive: exclusive.1 } },
                1 => Bounds::Lex { min: LexBound::parse(&b(&lex.0)).unwrap(), max: LexBound::parse(&b(&lex.1)).unwrap() },
                _ => Bounds::Rank { start: lo, stop: hi },
            };
            let (e, removed) = remove_run(&z.encode(), &bounds).unwrap();
            let chosen = z.select(&ZRange { bounds, rev: false, limit: None });
            for (m, _) in &chosen {
                z.remove(m);
            }
            prop_assert_eq!((&e.value, e.count, removed), (&z.encode(), z.len(), chosen.len()));
        }

        #[test]
        fn trims_and_scored_pops_match_the_decoded_value(n in 0usize..12, lo in -14i64..14, hi in -14i64..14, k in 0usize..14, max in any::<bool>()) {
            use crate::zset::ZSet;
            let mut list = List((0..n).map(|i| b(&i.to_string())).collect());
            let e = trim(&list.encode(), lo, hi).unwrap();
            match List::range(n, lo, hi) {
                Some(keep) => {
                    list.0.truncate(keep.end() + 1);
                    list.0.drain(..*keep.start());
                }
                None => list.0.clear(),
            }
            prop_assert_eq!((&e.value, e.count), (&list.encode(), list.0.len()));
            let mut z: ZSet = (0..n).map(|i| (b(&format!("m{i}")), (i % 4) as f64)).collect();
            let (popped, rest) = pop_scored(&z.encode(), k, max).unwrap();
            let want: Vec<(Bytes, f64)> = if max { z.iter().rev().take(k).map(|(m, s)| (m.clone(), s)).collect() } else { z.iter().take(k).map(|(m, s)| (m.clone(), s)).collect() };
            for (m, _) in &want {
                z.remove(m);
            }
            prop_assert_eq!(popped, want);
            prop_assert_eq!((&rest.value, rest.count), (&z.encode(), z.len()));
        }

        #[test]
        fn lrem_matches_the_decoded_list(items in proptest::collection::vec("[ab]", 0..12), count in -4i64..4) {
            let mut list = List(items.iter().map(|s| b(s)).collect());
            let (e, removed) = remove_equal(&list.encode(), b"a", count).unwrap();
            let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
            let mut positions: Vec<usize> = list.0.iter().enumerate().filter(|(_, x)| x.as_ref() == b"a").map(|(i, _)| i).collect();
            if count < 0 {
                positions.reverse();
            }
            positions.truncate(limit);
            positions.sort_unstable();
            for i in positions.iter().rev() {
                list.0.remove(*i);
            }
            prop_assert_eq!((&e.value, e.count, removed), (&list.encode(), list.0.len(), positions.len()));
        }

        #[test]
        fn list_and_set_point_edits_match_the_decoded_value(items in proptest::collection::vec("[abc]", 0..10), index in -12i64..12, before in any::<bool>(), picks in proptest::collection::btree_set(0usize..10, 0..4)) {
            let list = List(items.iter().map(|s| b(s)).collect());
            let raw = list.encode();
            let inserted = insert_at_pivot(&raw, b"b", b"new", before).unwrap();
            let mut want = list.clone();
            match want.0.iter().position(|e| e.as_ref() == b"b") {
                Some(at) => {
                    want.0.insert(if before { at } else { at + 1 }, b("new"));
                    let e = inserted.unwrap();
                    prop_assert_eq!((&e.value, e.count), (&want.encode(), want.0.len()));
                }
                None => prop_assert!(inserted.is_none()),
            }
            let replaced = set_at(&raw, index, b"zz").unwrap();
            match List::position(list.0.len(), index) {
                Some(at) => {
                    let mut want = list.clone();
                    want.0[at] = b("zz");
                    prop_assert_eq!(replaced.unwrap().value, want.encode());
                }
                None => prop_assert!(replaced.is_none()),
            }
            let mut set: Set = (0..10).map(|i| b(&format!("m{i}"))).collect();
            let picks: Vec<usize> = picks.into_iter().rev().collect();
            let members: Vec<Bytes> = set.members().cloned().collect();
            let (taken, rest) = take_positions(&set.encode(), &picks).unwrap();
            let want: Vec<Bytes> = picks.iter().map(|&i| members[i].clone()).collect();
            for m in &want {
                set.remove(m);
            }
            prop_assert_eq!(taken, want);
            prop_assert_eq!((&rest.value, rest.count), (&set.encode(), set.len()));
        }

        #[test]
        fn list_edits_match_the_decoded_list(start in proptest::collection::vec("[a-c]{0,3}", 0..12), pushed in proptest::collection::vec("[a-c]{0,3}", 0..5), left in any::<bool>(), n in 0usize..16) {
            let mut list = List(start.iter().map(|s| b(s)).collect());
            let pushed: Vec<Bytes> = pushed.iter().map(|s| b(s)).collect();
            let raw = list.encode();
            let e = push(Some(&raw), &pushed, left).unwrap();
            for p in &pushed {
                if left { list.0.push_front(p.clone()) } else { list.0.push_back(p.clone()) }
            }
            prop_assert_eq!(&e.value, &list.encode());
            let (popped, rest) = pop(&e.value, n, !left).unwrap();
            let want: Vec<Bytes> = (0..n).filter_map(|_| if !left { list.0.pop_front() } else { list.0.pop_back() }).collect();
            prop_assert_eq!(popped, want);
            prop_assert_eq!((&rest.value, rest.count), (&list.encode(), list.0.len()));
        }

        #[test]
        fn hash_and_set_edits_match_the_decoded_value(start in proptest::collection::vec(("[a-d]{0,2}", "[x-z]{0,2}"), 0..10), pairs in proptest::collection::vec(("[a-d]{0,2}", "[x-z]{0,2}"), 1..6), nx in any::<bool>(), gone in proptest::collection::vec("[a-d]{0,2}", 0..4)) {
            let mut h = Hash::default();
            for (f, v) in &start {
                h.set(b(f), b(v));
            }
            let pairs: Vec<(Bytes, Bytes)> = pairs.iter().map(|(f, v)| (b(f), b(v))).collect();
            let (e, added) = upsert(Some(&h.encode()), &pairs, nx).unwrap();
            let mut want_added = 0;
            for (f, v) in &pairs {
                if nx && h.get(f).is_some() {
                    continue;
                }
                want_added += h.set(f.clone(), v.clone()) as usize;
            }
            prop_assert_eq!((&e.value, e.count, added), (&h.encode(), h.len(), want_added));
            let gone: Vec<Bytes> = gone.iter().map(|g| b(g)).collect();
            let (r, removed) = remove(&e.value, &gone).unwrap();
            let want_removed = gone.iter().filter(|g| h.remove(g)).count();
            prop_assert_eq!((&r.value, r.count, removed), (&h.encode(), h.len(), want_removed));
            // A set is a hash of empty values.
            let set: Set = pairs.iter().map(|(f, _)| f.clone()).collect();
            let members: Vec<(Bytes, Bytes)> = pairs.iter().map(|(f, _)| (f.clone(), Bytes::new())).collect();
            let (s, _) = upsert(None, &members, false).unwrap();
            prop_assert_eq!(s.value, set.encode());
        }
    }
}
