//! CLIENT TRACKING: server-assisted client-side caching, as Redis 7.0
//! offers it (default mode, OPTIN, OPTOUT, NOLOOP, REDIRECT, BCAST).
//!
//! A tracking client's read commands send their ops with `track`: the key's
//! owner notes, before reading, that this router's clients cache the key,
//! and when the key is next written (or expires, or its partition is fenced
//! for a move) it sends an invalidation down this router's Pub/Sub feed and
//! forgets the key. [`Table`] remembers which of this router's clients read
//! each key (noted here before the op is sent), so an invalidation reaches
//! those clients, once, and a later read tracks the key again.
//!
//! Delivery is the Pub/Sub hub's: a RESP3 client gets a push
//! `["invalidate", [key]]` on its own connection; with REDIRECT the target
//! gets it, or (a RESP2 target) a message on `__redis__:invalidate` if it
//! subscribes to that channel. Whenever a link to a node opens or ends,
//! the node may have lost invalidations (a feed dropped, a node restarted),
//! so every tracking client is told to drop everything (`["invalidate",
//! null]`, what Redis sends at FLUSHALL).

use crate::Session;
use bytes::Bytes;
use evenkeel_resp::Frame;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The channel RESP2 clients subscribe to for redirected invalidations.
pub const INVALIDATE_CHANNEL: &str = "__redis__:invalidate";

/// Keys this router remembers for its tracking clients at most; past it
/// one of them is invalidated to make room (as Redis's table evicts).
pub const TRACKED_KEYS_MAX: usize = 1_000_000;

/// One client's tracking options (CLIENT TRACKING ON's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mode {
    /// The client its invalidations go to; None: its own connection.
    pub redirect: Option<u64>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// Broadcasting: every write to a key with one of `prefixes` (the
    /// empty prefix: any key) is invalidated, read or not.
    pub bcast: bool,
    pub prefixes: BTreeSet<Bytes>,
}

/// Parses CLIENT TRACKING's arguments (after `TRACKING`), given the
/// client's current mode, with Redis 7.0's checks in its order: the new
/// mode (None for OFF), or the error. `exists` says whether a client id
/// is connected to this router.
pub fn parse(a: &[Bytes], current: Option<&Mode>, exists: impl Fn(u64) -> bool) -> Result<Option<Mode>, Frame> {
    let mut mode = Mode::default();
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut i = 1;
    while i < a.len() {
        let more = i + 1 < a.len();
        match a[i].to_ascii_lowercase().as_slice() {
            b"redirect" if more => {
                if mode.redirect.is_some() {
                    return Err(Frame::error("ERR A client can only redirect to a single other client"));
                }
                let id = evenkeel_types::int::parse_i64(&a[i + 1]).ok_or_else(|| Frame::error("ERR value is not an integer or out of range"))?;
                // Checked at once, as Redis does.
                match u64::try_from(id) {
                    Ok(id) if id != 0 && exists(id) => mode.redirect = Some(id),
                    _ => return Err(Frame::error("ERR The client ID you want redirect to does not exist")),
                }
                i += 1;
            }
            b"bcast" => mode.bcast = true,
            b"optin" => mode.optin = true,
            b"optout" => mode.optout = true,
            b"noloop" => mode.noloop = true,
            b"prefix" if more => {
                prefixes.push(a[i + 1].clone());
                i += 1;
            }
            _ => return Err(Frame::error("ERR syntax error")),
        }
        i += 1;
    }
    match a[0].to_ascii_lowercase().as_slice() {
        b"on" => {}
        b"off" => return Ok(None),
        _ => return Err(Frame::error("ERR syntax error")),
    }
    if !prefixes.is_empty() && !mode.bcast {
        return Err(Frame::error("ERR PREFIX option requires BCAST mode to be enabled"));
    }
    if current.is_some_and(|c| c.bcast != mode.bcast) {
        return Err(Frame::error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
    }
    if mode.bcast && (mode.optin || mode.optout) {
        return Err(Frame::error("ERR OPTIN and OPTOUT are not compatible with BCAST"));
    }
    if mode.optin && mode.optout {
        return Err(Frame::error("ERR You can't specify both OPTIN mode and OPTOUT mode"));
    }
    if current.is_some_and(|c| (mode.optin && c.optout) || (mode.optout && c.optin)) {
        return Err(Frame::error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
    }
    if mode.bcast {
        let existing = current.map(|c| &c.prefixes);
        let overlap = |x: &[u8], y: &[u8]| x.starts_with(y) || y.starts_with(x);
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(e) = existing.into_iter().flatten().find(|e| overlap(p, e)) {
                return Err(Frame::error(format!("ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.", String::from_utf8_lossy(p), String::from_utf8_lossy(e))));
            }
            if let Some(q) = prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                return Err(Frame::error(format!("ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.", String::from_utf8_lossy(p), String::from_utf8_lossy(q))));
            }
        }
        // Prefixes add up while BCAST stays on; none given means every key.
        mode.prefixes = existing.cloned().unwrap_or_default();
        if prefixes.is_empty() {
            mode.prefixes.insert(Bytes::new());
        }
        mode.prefixes.extend(prefixes);
    }
    Ok(Some(mode))
}

/// CLIENT CACHING YES|NO: the flag for the session's next command.
pub fn caching(s: &Session, a: &[Bytes]) -> Result<bool, Frame> {
    let Some(mode) = s.tracking.as_ref().filter(|m| m.optin || m.optout) else {
        return Err(Frame::error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    };
    match a[0].to_ascii_lowercase().as_slice() {
        b"yes" if mode.optin => Ok(true),
        b"yes" => Err(Frame::error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")),
        b"no" if mode.optout => Ok(false),
        b"no" => Err(Frame::error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")),
        _ => Err(Frame::error("ERR syntax error")),
    }
}

/// Before a command of session `s` sends `ops` (a `readonly` command's if
/// `readonly`): if the session's mode and CLIENT CACHING flag have its
/// reads tracked, marks them `track` and notes their keys for the client
/// (here before the ops go out, by their owners before they read).
/// Answers whether it did.
pub fn mark_reads(r: &crate::Router, s: &Session, readonly: bool, ops: &mut [crate::dispatch::KeyOp]) -> bool {
    if !readonly || !tracks(s.tracking.as_ref(), s.caching_now) {
        return false;
    }
    r.pubsub.remember(s.id, ops.iter().map(|o| o.key.clone()));
    ops.iter_mut().for_each(|o| o.track = true);
    true
}

/// Whether a read command's keys are tracked, given the client's mode and
/// its CLIENT CACHING flag for this command.
fn tracks(mode: Option<&Mode>, caching: Option<bool>) -> bool {
    match mode {
        None => false,
        Some(m) if m.optin => caching == Some(true),
        Some(m) if m.optout => caching != Some(false),
        Some(_) => true,
    }
}

/// CLIENT TRACKINGINFO's reply.
pub fn info(mode: Option<&Mode>, caching: Option<bool>) -> Frame {
    let flags: Vec<&str> = match mode {
        None => vec!["off"],
        Some(m) => [
            (true, "on"),
            (m.bcast, "bcast"),
            (m.optin, "optin"),
            (m.optout, "optout"),
            (caching == Some(true), "caching-yes"),
            (caching == Some(false), "caching-no"),
            (m.noloop, "noloop"),
        ]
        .into_iter()
        .filter_map(|(on, f)| on.then_some(f))
        .collect(),
    };
    Frame::Map(vec![
        (Frame::bulk("flags"), Frame::Set(flags.into_iter().map(Frame::bulk).collect())),
        (Frame::bulk("redirect"), Frame::Integer(redirect_id(mode))),
        (Frame::bulk("prefixes"), Frame::Array(mode.iter().flat_map(|m| m.prefixes.iter().cloned().map(Frame::Bulk)).collect())),
    ])
}

/// CLIENT GETREDIR's reply: -1 when not tracking, 0 without REDIRECT.
pub fn redirect_id(mode: Option<&Mode>) -> i64 {
    mode.map_or(-1, |m| m.redirect.map_or(0, |id| id as i64))
}

/// Which of this router's clients read each tracked key, and the keys
/// each tracking client holds.
#[derive(Default)]
pub(crate) struct Table {
    keys: HashMap<Bytes, HashSet<u64>>,
    clients: HashMap<u64, Tracker>,
    /// BCAST prefixes: how many clients hold each (what every node's
    /// link of this router is told).
    prefixes: HashMap<Bytes, u32>,
}

/// A tracking client: where its invalidations go, what it holds, and its
/// BCAST prefixes (none: the default mode).
pub(crate) struct Tracker {
    pub target: u64,
    keys: HashSet<Bytes>,
    prefixes: BTreeSet<Bytes>,
}

impl Table {
    /// Starts (or changes) tracking for `client` in `mode`, its
    /// invalidations going to `target`. Returns the BCAST prefixes whose
    /// client counts changed, with their counts.
    pub fn enable(&mut self, client: u64, target: u64, mode: &Mode) -> Vec<(Bytes, u32)> {
        let tracker = self.clients.entry(client).or_insert_with(|| Tracker { target, keys: HashSet::new(), prefixes: BTreeSet::new() });
        tracker.target = target;
        let added: Vec<Bytes> = mode.prefixes.difference(&tracker.prefixes).cloned().collect();
        tracker.prefixes.extend(added.iter().cloned());
        added
            .into_iter()
            .map(|p| {
                let n = self.prefixes.entry(p.clone()).or_default();
                *n += 1;
                (p, *n)
            })
            .collect()
    }

    /// Stops tracking for `client`, forgetting its keys. Returns the BCAST
    /// prefixes whose client counts changed, with their counts.
    pub fn disable(&mut self, client: u64) -> Vec<(Bytes, u32)> {
        let Some(t) = self.clients.remove(&client) else { return Vec::new() };
        for key in t.keys {
            self.forget(&key, client);
        }
        t.prefixes
            .into_iter()
            .map(|p| {
                let n = self.prefixes.get_mut(&p).map_or(0, |n| {
                    *n -= 1;
                    *n
                });
                if n == 0 {
                    self.prefixes.remove(&p);
                }
                (p, n)
            })
            .collect()
    }

    /// The BCAST prefixes held, with their client counts (a link's first
    /// update carries them all).
    pub fn prefixes(&self) -> impl Iterator<Item = (&Bytes, u32)> {
        self.prefixes.iter().map(|(p, &n)| (p, n))
    }

    /// `client` reads `keys`: each is remembered for it. Returns a key
    /// evicted past [`TRACKED_KEYS_MAX`], with its readers' targets.
    pub fn remember(&mut self, client: u64, keys: impl IntoIterator<Item = Bytes>) -> Vec<(Bytes, Vec<u64>)> {
        let Some(tracker) = self.clients.get_mut(&client) else { return Vec::new() };
        for key in keys {
            tracker.keys.insert(key.clone());
            self.keys.entry(key).or_default().insert(client);
        }
        let mut evicted = Vec::new();
        while self.keys.len() > TRACKED_KEYS_MAX {
            let Some(key) = self.keys.keys().next().cloned() else { break };
            evicted.push((key.clone(), self.invalidated(&key)));
        }
        evicted
    }

    /// Where `client`'s invalidations go, if it tracks.
    pub fn target(&self, client: u64) -> Option<u64> {
        self.clients.get(&client).map(|t| t.target)
    }

    /// `client` writes `key` with NOLOOP: it stops tracking the key it
    /// read without being told (its own write ends the key's tracking, as
    /// in Redis). Broadcasting, it is told of its own writes all the same:
    /// which invalidation is its write's cannot be told apart from one of
    /// a concurrent write (or none, for a write that changed nothing), and
    /// skipping the wrong one would leave its cache stale.
    pub fn written_by(&mut self, client: u64, key: &[u8]) {
        if let Some(t) = self.clients.get_mut(&client)
            && t.keys.remove(key)
        {
            self.forget(key, client);
        }
    }

    fn forget(&mut self, key: &[u8], client: u64) {
        if let Some(readers) = self.keys.get_mut(key) {
            readers.remove(&client);
            if readers.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// `key` was written: the targets of the clients that read it (which
    /// no longer hold it) and of those broadcasting a prefix of it, each
    /// once.
    pub fn invalidated(&mut self, key: &[u8]) -> Vec<u64> {
        let readers = self.keys.remove(key).unwrap_or_default();
        let mut targets: Vec<u64> = readers
            .into_iter()
            .filter_map(|c| {
                let t = self.clients.get_mut(&c)?;
                t.keys.remove(key);
                Some(t.target)
            })
            .collect();
        if !self.prefixes.is_empty() {
            targets.extend(self.clients.values().filter(|t| t.prefixes.iter().any(|p| key.starts_with(p))).map(|t| t.target));
        }
        targets.sort_unstable();
        targets.dedup();
        targets
    }

    /// Everything may be stale: every tracking client's target, each
    /// once; no key is held any more.
    pub fn flushed(&mut self) -> Vec<u64> {
        self.keys.clear();
        let mut targets: Vec<u64> = self.clients.values_mut().map(|t| {
            t.keys.clear();
            t.target
        }).collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// INFO's figures: tracking clients, keys, (key, client) items, BCAST
    /// prefixes.
    pub fn counts(&self) -> [usize; 4] {
        [self.clients.len(), self.keys.len(), self.keys.values().map(HashSet::len).sum(), self.prefixes.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split_whitespace().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn options_parse_with_redis_errors() {
        let none = |_| false;
        assert_eq!(parse(&args("on"), None, none), Ok(Some(Mode::default())));
        assert_eq!(parse(&args("off"), None, none), Ok(None));
        assert_eq!(parse(&args("on OPTIN noloop"), None, none), Ok(Some(Mode { optin: true, noloop: true, ..Default::default() })));
        assert_eq!(parse(&args("on redirect 7"), None, |id| id == 7), Ok(Some(Mode { redirect: Some(7), ..Default::default() })));
        assert_eq!(parse(&args("on redirect 7"), None, none), Err(Frame::error("ERR The client ID you want redirect to does not exist")));
        assert_eq!(parse(&args("on redirect x"), None, none), Err(Frame::error("ERR value is not an integer or out of range")));
        assert_eq!(parse(&args("maybe"), None, none), Err(Frame::error("ERR syntax error")));
        assert_eq!(parse(&args("on prefix a"), None, none), Err(Frame::error("ERR PREFIX option requires BCAST mode to be enabled")));
        assert_eq!(parse(&args("on optin optout"), None, none), Err(Frame::error("ERR You can't specify both OPTIN mode and OPTOUT mode")));
        let optin = Mode { optin: true, ..Default::default() };
        assert!(matches!(parse(&args("on optout"), Some(&optin), none), Err(Frame::Error(e)) if e.contains("switch OPTIN/OPTOUT")));
        assert_eq!(parse(&args("on"), Some(&optin), none), Ok(Some(Mode::default())), "plain ON leaves OPTIN, as in Redis");
        let bcast = parse(&args("on bcast prefix b prefix a"), None, none).unwrap().unwrap();
        assert_eq!(bcast.prefixes.iter().map(|p| &p[..]).collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert!(matches!(parse(&args("on bcast prefix ab"), Some(&bcast), none), Err(Frame::Error(e)) if e == "ERR Prefix 'ab' overlaps with an existing prefix 'a'. Prefixes for a single client must not overlap."));
        assert!(matches!(parse(&args("on bcast prefix x prefix xy"), None, none), Err(Frame::Error(e)) if e.contains("overlaps with another provided prefix 'xy'")));
        let all = parse(&args("on bcast"), Some(&bcast), none).unwrap().unwrap();
        assert_eq!(all.prefixes.len(), 3, "no prefix given: the empty one joins the others, as in Redis");
        assert!(matches!(parse(&args("on"), Some(&bcast), none), Err(Frame::Error(e)) if e.contains("switch BCAST")));
    }

    #[test]
    fn a_key_is_invalidated_once_per_reader_then_forgotten() {
        let mut t = Table::default();
        let default = Mode::default();
        t.enable(1, 1, &default);
        t.enable(2, 9, &default);
        t.remember(1, [Bytes::from_static(b"k"), Bytes::from_static(b"j")]);
        t.remember(2, [Bytes::from_static(b"k")]);
        t.remember(3, [Bytes::from_static(b"k")]);
        assert_eq!(t.invalidated(b"k"), vec![1, 9], "readers' targets; client 3 does not track");
        assert_eq!(t.invalidated(b"k"), Vec::<u64>::new(), "forgotten until read again");
        t.written_by(1, b"j");
        assert_eq!(t.invalidated(b"j"), Vec::<u64>::new(), "NOLOOP: not told of its own write");
        t.remember(2, [Bytes::from_static(b"x")]);
        t.disable(2);
        assert_eq!((t.invalidated(b"x"), t.len()), (Vec::new(), 0));
        t.remember(1, [Bytes::from_static(b"y")]);
        assert_eq!(t.flushed(), vec![1]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn broadcast_prefixes_reach_their_clients_and_are_counted() {
        let mut t = Table::default();
        let mode = |p: &[&str]| Mode { bcast: true, prefixes: p.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect(), ..Default::default() };
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(t.enable(1, 1, &mode(&["user:"])), vec![(b("user:"), 1)]);
        assert_eq!(t.enable(2, 2, &mode(&["user:", "order:"])).len(), 2);
        assert_eq!(t.enable(2, 2, &mode(&["user:", "order:"])), vec![], "prefixes held already change nothing");
        assert_eq!(t.invalidated(b"user:7"), vec![1, 2]);
        assert_eq!(t.invalidated(b"user:7"), vec![1, 2], "broadcast: every write, read or not");
        assert_eq!(t.invalidated(b"order:1"), vec![2]);
        assert_eq!(t.invalidated(b"other"), Vec::<u64>::new());
        t.written_by(1, &b("user:1"));
        assert_eq!(t.invalidated(b"user:1"), vec![1, 2], "broadcasting, NOLOOP skips nothing");
        assert_eq!(t.disable(2), vec![(b("order:"), 0), (b("user:"), 1)]);
        assert_eq!(t.prefixes().count(), 1);
    }
}
