//! The recorded history of a run: every operation on every key, the
//! real-time interval in which it happened, and what it wrote or read.
//!
//! This is the checker's only input, so it carries no I/O types: keys are
//! indices into the run's keyspaces and values are decoded into [`Val`]s (a
//! SET's value is identified by the writing client and its sequence number,
//! which is what makes every written value unique and traceable).

use std::fmt;

/// Microseconds since the run's clock started (the start of the load).
pub type Micros = u64;

/// A key of the run: one of the data keys (SET/GET/DEL/MGET) or one of the
/// counter keys (INCR). Counters live apart because INCR on a data value
/// would be an error, and because their check is arithmetic, not identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Data(u32),
    Counter(u32),
}

impl Key {
    /// The key's name on the wire. Stable across runs, so `--preload` on a
    /// store that already holds an older run's keyspace overwrites it.
    pub fn name(&self) -> String {
        match self {
            Key::Data(i) => format!("ek:{i}"),
            Key::Counter(i) => format!("ekc:{i}"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One value written by this run: the writing client (connection) and its
/// per-client sequence number. Unique per run by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    pub client: u32,
    pub seq: u64,
}

/// A value as written or as read back, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// The key is absent (a DEL writes this; GET/MGET read it as a null bulk).
    Nil,
    /// The preload value of data key `index`.
    Preload(u32),
    /// A value a SET of this run wrote.
    Written(ValueId),
    /// An integer, as INCR keys hold.
    Int(i64),
    /// Bytes that are none of the above: another run's value, or garbage.
    /// Kept (truncated) so a report can show what was seen.
    Foreign(Box<[u8]>),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Nil => f.write_str("nil"),
            Val::Preload(i) => write!(f, "preload#{i}"),
            Val::Written(id) => write!(f, "c{}#{}", id.client, id.seq),
            Val::Int(n) => write!(f, "{n}"),
            Val::Foreign(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
        }
    }
}

/// How an operation ended, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A normal reply.
    Ok,
    /// An error reply (or a reply of the wrong shape): a write may or may not
    /// have been applied.
    Error,
    /// No reply in time, or the connection was lost: may or may not have been
    /// applied, possibly later.
    Timeout,
}

impl Outcome {
    /// Whether a write with this outcome is known to have been applied.
    pub fn acked(self) -> bool {
        self == Outcome::Ok
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// SET (a [`Val::Written`]) or DEL ([`Val::Nil`]).
    Write(Val),
    /// GET or one key of an MGET during the load.
    Read(Val),
    /// The final read-back after the load stopped. Checked like a read, but a
    /// stale result here is a lost write: nothing can make it visible later.
    ReadBack(Val),
    /// INCR, with its reply when it had one.
    Incr(Option<i64>),
}

/// One operation on one key. An MGET of ten keys is ten operations sharing
/// the same interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: Key,
    pub kind: OpKind,
    /// When the request was handed to the socket (at or before it took effect).
    pub invoke: Micros,
    /// When the reply was decoded, or when the client gave up.
    pub complete: Micros,
    pub outcome: Outcome,
}

/// Every operation of a run, in no particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Whether every data key was set to its [`Val::Preload`] value (and
    /// acknowledged) before the load started. Without it a data key's
    /// initial state is unknown: absent, or some earlier run's value.
    pub preloaded: bool,
    pub ops: Vec<Op>,
}
