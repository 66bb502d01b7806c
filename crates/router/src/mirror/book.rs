//! What the router counts for each migration, and the small lossy state
//! that decides which reads to mirror.
//!
//! - [`Book`]: cumulative [`MirrorCounts`] per migration id, which the
//!   router's report publishes every second; bounded to the
//!   [`MIGRATIONS_MAX`] most recently touched migrations.
//! - [`Sampler`]: picks a fraction of reads for shadow comparison without
//!   a random-number dependency (a counter through splitmix64).
//! - [`Recent`]: a fixed table of recently pushed (key, version)
//!   fingerprints, so copy-on-read sends a hot key once per version rather
//!   than once per read. Collisions only cost an extra push or skip one,
//!   which the bulk copy and the change log cover.

use evenkeel_types::latency::{MigrationMirror, MirrorCounts};
use evenkeel_types::{PartitionId, Version};
use parking_lot::Mutex;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Migrations whose counts a router keeps; the least recently touched
/// goes first. Far more than move at once.
pub const MIGRATIONS_MAX: usize = 64;

#[derive(Default)]
pub struct Book {
    entries: Mutex<Vec<Entry>>,
    /// Orders entries by last touch.
    clock: AtomicU64,
}

struct Entry {
    mirror: MigrationMirror,
    touched: u64,
}

impl Book {
    /// Changes `migration`'s counts with `f`.
    pub fn count(&self, migration: &str, f: impl FnOnce(&mut MirrorCounts)) {
        let touched = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.mirror.migration == migration) {
            e.touched = touched;
            return f(&mut e.mirror.counts);
        }
        if entries.len() >= MIGRATIONS_MAX {
            let oldest = entries.iter().enumerate().min_by_key(|(_, e)| e.touched).map(|(i, _)| i).expect("full");
            entries.swap_remove(oldest);
        }
        let mut counts = MirrorCounts::default();
        f(&mut counts);
        entries.push(Entry { mirror: MigrationMirror { migration: migration.to_string(), counts }, touched });
    }

    /// Every migration's counts, for the router's report.
    pub fn snapshot(&self) -> Vec<MigrationMirror> {
        self.entries.lock().iter().map(|e| e.mirror.clone()).collect()
    }
}

#[derive(Default)]
pub struct Sampler(AtomicU64);

impl Sampler {
    /// True for about `ratio` of calls (all at 1, none at 0).
    pub fn sample(&self, ratio: f64) -> bool {
        if ratio <= 0.0 {
            return false;
        }
        if ratio >= 1.0 {
            return true;
        }
        let x = splitmix64(self.0.fetch_add(1, Ordering::Relaxed));
        (x >> 11) as f64 / (1u64 << 53) as f64 <= ratio
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// Slots in the copy-on-read filter (a power of two).
const RECENT_SLOTS: usize = 4096;

pub struct Recent(Box<[AtomicU64]>);

impl Default for Recent {
    fn default() -> Self {
        Recent((0..RECENT_SLOTS).map(|_| AtomicU64::new(0)).collect())
    }
}

impl Recent {
    /// Whether (`partition`, `key`, `version`) was not pushed recently;
    /// records it as pushed.
    pub fn first_time(&self, partition: PartitionId, key: &[u8], version: Version) -> bool {
        let mut h = std::hash::DefaultHasher::new();
        (partition, key, version).hash(&mut h);
        // Zero marks an empty slot, so no fingerprint may be zero.
        let fingerprint = h.finish() | 1;
        let slot = &self.0[fingerprint as usize & (RECENT_SLOTS - 1)];
        slot.swap(fingerprint, Ordering::Relaxed) != fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_keeps_counts_per_migration_and_forgets_the_oldest() {
        let book = Book::default();
        book.count("a", |c| c.dual_writes += 2);
        book.count("b", |c| c.shadow.compared += 1);
        book.count("a", |c| c.dual_writes += 1);
        let snap = book.snapshot();
        let a = snap.iter().find(|m| m.migration == "a").unwrap();
        assert_eq!(a.counts.dual_writes, 3);
        for i in 0..MIGRATIONS_MAX {
            book.count(&format!("m{i}"), |c| c.failed += 1);
        }
        let snap = book.snapshot();
        assert_eq!(snap.len(), MIGRATIONS_MAX);
        assert!(!snap.iter().any(|m| m.migration == "b"), "the least recently touched is gone");
    }

    #[test]
    fn the_sampler_takes_about_its_ratio() {
        let s = Sampler::default();
        let taken = (0..100_000).filter(|_| s.sample(0.01)).count();
        assert!((800..1200).contains(&taken), "{taken}");
        assert!((0..100).all(|_| s.sample(1.0)));
        assert!(!(0..100).any(|_| s.sample(0.0)));
    }

    #[test]
    fn recent_pushes_are_skipped_until_the_version_changes() {
        let r = Recent::default();
        assert!(r.first_time(1, b"k", 10));
        assert!(!r.first_time(1, b"k", 10));
        assert!(r.first_time(1, b"k", 11));
        assert!(r.first_time(2, b"k", 11), "partitions are told apart");
    }
}
