//! Users and what each may run: Redis 6+'s ACL, for the whole cluster.
//!
//! A [`User`] is built from Redis's ACL rules (`on`, `>password`,
//! `~pattern`, `&channel`, `+@category`, `-command`, `+command|sub`, ...),
//! applied in order as `ACL SETUSER` applies them, and checked on every
//! command of a connection authenticated as it ([`User::check`]): the
//! command (by name, subcommand and category), every key it names
//! ([`crate::cmd::getkeys`]), every channel it publishes or subscribes to.
//!
//! Users live in the metadata store under [`USERS_PREFIX`] (one key per
//! user, the rules as `ACL LIST` shows them, passwords only as SHA-256), so
//! every router serves the same users and a restart keeps them; each router
//! follows that prefix ([`Acl`]). The user `default` is, until an `ACL
//! SETUSER default` stores it, `on ~* &* +@all` with the configured
//! `requirepass` (or `nopass`): a cluster that never used ACL behaves as
//! before, and a check costs nothing for a user allowed everything.
//!
//! A key pattern may be read-only (`%R~`) or write-only (`%W~`): each key
//! a command names needs what Redis 7.0's key specs say it does (read if
//! the command reads its value, write if it inserts, updates or deletes;
//! [`getkeys::keys_and_flags`]). Selectors (`(+set ~b*)`) are Redis 7's:
//! a command runs if the root permissions or one selector allow all of
//! it. Not served, and refused by name rather than accepted and ignored:
//! allowing a command by its first argument (`+select|0`). `ACL GETUSER`'s commands are the rules as
//! given (compacted), not Redis 7.0's recomputed description.

use crate::cmd::{Spec, categories, getkeys};
use crate::followed::Followed;
use bytes::Bytes;
use evenkeel_meta::MetaStore;
use evenkeel_meta::follow::Snapshot;
use evenkeel_types::glob::glob_match;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;

/// Where users are stored: `<prefix><hex of the name>` holds the user as
/// JSON (`{"name": ..., "rules": [...]}`).
pub const USERS_PREFIX: &str = "/evenkeel/acl/users/";

/// A SHA-256 digest of a password.
pub type Digest32 = [u8; 32];

pub fn digest(password: &[u8]) -> Digest32 {
    Sha256::digest(password).into()
}

/// Lowercase hex digits of `bytes` (digests, stored names, ACL GENPASS).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a key pattern allows (Redis's `%R~` and `%W~`; `~` is both).
pub const READ: u8 = 1;
pub const WRITE: u8 = 2;

/// One command rule, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Category(&'static str, bool),
    Command(&'static str, bool),
    Sub(&'static str, &'static str, bool),
}

impl Rule {
    fn allow(&self) -> bool {
        match *self {
            Rule::Category(_, a) | Rule::Command(_, a) | Rule::Sub(_, _, a) => a,
        }
    }

    fn same_target(&self, other: &Rule) -> bool {
        match (self, other) {
            (Rule::Category(a, _), Rule::Category(b, _)) | (Rule::Command(a, _), Rule::Command(b, _)) => a == b,
            (Rule::Sub(a, x, _), Rule::Sub(b, y, _)) => a == b && x == y,
            _ => false,
        }
    }

    /// Whether the rule speaks of command `name` (subcommand `sub`), whose
    /// categories are `cats`.
    fn covers(&self, name: &str, sub: Option<&str>, cats: &[&str]) -> bool {
        match *self {
            Rule::Category(c, _) => cats.contains(&c),
            Rule::Command(n, _) => n == name,
            Rule::Sub(n, s, _) => n == name && sub == Some(s),
        }
    }

    fn describe(&self) -> String {
        let sign = if self.allow() { '+' } else { '-' };
        match self {
            Rule::Category(c, _) => format!("{sign}@{c}"),
            Rule::Command(n, _) => format!("{sign}{n}"),
            Rule::Sub(n, s, _) => format!("{sign}{n}|{s}"),
        }
    }
}

/// A user: whether it may log in, with what, and what it may then run
/// (its root permissions, or any one of its selectors').
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` or `skip-sanitize-payload` when given (`reset`
    /// gives the first), shown as Redis shows them; RESTORE payloads are
    /// checked whatever they say.
    payload: Option<&'static str>,
    passwords: Vec<Digest32>,
    root: Perms,
    /// Redis 7's selectors (`(+get ~a*)`): a command runs if the root
    /// permissions or any one selector allow all of it.
    selectors: Vec<Perms>,
}

/// Commands, keys and channels allowed: a user's root permissions, or one
/// of its selectors.
#[derive(Debug, Clone, Default)]
struct Perms {
    /// The command rules start from every command (`+@all`) or none.
    base: bool,
    rules: Vec<Rule>,
    all_keys: bool,
    /// Patterns and what they allow ([`READ`], [`WRITE`]).
    keys: Vec<(Bytes, u8)>,
    all_channels: bool,
    channels: Vec<Bytes>,
    /// Every command's (and subcommand's, `client|list`) verdict, computed
    /// from `base` and `rules` whenever they change.
    allowed: HashSet<String>,
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Its name (`client|list` for a subcommand).
    Command(String),
    Key(Bytes),
    Channel(Bytes),
}

impl Denied {
    /// The error a client gets, as Redis words it.
    pub fn message(&self) -> String {
        match self {
            Denied::Command(name) => format!("NOPERM this user has no permissions to run the '{name}' command"),
            Denied::Key(_) => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }

    /// ACL LOG's reason and object.
    fn reason_and_object(&self) -> (&'static str, Bytes) {
        match self {
            Denied::Command(name) => ("command", Bytes::from(name.clone())),
            Denied::Key(k) => ("key", k.clone()),
            Denied::Channel(c) => ("channel", c.clone()),
        }
    }
}

/// Every command name a rule can grant: the served commands and their
/// subcommands (`client|list`).
pub(crate) fn every_command() -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
    crate::cmd::SPECS.iter().flat_map(|s| std::iter::once((s.name, None)).chain(categories::subcommands(s.name).iter().map(move |sub| (s.name, Some(*sub)))))
}

/// `client|list`, or `get`.
pub(crate) fn full_name(name: &str, sub: Option<&str>) -> String {
    match sub {
        None => name.to_string(),
        Some(sub) => format!("{name}|{sub}"),
    }
}

const SYNTAX: &str = "Syntax error";

impl User {
    /// A user as `ACL SETUSER name` with no rules makes it: off, no
    /// passwords, nothing allowed.
    pub fn new(name: &str) -> User {
        User { name: name.to_string(), enabled: false, nopass: false, payload: None, passwords: vec![], root: Perms::default(), selectors: vec![] }
    }

    /// The user `default` when none is stored: everything allowed, with
    /// this password or none.
    pub fn default_user(requirepass: Option<&str>) -> User {
        let mut rules: Vec<Bytes> = ["on", "allkeys", "allchannels", "allcommands"].into_iter().map(|r| Bytes::from_static(r.as_bytes())).collect();
        rules.push(match requirepass {
            Some(p) => Bytes::from(format!(">{p}")),
            None => Bytes::from_static(b"nopass"),
        });
        User::new("default").with_rules(&rules).expect("the default user's rules are valid")
    }

    /// Applies `rules` in order to a copy; the copy if every one is valid,
    /// else Redis's error for the first that is not. A selector given over
    /// several arguments (`(+get` `~a*)`) is joined first, as Redis does.
    pub fn with_rules(&self, rules: &[Bytes]) -> Result<User, String> {
        let mut u = self.clone();
        for r in join_selectors(rules)? {
            u.apply(&r).map_err(|why| format!("ERR Error in ACL SETUSER modifier '{}': {why}", String::from_utf8_lossy(&r)))?;
        }
        u.root.compute_allowed();
        for s in &mut u.selectors {
            s.compute_allowed();
        }
        Ok(u)
    }

    /// Applies one rule (Redis's `ACLSetUser`).
    fn apply(&mut self, op: &[u8]) -> Result<(), String> {
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "sanitize-payload" => self.payload = Some("sanitize-payload"),
            "skip-sanitize-payload" => self.payload = Some("skip-sanitize-payload"),
            "clearselectors" => self.selectors.clear(),
            "reset" => {
                for r in [&b"resetpass"[..], b"resetkeys", b"resetchannels", b"off", b"clearselectors", b"-@all", b"sanitize-payload"] {
                    self.apply(r)?;
                }
            }
            _ => match op.first() {
                Some(b'>' | b'#') => {
                    let d = if op[0] == b'>' { digest(&op[1..]) } else { parse_digest(&op[1..]).ok_or(BAD_HASH)? };
                    if !self.passwords.contains(&d) {
                        self.passwords.push(d);
                    }
                    self.nopass = false;
                }
                Some(b'<' | b'!') => {
                    let d = if op[0] == b'<' { digest(&op[1..]) } else { parse_digest(&op[1..]).ok_or(BAD_HASH)? };
                    let before = self.passwords.len();
                    self.passwords.retain(|p| *p != d);
                    if self.passwords.len() == before {
                        return Err("The password you are trying to remove from the user does not exist".into());
                    }
                }
                Some(b'(') if op.ends_with(b")") => {
                    let mut selector = Perms::default();
                    for rule in op[1..op.len() - 1].split(|&c| c == b' ').filter(|r| !r.is_empty()) {
                        selector.apply(rule)?;
                    }
                    self.selectors.push(selector);
                }
                _ => self.root.apply(op)?,
            },
        }
        Ok(())
    }

    /// Allowed every command, key and channel: nothing to check.
    pub fn unrestricted(&self) -> bool {
        self.root.unrestricted()
    }

    /// Whether `password` logs in as this user.
    pub fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        // Every digest compared in constant time, as Redis compares
        // passwords: how long a refusal takes says nothing of how close
        // a guess came.
        let given = digest(password);
        let matched = self.passwords.iter().fold(subtle::Choice::from(0), |any, p| any | subtle::ConstantTimeEq::ct_eq(&p[..], &given[..]));
        self.nopass || bool::from(matched)
    }

    /// Whether a connection starts authenticated as this user (Redis: the
    /// default user when it is on with `nopass`).
    pub fn needs_no_password(&self) -> bool {
        self.enabled && self.nopass
    }

    /// A channel (`pattern`: a PSUBSCRIBE pattern, which must be one of
    /// the user's own patterns, as in Redis).
    pub fn may_use_channel(&self, channel: &[u8], pattern: bool) -> bool {
        std::iter::once(&self.root).chain(&self.selectors).any(|p| p.may_use_channel(channel, pattern))
    }

    /// Everything a command `args` (described by `spec`) needs: the
    /// command, its keys, its channels, in Redis's order, from the root
    /// permissions or one selector. Refused: Redis's most telling reason
    /// among them (a channel over a key over the command; the later
    /// argument between two of a kind).
    pub fn check(&self, spec: &Spec, args: &[Bytes]) -> Result<(), Denied> {
        if self.unrestricted() {
            return Ok(());
        }
        let mut relevant: Option<(u8, usize, Denied)> = None;
        for perms in std::iter::once(&self.root).chain(&self.selectors) {
            let (denied, at) = match perms.check(spec, args) {
                Ok(()) => return Ok(()),
                Err(refusal) => refusal,
            };
            let rank = match denied {
                Denied::Command(_) => 1,
                Denied::Key(_) => 2,
                Denied::Channel(_) => 4,
            };
            if relevant.as_ref().is_none_or(|(r, i, _)| rank > *r || (rank == *r && at > *i)) {
                relevant = Some((rank, at, denied));
            }
        }
        Err(relevant.expect("the root permissions refused").2)
    }

    /// The rules that rebuild this user, one per string, as `ACL LIST`
    /// shows them.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            out.push("nopass".into());
        }
        out.extend(self.payload.map(String::from));
        out.extend(self.passwords.iter().map(|d| format!("#{}", hex(d))));
        out.extend(self.permission_rules());
        out
    }

    /// What a node checks a script's commands against: the rules on
    /// commands, keys and channels, selectors included (not whether it
    /// may log in, nor its passwords).
    pub fn permission_rules(&self) -> Vec<String> {
        let mut out = self.root.describe();
        out.extend(self.selectors.iter().map(|s| format!("({})", s.describe().join(" "))));
        out
    }

    /// ACL GETUSER's reply.
    pub fn getuser(&self) -> evenkeel_resp::Frame {
        use evenkeel_resp::Frame;
        let mut flags = vec![Frame::bulk(if self.enabled { "on" } else { "off" })];
        if self.nopass {
            flags.push(Frame::bulk("nopass"));
        }
        flags.extend(self.payload.map(Frame::bulk));
        let mut fields = vec![(Frame::bulk("flags"), Frame::Set(flags)), (Frame::bulk("passwords"), Frame::Array(self.passwords.iter().map(|d| Frame::bulk(hex(d))).collect()))];
        fields.extend(self.root.getuser_fields());
        fields.push((Frame::bulk("selectors"), Frame::Array(self.selectors.iter().map(|s| Frame::Map(s.getuser_fields())).collect())));
        Frame::Map(fields)
    }

    /// The stored form: name and rules, as JSON.
    fn stored(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "name": self.name, "rules": self.describe() })).expect("JSON of strings")
    }

    fn from_stored(raw: &[u8]) -> Result<User, String> {
        let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        let name = v["name"].as_str().ok_or("no name")?;
        let rules: Vec<Bytes> = v["rules"].as_array().ok_or("no rules")?.iter().map(|r| r.as_str().map(|s| Bytes::copy_from_slice(s.as_bytes())).ok_or("a rule is not a string")).collect::<Result<_, _>>()?;
        User::new(name).with_rules(&rules)
    }
}

const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";

/// Redis's `ACLMergeSelectorArguments`: an argument opening a selector
/// without closing it is joined (by spaces) with those after it up to the
/// one that closes it.
fn join_selectors(rules: &[Bytes]) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::with_capacity(rules.len());
    let mut open: Option<Vec<u8>> = None;
    for r in rules {
        match &mut open {
            Some(joined) => {
                joined.push(b' ');
                joined.extend_from_slice(r);
                if r.ends_with(b")") {
                    out.push(Bytes::from(open.take().expect("open")));
                }
            }
            None if r.starts_with(b"(") && !r.ends_with(b")") => open = Some(r.to_vec()),
            None => out.push(r.clone()),
        }
    }
    match open {
        Some(joined) => Err(format!("ERR Unmatched parenthesis in acl selector starting at '{}'.", String::from_utf8_lossy(&joined))),
        None => Ok(out),
    }
}

impl Perms {
    /// Applies a rule on commands, keys or channels; anything else is a
    /// syntax error (inside a selector, `on` is one).
    fn apply(&mut self, op: &[u8]) -> Result<(), String> {
        const UNKNOWN: &str = "Unknown command or category name in ACL";
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            "allchannels" | "&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => self.set_commands(true),
            "nocommands" | "-@all" => self.set_commands(false),
            _ => match op.first() {
                Some(b'~' | b'%') => {
                    let (access, pattern) = key_pattern(op).ok_or(SYNTAX)?;
                    if self.all_keys {
                        return Err("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns".into());
                    }
                    if access == READ | WRITE && pattern == b"*" {
                        self.all_keys = true;
                        self.keys.clear();
                    } else if let Some(known) = self.keys.iter_mut().find(|(p, _)| *p == pattern) {
                        known.1 |= access;
                    } else {
                        self.keys.push((Bytes::copy_from_slice(pattern), access));
                    }
                }
                Some(b'&') => {
                    if self.all_channels {
                        return Err("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels".into());
                    }
                    let p = Bytes::copy_from_slice(&op[1..]);
                    if !self.channels.contains(&p) {
                        self.channels.push(p);
                    }
                }
                Some(&sign @ (b'+' | b'-')) => {
                    let allow = sign == b'+';
                    let target = &lower[1..];
                    let rule = if let Some(cat) = target.strip_prefix('@') {
                        let cat = categories::CATEGORIES.iter().find(|c| **c == cat).ok_or(UNKNOWN)?;
                        Rule::Category(cat, allow)
                    } else if let Some((name, sub)) = target.split_once('|') {
                        let spec = crate::cmd::find(name).ok_or(UNKNOWN)?;
                        let subs = categories::subcommands(spec.name);
                        if subs.is_empty() {
                            return Err("evenkeel does not allow commands by their first argument; allow the whole command".into());
                        }
                        let sub = subs.iter().find(|s| **s == sub).ok_or(UNKNOWN)?;
                        Rule::Sub(spec.name, sub, allow)
                    } else {
                        Rule::Command(crate::cmd::find(target).ok_or(UNKNOWN)?.name, allow)
                    };
                    // A later rule on the same target overrides an earlier
                    // one wherever that one applied.
                    self.rules.retain(|r| !r.same_target(&rule));
                    self.rules.push(rule);
                }
                _ => return Err(SYNTAX.into()),
            },
        }
        Ok(())
    }

    fn set_commands(&mut self, all: bool) {
        self.base = all;
        self.rules.clear();
    }

    fn compute_allowed(&mut self) {
        self.allowed = every_command().filter(|&(name, sub)| self.verdict(name, sub)).map(|(name, sub)| full_name(name, sub)).collect();
    }

    /// The rules' verdict on a command (or one subcommand of it).
    fn verdict(&self, name: &str, sub: Option<&str>) -> bool {
        let cats = categories::of(&full_name(name, sub));
        self.rules.iter().fold(self.base, |allowed, r| if r.covers(name, sub, cats) { r.allow() } else { allowed })
    }

    fn unrestricted(&self) -> bool {
        self.base && self.rules.is_empty() && self.all_keys && self.all_channels
    }

    /// May these permissions run command `spec` (its subcommand named by
    /// `sub`)?
    fn may_run(&self, spec: &Spec, sub: Option<&[u8]>) -> Result<(), Denied> {
        // AUTH, HELLO, QUIT and RESET: a user allowed nothing can still
        // log in as another or leave, as in Redis.
        if (self.base && self.rules.is_empty()) || spec.flags.contains(&"no_auth") {
            return Ok(());
        }
        let subs = categories::subcommands(spec.name);
        // Most commands have no subcommands: a lookup without allocating.
        if subs.is_empty() {
            return if self.allowed.contains(spec.name) { Ok(()) } else { Err(Denied::Command(spec.name.to_string())) };
        }
        let known = sub.and_then(|s| {
            let s = String::from_utf8_lossy(s).to_ascii_lowercase();
            subs.iter().find(|x| **x == s).copied()
        });
        let name = full_name(spec.name, known);
        if self.allowed.contains(&name) { Ok(()) } else { Err(Denied::Command(name)) }
    }

    /// A key needing neither reading nor writing still has to match a
    /// pattern.
    fn may_access(&self, key: &[u8], need: u8) -> bool {
        self.all_keys || self.keys.iter().any(|(p, allows)| allows & need == need && glob_match(p, key))
    }

    fn may_use_channel(&self, channel: &[u8], pattern: bool) -> bool {
        self.all_channels || self.channels.iter().any(|p| if pattern { p[..] == *channel } else { glob_match(p, channel) })
    }

    /// The command, its keys, its channels, in Redis's order; refused:
    /// why, and at which argument.
    fn check(&self, spec: &Spec, args: &[Bytes]) -> Result<(), (Denied, usize)> {
        self.may_run(spec, args.get(1).map(|a| &a[..])).map_err(|d| (d, 0))?;
        if !self.all_keys
            && let Ok(keys) = getkeys::keys_and_flags(spec, args)
            && let Some(&(i, _)) = keys.iter().find(|(i, flags)| !self.may_access(&args[*i], if flags.needs_read() { READ } else { 0 } | if flags.needs_write() { WRITE } else { 0 }))
        {
            return Err((Denied::Key(args[i].clone()), i));
        }
        if !self.all_channels {
            let (channels, pattern) = match spec.name {
                "publish" | "spublish" => (1..2.min(args.len()), false),
                "subscribe" | "ssubscribe" => (1..args.len(), false),
                "psubscribe" => (1..args.len(), true),
                _ => (0..0, false),
            };
            if let Some(i) = channels.into_iter().find(|&i| !self.may_use_channel(&args[i], pattern)) {
                return Err((Denied::Channel(args[i].clone()), i));
            }
        }
        Ok(())
    }

    /// Its rules as `ACL LIST` shows them: keys, channels, commands.
    fn describe(&self) -> Vec<String> {
        let mut out = self.key_rules();
        if !self.all_channels {
            out.push("resetchannels".into());
        }
        out.extend(self.channel_rules());
        out.extend(self.command_rules());
        out
    }

    fn key_rules(&self) -> Vec<String> {
        if self.all_keys {
            return vec!["~*".into()];
        }
        self.keys
            .iter()
            .map(|(k, access)| {
                let prefix = match *access {
                    READ => "%R",
                    WRITE => "%W",
                    _ => "",
                };
                format!("{prefix}~{}", String::from_utf8_lossy(k))
            })
            .collect()
    }

    fn channel_rules(&self) -> Vec<String> {
        if self.all_channels { vec!["&*".into()] } else { self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect() }
    }

    fn command_rules(&self) -> Vec<String> {
        std::iter::once(if self.base { "+@all".to_string() } else { "-@all".to_string() }).chain(self.rules.iter().map(Rule::describe)).collect()
    }

    /// ACL GETUSER's commands, keys and channels.
    fn getuser_fields(&self) -> Vec<(evenkeel_resp::Frame, evenkeel_resp::Frame)> {
        use evenkeel_resp::Frame;
        vec![
            (Frame::bulk("commands"), Frame::bulk(self.command_rules().join(" "))),
            (Frame::bulk("keys"), Frame::bulk(self.key_rules().join(" "))),
            (Frame::bulk("channels"), Frame::bulk(self.channel_rules().join(" "))),
        ]
    }
}

/// `~pattern` (read and write), or `%R~`, `%W~`, `%RW~` and the like: what
/// it allows and the pattern; None if malformed.
fn key_pattern(op: &[u8]) -> Option<(u8, &[u8])> {
    if let Some(pattern) = op.strip_prefix(b"~") {
        return Some((READ | WRITE, pattern));
    }
    let tilde = op.iter().position(|&c| c == b'~')?;
    let mut access = 0;
    for &c in &op[1..tilde] {
        access |= match c.to_ascii_uppercase() {
            b'R' => READ,
            b'W' => WRITE,
            _ => return None,
        };
    }
    (access != 0).then(|| (access, &op[tilde + 1..]))
}

fn parse_digest(hexed: &[u8]) -> Option<Digest32> {
    if hexed.len() != 64 || !hexed.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)) {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, pair) in hexed.chunks(2).enumerate() {
        d[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(d)
}

/// The permissions a script runs with, from its rules
/// ([`User::permission_rules`]); parsed once per distinct set of rules
/// (a node runs many scripts of few users).
pub fn script_user(rules: &[String]) -> Result<Arc<User>, String> {
    static PARSED: std::sync::LazyLock<Mutex<HashMap<Vec<String>, Arc<User>>>> = std::sync::LazyLock::new(Default::default);
    if let Some(u) = PARSED.lock().get(rules) {
        return Ok(u.clone());
    }
    let raw: Vec<Bytes> = rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())).collect();
    let user = Arc::new(User::new("script").with_rules(&raw)?);
    let mut parsed = PARSED.lock();
    // Bounded: users whose rules keep changing must not grow it forever.
    if parsed.len() >= 256 {
        parsed.clear();
    }
    parsed.insert(rules.to_vec(), user.clone());
    Ok(user)
}

/// Redis's rule for user names.
pub fn valid_name(name: &[u8]) -> bool {
    !name.iter().any(|&c| c == b' ' || c == 0)
}

/// Longest a router's start waits for the stored users.
pub const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The cluster's users, as this router follows them.
pub struct Acl {
    stored: Followed,
    requirepass: Option<String>,
    /// Parsed from the followed copy, rebuilt when it changes.
    users: Mutex<Arc<HashMap<String, Arc<User>>>>,
    log: Mutex<Log>,
    /// Refusals since start, by reason: auth, command, key, channel
    /// (INFO's `acl_access_denied_*`, as Redis 7.2 names them).
    denials: [std::sync::atomic::AtomicU64; 4],
}

impl Acl {
    /// Follows the stored users, waiting (at most [`LOAD_WAIT`]) for the
    /// first read of them. Until that read, `default` is off: no
    /// connection is let in on a default that may not be the cluster's.
    pub async fn new(meta: Arc<dyn MetaStore>, requirepass: Option<String>) -> Acl {
        let stored = Followed::new(meta, USERS_PREFIX);
        let mut first = stored.subscribe();
        if tokio::time::timeout(LOAD_WAIT, first.changed()).await.is_err() {
            tracing::warn!("ACL users not read from the metadata store yet; clients cannot log in until they are");
        }
        let users = Mutex::new(Arc::new(HashMap::from([("default".to_string(), Arc::new(User::new("default")))])));
        Acl { stored, requirepass, users, log: Mutex::new(Log::default()), denials: Default::default() }
    }

    /// Logs a refusal in ACL LOG and counts it (INFO, and the metric
    /// `evenkeel_router_acl_denied_total` by reason).
    pub fn refused(&self, reason: &'static str, context: &'static str, object: Bytes, username: &str, client_info: String) {
        let i = match reason {
            "auth" => 0,
            "command" => 1,
            "key" => 2,
            _ => 3,
        };
        self.denials[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("evenkeel_router_acl_denied_total", "reason" => reason).increment(1);
        self.log.lock().add(reason, context, object, username, client_info);
    }

    pub fn denied(&self, d: &Denied, context: &'static str, username: &str, client_info: String) {
        let (reason, object) = d.reason_and_object();
        self.refused(reason, context, object, username, client_info);
    }

    pub fn log(&self) -> parking_lot::MutexGuard<'_, Log> {
        self.log.lock()
    }

    /// INFO's lines of the refusals counted.
    pub fn info_lines(&self) -> String {
        let n = |i: usize| self.denials[i].load(std::sync::atomic::Ordering::Relaxed);
        format!("acl_access_denied_auth:{}\r\nacl_access_denied_cmd:{}\r\nacl_access_denied_key:{}\r\nacl_access_denied_channel:{}\r\n", n(0), n(1), n(2), n(3))
    }

    /// A receiver that changes when the stored users do (one per session).
    pub fn changes(&self) -> watch::Receiver<Snapshot> {
        self.stored.subscribe()
    }

    /// The users now (rebuilt first if the stored copy changed).
    pub fn users(&self) -> Arc<HashMap<String, Arc<User>>> {
        let requirepass = self.requirepass.as_deref();
        self.stored.derived(&self.users, |s| build(s, requirepass))
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users().get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.user("default").expect("the default user always exists")
    }

    /// Stores `user` (ACL SETUSER), for every router; returns once this
    /// router's copy shows it.
    pub async fn put(&self, user: &User) -> Result<(), evenkeel_resp::Frame> {
        self.stored.put(&key_of(&user.name), user.stored()).await
    }

    pub async fn delete(&self, name: &str) -> Result<(), evenkeel_resp::Frame> {
        self.stored.delete(&key_of(name)).await
    }
}

fn key_of(name: &str) -> String {
    hex(name.as_bytes())
}

/// The users in a stored copy, plus `default` if it is not stored. A
/// stored user that does not parse (written by a later version, or by
/// hand) is left out and logged: it cannot log in.
fn build(stored: &Snapshot, requirepass: Option<&str>) -> HashMap<String, Arc<User>> {
    let mut users: HashMap<String, Arc<User>> = stored
        .iter()
        .filter_map(|(key, kv)| match User::from_stored(&kv.value) {
            Ok(u) => Some((u.name.clone(), Arc::new(u))),
            Err(e) => {
                tracing::error!(%key, error = %e, "unreadable ACL user in the metadata store; it cannot log in");
                None
            }
        })
        .collect();
    users.entry("default".into()).or_insert_with(|| Arc::new(User::default_user(requirepass)));
    users
}

/// ACL LOG: this router's recent refusals, newest first, bounded as
/// Redis's `acllog-max-len` (128).
#[derive(Default)]
pub struct Log {
    entries: VecDeque<LogEntry>,
}

pub const LOG_MAX: usize = 128;
/// A refusal like a logged one within this long is counted in it (Redis's
/// `ACL_LOG_GROUPING_MAX_TIME_DELTA`).
const LOG_GROUPING_MS: u64 = 60_000;

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: Bytes,
    pub username: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub client_info: String,
}

impl Log {
    /// Logs a refusal (or counts it in a like one from the last minute,
    /// which becomes the newest, as in Redis).
    pub fn add(&mut self, reason: &'static str, context: &'static str, object: Bytes, username: &str, client_info: String) {
        let now = evenkeel_types::unix_ms();
        if let Some(i) = self.entries.iter().position(|e| e.reason == reason && e.context == context && e.object == object && e.username == username && now.saturating_sub(e.updated_ms) < LOG_GROUPING_MS) {
            let mut e = self.entries.remove(i).expect("found");
            e.count += 1;
            e.updated_ms = now;
            e.client_info = client_info;
            self.entries.push_front(e);
            return;
        }
        self.entries.push_front(LogEntry { count: 1, reason, context, object, username: username.to_string(), created_ms: now, updated_ms: now, client_info });
        self.entries.truncate(LOG_MAX);
    }

    pub fn newest(&self, n: usize) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter().take(n)
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests;
