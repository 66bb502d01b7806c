//! Node health for rebalancing: classify one node's sample against
//! thresholds ([`classify`]), then turn the stream of levels into a decision
//! with hysteresis ([`Gate`]).
//!
//! Degraded pauses rebalancing; Critical aborts the migrations in flight.
//! Leaving a pause needs the node healthy without a break for
//! `recover_after_ms`, so a node flapping around a threshold does not start
//! and stop migrations every second.

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, ensure};

/// Limits past which a node is Degraded (pause) or Critical (abort).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthThresholds {
    pub pause_heartbeat_age_ms: u64,
    /// A node whose p99 is over this...
    pub pause_p99_us: u64,
    /// ... and over this many times its usual p99
    /// (`NodeSample::usual_p99_us`) is degraded: a workload whose own p99
    /// is over `pause_p99_us` (writes to big collections: 50 ms at one
    /// client) paused every migration of its nodes for as long as it ran,
    /// though nothing had changed on them. 0: the absolute limit alone.
    pub pause_p99_ratio: f64,
    /// errors / ops.
    pub pause_error_rate: f64,
    /// free / total disk.
    pub pause_disk_free_ratio: f64,
    pub pause_log_lag_entries: u64,
    /// Storage-engine debt: level-0 tables of any keyspace (the engine
    /// slows writes down at 20 and stops them at 30), and full memtables
    /// waiting for a flush (it stops writes at 4). Migration writes add to
    /// both, so they pause before clients would feel the engine's brakes,
    /// as CockroachDB's admission control holds snapshots on L0 overload.
    pub pause_l0_tables: u32,
    pub pause_sealed_memtables: u32,
    /// Ops the node refused `OVERLOADED` (could not start them within
    /// their deadline) since the previous sample, about a second: past
    /// this the node is out of headroom, and migration work on it pauses
    /// until it has had none for `recover_after_ms`. 0: any shed op.
    pub pause_shed_ops: u64,
    pub critical_disk_free_ratio: f64,
    pub critical_heartbeat_age_ms: u64,
    /// Healthy this long without a break before a pause ends.
    pub recover_after_ms: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            pause_heartbeat_age_ms: 3000,
            pause_p99_us: 50_000,
            pause_p99_ratio: 2.0,
            pause_error_rate: 0.01,
            pause_disk_free_ratio: 0.10,
            pause_log_lag_entries: 200_000,
            pause_l0_tables: 12,
            pause_sealed_memtables: 2,
            pause_shed_ops: 0,
            critical_disk_free_ratio: 0.02,
            critical_heartbeat_age_ms: 30_000,
            recover_after_ms: 5000,
        }
    }
}

impl HealthThresholds {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ratio = |x: f64| (0.0..=1.0).contains(&x);
        ensure(
            self.pause_p99_ratio.is_finite() && self.pause_p99_ratio >= 0.0,
            "health.pause_p99_ratio",
            "must be >= 0 (0: pause_p99_us alone)",
        )?;
        ensure(
            ratio(self.pause_error_rate),
            "health.pause_error_rate",
            "must be in [0, 1]",
        )?;
        ensure(
            ratio(self.pause_disk_free_ratio),
            "health.pause_disk_free_ratio",
            "must be in [0, 1]",
        )?;
        ensure(
            ratio(self.critical_disk_free_ratio)
                && self.critical_disk_free_ratio <= self.pause_disk_free_ratio,
            "health.critical_disk_free_ratio",
            "must be in [0, pause_disk_free_ratio]",
        )?;
        ensure(
            self.critical_heartbeat_age_ms >= self.pause_heartbeat_age_ms,
            "health.critical_heartbeat_age_ms",
            "must be >= pause_heartbeat_age_ms",
        )
    }
}

/// One node's vital signs over the last sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSample {
    /// Age of the last heartbeat; `None`: the node has never heartbeated (or
    /// its lease is gone).
    pub heartbeat_age_ms: Option<u64>,
    pub p99_us: u64,
    /// The node's usual p99 ([`UsualP99`]); None until enough is known.
    #[serde(default)]
    pub usual_p99_us: Option<u64>,
    pub ops: u64,
    /// Failed ops, counted among `ops`.
    pub errors: u64,
    pub disk_free_bytes: u64,
    /// 0: not reported, which pauses (unknown free space is not safe).
    pub disk_total_bytes: u64,
    pub log_lag_entries: u64,
    /// The node's storage-engine debt (see `HealthThresholds`).
    #[serde(default)]
    pub l0_tables: u32,
    #[serde(default)]
    pub sealed_memtables: u32,
    /// Ops refused `OVERLOADED` over the interval (not counted in `errors`:
    /// they were not executed, and routers retry them).
    #[serde(default)]
    pub shed_ops: u64,
}

/// A node's health; reasons are for operators, e.g. "p99 82.1 ms > 50.0 ms".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Healthy,
    Degraded(Vec<String>),
    /// Reasons list the critical findings first, then any degraded ones.
    Critical(Vec<String>),
}

/// Classifies one sample; every threshold crossed adds a reason.
pub fn classify(s: &NodeSample, t: &HealthThresholds) -> Level {
    let (mut critical, mut degraded) = (Vec::new(), Vec::new());
    heartbeat(s, t, &mut critical, &mut degraded);
    disk(s, t, &mut critical, &mut degraded);
    if s.p99_us > t.pause_p99_us {
        match s.usual_p99_us.filter(|_| t.pause_p99_ratio > 0.0) {
            // Over the limit, but as the node usually is: nothing changed.
            Some(usual) if s.p99_us as f64 <= t.pause_p99_ratio * usual as f64 => {}
            Some(usual) => degraded.push(format!(
                "p99 {} > {} and > {}x its usual {}",
                fmt_ms(s.p99_us),
                fmt_ms(t.pause_p99_us),
                t.pause_p99_ratio,
                fmt_ms(usual)
            )),
            None => degraded.push(format!(
                "p99 {} > {}",
                fmt_ms(s.p99_us),
                fmt_ms(t.pause_p99_us)
            )),
        }
    }
    let error_rate = error_rate(s);
    if error_rate > t.pause_error_rate {
        degraded.push(format!(
            "error rate {:.2}% > {:.2}%",
            error_rate * 100.0,
            t.pause_error_rate * 100.0
        ));
    }
    if s.log_lag_entries > t.pause_log_lag_entries {
        degraded.push(format!(
            "log lag {} entries > {}",
            s.log_lag_entries, t.pause_log_lag_entries
        ));
    }
    engine(s, t, &mut degraded);
    if !critical.is_empty() {
        critical.extend(degraded);
        Level::Critical(critical)
    } else if !degraded.is_empty() {
        Level::Degraded(degraded)
    } else {
        Level::Healthy
    }
}

/// A node's usual p99: the median of its last [`UsualP99::WINDOW`] samples
/// that served ops, known once it has [`UsualP99::KNOWN_AFTER`] of them.
/// A median, so a migration's own spikes (which pause it, and end) do not
/// move it; a node slowed for longer than half the window has a new
/// usual, and migrations go on unless they double it again. Until it is
/// known (a young cluster) the absolute limit applies alone.
#[derive(Debug, Clone, Default)]
pub struct UsualP99 {
    samples: std::collections::VecDeque<u64>,
}

impl UsualP99 {
    /// Samples kept: five minutes of the coordinator's one-second ticks.
    pub const WINDOW: usize = 300;
    /// Samples needed before the median is trusted.
    pub const KNOWN_AFTER: usize = 60;

    /// Adds one sample (ignored when the node served nothing: no p99).
    pub fn observe(&mut self, p99_us: u64, ops: u64) {
        if ops == 0 {
            return;
        }
        if self.samples.len() == Self::WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(p99_us);
    }

    pub fn get(&self) -> Option<u64> {
        if self.samples.len() < Self::KNOWN_AFTER {
            return None;
        }
        let mut sorted: Vec<u64> = self.samples.iter().copied().collect();
        let mid = sorted.len() / 2;
        Some(*sorted.select_nth_unstable(mid).1)
    }
}

/// What rebalancing involving the node may do now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateState {
    Open,
    /// Start nothing new and hold migrations in flight.
    Paused {
        reasons: Vec<String>,
        since_ms: u64,
    },
    /// Abort migrations in flight.
    Abort {
        reasons: Vec<String>,
    },
}

/// Hysteresis over [`Level`]s of one node. Starts open: a node seen healthy
/// on its first sample may be used at once.
#[derive(Debug, Clone)]
pub struct Gate {
    recover_after_ms: u64,
    state: GateState,
    /// While paused: when the current unbroken healthy run began.
    healthy_since_ms: Option<u64>,
}

impl Gate {
    pub fn new(recover_after_ms: u64) -> Self {
        Self {
            recover_after_ms,
            state: GateState::Open,
            healthy_since_ms: None,
        }
    }

    /// Feeds one classification. After an Abort the gate is paused (not open)
    /// until the node has recovered like after any pause.
    pub fn observe(&mut self, level: &Level, now_ms: u64) -> GateState {
        self.state = match level {
            Level::Critical(reasons) => {
                self.healthy_since_ms = None;
                GateState::Abort {
                    reasons: reasons.clone(),
                }
            }
            Level::Degraded(reasons) => {
                self.healthy_since_ms = None;
                GateState::Paused {
                    reasons: reasons.clone(),
                    since_ms: self.paused_since(now_ms),
                }
            }
            Level::Healthy => self.healthy(now_ms),
        };
        self.state.clone()
    }

    pub fn state(&self) -> &GateState {
        &self.state
    }

    fn healthy(&mut self, now_ms: u64) -> GateState {
        let (reasons, since_ms) = match &self.state {
            GateState::Open => return GateState::Open,
            GateState::Paused { reasons, since_ms } => (reasons.clone(), *since_ms),
            GateState::Abort { reasons } => (reasons.clone(), now_ms),
        };
        let healthy_since = *self.healthy_since_ms.get_or_insert(now_ms);
        let healthy_ms = now_ms.saturating_sub(healthy_since);
        if healthy_ms >= self.recover_after_ms {
            self.healthy_since_ms = None;
            return GateState::Open;
        }
        // Keep what caused the pause, without repeating the progress line.
        let mut reasons: Vec<String> = reasons
            .into_iter()
            .filter(|r| !r.starts_with("recovering:"))
            .collect();
        reasons.push(format!(
            "recovering: healthy for {healthy_ms} ms of {} ms",
            self.recover_after_ms
        ));
        GateState::Paused { reasons, since_ms }
    }

    fn paused_since(&self, now_ms: u64) -> u64 {
        match self.state {
            GateState::Paused { since_ms, .. } => since_ms,
            _ => now_ms,
        }
    }
}

fn heartbeat(
    s: &NodeSample,
    t: &HealthThresholds,
    critical: &mut Vec<String>,
    degraded: &mut Vec<String>,
) {
    match s.heartbeat_age_ms {
        None => critical.push("no heartbeat".to_owned()),
        Some(age) if age > t.critical_heartbeat_age_ms => critical.push(format!(
            "heartbeat {} old > {}",
            fmt_s(age),
            fmt_s(t.critical_heartbeat_age_ms)
        )),
        Some(age) if age > t.pause_heartbeat_age_ms => degraded.push(format!(
            "heartbeat {} old > {}",
            fmt_s(age),
            fmt_s(t.pause_heartbeat_age_ms)
        )),
        Some(_) => {}
    }
}

fn disk(
    s: &NodeSample,
    t: &HealthThresholds,
    critical: &mut Vec<String>,
    degraded: &mut Vec<String>,
) {
    if s.disk_total_bytes == 0 {
        degraded.push("disk size not reported".to_owned());
        return;
    }
    let free = s.disk_free_bytes as f64 / s.disk_total_bytes as f64;
    let line = |limit: f64| format!("disk {:.1}% free < {:.1}%", free * 100.0, limit * 100.0);
    if free < t.critical_disk_free_ratio {
        critical.push(line(t.critical_disk_free_ratio));
    } else if free < t.pause_disk_free_ratio {
        degraded.push(line(t.pause_disk_free_ratio));
    }
}

fn engine(s: &NodeSample, t: &HealthThresholds, degraded: &mut Vec<String>) {
    if s.l0_tables > t.pause_l0_tables {
        degraded.push(format!("{} level-0 tables > {} (compaction behind)", s.l0_tables, t.pause_l0_tables));
    }
    if s.sealed_memtables > t.pause_sealed_memtables {
        degraded.push(format!("{} memtables waiting for flush > {}", s.sealed_memtables, t.pause_sealed_memtables));
    }
    if s.shed_ops > t.pause_shed_ops {
        degraded.push(format!("{} ops shed (overloaded: not started within their deadline) > {}", s.shed_ops, t.pause_shed_ops));
    }
}

fn error_rate(s: &NodeSample) -> f64 {
    match (s.errors, s.ops) {
        (0, _) => 0.0,
        // Errors without ops means every op that was counted failed.
        (_, 0) => 1.0,
        (e, o) => (e as f64 / o as f64).min(1.0),
    }
}

fn fmt_ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

fn fmt_s(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests;
