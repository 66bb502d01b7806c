//! Which partitions this node serves, as of the routing table it has seen.
//!
//! A node serves a partition only if the routing table names it the owner,
//! and only to requests routed with an epoch at least the partition entry's
//! epoch. Everything else is refused with a typed reason the router acts on.

use arc_swap::ArcSwap;
use evenkeel_rpc::pb::{Refused, refused::Reason};
use evenkeel_types::{Epoch, NodeId, PartitionId, RoutingTable};
use std::sync::Arc;

#[derive(Debug, Default)]
struct View {
    table_epoch: Epoch,
    /// Per partition: the entry's epoch when this node owns it.
    owned: Vec<Option<Epoch>>,
}

/// The node's current view of its partitions; cheap to read on every request.
#[derive(Debug)]
pub struct Ownership {
    node: NodeId,
    view: ArcSwap<View>,
}

impl Ownership {
    pub fn new(node: NodeId) -> Self {
        Ownership { node, view: ArcSwap::from_pointee(View::default()) }
    }

    /// Adopts `table` unless it is older than the one already adopted.
    pub fn update(&self, table: &RoutingTable) {
        if table.epoch < self.view.load().table_epoch {
            return;
        }
        let owned = table.partitions.iter().map(|e| (e.owner == self.node).then_some(e.epoch)).collect();
        self.view.store(Arc::new(View { table_epoch: table.epoch, owned }));
    }

    /// Whether a request for `partition` routed at `epoch` may be served.
    pub fn check(&self, partition: PartitionId, epoch: Epoch) -> Result<(), Refused> {
        let view = self.view.load();
        match view.owned.get(partition as usize).copied().flatten() {
            None => Err(Refused { reason: Reason::NotOwner as i32, epoch: view.table_epoch }),
            Some(entry_epoch) if epoch < entry_epoch => Err(Refused { reason: Reason::StaleEpoch as i32, epoch: entry_epoch }),
            Some(_) => Ok(()),
        }
    }

    pub fn owns(&self, partition: PartitionId) -> bool {
        self.view.load().owned.get(partition as usize).copied().flatten().is_some()
    }

    /// The entry epoch of `partition` if owned.
    pub fn entry_epoch(&self, partition: PartitionId) -> Option<Epoch> {
        self.view.load().owned.get(partition as usize).copied().flatten()
    }

    pub fn table_epoch(&self) -> Epoch {
        self.view.load().table_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_owned_and_stale() {
        let o = Ownership::new(1);
        assert_eq!(o.check(0, 1).unwrap_err().reason, Reason::NotOwner as i32);
        let t = RoutingTable::bootstrap(4, &[1, 2]).unwrap();
        o.update(&t);
        assert!(o.check(0, 1).is_ok());
        assert_eq!(o.check(1, 1).unwrap_err().reason, Reason::NotOwner as i32);
        let t2 = t.with_owner(1, 1);
        o.update(&t2);
        assert_eq!(o.check(1, 1).unwrap_err(), Refused { reason: Reason::StaleEpoch as i32, epoch: 2 });
        assert!(o.check(1, 2).is_ok());
        // Unchanged partitions still accept the older epoch.
        assert!(o.check(0, 1).is_ok());
        // An older table never replaces a newer one.
        o.update(&t);
        assert!(o.owns(1));
    }
}
