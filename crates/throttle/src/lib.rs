//! Rate control for rebalancing, free of I/O and clocks: every function is
//! handed `now` (`now_ms`, or `now_us` where finer grain matters), so the
//! coordinator's driver and seeded simulations run the same code.
//!
//! # Layout
//!
//! - [`bucket::TokenBucket`] paces one stream of work (a migration's bytes
//!   or keys, or a node's total) at a rate, with no timer: it tells the
//!   caller how long to wait.
//! - [`aimd::Controller`] chooses that rate adaptively from client p99
//!   against a baseline (additive increase, multiplicative decrease).
//! - [`baseline::Baseline`] learns the baseline from per-second p99 samples
//!   and is frozen while a rebalance runs.
//! - [`window::Schedule`] gives the rate and concurrency allowed at a time of
//!   day (per IANA zone, DST-aware).
//! - [`health`] classifies a node's vital signs and gates migrations with
//!   hysteresis: open, paused, or abort.
//! - [`ThrottleConfig`] is everything an operator sets; [`combine`] merges
//!   the static, window and adaptive rates into the one a bucket enforces.
//!
//! A driver, once per second: push the sample into the `Baseline`; classify
//! the node and feed the `Gate`; if open, feed `Controller::observe` with
//! the (frozen) baseline; then `combine(static, schedule.effective(now).rate,
//! adaptive)` and `TokenBucket::set_rate` with the result.

pub mod aimd;
pub mod baseline;
pub mod bucket;
pub mod error;
pub mod health;
pub mod units;
pub mod window;

use serde::{Deserialize, Serialize};

pub use error::ConfigError;

use crate::aimd::AimdConfig;
use crate::baseline::BaselineConfig;
use crate::error::check_rate;
use crate::health::HealthThresholds;
use crate::window::Schedule;

/// Everything an operator sets about rebalancing speed. Every field has a
/// default, so `{}` (JSON) or an empty TOML table is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Static limit per migration; `None`: the adaptive controller (if on)
    /// and the schedule decide.
    pub migration_rate_bytes_per_s: Option<f64>,
    pub migration_rate_keys_per_s: Option<f64>,
    /// Limit on all migrations out of (or into) one node together.
    pub node_rate_bytes_per_s: Option<f64>,
    /// Whether the AIMD controller steers the rate.
    pub adaptive: bool,
    pub aimd: AimdConfig,
    pub baseline: BaselineConfig,
    pub schedule: Schedule,
    pub health: HealthThresholds,
    /// Concurrent moves per node; overrides the rebalance's when set.
    pub moves_per_node: Option<usize>,
    /// Concurrent moves in the cluster; overrides the rebalance's when set
    /// (a window's `max_concurrent` still caps it).
    pub moves_cluster: Option<usize>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            migration_rate_bytes_per_s: None,
            migration_rate_keys_per_s: None,
            node_rate_bytes_per_s: None,
            adaptive: true,
            aimd: AimdConfig::default(),
            baseline: BaselineConfig::default(),
            schedule: Schedule::default(),
            health: HealthThresholds::default(),
            moves_per_node: None,
            moves_cluster: None,
        }
    }
}

impl ThrottleConfig {
    /// Checks every part; the error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_rate(
            "migration_rate_bytes_per_s",
            self.migration_rate_bytes_per_s,
        )?;
        check_rate("migration_rate_keys_per_s", self.migration_rate_keys_per_s)?;
        check_rate("node_rate_bytes_per_s", self.node_rate_bytes_per_s)?;
        self.aimd.validate()?;
        self.baseline.validate()?;
        self.schedule.validate()?;
        self.health.validate()?;
        for (field, v) in [("moves_per_node", self.moves_per_node), ("moves_cluster", self.moves_cluster)] {
            if v == Some(0) {
                return Err(ConfigError::Invalid { field: field.into(), reason: "must be at least 1 (pause the rebalance instead)".into() });
            }
        }
        Ok(())
    }
}

/// The rate to enforce: the smallest of the limits that are set. `None` in
/// an argument means that source imposes no limit; the result is `None`
/// (unlimited) only if none is set. A `Some(0.0)` anywhere pauses.
pub fn combine(
    static_rate: Option<f64>,
    window_rate: Option<f64>,
    adaptive_rate: Option<f64>,
) -> Option<f64> {
    [static_rate, window_rate, adaptive_rate]
        .into_iter()
        .flatten()
        .reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_takes_the_smallest_set_limit() {
        assert_eq!(combine(None, None, None), None);
        assert_eq!(combine(Some(5.0), None, None), Some(5.0));
        assert_eq!(combine(None, Some(7.0), None), Some(7.0));
        assert_eq!(combine(None, None, Some(9.0)), Some(9.0));
        assert_eq!(combine(Some(5.0), Some(3.0), Some(4.0)), Some(3.0));
        assert_eq!(combine(Some(5.0), None, Some(4.0)), Some(4.0));
        assert_eq!(combine(Some(5.0), Some(0.0), Some(4.0)), Some(0.0));
    }

    #[test]
    fn empty_config_is_the_defaults_and_valid() {
        let cfg: ThrottleConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, ThrottleConfig::default());
        assert!(cfg.adaptive);
        assert_eq!(cfg.schedule.default_rate_bytes_per_s, None);
        cfg.validate().unwrap();
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let cfg: ThrottleConfig = serde_json::from_str(
            r#"{
            "migration_rate_bytes_per_s": 1e8,
            "aimd": {"budget_ratio": 1.25},
            "schedule": {
                "windows": [{"start": "02:00", "end": "06:00", "tz": "Europe/Berlin"}],
                "default_rate_bytes_per_s": 0
            },
            "health": {"recover_after_ms": 10000}
        }"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.migration_rate_bytes_per_s, Some(1e8));
        assert_eq!(cfg.aimd.budget_ratio, 1.25);
        assert_eq!(cfg.aimd.decrease_factor, 0.5);
        assert_eq!(cfg.schedule.default_rate_bytes_per_s, Some(0.0));
        assert_eq!(cfg.health.recover_after_ms, 10_000);
        assert_eq!(cfg.health.pause_p99_us, 50_000);
    }

    #[test]
    fn validate_reaches_every_part() {
        let bad_rate = ThrottleConfig {
            node_rate_bytes_per_s: Some(f64::NAN),
            ..Default::default()
        };
        assert!(matches!(
            bad_rate.validate(),
            Err(ConfigError::BadRate { .. })
        ));
        let mut bad_window = ThrottleConfig::default();
        bad_window
            .schedule
            .windows
            .push(serde_json::from_str(r#"{"start": "25:00", "end": "06:00"}"#).unwrap());
        assert!(matches!(
            bad_window.validate(),
            Err(ConfigError::BadTime { .. })
        ));
        let mut bad_aimd = ThrottleConfig::default();
        bad_aimd.aimd.budget_ratio = 0.9;
        assert!(bad_aimd.validate().is_err());
        let mut bad_health = ThrottleConfig::default();
        bad_health.health.pause_disk_free_ratio = 2.0;
        assert!(bad_health.validate().is_err());
        let mut bad_baseline = ThrottleConfig::default();
        bad_baseline.baseline.window_s = 0;
        assert!(bad_baseline.validate().is_err());
    }
}
