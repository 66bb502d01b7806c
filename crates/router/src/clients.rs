//! The connected clients, for CLIENT LIST, CLIENT INFO and CLIENT KILL.
//!
//! Each session registers a [`Client`] for its lifetime and keeps what
//! CLIENT LIST shows current (name, last command, when it was last
//! active, MULTI, blocked). CLIENT KILL cancels a client's token; its
//! session closes the connection once the command in progress (if any)
//! is answered, as Redis does.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One connection.
pub struct Client {
    pub id: u64,
    /// `ip:port` of the client, and of the router's end.
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    opened: Instant,
    state: Mutex<State>,
    /// Cancelled by CLIENT KILL.
    pub kill: CancellationToken,
    /// Set by CLIENT UNBLOCK while the client is in a blocking command
    /// ([`Unblock`] as a number), read by the command between its waits.
    unblock: std::sync::atomic::AtomicU8,
}

/// How CLIENT UNBLOCK ends a blocking command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    /// As if its timeout had passed.
    Timeout = 1,
    /// With `-UNBLOCKED`.
    Error = 2,
}

struct State {
    name: Option<Bytes>,
    /// The name and first argument of the last command started, named
    /// as CLIENT LIST names it only when listed ([`label`]).
    cmd: Option<(Bytes, Option<Bytes>)>,
    active: Instant,
    /// Commands queued in MULTI; None outside one.
    multi: Option<usize>,
    blocked: bool,
    /// While blocked: the first key of its wait and when its command
    /// began, which name the wait for a cancel ([`Client::waiting_on`]).
    waiting: Option<(Bytes, u64)>,
    /// Channels, patterns and shard channels subscribed to.
    subscriptions: [usize; 3],
    /// The protocol it speaks (HELLO's).
    protocol: evenkeel_resp::Protocol,
    /// The ACL user it is authenticated as (`default` until AUTH).
    user: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id).field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32) -> Client {
        let now = Instant::now();
        let state = State { name: None, cmd: None, active: now, multi: None, blocked: false, waiting: None, subscriptions: [0; 3], protocol: Default::default(), user: Arc::from("default") };
        Client { id, addr, laddr, fd, opened: now, state: Mutex::new(state), kill: CancellationToken::new(), unblock: Default::default() }
    }

    pub fn name(&self) -> Option<Bytes> {
        self.state.lock().name.clone()
    }

    pub fn set_name(&self, name: Option<Bytes>) {
        self.state.lock().name = name;
    }

    pub fn user(&self) -> Arc<str> {
        self.state.lock().user.clone()
    }

    pub fn set_user(&self, user: &str) {
        self.state.lock().user = Arc::from(user);
    }

    /// A command starts (`args` non-empty): keeps its name and first
    /// argument (shared, not copied).
    pub fn started(&self, args: &[Bytes]) {
        let mut s = self.state.lock();
        s.cmd = Some((args[0].clone(), args.get(1).cloned()));
        s.active = Instant::now();
    }

    /// A command ended, leaving the session in MULTI with `queued`
    /// commands, or not (None).
    pub fn ended(&self, queued: Option<usize>) {
        let mut s = self.state.lock();
        s.multi = queued;
        s.active = Instant::now();
    }

    /// Enters or leaves a blocking command; either way no CLIENT UNBLOCK
    /// is pending.
    pub fn set_blocked(&self, blocked: bool) {
        let mut state = self.state.lock();
        state.blocked = blocked;
        state.waiting = None;
        self.unblock.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// The blocking command waits on its node: on `key`'s owner, for the
    /// command that began at `since_us`.
    pub fn set_waiting(&self, key: Bytes, since_us: u64) {
        self.state.lock().waiting = Some((key, since_us));
    }

    /// What a cancel of its wait names ([`Self::set_waiting`]), while it
    /// waits.
    pub fn waiting_on(&self) -> Option<(Bytes, u64)> {
        self.state.lock().waiting.clone()
    }

    /// A CLIENT UNBLOCK of the blocking command this client is in.
    pub fn unblocked(&self) -> Option<Unblock> {
        match self.unblock.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(Unblock::Timeout),
            2 => Some(Unblock::Error),
            _ => None,
        }
    }

    /// Whether it subscribes to anything (CLIENT LIST's TYPE pubsub).
    pub fn subscribed(&self) -> bool {
        self.state.lock().subscriptions.iter().any(|&n| n > 0)
    }

    /// The protocol it switched to with HELLO (CLIENT LIST's `resp`).
    pub fn set_protocol(&self, protocol: evenkeel_resp::Protocol) {
        self.state.lock().protocol = protocol;
    }

    /// How many channels, patterns and shard channels it subscribes to.
    pub fn set_subscriptions(&self, counts: [usize; 3]) {
        self.state.lock().subscriptions = counts;
    }

    /// This client's line of CLIENT LIST (Redis 7.0's fields; those about
    /// Redis's own buffers are 0).
    pub fn line(&self) -> String {
        let s = self.state.lock();
        let name = s.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
        let [sub, psub, ssub] = s.subscriptions;
        // In Redis's order of flags.
        let mut flags: String = [(sub + psub + ssub > 0, 'P'), (s.multi.is_some(), 'x'), (s.blocked, 'b')].iter().filter(|(on, _)| *on).map(|&(_, f)| f).collect();
        if flags.is_empty() {
            flags.push('N');
        }
        let multi = s.multi.map_or(-1, |q| q as i64);
        format!(
            "id={} addr={} laddr={} fd={} name={name} age={} idle={} flags={flags} db=0 sub={sub} psub={psub} ssub={ssub} multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={}\n",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.opened.elapsed().as_secs(),
            s.active.elapsed().as_secs(),
            s.cmd.as_ref().map_or_else(|| "NULL".to_string(), |(name, sub)| label(name, sub.as_ref())),
            s.user,
            s.protocol.version(),
        )
    }
}

/// A command as CLIENT LIST's `cmd` names it: lower case, with the
/// subcommand of a command that has them (`client|list`).
fn label(name: &[u8], sub: Option<&Bytes>) -> String {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match sub {
        Some(sub) if matches!(name.as_str(), "client" | "config" | "slowlog" | "command" | "object" | "memory" | "xgroup" | "xinfo") => format!("{name}|{}", String::from_utf8_lossy(sub).to_ascii_lowercase()),
        _ => name,
    }
}

/// Which clients CLIENT KILL or CLIENT LIST means.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    pub ids: Option<Vec<u64>>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    /// TYPE master or replica: no client of this router is one.
    pub none: bool,
    /// USER: clients authenticated as this user.
    pub user: Option<String>,
    /// TYPE pubsub (true: clients subscribed to something) or normal
    /// (false: the others).
    pub pubsub: Option<bool>,
    /// Leave out the client asking (CLIENT KILL's SKIPME, by default).
    pub skip: Option<u64>,
}

impl Filter {
    fn matches(&self, c: &Client) -> bool {
        !self.none
            && self.pubsub.is_none_or(|p| p == c.subscribed())
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&c.id))
            && self.addr.as_ref().is_none_or(|a| *a == c.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == c.laddr)
            && self.user.as_ref().is_none_or(|u| **u == *c.user())
            && self.skip != Some(c.id)
    }
}

#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<Client>>>,
}

impl Registry {
    /// Registers `client` until the returned guard drops.
    pub fn register(&self, client: Arc<Client>) -> Registered<'_> {
        let id = client.id;
        self.clients.lock().insert(id, client);
        Registered { registry: self, id }
    }

    /// Whether client `id` is connected.
    pub fn exists(&self, id: u64) -> bool {
        self.clients.lock().contains_key(&id)
    }

    /// CLIENT LIST's lines for the clients `filter` picks, by id.
    pub fn list(&self, filter: &Filter) -> String {
        self.clients.lock().values().filter(|c| filter.matches(c)).map(|c| c.line()).collect()
    }

    /// CLIENT UNBLOCK: marks the blocking command client `id` waits in,
    /// if it waits in one, and returns what names its wait on the node
    /// (None when it is not blocked; `Some(None)` between two waits). The
    /// caller cancels that wait (`cmd::blocking::unblock`), which ends it
    /// at once unless the node already popped for it; the command reads
    /// the mark when its wait ends.
    pub fn unblock(&self, id: u64, how: Unblock) -> Option<Option<(Bytes, u64)>> {
        let clients = self.clients.lock();
        let c = clients.get(&id)?;
        // Under the client's lock, so the command cannot leave meanwhile
        // and find the mark in its next one.
        let state = c.state.lock();
        if !state.blocked {
            return None;
        }
        c.unblock.store(how as u8, std::sync::atomic::Ordering::Relaxed);
        Some(state.waiting.clone())
    }

    /// Cancels the clients `filter` picks; how many.
    pub fn kill(&self, filter: &Filter) -> usize {
        let clients = self.clients.lock();
        let mut killed = 0;
        for c in clients.values().filter(|c| filter.matches(c)) {
            c.kill.cancel();
            killed += 1;
        }
        killed
    }
}

/// A session's registration ([`Registry::register`]).
pub struct Registered<'a> {
    registry: &'a Registry,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.clients.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_pick_clients_and_kill_cancels_them() {
        let registry = Registry::default();
        let a = Arc::new(Client::new(1, "127.0.0.1:1000".into(), "127.0.0.1:6380".into(), 7));
        let b = Arc::new(Client::new(2, "127.0.0.1:2000".into(), "127.0.0.1:6380".into(), 8));
        let _ra = registry.register(a.clone());
        {
            let _rb = registry.register(b.clone());
            b.set_name(Some(Bytes::from_static(b"worker")));
            b.started(&[Bytes::from_static(b"CLIENT"), Bytes::from_static(b"List")]);
            let listed = registry.list(&Filter::default());
            assert_eq!(listed.lines().count(), 2);
            assert!(listed.contains("id=2 addr=127.0.0.1:2000 laddr=127.0.0.1:6380 fd=8 name=worker age=0 idle=0 flags=N"), "{listed}");
            assert!(listed.contains("cmd=client|list user=default"), "{listed}");
            let by_addr = Filter { addr: Some("127.0.0.1:1000".into()), ..Default::default() };
            assert_eq!(registry.kill(&by_addr), 1);
            assert!(a.kill.is_cancelled() && !b.kill.is_cancelled());
            assert_eq!(registry.kill(&Filter { ids: Some(vec![2]), skip: Some(2), ..Default::default() }), 0, "SKIPME");
            assert_eq!(registry.kill(&Filter { none: true, ..Default::default() }), 0);
        }
        assert_eq!(registry.list(&Filter::default()).lines().count(), 1, "a session's registration ends with it");
        a.ended(Some(3));
        assert!(a.line().contains("flags=x db=0 sub=0 psub=0 ssub=0 multi=3 "), "{}", a.line());
    }
}
