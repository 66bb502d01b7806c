//! What routers send a moving partition's nodes: records returned with
//! Execute results, forwarded applies and shadow reads on the destination,
//! accepted only while it imports the partition.

use crate::support::{self, TestNode};
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};

const KEY: &str = "{mirror}k";

fn partition() -> u32 {
    support::partition_of(KEY.as_bytes())
}

fn header(token: u64) -> Option<pb::MigrateHeader> {
    Some(pb::MigrateHeader { partition: partition(), token })
}

fn op(kind: Kind, want_record: bool) -> pb::Op {
    pb::Op { partition: partition(), key: KEY.into(), kind: Some(kind), want_record, track: false, waiter: 0 }
}

fn set(value: &str) -> Kind {
    Kind::Set(pb::Set { value: value.to_string().into(), ..Default::default() })
}

fn get() -> Kind {
    Kind::Get(pb::Get::default())
}

async fn execute(node: &TestNode, ops: Vec<pb::Op>) -> Vec<pb::OpResult> {
    node.client.clone().execute(pb::ExecuteRequest { epoch: 1, ops, router: 0 }).await.unwrap().into_inner().results
}

fn forward(token: u64, value: &str, version: u64) -> pb::ApplyRequest {
    let record = pb::KeyRecord { key: KEY.into(), value: value.to_string().into(), version, ..Default::default() };
    pb::ApplyRequest { header: header(token), records: vec![record], urgent: false, forwarded: true }
}

fn shadow(token: u64) -> pb::ShadowReadRequest {
    pb::ShadowReadRequest { header: header(token), keys: vec![KEY.into(), "{mirror}absent".into()] }
}

/// Serves the partition from epoch 1 (a grant, as a cutover gives).
async fn own(node: &TestNode, token: u64) {
    let grant = pb::FenceRequest { header: header(token), fenced: false, grant_epoch: 1 };
    node.client.clone().migrate_fence(grant).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_returns_records_only_for_ops_that_ask() {
    let node = support::start(31, |_| {}).await;
    own(&node, 1).await;
    let results = execute(&node, vec![op(set("a"), true), op(get(), true), op(get(), false), op(set("b"), false)]).await;
    assert!(matches!(results[0].result, Some(R::Written(_))));
    let written = results[0].record.clone().expect("the write's record");
    assert_eq!((written.value.as_ref(), written.tombstone), (&b"a"[..], false));
    assert!(written.version > 0);
    assert_eq!(results[1].record.as_ref(), Some(&written), "a read returns the stored record");
    assert_eq!((results[2].record.as_ref(), results[3].record.as_ref()), (None, None));
    let deleted = execute(&node, vec![op(Kind::Del(pb::Del::default()), true)]).await;
    let tombstone = deleted[0].record.clone().expect("a delete's tombstone");
    assert!(tombstone.tombstone && tombstone.version > written.version);
    assert!(!deleted[0].record_withheld && !results[0].record_withheld);
    // A record over the mirroring bound is withheld, from a write and a
    // read alike; the reply is whole.
    let big = "x".repeat(evenkeel_node::service::MIRROR_RECORD_MAX);
    let results = execute(&node, vec![op(set(&big), true), op(get(), true), op(get(), false)]).await;
    assert!(matches!(results[0].result, Some(R::Written(_))));
    assert!(matches!(&results[1].result, Some(R::Value(v)) if v.value.len() == big.len()));
    assert_eq!(results.iter().map(|r| (r.record.is_some(), r.record_withheld)).collect::<Vec<_>>(), vec![(false, true), (false, true), (false, false)]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_and_shadow_reads_only_while_importing() {
    let node = support::start(32, |_| {}).await;
    let mut c = node.client.clone();
    let refused = |s: tonic::Status| s.code() == tonic::Code::FailedPrecondition;
    assert!(refused(c.migrate_apply(forward(4, "early", 10)).await.unwrap_err()), "no migration begun");
    c.migrate_begin(pb::MigrateHeader { partition: partition(), token: 4 }).await.unwrap();
    assert_eq!(c.migrate_apply(forward(4, "dual", 10)).await.unwrap().into_inner().applied, 1);
    assert_eq!(c.migrate_apply(forward(4, "older", 9)).await.unwrap().into_inner().applied, 0, "newer wins");
    let read = c.migrate_shadow_read(shadow(4)).await.unwrap().into_inner().records;
    assert_eq!((read[0].value.as_ref(), read[0].version), (&b"dual"[..], 10));
    assert_eq!((read[1].key.as_ref(), read[1].version), (&b"{mirror}absent"[..], 0), "absent: version 0");
    // The first drop closes the import: a late forward must not re-create
    // what the drop removes.
    let drop = pb::DropRequest { header: header(4) };
    assert_eq!(node.stats().await.retired_partitions, 0);
    assert_eq!(c.migrate_drop(drop).await.unwrap().into_inner().removed, 1, "the record (a forwarded copy has no change-log entry here)");
    assert_eq!(node.stats().await.retired_partitions, 1, "dropped, its items wait for compaction");
    assert_eq!(c.migrate_drop(drop).await.unwrap().into_inner().removed, 0, "dropping again finds nothing");
    assert!(refused(c.migrate_apply(forward(4, "late", 11)).await.unwrap_err()));
    assert!(refused(c.migrate_shadow_read(shadow(4)).await.unwrap_err()));
    // A node that serves the partition takes no forwards either.
    c.migrate_begin(pb::MigrateHeader { partition: partition(), token: 6 }).await.unwrap();
    assert_eq!(c.migrate_apply(forward(6, "next", 12)).await.unwrap().into_inner().applied, 1);
    own(&node, 6).await;
    assert!(refused(c.migrate_apply(forward(6, "owned", 13)).await.unwrap_err()));
    node.stop().await;
}
