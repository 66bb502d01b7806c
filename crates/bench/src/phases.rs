//! Phases of a run: before, during and after the disruption.
//!
//! With `--during-cmd`, the command starts when the baseline window ends,
//! "during" lasts exactly as long as it runs, and the load continues until
//! `--seconds` or for `--recovery-seconds` after the command, whichever is
//! later. Without it, the time after the baseline is split in two halves
//! (thirds of the run by default), so every report has the same shape.

use crate::config::Config;
use crate::history::Micros;
use crate::schedule::{Clock, PacerShared};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Phase boundaries, µs since the load started. Before `start` is the
/// warmup, in no phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTimes {
    #[serde(default)]
    pub start: Micros,
    pub during_start: Micros,
    pub during_end: Micros,
    pub end: Micros,
}

impl PhaseTimes {
    /// The phase (0 before, 1 during, 2 after) a time falls in; None
    /// during the warmup.
    pub fn phase_of(&self, t: Micros) -> Option<usize> {
        if t < self.start {
            None
        } else if t < self.during_start {
            Some(0)
        } else if t < self.during_end {
            Some(1)
        } else {
            Some(2)
        }
    }

    /// The same phases cut at `end` (an early stop).
    pub fn clamped(self, end: Micros) -> PhaseTimes {
        let end = end.min(self.end);
        PhaseTimes { start: self.start.min(end), during_start: self.during_start.min(end), during_end: self.during_end.min(end), end }
    }

    /// `[start, end)` of phase `p`.
    pub fn bounds(&self, p: usize) -> (Micros, Micros) {
        match p {
            0 => (self.start, self.during_start),
            1 => (self.during_start, self.during_end),
            _ => (self.during_end, self.end),
        }
    }
}

pub const PHASE_NAMES: [&str; 3] = ["before", "during", "after"];

/// What became of `--during-cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRun {
    pub command: String,
    pub started_us: Micros,
    pub ended_us: Micros,
    /// `None` when killed by a signal, or when it could not be started.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Could not be started, was killed, or could not be waited for.
    pub problem: Option<String>,
    /// The last lines of its stdout and stderr, interleaved as they came.
    pub output_tail: Vec<String>,
}

enum Waited {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Interrupted,
}

const TAIL_LINES: usize = 20;
const TAIL_LINE_CHARS: usize = 300;

/// Drives the phases: waits out the baseline, runs the command, and fixes
/// the end of the load. Returns when the end time is known. `stop` (Ctrl-C)
/// skips or kills the command.
/// Also returns the CPU the cluster's bulk threads used while the command
/// ran (ms), when `--admin` gives a cluster that reports it.
pub async fn control(config: &Config, clock: Clock, pacer: &PacerShared, stop: &CancellationToken) -> (PhaseTimes, Option<CommandRun>, Option<u64>) {
    let start = config.warmup.as_micros() as Micros;
    let during_start = start + config.baseline.as_micros() as Micros;
    let total = config.duration.as_micros() as Micros;
    let Some(command) = &config.during_cmd else {
        let during_end = during_start + (total - during_start) / 2;
        return (PhaseTimes { start, during_start, during_end, end: total }, None, None);
    };
    // The phase boundary is a point in time, so waiting for it is the point.
    tokio::select! {
        _ = tokio::time::sleep_until(clock.instant(during_start).into()) => {}
        _ = stop.cancelled() => return (PhaseTimes { start, during_start, during_end: during_start, end: total }, None, None),
    }
    let cpu_before = bulk_cpu(config).await;
    let run = run_command(command, config, clock, stop).await;
    let cpu_after = bulk_cpu(config).await;
    let recovery_end = run.ended_us + config.recovery.as_micros() as Micros;
    pacer.set_end(total.max(recovery_end));
    let bulk_cpu_ms = cpu_before.zip(cpu_after).map(|(b, a)| crate::migrations::cpu_spent(&b, &a));
    (PhaseTimes { start, during_start: run.started_us, during_end: run.ended_us, end: pacer.end_us() }, Some(run), bulk_cpu_ms)
}

/// The nodes' bulk-thread CPU totals, if `--admin` names a cluster that
/// reports them (one request; a failure only leaves the figure out).
async fn bulk_cpu(config: &Config) -> Option<std::collections::BTreeMap<evenkeel_types::NodeId, u64>> {
    crate::migrations::bulk_cpu(config.admin.as_deref()?).await.ok()
}

async fn run_command(command: &str, config: &Config, clock: Clock, stop: &CancellationToken) -> CommandRun {
    let started_us = clock.now_us();
    let mut run = CommandRun { command: command.to_string(), started_us, ended_us: started_us, exit_code: None, timed_out: false, problem: None, output_tail: Vec::new() };
    let spawned = Command::new("sh").arg("-c").arg(command).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            run.problem = Some(e.to_string());
            return run;
        }
    };
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let readers = [child.stdout.take().map(|o| collect(o, tail.clone())), child.stderr.take().map(|e| collect(e, tail.clone()))];
    let waited = tokio::select! {
        w = tokio::time::timeout(config.during_timeout, child.wait()) => match w {
            Ok(result) => Waited::Exited(result),
            Err(_) => Waited::TimedOut,
        },
        _ = stop.cancelled() => Waited::Interrupted,
    };
    match waited {
        Waited::Exited(Ok(status)) => run.exit_code = status.code(),
        Waited::Exited(Err(e)) => run.problem = Some(format!("waiting for it: {e}")),
        Waited::TimedOut | Waited::Interrupted => {
            run.timed_out = matches!(waited, Waited::TimedOut);
            run.problem = Some(if run.timed_out { format!("killed after {:?}", config.during_timeout) } else { "killed: interrupted".to_string() });
            // kill() also reaps it.
            let _ = child.kill().await;
        }
    }
    run.ended_us = clock.now_us();
    // The pipes close when the command (and anything holding them) exits; a
    // background child that keeps them open must not hold up the report.
    for reader in readers.into_iter().flatten() {
        if tokio::time::timeout(std::time::Duration::from_secs(1), reader).await.is_err() {
            tail.lock().expect("tail lock").push_back("(output still open after the command exited; tail may be incomplete)".to_string());
        }
    }
    run.output_tail = tail.lock().expect("tail lock").iter().cloned().collect();
    run
}

/// Keeps the last [`TAIL_LINES`] lines of a stream.
fn collect(stream: impl AsyncRead + Unpin + Send + 'static, tail: Arc<Mutex<VecDeque<String>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut tail = tail.lock().expect("tail lock");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.chars().take(TAIL_LINE_CHARS).collect());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_of_and_bounds_agree() {
        let p = PhaseTimes { start: 0, during_start: 10, during_end: 20, end: 30 };
        assert_eq!([p.phase_of(0), p.phase_of(9), p.phase_of(10), p.phase_of(19), p.phase_of(20), p.phase_of(29)], [0, 0, 1, 1, 2, 2].map(Some));
        assert_eq!([p.bounds(0), p.bounds(1), p.bounds(2)], [(0, 10), (10, 20), (20, 30)]);
    }

    #[test]
    fn the_warmup_is_in_no_phase() {
        let p = PhaseTimes { start: 5, during_start: 10, during_end: 20, end: 30 };
        assert_eq!([p.phase_of(0), p.phase_of(4), p.phase_of(5), p.phase_of(10)], [None, None, Some(0), Some(1)]);
        assert_eq!(p.bounds(0), (5, 10));
        assert_eq!(p.clamped(3), PhaseTimes { start: 3, during_start: 3, during_end: 3, end: 3 });
    }
}
