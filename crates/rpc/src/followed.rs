//! A value read from files that a running process follows: the admin API's
//! token file (`evenkeel_coord::auth`), TLS certificates and keys
//! ([`crate::tls::ReloadingCert`]: the RESP endpoint, the admin API, the
//! internal gRPC) and the internal gRPC's CA ([`crate::tls::ReloadingRoots`]).
//!
//! At most every [`RELOAD_CHECK_EVERY`], a caller (a request, a handshake)
//! reads the files again. Their contents, not their modification times,
//! decide whether they changed (two writes within one clock tick share a
//! modification time; the files are a few KB). A change whose contents
//! parse replaces the value; one that does not, or an unreadable file, is
//! logged and the value in use kept, so a renewal written one file at a
//! time is taken once every file holds it. A caller that finds another one
//! looking uses the value as it is, never waiting.

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the files may be read again.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Parses the files' contents (in the order of their paths).
type Parse<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync>;

/// A value and the files it was parsed from.
pub struct Followed<T> {
    /// What the files are, for logs ("the admin token file").
    what: &'static str,
    /// The counter of reloads (`outcome` reloaded or failed).
    reloads: &'static str,
    paths: Vec<PathBuf>,
    parse: Parse<T>,
    current: ArcSwap<T>,
    /// The files' contents when `current` was parsed, and when they were
    /// last read.
    seen: Mutex<(Vec<Vec<u8>>, Instant)>,
}

impl<T> std::fmt::Debug for Followed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followed").field("what", &self.what).field("paths", &self.paths).finish_non_exhaustive()
    }
}

impl<T> Followed<T> {
    /// Reads and parses `paths` now; an error names what failed.
    pub fn new(what: &'static str, reloads: &'static str, paths: Vec<PathBuf>, parse: impl Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync + 'static) -> Result<Followed<T>, String> {
        let contents = read_all(what, &paths)?;
        let current = ArcSwap::from_pointee(parse(&contents)?);
        Ok(Followed { what, reloads, paths, parse: Box::new(parse), current, seen: Mutex::new((contents, Instant::now())) })
    }

    /// A value that follows no file.
    pub fn fixed(value: T) -> Followed<T> {
        Followed { what: "", reloads: "", paths: Vec::new(), parse: Box::new(|_| Err("follows no file".into())), current: ArcSwap::from_pointee(value), seen: Mutex::new((Vec::new(), Instant::now())) }
    }

    /// The value as it is, without looking at the files.
    pub fn get(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// The value, after reading the files again if the last read is at
    /// least `every` old.
    pub fn current(&self, every: Duration) -> Arc<T> {
        if !self.paths.is_empty() {
            self.refresh(every);
        }
        self.get()
    }

    fn refresh(&self, every: Duration) {
        let Some(mut seen) = self.seen.try_lock() else { return };
        if seen.1.elapsed() < every {
            return;
        }
        seen.1 = Instant::now();
        let contents = match read_all(self.what, &self.paths) {
            Ok(contents) if contents == seen.0 => return,
            Ok(contents) => contents,
            Err(e) => {
                tracing::warn!(error = %e, "{} unreadable; keeping what was read before", self.what);
                return;
            }
        };
        match (self.parse)(&contents) {
            Ok(value) => {
                self.current.store(Arc::new(value));
                seen.0 = contents;
                tracing::info!(files = ?self.paths, "{} reloaded", self.what);
                metrics::counter!(self.reloads, "outcome" => "reloaded").increment(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "{} changed but does not load; keeping what was read before", self.what);
                metrics::counter!(self.reloads, "outcome" => "failed").increment(1);
            }
        }
    }
}

fn read_all(what: &str, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    paths.iter().map(|p| std::fs::read(p).map_err(|e| format!("reading {what} {}: {e}", p.display()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(contents: &[Vec<u8>]) -> Result<Vec<String>, String> {
        let text = String::from_utf8(contents.concat()).map_err(|e| e.to_string())?;
        if text.contains("bad") { Err("bad".into()) } else { Ok(text.lines().map(str::to_string).collect()) }
    }

    #[test]
    fn changed_contents_are_taken_when_they_parse_and_no_sooner_than_asked() {
        let dir = std::env::temp_dir().join(format!("evenkeel-followed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, "1\n").unwrap();
        std::fs::write(&b, "2\n").unwrap();
        let f = Followed::new("the test files", "evenkeel_test_reloads_total", vec![a.clone(), b.clone()], lines).unwrap();
        let now = Duration::ZERO;
        assert_eq!(*f.current(now), ["1", "2"]);
        std::fs::write(&b, "3\n").unwrap();
        assert_eq!(*f.current(Duration::from_secs(3600)), ["1", "2"], "not read again before `every`");
        assert_eq!(*f.current(now), ["1", "3"]);
        // Contents that do not parse, or a file gone: the value stays.
        std::fs::write(&a, "bad\n").unwrap();
        assert_eq!(*f.current(now), ["1", "3"]);
        std::fs::remove_file(&a).unwrap();
        assert_eq!(*f.current(now), ["1", "3"]);
        std::fs::write(&a, "4\n").unwrap();
        assert_eq!(*f.current(now), ["4", "3"]);
        assert!(Followed::new("the test files", "x", vec![dir.join("absent")], lines).unwrap_err().contains("reading the test files"));
        assert_eq!(*Followed::fixed(7).current(now), 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
