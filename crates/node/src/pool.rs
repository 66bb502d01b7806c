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
//! bounded wait. This pool decides *how much CPU* it gets once it runs. Its
//! threads have a raised nice value (default 10), so when client requests
//! and migration work compete for a core, the kernel's scheduler gives the
//! migration roughly a tenth of it (CFS weights: nice 10 is 110 against 1024
//! for nice 0), and all of whatever is idle. That is the seed's "operating
//! system priority mechanism", and its rule of thumb that rebalancing should
//! take no more than about 10% of resources at peak. It never starves:
//! unlike `SCHED_IDLE`, a niced thread still gets its share on a saturated
//! machine, so migrations keep progressing.
//!
//! Only work that may wait goes here (snapshot pages, log reads for catch-up
//! and reverse capture, applies, verification scans, drops). The drain under
//! a cutover's fence is urgent: it runs on tokio's blocking pool at normal
//! priority, since every microsecond of it is client pause.

use evenkeel_types::NodeId;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads; dropping the pool ends them once their queue is
/// empty.
pub(crate) struct Pool {
    jobs: mpsc::Sender<Job>,
}

/// The pool is gone (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("node {0} is shutting down; store work refused")]
pub(crate) struct Closed(pub NodeId);

impl Pool {
    /// Starts `threads` (at least 1) threads named `ek-{name}-{node}-{i}`
    /// running at `nice`, taking jobs from a queue of `queue` (callers wait
    /// for room: backpressure, not an error).
    pub fn new(name: &str, node: NodeId, threads: usize, nice: i32, queue: usize) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("ek-{name}-{node}-{i}")).spawn(move || work(rx, node, nice))?;
        }
        Ok(Pool { jobs: tx })
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
}

fn work(jobs: Arc<Mutex<mpsc::Receiver<Job>>>, node: NodeId, nice: i32) {
    lower_priority(node, nice);
    loop {
        // One thread waits on the queue at a time; the others on the lock.
        let job = jobs.lock().expect("bulk queue lock").blocking_recv();
        let Some(job) = job else { return };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!(node, "store job panicked");
        }
    }
}

/// Sets this thread's nice value. On Linux the nice value belongs to the
/// thread (`setpriority(PRIO_PROCESS, 0, ..)` applies to the caller only);
/// elsewhere it would renice the whole process, so it is skipped.
pub(crate) fn lower_priority(node: NodeId, nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0 {
        // SAFETY: setpriority has no memory-safety preconditions.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc != 0 {
            tracing::warn!(node, nice, error = %std::io::Error::last_os_error(), "could not lower a store thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (node, nice);
}

/// This thread's nice value (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
fn current_nice() -> i32 {
    // SAFETY: as above. -1 is also a valid nice value, hence errno.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_niced_threads_and_return_their_results() {
        let pool = Pool::new("bulk", 1, 2, 10, 8).unwrap();
        let name = pool.run(1, || std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("ek-bulk-1-")));
        #[cfg(target_os = "linux")]
        {
            let caller = current_nice();
            let inside = pool.run(1, current_nice).await.unwrap();
            assert_eq!(inside, (caller + 10).min(19), "bulk threads run 10 nice steps lower");
        }
        let sum: u64 = pool.run(1, || (1..=100u64).sum()).await.unwrap();
        assert_eq!(sum, 5050);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_goes_on() {
        let pool = Pool::new("writer", 2, 1, 0, 8).unwrap();
        assert!(pool.run(2, || -> u32 { panic!("boom") }).await.is_err());
        assert_eq!(pool.run(2, || 7).await.unwrap(), 7);
    }
}
