//! The keyspace events an applied operation raises, named and classed as
//! Redis 7.0 raises them (`evenkeel_types::notify`), in Redis's order.
//!
//! Pure: from the op, each key's live record before it, and the records
//! it wrote. Only written keys raise events (a SET NX that found the key,
//! an SADD of members already there, raise none), and a key the op
//! emptied raises `del` after its own event, as Redis deletes an emptied
//! collection. Not raised: `expired` for a key a write finds expired
//! (the sweeper raises it when it deletes the key), `evicted` (nothing is
//! evicted), `m` (key misses), and the consumer events of XREADGROUP,
//! XCLAIM and XAUTOCLAIM.

use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::Record;
use evenkeel_types::notify::{GENERIC, HASH, LIST, NEW, SET, STREAM, STRING, ZSET};

/// One event: the index of its key (into the op's keys), its class and
/// its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub key: usize,
    pub class: u32,
    pub name: &'static str,
}

/// The events of `kind`, which found `before[i]` live at key `i` and
/// wrote `writes` (key index, record), in the order Redis raises them.
pub fn events(kind: &Kind, before: &[Option<&Record>], writes: &[(usize, &Record)], now_ms: u64) -> Vec<Event> {
    let mut writes: Vec<(usize, &Record)> = writes.to_vec();
    writes.sort_by_key(|&(i, _)| i);
    match kind {
        // A list rotated onto itself: the push, then the pop.
        Kind::LMove(m) if before.len() == 1 => {
            let push = Event { key: 0, class: LIST, name: if m.to_left { "lpush" } else { "rpush" } };
            let pop = Event { key: 0, class: LIST, name: if m.from_left { "lpop" } else { "rpop" } };
            return if writes.is_empty() { Vec::new() } else { vec![push, pop] };
        }
        // Redis adds LMOVE's element to the target before it takes it
        // from the source.
        Kind::LMove(_) => writes.reverse(),
        _ => {}
    }
    let mut out = by_key(kind, before, &writes, now_ms);
    // RENAME adds its target (`new`) before it names the source.
    if let Kind::Rename(_) = kind
        && let Some(at) = out.iter().position(|e| e.key == 1 && e.name == "new")
    {
        let new = out.remove(at);
        out.insert(0, new);
    }
    if let (Kind::Stream(s), Some(&(_, written))) = (kind, writes.first())
        && trimmed_by_xadd(s, before.first().copied().flatten(), written)
    {
        out.push(Event { key: 0, class: STREAM, name: "xtrim" });
    }
    out
}

/// Whether an XADD with MAXLEN or MINID removed entries: the stream has
/// fewer than one more than before.
fn trimmed_by_xadd(s: &pb::Stream, before: Option<&Record>, written: &Record) -> bool {
    let caps = s.args.iter().skip(2).any(|a| a.eq_ignore_ascii_case(b"maxlen") || a.eq_ignore_ascii_case(b"minid"));
    if !caps || !s.args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"xadd")) {
        return false;
    }
    let len = |r: Option<&Record>| r.and_then(|r| r.value.as_ref()).and_then(|v| evenkeel_types::stream::Stream::decode(v).ok()).map_or(0, |s| s.len());
    len(Some(written)) < len(before) + 1
}

/// Each written key's events, keys in the order given.
fn by_key(kind: &Kind, before: &[Option<&Record>], writes: &[(usize, &Record)], now_ms: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for &(i, written) in writes {
        let existed = before.get(i).is_some_and(Option::is_some);
        let emptied = existed && !written.is_live(now_ms);
        let created = !existed && written.is_live(now_ms);
        let mut push = |class, name| out.push(Event { key: i, class, name });
        // RENAME and COPY add their target anew even over an old one, and
        // RESTORE ... REPLACE its key (Redis deletes it, then adds it).
        let adds = created || (i == 1 && matches!(kind, Kind::Rename(_) | Kind::Copy(_))) || (matches!(kind, Kind::Restore(_)) && written.is_live(now_ms));
        if adds {
            push(NEW, "new");
        }
        for (class, name) in named(kind, i, emptied) {
            push(class, name);
        }
        if emptied && collection_shrinks(kind, i) {
            push(GENERIC, "del");
        }
    }
    out
}

/// Whether `kind` removes elements from key `i`, which Redis then
/// deletes if it is empty.
fn collection_shrinks(kind: &Kind, i: usize) -> bool {
    match kind {
        Kind::HDel(_) | Kind::SRem(_) | Kind::SPop(_) | Kind::LPop(_) | Kind::LRem(_) | Kind::LTrim(_) | Kind::ZRem(_) | Kind::ZPop(_) | Kind::ZRemRange(_) => true,
        Kind::LMPop(_) | Kind::ZMPop(_) => true,
        Kind::SMove(_) | Kind::LMove(_) => i == 0,
        _ => false,
    }
}

/// The op's own events on key `i` (`emptied`: the op deleted it).
fn named(kind: &Kind, i: usize, emptied: bool) -> Vec<(u32, &'static str)> {
    let one = |class, name| vec![(class, name)];
    // A STORE that finds nothing to store deletes its target.
    let stored = |class, name| if emptied { vec![(GENERIC, "del")] } else { vec![(class, name)] };
    match kind {
        Kind::Set(s) => {
            let mut events = vec![(STRING, "set")];
            if matches!(s.expiry, Some(pb::set::Expiry::ExpireAtMs(_))) {
                events.push((GENERIC, "expire"));
            }
            events
        }
        Kind::MsetNx(_) => one(STRING, "set"),
        Kind::IncrBy(_) => one(STRING, "incrby"),
        Kind::IncrByFloat(_) => one(STRING, "incrbyfloat"),
        Kind::Append(_) => one(STRING, "append"),
        Kind::SetRange(_) => one(STRING, "setrange"),
        Kind::SetBit(_) | Kind::BitField(_) => one(STRING, "setbit"),
        Kind::BitOp(_) => stored(STRING, "set"),
        Kind::PfAdd(_) | Kind::PfMerge(_) => one(STRING, "pfadd"),
        Kind::Del(d) if d.flush => Vec::new(),
        Kind::Del(_) | Kind::GetDel(_) => one(GENERIC, "del"),
        Kind::Expire(_) if emptied => one(GENERIC, "del"),
        Kind::Expire(_) => one(GENERIC, "expire"),
        Kind::Persist(_) => one(GENERIC, "persist"),
        Kind::GetEx(_) if emptied => one(GENERIC, "del"),
        Kind::GetEx(g) if matches!(g.change, Some(pb::get_ex::Change::Persist(_))) => one(GENERIC, "persist"),
        Kind::GetEx(_) => one(GENERIC, "expire"),
        Kind::Rename(_) if i == 0 => one(GENERIC, "rename_from"),
        Kind::Rename(_) => one(GENERIC, "rename_to"),
        Kind::Copy(_) if i == 1 => one(GENERIC, "copy_to"),
        Kind::Restore(_) if emptied => one(GENERIC, "del"),
        Kind::Restore(_) => one(GENERIC, "restore"),
        Kind::HSet(_) => one(HASH, "hset"),
        Kind::HDel(_) => one(HASH, "hdel"),
        Kind::HIncrBy(_) => one(HASH, "hincrby"),
        Kind::HIncrByFloat(_) => one(HASH, "hincrbyfloat"),
        Kind::SAdd(_) => one(SET, "sadd"),
        Kind::SRem(_) => one(SET, "srem"),
        Kind::SPop(_) => one(SET, "spop"),
        Kind::SMove(_) if i == 0 => one(SET, "srem"),
        Kind::SMove(_) => one(SET, "sadd"),
        Kind::SetStore(s) => stored(SET, ["sunionstore", "sinterstore", "sdiffstore"][s.op.clamp(0, 2) as usize]),
        Kind::LPush(p) => one(LIST, if p.left { "lpush" } else { "rpush" }),
        Kind::LPop(p) => one(LIST, if p.left { "lpop" } else { "rpop" }),
        Kind::LMPop(p) => one(LIST, if p.left { "lpop" } else { "rpop" }),
        Kind::LSet(_) => one(LIST, "lset"),
        Kind::LRem(_) => one(LIST, "lrem"),
        Kind::LTrim(_) => one(LIST, "ltrim"),
        Kind::LInsert(_) => one(LIST, "linsert"),
        Kind::LMove(m) if i == 0 => one(LIST, if m.from_left { "lpop" } else { "rpop" }),
        Kind::LMove(m) => one(LIST, if m.to_left { "lpush" } else { "rpush" }),
        Kind::SortStore(_) => stored(LIST, "sortstore"),
        Kind::ZAdd(z) => one(ZSET, if z.incr { "zincr" } else { "zadd" }),
        Kind::ZRem(_) => one(ZSET, "zrem"),
        Kind::ZPop(p) => one(ZSET, if p.max { "zpopmax" } else { "zpopmin" }),
        Kind::ZMPop(p) => one(ZSET, if p.max { "zpopmax" } else { "zpopmin" }),
        Kind::ZRemRange(r) => {
            let by = r.range.as_ref().map_or(0, |r| r.by);
            one(ZSET, ["zremrangebyrank", "zremrangebyscore", "zremrangebylex"][by.clamp(0, 2) as usize])
        }
        Kind::ZStore(s) => stored(ZSET, ["zunionstore", "zinterstore", "zdiffstore"][s.op.clamp(0, 2) as usize]),
        Kind::ZRangeStore(_) => stored(ZSET, "zrangestore"),
        Kind::GeoStore(g) => {
            let search = g.args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"geosearchstore"));
            stored(ZSET, if search { "geosearchstore" } else { "georadiusstore" })
        }
        Kind::Stream(s) => stream(s),
        _ => Vec::new(),
    }
}

/// A stream command's event, from the command it carries.
fn stream(s: &pb::Stream) -> Vec<(u32, &'static str)> {
    let word = |i: usize| s.args.get(i).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
    let name = match &word(0)[..] {
        b"xadd" => "xadd",
        b"xdel" => "xdel",
        b"xtrim" => "xtrim",
        b"xsetid" => "xsetid",
        b"xgroup" => match &word(1)[..] {
            b"create" => "xgroup-create",
            b"setid" => "xgroup-setid",
            b"destroy" => "xgroup-destroy",
            b"createconsumer" => "xgroup-createconsumer",
            b"delconsumer" => "xgroup-delconsumer",
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    vec![(STREAM, name)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn value(v: &str) -> Record {
        Record::value(Bytes::copy_from_slice(v.as_bytes()), None, 1)
    }

    fn names(events: &[Event]) -> Vec<(usize, &'static str)> {
        events.iter().map(|e| (e.key, e.name)).collect()
    }

    #[test]
    fn writes_raise_their_command_new_keys_and_emptied_collections() {
        let set = Kind::Set(pb::Set { value: "v".into(), expiry: Some(pb::set::Expiry::ExpireAtMs(10_000)), ..Default::default() });
        let v = value("v");
        assert_eq!(names(&events(&set, &[None], &[(0, &v)], 0)), [(0, "new"), (0, "set"), (0, "expire")]);
        assert_eq!(names(&events(&set, &[Some(&v)], &[(0, &v)], 0)), [(0, "set"), (0, "expire")]);
        assert!(events(&set, &[Some(&v)], &[], 0).is_empty(), "nothing written, nothing raised");
        let pop = Kind::LPop(pb::LPop { left: false, count: None });
        let gone = Record::tombstone(2);
        assert_eq!(names(&events(&pop, &[Some(&v)], &[(0, &gone)], 0)), [(0, "rpop"), (0, "del")]);
        let moved = Kind::LMove(pb::LMove { to: "d".into(), from_left: true, to_left: false, ..Default::default() });
        assert_eq!(names(&events(&moved, &[Some(&v), None], &[(1, &v), (0, &gone)], 0)), [(1, "new"), (1, "rpush"), (0, "lpop"), (0, "del")]);
        assert_eq!(names(&events(&moved, &[Some(&v)], &[(0, &v)], 0)), [(0, "rpush"), (0, "lpop")], "a rotation");
        let rename = Kind::Rename(pb::Rename { to: "d".into(), nx: false });
        assert_eq!(names(&events(&rename, &[Some(&v), Some(&v)], &[(0, &gone), (1, &v)], 0)), [(1, "new"), (0, "rename_from"), (1, "rename_to")]);
        let store = Kind::SetStore(pb::SetStore { op: pb::set_store::Op::Inter as i32, sources: vec![] });
        assert_eq!(names(&events(&store, &[Some(&v)], &[(0, &gone)], 0)), [(0, "del")], "an empty result deletes the target");
        assert_eq!(names(&events(&store, &[None], &[(0, &v)], 0)), [(0, "new"), (0, "sinterstore")]);
        let expire = Kind::Expire(pb::Expire { at_ms: 1, condition: 0 });
        assert_eq!(names(&events(&expire, &[Some(&v)], &[(0, &gone)], 5)), [(0, "del")], "an expiry in the past deletes");
    }
}
