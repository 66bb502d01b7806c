//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT: Lua scripts, run by the
//! node that owns their keys.
//!
//! As in Redis Cluster, a script's declared keys share one hash slot
//! (else `CROSSSLOT`), and the router sends the whole script to the slot's
//! owner as one `Script` op. The node runs it under the partition's lock
//! with `evenkeel_script` and commits what it wrote in one batch when it
//! returns, so no client and no migration sees it half done; a moving
//! partition refuses it like any write, and the dispatcher retries it at
//! the new owner. Keys it touches without declaring them must share the
//! declared keys' slot. A script that declares no keys runs where the
//! first key it touches lives: it starts on slot 0's owner, and if that
//! key is elsewhere the node stops it before anything is written and
//! answers where; the router runs it once more there.
//!
//! `redis.call` goes through this crate's command planning
//! ([`ScriptCommands`]): a script's commands are planned into the same ops,
//! and answered in the same shapes, as a client's.
//!
//! EVALSHA finds a script SCRIPT LOAD stored for the whole cluster (under
//! `/evenkeel/scripts/` in the metadata store, which every router follows,
//! so a script loaded through one router runs through any, as on one Redis
//! server), or one EVAL ran through this router: those are this router's
//! alone and are forgotten oldest first past [`EVAL_CACHED_MAX`] (Redis 7.4
//! does the same). SCRIPT FLUSH clears both.

use super::plan::{self, reply_frame};
use super::{dispatch_error, int_arg, op_error, unexpected};
use crate::Router;
use crate::dispatch::KeyOp;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_script::{Call, sha1_hex};
use crate::followed::Followed;
use evenkeel_meta::MetaStore;
use evenkeel_types::keys::SCRIPTS_PREFIX;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Scripts cached by EVAL (not SCRIPT LOAD) kept at most.
pub const EVAL_CACHED_MAX: usize = 500;
/// Most bytes of script bodies EVAL keeps in one router.
pub const CACHED_BYTES_MAX: usize = 256 << 20;
/// Most bytes of script bodies SCRIPT LOAD keeps for the cluster (every
/// router holds them all; each at most the metadata store's largest
/// value, 1 MiB).
pub const LOADED_BYTES_MAX: usize = 64 << 20;

/// The scripts EVALSHA finds: those SCRIPT LOAD stored for the whole
/// cluster (followed in the metadata store), and those EVAL ran through
/// this router.
pub struct ScriptCache {
    evaluated: Mutex<Evaluated>,
    loaded: Option<Followed>,
}

/// This router's scripts from EVAL, by SHA1, forgotten oldest first.
#[derive(Default)]
struct Evaluated {
    scripts: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl ScriptCache {
    pub fn new(meta: Arc<dyn MetaStore>) -> ScriptCache {
        ScriptCache { evaluated: Mutex::default(), loaded: Some(Followed::new(meta, SCRIPTS_PREFIX)) }
    }

    /// EVAL's cache alone (tests).
    pub fn local() -> ScriptCache {
        ScriptCache { evaluated: Mutex::default(), loaded: None }
    }

    /// Whether EVALSHA finds `sha` (no copy of the body).
    pub fn contains(&self, sha: &str) -> bool {
        self.evaluated.lock().scripts.contains_key(sha) || self.loaded.as_ref().is_some_and(|l| l.with(|s| s.contains_key(&l.key(sha))))
    }

    pub fn get(&self, sha: &str) -> Option<Bytes> {
        if let Some(body) = self.evaluated.lock().scripts.get(sha) {
            return Some(body.clone());
        }
        let loaded = self.loaded.as_ref()?;
        loaded.with(|s| s.get(&loaded.key(sha)).map(|kv| Bytes::copy_from_slice(&kv.value)))
    }

    /// Remembers a script EVAL ran (it compiles).
    fn evaluated(&self, sha: String, body: Bytes) {
        let mut c = self.evaluated.lock();
        if c.scripts.contains_key(&sha) || body.len() > CACHED_BYTES_MAX {
            return;
        }
        c.bytes += body.len();
        c.order.push_back(sha.clone());
        c.scripts.insert(sha, body);
        while c.order.len() > EVAL_CACHED_MAX || c.bytes > CACHED_BYTES_MAX {
            let oldest = c.order.pop_front().expect("not empty");
            if let Some(body) = c.scripts.remove(&oldest) {
                c.bytes -= body.len();
            }
        }
    }

    /// SCRIPT LOAD: stores a script that compiles for the whole cluster.
    async fn load(&self, sha: &str, body: &Bytes) -> Result<(), Frame> {
        let Some(loaded) = &self.loaded else {
            self.evaluated(sha.to_string(), body.clone());
            return Ok(());
        };
        let (present, bytes) = loaded.with(|s| (s.contains_key(&loaded.key(sha)), s.values().map(|kv| kv.value.len()).sum::<usize>()));
        if present {
            return Ok(());
        }
        if bytes + body.len() > LOADED_BYTES_MAX {
            return Err(Frame::error(format!("ERR the cluster keeps at most {} MiB of loaded scripts: SCRIPT FLUSH, or send this one with EVAL", LOADED_BYTES_MAX >> 20)));
        }
        loaded.put(sha, body.to_vec()).await
    }

    /// SCRIPT FLUSH: the cluster's loaded scripts, and this router's.
    async fn flush(&self) -> Result<(), Frame> {
        *self.evaluated.lock() = Evaluated::default();
        let Some(loaded) = &self.loaded else { return Ok(()) };
        let names: Vec<String> = loaded.with(|s| s.keys().map(|k| k[SCRIPTS_PREFIX.len()..].to_string()).collect());
        for name in names {
            loaded.delete(&name).await?;
        }
        Ok(())
    }

    /// Scripts EVALSHA finds here (INFO's `number_of_cached_scripts`).
    pub fn len(&self) -> usize {
        let evaluated = self.evaluated.lock();
        let loaded = self.loaded.as_ref().map_or(0, |l| l.with(|s| s.keys().filter(|k| !evaluated.scripts.contains_key(&k[SCRIPTS_PREFIX.len()..])).count()));
        evaluated.scripts.len() + loaded
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `name` runs a script (EVAL, FCALL and their forms).
pub(crate) fn is_eval(name: &str) -> bool {
    matches!(name, "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro")
}

/// The keys EVAL's `numkeys` declares (arity already checked).
pub(crate) fn declared_keys(a: &[Bytes]) -> Result<&[Bytes], Frame> {
    match int_arg(&a[2]) {
        Ok(n) if n < 0 => Err(Frame::error("ERR Number of keys can't be negative")),
        Ok(n) if n as usize > a.len() - 3 => Err(Frame::error("ERR Number of keys can't be greater than number of args")),
        Ok(n) => Ok(&a[3..3 + n as usize]),
        Err(e) => Err(e),
    }
}

/// EVAL's (or EVALSHA's, or FCALL's) script, ready to send: its body
/// (from the cache for EVALSHA), keys of one slot, compiled once before it
/// is cached.
/// `user`'s rules go with it when it may not run everything, so the node
/// checks each of the script's commands against them.
pub(crate) fn prepare(r: &Router, user: &crate::acl::User, name: &str, a: &[Bytes]) -> Result<pb::Script, Frame> {
    let mut script = prepare_as_anyone(r, name, a)?;
    if !user.unrestricted() {
        script.acl = user.permission_rules();
    }
    Ok(script)
}

fn prepare_as_anyone(r: &Router, name: &str, a: &[Bytes]) -> Result<pb::Script, Frame> {
    if name.starts_with("fcall") {
        return super::functions::prepare(r, name, a);
    }
    let (body, sha, cached) = if name.starts_with("evalsha") {
        let sha = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
        match r.scripts.get(&sha) {
            Some(body) => (body, sha, true),
            None => return Err(Frame::error("NOSCRIPT No matching script. Please use EVAL.")),
        }
    } else {
        let sha = sha1_hex(&a[1]);
        let cached = r.scripts.contains(&sha);
        (a[1].clone(), sha, cached)
    };
    let keys = declared_keys(a)?;
    super::keys::one_slot(keys.iter())?;
    // Compiled once here, the first time this router sees it.
    if !cached {
        evenkeel_script::compile_check(&body).map_err(Frame::Error)?;
        r.scripts.evaluated(sha.clone(), body.clone());
    }
    Ok(pb::Script { body, sha, keys: keys.to_vec(), args: a[3 + keys.len()..].to_vec(), read_only: name.ends_with("_ro"), function: String::new(), acl: vec![] })
}

/// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO.
pub async fn eval(r: &Router, user: &crate::acl::User, name: &str, a: &[Bytes]) -> Frame {
    let script = match prepare(r, user, name, a) {
        Ok(script) => script,
        Err(e) => return e,
    };
    let keyless = script.keys.is_empty();
    // A keyless script starts at slot 0's owner (the empty key's slot).
    let mut at = script.keys.first().cloned().unwrap_or_default();
    for run in 0..2 {
        let op = KeyOp::new(at.clone(), Kind::Script(script.clone()));
        let outcome = r.dispatcher.run(std::slice::from_ref(&op)).await.pop().expect("one outcome per op");
        match outcome.map_err(|e| dispatch_error(&e)).and_then(op_error) {
            Ok(R::Reply(reply)) => return reply_frame(reply),
            Ok(R::ScriptElsewhere(e)) if run == 0 && keyless => at = e.key,
            Ok(R::ScriptElsewhere(_)) => break,
            Ok(other) => return unexpected(&other),
            Err(e) => return e,
        }
    }
    Frame::error("ERR a script that declares no keys touched keys of different partitions on two runs; declare its keys (they must share a hash slot)")
}

/// SCRIPT LOAD, EXISTS, FLUSH, KILL, HELP (DEBUG refused).
pub async fn script(r: &Router, a: &[Bytes]) -> Frame {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
    match (sub.as_str(), a.len()) {
        ("LOAD", 3) => {
            let sha = sha1_hex(&a[2]);
            if !r.scripts.contains(&sha)
                && let Err(e) = evenkeel_script::compile_check(&a[2])
            {
                return Frame::Error(e);
            }
            match r.scripts.load(&sha, &a[2]).await {
                Ok(()) => Frame::Bulk(sha.into()),
                Err(e) => e,
            }
        }
        ("EXISTS", n) if n >= 3 => Frame::Array(a[2..].iter().map(|sha| Frame::Integer(r.scripts.contains(&String::from_utf8_lossy(sha).to_ascii_lowercase()) as i64)).collect()),
        ("FLUSH", 2) => r.scripts.flush().await.map_or_else(|e| e, |()| Frame::ok()),
        ("FLUSH", 3) => match String::from_utf8_lossy(&a[2]).to_ascii_uppercase().as_str() {
            "ASYNC" | "SYNC" => r.scripts.flush().await.map_or_else(|e| e, |()| Frame::ok()),
            _ => Frame::error("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
        },
        ("KILL", 2) => kill(r, false).await,
        ("DEBUG", 3) => Frame::error("ERR SCRIPT DEBUG is not supported: scripts run on the node that owns their keys"),
        ("HELP", 2) => Frame::Array(HELP.iter().map(|l| Frame::simple(*l)).collect()),
        (sub @ ("LOAD" | "EXISTS" | "FLUSH" | "KILL" | "DEBUG" | "HELP"), _) => Frame::error(format!("ERR wrong number of arguments for 'script|{}' command", sub.to_ascii_lowercase())),
        _ => Frame::error(format!("ERR unknown subcommand '{}'. Try SCRIPT HELP.", String::from_utf8_lossy(&a[1]))),
    }
}

/// SCRIPT KILL (EVAL's scripts) and FUNCTION KILL (`functions`): asks
/// every node to stop the scripts of that kind it is running; nothing they
/// wrote is kept (Redis refuses to kill a script that wrote). OK if one
/// was stopped.
pub(crate) async fn kill(r: &Router, functions: bool) -> Frame {
    let nodes: Vec<_> = r.dispatcher.routes.load().nodes.values().map(|(_, client)| client.clone()).collect();
    let asks = nodes.into_iter().map(|mut client| async move {
        let mut request = tonic::Request::new(pb::KillScriptsRequest { functions });
        request.set_timeout(std::time::Duration::from_secs(2));
        client.kill_scripts(request).await
    });
    let mut killed = 0;
    let mut failed = None;
    for answer in futures::future::join_all(asks).await {
        match answer {
            Ok(a) => killed += a.into_inner().killed,
            Err(e) => failed = Some(e),
        }
    }
    match (killed, failed) {
        (0, Some(e)) => Frame::error(format!("ERR could not reach every node to stop its scripts: {}", e.message())),
        (0, None) => Frame::error("NOTBUSY No scripts in execution right now."),
        _ => Frame::ok(),
    }
}

const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// The command layer of a script's `redis.call`: the same planning as a
/// client's commands, with Redis's refusals for scripts.
pub struct ScriptCommands;

impl evenkeel_script::Commands for ScriptCommands {
    fn plan(&self, a: &[Bytes], resp3: bool, acl: &[String]) -> Call {
        let shaped = move |f: Frame| frame_reply(f, resp3);
        let refuse = |e: &str| Call::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error(e.to_string())) });
        let name = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
        let Some(spec) = super::find(&name) else { return refuse("ERR Unknown Redis command called from script") };
        if !super::arity_ok(spec, a.len()) {
            return refuse("ERR Wrong number of args calling Redis command from script");
        }
        if spec.flags.contains(&"noscript") {
            return refuse("ERR This Redis command is not allowed from script");
        }
        if !acl.is_empty() {
            let denied = match crate::acl::script_user(acl) {
                Ok(user) => user.check(spec, a).err(),
                Err(e) => return refuse(&format!("ERR the script's ACL rules did not parse here: {e}")),
            };
            match denied {
                None => {}
                Some(crate::acl::Denied::Command(_)) => return refuse("ERR The user executing the script can't run this command or subcommand"),
                Some(crate::acl::Denied::Key(_)) => return refuse("ERR The user executing the script can't access at least one of the keys mentioned in the command arguments"),
                Some(crate::acl::Denied::Channel(_)) => return refuse("ERR The user executing the script can't publish to the channel mentioned in the command"),
            }
        }
        match spec.name {
            "ping" if a.len() == 1 => return Call::Reply(shaped(Frame::Simple("PONG".into()))),
            "ping" if a.len() > 2 => return Call::Reply(shaped(super::wrong_arity("ping"))),
            "ping" | "echo" => return Call::Reply(shaped(Frame::Bulk(a[1].clone()))),
            "time" => return Call::Reply(shaped(super::server::time())),
            "publish" | "spublish" => return Call::Publish { shard: spec.name == "spublish", channel: a[1].clone(), message: a[2].clone() },
            _ => {}
        }
        match super::plan(spec.name, a) {
            Some(Ok(planned)) => {
                let write = spec.flags.contains(&"write");
                let shape = planned.shape;
                Call::Ops { ops: planned.ops.into_iter().map(|op| (op.key, op.kind)).collect(), write, answer: Box::new(move |results| frame_reply(plan::reply(shape, results.into_iter().map(Ok).collect()), resp3)) }
            }
            Some(Err(e)) => Call::Reply(shaped(e)),
            None => refuse("ERR This Redis command is not allowed from script"),
        }
    }
}

/// A reply as a script sees it (`pb::Reply`): RESP2's types, or after
/// `redis.setresp(3)` RESP3's (pairs nested, as RESP3 shows them); the
/// inverse of [`reply_frame`].
fn frame_reply(f: Frame, resp3: bool) -> pb::Reply {
    as_reply(if resp3 { f } else { f.into_resp2() })
}

/// `f`, of whichever types it holds, as the node carries a reply.
fn as_reply(f: Frame) -> pb::Reply {
    use pb::reply::Kind as K;
    let all = |items: Vec<Frame>| pb::ReplyArray { items: items.into_iter().map(as_reply).collect() };
    let alternating = |pairs: Vec<(Frame, Frame)>| all(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect());
    let kind = match f {
        Frame::Simple(s) => K::Simple(s),
        Frame::Error(e) => K::Error(e),
        Frame::Integer(n) => K::Integer(n),
        Frame::Bulk(b) => K::Bulk(b),
        Frame::Null => K::Null(pb::Nil {}),
        Frame::NullArray => K::NullArray(pb::Nil {}),
        Frame::Array(items) | Frame::Replies(items) | Frame::Push(items) => K::Array(all(items)),
        Frame::Pairs(pairs) => K::Array(all(pairs.into_iter().map(|(a, b)| Frame::Array(vec![a, b])).collect())),
        Frame::Map(pairs) => K::Map(alternating(pairs)),
        Frame::NestedMap(pairs) => K::NestedMap(alternating(pairs)),
        Frame::Set(items) => K::Set(all(items)),
        Frame::Double(d) => K::Double(d),
        Frame::BigNumber(n) => K::BigNumber(n),
        Frame::Verbatim { format, text } => K::Verbatim(pb::ReplyVerbatim { format: Bytes::copy_from_slice(&format), text }),
        Frame::Boolean(b) => K::Boolean(b),
    };
    pb::Reply { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_cross_to_the_node_and_back_unchanged() {
        let f = Frame::Array(vec![Frame::Simple("OK".into()), Frame::Error("ERR x".into()), Frame::Integer(-3), Frame::bulk("b"), Frame::Null, Frame::NullArray, Frame::Array(vec![])]);
        assert_eq!(reply_frame(frame_reply(f.clone(), false)), f);
        let resp3 = Frame::Array(vec![
            Frame::Map(vec![(Frame::bulk("k"), Frame::Set(vec![Frame::bulk("m")]))]),
            Frame::NestedMap(vec![(Frame::bulk("s"), Frame::Array(vec![]))]),
            Frame::Double("1.5".into()),
            Frame::BigNumber("12345678901234567890".into()),
            Frame::verbatim("text"),
            Frame::Boolean(false),
        ]);
        assert_eq!(reply_frame(frame_reply(resp3.clone(), true)), resp3, "after setresp(3) a script sees RESP3's types");
        assert_eq!(reply_frame(frame_reply(resp3.clone(), false)), resp3.into_resp2());
    }

    #[test]
    fn eval_cached_scripts_are_forgotten_oldest_first() {
        let cache = ScriptCache::local();
        for i in 0..EVAL_CACHED_MAX + 10 {
            cache.evaluated(format!("s{i}"), Bytes::from(format!("return {i}")));
        }
        assert_eq!(cache.len(), EVAL_CACHED_MAX);
        assert!(cache.get("s0").is_none() && cache.get("s9").is_none());
        assert!(cache.get("s10").is_some() && cache.get(&format!("s{}", EVAL_CACHED_MAX + 9)).is_some());
        // Bytes bound too: one body past the bound is not kept at all.
        cache.evaluated("big".into(), Bytes::from(vec![b' '; CACHED_BYTES_MAX + 1]));
        assert!(cache.get("big").is_none());
    }

    #[test]
    fn script_commands_refuse_what_redis_refuses_in_scripts() {
        use evenkeel_script::Commands;
        let plan = |args: &[&str]| ScriptCommands.plan(&args.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect::<Vec<_>>(), false, &[]);
        let error = |call: Call| match call {
            Call::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error(e)) }) => e,
            _ => panic!("an error"),
        };
        assert_eq!(error(plan(&["nosuch"])), "ERR Unknown Redis command called from script");
        assert_eq!(error(plan(&["get"])), "ERR Wrong number of args calling Redis command from script");
        assert_eq!(error(plan(&["blpop", "l", "0"])), "ERR This Redis command is not allowed from script");
        assert_eq!(error(plan(&["subscribe", "c"])), "ERR This Redis command is not allowed from script");
        assert_eq!(error(plan(&["set", "k", "v", "xx", "nx"])), "ERR syntax error");
        assert!(matches!(plan(&["set", "k", "v"]), Call::Ops { write: true, ref ops, .. } if ops.len() == 1));
        assert!(matches!(plan(&["mget", "a", "b"]), Call::Ops { write: false, ref ops, .. } if ops.len() == 2));
    }
}
