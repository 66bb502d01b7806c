//! What the connections record: a latency [`Sample`] per request and the
//! [`Op`]s of the history, kept per connection (no shared locks on the hot
//! path) and merged once the load has stopped; plus [`Live`] counters for the
//! progress line.
//!
//! Records go into [`Chunks`], never into one growing `Vec`: the thread that
//! records is the one that sends and times the requests, and a `Vec` that
//! doubles copies everything recorded so far (megabytes per connection late
//! in a run) while replies wait unread. Merging the connections' records at
//! the end moved every record twice, up to 370 ms on the load thread while
//! the last replies were still arriving (measured: the "after" window's max
//! in every acceptance run); now it moves only chunk pointers.

use crate::config::Cmd;
use crate::history::{Key, Micros, Op, Outcome};
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
    /// The connection that sent it.
    pub conn: u16,
    /// The (first) key it named.
    pub key: Key,
}

impl Sample {
    pub fn latency(&self) -> Micros {
        self.complete.saturating_sub(self.intended)
    }
}

/// Writes `samples` as CSV to `path`: a header, then one row a request.
pub fn write_samples(path: &std::path::Path, samples: &[Sample]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "intended_us,sent_us,completed_us,command,outcome,connection,key")?;
    for s in samples {
        let outcome = match s.outcome {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        };
        writeln!(out, "{},{},{},{},{outcome},{},{}", s.intended, s.invoke, s.complete, s.cmd.name(), s.conn, s.key.name())?;
    }
    out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
}

/// Distinct error messages kept per connection; the rest are counted under
/// one "other errors" line so a flood of varied errors stays bounded.
const MAX_ERROR_KINDS: usize = 32;
const OTHER_ERRORS: &str = "(other errors)";

/// Everything one connection recorded.
#[derive(Debug, Default)]
pub struct ConnLog {
    pub samples: Chunks<Sample>,
    pub ops: Chunks<Op>,
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
        self.samples.append(other.samples);
        self.ops.append(other.ops);
        self.behind_schedule += other.behind_schedule;
        self.reconnects += other.reconnects;
        for (message, n) in other.errors {
            let key = if self.errors.len() < MAX_ERROR_KINDS || self.errors.contains_key(&message) { message } else { OTHER_ERRORS.to_string() };
            *self.errors.entry(key).or_default() += n;
        }
    }
}

/// Items per chunk of [`Chunks`]: 8192 samples are 256 KiB.
const CHUNK: usize = 8192;

/// An append-only list kept in fixed-size chunks: a push never moves what is
/// already stored, and [`Chunks::append`] moves chunks, not items.
#[derive(Debug)]
pub struct Chunks<T> {
    full: Vec<Vec<T>>,
    current: Vec<T>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { full: Vec::new(), current: Vec::new() }
    }
}

impl<T> Chunks<T> {
    pub fn push(&mut self, item: T) {
        if self.current.len() == self.current.capacity() {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK));
            if !full.is_empty() {
                self.full.push(full);
            }
        }
        self.current.push(item);
    }

    pub fn len(&self) -> usize {
        self.full.iter().map(Vec::len).sum::<usize>() + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `other`'s items after this list's (their chunks, as they are).
    pub fn append(&mut self, mut other: Chunks<T>) {
        if !self.current.is_empty() {
            self.full.push(std::mem::take(&mut self.current));
        }
        self.full.append(&mut other.full);
        self.current = other.current;
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.full.iter().flatten().chain(&self.current)
    }

    /// One `Vec` of every item in order; for after the load has stopped.
    pub fn into_vec(self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.len());
        for chunk in self.full {
            all.extend(chunk);
        }
        all.extend(self.current);
        all
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

    #[test]
    fn samples_are_written_one_row_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.csv");
        let samples = [
            Sample { intended: 10, invoke: 12, complete: 150, cmd: Cmd::Get, outcome: Outcome::Ok, conn: 3, key: Key::Data(7) },
            Sample { intended: 20, invoke: 25, complete: 10_025, cmd: Cmd::Incr, outcome: Outcome::Timeout, conn: 0, key: Key::Counter(2) },
        ];
        write_samples(&path, &samples).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "intended_us,sent_us,completed_us,command,outcome,connection,key\n10,12,150,get,ok,3,ek:7\n20,25,10025,incr,timeout,0,ekc:2\n");
    }

    #[test]
    fn chunks_keep_order_and_never_move_what_they_hold() {
        let mut a = Chunks::default();
        a.push(0u32);
        let first: *const u32 = a.iter().next().unwrap();
        for i in 1..(3 * CHUNK as u32 + 5) {
            a.push(i);
        }
        // A growing Vec would have moved its first item by now.
        assert!(std::ptr::eq(first, a.iter().next().unwrap()));
        let mut b = Chunks::default();
        for i in 0..10u32 {
            b.push(1_000_000 + i);
        }
        let before = a.len();
        a.append(b);
        assert!(std::ptr::eq(first, a.iter().next().unwrap()), "append moves chunks, not items");
        a.push(7);
        assert_eq!(a.len(), before + 11);
        let all = a.into_vec();
        let mut want: Vec<u32> = (0..before as u32).collect();
        want.extend((0..10).map(|i| 1_000_000 + i));
        want.push(7);
        assert_eq!(all, want);
        let mut empty = Chunks::<u32>::default();
        empty.append(Chunks::default());
        assert!(empty.is_empty());
        assert!(empty.into_vec().is_empty());
    }
}
