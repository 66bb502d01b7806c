//! A token bucket that never needs a timer.
//!
//! The caller asks [`TokenBucket::reserve`] before doing some work and is told
//! how long to wait; nothing here sleeps or reads a clock. Credit accrues at
//! `rate_per_s` up to `burst` units. A reservation books its amount at once
//! even if that drives the balance negative (debt): the caller waits until the
//! debt would have been earned, and the next caller waits behind it. This is
//! what lets a chunk larger than the burst through after a wait instead of
//! starving forever, and what keeps the long-run admitted amount at the rate:
//! by the time a reserved chunk may start, everything admitted so far is at
//! most `burst + rate * elapsed`.

/// Rate limiter for one stream of work (bytes or keys of one migration, or of
/// a node). See the module docs for the debt model.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    /// `None`: unlimited; `Some(0.0)`: paused.
    rate_per_s: Option<f64>,
    burst: f64,
    /// Available credit; negative while reserved work is still being paid for.
    /// Never above `burst`.
    tokens: f64,
    /// The latest `now_us` seen; credit has been accrued up to here.
    last_us: u64,
}

impl TokenBucket {
    /// A bucket that starts full (`burst` units may go at once).
    ///
    /// # Panics
    /// If `burst` is not finite and positive or the rate is negative or not
    /// finite: these are programmer errors, configs are validated before.
    pub fn new(rate_per_s: Option<f64>, burst: f64, now_us: u64) -> Self {
        assert!(
            burst.is_finite() && burst > 0.0,
            "burst must be > 0, got {burst}"
        );
        assert_rate(rate_per_s);
        Self {
            rate_per_s,
            burst,
            tokens: burst,
            last_us: now_us,
        }
    }

    /// Changes the rate from `now_us` on. Credit earned until now is kept at
    /// the old rate (capped at `burst`, so a long idle spell under a high rate
    /// never turns into more than one burst); outstanding debt is then repaid
    /// at the new rate, so the change applies to the very next reservation.
    pub fn set_rate(&mut self, rate_per_s: Option<f64>, now_us: u64) {
        assert_rate(rate_per_s);
        self.accrue(now_us);
        self.rate_per_s = rate_per_s;
    }

    /// Books `amount` units of work and returns how many microseconds the
    /// caller must wait before doing it (0: go now). Returns `None` while
    /// paused (rate 0), booking nothing; the caller should ask again after
    /// the rate changes.
    ///
    /// A `now_us` earlier than one already seen is treated as that earlier
    /// instant (no credit is earned or lost by a clock stepping back).
    pub fn reserve(&mut self, amount: u64, now_us: u64) -> Option<u64> {
        self.accrue(now_us);
        let rate = match self.rate_per_s {
            None => return Some(0),
            Some(0.0) => return None,
            Some(r) => r,
        };
        let amount = amount as f64;
        let shortfall = amount - self.tokens;
        self.tokens -= amount;
        if shortfall <= 0.0 {
            return Some(0);
        }
        // Rounding up means the caller never starts early; the fraction of a
        // microsecond of credit it over-waits is kept (the balance is below
        // `burst` then), so rounding does not drift the long-run rate.
        Some((shortfall / rate * 1e6).ceil() as u64)
    }

    /// The current rate: `None` unlimited, `Some(0.0)` paused.
    pub fn rate(&self) -> Option<f64> {
        self.rate_per_s
    }

    /// The largest amount of credit that can build up.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Credit available at `now_us` without booking anything; negative while
    /// in debt.
    pub fn available(&self, now_us: u64) -> f64 {
        let mut probe = self.clone();
        probe.accrue(now_us);
        probe.tokens
    }

    fn accrue(&mut self, now_us: u64) {
        let elapsed_us = now_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(now_us);
        self.tokens = match self.rate_per_s {
            // Unlimited work is not booked, so any old debt is forgiven and
            // limiting again starts from one full burst, never more.
            None => self.burst,
            Some(r) => (self.tokens + r * elapsed_us as f64 / 1e6).min(self.burst),
        };
    }
}

fn assert_rate(rate_per_s: Option<f64>) {
    if let Some(r) = rate_per_s {
        assert!(
            r.is_finite() && r >= 0.0,
            "rate must be finite and >= 0, got {r}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000;

    #[test]
    fn full_bucket_lets_a_burst_through_then_waits() {
        let mut b = TokenBucket::new(Some(1000.0), 100.0, 0);
        assert_eq!(b.reserve(100, 0), Some(0));
        // 50 more units at 1000/s: 50 ms.
        assert_eq!(b.reserve(50, 0), Some(50_000));
        // The next caller queues behind the first one's debt.
        assert_eq!(b.reserve(10, 0), Some(60_000));
    }

    #[test]
    fn chunk_bigger_than_burst_goes_after_waiting() {
        let mut b = TokenBucket::new(Some(1000.0), 100.0, 0);
        // 1000 units with 100 in hand: 900 ms of credit to earn.
        assert_eq!(b.reserve(1000, 0), Some(900_000));
        // Once that wait is over the debt is paid exactly.
        assert!(b.available(900_000).abs() < 1e-6);
    }

    #[test]
    fn credit_is_capped_at_burst() {
        let mut b = TokenBucket::new(Some(1000.0), 100.0, 0);
        assert_eq!(b.reserve(100, 0), Some(0));
        // An hour idle still only buys one burst.
        assert_eq!(b.available(3600 * S), 100.0);
        assert_eq!(b.reserve(100, 3600 * S), Some(0));
        assert_eq!(b.reserve(1, 3600 * S), Some(1000));
    }

    #[test]
    fn paused_books_nothing() {
        let mut b = TokenBucket::new(Some(0.0), 100.0, 0);
        assert_eq!(b.reserve(10, 0), None);
        assert_eq!(b.reserve(10, 10 * S), None);
        assert_eq!(b.available(10 * S), 100.0);
        b.set_rate(Some(10.0), 10 * S);
        assert_eq!(b.reserve(100, 10 * S), Some(0));
    }

    #[test]
    fn unlimited_never_waits_and_limiting_again_starts_from_one_burst() {
        let mut b = TokenBucket::new(None, 100.0, 0);
        for _ in 0..1000 {
            assert_eq!(b.reserve(1_000_000, 0), Some(0));
        }
        b.set_rate(Some(10.0), 5 * S);
        assert_eq!(b.reserve(100, 5 * S), Some(0));
        assert_eq!(b.reserve(10, 5 * S), Some(S));
    }

    #[test]
    fn rate_change_applies_to_the_next_reservation() {
        let mut b = TokenBucket::new(Some(100.0), 100.0, 0);
        assert_eq!(b.reserve(200, 0), Some(S)); // debt 100 at 100/s
        b.set_rate(Some(1000.0), 0);
        // The 100 of debt plus 100 new units now cost 200 ms, not 2 s.
        assert_eq!(b.reserve(100, 0), Some(200_000));
    }

    #[test]
    fn raising_the_rate_after_idling_grants_at_most_one_burst() {
        let mut b = TokenBucket::new(Some(1e9), 100.0, 0);
        assert_eq!(b.reserve(100, 0), Some(0));
        b.set_rate(Some(1e12), 3600 * S);
        assert_eq!(b.available(3600 * S), 100.0);
    }

    #[test]
    fn clock_stepping_back_earns_nothing() {
        let mut b = TokenBucket::new(Some(1000.0), 100.0, 10 * S);
        assert_eq!(b.reserve(100, 10 * S), Some(0));
        assert_eq!(b.reserve(10, 5 * S), Some(10_000));
    }

    proptest! {
        /// A caller that always does its work as soon as allowed is admitted
        /// at the configured rate within 2% over a long run, whatever the
        /// chunk sizes (including chunks several times the burst).
        #[test]
        fn saturated_caller_tracks_rate(
            rate in 1e3f64..1e9,
            burst_s in 0.001f64..0.5,
            chunks in prop::collection::vec(1u64..=4000, 200..600),
        ) {
            let burst = (rate * burst_s).max(1.0);
            let mut b = TokenBucket::new(Some(rate), burst, 0);
            let (mut now_us, mut admitted) = (0u64, 0f64);
            // Chunks scale with the burst so some are several bursts big.
            let scale = burst / 1000.0;
            let mut i = 0;
            // Run for at least 100 bursts' worth of time so the initial
            // burst is under 1% of the total.
            while (now_us as f64) < 100.0 * burst / rate * 1e6 || i < chunks.len() {
                let amount = ((chunks[i % chunks.len()] as f64) * scale).max(1.0) as u64;
                now_us += b.reserve(amount, now_us).unwrap();
                admitted += amount as f64;
                i += 1;
            }
            let expected = rate * now_us as f64 / 1e6;
            let err = (admitted - expected) / expected;
            prop_assert!(err.abs() < 0.02, "admitted {admitted} expected {expected} err {err}");
        }

        /// The burst bound over every stretch, not just from the start: the
        /// work started between two chunk starts is at most one burst (or
        /// the first of those chunks, if it is bigger, plus the microsecond
        /// its wait was rounded up by) plus the rate times
        /// the stretch. This is what fails if idle time turned into credit
        /// beyond the burst.
        #[test]
        fn no_stretch_admits_more_than_one_burst_over_the_rate(
            rate in 1f64..1e6,
            burst in 1f64..10_000.0,
            steps in prop::collection::vec((0u64..5_000_000, 1u64..20_000), 1..150),
        ) {
            let mut b = TokenBucket::new(Some(rate), burst, 0);
            let mut now_us = 0u64;
            let mut starts: Vec<(u64, f64)> = Vec::new();
            for (gap_us, amount) in steps {
                now_us += gap_us;
                let wait_us = b.reserve(amount, now_us).unwrap();
                starts.push((now_us + wait_us, amount as f64));
            }
            for i in 0..starts.len() {
                let (first_us, first) = starts[i];
                let mut sum = 0.0;
                for &(start_us, amount) in &starts[i..] {
                    sum += amount;
                    prop_assert!(start_us >= first_us, "starts go backwards");
                    // A chunk that waited starts with up to a microsecond of
                    // credit beyond its size: the wait is rounded up.
                    let at_first = burst.max(first + rate * 1e-6);
                    let bound = at_first + rate * (start_us - first_us) as f64 / 1e6;
                    prop_assert!(sum <= bound * (1.0 + 1e-9), "{sum} started, bound {bound}");
                }
            }
        }

        /// Whatever the arrival pattern and rate changes, work admitted by the
        /// time a chunk may start never exceeds one burst plus what the rates
        /// in force have earned since.
        #[test]
        fn never_admits_more_than_burst_plus_earned(
            burst in 1f64..10_000.0,
            steps in prop::collection::vec(
                (0u64..2_000_000, 1u64..20_000, prop::option::of(0f64..100_000.0)), 1..300),
        ) {
            let mut b = TokenBucket::new(Some(1000.0), burst, 0);
            let (mut now_us, mut earned, mut admitted) = (0u64, burst, 0f64);
            let mut rate = 1000.0;
            let mut last_us = 0u64;
            for (gap_us, amount, new_rate) in steps {
                now_us += gap_us;
                earned += rate * (now_us - last_us) as f64 / 1e6;
                last_us = now_us;
                if let Some(r) = new_rate {
                    b.set_rate(Some(r), now_us);
                    rate = r;
                }
                let Some(wait) = b.reserve(amount, now_us) else {
                    prop_assert_eq!(rate, 0.0);
                    continue;
                };
                admitted += amount as f64;
                let start_us = now_us + wait;
                let bound = earned + rate * (start_us - now_us) as f64 / 1e6;
                prop_assert!(admitted <= bound * (1.0 + 1e-9) + 1e-6,
                    "admitted {admitted} > bound {bound}");
            }
        }
    }
}
