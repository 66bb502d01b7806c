//! Small fixed thread pools for a node's store work that must not run on the
//! runtime's workers, each at an OS priority of its own.
//!
//! Three pools per node use it. The *writer* (one thread, normal priority)
//! runs client writes that may wait on the engine (`crate::inline` decides
//! which): on its own thread a write stuck behind fjall's journal lock or
//! write brakes stalls only that node's writes, where on a runtime worker it
//! stalled every request of the process. One thread per node is all the
//! concurrency the journal lock allows anyway. The *reader* (one thread,
//! normal priority) does the same for reads while one is stuck behind the
//! engine's version lock; they would all wait for that lock anyway.
//!
//! The *bulk* pool runs migration store work at a low priority. The
//! background lane ([`crate::lane`]) decides *when* migration work may
//! start: after foreground requests in flight have finished, within a
//! bounded wait. This pool decides *how* it competes for a core once it
//! runs: that is the seed's "operating system priority mechanism". By
//! default its threads are `SCHED_IDLE` (they run on cores no client work
//! wants, and a client thread that wakes preempts them at once); a node can
//! instead give them a nice value, which guarantees them a share of a
//! saturated machine but lets them delay client threads by up to a
//! scheduler slice. [`crate::priority`] has the measurements.
//!
//! Only work that may wait goes here (snapshot pages, log reads for catch-up
//! and reverse capture, applies, verification scans, drops). The drain under
//! a cutover's fence is urgent: it runs on tokio's blocking pool at normal
//! priority, since every microsecond of it is client pause.

use crate::cpu_budget::CpuBudget;
use crate::priority::Priority;
use evenkeel_types::NodeId;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads; dropping the pool ends them once their queue is
/// empty.
pub(crate) struct Pool {
    jobs: mpsc::Sender<Job>,
    /// Never joined or detached while the pool lives, so each handle's
    /// thread id stays valid for [`Pool::cpu_time`].
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The pool is gone (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("node {0} is shutting down; store work refused")]
pub(crate) struct Closed(pub NodeId);

impl Pool {
    /// Starts `threads` (at least 1) threads named `ek-{name}-{node}-{i}`
    /// running at `priority`, taking jobs from a queue of `queue` (callers
    /// wait for room: backpressure, not an error). With a `budget`, each
    /// job starts once the budget allows and is charged its CPU time when it
    /// ends (see [`crate::cpu_budget`]).
    pub fn new(name: &str, node: NodeId, threads: usize, priority: Priority, queue: usize, budget: Option<CpuBudget>) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..threads.max(1))
            .map(|i| {
                let (rx, budget) = (rx.clone(), budget.clone());
                std::thread::Builder::new().name(format!("ek-{name}-{node}-{i}")).spawn(move || work(rx, node, priority, budget))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Pool { jobs: tx, threads })
    }

    /// CPU time the pool's threads have used since they started (they use
    /// none waiting for jobs): for the bulk pool, what the node's share of
    /// migrations has cost in CPU. Read from each thread's CPU clock
    /// (Linux); zero elsewhere.
    pub fn cpu_time(&self) -> Duration {
        self.threads.iter().map(thread_cpu_time).sum()
    }

    /// Runs `f` on a pool thread and returns its result.
    pub async fn run<T: Send + 'static>(&self, node: NodeId, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Closed> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).await.map_err(|_| Closed(node))?;
        // A panicking job drops its sender: report it like a closed pool
        // rather than unwinding into the caller.
        rx.await.map_err(|_| Closed(node))
    }

    /// Runs `f` on a pool thread if one can start it before `start_by`,
    /// and returns its result; `Ok(None)` when none could, and then `f`
    /// never runs. Without a deadline this is [`Pool::run`].
    ///
    /// The answer is certain either way: a job that has not started by the
    /// deadline is abandoned in its queue (it and the caller race for one
    /// flag), so a caller that gives up never leaves work behind that
    /// might still happen. Once started, `f` runs to the end and this waits
    /// for it, deadline or not.
    pub async fn run_started_by<T: Send + 'static>(&self, node: NodeId, start_by: Option<Instant>, f: impl FnOnce() -> T + Send + 'static) -> Result<Option<T>, Closed> {
        let Some(start_by) = start_by else { return self.run(node, f).await.map(Some) };
        let start_by = tokio::time::Instant::from_std(start_by);
        let claim = Arc::new(AtomicU8::new(QUEUED));
        let (tx, rx) = oneshot::channel();
        let mine = claim.clone();
        let job: Job = Box::new(move || {
            if mine.compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                let _ = tx.send(f());
            }
        });
        match tokio::time::timeout_at(start_by, self.jobs.send(job)).await {
            Err(_) => return Ok(None), // no room in the queue in time: never queued
            Ok(Err(_)) => return Err(Closed(node)),
            Ok(Ok(())) => {}
        }
        let mut rx = std::pin::pin!(rx);
        if let Ok(done) = tokio::time::timeout_at(start_by, &mut rx).await {
            return done.map(Some).map_err(|_| Closed(node));
        }
        if claim.compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return Ok(None);
        }
        rx.await.map(Some).map_err(|_| Closed(node))
    }
}

#[cfg(target_os = "linux")]
fn thread_cpu_time(thread: &std::thread::JoinHandle<()>) -> Duration {
    use std::os::unix::thread::JoinHandleExt;
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the handle is neither joined nor detached (the pool owns it),
    // so its pthread_t is valid, and both out-pointers live for the calls.
    // A thread that has ended makes clock_gettime fail: it counts zero.
    let ok = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) == 0 && libc::clock_gettime(clock, &mut now) == 0 };
    if ok { Duration::new(now.tv_sec as u64, now.tv_nsec as u32) } else { Duration::ZERO }
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time(_: &std::thread::JoinHandle<()>) -> Duration {
    Duration::ZERO
}

/// CPU time the calling thread has used since it started (Linux; zero
/// elsewhere, which charges a budget nothing).
fn thread_cpu_now() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: the out-pointer lives for the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0 {
            return Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        }
    }
    Duration::ZERO
}

/// A job's claim: still queued, taken by a pool thread, or given up by its
/// caller at its deadline.
const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

fn work(jobs: Arc<Mutex<mpsc::Receiver<Job>>>, node: NodeId, priority: Priority, budget: Option<CpuBudget>) {
    priority.apply_or_warn();
    loop {
        // One thread waits on the queue at a time; the others on the lock.
        let job = jobs.lock().expect("bulk queue lock").blocking_recv();
        let Some(job) = job else { return };
        // Waits with the job in hand rather than before taking one: a
        // caller that gives up on a job queued too long (`run_started_by`)
        // then still finds it unstarted.
        let metered = budget.as_ref().map(|b| {
            b.wait_blocking();
            (b, thread_cpu_now())
        });
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!(node, "store job panicked");
        }
        if let Some((b, started)) = metered {
            b.charge(thread_cpu_now().saturating_sub(started));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_at_the_pools_priority_and_return_their_results() {
        let pool = Pool::new("bulk", 1, 2, Priority::Nice(10), 8, None).unwrap();
        let name = pool.run(1, || std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("ek-bulk-1-")));
        #[cfg(target_os = "linux")]
        {
            use crate::priority::current_thread_priority;
            let (_, caller) = current_thread_priority();
            let (policy, inside) = pool.run(1, current_thread_priority).await.unwrap();
            assert_eq!((policy, inside), (libc::SCHED_OTHER, (caller + 10).min(19)), "bulk threads run 10 nice steps lower");
            let idle = Pool::new("bulk", 2, 1, Priority::Idle, 8, None).unwrap();
            assert_eq!(idle.run(2, current_thread_priority).await.unwrap().0, libc::SCHED_IDLE);
        }
        let sum: u64 = pool.run(1, || (1..=100u64).sum()).await.unwrap();
        assert_eq!(sum, 5050);
    }

    #[tokio::test]
    async fn a_job_not_started_by_its_deadline_is_abandoned_and_never_runs() {
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;
        let pool = Arc::new(Pool::new("writer", 3, 1, Priority::Normal, 8, None).unwrap());
        // Hold the only thread until `release` is sent to.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(3, move || {
                    started_tx.send(()).unwrap();
                    hold.recv().ok()
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();

        let ran = Arc::new(AtomicBool::new(false));
        let start_by = Instant::now() + Duration::from_millis(50);
        let job = {
            let ran = ran.clone();
            move || ran.store(true, Ordering::SeqCst)
        };
        let answer = tokio::time::timeout(Duration::from_secs(5), pool.run_started_by(3, Some(start_by), job)).await.expect("answered at its deadline, not when the thread freed");
        assert!(matches!(answer, Ok(None)), "not started in time: {answer:?}");
        assert!(Instant::now() >= start_by);
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The thread is free again and has taken the queue in order; the
        // abandoned job did not run.
        assert_eq!(pool.run(3, || 7).await.unwrap(), 7);
        assert!(!ran.load(Ordering::SeqCst), "an abandoned job never runs");

        // One that starts in time runs and answers, however long it takes.
        let start_by = Some(Instant::now() + Duration::from_millis(50));
        let slow = pool
            .run_started_by(3, start_by, || {
                std::thread::sleep(Duration::from_millis(150));
                9
            })
            .await;
        assert!(matches!(slow, Ok(Some(9))), "{slow:?}");
        assert!(matches!(pool.run_started_by(3, None, || 1).await, Ok(Some(1))));
    }

    /// The pool's CPU time counts what its jobs burn and not the time its
    /// threads wait for work (sleeping in a job or in the queue).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn cpu_time_counts_work_not_waiting() {
        use std::time::Duration;
        let pool = Pool::new("bulk", 4, 2, Priority::Normal, 8, None).unwrap();
        let before = pool.cpu_time();
        pool.run(4, || std::thread::sleep(Duration::from_millis(200))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let waited = pool.cpu_time() - before;
        assert!(waited < Duration::from_millis(50), "sleeping and waiting cost {waited:?} of CPU");
        let spin = |ms| {
            let until = Instant::now() + Duration::from_millis(ms);
            let mut n = 0u64;
            while Instant::now() < until {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        };
        let before = pool.cpu_time();
        let _ = tokio::join!(pool.run(4, move || spin(150)), pool.run(4, move || spin(150)));
        let burned = pool.cpu_time() - before;
        // Two threads spun 150 ms of wall time each; on a busy machine they
        // get less CPU than that, never more.
        assert!(burned > Duration::from_millis(30) && burned < Duration::from_millis(320), "two 150 ms spins cost {burned:?} of CPU");
    }

    /// Two pools sharing one budget (two nodes of a process) together burn
    /// CPU at most at its share: 30 jobs of 5 ms of CPU at 25% of a core
    /// cannot finish in less than (150 - 5) / 0.25 = 580 ms, where they
    /// take 150 ms without it. A busy machine only makes them slower.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pools_sharing_a_cpu_budget_stay_within_its_share_together() {
        use std::time::Duration;
        let budget = CpuBudget::new(25.0).unwrap();
        let pools = [1, 2].map(|node| Arc::new(Pool::new("bulk", node, 1, Priority::Normal, 8, Some(budget.clone())).unwrap()));
        let burn = || {
            let until = thread_cpu_now() + Duration::from_millis(5);
            let mut n = 0u64;
            while thread_cpu_now() < until {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        };
        let started = Instant::now();
        let mut jobs = tokio::task::JoinSet::new();
        for i in 0..30 {
            let pool = pools[i % 2].clone();
            jobs.spawn(async move { pool.run(1 + (i % 2) as u32, burn).await });
        }
        while let Some(done) = jobs.join_next().await {
            done.unwrap().unwrap();
        }
        let took = started.elapsed();
        let burned: Duration = pools.iter().map(|p| p.cpu_time()).sum();
        assert!(burned >= Duration::from_millis(150), "every job ran: {burned:?}");
        assert!(took >= Duration::from_millis(500), "150 ms of CPU at 25% took only {took:?}");
    }

    #[test]
    fn the_calling_threads_cpu_clock_advances_with_work() {
        let before = thread_cpu_now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        #[cfg(target_os = "linux")]
        assert!(thread_cpu_now() > before);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_goes_on() {
        let pool = Pool::new("writer", 2, 1, Priority::Normal, 8, None).unwrap();
        assert!(pool.run(2, || -> u32 { panic!("boom") }).await.is_err());
        assert_eq!(pool.run(2, || 7).await.unwrap(), 7);
    }
}
