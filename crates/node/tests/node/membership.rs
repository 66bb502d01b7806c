//! A node's membership record: a node registers its address, and a node
//! whose id was removed (`evenkeel node remove` wrote its removal record)
//! refuses to register again, since ids are never reused.

use crate::support;
use evenkeel_meta::{EmbeddedStore, MetaStore};
use evenkeel_node::{Node, NodeError};
use evenkeel_types::{NodeInfo, keys};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

async fn run_once(id: u32, meta: Arc<dyn MetaStore>) -> Result<(), NodeError> {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(support::config(id, dir.path())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { node.run(listener, meta, stop.cancelled_owned()).await }
    });
    // Registration comes first; stop the node once it has had the chance.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.cancel();
    run.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_refuses_to_register_again() {
    let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory();
    run_once(7, meta.clone()).await.expect("a new node registers and runs");
    let record = meta.get(&keys::node_key(7)).await.unwrap().expect("its membership record");
    let info: NodeInfo = serde_json::from_slice(&record.value).unwrap();
    assert!(!info.addr.is_empty(), "{info:?}");

    // What `node remove` leaves: the removal record, no membership record.
    meta.put(&keys::removed_key(7), record.value.clone(), None).await.unwrap();
    meta.delete(&keys::node_key(7)).await.unwrap();
    let refused = run_once(7, meta.clone()).await.expect_err("a removed node must not rejoin");
    assert!(matches!(refused, NodeError::Removed(7)), "{refused:?}");
    assert!(refused.to_string().contains("new --id"), "{refused}");
    assert_eq!(meta.get(&keys::node_key(7)).await.unwrap(), None, "it did not record itself again");

    // Another id on the same cluster joins as usual.
    run_once(8, meta.clone()).await.expect("a new id joins");
}
