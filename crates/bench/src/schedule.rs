//! The open-loop schedule: when each request is *meant* to be sent.
//!
//! Request `k` of the run is due at `k / rate` seconds after the start and
//! belongs to connection `k mod connections`. Latency is measured from that
//! intended time, so a stalled server (or a stalled client) shows up as
//! latency instead of silently lowering the request rate (no coordinated
//! omission).
//!
//! The pacer ([`pace`]) is a task on the load's own single-threaded runtime
//! (see `run.rs`): it sleeps on a [`PreciseTimer`] with microsecond
//! resolution (tokio's timers round up to the millisecond, which would add up
//! to a millisecond of fake latency to every request) and, as requests fall
//! due, publishes how many are due and wakes the connections they belong to.
//! Pacer and connections share one thread, so releasing a request costs no
//! hand-off between threads: at 10,000 req/s the earlier design (a pacer
//! thread waking a multi-threaded runtime) spent half a core on context
//! switches, competing for the CPU with the server it measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// The longest the pacer sleeps without re-reading the end time.
const MAX_NAP: Duration = Duration::from_millis(5);

/// Releases requests as they fall due until the end time, then marks the
/// schedule finished. Runs as a task next to the connections it wakes.
pub async fn pace(schedule: Schedule, clock: Clock, shared: Arc<PacerShared>) -> std::io::Result<()> {
    let mut timer = PreciseTimer::new()?;
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
            return Ok(());
        }
        let next = clock.instant(schedule.intended_us(published));
        let nap = next.saturating_duration_since(Instant::now()).min(MAX_NAP);
        if !nap.is_zero() {
            timer.sleep(nap).await?;
        } else {
            // Let the connections send what is due before looking again.
            tokio::task::yield_now().await;
        }
    }
}

/// A sleep with microsecond resolution that wakes the runtime's own event
/// loop: a `timerfd` registered with tokio's reactor, so the wake-up costs
/// no extra thread.
#[cfg(target_os = "linux")]
pub struct PreciseTimer {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

#[cfg(target_os = "linux")]
impl PreciseTimer {
    pub fn new() -> std::io::Result<PreciseTimer> {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create takes no pointers; a non-negative result is
        // a new descriptor that nothing else owns.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor owned by nothing else (above).
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd's descriptor stays open, and the same, until
        // the AsyncFd that owns it is dropped.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }.map_err(std::io::Error::from)?;
        Ok(PreciseTimer { fd })
    }

    /// Sleeps for `nap` (at least a nanosecond: a zero timer is disarmed).
    pub async fn sleep(&mut self, nap: Duration) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.fd.get_ref().as_raw_fd();
        let nap = nap.max(Duration::from_nanos(1));
        let value = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: nap.as_secs() as libc::time_t, tv_nsec: nap.subsec_nanos() as libc::c_long },
        };
        // SAFETY: `fd` is our open timerfd, `value` a valid itimerspec, and
        // a null old-value pointer is allowed.
        if unsafe { libc::timerfd_settime(fd, 0, &value, std::ptr::null_mut()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reads at most 8 bytes into an 8-byte buffer.
            let n = unsafe { libc::read(fd, expirations.as_mut_ptr().cast(), expirations.len()) };
            if n == 8 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(err);
            }
            ready.clear_ready();
        }
    }
}

/// Elsewhere, tokio's timer: it rounds up to the millisecond, so latencies
/// there carry up to a millisecond of pacing error.
#[cfg(not(target_os = "linux"))]
pub struct PreciseTimer;

#[cfg(not(target_os = "linux"))]
impl PreciseTimer {
    pub fn new() -> std::io::Result<PreciseTimer> {
        Ok(PreciseTimer)
    }

    pub async fn sleep(&mut self, nap: Duration) -> std::io::Result<()> {
        tokio::time::sleep(nap).await;
        Ok(())
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

    #[tokio::test(flavor = "current_thread")]
    async fn pacer_releases_every_request_before_the_end_and_then_finishes() {
        let schedule = Schedule { rate: 20_000, connections: 4 };
        let clock = Clock { start: Instant::now() };
        let shared = PacerShared::new(4, 50_000);
        pace(schedule, clock, shared.clone()).await.unwrap();
        assert!(shared.finished());
        assert_eq!(shared.due(), 1_000);
        assert!(clock.now_us() >= 49_950);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn precise_timer_sleeps_at_least_the_nap_and_can_be_reused() {
        let mut timer = PreciseTimer::new().unwrap();
        for nap in [Duration::from_micros(300), Duration::from_millis(2), Duration::from_nanos(1)] {
            let t0 = Instant::now();
            timer.sleep(nap).await.unwrap();
            assert!(t0.elapsed() >= nap, "{nap:?} slept {:?}", t0.elapsed());
        }
    }
}
