//! G10 over the wire: once a newer fencing token has been used for a
//! partition, requests carrying an older one are refused with ABORTED and
//! change nothing, also after the node restarts.

use evenkeel_meta::{EmbeddedStore, MetaStore};
use evenkeel_node::{Node, NodeConfig, StoreConfig};
use evenkeel_rpc::{NodeClient, pb};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const PARTITIONS: u16 = 4;

/// The partition of the key this test writes.
fn part() -> u32 {
    evenkeel_types::slot::key_partition(b"k", PARTITIONS) as u32
}

async fn start(dir: &std::path::Path, meta: Arc<dyn MetaStore>) -> (NodeClient, CancellationToken, tokio::task::JoinHandle<()>) {
    let node = Node::open(NodeConfig::new(1, StoreConfig::new(dir, PARTITIONS))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move { node.run(listener, meta, s.cancelled_owned()).await.unwrap() });
    let client = evenkeel_rpc::connect_lazy(&addr.to_string()).unwrap();
    (client, stop, task)
}

fn apply(token: u64, value: &str, version: u64) -> pb::ApplyRequest {
    pb::ApplyRequest {
        header: Some(pb::MigrateHeader { partition: part(), token }),
        records: vec![pb::KeyRecord { key: "k".into(), tombstone: false, value: value.to_string().into(), expire_at_ms: 0, version, ..Default::default() }],
        urgent: false,
        forwarded: false,
    }
}

async fn snapshot_values(client: &mut NodeClient, token: u64) -> Vec<String> {
    let req = pb::SnapshotRequest { header: Some(pb::MigrateHeader { partition: part(), token }), cursor: None, max_keys: 10, max_bytes: 1 << 20 };
    let page = client.migrate_snapshot(req).await.unwrap().into_inner();
    page.records.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_fencing_tokens_are_refused_over_rpc_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory();
    let (mut client, stop, task) = start(dir.path(), meta.clone()).await;

    // The successor coordinator (token 7) acts first; the zombie (token 5)
    // comes late with a newer-looking record and must change nothing.
    client.migrate_apply(apply(7, "from-leader", 10)).await.unwrap();
    let err = client.migrate_apply(apply(5, "from-zombie", 99)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted, "{err:?}");
    let fence = pb::FenceRequest { header: Some(pb::MigrateHeader { partition: part(), token: 5 }), fenced: true, grant_epoch: 0 };
    assert_eq!(client.migrate_fence(fence).await.unwrap_err().code(), tonic::Code::Aborted);
    assert_eq!(snapshot_values(&mut client, 7).await, vec!["from-leader"]);
    // Other partitions have their own tokens.
    let other = pb::MigrateHeader { partition: (part() + 1) % PARTITIONS as u32, token: 1 };
    client.migrate_begin(other).await.unwrap();

    stop.cancel();
    task.await.unwrap();
    let (mut client, stop, task) = start(dir.path(), meta).await;
    let err = client.migrate_apply(apply(6, "after-restart", 100)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted, "the newest token survives a restart");
    assert_eq!(snapshot_values(&mut client, 7).await, vec!["from-leader"]);
    stop.cancel();
    task.await.unwrap();
}

/// A write admitted just before a cutover's fence either commits below the
/// log position the fence reports (so the drain, which ships the log up to
/// there, carries it) or is refused. Here a failpoint holds the write
/// between its ownership check and its commit while the fence arrives;
/// the write is acknowledged, so it must be in the log before that
/// position. It used to commit at the position itself: acknowledged, never
/// drained, lost when the partition changed hands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_admitted_before_a_fence_is_below_the_position_it_reports() {
    use evenkeel_rpc::pb::op_result::Result as R;
    let _scenario = fail::FailScenario::setup();
    let node = crate::support::start(61, |_| {}).await;
    let mut client = node.client.clone();
    let p = crate::support::partition_of(b"k");
    let header = Some(pb::MigrateHeader { partition: p, token: 1 });
    client.migrate_fence(pb::FenceRequest { header, fenced: false, grant_epoch: 1 }).await.unwrap();
    let set = move |value: &str| {
        let kind = pb::op::Kind::Set(pb::Set { value: value.to_string().into(), ..Default::default() });
        pb::ExecuteRequest { epoch: 1, ops: vec![pb::Op { partition: p, key: "k".into(), kind: Some(kind), want_record: false, track: false, waiter: 0 }], router: 0 }
    };
    let first = client.execute(set("before")).await.unwrap().into_inner().results;
    assert!(matches!(first[0].result, Some(R::Written(_))), "{first:?}");

    fail::cfg(evenkeel_node::failpoints::admitted_write_delay(61), "return(400)").unwrap();
    let mut writer = client.clone();
    let write = tokio::spawn(async move { writer.execute(set("racing")).await.unwrap().into_inner().results });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let end = client.migrate_fence(pb::FenceRequest { header, fenced: true, grant_epoch: 0 }).await.unwrap().into_inner().log_next;
    fail::remove(evenkeel_node::failpoints::admitted_write_delay(61));
    let racing = write.await.unwrap();
    assert!(matches!(racing[0].result, Some(R::Written(_))), "admitted before the fence, the write goes through: {racing:?}");

    // The drain reads the log up to `end`: the racing write must be there,
    // and nothing may come after it.
    let read = pb::ReadLogRequest { header, from: 0, max: 100, urgent: true, max_bytes: 0 };
    let log = client.migrate_read_log(read).await.unwrap().into_inner();
    let values: Vec<(u64, String)> = log.entries.iter().map(|e| (e.position, String::from_utf8_lossy(&e.record.as_ref().unwrap().value).into_owned())).collect();
    assert_eq!(log.log_next, end, "nothing was written after the fence reported its position: {values:?}");
    assert!(values.iter().any(|(pos, v)| v == "racing" && *pos < end), "the acknowledged write is below the fence's position {end}: {values:?}");
    node.stop().await;
}

/// A fence outlives a restart of the node. One that came back lifted in
/// the middle of a cutover would let the source serve writes the drain had
/// already passed, which the flip would then orphan. Lifting it is stored
/// as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_outlives_a_restart_and_so_does_its_lifting() {
    use evenkeel_rpc::pb::op_result::Result as R;
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory();
    // Node 1 owns every partition by the table.
    let table = evenkeel_types::RoutingTable::bootstrap(PARTITIONS, &[1]).unwrap();
    meta.put(evenkeel_types::keys::ROUTING, table.to_json(), None).await.unwrap();
    let header = Some(pb::MigrateHeader { partition: part(), token: 3 });
    let set = || {
        let kind = pb::op::Kind::Set(pb::Set { value: "v".into(), ..Default::default() });
        pb::ExecuteRequest { epoch: table.epoch, ops: vec![pb::Op { partition: part(), key: "k".into(), kind: Some(kind), want_record: false, track: false, waiter: 0 }], router: 0 }
    };
    // The node serves once it has read the table.
    let served = |results: Vec<pb::OpResult>| match &results[0].result {
        Some(R::Written(_)) => Ok(()),
        Some(R::Refused(r)) => Err(pb::refused::Reason::try_from(r.reason).unwrap()),
        other => panic!("unexpected {other:?}"),
    };
    async fn until_served(client: &mut NodeClient, req: impl Fn() -> pb::ExecuteRequest, served: impl Fn(Vec<pb::OpResult>) -> Result<(), pb::refused::Reason>) {
        for _ in 0..200 {
            if served(client.execute(req()).await.unwrap().into_inner().results).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the node never served the partition");
    }

    let (mut client, stop, task) = start(dir.path(), meta.clone()).await;
    until_served(&mut client, set, served).await;
    client.migrate_fence(pb::FenceRequest { header, fenced: true, grant_epoch: 0 }).await.unwrap();
    assert_eq!(served(client.execute(set()).await.unwrap().into_inner().results), Err(pb::refused::Reason::Fenced));
    stop.cancel();
    task.await.unwrap();

    let (mut client, stop, task) = start(dir.path(), meta.clone()).await;
    // Give the restarted node time to read the table, which names it the
    // owner: the fence must still hold.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(served(client.execute(set()).await.unwrap().into_inner().results), Err(pb::refused::Reason::Fenced), "the fence was lost in the restart");
    client.migrate_fence(pb::FenceRequest { header, fenced: false, grant_epoch: 0 }).await.unwrap();
    assert_eq!(served(client.execute(set()).await.unwrap().into_inner().results), Ok(()));
    stop.cancel();
    task.await.unwrap();

    let (mut client, stop, task) = start(dir.path(), meta).await;
    until_served(&mut client, set, served).await;
    stop.cancel();
    task.await.unwrap();
}
