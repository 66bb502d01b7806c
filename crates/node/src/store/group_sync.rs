//! Group commit for [`Durability::Sync`](super::Durability::Sync).
//!
//! A client write commits its batch to the engine's journal in the OS
//! (`PersistMode::Buffer`: no disk wait under the partition lock), then
//! takes a *ticket* and waits until an fsync covers it. The fsync is of
//! the engine's active journal through a descriptor of our own
//! ([`ActiveJournal`]), so the engine's journal lock is not held and
//! writers keep committing meanwhile. Each fsync covers every write handed
//! to the OS before it started: every ticket taken by then.
//!
//! Who runs it: a waiter that finds no fsync running runs one itself, on
//! its own thread (a lone writer pays one fsync and no thread hand-off, as
//! with an fsync per batch); one that finds an fsync running wakes the
//! syncer thread, which runs the next fsync for every ticket taken
//! meanwhile, and waits without a thread. Concurrent writers so share
//! fsyncs, where an fsync per batch under the partition lock served one
//! write per fsync per partition.
//!
//! A ticket is taken after the write's batch committed, and an fsync reads
//! the newest ticket before it starts, so the fsync that reaches a ticket
//! started after that ticket's write was in the OS.
//!
//! A failed fsync leaves the durability of everything since the last good
//! one unknown (the kernel may have dropped the dirty pages): from then on
//! every wait fails, as a database stops after a failed fsync, until the
//! node is restarted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// The journal the engine appends to, open for fsyncs of our own. The
/// engine names journals `ID.jnl` and rotates to `ID + 1` under its journal
/// lock, fsyncing the sealed journal, the new one and the directory as it
/// does (fjall's `Writer::rotate`). So only the active journal can hold
/// writes in the OS alone, and a write that reached a newer journal was
/// made after that journal existed: a sync that first looks for the next
/// journal and moves to it covers every write made before the look. The
/// engine deletes sealed journals oldest first, so if the next one is gone
/// already, so is the one held open: then the newest is found again.
struct ActiveJournal {
    dir: PathBuf,
    id: u64,
    file: std::fs::File,
}

impl ActiveJournal {
    fn newest(dir: &std::path::Path) -> std::io::Result<ActiveJournal> {
        let mut newest = None;
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let id = name.to_str().and_then(|n| n.strip_suffix(".jnl")).and_then(|n| n.parse::<u64>().ok());
            newest = newest.max(id);
        }
        let id = newest.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no journal in {}", dir.display())))?;
        Ok(ActiveJournal { dir: dir.to_path_buf(), id, file: std::fs::File::open(Self::path(dir, id))? })
    }

    fn path(dir: &std::path::Path, id: u64) -> PathBuf {
        dir.join(format!("{id}.jnl"))
    }

    fn sync(&mut self) -> std::io::Result<()> {
        loop {
            match std::fs::File::open(Self::path(&self.dir, self.id + 1)) {
                Ok(next) => (self.id, self.file) = (self.id + 1, next),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        if std::os::unix::fs::MetadataExt::nlink(&self.file.metadata()?) == 0 {
            *self = Self::newest(&self.dir)?;
        }
        self.file.sync_data()
    }
}

/// What the syncer has made durable.
#[derive(Debug, Clone, Default)]
struct Synced {
    /// Every ticket up to this one is durable.
    through: u64,
    /// Set by a failed fsync, for good.
    failed: Option<Arc<str>>,
}

/// What runs an fsync of every write handed to the OS.
type SyncFn = Box<dyn FnMut() -> std::io::Result<()> + Send>;

struct Shared {
    /// The newest ticket handed out.
    issued: AtomicU64,
    synced: tokio::sync::watch::Sender<Synced>,
    /// Held while an fsync runs, by a waiter or the syncer thread.
    sync: Mutex<SyncFn>,
    /// fsyncs run, for tests and figures.
    syncs: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Tickets taken and not yet covered (none once an fsync failed).
    fn outstanding(&self) -> bool {
        let synced = self.synced.borrow();
        synced.failed.is_none() && self.issued.load(Ordering::Acquire) > synced.through
    }

    /// One fsync for every ticket taken so far, unless one covered them
    /// meanwhile. The caller holds `sync`.
    fn sync_outstanding(&self, sync: &mut SyncFn) {
        let target = self.issued.load(Ordering::Acquire);
        if !self.outstanding() {
            return;
        }
        match sync() {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::AcqRel);
                self.synced.send_modify(|s| s.through = s.through.max(target));
            }
            Err(e) => {
                tracing::error!(error = %e, "fsync failed: writes are no longer acknowledged; restart the node");
                self.synced.send_modify(|s| s.failed = Some(e.to_string().into()));
            }
        }
    }
}

pub(super) struct GroupSync {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

impl GroupSync {
    /// Group commit over the engine's active journal in `dir`.
    pub fn start(dir: PathBuf) -> std::io::Result<GroupSync> {
        let mut active: Option<ActiveJournal> = None;
        Self::with(Box::new(move || {
            let journal = match &mut active {
                Some(journal) => journal,
                None => active.insert(ActiveJournal::newest(&dir)?),
            };
            journal.sync()
        }))
    }

    fn with(sync: SyncFn) -> std::io::Result<GroupSync> {
        let shared = Arc::new(Shared {
            issued: AtomicU64::new(0),
            synced: tokio::sync::watch::Sender::new(Synced::default()),
            sync: Mutex::new(sync),
            syncs: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let syncer = std::thread::Builder::new().name("ek-sync".into()).spawn({
            let shared = shared.clone();
            move || run(&shared)
        })?;
        Ok(GroupSync { shared, syncer: Some(syncer) })
    }

    /// Takes a ticket for every write committed before the call and
    /// returns what resolves once they are durable (an error if an fsync
    /// failed first: their durability is unknown). `inline`: with no fsync
    /// running, runs one here, blocking this thread for it; otherwise the
    /// syncer thread runs it.
    pub fn durable(&self, inline: bool) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let ticket = self.shared.issued.fetch_add(1, Ordering::AcqRel) + 1;
        match self.shared.sync.try_lock().filter(|_| inline) {
            // Inline, blocking the caller's thread (a runtime worker, for a
            // node's in-process writes) as an fsync per batch did. Handing
            // its other tasks off first (`block_in_place`) doubled what 50
            // clients got through, and may cost a lone client a quarter of
            // its rate on the test VM (ARCHITECTURE.md, crates/node).
            Some(mut sync) => self.shared.sync_outstanding(&mut sync),
            None => {
                if let Some(syncer) = &self.syncer {
                    syncer.thread().unpark();
                }
            }
        }
        let mut synced = self.shared.synced.subscribe();
        async move {
            let state = synced.wait_for(|s| s.through >= ticket || s.failed.is_some()).await.map_err(|_| "the store closed before the write was made durable".to_string())?;
            match &state.failed {
                Some(why) if state.through < ticket => Err(format!("fsync failed, so the write's durability is unknown (restart the node): {why}")),
                _ => Ok(()),
            }
        }
    }

    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Acquire)
    }
}

impl Drop for GroupSync {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(syncer) = self.syncer.take() {
            syncer.thread().unpark();
            let _ = syncer.join();
        }
    }
}

/// The syncer thread: an fsync whenever tickets are outstanding (after
/// the one running, if a waiter runs one), a last one for those
/// outstanding when the store closes.
fn run(shared: &Shared) {
    loop {
        if shared.outstanding() {
            shared.sync_outstanding(&mut shared.sync.lock());
        } else if shared.stop.load(Ordering::Acquire) {
            return;
        } else {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A group sync whose every fsync reports that it started and waits
    /// for the test's word: `Ok(())` succeeds, an error fails it.
    fn held() -> (Arc<GroupSync>, mpsc::Receiver<()>, mpsc::Sender<std::io::Result<()>>) {
        let (started, running) = mpsc::channel();
        let (finish, finishing) = mpsc::channel::<std::io::Result<()>>();
        let sync = GroupSync::with(Box::new(move || {
            started.send(()).unwrap();
            finishing.recv().unwrap()
        }))
        .unwrap();
        (Arc::new(sync), running, finish)
    }

    fn wait(running: &mpsc::Receiver<()>) {
        running.recv_timeout(Duration::from_secs(10)).expect("an fsync starts");
    }

    /// A waiter that finds no fsync running runs one on its own thread.
    fn first_waiter(sync: &Arc<GroupSync>) -> std::thread::JoinHandle<Result<(), String>> {
        let sync = sync.clone();
        std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(sync.durable(true)))
    }

    /// The fsync follows the engine's rotations, also past journals
    /// already sealed and deleted since the last one.
    #[test]
    fn the_active_journal_follows_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let create = |id: u64| std::fs::write(dir.path().join(format!("{id}.jnl")), b"").unwrap();
        let delete = |id: u64| std::fs::remove_file(dir.path().join(format!("{id}.jnl"))).unwrap();
        create(3);
        create(4);
        let mut journal = ActiveJournal::newest(dir.path()).unwrap();
        assert_eq!(journal.id, 4);
        create(5);
        journal.sync().unwrap();
        assert_eq!(journal.id, 5, "the next one");
        create(6);
        create(7);
        for id in [3, 4, 5, 6] {
            delete(id);
        }
        journal.sync().unwrap();
        assert_eq!(journal.id, 7, "the next one is gone, and so is the one held: the newest");
    }

    #[tokio::test]
    async fn waiters_that_come_while_an_fsync_runs_share_the_next() {
        let (sync, running, finish) = held();
        let first = first_waiter(&sync);
        wait(&running);
        // Come while the first fsync runs, which may not cover them: they
        // wait without running one, and the syncer thread runs the next.
        let later: Vec<_> = (0..10).map(|_| tokio::spawn(sync.durable(true))).collect();
        finish.send(Ok(())).unwrap();
        first.join().unwrap().unwrap();
        wait(&running);
        assert!(later.iter().all(|t| !t.is_finished()), "acknowledged before an fsync that started after them");
        finish.send(Ok(())).unwrap();
        for t in later {
            t.await.unwrap().unwrap();
        }
        assert_eq!(sync.syncs(), 2, "one fsync for the ten");
        // Nothing outstanding: no fsync runs.
        assert!(running.recv_timeout(Duration::from_millis(100)).is_err());
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_its_writes_and_every_later_one() {
        let (sync, running, finish) = held();
        let first = first_waiter(&sync);
        wait(&running);
        finish.send(Ok(())).unwrap();
        first.join().unwrap().unwrap();
        let failed = first_waiter(&sync);
        wait(&running);
        finish.send(Err(std::io::Error::other("EIO"))).unwrap();
        let why = failed.join().unwrap().unwrap_err();
        assert!(why.contains("fsync failed") && why.contains("EIO"), "{why}");
        let why = sync.durable(true).await.unwrap_err();
        assert!(why.contains("EIO"), "a later write cannot be acknowledged either: {why}");
        assert!(running.recv_timeout(Duration::from_millis(100)).is_err(), "no fsync after a failed one");
    }

    #[tokio::test]
    async fn closing_syncs_what_is_outstanding() {
        let (sync, running, finish) = held();
        let first = first_waiter(&sync);
        wait(&running);
        let second = sync.durable(false);
        finish.send(Ok(())).unwrap();
        first.join().unwrap().unwrap();
        // Dropped with the second outstanding: its fsync runs first.
        let dropping = std::thread::spawn(move || drop(Arc::into_inner(sync).expect("the last handle")));
        wait(&running);
        finish.send(Ok(())).unwrap();
        dropping.join().unwrap();
        second.await.unwrap();
    }
}
