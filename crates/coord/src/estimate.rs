//! How long a rebalance takes: what one move costs, learned from the moves
//! this cluster made recently, then the plan's moves laid out under the
//! concurrency limits as the scheduler starts them. Pure (no I/O, no
//! clock): the caller passes the migrations and the time.
//!
//! **What a move costs.** From each recent DONE migration's phase history:
//! its *copy time* (time in COPYING) and *active time* (from PENDING to
//! COMPLETED, that is until its cutover, with the time spent PAUSED taken
//! out: a pause is a health gate or a person, not the move). A move of
//! `b` bytes then costs `overhead + b / rate`, where `rate` is the median
//! of the copies' bytes over copy time (copies under [`MIN_RATE_SAMPLE`]
//! bytes measure their overhead, not a rate) and `overhead` the median of
//! active time minus copy time. After its cutover a move bakes
//! (`bake_ms`, plus cleanup: the median COMPLETED-to-DONE time) without
//! holding a slot, so the plan's last bake adds to its end once. With no
//! history the defaults are the throttle's starting rate and
//! [`DEFAULT_OVERHEAD_MS`] of overhead. A static per-migration rate lower than the learned one caps
//! it: the operator's limit holds now, whatever the moves saw before.
//!
//! **The layout.** Moves start in plan order whenever at most
//! `moves_per_node` moves involve each of the move's nodes and
//! `moves_cluster` run in all, as [`crate::rebalance::schedule`] starts
//! them; a stage's moves start once the previous stage has cut over and
//! baked. Approval gates wait for a person and are not counted (the
//! caller says so).
//!
//! It is an estimate: the adaptive throttle changes the rate with client
//! latency, health gates pause moves, and busy partitions need more
//! catch-up than quiet ones. Its worth is the order of magnitude and the
//! basis it names.

use crate::migration::machine::{Migration, Phase};
use crate::plan::Move;
use crate::rebalance::Limits;
use evenkeel_types::NodeId;
use serde::{Deserialize, Serialize};

const OPEN_DAYS: i64 = evenkeel_throttle::window::OPEN_HORIZON_DAYS;

/// Copies smaller than this measure overhead, not a rate.
pub const MIN_RATE_SAMPLE: u64 = 256 * 1024;
/// Moves learned from: the most recent DONE ones.
pub const SAMPLES: usize = 32;
/// Overhead assumed with no history: about what a small move takes on the
/// 2-core test VM (0.2-0.4 s from PENDING to its cutover, measured with
/// 32 and 455 moves in a row).
pub const DEFAULT_OVERHEAD_MS: f64 = 250.0;

/// What one move costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoveCost {
    /// Fixed time of a move besides its copy (preparing, catch-up,
    /// verification, cutover).
    pub overhead_ms: f64,
    /// Copy rate.
    pub bytes_per_s: f64,
    /// Cutover to DONE: bake and cleanup.
    pub tail_ms: f64,
    /// Recent moves it was learned from (0: defaults).
    pub samples: usize,
    /// Of those, the copies large enough to measure the rate (0: the
    /// throttle's rate).
    pub rate_samples: usize,
}

impl MoveCost {
    /// Learned from `migrations` (any order; only DONE ones with a history
    /// count, the [`SAMPLES`] most recent), else the defaults: overhead
    /// [`DEFAULT_OVERHEAD_MS`], `default_rate`, a tail of `bake_ms`. A
    /// `rate_cap` (the static per-migration limit) caps the rate.
    pub fn learn(migrations: &[Migration], default_rate: f64, bake_ms: u64, rate_cap: Option<f64>) -> MoveCost {
        let mut done: Vec<(u64, Timing)> = migrations.iter().filter(|m| m.phase == Phase::Done).filter_map(|m| Some((m.history.last()?.1, timing(m)?))).collect();
        done.sort_by_key(|(finished, _)| std::cmp::Reverse(*finished));
        done.truncate(SAMPLES);
        let rates: Vec<f64> = done.iter().filter(|(_, t)| t.copied >= MIN_RATE_SAMPLE && t.copy_ms > 0).map(|(_, t)| t.copied as f64 * 1000.0 / t.copy_ms as f64).collect();
        let overheads: Vec<f64> = done.iter().map(|(_, t)| t.active_ms.saturating_sub(t.copy_ms) as f64).collect();
        let tails: Vec<f64> = done.iter().map(|(_, t)| t.tail_ms as f64).collect();
        let rate = median(&rates).unwrap_or(default_rate);
        MoveCost {
            overhead_ms: median(&overheads).unwrap_or(DEFAULT_OVERHEAD_MS),
            bytes_per_s: rate_cap.map_or(rate, |cap| rate.min(cap)).max(1.0),
            tail_ms: median(&tails).unwrap_or(bake_ms as f64),
            samples: done.len(),
            rate_samples: rates.len(),
        }
    }

    /// Until its cutover, a move of `bytes`.
    pub fn move_ms(&self, bytes: u64) -> f64 {
        self.overhead_ms + bytes as f64 * 1000.0 / self.bytes_per_s
    }

    /// What a move of `bytes` under way for `elapsed_ms`, with `copied`
    /// bytes copied, still needs: what its cost leaves of the time, and at
    /// least its bytes not yet copied at the copy rate (a copy slower than
    /// the learned rate is not done just because its time is up).
    pub fn left_ms(&self, bytes: u64, copied: u64, elapsed_ms: u64) -> f64 {
        let by_time = self.move_ms(bytes) - elapsed_ms as f64;
        let by_bytes = bytes.saturating_sub(copied) as f64 * 1000.0 / self.bytes_per_s;
        by_time.max(by_bytes).max(0.0)
    }
}

/// The phases of one DONE migration that the cost is learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    copied: u64,
    copy_ms: u64,
    active_ms: u64,
    tail_ms: u64,
}

/// `m`'s copy and active time and tail, from its phase history (None if
/// it never reached COMPLETED).
fn timing(m: &Migration) -> Option<Timing> {
    let h = &m.history;
    let start = h.first()?.1;
    let completed = h.iter().find(|(p, _)| *p == Phase::Completed)?.1;
    let end = h.last()?.1;
    let (mut copy_ms, mut paused_ms) = (0, 0);
    for w in h.windows(2) {
        let span = w[1].1.saturating_sub(w[0].1);
        if w[1].1 > completed {
            break;
        }
        match w[0].0 {
            Phase::Copying => copy_ms += span,
            Phase::Paused => paused_ms += span,
            _ => {}
        }
    }
    Some(Timing { copied: m.bytes_copied, copy_ms, active_ms: completed.saturating_sub(start).saturating_sub(paused_ms), tail_ms: end.saturating_sub(completed) })
}

/// A short time: "30 ms", "1.5 s".
fn short_ms(ms: f64) -> String {
    if ms < 1000.0 { format!("{ms:.0} ms") } else { format!("{:.1} s", ms / 1000.0) }
}

/// Seconds as "45s", "2m10s", "1h05m" (a person's precision).
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// A move still to run: its nodes and how long until its cutover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pending {
    pub from: NodeId,
    pub to: NodeId,
    pub ms: f64,
}

impl Pending {
    pub fn of(m: &Move, cost: &MoveCost) -> Pending {
        Pending { from: m.from, to: m.to, ms: cost.move_ms(m.bytes) }
    }
}

/// When the last of `moves` cuts over, starting at 0 with `running` (moves
/// already under way: their nodes and the time they still need) holding
/// their slots: each move starts, in order, at the first moment its nodes
/// and the cluster have a free slot (the scheduler's rule: a move that
/// does not fit waits, later ones that fit go ahead).
pub fn makespan_ms(running: &[Pending], moves: &[Pending], limits: Limits) -> f64 {
    // (finish time, from, to) of the moves holding slots.
    let mut active: Vec<(f64, NodeId, NodeId)> = running.iter().map(|p| (p.ms.max(0.0), p.from, p.to)).collect();
    let mut waiting: Vec<Pending> = moves.to_vec();
    let (per_node, cluster) = (limits.moves_per_node.max(1), limits.moves_cluster.max(1));
    let mut now = 0.0_f64;
    let mut end = active.iter().map(|a| a.0).fold(0.0, f64::max);
    while !waiting.is_empty() {
        active.retain(|a| a.0 > now);
        let mut i = 0;
        while i < waiting.len() {
            let m = waiting[i];
            let on = |n: NodeId| active.iter().filter(|a| a.1 == n || a.2 == n).count();
            if active.len() < cluster && on(m.from) < per_node && on(m.to) < per_node {
                active.push((now + m.ms, m.from, m.to));
                end = end.max(now + m.ms);
                waiting.remove(i);
            } else {
                i += 1;
            }
        }
        // The next slot frees when the earliest active move finishes (there
        // is one: a move that cannot start is blocked by an active one).
        match active.iter().map(|a| a.0).filter(|&t| t > now).min_by(f64::total_cmp) {
            Some(t) => now = t,
            None => break,
        }
    }
    end
}

/// One stage of a rebalance as the estimate sees it (an unstaged rebalance
/// is one stage without bake or gate).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageRun {
    /// Moves under way: the time they still need, holding their slots.
    pub running: Vec<Pending>,
    /// Moves not started, in plan order.
    pub waiting: Vec<Pending>,
    /// The stage's bake still ahead once its moves have cut over.
    pub bake_ms: f64,
}

/// From now until the rebalance is DONE: each stage lays out its moves
/// and bakes before the next starts; after the last stage's moves cut
/// over, the longer of its bake and `tail_ms` (the moves' own bake and
/// cleanup).
pub fn total_ms(stages: &[StageRun], limits: Limits, tail_ms: f64) -> f64 {
    let n = stages.len();
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let cut_over = makespan_ms(&s.running, &s.waiting, limits);
            if i + 1 == n { cut_over + s.bake_ms.max(tail_ms) } else { cut_over + s.bake_ms }
        })
        .sum()
}

/// A rebalance's duration estimate and what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Until every move is DONE (cutovers, the stages' bakes and the last
    /// move's bake and cleanup), approval gates not counted.
    pub seconds: f64,
    pub cost: MoveCost,
    pub limits: Limits,
    /// Approval gates still ahead: they add however long a person takes.
    #[serde(default)]
    pub approvals: usize,
    /// Of `seconds`, the wait for the throttle's time windows to let moves
    /// run (0: they may run now).
    #[serde(default)]
    pub waiting_s: f64,
    /// The windows pause moves at every time of the next
    /// [`evenkeel_throttle::window::OPEN_HORIZON_DAYS`] days: `seconds` is
    /// the run once they allow it.
    #[serde(default)]
    pub never_opens: bool,
}

/// What an estimate made now rests on: what a move costs, the concurrency
/// limits, and how long until the time windows let moves run (None: not
/// within the horizon), all as they will be when they do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Basis {
    pub cost: MoveCost,
    pub limits: Limits,
    pub waiting_ms: Option<u64>,
}

impl Basis {
    /// The estimate of a run of `run_ms` with `approvals` gates ahead.
    pub fn estimate(&self, run_ms: f64, approvals: usize) -> Estimate {
        let waiting_s = self.waiting_ms.unwrap_or(0) as f64 / 1000.0;
        Estimate { seconds: waiting_s + run_ms / 1000.0, cost: self.cost, limits: self.limits, approvals, waiting_s, never_opens: self.waiting_ms.is_none() }
    }
}

impl Estimate {
    /// One line: "about 2m10s (...)", naming the basis.
    pub fn describe(&self) -> String {
        let basis = if self.cost.samples == 0 {
            format!("no moves made yet: the throttle's starting rate, {} a move besides its copy", short_ms(DEFAULT_OVERHEAD_MS))
        } else {
            let rate = if self.cost.rate_samples == 0 { "the throttle's starting rate".to_string() } else { format!("{} of them large enough to time the copy", self.cost.rate_samples) };
            format!("from the last {} moves, {rate}", self.cost.samples)
        };
        let gates = match self.approvals {
            0 => String::new(),
            1 => " plus the wait for 1 approval".to_string(),
            n => format!(" plus the waits for {n} approvals"),
        };
        let when = if self.never_opens {
            format!("once the time windows allow moves (they pause them at every time of the next {OPEN_DAYS} days), ")
        } else if self.waiting_s > 0.0 {
            format!("of which {} waiting for a time window that allows moves; ", clock(self.waiting_s))
        } else {
            String::new()
        };
        format!(
            "about {}{gates} ({when}{} a move besides its copy, copies at {:.1} MiB/s, {} move(s) per node and {} in the cluster at a time; {basis})",
            clock(self.seconds),
            short_ms(self.cost.overhead_ms),
            self.cost.bytes_per_s / (1024.0 * 1024.0),
            self.limits.moves_per_node,
            self.limits.moves_cluster,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::machine::Limits as MigrationLimits;

    const MIB: u64 = 1 << 20;
    const LIMITS: Limits = Limits { moves_per_node: 1, moves_cluster: 2 };

    fn done(id: &str, copied: u64, history: &[(Phase, u64)]) -> Migration {
        let mut m = Migration::new(id, 0, 1, 2, MigrationLimits::default(), 0);
        m.phase = Phase::Done;
        m.bytes_copied = copied;
        m.history = history.to_vec();
        m
    }

    /// A DONE move that started at `t`, copied `copied` bytes in `copy_ms`,
    /// spent `other_ms` in its other phases and paused `paused_ms` while
    /// copying; cut over then, DONE 30 s later.
    fn timed(id: &str, t: u64, copied: u64, copy_ms: u64, other_ms: u64, paused_ms: u64) -> Migration {
        let prep = t + other_ms / 2;
        let copy_end = prep + copy_ms + paused_ms;
        let completed = copy_end + other_ms - other_ms / 2;
        done(
            id,
            copied,
            &[
                (Phase::Pending, t),
                (Phase::Preparing, t + 1),
                (Phase::Copying, prep),
                (Phase::Paused, prep + copy_ms / 2),
                (Phase::Copying, prep + copy_ms / 2 + paused_ms),
                (Phase::CatchingUp, copy_end),
                (Phase::Completed, completed),
                (Phase::Done, completed + 30_000),
            ],
        )
    }

    #[test]
    fn the_cost_is_learned_from_recent_moves_with_pauses_left_out() {
        // Three copies at 4 MiB/s, one at 1 MiB/s; overheads 2 s; one
        // paused a minute (not counted); one too small to time its copy.
        let ms = vec![
            timed("a", 0, 8 * MIB, 2000, 2000, 0),
            timed("b", 100_000, 4 * MIB, 1000, 2000, 60_000),
            timed("c", 200_000, 8 * MIB, 2000, 2000, 0),
            timed("d", 300_000, MIB, 1000, 2000, 0),
            timed("e", 400_000, 1000, 5, 2000, 0),
        ];
        let c = MoveCost::learn(&ms, 5.0 * MIB as f64, 30_000, None);
        assert_eq!((c.samples, c.rate_samples), (5, 4));
        assert_eq!(c.bytes_per_s, 4.0 * MIB as f64, "the median copy rate");
        assert_eq!(c.overhead_ms, 2000.0, "active time less copy time, pauses out");
        assert_eq!(c.tail_ms, 30_000.0);
        assert_eq!(c.move_ms(8 * MIB), 4000.0);
        // A static limit below it caps the rate.
        assert_eq!(MoveCost::learn(&ms, 5.0 * MIB as f64, 30_000, Some(MIB as f64)).bytes_per_s, MIB as f64);
        // Unfinished, failed or history-less migrations teach nothing.
        let mut failed = timed("f", 500_000, 8 * MIB, 100, 100, 0);
        failed.phase = Phase::Failed;
        let mut running = timed("g", 500_000, 8 * MIB, 100, 100, 0);
        running.phase = Phase::Copying;
        let bare = done("h", 8 * MIB, &[]);
        let none = MoveCost::learn(&[failed, running, bare], 5.0 * MIB as f64, 30_000, None);
        assert_eq!((none.samples, none.overhead_ms, none.bytes_per_s, none.tail_ms), (0, DEFAULT_OVERHEAD_MS, 5.0 * MIB as f64, 30_000.0));
    }

    #[test]
    fn a_move_under_way_needs_its_time_left_and_at_least_its_uncopied_bytes() {
        let c = MoveCost { overhead_ms: 1000.0, bytes_per_s: MIB as f64, tail_ms: 0.0, samples: 1, rate_samples: 1 };
        assert_eq!(c.left_ms(4 * MIB, 0, 0), 5000.0);
        assert_eq!(c.left_ms(4 * MIB, 2 * MIB, 2000), 3000.0, "on schedule");
        assert_eq!(c.left_ms(4 * MIB, MIB, 4000), 3000.0, "slower than learned: the bytes left decide");
        assert_eq!(c.left_ms(4 * MIB, 4 * MIB, 9000), 0.0, "overdue and copied: nothing left");
    }

    #[test]
    fn only_the_most_recent_moves_count() {
        // 40 old slow moves, then SAMPLES fast ones (listed first, to show
        // the order of the input does not matter).
        let mut ms: Vec<Migration> = (0..SAMPLES as u64).map(|i| timed("new", 1_000_000 + i * 1000, 8 * MIB, 1000, 500, 0)).collect();
        ms.extend((0..40).map(|i| timed("old", i * 1000, 8 * MIB, 8000, 5000, 0)));
        let c = MoveCost::learn(&ms, 1.0, 0, None);
        assert_eq!((c.samples, c.bytes_per_s, c.overhead_ms), (SAMPLES, 8.0 * MIB as f64, 500.0));
    }

    fn p(from: NodeId, to: NodeId, ms: f64) -> Pending {
        Pending { from, to, ms }
    }

    #[test]
    fn moves_are_laid_out_under_the_limits_as_the_scheduler_starts_them() {
        // All into node 4, one per node: one after another.
        let into_4 = [p(1, 4, 10.0), p(2, 4, 20.0), p(3, 4, 30.0)];
        assert_eq!(makespan_ms(&[], &into_4, LIMITS), 60.0);
        // Disjoint pairs, two in the cluster: pairs at once.
        let pairs = [p(1, 2, 10.0), p(3, 4, 10.0), p(5, 6, 10.0), p(7, 8, 10.0)];
        assert_eq!(makespan_ms(&[], &pairs, LIMITS), 20.0);
        assert_eq!(makespan_ms(&[], &pairs, Limits { moves_per_node: 1, moves_cluster: 4 }), 10.0);
        // A move that does not fit waits; a later one that fits goes ahead.
        let skip = [p(1, 4, 10.0), p(2, 4, 10.0), p(3, 5, 15.0)];
        assert_eq!(makespan_ms(&[], &skip, LIMITS), 20.0, "1->4 and 3->5 at 0, 2->4 at 10");
        // A running move holds its slot for the time it still needs.
        assert_eq!(makespan_ms(&[p(1, 4, 7.0)], &[p(2, 4, 10.0)], LIMITS), 17.0);
        assert_eq!(makespan_ms(&[p(1, 4, 7.0)], &[], LIMITS), 7.0);
        assert_eq!(makespan_ms(&[], &[], LIMITS), 0.0);
        // Limits of 0 (a window that pauses) are read as 1: the estimate is
        // of the run once it may go.
        assert_eq!(makespan_ms(&[], &into_4, Limits { moves_per_node: 0, moves_cluster: 0 }), 60.0);
    }

    #[test]
    fn stages_run_one_after_another_and_the_last_ends_with_the_longer_bake() {
        let stage = |running: Vec<Pending>, waiting: Vec<Pending>, bake_ms: f64| StageRun { running, waiting, bake_ms };
        let canary = stage(vec![], vec![p(1, 4, 10.0)], 100.0);
        let rest = stage(vec![], vec![p(2, 4, 10.0), p(3, 5, 20.0)], 50.0);
        assert_eq!(total_ms(&[canary.clone(), rest.clone()], LIMITS, 30.0), 110.0 + 20.0 + 50.0);
        assert_eq!(total_ms(&[canary, rest], LIMITS, 80.0), 110.0 + 20.0 + 80.0, "the moves' own bake outlasts the stage's");
        // Landed and baking: only the bake left.
        assert_eq!(total_ms(&[stage(vec![], vec![], 40.0)], LIMITS, 0.0), 40.0);
        assert_eq!(total_ms(&[], LIMITS, 30.0), 0.0);
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!([0.4, 45.0, 130.0, 3599.0, 3900.0, 90_000.0].map(clock), ["0s", "45s", "2m10s", "59m59s", "1h05m", "25h00m"]);
    }

    #[test]
    fn the_description_names_its_basis() {
        let cost = MoveCost { overhead_ms: 1500.0, bytes_per_s: 2.0 * MIB as f64, tail_ms: 30_000.0, samples: 12, rate_samples: 3 };
        let e = Basis { cost, limits: LIMITS, waiting_ms: Some(0) }.estimate(130_000.0, 1);
        let quick = Basis { cost: MoveCost { overhead_ms: 30.4, samples: 0, ..cost }, limits: LIMITS, waiting_ms: Some(0) }.estimate(3000.0, 0);
        let later = Basis { cost, limits: LIMITS, waiting_ms: Some(3_600_000) }.estimate(60_000.0, 0);
        assert!(later.describe().starts_with("about 1h01m (of which 1h00m waiting for a time window that allows moves; 1.5 s a move"), "{}", later.describe());
        let never = Basis { cost, limits: LIMITS, waiting_ms: None }.estimate(60_000.0, 0);
        assert!(never.never_opens && never.describe().starts_with("about 1m00s (once the time windows allow moves (they pause them at every time of the next 8 days), 1.5 s"), "{}", never.describe());
        assert!(quick.describe().starts_with("about 3s (30 ms a move besides its copy,"), "{}", quick.describe());
        assert!(quick.describe().ends_with("no moves made yet: the throttle's starting rate, 250 ms a move besides its copy)"), "{}", quick.describe());
        assert_eq!(
            e.describe(),
            "about 2m10s plus the wait for 1 approval (1.5 s a move besides its copy, copies at 2.0 MiB/s, 1 move(s) per node and 2 in the cluster at a time; from the last 12 moves, 3 of them large enough to time the copy)"
        );
    }
}
