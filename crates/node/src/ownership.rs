//! Which partitions this node serves, as of the routing table it has seen.
//!
//! A node serves a partition only if the routing table names it the owner,
//! and only to requests routed with an epoch at least the partition entry's
//! epoch. Everything else is refused with a typed reason the router acts on.
//!
//! Two migration overrides sit on top of the table:
//! - a **fenced** partition refuses every read and write (`FENCED`) while a
//!   cutover drains it. A source stays fenced after a successful cutover
//!   until the table shows it lost the partition, so no router holding the
//!   old table can read a stale value from it (G3);
//! - a **grant** makes the cutover's destination serve the partition from
//!   the new epoch at once, before the watched table arrives. A table at or
//!   past the grant's epoch supersedes it.

use arc_swap::ArcSwap;
use evenkeel_rpc::pb::{Refused, refused::Reason};
use evenkeel_types::{Epoch, NodeId, PartitionId, RoutingTable};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
struct View {
    table_epoch: Epoch,
    /// Per partition, from the table: the entry's epoch when this node owns it.
    table_owned: Vec<Option<Epoch>>,
    grants: BTreeMap<PartitionId, Epoch>,
    fenced: BTreeSet<PartitionId>,
}

impl View {
    fn owned(&self, p: PartitionId) -> Option<Epoch> {
        self.grants.get(&p).copied().or_else(|| self.table_owned.get(p as usize).copied().flatten())
    }
}

/// The node's current view of its partitions; cheap to read on every request.
#[derive(Debug)]
pub struct Ownership {
    node: NodeId,
    view: ArcSwap<View>,
    /// Serializes writers so concurrent updates cannot lose each other.
    writer: Mutex<()>,
    /// Notified on every change: a blocked pop checks again whether it
    /// may still be served here.
    changed: tokio::sync::Notify,
}

impl Ownership {
    pub fn new(node: NodeId) -> Self {
        Ownership { node, view: ArcSwap::from_pointee(View::default()), writer: Mutex::new(()), changed: tokio::sync::Notify::new() }
    }

    fn modify(&self, f: impl FnOnce(&mut View)) {
        let _w = self.writer.lock();
        let mut next = (**self.view.load()).clone();
        f(&mut next);
        self.view.store(Arc::new(next));
        self.changed.notify_waiters();
    }

    /// Resolves at the next change of the view (enable it before checking
    /// what it guards, or a change in between is missed).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Adopts `table` unless it is older than the one already adopted.
    /// Grants the table has caught up with are dropped; so are fences on
    /// partitions this node no longer owns (they have nothing left to
    /// guard), which it returns.
    pub fn update(&self, table: &RoutingTable) -> Vec<PartitionId> {
        let mut lifted = Vec::new();
        self.modify(|v| {
            if table.epoch < v.table_epoch {
                return;
            }
            v.table_epoch = table.epoch;
            v.table_owned = table.partitions.iter().map(|e| (e.owner == self.node).then_some(e.epoch)).collect();
            v.grants.retain(|_, e| *e > table.epoch);
            v.fenced.retain(|p| {
                let keep = v.table_owned.get(*p as usize).copied().flatten().is_some() || v.grants.contains_key(p);
                if !keep {
                    lifted.push(*p);
                }
                keep
            });
        });
        lifted
    }

    pub fn fence(&self, partition: PartitionId) {
        self.modify(|v| {
            v.fenced.insert(partition);
        });
    }

    /// Lifts a fence; with `grant_epoch`, serves the partition from that
    /// epoch until the table catches up.
    pub fn unfence(&self, partition: PartitionId, grant_epoch: Option<Epoch>) {
        self.modify(|v| {
            v.fenced.remove(&partition);
            if let Some(e) = grant_epoch.filter(|e| *e > v.table_epoch) {
                v.grants.insert(partition, e);
            }
        });
    }

    /// Whether a request for `partition` routed at `epoch` may be served.
    pub fn check(&self, partition: PartitionId, epoch: Epoch) -> Result<(), Refused> {
        let view = self.view.load();
        if view.fenced.contains(&partition) {
            return Err(Refused { reason: Reason::Fenced as i32, epoch: view.owned(partition).unwrap_or(view.table_epoch) });
        }
        match view.owned(partition) {
            None => Err(Refused { reason: Reason::NotOwner as i32, epoch: view.table_epoch }),
            Some(entry_epoch) if epoch < entry_epoch => Err(Refused { reason: Reason::StaleEpoch as i32, epoch: entry_epoch }),
            Some(_) => Ok(()),
        }
    }

    /// Owned and not fenced: background writers (the expiry sweeper) may
    /// write only then, or they would change a partition mid-cutover.
    pub fn writable(&self, partition: PartitionId) -> bool {
        let view = self.view.load();
        view.owned(partition).is_some() && !view.fenced.contains(&partition)
    }

    pub fn owns(&self, partition: PartitionId) -> bool {
        self.view.load().owned(partition).is_some()
    }

    /// The entry epoch of `partition` if owned.
    pub fn entry_epoch(&self, partition: PartitionId) -> Option<Epoch> {
        self.view.load().owned(partition)
    }

    pub fn table_epoch(&self) -> Epoch {
        self.view.load().table_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(o: &Ownership, p: PartitionId, e: Epoch) -> Option<Reason> {
        o.check(p, e).err().map(|r| Reason::try_from(r.reason).unwrap())
    }

    #[test]
    fn refuses_non_owned_and_stale() {
        let o = Ownership::new(1);
        assert_eq!(reason(&o, 0, 1), Some(Reason::NotOwner));
        let t = RoutingTable::bootstrap(4, &[1, 2]).unwrap();
        o.update(&t);
        assert!(o.check(0, 1).is_ok());
        assert_eq!(reason(&o, 1, 1), Some(Reason::NotOwner));
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

    #[test]
    fn a_fenced_source_refuses_everything_until_the_table_moves_on() {
        let o = Ownership::new(1);
        let t = RoutingTable::bootstrap(2, &[1]).unwrap();
        o.update(&t);
        o.fence(0);
        assert_eq!(reason(&o, 0, 5), Some(Reason::Fenced));
        assert!(o.owns(0) && !o.writable(0));
        assert!(o.check(1, 1).is_ok());
        // Cutover committed: the table gives partition 0 to node 2, and the
        // fence is lifted (the node forgets it in its store too).
        assert_eq!(o.update(&t.with_owner(0, 2)), vec![0]);
        assert_eq!(reason(&o, 0, 5), Some(Reason::NotOwner));
        // A timed-out cutover unfences instead.
        o.fence(1);
        o.unfence(1, None);
        assert!(o.check(1, 1).is_ok());
    }

    #[test]
    fn a_grant_serves_the_destination_before_the_table_arrives() {
        let dest = Ownership::new(2);
        let t = RoutingTable::bootstrap(2, &[1]).unwrap();
        dest.update(&t);
        assert_eq!(reason(&dest, 0, 2), Some(Reason::NotOwner));
        dest.unfence(0, Some(2));
        assert!(dest.check(0, 2).is_ok());
        assert_eq!(reason(&dest, 0, 1), Some(Reason::StaleEpoch), "routers with the old table are turned away");
        // The same epoch from the table replaces the grant.
        dest.update(&t.with_owner(0, 2));
        assert!(dest.check(0, 2).is_ok());
        // A grant older than the table is ignored.
        dest.unfence(1, Some(1));
        assert!(!dest.owns(1));
    }
}
