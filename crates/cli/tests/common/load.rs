//! A client load checked as it runs and once it stops.
//!
//! Every key has exactly one writer, which writes strictly increasing
//! sequence numbers, so a read is correct iff the sequence it returns is at
//! least the last one acknowledged before the read began (no lost write, no
//! stale read: G1, G2, G3) and at most the last one invoked before the read
//! ended (no invented or future value: G5). Counters check that every
//! acknowledged INCR counts exactly once.
//!
//! Crashes: a test that kills the process behind the [`Endpoint`] says so
//! first ([`Endpoint::down`]). A request that then fails on a connection to
//! the killed process is *indeterminate*: it may or may not have been
//! applied. The register check needs no change for that: an indeterminate
//! SET was invoked but never acknowledged, so a later read may return it or
//! the last acknowledged value, and both lie inside the bounds. An
//! indeterminate INCR widens its counter's upper bound by one. Any other
//! failure fails the test; without kills (an in-process cluster) there are
//! no indeterminate requests at all.

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const KEYS_PER_WRITER: usize = 200;
pub const WRITERS: usize = 3;
pub const COUNTERS: usize = 16;

/// The key writer `writer` owns as its `k`th.
pub fn key(writer: usize, k: usize) -> String {
    format!("w{writer}:k{k}")
}

pub fn counter(c: usize) -> String {
    format!("counter:{c}")
}

/// Every key the load creates: the writers' registers and the counters.
pub fn all_keys() -> Vec<String> {
    let registers = (0..WRITERS).flat_map(|w| (0..KEYS_PER_WRITER).map(move |k| key(w, k)));
    registers.chain((0..COUNTERS).map(counter)).collect()
}

/// Where the load connects: one process's RESP address, which disappears
/// while the test has killed the process and comes back, at another
/// address, once it has restarted.
pub struct Endpoint {
    instance: watch::Sender<Instance>,
}

#[derive(Debug, Clone, Copy)]
struct Instance {
    /// Counts restarts; a connection remembers the one it was opened to.
    generation: u64,
    /// None while the process is down.
    addr: Option<SocketAddr>,
}

/// A connection and the process generation it was opened to.
pub struct Conn {
    generation: u64,
    pub con: MultiplexedConnection,
}

/// Longest the load waits for the process to come back.
const DOWN_MAX: Duration = Duration::from_secs(90);
/// Failed connection attempts to a process that is up before giving up.
const CONNECT_ATTEMPTS_MAX: u32 = 40;

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Arc<Endpoint> {
        Arc::new(Endpoint { instance: watch::Sender::new(Instance { generation: 0, addr: Some(addr) }) })
    }

    /// The process is about to be killed: failures on its connections are
    /// indeterminate from now on, and new connections wait for [`Self::up`].
    pub fn down(&self) {
        self.instance.send_modify(|i| i.addr = None);
    }

    /// The restarted process serves at `addr`.
    pub fn up(&self, addr: SocketAddr) {
        self.instance.send_modify(|i| *i = Instance { generation: i.generation + 1, addr: Some(addr) });
    }

    /// Opens a connection to the current process, waiting while it is down.
    pub async fn connect(&self) -> Result<Conn, String> {
        let mut rx = self.instance.subscribe();
        let mut failures = 0;
        loop {
            let waited = tokio::time::timeout(DOWN_MAX, rx.wait_for(|i| i.addr.is_some())).await;
            let instance = *waited.map_err(|_| format!("the process stayed down for {DOWN_MAX:?}"))?.map_err(|e| e.to_string())?;
            let addr = instance.addr.expect("waited for an address");
            match open(addr).await {
                Ok(con) => return Ok(Conn { generation: instance.generation, con }),
                Err(e) => {
                    failures += 1;
                    if failures >= CONNECT_ATTEMPTS_MAX {
                        return Err(format!("cannot connect to {addr}: {e}"));
                    }
                    // Retry pacing: the process may have been killed since.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// After `what` failed with `error` on `conn`: a new connection if the
    /// failure is explained by a kill, else the failure as the test's error.
    async fn recover(&self, conn: &Conn, what: &str, error: redis::RedisError) -> Result<Conn, String> {
        let now = *self.instance.borrow();
        if now.addr.is_some() && now.generation == conn.generation {
            return Err(format!("{what}: {error}"));
        }
        self.connect().await
    }
}

async fn open(addr: SocketAddr) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(10));
    client.get_multiplexed_async_connection_with_config(&config).await
}

struct Register {
    invoked: AtomicU64,
    acked: AtomicU64,
    /// Unix ms the last acknowledgement arrived: a lost write's report
    /// says when, to line up with migration records' phase history.
    acked_at_ms: AtomicU64,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What one counter saw: acknowledged and indeterminate INCRs.
#[derive(Debug, Clone, Copy, Default)]
struct Count {
    acked: u64,
    indeterminate: u64,
}

/// Totals of a finished load.
#[derive(Debug, Default)]
pub struct Summary {
    pub writes_acked: u64,
    pub writes_indeterminate: u64,
    pub reads: u64,
    pub incrs_acked: u64,
    pub incrs_indeterminate: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} SETs acknowledged, {} indeterminate; {} reads checked; {} INCRs acknowledged, {} indeterminate",
            self.writes_acked, self.writes_indeterminate, self.reads, self.incrs_acked, self.incrs_indeterminate
        )
    }
}

async fn writer(ep: Arc<Endpoint>, w: usize, regs: Arc<Vec<Register>>, stop: Arc<AtomicBool>) -> Result<(u64, u64), String> {
    let mut conn = ep.connect().await?;
    let (mut acked, mut indeterminate) = (0, 0);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        for k in 0..KEYS_PER_WRITER {
            let reg = &regs[w * KEYS_PER_WRITER + k];
            reg.invoked.store(seq, Ordering::SeqCst);
            match conn.con.set::<_, _, ()>(key(w, k), seq.to_string()).await {
                Ok(()) => {
                    reg.acked.store(seq, Ordering::SeqCst);
                    reg.acked_at_ms.store(unix_ms(), Ordering::SeqCst);
                    acked += 1;
                }
                Err(e) => {
                    conn = ep.recover(&conn, &format!("SET {}", key(w, k)), e).await?;
                    indeterminate += 1;
                }
            }
        }
    }
    Ok((acked, indeterminate))
}

async fn reader(ep: Arc<Endpoint>, regs: Arc<Vec<Register>>, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let mut conn = ep.connect().await?;
    let mut reads = 0u64;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i = (i + 7919) % regs.len();
        let (w, k) = (i / KEYS_PER_WRITER, i % KEYS_PER_WRITER);
        let lo = regs[i].acked.load(Ordering::SeqCst);
        let got: Option<String> = match conn.con.get(key(w, k)).await {
            Ok(got) => got,
            Err(e) => {
                conn = ep.recover(&conn, &format!("GET {}", key(w, k)), e).await?;
                continue;
            }
        };
        let hi = regs[i].invoked.load(Ordering::SeqCst);
        let seen: u64 = got.as_deref().map_or(0, |v| v.parse().expect("values are sequence numbers"));
        if seen < lo || seen > hi {
            return Err(format!("{}: read {seen}, but acked {lo} before the read and invoked {hi} by its end", key(w, k)));
        }
        reads += 1;
    }
    Ok(reads)
}

async fn incrementer(ep: Arc<Endpoint>, stop: Arc<AtomicBool>) -> Result<Vec<Count>, String> {
    let mut conn = ep.connect().await?;
    let mut counts = vec![Count::default(); COUNTERS];
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let c = n % COUNTERS;
        n += 1;
        match conn.con.incr::<_, _, u64>(counter(c), 1).await {
            Ok(v) => {
                assert!(v >= 1);
                counts[c].acked += 1;
            }
            Err(e) => {
                conn = ep.recover(&conn, &format!("INCR {}", counter(c)), e).await?;
                counts[c].indeterminate += 1;
            }
        }
    }
    Ok(counts)
}

/// Writers, readers and an incrementer running against an [`Endpoint`];
/// each read is checked as it happens, the rest when the load stops.
pub struct Load {
    regs: Arc<Vec<Register>>,
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<Result<(u64, u64), String>>>,
    readers: Vec<JoinHandle<Result<u64, String>>>,
    counter: JoinHandle<Result<Vec<Count>, String>>,
}

impl Load {
    /// Starts the load and returns once every key has been written once.
    pub async fn start(ep: &Arc<Endpoint>, readers: usize) -> Load {
        let regs: Arc<Vec<Register>> = Arc::new((0..WRITERS * KEYS_PER_WRITER).map(|_| Register { invoked: AtomicU64::new(0), acked: AtomicU64::new(0), acked_at_ms: AtomicU64::new(0) }).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Load { regs: regs.clone(), stop: stop.clone(), writers: vec![], readers: vec![], counter: tokio::spawn(incrementer(ep.clone(), stop.clone())) };
        for w in 0..WRITERS {
            load.writers.push(tokio::spawn(writer(ep.clone(), w, regs.clone(), stop.clone())));
        }
        for _ in 0..readers {
            load.readers.push(tokio::spawn(reader(ep.clone(), regs.clone(), stop.clone())));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while regs.iter().any(|r| r.acked.load(Ordering::SeqCst) == 0) {
            // A writer stops only on an error: say which, rather than wait
            // for keys it will never write.
            if let Some(i) = load.writers.iter().position(|w| w.is_finished()) {
                let stopped = load.writers.remove(i).await;
                panic!("writer {i} stopped before every key was written once: {stopped:?}");
            }
            let unwritten = regs.iter().filter(|r| r.acked.load(Ordering::SeqCst) == 0).count();
            assert!(Instant::now() < deadline, "initial writes did not finish: {unwritten} keys never acknowledged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        load
    }

    /// Fails the test now if a task has already stopped: it stops only on
    /// an error (a client error no kill explains, or a failed read check),
    /// so a long test can say which of its steps broke the history.
    pub async fn check(&mut self, during: &str) {
        if let Some(t) = self.writers.iter_mut().find(|t| t.is_finished()) {
            panic!("load failed during {during}: {:?}", t.await.unwrap());
        }
        if let Some(t) = self.readers.iter_mut().find(|t| t.is_finished()) {
            panic!("load failed during {during}: {:?}", t.await.unwrap());
        }
        if self.counter.is_finished() {
            panic!("load failed during {during}: {:?}", (&mut self.counter).await.unwrap());
        }
    }

    /// Stops the load, fails on any client error a kill does not explain,
    /// and checks the final state: every key holds its last acknowledged
    /// value or a later indeterminate one (G1), and every acknowledged INCR
    /// counted exactly once (plus at most the indeterminate ones).
    pub async fn finish(self, ep: &Endpoint) -> Summary {
        self.stop.store(true, Ordering::Relaxed);
        let mut summary = Summary::default();
        for t in self.writers {
            let (acked, indeterminate) = t.await.unwrap().unwrap();
            summary.writes_acked += acked;
            summary.writes_indeterminate += indeterminate;
        }
        for t in self.readers {
            summary.reads += t.await.unwrap().unwrap();
        }
        assert!(summary.reads > 0, "readers made progress");
        let counts = self.counter.await.unwrap().unwrap();
        let mut conn = ep.connect().await.unwrap().con;
        let names: Vec<String> = (0..self.regs.len()).map(|i| key(i / KEYS_PER_WRITER, i % KEYS_PER_WRITER)).collect();
        let values: Vec<Option<u64>> = conn.mget(&names).await.unwrap();
        for ((name, reg), got) in names.iter().zip(self.regs.iter()).zip(values) {
            let (lo, hi) = (reg.acked.load(Ordering::SeqCst), reg.invoked.load(Ordering::SeqCst));
            let got = got.unwrap_or(0);
            let at = reg.acked_at_ms.load(Ordering::SeqCst);
            assert!(lo <= got && got <= hi, "{name}: final value {got}, but the last acknowledged write was {lo} (acknowledged at unix ms {at}, {} ms before this check) and the last invoked {hi}", unix_ms().saturating_sub(at));
        }
        for (c, count) in counts.iter().enumerate() {
            let v: Option<u64> = conn.get(counter(c)).await.unwrap();
            let v = v.unwrap_or(0);
            assert!(
                count.acked <= v && v <= count.acked + count.indeterminate,
                "{}: {v}, but {} INCRs were acknowledged and {} indeterminate",
                counter(c),
                count.acked,
                count.indeterminate
            );
            summary.incrs_acked += count.acked;
            summary.incrs_indeterminate += count.indeterminate;
        }
        summary
    }
}
