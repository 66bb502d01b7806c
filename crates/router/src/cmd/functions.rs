//! FUNCTION and FCALL: Redis 7's function libraries.
//!
//! A library (`#!lua name=<lib>` and code that calls
//! `redis.register_function`) is the cluster's, not one router's: FUNCTION
//! LOAD checks it (loads it in a Lua state of its own, as Redis does) and
//! stores its code at `/evenkeel/functions/<lib>` in the metadata store;
//! every router follows that prefix ([`Functions`]) and knows each
//! library's functions, so FCALL works through any router, and a library
//! survives restarts as the rest of the cluster's metadata does. FUNCTION
//! LOAD, DELETE and FLUSH answer once this router's copy shows the change.
//!
//! FCALL sends the library's code and the function's name as one `Script`
//! op, exactly as EVAL does (see `cmd::scripting`): the node loads the
//! library (once per Lua state, by the code's SHA1) and calls the function
//! with its keys and arguments, atomically, under the partition's lock. A
//! function declared `no-writes` runs read-only; FCALL_RO only runs those.

use super::scripting::declared_keys;
use crate::Router;
use bytes::Bytes;
use evenkeel_meta::MetaStore;
use crate::followed::Followed;
use evenkeel_meta::follow::Snapshot;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb;
use evenkeel_script::{Library, load_library, sha1_hex};
use evenkeel_types::keys::FUNCTIONS_PREFIX;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A library as the routers know it.
#[derive(Debug)]
pub struct Loaded {
    pub code: Bytes,
    pub sha: String,
    pub library: Library,
}

/// Every library, and which library holds each function.
#[derive(Debug, Default)]
pub struct Registry {
    pub libraries: BTreeMap<String, Loaded>,
    functions: HashMap<String, String>,
}

impl Registry {
    fn build(snapshot: &Snapshot) -> Registry {
        let mut r = Registry::default();
        for kv in snapshot.values() {
            match load_library(&kv.value) {
                Ok(library) => {
                    for f in &library.functions {
                        r.functions.insert(f.name.clone(), library.name.clone());
                    }
                    let code = Bytes::copy_from_slice(&kv.value);
                    r.libraries.insert(library.name.clone(), Loaded { sha: sha1_hex(&code), code, library });
                }
                // Stored only after it loaded: a newer build may refuse
                // what an older one took.
                Err(e) => tracing::error!(key = %kv.key, error = %e, "a stored function library does not load; its functions are unavailable"),
            }
        }
        r
    }

    /// A function's library and flags.
    pub fn function(&self, name: &str) -> Option<(&Loaded, &evenkeel_script::FunctionInfo)> {
        let loaded = self.libraries.get(self.functions.get(name)?)?;
        Some((loaded, loaded.library.functions.iter().find(|f| f.name == name)?))
    }

    pub fn function_count(&self) -> usize {
        self.functions.len()
    }
}

/// This router's copy of the cluster's libraries.
pub struct Functions {
    stored: Followed,
    registry: Mutex<Arc<Registry>>,
}

impl Functions {
    pub fn new(meta: Arc<dyn MetaStore>) -> Functions {
        Functions { stored: Followed::new(meta, FUNCTIONS_PREFIX), registry: Mutex::default() }
    }

    /// The libraries as last seen (rebuilt when they changed).
    pub fn current(&self) -> Arc<Registry> {
        self.stored.derived(&self.registry, Registry::build)
    }
}

/// FCALL's and FCALL_RO's script: the function's library and name, its
/// keys (one slot) and arguments.
pub(crate) fn prepare(r: &Router, name: &str, a: &[Bytes]) -> Result<pb::Script, Frame> {
    let registry = r.functions.current();
    let Some((loaded, info)) = registry.function(&String::from_utf8_lossy(&a[1])) else { return Err(Frame::error("ERR Function not found")) };
    // FCALL's own word for a count that is no number.
    let keys = declared_keys(a).map_err(|e| if e == super::not_integer() { Frame::error("ERR Bad number of keys provided") } else { e })?;
    super::keys::one_slot(keys.iter())?;
    let no_writes = info.flags.iter().any(|f| f == "no-writes");
    if name == "fcall_ro" && !no_writes {
        return Err(Frame::error("ERR Can not execute a script with write flag using *_ro command."));
    }
    Ok(pb::Script { body: loaded.code.clone(), sha: loaded.sha.clone(), keys: keys.to_vec(), args: a[3 + keys.len()..].to_vec(), read_only: no_writes, function: info.name.clone(), acl: vec![] })
}

/// FUNCTION and its subcommands.
pub async fn function(r: &Router, a: &[Bytes]) -> Frame {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
    let arity = |ok: bool| if ok { Ok(()) } else { Err(Frame::error(format!("ERR wrong number of arguments for 'function|{}' command", sub.to_ascii_lowercase()))) };
    let checked = match sub.as_str() {
        "LOAD" => arity(a.len() == 3 || a.len() == 4),
        "DELETE" => arity(a.len() == 3),
        "FLUSH" => arity(a.len() <= 3),
        "LIST" => Ok(()),
        "STATS" | "KILL" | "DUMP" | "HELP" => arity(a.len() == 2),
        "RESTORE" => arity(a.len() == 3 || a.len() == 4),
        _ => return Frame::error(format!("ERR unknown subcommand '{}'. Try FUNCTION HELP.", String::from_utf8_lossy(&a[1]))),
    };
    if let Err(e) = checked {
        return e;
    }
    match sub.as_str() {
        "LOAD" => load(r, a).await,
        "DELETE" => delete(r, &String::from_utf8_lossy(&a[2])).await,
        "FLUSH" => match a.get(2).map(|m| String::from_utf8_lossy(m).to_ascii_uppercase()) {
            None => flush(r).await,
            Some(m) if m == "ASYNC" || m == "SYNC" => flush(r).await,
            Some(_) => Frame::error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
        },
        "LIST" => list(r, &a[2..]),
        "STATS" => {
            let registry = r.functions.current();
            let counts = Frame::Map(vec![(Frame::bulk("libraries_count"), Frame::Integer(registry.libraries.len() as i64)), (Frame::bulk("functions_count"), Frame::Integer(registry.function_count() as i64))]);
            Frame::Map(vec![(Frame::bulk("running_script"), Frame::Null), (Frame::bulk("engines"), Frame::Map(vec![(Frame::bulk("LUA"), counts)]))])
        }
        "KILL" => super::scripting::kill(r, true).await,
        "DUMP" => Frame::error("ERR FUNCTION DUMP is not supported: FUNCTION LIST WITHCODE gives every library's code, which FUNCTION LOAD takes"),
        "RESTORE" => Frame::error("ERR FUNCTION RESTORE is not supported: load each library's code with FUNCTION LOAD"),
        "HELP" => Frame::Array(HELP.iter().map(|l| Frame::simple(*l)).collect()),
        _ => unreachable!("checked above"),
    }
}

async fn load(r: &Router, a: &[Bytes]) -> Frame {
    let replace = match a.len() {
        4 if a[2].eq_ignore_ascii_case(b"REPLACE") => true,
        4 => return Frame::error(format!("ERR Unknown option given: {}", String::from_utf8_lossy(&a[2]))),
        _ => false,
    };
    let code = a.last().expect("arity checked");
    let library = match load_library(code) {
        Ok(library) => library,
        Err(e) => return Frame::Error(e),
    };
    let registry = r.functions.current();
    if !replace && registry.libraries.contains_key(&library.name) {
        return Frame::error(format!("ERR Library '{}' already exists", library.name));
    }
    for f in &library.functions {
        if registry.functions.get(&f.name).is_some_and(|holder| *holder != library.name) {
            return Frame::error(format!("ERR Function {} already exists", f.name));
        }
    }
    if let Err(e) = r.functions.stored.put(&library.name, code.to_vec()).await {
        return e;
    }
    Frame::Bulk(library.name.into())
}

async fn delete(r: &Router, name: &str) -> Frame {
    if !r.functions.current().libraries.contains_key(name) {
        return Frame::error("ERR Library not found");
    }
    if let Err(e) = r.functions.stored.delete(name).await {
        return e;
    }
    Frame::ok()
}

async fn flush(r: &Router) -> Frame {
    for name in r.functions.current().libraries.keys() {
        if let Err(e) = r.functions.stored.delete(name).await {
            return e;
        }
    }
    Frame::ok()
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
fn list(r: &Router, a: &[Bytes]) -> Frame {
    let (mut pattern, mut code) = (None, false);
    let mut i = 0;
    while i < a.len() {
        if a[i].eq_ignore_ascii_case(b"WITHCODE") {
            code = true;
        } else if a[i].eq_ignore_ascii_case(b"LIBRARYNAME") {
            let Some(p) = a.get(i + 1) else { return Frame::error("ERR library name argument was not given") };
            pattern = Some(p.clone());
            i += 1;
        } else {
            return Frame::error(format!("ERR Unknown argument {}", String::from_utf8_lossy(&a[i])));
        }
        i += 1;
    }
    let registry = r.functions.current();
    let libraries = registry.libraries.values().filter(|l| pattern.as_ref().is_none_or(|p| evenkeel_types::glob::glob_match(p, l.library.name.as_bytes())));
    Frame::Array(
        libraries
            .map(|l| {
                let functions = l
                    .library
                    .functions
                    .iter()
                    .map(|f| {
                        Frame::Map(vec![
                            (Frame::bulk("name"), Frame::Bulk(f.name.clone().into())),
                            (Frame::bulk("description"), f.description.clone().map_or(Frame::Null, |d| Frame::Bulk(d.into()))),
                            (Frame::bulk("flags"), Frame::Set(f.flags.iter().map(|flag| Frame::simple(flag.clone())).collect())),
                        ])
                    })
                    .collect();
                let mut entry = vec![(Frame::bulk("library_name"), Frame::Bulk(l.library.name.clone().into())), (Frame::bulk("engine"), Frame::bulk("LUA")), (Frame::bulk("functions"), Frame::Array(functions))];
                if code {
                    entry.push((Frame::bulk("library_code"), Frame::Bulk(l.code.clone())));
                }
                Frame::Map(entry)
            })
            .collect(),
    )
}

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];
