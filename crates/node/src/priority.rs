//! The OS scheduling priority of threads that run migration work.
//!
//! Two ways to keep a background thread from costing client latency, with
//! different guarantees:
//!
//! - A raised **nice** value gives the thread a small *share* of a contended
//!   core (CFS/EEVDF weights: nice 10 is 110 against 1024 for nice 0), so it
//!   keeps progressing on a saturated machine. But a client thread that wakes
//!   while it runs may wait for it: the scheduler protects a running task's
//!   slice, whatever its weight. Measured with `perf sched` during the copy
//!   phase of the acceptance run: 42 runtime-worker wakeups in 5 s waited
//!   over 1 ms for a core, 27 ms of that waiting behind nice-10 bulk threads.
//! - **`SCHED_IDLE`** runs the thread only when no normal thread wants the
//!   core: a client thread that wakes preempts it at once. Same run with the
//!   bulk threads idle-class: 16 such wakeups in 5 s (as many as in the bake
//!   phase, with no bulk work), 1.3 ms of them behind bulk threads. The cost:
//!   on a machine saturated by client work an idle-class thread gets only a
//!   token share (weight 3 against 1024), so migration slows to a crawl
//!   there; the throttle's health gates pause it in that state anyway.
//!
//! Either way a lowered thread must not be preempted while it holds a lock
//! client work also takes (a priority inversion): the client request waits
//! for the holder, and the holder waits for a core the client threads are
//! using. Measured in the acceptance run's copy phase, off-CPU time of the
//! runtime workers (`perf record -e sched:sched_switch`, user stacks): they
//! were blocked 48 ms in 4 s on a partition lock a snapshot apply held on
//! an idle-class thread (dual writes forwarded to the destination); none in
//! bake. So code that takes such a lock on a lowered thread holds a
//! [`Boost`]: the thread runs at normal priority until it lets go, and the
//! critical sections are kept short (a page applies in sub-batches of
//! `migrate_rpc::APPLY_BATCH_RECORDS` records, 128 then). Same measurement
//! after, at 32: 1.9 ms.
//!
//! Leaving `SCHED_IDLE`, or lowering the nice value again, needs
//! `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it. Without it a boost
//! cannot happen, and an idle-class lock holder could wait for a core
//! indefinitely on a busy machine: [`Priority::boostable`] tells a node to
//! run its bulk threads at a nice value instead.

use std::cell::Cell;

/// How a thread is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Like client work: nice 0, the normal policy.
    Normal,
    /// The normal policy at this nice value (1–19).
    Nice(i32),
    /// `SCHED_IDLE`.
    Idle,
}

impl Priority {
    /// `Idle` when `idle`, else the nice value (`Normal` for 0).
    pub fn of(idle: bool, nice: i32) -> Priority {
        match (idle, nice) {
            (true, _) => Priority::Idle,
            (false, 0) => Priority::Normal,
            (false, n) => Priority::Nice(n),
        }
    }

    /// Applies to the calling thread only. Linux: nice values and policies
    /// belong to threads there. Elsewhere it does nothing (a nice value
    /// would apply to the whole process).
    pub fn apply_to_current_thread(self) -> std::io::Result<()> {
        let lowered = LOWERED.get();
        if self == Priority::Normal && lowered.is_none() {
            return Ok(());
        }
        let before = lowered.map_or_else(current_nice, |l| l.normal_nice);
        set(lowered.map_or(Priority::Normal, |l| l.to), self, before)?;
        LOWERED.set((self != Priority::Normal).then_some(Lowered { to: self, normal_nice: before }));
        Ok(())
    }

    /// Whether a thread lowered to `self` can [`Boost`] itself back to
    /// normal priority in this process (tried on a scratch thread).
    pub fn boostable(self) -> bool {
        if self == Priority::Normal {
            return true;
        }
        std::thread::spawn(move || self.apply_to_current_thread().is_ok() && Boost::try_raise().is_ok_and(|b| b.restore.is_some()))
            .join()
            .unwrap_or(false)
    }

    /// [`Priority::apply_to_current_thread`], logging a failure (the thread
    /// then runs at the default priority, which is not worth stopping for).
    pub fn apply_or_warn(self) {
        if let Err(error) = self.apply_to_current_thread() {
            let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
            tracing::warn!(thread, priority = ?self, %error, "could not set a thread's OS priority; it runs at the default");
        }
    }
}

/// A thread's lowered priority, and the nice value it had before.
#[derive(Debug, Clone, Copy)]
struct Lowered {
    to: Priority,
    normal_nice: i32,
}

thread_local! {
    /// Set while the thread runs lowered and not boosted.
    static LOWERED: Cell<Option<Lowered>> = const { Cell::new(None) };
}

/// Runs the calling thread at normal priority until dropped, if it was
/// lowered; free on a thread that was not (a thread-local read). Nested
/// boosts are free too: only the outermost raises and restores. Take it
/// before the lock and drop it after.
#[must_use = "the boost ends when it is dropped"]
pub struct Boost {
    restore: Option<Lowered>,
}

impl Boost {
    /// Raises the thread if it is lowered; on failure (no privilege: see
    /// the module docs) it stays lowered, with one warning per process.
    pub fn normal() -> Boost {
        Boost::try_raise().unwrap_or_else(|error| {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| tracing::warn!(%error, "could not raise a low-priority thread while it holds a lock clients take"));
            Boost { restore: None }
        })
    }

    fn try_raise() -> std::io::Result<Boost> {
        let Some(lowered) = LOWERED.get() else { return Ok(Boost { restore: None }) };
        set(lowered.to, Priority::Normal, lowered.normal_nice)?;
        LOWERED.set(None);
        Ok(Boost { restore: Some(lowered) })
    }
}

impl Drop for Boost {
    fn drop(&mut self) {
        if let Some(lowered) = self.restore {
            // Lowering never needs a privilege; a failure leaves the thread
            // at normal priority, which costs clients a little, not data.
            if set(Priority::Normal, lowered.to, lowered.normal_nice).is_ok() {
                LOWERED.set(Some(lowered));
            }
        }
    }
}

/// Moves the calling thread from `from` (what it runs at now) to `to`;
/// `normal_nice` is the nice value `Priority::Normal` means (the thread's
/// own before lowering). Only what differs is changed: a policy switch
/// keeps the nice value, so a boost out of `SCHED_IDLE` and back is one
/// `sched_setscheduler` each way, and one out of a nice value one
/// `setpriority`. A bulk thread does both around every sub-batch it
/// applies, so each syscall saved is hundreds per megabyte moved.
fn set(from: Priority, to: Priority, normal_nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let nice = |p: Priority| if let Priority::Nice(n) = p { n } else { normal_nice };
        let idle = |p: Priority| p == Priority::Idle;
        let param = libc::sched_param { sched_priority: 0 };
        if idle(from) != idle(to) {
            let policy = if idle(to) { libc::SCHED_IDLE } else { libc::SCHED_OTHER };
            // SAFETY: `param` is a valid sched_param for the call's duration.
            if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: setpriority has no memory-safety preconditions.
        if nice(from) != nice(to) && unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice(to)) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, to, normal_nice);
    Ok(())
}

fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        current_thread_priority().1
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// The calling thread's scheduling policy and nice value (Linux), for tests.
#[cfg(target_os = "linux")]
pub fn current_thread_priority() -> (i32, i32) {
    // SAFETY: neither call has memory-safety preconditions; -1 is also a
    // valid nice value, hence errno.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        *libc::__errno_location() = 0;
        (policy, libc::getpriority(libc::PRIO_PROCESS, 0))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn on_new_thread(p: Priority) -> (std::io::Result<()>, (i32, i32)) {
        std::thread::spawn(move || (p.apply_to_current_thread(), current_thread_priority())).join().unwrap()
    }

    #[test]
    fn each_priority_is_applied_to_the_calling_thread_only() {
        let (_, (policy0, nice0)) = on_new_thread(Priority::Normal);
        let (rc, (policy, nice)) = on_new_thread(Priority::Idle);
        rc.unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        assert_eq!(nice, nice0);
        let (rc, (policy, nice)) = on_new_thread(Priority::Nice(7));
        rc.unwrap();
        assert_eq!((policy, nice), (libc::SCHED_OTHER, (nice0 + 7).min(19)));
        assert_eq!(current_thread_priority(), (policy0, nice0), "the caller's own thread is untouched");
        assert_eq!(Priority::of(true, 10), Priority::Idle);
        assert_eq!(Priority::of(false, 0), Priority::Normal);
        assert_eq!(Priority::of(false, 10), Priority::Nice(10));
    }

    /// A lowered thread runs at its normal priority while it holds a boost
    /// and returns to its lowered one after; nested boosts change nothing.
    /// Needs the privilege to raise (CAP_SYS_NICE: tests run as root in CI);
    /// without it `boostable` must say so.
    #[test]
    fn a_boost_raises_a_lowered_thread_until_it_is_dropped() {
        for lowered in [Priority::Idle, Priority::Nice(10)] {
            if !lowered.boostable() {
                eprintln!("no privilege to raise a thread's priority; skipping {lowered:?}");
                continue;
            }
            let seen = std::thread::spawn(move || {
                let normal = current_thread_priority();
                lowered.apply_to_current_thread().unwrap();
                let low = current_thread_priority();
                let (boosted, nested) = {
                    let _outer = Boost::normal();
                    let boosted = current_thread_priority();
                    let nested = {
                        let _inner = Boost::normal();
                        current_thread_priority()
                    };
                    (boosted, (nested, current_thread_priority()))
                };
                (normal, low, boosted, nested, current_thread_priority())
            })
            .join()
            .unwrap();
            let (normal, low, boosted, (nested, after_nested), after) = seen;
            assert_ne!(low, normal, "{lowered:?} lowered the thread");
            assert_eq!(boosted, normal, "{lowered:?}: boosted to the thread's normal priority");
            assert_eq!((nested, after_nested), (normal, normal), "{lowered:?}: an inner boost neither raises nor restores");
            assert_eq!(after, low, "{lowered:?}: lowered again after the boost");
        }
        // A thread that was never lowered is left alone.
        let before = current_thread_priority();
        let _boost = Boost::normal();
        assert_eq!(current_thread_priority(), before);
    }
}
