//! Adaptive throttling: additive increase, multiplicative decrease (AIMD) of
//! the migration rate, steered by client p99 latency against a baseline.
//!
//! Each sample compares `p99 / baseline` with the disruption budget (the
//! caller passes as `p99` the median of the last `signal_window_s` seconds'
//! p99s, see `AimdConfig::signal_window_s`):
//!
//! - above `budget_ratio` (default 1.10): cut the rate by `decrease_factor`,
//!   at most once per `decrease_cooldown_ms`, because a cut needs time
//!   before its effect shows in the next p99 samples;
//! - below the *raise threshold*: after `increase_after_samples` such samples
//!   in a row, raise the rate by `increase_bytes_per_s`;
//! - in between (the hysteresis band): hold.
//!
//! The raise threshold is `1 + (budget_ratio - 1) * comfort_ratio`: comfort
//! is a fraction of the *headroom* the budget allows over the baseline (with
//! the defaults, raise below 1.08x, cut above 1.10x). It is not
//! `budget_ratio * comfort_ratio` (0.88x): a migration only ever adds latency,
//! so p99 sits at or above the baseline and a threshold below 1.0x would
//! never let the rate grow.
//!
//! Tested behaviour (see `aimd/tests.rs`): against a plant whose p99 grows
//! with the square of the rate and crosses the budget at `r*`, with ±2%
//! noise, the converged rate stays within `[0.4 r*, 1.05 r* +
//! increase_bytes_per_s]` (a sawtooth between about r*/2 and r*), the true
//! p99 is over budget in at most 5% of the seconds (under 1% seen), and a
//! spike is cut on the sample that shows it unless a cut happened less than
//! `decrease_cooldown_ms` before.
//!
//! The rate always stays within `[floor, ceiling]`: progress never stops
//! because of latency alone (pausing is the health gate's and the windows'
//! job).
//!
//! ## Latency that does not respond to the rate
//!
//! Some of what a migration adds to p99 does not depend on its rate: the
//! requests of a moving partition take an extra hop (dual writes, forwards)
//! whatever the copy rate, and the engine work a drop's deletes cause comes
//! later. The first acceptance runs showed the router's p99 at 2–3x the
//! baseline at the floor as at 4 MiB/s. A controller that only compares
//! with the baseline then sits at the floor for the whole rebalance (runs
//! of 4 minutes instead of 1), which is the worst choice for clients: the
//! overhead lasts as long as the migration does.
//!
//! So once the rate has sat at the floor with p99 over budget for
//! `floor_patience_s` seconds, the controller takes that p99 (the signal,
//! itself a median of several seconds) as its *reference* instead of the
//! baseline when it is higher, and says so in its reason: from then on it
//! raises the rate while p99 stays comfortably within budget of what the
//! floor costs, and cuts when the rate makes it worse. If p99 is still over
//! budget of the reference after another `floor_patience_s` at the floor,
//! the reference is taken again. It only ever comes down otherwise: to any
//! lower p99 seen since (the rate-independent part can be no more than
//! that), and back to the baseline once p99 is there, so a reference taken
//! during a transient lasts no longer than the transient (a run took 5x at
//! the start of a rebalance as its reference and then let the rate grow
//! with p99 at 3x). [`Controller::reset_reference`] (the caller: when no
//! migration is in flight any more) goes back to the baseline. Nodes whose
//! p99 is unhealthy are the health gate's to pause; this only decides how
//! fast data moves meanwhile.

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, ensure};
use crate::units::fmt_bytes_per_s;

const MIB: f64 = 1024.0 * 1024.0;

/// Tuning of the [`Controller`]. All defaults are the documented ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AimdConfig {
    /// p99 may be at most this multiple of the baseline (the disruption
    /// budget).
    pub budget_ratio: f64,
    /// Fraction of the headroom `budget_ratio - 1` below which the rate may
    /// grow; see the module docs.
    pub comfort_ratio: f64,
    /// Additive step.
    pub increase_bytes_per_s: f64,
    /// Multiplicative cut, in (0, 1).
    pub decrease_factor: f64,
    pub floor_bytes_per_s: f64,
    pub ceiling_bytes_per_s: f64,
    /// Comfortable samples in a row before each raise.
    pub increase_after_samples: u32,
    /// After a cut, no further cut until this much time has passed.
    pub decrease_cooldown_ms: u64,
    /// The rate before any sample.
    pub start_bytes_per_s: f64,
    /// The p99 the controller compares with the baseline is the median of
    /// the per-second p99s of this many latest seconds: the statistic the
    /// baseline is (over its own window), and far steadier than one
    /// second's p99, which swings ±50% with no migration running.
    pub signal_window_s: u64,
    /// Seconds the rate may sit at the floor with p99 over budget before
    /// the controller concludes the rate is not what raises p99 (see
    /// "Latency that does not respond to the rate" in the module docs) and
    /// steers against the p99 at the floor instead of the baseline. 0:
    /// never; the rate then stays at the floor for as long as p99 is over
    /// budget.
    pub floor_patience_s: u64,
    /// Experimental, off by default: the p99 the baseline learns and the
    /// controller steers by is each router's p99 *plus* its runtime's
    /// scheduling-delay p99 (the time a ready connection waits for a
    /// worker, which the router's own p99, measured from parse to reply,
    /// leaves out). On the 2-core test machine that delay was 2.4 ms
    /// against a 0.38 ms router p99 and rose more with migration work;
    /// clients feel both. A sum of two p99s over-estimates the p99 of the
    /// sum, the same way before and during a rebalance.
    pub signal_includes_sched: bool,
    /// Experimental, off by default: the p99 the baseline learns and the
    /// controller steers by is each router's p99 measured from when the
    /// kernel received a request's bytes (its `arrival` report) instead of
    /// from decode: the wait in the socket for a worker is in it, which
    /// clients feel and the router's own p99 leaves out. Takes precedence
    /// over `signal_includes_sched`; a router that does not report it
    /// counts with its own p99.
    pub signal_from_arrival: bool,
}

impl Default for AimdConfig {
    fn default() -> Self {
        Self {
            budget_ratio: 1.10,
            comfort_ratio: 0.8,
            increase_bytes_per_s: MIB,
            decrease_factor: 0.5,
            floor_bytes_per_s: 256.0 * 1024.0,
            ceiling_bytes_per_s: 64.0 * MIB,
            increase_after_samples: 2,
            decrease_cooldown_ms: 2000,
            start_bytes_per_s: 4.0 * MIB,
            signal_window_s: 5,
            floor_patience_s: 10,
            signal_includes_sched: false,
            signal_from_arrival: false,
        }
    }
}

impl AimdConfig {
    /// p99/baseline below which samples count as comfortable.
    pub fn raise_below_ratio(&self) -> f64 {
        1.0 + (self.budget_ratio - 1.0) * self.comfort_ratio
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let finite = |x: f64| x.is_finite();
        ensure(
            finite(self.budget_ratio) && self.budget_ratio > 1.0,
            "aimd.budget_ratio",
            "must be > 1.0 (1.10 allows p99 10% over baseline)",
        )?;
        ensure(
            self.comfort_ratio > 0.0 && self.comfort_ratio <= 1.0,
            "aimd.comfort_ratio",
            "must be in (0, 1]",
        )?;
        ensure(
            finite(self.increase_bytes_per_s) && self.increase_bytes_per_s > 0.0,
            "aimd.increase_bytes_per_s",
            "must be > 0",
        )?;
        ensure(
            self.decrease_factor > 0.0 && self.decrease_factor < 1.0,
            "aimd.decrease_factor",
            "must be in (0, 1)",
        )?;
        ensure(
            finite(self.floor_bytes_per_s) && self.floor_bytes_per_s > 0.0,
            "aimd.floor_bytes_per_s",
            "must be > 0 so a migration always progresses",
        )?;
        ensure(
            finite(self.ceiling_bytes_per_s) && self.ceiling_bytes_per_s >= self.floor_bytes_per_s,
            "aimd.ceiling_bytes_per_s",
            "must be >= floor_bytes_per_s",
        )?;
        ensure(
            (1..=60).contains(&self.signal_window_s),
            "aimd.signal_window_s",
            "must be in 1..=60",
        )?;
        ensure(
            self.floor_patience_s <= 3600,
            "aimd.floor_patience_s",
            "must be at most 3600 (0 turns it off)",
        )?;
        ensure(
            self.increase_after_samples >= 1,
            "aimd.increase_after_samples",
            "must be >= 1",
        )?;
        ensure(
            finite(self.start_bytes_per_s),
            "aimd.start_bytes_per_s",
            "must be finite",
        )
    }
}

/// Which way a [`Decision`] moved the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adjust {
    Increase,
    Decrease,
    Hold,
}

/// The outcome of one sample: the rate to use from now on and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub rate_bytes_per_s: f64,
    pub action: Adjust,
    /// For operators, e.g. "cut: p99 1.18x baseline (budget 1.10x)".
    pub reason: String,
}

/// The AIMD state for one throttled stream (a node's outgoing migrations).
#[derive(Debug, Clone)]
pub struct Controller {
    cfg: AimdConfig,
    rate_bytes_per_s: f64,
    /// Comfortable samples in a row since the last raise or discomfort.
    comfortable: u32,
    last_cut_ms: Option<u64>,
    last_change_ms: u64,
    /// The p99 at the floor the controller steers against instead of the
    /// baseline (see the module docs), once taken.
    reference_us: Option<u64>,
    /// Since when the rate has been at the floor with p99 over budget.
    over_at_floor_since_ms: Option<u64>,
}

impl Controller {
    /// Starts at `start_bytes_per_s` clamped into `[floor, ceiling]`.
    ///
    /// # Panics
    /// If `cfg` does not validate (a programmer error: configs are validated
    /// when loaded).
    pub fn new(cfg: AimdConfig, now_ms: u64) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("invalid AimdConfig: {e}");
        }
        let rate = cfg
            .start_bytes_per_s
            .clamp(cfg.floor_bytes_per_s, cfg.ceiling_bytes_per_s);
        Self {
            cfg,
            rate_bytes_per_s: rate,
            comfortable: 0,
            last_cut_ms: None,
            last_change_ms: now_ms,
            reference_us: None,
            over_at_floor_since_ms: None,
        }
    }

    /// Feeds one latency sample. `baseline_us == 0` means no baseline is
    /// known yet (see [`crate::baseline::Baseline::estimate`]); the rate is
    /// then held.
    pub fn observe(&mut self, p99_us: u64, baseline_us: u64, now_ms: u64) -> Decision {
        if baseline_us == 0 {
            self.comfortable = 0;
            return self.hold("hold: no baseline yet".to_owned());
        }
        let reference_us = self.reference_us.map_or(baseline_us, |r| r.max(baseline_us));
        let ratio = p99_us as f64 / reference_us as f64;
        if let Some(decision) = self.watch_floor(ratio, p99_us, baseline_us, now_ms) {
            return decision;
        }
        let decision = if ratio > self.cfg.budget_ratio {
            self.comfortable = 0;
            self.over_budget(ratio, now_ms)
        } else if ratio < self.cfg.raise_below_ratio() {
            self.comfortable += 1;
            self.comfortable_sample(ratio, now_ms)
        } else {
            self.comfortable = 0;
            self.hold(format!(
                "hold: p99 {ratio:.2}x {}, inside hysteresis band",
                self.against()
            ))
        };
        self.tighten_reference(p99_us, baseline_us);
        debug_assert!(self.rate_bytes_per_s >= self.cfg.floor_bytes_per_s);
        debug_assert!(self.rate_bytes_per_s <= self.cfg.ceiling_bytes_per_s);
        decision
    }

    /// Nothing is being throttled: latency now says nothing about the
    /// migration rate (a client p99 that moves while no data moves is the
    /// workload's own noise), so hold the rate and start counting
    /// comfortable samples afresh when migrations resume.
    pub fn idle(&mut self) -> Decision {
        self.comfortable = 0;
        self.hold("hold: nothing moving".to_owned())
    }

    /// Goes back to steering against the baseline (the caller: no
    /// migration is in flight any more).
    pub fn reset_reference(&mut self) {
        self.reference_us = None;
        self.over_at_floor_since_ms = None;
    }

    /// The p99 at the floor steered against instead of the baseline, if
    /// taken (see the module docs).
    pub fn reference_us(&self) -> Option<u64> {
        self.reference_us
    }

    /// Takes the p99 at the floor as the reference once the rate has sat
    /// there over budget for `floor_patience_s`; returns the decision of
    /// this sample when it does.
    fn watch_floor(&mut self, ratio: f64, p99_us: u64, baseline_us: u64, now_ms: u64) -> Option<Decision> {
        let at_floor = self.rate_bytes_per_s <= self.cfg.floor_bytes_per_s;
        if !at_floor || ratio <= self.cfg.budget_ratio || self.cfg.floor_patience_s == 0 {
            self.over_at_floor_since_ms = None;
            return None;
        }
        let since = *self.over_at_floor_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) < self.cfg.floor_patience_s * 1000 {
            return None;
        }
        self.reference_us = Some(p99_us);
        self.over_at_floor_since_ms = None;
        self.comfortable = 0;
        Some(self.hold(format!(
            "hold: p99 at the floor {} µs ({:.2}x baseline) for {} s does not come down with the rate; steering against it",
            p99_us,
            p99_us as f64 / baseline_us as f64,
            self.cfg.floor_patience_s
        )))
    }

    /// The reference only ever comes down: to a lower p99 seen since it
    /// was taken, whatever the rate then (the overhead the rate does not
    /// cause can be no more than that), and back to the baseline once p99
    /// reaches it. A reference taken during a transient (a compaction, the
    /// first seconds of a rebalance) so lasts no longer than the transient.
    fn tighten_reference(&mut self, p99_us: u64, baseline_us: u64) {
        if let Some(r) = self.reference_us
            && p99_us < r
        {
            self.reference_us = (p99_us > baseline_us).then_some(p99_us);
        }
    }

    /// The rate currently in force.
    pub fn rate(&self) -> f64 {
        self.rate_bytes_per_s
    }

    /// When the last cut happened, if any.
    pub fn last_cut_ms(&self) -> Option<u64> {
        self.last_cut_ms
    }

    /// When the rate last changed (or the controller was created).
    pub fn last_change_ms(&self) -> u64 {
        self.last_change_ms
    }

    pub fn config(&self) -> &AimdConfig {
        &self.cfg
    }

    fn over_budget(&mut self, ratio: f64, now_ms: u64) -> Decision {
        let budget = self.cfg.budget_ratio;
        if let Some(cut_ms) = self.last_cut_ms {
            let since_ms = now_ms.saturating_sub(cut_ms);
            if since_ms < self.cfg.decrease_cooldown_ms {
                return self.hold(format!(
                    "hold: p99 {ratio:.2}x {} over budget {budget:.2}x, last cut {since_ms} ms ago (cooldown {} ms)",
                    self.against(),
                    self.cfg.decrease_cooldown_ms
                ));
            }
        }
        if self.rate_bytes_per_s <= self.cfg.floor_bytes_per_s {
            return self.hold(format!(
                "hold: p99 {ratio:.2}x {} over budget {budget:.2}x, already at floor {}",
                self.against(),
                fmt_bytes_per_s(self.cfg.floor_bytes_per_s)
            ));
        }
        let cut =
            (self.rate_bytes_per_s * self.cfg.decrease_factor).max(self.cfg.floor_bytes_per_s);
        self.last_cut_ms = Some(now_ms);
        self.change(
            cut,
            Adjust::Decrease,
            now_ms,
            format!("cut: p99 {ratio:.2}x {} (budget {budget:.2}x)", self.against()),
        )
    }

    fn comfortable_sample(&mut self, ratio: f64, now_ms: u64) -> Decision {
        let needed = self.cfg.increase_after_samples;
        if self.comfortable < needed {
            return self.hold(format!(
                "hold: p99 {ratio:.2}x {}, comfortable {}/{needed} samples",
                self.against(),
                self.comfortable
            ));
        }
        self.comfortable = 0;
        if self.rate_bytes_per_s >= self.cfg.ceiling_bytes_per_s {
            return self.hold(format!(
                "hold: p99 {ratio:.2}x {}, already at ceiling {}",
                self.against(),
                fmt_bytes_per_s(self.cfg.ceiling_bytes_per_s)
            ));
        }
        let raised = (self.rate_bytes_per_s + self.cfg.increase_bytes_per_s)
            .min(self.cfg.ceiling_bytes_per_s);
        self.change(
            raised,
            Adjust::Increase,
            now_ms,
            format!("raise: p99 {ratio:.2}x {}", self.against()),
        )
    }

    fn change(&mut self, rate: f64, action: Adjust, now_ms: u64, reason: String) -> Decision {
        self.rate_bytes_per_s = rate;
        self.last_change_ms = now_ms;
        Decision {
            rate_bytes_per_s: rate,
            action,
            reason,
        }
    }

    /// What ratios are relative to, for reasons.
    fn against(&self) -> &'static str {
        if self.reference_us.is_some() { "floor p99" } else { "baseline" }
    }

    fn hold(&self, reason: String) -> Decision {
        Decision {
            rate_bytes_per_s: self.rate_bytes_per_s,
            action: Adjust::Hold,
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
