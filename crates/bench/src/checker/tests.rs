use super::*;
use crate::history::{History, Key, Op, OpKind, Outcome, Val, ValueId};
use proptest::prelude::*;

const K: Key = Key::Data(7);
const C: Key = Key::Counter(0);

fn v(seq: u64) -> Val {
    Val::Written(ValueId { client: 1, seq })
}

fn op(key: Key, kind: OpKind, invoke: u64, complete: u64) -> Op {
    Op { key, kind, invoke, complete, outcome: Outcome::Ok }
}

fn set(seq: u64, invoke: u64, complete: u64) -> Op {
    op(K, OpKind::Write(v(seq)), invoke, complete)
}

fn del(invoke: u64, complete: u64) -> Op {
    op(K, OpKind::Write(Val::Nil), invoke, complete)
}

fn get(val: Val, invoke: u64, complete: u64) -> Op {
    op(K, OpKind::Read(val), invoke, complete)
}

fn readback(val: Val, invoke: u64, complete: u64) -> Op {
    op(K, OpKind::ReadBack(val), invoke, complete)
}

fn timed_out(mut o: Op) -> Op {
    o.outcome = Outcome::Timeout;
    o
}

fn incr(reply: i64, invoke: u64, complete: u64) -> Op {
    op(C, OpKind::Incr(Some(reply)), invoke, complete)
}

fn run(preloaded: bool, ops: Vec<Op>) -> Findings {
    check(&History { preloaded, ops })
}

fn kinds(f: &Findings) -> Vec<AnomalyKind> {
    f.anomalies.iter().map(|a| a.kind).collect()
}

#[test]
fn clean_sequential_history_passes() {
    let f = run(true, vec![get(Val::Preload(7), 1, 2), set(1, 10, 20), get(v(1), 30, 40), del(50, 60), get(Val::Nil, 70, 80), set(2, 90, 100), readback(v(2), 200, 210)]);
    assert_eq!(f.anomalies, vec![]);
    assert_eq!((f.reads_checked, f.writes_acked, f.writes_indeterminate), (4, 3, 0));
}

#[test]
fn overlapping_writes_may_take_effect_in_either_order() {
    // W1 [10,50] and W2 [20,30] overlap: a read after both may see either.
    let f = run(true, vec![set(1, 10, 50), set(2, 20, 30), get(v(1), 60, 70), get(v(2), 55, 65)]);
    // The two reads overlap each other, so they may disagree.
    assert_eq!(f.anomalies, vec![]);
    // A read overlapping a write may see the old or the new value.
    let f = run(true, vec![set(1, 10, 20), set(2, 30, 60), get(v(1), 40, 50), get(v(2), 40, 50)]);
    assert_eq!(f.anomalies, vec![]);
}

#[test]
fn indeterminate_writes_explain_reads_but_are_never_lost() {
    let f = run(true, vec![set(1, 10, 20), timed_out(set(2, 30, 40)), get(v(1), 50, 60), get(v(2), 70, 80), readback(v(2), 200, 210)]);
    assert_eq!(f.anomalies, vec![]);
    assert_eq!(f.writes_indeterminate, 1);
    // The last acknowledged write timed out... and the read-back shows the
    // previous value: allowed, it may never have happened.
    let f = run(true, vec![set(1, 10, 20), timed_out(set(2, 30, 40)), readback(v(1), 200, 210)]);
    assert_eq!(f.anomalies, vec![]);
    // An errored DEL may have happened too.
    let mut d = del(30, 40);
    d.outcome = Outcome::Error;
    let f = run(true, vec![set(1, 10, 20), d, readback(Val::Nil, 200, 210)]);
    assert_eq!(f.anomalies, vec![]);
}

#[test]
fn failed_reads_are_ignored() {
    let f = run(true, vec![set(1, 10, 20), timed_out(get(Val::Nil, 30, 40))]);
    assert_eq!(f.anomalies, vec![]);
    assert_eq!(f.reads_checked, 0);
}

#[test]
fn flags_a_stale_read() {
    let f = run(true, vec![set(1, 10, 20), set(2, 30, 40), get(v(1), 50, 60)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
    assert!(f.anomalies[0].detail.contains("c1#2"), "{}", f.anomalies[0].detail);
    assert_eq!(f.anomalies[0].key, "ek:7");
}

#[test]
fn flags_a_stale_read_of_the_preload_value() {
    let f = run(true, vec![set(1, 10, 20), get(Val::Preload(7), 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
}

#[test]
fn flags_nil_on_a_preloaded_key_that_was_never_deleted() {
    let f = run(true, vec![get(Val::Nil, 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
    let f = run(true, vec![readback(Val::Nil, 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Lost]);
}

#[test]
fn flags_a_stale_nil_after_a_delete_was_overwritten() {
    let f = run(true, vec![del(10, 20), set(1, 30, 40), get(Val::Nil, 50, 60)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
}

#[test]
fn a_write_seen_by_a_read_supersedes_older_values_even_if_it_timed_out() {
    // W2 timed out, but R1 saw it: it happened before R1 completed, so R2
    // (which began after R1 completed) must not see W1 any more.
    let f = run(true, vec![set(1, 10, 20), timed_out(set(2, 30, 40)), get(v(2), 50, 60), get(v(1), 70, 80)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
}

#[test]
fn flags_a_lost_write_in_the_read_back() {
    let f = run(true, vec![set(1, 10, 20), set(2, 30, 40), readback(v(1), 200, 210)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Lost]);
    let f = run(true, vec![set(1, 10, 20), readback(Val::Preload(7), 200, 210)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Lost]);
    // A DEL that was acknowledged and then lost.
    let f = run(true, vec![set(1, 10, 20), del(30, 40), readback(v(1), 200, 210)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Lost]);
}

#[test]
fn flags_values_no_client_wrote() {
    // A value id nobody wrote.
    let f = run(true, vec![set(1, 10, 20), get(v(99), 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::UnknownValue]);
    // Another key's preload value.
    let f = run(true, vec![get(Val::Preload(8), 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::UnknownValue]);
    // Bytes of no run at all, when every key was preloaded.
    let f = run(true, vec![get(Val::Foreign(b"garbage".to_vec().into()), 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::UnknownValue]);
    // Another key's value.
    let other = Op { key: Key::Data(8), ..set(5, 10, 20) };
    let f = run(true, vec![other, get(v(5), 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::UnknownValue]);
}

#[test]
fn without_preload_the_initial_value_is_allowed_until_overwritten() {
    let foreign = || Val::Foreign(b"older run".to_vec().into());
    let f = run(false, vec![get(foreign(), 1, 2), get(Val::Nil, 3, 4), set(1, 10, 20), get(v(1), 30, 40)]);
    assert_eq!(f.anomalies, vec![]);
    let f = run(false, vec![set(1, 10, 20), get(foreign(), 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
    let f = run(false, vec![set(1, 10, 20), get(Val::Nil, 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Stale]);
}

#[test]
fn flags_a_read_of_the_future() {
    let f = run(true, vec![get(v(1), 10, 20), set(1, 30, 40)]);
    assert_eq!(kinds(&f), vec![AnomalyKind::Future]);
    // Touching intervals are not the future: the write may have taken
    // effect at the very instant the read completed.
    let f = run(true, vec![get(v(1), 10, 30), set(1, 30, 40)]);
    assert_eq!(f.anomalies, vec![]);
}

#[test]
fn every_planted_anomaly_is_found_in_one_history() {
    let keyed = |key, mut o: Op| {
        o.key = key;
        o
    };
    let a = Key::Data(1);
    let b = Key::Data(2);
    let c = Key::Data(3);
    let d = Key::Data(4);
    let ops = vec![
        keyed(a, set(1, 10, 20)),
        keyed(a, set(2, 30, 40)),
        keyed(a, get(v(1), 50, 60)), // stale
        keyed(b, set(3, 10, 20)),
        keyed(b, set(4, 30, 40)),
        keyed(b, readback(v(3), 500, 510)), // lost
        keyed(c, get(v(77), 10, 20)),       // unknown
        keyed(d, get(v(5), 10, 20)),        // future
        keyed(d, set(5, 30, 40)),
        // Plus clean traffic around them.
        keyed(c, set(6, 30, 40)),
        keyed(c, get(v(6), 35, 45)),
        keyed(d, readback(v(5), 500, 510)),
    ];
    let f = run(true, ops);
    let mut found = kinds(&f);
    found.sort();
    assert_eq!(found, vec![AnomalyKind::Lost, AnomalyKind::Stale, AnomalyKind::UnknownValue, AnomalyKind::Future]);
}

#[test]
fn counters_clean_with_overlap_and_timeouts() {
    let f = run(true, vec![incr(1, 10, 20), incr(3, 15, 40), incr(2, 16, 30), timed_out(op(C, OpKind::Incr(None), 50, 60)), incr(5, 70, 80), op(C, OpKind::ReadBack(Val::Int(5)), 100, 110)]);
    assert_eq!(f.anomalies, vec![]);
    assert_eq!(f.incrs_acked, 4);
    // The timed-out INCR may never have happened.
    let f = run(true, vec![incr(1, 10, 20), timed_out(op(C, OpKind::Incr(None), 50, 60)), op(C, OpKind::ReadBack(Val::Int(1)), 100, 110)]);
    assert_eq!(f.anomalies, vec![]);
}

#[test]
fn counters_flag_every_planted_anomaly() {
    let rb = |n| op(C, OpKind::ReadBack(Val::Int(n)), 100, 110);
    // Final value below the acknowledged INCRs: lost.
    assert_eq!(kinds(&run(true, vec![incr(1, 10, 20), incr(2, 30, 40), rb(1)])), vec![AnomalyKind::Lost]);
    // Absent although INCRs were acknowledged: lost.
    assert_eq!(kinds(&run(true, vec![incr(1, 10, 20), op(C, OpKind::ReadBack(Val::Nil), 100, 110)])), vec![AnomalyKind::Lost]);
    // Final value above every INCR ever sent: unknown.
    assert_eq!(kinds(&run(true, vec![incr(1, 10, 20), rb(2)])), vec![AnomalyKind::UnknownValue]);
    // Replies going backwards across non-overlapping INCRs: stale. (The
    // timed-out INCR invoked first makes a reply of 2 possible.)
    let early = timed_out(op(C, OpKind::Incr(None), 5, 6));
    assert_eq!(kinds(&run(true, vec![early, incr(2, 10, 20), incr(1, 30, 40), rb(2)])), vec![AnomalyKind::Stale]);
    // The same reply twice: one increment lost.
    assert_eq!(kinds(&run(true, vec![incr(1, 10, 20), incr(1, 15, 25), rb(2)])), vec![AnomalyKind::Lost]);
    // A reply counting an INCR that was not sent yet: future.
    let late = timed_out(op(C, OpKind::Incr(None), 30, 40));
    assert_eq!(kinds(&run(true, vec![incr(2, 10, 20), late])), vec![AnomalyKind::Future]);
    // Not a number at all.
    assert_eq!(kinds(&run(true, vec![incr(1, 10, 20), op(C, OpKind::ReadBack(Val::Foreign(b"x".to_vec().into())), 100, 110)])), vec![AnomalyKind::UnknownValue]);
}

// ---- Property: every linearizable history passes ----

#[derive(Debug, Clone)]
enum Action {
    Set,
    Del,
    Get,
    Incr,
}

#[derive(Debug, Clone)]
struct Step {
    action: Action,
    key: u32,
    /// How far invoke lies before, and complete after, the linearization point.
    lead: u64,
    lag: u64,
    /// 0 = acknowledged, 1 = timed out and applied, 2 = timed out and not applied.
    fate: u8,
}

fn step() -> impl Strategy<Value = Step> {
    let action = prop_oneof![Just(Action::Set), Just(Action::Del), Just(Action::Get), Just(Action::Incr)];
    (action, 0..3u32, 0..250u64, 0..250u64, prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)])
        .prop_map(|(action, key, lead, lag, fate)| Step { action, key, lead, lag, fate })
}

/// Runs `steps` against a simulated register per key (and one counter),
/// linearized at 100 µs intervals, and records what clients would see.
fn simulate(preloaded: bool, foreign_initial: bool, steps: &[Step]) -> History {
    let mut state: Vec<Val> = (0..3)
        .map(|i| if preloaded { Val::Preload(i) } else if foreign_initial { Val::Foreign(b"before".to_vec().into()) } else { Val::Nil })
        .collect();
    let mut counter = 0i64;
    let mut ops = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let lin = 1_000 + 100 * i as u64;
        let (invoke, mut complete) = (lin - s.lead, lin + s.lag);
        let applied = s.fate != 2;
        let outcome = if s.fate == 0 { Outcome::Ok } else { Outcome::Timeout };
        if s.fate != 0 {
            // A client gives up at an arbitrary time after invoking.
            complete = invoke + s.lag;
        }
        let key = Key::Data(s.key);
        let kind = match s.action {
            Action::Set => {
                let val = v(i as u64);
                if applied {
                    state[s.key as usize] = val.clone();
                }
                OpKind::Write(val)
            }
            Action::Del => {
                if applied {
                    state[s.key as usize] = Val::Nil;
                }
                OpKind::Write(Val::Nil)
            }
            Action::Get => OpKind::Read(if s.fate == 0 { state[s.key as usize].clone() } else { Val::Nil }),
            Action::Incr => {
                if applied {
                    counter += 1;
                }
                ops.push(Op { key: C, kind: OpKind::Incr((s.fate == 0).then_some(counter)), invoke, complete, outcome });
                continue;
            }
        };
        ops.push(Op { key, kind, invoke, complete, outcome });
    }
    let end = 1_000 + 100 * steps.len() as u64 + 1_000;
    for (k, val) in state.into_iter().enumerate() {
        ops.push(Op { key: Key::Data(k as u32), kind: OpKind::ReadBack(val), invoke: end, complete: end + 10, outcome: Outcome::Ok });
    }
    ops.push(Op { key: C, kind: OpKind::ReadBack(Val::Int(counter)), invoke: end, complete: end + 10, outcome: Outcome::Ok });
    History { preloaded, ops }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn linearizable_histories_always_pass(preloaded: bool, foreign: bool, steps in prop::collection::vec(step(), 0..80)) {
        let history = simulate(preloaded, foreign, &steps);
        let f = check(&history);
        prop_assert!(f.anomalies.is_empty(), "{:#?}", f.anomalies);
    }

    #[test]
    fn dropping_an_acknowledged_write_from_the_store_is_noticed(steps in prop::collection::vec(step(), 1..40)) {
        // Simulate, then pretend the store lost every write: the read-back
        // shows the preload values. A write known to have happened (it was
        // acknowledged, or a read returned its value) must be reported lost.
        let mut history = simulate(true, false, &steps);
        let seen: Vec<Val> = history.ops.iter().filter(|o| o.outcome == Outcome::Ok).filter_map(|o| if let OpKind::Read(v) = &o.kind { Some(v.clone()) } else { None }).collect();
        let acked_write = history.ops.iter().any(|o| match &o.kind {
            OpKind::Write(v) => o.outcome == Outcome::Ok || (matches!(v, Val::Written(_)) && seen.contains(v)),
            _ => false,
        });
        for o in &mut history.ops {
            if let (Key::Data(k), OpKind::ReadBack(val)) = (o.key, &mut o.kind) {
                *val = Val::Preload(k);
            }
        }
        let f = check(&history);
        prop_assert_eq!(acked_write, f.count(AnomalyKind::Lost) > 0, "{:#?}", f.anomalies);
    }
}
