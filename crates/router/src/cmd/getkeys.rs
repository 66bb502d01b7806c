//! Which arguments of a command are keys, and what the command does to
//! each, found exactly as Redis 7.0's COMMAND GETKEYS and
//! GETKEYSANDFLAGS find them: those commands answer with them, and ACL
//! checks a user's key patterns (`%R~`, `%W~` by the flags) against them.
//!
//! Redis follows a command's key specs ([`keyspecs`], generated from its
//! COMMAND INFO) and, where they cannot say (a numkeys that is not a
//! plain integer, SORT's STORE, MIGRATE's KEYS) or where the flags depend
//! on the call (SET's GET, BITFIELD's subcommands), the command's own
//! key-finding function, which parses differently (`atoi` for numkeys, a
//! store key listed last) and mostly gives no flags at all. Both are
//! followed here, quirks included, so the answers match argument for
//! argument and flag for flag; keywords are compared as Redis's
//! `strcasecmp` compares them, up to a NUL byte.

use super::{Spec, categories, keyspecs};
use bytes::Bytes;

/// Why a command's keys cannot be listed; each is one of COMMAND GETKEYS's
/// errors ([`GetKeysError::reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetKeysError {
    /// The command (or subcommand) never takes keys.
    NoKeys,
    /// It takes keys, but these arguments have none where it expects them
    /// (a numkeys of 0 or past the end, XREAD without STREAMS, ...): the
    /// command itself would answer with an error.
    Invalid,
    /// A subcommand Redis does not have (`OBJECT NOSUCH`); COMMAND GETKEYS
    /// says the same of a command it does not know.
    UnknownCommand,
    /// An argument count the command's (or subcommand's) arity refuses.
    WrongArity,
}

impl GetKeysError {
    /// COMMAND GETKEYS's error reply.
    pub fn reply(self) -> &'static str {
        match self {
            GetKeysError::NoKeys => "ERR The command has no key arguments",
            GetKeysError::Invalid => "ERR Invalid arguments specified for command",
            GetKeysError::UnknownCommand => "ERR Invalid command specified",
            GetKeysError::WrongArity => "ERR Invalid number of arguments specified for command",
        }
    }
}

/// Redis's key-spec flags (`CMD_KEY_*`): how a command uses a key. One of
/// RO, RW, OW, RM says whether the key's value is read, written or both;
/// ACCESS, UPDATE, INSERT, DELETE what is done with the data. A key found
/// by a command's own key-finding function may have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct KeyFlags(u16);

impl KeyFlags {
    pub const NONE: KeyFlags = KeyFlags(0);
    /// Read-only: the value is read, the key is not changed.
    pub const RO: KeyFlags = KeyFlags(1 << 0);
    /// Read and written (INCR, LPUSH).
    pub const RW: KeyFlags = KeyFlags(1 << 1);
    /// Overwritten, whatever it held (SET without GET, a STORE key).
    pub const OW: KeyFlags = KeyFlags(1 << 2);
    /// Removed (DEL, UNLINK).
    pub const RM: KeyFlags = KeyFlags(1 << 3);
    /// The user's data is read or returned.
    pub const ACCESS: KeyFlags = KeyFlags(1 << 4);
    /// Data is changed in place or overwritten.
    pub const UPDATE: KeyFlags = KeyFlags(1 << 5);
    /// Data is only added (LPUSH, SETNX).
    pub const INSERT: KeyFlags = KeyFlags(1 << 6);
    /// Data is only removed (LPOP, DEL).
    pub const DELETE: KeyFlags = KeyFlags(1 << 7);
    /// Not a key (SPUBLISH's shard channel); never listed as a key.
    pub const NOT_KEY: KeyFlags = KeyFlags(1 << 8);
    /// The spec may not find every key: the command's function does.
    pub const INCOMPLETE: KeyFlags = KeyFlags(1 << 9);
    /// The flags depend on the arguments: the command's function gives them.
    pub const VARIABLE_FLAGS: KeyFlags = KeyFlags(1 << 10);

    /// Every flag and its name, in the order (and spelling) COMMAND INFO
    /// and GETKEYSANDFLAGS list them (Redis's `addReplyFlagsForKeyArgs`).
    const NAMES: [(KeyFlags, &'static str); 11] = [
        (KeyFlags::RO, "RO"),
        (KeyFlags::RW, "RW"),
        (KeyFlags::OW, "OW"),
        (KeyFlags::RM, "RM"),
        (KeyFlags::ACCESS, "access"),
        (KeyFlags::UPDATE, "update"),
        (KeyFlags::INSERT, "insert"),
        (KeyFlags::DELETE, "delete"),
        (KeyFlags::NOT_KEY, "not_key"),
        (KeyFlags::INCOMPLETE, "incomplete"),
        (KeyFlags::VARIABLE_FLAGS, "variable_flags"),
    ];

    /// Both sets of flags.
    pub const fn union(self, other: KeyFlags) -> KeyFlags {
        KeyFlags(self.0 | other.0)
    }

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: KeyFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags' names, as COMMAND GETKEYSANDFLAGS lists them
    /// (`["RW", "access", "update"]`).
    pub fn names(&self) -> Vec<&'static str> {
        KeyFlags::NAMES.iter().filter(|(f, _)| self.0 & f.0 != 0).map(|(_, n)| *n).collect()
    }

    /// Whether ACL needs the key readable (`%R~` or `~`): Redis asks that
    /// of a key whose spec says ACCESS.
    pub fn needs_read(&self) -> bool {
        self.0 & KeyFlags::ACCESS.0 != 0
    }

    /// Whether ACL needs the key writable (`%W~` or `~`): its spec says
    /// INSERT, DELETE or UPDATE.
    pub fn needs_write(&self) -> bool {
        self.0 & (KeyFlags::INSERT.0 | KeyFlags::DELETE.0 | KeyFlags::UPDATE.0) != 0
    }
}

/// One of a command's key specs (COMMAND INFO's element 8): where its
/// keys start, how many follow, and what the command does to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub flags: KeyFlags,
    pub begin: BeginSearch,
    pub find: FindKeys,
}

/// Where a key spec's keys begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument.
    Index(i32),
    /// After the first `keyword`, searched from argument `start_from` on
    /// (back from the end when negative).
    Keyword { keyword: &'static str, start_from: i32 },
    /// Only the command's function knows (SORT's BY, GET and STORE).
    Unknown,
}

/// How many keys a key spec takes from where it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKeys {
    /// Up to `last_key` after the first (negative: counted from the end;
    /// with a `limit`, that part of the rest), every `key_step`th.
    Range { last_key: i32, key_step: i32, limit: i32 },
    /// A count at `key_num_idx` after the beginning, the keys from
    /// `first_key` after it, every `key_step`th.
    KeyNum { key_num_idx: i32, first_key: i32, key_step: i32 },
    /// Only the command's function knows.
    Unknown,
}

/// The indices into `args` (`args[0]` is the command's name) of its key
/// arguments, in the order COMMAND GETKEYS lists them: those of
/// [`keys_and_flags`], without the flags.
pub fn keys_of(spec: &Spec, args: &[Bytes]) -> Result<Vec<usize>, GetKeysError> {
    keys_and_flags(spec, args).map(|keys| keys.into_iter().map(|(i, _)| i).collect())
}

/// The indices into `args` (`args[0]` is the command's name) of its key
/// arguments, each with its flags, as COMMAND GETKEYSANDFLAGS lists them.
/// For a container command, `args[1]` names the subcommand. Arity is
/// checked here as COMMAND GETKEYS checks it (after "no keys"); any
/// argument list is safe, and every index returned is within `args` and
/// not 0.
///
/// A script or function call whose numkeys says nothing usable has no
/// keys rather than invalid arguments (Redis's `no_mandatory_keys`).
pub fn keys_and_flags(spec: &Spec, args: &[Bytes]) -> Result<Vec<(usize, KeyFlags)>, GetKeysError> {
    let subcommand;
    let (name, arity) = if categories::subcommands(spec.name).is_empty() {
        (spec.name, spec.arity)
    } else {
        // A container without a subcommand is the container itself,
        // which has no keys; a subcommand Redis lacks is an invalid
        // command.
        let Some(sub) = args.get(1) else { return Err(GetKeysError::NoKeys) };
        let Some(sub) = categories::subcommands(spec.name).iter().find(|s| sub.eq_ignore_ascii_case(s.as_bytes())) else {
            return Err(GetKeysError::UnknownCommand);
        };
        subcommand = format!("{}|{sub}", spec.name);
        // Only subcommands with keys are in the table.
        let Some(arity) = keyspecs::arity(&subcommand) else { return Err(GetKeysError::NoKeys) };
        (subcommand.as_str(), arity)
    };
    let specs = keyspecs::of(name);
    let function = function_of(name);
    // Redis's `doesCommandHaveKeys`: a key-finding function, or a spec
    // that is not "not a key" (SPUBLISH's shard channel is).
    let has_spec = specs.iter().any(|s| !s.flags.contains(KeyFlags::NOT_KEY));
    if !has_spec && function.is_none() {
        return Err(GetKeysError::NoKeys);
    }
    let n = args.len() as i32;
    if if arity > 0 { n != arity } else { n < -arity } {
        return Err(GetKeysError::WrongArity);
    }
    // Redis's `getKeysFromCommandWithSpecs`: the specs, unless their flags
    // depend on the call; then, or where they fail, the function.
    let variable = specs.iter().any(|s| s.flags.contains(KeyFlags::VARIABLE_FLAGS));
    let from_specs = if has_spec && !variable { from_specs(specs, args) } else { None };
    let keys = from_specs.or_else(|| function.map(|f| f.keys(args))).unwrap_or_default();
    if keys.is_empty() && !spec.flags.contains(&"no_mandatory_keys") {
        return Err(GetKeysError::Invalid);
    }
    Ok(keys)
}

/// Redis's `getKeysUsingKeySpecs`: the keys of every spec in turn, or
/// `None` where one fails (a count that is not a plain integer, keys past
/// the end, an unknown or incomplete spec), for the command's function to
/// find them. A spec whose keyword is missing finds nothing.
fn from_specs(specs: &[KeySpec], args: &[Bytes]) -> Option<Vec<(usize, KeyFlags)>> {
    let argc = args.len() as i32;
    let mut keys = Vec::new();
    for spec in specs {
        if spec.flags.contains(KeyFlags::NOT_KEY) {
            continue;
        }
        let first = match spec.begin {
            BeginSearch::Index(at) => at,
            BeginSearch::Keyword { keyword, start_from } => {
                // Forward up to (not including) the last argument, or back
                // down to (not including) argument 1.
                let (start, end) = if start_from > 0 { (start_from, argc - 1) } else { (argc + start_from, 1) };
                let mut i = start;
                let mut found = None;
                while i != end && (1..argc).contains(&i) {
                    if is(&args[i as usize], keyword) {
                        found = Some(i + 1);
                        break;
                    }
                    i = if start <= end { i + 1 } else { i - 1 };
                }
                let Some(first) = found else { continue };
                first
            }
            BeginSearch::Unknown => return None,
        };
        let (first, last, step) = match spec.find {
            FindKeys::Range { last_key, key_step, limit } => {
                let last = if last_key >= 0 {
                    first + last_key
                } else if limit == 0 {
                    argc + last_key
                } else {
                    first + ((argc - first) / limit + last_key)
                };
                (first, last, key_step)
            }
            FindKeys::KeyNum { key_num_idx, first_key, key_step } => {
                // The count as `string2ll` reads it; C's `first + (int)numkeys
                // - 1`, the count cut to 32 bits.
                let count = evenkeel_types::int::parse_i64(args.get(usize::try_from(first + key_num_idx).ok()?)?)?;
                if count < 0 {
                    return None;
                }
                let first = first + first_key;
                (first, first.wrapping_add(count as i32).wrapping_sub(1), key_step)
            }
            FindKeys::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc || first < 1 {
            return None;
        }
        keys.extend((first..=last).step_by(step.max(1) as usize).map(|i| (i as usize, spec.flags)));
        if spec.flags.contains(KeyFlags::INCOMPLETE) {
            return None;
        }
    }
    Some(keys)
}

/// A command's own key-finding function (Redis's `getkeys_proc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    /// Redis's `genericGetKeys`: a count, the keys, a destination.
    Counted { count_at: usize, store: Option<usize> },
    Sort,
    SortRo,
    Migrate,
    Georadius,
    Xread,
    Set,
    Bitfield,
}

/// The commands Redis 7.0 gives a key-finding function.
fn function_of(name: &str) -> Option<Function> {
    Some(match name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop" | "bzmpop" => Function::Counted { count_at: 2, store: None },
        "lmpop" | "zmpop" | "sintercard" | "zintercard" | "zunion" | "zinter" | "zdiff" => Function::Counted { count_at: 1, store: None },
        "zunionstore" | "zinterstore" | "zdiffstore" => Function::Counted { count_at: 2, store: Some(1) },
        "sort" => Function::Sort,
        "sort_ro" => Function::SortRo,
        "migrate" => Function::Migrate,
        "georadius" | "georadiusbymember" => Function::Georadius,
        "xread" | "xreadgroup" => Function::Xread,
        "set" => Function::Set,
        "bitfield" => Function::Bitfield,
        _ => return None,
    })
}

impl Function {
    /// The keys it finds, with the flags it gives them (none, for most).
    fn keys(self, args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
        let none = |keys: Vec<usize>| keys.into_iter().map(|i| (i, KeyFlags::NONE)).collect();
        let keys = match self {
            Function::Counted { count_at, store } => none(counted(args, count_at, store)),
            Function::Sort => sort(args),
            // BY and GET patterns name keys only once the sorted values are
            // known: neither SORT nor SORT_RO lists them.
            Function::SortRo => vec![(1, KeyFlags::RO.union(KeyFlags::ACCESS))],
            Function::Migrate => migrate(args).into_iter().map(|i| (i, KeyFlags::RW.union(KeyFlags::ACCESS).union(KeyFlags::DELETE))).collect(),
            Function::Georadius => none(georadius(args)),
            Function::Xread => none(xread(args)),
            Function::Set => vec![(1, set_flags(args))],
            Function::Bitfield => vec![(1, bitfield_flags(args))],
        };
        // Every function's keys are within the arguments by construction;
        // should one ever be asked of fewer than its arity allows, callers
        // indexing `args` still cannot panic.
        keys.into_iter().filter(|&(i, _)| i >= 1 && i < args.len()).collect()
    }
}

/// Redis's `genericGetKeys`: the count at `at` read with `atoi`, then that
/// many keys, then the destination if any; none if the count is below 1
/// or more than the arguments left.
fn counted(args: &[Bytes], at: usize, store: Option<usize>) -> Vec<usize> {
    let first = at + 1;
    let num = args.get(at).map_or(0, |a| atoi(a));
    if num < 1 || num as i64 > args.len() as i64 - first as i64 {
        return vec![];
    }
    (first..first + num as usize).chain(store).collect()
}

/// C's `atoi` as glibc has it, `(int) strtol(s, NULL, 10)`: leading white
/// space and a sign are taken, digits read up to the first other byte, an
/// overflow clamps to the 64-bit range and the result keeps its low 32
/// bits.
fn atoi(s: &[u8]) -> i32 {
    let mut i = s.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).count();
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut n: i64 = 0;
    for &c in s[i..].iter().take_while(|c| c.is_ascii_digit()) {
        let d = (c - b'0') as i64;
        n = if negative { n.saturating_mul(10).saturating_sub(d) } else { n.saturating_mul(10).saturating_add(d) };
    }
    n as i32
}

/// `strcasecmp(arg, word) == 0`: the argument as a C string, up to its
/// first NUL byte.
fn is(arg: &[u8], word: &str) -> bool {
    let end = arg.iter().position(|&b| b == 0).unwrap_or(arg.len());
    arg[..end].eq_ignore_ascii_case(word.as_bytes())
}

/// Redis's `sortGetKeys`: SORT's key (read), then the last STORE's
/// destination (overwritten); LIMIT skips two arguments, GET and BY one.
fn sort(args: &[Bytes]) -> Vec<(usize, KeyFlags)> {
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if is(a, "limit") {
            i += 2;
        } else if is(a, "store") && i + 1 < args.len() {
            store = Some(i + 1);
        } else if is(a, "get") || is(a, "by") {
            i += 1;
        }
        i += 1;
    }
    let read = (1, KeyFlags::RO.union(KeyFlags::ACCESS));
    [read].into_iter().chain(store.map(|i| (i, KeyFlags::OW.union(KeyFlags::UPDATE)))).collect()
}

/// Redis's `georadiusGetKeys` (which its key specs leave nothing to):
/// the key, then the argument after the last STORE or STOREDIST from the
/// options on.
fn georadius(args: &[Bytes]) -> Vec<usize> {
    let mut stored = None;
    let mut i = 5;
    while i < args.len() {
        if (is(&args[i], "store") || is(&args[i], "storedist")) && i + 1 < args.len() {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    [1].into_iter().chain(stored).collect()
}

/// Redis's `xreadGetKeys`, for XREAD and XREADGROUP when the key spec
/// finds no key (a single argument after STREAMS): the options parsed up
/// to STREAMS, then the first half of what follows it, which must be an
/// even count.
fn xread(args: &[Bytes]) -> Vec<usize> {
    let mut i = 1;
    let mut at = None;
    while i < args.len() {
        let a = &args[i];
        if is(a, "block") || is(a, "count") {
            i += 1;
        } else if is(a, "group") {
            i += 2;
        } else if is(a, "streams") {
            at = Some(i);
            break;
        } else if !is(a, "noack") {
            break;
        }
        i += 1;
    }
    let Some(at) = at else { return vec![] };
    let num = args.len() - at - 1;
    if num == 0 || !num.is_multiple_of(2) {
        return vec![];
    }
    (at + 1..at + 1 + num / 2).collect()
}

/// Redis's `migrateGetKeys`: the key argument, or, from the first KEYS
/// after the options (AUTH skips one argument, AUTH2 two), what follows
/// it; nothing if the key argument is not empty then (MIGRATE refuses
/// that).
fn migrate(args: &[Bytes]) -> Vec<usize> {
    let argc = args.len();
    let mut i = 6;
    while i < argc {
        let a = &args[i];
        if is(a, "keys") {
            return if args[3].is_empty() { (i + 1..argc).collect() } else { vec![] };
        }
        if is(a, "auth") {
            i += 1;
        } else if is(a, "auth2") {
            i += 2;
        }
        i += 1;
    }
    vec![3]
}

/// Redis's `setGetKeys`: SET's key is read too (and its old value
/// returned) if any argument after the value is GET.
fn set_flags(args: &[Bytes]) -> KeyFlags {
    if args.iter().skip(3).any(|a| is(a, "get")) {
        KeyFlags::RW.union(KeyFlags::ACCESS).union(KeyFlags::UPDATE)
    } else {
        KeyFlags::OW.union(KeyFlags::UPDATE)
    }
}

/// Redis's `bitfieldGetKeys`: read-only if every operation is a GET (or
/// OVERFLOW) with its arguments, else read and written; an operation
/// short of its arguments counts as a write.
fn bitfield_flags(args: &[Bytes]) -> KeyFlags {
    let mut read_only = true;
    let mut i = 2;
    while i < args.len() {
        let rest = args.len() - i - 1;
        let a = &args[i];
        if is(a, "get") && rest >= 2 {
            i += 2;
        } else if is(a, "overflow") && rest >= 1 {
            i += 1;
        } else {
            // SET or INCRBY, or a syntax error: not read-only.
            read_only = false;
            break;
        }
        i += 1;
    }
    if read_only { KeyFlags::RO.union(KeyFlags::ACCESS) } else { KeyFlags::RW.union(KeyFlags::ACCESS).union(KeyFlags::UPDATE) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{SPECS, find};
    use proptest::prelude::*;

    fn bytes(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn keys(args: &[&str]) -> Result<Vec<usize>, GetKeysError> {
        let spec = find(&args[0].to_ascii_lowercase()).expect("a served command");
        keys_of(spec, &bytes(args))
    }

    /// The keys themselves, as COMMAND GETKEYS shows them.
    fn named<'a>(args: &[&'a str]) -> Result<Vec<&'a str>, GetKeysError> {
        keys(args).map(|k| k.into_iter().map(|i| args[i]).collect())
    }

    /// The keys and their flags, as COMMAND GETKEYSANDFLAGS shows them.
    fn flagged<'a>(args: &[&'a str]) -> Result<Vec<(&'a str, Vec<&'static str>)>, GetKeysError> {
        let spec = find(&args[0].to_ascii_lowercase()).expect("a served command");
        keys_and_flags(spec, &bytes(args)).map(|k| k.into_iter().map(|(i, f)| (args[i], f.names())).collect())
    }

    use GetKeysError::*;

    #[test]
    fn fixed_positions() {
        assert_eq!(named(&["get", "a"]), Ok(vec!["a"]));
        assert_eq!(named(&["mset", "a", "1", "b", "2"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["mset", "a", "1", "b"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["blpop", "a", "b", "0"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["bitop", "and", "d", "a", "b"]), Ok(vec!["d", "a", "b"]));
        assert_eq!(named(&["pfdebug", "getreg", "h"]), Ok(vec!["h"]));
        assert_eq!(named(&["pfmerge", "d", "a"]), Ok(vec!["d", "a"]));
        assert_eq!(named(&["pfmerge", "d"]), Err(Invalid));
        assert_eq!(named(&["ping"]), Err(NoKeys));
        assert_eq!(named(&["keys", "*"]), Err(NoKeys));
        assert_eq!(named(&["spublish", "ch", "m"]), Err(NoKeys));
        assert_eq!(named(&["get"]), Err(WrongArity));
        assert_eq!(named(&["get", "a", "b"]), Err(WrongArity));
    }

    #[test]
    fn numkeys() {
        assert_eq!(named(&["eval", "s", "2", "a", "b", "x"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["eval", "s", "5", "a"]), Ok(vec![]));
        assert_eq!(named(&["fcall", "f", "0"]), Ok(vec![]));
        // Not string2ll's integers: atoi's.
        assert_eq!(named(&["eval", "s", "1abc", "a"]), Ok(vec!["a"]));
        assert_eq!(named(&["eval", "s", " +1", "a"]), Ok(vec!["a"]));
        // 2^32 + 1 is 1 once cut to 32 bits.
        assert_eq!(named(&["zunion", "4294967297", "a"]), Ok(vec!["a"]));
        assert_eq!(named(&["zunion", "3", "a", "b"]), Err(Invalid));
        assert_eq!(named(&["zunion", "0", "a"]), Err(Invalid));
        assert_eq!(named(&["lmpop", "2", "a", "b", "left"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["lmpop", "01", "a", "left"]), Ok(vec!["a"]));
        assert_eq!(named(&["blmpop", "0", "2", "a", "b", "left"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["zunionstore", "d", "2", "a", "b"]), Ok(vec!["d", "a", "b"]));
        assert_eq!(named(&["zunionstore", "d", "1abc", "a"]), Ok(vec!["a", "d"]));
        assert_eq!(named(&["zunionstore", "d", "3", "a", "b"]), Err(Invalid));
    }

    #[test]
    fn keywords() {
        assert_eq!(named(&["sort", "k", "store", "a", "STORE", "b"]), Ok(vec!["k", "b"]));
        assert_eq!(named(&["sort", "k", "limit", "store", "x", "y"]), Ok(vec!["k"]));
        assert_eq!(named(&["sort", "k", "by", "store", "store\0!", "x"]), Ok(vec!["k", "x"]));
        assert_eq!(named(&["sort_ro", "k", "store", "d"]), Ok(vec!["k"]));
        assert_eq!(named(&["georadius", "k", "0", "0", "1", "m", "storedist", "d", "store", "e"]), Ok(vec!["k", "e", "d"]));
        assert_eq!(named(&["georadiusbymember", "k", "m", "1", "m", "store", "d"]), Ok(vec!["k", "d"]));
        assert_eq!(named(&["xread", "count", "1", "streams", "a", "b", "0", "0"]), Ok(vec!["a", "b"]));
        assert_eq!(named(&["xread", "streams", "a", "b", "c"]), Ok(vec!["a"]));
        assert_eq!(named(&["xread", "count", "1", "streams", "a"]), Err(Invalid));
        assert_eq!(named(&["xread", "count", "1", "block", "2"]), Err(Invalid));
        assert_eq!(named(&["xreadgroup", "group", "streams", "c", "streams", "a", "0"]), Ok(vec!["a"]));
        assert_eq!(named(&["migrate", "h", "p", "k", "0", "1"]), Ok(vec!["k"]));
        assert_eq!(named(&["migrate", "h", "p", "", "0", "1", "auth", "keys", "x", "y"]), Ok(vec![""]));
        assert_eq!(named(&["migrate", "h", "p", "", "0", "1", "copy", "keys", "x", "y"]), Ok(vec!["x", "y"]));
        assert_eq!(named(&["migrate", "h", "p", "k", "0", "1", "keys", "a"]), Err(Invalid));
    }

    #[test]
    fn subcommands() {
        assert_eq!(named(&["object", "encoding", "k"]), Ok(vec!["k"]));
        assert_eq!(named(&["OBJECT", "Freq", "k"]), Ok(vec!["k"]));
        assert_eq!(named(&["object", "encoding"]), Err(WrongArity));
        assert_eq!(named(&["object", "nosuch", "k"]), Err(UnknownCommand));
        assert_eq!(named(&["object", "help"]), Err(NoKeys));
        assert_eq!(named(&["object"]), Err(NoKeys));
        assert_eq!(named(&["memory", "usage", "k", "samples", "5"]), Ok(vec!["k"]));
        assert_eq!(named(&["xgroup", "create", "s", "g", "$"]), Ok(vec!["s"]));
        assert_eq!(named(&["xinfo", "stream", "s", "full"]), Ok(vec!["s"]));
        assert_eq!(named(&["client", "list"]), Err(NoKeys));
        assert_eq!(named(&["command", "getkeys"]), Err(NoKeys));
    }

    #[test]
    fn flags_from_the_specs() {
        assert_eq!(flagged(&["get", "a"]), Ok(vec![("a", vec!["RO", "access"])]));
        assert_eq!(flagged(&["del", "a", "b"]), Ok(vec![("a", vec!["RM", "delete"]), ("b", vec!["RM", "delete"])]));
        assert_eq!(flagged(&["exists", "a"]), Ok(vec![("a", vec!["RO"])]));
        assert_eq!(flagged(&["lmove", "a", "b", "left", "right"]), Ok(vec![("a", vec!["RW", "access", "delete"]), ("b", vec!["RW", "insert"])]));
        assert_eq!(flagged(&["zunionstore", "d", "1", "a"]), Ok(vec![("d", vec!["OW", "update"]), ("a", vec!["RO", "access"])]));
        assert_eq!(flagged(&["eval", "s", "1", "k"]), Ok(vec![("k", vec!["RW", "access", "update"])]));
        assert_eq!(flagged(&["eval_ro", "s", "1", "k"]), Ok(vec![("k", vec!["RO", "access"])]));
        assert_eq!(flagged(&["georadius", "g", "0", "0", "1", "m", "store", "d"]), Ok(vec![("g", vec!["RO", "access"]), ("d", vec!["OW", "update"])]));
        assert_eq!(flagged(&["xreadgroup", "group", "g", "c", "streams", "s", ">"]), Ok(vec![("s", vec!["RO", "access"])]));
        assert_eq!(flagged(&["migrate", "h", "p", "k", "0", "1"]), Ok(vec![("k", vec!["RW", "access", "delete"])]));
        assert_eq!(flagged(&["object", "encoding", "k"]), Ok(vec![("k", vec!["RO"])]));
        assert_eq!(flagged(&["xgroup", "createconsumer", "s", "g", "c"]), Ok(vec![("s", vec!["RW", "insert"])]));
    }

    #[test]
    fn flags_from_the_functions() {
        // SET's and BITFIELD's depend on the call.
        assert_eq!(flagged(&["set", "k", "v"]), Ok(vec![("k", vec!["OW", "update"])]));
        assert_eq!(flagged(&["set", "k", "v", "EX", "1", "get"]), Ok(vec![("k", vec!["RW", "access", "update"])]));
        assert_eq!(flagged(&["set", "k", "get"]), Ok(vec![("k", vec!["OW", "update"])]));
        assert_eq!(flagged(&["set", "k", "v", "GET\0x"]), Ok(vec![("k", vec!["RW", "access", "update"])]));
        assert_eq!(flagged(&["bitfield", "k"]), Ok(vec![("k", vec!["RO", "access"])]));
        assert_eq!(flagged(&["bitfield", "k", "get", "u8", "0", "overflow", "sat", "GET", "i4", "#1"]), Ok(vec![("k", vec!["RO", "access"])]));
        assert_eq!(flagged(&["bitfield", "k", "get", "u8", "0", "set", "u8", "0", "1"]), Ok(vec![("k", vec!["RW", "access", "update"])]));
        assert_eq!(flagged(&["bitfield", "k", "get", "u8"]), Ok(vec![("k", vec!["RW", "access", "update"])]));
        assert_eq!(flagged(&["bitfield", "k", "overflow"]), Ok(vec![("k", vec!["RW", "access", "update"])]));
        // A count the specs cannot read: `genericGetKeys`, no flags.
        assert_eq!(flagged(&["zunionstore", "d", "1abc", "a"]), Ok(vec![("a", vec![]), ("d", vec![])]));
        assert_eq!(flagged(&["eval", "s", "1x", "k"]), Ok(vec![("k", vec![])]));
        // SORT's and MIGRATE's functions give theirs.
        assert_eq!(flagged(&["sort", "k", "store", "d"]), Ok(vec![("k", vec!["RO", "access"]), ("d", vec!["OW", "update"])]));
        assert_eq!(flagged(&["sort_ro", "k", "by", "x"]), Ok(vec![("k", vec!["RO", "access"])]));
        assert_eq!(flagged(&["migrate", "h", "p", "", "0", "1", "keys", "a", "b"]), Ok(vec![("a", vec!["RW", "access", "delete"]), ("b", vec!["RW", "access", "delete"])]));
        // XREADGROUP's, when the spec finds one argument after the last
        // STREAMS and the function an earlier one: none.
        assert_eq!(flagged(&["xreadgroup", "streams", "a", "b", "c", "d", "streams", "x"]), Ok(vec![("a", vec![]), ("b", vec![]), ("c", vec![])]));
    }

    #[test]
    fn flag_names_and_acl_needs() {
        let all = KeyFlags::NAMES.iter().fold(KeyFlags::NONE, |a, (f, _)| a.union(*f));
        assert_eq!(all.names(), ["RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key", "incomplete", "variable_flags"]);
        assert!(KeyFlags::NONE.names().is_empty());
        let f = |flags: &[KeyFlags]| flags.iter().fold(KeyFlags::NONE, |a, f| a.union(*f));
        assert!(f(&[KeyFlags::RO, KeyFlags::ACCESS]).needs_read() && !f(&[KeyFlags::RO, KeyFlags::ACCESS]).needs_write());
        assert!(!f(&[KeyFlags::RO]).needs_read() && !f(&[KeyFlags::RO]).needs_write());
        assert!(!f(&[KeyFlags::OW, KeyFlags::UPDATE]).needs_read() && f(&[KeyFlags::OW, KeyFlags::UPDATE]).needs_write());
        assert!(f(&[KeyFlags::RW, KeyFlags::INSERT]).needs_write() && f(&[KeyFlags::RM, KeyFlags::DELETE]).needs_write());
        assert!(f(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::DELETE]).needs_read() && f(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::DELETE]).needs_write());
        // RW alone (PFCOUNT's spec is RW and access) is neither.
        assert!(!f(&[KeyFlags::RW]).needs_read() && !f(&[KeyFlags::RW]).needs_write());
    }

    /// A spec Redis cannot follow alone (unknown, incomplete, or with
    /// flags that depend on the call) has a function here, and a command
    /// with a function has specs.
    #[test]
    fn functions_where_the_specs_need_them() {
        for spec in SPECS {
            let specs = keyspecs::of(spec.name);
            let needs = specs.iter().any(|k| {
                k.begin == BeginSearch::Unknown || k.find == FindKeys::Unknown || k.flags.contains(KeyFlags::INCOMPLETE) || k.flags.contains(KeyFlags::VARIABLE_FLAGS)
            });
            assert!(!needs || function_of(spec.name).is_some(), "{}", spec.name);
            assert!(function_of(spec.name).is_none() || !specs.is_empty(), "{}", spec.name);
        }
    }

    #[test]
    fn atoi_as_glibc() {
        for (s, n) in [("12", 12), (" \t-7x", -7), ("+3", 3), ("", 0), ("-", 0), ("4294967297", 1), ("99999999999999999999", -1), ("-99999999999999999999", 0), ("1\u{0}2", 1)] {
            assert_eq!(atoi(s.as_bytes()), n, "{s:?}");
        }
    }

    /// Arguments mostly made of the words the key finders look for, so
    /// their branches are taken.
    fn word() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            prop::sample::select(&["store", "STOREDIST", "keys", "streams", "limit", "by", "get", "GET", "set", "incrby", "overflow", "block", "count", "group", "noack", "auth", "auth2", "copy", "", "0", "1", "2", "-1", "3", "4294967297", "2147483647", "-2147483648", "01", " 1", "encoding", "usage", "create", "stream", "help"][..]).prop_map(|w: &str| Bytes::from_static(w.as_bytes())),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from),
        ]
    }

    /// What every answer must be: indices within the arguments, never the
    /// command's name; the same keys from [`keys_of`].
    fn check(spec: &Spec, args: &[Bytes]) {
        let answer = keys_and_flags(spec, args);
        if let Ok(keys) = &answer {
            assert!(keys.iter().all(|&(k, _)| k >= 1 && k < args.len()), "{} {keys:?}", spec.name);
        }
        assert_eq!(keys_of(spec, args), answer.map(|k| k.into_iter().map(|(i, _)| i).collect()), "{}", spec.name);
    }

    proptest! {
        /// Never a panic nor an index outside the arguments, for every
        /// command and any arguments (within arity or not).
        #[test]
        fn any_arguments_are_safe(which in 0..SPECS.len(), rest in prop::collection::vec(word(), 0..12)) {
            let spec = &SPECS[which];
            let args: Vec<Bytes> = std::iter::once(Bytes::from_static(spec.name.as_bytes())).chain(rest).collect();
            check(spec, &args);
        }
    }

    /// Every argument count from none to 12 of every command, each
    /// argument a keyword or a count.
    #[test]
    fn small_argument_lists_are_safe() {
        let words: Vec<Bytes> = ["store", "keys", "streams", "limit", "2", "0", "", "group", "auth2", "get", "encoding"].iter().map(|w| Bytes::from_static(w.as_bytes())).collect();
        for spec in SPECS {
            for n in 0..=12 {
                for offset in 0..words.len() {
                    let args: Vec<Bytes> = std::iter::once(Bytes::from_static(spec.name.as_bytes())).chain((0..n).map(|i| words[(i * 7 + offset) % words.len()].clone())).collect();
                    check(spec, &args);
                }
            }
            check(spec, &[]);
        }
    }
}
