use super::*;
use proptest::prelude::*;

fn new() -> Migration {
    Migration::new("m1", 7, 1, 2, Limits::default(), 0)
}

fn ok(m: &mut Migration, e: Event) -> Vec<Action> {
    step(m, e.clone(), 100).unwrap_or_else(|err| panic!("{e:?} rejected: {err}"))
}

/// Drives a migration to READY_FOR_CUTOVER.
fn ready() -> Migration {
    let mut m = new();
    ok(&mut m, Event::Start);
    ok(&mut m, Event::Prepared { token: 9, source_log_pos: 40 });
    ok(&mut m, Event::ChunkCopied { cursor: None, keys: 1, bytes: 10, done: true });
    ok(&mut m, Event::CaughtUp { applied_pos: 50, lag: 0 });
    m
}

fn cutting_over() -> Migration {
    let mut m = ready();
    ok(&mut m, Event::Verified { matched: true, detail: String::new(), target_log_pos: 0 });
    m
}

fn completed() -> Migration {
    let mut m = cutting_over();
    ok(&mut m, Event::CutoverDone { pause_ms: 3, reverse_log_pos: 12 });
    m
}

/// Until the flip, the destination's log holds only copies of source
/// changes, so its position at verification is where reverse capture of a
/// cutover finished after a crash, or a rollback of it, must start.
#[test]
fn verification_records_where_reverse_capture_starts() {
    let mut m = ready();
    ok(&mut m, Event::Verified { matched: true, detail: String::new(), target_log_pos: 30 });
    assert_eq!((m.phase, m.reverse_log_pos), (Phase::CuttingOver, 30));
    assert_eq!(ok(&mut m, Event::Failed { error: "destination gone".into() }), vec![Action::RollBack { from_pos: 30 }]);
}

#[test]
fn happy_path_issues_each_phases_work() {
    let mut m = new();
    assert_eq!(ok(&mut m, Event::Start), vec![Action::Prepare]);
    assert_eq!(ok(&mut m, Event::Prepared { token: 9, source_log_pos: 40 }), vec![Action::CopyChunk { cursor: None }]);
    let c1 = Some(Bytes::from_static(b"k1"));
    let a = ok(&mut m, Event::ChunkCopied { cursor: c1.clone(), keys: 10, bytes: 100, done: false });
    assert_eq!(a, vec![Action::CopyChunk { cursor: c1 }]);
    let a = ok(&mut m, Event::ChunkCopied { cursor: Some(Bytes::from_static(b"k2")), keys: 5, bytes: 50, done: true });
    assert_eq!(a, vec![Action::CatchUp { from_pos: 40 }]);
    assert_eq!((m.keys_copied, m.bytes_copied), (15, 150));
    assert_eq!(ok(&mut m, Event::CaughtUp { applied_pos: 45, lag: 1000 }), vec![Action::CatchUp { from_pos: 45 }]);
    assert_eq!(ok(&mut m, Event::CaughtUp { applied_pos: 1045, lag: 3 }), vec![Action::Verify]);
    assert_eq!(m.phase, Phase::ReadyForCutover);
    assert_eq!(ok(&mut m, Event::Verified { matched: true, detail: String::new(), target_log_pos: 0 }), vec![Action::Cutover { from_pos: 1045 }]);
    assert_eq!(ok(&mut m, Event::CutoverDone { pause_ms: 4, reverse_log_pos: 77 }), vec![Action::ReverseCapture { from_pos: 77 }]);
    assert_eq!(m.bake_until_ms, Some(100 + m.limits.bake_ms));
    assert_eq!(step(&mut m, Event::Tick, 101).unwrap(), vec![]);
    assert_eq!(m.phase, Phase::Completed);
    let bake_end = 100 + m.limits.bake_ms;
    assert_eq!(step(&mut m, Event::Tick, bake_end).unwrap(), vec![Action::DropSource]);
    assert_eq!(ok(&mut m, Event::Cleaned), vec![Action::ReleaseLock]);
    assert_eq!(m.phase, Phase::Done);
    let phases: Vec<Phase> = m.history.iter().map(|(p, _)| *p).collect();
    use Phase::*;
    assert_eq!(phases, vec![Pending, Preparing, Copying, CatchingUp, ReadyForCutover, CuttingOver, Completed, CleaningUp, Done]);
}

#[test]
fn failure_before_cutover_cleans_the_destination_and_keeps_the_source() {
    for advance in 0..4 {
        let mut m = new();
        let events = [
            Event::Start,
            Event::Prepared { token: 1, source_log_pos: 0 },
            Event::ChunkCopied { cursor: None, keys: 0, bytes: 0, done: true },
            Event::CaughtUp { applied_pos: 0, lag: 0 },
        ];
        for e in events.iter().take(advance + 1) {
            ok(&mut m, e.clone());
        }
        let a = ok(&mut m, Event::Failed { error: "node 2 gone".into() });
        assert_eq!(a, vec![Action::Abort, Action::ReleaseLock], "after {advance} steps");
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(m.error.as_deref(), Some("node 2 gone"));
        assert_eq!(resume_actions(&m), vec![Action::Abort, Action::ReleaseLock]);
        ok(&mut m, Event::Cleaned);
        assert_eq!(resume_actions(&m), vec![]);
    }
}

#[test]
fn failure_during_cutover_rolls_back() {
    let mut m = cutting_over();
    assert_eq!(ok(&mut m, Event::Failed { error: "x".into() }), vec![Action::RollBack { from_pos: 0 }]);
    assert_eq!(m.phase, Phase::RollingBack);
    assert_eq!(ok(&mut m, Event::RolledBack), vec![Action::Abort, Action::ReleaseLock]);
    assert_eq!(m.phase, Phase::RolledBack);
}

#[test]
fn cutover_timeouts_return_to_catching_up_then_fail() {
    let mut m = cutting_over();
    m.limits.cutover_attempts_max = 2;
    assert_eq!(ok(&mut m, Event::CutoverTimedOut), vec![Action::CatchUp { from_pos: 50 }]);
    ok(&mut m, Event::CaughtUp { applied_pos: 60, lag: 0 });
    ok(&mut m, Event::Verified { matched: true, detail: String::new(), target_log_pos: 0 });
    assert_eq!(m.cutover_attempts, 2);
    assert_eq!(ok(&mut m, Event::CutoverTimedOut), vec![Action::Abort, Action::ReleaseLock]);
    assert_eq!(m.phase, Phase::Failed);
}

#[test]
fn verification_mismatch_catches_up_again() {
    let mut m = ready();
    let a = ok(&mut m, Event::Verified { matched: false, detail: "3 keys differ".into(), target_log_pos: 0 });
    assert_eq!(a, vec![Action::CatchUp { from_pos: 50 }]);
    assert_eq!(m.phase, Phase::CatchingUp);
}

#[test]
fn approval_gate_holds_cutover_until_approved() {
    let mut m = ready();
    m.limits.needs_approval = true;
    assert_eq!(ok(&mut m, Event::Verified { matched: true, detail: String::new(), target_log_pos: 0 }), vec![]);
    assert_eq!(m.phase, Phase::ReadyForCutover);
    assert_eq!(resume_actions(&m), vec![], "a verified migration waits, it does not re-verify");
    assert_eq!(ok(&mut m, Event::Approved), vec![Action::Cutover { from_pos: 50 }]);
}

#[test]
fn truncated_log_restarts_the_copy_from_the_new_position() {
    let mut m = ready();
    ok(&mut m, Event::Verified { matched: false, detail: String::new(), target_log_pos: 0 });
    let a = ok(&mut m, Event::LogTruncated { source_log_pos: 900 });
    assert_eq!(a, vec![Action::CopyChunk { cursor: None }]);
    assert_eq!((m.phase, m.snapshot_log_pos, m.applied_log_pos), (Phase::Copying, 900, 900));
}

#[test]
fn pause_and_resume_return_to_the_same_work() {
    let mut m = new();
    ok(&mut m, Event::Start);
    ok(&mut m, Event::Prepared { token: 1, source_log_pos: 5 });
    ok(&mut m, Event::ChunkCopied { cursor: Some(Bytes::from_static(b"c")), keys: 1, bytes: 1, done: false });
    assert_eq!(ok(&mut m, Event::Pause { reason: "node 2 p99 1.4x".into() }), vec![]);
    assert_eq!(m.phase, Phase::Paused);
    assert_eq!(resume_actions(&m), vec![]);
    assert!(step(&mut m, Event::ChunkCopied { cursor: None, keys: 0, bytes: 0, done: true }, 1).is_err());
    assert_eq!(ok(&mut m, Event::Resume), vec![Action::CopyChunk { cursor: Some(Bytes::from_static(b"c")) }]);
    assert_eq!((m.phase, m.pause_reason.clone()), (Phase::Copying, None));
}

#[test]
fn cutover_and_bake_cannot_be_paused_or_cancelled() {
    let mut m = cutting_over();
    assert!(step(&mut m, Event::Pause { reason: "x".into() }, 1).is_err());
    assert!(step(&mut m, Event::Cancel, 1).is_err());
    let mut m = completed();
    assert!(step(&mut m, Event::Cancel, 1).is_err());
    assert_eq!(m.phase, Phase::Completed);
}

#[test]
fn cancel_before_start_needs_no_cleanup() {
    let mut m = new();
    assert_eq!(ok(&mut m, Event::Cancel), vec![]);
    assert_eq!((m.phase, m.cleanup_done), (Phase::Cancelled, true));
    let mut m = ready();
    assert_eq!(ok(&mut m, Event::Cancel), vec![Action::Abort, Action::ReleaseLock]);
}

#[test]
fn rollback_during_bake_hands_the_partition_back() {
    let mut m = completed();
    ok(&mut m, Event::ReverseCaughtUp { applied_pos: 30 });
    assert_eq!(ok(&mut m, Event::Rollback), vec![Action::RollBack { from_pos: 30 }]);
    assert_eq!(ok(&mut m, Event::RolledBack), vec![Action::Abort, Action::ReleaseLock]);
    assert!(m.phase.is_terminal());
}

#[test]
fn out_of_place_or_stale_events_change_nothing() {
    let mut m = ready();
    let before = m.clone();
    assert!(step(&mut m, Event::ChunkCopied { cursor: None, keys: 1, bytes: 1, done: true }, 5).is_err());
    assert!(step(&mut m, Event::CutoverDone { pause_ms: 1, reverse_log_pos: 1 }, 5).is_err());
    assert!(step(&mut m, Event::RolledBack, 5).is_err());
    assert_eq!(m, before);
    let mut m = new();
    ok(&mut m, Event::Start);
    ok(&mut m, Event::Prepared { token: 1, source_log_pos: 10 });
    ok(&mut m, Event::ChunkCopied { cursor: None, keys: 0, bytes: 0, done: true });
    ok(&mut m, Event::CaughtUp { applied_pos: 20, lag: 100 });
    let before = m.clone();
    assert!(step(&mut m, Event::CaughtUp { applied_pos: 15, lag: 0 }, 5).is_err(), "positions never go back");
    assert_eq!(m, before);
}

#[test]
fn resume_actions_cover_every_phase() {
    assert_eq!(resume_actions(&new()), vec![]);
    assert_eq!(resume_actions(&ready()), vec![Action::Verify]);
    assert_eq!(resume_actions(&cutting_over()), vec![Action::Cutover { from_pos: 50 }]);
    assert_eq!(resume_actions(&completed()), vec![Action::ReverseCapture { from_pos: 12 }]);
    let mut m = completed();
    step(&mut m, Event::Tick, u64::MAX).unwrap();
    assert_eq!(resume_actions(&m), vec![Action::DropSource]);
}

/// A restarted driver takes the lock again before any phase work, in every
/// phase that has a token and work left, paused ones included (their work
/// resumes later under the new token); never before the first lock or once
/// everything is finished.
#[test]
fn restart_relocks_first_while_work_remains() {
    assert_eq!(restart_actions(&new()), vec![]);
    assert_eq!(restart_actions(&cutting_over()), vec![Action::Relock, Action::Cutover { from_pos: 50 }]);
    let mut paused = ready();
    ok(&mut paused, Event::Pause { reason: "op".into() });
    assert_eq!(restart_actions(&paused), vec![Action::Relock]);
    let mut failed = ready();
    ok(&mut failed, Event::Failed { error: "x".into() });
    assert_eq!(restart_actions(&failed), vec![Action::Relock, Action::Abort, Action::ReleaseLock]);
    ok(&mut failed, Event::Cleaned);
    assert_eq!(restart_actions(&failed), vec![]);
    let mut done = completed();
    step(&mut done, Event::Tick, u64::MAX).unwrap();
    ok(&mut done, Event::Cleaned);
    assert_eq!(done.phase, Phase::Done);
    assert_eq!(restart_actions(&done), vec![]);
}

/// Only a newer token replaces the stored one, and only while work remains.
#[test]
fn relocked_takes_only_newer_tokens() {
    let mut m = completed();
    assert_eq!(ok(&mut m, Event::Relocked { token: 20 }), vec![]);
    assert_eq!((m.token, m.phase), (Some(20), Phase::Completed));
    let before = m.clone();
    assert!(step(&mut m, Event::Relocked { token: 20 }, 5).is_err());
    assert!(step(&mut m, Event::Relocked { token: 3 }, 5).is_err());
    assert_eq!(m, before);
    let mut fresh = new();
    assert!(step(&mut fresh, Event::Relocked { token: 30 }, 5).is_err(), "no lock was ever taken");
}

#[test]
fn state_round_trips_through_json() {
    let m = completed();
    let json = serde_json::to_vec(&m).unwrap();
    assert_eq!(serde_json::from_slice::<Migration>(&json).unwrap(), m);
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Start),
        (0u64..5, 0u64..100).prop_map(|(token, pos)| Event::Prepared { token, source_log_pos: pos }),
        (any::<bool>(), 0u64..10).prop_map(|(done, keys)| Event::ChunkCopied { cursor: None, keys, bytes: keys * 10, done }),
        (0u64..200, 0u64..200).prop_map(|(applied_pos, lag)| Event::CaughtUp { applied_pos, lag }),
        (0u64..200).prop_map(|p| Event::LogTruncated { source_log_pos: p }),
        any::<bool>().prop_map(|matched| Event::Verified { matched, detail: String::new(), target_log_pos: 0 }),
        Just(Event::Approved),
        (0u64..100).prop_map(|p| Event::CutoverDone { pause_ms: p, reverse_log_pos: p }),
        Just(Event::CutoverTimedOut),
        Just(Event::Tick),
        Just(Event::Cleaned),
        Just(Event::RolledBack),
        Just(Event::Pause { reason: "r".into() }),
        Just(Event::Resume),
        Just(Event::Cancel),
        Just(Event::Rollback),
        Just(Event::Failed { error: "e".into() }),
        (0u64..10).prop_map(|token| Event::Relocked { token }),
    ]
}

proptest! {
    /// Whatever arrives, in whatever order: rejected events leave the state
    /// untouched, the history ends in the current phase, terminal phases are
    /// never left, and a migration that reached DONE had cut over.
    #[test]
    fn random_event_sequences_keep_the_invariants(events in proptest::collection::vec(any_event(), 0..60)) {
        let mut m = new();
        for (i, e) in events.into_iter().enumerate() {
            let before = m.clone();
            let result = step(&mut m, e, i as u64 * 1_000_000);
            if result.is_err() {
                prop_assert_eq!(&m, &before);
            }
            prop_assert_eq!(m.history.last().map(|h| h.0), Some(m.phase));
            if before.phase.is_terminal() {
                prop_assert_eq!(m.phase, before.phase);
            }
            if m.phase == Phase::Done {
                prop_assert!(m.history.iter().any(|(p, _)| *p == Phase::Completed));
            }
            prop_assert_eq!(m.phase == Phase::Paused, m.paused_from.is_some());
        }
    }
}
