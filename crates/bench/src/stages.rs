//! Where in a rebalance the latency went: the "during" window cut into the
//! stages of its moves (copy, bake, cleanup), each with the median of its
//! seconds' p99 (the "typical second" of [`crate::report::TypicalSecond`])
//! against the one before the disruption.
//!
//! A rebalance's window p99 mixes stages that cost very different amounts:
//! on the 2-core test machine the copy ran at 1.2–1.4x the baseline while
//! the bake and the cleanup stayed within a few percent. Which stage carries
//! the cost says which part of the migration to work on.
//!
//! The stages come from the moves' transitions, across all moves: copy from
//! the first COPYING to the last COMPLETED, cleanup from the first
//! CLEANING_UP to the last finish, bake in between. When moves run in waves
//! a later copy overlaps an earlier cleanup; both stages then hold those
//! seconds and the bake is empty (not shown).

use crate::migrations::MigrationWindow;
use crate::report::{fmt_ratio, fmt_us};
use crate::stats::{Second, ratio};

/// One stage's seconds and their median p99.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: &'static str,
    /// Run-relative seconds: the stage is `[start_s, end_s]`.
    pub start_s: f64,
    pub end_s: f64,
    /// Whole seconds inside the stage that carried requests.
    pub seconds: usize,
    /// Median of those seconds' p99; `None` when there are none.
    pub p99_us: Option<u64>,
}

/// The copy, bake and cleanup stages of `moves`, in that order; a stage no
/// move reached is left out, and so is an empty bake.
pub fn of(moves: &[MigrationWindow], seconds: &[Second]) -> Vec<Stage> {
    // A move still copying (or cleaning up) when the run ended keeps its
    // stage open to the end of the run.
    let open_end = |end: Option<f64>| end.unwrap_or(f64::INFINITY);
    let copy = span(moves.iter().filter_map(|m| m.copy_s), moves.iter().filter(|m| m.copy_s.is_some()).map(|m| open_end(m.completed_s.or(m.end_s))));
    let cleanup = span(moves.iter().filter_map(|m| m.cleanup_s), moves.iter().filter(|m| m.cleanup_s.is_some()).map(|m| open_end(m.end_s)));
    let bake = copy.zip(cleanup).map(|((_, copied), (cleaning, _))| (copied, cleaning)).filter(|(from, to)| to > from);
    [("copy", copy), ("bake", bake), ("cleanup", cleanup)]
        .into_iter()
        .filter_map(|(name, bounds)| bounds.map(|(start_s, end_s)| stage(name, start_s, end_s, seconds)))
        .collect()
}

/// From the earliest start to the latest end; `None` without a start.
fn span(starts: impl Iterator<Item = f64>, ends: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let start = starts.reduce(f64::min)?;
    Some((start, ends.fold(start, f64::max)))
}

/// A second counts if it starts inside the stage: the second in which the
/// stage ends is in, the one in which it began (only partly inside) is not.
fn stage(name: &'static str, start_s: f64, end_s: f64, seconds: &[Second]) -> Stage {
    let mut p99s: Vec<u64> = seconds.iter().filter(|s| s.requests > 0 && s.t as f64 >= start_s && s.t as f64 <= end_s).map(|s| s.p99_us).collect();
    p99s.sort_unstable();
    Stage { name, start_s, end_s, seconds: p99s.len(), p99_us: p99s.get(p99s.len() / 2).copied() }
}

/// `copy 754 µs 1.36x (17 s), bake 634 µs 1.14x (11 s), ...` against the
/// typical second before, or `None` when no move reached a stage.
pub fn describe(stages: &[Stage], before_us: u64) -> Option<String> {
    let parts: Vec<String> = stages
        .iter()
        .map(|s| match s.p99_us {
            Some(p) => format!("{} {} {} ({} s)", s.name, fmt_us(p), fmt_ratio(ratio(p as f64, before_us as f64)), s.seconds),
            None => format!("{} – (under a second)", s.name),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, p99_us: u64) -> Second {
        Second { t, requests: 100, ok: 100, failed: 0, p50_us: 1, p99_us, p999_us: p99_us, max_us: p99_us, lag_p99_us: 0, cpu_busy_pct: None }
    }

    fn window(copy: f64, completed: f64, cleanup: Option<f64>, end: Option<f64>) -> MigrationWindow {
        MigrationWindow {
            id: format!("m{copy}"),
            partition: 1,
            source: 1,
            target: 4,
            state: "DONE".into(),
            start_s: copy - 0.1,
            end_s: end,
            cutover_s: Some(completed - 0.01),
            copy_s: Some(copy),
            completed_s: Some(completed),
            cleanup_s: cleanup,
            bytes_copied: 1,
            keys_copied: 1,
            cutover_pause_ms: Some(1),
            copies: 1,
        }
    }

    /// Two moves copy over seconds 10–19 at 1,300 µs, the bake holds 20–29
    /// at 1,050 µs, the cleanups 30–34 at 1,100 µs.
    #[test]
    fn each_stage_has_the_median_of_its_seconds() {
        let mut seconds: Vec<Second> = (0..10).map(|t| second(t, 1_000)).collect();
        seconds.extend((10..20).map(|t| second(t, 1_300)));
        seconds.extend((20..30).map(|t| second(t, 1_050)));
        seconds.extend((30..40).map(|t| second(t, 1_100)));
        // One stalled second in the copy moves its median by one place only.
        seconds[12] = second(12, 90_000);
        let moves = [window(9.5, 14.2, Some(29.7), Some(31.9)), window(14.3, 19.4, Some(30.1), Some(34.6))];
        let stages = of(&moves, &seconds);
        let got: Vec<(&str, usize, Option<u64>)> = stages.iter().map(|s| (s.name, s.seconds, s.p99_us)).collect();
        assert_eq!(got, [("copy", 10, Some(1_300)), ("bake", 10, Some(1_050)), ("cleanup", 5, Some(1_100))]);
        assert_eq!((stages[1].start_s, stages[1].end_s), (19.4, 29.7));
        assert_eq!(describe(&stages, 1_000).unwrap(), "copy 1.30 ms 1.30x (10 s), bake 1.05 ms 1.05x (10 s), cleanup 1.10 ms 1.10x (5 s)");
    }

    /// Waves: the second move copies while the first cleans up, so there
    /// is no bake; a move still copying when the run ended keeps the copy
    /// open to the end; a run without moves has no stages.
    #[test]
    fn overlapping_waves_have_no_bake_and_no_moves_no_stages() {
        let seconds: Vec<Second> = (0..20).map(|t| second(t, 500 + t)).collect();
        let mut running = window(8.0, 0.0, None, None);
        running.completed_s = None;
        let moves = [window(2.0, 6.0, Some(6.5), Some(12.0)), running];
        let stages = of(&moves, &seconds);
        assert_eq!(stages.iter().map(|s| s.name).collect::<Vec<_>>(), ["copy", "cleanup"]);
        assert_eq!((stages[0].start_s, stages[0].end_s, stages[0].seconds), (2.0, f64::INFINITY, 18));
        assert_eq!((stages[1].start_s, stages[1].end_s, stages[1].seconds), (6.5, 12.0, 6));
        assert_eq!(of(&[], &seconds), []);
        assert_eq!(describe(&[], 500), None);
        let short = [window(3.2, 3.9, None, Some(3.95))];
        assert_eq!(describe(&of(&short, &seconds), 500).unwrap(), "copy – (under a second)");
    }
}
