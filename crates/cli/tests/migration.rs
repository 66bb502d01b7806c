//! Live partition moves under concurrent load.
//!
//! Every key has exactly one writer, which writes strictly increasing
//! sequence numbers, so a read is correct iff the sequence it returns is at
//! least the last one acknowledged before the read began (no lost write, no
//! stale read: G1, G2, G3) and at most the last one invoked before the read
//! ended (no invented or future value: G5). Counters check that every
//! acknowledged INCR counts exactly once. Any client error fails the test.

use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::{MigrationInfo, MigrationList, MoveRequest};
use redis::AsyncCommands;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEYS_PER_WRITER: usize = 200;
const WRITERS: usize = 3;
const PAUSE_BUDGET_MS: u64 = 500;

struct Register {
    invoked: AtomicU64,
    acked: AtomicU64,
}

fn key(writer: usize, k: usize) -> String {
    format!("w{writer}:k{k}")
}

async fn writer(conn: redis::aio::MultiplexedConnection, w: usize, regs: Arc<Vec<Register>>, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let mut conn = conn;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        for k in 0..KEYS_PER_WRITER {
            let reg = &regs[w * KEYS_PER_WRITER + k];
            reg.invoked.store(seq, Ordering::SeqCst);
            let () = conn.set(key(w, k), seq.to_string()).await.map_err(|e| format!("SET {}: {e}", key(w, k)))?;
            reg.acked.store(seq, Ordering::SeqCst);
        }
    }
    Ok(seq)
}

async fn reader(conn: redis::aio::MultiplexedConnection, regs: Arc<Vec<Register>>, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let mut conn = conn;
    let mut reads = 0u64;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i = (i + 7919) % regs.len();
        let (w, k) = (i / KEYS_PER_WRITER, i % KEYS_PER_WRITER);
        let lo = regs[i].acked.load(Ordering::SeqCst);
        let got: Option<String> = conn.get(key(w, k)).await.map_err(|e| format!("GET {}: {e}", key(w, k)))?;
        let hi = regs[i].invoked.load(Ordering::SeqCst);
        let seen: u64 = got.as_deref().map_or(0, |v| v.parse().expect("values are sequence numbers"));
        if seen < lo || seen > hi {
            return Err(format!("{}: read {seen}, but acked {lo} before the read and invoked {hi} by its end", key(w, k)));
        }
        reads += 1;
    }
    Ok(reads)
}

async fn incrementer(conn: redis::aio::MultiplexedConnection, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let mut conn = conn;
    let mut acked = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n: u64 = conn.incr(format!("counter:{}", acked % 16), 1).await.map_err(|e| format!("INCR: {e}"))?;
        assert!(n >= 1);
        acked += 1;
    }
    Ok(acked)
}

/// Writers, readers and an incrementer running against the router; each
/// read is checked as it happens, the rest when the load stops.
struct Load {
    regs: Arc<Vec<Register>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<Result<u64, String>>>,
    readers: Vec<tokio::task::JoinHandle<Result<u64, String>>>,
    counter: tokio::task::JoinHandle<Result<u64, String>>,
}

impl Load {
    /// Starts the load and returns once every key has been written once.
    async fn start(client: &redis::Client, readers: usize) -> Load {
        let regs: Arc<Vec<Register>> = Arc::new((0..WRITERS * KEYS_PER_WRITER).map(|_| Register { invoked: AtomicU64::new(0), acked: AtomicU64::new(0) }).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let conn = || client.get_multiplexed_async_connection();
        let mut load = Load { regs: regs.clone(), stop: stop.clone(), writers: vec![], readers: vec![], counter: tokio::spawn(incrementer(conn().await.unwrap(), stop.clone())) };
        for w in 0..WRITERS {
            load.writers.push(tokio::spawn(writer(conn().await.unwrap(), w, regs.clone(), stop.clone())));
        }
        for _ in 0..readers {
            load.readers.push(tokio::spawn(reader(conn().await.unwrap(), regs.clone(), stop.clone())));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while regs.iter().any(|r| r.acked.load(Ordering::SeqCst) == 0) {
            assert!(Instant::now() < deadline, "initial writes did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        load
    }

    /// Stops the load, fails on any client error, and checks the final
    /// state: every key holds its last acknowledged value (G1) and every
    /// acknowledged INCR counted exactly once.
    async fn finish(self, client: &redis::Client) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.writers {
            t.await.unwrap().unwrap();
        }
        let mut reads = 0;
        for t in self.readers {
            reads += t.await.unwrap().unwrap();
        }
        assert!(reads > 0, "readers made progress");
        let increments = self.counter.await.unwrap().unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        for (i, reg) in self.regs.iter().enumerate() {
            let got: String = conn.get(key(i / KEYS_PER_WRITER, i % KEYS_PER_WRITER)).await.unwrap();
            assert_eq!(got.parse::<u64>().unwrap(), reg.acked.load(Ordering::SeqCst));
        }
        let mut total = 0u64;
        for c in 0..16 {
            let v: Option<u64> = conn.get(format!("counter:{c}")).await.unwrap();
            total += v.unwrap_or(0);
        }
        assert_eq!(total, increments, "every acknowledged INCR counted exactly once");
    }
}

/// Cluster options for these tests: `partitions` partitions, a short (or
/// long) bake, and a pause budget a debug build can meet.
fn options(dir: &std::path::Path, partitions: u32, bake_ms: u64) -> UpOptions {
    let mut opts = UpOptions::ephemeral(dir);
    opts.partitions = partitions;
    opts.coord.limits.bake_ms = bake_ms;
    opts.coord.driver.pause_budget_ms = PAUSE_BUDGET_MS;
    opts
}

async fn migrations(http: &reqwest::Client, admin: &str) -> Vec<MigrationInfo> {
    let list: MigrationList = http.get(format!("{admin}/v1/migrations")).send().await.unwrap().json().await.unwrap();
    list.migrations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_under_load_without_errors_lost_or_stale_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 16, 300);
    opts.coord.driver.chunk_keys = 50;
    let cluster = LocalCluster::start(opts).await.unwrap();
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let load = Load::start(&client, 2).await;
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin).await;
    // Two rounds: eight partitions move, then move again to a third node,
    // so sixteen cutovers happen while the load runs.
    let mut moves = Vec::new();
    for round in 0..2 {
        let table = routing(&cluster).await;
        let batch: Vec<MoveRequest> = (0..8u16)
            .map(|p| {
                let owner = table.entry(p).unwrap().owner;
                let others: Vec<u32> = cluster.node_ids.iter().copied().filter(|n| *n != owner).collect();
                MoveRequest { partition: p, target: others[(p as usize + round) % others.len()] }
            })
            .collect();
        for (i, mv) in batch.iter().enumerate() {
            let resp = http.post(format!("{admin}/v1/migrations")).json(mv).send().await.unwrap();
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
            if i == 0 {
                // A second move of a partition still moving (or baking) is refused.
                let dup = http.post(format!("{admin}/v1/migrations")).json(mv).send().await.unwrap();
                let status = dup.status();
                let body = dup.text().await.unwrap();
                assert_eq!(status, 409, "duplicate move answered {body}; migrations: {:?}", migrations(&http, &admin).await);
            }
        }
        moves.extend(batch);
        wait_all_done(&http, &admin, moves.len()).await;
    }
    // Keep the load on a little past the last cutover, then stop and check.
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.finish(&client).await;

    // The routing table reflects the last round of moves.
    let table = routing(&cluster).await;
    for mv in &moves[8..] {
        assert_eq!(table.entry(mv.partition).unwrap().owner, mv.target);
    }
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys_now: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys_now as usize, WRITERS * KEYS_PER_WRITER + 16);
    cluster.shutdown().await.unwrap();
}

async fn routing(cluster: &LocalCluster) -> evenkeel_types::RoutingTable {
    let kv = cluster.meta.get(evenkeel_types::keys::ROUTING).await.unwrap().unwrap();
    evenkeel_types::RoutingTable::from_json(&kv.value).unwrap()
}

/// Waits until `expected` migrations exist and all are DONE, each with a
/// cutover pause inside the budget (G8); fails fast on a failed one.
async fn wait_all_done(http: &reqwest::Client, admin: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = migrations(http, admin).await;
        if all.len() == expected && all.iter().all(|m| m.state == "DONE") {
            for m in &all {
                let pause = m.cutover_pause_ms.expect("a done migration cut over");
                assert!(pause <= PAUSE_BUDGET_MS, "{}: cutover paused {pause} ms, budget {PAUSE_BUDGET_MS} (G8)", m.id);
            }
            return;
        }
        let failed: Vec<_> = all.iter().filter(|m| m.state == "FAILED" || m.state == "ROLLED_BACK").collect();
        assert!(failed.is_empty(), "migrations failed: {failed:?}");
        assert!(Instant::now() < deadline, "migrations did not finish: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_leader(http: &reqwest::Client, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s: evenkeel_coord::api::ClusterStatus = http.get(format!("{admin}/v1/cluster")).send().await.unwrap().json().await.unwrap();
        if s.leader {
            return;
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes made on the destination during bake reach the source through
/// reverse capture, so a rollback hands the partition back losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_during_bake_loses_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(options(dir.path(), 8, 600_000)).await.unwrap();
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let p = 3u16;
    let keys: Vec<String> = (0..).map(|i| format!("rb{i}")).filter(|k| evenkeel_types::slot::key_partition(k.as_bytes(), 8) == p).take(50).collect();
    for k in &keys {
        let () = conn.set(k, "before").await.unwrap();
    }
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin).await;
    let source = routing(&cluster).await.entry(p).unwrap().owner;
    let target = cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let started: MigrationInfo = http.post(format!("{admin}/v1/migrations")).json(&MoveRequest { partition: p, target }).send().await.unwrap().json().await.unwrap();
    wait_state(&http, &admin, &started.id, "COMPLETED").await;
    assert_eq!(routing(&cluster).await.entry(p).unwrap().owner, target);
    // In bake the partition already sits on `target`, but the unfinished
    // migration is what a new request conflicts with.
    let again = http.post(format!("{admin}/v1/migrations")).json(&MoveRequest { partition: p, target }).send().await.unwrap();
    assert_eq!(again.status(), 409, "{}", again.text().await.unwrap());

    // These writes land on the target only.
    for k in &keys[..25] {
        let () = conn.set(k, "during-bake").await.unwrap();
    }
    let _: i64 = conn.del(&keys[25]).await.unwrap();
    let resp = http.post(format!("{admin}/v1/migrations/{}/rollback", started.id)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    wait_state(&http, &admin, &started.id, "ROLLED_BACK").await;
    assert_eq!(routing(&cluster).await.entry(p).unwrap().owner, source);
    for (i, k) in keys.iter().enumerate() {
        let got: Option<String> = conn.get(k).await.unwrap();
        let expected = match i {
            0..25 => Some("during-bake"),
            25 => None,
            _ => Some("before"),
        };
        assert_eq!(got.as_deref(), expected, "{k}");
    }
    // A finished migration accepts no more requests.
    let again = http.post(format!("{admin}/v1/migrations/{}/rollback", started.id)).send().await.unwrap();
    assert_eq!(again.status(), 409);
    cluster.shutdown().await.unwrap();
}

async fn wait_state(http: &reqwest::Client, admin: &str, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = migrations(http, admin).await;
        let m = all.iter().find(|m| m.id == id).expect("migration listed");
        if m.state == state {
            return;
        }
        assert!(!matches!(m.state.as_str(), "FAILED" | "CANCELLED") || state == m.state, "migration ended {}: {:?}", m.state, m.error);
        assert!(Instant::now() < deadline, "{id} never reached {state}: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `node add` starts a real node in-process; a partition moves to it; a
/// restart on the same data directory brings the node and its keys back;
/// removing a node that owns partitions is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_node_takes_partitions_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(options(dir.path(), 8, 100)).await.unwrap();
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin).await;
    let added = http.post(format!("{admin}/v1/nodes")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(added.status(), 201, "{}", added.text().await.unwrap());
    let info: evenkeel_types::NodeInfo = added.json().await.unwrap();
    assert_eq!(info.id, 4);

    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = (0..).map(|i| format!("n{i}")).filter(|k| evenkeel_types::slot::key_partition(k.as_bytes(), 8) == 0).take(20).collect();
    for k in &keys {
        let () = conn.set(k, k).await.unwrap();
    }
    let m: MigrationInfo = http.post(format!("{admin}/v1/migrations")).json(&MoveRequest { partition: 0, target: 4 }).send().await.unwrap().json().await.unwrap();
    wait_state(&http, &admin, &m.id, "DONE").await;
    let refused = http.post(format!("{admin}/v1/nodes/4/remove")).send().await.unwrap();
    assert_eq!(refused.status(), 409, "a node that owns partitions cannot be removed");
    cluster.shutdown().await.unwrap();

    let cluster = LocalCluster::start(options(dir.path(), 8, 100)).await.unwrap();
    assert_eq!(cluster.node_ids, vec![1, 2, 3, 4]);
    assert_eq!(routing(&cluster).await.entry(0).unwrap().owner, 4);
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for k in &keys {
        let v: Option<String> = conn.get(k).await.unwrap();
        assert_eq!(v.as_deref(), Some(k.as_str()));
    }
    cluster.shutdown().await.unwrap();
}

/// 3 → 4 nodes: the rebalance moves a quarter of the partitions to the new
/// node (no more than 1/(N+1) of the data plus one partition), under load,
/// with no client error and no lost or stale value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_after_node_add_moves_a_quarter_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 16, 100);
    // The other tests call nodes in-process (as `evenkeel up` does); this
    // one goes over loopback gRPC, as separate processes would.
    opts.in_process_rpc = false;
    let cluster = LocalCluster::start(opts).await.unwrap();
    let client = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
    let load = Load::start(&client, 1).await;
    let admin = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();
    wait_for_leader(&http, &admin).await;
    assert_eq!(http.post(format!("{admin}/v1/nodes")).send().await.unwrap().status(), 201);
    // Bytes per partition come from the stats poll; wait until it has them
    // for every partition and has seen the new node.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s: evenkeel_coord::api::ClusterStatus = http.get(format!("{admin}/v1/cluster")).send().await.unwrap().json().await.unwrap();
        if s.nodes.len() == 4 && s.nodes.iter().all(|n| n.healthy) && s.partitions.iter().all(|p| p.bytes > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "stats never covered every partition: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = http.post(format!("{admin}/v1/rebalance")).send().await.unwrap();
    assert_eq!(started.status(), 201, "{}", started.text().await.unwrap());
    let r: evenkeel_coord::rebalance::Rebalance = started.json().await.unwrap();
    assert_eq!(r.plan.moves.len(), 4, "16 partitions over 4 nodes: 4 move");
    assert!(r.plan.moves.iter().all(|m| m.to == 4));
    let largest = r.plan.moves.iter().map(|m| m.bytes).max().unwrap();
    assert!(r.plan.moved_bytes <= r.plan.total_bytes / 4 + largest, "{} of {}", r.plan.moved_bytes, r.plan.total_bytes);
    let again = http.post(format!("{admin}/v1/rebalance")).send().await.unwrap();
    assert_eq!(again.status(), 409, "one rebalance at a time");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s: evenkeel_coord::api::RebalanceStatus = http.get(format!("{admin}/v1/rebalance")).send().await.unwrap().json().await.unwrap();
        let state = s.rebalance.as_ref().unwrap().state;
        if state == evenkeel_coord::rebalance::State::Done {
            break;
        }
        assert_eq!(state, evenkeel_coord::rebalance::State::Running, "{s:?}");
        assert!(Instant::now() < deadline, "rebalance did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.finish(&client).await;
    let table = routing(&cluster).await;
    for node in 1..=4 {
        assert_eq!(table.partitions_of(node).len(), 4, "node {node}");
    }
    let plan: evenkeel_coord::plan::Plan = http.get(format!("{admin}/v1/rebalance/plan")).send().await.unwrap().json().await.unwrap();
    assert!(plan.moves.is_empty(), "a balanced cluster plans nothing: {plan:?}");
    cluster.shutdown().await.unwrap();
}
