//! Files of the embedded store's directory and their life cycle.
//!
//! ```text
//! LOCK              advisory lock held while a store has the directory open
//! snapshot          "EKSNAP01" + one frame: full state, names the live log generation
//! wal-<gen>.log     "EKWAL001" + one frame per commit, appended after `snapshot`'s state
//! ```
//! A commit is the records of every mutation that shared one fsync (group
//! commit: see `super`), back to back in one frame, so that a crash keeps
//! all of a commit or none of it: the frame's checksum covers the whole
//! commit, and only the last frame may be torn. A log written one record per
//! frame (before group commit) reads the same way.
//! Compaction creates the next generation's empty log first, then atomically
//! replaces `snapshot` (tmp + fsync + rename + fsync dir), then deletes the
//! old log. A crash anywhere in between leaves a snapshot whose generation's
//! log exists; recovery deletes logs of other generations.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use tokio::time::Instant;

use super::codec::{Record, Snapshot, encode_frame, parse_frames};
use super::state::State;
use crate::error::{MetaError, Result};
use crate::store::{Revision, WatchEvent};

const WAL_MAGIC: &[u8; 8] = b"EKWAL001";
const SNAPSHOT_MAGIC: &[u8; 8] = b"EKSNAP01";
const LOCK_FILE: &str = "LOCK";
const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";

fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:016x}.log"))
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt(format!("{}: {what}", path.display()))
}

/// Takes the directory's advisory lock; the returned file holds it until dropped.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(MetaError::AlreadyOpen(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates (or truncates) a log holding only its header, durably named in `dir`.
fn create_log(dir: &Path, generation: u64, fsync: bool) -> Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(wal_path(dir, generation))?;
    file.write_all(WAL_MAGIC)?;
    if fsync {
        file.sync_all()?;
        sync_dir(dir)?;
    }
    Ok(file)
}

/// The append side of the live log.
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    generation: u64,
    len: u64,
    fsync: bool,
    /// Records appended since the last snapshot.
    pub records: usize,
    /// Set when the on-disk state is unknown; all later writes are refused.
    poisoned: Option<String>,
    /// Tests: runs before each append; an error fails it, writing nothing.
    #[cfg(test)]
    pub before_append: Option<Box<dyn FnMut() -> std::io::Result<()> + Send>>,
}

impl Wal {
    /// Makes one commit durable: `records`, in order, in one frame and one
    /// fsync, so that recovery finds all of them or none. On error nothing
    /// was appended, or the store is poisoned.
    pub(crate) fn append(&mut self, records: &[&Record]) -> Result<()> {
        self.check_usable()?;
        #[cfg(test)]
        if let Some(hook) = &mut self.before_append {
            hook()?;
        }
        let frame = encode_frame(&Record::encode_commit(records.iter().copied()));
        // The log is opened in append mode: every write lands at the end.
        if let Err(e) = self.file.write_all(&frame) {
            // Cut off any partial frame so the next record does not follow garbage.
            if let Err(cut) = self.file.set_len(self.len) {
                self.poison(format!("could not truncate log after failed write: {cut}"));
            }
            return Err(e.into());
        }
        if self.fsync {
            let started = std::time::Instant::now();
            if let Err(e) = self.file.sync_data() {
                // After a failed fsync the page cache may hold data that never reaches disk.
                self.poison(format!("fsync of log failed: {e}"));
                return Err(e.into());
            }
            metrics::histogram!("evenkeel_meta_wal_fsync_seconds").record(started.elapsed().as_secs_f64());
        }
        self.len += frame.len() as u64;
        self.records += records.len();
        metrics::counter!("evenkeel_meta_wal_records_total").increment(records.len() as u64);
        metrics::counter!("evenkeel_meta_wal_bytes_total").increment(frame.len() as u64);
        Ok(())
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(MetaError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&mut self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "metadata store stops accepting writes");
        self.poisoned.get_or_insert(reason);
    }

    /// Writes a snapshot of `state` and switches to a fresh log.
    pub(crate) fn compact(&mut self, state: &State) -> Result<()> {
        self.check_usable()?;
        let next = self.generation + 1;
        let new_log = create_log(&self.dir, next, self.fsync)?;
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut contents = SNAPSHOT_MAGIC.to_vec();
        contents.extend_from_slice(&encode_frame(&state.to_snapshot(next).encode()));
        write_file(&tmp, &contents, self.fsync)?;
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))?;
        // From here recovery reads the new log, so it is the only one to append to.
        drop(std::mem::replace(&mut self.file, new_log));
        let old_generation = std::mem::replace(&mut self.generation, next);
        self.len = WAL_MAGIC.len() as u64;
        self.records = 0;
        if self.fsync
            && let Err(e) = sync_dir(&self.dir)
        {
            // The rename may not be durable, yet the old log must not take new records.
            self.poison(format!("fsync of directory after snapshot failed: {e}"));
            return Err(e.into());
        }
        if let Err(e) = fs::remove_file(wal_path(&self.dir, old_generation)) {
            tracing::warn!(error = %e, "could not delete compacted log; recovery will");
        }
        metrics::counter!("evenkeel_meta_snapshots_total").increment(1);
        Ok(())
    }
}

fn write_file(path: &Path, contents: &[u8], fsync: bool) -> Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    if fsync {
        file.sync_all()?;
    }
    Ok(())
}

/// What recovery rebuilt from the directory.
pub(crate) struct Recovered {
    pub state: State,
    pub wal: Wal,
    /// Events of the replayed log, oldest first, for the watch history.
    pub events: Vec<WatchEvent>,
    /// Newest revision whose event is not in `events` (0 = none).
    pub compacted: Revision,
}

/// Loads the snapshot, replays its log and truncates a torn tail.
pub(crate) fn recover(dir: &Path, fsync: bool, now: Instant) -> Result<Recovered> {
    match fs::remove_file(dir.join(SNAPSHOT_TMP)) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let (mut state, generation) = match read_snapshot(dir)? {
        Some(snap) => {
            let generation = snap.generation;
            let state = State::from_snapshot(snap, now)
                .map_err(|e| corrupt(&dir.join(SNAPSHOT_FILE), e))?;
            (state, generation)
        }
        None => (State::new(), 0),
    };
    // Revision 1 is the fresh store's and has no event to lose.
    let compacted = if state.revision > 1 {
        state.revision
    } else {
        0
    };
    let path = wal_path(dir, generation);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound && generation == 0 => Vec::new(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(corrupt(&path, "log named by the snapshot is missing"));
        }
        Err(e) => return Err(e.into()),
    };
    let (events, valid_len, records) = replay(&path, &bytes, &mut state, now)?;
    let file = if valid_len == 0 {
        // Missing, or torn while its header was written: start it afresh.
        create_log(dir, generation, fsync)?
    } else {
        let file = OpenOptions::new().append(true).open(&path)?;
        if valid_len < bytes.len() {
            tracing::warn!(path = %path.display(), dropped = bytes.len() - valid_len, "discarding torn log tail");
            file.set_len(valid_len as u64)?;
            file.sync_all()?;
        }
        file
    };
    remove_stale_logs(dir, generation)?;
    let len = file.metadata()?.len();
    let wal = Wal {
        dir: dir.to_path_buf(),
        file,
        generation,
        len,
        fsync,
        records,
        poisoned: None,
        #[cfg(test)]
        before_append: None,
    };
    Ok(Recovered {
        state,
        wal,
        events,
        compacted,
    })
}

/// Applies every intact record of a log image; returns (events, bytes that
/// are valid, record count). A valid length of 0 means "no usable header".
fn replay(
    path: &Path,
    bytes: &[u8],
    state: &mut State,
    now: Instant,
) -> Result<(Vec<WatchEvent>, usize, usize)> {
    if bytes.len() < WAL_MAGIC.len() && WAL_MAGIC.starts_with(bytes) {
        return Ok((Vec::new(), 0, 0));
    }
    if !bytes.starts_with(WAL_MAGIC) {
        return Err(corrupt(path, "not an evenkeel metadata log (bad header)"));
    }
    let frames = parse_frames(bytes, WAL_MAGIC.len()).map_err(|e| corrupt(path, e))?;
    let mut events = Vec::new();
    let mut records = 0;
    for (offset, payload) in &frames.payloads {
        let commit = Record::decode_commit(payload)
            .map_err(|e| corrupt(path, format!("commit at offset {offset}: {e}")))?;
        for record in &commit {
            let produced = state
                .apply(record, now)
                .map_err(|e| corrupt(path, format!("commit at offset {offset}: {e}")))?;
            events.extend(produced);
        }
        records += commit.len();
    }
    Ok((events, frames.valid_len, records))
}

fn read_snapshot(dir: &Path) -> Result<Option<Snapshot>> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !bytes.starts_with(SNAPSHOT_MAGIC) {
        return Err(corrupt(
            &path,
            "not an evenkeel metadata snapshot (bad header)",
        ));
    }
    // Snapshots appear whole by rename, so unlike the log no torn tail is allowed.
    let frames = parse_frames(&bytes, SNAPSHOT_MAGIC.len()).map_err(|e| corrupt(&path, e))?;
    match frames.payloads.as_slice() {
        [(_, payload)] if frames.valid_len == bytes.len() => Snapshot::decode(payload)
            .map(Some)
            .map_err(|e| corrupt(&path, e)),
        _ => Err(corrupt(&path, "snapshot is truncated or has trailing data")),
    }
}

/// Deletes logs left behind by an interrupted compaction.
fn remove_stale_logs(dir: &Path, keep: u64) -> Result<()> {
    let keep_name = wal_path(dir, keep);
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("wal-") && name.ends_with(".log") && path != keep_name {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::codec::FRAME_HEADER_LEN;
    use super::*;

    fn put(revision: Revision, key: &str) -> Record {
        Record::Put {
            revision,
            key: key.into(),
            value: b"v".to_vec(),
            lease: None,
        }
    }

    fn fresh(dir: &Path) -> Recovered {
        recover(dir, true, Instant::now()).unwrap()
    }

    #[test]
    fn header_flip_in_middle_record_names_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = fresh(dir.path());
        for rev in 2..5 {
            r.wal.append(&[&put(rev, "k")]).unwrap();
        }
        drop(r);
        let path = wal_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let second = WAL_MAGIC.len() + FRAME_HEADER_LEN + put(2, "k").encode().len();
        bytes[second] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = recover(dir.path(), true, Instant::now())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("header checksum mismatch at offset {second}")),
            "{err}"
        );
    }

    #[test]
    fn revision_gap_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = fresh(dir.path());
        r.wal.append(&[&put(2, "a")]).unwrap();
        r.wal.append(&[&put(4, "b")]).unwrap();
        drop(r);
        let err = recover(dir.path(), true, Instant::now()).err().unwrap();
        assert!(
            matches!(&err, MetaError::Corrupt(m) if m.contains("does not follow")),
            "{err}"
        );
    }

    #[test]
    fn interrupted_compaction_leftovers_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = fresh(dir.path());
        r.wal.append(&[&put(2, "a")]).unwrap();
        drop(r);
        // A crash after creating the next log and a partial snapshot.tmp.
        create_log(dir.path(), 1, true).unwrap();
        fs::write(dir.path().join(SNAPSHOT_TMP), b"EKSNAP01garbage").unwrap();
        let r = fresh(dir.path());
        assert_eq!(r.state.revision, 2);
        assert!(!wal_path(dir.path(), 1).exists() && !dir.path().join(SNAPSHOT_TMP).exists());
    }

    #[test]
    fn compaction_switches_generation_and_keeps_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = fresh(dir.path());
        let now = Instant::now();
        for rev in 2..6 {
            let record = put(rev, &format!("k{rev}"));
            r.wal.append(&[&record]).unwrap();
            r.state.apply(&record, now).unwrap();
        }
        r.wal.compact(&r.state).unwrap();
        assert!(!wal_path(dir.path(), 0).exists());
        let record = put(6, "after");
        r.wal.append(&[&record]).unwrap();
        r.state.apply(&record, now).unwrap();
        let expected = r.state.kvs.clone();
        drop(r);
        let back = fresh(dir.path());
        assert_eq!(back.state.kvs, expected);
        assert_eq!(
            (back.state.revision, back.compacted, back.events.len()),
            (6, 5, 1)
        );
    }

    #[test]
    fn damaged_snapshot_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = fresh(dir.path());
        r.wal.compact(&r.state).unwrap();
        drop(r);
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 1);
        fs::write(&path, &bytes).unwrap();
        let err = recover(dir.path(), true, Instant::now()).err().unwrap();
        assert!(
            matches!(&err, MetaError::Corrupt(m) if m.contains("truncated")),
            "{err}"
        );
    }
}
