//! The correctness checker: finds, in a [`History`], the anomalies a
//! linearizable key-value store can never show. Pure; no I/O.
//!
//! Nothing here knows the order in which the store applied writes; the only
//! order used is real time. A write `A` is *before* a write `B` when `A`
//! finished before `B` started (`A.complete < B.invoke`); overlapping
//! operations may have taken effect in either order, so they never produce
//! an anomaly.
//!
//! Data keys (SET / DEL / GET / MGET) are registers. A read returning value
//! `v` is explained by the write(s) that wrote `v` (one SET, since every SET
//! writes a unique value; any DEL or the initial state for nil):
//! - **unknown value**: no write of this run wrote `v`, and it is not the
//!   preload value (or, without `--preload`, an initial value nobody has
//!   overwritten yet);
//! - **future**: every write of `v` was invoked after the read completed;
//! - **stale**: for every write `W` of `v` there is a write `W2` that is
//!   known to have taken effect before the read began and that started after
//!   `W` took effect (`W.done < W2.invoke`, `W2.done < R.invoke`);
//! - **lost**: the same as stale, for the final read-back: an acknowledged
//!   write is not visible once all traffic has stopped.
//!
//! A write's *done* time is when it is known to have taken effect: its
//! acknowledgement, or the completion of the first read that saw its
//! (unique) value, whichever is earlier. Writes that errored or timed out are
//! indeterminate: they may or may not have happened, so until a read sees
//! them their done time is "never" and they explain reads but never make
//! another read stale.
//!
//! Counter keys (INCR) are checked arithmetically: replies are distinct and
//! increase across non-overlapping INCRs, no reply exceeds the number of
//! INCRs invoked by then, and the final value lies between the acknowledged
//! INCRs (and the highest reply seen) and all INCRs that may have happened.

use crate::history::{History, Key, Micros, Op, OpKind, Outcome, Val, ValueId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// An acknowledged write is not visible in the final read-back.
    Lost,
    /// A read returned a value older than one whose write finished first.
    Stale,
    /// A read returned a value no client wrote.
    UnknownValue,
    /// A read returned a value whose write started after the read finished.
    Future,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 4] = [AnomalyKind::Lost, AnomalyKind::Stale, AnomalyKind::UnknownValue, AnomalyKind::Future];

    pub fn label(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "lost write",
            AnomalyKind::Stale => "stale read",
            AnomalyKind::UnknownValue => "value no client wrote",
            AnomalyKind::Future => "read of the future",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub key: String,
    /// What was seen and why it is impossible, with times in seconds.
    pub detail: String,
}

/// The checker's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub anomalies: Vec<Anomaly>,
    /// Successful reads checked (GET, each key of an MGET, read-back).
    pub reads_checked: u64,
    pub writes_acked: u64,
    /// Writes (SET, DEL, INCR) that errored or timed out.
    pub writes_indeterminate: u64,
    pub incrs_acked: u64,
}

impl Findings {
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.anomalies.iter().filter(|a| a.kind == kind).count()
    }
}

/// Checks every key of `history` independently.
pub fn check(history: &History) -> Findings {
    let mut by_key: HashMap<Key, Vec<&Op>> = HashMap::new();
    for op in &history.ops {
        by_key.entry(op.key).or_default().push(op);
    }
    let mut keys: Vec<_> = by_key.into_iter().collect();
    // Deterministic output order.
    keys.sort_unstable_by_key(|(k, _)| *k);
    let mut findings = Findings::default();
    for (key, ops) in keys {
        for op in &ops {
            tally(op, &mut findings);
        }
        match key {
            Key::Data(index) => Register::build(index, history.preloaded, &ops).check(key, &ops, &mut findings),
            Key::Counter(_) => check_counter(key, &ops, &mut findings),
        }
    }
    findings
}

fn tally(op: &Op, f: &mut Findings) {
    match (&op.kind, op.outcome) {
        (OpKind::Read(_) | OpKind::ReadBack(_), Outcome::Ok) => f.reads_checked += 1,
        (OpKind::Read(_) | OpKind::ReadBack(_), _) => {}
        (OpKind::Write(_), Outcome::Ok) => f.writes_acked += 1,
        (OpKind::Incr(_), Outcome::Ok) => {
            f.writes_acked += 1;
            f.incrs_acked += 1;
        }
        (OpKind::Write(_) | OpKind::Incr(_), _) => f.writes_indeterminate += 1,
    }
}

/// Signed times, so the virtual writes of the initial state sit before 0.
type Time = i64;
const NEVER: Time = Time::MAX;

fn t(m: Micros) -> Time {
    Time::try_from(m).unwrap_or(NEVER - 1)
}

fn secs(t: Time) -> String {
    if t < 0 { "start".to_string() } else { format!("{:.6}s", t as f64 / 1e6) }
}

struct Write {
    val: Val,
    invoke: Time,
    /// Acknowledgement time, if acknowledged.
    acked: Option<Time>,
    /// When the write is known to have taken effect; [`NEVER`] if unknown.
    done: Time,
}

/// One data key's writes, indexed for the stale test.
struct Register {
    writes: Vec<Write>,
    by_value: HashMap<ValueId, usize>,
    /// Writes of nil: DELs and the initial absent state.
    nils: Vec<usize>,
    /// The preload write, when preloaded.
    preload: Option<(u32, usize)>,
    /// Without preload: the unknown initial state, which explains any value
    /// this run did not write (and nil) until something overwrites it.
    initial: Option<usize>,
    /// Writes known to have taken effect, ascending by invoke time, and the
    /// earliest `done` (with its write) among each suffix of that order.
    order: Vec<usize>,
    suffix_min: Vec<(Time, usize)>,
}

impl Register {
    fn build(index: u32, preloaded: bool, ops: &[&Op]) -> Register {
        let mut r = Register { writes: Vec::new(), by_value: HashMap::new(), nils: Vec::new(), preload: None, initial: None, order: Vec::new(), suffix_min: Vec::new() };
        // The state before the run: with preload, "absent" then overwritten
        // by the preload value; without, one unknown initial state.
        let absent = r.push(Val::Nil, -2, Some(-2));
        r.nils.push(absent);
        if preloaded {
            let preload = r.push(Val::Preload(index), -1, Some(-1));
            r.preload = Some((index, preload));
        } else {
            r.initial = Some(0);
        }
        for op in ops {
            if let OpKind::Write(val) = &op.kind {
                let i = r.push(val.clone(), t(op.invoke), op.outcome.acked().then(|| t(op.complete)));
                match val {
                    Val::Written(id) => {
                        r.by_value.entry(*id).or_insert(i);
                    }
                    Val::Nil => r.nils.push(i),
                    _ => {}
                }
            }
        }
        r.learn_from_reads(ops);
        r.index();
        r
    }

    fn push(&mut self, val: Val, invoke: Time, acked: Option<Time>) -> usize {
        self.writes.push(Write { val, invoke, acked, done: acked.unwrap_or(NEVER) });
        self.writes.len() - 1
    }

    /// A read that saw a unique value proves its write took effect before
    /// the read completed, even if the write itself timed out.
    fn learn_from_reads(&mut self, ops: &[&Op]) {
        for op in ops {
            let Some(val) = read_value(op) else { continue };
            let unique = match val {
                Val::Written(id) => self.by_value.get(id).copied(),
                Val::Preload(i) => self.preload.filter(|(p, _)| p == i).map(|(_, w)| w),
                _ => None,
            };
            if let Some(w) = unique {
                let write = &mut self.writes[w];
                // A read that finished before the write began is an anomaly
                // of its own; it must not make the write look earlier.
                if t(op.complete) >= write.invoke {
                    write.done = write.done.min(t(op.complete));
                }
            }
        }
    }

    fn index(&mut self) {
        self.order = (0..self.writes.len()).filter(|&w| self.writes[w].done < NEVER).collect();
        self.order.sort_by_key(|&w| self.writes[w].invoke);
        self.suffix_min = vec![(NEVER, 0); self.order.len()];
        let mut best = (NEVER, 0);
        for (j, &w) in self.order.iter().enumerate().rev() {
            best = best.min((self.writes[w].done, w));
            self.suffix_min[j] = best;
        }
    }

    /// The writes that could have produced `val`.
    fn candidates(&self, val: &Val) -> Vec<usize> {
        match val {
            Val::Written(id) => self.by_value.get(id).copied().into_iter().collect(),
            Val::Preload(i) => self.preload.filter(|(p, _)| p == i).map(|(_, w)| w).into_iter().collect(),
            Val::Nil => self.nils.clone(),
            Val::Foreign(_) => self.initial.into_iter().collect(),
            Val::Int(_) => Vec::new(),
        }
    }

    /// A write that took effect after `w` did and before `before`: proof that
    /// a read starting at `before` must not see `w`.
    fn superseded_by(&self, w: usize, before: Time) -> Option<usize> {
        let after = self.writes[w].done;
        if after == NEVER {
            return None;
        }
        let j = self.order.partition_point(|&x| self.writes[x].invoke <= after);
        self.suffix_min.get(j).filter(|(done, _)| *done < before).map(|&(_, w2)| w2)
    }

    fn check(&self, key: Key, ops: &[&Op], f: &mut Findings) {
        for op in ops {
            let Some(val) = read_value(op) else { continue };
            if let Some((kind, detail)) = self.judge(op, val) {
                f.anomalies.push(Anomaly { kind, key: key.name(), detail });
            }
        }
    }

    fn judge(&self, op: &Op, val: &Val) -> Option<(AnomalyKind, String)> {
        let (inv, done) = (t(op.invoke), t(op.complete));
        let what = format!("{} [{}, {}] returned {val}", read_name(op), secs(inv), secs(done));
        let candidates = self.candidates(val);
        if candidates.is_empty() {
            return Some((AnomalyKind::UnknownValue, format!("{what}, which no write of this run produced")));
        }
        let possible: Vec<usize> = candidates.into_iter().filter(|&w| self.writes[w].invoke <= done).collect();
        let Some(&first) = possible.first() else {
            let w = &self.writes[self.candidates(val)[0]];
            return Some((AnomalyKind::Future, format!("{what}, written by a write invoked at {}, after the read completed", secs(w.invoke))));
        };
        let mut witness = None;
        for &w in &possible {
            witness = Some(self.superseded_by(w, inv)?);
        }
        let w2 = &self.writes[witness?];
        let kind = if matches!(op.kind, OpKind::ReadBack(_)) { AnomalyKind::Lost } else { AnomalyKind::Stale };
        let w = &self.writes[first];
        Some((
            kind,
            format!(
                "{what} (written at {}, done by {}), but {} was written at {} and {} at {}, before the read began",
                secs(w.invoke),
                secs(w.done),
                w2.val,
                secs(w2.invoke),
                if w2.acked == Some(w2.done) { "acknowledged" } else { "seen by a read" },
                secs(w2.done)
            ),
        ))
    }
}

fn read_value(op: &Op) -> Option<&Val> {
    match (&op.kind, op.outcome) {
        (OpKind::Read(v) | OpKind::ReadBack(v), Outcome::Ok) => Some(v),
        _ => None,
    }
}

fn read_name(op: &Op) -> &'static str {
    if matches!(op.kind, OpKind::ReadBack(_)) { "final read-back" } else { "read" }
}

/// One INCR key's operations, indexed. Its initial value is absent (0): the
/// run resets the counter keys before the load.
struct Counter {
    /// Acknowledged INCRs as (complete, invoke, reply), ascending.
    acked: Vec<(Time, Time, i64)>,
    /// The highest reply (and its index) among `acked[..=i]`.
    prefix_max: Vec<(i64, usize)>,
    /// Invoke times of every INCR, acknowledged or not, ascending.
    invokes: Vec<Time>,
}

impl Counter {
    fn build(ops: &[&Op]) -> Counter {
        let mut acked: Vec<(Time, Time, i64)> = ops
            .iter()
            .filter_map(|op| match (&op.kind, op.outcome) {
                (OpKind::Incr(Some(v)), Outcome::Ok) => Some((t(op.complete), t(op.invoke), *v)),
                _ => None,
            })
            .collect();
        acked.sort_unstable();
        let mut best = (i64::MIN, 0usize);
        let prefix_max = acked.iter().enumerate().map(|(i, a)| {
            best = best.max((a.2, i));
            best
        });
        let prefix_max = prefix_max.collect();
        let mut invokes: Vec<Time> = ops.iter().filter(|op| matches!(op.kind, OpKind::Incr(_))).map(|op| t(op.invoke)).collect();
        invokes.sort_unstable();
        Counter { acked, prefix_max, invokes }
    }

    /// INCRs invoked at or before `time`: an upper bound on the counter then.
    fn invoked_by(&self, time: Time) -> i64 {
        self.invokes.partition_point(|&i| i <= time) as i64
    }

    /// How many INCRs were acknowledged before `time`, and the highest reply
    /// (with its index) among them.
    fn before(&self, time: Time) -> (usize, Option<(i64, usize)>) {
        let n = self.acked.partition_point(|a| a.0 < time);
        (n, n.checked_sub(1).map(|i| self.prefix_max[i]))
    }

    fn check_replies(&self, key: Key, f: &mut Findings) {
        let mut report = |kind, detail| f.anomalies.push(Anomaly { kind, key: key.name(), detail });
        let mut seen: HashMap<i64, Time> = HashMap::new();
        for &(done, inv, v) in &self.acked {
            let at = format!("INCR [{}, {}] returned {v}", secs(inv), secs(done));
            if v < 1 {
                report(AnomalyKind::UnknownValue, format!("{at}, below 1 on a counter that starts absent"));
            } else if v > self.invoked_by(done) {
                report(AnomalyKind::Future, format!("{at}, but only {} INCRs had been invoked by then", self.invoked_by(done)));
            } else if let Some(other) = seen.insert(v, inv) {
                report(AnomalyKind::Lost, format!("{at}, as did the INCR invoked at {}: one increment was lost", secs(other)));
            } else if let (_, Some((max, i))) = self.before(inv)
                && max >= v
            {
                report(AnomalyKind::Stale, format!("{at}, but an INCR finished at {} had already returned {max}", secs(self.acked[i].0)));
            }
        }
    }

    fn check_reads(&self, key: Key, ops: &[&Op], f: &mut Findings) {
        let mut report = |kind, detail| f.anomalies.push(Anomaly { kind, key: key.name(), detail });
        for op in ops {
            let Some(val) = read_value(op) else { continue };
            let (inv, done) = (t(op.invoke), t(op.complete));
            let what = format!("{} [{}, {}] returned {val}", read_name(op), secs(inv), secs(done));
            let lost = if matches!(op.kind, OpKind::ReadBack(_)) { AnomalyKind::Lost } else { AnomalyKind::Stale };
            let n = match val {
                Val::Nil => 0,
                Val::Int(n) => *n,
                _ => {
                    report(AnomalyKind::UnknownValue, format!("{what}, not a counter value"));
                    continue;
                }
            };
            let (finished, max) = self.before(inv);
            if n > self.invokes.len() as i64 {
                report(AnomalyKind::UnknownValue, format!("{what}, above the {} INCRs ever sent", self.invokes.len()));
            } else if n > self.invoked_by(done) {
                report(AnomalyKind::Future, format!("{what}, but only {} INCRs had been invoked by then", self.invoked_by(done)));
            } else if (n as usize) < finished {
                report(lost, format!("{what}, but {finished} INCRs were acknowledged before it began"));
            } else if let Some((max, _)) = max.filter(|(max, _)| *max > n) {
                report(lost, format!("{what}, but an INCR acknowledged before it began had returned {max}"));
            }
        }
    }
}

fn check_counter(key: Key, ops: &[&Op], f: &mut Findings) {
    let counter = Counter::build(ops);
    counter.check_replies(key, f);
    counter.check_reads(key, ops, f);
}

#[cfg(test)]
mod tests;
