//! A node's readiness (`Node::readiness`, what `serve node --admin`
//! answers on `/readyz`): not before the node has registered, then for as
//! long as its liveness lease is renewed (past the lease's TTL, and across
//! a lease revoked under it), and not once it stops.

use crate::support;
use evenkeel_meta::{EmbeddedStore, MetaStore};
use evenkeel_node::Node;
use evenkeel_types::keys;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_ready_while_registered_and_live_and_not_once_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::config(61, dir.path());
    config.heartbeat_ttl = Duration::from_secs(1);
    let node = Node::open(config).unwrap();
    let ready = node.readiness();
    let why = ready.check().unwrap_err();
    assert!(why.contains("not registered"), "{why}");

    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let (m, s) = (meta.clone(), stop.clone());
    let task = tokio::spawn(async move { node.run(listener, m, s.cancelled_owned()).await.unwrap() });
    eventually("the node never became ready", async || ready.check().is_ok()).await;

    // Its liveness lease revoked under it (as a lost lease would be): the
    // node takes a new one and stays ready, past the old lease's TTL.
    let live = meta.get(&keys::live_key(61)).await.unwrap().expect("the liveness key");
    meta.revoke_lease(live.lease.expect("lease-bound")).await.unwrap();
    eventually("the node never renewed its liveness", async || meta.get(&keys::live_key(61)).await.unwrap().is_some_and(|kv| kv.lease != live.lease)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ready.check(), Ok(()), "renewals keep it ready past the TTL");

    stop.cancel();
    task.await.unwrap();
    let why = ready.check().unwrap_err();
    assert!(why.contains("stopping"), "{why}");
}
