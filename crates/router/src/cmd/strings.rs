//! String commands: GET SET GETDEL GETEX APPEND STRLEN INCR/DECR[BY]
//! INCRBYFLOAT SETRANGE MGET MSET, and the older forms of SET (SETNX SETEX PSETEX
//! GETSET) and GETRANGE (SUBSTR), which are planned as the same node
//! operations.

use super::plan::{Planned, Shape};
use super::{int_arg, syntax_error, wrong_arity};
use crate::dispatch::KeyOp;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::unix_ms;

fn get_kind(meta_only: bool) -> Kind {
    Kind::Get(pb::Get { meta_only, project: None, ..Default::default() })
}

pub fn get(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], get_kind(false), Shape::Value))
}

pub fn getdel(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::GetDel(pb::GetDel {}), Shape::Value))
}

pub fn strlen(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], get_kind(true), Shape::Length))
}

pub fn append(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::Append(pb::Append { value: a[2].clone() }), Shape::Integer))
}

pub fn incr(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let delta = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => int_arg(&a[2])?,
        _ => match int_arg(&a[2])? {
            i64::MIN => return Err(Frame::error("ERR decrement would overflow")),
            n => -n,
        },
    };
    Ok(Planned::one(&a[1], Kind::IncrBy(pb::IncrBy { delta }), Shape::Integer))
}

pub fn set(a: &[Bytes]) -> Result<Planned, Frame> {
    let opts = SetOptions::parse(&a[3..])?;
    let expiry = opts.expiry(unix_ms())?;
    let condition = if opts.nx { pb::Condition::IfAbsent } else if opts.xx { pb::Condition::IfPresent } else { pb::Condition::Always };
    let kind = Kind::Set(pb::Set { value: a[2].clone(), expiry, condition: condition as i32, get: opts.get });
    Ok(Planned::one(&a[1], kind, Shape::Set { get: opts.get }))
}

/// SETNX: SET NX answering 1 or 0.
pub fn setnx(a: &[Bytes]) -> Result<Planned, Frame> {
    let kind = Kind::Set(pb::Set { value: a[2].clone(), expiry: None, condition: pb::Condition::IfAbsent as i32, get: false });
    Ok(Planned::one(&a[1], kind, Shape::Applied))
}

/// SETEX (seconds) and PSETEX (milliseconds): SET EX / PX, with the
/// expiry checked as SET checks it but named after the command.
pub fn setex(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let unit = if name == "setex" { "EX" } else { "PX" };
    let opts = SetOptions { expire: Some((unit, a[2].clone())), ..Default::default() };
    let expiry = opts.expiry_for(name, unix_ms())?;
    let kind = Kind::Set(pb::Set { value: a[3].clone(), expiry, condition: pb::Condition::Always as i32, get: false });
    Ok(Planned::one(&a[1], kind, Shape::Set { get: false }))
}

/// GETSET: SET GET (the old value; the TTL is cleared, as SET clears it).
pub fn getset(a: &[Bytes]) -> Result<Planned, Frame> {
    let kind = Kind::Set(pb::Set { value: a[2].clone(), expiry: None, condition: pb::Condition::Always as i32, get: true });
    Ok(Planned::one(&a[1], kind, Shape::Set { get: true }))
}

/// GETEX: GET, then EX/PX/EXAT/PXAT or PERSIST change the expiry. Options
/// are checked here (Redis's `parseExtendedStringArgumentsOrReply` for a
/// GET); the expiry's value only for a key that exists, as Redis checks it
/// after the lookup, so the node answers that error.
pub fn getex(a: &[Bytes]) -> Result<Planned, Frame> {
    use pb::get_ex::Change;
    let opts = SetOptions::parse_extended(&a[2..], true)?;
    let change = match opts.expiry_for("getex", unix_ms()) {
        Ok(Some(pb::set::Expiry::ExpireAtMs(at))) => Some(Change::AtMs(at as i64)),
        Ok(_) => opts.persist.then_some(Change::Persist(true)),
        Err(Frame::Error(e)) => Some(Change::Invalid(pb::OpError { kind: 0, message: e.strip_prefix("ERR ").unwrap_or(&e).to_string() })),
        Err(other) => unreachable!("an argument error is an error frame: {other:?}"),
    };
    Ok(Planned::one(&a[1], Kind::GetEx(pb::GetEx { change }), Shape::Value))
}

/// INCRBYFLOAT: the node reads the stored value and the increment (both
/// wrong give the same error, so it checks them in Redis's order).
pub fn incrbyfloat(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::IncrByFloat(pb::IncrByFloat { increment: a[2].clone() }), Shape::Value))
}

/// SETRANGE: the offset is checked here, the rest on the node.
pub fn setrange(a: &[Bytes]) -> Result<Planned, Frame> {
    let offset = int_arg(&a[2])?;
    let offset = u64::try_from(offset).map_err(|_| Frame::error("ERR offset is out of range"))?;
    Ok(Planned::one(&a[1], Kind::SetRange(pb::SetRange { offset, value: a[3].clone() }), Shape::Integer))
}

/// GETRANGE (and SUBSTR): the value is read whole and cut here; the
/// indexes are checked before the key is looked up, as Redis does.
pub fn getrange(a: &[Bytes]) -> Result<Planned, Frame> {
    let (start, end) = (int_arg(&a[2])?, int_arg(&a[3])?);
    Ok(Planned::one(&a[1], get_kind(false), Shape::Range { start, end }))
}

/// The bytes of a `len`-byte value GETRANGE `start` `end` returns, by
/// Redis 7's `getrangeCommand`: negative indexes count from the end, and
/// the range is clamped to the value.
pub(crate) fn range(len: usize, start: i64, end: i64) -> std::ops::Range<usize> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return 0..0;
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let mut end = if end < 0 { (len + end).max(0) } else { end };
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 { 0..0 } else { start as usize..end as usize + 1 }
}

/// SET's options, parsed with Redis 7's rules: an option conflicts with the
/// others of its group but may repeat itself (the last value wins).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    /// GETEX's PERSIST.
    persist: bool,
    /// (unit option, raw value): EX, PX, EXAT or PXAT.
    expire: Option<(&'static str, Bytes)>,
}

impl SetOptions {
    pub(crate) fn parse(args: &[Bytes]) -> Result<SetOptions, Frame> {
        Self::parse_extended(args, false)
    }

    /// Redis's `parseExtendedStringArgumentsOrReply`, for SET or (with
    /// `for_get`) GETEX: NX, XX, GET and KEEPTTL only for SET, PERSIST only
    /// for GETEX and not with an expiry.
    fn parse_extended(args: &[Bytes], for_get: bool) -> Result<SetOptions, Frame> {
        let mut o = SetOptions::default();
        let mut i = 0;
        while i < args.len() {
            let opt = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
            let next = args.get(i + 1);
            let other_expire = |o: &SetOptions, unit: &str| o.keepttl || o.expire.as_ref().is_some_and(|(u, _)| *u != unit);
            match opt.as_str() {
                "NX" if !for_get && !o.xx => o.nx = true,
                "XX" if !for_get && !o.nx => o.xx = true,
                "GET" if !for_get => o.get = true,
                "KEEPTTL" if !for_get && o.expire.is_none() => o.keepttl = true,
                "PERSIST" if for_get && o.expire.is_none() => o.persist = true,
                "EX" | "PX" | "EXAT" | "PXAT" if next.is_some() && !o.persist && !other_expire(&o, &opt) => {
                    let unit = match opt.as_str() { "EX" => "EX", "PX" => "PX", "EXAT" => "EXAT", _ => "PXAT" };
                    o.expire = Some((unit, next.expect("checked").clone()));
                    i += 1;
                }
                _ => return Err(syntax_error()),
            }
            i += 1;
        }
        Ok(o)
    }

    /// The expiry as an absolute time, validated like Redis's
    /// `getExpireMillisecondsOrReply`.
    pub(crate) fn expiry(&self, now_ms: u64) -> Result<Option<pb::set::Expiry>, Frame> {
        self.expiry_for("set", now_ms)
    }

    /// [`Self::expiry`] for command `name` (the one its error names).
    fn expiry_for(&self, name: &str, now_ms: u64) -> Result<Option<pb::set::Expiry>, Frame> {
        if self.keepttl {
            return Ok(Some(pb::set::Expiry::KeepTtl(true)));
        }
        let Some((unit, raw)) = &self.expire else { return Ok(None) };
        let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
        let n = int_arg(raw)?;
        let seconds = matches!(*unit, "EX" | "EXAT");
        if n <= 0 || (seconds && n > i64::MAX / 1000) {
            return Err(invalid());
        }
        let mut ms = if seconds { n * 1000 } else { n };
        if matches!(*unit, "EX" | "PX") {
            ms = ms.checked_add(now_ms as i64).ok_or_else(invalid)?;
        }
        Ok(Some(pb::set::Expiry::ExpireAtMs(ms as u64)))
    }
}

pub fn mget(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::per_key(&a[1..], get_kind(false), Shape::Values))
}

/// MSETNX: all keys or none, in one atomic node operation, so the keys
/// must share a hash slot (Redis Cluster's rule).
pub fn msetnx(a: &[Bytes]) -> Result<Planned, Frame> {
    if a.len().is_multiple_of(2) {
        return Err(wrong_arity("msetnx"));
    }
    super::keys::one_slot(a[1..].iter().step_by(2))?;
    let keys = a[1..].chunks(2).map(|kv| kv[0].clone()).collect();
    let values = a[1..].chunks(2).map(|kv| kv[1].clone()).collect();
    Ok(Planned::one(&a[1], Kind::MsetNx(pb::MsetNx { keys, values }), Shape::Integer))
}

/// MSET across partitions is applied per key, not atomically as a whole.
pub fn mset(a: &[Bytes]) -> Result<Planned, Frame> {
    if a.len().is_multiple_of(2) {
        return Err(wrong_arity("mset"));
    }
    let ops = a[1..]
        .chunks(2)
        .map(|kv| KeyOp::new(kv[0].clone(), Kind::Set(pb::Set { value: kv[1].clone(), expiry: None, condition: 0, get: false })))
        .collect();
    Ok(Planned { ops, shape: Shape::Ok })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::not_integer;

    fn parse(words: &str) -> Result<SetOptions, Frame> {
        let args: Vec<Bytes> = words.split_whitespace().map(|w| Bytes::from(w.to_string())).collect();
        SetOptions::parse(&args)
    }

    #[test]
    fn set_option_conflicts_follow_redis() {
        assert_eq!(parse("NX XX"), Err(syntax_error()));
        assert_eq!(parse("EX 1 PX 2"), Err(syntax_error()));
        assert_eq!(parse("KEEPTTL EX 1"), Err(syntax_error()));
        assert_eq!(parse("EX"), Err(syntax_error()));
        assert!(parse("NX GET EX 1").is_ok());
        assert!(parse("EX 1 EX 2").is_ok());
        assert!(parse("nx nx").is_ok());
    }

    #[test]
    fn set_expiry_validation() {
        let invalid = Frame::error("ERR invalid expire time in 'set' command");
        assert_eq!(parse("EX 0").unwrap().expiry(1000), Err(invalid.clone()));
        assert_eq!(parse("PX -5").unwrap().expiry(1000), Err(invalid.clone()));
        assert_eq!(parse("EX 9223372036854775").unwrap().expiry(1000), Err(invalid));
        assert_eq!(parse("EX abc").unwrap().expiry(1000), Err(not_integer()));
        assert_eq!(parse("EX 2").unwrap().expiry(1000), Ok(Some(pb::set::Expiry::ExpireAtMs(3000))));
        assert_eq!(parse("PXAT 5").unwrap().expiry(1000), Ok(Some(pb::set::Expiry::ExpireAtMs(5))));
        assert_eq!(parse("KEEPTTL").unwrap().expiry(1000), Ok(Some(pb::set::Expiry::KeepTtl(true))));
    }

    #[test]
    fn getrange_cuts_like_redis() {
        let cut = |len, start, end| range(len, start, end);
        assert_eq!(cut(10, 0, 3), 0..4);
        assert_eq!(cut(10, -3, -1), 7..10);
        assert_eq!(cut(10, 0, -1), 0..10);
        assert_eq!(cut(10, 5, 100), 5..10);
        assert_eq!(cut(10, -100, 2), 0..3);
        assert_eq!(cut(10, 4, 2), 0..0, "start past end");
        assert_eq!(cut(10, -1, -5), 0..0, "both negative, start past end");
        assert_eq!(cut(10, 10, 20), 0..0, "start past the value");
        assert_eq!(cut(10, -100, -50), 0..1, "both before the start: the first byte, as Redis");
        assert_eq!(cut(0, 0, -1), 0..0);
        assert_eq!(cut(10, i64::MIN, i64::MAX), 0..10);
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn setex_checks_its_expiry_under_its_own_name() {
        assert_eq!(setex("setex", &args(&["SETEX", "k", "0", "v"])).unwrap_err(), Frame::error("ERR invalid expire time in 'setex' command"));
        assert_eq!(setex("psetex", &args(&["PSETEX", "k", "-1", "v"])).unwrap_err(), Frame::error("ERR invalid expire time in 'psetex' command"));
        assert_eq!(setex("setex", &args(&["SETEX", "k", "x", "v"])).unwrap_err(), not_integer());
        let planned = setex("psetex", &args(&["PSETEX", "k", "5000", "v"])).unwrap();
        let Kind::Set(set) = &planned.ops[0].kind else { panic!("a SET") };
        let Some(pb::set::Expiry::ExpireAtMs(at)) = set.expiry else { panic!("an expiry") };
        assert!(at.abs_diff(unix_ms() + 5000) < 1000 && &set.value[..] == b"v", "{set:?}");
    }
}
