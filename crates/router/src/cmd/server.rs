//! Connection and server commands: PING ECHO HELLO AUTH COMMAND CLIENT INFO
//! SELECT CONFIG.

use super::{SPECS, Spec, c_str, int_arg, syntax_error, wrong_arity};
use crate::{Router, Session};
use bytes::Bytes;
use evenkeel_resp::{Frame, Protocol};

/// The Redis version evenkeel's replies are modelled on.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

pub async fn run(r: &Router, s: &mut Session, name: &str, a: &[Bytes]) -> Frame {
    match name {
        "ping" => ping(a),
        "echo" => Frame::Bulk(a[1].clone()),
        "hello" => hello(r, s, a),
        "auth" => auth(r, s, a),
        "command" => command(a),
        "client" => client(r, s, a).await,
        "info" => info(r, a).await,
        "select" => select(a),
        "swapdb" => swapdb(a),
        "move" => move_key(a),
        "lastsave" => Frame::Integer(evenkeel_types::unix_ms() as i64 / 1000),
        "migrate" => Frame::error("ERR MIGRATE is not supported: a router does not open connections to other servers. DUMP each key here and RESTORE it there (MIGRATE from a Redis into evenkeel works: its RESTOREs are served)"),
        "save" | "bgsave" | "bgrewriteaof" => Frame::error("ERR evenkeel writes every change to disk as it is acknowledged (see --durability): there is no snapshot or append-only file to save or rewrite"),
        // A standalone Redis's answer: clients see one Redis, whatever the
        // partitions behind it (INFO cluster: cluster_enabled:0).
        "readonly" | "readwrite" | "asking" => cluster_disabled(),
        "cluster" if CLUSTER_SUBCOMMANDS.contains(&upper(&a[1]).as_str()) => cluster_disabled(),
        "cluster" => unknown_subcommand(&a[1], "CLUSTER"),
        "latency" => latency(a),
        "config" => config(r, a).await,
        "slowlog" => slowlog(r, a),
        "time" => time(),
        "wait" => wait(a),
        "pfselftest" => super::hll::pfselftest(),
        // A primary with no replicas: evenkeel replicates by moving
        // partitions, not by Redis replication.
        "role" => Frame::Array(vec![Frame::bulk("master"), Frame::Integer(0), Frame::Array(vec![])]),
        other => unreachable!("command {other} has a spec but no handler"),
    }
}

/// TIME: the router's clock, seconds and microseconds.
pub(crate) fn time() -> Frame {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Frame::Array(vec![Frame::Bulk(now.as_secs().to_string().into()), Frame::Bulk(now.subsec_micros().to_string().into())])
}

fn ping(a: &[Bytes]) -> Frame {
    match a.len() {
        1 => Frame::Simple("PONG".into()),
        2 => Frame::Bulk(a[1].clone()),
        _ => wrong_arity("ping"),
    }
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Logs the session in as `user` (`default` if none) if `pass` is one of
/// its passwords and it is on; else WRONGPASS, logged in ACL LOG as Redis
/// logs it.
fn log_in(r: &Router, s: &mut Session, user: Option<&Bytes>, pass: &Bytes) -> Result<(), Frame> {
    let name = user.map_or_else(|| "default".to_string(), |u| String::from_utf8_lossy(u).into_owned());
    match r.acl.user(&name) {
        Some(u) if u.accepts(pass) => {
            s.client.set_user(&u.name);
            s.user = u;
            s.authenticated = true;
            Ok(())
        }
        _ => {
            r.acl.refused("auth", "toplevel", Bytes::from_static(b"AUTH"), &name, s.client.line().trim_end().to_string());
            Err(Frame::error(WRONGPASS))
        }
    }
}

fn auth(r: &Router, s: &mut Session, a: &[Bytes]) -> Frame {
    let (user, pass) = match a.len() {
        2 => (None, &a[1]),
        3 => (Some(&a[1]), &a[2]),
        _ => return syntax_error(),
    };
    if user.is_none() && r.acl.default_user().nopass {
        return Frame::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    match log_in(r, s, user, pass) {
        Ok(()) => Frame::ok(),
        Err(e) => e,
    }
}

/// HELLO, checked in Redis 7.0's order: version, options (AUTH applied as
/// it is met), authentication, client name. Only RESP2 is spoken, so a valid
/// request for version 3 gets NOPROTO at the point where Redis would switch
/// protocols, before the name is applied.
fn hello(r: &Router, s: &mut Session, a: &[Bytes]) -> Frame {
    let version = match a.get(1).map(|v| int_arg(v)) {
        None => None,
        Some(Ok(2)) => Some(Protocol::Resp2),
        Some(Ok(3)) => Some(Protocol::Resp3),
        Some(Ok(_)) => return Frame::error("NOPROTO unsupported protocol version"),
        Some(Err(_)) => return Frame::error("ERR Protocol version is not an integer or out of range"),
    };
    let name = match hello_options(r, s, a) {
        Ok(name) => name,
        Err(e) => return e,
    };
    if s.auth_required() {
        return Frame::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(Err(e)) = name.as_ref().map(|n| valid_name(n)) {
        return e;
    }
    if let Some(n) = name {
        s.client.set_name((!n.is_empty()).then_some(n));
    }
    // Without a version the connection keeps its protocol, as in Redis.
    if let Some(protocol) = version {
        s.protocol = protocol;
        s.client.set_protocol(protocol);
        // A RESP3 connection takes pushes (CLIENT TRACKING's
        // invalidations, as a REDIRECT target too) from now on.
        if protocol == Protocol::Resp3 {
            super::pubsub::subscriber(r, s);
        }
        if let Some(sub) = &s.subscriber {
            sub.set_protocol(protocol);
        }
    }
    hello_reply(s)
}

/// Parses HELLO's options after the version; AUTH takes effect at once, as
/// in Redis. Returns the requested client name (the last SETNAME wins).
fn hello_options(r: &Router, s: &mut Session, a: &[Bytes]) -> Result<Option<Bytes>, Frame> {
    let (mut i, mut name) = (2, None);
    while i < a.len() {
        match (upper(&a[i]).as_str(), a.len() - i - 1) {
            ("AUTH", n) if n >= 2 => {
                log_in(r, s, Some(&a[i + 1]), &a[i + 2])?;
                i += 3;
            }
            ("SETNAME", n) if n >= 1 => {
                name = Some(a[i + 1].clone());
                i += 2;
            }
            _ => return Err(Frame::error(format!("ERR Syntax error in HELLO option '{}'", c_str(&a[i], usize::MAX)))),
        }
    }
    Ok(name)
}

fn hello_reply(s: &Session) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("redis")),
        (Frame::bulk("version"), Frame::bulk(REDIS_COMPAT_VERSION)),
        (Frame::bulk("proto"), Frame::Integer(s.protocol.version())),
        (Frame::bulk("id"), Frame::Integer(s.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(vec![])),
    ])
}

fn command_info(spec: &Spec) -> Frame {
    Frame::Array(vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity as i64),
        // Flags, ACL categories and tips are sets in RESP3.
        Frame::Set(spec.flags.iter().map(|f| Frame::Simple(f.to_string())).collect()),
        Frame::Integer(spec.first_key as i64),
        Frame::Integer(spec.last_key as i64),
        Frame::Integer(spec.step as i64),
        Frame::Set(super::categories::of(spec.name).iter().map(|c| Frame::Simple(format!("@{c}"))).collect()),
        Frame::Set(vec![]),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
    ])
}

fn command(a: &[Bytes]) -> Frame {
    if a.len() == 1 {
        return Frame::Array(SPECS.iter().map(command_info).collect());
    }
    match upper(&a[1]).as_str() {
        "COUNT" if a.len() == 2 => Frame::Integer(SPECS.len() as i64),
        "DOCS" => Frame::Map(vec![]),
        "INFO" => Frame::Array(
            a[2..]
                .iter()
                .map(|n| super::find(&String::from_utf8_lossy(n).to_ascii_lowercase()).map_or(Frame::Null, command_info))
                .collect(),
        ),
        "COUNT" => wrong_arity("command|count"),
        "LIST" => command_list(&a[2..]),
        "GETKEYS" if a.len() >= 4 => command_getkeys(&a[2..], false),
        "GETKEYS" => wrong_arity("command|getkeys"),
        "GETKEYSANDFLAGS" if a.len() >= 4 => command_getkeys(&a[2..], true),
        "GETKEYSANDFLAGS" => wrong_arity("command|getkeysandflags"),
        "HELP" if a.len() == 2 => Frame::Array(COMMAND_HELP.iter().map(|l| Frame::simple(*l)).collect()),
        "HELP" => wrong_arity("command|help"),
        _ => unknown_subcommand(&a[1], "COMMAND"),
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]:
/// the names of the commands served, parsed as Redis 7.0 parses it (one
/// FILTERBY, the last three arguments). There are no modules, so a module
/// filter lists nothing. A category lists, as Redis does, subcommands too
/// (`client|list`): every one Redis has of a container served here, as
/// ACL rules name them; an unknown category lists nothing.
fn command_list(opts: &[Bytes]) -> Frame {
    let mut filter: Option<(String, &[u8])> = None;
    let mut i = 0;
    while i < opts.len() {
        if !(upper(&opts[i]) == "FILTERBY" && opts.len() - i - 1 == 2) {
            return Frame::error("ERR syntax error");
        }
        let kind = upper(&opts[i + 1]);
        if !matches!(kind.as_str(), "MODULE" | "PATTERN" | "ACLCAT") {
            return Frame::error("ERR syntax error");
        }
        filter = Some((kind, &opts[i + 2][..]));
        i += 3;
    }
    // Subcommands are listed too (`client|list`), as Redis 7.0 lists them;
    // a pattern matches without regard to case (names are lowercase).
    let every = || crate::acl::every_command().map(|(name, sub)| crate::acl::full_name(name, sub));
    let names = match filter {
        None => every().collect(),
        Some((kind, _)) if kind == "MODULE" => vec![],
        Some((kind, p)) if kind == "PATTERN" => every().filter(|n| evenkeel_types::glob::glob_match(&p.to_ascii_lowercase(), n.as_bytes())).collect(),
        Some((_, category)) => in_category(category),
    };
    Frame::Array(names.into_iter().map(Frame::bulk).collect())
}

/// The commands and subcommands in an ACL category, named as Redis's
/// `strcasecmp` compares (up to a NUL byte, without the '@').
/// (COMMAND LIST FILTERBY ACLCAT and ACL CAT: containers such as CLIENT
/// are listed when their own categories match, as in Redis.)
pub(crate) fn in_category(name: &[u8]) -> Vec<String> {
    use super::categories;
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
    let Some(category) = categories::CATEGORIES.iter().find(|c| c.as_bytes().eq_ignore_ascii_case(name)) else { return vec![] };
    crate::acl::every_command().map(|(name, sub)| crate::acl::full_name(name, sub)).filter(|n| categories::of(n).contains(category)).collect()
}

/// COMMAND GETKEYS command args...: the key arguments themselves, as
/// Redis lists them, or its error when there are none to list. With
/// `flags` (GETKEYSANDFLAGS), each key is `[key, flags]`, the flags a set
/// of simple strings (`RW`, `access`, ...; empty where Redis's key-finding
/// function gives none).
fn command_getkeys(args: &[Bytes], flags: bool) -> Frame {
    let Some(spec) = super::find(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase()) else {
        return Frame::error(super::getkeys::GetKeysError::UnknownCommand.reply());
    };
    match super::getkeys::keys_and_flags(spec, args) {
        Ok(keys) => Frame::Array(
            keys.into_iter()
                .map(|(i, f)| {
                    let key = Frame::Bulk(args[i].clone());
                    if !flags {
                        return key;
                    }
                    Frame::Array(vec![key, Frame::Set(f.names().into_iter().map(Frame::simple).collect())])
                })
                .collect(),
        ),
        Err(e) => Frame::error(e.reply()),
    }
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands this server serves.",
    "COUNT",
    "    Return the number of commands this server serves.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return the names of the commands this server serves.",
    "INFO [<command-name> ...]",
    "    Return details about the given commands.",
    "DOCS [<command-name> ...]",
    "    Return documentation details (none are kept).",
    "GETKEYS <full-command>",
    "    Return the keys from a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full command.",
    "HELP",
    "    Prints this help.",
];

/// Redis prints the subcommand with `%.128s`.
fn unknown_subcommand(sub: &[u8], cmd: &str) -> Frame {
    Frame::error(format!("ERR unknown subcommand '{}'. Try {cmd} HELP.", c_str(sub, 128)))
}

fn valid_name(name: &[u8]) -> Result<(), Frame> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Frame::error("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

fn set_name(s: &mut Session, name: Bytes) -> Result<(), Frame> {
    valid_name(&name)?;
    s.client.set_name((!name.is_empty()).then_some(name));
    Ok(())
}

async fn client(r: &Router, s: &mut Session, a: &[Bytes]) -> Frame {
    let sub = upper(&a[1]);
    match (sub.as_str(), a.len()) {
        ("LIST", _) => match list_filter(&a[2..]) {
            Ok(filter) => Frame::verbatim(r.registry.list(&filter)),
            Err(e) => e,
        },
        ("INFO", 2) => Frame::verbatim(s.client.line()),
        ("INFO", _) => wrong_arity("client|info"),
        // The old form: one address, OK or an error.
        ("KILL", 3) => {
            let filter = crate::clients::Filter { addr: Some(String::from_utf8_lossy(&a[2]).into_owned()), ..Default::default() };
            if r.registry.kill(&filter) > 0 { Frame::ok() } else { Frame::error("ERR No such client") }
        }
        ("KILL", _) => match kill_filter(r, s, &a[2..]) {
            Ok(filter) => Frame::Integer(r.registry.kill(&filter) as i64),
            Err(e) => e,
        },
        ("SETNAME", 3) => set_name(s, a[2].clone()).map_or_else(|e| e, |()| Frame::ok()),
        ("SETNAME", _) => wrong_arity("client|setname"),
        ("GETNAME", 2) => s.client.name().map_or(Frame::Null, Frame::Bulk),
        ("GETNAME", _) => wrong_arity("client|getname"),
        ("ID", 2) => Frame::Integer(s.id as i64),
        ("ID", _) => wrong_arity("client|id"),
        // Redis 7.2's; 7.0 lacks it, but 7.2-era clients send it on connect.
        ("SETINFO", 4) => Frame::ok(),
        ("SETINFO", _) => wrong_arity("client|setinfo"),
        ("UNBLOCK", 3 | 4) => client_unblock(r, a).await,
        ("UNBLOCK", _) => wrong_arity("client|unblock"),
        ("REPLY", 3) => match upper(&a[2]).as_str() {
            "ON" => {
                s.replies = crate::session::Replies::On;
                Frame::ok()
            }
            // Their own reply is not sent either.
            "OFF" => {
                s.replies = crate::session::Replies::Off;
                Frame::ok()
            }
            "SKIP" => {
                s.replies = crate::session::Replies::Skip(2);
                Frame::ok()
            }
            _ => syntax_error(),
        },
        ("REPLY", _) => wrong_arity("client|reply"),
        // Nothing is evicted here, so every client is as good as NO-EVICT.
        ("NO-EVICT", 3) if a[2].eq_ignore_ascii_case(b"on") || a[2].eq_ignore_ascii_case(b"off") => Frame::ok(),
        ("NO-EVICT", 3) => syntax_error(),
        ("NO-EVICT", _) => wrong_arity("client|no-evict"),
        ("GETREDIR", 2) => Frame::Integer(crate::tracking::redirect_id(s.tracking.as_ref())),
        ("GETREDIR", _) => wrong_arity("client|getredir"),
        ("TRACKINGINFO", 2) => crate::tracking::info(s.tracking.as_ref(), s.caching_now),
        ("TRACKINGINFO", _) => wrong_arity("client|trackinginfo"),
        ("TRACKING", n) if n >= 3 => match crate::tracking::parse(&a[2..], s.tracking.as_ref(), |id| r.registry.exists(id)) {
            Ok(Some(mode)) => {
                let target = mode.redirect.unwrap_or(s.id);
                let sub = super::pubsub::subscriber(r, s);
                r.pubsub.track(sub, target, &mode).await;
                s.tracking = Some(mode);
                Frame::ok()
            }
            Ok(None) => {
                r.pubsub.untrack(s.id);
                s.tracking = None;
                Frame::ok()
            }
            Err(e) => e,
        },
        ("TRACKING", _) => wrong_arity("client|tracking"),
        ("CACHING", 3) => match crate::tracking::caching(s, &a[2..]) {
            Ok(flag) => {
                s.caching = Some(flag);
                Frame::ok()
            }
            Err(e) => e,
        },
        ("CACHING", _) => wrong_arity("client|caching"),
        // A pause would hold this router's clients only, not the cluster's.
        ("PAUSE" | "UNPAUSE", _) => Frame::error("ERR CLIENT PAUSE is not supported: evenkeel moves data without pausing clients, and a pause would hold one router's clients only"),
        ("HELP", 2) => Frame::Array(CLIENT_HELP.iter().map(|l| Frame::simple(*l)).collect()),
        ("HELP", _) => wrong_arity("client|help"),
        _ => unknown_subcommand(&a[1], "CLIENT"),
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if the client was in a blocking
/// command, which then answers as if timed out (or with an error) once its
/// current wait on the node ends.
async fn client_unblock(r: &Router, a: &[Bytes]) -> Frame {
    let id = match int_arg(&a[2]) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let how = match a.get(3).map(|m| upper(m)).as_deref() {
        None | Some("TIMEOUT") => crate::clients::Unblock::Timeout,
        Some("ERROR") => crate::clients::Unblock::Error,
        Some(_) => return Frame::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    Frame::Integer(super::blocking::unblock(r, id as u64, how).await as i64)
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// WAIT numreplicas timeout: no replica acknowledges anything (a node's
/// writes are durable on the node itself, see `--durability`), so 0, at
/// once, as a Redis without replicas answers.
fn wait(a: &[Bytes]) -> Frame {
    if let Err(e) = int_arg(&a[1]) {
        return e;
    }
    match evenkeel_types::int::parse_i64(&a[2]) {
        None => Frame::error("ERR timeout is not an integer or out of range"),
        Some(t) if t < 0 => Frame::error("ERR timeout is negative"),
        Some(_) => Frame::Integer(0),
    }
}

/// CLIENT LIST's filters: TYPE (`normal` or `pubsub` clients here) and ID.
fn list_filter(args: &[Bytes]) -> Result<crate::clients::Filter, Frame> {
    let mut filter = crate::clients::Filter::default();
    match args {
        [] => {}
        [t, ty] if t.eq_ignore_ascii_case(b"type") => client_type(&mut filter, ty)?,
        [i, ids @ ..] if i.eq_ignore_ascii_case(b"id") && !ids.is_empty() => {
            let ids = ids.iter().map(|id| int_arg(id).ok().filter(|n| *n > 0).map(|n| n as u64).ok_or_else(|| Frame::error("ERR Invalid client ID")));
            filter.ids = Some(ids.collect::<Result<_, _>>()?);
        }
        _ => return Err(syntax_error()),
    }
    Ok(filter)
}

/// Narrows `filter` to a client TYPE: `normal` and `pubsub` clients (those
/// subscribed to anything) are this router's, none is a master or a
/// replica; an error for a type Redis does not know.
fn client_type(filter: &mut crate::clients::Filter, ty: &[u8]) -> Result<(), Frame> {
    match upper(ty).as_str() {
        "NORMAL" => filter.pubsub = Some(false),
        "PUBSUB" => filter.pubsub = Some(true),
        "MASTER" | "REPLICA" | "SLAVE" => filter.none = true,
        _ => return Err(Frame::error(format!("ERR Unknown client type '{}'", c_str(ty, 128)))),
    }
    Ok(())
}

/// CLIENT KILL's filters, in pairs: ID, TYPE, USER, ADDR, LADDR, SKIPME
/// (yes by default: the client asking is spared).
fn kill_filter(r: &Router, s: &Session, args: &[Bytes]) -> Result<crate::clients::Filter, Frame> {
    let mut filter = crate::clients::Filter { skip: Some(s.id), ..Default::default() };
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(syntax_error());
    }
    for pair in args.chunks(2) {
        let value = &pair[1];
        match upper(&pair[0]).as_str() {
            "ID" => {
                let id = int_arg(value).ok().filter(|n| *n > 0).ok_or_else(|| Frame::error("ERR client-id should be greater than 0"))?;
                filter.ids = Some(vec![id as u64]);
            }
            "TYPE" => client_type(&mut filter, value)?,
            "USER" => match r.acl.user(&String::from_utf8_lossy(value)) {
                Some(u) => filter.user = Some(u.name.clone()),
                None => return Err(Frame::error(format!("ERR No such user '{}'", c_str(value, 128)))),
            },
            "ADDR" => filter.addr = Some(String::from_utf8_lossy(value).into_owned()),
            "LADDR" => filter.laddr = Some(String::from_utf8_lossy(value).into_owned()),
            "SKIPME" if value.eq_ignore_ascii_case(b"yes") => filter.skip = Some(s.id),
            "SKIPME" if value.eq_ignore_ascii_case(b"no") => filter.skip = None,
            _ => return Err(syntax_error()),
        }
    }
    Ok(filter)
}

/// Redis reads the index as a C `int` before checking it against the
/// number of databases (one here).
/// RESET: the connection as it was when it opened: no transaction, no
/// watched keys, no name, and the user `default`, authenticated only if it
/// needs no password.
pub fn reset(r: &Router, s: &mut Session) -> Frame {
    s.multi = None;
    s.watched = Default::default();
    s.client.set_name(None);
    s.user = r.acl.default_user();
    s.authenticated = s.user.needs_no_password();
    s.client.set_user(&s.user.name);
    // Back to RESP2, as in Redis (RESET's own reply is written in RESP2),
    // and tracking off (the subscriber, dropped before, took its keys).
    s.protocol = Protocol::Resp2;
    s.client.set_protocol(Protocol::Resp2);
    (s.tracking, s.caching) = (None, None);
    Frame::simple("RESET")
}

fn cluster_disabled() -> Frame {
    Frame::error("ERR This instance has cluster support disabled")
}

/// Redis 7.0's CLUSTER subcommands, which a Redis without cluster support
/// refuses (others are unknown).
const CLUSTER_SUBCOMMANDS: &[&str] = &[
    "ADDSLOTS", "ADDSLOTSRANGE", "BUMPEPOCH", "COUNT-FAILURE-REPORTS", "COUNTKEYSINSLOT", "DELSLOTS", "DELSLOTSRANGE", "FAILOVER", "FLUSHSLOTS", "FORGET",
    "GETKEYSINSLOT", "HELP", "INFO", "KEYSLOT", "LINKS", "MEET", "MYID", "NODES", "REPLICAS", "REPLICATE", "RESET", "SAVECONFIG", "SET-CONFIG-EPOCH",
    "SETSLOT", "SHARDS", "SLAVES", "SLOTS",
];

/// SWAPDB: one database, so only 0 with itself.
fn swapdb(a: &[Bytes]) -> Frame {
    let index = |raw: &Bytes, which: &str| evenkeel_types::int::parse_i64(raw).filter(|n| i32::try_from(*n).is_ok()).ok_or_else(|| Frame::error(format!("ERR invalid {which} DB index")));
    match (index(&a[1], "first"), index(&a[2], "second")) {
        (Err(e), _) | (_, Err(e)) => e,
        (Ok(0), Ok(0)) => Frame::ok(),
        _ => Frame::error("ERR DB index is out of range"),
    }
}

/// MOVE key db: one database, so never anywhere.
fn move_key(a: &[Bytes]) -> Frame {
    match int_arg(&a[2]).map(i32::try_from) {
        Ok(Ok(0)) => Frame::error("ERR source and destination objects are the same"),
        Ok(Ok(_)) => Frame::error("ERR DB index is out of range"),
        Ok(Err(_)) => Frame::error("ERR value is out of range, value must between -2147483648 and 2147483647"),
        Err(e) => e,
    }
}

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

/// LATENCY: Redis's latency monitor, which evenkeel does not keep (as a
/// Redis with `latency-monitor-threshold 0`, its default): no events, no
/// samples. Per-command latency is in INFO commandstats, SLOWLOG and
/// `/metrics`.
fn latency(a: &[Bytes]) -> Frame {
    let sub = upper(&a[1]);
    match (sub.as_str(), a.len()) {
        ("LATEST", 2) | ("HISTORY", 3) => Frame::Array(Vec::new()),
        ("RESET", _) => Frame::Integer(0),
        ("GRAPH", 3) => Frame::error(format!("ERR No samples available for event '{}'", c_str(&a[2], 128))),
        ("DOCTOR", 2) => Frame::verbatim("evenkeel keeps no latency monitor samples. Per-command latency is in INFO commandstats, SLOWLOG and the /metrics histograms (evenkeel_router_command_seconds); `evenkeel throttle show` reports the p99 the migration throttle watches."),
        ("HELP", 2) => Frame::Array(LATENCY_HELP.iter().map(|l| Frame::simple(*l)).collect()),
        ("HISTOGRAM", _) => Frame::error("ERR LATENCY HISTOGRAM is not kept by evenkeel: INFO commandstats has each command's calls and mean time, /metrics its latency histogram (evenkeel_router_command_seconds)"),
        ("LATEST" | "HISTORY" | "GRAPH" | "DOCTOR" | "HELP", _) => wrong_arity(&format!("latency|{}", sub.to_ascii_lowercase())),
        _ => unknown_subcommand(&a[1], "LATENCY"),
    }
}

fn select(a: &[Bytes]) -> Frame {
    match int_arg(&a[1]).map(i32::try_from) {
        Ok(Ok(0)) => Frame::ok(),
        Ok(Ok(_)) => Frame::error("ERR DB index is out of range"),
        Ok(Err(_)) => Frame::error("ERR value is out of range, value must between -2147483648 and 2147483647"),
        Err(e) => e,
    }
}

async fn config(r: &Router, a: &[Bytes]) -> Frame {
    if a[1].eq_ignore_ascii_case(b"SET") {
        return config_set(r, a).await;
    }
    if !a[1].eq_ignore_ascii_case(b"GET") {
        return match upper(&a[1]).as_str() {
            "RESETSTAT" | "REWRITE" => Frame::error("ERR evenkeel is configured through its configuration file, not CONFIG"),
            _ => unknown_subcommand(&a[1], "CONFIG"),
        };
    }
    if a.len() < 3 {
        return wrong_arity("config|get");
    }
    let mut out = Vec::new();
    for &name in CONFIG_NAMES {
        // An old name answers only when asked by name, as in Redis.
        let matches = |p: &Bytes| if ALIASES.contains(&name) { p.eq_ignore_ascii_case(name.as_bytes()) } else { crate::glob::glob_match(&p.to_ascii_lowercase(), name.as_bytes()) };
        if a[2..].iter().any(matches) {
            let value = match config_value(r, name).await {
                Ok(v) => v,
                Err(e) => return e,
            };
            out.push((Frame::bulk(name), Frame::bulk(value)));
        }
    }
    Frame::Map(out)
}

/// The settings CONFIG GET answers, in its order; CONFIG SET changes
/// `notify-keyspace-events` and the script time limit.
const CONFIG_NAMES: &[&str] = &[
    "appendonly",
    "save",
    "databases",
    "maxclients",
    "proto-max-bulk-len",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "maxmemory",
    "maxmemory-policy",
    "timeout",
    "notify-keyspace-events",
    "busy-reply-threshold",
    "lua-time-limit",
    "hash-max-listpack-entries",
    "zset-max-listpack-entries",
    "set-max-intset-entries",
    "hll-sparse-max-bytes",
    "stream-node-max-entries",
    "stream-node-max-bytes",
];

/// Old names of settings in [`CONFIG_NAMES`].
const ALIASES: &[&str] = &["lua-time-limit"];

/// One of [`CONFIG_NAMES`]' values. What evenkeel does, in Redis's terms:
/// nothing is evicted, idle clients are kept; the encodings OBJECT
/// reports and streams' nodes follow Redis's defaults (a stream node has
/// no byte limit here).
async fn config_value(r: &Router, name: &str) -> Result<String, Frame> {
    Ok(match name {
        "appendonly" => "no".into(),
        "databases" => "1".into(),
        "maxclients" => r.config.max_clients.to_string(),
        "proto-max-bulk-len" => r.config.limits.max_bulk_len.to_string(),
        "slowlog-log-slower-than" => r.slowlog.slower_than_us().to_string(),
        "slowlog-max-len" => r.slowlog.max_len().to_string(),
        "maxmemory" | "timeout" | "stream-node-max-bytes" => "0".into(),
        "maxmemory-policy" => "noeviction".into(),
        "notify-keyspace-events" => notify_flags(r).await?.render(),
        "busy-reply-threshold" | "lua-time-limit" => script_time_limit(r).await?.to_string(),
        "hash-max-listpack-entries" => evenkeel_types::encoding::HASH_LISTPACK_ENTRIES.to_string(),
        "zset-max-listpack-entries" => evenkeel_types::encoding::ZSET_LISTPACK_ENTRIES.to_string(),
        "set-max-intset-entries" => evenkeel_types::encoding::INTSET_ENTRIES.to_string(),
        "hll-sparse-max-bytes" => evenkeel_types::hll::SPARSE_MAX_BYTES.to_string(),
        "stream-node-max-entries" => evenkeel_types::stream::NODE_MAX_ENTRIES.to_string(),
        // `save`: no snapshots are taken.
        _ => String::new(),
    })
}

/// The cluster's keyspace-notification flags, as stored by CONFIG SET.
async fn notify_flags(r: &Router) -> Result<evenkeel_types::notify::Flags, Frame> {
    let stored = r.meta.get(evenkeel_types::keys::NOTIFY_KEYSPACE_EVENTS).await.map_err(|e| Frame::error(format!("ERR metadata store unavailable: {e}")))?;
    Ok(stored.and_then(|kv| evenkeel_types::notify::Flags::from_stored(&kv.value)).unwrap_or_default())
}

/// The cluster's script time limit in ms, as stored by CONFIG SET.
async fn script_time_limit(r: &Router) -> Result<u64, Frame> {
    let stored = r.meta.get(evenkeel_types::keys::SCRIPT_TIME_LIMIT).await.map_err(|e| Frame::error(format!("ERR metadata store unavailable: {e}")))?;
    let limit = evenkeel_script::time_limit_from_stored(stored.as_ref().map(|kv| &kv.value[..])).unwrap_or(evenkeel_script::Limits::default().time);
    Ok(limit.as_millis() as u64)
}

/// CONFIG SET: `notify-keyspace-events` and the script time limit
/// (`busy-reply-threshold`, or its old name `lua-time-limit`) change at
/// runtime, for the whole cluster: every node follows the value in the
/// metadata store. The rest comes from the configuration file.
async fn config_set(r: &Router, a: &[Bytes]) -> Frame {
    if a.len() < 4 || !a.len().is_multiple_of(2) {
        return wrong_arity("config|set");
    }
    let failed = |name: &str, why: &str| Frame::error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"));
    let (mut flags, mut time_limit) = (None, None);
    for pair in a[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        match name.as_str() {
            "notify-keyspace-events" if flags.is_some() => return failed(&name, "duplicate parameter"),
            "notify-keyspace-events" => match evenkeel_types::notify::Flags::parse(&pair[1]) {
                Some(f) => flags = Some(f),
                None => return failed(&name, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
            },
            // One setting under two names, which Redis lets a CONFIG SET
            // give twice.
            "busy-reply-threshold" | "lua-time-limit" => match int_arg(&pair[1]) {
                Ok(ms) if ms > 0 => time_limit = Some(ms as u64),
                Ok(ms) if ms < 0 => return failed(&name, "argument must be between 0 and 9223372036854775807 inclusive"),
                // Scripts are stopped at the limit here, so there is one.
                Ok(_) => return failed(&name, "argument must be at least 1 (ms): evenkeel stops a script that runs past it"),
                Err(_) => return failed(&name, "argument couldn't be parsed into an integer"),
            },
            _ if CONFIG_NAMES.contains(&name.as_str()) => return Frame::error(format!("ERR evenkeel is configured through its configuration file, not CONFIG ('{}' cannot be set at runtime)", c_str(&pair[0], 128))),
            _ => return Frame::error(format!("ERR Unknown option or number of arguments for CONFIG SET - '{}'", c_str(&pair[0], 128))),
        }
    }
    let writes = flags.map(|f| (evenkeel_types::keys::NOTIFY_KEYSPACE_EVENTS, f.stored())).into_iter().chain(time_limit.map(|ms| (evenkeel_types::keys::SCRIPT_TIME_LIMIT, ms.to_string().into_bytes())));
    for (key, value) in writes {
        if let Err(e) = r.meta.put(key, value, None).await {
            return Frame::error(format!("ERR metadata store unavailable: {e}"));
        }
    }
    Frame::ok()
}

/// SLOWLOG GET [count] | LEN | RESET.
fn slowlog(r: &Router, a: &[Bytes]) -> Frame {
    match (upper(&a[1]).as_str(), a.len()) {
        ("GET", 2) => r.slowlog.get(10),
        ("GET", 3) => match int_arg(&a[2]) {
            Ok(-1) => r.slowlog.get(usize::MAX),
            Ok(n) if n >= 0 => r.slowlog.get(n as usize),
            _ => Frame::error("ERR count should be greater than or equal to -1"),
        },
        ("LEN", 2) => Frame::Integer(r.slowlog.len() as i64),
        ("RESET", 2) => {
            r.slowlog.reset();
            Frame::ok()
        }
        ("GET", _) => Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.", String::from_utf8_lossy(&a[1]))),
        ("LEN", _) => wrong_arity("slowlog|len"),
        ("RESET", _) => wrong_arity("slowlog|reset"),
        _ => unknown_subcommand(&a[1], "SLOWLOG"),
    }
}

async fn info(r: &Router, a: &[Bytes]) -> Frame {
    let section = a.get(1).map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
    let want = |name: &str| section.as_deref().is_none_or(|s| s == name || s == "all" || s == "default" || s == "everything");
    // Counted once (a walk over the tracked keys), for both sections.
    let tracking = if want("clients") || want("stats") { r.pubsub.tracking_counts() } else { [0; 4] };
    let mut text = String::new();
    if want("server") {
        text += &format!(
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nevenkeel_version:{}\r\nredis_mode:standalone\r\nos:{}\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            r.started.elapsed().as_secs()
        );
    }
    if want("clients") {
        text += &format!("# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:{}\r\n\r\n", r.connected(), r.config.max_clients, r.blocked(), tracking[0]);
    }
    if want("stats") {
        let stats = r.stats.section(r.latency.last_second(evenkeel_types::unix_ms()).count, r.pubsub.local_counts(), tracking);
        // The section's last line, then its blank one.
        text += stats.strip_suffix("\r\n").unwrap_or(&stats);
        text += &r.acl.info_lines();
        text += "\r\n";
    }
    // Not in the default sections, as in Redis.
    if section.as_deref().is_some_and(|s| s == "commandstats" || s == "all" || s == "everything") {
        text += &r.stats.command_section();
    }
    if want("memory") {
        text += &memory_section(r.scripts.len());
    }
    if want("persistence") {
        // Writes are durable as they are acknowledged (see README,
        // durability); there are no snapshots or AOF to report.
        // LASTSAVE and rdb_last_save_time answer now for the same reason.
        text += &format!("# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\r\n", evenkeel_types::unix_ms() / 1000);
    }
    if want("replication") {
        text += &format!("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:{}\r\nmaster_repl_offset:0\r\n\r\n", r.replid);
    }
    if want("cpu") {
        text += &cpu_section();
    }
    if want("cluster") {
        let routes = r.dispatcher.routes.load();
        let partitions = routes.table.as_ref().map_or(0, |t| t.partitions.len());
        text += &format!("# Cluster\r\ncluster_enabled:0\r\nevenkeel_epoch:{}\r\nevenkeel_partitions:{partitions}\r\nevenkeel_nodes:{}\r\n\r\n", routes.epoch(), routes.nodes.len());
    }
    if want("keyspace")
        && let Frame::Integer(n) = super::keys::dbsize(r).await
    {
        text += "# Keyspace\r\n";
        if n > 0 {
            text += &format!("db0:keys={n},expires=0,avg_ttl=0\r\n");
        }
    }
    Frame::verbatim(text)
}

/// INFO memory: this process's resident memory as the kernel counts it
/// (with `evenkeel up`, nodes and coordinator included), its peak, the
/// machine's memory. Redis's `used_memory` is its allocator's count;
/// here it is the resident size, the nearest figure every process has.
/// `scripts`: this router's cached scripts.
fn memory_section(scripts: usize) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()).unwrap_or(0) * 1024;
    let (rss, peak) = (kib("VmRSS:"), kib("VmHWM:"));
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())).unwrap_or(0) * 1024;
    format!(
        "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\ntotal_system_memory:{total}\r\ntotal_system_memory_human:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nnumber_of_cached_scripts:{scripts}\r\n\r\n",
        human_bytes(rss),
        human_bytes(rss),
        human_bytes(peak),
        human_bytes(total)
    )
}

/// INFO cpu: this process's CPU seconds (`getrusage`), as Redis prints them.
fn cpu_section() -> String {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (sys, user) = if ok { (secs(usage.ru_stime), secs(usage.ru_utime)) } else { (0.0, 0.0) };
    format!("# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n\r\n")
}

/// Bytes as Redis's `bytesToHuman` prints them (`1.94M`).
fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n < 1024.0 => format!("{n}B"),
        n if n < 1024.0 * 1024.0 => format!("{:.2}K", n / 1024.0),
        n if n < 1024.0 * 1024.0 * 1024.0 => format!("{:.2}M", n / (1024.0 * 1024.0)),
        n if n < 1024.0 * 1024.0 * 1024.0 * 1024.0 => format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0)),
        n => format!("{:.2}T", n / (1024.0 * 1024.0 * 1024.0 * 1024.0)),
    }
}
