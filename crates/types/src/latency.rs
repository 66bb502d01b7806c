//! Per-second latency windows: what throttling and health gating read.
//!
//! A [`SecondWindow`] collects latencies of the current wall-clock second
//! and keeps the summary of the last complete one. The coordinator polls
//! once a second, so it always sees a whole second, never a partial one.
//! Time is passed in (`now_ms`), so rotation is testable without waiting.
//!
//! Buckets are log-linear (64 per power of two, so a quantile is within
//! 1/64 ≈ 1.6% of the true value) over 1 µs .. 2^36 µs (about 19 hours);
//! recording is a bucket increment under a mutex that is held for a few
//! nanoseconds.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two, as a power of two. The throttle compares
/// p99 with 1.10 × its baseline: with 8 sub-buckets (12.5% steps) one step
/// of the quantile crossed the budget, and the controller cut on
/// quantization (239 → 287 µs read as "1.20x").
const SUB_BITS: usize = 6;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered.
const POWERS: usize = 36;
const BUCKETS: usize = SUB * POWERS;

/// The summary of one complete second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondSummary {
    /// Unix second the summary covers (0: none recorded yet).
    pub second: u64,
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// What a router publishes at `/evenkeel/routers/<id>` every second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterReport {
    pub router: u64,
    /// When the report was written.
    pub at_ms: u64,
    #[serde(flatten)]
    pub last_second: SecondSummary,
    /// The router process's scheduling delay over the same second: how long
    /// a runnable task waited for a thread (see the router's `report`).
    /// CPU contention shows here before it shows in command latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sched: Option<SecondSummary>,
    /// The same second's commands measured from when the kernel received
    /// their bytes instead of from decode: adds the wait in the socket for
    /// a worker, which clients feel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<SecondSummary>,
    /// Operations the router has answered with an error of the store's
    /// making (TRYAGAIN after the retry budget, CLUSTERDOWN) since it
    /// started: cumulative, so a missed report loses nothing. The
    /// disruption budget allows none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unavailable_total: u64,
    /// What the router did for each moving partition's migration since it
    /// started (cumulative, so a report the coordinator misses loses
    /// nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MigrationMirror>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One migration's mirrored traffic as one router counted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationMirror {
    pub migration: String,
    #[serde(flatten)]
    pub counts: MirrorCounts,
}

/// A router's side effects for a moving partition: records forwarded to
/// the destination and shadow-read comparisons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MirrorCounts {
    /// Records of acknowledged writes the destination accepted.
    pub dual_writes: u64,
    /// Records read on the source that the destination accepted.
    pub copied_on_read: u64,
    /// Side effects not attempted: the router's in-flight bound was
    /// reached (the change log carries what a dropped forward would have).
    pub dropped: u64,
    /// Side effects not attempted: the source withheld the record as too
    /// large to mirror (over 64 KiB: a big collection's; the change log
    /// carries it).
    pub withheld: u64,
    /// Side effects that failed or were refused by the destination.
    pub failed: u64,
    #[serde(flatten)]
    pub shadow: ShadowCounts,
}

impl MirrorCounts {
    pub fn add(&mut self, other: &MirrorCounts) {
        self.dual_writes += other.dual_writes;
        self.copied_on_read += other.copied_on_read;
        self.dropped += other.dropped;
        self.withheld += other.withheld;
        self.failed += other.failed;
        self.shadow.add(&other.shadow);
    }
}

/// Shadow-read comparisons of source and destination records. Every
/// comparison is a match, a lag (the destination holds an older version:
/// expected while it catches up) or a mismatch (the same version with
/// different contents, or a version the source never had).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShadowCounts {
    pub compared: u64,
    pub lagging: u64,
    pub mismatched: u64,
}

impl ShadowCounts {
    pub fn add(&mut self, other: &ShadowCounts) {
        self.compared += other.compared;
        self.lagging += other.lagging;
        self.mismatched += other.mismatched;
    }

    /// Mismatches per comparison (0 with none compared).
    pub fn mismatch_ratio(&self) -> f64 {
        if self.compared == 0 { 0.0 } else { self.mismatched as f64 / self.compared as f64 }
    }
}

pub struct SecondWindow {
    inner: Mutex<Inner>,
}

struct Inner {
    second: u64,
    buckets: Box<[u32; BUCKETS]>,
    count: u64,
    errors: u64,
    max_us: u64,
    last: SecondSummary,
}

impl Default for SecondWindow {
    fn default() -> Self {
        SecondWindow { inner: Mutex::new(Inner { second: 0, buckets: Box::new([0; BUCKETS]), count: 0, errors: 0, max_us: 0, last: SecondSummary::default() }) }
    }
}

impl SecondWindow {
    /// Records one request that took `latency_us`, finished at `now_ms`.
    pub fn record(&self, latency_us: u64, error: bool, now_ms: u64) {
        self.record_n(latency_us, 1, error as u64, now_ms);
    }

    /// Records `n` requests that each took `latency_us` (the ops of one
    /// batch wait for the whole batch), `errors` of which failed.
    pub fn record_n(&self, latency_us: u64, n: u64, errors: u64, now_ms: u64) {
        let mut inner = self.inner.lock();
        inner.rotate(now_ms / 1000);
        let b = bucket_of(latency_us);
        inner.buckets[b] = inner.buckets[b].saturating_add(n.min(u32::MAX as u64) as u32);
        inner.count += n;
        inner.errors += errors;
        inner.max_us = inner.max_us.max(latency_us);
    }

    /// The last complete second before `now_ms`'s second. A second in which
    /// nothing was recorded has count 0.
    pub fn last_second(&self, now_ms: u64) -> SecondSummary {
        let mut inner = self.inner.lock();
        let now_s = now_ms / 1000;
        inner.rotate(now_s);
        if inner.last.second + 1 == now_s { inner.last } else { SecondSummary { second: now_s.saturating_sub(1), ..Default::default() } }
    }
}

impl Inner {
    /// Closes the current second if `now_s` is past it.
    fn rotate(&mut self, now_s: u64) {
        if now_s <= self.second {
            return;
        }
        self.last = SecondSummary {
            second: self.second,
            count: self.count,
            errors: self.errors,
            p50_us: quantile(&self.buckets, self.count, 0.50),
            p99_us: quantile(&self.buckets, self.count, 0.99),
            max_us: self.max_us,
        };
        self.buckets.fill(0);
        (self.count, self.errors, self.max_us) = (0, 0, 0);
        self.second = now_s;
    }
}

fn bucket_of(us: u64) -> usize {
    let us = us.max(1);
    let power = 63 - us.leading_zeros() as usize;
    // The SUB sub-buckets split [2^power, 2^(power+1)) evenly.
    let sub = if power >= SUB_BITS { ((us >> (power - SUB_BITS)) & (SUB as u64 - 1)) as usize } else { ((us << (SUB_BITS - power)) & (SUB as u64 - 1)) as usize };
    (power * SUB + sub).min(BUCKETS - 1)
}

/// The upper bound of bucket `b` (a quantile never under-reports).
fn bucket_upper_us(b: usize) -> u64 {
    let (power, sub) = (b / SUB, (b % SUB) as u64);
    let base = 1u64 << power;
    // Bucket (power, sub) holds [base + ⌊base·sub/SUB⌋, base + ⌈base·(sub+1)/SUB⌉).
    base + (base * (sub + 1)).div_ceil(SUB as u64) - 1
}

fn quantile(buckets: &[u32; BUCKETS], count: u64, q: f64) -> u64 {
    if count == 0 {
        return 0;
    }
    let rank = ((count as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (b, &n) in buckets.iter().enumerate() {
        seen += n as u64;
        if seen >= rank {
            return bucket_upper_us(b);
        }
    }
    bucket_upper_us(BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values_within_a_sixty_fourth() {
        for us in 2..20_000u64 {
            assert!(bucket_of(us) >= bucket_of(us - 1), "buckets grow with the value ({us} µs)");
        }
        for us in (1..20_000).chain([1_000_000, 12_345_678, 50_000_000]) {
            let upper = bucket_upper_us(bucket_of(us));
            assert!(upper >= us, "{us} µs reported as {upper}");
            assert!(upper as f64 <= us as f64 * (1.0 + 1.0 / 64.0) + 1.0, "{us} µs reported as {upper}");
        }
    }

    #[test]
    fn the_last_complete_second_is_reported() {
        let w = SecondWindow::default();
        for i in 0..100u64 {
            w.record(if i < 98 { 1000 } else { 80_000 }, i == 0, 5_000 + i);
        }
        // Still inside second 5: the last complete second (4) is empty.
        assert_eq!(w.last_second(5_900).count, 0);
        let s = w.last_second(6_100);
        assert_eq!((s.second, s.count, s.errors), (5, 100, 1));
        assert!((1000..=1125).contains(&s.p50_us), "{s:?}");
        // 98 of 100 at 1 ms: the 99th is one of the slow ones.
        assert!((80_000..=90_000).contains(&s.p99_us), "{s:?}");
        assert_eq!(s.max_us, 80_000);
        // Two seconds later with nothing recorded, the summary is empty.
        assert_eq!(w.last_second(8_000).count, 0);
    }

    #[test]
    fn batches_weigh_by_their_op_count() {
        let w = SecondWindow::default();
        // 98 of 100 ops fast: p99 is the slow batch of 2.
        w.record_n(100, 98, 0, 1_000);
        w.record_n(50_000, 2, 0, 1_500);
        let s = w.last_second(2_000);
        assert_eq!(s.count, 100);
        assert!((50_000..=56_250).contains(&s.p99_us), "{s:?}");
        // 99 of 100 fast: p99 is fast.
        w.record_n(100, 99, 0, 2_000);
        w.record_n(50_000, 1, 0, 2_000);
        assert!(w.last_second(3_000).p99_us < 120, "{:?}", w.last_second(3_000));
    }
}
