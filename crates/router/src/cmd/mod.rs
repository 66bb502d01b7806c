//! Redis commands: parsing, execution, replies.
//!
//! [`execute`] looks the command up in [`SPECS`] (name, arity, flags, key
//! positions: the table `COMMAND` also reports), checks arity and
//! authentication, then hands the arguments to the command's function in
//! [`strings`], [`keys`] or [`server`]. Every function returns the exact
//! reply Redis 7 gives, errors included.
//!
//! Data commands are planned ([`plan`]): their functions turn arguments into
//! single-key ops and a reply [`plan::Shape`], without I/O. [`batchable`]
//! exposes that to the session, which runs the ops of consecutive pipelined
//! data commands together.

pub mod acl;
pub mod bits;
pub mod blocking;
pub mod categories;
mod collection;
pub mod dump;
pub mod functions;
pub mod geo;
pub mod getkeys;
pub mod hashes;
pub mod hll;
pub mod keys;
pub mod keyspecs;
pub mod lcs;
pub mod lists;
pub mod multi;
pub mod object;
pub mod plan;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod zsets;

use crate::dispatch::DispatchError;
use crate::{Router, Session};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::op_result::Result as R;
use plan::Planned;

/// What the connection does after the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// A command's static description, as `COMMAND` reports it.
pub struct Spec {
    pub name: &'static str,
    /// Exact argument count including the name; negative means "at least".
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
}

const fn spec(name: &'static str, arity: i32, flags: &'static [&'static str], keys: (i32, i32, i32)) -> Spec {
    Spec { name, arity, flags, first_key: keys.0, last_key: keys.1, step: keys.2 }
}

const W: &[&str] = &["write"];
const WD: &[&str] = &["write", "denyoom"];
const R_: &[&str] = &["readonly", "fast"];
const RO: &[&str] = &["readonly"];
const WF: &[&str] = &["write", "fast"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const F: &[&str] = &["fast"];
const NOAUTH: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth"];
const MULTI_FLAGS: &[&str] = &["noscript", "loading", "stale", "fast"];
/// Read-only, with keys COMMAND's first/last/step cannot describe.
const RM: &[&str] = &["readonly", "movablekeys"];
const WM: &[&str] = &["write", "movablekeys"];
const WB: &[&str] = &["write", "noscript", "blocking"];
const WBF: &[&str] = &["write", "noscript", "blocking", "fast"];
const WDB: &[&str] = &["write", "denyoom", "noscript", "blocking"];
const WBM: &[&str] = &["write", "blocking", "movablekeys"];
/// Keys from the first to the one before last (BLPOP's timeout).
const BUT_LAST: (i32, i32, i32) = (1, -2, 1);
const WDM: &[&str] = &["write", "denyoom", "movablekeys"];
/// SUBSCRIBE and the rest that change what a connection subscribes to.
const PS: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUB: &[&str] = &["pubsub", "loading", "stale", "fast"];
/// EVAL and EVALSHA; EVAL_RO and EVALSHA_RO.
const EVAL: &[&str] = &["noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"];
const EVAL_RO: &[&str] = &["readonly", "noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"];
const NOKEY: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);

/// Every command the router understands.
pub const SPECS: &[Spec] = &[
    spec("acl", -2, &["noscript", "loading", "stale"], NOKEY),
    spec("asking", 1, F, NOKEY),
    spec("append", 3, WD, ONE),
    spec("auth", -2, NOAUTH, NOKEY),
    spec("bitcount", -2, RO, ONE),
    spec("bitfield", -2, WD, ONE),
    spec("bitfield_ro", -2, &["readonly", "fast"], ONE),
    spec("bitop", -4, WD, (2, -1, 1)),
    spec("bitpos", -3, RO, ONE),
    spec("blmove", 6, WDB, (1, 2, 1)),
    spec("blmpop", -5, WBM, NOKEY),
    spec("blpop", -3, WB, BUT_LAST),
    spec("brpop", -3, WB, BUT_LAST),
    spec("brpoplpush", 4, WDB, (1, 2, 1)),
    spec("bzmpop", -5, WBM, NOKEY),
    spec("bzpopmax", -3, WBF, BUT_LAST),
    spec("bzpopmin", -3, WBF, BUT_LAST),
    spec("bgrewriteaof", 1, &["admin", "noscript"], NOKEY),
    spec("bgsave", -1, &["admin", "noscript"], NOKEY),
    spec("cluster", -2, &[], NOKEY),
    spec("client", -2, F, NOKEY),
    spec("command", -1, F, NOKEY),
    spec("config", -2, F, NOKEY),
    spec("copy", -3, WD, (1, 2, 1)),
    spec("dbsize", 1, R_, NOKEY),
    spec("decr", 2, WD, ONE),
    spec("decrby", 3, WD, ONE),
    spec("del", -2, W, ALL),
    spec("discard", 1, MULTI_FLAGS, NOKEY),
    spec("dump", 2, RO, ONE),
    spec("echo", 2, F, NOKEY),
    spec("eval", -3, EVAL, NOKEY),
    spec("eval_ro", -3, EVAL_RO, NOKEY),
    spec("evalsha", -3, EVAL, NOKEY),
    spec("evalsha_ro", -3, EVAL_RO, NOKEY),
    spec("exec", 1, MULTI_FLAGS, NOKEY),
    spec("exists", -2, R_, ALL),
    spec("expire", -3, W, ONE),
    spec("expireat", -3, WF, ONE),
    spec("expiretime", 2, R_, ONE),
    spec("fcall", -3, EVAL, NOKEY),
    spec("fcall_ro", -3, EVAL_RO, NOKEY),
    spec("flushall", -1, W, NOKEY),
    spec("flushdb", -1, W, NOKEY),
    spec("function", -2, &[], NOKEY),
    spec("geoadd", -5, WD, ONE),
    spec("geodist", -4, RO, ONE),
    spec("geohash", -2, RO, ONE),
    spec("geopos", -2, RO, ONE),
    spec("georadius", -6, &["write", "denyoom", "movablekeys"], ONE),
    spec("georadius_ro", -6, RO, ONE),
    spec("georadiusbymember", -5, &["write", "denyoom", "movablekeys"], ONE),
    spec("georadiusbymember_ro", -5, RO, ONE),
    spec("geosearch", -7, RO, ONE),
    spec("geosearchstore", -8, WD, (1, 2, 1)),
    spec("get", 2, R_, ONE),
    spec("getbit", 3, R_, ONE),
    spec("getdel", 2, WF, ONE),
    spec("getex", -2, WF, ONE),
    spec("getrange", 4, RO, ONE),
    spec("getset", 3, WDF, ONE),
    spec("hdel", -3, WF, ONE),
    spec("hello", -1, NOAUTH, NOKEY),
    spec("hexists", 3, R_, ONE),
    spec("hget", 3, R_, ONE),
    spec("hgetall", 2, RO, ONE),
    spec("hincrby", 4, WDF, ONE),
    spec("hincrbyfloat", 4, WDF, ONE),
    spec("hkeys", 2, RO, ONE),
    spec("hlen", 2, R_, ONE),
    spec("hmget", -3, R_, ONE),
    spec("hmset", -4, WDF, ONE),
    spec("hrandfield", -2, RO, ONE),
    spec("hscan", -3, RO, ONE),
    spec("hset", -4, WDF, ONE),
    spec("hsetnx", 4, WDF, ONE),
    spec("hstrlen", 3, R_, ONE),
    spec("hvals", 2, RO, ONE),
    spec("incr", 2, WD, ONE),
    spec("incrby", 3, WD, ONE),
    spec("incrbyfloat", 3, WDF, ONE),
    spec("info", -1, F, NOKEY),
    spec("keys", 2, RO, NOKEY),
    spec("lastsave", 1, &["loading", "stale", "fast"], NOKEY),
    spec("latency", -2, &[], NOKEY),
    spec("lcs", -3, RO, (1, 2, 1)),
    spec("lindex", 3, RO, ONE),
    spec("linsert", 5, WD, ONE),
    spec("llen", 2, R_, ONE),
    spec("lmove", 5, WD, (1, 2, 1)),
    spec("lmpop", -4, WM, NOKEY),
    spec("lpop", -2, WF, ONE),
    spec("lpos", -3, RO, ONE),
    spec("lpush", -3, WDF, ONE),
    spec("lpushx", -3, WDF, ONE),
    spec("lrange", 4, RO, ONE),
    spec("lrem", 4, W, ONE),
    spec("lset", 4, WD, ONE),
    spec("ltrim", 4, W, ONE),
    spec("memory", -2, &[], NOKEY),
    spec("monitor", 1, &["admin", "noscript", "loading", "stale"], NOKEY),
    spec("move", 3, WF, ONE),
    spec("mget", -2, R_, ALL),
    spec("migrate", -6, &["write", "movablekeys"], (3, 3, 1)),
    spec("mset", -3, WD, (1, -1, 2)),
    spec("msetnx", -3, WD, (1, -1, 2)),
    spec("multi", 1, MULTI_FLAGS, NOKEY),
    spec("object", -2, &[], NOKEY),
    spec("persist", 2, W, ONE),
    spec("pfadd", -2, WDF, ONE),
    spec("pfcount", -2, RO, ALL),
    spec("pfdebug", 3, &["write", "denyoom", "admin"], (2, 2, 1)),
    spec("pfmerge", -2, WD, ALL),
    spec("pfselftest", 1, &["admin"], NOKEY),
    spec("pexpire", -3, W, ONE),
    spec("pexpireat", -3, WF, ONE),
    spec("pexpiretime", 2, R_, ONE),
    spec("ping", -1, F, NOKEY),
    spec("psetex", 4, WD, ONE),
    spec("psubscribe", -2, PS, NOKEY),
    spec("publish", 3, PUB, NOKEY),
    spec("pubsub", -2, &["loading", "stale"], NOKEY),
    spec("punsubscribe", -1, PS, NOKEY),
    spec("pttl", 2, R_, ONE),
    spec("quit", -1, NOAUTH, NOKEY),
    spec("readonly", 1, &["loading", "stale", "fast"], NOKEY),
    spec("readwrite", 1, &["loading", "stale", "fast"], NOKEY),
    spec("randomkey", 1, RO, NOKEY),
    spec("rename", 3, W, (1, 2, 1)),
    spec("renamenx", 3, WF, (1, 2, 1)),
    spec("reset", 1, NOAUTH, NOKEY),
    spec("restore", -4, WD, ONE),
    spec("restore-asking", -4, &["write", "denyoom", "asking"], ONE),
    spec("role", 1, &["noscript", "loading", "stale", "fast"], NOKEY),
    spec("rpop", -2, WF, ONE),
    spec("rpoplpush", 3, WD, (1, 2, 1)),
    spec("rpush", -3, WDF, ONE),
    spec("rpushx", -3, WDF, ONE),
    spec("sadd", -3, WDF, ONE),
    spec("save", 1, &["admin", "noscript"], NOKEY),
    spec("scan", -2, RO, NOKEY),
    spec("scard", 2, R_, ONE),
    spec("script", -2, &[], NOKEY),
    spec("sdiff", -2, RO, ALL),
    spec("sdiffstore", -3, WD, ALL),
    spec("select", 2, F, NOKEY),
    spec("set", -3, WD, ONE),
    spec("setbit", 4, WD, ONE),
    spec("setex", 4, WD, ONE),
    spec("setnx", 3, WDF, ONE),
    spec("setrange", 4, WD, ONE),
    spec("sinter", -2, RO, ALL),
    spec("sintercard", -3, RM, NOKEY),
    spec("sinterstore", -3, WD, ALL),
    spec("sismember", 3, R_, ONE),
    spec("slowlog", -2, &[], NOKEY),
    spec("smembers", 2, RO, ONE),
    spec("smismember", -3, R_, ONE),
    spec("smove", 4, WF, (1, 2, 1)),
    spec("sort", -2, &["write", "denyoom", "movablekeys"], ONE),
    spec("sort_ro", -2, RM, ONE),
    spec("spublish", 3, PUB, ONE),
    spec("spop", -2, WF, ONE),
    spec("srandmember", -2, RO, ONE),
    spec("srem", -3, WF, ONE),
    spec("ssubscribe", -2, PS, ALL),
    spec("sscan", -3, RO, ONE),
    spec("strlen", 2, R_, ONE),
    spec("subscribe", -2, PS, NOKEY),
    spec("substr", 4, RO, ONE),
    spec("sunion", -2, RO, ALL),
    spec("sunionstore", -3, WD, ALL),
    spec("sunsubscribe", -1, PS, ALL),
    spec("swapdb", 3, WF, NOKEY),
    spec("time", 1, F, NOKEY),
    spec("touch", -2, R_, ALL),
    spec("ttl", 2, R_, ONE),
    spec("type", 2, R_, ONE),
    spec("unlink", -2, WF, ALL),
    spec("unsubscribe", -1, PS, NOKEY),
    spec("unwatch", 1, MULTI_FLAGS, NOKEY),
    spec("wait", 3, &["noscript"], NOKEY),
    spec("watch", -2, MULTI_FLAGS, ALL),
    spec("xack", -4, WF, ONE),
    spec("xadd", -5, WDF, ONE),
    spec("xautoclaim", -6, WF, ONE),
    spec("xclaim", -6, WF, ONE),
    spec("xdel", -3, WF, ONE),
    spec("xgroup", -2, &[], NOKEY),
    spec("xinfo", -2, &[], NOKEY),
    spec("xlen", 2, R_, ONE),
    spec("xpending", -3, RO, ONE),
    spec("xrange", -4, RO, ONE),
    spec("xread", -4, &["readonly", "blocking", "movablekeys"], NOKEY),
    spec("xreadgroup", -7, &["write", "blocking", "movablekeys"], NOKEY),
    spec("xrevrange", -4, RO, ONE),
    spec("xsetid", -3, WDF, ONE),
    spec("xtrim", -4, W, ONE),
    spec("zadd", -4, WDF, ONE),
    spec("zcard", 2, R_, ONE),
    spec("zcount", 4, R_, ONE),
    spec("zdiff", -3, RM, NOKEY),
    spec("zdiffstore", -4, WDM, ONE),
    spec("zincrby", 4, WDF, ONE),
    spec("zinter", -3, RM, NOKEY),
    spec("zintercard", -3, RM, NOKEY),
    spec("zinterstore", -4, WDM, ONE),
    spec("zlexcount", 4, R_, ONE),
    spec("zmpop", -4, WM, NOKEY),
    spec("zmscore", -3, R_, ONE),
    spec("zpopmax", -2, WF, ONE),
    spec("zpopmin", -2, WF, ONE),
    spec("zrandmember", -2, RO, ONE),
    spec("zrange", -4, RO, ONE),
    spec("zrangebylex", -4, RO, ONE),
    spec("zrangebyscore", -4, RO, ONE),
    spec("zrangestore", -5, WD, (1, 2, 1)),
    spec("zrank", 3, R_, ONE),
    spec("zrem", -3, WF, ONE),
    spec("zremrangebylex", 4, W, ONE),
    spec("zremrangebyrank", 4, W, ONE),
    spec("zremrangebyscore", 4, W, ONE),
    spec("zrevrange", -4, RO, ONE),
    spec("zrevrangebylex", -4, RO, ONE),
    spec("zrevrangebyscore", -4, RO, ONE),
    spec("zrevrank", 3, R_, ONE),
    spec("zscan", -3, RO, ONE),
    spec("zscore", 3, R_, ONE),
    spec("zunion", -3, RM, NOKEY),
    spec("zunionstore", -4, WDM, ONE),
];

pub fn find(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// Executes one request. `args` is non-empty.
pub async fn execute(router: &Router, session: &mut Session, args: Vec<Bytes>) -> (Frame, Flow) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let Some(spec) = find(&name) else { return (multi::flag(session, unknown_command(&args)), Flow::Continue) };
    if session.auth_required() && !spec.flags.contains(&"no_auth") {
        return (Frame::error("NOAUTH Authentication required."), Flow::Continue);
    }
    if !arity_ok(spec, args.len()) {
        return (multi::flag(session, wrong_arity(spec.name)), Flow::Continue);
    }
    // ACL: before anything runs or is queued, as in Redis (which answers a
    // subcommand's wrong arity first: that is looked at only on a refusal).
    if let Err(denied) = session.user.check(spec, &args)
        && subcommand_arity_ok(spec, &args)
    {
        return (multi::flag(session, acl::refuse(router, session, &denied, "toplevel")), Flow::Continue);
    }
    if pubsub::subscribed_mode(session) && !pubsub::allowed_when_subscribed(spec.name) {
        return (pubsub::refused_when_subscribed(spec.name), Flow::Continue);
    }
    if session.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "multi" | "quit" | "watch" | "reset") {
        return (multi::queue(session, spec.name, args), Flow::Continue);
    }
    // CLIENT CACHING's flag is this command's (CLIENT CACHING itself sets
    // the next one's).
    session.caching_now = session.caching.take();
    let started = std::time::Instant::now();
    let reply = run(router, session, spec.name, &args).await;
    record(router, spec.name, blocking::is_blocking(spec.name, &args), started, &reply.0);
    slowlog(router, session, spec.name, &args, started);
    reply
}

/// Logs the command in SLOWLOG if it was slow; not blocking commands
/// (their wait is the client's choice) nor AUTH, HELLO and ACL (passwords).
pub(crate) fn slowlog(router: &Router, session: &Session, name: &'static str, args: &[Bytes], started: std::time::Instant) {
    if !blocking::is_blocking(name, args) && !matches!(name, "auth" | "hello" | "acl") {
        router.slowlog.record(args, started.elapsed(), &session.client.addr, session.client.name().as_ref());
    }
}

/// A data command ready to join a batch: its name and plan, or the
/// argument error it answers with (which needs no I/O). `None` for
/// everything else, which the session runs alone through [`execute`]:
/// unknown commands, wrong arity, commands with session side effects or
/// their own I/O, and every command while the session is unauthenticated
/// (so NOAUTH handling stays exactly as it is).
pub fn batchable(session: &Session, args: &[Bytes]) -> Option<(&'static str, Result<Planned, Frame>)> {
    // A tracking client's commands run one at a time: each notes what it
    // reads (see `tracking`); so does the command after CLIENT CACHING,
    // whose flag it takes.
    if session.auth_required() || session.multi.is_some() || args[0].len() > MAX_NAME_LEN || pubsub::subscribed(session) || session.tracking.is_some() || session.caching.is_some() {
        return None;
    }
    let spec = find(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase())?;
    // A command the user may not run goes alone, refused (and logged) by
    // `execute`.
    if !arity_ok(spec, args.len()) || blocking::is_blocking(spec.name, args) || session.user.check(spec, args).is_err() {
        return None;
    }
    Some((spec.name, plan(spec.name, args)?))
}

/// False for a container command (CLIENT, CONFIG, ...) whose subcommand
/// Redis knows and whose arguments do not fit its arity; the command then
/// answers that, as Redis does before anything else.
fn subcommand_arity_ok(spec: &Spec, args: &[Bytes]) -> bool {
    let Some(sub) = args.get(1).filter(|_| !categories::subcommands(spec.name).is_empty()) else { return true };
    let full = format!("{}|{}", spec.name, String::from_utf8_lossy(sub).to_ascii_lowercase());
    categories::arity(&full).is_none_or(|arity| if arity < 0 { args.len() >= arity.unsigned_abs() as usize } else { args.len() == arity as usize })
}

/// No command name is longer; longer first arguments are not lowercased.
const MAX_NAME_LEN: usize = 16;

/// The command's ops and reply shape, for data commands only.
fn plan(name: &str, a: &[Bytes]) -> Option<Result<Planned, Frame>> {
    Some(match name {
        "get" => strings::get(a),
        "set" => strings::set(a),
        "getdel" => strings::getdel(a),
        "append" => strings::append(a),
        "strlen" => strings::strlen(a),
        "incr" | "decr" | "incrby" | "decrby" => strings::incr(name, a),
        "mget" => strings::mget(a),
        "mset" => strings::mset(a),
        "msetnx" => strings::msetnx(a),
        "getbit" => bits::getbit(a),
        "setbit" => bits::setbit(a),
        "bitcount" => bits::bitcount(a),
        "bitpos" => bits::bitpos(a),
        "bitop" => bits::bitop(a),
        "bitfield" | "bitfield_ro" => bits::bitfield(name, a),
        "lcs" => lcs::lcs(a),
        "geoadd" => geo::geoadd(a),
        "geopos" | "geodist" | "geohash" | "geosearch" | "georadius" | "georadius_ro" | "georadiusbymember" | "georadiusbymember_ro" | "geosearchstore" => geo::read(name, a),
        "pfadd" => hll::pfadd(a),
        "pfcount" => hll::pfcount(a),
        "pfmerge" => hll::pfmerge(a),
        "pfdebug" => hll::pfdebug(a),
        "object" => object::object(a),
        "dump" => dump::dump(a),
        "restore" | "restore-asking" => dump::restore(a),
        "memory" => object::memory(a),
        "sort" | "sort_ro" => sort::sort_command(name, a),
        "rename" | "renamenx" => keys::rename(name, a),
        "copy" => keys::copy(a),
        "del" => keys::del(a),
        "exists" => keys::exists(a),
        "expire" | "pexpire" | "expireat" | "pexpireat" => keys::expire(name, a),
        "ttl" | "pttl" => keys::ttl(name, a),
        "expiretime" | "pexpiretime" => keys::expiretime(name, a),
        "setnx" => strings::setnx(a),
        "setex" | "psetex" => strings::setex(name, a),
        "getset" => strings::getset(a),
        "getex" => strings::getex(a),
        "setrange" => strings::setrange(a),
        "incrbyfloat" => strings::incrbyfloat(a),
        "getrange" | "substr" => strings::getrange(a),
        "unlink" => keys::del(a),
        "touch" => keys::exists(a),
        "type" => keys::key_type(a),
        "persist" => keys::persist(a),
        "hset" | "hmset" => hashes::hset(name, a),
        "hsetnx" => hashes::hsetnx(a),
        "hdel" => hashes::hdel(a),
        "hincrby" => hashes::hincrby(a),
        "hincrbyfloat" => hashes::hincrbyfloat(a),
        "hget" | "hmget" | "hgetall" | "hlen" | "hexists" | "hkeys" | "hvals" | "hstrlen" | "hrandfield" | "hscan" => hashes::read(name, a),
        "sadd" => sets::sadd(a),
        "srem" => sets::srem(a),
        "spop" => sets::spop(a),
        "smove" => sets::smove(a),
        "sunionstore" | "sinterstore" | "sdiffstore" => sets::store(name, a),
        "sunion" | "sinter" | "sdiff" => sets::combine(name, a),
        "sintercard" => sets::intercard(a),
        "sismember" | "smismember" | "smembers" | "scard" | "srandmember" | "sscan" => sets::read(name, a),
        "lpush" | "rpush" | "lpushx" | "rpushx" => lists::push(name, a),
        "lpop" | "rpop" => lists::pop(name, a),
        "lset" => lists::lset(a),
        "lrem" => lists::lrem(a),
        "ltrim" => lists::ltrim(a),
        "linsert" => lists::linsert(a),
        "lmove" | "rpoplpush" => lists::lmove(name, a),
        "lmpop" => lists::lmpop(a),
        // Run alone by `run` outside MULTI; inside, EXEC runs them without
        // blocking, as Redis does.
        name if blocking::is_pop(name) => blocking::plan(name, a).map(|(planned, _)| planned),
        name if streams::is_stream(name) => streams::plan(name, a),
        "llen" | "lindex" | "lrange" | "lpos" => lists::read(name, a),
        "zadd" => zsets::zadd(a),
        "zincrby" => zsets::zincrby(a),
        "zrem" => zsets::zrem(a),
        "zpopmin" | "zpopmax" => zsets::zpop(name, a),
        "zmpop" => zsets::zmpop(a),
        "zremrangebyrank" | "zremrangebyscore" | "zremrangebylex" => zsets::zremrange(name, a),
        "zunionstore" | "zinterstore" | "zdiffstore" => zsets::store(name, a),
        "zrangestore" => zsets::zrangestore(a),
        "zunion" | "zinter" | "zdiff" => zsets::combine(name, a),
        "zintercard" => zsets::intercard(a),
        "zrange" | "zrevrange" | "zrangebyscore" | "zrevrangebyscore" | "zrangebylex" | "zrevrangebylex" => zsets::zrange(name, a),
        "zscore" | "zmscore" | "zcard" | "zcount" | "zlexcount" | "zrank" | "zrevrank" | "zrandmember" | "zscan" => zsets::read(name, a),
        _ => return None,
    })
}

fn arity_ok(spec: &Spec, args: usize) -> bool {
    let n = args as i32;
    if spec.arity > 0 { n == spec.arity } else { n >= -spec.arity }
}

/// Per-command metrics, for commands run alone or in a batch.
/// Records a command's latency in the metrics and in the router's
/// per-second window (what the coordinator's throttle reads).
pub(crate) fn record(router: &Router, name: &'static str, blocked: bool, started: std::time::Instant, reply: &Frame) {
    let elapsed = started.elapsed();
    metrics::histogram!("evenkeel_router_command_seconds", "cmd" => name).record(elapsed.as_secs_f64());
    let failed = matches!(reply, Frame::Error(_));
    if failed {
        metrics::counter!("evenkeel_router_errors_total", "cmd" => name).increment(1);
    }
    router.stats.command(name, elapsed.as_micros() as u64, failed);
    // A blocking command's wait is the client's choice, not a delay the
    // throttle should see.
    if !blocked {
        router.latency.record(elapsed.as_micros() as u64, failed, evenkeel_types::unix_ms());
    }
}

async fn run(r: &Router, s: &mut Session, name: &'static str, a: &[Bytes]) -> (Frame, Flow) {
    use Flow::Continue as C;
    if blocking::is_blocking(name, a) {
        return (blocking::run(r, &s.client, name, a).await, C);
    }
    if let Some(mut planned) = plan(name, a) {
        let mut written = Vec::new();
        if let (Ok(p), Some(mode)) = (&mut planned, &s.tracking) {
            let spec = find(name).expect("a planned command has a spec");
            let tracked = crate::tracking::mark_reads(r, s, spec.flags.contains(&"readonly"), &mut p.ops);
            if !tracked && mode.noloop && spec.flags.contains(&"write") {
                // NOLOOP: the client stops tracking what it writes without
                // being told (as in Redis, where its own write ends the
                // key's tracking), before the invalidation can come back.
                written = p.ops.iter().map(|o| o.key.clone()).collect();
                r.pubsub.written_by(s.id, &written);
            }
        }
        let reply = run_planned(r, planned).await;
        // A write that failed (or may not have run) leaves the key as it
        // was, but no longer tracked for the client: it is told to drop
        // it, so nothing it caches can go stale unseen.
        if !written.is_empty() && matches!(reply, Frame::Error(_)) {
            r.pubsub.write_failed(s.id, &written);
        }
        return (reply, C);
    }
    let reply = match name {
        "scan" => keys::scan(r, a).await,
        "keys" => keys::keys(r, a).await,
        "multi" => multi::begin(s),
        "discard" => multi::discard(s),
        "exec" => multi::exec(r, s).await,
        "watch" => multi::watch(r, s, a).await,
        "unwatch" => multi::unwatch(s),
        // As Redis's RESET: also out of Pub/Sub, MONITOR and CLIENT REPLY
        // OFF/SKIP.
        "reset" => {
            pubsub::reset(s).await;
            s.monitor = None;
            s.replies = crate::session::Replies::On;
            server::reset(r, s)
        }
        // From the next command on, this router's commands are written to
        // the client between its replies.
        "monitor" => {
            s.monitor.get_or_insert_with(|| r.monitor.watch());
            Frame::ok()
        }
        "subscribe" | "psubscribe" | "ssubscribe" => pubsub::subscribe(r, s, name, a).await,
        "unsubscribe" | "punsubscribe" | "sunsubscribe" => pubsub::unsubscribe(r, s, name, a).await,
        "publish" | "spublish" => pubsub::publish(r, name, a).await,
        "pubsub" => pubsub::pubsub(r, a).await,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => scripting::eval(r, &s.user, name, a).await,
        "function" => functions::function(r, a).await,
        "script" => scripting::script(r, a).await,
        "acl" => acl::acl(r, s, a).await,
        "ping" if pubsub::subscribed_mode(s) && a.len() <= 2 => pubsub::ping(a),
        "randomkey" => keys::random_key(r).await,
        "flushall" | "flushdb" => keys::flush(r, a).await,
        "dbsize" => keys::dbsize(r).await,
        "quit" => return (Frame::ok(), Flow::Close),
        _ => server::run(r, s, name, a).await,
    };
    (reply, C)
}

/// Runs one planned command's ops and builds its reply.
async fn run_planned(r: &Router, planned: Result<Planned, Frame>) -> Frame {
    match planned {
        Ok(p) => plan::reply(p.shape, r.dispatcher.run(&p.ops).await),
        Err(e) => e,
    }
}

/// Turns a node's error result into the client's error reply.
pub(crate) fn op_error(r: R) -> Result<R, Frame> {
    match r {
        R::Error(e) if e.kind == evenkeel_rpc::pb::op_error::Kind::WrongType as i32 => Err(wrong_type()),
        // Redis's code for a write refused for want of room.
        R::Error(e) if e.kind == evenkeel_rpc::pb::op_error::Kind::OutOfSpace as i32 => Err(Frame::error(format!("OOM {}", e.message))),
        R::Error(e) => Err(Frame::error(format!("ERR {}", e.message))),
        // An error line the node wrote whole (HyperLogLog's WRONGTYPE and
        // INVALIDOBJ).
        R::Reply(evenkeel_rpc::pb::Reply { kind: Some(evenkeel_rpc::pb::reply::Kind::Error(e)) }) => Err(Frame::Error(e)),
        R::Refused(_) => Err(dispatch_error(&DispatchError::TryAgain(0))),
        other => Ok(other),
    }
}

pub(crate) fn dispatch_error(e: &DispatchError) -> Frame {
    Frame::error(e.to_string())
}

pub(crate) fn wrong_arity(name: &str) -> Frame {
    Frame::error(format!("ERR wrong number of arguments for '{name}' command"))
}

pub(crate) fn wrong_type() -> Frame {
    Frame::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

pub(crate) fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}

pub(crate) fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

/// The reply for a value a node sent that does not decode (logged: the
/// node's store is corrupt).
pub(crate) fn corrupt_value(e: impl std::fmt::Display) -> Frame {
    tracing::error!(error = %e, "a node sent a value that does not decode");
    Frame::error("ERR internal error: corrupt value")
}

pub(crate) fn unexpected(r: &R) -> Frame {
    tracing::error!(reply = ?r, "node sent a reply of the wrong kind");
    Frame::error("ERR internal error: unexpected reply from storage node")
}

/// Parses an integer argument as Redis's `string2ll` does.
pub(crate) fn int_arg(raw: &[u8]) -> Result<i64, Frame> {
    evenkeel_types::int::parse_i64(raw).ok_or_else(not_integer)
}

/// An argument as C's `printf("%.*s", max, arg)` shows it, which is how
/// Redis quotes arguments in error replies: up to the first NUL byte and at
/// most `max` bytes (possibly cutting a UTF-8 sequence, as Redis does).
pub(crate) fn c_str(arg: &[u8], max: usize) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(c_bytes(arg, max))
}

fn c_bytes(arg: &[u8], max: usize) -> &[u8] {
    let end = arg.iter().position(|&b| b == 0).unwrap_or(arg.len()).min(max);
    &arg[..end]
}

/// Redis 7's reply to an unknown command: the name cut to 128 bytes, then
/// quoted arguments until about 128 bytes of them are shown.
fn unknown_command(args: &[Bytes]) -> Frame {
    let mut shown: Vec<u8> = Vec::new();
    for a in &args[1..] {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        shown.push(b'\'');
        shown.extend_from_slice(c_bytes(a, room));
        shown.extend_from_slice(b"' ");
    }
    let (name, shown) = (c_str(&args[0], 128), String::from_utf8_lossy(&shown));
    Frame::error(format!("ERR unknown command '{name}', with args beginning with: {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(args: &[&[u8]]) -> Frame {
        unknown_command(&args.iter().map(|a| Bytes::copy_from_slice(a)).collect::<Vec<_>>())
    }

    #[test]
    fn unknown_command_quotes_arguments_like_printf() {
        let e = |args: &str| Frame::error(format!("ERR unknown command 'X', with args beginning with: {args}"));
        assert_eq!(unknown(&[b"X", b"a", b"b c"]), e("'a' 'b c' "));
        assert_eq!(unknown(&[b"X", b"nul\0byte", b"z"]), e("'nul' 'z' "));
        let long = [b'a'; 200];
        assert_eq!(unknown(&[b"X", &long, b"z"]), e(&format!("'{}' ", "a".repeat(128))));
        // 123 bytes shown leave room for 5 more of the next argument.
        assert_eq!(unknown(&[b"X", &long[..120], b"bcdefgh", b"z"]), e(&format!("'{}' 'bcdef' ", "a".repeat(120))));
    }
}
