//! Crash safety of migrations at the coordinator level (G7, G9, G10).
//!
//! - A seeded crash simulation: for each driver failpoint (the list in
//!   `evenkeel_coord::failpoints`), a migration runs under load, the
//!   coordinator crashes there (the driver stops dead, the coordinator is
//!   stopped without cleanup, its lease lapses) and a new coordinator takes
//!   over. Each migration must end as its path demands (DONE, or
//!   ROLLED_BACK / CANCELLED / FAILED with the source serving), within a
//!   bounded wait, with its lock released; the load's history check (no
//!   lost acknowledged write, no stale or invented read, INCR exactly once)
//!   runs throughout. `EVENKEEL_CRASH_SEED` replays a run's choices of
//!   partitions and targets; `EVENKEEL_CRASH_POINTS` (`all`, a number, or
//!   comma-separated names) picks the failpoints.
//! - The copy resumes from its stored cursor after a coordinator restart.
//! - A source or destination node restarting mid-copy.
//! - A zombie coordinator (G10): the leader freezes mid-cutover, its lease
//!   expires, a second one takes over; the first one's later RPCs are
//!   refused by the nodes and it changes neither the routing table nor the
//!   migration record.
//! - A regression test: writes the destination takes right after the
//!   routing flip survive a rollback.
//!
//! The failpoint registry is process-wide, so every test holds `FAILPOINTS`.

mod common;

use common::admin::wait_for_leader;
use common::cluster::{PAUSE_BUDGET_MS, check_filled, routing, wait_throttle};
use common::load::{Endpoint, Load, all_keys};
use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::{ClusterStatus, MigrationInfo, MoveRequest};
use evenkeel_coord::failpoints;
use evenkeel_coord::migration::machine::{Migration, Phase};
use evenkeel_coord::{CoordConfig, Coordinator};
use evenkeel_meta::{MetaStore, Revision, follow::follow_key};
use evenkeel_types::slot::key_partition;
use evenkeel_types::{NodeId, PartitionId, keys};
use redis::AsyncCommands;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

static FAILPOINTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Logs of every role with `RUST_LOG` set (e.g. `RUST_LOG=info`), for
/// reading a failed seed's run.
fn logs() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
}

const PARTITIONS: u32 = 16;
/// Long enough for the operator's rollback to land during bake.
const BAKE_MS: u64 = 500;
/// A crashed coordinator's lease lapses this soon, so a successor leads
/// well inside the router's 5 s retry budget even when the crash left a
/// source fenced.
const LEADER_TTL: Duration = Duration::from_secs(1);
/// Longest one migration may take, crash and takeover included.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// What the operator does with a migration, which decides how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Approve at READY_FOR_CUTOVER: ends DONE.
    Move,
    /// Approve, then roll back during bake: ends ROLLED_BACK.
    Rollback,
    /// Cancel at READY_FOR_CUTOVER: ends CANCELLED.
    Cancel,
    /// Report the destination's disk full at READY_FOR_CUTOVER: FAILED.
    Fail,
    /// Pause at READY_FOR_CUTOVER, resume, approve: ends DONE.
    Pause,
}

impl Path {
    fn ends(self) -> Phase {
        match self {
            Path::Move | Path::Pause => Phase::Done,
            Path::Rollback => Phase::RolledBack,
            Path::Cancel => Phase::Cancelled,
            Path::Fail => Phase::Failed,
        }
    }
}

/// The path that reaches failpoint `point`.
fn path_of(point: &str) -> Path {
    let saves = |p: Phase| [failpoints::before_save(p), failpoints::after_save(p)].contains(&point);
    if saves(Phase::RollingBack) || saves(Phase::RolledBack) || [failpoints::ROLLBACK_FENCED, failpoints::ROLLBACK_FLIPPED, failpoints::ABORT_UNFENCED].contains(&point) {
        Path::Rollback
    } else if saves(Phase::Cancelled) {
        Path::Cancel
    } else if saves(Phase::Failed) {
        Path::Fail
    } else if saves(Phase::Paused) {
        Path::Pause
    } else {
        Path::Move
    }
}

/// splitmix64: a seeded choice of partitions and targets without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// The seed and the failpoints to crash at, from the environment.
fn schedule() -> (u64, Vec<&'static str>) {
    let seed = std::env::var("EVENKEEL_CRASH_SEED").ok().map_or_else(|| std::process::id() as u64 ^ evenkeel_types::unix_ms(), |s| s.parse().expect("EVENKEEL_CRASH_SEED is a number"));
    let all = failpoints::all();
    let mut rng = Rng(seed);
    let chosen = match std::env::var("EVENKEEL_CRASH_POINTS").as_deref().unwrap_or("all") {
        "all" => all,
        n if n.parse::<usize>().is_ok() => {
            let mut pool = all;
            (0..n.parse::<usize>().unwrap().min(pool.len())).map(|_| pool.swap_remove(rng.below(pool.len()))).collect()
        }
        names => names.split(',').map(|n| *all.iter().find(|a| **a == n.trim()).unwrap_or_else(|| panic!("no failpoint {n}"))).collect(),
    };
    (seed, chosen)
}

/// A cluster whose coordinator can be crashed and replaced, plus clients.
struct Sim {
    cluster: LocalCluster,
    http: reqwest::Client,
    admin: String,
    redis: redis::Client,
}

/// Cluster options: every migration waits for approval at
/// READY_FOR_CUTOVER, where the operator bot decides its path.
fn sim_options(dir: &std::path::Path) -> UpOptions {
    let mut opts = common::cluster::options(dir, PARTITIONS, BAKE_MS);
    opts.coord.limits.needs_approval = true;
    opts.coord.leader_ttl = LEADER_TTL;
    // Bulk migration work at normal priority: on a busy shared machine a
    // niced thread can wait seconds for a core, and these tests are about
    // recovery, not priority.
    opts.bulk_idle = false;
    opts.bulk_nice = 0;
    // Stored when each coordinator starts, so its health gates use them
    // from the first tick. A node gated (the Fail path, a restart) reopens
    // soon. The host's own disk must not pause migrations (a build machine
    // can be under 10% free); the Fail path's failpoint reports a full disk,
    // which stays critical.
    let mut throttle = evenkeel_throttle::ThrottleConfig::default();
    throttle.health.recover_after_ms = 500;
    throttle.health.pause_disk_free_ratio = 0.02;
    opts.coord.throttle = Some(throttle);
    opts
}

/// What the operator bot has done for one migration.
#[derive(Default)]
struct Bot {
    /// The last request accepted, and the record revision it was sent at;
    /// the same request is sent again only once the record changed (a
    /// crash may have lost it).
    sent: Option<(&'static str, Revision)>,
    /// The operator's pause was seen stored.
    saw_pause: bool,
    disk_full: Option<fail::FailGuard>,
}

/// How a migration ended, and its record when the coordinator crashed.
struct Ended {
    last: Migration,
    at_crash: Option<Migration>,
}

impl Sim {
    async fn start(dir: &std::path::Path) -> Sim {
        let cluster = LocalCluster::start(sim_options(dir)).await.unwrap();
        let admin = format!("http://{}", cluster.admin_addr);
        let redis = redis::Client::open(format!("redis://{}", cluster.router_addr)).unwrap();
        let sim = Sim { cluster, http: reqwest::Client::new(), admin, redis };
        wait_for_leader(&sim.http, &sim.admin, Duration::from_secs(10)).await;
        sim.wait_gates_open().await;
        sim
    }

    async fn patch_throttle(&self, body: serde_json::Value) {
        let resp = self.http.patch(format!("{}/v1/throttle", self.admin)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }

    /// The stored migration and its revision.
    async fn record(&self, id: &str) -> (Migration, Revision) {
        let kv = self.cluster.meta.get(&keys::migration_key(id)).await.unwrap().expect("migration stored");
        (serde_json::from_slice(&kv.value).unwrap(), kv.mod_revision)
    }

    async fn lock_held(&self, p: PartitionId) -> bool {
        self.cluster.meta.get(&keys::partition_lock_key(p)).await.unwrap().is_some()
    }

    /// POSTs to the admin API; None while no coordinator answers.
    async fn post(&self, path: &str) -> Option<reqwest::Response> {
        self.http.post(format!("{}{path}", self.admin)).timeout(Duration::from_secs(5)).send().await.ok()
    }

    /// Starts moving `p` to `target`, waiting for a leader if need be.
    async fn start_move(&self, p: PartitionId, target: NodeId) -> String {
        self.start_move_at(&self.admin.clone(), p, target).await
    }

    /// Starts a move through the coordinator at `admin`.
    async fn start_move_at(&self, admin: &str, p: PartitionId, target: NodeId) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let req = self.http.post(format!("{admin}/v1/migrations")).timeout(Duration::from_secs(5));
            if let Ok(resp) = req.json(&MoveRequest { partition: p, target }).send().await {
                if resp.status() == 201 {
                    return resp.json::<MigrationInfo>().await.unwrap().id;
                }
                assert_eq!(resp.status(), 503, "move refused: {}", resp.text().await.unwrap());
            }
            assert!(Instant::now() < deadline, "no coordinator accepted the move");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node's health gate is open again.
    async fn wait_gates_open(&self) {
        wait_throttle(&self.http, &self.admin, "open gates", |s| s.nodes.len() == 3 && s.nodes.iter().all(|n| n.state == "open")).await;
    }

    /// A crash as the rest of the cluster sees it, then a successor.
    async fn restart_coordinator(&mut self) {
        self.cluster.stop_coordinator().await.unwrap();
        self.cluster.start_coordinator().await.unwrap();
    }

    /// Sends the request the migration's phase and path call for.
    async fn operate(&self, m: &Migration, rev: Revision, path: Path, bot: &mut Bot) {
        let operator_paused = m.phase == Phase::Paused && m.pause_reason.as_deref() == Some("paused by operator");
        bot.saw_pause |= operator_paused;
        let request = match (m.phase, path) {
            (Phase::ReadyForCutover, Path::Cancel) => "cancel",
            (Phase::ReadyForCutover, Path::Fail) => {
                let disk_free = evenkeel_node::failpoints::disk_free(m.target);
                bot.disk_full.get_or_insert_with(|| fail::FailGuard::new(disk_free, "return(0)").unwrap());
                return;
            }
            (Phase::ReadyForCutover, Path::Pause) if !bot.saw_pause => "pause",
            (Phase::ReadyForCutover, _) if !m.approved => "approve",
            (Phase::Paused, _) if operator_paused => "resume",
            (Phase::Completed, Path::Rollback) => "rollback",
            _ => return,
        };
        if bot.sent == Some((request, rev)) {
            return;
        }
        if let Some(resp) = self.post(&format!("/v1/migrations/{}/{request}", m.id)).await
            && resp.status() == 200
        {
            bot.sent = Some((request, rev));
        }
    }

    /// Operates migration `id` along `path` until it is finished and its
    /// lock released; when `crash_at` fires (after the `since`th failpoint
    /// fired), crashes the coordinator and starts another. Bounded.
    async fn run_to_end(&mut self, id: &str, path: Path, crash_at: Option<&'static str>, since: usize) -> Ended {
        let mut fired = failpoints::fired();
        let (m, _) = self.record(id).await;
        let mut record = follow_key(self.cluster.meta.clone(), keys::migration_key(id));
        let mut lock = follow_key(self.cluster.meta.clone(), keys::partition_lock_key(m.partition));
        let (deadline, mut bot, mut at_crash) = (Instant::now() + MIGRATION_TIMEOUT, Bot::default(), None);
        loop {
            let crashed = crash_at.is_some_and(|p| fired.borrow_and_update()[since..].contains(&p));
            if crashed && at_crash.is_none() {
                at_crash = Some(self.record(id).await.0);
                self.restart_coordinator().await;
            }
            let (m, rev) = self.record(id).await;
            if m.is_finished() && !self.lock_held(m.partition).await {
                return Ended { last: m, at_crash };
            }
            assert!(Instant::now() < deadline, "migration stuck: {m:?}");
            self.operate(&m, rev, path, &mut bot).await;
            // Requests refused while a coordinator starts are retried on
            // the next tick; everything else is an awaited event.
            tokio::select! {
                _ = fired.changed() => {}
                _ = record.changed() => {}
                _ = lock.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// A partition, its owner and another node, chosen by `rng`.
    async fn pick(&self, rng: &mut Rng) -> (PartitionId, NodeId, NodeId) {
        let p = rng.below(PARTITIONS as usize) as PartitionId;
        let source = routing(&self.cluster).await.entry(p).unwrap().owner;
        let others: Vec<NodeId> = self.cluster.node_ids.iter().copied().filter(|n| *n != source).collect();
        (p, source, others[rng.below(others.len())])
    }

    /// Every load key of partition `p` reads through the router: the
    /// partition is served (values are checked by the load itself).
    async fn check_served(&self, p: PartitionId) {
        let keys: Vec<String> = all_keys().into_iter().filter(|k| key_partition(k.as_bytes(), PARTITIONS as u16) == p).collect();
        let mut conn = self.redis.get_multiplexed_async_connection().await.unwrap();
        let got: Vec<Option<String>> = conn.mget(&keys).await.unwrap();
        assert!(got.iter().all(|v| v.is_some()), "partition {p} lost keys: {got:?}");
    }
}

/// One crash scenario: move a seeded partition, crash at `point`, check the
/// end state.
async fn crash_once(sim: &mut Sim, load: &mut Load, rng: &mut Rng, point: &'static str) {
    let started = Instant::now();
    let path = path_of(point);
    sim.wait_gates_open().await;
    let (p, source, target) = sim.pick(rng).await;
    let since = failpoints::fired().borrow().len();
    let crash = fail::FailGuard::new(point, "1*return").unwrap();
    let id = sim.start_move(p, target).await;
    let ended = sim.run_to_end(&id, path, Some(point), since).await;
    drop(crash);
    let m = &ended.last;
    let at_crash = ended.at_crash.as_ref().unwrap_or_else(|| panic!("{point} never fired on {path:?}: {m:?}"));
    assert_eq!(m.phase, path.ends(), "{point}: {m:?}");
    let owner = routing(&sim.cluster).await.entry(p).unwrap().owner;
    assert_eq!(owner, if m.phase == Phase::Done { target } else { source }, "{point}: owner of partition {p}");
    // The successor took the partition lock again: nodes now refuse the
    // crashed coordinator's token (G10).
    if !at_crash.is_finished() && at_crash.token.is_some() {
        assert!(m.token > at_crash.token, "{point}: token {:?} not renewed after the crash ({:?})", m.token, at_crash.token);
    }
    sim.check_served(p).await;
    load.check(point).await;
    eprintln!("{point}: {path:?} p{p} {source}->{target} crashed in {} -> {} in {:?}", at_crash.phase.name(), m.phase.name(), started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_crashes_at_every_failpoint_leave_no_migration_stuck() {
    let _serial = FAILPOINTS.lock().await;
    logs();
    let (seed, points) = schedule();
    eprintln!("crash simulation: seed {seed}, {} failpoints (replay with EVENKEEL_CRASH_SEED={seed})", points.len());
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(dir.path()).await;
    let endpoint = Endpoint::new(sim.cluster.router_addr);
    let mut load = Load::start(&endpoint, 1).await;
    let mut rng = Rng(seed);
    for point in points {
        crash_once(&mut sim, &mut load, &mut rng, point).await;
    }
    eprintln!("crash simulation load: {}", load.finish(&endpoint).await);
    sim.cluster.shutdown().await.unwrap();
}

/// Fills partition `p` with `n` keys of `size` bytes; returns the keys.
async fn fill(sim: &Sim, p: PartitionId, n: usize, size: usize) -> Vec<String> {
    let keys = common::cluster::keys_in(&format!("f{p}:"), p, PARTITIONS, n);
    common::cluster::fill(&sim.redis, &keys, size).await;
    keys
}

/// Paces copies at 1 MB/s so a few megabytes take seconds: long enough
/// for progress checkpoints and for faults to land mid-copy. A coordinator
/// started later stores the cluster's configured settings again, unpaced.
async fn slow_copies(sim: &Sim) {
    sim.patch_throttle(json!({"migration_rate_bytes_per_s": 1_000_000, "adaptive": false})).await;
    wait_throttle(&sim.http, &sim.admin, "the rate limit", |s| s.rate_bytes_per_s == Some(1_000_000.0)).await;
}

/// Waits until the stored record satisfies `f`; returns it.
async fn wait_record(sim: &Sim, id: &str, what: &str, f: impl Fn(&Migration) -> bool) -> Migration {
    let mut record = follow_key(sim.cluster.meta.clone(), keys::migration_key(id));
    let found = record.wait_for(|kv| kv.as_ref().is_some_and(|kv| f(&serde_json::from_slice(&kv.value).unwrap())));
    match tokio::time::timeout(MIGRATION_TIMEOUT, found).await {
        Ok(Ok(kv)) => serde_json::from_slice(&kv.as_ref().unwrap().value).unwrap(),
        _ => panic!("{id} never reached {what}: {:?}", sim.record(id).await.0),
    }
}

/// The copy has stored a checkpoint past its first chunk (and may be paused
/// there by a health gate: a loaded machine can be slow).
fn copying_with_cursor(m: &Migration) -> bool {
    let copying = m.phase == Phase::Copying || m.paused_from == Some(Phase::Copying);
    copying && m.copy_cursor.is_some() && m.keys_copied > 0
}

/// After a coordinator crash mid-copy, the successor continues from the
/// stored cursor. A copy restarted from the first key would count the keys
/// copied before the crash twice: `keys_copied` ends above the partition's
/// key count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_resumes_from_its_stored_cursor_after_a_coordinator_restart() {
    let _serial = FAILPOINTS.lock().await;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(dir.path()).await;
    let p = 5;
    let keys = fill(&sim, p, 3000, 1000).await;
    slow_copies(&sim).await;
    let source = routing(&sim.cluster).await.entry(p).unwrap().owner;
    let target = sim.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let id = sim.start_move(p, target).await;
    wait_record(&sim, &id, "a stored copy cursor", copying_with_cursor).await;
    let since = failpoints::fired().borrow().len();
    let crash = fail::FailGuard::new(failpoints::COPY_CHUNK, "1*return").unwrap();
    let ended = sim.run_to_end(&id, Path::Move, Some(failpoints::COPY_CHUNK), since).await;
    drop(crash);
    let at_crash = ended.at_crash.expect("the copy crashed");
    assert!(copying_with_cursor(&at_crash), "{at_crash:?}");
    assert!(at_crash.keys_copied < keys.len() as u64, "crashed before the copy ended: {at_crash:?}");
    assert_eq!(ended.last.phase, Phase::Done);
    assert_eq!(ended.last.keys_copied, keys.len() as u64, "keys copied before the crash ({}) were copied again", at_crash.keys_copied);
    check_filled(&sim.redis, &keys, 1000).await;
    sim.cluster.shutdown().await.unwrap();
}

/// The coordinator's health view shows node `id` down (not heartbeating or
/// not answering stats): its RPCs now fail.
async fn wait_node_down(sim: &Sim, id: NodeId) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s: ClusterStatus = sim.http.get(format!("{}/v1/cluster", sim.admin)).send().await.unwrap().json().await.unwrap();
        if s.nodes.iter().any(|n| n.id == id && !n.healthy) {
            return;
        }
        assert!(Instant::now() < deadline, "node {id} still looks healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The source, then (in a second move) the destination, is stopped and
/// started again in the middle of the copy, under load. The driver retries
/// through the outage, the copy goes on, the migration ends DONE, and no
/// acknowledged write is lost. The router retries requests for the stopped
/// node's partitions inside its budget, so clients see no error either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_finish_when_their_source_or_destination_restarts_mid_copy() {
    let _serial = FAILPOINTS.lock().await;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(dir.path()).await;
    let endpoint = Endpoint::new(sim.cluster.router_addr);
    let load = Load::start(&endpoint, 1).await;
    slow_copies(&sim).await;
    for (p, restart_source) in [(3, true), (9, false)] {
        let keys = fill(&sim, p, 2000, 1000).await;
        let source = routing(&sim.cluster).await.entry(p).unwrap().owner;
        let target = sim.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
        let id = sim.start_move(p, target).await;
        wait_record(&sim, &id, "a stored copy cursor", copying_with_cursor).await;
        let victim = if restart_source { source } else { target };
        sim.cluster.stop_node(victim).await.unwrap();
        wait_node_down(&sim, victim).await;
        sim.cluster.start_node(victim).await.unwrap();
        let ended = sim.run_to_end(&id, Path::Move, None, 0).await;
        assert_eq!(ended.last.phase, Phase::Done, "{:?}", ended.last);
        assert_eq!(routing(&sim.cluster).await.entry(p).unwrap().owner, target);
        check_filled(&sim.redis, &keys, 1000).await;
    }
    eprintln!("load across the node restarts: {}", load.finish(&endpoint).await);
    sim.cluster.shutdown().await.unwrap();
}

/// Leases of standalone coordinators: long, so that one thawed after its
/// lease was expired does not notice before its next RPC (its keepalive is
/// due only every third of this). Tests expire leases on purpose, by
/// revoking them.
const ZOMBIE_TTL: Duration = Duration::from_secs(60);

/// A coordinator alone on its own OS thread and single-threaded runtime:
/// a `return(freeze)` failpoint then stops all of it (keepalives, drivers,
/// admin API) as a paused process stands still, without blocking the
/// cluster's runtime.
struct Standalone {
    coord: Arc<Coordinator>,
    admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Standalone {
    /// Starts a coordinator; migrations it creates bake `bake_ms`.
    fn start(meta: Arc<dyn MetaStore>, bake_ms: u64) -> Standalone {
        let mut config = CoordConfig { bootstrap_nodes: 3, leader_ttl: ZOMBIE_TTL, ..Default::default() };
        config.limits.bake_ms = bake_ms;
        config.driver.pause_budget_ms = PAUSE_BUDGET_MS;
        let coord = Coordinator::new(meta, config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        let c = coord.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                c.run(listener, async move { stopped.await.unwrap_or(()) }).await.unwrap();
            });
        });
        let admin = format!("http://{}", addr.recv().unwrap());
        Standalone { coord, admin, stop: Some(stop), thread: Some(thread) }
    }

    async fn wait_leader(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.coord.is_leader() {
            assert!(Instant::now() < deadline, "{} never led", self.admin);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // A failed test may leave it frozen; it could not stop then.
        failpoints::thaw();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Expires the leader's lease now, as its TTL running out would: the leader
/// key and the partition locks held under it vanish, and a standby leads.
async fn expire_leader_lease(meta: &dyn MetaStore) {
    let kv = meta.get(keys::COORDINATOR_LEADER).await.unwrap().expect("a leader");
    meta.revoke_lease(kv.lease.expect("the leader key is lease-bound")).await.unwrap();
}

/// One zombie: `zombie` (the leader) freezes at `point` while moving `p`,
/// its lease expires, `successor` takes the migration over and finishes it
/// (rolling it back during bake if `rollback`), then the zombie thaws. It
/// must change neither the record nor the routing table; returns why its
/// driver stopped.
async fn zombie_round(sim: &Sim, zombie: &Standalone, successor: &Standalone, point: &'static str, p: PartitionId, rollback: bool) -> String {
    let source = routing(&sim.cluster).await.entry(p).unwrap().owner;
    let target = sim.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let since = failpoints::fired().borrow().len();
    let _freeze = fail::FailGuard::new(point, "1*return(freeze)").unwrap();
    let id = sim.start_move_at(&zombie.admin, p, target).await;
    let mut fired = failpoints::fired();
    let frozen = fired.wait_for(|f| f[since..].contains(&point));
    tokio::time::timeout(MIGRATION_TIMEOUT, frozen).await.expect("the zombie never reached its failpoint").unwrap();
    let zombie_token = sim.record(&id).await.0.token;
    expire_leader_lease(sim.cluster.meta.as_ref()).await;
    successor.wait_leader().await;
    if rollback {
        wait_record(sim, &id, "bake", |m| m.phase == Phase::Completed).await;
        let resp = sim.http.post(format!("{}/v1/migrations/{id}/rollback", successor.admin)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let ends = if rollback { Phase::RolledBack } else { Phase::Done };
    let ended = wait_record(sim, &id, ends.name(), |m| m.phase == ends && m.is_finished()).await;
    assert!(ended.token > zombie_token, "the successor took a newer token: {:?} after {zombie_token:?}", ended.token);
    let (_, rev) = sim.record(&id).await;
    let entry = routing(&sim.cluster).await.entry(p).unwrap().clone();
    assert_eq!(entry.owner, if rollback { source } else { target });
    failpoints::thaw();
    let stopped = zombie.coord.migrations.join(&id).await.expect("the zombie's driver was running");
    let why = stopped.expect_err("the zombie's driver cannot finish");
    assert_eq!(sim.record(&id).await.1, rev, "the zombie wrote the migration record");
    assert_eq!(routing(&sim.cluster).await.entry(p).unwrap(), &entry, "the zombie changed the routing table");
    why
}

/// G10 with two coordinators on one metadata store. Round one: the leader
/// freezes with the source fenced, its lease expires, the standby takes
/// over (a newer fencing token) and finishes the move; thawed, the old
/// leader's next RPC is refused by the node. Round two: the new leader
/// freezes after the drain, just before flipping the table; a third
/// coordinator takes over, cuts over and rolls back; thawed, the zombie
/// finds its lock gone and leaves the table alone, where flipping it would
/// hand the partition to a node whose copy was dropped. Load runs
/// throughout and its history must check out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_coordinator_is_fenced_off_by_its_successor() {
    let _serial = FAILPOINTS.lock().await;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(dir.path()).await;
    let endpoint = Endpoint::new(sim.cluster.router_addr);
    let load = Load::start(&endpoint, 1).await;
    // The cluster's own coordinator gives way to standalone ones.
    sim.cluster.stop_coordinator().await.unwrap();
    let first = Standalone::start(sim.cluster.meta.clone(), BAKE_MS);
    first.wait_leader().await;
    let second = Standalone::start(sim.cluster.meta.clone(), 600_000);
    let why = zombie_round(&sim, &first, &second, failpoints::CUTOVER_FENCED, 2, false).await;
    assert!(why.contains("fencing token refused"), "{why}");
    drop(first);
    let third = Standalone::start(sim.cluster.meta.clone(), BAKE_MS);
    let why = zombie_round(&sim, &second, &third, failpoints::CUTOVER_DRAINED, 7, true).await;
    assert!(why.contains("lock is no longer held"), "{why}");
    load.finish(&endpoint).await;
    drop((second, third));
    sim.cluster.shutdown().await.unwrap();
}

/// Regression: reverse capture used to start at the destination's log
/// position read after the routing flip, but the destination serves as
/// soon as the flipped table reaches it; writes it took in between never
/// went back to the source, and a rollback lost them (the crash simulation
/// found this under load). Here the coordinator freezes right after the
/// flip while a client overwrites every key of the partition; after a
/// rollback the source must hold the new values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_taken_right_after_the_flip_survive_a_rollback() {
    let _serial = FAILPOINTS.lock().await;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::start(dir.path()).await;
    sim.cluster.stop_coordinator().await.unwrap();
    let coord = Standalone::start(sim.cluster.meta.clone(), 600_000);
    coord.wait_leader().await;
    let p = 4;
    let keys = fill(&sim, p, 50, 10).await;
    let source = routing(&sim.cluster).await.entry(p).unwrap().owner;
    let target = sim.cluster.node_ids.iter().copied().find(|n| *n != source).unwrap();
    let since = failpoints::fired().borrow().len();
    let freeze = fail::FailGuard::new(failpoints::CUTOVER_FLIPPED, "1*return(freeze)").unwrap();
    let id = sim.start_move_at(&coord.admin, p, target).await;
    let mut fired = failpoints::fired();
    tokio::time::timeout(MIGRATION_TIMEOUT, fired.wait_for(|f| f[since..].contains(&failpoints::CUTOVER_FLIPPED))).await.unwrap().unwrap();
    // The table names the destination, which takes these writes.
    let mut conn = sim.redis.get_multiplexed_async_connection().await.unwrap();
    for k in &keys {
        let () = conn.set(k, "after-flip").await.unwrap();
    }
    failpoints::thaw();
    drop(freeze);
    wait_record(&sim, &id, "bake", |m| m.phase == Phase::Completed).await;
    let resp = sim.http.post(format!("{}/v1/migrations/{id}/rollback", coord.admin)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    wait_record(&sim, &id, "ROLLED_BACK", |m| m.phase == Phase::RolledBack && m.is_finished()).await;
    assert_eq!(routing(&sim.cluster).await.entry(p).unwrap().owner, source);
    let got: Vec<Option<String>> = conn.mget(&keys).await.unwrap();
    assert!(got.iter().all(|v| v.as_deref() == Some("after-flip")), "writes after the flip lost by the rollback: {got:?}");
    drop(coord);
    sim.cluster.shutdown().await.unwrap();
}
