//! The tombstone-collection horizon, stored at [`crate::keys::GC_HORIZON`].
//!
//! A deletion is stored as a versioned tombstone so that it beats every
//! older copy of the key a migration may still bring (newer wins). Older
//! copies of a partition live only on the nodes of its unfinished
//! migrations: the destination of a copy (snapshot pages, dual-writes,
//! copy-on-read), the source during bake, the leftovers of a failed or
//! rolled-back migration until their drop finishes. So a tombstone may go
//! once every migration of its partition has finished, and no earlier.
//!
//! The coordinator's leader derives a [`GcHorizon`] from the stored
//! migration records and publishes it; nodes follow it. It says which
//! partitions have an unfinished migration (`held`) and, for the others,
//! the newest fencing token any of their migrations used (`released`). A
//! node admits a migration's token (durably) before it sends or receives
//! any record of it, so a node whose newest admitted token for a partition
//! is above `released` takes part in a migration the horizon does not show
//! yet, and holds its tombstones too ([`GcHorizon::allows`]). That makes a
//! stale horizon safe: it can only be behind on migrations whose tokens the
//! node already knows.

use crate::slot::PartitionId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Which partitions' tombstones nodes may collect (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcHorizon {
    /// Partitions with an unfinished migration.
    pub held: BTreeSet<PartitionId>,
    /// Per partition not held, the newest fencing token of its migrations
    /// (all finished). Absent: it never moved.
    pub released: BTreeMap<PartitionId, u64>,
}

/// What the horizon needs of one stored migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationMark {
    pub partition: PartitionId,
    /// Its fencing token; None before it took the partition lock.
    pub token: Option<u64>,
    /// Terminal, and every copy it left behind is dropped.
    pub finished: bool,
}

impl GcHorizon {
    /// The horizon of a cluster whose migrations are `marks` (all of them:
    /// one missing could hide an unfinished migration).
    pub fn from_migrations(marks: impl IntoIterator<Item = MigrationMark>) -> Self {
        let mut horizon = GcHorizon::default();
        for m in marks {
            if !m.finished {
                horizon.held.insert(m.partition);
            }
            if let Some(token) = m.token {
                let newest = horizon.released.entry(m.partition).or_default();
                *newest = (*newest).max(token);
            }
        }
        let held = horizon.held.clone();
        horizon.released.retain(|p, _| !held.contains(p));
        horizon
    }

    /// Whether a node whose newest admitted fencing token for `partition`
    /// is `admitted` (0: none) may collect that partition's tombstones.
    pub fn allows(&self, partition: PartitionId, admitted: u64) -> bool {
        !self.held.contains(&partition) && admitted <= self.released.get(&partition).copied().unwrap_or(0)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a horizon serializes")
    }

    pub fn from_json(raw: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(raw).map_err(|e| format!("unreadable GC horizon: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(partition: PartitionId, token: Option<u64>, finished: bool) -> MigrationMark {
        MigrationMark { partition, token, finished }
    }

    #[test]
    fn an_unfinished_migration_holds_its_partition_whatever_the_others() {
        let h = GcHorizon::from_migrations([mark(1, Some(5), true), mark(1, Some(9), false), mark(2, None, false), mark(3, Some(7), true)]);
        assert!(!h.allows(1, 0) && !h.allows(1, 9), "partition 1 has an unfinished migration");
        assert!(!h.allows(2, 0), "a migration that has not locked yet holds too");
        assert!(h.allows(3, 7) && h.allows(3, 0));
        assert!(h.allows(4, 0), "a partition that never moved");
        assert_eq!(h.released.get(&1), None, "a held partition releases nothing");
    }

    #[test]
    fn a_token_newer_than_the_horizon_holds_the_partition() {
        let h = GcHorizon::from_migrations([mark(3, Some(7), true), mark(3, Some(4), true)]);
        assert_eq!(h.released.get(&3), Some(&7));
        assert!(!h.allows(3, 8), "the node takes part in a migration the horizon does not show yet");
        assert!(!h.allows(4, 1));
    }

    #[test]
    fn json_round_trip() {
        let h = GcHorizon::from_migrations([mark(1, Some(5), false), mark(300, Some(6), true)]);
        assert_eq!(GcHorizon::from_json(&h.to_json()).unwrap(), h);
        assert!(GcHorizon::from_json(b"[]").is_err());
    }
}
