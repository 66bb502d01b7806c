//! The in-process transport (`evenkeel_rpc::transport`): a node that serves
//! in-process answers this process's clients without a socket, with the
//! same contract as over TCP: deadlines, and a refused "connection" once the
//! node has stopped, so callers know the request never arrived.

use crate::support::{get, start};
use evenkeel_node::failpoints::stats_delay;
use evenkeel_rpc::pb;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_calls_keep_deadlines_and_stop_with_the_node() {
    let _scenario = fail::FailScenario::setup();
    let node = start(61, |c| c.in_process = true).await;
    node.stats().await; // serving, so registered in-process
    let mut local = evenkeel_rpc::connect_lazy(&node.addr).unwrap();
    assert_eq!(local.stats(pb::StatsRequest::default()).await.unwrap().into_inner().node_id, 61);
    assert_eq!(local.execute(get("k")).await.unwrap().into_inner().results.len(), 1);

    // A deadline is enforced as tonic's server would: CANCELLED. (Stats
    // waits out its failpoint; an Execute would stop waiting at 3/4 of its
    // deadline and answer OVERLOADED.)
    fail::cfg(stats_delay(61), "return(300)").unwrap();
    let mut slow = tonic::Request::new(pb::StatsRequest::default());
    slow.set_timeout(Duration::from_millis(30));
    let started = std::time::Instant::now();
    let status = local.stats(slow).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert!(started.elapsed() < Duration::from_millis(250), "the deadline cut the call short");
    fail::remove(stats_delay(61));

    node.stop().await;
    let status = local.stats(pb::StatsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("in-process"), "the client took the in-process path: {status:?}");
    assert!(refused_connection(&status), "callers can tell the request never arrived: {status:?}");
}

#[tokio::test]
async fn nodes_not_serving_in_process_are_reached_over_tcp() {
    let node = start(62, |_| {}).await;
    node.stats().await;
    let mut client = evenkeel_rpc::connect_lazy(&node.addr).unwrap();
    assert_eq!(client.stats(pb::StatsRequest::default()).await.unwrap().into_inner().node_id, 62);
    node.stop().await;
    let status = client.stats(pb::StatsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(!status.message().contains("in-process"), "{status:?}");
}

fn refused_connection(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = e.source();
    }
    false
}
