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
use common::cluster::{check_self_valued, keys_in, move_partition_0_to_a_new_node, on_etcd, routing};
use evenkeel::up::LocalCluster;
use evenkeel_coord::api::{MigrationInfo, MoveRequest};
use evenkeel_meta::{EtcdOptions, EtcdStore, MetaStore};
use redis::AsyncCommands;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_etcd_moves_a_partition_and_comes_back_after_a_restart() {
    let etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(on_etcd(dir.path(), 8, 100, etcd.endpoint())).await.unwrap();
    assert!(!dir.path().join("meta").exists(), "no embedded store beside etcd");
    let (recorded, _) = cluster.meta.get_prefix("/evenkeel/nodes/").await.unwrap();
    assert_eq!(recorded.len(), 3, "membership is in etcd");

    // A second process on the same etcd is refused while this one runs
    // (after waiting out the lock's lease, which this one keeps alive).
    let other = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let refused = LocalCluster::start(on_etcd(other.path(), 8, 100, etcd.endpoint())).await.err().expect("a second `up` on the same etcd is refused");
    assert!(format!("{refused:#}").contains("node 1 runs in another process"), "{refused:#}");
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
    let cluster = LocalCluster::start(on_etcd(dir.path(), 8, 100, etcd.endpoint())).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(cluster.node_ids, vec![1, 2, 3, 4]);
    assert_eq!(routing(&cluster).await.entry(0).unwrap().owner, 4);
    check_self_valued(&cluster, &keys).await;

    // A removed node gives up its claim (its process may be started again
    // elsewhere with a new id at once) and its id is not given out again.
    let admin = format!("http://{}", cluster.admin_addr);
    wait_for_leader(&http, &admin, Duration::from_secs(10)).await;
    let add = async || {
        let resp = http.post(format!("{admin}/v1/nodes")).json(&serde_json::json!({})).send().await.unwrap();
        assert!(resp.status().is_success(), "node add: {}", resp.text().await.unwrap());
        resp.json::<serde_json::Value>().await.unwrap()["id"].as_u64().unwrap()
    };
    assert_eq!(add().await, 5);
    let removed = http.post(format!("{admin}/v1/nodes/5/remove")).send().await.unwrap();
    assert!(removed.status().is_success(), "{}", removed.text().await.unwrap());
    assert_eq!(add().await, 6, "a removed node's id is never given out again");
    let meta = EtcdStore::connect(EtcdOptions::new(vec![etcd.endpoint()])).await.unwrap();
    assert_eq!(meta.get(&evenkeel_types::keys::node_lock_key(5)).await.unwrap(), None, "node 5's claim was released");
    cluster.shutdown().await.unwrap();
}

/// An endpoint with no etcd behind it is a clear error, not a hang.
#[tokio::test]
async fn an_unreachable_etcd_fails_the_start_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let opts = on_etcd(dir.path(), 8, 100, format!("http://127.0.0.1:{port}"));
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
    let mut cluster = LocalCluster::start(on_etcd(dir.path(), 8, 100, etcd.endpoint())).await.unwrap();
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

/// The lease a process claims its nodes on lost (as after an etcd outage
/// longer than its TTL): the process claims them again on a new lease; if
/// another process took one meanwhile, this one stops rather than run that
/// node twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_node_claims_are_taken_again_unless_another_process_holds_one() {
    let etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(on_etcd(dir.path(), 8, 100, etcd.endpoint())).await.unwrap();
    let meta = cluster.meta.clone();
    let holder = async |node| meta.get(&evenkeel_types::keys::node_lock_key(node)).await.unwrap().and_then(|kv| kv.lease);
    let first = holder(1).await.expect("claimed");
    assert_eq!(holder(3).await, Some(first), "one lease for every node of the process");
    meta.revoke_lease(first).await.unwrap();
    // The claims are taken again one node after another, on one new lease.
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        if let (Some(a), Some(b)) = (holder(1).await, holder(3).await)
            && a != first
            && a == b
        {
            break a;
        }
        assert!(Instant::now() < deadline, "the claims were not taken again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    meta.revoke_lease(second).await.unwrap();
    let rogue = meta.grant_lease(Duration::from_secs(60)).await.unwrap();
    meta.try_lock(&evenkeel_types::keys::node_lock_key(2), rogue).await.unwrap().expect("the rogue claims node 2");
    let e = tokio::time::timeout(Duration::from_secs(10), cluster.failed()).await.expect("the cluster stopped");
    assert!(format!("{e:#}").contains("another process holds it now"), "{e:#}");
}

/// One `evenkeel serve ...` child process, killed when dropped; its output
/// goes to `log`.
struct Role {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Role {
    fn spawn(args: &[String], log: std::path::PathBuf) -> Role {
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel")).args(args).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
        Role { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to 30 s for the process to exit on its own; `what` says
    /// why it should have.
    async fn exit_status(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} kept running: {}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// The coordinator answering at one of `admins` that leads.
async fn leader(http: &reqwest::Client, admins: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for admin in admins {
            if let Ok(r) = http.get(format!("{admin}/v1/cluster")).send().await
                && let Ok(s) = r.json::<evenkeel_coord::api::ClusterStatus>().await
                && s.leader
            {
                return admin.to_string();
            }
        }
        assert!(Instant::now() < deadline, "no coordinator of {admins:?} leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A cluster of separate processes on one etcd (under a namespace), as on
/// several machines: three `serve node`, a router and two coordinators. Clients are served;
/// a fourth node process joins and a partition moves to it; `node add` is
/// refused (a coordinator cannot start a node on another machine); a
/// second process for a running node is refused; when the leading
/// coordinator is killed the standby leads and moves another partition;
/// a node removed by the operator stops its process and, started again,
/// refuses to rejoin; when etcd goes, the
/// node reports itself not ready, the router ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_separate_processes_serves_moves_and_survives_its_leader() {
    let mut etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evenkeel.toml");
    std::fs::write(&config, "[cluster]\npartitions = 8\nnodes = 3\n[migration]\nbake_ms = 100\npause_budget_ms = 500\n[throttle.health]\npause_disk_free_ratio = 0.02\n").unwrap();
    let data = dir.path().join("data");
    let common = ["--etcd-endpoints".to_string(), etcd.endpoint(), "--etcd-namespace".into(), "/five".into(), "--config".into(), config.display().to_string(), "--data-dir".into(), data.display().to_string()];
    let spawn = |name: &str, args: &[&str]| {
        let mut all: Vec<String> = ["serve"].iter().chain(args).map(|s| s.to_string()).collect();
        all.extend(common.iter().cloned());
        Role::spawn(&all, dir.path().join(format!("{name}.log")))
    };
    let (node_metrics, router_metrics) = (free_addr(), free_addr());
    let nodes: Vec<Role> = (1..=3)
        .map(|i| {
            // Each on an address of its own, as on machines of their own.
            let (id, listen) = (i.to_string(), format!("127.0.0.{}:0", i + 1));
            let mut args = vec!["node", "--id", &id, "--listen", &listen];
            if i == 1 {
                args.extend(["--admin", &node_metrics]);
            }
            spawn(&format!("node{i}"), &args)
        })
        .collect();
    let (admin_a, admin_b, resp) = (free_addr(), free_addr(), free_addr());
    let mut coord_a = spawn("coord-a", &["coordinator", "--admin", &admin_a]);
    let _coord_b = spawn("coord-b", &["coordinator", "--admin", &admin_b]);
    let _router = spawn("router", &["router", "--listen", &resp, "--admin", &router_metrics]);
    let resp2 = free_addr();
    let _router2 = spawn("router2", &["router", "--listen", &resp2]);
    let (admin_a, admin_b) = (format!("http://{admin_a}"), format!("http://{admin_b}"));
    let http = reqwest::Client::new();

    // Served once the coordinator has bootstrapped the routing table.
    let client = redis::Client::open(format!("redis://{resp}")).unwrap();
    let keys0 = keys_in("p", 0, 8, 20);
    let keys1 = keys_in("p", 1, 8, 20);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && conn.set::<_, _, ()>("probe", "1").await.is_ok()
        {
            break conn;
        }
        assert!(Instant::now() < deadline, "the router never served; coordinator: {}\nnodes: {}", coord_a.output(), nodes.iter().map(Role::output).collect::<Vec<_>>().join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for k in keys0.iter().chain(&keys1) {
        let () = conn.set(k, k).await.unwrap();
    }
    // Pub/Sub between router processes: a message published through one
    // reaches a subscriber of the other, relayed by a node process.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pubsub = loop {
        if let Ok(mut p) = redis::Client::open(format!("redis://{resp2}")).unwrap().get_async_pubsub().await
            && p.subscribe("news").await.is_ok()
        {
            break p;
        }
        assert!(Instant::now() < deadline, "the second router never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut messages = pubsub.on_message();
    for i in 0.. {
        // Counted 1 once the subscriber's router has linked to the node
        // relaying.
        let receivers: i64 = conn.publish("news", format!("m{i}")).await.unwrap();
        if receivers == 1 {
            let m = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut messages)).await.expect("the message arrives").unwrap();
            assert_eq!(m.get_payload::<String>().unwrap(), format!("m{i}"));
            break;
        }
        assert!(Instant::now() < deadline, "no subscriber counted across router processes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(messages);
    // Scripts run in node processes; a function library loaded through one
    // router process is called through the other (both follow it in etcd).
    let mut conn2 = redis::Client::open(format!("redis://{resp2}")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let got: String = redis::cmd("EVAL").arg("redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])").arg(1).arg("lua:procs").arg("by-script").query_async(&mut conn2).await.unwrap();
    assert_eq!(got, "by-script");
    let library = "#!lua name=procs\nredis.register_function('double', function(keys) return redis.call('incrby', keys[1], redis.call('get', keys[1]) or 0) end)";
    let loaded: String = redis::cmd("FUNCTION").arg("LOAD").arg(library).query_async(&mut conn).await.unwrap();
    assert_eq!(loaded, "procs");
    let () = conn.set("fn:n", 21).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redis::cmd("FCALL").arg("double").arg(1).arg("fn:n").query_async::<i64>(&mut conn2).await {
            Ok(n) => {
                assert_eq!(n, 42);
                break;
            }
            Err(e) if e.to_string().contains("Function not found") && Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("FCALL through the other router process: {e}"),
        }
    }
    // A node and a router process serve their own /metrics, /healthz and
    // /readyz.
    for (addr, metric) in [(&node_metrics, "evenkeel_node_execute_seconds"), (&router_metrics, "evenkeel_router_")] {
        let text = http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(text.contains(metric), "{addr}: {text}");
        assert_eq!(http.get(format!("http://{addr}/healthz")).send().await.unwrap().status(), 200, "{addr}");
        assert_eq!(http.get(format!("http://{addr}/readyz")).send().await.unwrap().status(), 200, "{addr}");
    }

    let node4 = spawn("node4", &["node", "--id", "4", "--listen", "127.0.0.5:0", "--zone", "rack-b"]);
    // Node 2 runs already: a second process for it waits out the claim's
    // lease, then refuses.
    let mut twin = spawn("node2-twin", &["node", "--id", "2"]);
    let lead = leader(&http, &[&admin_a, &admin_b]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let joined = loop {
        let status = common::admin::cluster(&http, &lead).await;
        if status.nodes.iter().filter(|n| n.healthy).count() == 4 {
            break status;
        }
        assert!(Instant::now() < deadline, "node 4 never joined: {}", node4.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for n in &joined.nodes {
        assert!(n.addr.starts_with(&format!("127.0.0.{}:", n.id + 1)), "node {} publishes the address it listens on: {}", n.id, n.addr);
        assert_eq!(n.zone.as_deref(), (n.id == 4).then_some("rack-b"), "node {} records the zone it was started with", n.id);
    }
    let refused = http.post(format!("{lead}/v1/nodes")).json(&serde_json::json!({})).send().await.unwrap();
    assert!(refused.status().is_client_error() || refused.status().is_server_error(), "node add answered {}", refused.status());
    assert!(refused.text().await.unwrap().contains("start the node process"), "node add says what to do instead");

    let m: MigrationInfo = http.post(format!("{lead}/v1/migrations")).json(&MoveRequest { partition: 0, target: 4 }).send().await.unwrap().json().await.unwrap();
    wait_state(&http, &lead, &m.id, "DONE").await;
    for k in &keys0 {
        let v: Option<String> = conn.get(k).await.unwrap();
        assert_eq!(v.as_deref(), Some(k.as_str()), "{k} after the move");
    }

    // The leader dies; the standby leads and moves another partition.
    let standby = if lead == admin_a {
        coord_a.child.kill().unwrap();
        admin_b.clone()
    } else {
        drop(_coord_b);
        admin_a.clone()
    };
    let lead = leader(&http, &[&standby]).await;
    let owner = common::admin::cluster(&http, &lead).await.partitions.iter().find(|p| p.id == 1).unwrap().owner;
    let target = if owner == 4 { 1 } else { 4 };
    let m: MigrationInfo = http.post(format!("{lead}/v1/migrations")).json(&MoveRequest { partition: 1, target }).send().await.unwrap().json().await.unwrap();
    wait_state(&http, &lead, &m.id, "DONE").await;
    for k in &keys1 {
        let v: Option<String> = conn.get(k).await.unwrap();
        assert_eq!(v.as_deref(), Some(k.as_str()), "{k} after the second move");
    }

    let status = twin.exit_status("a second process for node 2").await;
    assert!(!status.success());
    assert!(twin.output().contains("node 2 runs in another process"), "{}", twin.output());

    // A node that owns nothing, removed by the operator: its process sees
    // its membership record go and stops by itself, with status 0.
    let mut node5 = spawn("node5", &["node", "--id", "5", "--listen", "127.0.0.6:0"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !common::admin::cluster(&http, &lead).await.nodes.iter().any(|n| n.id == 5 && n.healthy) {
        assert!(Instant::now() < deadline, "node 5 never joined: {}", node5.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removed = http.post(format!("{lead}/v1/nodes/5/remove")).send().await.unwrap();
    assert!(removed.status().is_success(), "{}", removed.text().await.unwrap());
    let status = node5.exit_status("node 5's process, removed,").await;
    assert!(status.success(), "{status}: {}", node5.output());
    assert!(node5.output().contains("node removed from the cluster"), "{}", node5.output());
    // Started again (a supervisor's restart), it refuses to rejoin.
    let mut again = spawn("node5-again", &["node", "--id", "5", "--listen", "127.0.0.6:0"]);
    let status = again.exit_status("removed node 5, started again,").await;
    assert!(!status.success());
    assert!(again.output().contains("node 5 was removed from the cluster"), "{}", again.output());
    let meta = EtcdStore::connect(EtcdOptions { namespace: "/five".into(), ..EtcdOptions::new(vec![etcd.endpoint()]) }).await.unwrap();
    assert_eq!(meta.get(&evenkeel_types::keys::node_key(5)).await.unwrap(), None, "it did not rejoin");

    // Without etcd, the node serves on but is no longer ready once its
    // liveness lease is past renewing (3 s); the router, which routes
    // with the table it has, stays ready. Both stay alive.
    etcd.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let why = loop {
        let resp = http.get(format!("http://{node_metrics}/readyz")).send().await.unwrap();
        if resp.status() == 503 {
            break resp.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "node 1 stayed ready without etcd");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(why.contains("liveness lease not renewed"), "{why}");
    assert_eq!(http.get(format!("http://{router_metrics}/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("http://{node_metrics}/healthz")).send().await.unwrap().status(), 200);
    let v: Option<String> = conn.get(&keys0[0]).await.unwrap();
    assert_eq!(v.as_deref(), Some(keys0[0].as_str()), "served without etcd");
    drop(nodes);
}

/// etcd lost in the middle of a rebalance, under a checked load: clients
/// see no error and no lost or stale value (the data path does not need
/// etcd, and a cutover that cannot write the routing table lifts its
/// fence), and once etcd is back the rebalance resumes and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_survives_losing_etcd_in_the_middle() {
    let mut etcd = etcd_server::EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(on_etcd(dir.path(), 16, 100, etcd.endpoint())).await.unwrap();
    let endpoint = common::load::Endpoint::new(cluster.router_addr);
    let mut load = common::load::Load::start(&endpoint, 1).await;
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin, Duration::from_secs(10)).await;
    assert_eq!(http.post(format!("{admin}/v1/nodes")).send().await.unwrap().status(), 201);
    common::admin::wait_stats(&http, &admin, 4, Duration::from_secs(10)).await;
    let started = http.post(format!("{admin}/v1/rebalance")).send().await.unwrap();
    assert_eq!(started.status(), 201, "{}", started.text().await.unwrap());
    // Lose etcd once the first move is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !common::admin::migrations(&http, &admin).await.iter().any(|m| m.state != "PENDING") {
        assert!(Instant::now() < deadline, "no move started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_loss: Vec<String> = common::admin::migrations(&http, &admin).await.into_iter().map(|m| m.state).collect();
    etcd.kill();
    tokio::time::sleep(Duration::from_secs(8)).await;
    load.check("the etcd outage").await;
    eprintln!("moves when etcd was lost: {at_loss:?}");
    etcd.restart();
    let end = common::admin::wait_rebalance_end(&http, &admin, Duration::from_secs(120)).await;
    assert_eq!(end.rebalance.as_ref().unwrap().state, evenkeel_coord::rebalance::State::Done, "{end:?}");
    let summary = load.finish(&endpoint).await;
    eprintln!("through the etcd outage: {summary}");
    let table = routing(&cluster).await;
    assert_eq!(table.partitions_of(4).len(), 4, "the new node took its quarter");
    cluster.shutdown().await.unwrap();
}
