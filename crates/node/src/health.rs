//! What a node reports about its own health in `Stats` besides latency
//! (which is an [`evenkeel_types::latency::SecondWindow`]): the space left on
//! its data directory's file system.

use std::path::Path;

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
    fn disk_space_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = disk_space(dir.path()).unwrap();
        assert!(total > 0 && free <= total, "{free} of {total}");
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
