//! `--durability sync` over the wire: what a migration writes on a node is
//! answered, as a client's write is, only once an fsync of the group commit
//! covers it. Each RPC here writes something (records, a fence marker), and
//! the node's count of group fsyncs must have moved by the time it answers:
//! nothing else on an idle node waits for one.

use crate::support::{self, TestNode, apply_many, partition_of};
use evenkeel_node::Durability;
use evenkeel_rpc::pb;

async fn group_syncs(node: &TestNode) -> u64 {
    node.stats().await.group_syncs_total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_writes_are_answered_after_a_group_fsync() {
    let node = support::start(41, |c| c.store.durability = Durability::Sync).await;
    let mut c = node.client.clone();
    let header = Some(pb::MigrateHeader { partition: partition_of(b"sync"), token: 1 });

    let before = group_syncs(&node).await;
    assert_eq!(c.migrate_apply(apply_many("sync", 50)).await.unwrap().into_inner().applied, 50);
    let after_apply = group_syncs(&node).await;
    assert!(after_apply > before, "a migration's apply was answered before any fsync ({before} -> {after_apply})");

    // A fence's marker must outlive a power cut before the cutover goes on.
    c.migrate_fence(pb::FenceRequest { header, fenced: true, grant_epoch: 0 }).await.unwrap();
    let after_fence = group_syncs(&node).await;
    assert!(after_fence > after_apply, "a fence was answered before any fsync ({after_apply} -> {after_fence})");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_durability_runs_no_group_fsync() {
    let node = support::start(42, |_| {}).await;
    node.client.clone().migrate_apply(apply_many("buffered", 50)).await.unwrap();
    assert_eq!(group_syncs(&node).await, 0);
    node.stop().await;
}
