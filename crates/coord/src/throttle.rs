//! The leader's throttle: keeps migration traffic inside the disruption
//! budget.
//!
//! The decisions are pure and live in `evenkeel_throttle` (token buckets,
//! the AIMD controller, time windows, health gates, the baseline); this
//! module feeds them the cluster's signals once a second and hands the
//! results to the drivers:
//!
//! - **Signals.** Foreground p99 as clients feel it: the worst router's last
//!   complete second (`/evenkeel/routers/*`), or, with no router reporting,
//!   the worst node's. Node health from the stats poll (heartbeat, p99,
//!   error rate, free disk) and change-log lag from the migration records.
//! - **Baseline.** While no migration is in flight (pending, moving data,
//!   baking or cleaning up; paused ones do not count) the per-second p99
//!   samples feed [`Baseline`]; when one starts, the estimate is frozen and
//!   every later sample is compared with it, until the last one ends.
//! - **Rate.** The per-migration rate is the smallest of the operator's
//!   static limit, the active time window's rate, and the adaptive
//!   controller's cluster-wide rate split over the migrations that move
//!   data (in a data-moving phase at the tick, or paced since the last one:
//!   a small partition copies between two ticks). Drivers call
//!   [`Throttle::pace`] after each chunk; the rate of every bucket is reset
//!   each tick, so a change takes effect within a second.
//! - **Health gating.** A node whose gate is closed pauses the migrations it
//!   takes part in (reason `health: …`); they resume once it has recovered.
//!   A critical node fails migrations that have not cut over (the source
//!   keeps serving).
//!
//! The operator's settings live at `/evenkeel/throttle` and are re-read
//! every tick, so `evenkeel throttle set` works without restarts.

use crate::api::{ClusterStatus, NodeGateStatus, ThrottleStatus};
use crate::migration::machine::{Event, Migration, Phase};
use evenkeel_meta::MetaStore;
use evenkeel_throttle::health::{self, GateState, NodeSample};
use evenkeel_throttle::ThrottleConfig;
use evenkeel_throttle::aimd::Controller;
use evenkeel_throttle::baseline::{Baseline, BaselineConfig};
use evenkeel_throttle::bucket::TokenBucket;
use evenkeel_throttle::health::Gate;
use evenkeel_types::latency::RouterReport;
use evenkeel_types::{NodeId, keys, unix_ms};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What the operator sets, stored at `/evenkeel/throttle`.
pub type Settings = ThrottleConfig;

/// A rebalance's `limits` as `settings` override them, the cluster-wide
/// one capped by a time window's `max_concurrent`.
pub fn concurrency_under(settings: &Settings, window_max: Option<usize>, limits: crate::rebalance::Limits) -> crate::rebalance::Limits {
    let per_node = settings.moves_per_node.unwrap_or(limits.moves_per_node);
    let cluster = settings.moves_cluster.unwrap_or(limits.moves_cluster);
    crate::rebalance::Limits { moves_per_node: per_node, moves_cluster: window_max.map_or(cluster, |w| cluster.min(w)) }
}

/// Reports older than this are ignored (the router stopped or lags).
const REPORT_MAX_AGE_MS: u64 = 3_000;
/// Fewer foreground requests than this in a second is an idle cluster: it
/// cannot be disturbed, so the controller treats it as comfortable.
const IDLE_OPS_MAX: u64 = 50;
/// Longest one sleep in [`Throttle::pace`], so new rates apply quickly.
const PACE_SLEEP_MAX: Duration = Duration::from_millis(250);
/// Work a bucket lets through at once after an idle spell: about one copy
/// chunk, so pacing starts with the second chunk.
const BURST_BYTES: f64 = 256.0 * 1024.0;
const BURST_KEYS: f64 = 500.0;

pub struct Throttle {
    inner: Mutex<Runtime>,
}

struct Runtime {
    settings: Settings,
    controller: Controller,
    baseline: Baseline,
    /// The controller's signal: the median of the latest
    /// `aimd.signal_window_s` seconds' p99s (a [`Baseline`] never frozen).
    signal: Baseline,
    gates: HashMap<NodeId, Gate>,
    /// Per migration: bytes and keys.
    migrations: HashMap<String, (TokenBucket, TokenBucket)>,
    /// Per migration in catch-up: the source's log head at its last page,
    /// and the entries that arrived since it began not yet credited (see
    /// [`Throttle::pace_catch_up`]).
    log_heads: HashMap<String, (u64, u64)>,
    /// Migrations that booked copy or catch-up work since the last tick.
    /// A small partition copies in a fraction of a second, so a rebalance's
    /// moves can all begin and end between two ticks: judged only by the
    /// phases seen at each tick, nothing ever moved, and the controller
    /// held its rate while p99 went over budget (measured: 32 moves of
    /// 1 MB, each copied in 175 ms; every tick of the rebalance said
    /// "hold: nothing moving" while the signal read 1.17x).
    paced: HashSet<String>,
    nodes: HashMap<NodeId, TokenBucket>,
    per_migration_bytes_per_s: Option<f64>,
    max_concurrent: Option<usize>,
    /// Node error counters at the previous tick, for error rates.
    last_errors: HashMap<NodeId, u64>,
    /// Each node's shed-ops count at the previous tick.
    last_shed: HashMap<NodeId, u64>,
    /// Each node's usual p99, which its p99 gate compares with.
    usual_p99: HashMap<NodeId, health::UsualP99>,
    /// When each node was last seen heartbeating.
    last_live_ms: HashMap<NodeId, u64>,
    /// Each router's `unavailable_total` at the previous tick, and when it
    /// was last seen (a router gone for [`ROUTER_FORGET_MS`] is forgotten,
    /// so restarts, each a new router id, do not grow the map).
    last_unavailable: HashMap<u64, (u64, u64)>,
    /// Errors of the store's making clients saw since this coordinator
    /// began ticking: the sum of the routers' increases.
    unavailable_total: u64,
    /// The foreground's last seconds, oldest first, at most
    /// [`SAMPLES_KEPT`]: what a staged rebalance judges a bake by.
    samples: std::collections::VecDeque<Sample>,
    status: ThrottleStatus,
}

/// One tick's foreground second: the statistic the baseline learns
/// (`steer_us`) and the requests behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub p99_us: u64,
    pub ops: u64,
}

/// How long a router no report names is remembered.
const ROUTER_FORGET_MS: u64 = 600_000;

/// A day of seconds (about 2 MB): the longest bake judged whole.
const SAMPLES_KEPT: usize = 86_400;

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

impl Throttle {
    pub fn new(settings: Settings) -> Self {
        let now = unix_ms();
        let controller = Controller::new(settings.aimd.clone(), now);
        Throttle {
            inner: Mutex::new(Runtime {
                controller,
                baseline: Baseline::new(settings.baseline.clone()),
                signal: signal_window(&settings),
                gates: HashMap::new(),
                migrations: HashMap::new(),
                log_heads: HashMap::new(),
                paced: HashSet::new(),
                nodes: HashMap::new(),
                per_migration_bytes_per_s: None,
                max_concurrent: None,
                last_errors: HashMap::new(),
                last_shed: HashMap::new(),
                usual_p99: HashMap::new(),
                last_live_ms: HashMap::new(),
                last_unavailable: HashMap::new(),
                unavailable_total: 0,
                samples: std::collections::VecDeque::new(),
                status: ThrottleStatus::default(),
                settings,
            }),
        }
    }

    pub fn settings(&self) -> Settings {
        self.inner.lock().settings.clone()
    }

    /// The foreground seconds sampled at or after `from_ms`: per-second p99
    /// as the baseline measures it, and requests.
    pub fn samples_since(&self, from_ms: u64) -> Vec<Sample> {
        let rt = self.inner.lock();
        let first = rt.samples.partition_point(|s| s.at_ms < from_ms);
        rt.samples.range(first..).copied().collect()
    }

    /// Errors of the store's making clients saw since this coordinator
    /// started ticking (summed over routers).
    pub fn client_unavailable_total(&self) -> u64 {
        self.inner.lock().unavailable_total
    }

    /// The baseline the throttle holds now (frozen while migrations are in
    /// flight), in the statistic [`Sample::p99_us`] measures.
    pub fn baseline_p99_us(&self) -> Option<u64> {
        let rt = self.inner.lock();
        rt.baseline.estimate(unix_ms())
    }

    pub fn status(&self) -> ThrottleStatus {
        self.inner.lock().status.clone()
    }

    /// Concurrency limits from the settings and the active window.
    pub fn concurrency(&self, limits: crate::rebalance::Limits) -> crate::rebalance::Limits {
        let rt = self.inner.lock();
        concurrency_under(&rt.settings, rt.max_concurrent, limits)
    }

    /// Waits until migration `m` may continue after moving `bytes` and
    /// `keys` between `m.source` and `m.target`. Returns at once when no
    /// limit applies; while a window pauses migrations, waits until one
    /// opens (checking every [`PACE_SLEEP_MAX`]).
    pub async fn pace(&self, m: &Migration, bytes: u64, keys: u64) {
        let mut owed = (bytes, keys);
        loop {
            let wait = self.reserve(m, owed.0, owed.1);
            owed = (0, 0);
            match wait {
                Some(0) => return,
                Some(us) => tokio::time::sleep(Duration::from_micros(us).min(PACE_SLEEP_MAX)).await,
                None => {
                    owed = (bytes, keys);
                    tokio::time::sleep(PACE_SLEEP_MAX).await
                }
            }
        }
    }

    /// Paces a catch-up page of `bytes` and `entries` read up to the
    /// source's log head `log_head`. Only what the page drains of the
    /// backlog is paced, not what clients wrote to the partition since the
    /// last page: a partition written faster than the migration's rate
    /// would otherwise never catch up, its lag growing as long as the
    /// writes go on (measured: 800 KB/s of writes against a 200 KB/s limit,
    /// 36,000 entries behind after a minute). Those writes are client
    /// traffic the cluster serves anyway, and dual writes have mostly put
    /// them on the destination already; replaying them is what moving a
    /// live partition costs. The backlog still drains at the limit.
    ///
    /// Entries that arrived count once, when a page ships them or later
    /// (a credit carried from page to page, never more than the lag after
    /// this page, `log_head - next`, plus the page).
    pub async fn pace_catch_up(&self, m: &Migration, bytes: u64, entries: u64, log_head: u64, next: u64) {
        let (bytes, entries) = self.catch_up_booking(m, bytes, entries, log_head, next);
        self.pace(m, bytes, entries).await
    }

    /// What [`Self::pace_catch_up`] paces of a page, carrying the credit.
    fn catch_up_booking(&self, m: &Migration, bytes: u64, entries: u64, log_head: u64, next: u64) -> (u64, u64) {
        let mut rt = self.inner.lock();
        let (head, credit) = rt.log_heads.get(&m.id).copied().unwrap_or((log_head, 0));
        let credit = (credit + log_head.saturating_sub(head)).min(log_head.saturating_sub(next) + entries);
        let (paced, credited) = catch_up_paced(bytes, entries, credit);
        rt.log_heads.insert(m.id.clone(), (log_head, credit - credited));
        paced
    }

    /// Books work on every bucket that applies; the longest wait wins.
    /// None: paused (nothing booked).
    fn reserve(&self, m: &Migration, bytes: u64, keys: u64) -> Option<u64> {
        // Microseconds, not milliseconds × 1000: a chunk's wait is a few ms,
        // and a clock truncated to whole ms made `pace` sleep again for the
        // truncation after almost every chunk.
        let now_us = evenkeel_types::unix_us();
        let mut rt = self.inner.lock();
        let rt = &mut *rt;
        let (rate, keys_rate, node_rate) = (rt.per_migration_bytes_per_s, rt.settings.migration_rate_keys_per_s, rt.settings.node_rate_bytes_per_s);
        if rate == Some(0.0) {
            return None;
        }
        if !rt.paced.contains(&m.id) {
            rt.paced.insert(m.id.clone());
        }
        let (b, k) = rt.migrations.entry(m.id.clone()).or_insert_with(|| (TokenBucket::new(rate, BURST_BYTES, now_us), TokenBucket::new(keys_rate, BURST_KEYS, now_us)));
        let mut wait = b.reserve(bytes, now_us)?.max(k.reserve(keys, now_us)?);
        for node in [m.source, m.target] {
            let nb = rt.nodes.entry(node).or_insert_with(|| TokenBucket::new(node_rate, BURST_BYTES, now_us));
            wait = wait.max(nb.reserve(bytes, now_us)?);
        }
        Some(wait)
    }

    /// One second's decisions; returns the control requests to deliver.
    pub fn tick(&self, input: &TickInput, now_ms: u64) -> Vec<(String, Event)> {
        let mut rt = self.inner.lock();
        let rt = &mut *rt;
        rt.adopt(input.settings.clone(), now_ms);
        // Moving: in a data-moving phase now, or paced since the last tick.
        let mut moving = std::mem::take(&mut rt.paced);
        moving.extend(input.migrations.iter().filter(|m| moves_data(m.phase)).map(|m| m.id.clone()));
        let fg = foreground(input, now_ms);
        rt.count_unavailable(&input.routers, now_ms);
        if rt.samples.len() == SAMPLES_KEPT {
            rt.samples.pop_front();
        }
        rt.samples.push_back(Sample { at_ms: now_ms, p99_us: fg.steer_us, ops: fg.ops });
        rt.update_baseline(fg, input.migrations.iter().any(|m| holds_baseline(m.phase)), now_ms);
        let decision = if moving.is_empty() { rt.controller.idle() } else { rt.adapt(fg, now_ms) };
        let effective = rt.settings.schedule.effective(now_ms);
        let adaptive_share = rt.settings.adaptive.then(|| decision.rate_bytes_per_s / moving.len().max(1) as f64);
        let per_migration = evenkeel_throttle::combine(rt.settings.migration_rate_bytes_per_s, effective.rate_bytes_per_s, adaptive_share);
        rt.per_migration_bytes_per_s = per_migration;
        rt.max_concurrent = effective.max_concurrent;
        rt.apply_rates(&input.migrations, now_ms);
        let gates = rt.gate_nodes(input, now_ms);
        let requests = gate_requests(&input.migrations, &gates);
        rt.status = rt.describe(fg, &decision.reason, &effective.reason, &gates, moving.len(), now_ms);
        export(&rt.status);
        requests
    }
}

/// The window of per-second p99s the controller's signal is the median of.
fn signal_window(settings: &Settings) -> Baseline {
    let window_s = settings.aimd.signal_window_s.max(1);
    Baseline::new(BaselineConfig {
        window_s,
        min_samples: 1,
        min_ops: settings.baseline.min_ops,
        steady_samples: 2,
        steady_ratio_max: 1.5,
        capacity: window_s as usize + 2,
    })
}

/// Everything one tick reads, gathered by the caller.
pub struct TickInput {
    pub settings: Settings,
    pub status: std::sync::Arc<ClusterStatus>,
    pub routers: Vec<RouterReport>,
    pub migrations: Vec<Migration>,
}

/// Phases in which a migration moves data (and so may disturb clients).
fn moves_data(p: Phase) -> bool {
    matches!(p, Phase::Preparing | Phase::Copying | Phase::CatchingUp | Phase::ReadyForCutover | Phase::CuttingOver | Phase::CleaningUp)
}


/// Phases during which the baseline stays frozen: a rebalance's moves run
/// one after another with gaps of a tick or two between them, and a moved
/// partition's after-effects (the target's flushes and compactions, reverse
/// capture during bake) outlast its copy. Learning from those seconds let
/// the baseline creep up move by move (415 µs to 1.0 ms over one
/// rebalance), until the budget no longer capped anything. Paused
/// migrations move nothing, so a long pause lets the baseline follow the
/// workload again.
fn holds_baseline(p: Phase) -> bool {
    !p.is_terminal() && p != Phase::Paused
}

/// Foreground p99 and ops of the last second: routers first (what clients
/// feel), nodes when no router reports.
#[derive(Debug, Clone, Copy)]
struct Foreground {
    p99_us: u64,
    /// What the baseline learns and the controller steers by: `p99_us`,
    /// plus the routers' scheduling delay with
    /// `aimd.signal_includes_sched`, or the routers' p99 from arrival
    /// with `aimd.signal_from_arrival`.
    steer_us: u64,
    ops: u64,
    errors: u64,
    from_routers: bool,
    /// The worst router's scheduling delay p99 (None: not reported).
    sched_p99_us: Option<u64>,
    /// The worst router's p99 from arrival (None: not reported).
    arrival_p99_us: Option<u64>,
}

fn foreground(input: &TickInput, now_ms: u64) -> Foreground {
    let fresh: Vec<_> = input.routers.iter().filter(|r| now_ms.saturating_sub(r.at_ms) <= REPORT_MAX_AGE_MS).collect();
    if !fresh.is_empty() {
        let aimd = &input.settings.aimd;
        let steer = |r: &&RouterReport| match (aimd.signal_from_arrival, r.arrival) {
            (true, Some(a)) => a.p99_us,
            (true, None) => r.last_second.p99_us,
            (false, _) => r.last_second.p99_us + if aimd.signal_includes_sched { r.sched.map_or(0, |s| s.p99_us) } else { 0 },
        };
        return Foreground {
            p99_us: fresh.iter().map(|r| r.last_second.p99_us).max().unwrap_or(0),
            steer_us: fresh.iter().map(steer).max().unwrap_or(0),
            ops: fresh.iter().map(|r| r.last_second.count).sum(),
            errors: fresh.iter().map(|r| r.last_second.errors).sum(),
            from_routers: true,
            sched_p99_us: fresh.iter().filter_map(|r| r.sched.map(|s| s.p99_us)).max(),
            arrival_p99_us: fresh.iter().filter_map(|r| r.arrival.map(|s| s.p99_us)).max(),
        };
    }
    let nodes = &input.status.nodes;
    let p99_us = nodes.iter().map(|n| n.p99_us).max().unwrap_or(0);
    Foreground {
        p99_us,
        steer_us: p99_us,
        ops: nodes.iter().map(|n| n.ops_last_s).sum(),
        errors: 0,
        from_routers: false,
        sched_p99_us: None,
        arrival_p99_us: None,
    }
}

impl Runtime {
    /// Adds each router's increase of `unavailable_total` since the last
    /// tick (a router seen for the first time, or whose count went back
    /// because it restarted, counts whole).
    fn count_unavailable(&mut self, routers: &[RouterReport], now_ms: u64) {
        self.last_unavailable.retain(|_, (_, seen)| now_ms.saturating_sub(*seen) < ROUTER_FORGET_MS);
        for r in routers {
            let last = self.last_unavailable.insert(r.router, (r.unavailable_total, now_ms)).map(|(count, _)| count);
            self.unavailable_total += match last {
                Some(before) if before <= r.unavailable_total => r.unavailable_total - before,
                _ => r.unavailable_total,
            };
        }
    }

    /// Takes new operator settings; the controller restarts only if its own
    /// configuration changed.
    fn adopt(&mut self, settings: Settings, now_ms: u64) {
        if settings == self.settings {
            return;
        }
        if settings.aimd != self.settings.aimd {
            self.controller = Controller::new(settings.aimd.clone(), now_ms);
        }
        // Another statistic: what was learned does not compare.
        let statistic_changed = (settings.aimd.signal_includes_sched, settings.aimd.signal_from_arrival) != (self.settings.aimd.signal_includes_sched, self.settings.aimd.signal_from_arrival);
        if settings.baseline != self.settings.baseline || statistic_changed {
            self.baseline = Baseline::new(settings.baseline.clone());
        }
        if settings.aimd.signal_window_s != self.settings.aimd.signal_window_s || settings.baseline.min_ops != self.settings.baseline.min_ops || statistic_changed {
            self.signal = signal_window(&settings);
        }
        tracing::info!(?settings, "throttle settings changed");
        self.settings = settings;
    }

    fn update_baseline(&mut self, fg: Foreground, in_flight: bool, now_ms: u64) {
        self.signal.push(fg.steer_us, fg.ops, now_ms);
        if in_flight {
            // Keeps the first estimate; retries while there is none yet.
            self.baseline.freeze(now_ms);
        } else {
            self.baseline.unfreeze();
            self.baseline.push(fg.steer_us, fg.ops, now_ms);
            self.controller.reset_reference();
        }
    }

    fn adapt(&mut self, fg: Foreground, now_ms: u64) -> evenkeel_throttle::aimd::Decision {
        match self.baseline.estimate(now_ms) {
            // An idle cluster cannot be disturbed: comfortable by definition.
            _ if fg.ops < IDLE_OPS_MAX => self.controller.observe(0, 1, now_ms),
            Some(base) => self.controller.observe(self.signal_p99(fg, now_ms), base.max(1), now_ms),
            None => self.controller.observe(self.signal_p99(fg, now_ms), 0, now_ms),
        }
    }

    /// The p99 the controller steers by (see `AimdConfig::signal_window_s`);
    /// this second's if the window has no sample.
    fn signal_p99(&self, fg: Foreground, now_ms: u64) -> u64 {
        self.signal.estimate(now_ms).unwrap_or(fg.steer_us)
    }

    /// Sets every bucket to the current rates and forgets finished
    /// migrations.
    fn apply_rates(&mut self, migrations: &[Migration], now_ms: u64) {
        let now_us = now_ms * 1000;
        let live = |id: &String| migrations.iter().any(|m| &m.id == id && !m.phase.is_terminal());
        self.migrations.retain(|id, _| live(id));
        self.log_heads.retain(|id, _| live(id));
        let (rate, keys_rate) = (self.per_migration_bytes_per_s, self.settings.migration_rate_keys_per_s);
        for (b, k) in self.migrations.values_mut() {
            b.set_rate(rate, now_us);
            k.set_rate(keys_rate, now_us);
        }
        let node_rate = self.settings.node_rate_bytes_per_s;
        for nb in self.nodes.values_mut() {
            nb.set_rate(node_rate, now_us);
        }
    }

    /// Classifies every node and steps its gate.
    fn gate_nodes(&mut self, input: &TickInput, now_ms: u64) -> HashMap<NodeId, GateState> {
        let thresholds = self.settings.health.clone();
        let mut out = HashMap::new();
        for n in &input.status.nodes {
            let errors_before = self.last_errors.insert(n.id, n.errors_total).unwrap_or(n.errors_total);
            let shed_before = self.last_shed.insert(n.id, n.shed_ops_total).unwrap_or(n.shed_ops_total);
            if n.live {
                self.last_live_ms.insert(n.id, now_ms);
            }
            // A node this coordinator never saw alive has no heartbeat at all.
            let heartbeat_age_ms = self.last_live_ms.get(&n.id).map(|&t| now_ms.saturating_sub(t));
            let usual = self.usual_p99.entry(n.id).or_default();
            let usual_p99_us = usual.get();
            usual.observe(n.p99_us, n.ops_last_s);
            let sample = NodeSample {
                heartbeat_age_ms,
                p99_us: n.p99_us,
                usual_p99_us,
                ops: n.ops_last_s,
                errors: n.errors_total.saturating_sub(errors_before),
                disk_free_bytes: n.disk_free_bytes,
                disk_total_bytes: n.disk_total_bytes,
                log_lag_entries: log_lag(n.id, input),
                l0_tables: n.l0_tables,
                sealed_memtables: n.sealed_memtables,
                shed_ops: n.shed_ops_total.saturating_sub(shed_before),
            };
            let level = health::classify(&sample, &thresholds);
            let gate = self.gates.entry(n.id).or_insert_with(|| Gate::new(thresholds.recover_after_ms));
            out.insert(n.id, gate.observe(&level, now_ms));
        }
        out
    }

    fn describe(&self, fg: Foreground, rate_reason: &str, window_reason: &str, gates: &HashMap<NodeId, GateState>, moving: usize, now_ms: u64) -> ThrottleStatus {
        let baseline = self.baseline.estimate(now_ms);
        let budget = self.settings.aimd.budget_ratio;
        let ratio = baseline.filter(|&b| b > 0).map(|b| self.signal_p99(fg, now_ms) as f64 / b as f64);
        let mut nodes: Vec<NodeGateStatus> = gates.iter().map(|(&id, g)| gate_status(id, g)).collect();
        nodes.sort_by_key(|n| n.node);
        ThrottleStatus {
            migrations_moving: moving,
            rate_bytes_per_s: self.per_migration_bytes_per_s,
            adaptive_rate_bytes_per_s: self.settings.adaptive.then(|| self.controller.rate()),
            reason: format!("{rate_reason}; {window_reason}"),
            baseline_p99_us: baseline,
            baseline_frozen: self.baseline.frozen().is_some(),
            floor_reference_p99_us: self.controller.reference_us(),
            p99_us: fg.p99_us,
            sched_p99_us: fg.sched_p99_us,
            arrival_p99_us: fg.arrival_p99_us,
            ops_last_s: fg.ops,
            errors_last_s: fg.errors,
            client_unavailable_total: self.unavailable_total,
            signal: if fg.from_routers { "routers" } else { "nodes" }.to_string(),
            p99_ratio: ratio,
            budget_ratio: budget,
            budget_used: ratio.map(|r| ((r - 1.0) / (budget - 1.0)).max(0.0)),
            max_concurrent: self.max_concurrent,
            nodes,
            settings: self.settings.clone(),
        }
    }
}

/// Change-log entries the migrations reading from `node` have yet to apply.
fn log_lag(node: NodeId, input: &TickInput) -> u64 {
    input
        .migrations
        .iter()
        .filter(|m| m.source == node && matches!(m.phase, Phase::CatchingUp | Phase::ReadyForCutover))
        .filter_map(|m| input.status.partitions.iter().find(|p| p.id == m.partition).map(|p| p.log_next.saturating_sub(m.applied_log_pos)))
        .max()
        .unwrap_or(0)
}

fn gate_status(node: NodeId, g: &GateState) -> NodeGateStatus {
    let (state, reasons) = match g {
        GateState::Open => ("open", vec![]),
        GateState::Paused { reasons, .. } => ("paused", reasons.clone()),
        GateState::Abort { reasons } => ("abort", reasons.clone()),
    };
    NodeGateStatus { node, state: state.to_string(), reasons }
}

/// The prefix of every pause the throttle makes; only those it resumes.
pub const HEALTH_PAUSE_PREFIX: &str = "health: ";

/// Pauses, resumes and failures the node gates call for.
fn gate_requests(migrations: &[Migration], gates: &HashMap<NodeId, GateState>) -> Vec<(String, Event)> {
    let mut out = Vec::new();
    for m in migrations.iter().filter(|m| !m.phase.is_terminal()) {
        let involved = [m.source, m.target].map(|n| (n, gates.get(&n).cloned().unwrap_or(GateState::Open)));
        let before_cutover = matches!(m.phase, Phase::Pending | Phase::Preparing | Phase::Copying | Phase::CatchingUp | Phase::ReadyForCutover | Phase::Paused);
        let health_paused = m.phase == Phase::Paused && m.pause_reason.as_deref().is_some_and(|r| r.starts_with(HEALTH_PAUSE_PREFIX));
        if let Some((n, GateState::Abort { reasons })) = involved.iter().find(|(_, g)| matches!(g, GateState::Abort { .. }))
            && before_cutover
        {
            out.push((m.id.clone(), Event::Failed { error: format!("{HEALTH_PAUSE_PREFIX}node {n} critical: {}", reasons.join(", ")) }));
        } else if let Some((n, GateState::Paused { reasons, .. })) = involved.iter().find(|(_, g)| matches!(g, GateState::Paused { .. })) {
            // A migration already paused keeps its reason: rewriting it as
            // the node recovers would write the record every second.
            if m.phase != Phase::Paused && m.phase != Phase::Pending && before_cutover {
                let reason = format!("{HEALTH_PAUSE_PREFIX}node {n}: {}", reasons.join(", "));
                out.push((m.id.clone(), Event::Pause { reason }));
            }
        } else if health_paused {
            out.push((m.id.clone(), Event::Resume));
        }
    }
    out
}

/// Publishes the throttle's state as Prometheus gauges.
fn export(s: &ThrottleStatus) {
    metrics::gauge!("evenkeel_throttle_rate_bytes_per_s").set(s.rate_bytes_per_s.unwrap_or(-1.0));
    metrics::gauge!("evenkeel_throttle_adaptive_rate_bytes_per_s").set(s.adaptive_rate_bytes_per_s.unwrap_or(-1.0));
    metrics::gauge!("evenkeel_throttle_baseline_p99_seconds").set(s.baseline_p99_us.unwrap_or(0) as f64 / 1e6);
    metrics::gauge!("evenkeel_throttle_p99_seconds").set(s.p99_us as f64 / 1e6);
    metrics::gauge!("evenkeel_throttle_budget_used_ratio").set(s.budget_used.unwrap_or(0.0));
    metrics::gauge!("evenkeel_throttle_migrations_moving").set(s.migrations_moving as f64);
    metrics::gauge!("evenkeel_client_unavailable_total").set(s.client_unavailable_total as f64);
    for n in &s.nodes {
        metrics::gauge!("evenkeel_throttle_node_gate_open", "node" => n.node.to_string()).set((n.state == "open") as u8 as f64);
    }
}

/// Reads the operator's settings; absent means defaults, unreadable is an
/// error (the previous settings stay in force).
pub async fn load_settings(meta: &dyn MetaStore) -> Result<Settings, String> {
    match meta.get(keys::THROTTLE).await.map_err(|e| e.to_string())? {
        None => Ok(Settings::default()),
        Some(kv) => serde_json::from_slice(&kv.value).map_err(|e| format!("stored throttle settings are unreadable: {e}")),
    }
}

/// Validates and stores new settings; they apply at the next tick.
pub async fn store_settings(meta: &dyn MetaStore, s: &Settings) -> Result<(), String> {
    s.validate().map_err(|e| e.to_string())?;
    meta.put(keys::THROTTLE, serde_json::to_vec(s).expect("settings serialize"), None).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Applies a JSON merge patch (RFC 7386): objects merge key by key, `null`
/// removes a key (so the field takes its default), anything else replaces.
pub fn merge_patch(target: serde_json::Value, patch: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let Value::Object(patch) = patch else { return patch };
    let mut target = match target {
        Value::Object(t) => t,
        _ => serde_json::Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            target.remove(&k);
        } else {
            let old = target.remove(&k).unwrap_or(Value::Null);
            target.insert(k, merge_patch(old, v));
        }
    }
    Value::Object(target)
}

/// The bytes and entries of a catch-up page to pace with `credit` entries
/// of client writes to pass unpaced (at the page's bytes per entry), and
/// how many of them the page used.
pub fn catch_up_paced(bytes: u64, entries: u64, credit: u64) -> ((u64, u64), u64) {
    let credited = credit.min(entries);
    if credited == 0 {
        return ((bytes, entries), 0);
    }
    let credit_bytes = (bytes as u128 * credited as u128 / entries as u128) as u64;
    ((bytes - credit_bytes, entries - credited), credited)
}

#[cfg(test)]
mod tests;
