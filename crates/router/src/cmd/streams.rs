//! Stream commands: XADD XLEN XRANGE XREVRANGE XDEL XTRIM XREAD XGROUP
//! XREADGROUP XACK XPENDING XCLAIM XAUTOCLAIM XINFO XSETID.
//!
//! Unlike the other types' reads, which the router answers from a GET,
//! every stream command runs on the key's owner (`pb::Stream`, carrying
//! the command as sent): most change the stream (a read by a group moves
//! its position and pending entries), and the replies nest. The router
//! checks what Redis checks before touching a key: the command table's
//! arity, XGROUP's and XINFO's subcommands, XREAD's and XREADGROUP's
//! options, and that XREAD's keys share a hash slot (`CROSSSLOT`, as in
//! Redis Cluster). The owner does the rest, in Redis's order.
//!
//! XREAD and XREADGROUP with BLOCK are blocking commands
//! ([`super::blocking`]): the owner waits for a write to one of the
//! streams. Before the first wait, the router reads the last ID of each
//! stream XREAD names with `$`, so waits after the first still mean
//! "entries after the call began".

use super::plan::{Planned, Shape};
use super::wrong_arity;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::stream::command::{self, ReadArgs, Reply};

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

/// Whether `name` is a stream command.
pub fn is_stream(name: &str) -> bool {
    matches!(name, "xadd" | "xlen" | "xrange" | "xrevrange" | "xdel" | "xtrim" | "xread" | "xgroup" | "xreadgroup" | "xack" | "xpending" | "xclaim" | "xautoclaim" | "xinfo" | "xsetid")
}

/// XREAD or XREADGROUP with BLOCK (a blocking command then).
pub fn blocks(name: &str, a: &[Bytes]) -> bool {
    matches!(name, "xread" | "xreadgroup") && read_args(a).is_ok_and(|r| r.block_ms.is_some())
}

/// BLOCK's timeout: None waits forever (BLOCK 0).
pub fn timeout(a: &[Bytes]) -> Option<std::time::Duration> {
    read_args(a).ok().and_then(|r| r.block_ms).filter(|ms| *ms > 0).map(std::time::Duration::from_millis)
}

/// The stream command's op, or the error Redis answers before looking a
/// key up. `a` has the arity the command table asks for.
pub fn plan(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    if matches!(name, "xgroup" | "xinfo") {
        subcommand(name, a)?;
    }
    let keys = command::keys(a, evenkeel_types::unix_ms()).map_err(error_line)?;
    super::keys::one_slot(keys.iter())?;
    let op = pb::Stream { args: a.to_vec(), keys: keys.clone(), wait_ms: 0, blocked_since_us: 0 };
    Ok(Planned::one(&keys[0], Kind::Stream(op), Shape::Reply))
}

/// XGROUP's and XINFO's subcommand and its arity (Redis 7.0's table, as
/// `stream::command::check_arity` keeps it).
fn subcommand(name: &str, a: &[Bytes]) -> Result<(), Frame> {
    let full = match command::check_arity(a) {
        Ok(full) => full,
        Err(shown) if shown.contains('|') => return Err(wrong_arity(&shown)),
        Err(_) => return Err(Frame::error(format!("ERR unknown subcommand '{}'. Try {} HELP.", super::c_str(&a[1], 128), name.to_ascii_uppercase()))),
    };
    if full.ends_with("|help") {
        let help = if name == "xgroup" { XGROUP_HELP } else { XINFO_HELP };
        return Err(Frame::Array(help.iter().map(|l| Frame::Simple(l.to_string())).collect()));
    }
    Ok(())
}

/// XREAD BLOCK's arguments with each `$` replaced by `last_ids`' ID for
/// that key (what the stream held when the command began); a key it has
/// none for (another type: the owner answers WRONGTYPE) keeps its `$`.
pub fn pin_dollar_ids(a: &[Bytes], last_ids: &[(Bytes, Bytes)]) -> Vec<Bytes> {
    let mut args = a.to_vec();
    let Ok(r) = read_args(a) else { return args };
    for i in 0..r.count_streams {
        let (key, id) = (&a[r.first + i], &mut args[r.first + r.count_streams + i]);
        if &id[..] == b"$"
            && let Some((_, last)) = last_ids.iter().find(|(k, _)| k == key)
        {
            *id = last.clone();
        }
    }
    args
}

/// The keys XREAD names with `$`.
pub fn dollar_keys(a: &[Bytes]) -> Vec<Bytes> {
    let Ok(r) = read_args(a) else { return vec![] };
    if r.group.is_some() {
        return vec![];
    }
    (0..r.count_streams).filter(|i| &a[r.first + r.count_streams + i][..] == b"$").map(|i| a[r.first + i].clone()).collect()
}

/// XREAD's and XREADGROUP's options, read at the router's clock.
fn read_args(a: &[Bytes]) -> Result<ReadArgs, Reply> {
    ReadArgs::parse(a, evenkeel_types::unix_ms())
}

/// The error `command::keys` answers, as the client sees it.
fn error_line(r: Reply) -> Frame {
    match r {
        Reply::Error(line) => Frame::Error(line),
        other => unreachable!("keys fail with an error line, not {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn subcommands_are_checked_before_any_key() {
        assert_eq!(plan("xgroup", &args("XGROUP CREATE k g")).unwrap_err(), wrong_arity("xgroup|create"));
        assert_eq!(plan("xgroup", &args("XGROUP foo k g")).unwrap_err(), Frame::error("ERR unknown subcommand 'foo'. Try XGROUP HELP."));
        assert!(matches!(plan("xinfo", &args("XINFO HELP")).unwrap_err(), Frame::Array(lines) if lines.len() == XINFO_HELP.len()));
        let planned = plan("xinfo", &args("XINFO GROUPS k")).unwrap();
        assert_eq!(planned.ops[0].key, Bytes::from_static(b"k"));
    }

    #[test]
    fn xread_keys_share_a_slot_and_dollar_ids_are_pinned() {
        assert_eq!(plan("xread", &args("XREAD STREAMS a b 0 0")).unwrap_err(), super::super::keys::cross_slot());
        let planned = plan("xread", &args("XREAD COUNT 2 STREAMS {t}a {t}b {t}a 0 0 0")).unwrap();
        let Kind::Stream(op) = &planned.ops[0].kind else { panic!() };
        assert_eq!(op.keys, args("{t}a {t}b"), "each key once");
        let a = args("XREAD BLOCK 10 STREAMS {t}a {t}b $ $");
        assert!(blocks("xread", &a) && !blocks("xread", &args("XREAD STREAMS a 0")));
        assert_eq!(dollar_keys(&a), args("{t}a {t}b"));
        let pinned = pin_dollar_ids(&a, &[(Bytes::from_static(b"{t}b"), Bytes::from_static(b"5-1"))]);
        assert_eq!(pinned, args("XREAD BLOCK 10 STREAMS {t}a {t}b $ 5-1"));
    }
}
