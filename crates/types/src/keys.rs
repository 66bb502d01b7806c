//! Where cluster state lives in the metadata store.
//!
//! Every key is under `/evenkeel/`. Values are JSON so an operator can read
//! them with `etcdctl get --prefix /evenkeel/`.

use crate::routing::NodeId;

/// [`crate::routing::ClusterConfig`], written once at bootstrap.
pub const CLUSTER: &str = "/evenkeel/cluster";
/// The [`crate::RoutingTable`]; changed only by compare-and-swap.
pub const ROUTING: &str = "/evenkeel/routing";
/// Prefix of membership records ([`crate::NodeInfo`]).
pub const NODES_PREFIX: &str = "/evenkeel/nodes/";
/// Prefix of removal records: the membership record a node had when an
/// operator removed it. Node ids are never reused, so a removed node's
/// process that is started again refuses to join instead of rejoining
/// as a new, empty member, and `node add` counts these ids as taken.
pub const REMOVED_PREFIX: &str = "/evenkeel/removed/";
/// Prefix of liveness keys, each attached to its node's lease: a node whose
/// key is gone has stopped heartbeating.
pub const LIVE_PREFIX: &str = "/evenkeel/live/";
/// The coordinator leader's lease-bound key.
pub const COORDINATOR_LEADER: &str = "/evenkeel/coordinator/leader";

/// Prefix of migration records (the coordinator's durable state machines).
pub const MIGRATIONS_PREFIX: &str = "/evenkeel/migrations/";
/// Prefix of per-partition migration locks.
pub const PARTITION_LOCKS_PREFIX: &str = "/evenkeel/locks/partition/";
/// Prefix of per-node locks, each held by the process that runs the node
/// when the metadata lives in etcd (the cli's `claims`): a node runs in
/// one process only.
pub const NODE_LOCKS_PREFIX: &str = "/evenkeel/locks/node/";

/// Prefix of routers' per-second latency reports, each attached to its
/// router's lease ([`crate::latency::SecondSummary`] plus the router id).
pub const ROUTERS_PREFIX: &str = "/evenkeel/routers/";
/// The tombstone-collection horizon ([`crate::gc::GcHorizon`]), written by
/// the coordinator's leader from the migration records; absent means no
/// node collects tombstones yet.
pub const GC_HORIZON: &str = "/evenkeel/gc";
/// The operator's throttle settings (JSON `ThrottleConfig`); absent means
/// the defaults. Changed at runtime by `evenkeel throttle set`.
pub const THROTTLE: &str = "/evenkeel/throttle";
/// Keyspace notifications' flags (`crate::notify::Flags::stored`, their
/// bits in decimal); absent or empty means none.
/// Written by CONFIG SET through any router; every node follows it.
pub const NOTIFY_KEYSPACE_EVENTS: &str = "/evenkeel/notify-keyspace-events";
/// How long a script may run before its node stops it, in ms (decimal);
/// absent: 5000. Written by CONFIG SET busy-reply-threshold (or
/// lua-time-limit) through any router; every node follows it.
pub const SCRIPT_TIME_LIMIT: &str = "/evenkeel/script-time-limit";
/// SCRIPT LOAD's scripts: `<prefix><sha1>` holds the body. Every router
/// follows them (EVALSHA through any router finds them).
pub const SCRIPTS_PREFIX: &str = "/evenkeel/scripts/";
/// FUNCTION LOAD's libraries: `<prefix><library name>` holds its code.
/// Every router follows them.
pub const FUNCTIONS_PREFIX: &str = "/evenkeel/functions/";

pub fn router_key(id: u64) -> String {
    format!("{ROUTERS_PREFIX}{id:020}")
}

pub fn migration_key(id: &str) -> String {
    format!("{MIGRATIONS_PREFIX}{id}")
}

pub fn partition_lock_key(partition: crate::PartitionId) -> String {
    format!("{PARTITION_LOCKS_PREFIX}{partition:05}")
}

/// Zero-padded so prefix listings come back in id order.
pub fn node_key(id: NodeId) -> String {
    format!("{NODES_PREFIX}{id:010}")
}

pub fn removed_key(id: NodeId) -> String {
    format!("{REMOVED_PREFIX}{id:010}")
}

pub fn node_lock_key(id: NodeId) -> String {
    format!("{NODE_LOCKS_PREFIX}{id:010}")
}

pub fn live_key(id: NodeId) -> String {
    format!("{LIVE_PREFIX}{id:010}")
}

/// The node id at the end of a membership, removal or liveness key.
pub fn node_id_of(key: &str) -> Option<NodeId> {
    key.rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_sort_by_id_and_parse_back() {
        assert!(node_key(9) < node_key(10));
        assert_eq!(node_id_of(&node_key(42)), Some(42));
        assert_eq!(node_id_of(&removed_key(42)), Some(42));
        assert_eq!(node_id_of(&live_key(7)), Some(7));
        assert_eq!(node_id_of("/evenkeel/nodes/x"), None);
    }
}
