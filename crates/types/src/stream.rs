//! A stream value: the value bytes of a [`crate::ValueType::Stream`]
//! record, and the stream commands ([`command`]), which run where the
//! stream is stored.
//!
//! A stream holds entries (field-value lists) by [`StreamId`], in ID
//! order, and consumer groups, each with its last delivered ID, its
//! pending entries list (PEL: entries delivered and not yet acknowledged,
//! with their consumer, delivery time and count) and its consumers.
//!
//! Redis keeps entries in listpack nodes of at most
//! `stream-node-max-entries` (100) entries, counting deleted ones, and
//! approximate trimming (`MAXLEN ~`) removes whole nodes only. So that
//! `XADD ... MAXLEN ~ n` keeps what Redis keeps, the node boundaries are
//! kept here too ([`Node`]): which entries were appended together. Redis
//! also closes a node at `stream-node-max-bytes` (4096 bytes); that is
//! not modelled, so with large entries Redis trims more eagerly than this.
//!
//! Encoding, little-endian: a format byte (1); `last_id`,
//! `max_deleted`; `entries_added:u64`; `nodes:u32` then per node `first,
//! last, total:u32, live:u32`; `entries:u32` then per entry `id,
//! items:u32` and each item as `len:u32 | bytes`; `groups:u32` then per
//! group `name, last_id, entries_read:i64, pel:u32` and per pending entry
//! `id, consumer, delivery_ms:u64, delivery_count:u64`, then
//! `consumers:u32` and per consumer `name, seen_ms:u64`. An ID is
//! `ms:u64 | seq:u64`; a name is `len:u32 | bytes`.
//!
//! A stream is one record, as a hash is: each write rewrites it and each
//! read fetches it, so it suits streams capped at some thousands of
//! entries (`XADD ... MAXLEN ~ n`).

pub mod command;

use crate::hash::Cursor;
use crate::record::CorruptRecord;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;
use std::fmt;

/// Entries per node before a new one starts (Redis's default
/// `stream-node-max-entries`).
pub const NODE_MAX_ENTRIES: u32 = 100;

/// Format byte of the encoding.
const FORMAT: u8 = 1;

/// An entry's ID: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (`streamIncrID`); None past the last.
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId::new(ms + 1, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    /// The previous ID (`streamDecrID`); None before the first.
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::ZERO
    }

    /// As replies show it: `ms-seq`.
    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An ID argument as Redis reads one (`streamGenericParseIDOrReply`):
/// `-` and `+` (unless `strict`), `ms` (its sequence `missing_seq`),
/// `ms-seq`, and with `star_seq` `ms-*`, whose sequence is None (to be
/// chosen). None for anything else.
pub fn parse_id(raw: &[u8], missing_seq: u64, strict: bool, star_seq: bool) -> Option<(StreamId, Option<u64>)> {
    if raw.len() > 127 {
        return None;
    }
    match raw {
        b"-" | b"+" if strict => None,
        b"-" => Some((StreamId::ZERO, Some(0))),
        b"+" => Some((StreamId::MAX, Some(u64::MAX))),
        _ => {
            let (ms, seq) = match raw.iter().position(|&b| b == b'-') {
                Some(dash) => (&raw[..dash], Some(&raw[dash + 1..])),
                None => (raw, None),
            };
            let ms = parse_ull(ms)?;
            let seq = match seq {
                None => Some(missing_seq),
                Some(b"*") if star_seq => None,
                Some(seq) => Some(parse_ull(seq)?),
            };
            Some((StreamId::new(ms, seq.unwrap_or(0)), seq))
        }
    }
}

/// An unsigned 64-bit decimal as Redis's `string2ull` reads one: as
/// `string2ll` (no negatives), else as C's `strtoull` (leading white
/// space, a sign, the whole string digits; a `-` negates modulo 2^64).
pub fn parse_ull(raw: &[u8]) -> Option<u64> {
    if let Some(v) = crate::int::parse_i64(raw) {
        return u64::try_from(v).ok();
    }
    let rest = raw.trim_ascii_start();
    let (negative, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || raw.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Entries appended together, as one Redis listpack node: the first and
/// last IDs appended to it, how many were (`total`, deleted ones
/// included) and how many are left (`live`, never 0: an emptied node
/// goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub first: StreamId,
    pub last: StreamId,
    pub total: u32,
    pub live: u32,
}

/// A pending entry: delivered to `consumer`, not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub consumer: Bytes,
    /// When it was last delivered (Unix ms).
    pub delivery_ms: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// When the consumer last read or claimed (Unix ms).
    pub seen_ms: u64,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries the group has read (its logical position); -1 when unknown.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group { last_id, entries_read, ..Group::default() }
    }

    /// The pending entries of one consumer, in ID order.
    pub fn pending_of<'a>(&'a self, consumer: &'a [u8]) -> impl Iterator<Item = (&'a StreamId, &'a Pending)> + 'a {
        self.pel.iter().filter(move |(_, p)| p.consumer == consumer)
    }
}

/// A stream: entries, node boundaries, counters and consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// In ID order; each node's live entries are a run of them, in node
    /// order.
    pub(crate) entries: Vec<Entry>,
    pub(crate) nodes: Vec<Node>,
    /// The greatest ID ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The greatest ID deleted by XDEL (or set by XSETID).
    pub max_deleted: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    pub groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry's ID, 0-0 when empty (Redis's `first_id`).
    pub fn first_id(&self) -> StreamId {
        self.entries.first().map(|e| e.id).unwrap_or_default()
    }

    /// The last entry's ID, 0-0 when empty (`streamLastValidID`).
    pub fn last_valid_id(&self) -> StreamId {
        self.entries.last().map(|e| e.id).unwrap_or_default()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Where `id` is or would go.
    fn position(&self, id: StreamId) -> usize {
        self.entries.partition_point(|e| e.id < id)
    }

    pub fn get(&self, id: &StreamId) -> Option<&Entry> {
        self.entries.get(self.position(*id)).filter(|e| e.id == *id)
    }

    /// Entries with IDs in `start..=end`, forwards or backwards.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Box<dyn Iterator<Item = &Entry> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        let from = self.position(start);
        let to = self.entries.partition_point(|e| e.id <= end);
        let run = &self.entries[from..to.max(from)];
        if rev { Box::new(run.iter().rev()) } else { Box::new(run.iter()) }
    }

    /// Adds an entry at `id` (greater than every ID so far), to the last
    /// node if it has room.
    pub fn append(&mut self, id: StreamId, items: &[Bytes]) {
        debug_assert!(self.entries.last().is_none_or(|e| e.id < id) && id > StreamId::ZERO);
        match self.nodes.last_mut() {
            Some(node) if node.total < NODE_MAX_ENTRIES => {
                node.total += 1;
                node.live += 1;
                node.last = id;
            }
            _ => self.nodes.push(Node { first: id, last: id, total: 1, live: 1 }),
        }
        self.entries.push(Entry::new(id, items));
        self.entries_added += 1;
        self.last_id = id;
    }

    /// Deletes the entry at `id`, if there is one (XDEL, without the
    /// `max_deleted` bookkeeping).
    pub fn remove(&mut self, id: &StreamId) -> bool {
        let at = self.position(*id);
        if self.entries.get(at).is_none_or(|e| e.id != *id) {
            return false;
        }
        self.entries.remove(at);
        let node = self.nodes.partition_point(|n| n.first <= *id) - 1;
        self.nodes[node].live -= 1;
        if self.nodes[node].live == 0 {
            self.nodes.remove(node);
        }
        true
    }

    /// Trims from the oldest end as Redis's `streamTrim` does: whole nodes
    /// while the rule allows; then, unless `approx`, entries of the next
    /// node one by one. A `limit` above 0 bounds the entries removed (whole
    /// nodes only). Returns how many went.
    pub fn trim(&mut self, rule: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        // The first node's live entries are the first `live` entries.
        let mut drop = 0usize;
        let mut nodes = 0usize;
        let len = self.len() as u64;
        while let Some(node) = self.nodes.get(nodes).copied() {
            let left = len - deleted;
            if let Trim::MaxLen(max) = rule
                && left <= max
            {
                break;
            }
            if limit > 0 && deleted + node.live as u64 > limit {
                break;
            }
            let whole = match rule {
                Trim::MaxLen(max) => left - node.live as u64 >= max,
                Trim::MinId(min) => node.last < min,
            };
            if whole {
                drop += node.live as usize;
                nodes += 1;
                deleted += node.live as u64;
                continue;
            }
            if approx {
                break;
            }
            let run = &self.entries[drop..drop + node.live as usize];
            let removed = match rule {
                Trim::MaxLen(max) => (left - max) as usize,
                Trim::MinId(min) => run.partition_point(|e| e.id < min),
            };
            drop += removed;
            deleted += removed as u64;
            self.nodes[nodes].live -= removed as u32;
            break;
        }
        self.entries.drain(..drop);
        self.nodes.drain(..nodes);
        deleted
    }

    /// The group's read counter of an ID, if it can be known
    /// (`streamEstimateDistanceFromFirstEverEntry`); -1 when not.
    pub fn estimate_entries_read(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.is_empty() && id <= self.last_id {
            return added;
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return added,
            std::cmp::Ordering::Greater => return -1,
            std::cmp::Ordering::Less => {}
        }
        let first = self.first_id();
        if self.max_deleted.is_zero() || self.max_deleted < first {
            match id.cmp(&first) {
                std::cmp::Ordering::Less => return added - self.len() as i64,
                std::cmp::Ordering::Equal => return added - self.len() as i64 + 1,
                std::cmp::Ordering::Greater => {}
            }
        }
        -1
    }

    /// Whether a deleted entry may lie at or after `start`
    /// (`streamRangeHasTombstones` up to the end).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.is_empty() || self.max_deleted.is_zero() || self.first_id() > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// A group's lag, None when it cannot be known (`streamReplyWithCGLag`).
    pub fn lag(&self, group: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if group.entries_read != -1 && !self.has_tombstones_from(group.last_id) {
            return Some(self.entries_added as i64 - group.entries_read);
        }
        match self.estimate_entries_read(group.last_id) {
            -1 => None,
            read => Some(self.entries_added as i64 - read),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        b.put_u8(FORMAT);
        put_id(&mut b, self.last_id);
        put_id(&mut b, self.max_deleted);
        b.put_u64_le(self.entries_added);
        b.put_u32_le(self.nodes.len() as u32);
        for n in &self.nodes {
            put_id(&mut b, n.first);
            put_id(&mut b, n.last);
            b.put_u32_le(n.total);
            b.put_u32_le(n.live);
        }
        b.put_u32_le(self.entries.len() as u32);
        for e in &self.entries {
            put_id(&mut b, e.id);
            b.put_u32_le(e.count);
            b.put_slice(&e.raw);
        }
        b.put_u32_le(self.groups.len() as u32);
        for (name, g) in &self.groups {
            put_chunk(&mut b, name);
            put_id(&mut b, g.last_id);
            b.put_i64_le(g.entries_read);
            b.put_u32_le(g.pel.len() as u32);
            for (id, p) in &g.pel {
                put_id(&mut b, *id);
                put_chunk(&mut b, &p.consumer);
                b.put_u64_le(p.delivery_ms);
                b.put_u64_le(p.delivery_count);
            }
            b.put_u32_le(g.consumers.len() as u32);
            for (name, c) in &g.consumers {
                put_chunk(&mut b, name);
                b.put_u64_le(c.seen_ms);
            }
        }
        debug_assert_eq!(b.len(), self.encoded_len());
        b.freeze()
    }

    pub fn encoded_len(&self) -> usize {
        let entries: usize = self.entries.iter().map(|e| 20 + e.raw.len()).sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(name, g)| {
                4 + name.len() + 16 + 8 + 4 + g.pel.values().map(|p| 16 + 4 + p.consumer.len() + 16).sum::<usize>() + 4 + g.consumers.keys().map(|c| 4 + c.len() + 8).sum::<usize>()
            })
            .sum();
        1 + 32 + 8 + 4 + self.nodes.len() * 40 + 4 + entries + 4 + groups
    }

    /// Decodes `raw`, sharing its bytes. Entries out of order, nodes that
    /// do not account for them, or a pending entry of an unknown consumer
    /// make it corrupt.
    pub fn decode(raw: &Bytes) -> Result<Stream, CorruptRecord> {
        let mut c = Cursor { raw, at: 0 };
        let short = "stream shorter than its counts";
        if c.u8(short)? != FORMAT {
            return Err(CorruptRecord("unknown stream format"));
        }
        let mut s = Stream { last_id: id(&mut c)?, max_deleted: id(&mut c)?, entries_added: c.u64(short)?, ..Stream::default() };
        for _ in 0..c.u32(short)? {
            let node = Node { first: id(&mut c)?, last: id(&mut c)?, total: c.u32(short)?, live: c.u32(short)? };
            if node.live == 0 || node.live > node.total || node.first > node.last || s.nodes.last().is_some_and(|p| p.last >= node.first) {
                return Err(CorruptRecord("stream node out of order or empty"));
            }
            s.nodes.push(node);
        }
        let count = c.u32(short)? as usize;
        s.entries.reserve(count.min(raw.len() / 20));
        for _ in 0..count {
            let at = id(&mut c)?;
            if s.entries.last().is_some_and(|p| p.id >= at) {
                return Err(CorruptRecord("stream entries out of order"));
            }
            let n = c.u32(short)?;
            let start = c.at;
            for _ in 0..n {
                let len = c.u32(short)? as usize;
                c.skip(len, short)?;
            }
            s.entries.push(Entry { id: at, count: n, raw: raw.slice(start..c.at) });
        }
        // Each node's live entries are the next run of entries, within it.
        let mut at = 0;
        for n in &s.nodes {
            let run = s.entries.get(at..at + n.live as usize).ok_or(CorruptRecord("stream nodes do not match its entries"))?;
            if run.iter().any(|e| e.id < n.first || e.id > n.last) {
                return Err(CorruptRecord("stream nodes do not match its entries"));
            }
            at += n.live as usize;
        }
        if at != s.entries.len() {
            return Err(CorruptRecord("stream nodes do not match its entries"));
        }
        for _ in 0..c.u32(short)? {
            let name = c.chunk(short)?;
            let mut g = Group::new(id(&mut c)?, c.u64(short)? as i64);
            let mut pel = Vec::new();
            for _ in 0..c.u32(short)? {
                pel.push((id(&mut c)?, Pending { consumer: c.chunk(short)?, delivery_ms: c.u64(short)?, delivery_count: c.u64(short)? }));
            }
            for _ in 0..c.u32(short)? {
                g.consumers.insert(c.chunk(short)?, Consumer { seen_ms: c.u64(short)? });
            }
            for (at, p) in pel {
                if !g.consumers.contains_key(&p.consumer) {
                    return Err(CorruptRecord("pending entry of an unknown consumer"));
                }
                g.pel.insert(at, p);
            }
            s.groups.insert(name, g);
        }
        if c.at != raw.len() {
            return Err(CorruptRecord("stream longer than its counts"));
        }
        Ok(s)
    }

    /// The last ID of an encoded stream, read without decoding the rest.
    pub fn encoded_last_id(raw: &Bytes) -> Result<StreamId, CorruptRecord> {
        let mut c = Cursor { raw, at: 0 };
        if c.u8("stream shorter than its header")? != FORMAT {
            return Err(CorruptRecord("unknown stream format"));
        }
        id(&mut c)
    }
}

/// One entry: its ID and its fields and values, kept encoded (each
/// `len:u32 | bytes`) as a slice of the stream's bytes, so decoding a
/// stream copies no item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: StreamId,
    count: u32,
    raw: Bytes,
}

impl Entry {
    pub(crate) fn new(id: StreamId, items: &[Bytes]) -> Entry {
        let mut raw = BytesMut::with_capacity(items.iter().map(|i| 4 + i.len()).sum());
        for item in items {
            put_chunk(&mut raw, item);
        }
        Entry { id, count: items.len() as u32, raw: raw.freeze() }
    }

    /// The fields and values, in order.
    pub fn items(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut at = 0;
        (0..self.count).map(move |_| {
            let len = u32::from_le_bytes(self.raw[at..at + 4].try_into().expect("4 bytes")) as usize;
            at += 4 + len;
            self.raw.slice(at - len..at)
        })
    }

    /// Bytes the entry takes in the encoding.
    pub fn encoded_len(&self) -> usize {
        20 + self.raw.len()
    }
}

/// A trimming rule: keep at most this many entries, or none below this ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

fn put_id(b: &mut BytesMut, id: StreamId) {
    b.put_u64_le(id.ms);
    b.put_u64_le(id.seq);
}

fn put_chunk(b: &mut BytesMut, bytes: &[u8]) {
    b.put_u32_le(bytes.len() as u32);
    b.put_slice(bytes);
}

fn id(c: &mut Cursor<'_>) -> Result<StreamId, CorruptRecord> {
    Ok(StreamId::new(c.u64("stream ID cut short")?, c.u64("stream ID cut short")?))
}

#[cfg(test)]
mod tests;
