//! Routing modes during a move (issue 4): dual-write, shadow reads and
//! copy-on-read against an in-process cluster, each next to a move without
//! the mode, so a mode that does nothing fails its test.
//!
//! The copy is slowed with the static throttle (`PATCH /v1/throttle`) and
//! small chunks, and the keys under test sit in the partition's last hash
//! slot, which the copy (in key order) reaches last: while it crawls through
//! the filler, whatever the destination holds of those keys came from the
//! routers, not from the copy. The destination is read directly with the
//! shadow-read RPC under the migration's token.
//!
//! The tests hold `SERIAL`: they measure timing-dependent states (a copy
//! that must still be crawling) on a machine with two cores, and one reads
//! the process-wide node counters in `/metrics`, which another cluster in
//! this binary would add to.

mod common;

use common::cluster;
use common::load::{Endpoint, Load};
use evenkeel::up::LocalCluster;
use evenkeel_coord::api::MigrationInfo;
use evenkeel_coord::migration::machine::Migration;
use evenkeel_rpc::pb;
use evenkeel_types::slot::{key_slot, partition_slots};
use evenkeel_types::{NodeInfo, RoutingTable, keys};
use redis::AsyncCommands;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PARTITIONS: u16 = 8;
const P: u16 = 5;
/// Keys that fill the partition ahead of its last slot, so the copy has
/// something to crawl through.
const FILLER: usize = 2000;
const CHUNK_KEYS: u32 = 50;
/// The slowed copy, in keys a second (after a first burst of 500: the
/// throttle's bucket starts full).
const SLOW_KEYS_PER_S: f64 = 150.0;

struct Harness {
    cluster: LocalCluster,
    http: reqwest::Client,
    admin: String,
    redis: redis::Client,
}

impl Harness {
    async fn start(dir: &std::path::Path) -> Harness {
        let mut opts = cluster::options(dir, PARTITIONS as u32, 200);
        opts.coord.driver.chunk_keys = CHUNK_KEYS;
        let cluster = LocalCluster::start(opts).await.unwrap();
        let (admin, http) = (format!("http://{}", cluster.admin_addr), reqwest::Client::new());
        common::admin::wait_for_leader(&http, &admin, Duration::from_secs(10)).await;
        let redis = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
        Harness { cluster, http, admin, redis }
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.redis.get_multiplexed_async_connection().await.unwrap()
    }

    /// Sets the per-migration copy rate in keys (None: unlimited); the
    /// adaptive controller is off so that the rate is what the test says.
    /// (The options already keep the host's free disk from pausing moves.)
    async fn throttle(&self, rate: Option<f64>) {
        let body = json!({"migration_rate_keys_per_s": rate, "adaptive": false});
        let resp = self.http.patch(format!("{}/v1/throttle", self.admin)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        // The throttle reads its settings once a second.
        cluster::wait_throttle(&self.http, &self.admin, "the copy rate", |s| s.settings.migration_rate_keys_per_s == rate && !s.settings.adaptive).await;
    }

    /// Writes the filler: `FILLER` keys of partition `P`, none in its last slot.
    async fn fill(&self) {
        let keys = cluster::keys_in("fill", P, PARTITIONS as u32, FILLER + FILLER / 10);
        let keys: Vec<String> = keys.into_iter().filter(|k| key_slot(k.as_bytes()) as u32 != last_slot()).take(FILLER).collect();
        assert_eq!(keys.len(), FILLER);
        cluster::fill(&self.redis, &keys, 100).await;
    }

    async fn table(&self) -> RoutingTable {
        cluster::routing(&self.cluster).await
    }

    /// Moves `P` to a node other than its owner; `modes`: the request's
    /// mode overrides.
    async fn start_move(&self, modes: serde_json::Value) -> MigrationInfo {
        let owner = self.table().await.entry(P).unwrap().owner;
        let target = self.cluster.node_ids.iter().copied().find(|n| *n != owner).unwrap();
        let mut body = json!({"partition": P, "target": target});
        body.as_object_mut().unwrap().extend(modes.as_object().unwrap().clone());
        let resp = self.http.post(format!("{}/v1/migrations", self.admin)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    async fn migration(&self, id: &str) -> MigrationInfo {
        common::admin::migrations(&self.http, &self.admin).await.into_iter().find(|m| m.id == id).expect("migration listed")
    }

    async fn wait(&self, id: &str, what: &str, f: impl Fn(&MigrationInfo) -> bool) -> MigrationInfo {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.migration(id).await;
            if f(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "migration never reached {what}: {m:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn control(&self, id: &str, action: &str) {
        let resp = self.http.post(format!("{}/v1/migrations/{id}/{action}", self.admin)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{action}: {}", resp.text().await.unwrap());
    }

    /// The migration as stored (its token and copy progress).
    async fn stored(&self, id: &str) -> Migration {
        serde_json::from_slice(&self.cluster.meta.get(&keys::migration_key(id)).await.unwrap().unwrap().value).unwrap()
    }

    async fn node(&self, id: u32) -> evenkeel_rpc::NodeClient {
        let info: NodeInfo = serde_json::from_slice(&self.cluster.meta.get(&keys::node_key(id)).await.unwrap().unwrap().value).unwrap();
        evenkeel_rpc::connect_lazy(&info.addr).unwrap()
    }

    /// What `m`'s destination holds of `keys` (version 0: nothing).
    async fn destination(&self, m: &Migration, keys: &[String]) -> Vec<pb::KeyRecord> {
        let req = pb::ShadowReadRequest { header: header(m), keys: keys.iter().map(|k| k.clone().into()).collect() };
        self.node(m.target).await.migrate_shadow_read(req).await.unwrap().into_inner().records
    }

    /// The record `m`'s source holds of `key`, read as routers read it.
    async fn source_record(&self, m: &Migration, key: &str) -> pb::KeyRecord {
        let op = pb::Op { partition: P as u32, key: key.to_string().into(), kind: Some(pb::op::Kind::Get(pb::Get::default())), want_record: true, track: false, waiter: 0 };
        let req = pb::ExecuteRequest { epoch: self.table().await.epoch, ops: vec![op], router: 0 };
        let result = self.node(m.source).await.execute(req).await.unwrap().into_inner().results.remove(0);
        result.record.expect("the source holds the key")
    }

    /// Waits until `m`'s destination holds `expected` for every key, or
    /// `within` has passed; returns how many it holds.
    async fn holding(&self, m: &Migration, keys: &[String], expected: &[String], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let held = self.destination(m, keys).await.iter().zip(expected).filter(|(r, v)| r.version > 0 && r.value == v.as_bytes()).count();
            if held == keys.len() || Instant::now() >= deadline {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn header(m: &Migration) -> Option<pb::MigrateHeader> {
    Some(pb::MigrateHeader { partition: P as u32, token: m.token.expect("prepared") })
}

fn last_slot() -> u32 {
    partition_slots(P, PARTITIONS).1 - 1
}

/// `n` keys `{tag}PREFIXi` in `P`'s last slot: the copy reaches them last.
fn last_slot_keys(prefix: &str, n: usize) -> Vec<String> {
    let tag = (0..).map(|i| format!("t{i}")).find(|t| key_slot(t.as_bytes()) as u32 == last_slot()).unwrap();
    (0..n).map(|i| format!("{{{tag}}}{prefix}{i}")).collect()
}

/// Writes its keys round after round (value `LABEL:ROUND`) until stopped;
/// every write must succeed.
struct Writer {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Writer {
    fn start(mut conn: redis::aio::MultiplexedConnection, keys: Vec<String>, label: &str) -> Writer {
        let (stop, rounds) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, r, label) = (stop.clone(), rounds.clone(), label.to_string());
        let task = tokio::spawn(async move {
            let mut last = vec![String::new(); keys.len()];
            for round in 0.. {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                for (k, held) in keys.iter().zip(&mut last) {
                    let value = format!("{label}:{round}");
                    let () = conn.set(k, &value).await.unwrap_or_else(|e| panic!("SET {k}: {e}"));
                    *held = value;
                }
                r.store(round + 1, Ordering::Relaxed);
            }
            last
        });
        Writer { stop, rounds, task }
    }

    async fn wait_rounds(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.rounds.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "the writer made no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops and returns the last value acknowledged for each key.
    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// What one move under write load showed.
#[derive(Debug)]
struct DualWriteRun {
    keys: usize,
    /// Keys whose latest value the destination held mid-copy.
    fresh: usize,
    end: MigrationInfo,
}

impl Harness {
    /// Moves `P` with dual-write `on` while a writer rewrites keys in its
    /// last slot; pauses the slowed copy to count which of them the
    /// destination already holds, then lets the move finish under the same
    /// writes.
    async fn dual_write_run(&self, label: &str, on: bool) -> DualWriteRun {
        let hot = last_slot_keys(label, 100);
        let writer = Writer::start(self.conn().await, hot.clone(), label);
        writer.wait_rounds(1).await;
        self.throttle(Some(SLOW_KEYS_PER_S)).await;
        let m = self.start_move(json!({"dual_write": on, "copy_on_read": false, "shadow_read_ratio": 0.0})).await;
        self.wait(&m.id, "COPYING", |m| m.state == "COPYING").await;
        let started = writer.rounds.load(Ordering::Relaxed);
        writer.wait_rounds(started + 5).await;
        let last = writer.stop().await;
        self.control(&m.id, "pause").await;
        self.wait(&m.id, "PAUSED", |m| m.state == "PAUSED").await;
        let stored = self.stored(&m.id).await;
        assert!(stored.keys_copied + (CHUNK_KEYS as u64) < FILLER as u64, "the copy was not slowed enough: {stored:?}");
        // Dual-writes are asynchronous: give the last ones time to land.
        // Without them nothing else can deliver these keys (the copy is
        // paused before their slot), so there is nothing to wait for.
        let within = if on { Duration::from_secs(3) } else { Duration::ZERO };
        let fresh = self.holding(&stored, &hot, &last, within).await;
        self.throttle(None).await;
        let writer = Writer::start(self.conn().await, hot.clone(), label);
        self.control(&m.id, "resume").await;
        self.wait(&m.id, "the cutover", |m| m.cutover_pause_ms.is_some() || m.state == "FAILED").await;
        let _ = writer.stop().await;
        let end = self.wait(&m.id, "DONE", |m| matches!(m.state.as_str(), "DONE" | "FAILED" | "ROLLED_BACK")).await;
        assert_eq!(end.state, "DONE", "{end:?}");
        DualWriteRun { keys: hot.len(), fresh, end }
    }
}

/// With dual-write the destination holds the latest value of keys the copy
/// has not reached, and the cutover's drain finds almost nothing new to
/// apply; without, it holds none of them and every drained entry is new.
/// Clients see no error and no lost or stale value throughout (the load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_keeps_the_destination_current_and_the_drain_small() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let endpoint = Endpoint::new(h.cluster.router_addr);
    let load = Load::start(&endpoint, 1).await;
    h.fill().await;
    let on = h.dual_write_run("on", true).await;
    let off = h.dual_write_run("off", false).await;
    let summary = load.finish(&endpoint).await;
    for (name, run) in [("dual-write on", &on), ("dual-write off", &off)] {
        let e = &run.end;
        println!(
            "{name}: destination held {}/{} latest values mid-copy; {} dual-writes ({} dropped, {} failed); catch-up applied {}/{} entries; drain applied {}/{}; pause {:?} ms",
            run.fresh, run.keys, e.mirror.dual_writes, e.mirror.dropped, e.mirror.failed, e.catch_up.applied, e.catch_up.entries, e.drain.applied, e.drain.entries, e.cutover_pause_ms
        );
    }
    println!("load: {summary}");
    assert!(on.fresh * 10 >= on.keys * 9, "dual-write on: the destination held only {}/{} latest values", on.fresh, on.keys);
    assert_eq!(off.fresh, 0, "dual-write off: nothing but the paused copy could have delivered these keys");
    assert!(on.end.mirror.dual_writes > 0 && off.end.mirror.dual_writes == 0, "{:?} / {:?}", on.end.mirror, off.end.mirror);
    let (d_on, d_off) = (on.end.drain, off.end.drain);
    assert!(d_off.entries > 0 && d_off.applied == d_off.entries, "without dual-write every drained entry is new: {d_off:?}");
    assert!(d_on.applied * 4 <= d_on.entries.max(4), "with dual-write the drain should find little new: {d_on:?}");
    h.cluster.shutdown().await.unwrap();
}

/// Reads one key over and over, each read checked against the one value
/// the key ever had, while writing another key of the partition so its
/// change log keeps moving; every request must succeed.
struct Client {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(mut conn: redis::aio::MultiplexedConnection, key: String, value: &'static str, other: String) -> Client {
        let (stop, reads) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, r) = (stop.clone(), reads.clone());
        let task = tokio::spawn(async move {
            for i in 0u64.. {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let got: Option<String> = conn.get(&key).await.unwrap_or_else(|e| panic!("GET {key}: {e}"));
                assert_eq!(got.as_deref(), Some(value), "a client read a value no client wrote");
                r.fetch_add(1, Ordering::Relaxed);
                let () = conn.set(&other, i).await.unwrap_or_else(|e| panic!("SET {other}: {e}"));
            }
        });
        Client { stop, reads, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.reads.load(Ordering::Relaxed)
    }
}

impl Harness {
    /// Moves `P` with shadow reads at `ratio` after planting, on the
    /// destination, a record of a key with the source's version but another
    /// value (what a buggy apply or a corrupt copy would leave). Returns the
    /// migration once it has ended.
    async fn divergence_run(&self, label: &str, ratio: f64) -> MigrationInfo {
        let key = last_slot_keys(label, 1).remove(0);
        let () = self.conn().await.set(&key, "truth").await.unwrap();
        self.throttle(Some(SLOW_KEYS_PER_S)).await;
        let m = self.start_move(json!({"shadow_read_ratio": ratio, "copy_on_read": false})).await;
        self.wait(&m.id, "COPYING", |m| m.state == "COPYING").await;
        let stored = self.stored(&m.id).await;
        let mut forged = self.source_record(&stored, &key).await;
        forged.value = "forged".into();
        let plant = pb::ApplyRequest { header: header(&stored), records: vec![forged], urgent: false, forwarded: false };
        assert_eq!(self.node(stored.target).await.migrate_apply(plant).await.unwrap().into_inner().applied, 1);
        let client = Client::start(self.conn().await, key.clone(), "truth", format!("{key}:other"));
        if ratio > 0.0 {
            // Routers report once a second; verification must see enough.
            self.wait(&m.id, "shadow comparisons", |m| m.mirror.shadow.compared >= 150).await;
        }
        self.throttle(None).await;
        let end = self.wait(&m.id, "its end", |m| matches!(m.state.as_str(), "DONE" | "FAILED" | "ROLLED_BACK")).await;
        assert!(client.stop().await > 0);
        let got: Option<String> = self.conn().await.get(&key).await.unwrap();
        assert_eq!(got.as_deref(), Some("truth"), "the source keeps serving");
        assert_eq!(self.table().await.entry(P).unwrap().owner, stored.source);
        end
    }
}

/// A destination that diverged is caught by shadow reads while the copy
/// and catch-up run: verification refuses the cutover and the migration
/// fails without ever fencing the source, which keeps serving; clients see
/// neither an error nor the forged value. Without shadow reads only the
/// checksum under the fence catches it: clients are paused by a fence for
/// a cutover that is then rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_reads_refuse_the_cutover_to_a_divergent_destination() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.fill().await;
    let on = h.divergence_run("shadow-on", 1.0).await;
    let off = h.divergence_run("shadow-off", 0.0).await;
    let fenced = |m: &MigrationInfo| m.transitions.iter().any(|t| t.state == "CUTTING_OVER");
    for (name, m) in [("shadow reads on", &on), ("shadow reads off", &off)] {
        let s = &m.mirror.shadow;
        println!("{name}: {} after {} compared, {} lagging, {} mismatched; fenced: {}; {:?}", m.state, s.compared, s.lagging, s.mismatched, fenced(m), m.error);
    }
    assert_eq!(on.state, "FAILED", "{on:?}");
    assert!(on.error.as_deref().is_some_and(|e| e.contains("shadow reads")), "{:?}", on.error);
    assert!(!fenced(&on), "shadow reads refuse before any fence: {:?}", on.transitions);
    assert!(on.mirror.shadow.mismatched > 0);
    assert!(h.table().await.route(P).is_none(), "a failed migration leaves no routing mode behind");
    assert!(off.error.as_deref().is_some_and(|e| !e.contains("shadow")), "{:?}", off.error);
    assert_eq!(off.mirror.shadow.compared, 0);
    h.cluster.shutdown().await.unwrap();
}

/// Keys clients read while the copy crawls reach the destination before the
/// copy does (the copy has not reached their slot: keys next to them that
/// nobody read are still missing there), and the move then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_on_read_pulls_read_keys_ahead_of_the_copy() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.fill().await;
    let late = last_slot_keys("late", 40);
    let values: Vec<String> = late.iter().map(|k| format!("value of {k}")).collect();
    let mut conn = h.conn().await;
    for (k, v) in late.iter().zip(&values) {
        let () = conn.set(k, v).await.unwrap();
    }
    h.throttle(Some(SLOW_KEYS_PER_S)).await;
    let m = h.start_move(json!({"copy_on_read": true, "dual_write": false, "shadow_read_ratio": 0.0})).await;
    h.wait(&m.id, "COPYING", |m| m.state == "COPYING").await;
    let stored = h.stored(&m.id).await;
    let (read, unread): (Vec<usize>, Vec<usize>) = (0..late.len()).partition(|i| i % 2 == 0);
    let pick = |idx: &[usize], from: &[String]| idx.iter().map(|&i| from[i].clone()).collect::<Vec<_>>();
    let (read_keys, unread_keys) = (pick(&read, &late), pick(&unread, &late));
    for (k, v) in read_keys.iter().zip(pick(&read, &values)) {
        let got: Option<String> = conn.get(k).await.unwrap();
        assert_eq!(got, Some(v));
    }
    let pulled = h.holding(&stored, &read_keys, &pick(&read, &values), Duration::from_secs(5)).await;
    let copied = h.holding(&stored, &unread_keys, &pick(&unread, &values), Duration::ZERO).await;
    let info = h.wait(&m.id, "the pushes reported", |m| m.mirror.copied_on_read as usize >= pulled).await;
    println!("copy-on-read: {pulled}/{} read keys on the destination, {copied}/{} unread ones; {} keys copied so far; {:?}", read_keys.len(), unread_keys.len(), info.keys_copied, info.mirror);
    assert_eq!(pulled, read_keys.len(), "every key read reached the destination");
    assert_eq!(copied, 0, "the copy had not reached their slot yet");
    assert_eq!(info.state, "COPYING");
    h.throttle(None).await;
    let end = h.wait(&m.id, "DONE", |m| matches!(m.state.as_str(), "DONE" | "FAILED")).await;
    assert_eq!(end.state, "DONE", "{end:?}");
    let all: Vec<Option<String>> = conn.mget(&late).await.unwrap();
    assert_eq!(all, values.into_iter().map(Some).collect::<Vec<_>>());
    h.cluster.shutdown().await.unwrap();
}

/// The verification before cutover reads the copy back from the
/// destination's stored records and takes the source's side from its
/// running digest: the destination scans the partition, the source (which
/// had just been read whole by the snapshot) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_reads_back_the_destination_and_not_the_source() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.fill().await;
    let before = h.scans().await;
    let m = h.start_move(json!({})).await;
    let end = h.wait(&m.id, "DONE", |m| matches!(m.state.as_str(), "DONE" | "FAILED")).await;
    assert_eq!(end.state, "DONE", "{end:?}");
    let after = h.scans().await;
    let grew = |node: u32| {
        let (b, a) = (before.get(&node).copied().unwrap_or_default(), after.get(&node).copied().unwrap_or_default());
        (a.0 - b.0, a.1 - b.1)
    };
    let (source, target) = (grew(end.source), grew(end.target));
    println!("verification scans (scans, keys): source {source:?}, destination {target:?}");
    assert_eq!(source, (0, 0), "the source is not scanned");
    assert!(target.0 >= 1, "the destination is scanned before the cutover");
    assert_eq!(target.1, target.0 * FILLER as u64, "each scan counts every key of the partition");
    h.cluster.shutdown().await.unwrap();
}

/// The cutover's destination warms its row cache with the partition it
/// imported (a migration's applies cache nothing), so its first reads of
/// the moved keys do not all go to the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_owner_warms_its_row_cache_with_the_moved_partition() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.fill().await;
    let warmed = |counts: &std::collections::HashMap<u32, u64>, node: u32| counts.get(&node).copied().unwrap_or_default();
    let before = h.node_counter("evenkeel_node_row_cache_warmed_total").await;
    let m = h.start_move(json!({})).await;
    let end = h.wait(&m.id, "DONE", |m| matches!(m.state.as_str(), "DONE" | "FAILED")).await;
    assert_eq!(end.state, "DONE", "{end:?}");
    // The warm-up runs after the grant, in the background: give it time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = h.node_counter("evenkeel_node_row_cache_warmed_total").await;
        if warmed(&now, end.target) - warmed(&before, end.target) >= FILLER as u64 || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(warmed(&after, end.target) - warmed(&before, end.target), FILLER as u64, "every record of the moved partition cached on the new owner");
    assert_eq!(warmed(&after, end.source), warmed(&before, end.source), "the source warms nothing");
    h.cluster.shutdown().await.unwrap();
}

impl Harness {
    /// Each node's verification scans and the keys they counted, from
    /// `/metrics`.
    async fn scans(&self) -> std::collections::HashMap<u32, (u64, u64)> {
        let scans = self.node_counter("evenkeel_node_checksum_scans_total").await;
        let keys = self.node_counter("evenkeel_node_checksum_scanned_keys_total").await;
        scans.into_iter().map(|(node, n)| (node, (n, keys.get(&node).copied().unwrap_or_default()))).collect()
    }

    /// A per-node counter's value on each node, from `/metrics`.
    async fn node_counter(&self, name: &str) -> std::collections::HashMap<u32, u64> {
        let text = self.http.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap();
        let prefix = format!("{name}{{");
        let mut values = std::collections::HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else { continue };
            let (labels, value) = rest.split_once("} ").unwrap();
            let node: u32 = labels.strip_prefix("node=\"").and_then(|l| l.strip_suffix('"')).unwrap().parse().unwrap();
            values.insert(node, value.trim().parse::<f64>().unwrap() as u64);
        }
        values
    }
}

/// A big hash written and read throughout its partition's move: its record
/// (over 64 KiB) is never mirrored (routers count it withheld; mirroring it
/// shipped the whole hash twice per write), so every write made during the
/// move reaches the destination through the change log, where it is
/// logged by reference and read as the key's record when the catch-up or
/// the drain gets to it. Nothing is lost: after the cutover the new owner
/// holds every field any client was told it wrote, and no request failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_big_hash_moves_with_every_write_through_the_change_log() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    h.fill().await;
    let key = last_slot_keys("bighash", 1).remove(0);
    const FIELDS: usize = 2000;
    let mut conn = h.conn().await;
    for chunk in (0..FIELDS).collect::<Vec<_>>().chunks(500) {
        let pairs: Vec<(String, String)> = chunk.iter().map(|i| (format!("f{i}"), "v".repeat(40))).collect();
        let _: i64 = conn.hset_multiple(&key, &pairs).await.map(|()| 0).unwrap();
    }
    let (stop, written) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (mut conn, key, stop, written) = (h.conn().await, key.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let added: i64 = conn.hset(&key, format!("new{i}"), i).await.unwrap_or_else(|e| panic!("HSET new{i}: {e}"));
                assert_eq!(added, 1);
                written.store(i + 1, Ordering::Relaxed);
                let got: Option<u64> = conn.hget(&key, format!("new{i}")).await.unwrap_or_else(|e| panic!("HGET new{i}: {e}"));
                assert_eq!(got, Some(i), "a read after the write saw it");
            }
        })
    };
    // The copy crawls through the filler while the hash is written; the
    // hash, in the last slot, is copied last.
    h.throttle(Some(SLOW_KEYS_PER_S)).await;
    let m = h.start_move(json!({"shadow_read_ratio": 1.0})).await;
    h.wait(&m.id, "withheld mirroring", |m| m.mirror.withheld >= 20 && m.state == "COPYING").await;
    h.throttle(None).await;
    let end = h.wait(&m.id, "its end", |m| matches!(m.state.as_str(), "DONE" | "FAILED" | "ROLLED_BACK")).await;
    // Writes go on against the new owner for a moment, then stop.
    let at_end = written.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while written.load(Ordering::Relaxed) < at_end + 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let n = written.load(Ordering::Relaxed) as usize;
    assert_eq!(end.state, "DONE", "{end:?}");
    assert_ne!(h.table().await.entry(P).unwrap().owner, end.source, "the partition changed hands");
    let mirror = end.mirror;
    println!("{n} HSETs; mirror {mirror:?}; catch-up {:?}; drain {:?}", end.catch_up, end.drain);
    assert_eq!(mirror.dual_writes, 0, "the hash's record is never forwarded");
    assert_eq!(mirror.shadow.mismatched, 0, "a withheld record is not compared as missing");
    assert!(end.catch_up.entries + end.drain.entries > 0, "the writes came through the change log");
    let len: usize = conn.hlen(&key).await.unwrap();
    assert_eq!(len, FIELDS + n, "every field written before, during and after the move is there");
    let values: Vec<Option<u64>> = redis::cmd("HMGET").arg(&key).arg((0..n).map(|i| format!("new{i}")).collect::<Vec<_>>()).query_async(&mut conn).await.unwrap();
    assert!(values.iter().enumerate().all(|(i, v)| *v == Some(i as u64)), "a field lost its value");
    h.cluster.shutdown().await.unwrap();
}
