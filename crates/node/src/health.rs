//! What a node reports about its own health in `Stats` besides latency
//! (which is an [`evenkeel_types::latency::SecondWindow`]): the space left on
//! its data directory's file system.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The free space a node keeps on its data directory's file system: ops
/// that add data are refused below it ([`DiskReserve::check`]). The free
/// space is read at most every [`DiskReserve::REFRESH_MS`] (one `statvfs`),
/// so the check costs two atomic loads per op.
pub struct DiskReserve {
    dir: PathBuf,
    min_free: u64,
    /// Last read; `u64::MAX` until read, or when it cannot be.
    free: AtomicU64,
    read_at_ms: AtomicU64,
}

impl DiskReserve {
    pub const REFRESH_MS: u64 = 100;

    pub fn new(dir: impl Into<PathBuf>, min_free: u64) -> Self {
        DiskReserve { dir: dir.into(), min_free, free: AtomicU64::new(u64::MAX), read_at_ms: AtomicU64::new(0) }
    }

    /// Ok while the free space (`free_override` if given: a failpoint) is
    /// at least the reserve; else the free space. A file system that
    /// cannot be read counts as having room.
    pub fn check(&self, now_ms: u64, free_override: Option<u64>) -> Result<(), u64> {
        if self.min_free == 0 {
            return Ok(());
        }
        let free = match free_override {
            Some(free) => free,
            None => {
                if now_ms.saturating_sub(self.read_at_ms.load(Ordering::Relaxed)) >= Self::REFRESH_MS {
                    self.read_at_ms.store(now_ms, Ordering::Relaxed);
                    self.free.store(disk_space(&self.dir).map_or(u64::MAX, |(free, _)| free), Ordering::Relaxed);
                }
                self.free.load(Ordering::Relaxed)
            }
        };
        if free < self.min_free { Err(free) } else { Ok(()) }
    }

    pub fn min_free(&self) -> u64 {
        self.min_free
    }
}

/// Free and total bytes of the file system holding `dir`: free is what an
/// unprivileged writer can still use (`f_bavail`), as fjall runs unprivileged.
pub fn disk_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let block = st.fragment_size() as u64;
    let free = st.blocks_available() as u64 * block;
    let total = st.blocks() as u64 * block;
    debug_assert!(free <= total, "statvfs: {free} free of {total}");
    Ok((free, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_refuses_below_it_and_rereads_the_disk_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let (free, _) = disk_space(dir.path()).unwrap();
        let reserve = DiskReserve::new(dir.path(), 1 << 20);
        assert_eq!(reserve.check(1_000, Some(1 << 19)), Err(1 << 19), "a failpoint's figure below it");
        assert_eq!(reserve.check(1_000, Some(1 << 21)), Ok(()));
        assert!(free >= 1 << 20, "the test needs 1 MiB free");
        assert_eq!(reserve.check(1_000, None), Ok(()), "the real disk");
        let demanding = DiskReserve::new(dir.path(), u64::MAX - 1);
        assert_eq!(demanding.check(1_000, None), Err(free_now(&demanding)));
        assert_eq!(DiskReserve::new(dir.path(), 0).check(1_000, Some(0)), Ok(()), "0 is no reserve");
    }

    fn free_now(r: &DiskReserve) -> u64 {
        r.free.load(Ordering::Relaxed)
    }

    #[test]
    fn disk_space_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = disk_space(dir.path()).unwrap();
        assert!(total > 0 && free <= total, "{free} of {total}");
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
