//! `evenkeel import`: copies the keys of a Redis (any server that answers
//! SCAN, PTTL and DUMP: Redis 2.8 and later, Valkey, another evenkeel)
//! into evenkeel through one of its routers, in Redis's own serialization
//! (DUMP there, RESTORE here), so every type and encoding comes over as
//! it is, with its expiry.
//!
//! It walks the source with SCAN (COUNT `batch`), reads each batch's keys
//! with one pipeline of `PTTL` and `DUMP` per key, and writes them with
//! one pipeline of `RESTORE key <expiry> <payload> ABSTTL [REPLACE]`. The
//! expiry is made absolute when the key is read (this host's clock plus
//! its PTTL), so time spent in the pipeline does not lengthen a TTL; a
//! key that expires before it is written is not created. Keys that
//! vanish between SCAN and DUMP are counted as gone. Without `--replace`
//! a key already in evenkeel is kept (counted as existing); with it, the
//! source's value wins. A RESTORE answered TRYAGAIN (its partition was
//! moving, the write certainly not done) is sent again, so an import can
//! run while evenkeel rebalances.
//!
//! By itself it is a copy, not a replication stream: SCAN returns every
//! key that exists for the whole walk at least once, but a key written on
//! the source after its batch was read keeps its old value here, and a key
//! deleted there stays. With `follow` it keeps evenkeel in step until
//! stopped: before the walk it subscribes to the source's keyspace events
//! (`__keyevent@0__:*`, which needs `notify-keyspace-events` with `E` and
//! every type class, `A`), marks each key an event names, and once the
//! walk is done copies every marked key again as it is then (RESTORE
//! REPLACE, or DEL when it is gone), as long as events come. Reading the
//! key's state after its event, rather than replaying the event, makes the
//! order of events irrelevant: the last copy of a key is taken after its
//! last change. Keyspace events are Pub/Sub, at most once: if the
//! subscription drops, changes may have been missed, and the import says
//! so and fails. FLUSHALL on the source raises no per-key event and is not
//! followed. Keyspace events the import turned on (`set_notify`) are
//! turned back off when it ends. An interrupted walk (Ctrl-C) prints the cursor to resume from
//! (`--cursor`). Redis Cluster's nodes each hold their own keys: import
//! from every primary.

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use evenkeel_bench::config::Target;
use evenkeel_resp::{Frame, FrameDecoder, encode_command};
use evenkeel_types::unix_ms;
use futures::StreamExt;
use indicatif::ProgressBar;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Framed;

/// How long one reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Rounds of resending RESTOREs answered TRYAGAIN, pausing up to 2 s.
const TRYAGAIN_ROUNDS: u32 = 30;
/// Keys whose failure is reported by name (the rest are counted).
const FAILURES_SHOWN: usize = 20;

/// What to copy, from where, how fast.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The server to copy from (not read by [`run_file`]).
    pub from: Option<Target>,
    pub to: Target,
    /// Only keys matching this glob (SCAN's MATCH).
    pub pattern: Option<String>,
    /// SCAN's COUNT, and the keys in one pipeline.
    pub batch: usize,
    /// At most this many keys a second (0: as fast as they go).
    pub rate: u64,
    /// Overwrite keys evenkeel already holds.
    pub replace: bool,
    /// The SCAN cursor to start from ("0": the beginning).
    pub cursor: String,
    /// After the walk, keep copying the keys the source changes until
    /// stopped (see the module docs).
    pub follow: bool,
    /// With `follow`, turn on the source's keyspace events (`EA` added to
    /// `notify-keyspace-events`) if they are off, rather than refuse.
    pub set_notify: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Keys SCAN returned.
    pub scanned: u64,
    /// Keys written.
    pub copied: u64,
    /// Keys evenkeel already held (kept: no `--replace`).
    pub existing: u64,
    /// Keys gone (deleted or expired) before they were read or written.
    pub gone: u64,
    /// Keys the router refused (after retries), with the reasons of the
    /// first few.
    pub failed: u64,
    pub failures: Vec<(String, String)>,
    /// Payload bytes written.
    pub bytes: u64,
    /// Writes answered TRYAGAIN (a partition moving) and sent again.
    pub retried: u64,
    /// With `follow`: keys copied again after a change on the source, and
    /// keys deleted here because they were gone there.
    pub followed: u64,
    pub deleted: u64,
    /// With `follow`: keys changed on the source and not copied yet when
    /// the import stopped.
    pub lag: u64,
    /// From a file: keys of other databases (not copied), and function
    /// libraries loaded or already there (kept: no `--replace`).
    pub other_db: u64,
    pub functions: u64,
    pub existing_functions: u64,
    /// Where SCAN stopped: "0" when the walk is complete.
    pub cursor: String,
    pub seconds: f64,
}

impl ImportReport {
    /// Counts a refused key, keeping the reasons of the first few.
    fn fail(&mut self, key: String, reason: String) {
        self.failed += 1;
        if self.failures.len() < FAILURES_SHOWN {
            self.failures.push((key, reason));
        }
    }
}

/// One connection, for pipelines of commands.
pub(crate) struct Conn {
    framed: Framed<evenkeel_bench::load::Conn, FrameDecoder>,
    buf: BytesMut,
}

impl Conn {
    pub(crate) async fn open(target: &Target) -> anyhow::Result<Conn> {
        let stream = evenkeel_bench::load::connect_conn(target).await.map_err(anyhow::Error::msg).with_context(|| format!("connecting to {}", target.display()))?;
        Ok(Conn { framed: Framed::new(stream, FrameDecoder), buf: BytesMut::new() })
    }

    /// Sends every command, then reads one reply each.
    pub(crate) async fn pipeline(&mut self, commands: &[Vec<Bytes>]) -> anyhow::Result<Vec<Frame>> {
        self.buf.clear();
        for c in commands {
            let args: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
            encode_command(&args, &mut self.buf);
        }
        self.framed.get_mut().write_all(&self.buf).await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            match tokio::time::timeout(REPLY_TIMEOUT, self.framed.next()).await {
                Ok(Some(Ok(frame))) => replies.push(frame),
                Ok(Some(Err(e))) => bail!("reading a reply: {e}"),
                Ok(None) => bail!("the server closed the connection"),
                Err(_) => bail!("no reply within {REPLY_TIMEOUT:?}"),
            }
        }
        Ok(replies)
    }

    pub(crate) async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<Frame> {
        let command: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        Ok(self.pipeline(&[command]).await?.remove(0))
    }
}

/// Copies the keys; `progress` counts keys scanned (its length, when
/// known, is the source's DBSIZE). Stops early, with the cursor to resume
/// from, when `stop` resolves.
pub async fn run(opts: &ImportOptions, progress: &ProgressBar, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<ImportReport> {
    if opts.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let started = Instant::now();
    let from = opts.from.as_ref().context("no source server to import from")?;
    let mut source = Conn::open(from).await?;
    let mut target = Conn::open(&opts.to).await?;
    // Subscribed before the walk, so no change after it began is missed.
    let changes = if opts.follow { Some(Changes::subscribe(opts, &mut source).await?) } else { None };
    let outcome = walk(opts, started, changes.as_ref(), &mut source, &mut target, progress, stop).await;
    // Keyspace events turned on for the import go back off.
    if let Some(flags) = changes.as_ref().and_then(|c| c.original_flags.as_deref()) {
        let restored = async {
            let mut conn = Conn::open(from).await?;
            match conn.call(&[b"CONFIG", b"SET", b"notify-keyspace-events", flags.as_bytes()]).await? {
                Frame::Simple(_) => anyhow::Ok(()),
                other => bail!("it answered {other:?}"),
            }
        };
        if let Err(e) = restored.await {
            eprintln!("warning: could not set the source's notify-keyspace-events back to {flags:?}: {e:#}");
        }
    }
    outcome
}

/// The walk (and, with `changes`, the following) of [`run`].
async fn walk(
    opts: &ImportOptions,
    started: Instant,
    changes: Option<&Changes>,
    source: &mut Conn,
    target: &mut Conn,
    progress: &ProgressBar,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ImportReport> {
    if let Frame::Integer(n) = source.call(&[b"DBSIZE"]).await? {
        progress.set_length(n.max(0) as u64);
    }
    tokio::pin!(stop);
    let mut report = ImportReport { cursor: opts.cursor.clone(), ..ImportReport::default() };
    loop {
        let batch = tokio::select! {
            batch = one_batch(opts, source, target, &mut report) => batch?,
            _ = &mut stop => {
                report.seconds = started.elapsed().as_secs_f64();
                report.lag = changes.map_or(0, Changes::pending);
                return Ok(report);
            }
        };
        progress.inc(batch);
        if report.cursor == "0" {
            if let Some(changes) = changes {
                follow(opts, changes, source, target, &mut report, progress, &mut stop).await?;
            }
            break;
        }
        if opts.rate > 0 {
            // Paced on keys scanned: never ahead of `rate` a second.
            let due = Duration::from_secs_f64(report.scanned as f64 / opts.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One SCAN step and its keys copied; how many keys it scanned.
async fn one_batch(opts: &ImportOptions, source: &mut Conn, target: &mut Conn, report: &mut ImportReport) -> anyhow::Result<u64> {
    let (cursor, keys) = scan_step(source, &report.cursor, opts.pattern.as_deref(), opts.batch).await?;
    let scanned = keys.len() as u64;
    report.scanned += scanned;
    copy_keys(keys, opts.replace, false, source, target, report).await?;
    report.cursor = cursor;
    Ok(scanned)
}

/// One SCAN step from `cursor`: the next cursor and the keys.
pub(crate) async fn scan_step(source: &mut Conn, cursor: &str, pattern: Option<&str>, count: usize) -> anyhow::Result<(String, Vec<Bytes>)> {
    let count = count.to_string();
    let mut scan: Vec<&[u8]> = vec![b"SCAN", cursor.as_bytes()];
    if let Some(p) = pattern {
        scan.extend([&b"MATCH"[..], p.as_bytes()]);
    }
    scan.extend([&b"COUNT"[..], count.as_bytes()]);
    Ok(match source.call(&scan).await? {
        Frame::Array(parts) if parts.len() == 2 => match (&parts[0], &parts[1]) {
            (Frame::Bulk(c), Frame::Array(keys)) => {
                let keys: Vec<Bytes> = keys.iter().filter_map(|k| if let Frame::Bulk(k) = k { Some(k.clone()) } else { None }).collect();
                (String::from_utf8_lossy(c).into_owned(), keys)
            }
            _ => bail!("SCAN answered {parts:?}"),
        },
        Frame::Error(e) => bail!("SCAN on the source failed: {e}"),
        other => bail!("SCAN answered {other:?}"),
    })
}

/// Each key's value as DUMP's payload and its absolute expiry (0: none),
/// read in one pipeline of PTTL and DUMP; None for a key gone, or due to
/// expire before anything could be done with it.
pub(crate) async fn read_keys(source: &mut Conn, keys: Vec<Bytes>) -> anyhow::Result<Vec<(Bytes, Option<(u64, Bytes)>)>> {
    let mut reads = Vec::with_capacity(keys.len() * 2);
    for k in &keys {
        reads.push(vec![Bytes::from_static(b"PTTL"), k.clone()]);
        reads.push(vec![Bytes::from_static(b"DUMP"), k.clone()]);
    }
    let read_at = unix_ms();
    let replies = source.pipeline(&reads).await?;
    let mut out = Vec::with_capacity(keys.len());
    for (key, pair) in keys.into_iter().zip(replies.chunks(2)) {
        let expire_at = match &pair[0] {
            Frame::Integer(-2) => None,
            Frame::Integer(-1) => Some(0),
            Frame::Integer(ms) if *ms >= 0 => Some(read_at + *ms as u64),
            Frame::Error(e) => bail!("PTTL {} on the source failed: {e}", key.escape_ascii()),
            other => bail!("PTTL answered {other:?}"),
        };
        let payload = match &pair[1] {
            Frame::Bulk(p) => Some(p.clone()),
            Frame::Null | Frame::NullArray => None,
            Frame::Error(e) => bail!("DUMP {} on the source failed: {e}", key.escape_ascii()),
            other => bail!("DUMP answered {other:?}"),
        };
        let value = match (expire_at.filter(|&at| at == 0 || at > unix_ms()), payload) {
            (Some(at), Some(payload)) => Some((at, payload)),
            _ => None,
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Copies `keys` as they are on the source now. A key gone there is
/// counted as gone, or with `mirror_deletes` (following changes) deleted
/// here too.
async fn copy_keys(keys: Vec<Bytes>, replace: bool, mirror_deletes: bool, source: &mut Conn, target: &mut Conn, report: &mut ImportReport) -> anyhow::Result<()> {
    let mut writes = Vec::with_capacity(keys.len());
    for (key, value) in read_keys(source, keys).await? {
        let Some((expire_at, payload)) = value else {
            if mirror_deletes {
                writes.push(vec![Bytes::from_static(b"DEL"), key]);
            } else {
                report.gone += 1;
            }
            continue;
        };
        writes.push(restore_command(key, expire_at, payload, replace));
    }
    write(writes, mirror_deletes, target, report).await
}

/// `RESTORE key <expire_at> payload ABSTTL [REPLACE]` (0: no expiry).
fn restore_command(key: Bytes, expire_at: u64, payload: Bytes, replace: bool) -> Vec<Bytes> {
    let mut restore = vec![Bytes::from_static(b"RESTORE"), key, Bytes::from(expire_at.to_string()), payload, Bytes::from_static(b"ABSTTL")];
    if replace {
        restore.push(Bytes::from_static(b"REPLACE"));
    }
    restore
}

/// Sends RESTOREs (and, following, DELs) to the router in one pipeline,
/// those answered TRYAGAIN again after a pause, and counts the outcomes.
async fn write(mut writes: Vec<Vec<Bytes>>, following: bool, target: &mut Conn, report: &mut ImportReport) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(50);
    for round in 0.. {
        if writes.is_empty() {
            break;
        }
        let replies = target.pipeline(&writes).await?;
        let mut again = Vec::new();
        for (write, reply) in writes.into_iter().zip(replies) {
            match reply {
                Frame::Integer(_) => report.deleted += 1,
                Frame::Simple(_) if following => {
                    report.followed += 1;
                    report.bytes += write[3].len() as u64;
                }
                Frame::Simple(_) => {
                    report.copied += 1;
                    report.bytes += write[3].len() as u64;
                }
                Frame::Error(e) if e.starts_with("BUSYKEY") => report.existing += 1,
                Frame::Error(e) if e.starts_with("TRYAGAIN") && round < TRYAGAIN_ROUNDS => {
                    report.retried += 1;
                    again.push(write);
                }
                Frame::Error(e) => report.fail(String::from_utf8_lossy(&write[1]).into_owned(), e),
                other => bail!("RESTORE answered {other:?}"),
            }
        }
        writes = again;
        if !writes.is_empty() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
    Ok(())
}

/// Copies the keys of an RDB file (what Redis's SAVE writes) of database
/// `db` (those of other databases are counted in `other_db`; evenkeel has
/// one) and its function libraries, reading the file in pieces; a key
/// already expired counts as gone. `progress` counts bytes of the file.
pub async fn run_file(path: &std::path::Path, db: u64, opts: &ImportOptions, progress: &ProgressBar, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<ImportReport> {
    use evenkeel_types::rdb::file::{Entry, FileReader};
    use tokio::io::AsyncReadExt;
    if opts.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let started = Instant::now();
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
    progress.set_length(file.metadata().await?.len());
    let mut target = Conn::open(&opts.to).await?;
    let pattern = opts.pattern.as_ref().map(|p| p.as_bytes().to_vec());
    let (mut reader, mut buf, mut at, mut eof) = (FileReader::default(), Vec::new(), 0usize, false);
    let mut report = ImportReport { cursor: "0".into(), ..ImportReport::default() };
    let mut writes = Vec::new();
    tokio::pin!(stop);
    loop {
        let entry = reader.next(&buf[at..], eof).with_context(|| format!("reading {}", path.display()))?;
        let Some((entry, n)) = entry else {
            // Keep what is not consumed, and read at least as much again.
            buf.drain(..at);
            at = 0;
            let want = buf.len().max(1 << 20);
            let start = buf.len();
            buf.resize(start + want, 0);
            let got = tokio::select! {
                got = file.read(&mut buf[start..]) => got.with_context(|| format!("reading {}", path.display()))?,
                _ = &mut stop => break,
            };
            buf.truncate(start + got);
            eof = got == 0;
            continue;
        };
        at += n;
        progress.inc(n as u64);
        match entry {
            Entry::Header(_) => {}
            Entry::Key { db: key_db, .. } if key_db != db => report.other_db += 1,
            Entry::Key { key, .. } if pattern.as_ref().is_some_and(|p| !evenkeel_types::glob::glob_match(p, &key)) => {}
            Entry::Key { key, expire_at_ms, payload, .. } => {
                report.scanned += 1;
                match expire_at_ms {
                    Some(at) if at <= unix_ms() => report.gone += 1,
                    _ => writes.push(restore_command(key, expire_at_ms.unwrap_or(0), payload, opts.replace)),
                }
                if writes.len() >= opts.batch {
                    write(std::mem::take(&mut writes), false, &mut target, &mut report).await?;
                }
            }
            Entry::Function(code) => {
                let mut load: Vec<&[u8]> = vec![b"FUNCTION", b"LOAD"];
                if opts.replace {
                    load.push(b"REPLACE");
                }
                load.push(&code);
                match target.call(&load).await? {
                    Frame::Bulk(_) => report.functions += 1,
                    Frame::Error(e) if e.contains("already exists") => report.existing_functions += 1,
                    Frame::Error(e) => report.fail("(a function library)".into(), e),
                    other => bail!("FUNCTION LOAD answered {other:?}"),
                }
            }
            Entry::End => {
                write(std::mem::take(&mut writes), false, &mut target, &mut report).await?;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
        }
    }
    // Stopped: what was read is written, and the import is incomplete.
    write(writes, false, &mut target, &mut report).await?;
    report.cursor = "stopped".into();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The keys the source changed since the import subscribed to its
/// keyspace events, not yet copied again; filled by a task reading the
/// subscription.
struct Changes {
    /// The source's notify-keyspace-events before the import turned its
    /// events on (`set_notify`), to put back when it ends.
    original_flags: Option<String>,
    state: Arc<Mutex<ChangeState>>,
    woken: Arc<tokio::sync::Notify>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ChangeState {
    keys: HashSet<Bytes>,
    /// Why the subscription ended (events may have been missed since).
    ended: Option<String>,
}

impl Changes {
    /// Checks (or, with `set_notify`, turns on) the source's keyspace
    /// events and subscribes to them on a connection of its own.
    async fn subscribe(opts: &ImportOptions, source: &mut Conn) -> anyhow::Result<Changes> {
        let flags = match source.call(&[b"CONFIG", b"GET", b"notify-keyspace-events"]).await? {
            Frame::Array(parts) if parts.len() == 2 => match &parts[1] {
                Frame::Bulk(f) => String::from_utf8_lossy(f).into_owned(),
                other => bail!("CONFIG GET notify-keyspace-events answered {other:?}"),
            },
            Frame::Map(pairs) if pairs.len() == 1 => match &pairs[0].1 {
                Frame::Bulk(f) => String::from_utf8_lossy(f).into_owned(),
                other => bail!("CONFIG GET notify-keyspace-events answered {other:?}"),
            },
            Frame::Error(e) => bail!("cannot read the source's notify-keyspace-events ({e}); --follow needs its keyspace events"),
            other => bail!("CONFIG GET notify-keyspace-events answered {other:?}"),
        };
        let mut original_flags = None;
        if !follows_every_change(&flags) {
            if !opts.set_notify {
                bail!(
                    "--follow needs the source's keyspace events for every key type (notify-keyspace-events has {flags:?}; it needs E and A): run CONFIG SET notify-keyspace-events EA on it, or pass --set-notify-keyspace-events"
                );
            }
            let wanted = format!("{flags}EA");
            match source.call(&[b"CONFIG", b"SET", b"notify-keyspace-events", wanted.as_bytes()]).await? {
                Frame::Simple(_) => {}
                other => bail!("CONFIG SET notify-keyspace-events {wanted} on the source answered {other:?}"),
            }
            original_flags = Some(flags);
        }
        let mut events = Conn::open(opts.from.as_ref().context("no source server to follow")?).await?;
        let pattern = b"__keyevent@0__:*";
        match events.call(&[b"PSUBSCRIBE", pattern]).await? {
            Frame::Array(parts) | Frame::Push(parts) if parts.first() == Some(&Frame::bulk("psubscribe")) => {}
            other => bail!("PSUBSCRIBE on the source answered {other:?}"),
        }
        let state: Arc<Mutex<ChangeState>> = Arc::default();
        let woken = Arc::new(tokio::sync::Notify::new());
        let (s, w) = (state.clone(), woken.clone());
        let reader = tokio::spawn(async move {
            let why = loop {
                match events.framed.next().await {
                    Some(Ok(Frame::Array(parts) | Frame::Push(parts))) if parts.len() == 4 && parts[0] == Frame::bulk("pmessage") => {
                        if let Frame::Bulk(key) = &parts[3] {
                            s.lock().keys.insert(key.clone());
                            w.notify_one();
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("the keyspace event subscription failed: {e}"),
                    None => break "the source closed the keyspace event subscription (a subscriber too far behind is disconnected: client-output-buffer-limit pubsub)".to_string(),
                }
            };
            s.lock().ended = Some(why);
            w.notify_one();
        });
        Ok(Changes { original_flags, state, woken, reader })
    }

    fn pending(&self) -> u64 {
        self.state.lock().keys.len() as u64
    }

    /// Up to `n` changed keys, taken from the set.
    fn take(&self, n: usize) -> Result<Vec<Bytes>, String> {
        let mut state = self.state.lock();
        if let Some(why) = &state.ended {
            return Err(why.clone());
        }
        let keys: Vec<Bytes> = state.keys.iter().take(n).cloned().collect();
        for k in &keys {
            state.keys.remove(k);
        }
        Ok(keys)
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Whether `flags` (notify-keyspace-events) raise a keyevent for every
/// change of every type: `E`, and `A` or each of its classes.
fn follows_every_change(flags: &str) -> bool {
    flags.contains('E') && (flags.contains('A') || "g$lshzxet".chars().all(|c| flags.contains(c)))
}

/// Copies the changed keys again, as they come, until `stop`; then the
/// ones marked by then (not those marked while it finishes), and returns.
async fn follow(
    opts: &ImportOptions,
    changes: &Changes,
    source: &mut Conn,
    target: &mut Conn,
    report: &mut ImportReport,
    progress: &ProgressBar,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<()> {
    progress.set_style(indicatif::ProgressStyle::with_template("following the source's changes: {msg}").expect("a valid template"));
    let missed = |why: String| anyhow::anyhow!("{why}: changes may have been missed; import again with --replace");
    loop {
        let keys = changes.take(opts.batch).map_err(missed)?;
        progress.set_message(format!("{} keys copied again, {} deleted, {} waiting", report.followed, report.deleted, keys.len() as u64 + changes.pending()));
        if keys.is_empty() {
            tokio::select! {
                _ = changes.woken.notified() => continue,
                _ = stop.as_mut() => break,
            }
        }
        copy_keys(keys, true, true, source, target, report).await?;
    }
    let last = changes.take(usize::MAX).map_err(missed)?;
    for keys in last.chunks(opts.batch) {
        copy_keys(keys.to_vec(), true, true, source, target, report).await?;
    }
    report.lag = changes.pending();
    Ok(())
}

/// The report as a line for people.
pub fn describe(r: &ImportReport) -> String {
    let mut line = format!("imported {} keys ({} bytes of payload) in {:.1}s", r.copied, r.bytes, r.seconds);
    if r.existing > 0 {
        line.push_str(&format!("; {} already there, kept (--replace overwrites them)", r.existing));
    }
    if r.gone > 0 {
        line.push_str(&format!("; {} gone before they were read", r.gone));
    }
    if r.failed > 0 {
        line.push_str(&format!("; {} FAILED", r.failed));
        for (key, e) in &r.failures {
            line.push_str(&format!("\n  {key}: {e}"));
        }
    }
    if r.functions + r.existing_functions > 0 {
        line.push_str(&format!("; {} function libraries loaded, {} already there", r.functions, r.existing_functions));
    }
    if r.other_db > 0 {
        line.push_str(&format!("; {} keys of other databases left out (--db picks the one to import)", r.other_db));
    }
    if r.followed + r.deleted > 0 || r.lag > 0 {
        line.push_str(&format!("; following changes: {} copied again, {} deleted, {} not yet copied when stopped", r.followed, r.deleted, r.lag));
    }
    if r.cursor == "stopped" {
        line.push_str("\nstopped early: the file was not read to its end");
    } else if r.cursor != "0" {
        line.push_str(&format!("\nstopped early: resume with --cursor {}", r.cursor));
    }
    line
}
