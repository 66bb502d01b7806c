//! Which arguments of a command are keys, found exactly as Redis 7.0's
//! COMMAND GETKEYS finds them: COMMAND GETKEYS answers with them, and ACL
//! checks a user's key patterns against them.
//!
//! Redis reads a command's key specs first and, where a spec cannot say
//! (a numkeys that is not a plain integer, SORT's STORE, MIGRATE's KEYS),
//! falls back on the command's own key-finding function, which parses
//! differently (`atoi` for numkeys, a store key listed last). Both are
//! followed here, quirks included, so the answers match argument for
//! argument; keywords are compared as Redis's `strcasecmp` compares them,
//! up to a NUL byte.

use super::{Spec, categories};
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

/// The indices into `args` (`args[0]` is the command's name) of its key
/// arguments, in the order COMMAND GETKEYS lists them. For a container
/// command, `args[1]` names the subcommand. Arity is checked here as
/// COMMAND GETKEYS checks it (after "no keys"); any argument list is
/// safe, and every index returned is within `args`.
///
/// A script or function call whose numkeys says nothing usable has no
/// keys rather than invalid arguments (Redis's `no_mandatory_keys`).
pub fn keys_of(spec: &Spec, args: &[Bytes]) -> Result<Vec<usize>, GetKeysError> {
    if !categories::subcommands(spec.name).is_empty() {
        return subcommand_keys(spec.name, args);
    }
    // Shard channels: Redis's key specs for them are marked "not a key".
    let no_keys = matches!(spec.name, "spublish" | "ssubscribe" | "sunsubscribe") || (spec.first_key == 0 && !spec.flags.contains(&"movablekeys"));
    if no_keys {
        return Err(GetKeysError::NoKeys);
    }
    if !super::arity_ok(spec, args.len()) {
        return Err(GetKeysError::WrongArity);
    }
    let mut keys = match spec.name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop" | "bzmpop" => numkeys(args, 2).unwrap_or_else(|| counted(args, 2, None)),
        "lmpop" | "zmpop" | "sintercard" | "zintercard" | "zunion" | "zinter" | "zdiff" => numkeys(args, 1).unwrap_or_else(|| counted(args, 1, None)),
        // The destination's spec comes first; the fallback lists it last.
        "zunionstore" | "zinterstore" | "zdiffstore" => numkeys(args, 2).map(|k| [vec![1], k].concat()).unwrap_or_else(|| counted(args, 2, Some(1))),
        // BY and GET patterns name keys only once the sorted values are
        // known: neither SORT nor SORT_RO lists them.
        "sort" => sort(args),
        "sort_ro" => vec![1],
        "georadius" => georadius(args, 6),
        "georadiusbymember" => georadius(args, 5),
        "xread" => streams(args, 1),
        "xreadgroup" => streams(args, 4),
        "migrate" => migrate(args),
        // Two key specs, the destination and the sources after it; with no
        // source the second finds nothing where it must, so Redis calls the
        // arguments invalid.
        "pfmerge" if args.len() == 2 => vec![],
        _ => range(spec, args.len()),
    };
    // Within the arity every index is in `args`; should a spec's arity and
    // key positions ever disagree, callers indexing `args` still cannot
    // panic.
    keys.retain(|&k| k < args.len());
    if keys.is_empty() && !spec.flags.contains(&"no_mandatory_keys") {
        return Err(GetKeysError::Invalid);
    }
    Ok(keys)
}

/// Subcommands that take a key (always their second argument, index 2),
/// with their arity; every other subcommand takes none.
const KEYED_SUBCOMMANDS: &[(&str, &str, i32)] = &[
    ("memory", "usage", -3),
    ("object", "encoding", 3),
    ("object", "freq", 3),
    ("object", "idletime", 3),
    ("object", "refcount", 3),
    ("xgroup", "create", -5),
    ("xgroup", "createconsumer", 5),
    ("xgroup", "delconsumer", 5),
    ("xgroup", "destroy", 4),
    ("xgroup", "setid", -5),
    ("xinfo", "consumers", 4),
    ("xinfo", "groups", 3),
    ("xinfo", "stream", -3),
];

/// A container command: without a subcommand it is the container itself,
/// which has no keys; a subcommand Redis lacks is an invalid command.
fn subcommand_keys(container: &str, args: &[Bytes]) -> Result<Vec<usize>, GetKeysError> {
    let Some(sub) = args.get(1) else { return Err(GetKeysError::NoKeys) };
    let Some(sub) = categories::subcommands(container).iter().find(|s| sub.eq_ignore_ascii_case(s.as_bytes())) else {
        return Err(GetKeysError::UnknownCommand);
    };
    let Some(&(_, _, arity)) = KEYED_SUBCOMMANDS.iter().find(|(c, s, _)| *c == container && s == sub) else {
        return Err(GetKeysError::NoKeys);
    };
    let n = args.len() as i32;
    if if arity > 0 { n != arity } else { n < -arity } {
        return Err(GetKeysError::WrongArity);
    }
    Ok(vec![2])
}

/// COMMAND's first/last/step: a negative last counts from the end.
fn range(spec: &Spec, argc: usize) -> Vec<usize> {
    let argc = argc as i32;
    let (first, step) = (spec.first_key, spec.step.max(1));
    let last = if spec.last_key < 0 { argc + spec.last_key } else { spec.last_key };
    if first < 1 || last >= argc || last < first {
        return vec![];
    }
    (first..=last).step_by(step as usize).map(|i| i as usize).collect()
}

/// A numkeys key spec: the count at `at` (as `string2ll` reads it), then
/// that many keys. `None` where the spec fails and Redis falls back on
/// [`counted`]: a count that is not a plain integer, negative, zero, or
/// past the last argument.
fn numkeys(args: &[Bytes], at: usize) -> Option<Vec<usize>> {
    let n = evenkeel_types::int::parse_i64(args.get(at)?)?;
    if n < 0 {
        return None;
    }
    let (argc, first) = (args.len() as i32, at as i32 + 1);
    // C's `first + (int)numkeys - 1`: the count cut to 32 bits.
    let last = first.wrapping_add(n as i32).wrapping_sub(1);
    if last >= argc || last < first || first >= argc {
        return None;
    }
    Some((first..=last).map(|i| i as usize).collect())
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

/// A keyword key spec searching forward from `from`: the index after the
/// first `word`, which is never the last argument.
fn after_keyword(args: &[Bytes], word: &str, from: usize) -> Option<usize> {
    (from..args.len().saturating_sub(1)).find(|&i| is(&args[i], word)).map(|i| i + 1)
}

/// SORT's key, then the last STORE's destination (Redis's `sortGetKeys`:
/// LIMIT skips two arguments, GET and BY one).
fn sort(args: &[Bytes]) -> Vec<usize> {
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
    [1].into_iter().chain(store).collect()
}

/// GEORADIUS and GEORADIUSBYMEMBER's key specs: the key, then the
/// argument after the first STORE, then after the first STOREDIST, each
/// searched from the first option on (`from`).
fn georadius(args: &[Bytes], from: usize) -> Vec<usize> {
    [Some(1), after_keyword(args, "store", from), after_keyword(args, "storedist", from)].into_iter().flatten().collect()
}

/// XREAD and XREADGROUP: the key spec takes the first half of what
/// follows the first STREAMS at or after `from` (an odd count rounded
/// down); with a single argument after it, Redis's `xreadGetKeys`
/// parses the options instead.
fn streams(args: &[Bytes], from: usize) -> Vec<usize> {
    let Some(first) = after_keyword(args, "streams", from) else { return vec![] };
    let count = (args.len() - first) / 2;
    if count >= 1 {
        return (first..first + count).collect();
    }
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

/// MIGRATE: the key argument, unless KEYS appears (searching back from
/// the second-to-last argument); then Redis's `migrateGetKeys` finds the
/// first KEYS from the options on (AUTH skips one argument, AUTH2 two)
/// and takes what follows it, or nothing if the key argument is not
/// empty (MIGRATE refuses that).
fn migrate(args: &[Bytes]) -> Vec<usize> {
    let argc = args.len();
    if !(2..argc.saturating_sub(1)).any(|i| is(&args[i], "keys")) {
        return vec![3];
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{SPECS, find};
    use proptest::prelude::*;

    fn keys(args: &[&str]) -> Result<Vec<usize>, GetKeysError> {
        let spec = find(&args[0].to_ascii_lowercase()).expect("a served command");
        keys_of(spec, &args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect::<Vec<_>>())
    }

    /// The keys themselves, as COMMAND GETKEYS shows them.
    fn named<'a>(args: &[&'a str]) -> Result<Vec<&'a str>, GetKeysError> {
        keys(args).map(|k| k.into_iter().map(|i| args[i]).collect())
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
    fn keyed_subcommands_are_redis_subcommands() {
        for (container, sub, _) in KEYED_SUBCOMMANDS {
            assert!(categories::subcommands(container).contains(sub), "{container}|{sub}");
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
            prop::sample::select(&["store", "STOREDIST", "keys", "streams", "limit", "by", "get", "block", "count", "group", "noack", "auth", "auth2", "copy", "", "0", "1", "2", "-1", "3", "4294967297", "2147483647", "-2147483648", "01", " 1", "encoding", "usage", "create", "stream", "help"][..]).prop_map(|w: &str| Bytes::from_static(w.as_bytes())),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from),
        ]
    }

    proptest! {
        /// Never a panic nor an index outside the arguments, for every
        /// command and any arguments (within arity or not).
        #[test]
        fn any_arguments_are_safe(which in 0..SPECS.len(), rest in prop::collection::vec(word(), 0..12)) {
            let spec = &SPECS[which];
            let args: Vec<Bytes> = std::iter::once(Bytes::from_static(spec.name.as_bytes())).chain(rest).collect();
            if let Ok(keys) = keys_of(spec, &args) {
                prop_assert!(keys.iter().all(|&k| k >= 1 && k < args.len()), "{} {:?}", spec.name, keys);
            }
        }
    }

    /// Every argument count from none to 12 of every command, each
    /// argument a keyword or a count.
    #[test]
    fn small_argument_lists_are_safe() {
        let words: Vec<Bytes> = ["store", "keys", "streams", "limit", "2", "0", "", "group", "auth2"].iter().map(|w| Bytes::from_static(w.as_bytes())).collect();
        for spec in SPECS {
            for n in 0..=12 {
                for offset in 0..words.len() {
                    let args: Vec<Bytes> = std::iter::once(Bytes::from_static(spec.name.as_bytes())).chain((0..n).map(|i| words[(i * 7 + offset) % words.len()].clone())).collect();
                    if let Ok(keys) = keys_of(spec, &args) {
                        assert!(keys.iter().all(|&k| k >= 1 && k < args.len()), "{} {keys:?}", spec.name);
                    }
                }
                let _ = keys_of(spec, &[]);
            }
        }
    }
}
