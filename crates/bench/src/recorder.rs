//! What the connections record: a latency [`Sample`] per request and the
//! [`Op`]s of the history, kept per connection (no shared locks on the hot
//! path) and merged once the load has stopped; plus [`Live`] counters for the
//! progress line.

use crate::config::Cmd;
use crate::history::{Micros, Op, Outcome};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One request's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the schedule meant it to be sent; latency is measured from here.
    pub intended: Micros,
    /// When it was handed to the socket.
    pub invoke: Micros,
    /// When its reply arrived, or when it was given up.
    pub complete: Micros,
    pub cmd: Cmd,
    pub outcome: Outcome,
}

impl Sample {
    pub fn latency(&self) -> Micros {
        self.complete.saturating_sub(self.intended)
    }
}

/// Distinct error messages kept per connection; the rest are counted under
/// one "other errors" line so a flood of varied errors stays bounded.
const MAX_ERROR_KINDS: usize = 32;
const OTHER_ERRORS: &str = "(other errors)";

/// Everything one connection recorded.
#[derive(Debug, Default)]
pub struct ConnLog {
    pub samples: Vec<Sample>,
    pub ops: Vec<Op>,
    /// Requests that found the in-flight window full.
    pub behind_schedule: u64,
    pub reconnects: u64,
    /// Error message → occurrences.
    pub errors: BTreeMap<String, u64>,
}

impl ConnLog {
    pub fn note_error(&mut self, message: &str) {
        let message: String = message.chars().take(160).collect();
        let key = if self.errors.len() < MAX_ERROR_KINDS || self.errors.contains_key(&message) { message } else { OTHER_ERRORS.to_string() };
        *self.errors.entry(key).or_default() += 1;
    }

    /// Merges `other` into `self`.
    pub fn absorb(&mut self, other: ConnLog) {
        self.samples.extend(other.samples);
        self.ops.extend(other.ops);
        self.behind_schedule += other.behind_schedule;
        self.reconnects += other.reconnects;
        for (message, n) in other.errors {
            let key = if self.errors.len() < MAX_ERROR_KINDS || self.errors.contains_key(&message) { message } else { OTHER_ERRORS.to_string() };
            *self.errors.entry(key).or_default() += n;
        }
    }
}

/// Counters the progress line reads while the load runs.
#[derive(Debug, Default)]
pub struct Live {
    sent: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

/// A snapshot of [`Live`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounts {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
}

impl Live {
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    pub fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> LiveCounts {
        LiveCounts {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_bounded() {
        let mut log = ConnLog::default();
        for i in 0..100 {
            log.note_error(&format!("ERR number {i}"));
        }
        log.note_error("ERR number 3");
        assert_eq!(log.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(log.errors["ERR number 3"], 2);
        assert_eq!(log.errors[OTHER_ERRORS], 100 - MAX_ERROR_KINDS as u64);
        let mut total = ConnLog::default();
        total.absorb(log);
        assert_eq!(total.errors.values().sum::<u64>(), 101);
    }
}
