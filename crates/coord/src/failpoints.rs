//! Failpoints (tikv/fail-rs) at the migration driver's state boundaries, for
//! crash simulation (G7) and zombie-coordinator tests (G10).
//!
//! Names:
//! - `coord-before-save-<phase>`, `coord-after-save-<phase>`: just before
//!   and just after the driver persists a state in `<phase>`, the phase's
//!   name in lower case with dashes (`preparing`, `copying`, `catching-up`,
//!   `ready-for-cutover`, `cutting-over`, `completed`, `cleaning-up`,
//!   `done`, `paused`, `failed`, `cancelled`, `rolling-back`,
//!   `rolled-back`). Checkpoints inside a phase (copy cursor, log
//!   positions, a new fencing token) are saves of that phase too.
//! - `coord-copy-chunk`: a snapshot chunk is applied on the destination,
//!   its cursor not yet recorded.
//! - `coord-catch-up-page`: a page of the source's change log is applied on
//!   the destination, its position not yet recorded.
//! - `coord-cutover-fenced`: the source is fenced, nothing drained yet.
//! - `coord-cutover-drained`: drained and checked under the fence, the
//!   destination's log position read; the routing table not yet flipped
//!   (the next step is the routing compare-and-swap).
//! - `coord-cutover-flipped`: the table names the destination; its log
//!   position not yet read, nothing unfenced.
//! - `coord-cutover-unfence`: just before the destination is unfenced.
//! - `coord-reverse-capture`: during bake, a page of the destination's log
//!   is applied on the source, its position not yet recorded.
//! - `coord-drop-batch`: one batch of a copy deleted (the source's during
//!   cleanup, the destination's during an abort).
//! - `coord-rollback-fenced`: rollback fenced the destination.
//! - `coord-rollback-flipped`: rollback gave the table back to the source,
//!   which is not yet unfenced.
//! - `coord-abort-unfenced`: an abort unfenced the source; the
//!   destination's copy is not yet dropped.
//!
//! Actions (`fail::cfg(name, action)`; `1*` in front fires once):
//! - `return`: a crash. The driver stops right there as if its process had
//!   died: `drive` returns `DriveError::Crashed` with no further write or
//!   RPC, and the manager leaves the dead task in place so the leader does
//!   not restart it. The test then stops that coordinator and starts another.
//! - `return(freeze)`: the OS thread running the driver blocks until
//!   [`thaw`]. A coordinator alone on its own thread and runtime then stands
//!   still as a paused process does (no keepalive, no RPC): a zombie in the
//!   making. fail's own `pause` would do the same but could not be awaited.
//!
//! [`fired`] lists the failpoints that fired, in order, so a test awaits
//! the event instead of polling for its effects. Compiled out (the `fail`
//! crate's `failpoints` feature off, as in every release build), [`hit`] is
//! an inlined `Ok(())`: names are static strings, nothing is formatted.

use crate::migration::machine::Phase;
use std::sync::{Condvar, LazyLock, Mutex};
use tokio::sync::watch;

pub const COPY_CHUNK: &str = "coord-copy-chunk";
pub const CATCH_UP_PAGE: &str = "coord-catch-up-page";
pub const CUTOVER_FENCED: &str = "coord-cutover-fenced";
pub const CUTOVER_DRAINED: &str = "coord-cutover-drained";
pub const CUTOVER_FLIPPED: &str = "coord-cutover-flipped";
pub const CUTOVER_UNFENCE: &str = "coord-cutover-unfence";
pub const REVERSE_CAPTURE: &str = "coord-reverse-capture";
pub const DROPPED: &str = "coord-dropped";
pub const ROLLBACK_FENCED: &str = "coord-rollback-fenced";
pub const ROLLBACK_FLIPPED: &str = "coord-rollback-flipped";
pub const ABORT_UNFENCED: &str = "coord-abort-unfenced";

/// Every phase a driver ever saves, for [`all`].
const SAVED_PHASES: [Phase; 13] = [
    Phase::Preparing,
    Phase::Copying,
    Phase::CatchingUp,
    Phase::ReadyForCutover,
    Phase::CuttingOver,
    Phase::Completed,
    Phase::CleaningUp,
    Phase::Done,
    Phase::Paused,
    Phase::Failed,
    Phase::Cancelled,
    Phase::RollingBack,
    Phase::RolledBack,
];

/// A failpoint fired as a crash: the driver stops at once, cleaning nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crashed(pub &'static str);

/// The failpoint just before a state in `phase` is persisted.
pub fn before_save(phase: Phase) -> &'static str {
    save_points(phase).0
}

/// The failpoint just after a state in `phase` is persisted.
pub fn after_save(phase: Phase) -> &'static str {
    save_points(phase).1
}

/// Every failpoint name, so a test can check it covers them all.
pub fn all() -> Vec<&'static str> {
    let inside = [COPY_CHUNK, CATCH_UP_PAGE, CUTOVER_FENCED, CUTOVER_DRAINED, CUTOVER_FLIPPED, CUTOVER_UNFENCE, REVERSE_CAPTURE, DROPPED, ROLLBACK_FENCED, ROLLBACK_FLIPPED, ABORT_UNFENCED];
    SAVED_PHASES.iter().flat_map(|p| [before_save(*p), after_save(*p)]).chain(inside).collect()
}

/// Evaluates failpoint `name`: Err when it fires as a crash; blocks this
/// thread until [`thaw`] when it fires as a freeze.
pub(crate) fn hit(name: &'static str) -> Result<(), Crashed> {
    let Some(arg) = fire(name) else { return Ok(()) };
    FIRED.send_modify(|names| names.push(name));
    tracing::warn!(failpoint = name, ?arg, "failpoint fired");
    if arg.as_deref() == Some("freeze") {
        freeze();
        return Ok(());
    }
    Err(Crashed(name))
}

/// The failpoints that fired so far in this process, oldest first.
pub fn fired() -> watch::Receiver<Vec<&'static str>> {
    FIRED.subscribe()
}

/// Releases every thread frozen by a `return(freeze)` failpoint.
pub fn thaw() {
    let (thaws, cv) = &*THAWS;
    *thaws.lock().expect("not poisoned") += 1;
    cv.notify_all();
}

static FIRED: LazyLock<watch::Sender<Vec<&'static str>>> = LazyLock::new(|| watch::Sender::new(Vec::new()));

/// How many times [`thaw`] was called; a frozen thread waits for a change.
static THAWS: LazyLock<(Mutex<u64>, Condvar)> = LazyLock::new(|| (Mutex::new(0), Condvar::new()));

fn freeze() {
    let (thaws, cv) = &*THAWS;
    let mut now = thaws.lock().expect("not poisoned");
    let at = *now;
    while *now == at {
        now = cv.wait(now).expect("not poisoned");
    }
}

/// The `return` argument if `name` fires. `fail_point!` returns from this
/// function with the closure's value; compiled out, it leaves `None`.
fn fire(name: &str) -> Option<Option<String>> {
    fail::fail_point!(name, |arg: Option<String>| Some(arg));
    let _ = name;
    None
}

fn save_points(phase: Phase) -> (&'static str, &'static str) {
    match phase {
        Phase::Pending => ("coord-before-save-pending", "coord-after-save-pending"),
        Phase::Preparing => ("coord-before-save-preparing", "coord-after-save-preparing"),
        Phase::Copying => ("coord-before-save-copying", "coord-after-save-copying"),
        Phase::CatchingUp => ("coord-before-save-catching-up", "coord-after-save-catching-up"),
        Phase::ReadyForCutover => ("coord-before-save-ready-for-cutover", "coord-after-save-ready-for-cutover"),
        Phase::CuttingOver => ("coord-before-save-cutting-over", "coord-after-save-cutting-over"),
        Phase::Completed => ("coord-before-save-completed", "coord-after-save-completed"),
        Phase::CleaningUp => ("coord-before-save-cleaning-up", "coord-after-save-cleaning-up"),
        Phase::Done => ("coord-before-save-done", "coord-after-save-done"),
        Phase::Paused => ("coord-before-save-paused", "coord-after-save-paused"),
        Phase::Failed => ("coord-before-save-failed", "coord-after-save-failed"),
        Phase::Cancelled => ("coord-before-save-cancelled", "coord-after-save-cancelled"),
        Phase::RollingBack => ("coord-before-save-rolling-back", "coord-after-save-rolling-back"),
        Phase::RolledBack => ("coord-before-save-rolled-back", "coord-after-save-rolled-back"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_points_are_named_after_their_phase() {
        for p in SAVED_PHASES {
            let dashed = p.name().to_lowercase().replace('_', "-");
            assert_eq!(before_save(p), format!("coord-before-save-{dashed}"));
            assert_eq!(after_save(p), format!("coord-after-save-{dashed}"));
        }
        let all = all();
        assert_eq!(all.len(), 2 * SAVED_PHASES.len() + 11);
        assert_eq!(all.iter().collect::<std::collections::HashSet<_>>().len(), all.len(), "names are unique");
    }
}
