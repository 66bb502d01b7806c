//! The stream commands, run where the stream is stored, as Redis 7.0's
//! `t_stream.c` runs them: arguments checked in its order, then the keys'
//! types, then the command, with its exact replies and errors.
//!
//! [`run`] takes the whole command (name first) and what is stored at each
//! of its [`keys`]; it answers a [`Reply`] and leaves the streams it
//! changed marked. Times (auto IDs, delivery and idle times) come from
//! `now_ms`.
//!
//! Arity and subcommand names are checked before (the router's command
//! table); the checks Redis makes after them are all here.

use super::{Consumer, Entry, Group, Pending, Stream, StreamId, Trim, parse_id};
use crate::int::parse_i64;
use bytes::Bytes;

/// A reply as RESP2 shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Bulk(Bytes),
    Int(i64),
    /// `+OK`
    Ok,
    /// The null bulk string.
    Nil,
    /// The null array.
    NilArray,
    Array(Vec<Reply>),
    /// A map in RESP3 (XINFO's); keys and values alternating in one
    /// array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A map in RESP3 that RESP2 shows as `[key, value]` pairs (XREAD's
    /// streams).
    NestedMap(Vec<(Reply, Reply)>),
    /// The error line, code first (`ERR ...`, `NOGROUP ...`).
    Error(String),
}

/// What a command finds at one of its keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Absent,
    /// A value of another type.
    Other,
    Stream(Stream),
}

/// One key of a command: its name, its value, and whether the command
/// changed it (then `value` is a stream to store).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: Bytes,
    pub value: Value,
    pub changed: bool,
}

impl Key {
    pub fn new(name: Bytes, value: Value) -> Key {
        Key { name, value, changed: false }
    }
}

/// The keys a stream command names, each once, in order of appearance;
/// or the error Redis gives before looking any up (XREAD's and
/// XREADGROUP's option errors). The command's arity is already checked.
pub fn keys(args: &[Bytes], now_ms: u64) -> Result<Vec<Bytes>, Reply> {
    if let Err(name) = args.first().map_or(Err(String::new()), |_| check_arity(args)) {
        return Err(wrong_arity(&name));
    }
    let name = lower(&args[0]);
    match name.as_str() {
        "xread" | "xreadgroup" => {
            let r = ReadArgs::parse(args, now_ms)?;
            let mut keys: Vec<Bytes> = Vec::new();
            for k in &args[r.first..r.first + r.count_streams] {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            Ok(keys)
        }
        "xgroup" | "xinfo" => Ok(vec![args[2].clone()]),
        _ => Ok(vec![args[1].clone()]),
    }
}

/// XREAD's and XREADGROUP's options (before `STREAMS`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadArgs {
    /// BLOCK: how long to wait in ms (0: forever); None without BLOCK.
    pub block_ms: Option<u64>,
    /// COUNT: at most this many entries per stream (0: no limit).
    pub count: u64,
    /// GROUP: the group and consumer (XREADGROUP).
    pub group: Option<(Bytes, Bytes)>,
    pub noack: bool,
    /// Where the keys start; the IDs follow them.
    pub first: usize,
    pub count_streams: usize,
}

impl ReadArgs {
    /// Parses the options as `xreadCommand` does; its errors come first.
    /// A BLOCK must end before the clock (`now_ms`) overflows.
    pub fn parse(a: &[Bytes], now_ms: u64) -> Result<ReadArgs, Reply> {
        let group_cmd = a[0].eq_ignore_ascii_case(b"xreadgroup");
        let mut r = ReadArgs { block_ms: None, count: 0, group: None, noack: false, first: 0, count_streams: 0 };
        let mut i = 1;
        while i < a.len() {
            let more = a.len() - i - 1;
            let opt = lower(&a[i]);
            match opt.as_str() {
                "block" if more > 0 => {
                    i += 1;
                    let ms = parse_i64(&a[i]).ok_or_else(|| err("timeout is not an integer or out of range"))?;
                    if ms < 0 {
                        return Err(err("timeout is negative"));
                    }
                    if ms > i64::MAX - now_ms as i64 {
                        return Err(err("timeout is out of range"));
                    }
                    r.block_ms = Some(ms as u64);
                }
                "count" if more > 0 => {
                    i += 1;
                    r.count = parse_i64(&a[i]).ok_or_else(not_integer)?.max(0) as u64;
                }
                "streams" if more > 0 => {
                    r.first = i + 1;
                    let n = a.len() - r.first;
                    if !n.is_multiple_of(2) {
                        // XREADGROUP's says XREAD and '$' too (Redis 7.0).
                        return Err(err("Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
                    }
                    r.count_streams = n / 2;
                    break;
                }
                "group" if more >= 2 => {
                    if !group_cmd {
                        return Err(err("The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
                    }
                    r.group = Some((a[i + 1].clone(), a[i + 2].clone()));
                    i += 2;
                }
                "noack" => {
                    if !group_cmd {
                        return Err(err("The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
                    }
                    r.noack = true;
                }
                _ => return Err(syntax_error()),
            }
            i += 1;
        }
        if r.first == 0 {
            return Err(syntax_error());
        }
        if group_cmd && r.group.is_none() {
            return Err(err("Missing GROUP option for XREADGROUP"));
        }
        Ok(r)
    }
}

/// Whether the command never changes a stream (so running it twice is
/// harmless).
pub fn is_read_only(name: &[u8]) -> bool {
    [&b"xlen"[..], b"xrange", b"xrevrange", b"xread", b"xpending", b"xinfo"].iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// A stream command's arity as Redis 7.0's table has it (negative: at
/// least), with XGROUP's and XINFO's subcommands as `xgroup|create`;
/// None for a name that is not one.
pub fn arity(name: &str) -> Option<i32> {
    Some(match name {
        "xlen" | "xgroup|help" | "xinfo|help" => 2,
        "xgroup" | "xinfo" => -2,
        "xdel" | "xpending" | "xsetid" | "xinfo|stream" => -3,
        "xrange" | "xrevrange" | "xtrim" | "xack" | "xread" => -4,
        "xinfo|groups" => 3,
        "xgroup|destroy" => 4,
        "xadd" | "xgroup|create" | "xgroup|setid" => -5,
        "xinfo|consumers" => 4,
        "xgroup|createconsumer" | "xgroup|delconsumer" => 5,
        "xclaim" | "xautoclaim" => -6,
        "xreadgroup" => -7,
        _ => return None,
    })
}

/// The table name of a command and its arity check: `xgroup|create` for
/// XGROUP CREATE. Err(name) when the count is wrong (the name to show in
/// Redis's arity error), or the subcommand unknown (then the bare name).
pub fn check_arity(args: &[Bytes]) -> Result<String, String> {
    let name = lower(&args[0]);
    let full = match (name.as_str(), args.get(1)) {
        ("xgroup" | "xinfo", Some(sub)) => format!("{name}|{}", lower(sub)),
        _ => name.clone(),
    };
    let Some(arity) = arity(&full) else { return Err(name) };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) { Err(full) } else { Ok(full) }
}

/// Runs one stream command over its keys (as [`keys`] lists them).
pub fn run(args: &[Bytes], keys: &mut [Key], now_ms: u64, max_bytes: usize) -> Reply {
    // The router checked these; a malformed op must not index past them.
    if args.is_empty() {
        return err("empty stream command");
    }
    if let Err(name) = check_arity(args) {
        return wrong_arity(&name);
    }
    if keys.is_empty() {
        return err("a stream command without its keys");
    }
    let name = lower(&args[0]);
    let result = match name.as_str() {
        "xadd" => xadd(args, &mut keys[0], now_ms, max_bytes),
        "xtrim" => xtrim(args, &mut keys[0]),
        "xdel" => xdel(args, &mut keys[0]),
        "xlen" => stream_or(&keys[0], Reply::Int(0)).map(|s| Reply::Int(s.len() as i64)),
        "xrange" => xrange(args, &keys[0], false),
        "xrevrange" => xrange(args, &keys[0], true),
        "xread" | "xreadgroup" => xread(args, keys, now_ms),
        "xgroup" => xgroup(args, &mut keys[0], now_ms),
        "xack" => xack(args, &mut keys[0]),
        "xpending" => xpending(args, &keys[0], now_ms),
        "xclaim" => xclaim(args, &mut keys[0], now_ms),
        "xautoclaim" => xautoclaim(args, &mut keys[0], now_ms),
        "xinfo" => xinfo(args, &keys[0], now_ms),
        "xsetid" => xsetid(args, &mut keys[0]),
        other => Err(err(&format!("'{other}' is not a stream command"))),
    };
    result.unwrap_or_else(|e| e)
}

type Result<T, E = Reply> = std::result::Result<T, E>;

/// The stream at `key`; `absent` (as an Err, the reply) when there is
/// none, WRONGTYPE for another type.
fn stream_or(key: &Key, absent: Reply) -> Result<&Stream> {
    match &key.value {
        Value::Stream(s) => Ok(s),
        Value::Absent => Err(absent),
        Value::Other => Err(wrong_type()),
    }
}

fn stream_or_mut(key: &mut Key, absent: Reply) -> Result<&mut Stream> {
    match &mut key.value {
        Value::Stream(s) => Ok(s),
        Value::Absent => Err(absent),
        Value::Other => Err(wrong_type()),
    }
}

/// XADD's and XTRIM's options (`streamParseAddOrTrimArgsOrReply`).
struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    nomkstream: bool,
    /// The ID (its sequence None for `ms-*`); None for `*`.
    id: Option<(StreamId, Option<u64>)>,
    /// Where the ID is (XADD): the fields follow it.
    id_at: usize,
}

fn add_trim_args(a: &[Bytes], xadd: bool) -> Result<AddTrim> {
    let mut p = AddTrim { trim: None, approx: false, limit: 0, nomkstream: false, id: None, id_at: 0 };
    let mut limit_given = false;
    let mut i = 2;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = lower(&a[i]);
        match opt.as_str() {
            "*" if xadd => break,
            "maxlen" | "minid" if more > 0 => {
                if p.trim.is_some() {
                    return Err(err("syntax error, MAXLEN and MINID options at the same time are not compatible"));
                }
                p.approx = false;
                match &a[i + 1][..] {
                    b"~" if more >= 2 => {
                        p.approx = true;
                        i += 1;
                    }
                    b"=" if more >= 2 => i += 1,
                    _ => {}
                }
                i += 1;
                p.trim = Some(if opt == "maxlen" {
                    let max = parse_i64(&a[i]).ok_or_else(not_integer)?;
                    if max < 0 {
                        return Err(err("The MAXLEN argument must be >= 0."));
                    }
                    Trim::MaxLen(max as u64)
                } else {
                    Trim::MinId(strict_id(&a[i])?)
                });
            }
            "limit" if more > 0 => {
                let limit = parse_i64(&a[i + 1]).ok_or_else(not_integer)?;
                if limit < 0 {
                    return Err(err("The LIMIT argument must be >= 0."));
                }
                p.limit = limit as u64;
                limit_given = true;
                i += 1;
            }
            "nomkstream" if xadd => p.nomkstream = true,
            _ if xadd => {
                p.id = Some(parse_id(&a[i], 0, true, true).ok_or_else(invalid_id)?);
                break;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    p.id_at = i;
    if p.limit > 0 && p.trim.is_none() {
        return Err(err("syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if !xadd && p.trim.is_none() {
        return Err(err("syntax error, XTRIM must be called with a trimming strategy"));
    }
    if limit_given {
        if !p.approx {
            return Err(err("syntax error, LIMIT cannot be used without the special ~ option"));
        }
    } else if p.approx {
        p.limit = 100 * super::NODE_MAX_ENTRIES as u64;
    }
    Ok(p)
}

fn xadd(a: &[Bytes], key: &mut Key, now_ms: u64, max_bytes: usize) -> Result<Reply> {
    let p = add_trim_args(a, true)?;
    let fields = a.len().saturating_sub(p.id_at + 1);
    if p.id_at + 1 > a.len() || fields < 2 || fields % 2 == 1 {
        return Err(wrong_arity("xadd"));
    }
    if let Some((id, Some(_))) = p.id
        && id.is_zero()
    {
        return Err(err("The ID specified in XADD must be greater than 0-0"));
    }
    let created = matches!(key.value, Value::Absent);
    match key.value {
        Value::Other => return Err(wrong_type()),
        Value::Absent if p.nomkstream => return Ok(Reply::Nil),
        Value::Absent => key.value = Value::Stream(Stream::default()),
        Value::Stream(_) => {}
    }
    let Value::Stream(s) = &mut key.value else { unreachable!("made a stream above") };
    let refuse = |key: &mut Key, e: Reply| {
        // A stream this XADD made and could not add to is not left behind.
        if created {
            key.value = Value::Absent;
        }
        Err(e)
    };
    if s.last_id == StreamId::MAX {
        return Err(err("The stream has exhausted the last possible ID, unable to add more items"));
    }
    let last = s.last_id;
    let id = match p.id {
        None if now_ms > last.ms => StreamId::new(now_ms, 0),
        None => last.next().expect("not the last ID"),
        Some((id, None)) if id.ms == last.ms => match last.seq {
            u64::MAX => StreamId::ZERO,
            seq => StreamId::new(id.ms, seq + 1),
        },
        Some((id, _)) => id,
    };
    if id <= last {
        return refuse(key, err("The ID specified in XADD is equal or smaller than the target stream top item"));
    }
    let items = &a[p.id_at + 1..];
    let size: usize = items.iter().map(|i| 4 + i.len()).sum::<usize>() + 20;
    if s.encoded_len() + size > max_bytes {
        return refuse(key, err("Elements are too large to be stored"));
    }
    s.append(id, items);
    if let Some(rule) = p.trim {
        s.trim(rule, p.approx, p.limit);
    }
    key.changed = true;
    Ok(Reply::Bulk(id.to_bytes()))
}

fn xtrim(a: &[Bytes], key: &mut Key) -> Result<Reply> {
    let p = add_trim_args(a, false)?;
    let s = stream_or_mut(key, Reply::Int(0))?;
    let deleted = s.trim(p.trim.expect("XTRIM has a rule"), p.approx, p.limit);
    key.changed = deleted > 0;
    Ok(Reply::Int(deleted as i64))
}

fn xdel(a: &[Bytes], key: &mut Key) -> Result<Reply> {
    let s = stream_or_mut(key, Reply::Int(0))?;
    let ids = a[2..].iter().map(|raw| strict_id(raw)).collect::<Result<Vec<_>>>()?;
    let mut deleted = 0;
    for id in ids {
        if s.remove(&id) {
            s.max_deleted = s.max_deleted.max(id);
            deleted += 1;
        }
    }
    key.changed = deleted > 0;
    Ok(Reply::Int(deleted))
}

/// An interval bound (`streamParseIntervalIDOrReply`): `(` makes it
/// exclusive, moved to the next ID (`start`) or the previous one.
fn bound(raw: &[u8], start: bool) -> Result<StreamId> {
    let missing_seq = if start { 0 } else { u64::MAX };
    if raw.len() > 1 && raw[0] == b'(' {
        let (id, _) = parse_id(&raw[1..], missing_seq, true, false).ok_or_else(invalid_id)?;
        let moved = if start { id.next() } else { id.prev() };
        moved.ok_or_else(|| err(if start { "invalid start ID for the interval" } else { "invalid end ID for the interval" }))
    } else {
        Ok(parse_id(raw, missing_seq, false, false).ok_or_else(invalid_id)?.0)
    }
}

fn xrange(a: &[Bytes], key: &Key, rev: bool) -> Result<Reply> {
    let (start_arg, end_arg) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    let start = bound(start_arg, true)?;
    let end = bound(end_arg, false)?;
    let mut count: Option<u64> = None;
    let mut j = 4;
    while j < a.len() {
        if lower(&a[j]) == "count" && j + 1 < a.len() {
            count = Some(parse_i64(&a[j + 1]).ok_or_else(not_integer)?.max(0) as u64);
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    let s = stream_or(key, Reply::Array(vec![]))?;
    if count == Some(0) {
        return Ok(Reply::NilArray);
    }
    let limit = count.unwrap_or(u64::MAX) as usize;
    Ok(Reply::Array(s.range(start, end, rev).take(limit).map(entry).collect()))
}

fn xread(a: &[Bytes], keys: &mut [Key], now_ms: u64) -> Result<Reply> {
    let r = ReadArgs::parse(a, now_ms)?;
    let names = &a[r.first..r.first + r.count_streams];
    let raw_ids = &a[r.first + r.count_streams..];
    let at = |keys: &[Key], name: &Bytes| keys.iter().position(|k| k.name == name).expect("every stream's key is given");
    // Each stream's checks in turn: type, group, then its ID.
    let mut ids = Vec::with_capacity(names.len());
    for (name, raw) in names.iter().zip(raw_ids) {
        let key = &keys[at(keys, name)];
        let stream = match &key.value {
            Value::Other => return Err(wrong_type()),
            Value::Stream(s) => Some(s),
            Value::Absent => None,
        };
        if let Some((group, _)) = &r.group
            && !stream.is_some_and(|s| s.groups.contains_key(group))
        {
            return Err(Reply::Error(format!("NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option", show(name), show(group))));
        }
        ids.push(match &raw[..] {
            b"$" if r.group.is_some() => {
                return Err(err("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            }
            b"$" => stream.map_or(StreamId::ZERO, |s| s.last_id),
            b">" if r.group.is_none() => return Err(err("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")),
            // The greatest ID stands for ">", as in Redis.
            b">" => StreamId::MAX,
            _ => strict_id(raw)?,
        });
    }
    let limit = if r.count == 0 { usize::MAX } else { r.count as usize };
    let mut served = Vec::new();
    for (name, gt) in names.iter().zip(ids) {
        let i = at(keys, name);
        let Value::Stream(s) = &mut keys[i].value else { continue };
        let entries = match &r.group {
            None => {
                if s.is_empty() || s.last_valid_id() <= gt {
                    continue;
                }
                let start = gt.next().expect("below the last valid ID");
                s.range(start, StreamId::MAX, false).take(limit).map(entry).collect()
            }
            Some((group, consumer)) if gt != StreamId::MAX => {
                keys[i].changed = true;
                let Value::Stream(s) = &mut keys[i].value else { unreachable!() };
                history(s, group, consumer, gt, limit, now_ms)
            }
            Some((group, consumer)) => {
                let last = s.groups[group].last_id;
                if s.is_empty() || s.last_valid_id() <= last {
                    continue;
                }
                keys[i].changed = true;
                let Value::Stream(s) = &mut keys[i].value else { unreachable!() };
                deliver(s, group, consumer, last, limit, r.noack, now_ms)
            }
        };
        served.push((Reply::Bulk(name.clone()), Reply::Array(entries)));
    }
    // Stream to entries: a map in RESP3, `[name, entries]` pairs in RESP2.
    Ok(if served.is_empty() { Reply::NilArray } else { Reply::NestedMap(served) })
}

/// A consumer of `group`, made if new, seen now.
fn seen(g: &mut Group, consumer: &Bytes, now_ms: u64) {
    g.consumers.entry(consumer.clone()).or_default().seen_ms = now_ms;
}

/// XREADGROUP with `>`: entries after the group's last delivered one,
/// which become the consumer's pending entries (unless NOACK).
fn deliver(s: &mut Stream, group: &Bytes, consumer: &Bytes, after: StreamId, limit: usize, noack: bool, now_ms: u64) -> Vec<Reply> {
    let mut g = s.groups.remove(group).expect("checked to exist");
    seen(&mut g, consumer, now_ms);
    let start = after.next().expect("below the last valid ID");
    let ids: Vec<StreamId> = s.range(start, StreamId::MAX, false).take(limit).map(|e| e.id).collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if g.entries_read != -1 && !s.has_tombstones_from(id) {
            g.entries_read += 1;
        } else if s.entries_added > 0 {
            g.entries_read = s.estimate_entries_read(id);
        }
        g.last_id = id;
        if !noack {
            g.pel.insert(id, Pending { consumer: consumer.clone(), delivery_ms: now_ms, delivery_count: 1 });
        }
        out.push(entry(s.get(&id).expect("in range")));
    }
    s.groups.insert(group.clone(), g);
    out
}

/// XREADGROUP with an ID: the consumer's own pending entries after it,
/// delivered again (a deleted entry shows as its ID and a null).
fn history(s: &mut Stream, group: &Bytes, consumer: &Bytes, after: StreamId, limit: usize, now_ms: u64) -> Vec<Reply> {
    let mut g = s.groups.remove(group).expect("checked to exist");
    seen(&mut g, consumer, now_ms);
    let mut out = Vec::new();
    if let Some(start) = after.next() {
        let ids: Vec<StreamId> = g.pel.range(start..).filter(|(_, p)| p.consumer == consumer).take(limit).map(|(id, _)| *id).collect();
        for id in ids {
            match s.get(&id) {
                Some(e) => {
                    let p = g.pel.get_mut(&id).expect("listed above");
                    p.delivery_ms = now_ms;
                    p.delivery_count += 1;
                    out.push(entry(e));
                }
                None => out.push(Reply::Array(vec![Reply::Bulk(id.to_bytes()), Reply::NilArray])),
            }
        }
    }
    s.groups.insert(group.clone(), g);
    out
}

fn xgroup(a: &[Bytes], key: &mut Key, now_ms: u64) -> Result<Reply> {
    let sub = lower(&a[1]);
    let sub_error = || Reply::Error(format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.", show(&a[1])));
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    if sub == "create" && a.len() >= 5 {
        let mut i = 5;
        while i < a.len() {
            match lower(&a[i]).as_str() {
                "mkstream" => {
                    mkstream = true;
                    i += 1;
                }
                "entriesread" if i + 1 < a.len() => {
                    entries_read = entries_read_arg(&a[i + 1])?;
                    i += 2;
                }
                _ => return Err(sub_error()),
            }
        }
    }
    if let Value::Other = key.value {
        return Err(wrong_type());
    }
    let exists = matches!(key.value, Value::Stream(_));
    let group = a[3].clone();
    if !mkstream {
        let Value::Stream(s) = &key.value else {
            return Err(err("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        };
        if !s.groups.contains_key(&group) && matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") {
            return Err(Reply::Error(format!("NOGROUP No such consumer group '{}' for key name '{}'", show(&group), show(&a[2]))));
        }
    }
    match (sub.as_str(), a.len()) {
        ("create", 5..=8) => {
            let id = match &a[4][..] {
                b"$" => match &key.value {
                    Value::Stream(s) => s.last_id,
                    _ => StreamId::ZERO,
                },
                raw => strict_id(raw)?,
            };
            if !exists {
                key.value = Value::Stream(Stream::default());
                key.changed = true;
            }
            let Value::Stream(s) = &mut key.value else { unreachable!("made above") };
            if s.groups.contains_key(&group) {
                return Err(Reply::Error("BUSYGROUP Consumer Group name already exists".into()));
            }
            s.groups.insert(group, Group::new(id, entries_read));
            key.changed = true;
            Ok(Reply::Ok)
        }
        ("setid", 5 | 7) => {
            let s = stream_or_mut(key, Reply::Nil)?;
            let id = match &a[4][..] {
                b"$" => s.last_id,
                raw => parse_id(raw, 0, false, false).ok_or_else(invalid_id)?.0,
            };
            if a.len() == 7 {
                if lower(&a[5]) != "entriesread" {
                    return Err(sub_error());
                }
                entries_read = entries_read_arg(&a[6])?;
            }
            let g = s.groups.get_mut(&group).expect("checked above");
            g.last_id = id;
            g.entries_read = entries_read;
            key.changed = true;
            Ok(Reply::Ok)
        }
        ("destroy", 4) => {
            let s = stream_or_mut(key, Reply::Nil)?;
            let gone = s.groups.remove(&group).is_some();
            key.changed = gone;
            Ok(Reply::Int(gone as i64))
        }
        ("createconsumer", 5) => {
            let s = stream_or_mut(key, Reply::Nil)?;
            let g = s.groups.get_mut(&group).expect("checked above");
            if g.consumers.contains_key(&a[4]) {
                return Ok(Reply::Int(0));
            }
            g.consumers.insert(a[4].clone(), Consumer { seen_ms: now_ms });
            key.changed = true;
            Ok(Reply::Int(1))
        }
        ("delconsumer", 5) => {
            let s = stream_or_mut(key, Reply::Nil)?;
            let g = s.groups.get_mut(&group).expect("checked above");
            if g.consumers.remove(&a[4]).is_none() {
                return Ok(Reply::Int(0));
            }
            let before = g.pel.len();
            g.pel.retain(|_, p| p.consumer != a[4]);
            let dropped = before - g.pel.len();
            key.changed = true;
            Ok(Reply::Int(dropped as i64))
        }
        _ => Err(sub_error()),
    }
}

fn entries_read_arg(raw: &[u8]) -> Result<i64> {
    let n = parse_i64(raw).ok_or_else(not_integer)?;
    if n < 0 && n != -1 {
        return Err(err("value for ENTRIESREAD must be positive or -1"));
    }
    Ok(n)
}

fn xack(a: &[Bytes], key: &mut Key) -> Result<Reply> {
    let s = stream_or_mut(key, Reply::Int(0))?;
    let Some(g) = s.groups.get_mut(&a[2]) else { return Ok(Reply::Int(0)) };
    let ids = a[3..].iter().map(|raw| strict_id(raw)).collect::<Result<Vec<_>>>()?;
    let acked = ids.iter().filter(|id| g.pel.remove(id).is_some()).count();
    key.changed = acked > 0;
    Ok(Reply::Int(acked as i64))
}

fn no_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::Error(format!("NOGROUP No such key '{}' or consumer group '{}'", show(key), show(group)))
}

fn xpending(a: &[Bytes], key: &Key, now_ms: u64) -> Result<Reply> {
    let summary = a.len() == 3;
    if !summary && !(6..=9).contains(&a.len()) {
        return Err(syntax_error());
    }
    let mut range = None;
    if !summary {
        let mut at = 3;
        let mut min_idle = 0;
        if lower(&a[3]) == "idle" {
            min_idle = parse_i64(&a[4]).ok_or_else(not_integer)?;
            if a.len() < 8 {
                return Err(syntax_error());
            }
            at += 2;
        }
        let count = parse_i64(&a[at + 2]).ok_or_else(not_integer)?.max(0) as usize;
        let start = bound(&a[at], true)?;
        let end = bound(&a[at + 1], false)?;
        range = Some((start, end, count, min_idle, a.get(at + 3)));
    }
    let s = match &key.value {
        Value::Other => return Err(wrong_type()),
        Value::Absent => return Err(no_group(&a[1], &a[2])),
        Value::Stream(s) => s,
    };
    let g = s.groups.get(&a[2]).ok_or_else(|| no_group(&a[1], &a[2]))?;
    let Some((start, end, count, min_idle, consumer)) = range else {
        let (Some(first), Some(last)) = (g.pel.keys().next(), g.pel.keys().next_back()) else {
            return Ok(Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
        };
        let per_consumer = g
            .consumers
            .keys()
            .map(|c| (c, g.pending_of(c).count()))
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| Reply::Array(vec![Reply::Bulk(c.clone()), Reply::Bulk(Bytes::from(n.to_string()))]))
            .collect();
        return Ok(Reply::Array(vec![Reply::Int(g.pel.len() as i64), Reply::Bulk(first.to_bytes()), Reply::Bulk(last.to_bytes()), Reply::Array(per_consumer)]));
    };
    if consumer.is_some_and(|c| !g.consumers.contains_key(c)) {
        return Ok(Reply::Array(vec![]));
    }
    let rows = g
        .pel
        .range(start..)
        .take_while(|(id, _)| **id <= end)
        .filter(|(_, p)| consumer.is_none_or(|c| p.consumer == c))
        .filter(|(_, p)| min_idle == 0 || idle(now_ms, p.delivery_ms) >= min_idle)
        .take(count)
        .map(|(id, p)| Reply::Array(vec![Reply::Bulk(id.to_bytes()), Reply::Bulk(p.consumer.clone()), Reply::Int(idle(now_ms, p.delivery_ms).max(0)), Reply::Int(p.delivery_count as i64)]))
        .collect();
    Ok(Reply::Array(rows))
}

fn idle(now_ms: u64, since_ms: u64) -> i64 {
    now_ms as i64 - since_ms as i64
}

fn xclaim(a: &[Bytes], key: &mut Key, now_ms: u64) -> Result<Reply> {
    let s = match &mut key.value {
        Value::Other => return Err(wrong_type()),
        Value::Absent => return Err(no_group(&a[1], &a[2])),
        Value::Stream(s) => s,
    };
    if !s.groups.contains_key(&a[2]) {
        return Err(no_group(&a[1], &a[2]));
    }
    let min_idle = parse_i64(&a[4]).ok_or_else(|| err("Invalid min-idle-time argument for XCLAIM"))?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < a.len() {
        match parse_id(&a[j], 0, true, false) {
            Some((id, _)) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let (mut force, mut justid) = (false, false);
    let mut retry_count: Option<i64> = None;
    let mut delivery: Option<i64> = None;
    let mut last_id = StreamId::ZERO;
    while j < a.len() {
        let more = a.len() - 1 - j;
        match lower(&a[j]).as_str() {
            "force" => force = true,
            "justid" => justid = true,
            "idle" if more > 0 => {
                j += 1;
                delivery = Some(now_ms as i64 - parse_i64(&a[j]).ok_or_else(|| err("Invalid IDLE option argument for XCLAIM"))?);
            }
            "time" if more > 0 => {
                j += 1;
                delivery = Some(parse_i64(&a[j]).ok_or_else(|| err("Invalid TIME option argument for XCLAIM"))?);
            }
            "retrycount" if more > 0 => {
                j += 1;
                retry_count = Some(parse_i64(&a[j]).ok_or_else(|| err("Invalid RETRYCOUNT option argument for XCLAIM"))?);
            }
            "lastid" if more > 0 => {
                j += 1;
                last_id = strict_id(&a[j])?;
            }
            _ => return Err(err(&format!("Unrecognized XCLAIM option '{}'", show(&a[j])))),
        }
        j += 1;
    }
    let mut g = s.groups.remove(&a[2]).expect("checked above");
    let mut changed = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        changed = true;
    }
    let delivery_ms = match delivery {
        Some(t) if t >= 0 && t <= now_ms as i64 => t as u64,
        _ => now_ms,
    };
    let consumer = a[3].clone();
    let mut out = Vec::new();
    for id in ids {
        let Some(e) = s.get(&id) else {
            // The entry is gone: so is its pending entry.
            changed |= g.pel.remove(&id).is_some();
            continue;
        };
        let pending = match g.pel.get(&id) {
            Some(p) => p.clone(),
            // As Redis makes one for FORCE: delivered once, now.
            None if force => Pending { consumer: Bytes::new(), delivery_ms: now_ms, delivery_count: 1 },
            None => continue,
        };
        let forced = !g.pel.contains_key(&id);
        if !forced && min_idle > 0 && idle(now_ms, pending.delivery_ms) < min_idle {
            continue;
        }
        seen(&mut g, &consumer, now_ms);
        let delivery_count = match retry_count {
            Some(n) if n >= 0 => n as u64,
            _ if !justid => pending.delivery_count + 1,
            _ => pending.delivery_count,
        };
        g.pel.insert(id, Pending { consumer: consumer.clone(), delivery_ms, delivery_count });
        changed = true;
        out.push(if justid { Reply::Bulk(id.to_bytes()) } else { entry(e) });
    }
    s.groups.insert(a[2].clone(), g);
    key.changed = changed;
    Ok(Reply::Array(out))
}

fn xautoclaim(a: &[Bytes], key: &mut Key, now_ms: u64) -> Result<Reply> {
    let min_idle = parse_i64(&a[4]).ok_or_else(|| err("Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0);
    let start = bound(&a[5], true)?;
    let mut count: u64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - 1 - j;
        match lower(&a[j]).as_str() {
            "count" if more > 0 => {
                let max = i64::MAX / 16;
                count = parse_i64(&a[j + 1]).filter(|n| (1..=max).contains(n)).ok_or_else(|| err("COUNT must be > 0"))? as u64;
                j += 2;
            }
            "justid" => {
                justid = true;
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
    }
    let s = match &mut key.value {
        Value::Other => return Err(wrong_type()),
        Value::Absent => return Err(no_group(&a[1], &a[2])),
        Value::Stream(s) => s,
    };
    let mut g = s.groups.remove(&a[2]).ok_or_else(|| no_group(&a[1], &a[2]))?;
    let consumer = a[3].clone();
    let mut attempts = count * 10;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut next = Some(start);
    let mut changed = false;
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let Some(at) = next else { break };
        let Some((&id, pending)) = g.pel.range(at..).next() else {
            next = None;
            break;
        };
        next = id.next();
        let Some(e) = s.get(&id) else {
            g.pel.remove(&id);
            deleted.push(Reply::Bulk(id.to_bytes()));
            changed = true;
            count -= 1;
            continue;
        };
        if min_idle > 0 && idle(now_ms, pending.delivery_ms) < min_idle {
            continue;
        }
        let delivery_count = pending.delivery_count + u64::from(!justid);
        seen(&mut g, &consumer, now_ms);
        g.pel.insert(id, Pending { consumer: consumer.clone(), delivery_ms: now_ms, delivery_count });
        changed = true;
        claimed.push(if justid { Reply::Bulk(id.to_bytes()) } else { entry(e) });
        count -= 1;
    }
    // The cursor: the next pending entry after the last one looked at.
    let cursor = next.and_then(|at| g.pel.range(at..).next().map(|(id, _)| *id)).unwrap_or_default();
    s.groups.insert(a[2].clone(), g);
    key.changed = changed;
    Ok(Reply::Array(vec![Reply::Bulk(cursor.to_bytes()), Reply::Array(claimed), Reply::Array(deleted)]))
}

fn xinfo(a: &[Bytes], key: &Key, now_ms: u64) -> Result<Reply> {
    let sub = lower(&a[1]);
    let s = stream_or(key, err("no such key"))?;
    let bulk = |text: &str| Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()));
    let id = |id: StreamId| Reply::Bulk(id.to_bytes());
    match sub.as_str() {
        "groups" => Ok(Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    let mut fields = vec![
                        bulk("name"),
                        Reply::Bulk(name.clone()),
                        bulk("consumers"),
                        Reply::Int(g.consumers.len() as i64),
                        bulk("pending"),
                        Reply::Int(g.pel.len() as i64),
                    ];
                    fields.extend(position(s, g));
                    map(fields)
                })
                .collect(),
        )),
        "consumers" => {
            let g = s.groups.get(&a[3]).ok_or_else(|| Reply::Error(format!("NOGROUP No such consumer group '{}' for key name '{}'", show(&a[3]), show(&a[2]))))?;
            Ok(Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        map(vec![
                            bulk("name"),
                            Reply::Bulk(name.clone()),
                            bulk("pending"),
                            Reply::Int(g.pending_of(name).count() as i64),
                            bulk("idle"),
                            Reply::Int(idle(now_ms, c.seen_ms).max(0)),
                        ])
                    })
                    .collect(),
            ))
        }
        _ => {
            // STREAM [FULL [COUNT count]]
            let sub_error = || Reply::Error(format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.", show(&a[1])));
            let mut full = false;
            let mut count: usize = 10;
            if a.len() > 3 {
                if lower(&a[3]) != "full" {
                    return Err(sub_error());
                }
                full = true;
                if a.len() > 4 {
                    if a.len() != 6 || lower(&a[4]) != "count" {
                        return Err(sub_error());
                    }
                    let n = parse_i64(&a[5]).ok_or_else(not_integer)?;
                    count = match n {
                        0 => usize::MAX,
                        n if n < 0 => 10,
                        n => n as usize,
                    };
                }
            }
            let mut out = vec![
                bulk("length"),
                Reply::Int(s.len() as i64),
                bulk("radix-tree-keys"),
                Reply::Int(s.nodes().len() as i64),
                bulk("radix-tree-nodes"),
                Reply::Int(s.nodes().len() as i64 + 1),
                bulk("last-generated-id"),
                id(s.last_id),
                bulk("max-deleted-entry-id"),
                id(s.max_deleted),
                bulk("entries-added"),
                Reply::Int(s.entries_added as i64),
                bulk("recorded-first-entry-id"),
                id(s.first_id()),
            ];
            if !full {
                let edge = |e: Option<&Entry>| e.map_or(Reply::Nil, entry);
                out.extend([
                    bulk("groups"),
                    Reply::Int(s.groups.len() as i64),
                    bulk("first-entry"),
                    edge(s.range(StreamId::ZERO, StreamId::MAX, false).next()),
                    bulk("last-entry"),
                    edge(s.range(StreamId::ZERO, StreamId::MAX, true).next()),
                ]);
                return Ok(map(out));
            }
            out.push(bulk("entries"));
            out.push(Reply::Array(s.range(StreamId::ZERO, StreamId::MAX, false).take(count).map(entry).collect()));
            out.push(bulk("groups"));
            out.push(Reply::Array(
                s.groups
                    .iter()
                    .map(|(name, g)| {
                        let pending = g
                            .pel
                            .iter()
                            .take(count)
                            .map(|(i, p)| Reply::Array(vec![id(*i), Reply::Bulk(p.consumer.clone()), Reply::Int(p.delivery_ms as i64), Reply::Int(p.delivery_count as i64)]))
                            .collect();
                        let consumers = g
                            .consumers
                            .iter()
                            .map(|(cname, c)| {
                                let own = g.pending_of(cname).take(count).map(|(i, p)| Reply::Array(vec![id(*i), Reply::Int(p.delivery_ms as i64), Reply::Int(p.delivery_count as i64)])).collect();
                                map(vec![
                                    bulk("name"),
                                    Reply::Bulk(cname.clone()),
                                    bulk("seen-time"),
                                    Reply::Int(c.seen_ms as i64),
                                    bulk("pel-count"),
                                    Reply::Int(g.pending_of(cname).count() as i64),
                                    bulk("pending"),
                                    Reply::Array(own),
                                ])
                            })
                            .collect();
                        let mut fields = vec![bulk("name"), Reply::Bulk(name.clone())];
                        fields.extend(position(s, g));
                        fields.extend([
                            bulk("pel-count"),
                            Reply::Int(g.pel.len() as i64),
                            bulk("pending"),
                            Reply::Array(pending),
                            bulk("consumers"),
                            Reply::Array(consumers),
                        ]);
                        map(fields)
                    })
                    .collect(),
            ));
            Ok(map(out))
        }
    }
}

/// Fields and their values alternating, as a map (RESP3's; XINFO's
/// replies).
fn map(fields: Vec<Reply>) -> Reply {
    let mut items = fields.into_iter();
    Reply::Map(std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect())
}

/// A group's position as XINFO shows it: last delivered ID, entries read
/// (null when unknown) and lag (null when it cannot be known).
fn position(s: &Stream, g: &Group) -> [Reply; 6] {
    let bulk = |text: &str| Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()));
    [
        bulk("last-delivered-id"),
        Reply::Bulk(g.last_id.to_bytes()),
        bulk("entries-read"),
        if g.entries_read == -1 { Reply::Nil } else { Reply::Int(g.entries_read) },
        bulk("lag"),
        s.lag(g).map_or(Reply::Nil, Reply::Int),
    ]
}

fn xsetid(a: &[Bytes], key: &mut Key) -> Result<Reply> {
    let id = strict_id(&a[2])?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::ZERO;
    let mut i = 3;
    while i < a.len() {
        let more = a.len() - 1 - i;
        match lower(&a[i]).as_str() {
            "entriesadded" if more > 0 => {
                let n = parse_i64(&a[i + 1]).ok_or_else(not_integer)?;
                if n < 0 {
                    return Err(err("entries_added must be positive"));
                }
                entries_added = Some(n as u64);
            }
            "maxdeletedid" if more > 0 => {
                max_deleted = strict_id(&a[i + 1])?;
                if id < max_deleted {
                    return Err(err("The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
                }
            }
            _ => return Err(syntax_error()),
        }
        i += 2;
    }
    // Redis 7.0 does not compare the ID with the stream's own
    // max_deleted_entry_id (7.2 does), so neither does this.
    let s = stream_or_mut(key, err("no such key"))?;
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return Err(err("The ID specified in XSETID is smaller than the target stream top item"));
        }
        if entries_added.is_some_and(|n| (s.len() as u64) > n) {
            return Err(err("The entries_added specified in XSETID is smaller than the target stream length"));
        }
    }
    s.last_id = id;
    if let Some(n) = entries_added {
        s.entries_added = n;
    }
    if !max_deleted.is_zero() {
        s.max_deleted = max_deleted;
    }
    key.changed = true;
    Ok(Reply::Ok)
}

/// An entry as replies show it: `[id, [field, value, ...]]`.
fn entry(e: &Entry) -> Reply {
    Reply::Array(vec![Reply::Bulk(e.id.to_bytes()), Reply::Array(e.items().map(Reply::Bulk).collect())])
}

fn strict_id(raw: &[u8]) -> Result<StreamId> {
    parse_id(raw, 0, true, false).map(|(id, _)| id).ok_or_else(invalid_id)
}

fn lower(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).to_ascii_lowercase()
}

/// An argument as Redis's `%s` shows it in an error: up to a NUL byte.
fn show(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end])
}

fn err(message: &str) -> Reply {
    Reply::Error(format!("ERR {message}"))
}

fn invalid_id() -> Reply {
    err("Invalid stream ID specified as stream command argument")
}

fn not_integer() -> Reply {
    err("value is not an integer or out of range")
}

fn syntax_error() -> Reply {
    err("syntax error")
}

fn wrong_type() -> Reply {
    Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

fn wrong_arity(name: &str) -> Reply {
    err(&format!("wrong number of arguments for '{name}' command"))
}

#[cfg(test)]
mod tests;
