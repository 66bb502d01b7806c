//! EVAL's Lua scripts: the sandbox Redis 7.0 gives them, run for a node.
//!
//! A script runs on the node that owns its keys' hash slot, under that
//! partition's lock (the node's `Store::execute_script`), so no other
//! client and no migration sees it half done. This crate holds what is
//! Lua about it, so the node stays a store and the router can check a
//! script compiles (SCRIPT LOAD) without a node:
//!
//! - [`Engine`]: a pool of Lua 5.1 states (Redis embeds 5.1), each set up
//!   once as Redis sets up its scripting state: the base, table, string
//!   and math libraries with the file and module functions removed;
//!   `cjson`, `bit` and `cmsgpack` ([`libs`]); the `redis` table
//!   (`call`, `pcall`, `error_reply`, `status_reply`, `sha1hex`, `log`,
//!   `setresp`, ...); globals read-only (`x = 1` and reading an undefined
//!   global are errors, with Redis's messages). Compiled scripts are cached
//!   per state by their SHA1.
//! - `redis.call` turns its arguments into a command and hands it to the
//!   node's [`Commands`] (the router's command planning, wired in by the
//!   binary), which answers with the command's ops; the node runs each op
//!   through the `access` callback (checking the key's slot) and
//!   [`Commands`] shapes the results into the reply a client would get.
//!   Replies become Lua values and back as Redis converts them.
//! - Errors read as Redis 7.0's: `<message> script: <sha>, on
//!   @user_script:<line>.`, with `ERR` before a runtime error's text.
//!
//! Where evenkeel is stricter than Redis: a script that runs longer than
//! [`Limits::time`] or allocates more than [`Limits::memory`] is stopped
//! and nothing it wrote is kept (Redis, past its busy time, lets other
//! clients wait for SCRIPT KILL, which cannot stop a script that wrote).
//! `pcall` cannot catch the stop.

use bytes::Bytes;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R, reply::Kind as Rk};
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, RegistryKey, StdLib, Table, Value, VmState};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

mod libs;

/// The hex SHA1 of a script's body: its name for EVALSHA.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// Whether `body` compiles; else the error EVAL or SCRIPT LOAD answers.
pub fn compile_check(body: &[u8]) -> Result<(), String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).map_err(|e| format!("ERR cannot start Lua: {e}"))?;
    lua.load(body).set_name("@user_script").into_function().map(|_| ()).map_err(compile_error)
}

fn compile_error(e: mlua::Error) -> String {
    let text = match e {
        mlua::Error::SyntaxError { message, .. } => message,
        other => other.to_string(),
    };
    format!("ERR Error compiling script (new function): {}", one_line(&text))
}

/// Error replies are one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// What one `redis.call` is, from the command layer.
pub enum Call {
    /// A data command: run `ops` in order (each a key and what to do to
    /// it), then `answer` shapes their results into the reply. `write`:
    /// the command may write (refused in EVAL_RO scripts).
    Ops { ops: Vec<(Bytes, Kind)>, write: bool, answer: Box<dyn FnOnce(Vec<R>) -> pb::Reply + Send> },
    /// Answered without data (PING, ECHO, TIME), or refused (unknown
    /// command, wrong arity, an argument error, not allowed in scripts).
    Reply(pb::Reply),
    /// PUBLISH or SPUBLISH (`shard`), answered with the receivers' count.
    Publish { shard: bool, channel: Bytes, message: Bytes },
}

/// The command layer a script's `redis.call` goes through. It lives in the
/// router crate (its planning is what clients' commands go through too);
/// the binary hands it to each node.
pub trait Commands: Send + Sync + 'static {
    /// `args` is the command, name first (at least one argument); `resp3`:
    /// the script called `redis.setresp(3)`, so its reply keeps RESP3's
    /// types (else RESP2's). `acl`: the ACL rules of the user running the
    /// script when it may not run everything (`pb::Script::acl`), which
    /// every command must pass; empty: no check.
    fn plan(&self, args: &[Bytes], resp3: bool, acl: &[String]) -> Call;
}

/// The node's side of a script's ops: runs one (key, op) in the script's
/// step and answers its result, or why not.
pub type AccessFn<'a, E> = dyn FnMut(Request<'_>) -> Result<R, Access<E>> + 'a;

/// What a script asks of its node.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// Run this op on this key in the script's step.
    Op(&'a [u8], &'a Kind),
    /// PUBLISH (or SPUBLISH, `shard`): answer how many subscriptions will
    /// receive the message (an Integer), and send it once the script's
    /// writes commit (never, if it is stopped).
    Publish { shard: bool, channel: &'a [u8], message: &'a [u8] },
}

/// Why the node did not run an op of a script.
pub enum Access<E> {
    /// Refused (a key of another slot): `redis.call` raises this error,
    /// which the script may catch.
    Denied(String),
    /// The script must stop now, and nothing it wrote may be kept: a key
    /// in another partition (a keyless script's first), a storage failure.
    Abort(E),
}

/// How a script ended.
#[derive(Debug)]
pub enum Outcome<E> {
    /// It returned, or failed with an error (the reply is that error); as
    /// in Redis, what it wrote before failing is kept.
    Answered(pb::Reply),
    /// Stopped by a limit, or never started (it does not compile): an
    /// error reply, and nothing it wrote may be kept.
    Stopped(pb::Reply),
    /// Stopped by [`Access::Abort`].
    Aborted(E),
}

/// A script's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a script runs before it is stopped (Redis's
    /// `lua-time-limit`, 5 s, after which Redis answers BUSY to others).
    pub time: Duration,
    /// Most memory one Lua state may hold.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { time: Duration::from_secs(5), memory: 256 << 20 }
    }
}

/// The cluster's script time limit as the metadata store holds it
/// (`keys::SCRIPT_TIME_LIMIT`: decimal ms, at least 1; absent: the
/// default); None when unreadable.
pub fn time_limit_from_stored(stored: Option<&[u8]>) -> Option<Duration> {
    match stored {
        None => Some(Limits::default().time),
        Some(raw) => std::str::from_utf8(raw).ok()?.parse::<u64>().ok().filter(|&ms| ms > 0).map(Duration::from_millis),
    }
}

/// Most compiled scripts one Lua state keeps; past it the cache is dropped
/// (a state per concurrent script, so the bound is per state).
const COMPILED_MAX: usize = 1_000;
/// Lua instructions between two looks at the clock.
const HOOK_EVERY: u32 = 10_000;
/// Deepest table a script may return (Redis stops at Lua's C stack).
const NESTING_MAX: usize = 1_000;

/// The Lua states of a node, one per script running at once.
pub struct Engine {
    commands: Arc<dyn Commands>,
    idle: Mutex<Vec<Vm>>,
    limits: Limits,
    /// [`Limits::time`] in ms, changed at runtime ([`Engine::set_time_limit`]).
    time_ms: std::sync::atomic::AtomicU64,
    /// The scripts running now: whether each is a function, and its
    /// state's flags ([`Engine::kill`] stops them).
    running: Mutex<Vec<(bool, Arc<Flags>)>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("idle", &self.idle.lock().len()).field("limits", &self.limits).finish()
    }
}

/// What a running script has been stopped for (`Flags::stop`).
const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const ABORTED: u8 = 2;
/// Out of memory, or a failure of the binding itself: the state is not
/// reused.
const SPOILED: u8 = 3;
/// By SCRIPT KILL or FUNCTION KILL ([`Engine::kill`]).
const KILLED: u8 = 4;

/// Shared by a state's hook, its `pcall` guard and the run.
struct Flags {
    stop: AtomicU8,
    deadline: Mutex<Instant>,
    /// The error line the last failed `redis.call` raised: the handler
    /// writes it as it is (other errors get `ERR ` before them).
    raised: Mutex<Option<String>>,
}

impl Flags {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) != RUNNING
    }
}

struct Vm {
    lua: Lua,
    /// `run(f, handler, ...)`: `f(...)` under xpcall with Redis's error
    /// handler.
    run: Function,
    /// `library_env(loading)`: a function library's globals, and what ends
    /// its loading.
    library_env: Function,
    handler: Function,
    flags: Arc<Flags>,
    compiled: HashMap<String, RegistryKey>,
    /// Function libraries loaded, by their code's SHA1: a table of their
    /// functions by name.
    libraries: HashMap<String, RegistryKey>,
    /// Its memory limit.
    memory: usize,
}

impl Engine {
    pub fn new(commands: Arc<dyn Commands>, limits: Limits) -> Engine {
        let time_ms = std::sync::atomic::AtomicU64::new(limits.time.as_millis() as u64);
        Engine { commands, idle: Mutex::new(Vec::new()), limits, time_ms, running: Mutex::default() }
    }

    /// SCRIPT KILL (EVAL's scripts) or FUNCTION KILL (`functions`): stops
    /// every running script of that kind at its next instruction-count
    /// hook; nothing it wrote is kept. Returns how many it stopped.
    pub fn kill(&self, functions: bool) -> usize {
        self.running.lock().iter().filter(|(f, _)| *f == functions).filter(|(_, flags)| flags.stop.compare_exchange(RUNNING, KILLED, Ordering::Relaxed, Ordering::Relaxed).is_ok()).count()
    }

    /// Sets how long a script may run from its next run on (the cluster's
    /// `busy-reply-threshold`).
    pub fn set_time_limit(&self, limit: Duration) {
        self.time_ms.store(limit.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    pub fn time_limit(&self) -> Duration {
        Duration::from_millis(self.time_ms.load(Ordering::Relaxed))
    }

    /// Runs `script`: each op of each `redis.call` goes to `access` (the
    /// node runs it in the script's step and answers its result).
    pub fn run<E>(&self, script: &pb::Script, access: &mut AccessFn<'_, E>) -> Outcome<E> {
        let taken = self.idle.lock().pop();
        let mut vm = match taken.map_or_else(|| Vm::new(self.limits.memory), Ok) {
            Ok(vm) => vm,
            Err(e) => return Outcome::Stopped(error(format!("ERR cannot start a Lua state: {e}"))),
        };
        vm.flags.stop.store(RUNNING, Ordering::Relaxed);
        let entry = (!script.function.is_empty(), vm.flags.clone());
        self.running.lock().push(entry.clone());
        let outcome = vm.execute(script, self.commands.as_ref(), self.time_limit(), access);
        self.running.lock().retain(|(_, flags)| !Arc::ptr_eq(flags, &entry.1));
        // A stop is a Lua error like any other, which the state survives;
        // not a memory error, which can come anywhere, nor a failure of the
        // binding: that state is made again.
        if vm.flags.stop.load(Ordering::Relaxed) != SPOILED {
            self.idle.lock().push(vm);
        }
        outcome
    }
}

/// The Lua half of the sandbox, run once per state with the flag reader;
/// returns `run`.
const PRELUDE: &str = r##"
local stopped = ...
local raw_pcall, raw_xpcall, error = pcall, xpcall, error
-- A stopped script cannot go on by catching the stop.
local function pass(...)
  if stopped() then error("script stopped", 0) end
  return ...
end
pcall = function(...) return pass(raw_pcall(...)) end
xpcall = function(...) return pass(raw_xpcall(...)) end
for _, name in ipairs({"print", "setfenv", "getfenv", "module", "require", "newproxy", "dofile", "loadfile"}) do
  _G[name] = nil
end
-- The libraries are read-only, as Redis makes them (so no script changes
-- them for the scripts after it): each global is a proxy that reads
-- through to the library. pairs, ipairs, next and rawget see through a
-- proxy; rawset refuses one (Rust, below).
local raw_next, raw_ipairs, raw_rawget = next, ipairs, rawget
local originals = setmetatable({}, {__mode = "k"})
local function readonly(t)
  local proxy = setmetatable({}, {
    __index = t,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
  originals[proxy] = t
  return proxy
end
for _, name in ipairs({"string", "table", "math", "coroutine", "redis", "cjson", "bit", "cmsgpack"}) do
  _G[name] = readonly(_G[name])
end
getmetatable("").__index = _G.string
next = function(t, k) return raw_next(originals[t] or t, k) end
pairs = function(t) return raw_next, originals[t] or t, nil end
ipairs = function(t) return raw_ipairs(originals[t] or t) end
rawget = function(t, k) return raw_rawget(originals[t] or t, k) end
setmetatable(_G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function()
    error("Attempt to modify a readonly table", 2)
  end,
  __metatable = false,
})
local G, rawget, tostring, select, unpack = _G, raw_rawget, tostring, select, unpack
-- `run(f, handler, ...)`: f(...) under xpcall (which passes no arguments
-- in Lua 5.1).
local function run(f, handler, ...)
  if select("#", ...) == 0 then return raw_xpcall(f, handler) end
  local args, n = {...}, select("#", ...)
  return raw_xpcall(function() return f(unpack(args, 1, n)) end, handler)
end
-- A function library's globals: the read-only globals without EVAL's KEYS
-- and ARGV, and, while it loads, `loading` as `redis`. Returns the table
-- and what ends the loading.
local function library_env(loading)
  local env = {}
  setmetatable(env, {
    __index = function(_, k)
      if k == "redis" and loading then return loading end
      local v = rawget(G, k)
      if v == nil or k == "KEYS" or k == "ARGV" then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
    __newindex = function()
      error("Attempt to modify a readonly table", 2)
    end,
    __metatable = false,
  })
  return env, function() loading = nil end
end
return run, library_env, originals
"##;

/// Where a run's `redis.call` finds the node's callback (a function scoped
/// to the run) in the registry.
const RAW: &std::ffi::CStr = c"evenkeel.script.raw";
/// Registry key of the protocol `redis.setresp` chose (2 or 3); each
/// script starts with 2.
const RESP: &str = "evenkeel.script.resp";

/// Whether the running script chose RESP3.
fn resp3(lua: &Lua) -> bool {
    lua.named_registry_value::<i64>(RESP).is_ok_and(|v| v == 3)
}
/// Longest a library's code may run while it loads (Redis: 500 ms).
const LOAD_TIME: Duration = Duration::from_millis(500);

/// A library's function, as FUNCTION LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    pub flags: Vec<String>,
}

/// A function library FUNCTION LOAD accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    /// In the order the code registered them.
    pub functions: Vec<FunctionInfo>,
}

struct Registered {
    info: FunctionInfo,
    callback: Function,
}

/// Loads a library's code as FUNCTION LOAD does, in a state of its own:
/// its name and functions, or FUNCTION LOAD's error.
pub fn load_library(code: &[u8]) -> Result<Library, String> {
    let vm = Vm::new(Limits::default().memory).map_err(|e| format!("ERR cannot start Lua: {e}"))?;
    let (name, registered) = vm.load_library(code, LOAD_TIME)?;
    Ok(Library { name, functions: registered.into_iter().map(|r| r.info).collect() })
}

/// A library's shebang line (`#!lua name=<name>`): its name, and the code
/// with that line made a comment (so lines keep their numbers).
fn library_metadata(code: &[u8]) -> Result<(String, Vec<u8>), String> {
    let Some(rest) = code.strip_prefix(b"#!") else { return Err("ERR Missing library metadata".into()) };
    let Some(end) = rest.iter().position(|&b| b == b'\n') else { return Err("ERR Invalid library metadata".into()) };
    let line = String::from_utf8_lossy(&rest[..end]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for part in parts {
        match part.strip_prefix("name=") {
            Some(n) => name = Some(n.to_string()),
            None => return Err(format!("ERR Invalid metadata value given: {part}")),
        }
    }
    let name = name.ok_or("ERR Library name was not given")?;
    if !valid_name(&name) {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    let mut body = b"--".to_vec();
    body.extend_from_slice(code);
    Ok((name, body))
}

/// Library and function names: letters, digits, underscores.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The flags a function may declare.
const FUNCTION_FLAGS: &[&str] = &["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name = ..., callback = ..., flags =
/// {...}, description = ...}`: adds an entry to `registered`.
fn register_function(lua: &Lua, registered: &Table, args: MultiValue) -> mlua::Result<()> {
    let fail = |m: &str| Err(mlua::Error::runtime(m));
    let (name, callback, description, flags) = match args.len() {
        2 => {
            let mut args = args.into_iter();
            let name = args.next().expect("two");
            let Value::Function(callback) = args.next().expect("two") else { return fail("second argument to redis.register_function must be a function") };
            let Value::String(name) = name else { return fail("first argument to redis.register_function must be a string") };
            (name.to_string_lossy(), callback, None, Vec::new())
        }
        1 => {
            let Some(Value::Table(t)) = args.into_iter().next() else { return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).") };
            let (mut name, mut callback, mut description, mut flags) = (None, None, None, Vec::new());
            for pair in t.pairs::<String, Value>() {
                let (k, v) = pair?;
                match (k.as_str(), v) {
                    ("function_name", Value::String(s)) => name = Some(s.to_string_lossy()),
                    ("function_name", _) => return fail("function_name argument given to redis.register_function must be a string"),
                    ("callback", Value::Function(f)) => callback = Some(f),
                    ("callback", _) => return fail("callback argument given to redis.register_function must be a function"),
                    ("description", Value::String(s)) => description = Some(s.to_string_lossy()),
                    ("description", _) => return fail("description argument given to redis.register_function must be a string"),
                    ("flags", Value::Table(f)) => {
                        for flag in f.sequence_values::<Value>() {
                            match flag? {
                                Value::String(s) if FUNCTION_FLAGS.contains(&&*s.to_string_lossy()) => flags.push(s.to_string_lossy()),
                                _ => return fail("unknown flag given"),
                            }
                        }
                    }
                    ("flags", _) => return fail("flags argument to redis.register_function must be a table representing function flags"),
                    _ => return fail("unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else { return fail("redis.register_function must get a function name argument") };
            let Some(callback) = callback else { return fail("redis.register_function must get a callback argument") };
            (name, callback, description, flags)
        }
        _ => return fail("wrong number of arguments to redis.register_function"),
    };
    if !valid_name(&name) {
        return fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    }
    for entry in registered.sequence_values::<Table>() {
        if entry?.raw_get::<String>("name")? == name {
            return fail("Function already exists in the library");
        }
    }
    let entry = lua.create_table()?;
    entry.raw_set("name", name)?;
    entry.raw_set("callback", callback)?;
    entry.raw_set("description", description)?;
    entry.raw_set("flags", flags)?;
    registered.raw_push(entry)
}

/// `redis.call`: a C function, as Redis's is, so that `return
/// redis.call(...)` is no Lua tail call (the error handler still finds the
/// script's line), and a failed command raises its error line itself, a
/// string, as Redis 7.0 does (`pcall` returns it as it is).
unsafe extern "C-unwind" fn redis_call(state: *mut mlua::lua_State) -> std::ffi::c_int {
    // SAFETY: called by Lua with `state`; only stack and registry calls on
    // it. `lua_call` and `lua_error` may unwind (longjmp) out of this frame,
    // which owns nothing to drop.
    unsafe { forward(state, true) }
}

/// `redis.pcall`: [`redis_call`], but a failed command's error is its
/// answer (a table `{err = ...}`).
unsafe extern "C-unwind" fn redis_pcall(state: *mut mlua::lua_State) -> std::ffi::c_int {
    // SAFETY: as `redis_call`.
    unsafe { forward(state, false) }
}

/// Calls the run's callback with this call's arguments; it answers the
/// reply and whether it is an error.
unsafe fn forward(state: *mut mlua::lua_State, raise: bool) -> std::ffi::c_int {
    use mlua::ffi;
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, RAW.as_ptr());
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, n, 2);
        if raise && ffi::lua_toboolean(state, -1) != 0 {
            ffi::lua_getfield(state, -2, c"err".as_ptr());
            ffi::lua_error(state);
        }
        ffi::lua_settop(state, -2);
        1
    }
}

impl Vm {
    fn new(memory: usize) -> mlua::Result<Vm> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::new())?;
        let flags = Arc::new(Flags { stop: AtomicU8::new(RUNNING), deadline: Mutex::new(Instant::now()), raised: Mutex::new(None) });
        libs::install(&lua)?;
        lua.globals().set("redis", redis_table(&lua)?)?;
        let reader = flags.clone();
        let stopped = lua.create_function(move |_, ()| Ok(reader.stopped()))?;
        let (run, library_env, readonly_tables): (Function, Function, Table) = lua.load(PRELUDE).set_name("=prelude").call(stopped)?;
        let readonly = readonly_tables.clone();
        // rawset may not get past the read-only globals and libraries
        // either (a Rust function, so a failure reads as a C function's).
        let globals = lua.globals();
        let rawset = lua.create_function(move |_, (t, k, v): (Table, Value, Value)| {
            if t.to_pointer() == globals.to_pointer() || readonly.contains_key(&t)? {
                return Err(mlua::Error::runtime("Attempt to modify a readonly table"));
            }
            t.raw_set(k, v)?;
            Ok(t)
        })?;
        lua.globals().raw_set("rawset", rawset)?;
        // Nor setmetatable (Lua's own answers "cannot change a protected
        // metatable"; Redis's, the read-only error).
        let (globals, readonly) = (lua.globals(), readonly_tables.clone());
        let setmetatable_lua: Function = lua.globals().raw_get("setmetatable")?;
        let setmetatable = lua.create_function(move |_, (t, mt): (Table, Value)| {
            if t.to_pointer() == globals.to_pointer() || readonly.contains_key(&t)? {
                return Err(mlua::Error::runtime("Attempt to modify a readonly table"));
            }
            setmetatable_lua.call::<Table>((t, mt))
        })?;
        lua.globals().raw_set("setmetatable", setmetatable)?;
        let raised = flags.clone();
        let handler = lua.create_function(move |lua, err: Value| error_table(lua, err, raised.raised.lock().take()))?;
        let watch = flags.clone();
        lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |_, _| {
            if watch.stopped() || Instant::now() >= *watch.deadline.lock() {
                let _ = watch.stop.compare_exchange(RUNNING, TIMED_OUT, Ordering::Relaxed, Ordering::Relaxed);
                return Err(mlua::Error::runtime("script stopped"));
            }
            Ok(VmState::Continue)
        })?;
        lua.set_memory_limit(memory)?;
        Ok(Vm { lua, run, library_env, handler, flags, compiled: HashMap::new(), libraries: HashMap::new(), memory })
    }

    fn function(&mut self, script: &pb::Script) -> Result<Function, String> {
        if let Some(f) = self.compiled.get(&script.sha).and_then(|key| self.lua.registry_value::<Function>(key).ok()) {
            return Ok(f);
        }
        let f = self.lua.load(&script.body[..]).set_name("@user_script").into_function().map_err(compile_error)?;
        if self.compiled.len() >= COMPILED_MAX {
            for (_, key) in self.compiled.drain() {
                let _ = self.lua.remove_registry_value(key);
            }
        }
        if let Ok(key) = self.lua.create_registry_value(f.clone()) {
            self.compiled.insert(script.sha.clone(), key);
        }
        Ok(f)
    }

    fn execute<E>(&mut self, script: &pb::Script, commands: &dyn Commands, time: Duration, access: &mut AccessFn<'_, E>) -> Outcome<E> {
        if sha1_hex(&script.body) != script.sha {
            return Outcome::Stopped(error("ERR the script's SHA1 does not match its body".into()));
        }
        // EVAL's chunk sees KEYS and ARGV as globals; a library's function
        // gets them as its arguments.
        let called = if script.function.is_empty() {
            self.function(script).and_then(|f| self.set_arguments(script).map(|()| (f, None)).map_err(|e| format!("ERR cannot pass the script its arguments: {}", one_line(&e.to_string()))))
        } else {
            self.library_function(script, time)
        };
        let (f, arguments) = match called {
            Ok(called) => called,
            Err(e) => return Outcome::Stopped(error(e)),
        };
        if let Err(e) = self.lua.set_named_registry_value(RESP, 2) {
            return Outcome::Stopped(error(format!("ERR cannot start the script: {}", one_line(&e.to_string()))));
        }
        // The script's time starts now (a library's loading had its own).
        *self.flags.deadline.lock() = Instant::now() + time;
        *self.flags.raised.lock() = None;
        let aborted = std::cell::RefCell::new(None);
        let flags = self.flags.clone();
        let ran = self.lua.scope(|scope| {
            let raw = scope.create_function_mut(|lua, args: MultiValue| {
                if flags.stopped() {
                    return Err(mlua::Error::runtime("script stopped"));
                }
                let resp3 = resp3(lua);
                match call(commands, script, resp3, args, access) {
                    Step::Reply(reply) => {
                        let failed = match &reply.kind {
                            Some(Rk::Error(e)) => Some(e.clone()),
                            _ => None,
                        };
                        let answer = (to_lua(lua, reply, resp3)?, failed.is_some());
                        *flags.raised.lock() = failed;
                        Ok(answer)
                    }
                    Step::Abort(e) => {
                        *aborted.borrow_mut() = Some(e);
                        flags.stop.store(ABORTED, Ordering::Relaxed);
                        Err(mlua::Error::runtime("script stopped"))
                    }
                }
            })?;
            self.lua.set_named_registry_value(RAW.to_str().expect("ASCII"), raw)?;
            let out = match &arguments {
                None => self.run.call::<MultiValue>((f, self.handler.clone())),
                Some((keys, args)) => self.run.call::<MultiValue>((f, self.handler.clone(), keys.clone(), args.clone())),
            };
            self.lua.set_named_registry_value(RAW.to_str().expect("ASCII"), Value::Nil)?;
            out
        });
        match self.flags.stop.load(Ordering::Relaxed) {
            ABORTED => {
                if let Some(e) = aborted.into_inner() {
                    return Outcome::Aborted(e);
                }
            }
            TIMED_OUT => {
                return Outcome::Stopped(error(format!("ERR script stopped: it ran longer than {} ms, and nothing it wrote was kept", time.as_millis())));
            }
            // Redis's words, where the handler placed the stop.
            KILLED => {
                let name = if script.function.is_empty() { &script.sha } else { &script.function };
                let at = ran.as_ref().ok().and_then(|out| out.iter().nth(1)).and_then(|value| failure(value).1);
                let place = at.map_or(String::new(), |(source, line)| format!(", on {source}:{line}."));
                return Outcome::Stopped(error(format!("ERR Script killed by user with SCRIPT KILL... script: {name}{place}")));
            }
            _ => {}
        }
        let out = match ran {
            Ok(out) => out,
            Err(mlua::Error::MemoryError(_)) => {
                self.flags.stop.store(SPOILED, Ordering::Relaxed);
                return Outcome::Stopped(error(memory_error(self.memory)));
            }
            Err(e) => {
                self.flags.stop.store(SPOILED, Ordering::Relaxed);
                return Outcome::Stopped(error(format!("ERR script failed: {}", one_line(&e.to_string()))));
            }
        };
        let mut out = out.into_iter();
        let ok = matches!(out.next(), Some(Value::Boolean(true)));
        let value = out.next().unwrap_or(Value::Nil);
        if ok {
            return Outcome::Answered(from_lua(&value, 0, resp3(&self.lua)));
        }
        // Lua 5.1 calls no error handler for a memory error: xpcall
        // answers its message.
        if matches!(&value, Value::String(s) if s.as_bytes().as_ref() == b"not enough memory") {
            self.flags.stop.store(SPOILED, Ordering::Relaxed);
            return Outcome::Stopped(error(memory_error(self.memory)));
        }
        let name = if script.function.is_empty() { &script.sha } else { &script.function };
        Outcome::Answered(error(script_error(&value, name)))
    }

    /// FCALL's function: its library loaded (once per state) and the
    /// function's KEYS and ARGV tables.
    fn library_function(&mut self, script: &pb::Script, time: Duration) -> Result<(Function, Option<(Table, Table)>), String> {
        let functions = match self.libraries.get(&script.sha).and_then(|key| self.lua.registry_value::<Table>(key).ok()) {
            Some(functions) => functions,
            None => {
                let (_, registered) = self.load_library(&script.body, time)?;
                let functions = self.lua.create_table().map_err(|e| e.to_string())?;
                for r in registered {
                    functions.raw_set(r.info.name, r.callback).map_err(|e| e.to_string())?;
                }
                if self.libraries.len() >= COMPILED_MAX {
                    for (_, key) in self.libraries.drain() {
                        let _ = self.lua.remove_registry_value(key);
                    }
                }
                if let Ok(key) = self.lua.create_registry_value(functions.clone()) {
                    self.libraries.insert(script.sha.clone(), key);
                }
                functions
            }
        };
        let f = functions.raw_get::<Option<Function>>(script.function.as_str()).ok().flatten().ok_or("ERR Function not found")?;
        let keys = strings(&self.lua, &script.keys).map_err(|e| e.to_string())?;
        let args = strings(&self.lua, &script.args).map_err(|e| e.to_string())?;
        Ok((f, Some((keys, args))))
    }

    /// Runs a library's code (FUNCTION LOAD's) in its own globals, where
    /// `redis` offers `register_function` (and logging) but no commands;
    /// returns its name and what it registered, or FUNCTION LOAD's error.
    fn load_library(&self, code: &[u8], time: Duration) -> Result<(String, Vec<Registered>), String> {
        let (name, body) = library_metadata(code)?;
        let registered = self.lua.create_table().map_err(|e| e.to_string())?;
        let (env, loaded): (Table, Function) = self.library_env.call(self.loading_redis(&registered).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let chunk = self.lua.load(&body[..]).set_name("@user_function").set_environment(env).into_function().map_err(|e| compile_error(e).replace("ERR Error compiling script (new function): ", "ERR Error compiling function: "))?;
        *self.flags.deadline.lock() = Instant::now() + time.min(LOAD_TIME);
        let ran = self.run.call::<MultiValue>((chunk, self.handler.clone()));
        loaded.call::<()>(()).map_err(|e| e.to_string())?;
        if self.flags.stop.load(Ordering::Relaxed) == TIMED_OUT {
            return Err(format!("ERR Error registering functions: the library's code ran longer than {} ms", time.min(LOAD_TIME).as_millis()));
        }
        let mut out = ran.map_err(|e| format!("ERR Error registering functions: {}", one_line(&e.to_string())))?.into_iter();
        if !matches!(out.next(), Some(Value::Boolean(true))) {
            let (message, _) = failure(&out.next().unwrap_or(Value::Nil));
            return Err(one_line(&format!("ERR Error registering functions: {message}")));
        }
        let mut functions = Vec::new();
        for entry in registered.sequence_values::<Table>() {
            let entry = entry.map_err(|e| e.to_string())?;
            let info = FunctionInfo {
                name: entry.raw_get("name").map_err(|e| e.to_string())?,
                description: entry.raw_get("description").map_err(|e| e.to_string())?,
                flags: entry.raw_get::<Vec<String>>("flags").map_err(|e| e.to_string())?,
            };
            functions.push(Registered { info, callback: entry.raw_get("callback").map_err(|e| e.to_string())? });
        }
        if functions.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok((name, functions))
    }

    /// `redis` while a library loads: registering and logging, no
    /// commands (`redis.call` reads as a missing global, as in Redis).
    fn loading_redis(&self, registered: &Table) -> mlua::Result<Table> {
        let redis: Table = self.lua.globals().raw_get("redis")?;
        let loading = self.lua.create_table()?;
        for name in ["log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING", "setresp", "REDIS_VERSION", "REDIS_VERSION_NUM"] {
            loading.raw_set(name, redis.get::<Value>(name)?)?;
        }
        let collector = registered.clone();
        loading.raw_set("register_function", self.lua.create_function(move |lua, args: MultiValue| register_function(lua, &collector, args))?)?;
        let missing = self.lua.load(r#"return setmetatable({}, {__index = function(_, k) error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end})"#).set_name("=loading").call::<Table>(())?;
        loading.set_metatable(missing.metatable())?;
        Ok(loading)
    }

    /// KEYS and ARGV, set past the read-only guard.
    fn set_arguments(&self, script: &pb::Script) -> mlua::Result<()> {
        let globals = self.lua.globals();
        globals.raw_set("KEYS", strings(&self.lua, &script.keys)?)?;
        globals.raw_set("ARGV", strings(&self.lua, &script.args)?)
    }
}

/// A Lua array of `items` as strings (KEYS and ARGV).
fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(&item[..])?)?;
    }
    Ok(t)
}

fn memory_error(limit: usize) -> String {
    format!("ERR script stopped: it used more than {} MiB of memory, and nothing it wrote was kept", limit >> 20)
}

/// A failed script's error line, as Redis 7.0 writes it.
/// `name`: the script's SHA1, or FCALL's function name.
fn script_error(value: &Value, name: &str) -> String {
    let (message, at) = failure(value);
    let message = message.strip_prefix('-').unwrap_or(&message).to_string();
    match at {
        Some((source, line)) => one_line(&format!("{message} script: {name}, on {source}:{line}.")),
        None => one_line(&format!("{message} script: {name}")),
    }
}

/// A failed run's error as the handler left it ([`error_table`]): its
/// message, and the script's source and line it came from, if known.
fn failure(value: &Value) -> (String, Option<(String, i64)>) {
    match value {
        Value::Table(t) => (
            t.raw_get::<Option<String>>("err").ok().flatten().unwrap_or_else(|| "ERR unknown error".into()),
            t.raw_get::<Option<String>>("source").ok().flatten().zip(t.raw_get::<Option<i64>>("line").ok().flatten()),
        ),
        Value::String(s) => (format!("ERR {}", s.to_string_lossy()), None),
        Value::Nil => ("ERR unknown error".into(), None),
        other => (format!("ERR {other:?}"), None),
    }
}

/// The error handler: the error as a table of its message (`ERR ` before
/// a runtime error's text) and the script's line it came from.
fn error_table(lua: &Lua, err: Value, raised: Option<String>) -> mlua::Result<Table> {
    let message = match &err {
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => s.to_string_lossy(),
            _ => "ERR unknown error".into(),
        },
        Value::String(s) if raised.as_deref() == Some(&*s.to_string_lossy()) => s.to_string_lossy(),
        Value::String(s) => format!("ERR {}", s.to_string_lossy()),
        Value::Error(e) => format!("ERR {}", error_text(e)),
        other => format!("ERR {}", other.to_string().unwrap_or_default()),
    };
    let t = lua.create_table()?;
    t.raw_set("err", message)?;
    // The innermost frame of the script itself (not of `redis.call`'s
    // wrapper or a library function).
    for level in 1.. {
        let Some(found) = lua.inspect_stack(level, |d| {
            let source = d.source().source.map(|s| s.to_string());
            source.filter(|s| s == "@user_script" || s == "@user_function").and_then(|s| Some((s, d.current_line()?)))
        }) else {
            break;
        };
        if let Some((source, line)) = found {
            t.raw_set("source", source)?;
            t.raw_set("line", line)?;
            break;
        }
    }
    Ok(t)
}

/// A Rust callback's error without mlua's traceback decoration.
fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// What one `redis.call` came to.
enum Step<E> {
    Reply(pb::Reply),
    Abort(E),
}

fn call<E>(commands: &dyn Commands, script: &pb::Script, resp3: bool, args: MultiValue, access: &mut AccessFn<'_, E>) -> Step<E> {
    let read_only = script.read_only;
    if args.is_empty() {
        return Step::Reply(error("ERR Please specify at least one argument for this redis lib call".into()));
    }
    let mut argv = Vec::with_capacity(args.len());
    for arg in args {
        argv.push(match arg {
            Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
            // Redis prints numbers with "%.17g" (3.0 is "3", 0.1 is
            // "0.10000000000000001").
            Value::Number(n) => Bytes::from(evenkeel_types::float::format_double(n)),
            // Lua 5.1's numbers are all doubles (mlua shows whole ones as
            // integers): 1e17 prints "1e+17", as in Redis.
            Value::Integer(n) => Bytes::from(evenkeel_types::float::format_double(n as f64)),
            _ => return Step::Reply(error("ERR Lua redis lib command arguments must be strings or integers".into())),
        });
    }
    match commands.plan(&argv, resp3, &script.acl) {
        Call::Reply(reply) => Step::Reply(reply),
        Call::Ops { write: true, .. } if read_only => Step::Reply(error("ERR Write commands are not allowed from read-only scripts.".into())),
        // PUBLISH may replicate: a write, for read-only scripts.
        Call::Publish { .. } if read_only => Step::Reply(error("ERR Write commands are not allowed from read-only scripts.".into())),
        Call::Publish { shard, channel, message } => match access(Request::Publish { shard, channel: &channel, message: &message }) {
            Ok(R::Integer(n)) => Step::Reply(pb::Reply { kind: Some(Rk::Integer(n)) }),
            Ok(_) => Step::Reply(error("ERR internal error: the node answered PUBLISH with no count".into())),
            Err(Access::Denied(message)) => Step::Reply(error(message)),
            Err(Access::Abort(e)) => Step::Abort(e),
        },
        Call::Ops { ops, answer, .. } => {
            let mut results = Vec::with_capacity(ops.len());
            for (key, kind) in &ops {
                match access(Request::Op(key, kind)) {
                    Ok(r) => results.push(r),
                    Err(Access::Denied(message)) => return Step::Reply(error(message)),
                    Err(Access::Abort(e)) => return Step::Abort(e),
                }
            }
            Step::Reply(answer(results))
        }
    }
}

fn error(line: String) -> pb::Reply {
    pb::Reply { kind: Some(Rk::Error(line)) }
}

/// A reply as a Lua value, as Redis converts it: integers to numbers,
/// bulk strings to strings, status replies to `{ok = ...}`, errors to
/// `{err = ...}`, nulls to `false` (RESP3: nil), arrays to tables; and
/// after `redis.setresp(3)` RESP3's: a map to `{map = {k = v}}`, a set to
/// `{set = {m = true}}`, a double to `{double = n}`, a big number to
/// `{big_number = s}`, verbatim text to `{verbatim_string = {format = f,
/// string = s}}`, booleans to booleans.
fn to_lua(lua: &Lua, reply: pb::Reply, resp3: bool) -> mlua::Result<Value> {
    let one = |field: &str, value: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, value)?;
        Ok(Value::Table(t))
    };
    let pairs = |a: pb::ReplyArray| -> mlua::Result<Table> {
        let t = lua.create_table()?;
        let mut items = a.items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            t.raw_set(to_lua(lua, k, resp3)?, to_lua(lua, v, resp3)?)?;
        }
        Ok(t)
    };
    Ok(match reply.kind {
        Some(Rk::Bulk(b)) => Value::String(lua.create_string(&b[..])?),
        Some(Rk::Integer(n)) => Value::Number(n as f64),
        Some(Rk::Simple(s)) => one("ok", Value::String(lua.create_string(&s)?))?,
        Some(Rk::Error(e)) => one("err", Value::String(lua.create_string(&e)?))?,
        Some(Rk::Null(_)) | Some(Rk::NullArray(_)) | None if resp3 => Value::Nil,
        Some(Rk::Null(_)) | Some(Rk::NullArray(_)) | None => Value::Boolean(false),
        Some(Rk::Array(a)) => {
            let t = lua.create_table_with_capacity(a.items.len(), 0)?;
            for (i, item) in a.items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, resp3)?)?;
            }
            Value::Table(t)
        }
        Some(Rk::Map(a)) | Some(Rk::NestedMap(a)) => one("map", Value::Table(pairs(a)?))?,
        Some(Rk::Set(a)) => {
            let t = lua.create_table()?;
            for item in a.items {
                t.raw_set(to_lua(lua, item, resp3)?, true)?;
            }
            one("set", Value::Table(t))?
        }
        Some(Rk::Double(d)) => one("double", Value::Number(evenkeel_types::float::parse_double(d.as_bytes()).unwrap_or(f64::NAN)))?,
        Some(Rk::BigNumber(n)) => one("big_number", Value::String(lua.create_string(&n)?))?,
        Some(Rk::Verbatim(v)) => {
            let t = lua.create_table()?;
            t.raw_set("format", lua.create_string(&v.format[..])?)?;
            t.raw_set("string", lua.create_string(&v.text[..])?)?;
            one("verbatim_string", Value::Table(t))?
        }
        Some(Rk::Boolean(b)) => Value::Boolean(b),
    })
}

/// A script's return value as a reply, as Redis converts it: strings to
/// bulk strings, numbers to integers (truncated), `true` to 1 and `false`
/// and nil to null (after `redis.setresp(3)`, booleans to booleans), a
/// table with `err` or `ok` to an error or status, with `double`,
/// `big_number`, `verbatim_string`, `map` or `set` to that RESP3 reply
/// (which a RESP2 client sees in RESP2's form), any other table to an
/// array of its elements 1..n (up to the first nil).
fn from_lua(value: &Value, depth: usize, resp3: bool) -> pb::Reply {
    let kind = match value {
        Value::String(s) => Rk::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Number(n) => Rk::Integer(*n as i64),
        Value::Integer(n) => Rk::Integer(*n),
        Value::Boolean(b) if resp3 => Rk::Boolean(*b),
        Value::Boolean(true) => Rk::Integer(1),
        Value::Table(_) if depth >= NESTING_MAX => Rk::Error(format!("ERR reached the most nesting a script's reply may have ({NESTING_MAX})")),
        Value::Table(t) => match typed_table(t, depth, resp3) {
            Some(kind) => kind,
            None => {
                let mut items = Vec::new();
                for i in 1.. {
                    match t.raw_get::<Value>(i) {
                        Ok(Value::Nil) | Err(_) => break,
                        Ok(v) => items.push(from_lua(&v, depth + 1, resp3)),
                    }
                }
                Rk::Array(pb::ReplyArray { items })
            }
        },
        _ => Rk::Null(pb::Nil {}),
    };
    pb::Reply { kind: Some(kind) }
}

/// A table with a field saying what reply it is (`err`, `ok`, `double`,
/// `big_number`, `verbatim_string`, `map`, `set`, looked for in Redis's
/// order), or None for an array. Apart from [`from_lua`], so an array's
/// recursion keeps its stack frames small.
#[inline(never)]
fn typed_table(t: &Table, depth: usize, resp3: bool) -> Option<Rk> {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        let e = e.to_string_lossy();
        return Some(Rk::Error(one_line(e.strip_prefix('-').unwrap_or(&e))));
    }
    if let Value::String(s) = field("ok") {
        return Some(Rk::Simple(one_line(&s.to_string_lossy())));
    }
    match field("double") {
        Value::Number(n) => return Some(Rk::Double(evenkeel_types::float::format_double(n))),
        Value::Integer(n) => return Some(Rk::Double(evenkeel_types::float::format_double(n as f64))),
        _ => {}
    }
    if let Value::String(n) = field("big_number") {
        return Some(Rk::BigNumber(one_line(&n.to_string_lossy())));
    }
    if let Value::Table(v) = field("verbatim_string")
        && let (Ok(Value::String(format)), Ok(Value::String(text))) = (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
    {
        let format = format.as_bytes();
        return Some(Rk::Verbatim(pb::ReplyVerbatim { format: Bytes::copy_from_slice(&format[..format.len().min(3)]), text: Bytes::copy_from_slice(&text.as_bytes()) }));
    }
    if let Value::Table(m) = field("map") {
        let items = m.pairs::<Value, Value>().flatten().flat_map(|(k, v)| [from_lua(&k, depth + 1, resp3), from_lua(&v, depth + 1, resp3)]).collect();
        return Some(Rk::Map(pb::ReplyArray { items }));
    }
    if let Value::Table(s) = field("set") {
        return Some(Rk::Set(pb::ReplyArray { items: s.pairs::<Value, Value>().flatten().map(|(k, _)| from_lua(&k, depth + 1, resp3)).collect() }));
    }
    None
}

/// The `redis` table.
fn redis_table(lua: &Lua) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    // SAFETY: both are C functions that use Lua's stack API as documented.
    unsafe {
        redis.set("call", lua.create_c_function(redis_call)?)?;
        redis.set("pcall", lua.create_c_function(redis_pcall)?)?;
    }
    redis.set(
        "error_reply",
        lua.create_function(|lua, e: mlua::LuaString| {
            let t = lua.create_table()?;
            let e = e.to_string_lossy();
            t.raw_set("err", e.strip_prefix('-').unwrap_or(&e).to_string())?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, s: mlua::LuaString| {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Ok(t)
        })?,
    )?;
    redis.set("sha1hex", lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?)?;
    redis.set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            let mut args = args.into_iter();
            let level = args.next().and_then(|v| v.as_number().or_else(|| v.as_integer().map(|n| n as f64))).unwrap_or(-1.0);
            let text: Vec<String> = args.map(|v| v.to_string().unwrap_or_default()).collect();
            let text = text.join(" ");
            match level as i64 {
                0 => tracing::debug!(target: "evenkeel::script", "{text}"),
                1 | 2 => tracing::info!(target: "evenkeel::script", "{text}"),
                3 => tracing::warn!(target: "evenkeel::script", "{text}"),
                _ => return Err(mlua::Error::runtime("Invalid debug level.")),
            }
            Ok(())
        })?,
    )?;
    for (name, level) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
        redis.set(name, level)?;
    }
    // No replicas: replication settings are accepted and change nothing.
    for (name, value) in [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)] {
        redis.set(name, value)?;
    }
    redis.set("set_repl", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.set(
        "setresp",
        lua.create_function(|lua, v: i64| match v {
            2 | 3 => lua.set_named_registry_value(RESP, v),
            _ => Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
        })?,
    )?;
    redis.set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.set("REDIS_VERSION", "7.0.15")?;
    redis.set("REDIS_VERSION_NUM", 0x07000f)?;
    Ok(redis)
}

#[cfg(test)]
mod tests;
