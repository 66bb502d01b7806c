//! Shared vocabulary of evenkeel. No I/O lives here.
//!
//! - [`slot`]: key → hash slot (Redis Cluster's CRC16 with `{hash tag}`) →
//!   partition. Partitions are contiguous slot ranges fixed at cluster
//!   creation, so a partition's data is one contiguous key range on a node.
//! - [`hlc`]: the hybrid logical clock that stamps every write with a
//!   [`Version`] unique within its partition.
//! - [`record`]: the stored form of a key: value (a string, hash, set,
//!   list or sorted set) or
//!   tombstone, optional absolute expiry, version. Convergence rule: newer
//!   version wins.
//! - [`hash`]: a hash value's encoding, fields in insertion order; [`set`]:
//!   a set's, the same layout with empty values; [`list`]: a list's;
//!   [`zset`]: a sorted set's, with the range and combination rules.
//! - [`routing`]: the epoch-stamped routing table (partition → owner) and the
//!   membership records, as stored in the metadata store under [`keys`].
//! - [`latency`]: per-second latency summaries (p50/p99/max) that routers
//!   and nodes report for throttling and health gating, and what routers did
//!   for each moving partition (forwards, shadow-read comparisons).
//! - [`gc`]: the tombstone-collection horizon the coordinator publishes
//!   and nodes follow: which partitions' tombstones may go.
//! - [`notify`]: keyspace notifications' flags and channels.
//! - [`glob`]: Redis's glob patterns (SCAN MATCH, KEYS, PSUBSCRIBE), used
//!   by routers and by nodes (which match Pub/Sub patterns).

pub mod bitfield;
pub mod edit;
pub mod encoding;
pub mod float;
pub mod geo;
pub mod gc;
pub mod glob;
pub mod hash;
pub mod hll;
pub mod hlc;
pub mod int;
pub mod keys;
pub mod latency;
pub mod list;
pub mod notify;
pub mod project;
pub mod rdb;
pub mod record;
pub mod repr;
pub mod routing;
pub mod set;
pub mod slot;
pub mod sort;
pub mod stream;
pub mod zset;

pub use hlc::{Hlc, Version};
pub use record::{Record, ValueType};
pub use routing::{Epoch, MigrationRoute, Modes, NodeId, NodeInfo, PartitionEntry, RoutingTable};
pub use slot::{PartitionId, SLOT_COUNT, Slot};

/// Microseconds since the Unix epoch, read from the OS clock (for the
/// edges, as [`unix_ms`]).
pub fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds since the Unix epoch, read from the OS clock. Only the edges
/// (servers, drivers) call this; cores take `now_ms` as a parameter.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
