//! evenkeel storage node.
//!
//! Layout, in the order a request meets it:
//! - [`service`]: the `Node` gRPC service. Checks [`ownership`] for every op,
//!   then hands it to the [`store`].
//! - [`ownership`]: the partitions this node owns, from the routing table it
//!   follows in the metadata store, with per-partition epochs.
//! - [`store`]: partitions in fjall, each with a change log; atomic
//!   read-modify-write per partition; counters; active expiry; EVAL's
//!   scripts, run with `evenkeel-script` under a partition's lock.
//! - [`migrate_rpc`]: the migration RPCs (snapshot pages, change-log reads,
//!   versioned apply, fence/unfence, checksum, drop), each admitting the
//!   request's fencing token first.
//! - [`lane`]: the background lane, where bulk migration work yields to
//!   foreground requests; [`pool`]: the node's writer thread (client writes
//!   that may wait on the engine, see `inline`) and, at low OS priority,
//!   bulk migration work, within a ceiling on its CPU time
//!   ([`cpu_budget`]) that nodes of one process may share.
//! - [`health`]: foreground latency of the last second and free disk, for
//!   `Stats`.
//! - [`failpoints`]: named per node, compiled in with the `failpoints`
//!   feature (and in this crate's tests).
//! - [`ops`]: the semantics of each operation on one key, pure.
//! - [`pubsub`]: the Pub/Sub relay: routers' feeds and subscriptions,
//!   PUBLISH counted and put on the feeds that want it.
//! - [`waiters`]: blocked pops (BLPOP and friends) waiting on keys, woken
//!   by the store's commits to those keys.
//! - [`lifecycle`]: registration, heartbeat lease, routing follower, sweeper
//!   and flusher, and [`Node::run`] which serves until shutdown.

pub mod cpu_budget;
pub mod pool;
pub mod priority;
pub mod failpoints;
pub mod health;
pub mod hotkeys;
pub(crate) mod inline;
pub mod lane;
pub mod lifecycle;
pub mod load;
pub mod migrate_rpc;
pub mod ops;
pub mod ownership;
pub mod pubsub;
pub mod service;
pub mod store;
pub mod waiters;

pub use cpu_budget::CpuBudget;
pub use lifecycle::{Node, NodeConfig, NodeError, Readiness};
pub use store::{DEFAULT_MEMTABLE_BYTES, DEFAULT_ROW_CACHE_BYTES, Durability, StoreConfig};

/// Largest RPC message a node accepts or sends: a full batch of maximal
/// values must fit.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024 * 1024;
