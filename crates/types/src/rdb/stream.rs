//! A stream in RDB form (`RDB_TYPE_STREAM_LISTPACKS`, `_2` and `_3`).
//!
//! The entries come as Redis's radix tree of listpack nodes: each node's
//! key is its master ID (the first ID appended to it, 16 bytes
//! big-endian) and its listpack starts with a master entry (`count`,
//! `deleted`, the master fields, a 0), then per entry `flags`, the ID as
//! differences from the master ID, the fields (left out with the
//! SAMEFIELDS flag, when they are the master fields) and values, and the
//! entry's number of listpack items. Deleted entries stay in a node with
//! the DELETED flag until the node goes. Then the length, the last ID,
//! (from `_2`) the first ID, the greatest deleted ID and the entries ever
//! added, and the consumer groups: name, last ID, (from `_2`) entries
//! read, the pending entries (ID, delivery time, delivery count) and the
//! consumers (name, seen time, (`_3`) active time, their pending IDs).
//!
//! A node here ([`crate::stream::Node`]) keeps the same boundaries, so a
//! stream restored from Redis trims (`XADD ... MAXLEN ~`) as it would
//! have there, and back.

use super::listpack::{self, Item};
use super::{PayloadError, Reader, bad, put_len, put_string};
use crate::stream::{Consumer, Entry, Group, Node, Pending, Stream, StreamId};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

const DELETED: i64 = 1;
const SAMEFIELDS: i64 = 2;

/// The listpack items an entry of `fields` fields takes before its own
/// count: flags, the two ID differences, and the values (with SAMEFIELDS)
/// or the field count, fields and values.
fn entry_items(fields: i64, same: bool) -> i64 {
    fields + 3 + if same { 0 } else { fields + 1 }
}

fn put_raw_id(out: &mut BytesMut, id: StreamId) {
    out.put_u64(id.ms);
    out.put_u64(id.seq);
}

/// Writes `s` as `RDB_TYPE_STREAM_LISTPACKS_2` (Redis 7.0's).
pub(super) fn dump(out: &mut BytesMut, s: &Stream) {
    put_len(out, s.nodes.len() as u64);
    let mut at = 0;
    for node in &s.nodes {
        let run = &s.entries[at..at + node.live as usize];
        at += node.live as usize;
        let mut key = BytesMut::with_capacity(16);
        put_raw_id(&mut key, node.first);
        put_string(out, &key);
        let master: Vec<Bytes> = run[0].items().step_by(2).collect();
        let mut lp = listpack::Writer::default();
        // Deleted entries are not kept here, so none is written (a count
        // of deleted entries the node does not hold would fail Redis's
        // `sanitize-dump-payload` check).
        lp.int(node.live as i64);
        lp.int(0);
        lp.int(master.len() as i64);
        for f in &master {
            lp.string(f);
        }
        lp.int(0);
        for e in run {
            let items: Vec<Bytes> = e.items().collect();
            let fields = items.len() / 2;
            let same = fields == master.len() && items.iter().step_by(2).zip(&master).all(|(a, b)| a == b);
            lp.int(if same { SAMEFIELDS } else { 0 });
            lp.int(e.id.ms.wrapping_sub(node.first.ms) as i64);
            lp.int(e.id.seq.wrapping_sub(node.first.seq) as i64);
            if !same {
                lp.int(fields as i64);
            }
            for pair in items.chunks(2) {
                if !same {
                    lp.string(&pair[0]);
                }
                lp.string(&pair[1]);
            }
            lp.int(entry_items(fields as i64, same));
        }
        put_string(out, &lp.finish());
    }
    put_len(out, s.len() as u64);
    put_len(out, s.last_id.ms);
    put_len(out, s.last_id.seq);
    put_len(out, s.first_id().ms);
    put_len(out, s.first_id().seq);
    put_len(out, s.max_deleted.ms);
    put_len(out, s.max_deleted.seq);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string(out, name);
        put_len(out, g.last_id.ms);
        put_len(out, g.last_id.seq);
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            put_raw_id(out, *id);
            out.put_u64_le(p.delivery_ms);
            put_len(out, p.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_string(out, cname);
            out.put_u64_le(c.seen_ms);
            let mine: Vec<StreamId> = g.pending_of(cname).map(|(id, _)| *id).collect();
            put_len(out, mine.len() as u64);
            for id in mine {
                put_raw_id(out, id);
            }
        }
    }
}

fn raw_id(r: &mut Reader<'_>) -> Result<StreamId, PayloadError> {
    let b = r.take(16)?;
    Ok(StreamId::new(u64::from_be_bytes(b[..8].try_into().expect("8 bytes")), u64::from_be_bytes(b[8..].try_into().expect("8 bytes"))))
}

fn len_id(r: &mut Reader<'_>) -> Result<StreamId, PayloadError> {
    Ok(StreamId::new(r.len()?, r.len()?))
}

/// Reads a stream of format `version` (1, 2 or 3).
pub(super) fn restore(r: &mut Reader<'_>, version: u8) -> Result<Stream, PayloadError> {
    let mut s = Stream::default();
    for _ in 0..r.count(2)? {
        let key = r.string()?;
        if key.len() != 16 {
            return bad("stream node key not an ID");
        }
        let master = StreamId::new(u64::from_be_bytes(key[..8].try_into().expect("8 bytes")), u64::from_be_bytes(key[8..].try_into().expect("8 bytes")));
        read_node(&mut s, master, listpack::items(&r.string()?)?)?;
    }
    if r.len()? != s.entries.len() as u64 {
        return bad("stream length does not match its entries");
    }
    s.last_id = len_id(r)?;
    if version >= 2 {
        len_id(r)?; // the first ID: the first entry's
        s.max_deleted = len_id(r)?;
        s.entries_added = r.len()?;
    } else {
        s.entries_added = s.entries.len() as u64;
    }
    if s.last_id < s.last_valid_id() {
        return bad("stream last ID before its last entry");
    }
    for _ in 0..r.count(3)? {
        let name = r.string()?;
        let last_id = len_id(r)?;
        let entries_read = if version >= 2 { r.len()? as i64 } else { s.estimate_entries_read(last_id) };
        let mut group = Group::new(last_id, entries_read);
        let mut pel: BTreeMap<StreamId, (u64, u64, Option<Bytes>)> = BTreeMap::new();
        for _ in 0..r.count(25)? {
            let id = raw_id(r)?;
            let delivered = r.millis()?;
            if pel.insert(id, (delivered, r.len()?, None)).is_some() {
                return bad("stream pending entry twice");
            }
        }
        for _ in 0..r.count(9)? {
            let cname = r.string()?;
            let seen_ms = r.millis()?;
            if version >= 3 {
                r.millis()?; // 7.2's active time
            }
            for _ in 0..r.count(16)? {
                match pel.get_mut(&raw_id(r)?) {
                    Some((_, _, owner @ None)) => *owner = Some(cname.clone()),
                    _ => return bad("consumer's pending entry missing from its group's or taken"),
                }
            }
            if group.consumers.insert(cname, Consumer { seen_ms }).is_some() {
                return bad("stream consumer twice");
            }
        }
        for (id, (delivery_ms, delivery_count, consumer)) in pel {
            let consumer = consumer.ok_or(PayloadError::BadFormat("pending entry without a consumer"))?;
            group.pel.insert(id, Pending { consumer, delivery_ms, delivery_count });
        }
        if s.groups.insert(name, group).is_some() {
            return bad("stream group twice");
        }
    }
    // The stream's own decoding checks the nodes against the entries.
    Stream::decode(&s.encode()).or_else(|_| bad("stream nodes out of order"))
}

/// Reads one node's listpack into `s`.
fn read_node(s: &mut Stream, master: StreamId, items: Vec<Item>) -> Result<(), PayloadError> {
    let mut it = items.into_iter();
    let mut next = || it.next().ok_or(PayloadError::BadFormat("stream node cut short"));
    let count = next()?.int()?;
    let deleted = next()?.int()?;
    let fields = next()?.int()?;
    if count < 0 || deleted < 0 || !(0..=1 << 20).contains(&fields) {
        return bad("stream master entry out of range");
    }
    let master_fields = (0..fields).map(|_| next().map(Item::into_bytes)).collect::<Result<Vec<_>, _>>()?;
    if next()?.int()? != 0 {
        return bad("stream master entry not terminated");
    }
    let (mut live, mut total, mut last) = (0u32, 0u32, master);
    loop {
        let flags = match next() {
            Ok(item) => item.int()?,
            Err(_) => break,
        };
        let id = StreamId::new(master.ms.wrapping_add(next()?.int()? as u64), master.seq.wrapping_add(next()?.int()? as u64));
        let same = flags & SAMEFIELDS != 0;
        let n = if same { master_fields.len() as i64 } else { next()?.int()? };
        if !(0..=1 << 20).contains(&n) {
            return bad("stream entry field count out of range");
        }
        let mut items = Vec::with_capacity(2 * n as usize);
        let mut fields = master_fields.iter();
        for _ in 0..n {
            items.push(match (same, fields.next()) {
                (true, Some(field)) => field.clone(),
                _ => next()?.into_bytes(),
            });
            items.push(next()?.into_bytes());
        }
        if next()?.int()? != entry_items(n, same) {
            return bad("stream entry's item count does not match it");
        }
        total += 1;
        last = last.max(id);
        if flags & DELETED != 0 {
            continue;
        }
        if id < master || s.entries.last().is_some_and(|e| e.id >= id) {
            return bad("stream entries out of order");
        }
        s.entries.push(Entry::new(id, &items));
        live += 1;
    }
    if live as i64 != count || (total - live) as i64 > deleted {
        return bad("stream node counts do not match its entries");
    }
    if live > 0 {
        // Entries appended to the node: the live ones and the deleted
        // ones it counts (and holds, when Redis wrote it).
        let total = u32::try_from(live as i64 + deleted).map_err(|_| PayloadError::BadFormat("stream node too large"))?;
        s.nodes.push(Node { first: master, last, total, live });
    }
    Ok(())
}
