//! Key commands: DEL UNLINK EXISTS TOUCH TYPE EXPIRE PEXPIRE EXPIREAT
//! PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST SCAN KEYS DBSIZE
//! FLUSHDB FLUSHALL.

use super::plan::{Planned, Shape};
use super::{c_str, int_arg, syntax_error};
use crate::Router;
use crate::glob::glob_match;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::slot::{key_slot, slot_partition};
use evenkeel_types::{SLOT_COUNT, unix_ms};

pub fn del(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::per_key(&a[1..], Kind::Del(pb::Del::default()), Shape::Deleted))
}

pub fn exists(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::per_key(&a[1..], Kind::Get(pb::Get { meta_only: true, ..Default::default() }), Shape::Present))
}

pub fn persist(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::Persist(pb::Persist {}), Shape::Integer))
}

/// Redis Cluster's answer to a command whose keys are in different hash
/// slots: such commands (RENAME, MSETNX, a transaction) are atomic only
/// within a slot.
pub(crate) fn cross_slot() -> Frame {
    Frame::error("CROSSSLOT Keys in request don't hash to the same slot")
}

/// `CROSSSLOT` unless every key is in one hash slot.
pub(crate) fn one_slot<'a>(mut keys: impl Iterator<Item = &'a Bytes>) -> Result<(), Frame> {
    let Some(first) = keys.next().map(|k| key_slot(k)) else { return Ok(()) };
    if keys.all(|k| key_slot(k) == first) { Ok(()) } else { Err(cross_slot()) }
}

/// RENAME (OK) and RENAMENX (1 or 0): one atomic node operation, so both
/// keys must be in one hash slot, as in Redis Cluster (`{tag}`).
pub fn rename(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    one_slot(a[1..3].iter())?;
    let nx = name == "renamenx";
    let shape = if nx { Shape::Integer } else { Shape::Ok };
    Ok(Planned::one(&a[1], Kind::Rename(pb::Rename { to: a[2].clone(), nx }), shape))
}

/// COPY source destination [DB n] [REPLACE]: one atomic node operation
/// on keys of one hash slot, as RENAME. There is one database, so only
/// `DB 0` is taken; the errors come in Redis's order.
pub fn copy(a: &[Bytes]) -> Result<Planned, Frame> {
    one_slot(a[1..3].iter())?;
    let mut replace = false;
    let mut i = 3;
    while i < a.len() {
        match String::from_utf8_lossy(&a[i]).to_ascii_lowercase().as_str() {
            "replace" => replace = true,
            "db" if i + 1 < a.len() => {
                // Redis's getIntFromObjectOrReply: a long long, then a range.
                let db = int_arg(&a[i + 1])?;
                if i32::try_from(db).is_err() {
                    return Err(Frame::error(format!("ERR value is out of range, value must between {} and {}", i32::MIN, i32::MAX)));
                }
                if db != 0 {
                    return Err(Frame::error("ERR DB index is out of range"));
                }
                i += 1;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    if a[1] == a[2] {
        return Err(Frame::error("ERR source and destination objects are the same"));
    }
    Ok(Planned::one(&a[1], Kind::Copy(pb::Copy { to: a[2].clone(), replace }), Shape::Integer))
}

/// TYPE: the value's type, `none` for no key.
pub fn key_type(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::Get(pb::Get { meta_only: true, ..Default::default() }), Shape::Type))
}

/// EXPIRE and PEXPIRE (relative), EXPIREAT and PEXPIREAT (a Unix time).
/// A time already past deletes the key, as in Redis.
pub fn expire(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let condition = expire_condition(&a[3..])?;
    let when = int_arg(&a[2])?;
    let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
    let ms = if matches!(name, "expire" | "expireat") { when.checked_mul(1000).ok_or_else(invalid)? } else { when };
    let base = if name.ends_with("at") { 0 } else { unix_ms() as i64 };
    let at_ms = ms.checked_add(base).ok_or_else(invalid)?;
    Ok(Planned::one(&a[1], Kind::Expire(pb::Expire { at_ms, condition: condition as i32 }), Shape::Integer))
}

/// EXPIRE's NX/XX/GT/LT flags with Redis 7's compatibility rules.
fn expire_condition(flags: &[Bytes]) -> Result<pb::ExpireCondition, Frame> {
    use pb::ExpireCondition as C;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for f in flags {
        match String::from_utf8_lossy(f).to_ascii_uppercase().as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => return Err(Frame::error(format!("ERR Unsupported option {}", c_str(f, usize::MAX)))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Frame::error("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(Frame::error("ERR GT and LT options at the same time are not compatible"));
    }
    // XX combines with GT or LT; the comparison implies the key has a TTL
    // (GT) or is checked against infinity (LT), and XX adds "has a TTL".
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => C::ExpireNx,
        (_, _, true, _) => C::ExpireGt,
        (_, true, _, true) => C::ExpireXxLt,
        (_, _, _, true) => C::ExpireLt,
        (_, true, ..) => C::ExpireXx,
        _ => C::ExpireAlways,
    })
}

pub fn ttl(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::Get(pb::Get { meta_only: true, ..Default::default() }), Shape::Ttl { millis: name == "pttl" }))
}

pub fn expiretime(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::Get(pb::Get { meta_only: true, ..Default::default() }), Shape::ExpireTime { millis: name == "pexpiretime" }))
}

/// Keys a KEYS call asks one node for at a time.
const KEYS_PAGE: u32 = 1000;

/// KEYS: every key matching the pattern, by walking the slots as a full
/// SCAN does (one node call per partition or per 1000 keys). Like Redis's,
/// it reads the whole keyspace: meant for debugging, not for traffic.
pub async fn keys(r: &Router, a: &[Bytes]) -> Frame {
    let pattern = Some(a[1].clone()).filter(|p| &p[..] != b"*");
    let (mut walk, mut found) = (SlotWalk::default(), Vec::new());
    while let Some(page) = walk.next_page(r).await {
        match page {
            Ok(keys) => found.extend(keys.into_iter().filter(|k| pattern.as_ref().is_none_or(|p| glob_match(p, k))).map(Frame::Bulk)),
            Err(e) => return e,
        }
    }
    Frame::Array(found)
}

/// RANDOMKEY: a random key of the first page the slot walk finds from a
/// random slot on (wrapping around), or null when there are no keys. Keys
/// in sparse stretches of the keyspace come up more often; Redis's pick is
/// not uniform either.
pub async fn random_key(r: &Router) -> Frame {
    use rand::RngExt;
    let start = rand::rng().random_range(0..SLOT_COUNT as u32);
    for (from, to) in [(start, SLOT_COUNT as u32), (0, start)] {
        let mut slot = from;
        while slot < to {
            match scan_slots(r, slot, RANDOM_PAGE, None).await {
                Ok((keys, _)) if !keys.is_empty() => return Frame::Bulk(keys[rand::rng().random_range(0..keys.len())].clone()),
                Ok((_, next)) => slot = next,
                Err(e) => return e,
            }
        }
    }
    Frame::Null
}

/// Keys a RANDOMKEY call asks one node for: a few to pick from.
const RANDOM_PAGE: u32 = 16;

/// A walk over every slot, a page of keys at a time (KEYS, FLUSHALL).
#[derive(Default)]
struct SlotWalk {
    slot: u32,
}

impl SlotWalk {
    /// The next page of live keys, or None when every slot was visited.
    async fn next_page(&mut self, r: &Router) -> Option<Result<Vec<Bytes>, Frame>> {
        if self.slot >= SLOT_COUNT as u32 {
            return None;
        }
        Some(scan_slots(r, self.slot, KEYS_PAGE, None).await.map(|(keys, next)| {
            self.slot = next;
            keys
        }))
    }
}

/// SCAN's cursor is the next hash slot to visit (0 when done). Each call
/// visits whole slots, so a key present for the whole iteration is returned
/// at least once, as Redis guarantees.
pub async fn scan(r: &Router, a: &[Bytes]) -> Frame {
    let Some(cursor) = parse_cursor(&a[1]) else { return Frame::error("ERR invalid cursor") };
    let opts = match ScanOptions::parse(&a[2..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if cursor >= SLOT_COUNT as u64 {
        return scan_reply(0, vec![]);
    }
    // Visit partitions until COUNT keys were seen or the keyspace ends: at
    // most one RPC per partition per call.
    let (mut slot, mut seen) = (cursor as u32, Vec::new());
    while slot < SLOT_COUNT as u32 && seen.len() < opts.count as usize {
        match scan_slots(r, slot, opts.count - seen.len() as u32, opts.node_type()).await {
            Ok((keys, next)) => {
                seen.extend(keys);
                slot = next;
            }
            Err(e) => return e,
        }
    }
    let keys = seen.into_iter().filter(|k| opts.matches(k)).map(Frame::Bulk).collect();
    scan_reply(if slot >= SLOT_COUNT as u32 { 0 } else { slot as u64 }, keys)
}

/// Reads a cursor as Redis does, with C's `strtoul` on the argument up to
/// its first NUL: an optional sign (a minus wraps around), decimal digits
/// and nothing else, no leading space; the empty string is 0. Cursors we
/// never hand out (a negative one is huge) simply end the iteration.
pub(crate) fn parse_cursor(raw: &[u8]) -> Option<u64> {
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    let (negative, digits) = match raw.first() {
        None => return Some(0),
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        Some(_) => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative { n.wrapping_neg() } else { n })
}

pub(crate) fn scan_reply(cursor: u64, keys: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::Bulk(Bytes::from(cursor.to_string())), Frame::Array(keys)])
}

struct ScanOptions {
    pattern: Option<Bytes>,
    count: u32,
    /// TYPE: None, any; `Some(None)`, a type no key here has (Redis 7.0
    /// answers nothing for it, without an error).
    ty: Option<Option<pb::ValueType>>,
}

impl ScanOptions {
    fn parse(args: &[Bytes]) -> Result<ScanOptions, Frame> {
        let mut o = ScanOptions { pattern: None, count: 10, ty: None };
        let mut i = 0;
        while i < args.len() {
            let (opt, value) = (String::from_utf8_lossy(&args[i]).to_ascii_uppercase(), args.get(i + 1));
            match (opt.as_str(), value) {
                ("COUNT", Some(v)) => {
                    let n = int_arg(v)?;
                    if n < 1 {
                        return Err(syntax_error());
                    }
                    o.count = n.min(u32::MAX as i64) as u32;
                }
                ("MATCH", Some(v)) => o.pattern = Some(v.clone()).filter(|p| &p[..] != b"*"),
                // The proto names are Redis's type names in capitals.
                ("TYPE", Some(v)) => o.ty = Some(pb::ValueType::from_str_name(&String::from_utf8_lossy(v).to_ascii_uppercase())),
                _ => return Err(syntax_error()),
            }
            i += 2;
        }
        Ok(o)
    }

    /// The type the nodes filter by (they cannot filter by a type no key
    /// has: those keys are dropped by [`Self::matches`]).
    fn node_type(&self) -> Option<pb::ValueType> {
        self.ty.flatten()
    }

    fn matches(&self, key: &[u8]) -> bool {
        self.ty != Some(None) && self.pattern.as_ref().is_none_or(|p| glob_match(p, key))
    }
}

/// Asks the owner of `slot`'s partition for keys from `slot` on (of type
/// `ty` only, if given).
async fn scan_slots(r: &Router, slot: u32, count: u32, ty: Option<pb::ValueType>) -> Result<(Vec<Bytes>, u32), Frame> {
    let budget = r.dispatcher.budget;
    let started = std::time::Instant::now();
    loop {
        let routes = r.dispatcher.routes.load();
        let Some(table) = routes.table.as_ref() else { return Err(Frame::error("CLUSTERDOWN the cluster is not bootstrapped yet")) };
        let partition = slot_partition(slot as u16, table.num_partitions());
        let owner = table.entry(partition).expect("partition exists").owner;
        if let Some(mut client) = routes.client(owner) {
            let req = pb::ScanRequest { epoch: table.epoch, partition: partition as u32, start_slot: slot, count, value_type: ty.map(|t| t as i32) };
            if let Ok(resp) = client.scan(req).await.map(|r| r.into_inner())
                && resp.refused.is_none()
            {
                return Ok((resp.keys, resp.next_slot));
            }
        }
        if started.elapsed().as_millis() as u64 >= budget.total_ms {
            return Err(Frame::error(format!("TRYAGAIN partition is moving; retry budget of {} ms spent", budget.total_ms)));
        }
        let _ = r.dispatcher.routes.refresh().await;
        tokio::time::sleep(std::time::Duration::from_millis(budget.backoff_max_ms)).await;
    }
}

/// FLUSHDB and FLUSHALL (the one database): deletes every key, a page of
/// keys at a time as a full SCAN finds them, each by an ordinary DEL (a
/// versioned tombstone, so a partition moving meanwhile carries the
/// deletions along). Not atomic as Redis's is: a key written into a slot
/// the walk has passed survives it. ASYNC and SYNC are accepted; the reply
/// comes once the walk is done either way.
pub async fn flush(r: &Router, a: &[Bytes]) -> Frame {
    if a.len() > 2 || a.get(1).is_some_and(|o| !o.eq_ignore_ascii_case(b"async") && !o.eq_ignore_ascii_case(b"sync")) {
        return syntax_error();
    }
    let mut walk = SlotWalk::default();
    while let Some(page) = walk.next_page(r).await {
        let keys = match page {
            Ok(keys) => keys,
            Err(e) => return e,
        };
        let deleted = Planned::per_key(&keys, Kind::Del(pb::Del { flush: true }), Shape::Deleted);
        if let error @ Frame::Error(_) = super::plan::reply(deleted.shape, r.dispatcher.run(&deleted.ops).await) {
            return error;
        }
    }
    Frame::ok()
}

/// Live keys in partitions as their owners report them.
pub async fn dbsize(r: &Router) -> Frame {
    let routes = r.dispatcher.routes.load();
    let mut calls = Vec::new();
    for (id, (_, client)) in &routes.nodes {
        let mut client = client.clone();
        let id = *id;
        calls.push(async move { (id, client.stats(pb::StatsRequest {}).await) });
    }
    let Some(table) = routes.table.as_ref() else { return Frame::Integer(0) };
    let mut total = 0u64;
    for (id, reply) in futures::future::join_all(calls).await {
        let Ok(stats) = reply.map(|r| r.into_inner()) else {
            return Frame::error(format!("CLUSTERDOWN node {id} unreachable"));
        };
        total += stats
            .partitions
            .iter()
            .filter(|p| table.entry(p.partition as u16).is_some_and(|e| e.owner == id))
            .map(|p| p.keys)
            .sum::<u64>();
    }
    Frame::Integer(total as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"-18446744073709551615"), Some(1));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"5\0junk"), Some(5));
        for bad in [&b"18446744073709551616"[..], b" 0", b"0 ", b"-", b"+", b"abc", b"1.5", b"0x1"] {
            assert_eq!(parse_cursor(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
