//! Comparing what the source served with the destination's copy.
//!
//! Versions are unique within a partition and only the source writes it
//! until cutover, so the comparison needs no clock: the same version must
//! mean the same contents, an older destination version is a copy still
//! catching up, and a newer one is either a race (the source took a write
//! between its read and the shadow read, and a dual-write already carried
//! it over) or a value the source never had. [`recheck`] tells those two
//! apart after the source is read again.

use evenkeel_rpc::pb::KeyRecord;
use std::cmp::Ordering;

/// The outcome of comparing one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same version, same contents (or neither side has the key).
    Match,
    /// The destination holds an older version or nothing: expected while
    /// it catches up, not a divergence.
    Lagging,
    /// Same version with different contents, or (after a recheck) a
    /// version the source never reached: the destination diverged.
    Mismatch,
    /// The destination is newer than the source's read; decided by
    /// [`recheck`] once the source has been read again.
    DestinationNewer,
}

/// Compares the source's record with the destination's (None: no record
/// stored; a shadow read reports that as version 0).
pub fn compare(source: Option<&KeyRecord>, destination: Option<&KeyRecord>) -> Verdict {
    let (source, destination) = (source.filter(|r| r.version > 0), destination.filter(|r| r.version > 0));
    match version(source).cmp(&version(destination)) {
        Ordering::Greater => Verdict::Lagging,
        Ordering::Less => Verdict::DestinationNewer,
        Ordering::Equal if same_contents(source, destination) => Verdict::Match,
        Ordering::Equal => Verdict::Mismatch,
    }
}

/// The verdict once the source has been read again after
/// [`Verdict::DestinationNewer`]: if the destination is still ahead, the
/// source never had that version and the destination invented it.
pub fn recheck(again: Verdict) -> Verdict {
    match again {
        Verdict::DestinationNewer => Verdict::Mismatch,
        settled => settled,
    }
}

fn version(r: Option<&KeyRecord>) -> u64 {
    r.map_or(0, |r| r.version)
}

fn same_contents(a: Option<&KeyRecord>, b: Option<&KeyRecord>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.tombstone == b.tombstone && a.value == b.value && a.expire_at_ms == b.expire_at_ms && a.value_type == b.value_type,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &str, version: u64) -> KeyRecord {
        KeyRecord { key: "k".into(), value: value.to_string().into(), version, ..Default::default() }
    }

    fn tombstone(version: u64) -> KeyRecord {
        KeyRecord { key: "k".into(), tombstone: true, version, ..Default::default() }
    }

    #[test]
    fn same_version_and_contents_match() {
        assert_eq!(compare(Some(&rec("a", 5)), Some(&rec("a", 5))), Verdict::Match);
        assert_eq!(compare(Some(&tombstone(5)), Some(&tombstone(5))), Verdict::Match);
        assert_eq!(compare(None, None), Verdict::Match);
        // A shadow read reports an absent key as version 0.
        assert_eq!(compare(None, Some(&KeyRecord::default())), Verdict::Match);
    }

    #[test]
    fn an_older_or_missing_copy_is_lagging() {
        assert_eq!(compare(Some(&rec("b", 9)), Some(&rec("a", 5))), Verdict::Lagging);
        assert_eq!(compare(Some(&rec("b", 9)), None), Verdict::Lagging);
        assert_eq!(compare(Some(&tombstone(9)), Some(&rec("a", 5))), Verdict::Lagging);
    }

    #[test]
    fn same_version_with_other_contents_is_a_mismatch() {
        assert_eq!(compare(Some(&rec("a", 5)), Some(&rec("x", 5))), Verdict::Mismatch);
        assert_eq!(compare(Some(&rec("a", 5)), Some(&tombstone(5))), Verdict::Mismatch);
        let mut expiring = rec("a", 5);
        expiring.expire_at_ms = 1000;
        assert_eq!(compare(Some(&rec("a", 5)), Some(&expiring)), Verdict::Mismatch);
    }

    /// A newer destination is a race if the source reached that version
    /// meanwhile, a divergence if it still has not.
    #[test]
    fn a_newer_destination_is_decided_by_a_second_source_read() {
        let destination = rec("b", 9);
        assert_eq!(compare(Some(&rec("a", 5)), Some(&destination)), Verdict::DestinationNewer);
        assert_eq!(compare(None, Some(&destination)), Verdict::DestinationNewer);
        assert_eq!(recheck(compare(Some(&rec("b", 9)), Some(&destination))), Verdict::Match);
        assert_eq!(recheck(compare(Some(&rec("c", 12)), Some(&destination))), Verdict::Lagging);
        assert_eq!(recheck(compare(Some(&rec("a", 5)), Some(&destination))), Verdict::Mismatch);
        assert_eq!(recheck(compare(Some(&rec("z", 9)), Some(&destination))), Verdict::Mismatch);
    }
}
