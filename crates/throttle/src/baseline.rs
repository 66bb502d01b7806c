//! The automatic latency baseline: what client p99 is when no rebalance is
//! running, learned from per-second samples.
//!
//! The estimate is the median of the recent samples, so one slow second does
//! not move it. When a rebalance starts the baseline is frozen: the samples
//! taken during it carry the rebalance's own load, and letting them in would
//! let the baseline creep up towards the latency the budget is meant to cap.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, ensure};

/// Tuning of [`Baseline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// The estimate uses samples of the last this many seconds.
    pub window_s: u64,
    /// Fewer samples in the window than this: no estimate.
    pub min_samples: usize,
    /// A second with fewer ops than this has a meaningless p99; ignored.
    pub min_ops: u64,
    /// [`Baseline::is_steady`] looks at this many latest samples…
    pub steady_samples: usize,
    /// …and calls them steady if, without the highest, max/min is below this.
    pub steady_ratio_max: f64,
    /// Ring size; older samples are dropped.
    pub capacity: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            window_s: 10,
            min_samples: 5,
            min_ops: 50,
            steady_samples: 5,
            steady_ratio_max: 1.5,
            capacity: 120,
        }
    }
}

impl BaselineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.window_s >= 1, "baseline.window_s", "must be >= 1")?;
        ensure(
            self.min_samples >= 1,
            "baseline.min_samples",
            "must be >= 1",
        )?;
        ensure(
            self.steady_samples >= 2,
            "baseline.steady_samples",
            "must be >= 2",
        )?;
        ensure(
            self.steady_ratio_max.is_finite() && self.steady_ratio_max >= 1.0,
            "baseline.steady_ratio_max",
            "must be >= 1.0",
        )?;
        ensure(
            self.capacity >= self.min_samples.max(self.steady_samples),
            "baseline.capacity",
            "must hold min_samples and steady_samples",
        )?;
        ensure(
            self.capacity <= 100_000,
            "baseline.capacity",
            "must be <= 100000",
        )
    }
}

/// A bounded ring of per-second p99 samples, plus an optional frozen value.
#[derive(Debug, Clone)]
pub struct Baseline {
    cfg: BaselineConfig,
    /// `(at_ms, p99_us)`, oldest first, timestamps non-decreasing.
    samples: VecDeque<(u64, u64)>,
    frozen_us: Option<u64>,
    /// The value frozen last, kept across `unfreeze`.
    last_frozen_us: Option<u64>,
}

impl Baseline {
    /// # Panics
    /// If `cfg` does not validate.
    pub fn new(cfg: BaselineConfig) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("invalid BaselineConfig: {e}");
        }
        let samples = VecDeque::with_capacity(cfg.capacity);
        Self {
            cfg,
            samples,
            frozen_us: None,
            last_frozen_us: None,
        }
    }

    /// Records one second's p99. Ignored if the second had fewer than
    /// `min_ops` ops, if it is older than the latest sample, or while frozen.
    pub fn push(&mut self, p99_us: u64, ops: u64, now_ms: u64) {
        let out_of_order = self.samples.back().is_some_and(|&(at, _)| now_ms < at);
        if ops < self.cfg.min_ops || out_of_order || self.frozen_us.is_some() {
            return;
        }
        if self.samples.len() == self.cfg.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((now_ms, p99_us));
    }

    /// The frozen value if frozen; otherwise the median p99 of the samples
    /// taken in the last `window_s` seconds, `None` if fewer than
    /// `min_samples` of them.
    pub fn estimate(&self, now_ms: u64) -> Option<u64> {
        if let Some(frozen) = self.frozen_us {
            return Some(frozen);
        }
        let mut recent: Vec<u64> = self.recent(now_ms).collect();
        if recent.len() < self.cfg.min_samples {
            return None;
        }
        recent.sort_unstable();
        let mid = recent.len() / 2;
        Some(if recent.len() % 2 == 1 {
            recent[mid]
        } else {
            (recent[mid - 1] + recent[mid]) / 2
        })
    }

    /// Whether latency is steady enough to take a baseline from: the latest
    /// `steady_samples` samples of the window, with the highest dropped (one
    /// outlier second is tolerated), have max/min below `steady_ratio_max`.
    /// False while there are not that many samples in the window.
    pub fn is_steady(&self, now_ms: u64) -> bool {
        let recent: Vec<u64> = self.recent(now_ms).collect();
        let n = self.cfg.steady_samples;
        if recent.len() < n {
            return false;
        }
        let mut last = recent[recent.len() - n..].to_vec();
        last.sort_unstable();
        last.pop();
        // A 0 µs p99 would make any ratio infinite; 1 µs is the resolution.
        let (min, max) = (last[0].max(1), last[last.len() - 1].max(1));
        (max as f64 / min as f64) < self.cfg.steady_ratio_max
    }

    /// Fixes the baseline at the current estimate (for the duration of a
    /// rebalance) and returns it. Freezing again keeps the first value.
    ///
    /// Without a current estimate (the window's samples went stale while an
    /// earlier move kept the baseline frozen, and a second with nothing
    /// moving unfroze it) it freezes the previous frozen value again: an
    /// old baseline beats none, since without one the controller can only
    /// hold the rate, possibly at its floor, for as long as migrations keep
    /// running, and nothing is learned while they do. With neither, nothing
    /// is frozen and `None` is returned.
    pub fn freeze(&mut self, now_ms: u64) -> Option<u64> {
        if self.frozen_us.is_none() {
            self.frozen_us = self.estimate(now_ms).or(self.last_frozen_us);
            self.last_frozen_us = self.frozen_us;
        }
        self.frozen_us
    }

    /// The frozen value, if frozen.
    pub fn frozen(&self) -> Option<u64> {
        self.frozen_us
    }

    /// Resumes learning. Samples from before the freeze age out of the window
    /// as usual.
    pub fn unfreeze(&mut self) {
        self.frozen_us = None;
    }

    fn recent(&self, now_ms: u64) -> impl Iterator<Item = u64> + '_ {
        let from_ms = now_ms.saturating_sub(self.cfg.window_s * 1000);
        self.samples
            .iter()
            .filter(move |&&(at, _)| at > from_ms && at <= now_ms)
            .map(|&(_, p99)| p99)
    }
}

#[cfg(test)]
mod tests;
