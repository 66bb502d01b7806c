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
        #[cfg(target_os = "linux")]
        {
            let rc = match self {
                Priority::Normal => 0,
                // SAFETY: setpriority has no memory-safety preconditions.
                Priority::Nice(n) => unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) },
                Priority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    // SAFETY: `param` is a valid sched_param for the call's duration.
                    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
                }
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
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
}
