//! A cluster whose metadata lives in etcd (`up --etcd-endpoints`, feature
//! `etcd`): it serves, moves a partition to a node it adds (locks, CAS,
//! watches and leases all on etcd), refuses a second process on the same
//! etcd while it runs, and comes back from etcd and its data directory
//! after a restart. Needs an `etcd` binary on PATH (Debian's etcd-server).
#![cfg(feature = "etcd")]

mod common;
#[path = "../../meta/tests/support/etcd_server.rs"]
mod etcd_server;

use common::admin::{wait_for_leader, wait_state};
use common::cluster::{check_self_valued, keys_in, move_partition_0_to_a_new_node, options, routing};
use evenkeel::up::{LocalCluster, MetaBackend};
use evenkeel_coord::api::{MigrationInfo, MoveRequest};
use redis::AsyncCommands;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_etcd_moves_a_partition_and_comes_back_after_a_restart() {
    let etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let on_etcd = |dir: &std::path::Path| {
        let mut opts = options(dir, 8, 100);
        opts.meta = MetaBackend::Etcd { endpoints: vec![etcd.endpoint()] };
        opts
    };
    let cluster = LocalCluster::start(on_etcd(dir.path())).await.unwrap();
    assert!(!dir.path().join("meta").exists(), "no embedded store beside etcd");
    let (recorded, _) = cluster.meta.get_prefix("/evenkeel/nodes/").await.unwrap();
    assert_eq!(recorded.len(), 3, "membership is in etcd");

    // A second process on the same etcd is refused while this one runs
    // (after waiting out the lock's lease, which this one keeps alive).
    let other = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let refused = LocalCluster::start(on_etcd(other.path())).await.err().expect("a second `up` on the same etcd is refused");
    assert!(refused.to_string().contains("another `evenkeel up`"), "{refused:#}");
    assert!(started.elapsed() >= Duration::from_secs(10), "it waited for the lease: {:?}", started.elapsed());

    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin, Duration::from_secs(10)).await;
    let keys = move_partition_0_to_a_new_node(&cluster, 8, "e").await;
    check_self_valued(&cluster, &keys).await;
    cluster.shutdown().await.unwrap();

    // Shut down cleanly, the lock is released at once: the restart does
    // not wait for a lease.
    let started = Instant::now();
    let cluster = LocalCluster::start(on_etcd(dir.path())).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(cluster.node_ids, vec![1, 2, 3, 4]);
    assert_eq!(routing(&cluster).await.entry(0).unwrap().owner, 4);
    check_self_valued(&cluster, &keys).await;
    cluster.shutdown().await.unwrap();
}

/// An endpoint with no etcd behind it is a clear error, not a hang.
#[tokio::test]
async fn an_unreachable_etcd_fails_the_start_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut opts = options(dir.path(), 8, 100);
    opts.meta = MetaBackend::Etcd { endpoints: vec![format!("http://127.0.0.1:{port}")] };
    let started = Instant::now();
    let e = LocalCluster::start(opts).await.err().expect("no etcd there");
    let text = format!("{e:#}");
    assert!(text.contains("etcd") && text.contains(&port.to_string()), "{text}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

/// etcd down for longer than every lease: clients keep reading and writing
/// (the data path needs no metadata: routers and nodes hold the routing
/// table), and once etcd is back the cluster recovers by itself (the
/// coordinator leads again, nodes renew their liveness, the process keeps
/// or retakes its lock) and moves a partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_served_while_etcd_is_down_and_the_cluster_recovers_after() {
    let mut etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 8, 100);
    opts.meta = MetaBackend::Etcd { endpoints: vec![etcd.endpoint()] };
    let mut cluster = LocalCluster::start(opts).await.unwrap();
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin, Duration::from_secs(10)).await;
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = keys_in("o", 1, 8, 10);
    for k in &keys {
        let () = conn.set(k, "before").await.unwrap();
    }
    let target = routing(&cluster).await.entry(1).unwrap().owner % 3 + 1;

    etcd.kill();
    let down = Instant::now();
    // Past the process lock's 10 s lease and every node's 3 s liveness lease.
    while down.elapsed() < Duration::from_secs(12) {
        for k in &keys {
            let () = conn.set(k, "during").await.unwrap();
            let v: Option<String> = conn.get(k).await.unwrap();
            assert_eq!(v.as_deref(), Some("during"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    etcd.restart();

    let moved = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            // Accepted once a coordinator leads again.
            let r = http.post(format!("{admin}/v1/migrations")).json(&MoveRequest { partition: 1, target }).send().await;
            if let Ok(r) = r
                && r.status().is_success()
            {
                return r.json::<MigrationInfo>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let m = tokio::select! {
        m = moved => m.expect("a move accepted within 60 s of etcd's return"),
        e = cluster.failed() => panic!("the cluster stopped: {e:#}"),
    };
    wait_state(&http, &admin, &m.id, "DONE").await;
    for k in &keys {
        let v: Option<String> = conn.get(k).await.unwrap();
        assert_eq!(v.as_deref(), Some("during"), "{k} after the move");
    }
    cluster.shutdown().await.unwrap();
}

/// The process lock's lease lost (as after an etcd outage longer than its
/// TTL): the process takes the lock again on a new lease; if another
/// process took it meanwhile, this one stops rather than run the same
/// nodes twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_process_lock_is_taken_again_unless_another_process_holds_it() {
    let etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 8, 100);
    opts.meta = MetaBackend::Etcd { endpoints: vec![etcd.endpoint()] };
    let mut cluster = LocalCluster::start(opts).await.unwrap();
    let meta = cluster.meta.clone();
    let holder = async || meta.get(evenkeel_types::keys::UP_LOCK).await.unwrap().and_then(|kv| kv.lease);
    let first = holder().await.expect("held");
    meta.revoke_lease(first).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        if let Some(l) = holder().await.filter(|l| *l != first) {
            break l;
        }
        assert!(Instant::now() < deadline, "the lock was not taken again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    meta.revoke_lease(second).await.unwrap();
    let rogue = meta.grant_lease(Duration::from_secs(60)).await.unwrap();
    meta.try_lock(evenkeel_types::keys::UP_LOCK, rogue).await.unwrap().expect("the rogue takes the free lock");
    let e = tokio::time::timeout(Duration::from_secs(10), cluster.failed()).await.expect("the cluster stopped");
    assert!(format!("{e:#}").contains("another process holds it"), "{e:#}");
}
