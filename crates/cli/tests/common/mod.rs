//! What the migration and crash tests share: a load with per-key
//! single-writer histories checked as it runs, and admin API helpers.
//!
//! Every key has exactly one writer, which writes strictly increasing
//! sequence numbers, so a read is correct iff the sequence it returns is at
//! least the last one acknowledged before the read began (no lost write, no
//! stale read: G1, G2, G3) and at most the last one invoked before the read
//! ended (no invented or future value: G5). Counters check that every
//! acknowledged INCR counts exactly once.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::{MigrationInfo, MigrationList, ThrottleStatus};
use redis::AsyncCommands;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const KEYS_PER_WRITER: usize = 200;
pub const WRITERS: usize = 3;
pub const COUNTERS: usize = 16;
pub const PAUSE_BUDGET_MS: u64 = 500;

struct Register {
    invoked: AtomicU64,
    acked: AtomicU64,
}

pub fn key(writer: usize, k: usize) -> String {
    format!("w{writer}:k{k}")
}

pub fn counter_key(c: usize) -> String {
    format!("counter:{c}")
}

/// Every key the load writes.
pub fn all_keys() -> Vec<String> {
    let writes = (0..WRITERS * KEYS_PER_WRITER).map(|i| key(i / KEYS_PER_WRITER, i % KEYS_PER_WRITER));
    writes.chain((0..COUNTERS).map(counter_key)).collect()
}

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub readers: usize,
    /// Client errors are counted instead of failing the test: for tests
    /// that stop nodes, whose partitions are then unavailable. A write or
    /// INCR that errored is indeterminate (it may or may not have happened),
    /// and the checks allow exactly that and no more.
    pub tolerate_errors: bool,
}

/// What the load's tasks share.
struct Shared {
    regs: Vec<Register>,
    stop: AtomicBool,
    tolerate_errors: bool,
    /// Client errors seen (only with `tolerate_errors`).
    errors: AtomicU64,
    /// INCRs that errored: each may or may not have counted.
    incr_unknown: AtomicU64,
    /// The first error that stopped a task, for [`Load::check`].
    failure: std::sync::Mutex<Option<String>>,
}

impl Shared {
    /// Ok(None) for an error the load tolerates, Err to fail the test.
    fn tolerate<T>(&self, what: impl FnOnce() -> String, r: redis::RedisResult<T>) -> Result<Option<T>, String> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(_) if self.tolerate_errors => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(format!("{}: {e}", what())),
        }
    }
}

/// Runs a load task, keeping its error (if any) where `Load::check` sees it.
fn spawn(s: &Arc<Shared>, task: impl std::future::Future<Output = Result<u64, String>> + Send + 'static) -> tokio::task::JoinHandle<Result<u64, String>> {
    let s = s.clone();
    tokio::spawn(async move {
        let result = task.await;
        if let Err(e) = &result {
            s.failure.lock().unwrap().get_or_insert_with(|| e.clone());
        }
        result
    })
}

async fn writer(mut conn: redis::aio::MultiplexedConnection, w: usize, s: Arc<Shared>) -> Result<u64, String> {
    let mut seq = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        seq += 1;
        for k in 0..KEYS_PER_WRITER {
            let reg = &s.regs[w * KEYS_PER_WRITER + k];
            reg.invoked.store(seq, Ordering::SeqCst);
            let r: redis::RedisResult<()> = conn.set(key(w, k), seq.to_string()).await;
            if s.tolerate(|| format!("SET {}", key(w, k)), r)?.is_some() {
                reg.acked.store(seq, Ordering::SeqCst);
            }
        }
    }
    Ok(seq)
}

async fn reader(mut conn: redis::aio::MultiplexedConnection, s: Arc<Shared>) -> Result<u64, String> {
    let mut reads = 0u64;
    let mut i = 0usize;
    while !s.stop.load(Ordering::Relaxed) {
        i = (i + 7919) % s.regs.len();
        let (w, k) = (i / KEYS_PER_WRITER, i % KEYS_PER_WRITER);
        let lo = s.regs[i].acked.load(Ordering::SeqCst);
        let r: redis::RedisResult<Option<String>> = conn.get(key(w, k)).await;
        let Some(got) = s.tolerate(|| format!("GET {}", key(w, k)), r)? else { continue };
        let hi = s.regs[i].invoked.load(Ordering::SeqCst);
        let seen: u64 = got.as_deref().map_or(0, |v| v.parse().expect("values are sequence numbers"));
        if seen < lo || seen > hi {
            let at = evenkeel_types::unix_ms();
            return Err(format!("{}: read {seen}, but acked {lo} before the read and invoked {hi} by its end (at {at} ms)", key(w, k)));
        }
        reads += 1;
    }
    Ok(reads)
}

async fn incrementer(mut conn: redis::aio::MultiplexedConnection, s: Arc<Shared>) -> Result<u64, String> {
    let (mut acked, mut sent) = (0u64, 0u64);
    while !s.stop.load(Ordering::Relaxed) {
        let r: redis::RedisResult<u64> = conn.incr(counter_key(sent as usize % COUNTERS), 1).await;
        sent += 1;
        match s.tolerate(|| "INCR".to_string(), r)? {
            Some(n) => {
                assert!(n >= 1);
                acked += 1;
            }
            None => {
                s.incr_unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(acked)
}

/// Writers, readers and an incrementer running against the router; each
/// read is checked as it happens, the rest when the load stops.
pub struct Load {
    shared: Arc<Shared>,
    writers: Vec<tokio::task::JoinHandle<Result<u64, String>>>,
    readers: Vec<tokio::task::JoinHandle<Result<u64, String>>>,
    counter: tokio::task::JoinHandle<Result<u64, String>>,
}

impl Load {
    /// Starts the load and returns once every key has been written once.
    pub async fn start(client: &redis::Client, readers: usize) -> Load {
        Load::start_with(client, LoadOptions { readers, tolerate_errors: false }).await
    }

    pub async fn start_with(client: &redis::Client, opts: LoadOptions) -> Load {
        let regs = (0..WRITERS * KEYS_PER_WRITER).map(|_| Register { invoked: AtomicU64::new(0), acked: AtomicU64::new(0) }).collect();
        let s = Arc::new(Shared { regs, stop: AtomicBool::new(false), tolerate_errors: opts.tolerate_errors, errors: AtomicU64::new(0), incr_unknown: AtomicU64::new(0), failure: Default::default() });
        let conn = || client.get_multiplexed_async_connection();
        let mut load = Load { shared: s.clone(), writers: vec![], readers: vec![], counter: spawn(&s, incrementer(conn().await.unwrap(), s.clone())) };
        for w in 0..WRITERS {
            load.writers.push(spawn(&s, writer(conn().await.unwrap(), w, s.clone())));
        }
        for _ in 0..opts.readers {
            load.readers.push(spawn(&s, reader(conn().await.unwrap(), s.clone())));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.regs.iter().any(|r| r.acked.load(Ordering::SeqCst) == 0) {
            assert!(Instant::now() < deadline, "initial writes did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        load
    }

    /// Fails the test if a task has stopped on an error: a client error it
    /// does not tolerate or a failed read check. Lets a long test say which
    /// of its steps broke the history.
    pub fn check(&self, during: &str) {
        if let Some(e) = self.shared.failure.lock().unwrap().as_ref() {
            panic!("load failed during {during}: {e}");
        }
    }

    /// Client errors tolerated so far.
    pub fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// Stops the load, fails on any client error it does not tolerate, and
    /// checks the final state: every key holds its last acknowledged value
    /// (or a later indeterminate one) (G1), and every acknowledged INCR
    /// counted exactly once.
    pub async fn finish(self, client: &redis::Client) {
        self.shared.stop.store(true, Ordering::Relaxed);
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
        for (i, reg) in self.shared.regs.iter().enumerate() {
            let got: u64 = conn.get::<_, String>(key(i / KEYS_PER_WRITER, i % KEYS_PER_WRITER)).await.unwrap().parse().unwrap();
            let (acked, invoked) = (reg.acked.load(Ordering::SeqCst), reg.invoked.load(Ordering::SeqCst));
            assert!(acked <= got && got <= invoked, "key {i}: holds {got}, acked {acked}, invoked {invoked}");
            assert!(self.shared.tolerate_errors || got == acked, "key {i}: holds {got}, acked {acked}");
        }
        let mut total = 0u64;
        for c in 0..COUNTERS {
            let v: Option<u64> = conn.get(counter_key(c)).await.unwrap();
            total += v.unwrap_or(0);
        }
        let unknown = self.shared.incr_unknown.load(Ordering::Relaxed);
        assert!(increments <= total && total <= increments + unknown, "counters hold {total}; {increments} INCRs acknowledged, {unknown} indeterminate");
    }
}

/// Cluster options for these tests: `partitions` partitions, a short (or
/// long) bake, and a pause budget a debug build can meet.
pub fn options(dir: &std::path::Path, partitions: u32, bake_ms: u64) -> UpOptions {
    let mut opts = UpOptions::ephemeral(dir);
    opts.partitions = partitions;
    opts.coord.limits.bake_ms = bake_ms;
    opts.coord.driver.pause_budget_ms = PAUSE_BUDGET_MS;
    opts
}

pub async fn migrations(http: &reqwest::Client, admin: &str) -> Vec<MigrationInfo> {
    let list: MigrationList = http.get(format!("{admin}/v1/migrations")).send().await.unwrap().json().await.unwrap();
    list.migrations
}

pub async fn routing(cluster: &LocalCluster) -> evenkeel_types::RoutingTable {
    let kv = cluster.meta.get(evenkeel_types::keys::ROUTING).await.unwrap().unwrap();
    evenkeel_types::RoutingTable::from_json(&kv.value).unwrap()
}

pub async fn wait_for_leader(http: &reqwest::Client, admin: &str) {
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

pub async fn wait_state(http: &reqwest::Client, admin: &str, id: &str, state: &str) {
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

/// The first `n` keys named `{prefix}{i}` that fall in partition `p`.
pub fn keys_in(p: evenkeel_types::PartitionId, partitions: u32, prefix: &str, n: usize) -> Vec<String> {
    (0..).map(|i| format!("{prefix}{i}")).filter(|k| evenkeel_types::slot::key_partition(k.as_bytes(), partitions as u16) == p).take(n).collect()
}

/// Writes every key with a value of `size` bytes, in MSETs of 200.
pub async fn fill(client: &redis::Client, keys: &[String], size: usize) {
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let value = "v".repeat(size);
    for chunk in keys.chunks(200) {
        let pairs: Vec<(&String, &String)> = chunk.iter().map(|k| (k, &value)).collect();
        let () = conn.mset(&pairs).await.unwrap();
    }
}

/// Every key reads back through the router with its `size`-byte value.
pub async fn check_filled(client: &redis::Client, keys: &[String], size: usize) {
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for chunk in keys.chunks(200) {
        let got: Vec<Option<String>> = conn.mget(chunk).await.unwrap();
        for (k, v) in chunk.iter().zip(got) {
            assert_eq!(v.map(|v| v.len()), Some(size), "{k} lost");
        }
    }
}

pub async fn throttle_status(http: &reqwest::Client, admin: &str) -> ThrottleStatus {
    http.get(format!("{admin}/v1/throttle")).send().await.unwrap().json().await.unwrap()
}

/// Waits until the throttle's published status satisfies `f`.
pub async fn wait_throttle(http: &reqwest::Client, admin: &str, what: &str, f: impl Fn(&ThrottleStatus) -> bool) -> ThrottleStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = throttle_status(http, admin).await;
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "throttle never showed {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
