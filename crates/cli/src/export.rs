//! `evenkeel export --rdb FILE`: writes evenkeel's keys (through one of
//! its routers; or any server that answers SCAN, PTTL and DUMP with
//! payloads of RDB version 10 or older) to an RDB file, the format of
//! Redis's SAVE: a backup that `evenkeel import --rdb` reads back, and a
//! file Redis 7.0 and later load at startup (`dbfilename`), to move data
//! out as easily as in.
//!
//! It walks the keys with SCAN, reads each batch with one pipeline of PTTL
//! and DUMP (`import::read_keys`), and appends them to the file
//! (`evenkeel_types::rdb::file::FileWriter`), after the function
//! libraries (FUNCTION LIST WITHCODE). The file is written under a
//! temporary name, synced, and renamed into place once complete, so a
//! file at the path is always whole. Like the import, it is a walk, not a
//! point-in-time snapshot: a key changed while it runs is written as it
//! was when its batch was read. A key SCAN returns twice is written once
//! (Redis refuses to load a file with a key twice), which costs the
//! export memory for every key's name.

use crate::import::{Conn, read_keys, scan_step};
use anyhow::{Context, bail};
use bytes::BytesMut;
use evenkeel_bench::config::Target;
use evenkeel_resp::Frame;
use evenkeel_types::rdb::file::FileWriter;
use indicatif::ProgressBar;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// What to write, from where, how fast.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub from: Target,
    /// Only keys matching this glob (SCAN's MATCH).
    pub pattern: Option<String>,
    /// Keys per SCAN step and per pipeline.
    pub batch: usize,
    /// At most this many keys a second (0: as fast as they go).
    pub rate: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportReport {
    pub keys: u64,
    /// Keys SCAN returned that were gone (or expiring) when read.
    pub gone: u64,
    pub functions: u64,
    /// The file's size.
    pub bytes: u64,
    pub seconds: f64,
}

/// Writes the keys to `path`; `progress` counts keys scanned. Stopped by
/// `stop`, it leaves no file (and says so).
pub async fn run(opts: &ExportOptions, path: &Path, progress: &ProgressBar, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<ExportReport> {
    if opts.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let started = Instant::now();
    let mut source = Conn::open(&opts.from).await?;
    let keys_hint = match source.call(&[b"DBSIZE"]).await? {
        Frame::Integer(n) => n.max(0) as u64,
        _ => 0,
    };
    progress.set_length(keys_hint);
    let libraries = function_code(&mut source).await?;
    let partial = path.with_file_name(format!(".{}.partial", path.file_name().and_then(|n| n.to_str()).unwrap_or("export.rdb")));
    let mut file = tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let mut report = ExportReport::default();
    let mut out = BytesMut::with_capacity(1 << 20);
    let mut writer = FileWriter::start(&mut out, evenkeel_types::unix_ms() / 1000);
    for code in &libraries {
        writer.function(&mut out, code);
        report.functions += 1;
    }
    writer.select_db(&mut out, keys_hint, 0);
    let mut cursor = "0".to_string();
    let mut scanned = 0u64;
    // SCAN may return a key more than once (a Redis rehashing, a partition
    // moving here), and Redis refuses to load a file that holds a key
    // twice: each is written once.
    let mut written_keys = std::collections::HashSet::new();
    tokio::pin!(stop);
    let written = async {
        loop {
            let (next, keys) = scan_step(&mut source, &cursor, opts.pattern.as_deref(), opts.batch).await?;
            scanned += keys.len() as u64;
            progress.inc(keys.len() as u64);
            let keys: Vec<bytes::Bytes> = keys.into_iter().filter(|k| written_keys.insert(k.clone())).collect();
            for (key, value) in read_keys(&mut source, keys).await? {
                match value {
                    Some((at, payload)) => {
                        writer.key(&mut out, &key, (at != 0).then_some(at), &payload).map_err(|e| anyhow::anyhow!("DUMP {} gave a payload this file cannot hold ({e}): the server writes a newer RDB version than 10", key.escape_ascii()))?;
                        report.keys += 1;
                    }
                    None => report.gone += 1,
                }
            }
            if out.len() >= 1 << 20 {
                file.write_all(&out).await?;
                report.bytes += out.len() as u64;
                out.clear();
            }
            cursor = next;
            if cursor == "0" {
                return anyhow::Ok(());
            }
            if opts.rate > 0 {
                let due = Duration::from_secs_f64(scanned as f64 / opts.rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    };
    let outcome = tokio::select! {
        outcome = written => outcome,
        _ = &mut stop => Err(anyhow::anyhow!("stopped before every key was written")),
    };
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e.context(format!("no file written at {}", path.display())));
    }
    writer.end(&mut out);
    file.write_all(&out).await?;
    report.bytes += out.len() as u64;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&partial, path).await.with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Every function library's code (FUNCTION LIST WITHCODE), in the order
/// listed; none from a server without functions.
async fn function_code(source: &mut Conn) -> anyhow::Result<Vec<bytes::Bytes>> {
    let libraries = match source.call(&[b"FUNCTION", b"LIST", b"WITHCODE"]).await? {
        Frame::Array(libraries) => libraries,
        Frame::Error(e) if e.contains("unknown command") => return Ok(Vec::new()),
        other => bail!("FUNCTION LIST WITHCODE answered {other:?}"),
    };
    let mut codes = Vec::new();
    for library in libraries {
        let fields = match library {
            Frame::Array(fields) => fields,
            Frame::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => bail!("FUNCTION LIST WITHCODE listed {other:?}"),
        };
        let name = |f: &Frame| match f {
            Frame::Bulk(b) => Some(b.to_vec()),
            Frame::Simple(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        };
        let code = fields.chunks(2).find_map(|kv| match (name(&kv[0]).as_deref(), kv.get(1)) {
            (Some(b"library_code"), Some(Frame::Bulk(code))) => Some(code.clone()),
            _ => None,
        });
        codes.push(code.context("a library listed without its code")?);
    }
    Ok(codes)
}

/// The report as a line for people.
pub fn describe(r: &ExportReport, path: &Path) -> String {
    let mut line = format!("exported {} keys and {} function libraries to {} ({} bytes) in {:.1}s", r.keys, r.functions, path.display(), r.bytes, r.seconds);
    if r.gone > 0 {
        line.push_str(&format!("; {} gone before they were read", r.gone));
    }
    line
}
