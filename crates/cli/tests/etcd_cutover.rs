//! etcd lost in the one window where it matters most: a cutover that has
//! fenced the source and drained it, just before it writes the routing
//! table. Its own test binary: the failpoint that holds the cutover there
//! is process-wide. Needs the `etcd` feature and an `etcd` binary.
#![cfg(feature = "etcd")]

mod common;
#[path = "../../meta/tests/support/etcd_server.rs"]
mod etcd_server;

use common::admin::wait_for_leader;
use common::cluster::{keys_in, on_etcd, routing};
use evenkeel::up::LocalCluster;
use evenkeel_coord::api::{MigrationInfo, MoveRequest};
use evenkeel_coord::failpoints;
use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// The cutover cannot flip without etcd, and whatever it does instead must
/// lose nothing: every write a client saw acknowledged, before, during or
/// after the outage, is there once the move has finished (with etcd back),
/// on whichever node then owns the partition. Clients of that partition
/// may wait or get TRYAGAIN meanwhile (its ownership can neither change
/// nor safely stay); the test counts those but does not forbid them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_at_the_flip_loses_no_acknowledged_write() {
    let mut etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(on_etcd(dir.path(), 8, 100, etcd.endpoint())).await.unwrap();
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin, Duration::from_secs(10)).await;
    let p = 3;
    let source = routing(&cluster).await.entry(p).unwrap().owner;
    let target = source % 3 + 1;
    let keys = keys_in("f", p, 8, 10);
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for k in &keys {
        let () = conn.set(k, 0u64).await.unwrap();
    }

    let since = failpoints::fired().borrow().len();
    let _hold = fail::FailGuard::new(failpoints::CUTOVER_DRAINED, "1*return(freeze)").unwrap();
    let m: MigrationInfo = http.post(format!("{admin}/v1/migrations")).json(&MoveRequest { partition: p, target }).send().await.unwrap().json().await.unwrap();
    let mut fired = failpoints::fired();
    let held = fired.wait_for(|f| f[since..].contains(&failpoints::CUTOVER_DRAINED));
    tokio::time::timeout(Duration::from_secs(60), held).await.expect("the cutover never reached the flip").unwrap();
    etcd.kill();
    // The failpoint reports itself just before it starts waiting: give it
    // time to, or the thaw comes first and it waits for good.
    tokio::time::sleep(Duration::from_millis(500)).await;
    failpoints::thaw();

    // A writer keeps going through the outage (each write waits out the
    // router's retry budget at worst); each key's last acknowledged value
    // must survive. etcd comes back after 8 s.
    let writer = {
        let (keys, mut conn) = (keys.clone(), conn.clone());
        tokio::spawn(async move {
            let mut acked = vec![0u64; keys.len()];
            let (mut refused, mut total, mut seq) = (0, 0, 0u64);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(14) {
                seq += 1;
                for (i, k) in keys.iter().enumerate() {
                    total += 1;
                    match tokio::time::timeout(Duration::from_secs(7), conn.set::<_, _, ()>(k, seq)).await {
                        Ok(Ok(())) => acked[i] = seq,
                        Ok(Err(e)) => {
                            refused += 1;
                            assert_eq!(e.kind(), redis::ErrorKind::TryAgain, "only TRYAGAIN may refuse a write here: {e}");
                        }
                        Err(_) => panic!("a SET hung past the router's retry budget"),
                    }
                }
            }
            (acked, refused, total)
        })
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    etcd.restart();
    eprintln!("etcd restarted: {}", std::net::TcpStream::connect(etcd.endpoint().trim_start_matches("http://")).is_ok());
    let (acked, refused, total) = writer.await.unwrap();
    // The coordinator leads again once etcd is back (until then its admin
    // API answers errors); then the migration finishes from its record.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http.get(format!("{admin}/v1/migrations")).send().await.unwrap().text().await.unwrap();
        let list = serde_json::from_str::<evenkeel_coord::api::MigrationList>(&body);
        if let Ok(list) = list
            && let Some(now) = list.migrations.iter().find(|x| x.id == m.id)
        {
            if now.state == "DONE" {
                break;
            }
            assert!(!matches!(now.state.as_str(), "FAILED" | "CANCELLED" | "ROLLED_BACK"), "the move ended {}: {:?}", now.state, now.error);
        }
        assert!(Instant::now() < deadline, "the move did not finish within 60 s of the outage's end (etcd listening: {}): {body}", std::net::TcpStream::connect(etcd.endpoint().trim_start_matches("http://")).is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let owner = routing(&cluster).await.entry(p).unwrap().owner;
    assert_eq!(owner, target, "the move finished once etcd was back");
    for (k, want) in keys.iter().zip(&acked) {
        let got: u64 = conn.get(k).await.unwrap();
        assert!(got >= *want, "{k}: {got}, but {want} was acknowledged");
    }
    eprintln!("{refused} of {total} writes to the partition refused with TRYAGAIN during the outage");
    cluster.shutdown().await.unwrap();
}
