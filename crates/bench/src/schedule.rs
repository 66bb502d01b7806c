//! The open-loop schedule: when each request is *meant* to be sent.
//!
//! Request `k` of the run is due at `k / rate` seconds after the start and
//! belongs to connection `k mod connections`. Latency is measured from that
//! intended time, so a stalled server (or a stalled client) shows up as
//! latency instead of silently lowering the request rate (no coordinated
//! omission).
//!
//! The [`Pacer`] is one OS thread that sleeps with microsecond resolution
//! (tokio's timers round up to the millisecond, which would add up to a
//! millisecond of fake latency to every request) and, as requests fall due,
//! publishes how many are due and wakes the connections they belong to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use crate::history::Micros;

/// The run's time base: microseconds since the load started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub start: Instant,
}

impl Clock {
    pub fn now_us(&self) -> Micros {
        self.start.elapsed().as_micros() as Micros
    }

    pub fn instant(&self, us: Micros) -> Instant {
        self.start + Duration::from_micros(us)
    }
}

/// Pure schedule arithmetic.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub rate: u64,
    pub connections: usize,
}

impl Schedule {
    /// When request `k` is due.
    pub fn intended_us(&self, k: u64) -> Micros {
        (u128::from(k) * 1_000_000 / u128::from(self.rate)) as Micros
    }

    /// How many requests are due at time `t`: those with `intended_us(k) <= t`.
    pub fn due_by(&self, t: Micros) -> u64 {
        // intended(k) <= t  ⇔  k·10⁶ < (t+1)·rate
        let bound = (u128::from(t) + 1) * u128::from(self.rate);
        bound.div_ceil(1_000_000) as u64
    }

    /// How many requests fall before `end`.
    pub fn count_before(&self, end: Micros) -> u64 {
        if end == 0 { 0 } else { self.due_by(end - 1) }
    }

    pub fn connection_of(&self, k: u64) -> usize {
        (k % self.connections as u64) as usize
    }
}

/// State the pacer shares with the connections and the phase controller.
pub struct PacerShared {
    due: AtomicU64,
    /// Requests due before this time are sent; `u64::MAX` while unknown
    /// (the disruptive command is still running).
    end_us: AtomicU64,
    finished: AtomicBool,
    wake: Vec<Notify>,
}

impl PacerShared {
    pub fn new(connections: usize, end_us: Micros) -> Arc<PacerShared> {
        Arc::new(PacerShared { due: AtomicU64::new(0), end_us: AtomicU64::new(end_us), finished: AtomicBool::new(false), wake: (0..connections).map(|_| Notify::new()).collect() })
    }

    /// Requests `0..due()` are due now.
    pub fn due(&self) -> u64 {
        self.due.load(Ordering::Acquire)
    }

    /// True once no more requests will become due.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub fn end_us(&self) -> Micros {
        self.end_us.load(Ordering::Acquire)
    }

    /// Sets when the load ends (the phase controller, or Ctrl-C: never later
    /// than an end already set).
    pub fn set_end(&self, end: Micros) {
        self.end_us.fetch_min(end, Ordering::AcqRel);
    }

    /// Waits until connection `c` may have new requests due.
    pub async fn wait(&self, c: usize) {
        self.wake[c].notified().await;
    }
}

/// The pacing thread.
pub struct Pacer {
    handle: JoinHandle<()>,
}

impl Pacer {
    pub fn start(schedule: Schedule, clock: Clock, shared: Arc<PacerShared>) -> std::io::Result<Pacer> {
        let handle = std::thread::Builder::new().name("bench-pacer".into()).spawn(move || pace(schedule, clock, &shared))?;
        Ok(Pacer { handle })
    }

    /// Waits for the thread to finish (it finishes by itself at the end time).
    pub fn join(self) {
        // The thread only panics on a bug; let it surface.
        if let Err(panic) = self.handle.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// The longest the pacer sleeps without re-reading the end time.
const MAX_NAP: Duration = Duration::from_millis(5);

fn pace(schedule: Schedule, clock: Clock, shared: &PacerShared) {
    let mut published = 0u64;
    loop {
        let limit = match shared.end_us() {
            u64::MAX => u64::MAX,
            end => schedule.count_before(end),
        };
        let due = schedule.due_by(clock.now_us()).min(limit);
        if due > published {
            shared.due.store(due, Ordering::Release);
            let woken = (due - published).min(schedule.connections as u64);
            for k in published..published + woken {
                shared.wake[schedule.connection_of(k)].notify_one();
            }
            published = due;
        }
        if published >= limit {
            shared.finished.store(true, Ordering::Release);
            shared.wake.iter().for_each(Notify::notify_one);
            return;
        }
        let next = clock.instant(schedule.intended_us(published));
        let nap = next.saturating_duration_since(Instant::now()).min(MAX_NAP);
        if !nap.is_zero() {
            std::thread::sleep(nap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn due_by_agrees_with_intended(rate in 1u64..2_000_000, t in 0u64..100_000_000) {
            let s = Schedule { rate, connections: 3 };
            let n = s.due_by(t);
            if n > 0 {
                prop_assert!(s.intended_us(n - 1) <= t);
            }
            prop_assert!(s.intended_us(n) > t);
        }
    }

    #[test]
    fn spreads_requests_evenly_over_connections_and_time() {
        let s = Schedule { rate: 10_000, connections: 16 };
        assert_eq!(s.intended_us(0), 0);
        assert_eq!(s.intended_us(1), 100);
        assert_eq!(s.intended_us(10_000), 1_000_000);
        assert_eq!(s.count_before(1_000_000), 10_000);
        assert_eq!(s.count_before(0), 0);
        assert_eq!(s.connection_of(17), 1);
        let slow = Schedule { rate: 3, connections: 1 };
        assert_eq!(slow.intended_us(1), 333_333);
        assert_eq!(slow.count_before(2_000_000), 6);
    }

    #[test]
    fn pacer_releases_every_request_before_the_end_and_then_finishes() {
        let schedule = Schedule { rate: 20_000, connections: 4 };
        let clock = Clock { start: Instant::now() };
        let shared = PacerShared::new(4, 50_000);
        Pacer::start(schedule, clock, shared.clone()).unwrap().join();
        assert!(shared.finished());
        assert_eq!(shared.due(), 1_000);
        assert!(clock.now_us() >= 49_950);
    }
}
