//! Staged rebalances: a canary first, then widening stages, each judged
//! before the next begins.
//!
//! A rebalance's moves can run as one batch (the default) or in *stages*,
//! as staged rollouts do: a canary of a few moves, then larger shares of
//! the plan. Each stage's share is cumulative ("1%, 10%, 50%, 100%" of the
//! moves done by the end of each stage), so the stage sizes follow the plan
//! whatever its length; a share rounds up to whole moves, and a stage that
//! rounds to no new move is skipped. The quietest partitions go first, the
//! smallest among equally quiet ones ([`run_order`]): the seed's partition
//! selection for a canary, which puts the fewest clients at risk and is the
//! cheapest to copy and to roll back; the busiest partitions move last,
//! once the earlier stages have shown the move does no harm.
//!
//! A stage runs its moves under the rebalance's usual limits. Once each of
//! them has cut over (its migration is in bake, or done), the stage
//! *lands* and bakes for its `bake_ms`: the seed's "bake time", during
//! which effects that need time show. Then it is judged:
//!
//! - every move of the stage ended DONE or is still baking (a move that
//!   failed halts the rebalance as soon as it fails);
//! - no client saw an error of the store's making from the stage's start to
//!   the end of its bake (the routers' `unavailable_total`: TRYAGAIN after
//!   the retry budget, CLUSTERDOWN), the disruption budget's zero errors;
//! - the typical second of the bake (the median of its per-second p99s,
//!   seconds with fewer than [`MIN_OPS`] requests left out) within the
//!   throttle's budget ratio of the baseline taken when the rebalance
//!   started ("latency within 10% of baseline"); not judged without a
//!   baseline, a bake, or a busy second;
//! - every node the stage moved partitions between has an open health gate.
//!
//! A stage that passes goes on to the next, or waits for `rebalance
//! approve` when it has an approval gate. One that fails halts the
//! rebalance (PAUSED, with the reason): `rebalance resume` goes on anyway,
//! `rebalance rollback` hands back what is still in bake, `cancel` stops.
//!
//! Everything here is a pure function of its input and the clock it is
//! given; the scheduler in [`crate::rebalance`] gathers the input.

use crate::plan::Move;
use serde::{Deserialize, Serialize};

/// Seconds with fewer requests than this say nothing about latency.
pub const MIN_OPS: u64 = 50;
/// The most stages a list may have (a rings stage counts as one).
pub const STAGES_MAX: usize = 64;
/// The longest bake a stage may ask for: 30 days.
pub const BAKE_MAX_MS: u64 = 30 * 86_400_000;

/// One stage as the operator describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    pub name: String,
    /// Percent of the plan's moves done by the end of this stage
    /// (cumulative), in (0, 100]; the last stage's is 100.
    pub share_percent: f64,
    /// How long the stage is watched once its moves have cut over.
    #[serde(default)]
    pub bake_ms: u64,
    /// The next stage waits for `rebalance approve`.
    #[serde(default)]
    pub approval: bool,
    /// A *rings* stage (the last one only): when the rebalance starts it
    /// becomes one stage per zone of the remaining moves' target nodes,
    /// these zones first in this order, then the others by name, then the
    /// moves into nodes in no zone; each ring with this stage's bake and
    /// gate. `None` for a stage by share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rings: Option<Vec<String>>,
}

/// Parses a stage list: `[NAME=]SHARE%[:BAKE][:approve]`, comma-separated,
/// for example `canary=1%:10m:approve,10%:30m,50%:30m,100%`. BAKE is a
/// number with a unit (`ms`, `s`, `m`, `h`, `d`). The last item may be
/// `[NAME=]rings[@ZONE|ZONE...][:BAKE][:approve]` instead of a share: the
/// rest of the moves, one zone at a time (see [`StageSpec::rings`]), for
/// example `canary=1%:10m,rings@us-west|us-east:30m:approve`. `none` (or
/// an empty string) is no staging.
pub fn parse(spec: &str) -> Result<Vec<StageSpec>, String> {
    let spec = spec.trim();
    if spec.is_empty() || spec == "none" {
        return Ok(Vec::new());
    }
    let mut stages = Vec::new();
    for (i, item) in spec.split(',').enumerate() {
        let item = item.trim();
        let (name, rest) = match item.split_once('=') {
            Some((n, r)) => (n.trim().to_string(), r),
            None => (format!("stage {}", i + 1), item),
        };
        let mut parts = rest.split(':').map(str::trim);
        let share = parts.next().unwrap_or("");
        let rings = match share.split_once('@') {
            _ if share == "rings" => Some(Vec::new()),
            Some(("rings", zones)) => Some(zones.split('|').map(|z| z.trim().to_string()).collect()),
            _ => None,
        };
        let share_percent = match rings {
            Some(_) => 100.0,
            None => share
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("stage {:?}: {share:?} is not a share like 10% (or rings)", name))?,
        };
        let name = if rings.is_some() && !item.contains('=') { "ring".to_string() } else { name };
        let mut stage = StageSpec { name, share_percent, bake_ms: 0, approval: false, rings };
        for part in parts {
            if part.eq_ignore_ascii_case("approve") {
                stage.approval = true;
            } else {
                stage.bake_ms = parse_duration_ms(part).map_err(|e| format!("stage {:?}: {e}", stage.name))?;
            }
        }
        stages.push(stage);
    }
    validate(&stages)?;
    Ok(stages)
}

/// A stage list in [`parse`]'s notation ("none" for no stages).
pub fn format(stages: &[StageSpec]) -> String {
    if stages.is_empty() {
        return "none".into();
    }
    let item = |s: &StageSpec| {
        let mut out = match &s.rings {
            Some(zones) if zones.is_empty() => format!("{}=rings", s.name),
            Some(zones) => format!("{}=rings@{}", s.name, zones.join("|")),
            None => format!("{}={}%", s.name, s.share_percent),
        };
        if s.bake_ms > 0 {
            out += &format!(":{}", format_ms(s.bake_ms));
        }
        if s.approval {
            out += ":approve";
        }
        out
    };
    stages.iter().map(item).collect::<Vec<_>>().join(",")
}

/// Checks a stage list: at most [`STAGES_MAX`] stages, shares rise
/// strictly and end at 100%, names are given and unique, bakes are at most
/// [`BAKE_MAX_MS`].
pub fn validate(stages: &[StageSpec]) -> Result<(), String> {
    if stages.len() > STAGES_MAX {
        return Err(format!("{} stages: at most {STAGES_MAX}", stages.len()));
    }
    let mut previous = 0.0;
    for (i, s) in stages.iter().enumerate() {
        if s.name.trim().is_empty() {
            return Err(format!("stage {} has no name", i + 1));
        }
        if stages[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("two stages are named {:?}", s.name));
        }
        if !(s.share_percent > previous && s.share_percent <= 100.0) {
            return Err(format!("stage {:?}: shares are cumulative and must rise, up to 100% ({}% after {}%)", s.name, s.share_percent, previous));
        }
        if s.bake_ms > BAKE_MAX_MS {
            return Err(format!("stage {:?}: a bake may last at most 30 days", s.name));
        }
        if let Some(zones) = &s.rings {
            if i + 1 != stages.len() {
                return Err(format!("stage {:?}: rings must be the last stage", s.name));
            }
            if let Some(bad) = zones.iter().find(|z| crate::nodes::check_zone(z.to_string()).is_err()) {
                return Err(format!("stage {:?}: {bad:?} is not a zone name (letters, digits, '-', '_', '.', '/')", s.name));
            }
        }
        previous = s.share_percent;
    }
    match stages.last() {
        Some(last) if last.share_percent != 100.0 => Err(format!("the last stage ({:?}) must reach 100% of the moves, not {}%", last.name, last.share_percent)),
        _ => Ok(()),
    }
}

/// `500ms`, `90s`, `10m`, `2h`, `1d` in milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 90s or 10m"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("{s:?} needs a unit (ms, s, m, h or d)")),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h or d)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{s:?} is too long"))
}

/// Prints a duration as the operator would write it.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let unit = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")].into_iter().find(|(scale, _)| ms.is_multiple_of(*scale));
    match unit {
        Some((scale, name)) => format!("{}{name}", ms / scale),
        None => format!("{ms}ms"),
    }
}

/// The order of a staged rebalance's moves: by load class first (0 for a
/// partition no client used, else 1 + ⌊log₂ ops/s⌋: loads within the same
/// power of two count alike, so a second's noise does not reorder
/// partitions that carry about the same traffic), then the smallest, then
/// by partition.
pub fn run_order(m: &Move) -> (u32, u64, u16) {
    let class = match m.ops_per_s {
        0 => 0,
        ops => 1 + ops.ilog2(),
    };
    (class, m.bytes, m.partition)
}

/// The stages a rebalance of `moves` runs, each with its moves (indices
/// into `moves`): in [`run_order`] (quietest, then smallest), each stage
/// by share taking its cumulative share rounded up (it may be left empty
/// when the plan is short), a rings stage expanded into one stage per
/// zone of the remaining moves' targets (`zone_of`), named after it
/// ("ring us-west"), its share the one reached once it is done.
pub fn assign(specs: &[StageSpec], moves: &[Move], zone_of: impl Fn(u32) -> Option<String>) -> Vec<Stage> {
    let mut order: Vec<usize> = (0..moves.len()).collect();
    order.sort_by_key(|&i| run_order(&moves[i]));
    let mut out = Vec::with_capacity(specs.len());
    let mut taken = 0;
    for (i, s) in specs.iter().enumerate() {
        if let Some(first) = &s.rings {
            let mut rings: Vec<(Option<String>, Vec<usize>)> = Vec::new();
            for &m in &order[taken..] {
                let zone = zone_of(moves[m].to);
                match rings.iter_mut().find(|(z, _)| *z == zone) {
                    Some((_, ring)) => ring.push(m),
                    None => rings.push((zone, vec![m])),
                }
            }
            // Listed zones first, in their order; then by name; no zone last.
            rings.sort_by_key(|(zone, _)| match zone {
                Some(z) => (first.iter().position(|f| f == z).unwrap_or(first.len()), false, z.clone()),
                None => (first.len(), true, String::new()),
            });
            for (zone, ring) in rings {
                taken += ring.len();
                let spec = StageSpec {
                    name: format!("{} {}", s.name, zone.as_deref().unwrap_or("(no zone)")),
                    share_percent: (taken as f64 * 1000.0 / moves.len() as f64).round() / 10.0,
                    bake_ms: s.bake_ms,
                    approval: s.approval,
                    rings: None,
                };
                out.push(Stage::new(spec, ring));
            }
            continue;
        }
        let upto = if i + 1 == specs.len() { moves.len() } else { ((s.share_percent / 100.0) * moves.len() as f64).ceil() as usize };
        let upto = upto.clamp(taken, moves.len());
        out.push(Stage::new(s.clone(), order[taken..upto].to_vec()));
        taken = upto;
    }
    out
}

/// One stage of a running rebalance, as stored in its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    #[serde(flatten)]
    pub spec: StageSpec,
    /// Indices into the plan's moves.
    pub moves: Vec<usize>,
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// When the last of its moves cut over.
    #[serde(default)]
    pub landed_ms: Option<u64>,
    #[serde(default)]
    pub bake_until_ms: Option<u64>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// When the operator approved the next stage (or resumed past a halt).
    #[serde(default)]
    pub approved_ms: Option<u64>,
    /// When the next stage was allowed to start.
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

impl Stage {
    pub fn new(spec: StageSpec, moves: Vec<usize>) -> Stage {
        Stage { spec, moves, started_ms: None, landed_ms: None, bake_until_ms: None, verdict: None, approved_ms: None, finished_ms: None }
    }

    /// What the stage is doing.
    pub fn phase(&self) -> StagePhase {
        use StagePhase as P;
        let passed = self.verdict.as_ref().map(|v| v.passed);
        match (self.started_ms, self.landed_ms, passed, self.approved_ms, self.finished_ms) {
            (.., Some(_)) if passed == Some(true) => P::Passed,
            (.., Some(_)) => P::LetThrough,
            (.., Some(_), None) => P::Approved,
            (_, _, Some(false), None, None) => P::Failed,
            (_, _, Some(true), None, None) if self.spec.approval => P::AwaitingApproval,
            (_, _, Some(true), None, None) => P::Passed,
            (_, Some(_), None, None, None) => P::Baking,
            (Some(_), None, None, None, None) => P::Moving,
            (None, ..) => P::Waiting,
        }
    }

    /// The stage's state in words, as status lines print it: its phase,
    /// the bake time left, what to run when it waits for approval.
    pub fn describe(&self, now_ms: u64) -> String {
        let phase = match self.phase() {
            StagePhase::Baking => format!("baking, {} left", format_ms(self.bake_until_ms.unwrap_or(now_ms).saturating_sub(now_ms) / 1000 * 1000)),
            StagePhase::AwaitingApproval => "passed, awaiting `evenkeel rebalance approve`".to_string(),
            other => other.to_string(),
        };
        match &self.verdict {
            Some(v) => format!("{phase} ({})", v.detail),
            None => phase,
        }
    }
}

/// Where a stage stands ([`Stage::phase`], derived from its record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagePhase {
    /// Not started: an earlier stage is current.
    Waiting,
    /// Its moves run.
    Moving,
    /// Its moves have cut over; its bake runs.
    Baking,
    /// Judged and passed; its approval gate holds the next stage.
    AwaitingApproval,
    /// Approved (or let through past a halt); the next stage is about to
    /// start.
    Approved,
    /// Judged and failed: the rebalance halted.
    Failed,
    /// Judged, passed and gone on.
    Passed,
    /// Failed (or halted by a move), then let go on by the operator.
    LetThrough,
}

impl std::fmt::Display for StagePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StagePhase::Waiting => "waiting",
            StagePhase::Moving => "moving",
            StagePhase::Baking => "baking",
            StagePhase::AwaitingApproval => "awaiting approval",
            StagePhase::Approved => "approved",
            StagePhase::Failed => "failed",
            StagePhase::Passed => "passed",
            StagePhase::LetThrough => "let through by the operator",
        })
    }
}

/// A stage's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub at_ms: u64,
    /// Every criterion's outcome, in words.
    pub detail: String,
    /// The bake's typical second over the baseline, when judged.
    #[serde(default)]
    pub p99_ratio: Option<f64>,
    /// The typical second while the stage's moves ran, over the baseline
    /// (reported, not judged).
    #[serde(default)]
    pub moving_p99_ratio: Option<f64>,
    /// Errors of the store's making clients saw during the stage.
    pub unavailable: u64,
    /// Busy seconds the latency was judged on.
    pub seconds: u64,
}

/// Where one of a stage's moves stands.
#[derive(Debug, Clone, PartialEq)]
pub enum MoveState {
    NotStarted,
    Moving,
    /// Cut over: baking (its own bake, reverse capture on) or DONE.
    Landed,
    /// Ended other than DONE (FAILED, ROLLED_BACK, CANCELLED), or skipped.
    Failed(String),
}

/// What the stage's judgement reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Per-second p99 (µs) and request count over the bake.
    pub seconds: Vec<(u64, u64)>,
    /// The same while the stage's moves ran (from its start to its
    /// landing): reported with the verdict, not judged (keeping those
    /// seconds inside the budget is the throttle's work).
    pub moving_seconds: Vec<(u64, u64)>,
    /// Errors of the store's making since the stage started.
    pub unavailable: u64,
    /// The rebalance's baseline p99, if known.
    pub baseline_p99_us: Option<u64>,
    pub budget_ratio: f64,
    /// Involved nodes whose health gate is not open, with why.
    pub unhealthy: Vec<String>,
}

/// What the scheduler should do with the current stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Its moves may start (or are running).
    Run,
    /// Landed now: bake until then.
    Landed { bake_until_ms: u64 },
    /// Baking: nothing to do until then.
    Bake,
    /// The bake is over: judge it with an [`Observation`].
    Judge,
    /// Judged and passed, waiting for the operator's approval.
    AwaitApproval,
    /// Passed (and approved where needed): the next stage may start.
    Next,
    /// Halt the rebalance: a move failed or the stage was judged failed.
    Halt(String),
}

/// The current stage's next step, from its moves' states.
pub fn step(stage: &Stage, moves: &[MoveState], now_ms: u64) -> Step {
    // Finished, or let go by the operator (an approval, or a resume past a
    // halt, whatever halted it).
    if stage.finished_ms.is_some() || stage.approved_ms.is_some() {
        return Step::Next;
    }
    if let Some(v) = &stage.verdict {
        return match (v.passed, stage.spec.approval) {
            (false, _) => Step::Halt(format!("stage {:?} failed: {}", stage.spec.name, v.detail)),
            (true, true) => Step::AwaitApproval,
            (true, false) => Step::Next,
        };
    }
    if let Some(why) = moves.iter().find_map(|m| if let MoveState::Failed(why) = m { Some(why) } else { None }) {
        return Step::Halt(format!("stage {:?}: {why}", stage.spec.name));
    }
    match stage.bake_until_ms {
        Some(until) if now_ms >= until => Step::Judge,
        Some(_) => Step::Bake,
        None if moves.iter().all(|m| *m == MoveState::Landed) => Step::Landed { bake_until_ms: now_ms + stage.spec.bake_ms },
        None => Step::Run,
    }
}

/// Judges a stage whose bake is over (see the module documentation).
pub fn judge(stage: &Stage, o: &Observation, now_ms: u64) -> Verdict {
    let mut failures = Vec::new();
    let mut passes = Vec::new();
    if o.unavailable > 0 {
        failures.push(format!("clients saw {} errors of the store's making", o.unavailable));
    } else {
        passes.push("no client errors".to_string());
    }
    let (ratio, busy) = typical_ratio(&o.seconds, o.baseline_p99_us);
    match ratio {
        Some(r) if r > o.budget_ratio => failures.push(format!("typical p99 of the bake {r:.2}x the baseline (budget {:.2}x)", o.budget_ratio)),
        Some(r) => passes.push(format!("typical p99 of the bake {r:.2}x the baseline")),
        None if stage.spec.bake_ms == 0 => passes.push("latency not judged (no bake)".into()),
        None if o.baseline_p99_us.is_none() => passes.push("latency not judged (no baseline)".into()),
        None => passes.push("latency not judged (no busy second in the bake)".into()),
    }
    if o.unhealthy.is_empty() {
        passes.push("nodes healthy".into());
    } else {
        failures.push(format!("unhealthy: {}", o.unhealthy.join("; ")));
    }
    let passed = failures.is_empty();
    let (moving_ratio, _) = typical_ratio(&o.moving_seconds, o.baseline_p99_us);
    let mut detail = if passed { passes.join(", ") } else { failures.join(", ") };
    if let Some(r) = moving_ratio {
        let used = ((r - 1.0) / (o.budget_ratio - 1.0)).max(0.0) * 100.0;
        detail += &format!("; while its moves ran: typical p99 {r:.2}x the baseline, {used:.0}% of the budget");
    }
    Verdict { passed, at_ms: now_ms, detail, p99_ratio: ratio, moving_p99_ratio: moving_ratio, unavailable: o.unavailable, seconds: busy }
}

/// The typical second of `seconds` (the median of the per-second p99s of
/// those with at least [`MIN_OPS`] requests) over `baseline`, and how many
/// seconds it rests on.
fn typical_ratio(seconds: &[(u64, u64)], baseline: Option<u64>) -> (Option<f64>, u64) {
    let mut busy: Vec<u64> = seconds.iter().filter(|(_, ops)| *ops >= MIN_OPS).map(|(p99, _)| *p99).collect();
    busy.sort_unstable();
    let typical = (!busy.is_empty()).then(|| busy[busy.len() / 2]);
    let ratio = match (typical, baseline) {
        (Some(t), Some(b)) if b > 0 => Some(t as f64 / b as f64),
        _ => None,
    };
    (ratio, busy.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(partition: u16, bytes: u64) -> Move {
        Move { partition, from: 1, to: 4, bytes, ops_per_s: 0 }
    }

    #[test]
    fn parses_the_seeds_stages() {
        let s = parse("canary=1%:10m:approve, early=10%:2h, 50%:1d, complete=100%").unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], StageSpec { name: "canary".into(), share_percent: 1.0, bake_ms: 600_000, approval: true, rings: None });
        assert_eq!((s[1].name.as_str(), s[1].bake_ms, s[1].approval), ("early", 7_200_000, false));
        assert_eq!((s[2].name.as_str(), s[2].share_percent, s[2].bake_ms), ("stage 3", 50.0, 86_400_000));
        assert_eq!((s[3].share_percent, s[3].bake_ms), (100.0, 0));
        assert_eq!(parse("none").unwrap(), vec![]);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("0.5%:500ms,100%").unwrap()[0].bake_ms, 500);
        assert_eq!(parse(&format(&s)).unwrap(), s, "format writes what parse reads");
        assert_eq!(format(&s), "canary=1%:10m:approve,early=10%:2h,stage 3=50%:1d,complete=100%");
        assert_eq!(format(&[]), "none");
    }

    #[test]
    fn refuses_what_cannot_be_run() {
        let err = |s: &str| parse(s).unwrap_err();
        assert!(err("10%,5%,100%").contains("must rise"), "{}", err("10%,5%,100%"));
        assert!(err("10%,50%").contains("must reach 100%"));
        assert!(err("a=10%,a=100%").contains("two stages are named"));
        assert!(err("10").contains("not a share"));
        assert!(err("10%:10,100%").contains("needs a unit"));
        assert!(err("10%:10w,100%").contains("unknown unit"));
        assert!(err("10%:31d,100%").contains("30 days"));
        assert!(err("0%,100%").contains("must rise"));
        assert!(err("=10%,100%").contains("no name"));
        assert!(err("10%,150%").contains("must rise"));
        assert!(err("10%:99999999999999999d,100%").contains("too long"));
        let many: Vec<String> = (1..=65).map(|i| format!("{}%", i as f64 * 100.0 / 65.0)).collect();
        assert!(err(&many.join(",")).contains("at most 64"), "{}", err(&many.join(",")));
    }

    #[test]
    fn durations_print_as_written() {
        for s in ["0s", "500ms", "90s", "10m", "2h", "1d"] {
            let ms = parse_duration_ms(s).unwrap();
            assert_eq!(format_ms(ms), if s == "0s" { "0s" } else { s });
        }
        assert_eq!(format_ms(90_000), "90s");
    }

    fn no_zone(_: u32) -> Option<String> {
        None
    }

    fn moves_of(stages: &[Stage]) -> Vec<Vec<usize>> {
        stages.iter().map(|s| s.moves.clone()).collect()
    }

    #[test]
    fn stages_take_cumulative_shares_smallest_moves_first() {
        let moves: Vec<Move> = (0..32u16).map(|p| mv(p, 1_000 - p as u64)).collect();
        let specs = parse("1%,10%,50%,100%").unwrap();
        let stages = moves_of(&assign(&specs, &moves, no_zone));
        let sizes: Vec<usize> = stages.iter().map(Vec::len).collect();
        // ceil(0.32) = 1, ceil(3.2) = 4, 16, 32.
        assert_eq!(sizes, vec![1, 3, 12, 16]);
        // The smallest move (partition 31) is the canary.
        assert_eq!(stages[0], vec![31]);
        let mut all: Vec<usize> = stages.concat();
        all.sort_unstable();
        assert_eq!(all, (0..32).collect::<Vec<_>>(), "every move in exactly one stage");
        // A short plan leaves later stages empty rather than repeating moves.
        let stages = moves_of(&assign(&specs, &moves[..2], no_zone));
        assert_eq!(stages.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 0, 0, 1]);
        assert_eq!(moves_of(&assign(&specs, &[], no_zone)).concat(), Vec::<usize>::new());
    }

    #[test]
    fn the_quietest_partitions_go_first_and_the_busiest_last() {
        // Partition 0 is the smallest but the busiest; 1 no client uses; 2
        // and 3 carry about the same load (the same power of two), so size
        // orders them; 4 is busier.
        let load = [(0, 10, 5_000), (1, 900, 0), (2, 500, 40), (3, 300, 60), (4, 200, 100)];
        let moves: Vec<Move> = load.iter().map(|&(p, bytes, ops)| Move { partition: p, from: 1, to: 4, bytes, ops_per_s: ops }).collect();
        let stages = moves_of(&assign(&parse("canary=20%,40%,100%").unwrap(), &moves, no_zone));
        assert_eq!(stages, vec![vec![1], vec![3], vec![2, 4, 0]]);
        assert_eq!(run_order(&moves[1]).0, 0, "no load is class 0");
        assert_eq!((run_order(&moves[2]).0, run_order(&moves[3]).0), (6, 6), "40 and 60 ops/s alike");
        assert!(run_order(&moves[0]) > run_order(&moves[4]));
    }

    #[test]
    fn rings_take_the_rest_one_zone_at_a_time() {
        let specs = parse("canary=10%:1m,rings@east|west:30m:approve").unwrap();
        assert_eq!(specs[1].rings, Some(vec!["east".to_string(), "west".to_string()]));
        assert_eq!(format(&specs), "canary=10%:1m,ring=rings@east|west:30m:approve");
        assert_eq!(parse(&format(&specs)).unwrap(), specs);
        // Ten moves into nodes 4 (north), 5 (west), 6 (east), 7 (no zone).
        let moves: Vec<Move> = (0..10u16).map(|p| Move { partition: p, from: 1, to: 4 + (p as u32 % 4), bytes: 100 + p as u64, ops_per_s: 0 }).collect();
        let zone_of = |n: u32| match n {
            4 => Some("north".to_string()),
            5 => Some("west".to_string()),
            6 => Some("east".to_string()),
            _ => None,
        };
        let stages = assign(&specs, &moves, zone_of);
        let names: Vec<&str> = stages.iter().map(|s| s.spec.name.as_str()).collect();
        assert_eq!(names, vec!["canary", "ring east", "ring west", "ring north", "ring (no zone)"], "listed zones, then by name, then none");
        assert_eq!(stages[0].moves, vec![0], "the canary is the smallest move");
        for s in &stages[1..] {
            let zone = s.spec.name.strip_prefix("ring ").unwrap();
            assert!(s.moves.iter().all(|&m| zone_of(moves[m].to).as_deref().unwrap_or("(no zone)") == zone), "{s:?}");
            assert!((s.spec.bake_ms, s.spec.approval, s.spec.rings.is_none()) == (1_800_000, true, true));
        }
        assert_eq!(stages.iter().map(|s| s.moves.len()).sum::<usize>(), 10);
        assert_eq!(stages.iter().map(|s| s.spec.share_percent).collect::<Vec<_>>(), vec![10.0, 30.0, 60.0, 80.0, 100.0]);
        validate(&stages.iter().map(|s| s.spec.clone()).collect::<Vec<_>>()).unwrap();
        // Plain `rings`: every zone by name.
        let stages = assign(&parse("rings").unwrap(), &moves, zone_of);
        assert_eq!(stages.iter().map(|s| s.spec.name.as_str()).collect::<Vec<_>>(), vec!["ring east", "ring north", "ring west", "ring (no zone)"]);
        assert!(parse("rings,100%").unwrap_err().contains("must be the last"));
        assert!(parse("rings@a b").unwrap_err().contains("not a zone name"));
    }

    fn stage(bake_ms: u64, approval: bool) -> Stage {
        Stage::new(StageSpec { name: "canary".into(), share_percent: 10.0, bake_ms, approval, rings: None }, vec![0, 1])
    }

    #[test]
    fn a_stage_runs_lands_bakes_and_is_judged() {
        use MoveState::*;
        let mut s = stage(60_000, false);
        assert_eq!(step(&s, &[NotStarted, NotStarted], 0), Step::Run);
        assert_eq!(step(&s, &[Landed, Moving], 10), Step::Run);
        assert_eq!(step(&s, &[Landed, Landed], 20), Step::Landed { bake_until_ms: 60_020 });
        s.landed_ms = Some(20);
        s.bake_until_ms = Some(60_020);
        assert_eq!(s.phase(), StagePhase::Baking);
        assert_eq!(step(&s, &[Landed, Landed], 60_019), Step::Bake);
        assert_eq!(s.describe(30_020), "baking, 30s left");
        assert_eq!(step(&s, &[Landed, Landed], 60_020), Step::Judge);
        let o = Observation { seconds: vec![(500, 1_000); 60], moving_seconds: vec![(600, 1_000); 10], unavailable: 0, baseline_p99_us: Some(480), budget_ratio: 1.1, unhealthy: vec![] };
        let v = judge(&s, &o, 60_020);
        assert!(v.passed, "{v:?}");
        // The moves' seconds are reported, not judged: 1.25x, 250% of the budget.
        assert!(v.detail.ends_with("while its moves ran: typical p99 1.25x the baseline, 250% of the budget"), "{v:?}");
        assert_eq!(v.moving_p99_ratio, Some(1.25));
        assert_eq!((v.seconds, v.p99_ratio.map(|r| (r * 100.0).round())), (60, Some(104.0)));
        s.verdict = Some(v);
        assert_eq!(step(&s, &[Landed, Landed], 60_100), Step::Next);
    }

    #[test]
    fn a_failed_move_halts_at_once() {
        use MoveState::*;
        let mut s = stage(60_000, false);
        let moves = [Landed, Failed("partition 3's move ended FAILED: checksum".into())];
        match step(&s, &moves, 5) {
            Step::Halt(why) => assert!(why.contains("partition 3") && why.contains("canary"), "{why}"),
            other => panic!("{other:?}"),
        }
        // `rebalance resume` lets the stage go, failed move and all.
        s.approved_ms = Some(6);
        assert_eq!(step(&s, &moves, 7), Step::Next);
    }

    #[test]
    fn each_criterion_can_fail_a_stage() {
        let s = stage(60_000, false);
        let good = Observation { seconds: vec![(500, 1_000); 30], moving_seconds: vec![], unavailable: 0, baseline_p99_us: Some(500), budget_ratio: 1.1, unhealthy: vec![] };
        assert!(judge(&s, &good, 1).passed);
        let v = judge(&s, &Observation { unavailable: 3, ..good.clone() }, 1);
        assert!(!v.passed && v.detail.contains("3 errors"), "{v:?}");
        // The median second decides: a few slow seconds do not.
        let mut seconds = vec![(500, 1_000); 30];
        seconds.extend(vec![(5_000, 1_000); 10]);
        assert!(judge(&s, &Observation { seconds: seconds.clone(), ..good.clone() }, 1).passed);
        seconds.extend(vec![(5_000, 1_000); 25]);
        let v = judge(&s, &Observation { seconds, ..good.clone() }, 1);
        assert!(!v.passed && v.detail.contains("10.00x"), "{v:?}");
        // Idle seconds are not judged.
        let v = judge(&s, &Observation { seconds: vec![(50_000, 10); 30], ..good.clone() }, 1);
        assert!(v.passed && v.detail.contains("no busy second"), "{v:?}");
        let v = judge(&s, &Observation { baseline_p99_us: None, ..good.clone() }, 1);
        assert!(v.passed && v.detail.contains("no baseline"), "{v:?}");
        let v = judge(&s, &Observation { unhealthy: vec!["node 4: p99 12 ms".into()], ..good }, 1);
        assert!(!v.passed && v.detail.contains("node 4"), "{v:?}");
    }

    #[test]
    fn a_failed_stage_halts_until_resumed_and_approval_waits() {
        use MoveState::*;
        let mut s = stage(0, true);
        s.verdict = Some(Verdict { passed: false, at_ms: 1, detail: "clients saw 2 errors".into(), p99_ratio: None, moving_p99_ratio: None, unavailable: 2, seconds: 0 });
        assert!(matches!(step(&s, &[Landed, Landed], 2), Step::Halt(why) if why.contains("2 errors")));
        assert_eq!(s.phase(), StagePhase::Failed);
        // `rebalance resume` past a halt approves.
        s.approved_ms = Some(3);
        assert_eq!(step(&s, &[Landed, Landed], 4), Step::Next);
        s.finished_ms = Some(4);
        assert_eq!(s.phase(), StagePhase::LetThrough);
        let mut s = stage(0, true);
        s.verdict = Some(Verdict { passed: true, at_ms: 1, detail: String::new(), p99_ratio: None, moving_p99_ratio: None, unavailable: 0, seconds: 0 });
        assert_eq!(step(&s, &[Landed, Landed], 2), Step::AwaitApproval);
        assert_eq!(s.phase(), StagePhase::AwaitingApproval);
        assert_eq!(s.describe(2), "passed, awaiting `evenkeel rebalance approve` ()");
        s.approved_ms = Some(3);
        assert_eq!(s.phase(), StagePhase::Approved);
        assert_eq!(step(&s, &[Landed, Landed], 4), Step::Next);
        s.finished_ms = Some(4);
        assert_eq!(s.phase(), StagePhase::Passed);
    }
}
