//! Issue 4's real-process test: a rebalance survives SIGKILL mid-copy and at
//! cutover.
//!
//! `evenkeel up` runs as a child process: three nodes, eight partitions, a
//! static migration rate low enough that copying one partition takes
//! seconds. With bulk data loaded and the checked load of [`common::load`]
//! running, a fourth node is added (`evenkeel node add`) and a rebalance
//! started (`evenkeel rebalance start`): two partitions move to the new
//! node, one after the other. The process is SIGKILLed twice, and restarted
//! on the same data directory each time:
//!
//! 1. while a migration is COPYING, once copy progress has been stored;
//! 2. at cutover: the test polls the admin API without pausing until a
//!    migration is CUTTING_OVER, then waits a seeded 0–60 ms so that kills
//!    land anywhere in the cutover (before or after the routing flip) or
//!    just past it; the output says which. If it misses the cutover of
//!    every move, it kills right after the last one (in bake) and says so.
//!
//! Then the rebalance must end on its own (G7, G9) with every move DONE, or,
//! if a crash made a move roll back, a re-run must converge (none may fail
//! because its two copies diverged); each node must own its planned share;
//! the interrupted copy must have resumed from its checkpoint, not
//! restarted; every bulk key must be intact, and every register and counter
//! consistent with what clients had acknowledged (G1; requests cut off by a
//! kill are indeterminate). The
//! seed (printed; `KILL_REBALANCE_SEED` sets it) picks only the delay of
//! the second kill.

mod common;

use common::admin::{migrations, rebalance, wait_for_leader, wait_rebalance_end, wait_stats};
use common::load::{Endpoint, Load};
use common::server::Server;
use evenkeel_coord::api::MigrationInfo;
use evenkeel_coord::plan::Plan;
use evenkeel_coord::rebalance::State;
use nix::sys::signal::Signal;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARTITIONS: u16 = 8;
/// Bulk data that makes each partition's copy take seconds at [`RATE`].
const BULK_KEYS: usize = 16_000;
const BULK_VALUE_BYTES: usize = 400;
/// Per-migration copy rate, bytes/s: about 850 KB per partition, of which
/// the throttle's burst (256 KiB) passes at once, so copying takes ~3 s.
const RATE: u64 = 200_000;
/// Generous: a cutover on a loaded two-core machine must not time out.
const PAUSE_BUDGET_MS: u64 = 1000;
/// A cutover lasts tens of milliseconds and the poll that first sees it
/// lands at its start (fencing, draining). Waiting a seeded 0 to this many
/// milliseconds before the kill spreads kills over the whole cutover, the
/// routing flip included, and sometimes just past it.
const CUTOVER_DELAY_MS_MAX: u64 = 60;

/// The cluster's settings. The health gate's p99 threshold is raised so a
/// slow debug build on a busy machine does not pause the migrations.
fn config() -> String {
    format!(
        "[cluster]\npartitions = {PARTITIONS}\n\n\
         [migration]\nbake_ms = 1000\npause_budget_ms = {PAUSE_BUDGET_MS}\nchunk_keys = 100\nchunk_bytes = 32768\n\n\
         [throttle]\nmigration_rate_bytes_per_s = {RATE}.0\nadaptive = false\n\n\
         [throttle.health]\npause_p99_us = 2000000\npause_disk_free_ratio = 0.02\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_completes_after_sigkill_mid_copy_and_at_cutover() {
    let mut t = Test::new();
    let mut server = Server::start(t.data.path(), t.logs.path(), 1, &t.args());
    let mut con = server.wait_ready().await;
    preload(&mut con).await;
    let endpoint = Endpoint::new(server.addr);
    let load = Load::start(&endpoint, 2).await;
    let admin = server.admin_url();
    wait_for_leader(&t.http, &admin, Duration::from_secs(30)).await;
    cli(&["node", "add", "--admin", &admin]);
    wait_stats(&t.http, &admin, 4, Duration::from_secs(20)).await;
    cli(&["rebalance", "start", "--admin", &admin]);
    let plan = rebalance(&t.http, &admin).await.rebalance.expect("started").plan;
    assert_eq!(plan.moves.len(), 2, "8 partitions over 4 nodes: 2 move: {plan:?}");
    assert!(plan.moves.iter().all(|m| m.to == 4), "{plan:?}");
    t.log(format!("loaded {BULK_KEYS} bulk keys; rebalance started: {:?}", plan.moves));

    // Kill 1: mid-copy, once the driver has stored a copy cursor.
    let copying = wait_for_migration(&t.http, &admin, Duration::from_secs(60), |m| m.state == "COPYING" && m.keys_copied > 0).await;
    kill(&mut server, &endpoint).await;
    t.log(format!("SIGKILL 1: {} COPYING, {} keys copied", copying.id, copying.keys_copied));
    let server = t.restart(&endpoint).await;
    let stored = find(&migrations(&t.http, &server.admin_url()).await, &copying.id);
    assert_eq!(stored.state, "COPYING", "the stored phase after the crash: {stored:?}");
    assert!(stored.keys_copied >= copying.keys_copied, "stored progress went back: {stored:?}");
    t.log(format!("restarted; {} resumes COPYING from {} keys", stored.id, stored.keys_copied));

    let mut server = kill_at_cutover(&mut t, server, &endpoint, &plan).await;
    let admin = server.admin_url();
    rebalance_converges(&t, &admin).await;
    let summary = load.finish(&endpoint).await;
    t.log(format!("load: {summary}"));
    check_final_state(&t.http, &admin, &plan, &copying.id).await;
    let mut con = endpoint.connect().await.unwrap().con;
    check_bulk(&mut con).await;
    let dbsize: usize = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(dbsize, BULK_KEYS + common::load::all_keys().len(), "every key once, no source copy left");
    let status = server.stop(Signal::SIGTERM, Duration::from_secs(20)).await;
    assert!(status.success(), "SIGTERM must stop evenkeel cleanly, got {status}:\n{}", server.log_tail());
    t.log("stopped cleanly".to_string());
}

/// The test's directories, clock and HTTP client; counts the runs of the
/// process.
struct Test {
    data: tempfile::TempDir,
    logs: tempfile::TempDir,
    http: reqwest::Client,
    /// The configuration file's path.
    config: String,
    /// Picks the delay of kill 2; `KILL_REBALANCE_SEED` repeats a run's.
    seed: u64,
    runs: usize,
    started: Instant,
}

impl Test {
    fn new() -> Test {
        let logs = tempfile::tempdir().unwrap();
        let config_path = logs.path().join("evenkeel.toml");
        std::fs::write(&config_path, config()).unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let config = config_path.to_str().expect("a UTF-8 temporary path").to_string();
        let seed = match std::env::var("KILL_REBALANCE_SEED") {
            Ok(s) => s.parse().expect("KILL_REBALANCE_SEED is a number"),
            Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos().into(),
        };
        println!("seed {seed} (KILL_REBALANCE_SEED={seed} repeats it)");
        Test { data: tempfile::tempdir().unwrap(), logs, http, config, seed, runs: 1, started: Instant::now() }
    }

    fn args(&self) -> [&str; 2] {
        ["--config", &self.config]
    }

    fn log(&self, what: String) {
        println!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Starts `evenkeel up` again on the same data directory and points the
    /// load at it once it serves.
    async fn restart(&mut self, endpoint: &Arc<Endpoint>) -> Server {
        self.runs += 1;
        let mut server = Server::start(self.data.path(), self.logs.path(), self.runs, &self.args());
        server.wait_ready().await;
        endpoint.up(server.addr);
        server
    }
}

/// Kill 2: SIGKILLs `server` a seeded 0–[`CUTOVER_DELAY_MS_MAX`] ms after
/// a migration is seen CUTTING_OVER (or, having missed every cutover, just
/// after the last) and restarts it.
async fn kill_at_cutover(t: &mut Test, mut server: Server, endpoint: &Arc<Endpoint>, plan: &Plan) -> Server {
    let (victim, hit) = catch_cutover(&t.http, &server.admin_url(), plan, Duration::from_secs(90)).await;
    let delay_ms = if hit { t.seed % (CUTOVER_DELAY_MS_MAX + 1) } else { 0 };
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    kill(&mut server, endpoint).await;
    let what = if hit { format!("{delay_ms} ms after it was seen CUTTING_OVER") } else { "just after the last cutover (every CUTTING_OVER missed)".to_string() };
    t.log(format!("SIGKILL 2: {} {what}", victim.id));
    let server = t.restart(endpoint).await;
    let admin = server.admin_url();
    let stored = find(&migrations(&t.http, &admin).await, &victim.id);
    let flipped = owner(&t.http, &admin, victim.partition).await == victim.target;
    let table = if flipped { "after the routing flip" } else { "before the routing flip" };
    t.log(format!("restarted; {} stored as {}, killed {table}", stored.id, stored.state));
    if hit {
        assert!(matches!(stored.state.as_str(), "CUTTING_OVER" | "COMPLETED"), "{stored:?}");
    }
    server
}

/// The rebalance ends on its own (G7, G9); one that failed must converge
/// when started again.
async fn rebalance_converges(t: &Test, admin: &str) {
    let end = wait_rebalance_end(&t.http, admin, Duration::from_secs(120)).await;
    let r = end.rebalance.as_ref().unwrap();
    if r.state != State::Done {
        t.log(format!("WARNING: rebalance ended {:?} after the crashes: {:?}; starting it again", r.state, end.migrations));
        cli(&["rebalance", "start", "--admin", admin]);
        let again = wait_rebalance_end(&t.http, admin, Duration::from_secs(120)).await;
        assert_eq!(again.rebalance.as_ref().unwrap().state, State::Done, "a re-run did not converge: {again:?}");
    }
    t.log("rebalance DONE".to_string());
}

/// Runs the CLI against the cluster; it must succeed.
fn cli(args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel")).args(args).output().expect("the evenkeel binary runs");
    assert!(out.status.success(), "evenkeel {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// SIGKILLs the server, telling the load first.
async fn kill(server: &mut Server, endpoint: &Endpoint) {
    endpoint.down();
    let status = server.stop(Signal::SIGKILL, Duration::from_secs(10)).await;
    assert!(!status.success(), "SIGKILL cannot end in a clean exit");
}

fn bulk_key(i: usize) -> String {
    format!("bulk:{i}")
}

fn bulk_value(i: usize) -> String {
    format!("{i}:{}", "v".repeat(BULK_VALUE_BYTES))
}

async fn preload(con: &mut MultiplexedConnection) {
    for chunk in (0..BULK_KEYS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("SET").arg(bulk_key(i)).arg(bulk_value(i)).ignore();
        }
        let () = pipe.query_async(con).await.unwrap();
    }
}

/// Every bulk key still holds its value: copied, resumed and cut over
/// without loss.
async fn check_bulk(con: &mut MultiplexedConnection) {
    for chunk in (0..BULK_KEYS).collect::<Vec<_>>().chunks(500) {
        let names: Vec<String> = chunk.iter().map(|&i| bulk_key(i)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&names).query_async(con).await.unwrap();
        for (&i, v) in chunk.iter().zip(values) {
            assert_eq!(v.as_deref(), Some(bulk_value(i).as_str()), "{}", bulk_key(i));
        }
    }
}

/// The partition's owner in the routing table, once the stats poll has read it.
async fn owner(http: &reqwest::Client, admin: &str, partition: u16) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = common::admin::cluster(http, admin).await.partitions.iter().find(|p| p.id == partition) {
            return p.owner;
        }
        assert!(Instant::now() < deadline, "the stats poll never listed partition {partition}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find(all: &[MigrationInfo], id: &str) -> MigrationInfo {
    all.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("migration {id} is not listed: {all:?}")).clone()
}

/// Polls until some migration satisfies `pred`; fails on a failed one.
async fn wait_for_migration(http: &reqwest::Client, admin: &str, within: Duration, pred: impl Fn(&MigrationInfo) -> bool) -> MigrationInfo {
    let deadline = Instant::now() + within;
    loop {
        let all = migrations(http, admin).await;
        if let Some(m) = all.iter().find(|m| pred(m)) {
            return m.clone();
        }
        assert_no_failure(&all);
        assert!(Instant::now() < deadline, "no migration reached the awaited state within {within:?}: {all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn failed(m: &MigrationInfo) -> bool {
    matches!(m.state.as_str(), "FAILED" | "ROLLED_BACK" | "CANCELLED")
}

/// Before any crash, a failed migration is a bug.
fn assert_no_failure(all: &[MigrationInfo]) {
    let failed: Vec<_> = all.iter().filter(|m| failed(m)).collect();
    assert!(failed.is_empty(), "migrations failed: {failed:?}");
}

/// Polls without pause until a migration is CUTTING_OVER (true). Having
/// missed the cutover of every planned move (or seen a move fail), returns
/// the last one that cut over (false).
async fn catch_cutover(http: &reqwest::Client, admin: &str, plan: &Plan, within: Duration) -> (MigrationInfo, bool) {
    let deadline = Instant::now() + within;
    loop {
        let all = migrations(http, admin).await;
        if let Some(m) = all.iter().find(|m| m.state == "CUTTING_OVER") {
            return (m.clone(), true);
        }
        if all.iter().filter(|m| m.cutover_pause_ms.is_some() || failed(m)).count() == plan.moves.len() {
            let last = all.iter().rfind(|m| m.cutover_pause_ms.is_some());
            return (last.unwrap_or_else(|| panic!("every move failed before cutting over: {all:?}")).clone(), false);
        }
        assert!(Instant::now() < deadline, "no cutover within {within:?}: {all:?}");
    }
}

/// Every move DONE within the pause budget, each node owning its planned
/// share (nothing left to plan), no migration failed because a crash made
/// its two copies differ (G7 allows a rollback, not divergence), and the
/// copy interrupted by kill 1 resumed from its checkpoint: it copied each
/// key of the partition exactly once (a restarted copy would count the keys
/// copied before the crash twice; keys copied after the last checkpoint
/// were not counted before it).
async fn check_final_state(http: &reqwest::Client, admin: &str, plan: &Plan, resumed: &str) {
    let all = migrations(http, admin).await;
    let done: Vec<&MigrationInfo> = all.iter().filter(|m| m.state == "DONE").collect();
    assert!(done.len() >= plan.moves.len(), "{all:?}");
    for m in &done {
        let pause = m.cutover_pause_ms.expect("a DONE migration cut over");
        assert!(pause <= PAUSE_BUDGET_MS, "{}: cutover paused {pause} ms, budget {PAUSE_BUDGET_MS} (G8)", m.id);
    }
    for m in &all {
        let error = m.error.as_deref().unwrap_or_default();
        assert!(!error.contains("checksums differ"), "{}: a crash made source and destination diverge: {m:?}", m.id);
    }
    // However its cutover went, the interrupted copy must have finished.
    let m = find(&all, resumed);
    assert!(m.transitions.iter().any(|t| t.state == "CATCHING_UP"), "{}: the interrupted copy never finished: {m:?}", m.id);
    let keys = (0..BULK_KEYS).map(bulk_key).chain(common::load::all_keys());
    let in_partition = keys.filter(|k| evenkeel_types::slot::key_partition(k.as_bytes(), PARTITIONS) == m.partition).count() as u64;
    assert_eq!(m.keys_copied, in_partition, "{}: the copy resumed from its checkpoint: {m:?}", m.id);
    let status = common::admin::cluster(http, admin).await;
    for (before, after) in plan.before.iter().zip(&plan.after) {
        let node = status.nodes.iter().find(|n| n.id == after.id).expect("node listed");
        assert_eq!(node.partitions, after.partitions, "node {} had {} partitions, planned {}", node.id, before.partitions, after.partitions);
    }
    let replan: Plan = http.get(format!("{admin}/v1/rebalance/plan")).send().await.unwrap().json().await.unwrap();
    assert!(replan.moves.is_empty(), "a balanced cluster plans nothing: {replan:?}");
}
