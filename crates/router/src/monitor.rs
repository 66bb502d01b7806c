//! MONITOR: every command this router receives, as a line, to the clients
//! that asked.
//!
//! Lines are Redis's: `+<seconds>.<micros> [0 <client address>] "name"
//! "arg" ...`, each argument quoted as `sdscatrepr` quotes it. A router sees
//! its own clients' commands only (Redis Cluster's MONITOR shows one
//! node's). AUTH and HELLO are not shown (passwords). While nobody
//! monitors, feeding costs one atomic load per command.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// Lines a monitoring client may fall behind by before it is disconnected
/// (Redis would let its output buffer grow without bound).
pub const BACKLOG_LINES: usize = 65_536;

#[derive(Default)]
pub struct Monitor {
    /// Made at the first MONITOR: its buffer of [`BACKLOG_LINES`] slots is
    /// megabytes, which a router nobody monitors does not need.
    lines: std::sync::OnceLock<broadcast::Sender<Bytes>>,
    watchers: Arc<AtomicUsize>,
}

/// A monitoring client's lines, until dropped.
pub struct Watch {
    watchers: Arc<AtomicUsize>,
    pub lines: broadcast::Receiver<Bytes>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Starts watching: every command fed from now on.
    pub fn watch(&self) -> Watch {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        let lines = self.lines.get_or_init(|| broadcast::Sender::new(BACKLOG_LINES)).subscribe();
        Watch { watchers: self.watchers.clone(), lines }
    }

    /// Shows a command (`args` non-empty) from `client` (`ip:port`) to the
    /// watchers, if any.
    pub fn feed(&self, client: &str, args: &[Bytes]) {
        if self.watchers.load(Ordering::Relaxed) == 0 {
            return;
        }
        // Passwords are never shown (ACL SETUSER's `>password` either).
        if args[0].eq_ignore_ascii_case(b"auth") || args[0].eq_ignore_ascii_case(b"hello") || args[0].eq_ignore_ascii_case(b"acl") {
            return;
        }
        let now_us = evenkeel_types::unix_us();
        if let Some(lines) = self.lines.get() {
            let _ = lines.send(line(now_us, client, args));
        }
    }
}

/// One MONITOR line; `now_us` in Unix microseconds.
fn line(now_us: u64, client: &str, args: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + args.iter().map(|a| a.len() + 3).sum::<usize>());
    out.extend_from_slice(format!("+{}.{:06} [0 {client}]", now_us / 1_000_000, now_us % 1_000_000).as_bytes());
    for a in args {
        out.extend_from_slice(b" ");
        repr(a, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// Redis's `sdscatrepr` (`evenkeel_types::repr::quote`).
fn repr(arg: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(evenkeel_types::repr::quote(arg).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_arguments_as_redis_does() {
        let args = [Bytes::from_static(b"set"), Bytes::from_static(b"k \"q\"\\"), Bytes::from_static(b"\n\r\t\x07\x08\x00\xff")];
        let shown = line(1_339_518_083_107_412, "127.0.0.1:60866", &args);
        assert_eq!(&shown[..], &b"+1339518083.107412 [0 127.0.0.1:60866] \"set\" \"k \\\"q\\\"\\\\\" \"\\n\\r\\t\\a\\b\\x00\\xff\"\r\n"[..]);
        assert!(line(5_000_001, "c", &args[..1]).starts_with(b"+5.000001 [0 c] \"set\""));
    }

    #[tokio::test]
    async fn watchers_see_commands_fed_after_they_start_and_auth_never() {
        let monitor = Monitor::default();
        monitor.feed("c", &[Bytes::from_static(b"get"), Bytes::from_static(b"before")]);
        let mut watch = monitor.watch();
        monitor.feed("c", &[Bytes::from_static(b"AUTH"), Bytes::from_static(b"secret")]);
        monitor.feed("c", &[Bytes::from_static(b"get"), Bytes::from_static(b"after")]);
        let seen = watch.lines.recv().await.unwrap();
        assert!(seen.ends_with(b"[0 c] \"get\" \"after\"\r\n"), "{seen:?}");
        assert!(watch.lines.try_recv().is_err());
        drop(watch);
        assert_eq!(monitor.watchers.load(Ordering::Relaxed), 0);
    }
}
