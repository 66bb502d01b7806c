//! A ceiling on the CPU time migration store work may use: the bulk
//! threads of every node sharing one budget together run at most
//! `percent` of one core, measured on their own CPU clocks.
//!
//! Why CPU time and not bytes: the coordinator's rate limits count bytes,
//! but what a byte costs varies more than fourfold (16 ms of bulk-thread CPU
//! per MB copied on an idle 2-core machine, 52–86 ms under the acceptance
//! load: records still in the memtable's skiplist cost more to scan than
//! ones in tables, and under load the bulk threads are preempted 150–1,600
//! times a second, probably refilling their caches each time). An operator who wants migrations to use no more
//! than so much of a node's CPU can say so here, whatever the data's layout.
//! It is off by default: capping the acceptance rebalance's bulk threads at
//! 2% of a core made the rebalance 2.7x longer and its p99 no better
//! (docs/disruption-budget.md, "What the copy costs").
//!
//! The budget is a debt: a job starts once the balance is not negative, runs
//! to its end (a job is one snapshot page, one applied page or one
//! verification scan: milliseconds), and its CPU time is then charged. The
//! balance refills at `percent` of real time and saves up at most
//! [`SAVE_MAX`] of it, so an idle spell cannot turn into a burst. Work that
//! must not wait (the cutover's drain) does not run on the bulk threads and
//! is never charged.
//!
//! In `evenkeel up` every node of the process shares one budget: they
//! share the machine's cores, and it is the machine's load clients feel.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most real time a budget saves up its refill for.
pub const SAVE_MAX: Duration = Duration::from_millis(500);

/// The ceiling, shared by every bulk thread given a clone.
#[derive(Clone)]
pub struct CpuBudget(Arc<Inner>);

struct Inner {
    /// Share of one core, in (0, 1].
    share: f64,
    state: Mutex<Balance>,
    /// Jobs that waited for the budget.
    waits: metrics::Counter,
}

struct Balance {
    /// CPU seconds the bulk threads may still use; negative while in debt.
    seconds: f64,
    at: Instant,
}

impl std::fmt::Debug for CpuBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuBudget({}% of a core)", self.percent())
    }
}

impl CpuBudget {
    /// A budget of `percent` of one core (over 0, at most 100).
    pub fn new(percent: f64) -> Result<CpuBudget, String> {
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(format!("bulk_cpu_percent must be over 0 and at most 100, not {percent}"));
        }
        Ok(Self::starting_at(percent, Instant::now()))
    }

    fn starting_at(percent: f64, now: Instant) -> CpuBudget {
        let inner = Inner { share: percent / 100.0, state: Mutex::new(Balance { seconds: 0.0, at: now }), waits: metrics::counter!("evenkeel_node_bulk_cpu_budget_waits_total") };
        CpuBudget(Arc::new(inner))
    }

    pub fn percent(&self) -> f64 {
        self.0.share * 100.0
    }

    /// How long until work may start at `now`; zero: at once.
    fn wait_at(&self, now: Instant) -> Duration {
        let mut b = self.0.state.lock();
        self.refill(&mut b, now);
        if b.seconds >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-b.seconds / self.0.share) }
    }

    /// Charges `cpu` of work that ended at `now`.
    fn charge_at(&self, cpu: Duration, now: Instant) {
        let mut b = self.0.state.lock();
        self.refill(&mut b, now);
        b.seconds -= cpu.as_secs_f64();
    }

    /// Sleeps until work may start.
    pub fn wait_blocking(&self) {
        let mut waited = false;
        loop {
            let wait = self.wait_at(Instant::now());
            if wait.is_zero() {
                break;
            }
            std::thread::sleep(wait);
            waited = true;
        }
        if waited {
            self.0.waits.increment(1);
        }
    }

    /// Charges `cpu` of work that has just ended.
    pub fn charge(&self, cpu: Duration) {
        self.charge_at(cpu, Instant::now());
    }

    fn refill(&self, b: &mut Balance, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.seconds = (b.seconds + elapsed * self.0.share).min(SAVE_MAX.as_secs_f64() * self.0.share);
        b.at = b.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn work_waits_out_its_debt_at_the_budgets_share() {
        let t0 = Instant::now();
        let b = CpuBudget::starting_at(2.0, t0);
        assert_eq!(b.wait_at(t0), Duration::ZERO, "a fresh budget lets work start");
        // 10 ms of CPU at 2% of a core is paid back over 500 ms.
        b.charge_at(10 * MS, t0);
        let wait = b.wait_at(t0);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!((b.wait_at(t0 + 200 * MS).as_secs_f64() - 0.3).abs() < 1e-6);
        assert_eq!(b.wait_at(t0 + 500 * MS), Duration::ZERO);
    }

    #[test]
    fn an_idle_spell_saves_up_at_most_save_max_of_refill() {
        let t0 = Instant::now();
        let b = CpuBudget::starting_at(10.0, t0);
        // An hour idle saves 50 ms of CPU (500 ms at 10%), not 6 minutes.
        let later = t0 + Duration::from_secs(3600);
        b.charge_at(50 * MS, later);
        assert_eq!(b.wait_at(later), Duration::ZERO, "the saved 50 ms covers it");
        b.charge_at(MS, later);
        let wait = b.wait_at(later);
        assert!((wait.as_secs_f64() - 0.010).abs() < 1e-6, "1 ms over at 10% is 10 ms: {wait:?}");
    }

    #[test]
    fn over_a_long_run_the_work_done_is_the_share_of_the_time() {
        // Jobs of 3 ms back to back, each starting as soon as the budget
        // allows, for 10 simulated seconds at 5%: 0.5 s of CPU, within one
        // job.
        let t0 = Instant::now();
        let b = CpuBudget::starting_at(5.0, t0);
        let (mut now, mut used) = (t0, Duration::ZERO);
        while now < t0 + Duration::from_secs(10) {
            now += b.wait_at(now);
            now += 3 * MS;
            b.charge_at(3 * MS, now);
            used += 3 * MS;
        }
        assert!(used >= 500 * MS - 3 * MS && used <= 500 * MS + 3 * MS + 25 * MS, "{used:?}");
    }

    #[test]
    fn out_of_range_shares_are_refused() {
        for bad in [0.0, -1.0, 100.5, f64::NAN] {
            assert!(CpuBudget::new(bad).is_err(), "{bad}");
        }
        assert_eq!(CpuBudget::new(2.5).unwrap().percent(), 2.5);
    }
}
