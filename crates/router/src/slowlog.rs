//! SLOWLOG: commands that took at least a threshold, newest first, in a
//! bounded log, as Redis keeps them (`slowlog-log-slower-than`,
//! `slowlog-max-len`; the router's `[router]` configuration).
//!
//! A command's time is from when the router started it to its reply: for
//! a pipelined command run in a batch, the batch's. Blocking commands are
//! not logged (their wait is the client's choice), nor AUTH and HELLO
//! (their arguments hold passwords). As in Redis, at most 32 arguments
//! are kept (the last saying how many more there were) and each to 128
//! bytes (saying how many more bytes).

use bytes::Bytes;
use evenkeel_resp::Frame;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::Duration;

const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

/// Redis's defaults.
pub const DEFAULT_SLOWER_THAN_US: i64 = 10_000;
pub const DEFAULT_MAX_LEN: usize = 128;

struct Entry {
    id: u64,
    at_unix_s: u64,
    micros: u64,
    args: Vec<Bytes>,
    addr: String,
    name: Bytes,
}

pub struct SlowLog {
    /// Log commands taking at least this long; negative: log nothing.
    slower_than_us: i64,
    max_len: usize,
    /// Newest first, and the next entry's id.
    entries: Mutex<(VecDeque<Entry>, u64)>,
}

impl SlowLog {
    pub fn new(slower_than_us: i64, max_len: usize) -> SlowLog {
        SlowLog { slower_than_us, max_len, entries: Mutex::new((VecDeque::new(), 0)) }
    }

    pub fn slower_than_us(&self) -> i64 {
        self.slower_than_us
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Logs the command `args` of the client at `addr` (named `name`) if
    /// it took at least the threshold.
    pub fn record(&self, args: &[Bytes], took: Duration, addr: &str, name: Option<&Bytes>) {
        let micros = took.as_micros() as u64;
        if self.slower_than_us < 0 || micros < self.slower_than_us as u64 || self.max_len == 0 {
            return;
        }
        let kept = args.len().min(MAX_ARGS);
        let logged = (0..kept)
            .map(|j| {
                if kept != args.len() && j == kept - 1 {
                    Bytes::from(format!("... ({} more arguments)", args.len() - kept + 1))
                } else if args[j].len() > MAX_ARG_BYTES {
                    let mut cut = args[j][..MAX_ARG_BYTES].to_vec();
                    cut.extend_from_slice(format!("... ({} more bytes)", args[j].len() - MAX_ARG_BYTES).as_bytes());
                    Bytes::from(cut)
                } else {
                    args[j].clone()
                }
            })
            .collect();
        let mut log = self.entries.lock();
        let id = log.1;
        log.1 += 1;
        log.0.push_front(Entry { id, at_unix_s: evenkeel_types::unix_ms() / 1000, micros, args: logged, addr: addr.to_string(), name: name.cloned().unwrap_or_default() });
        log.0.truncate(self.max_len);
    }

    /// SLOWLOG GET's reply: the newest `count` entries.
    pub fn get(&self, count: usize) -> Frame {
        let log = self.entries.lock();
        let entries = log.0.iter().take(count).map(|e| {
            Frame::Array(vec![
                Frame::Integer(e.id as i64),
                Frame::Integer(e.at_unix_s as i64),
                Frame::Integer(e.micros as i64),
                Frame::Array(e.args.iter().cloned().map(Frame::Bulk).collect()),
                Frame::bulk(e.addr.clone()),
                Frame::Bulk(e.name.clone()),
            ])
        });
        Frame::Array(entries.collect())
    }

    pub fn len(&self) -> usize {
        self.entries.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(format!("a{i}"))).collect()
    }

    #[test]
    fn keeps_the_newest_slow_commands_trimmed_as_redis_does() {
        let log = SlowLog::new(1_000, 2);
        log.record(&args(2), Duration::from_micros(999), "127.0.0.1:1", None);
        assert!(log.is_empty(), "faster than the threshold");
        log.record(&args(2), Duration::from_micros(1_000), "127.0.0.1:1", None);
        log.record(&[Bytes::from(vec![b'x'; 130])], Duration::from_millis(5), "127.0.0.1:2", Some(&Bytes::from_static(b"worker")));
        log.record(&args(40), Duration::from_millis(7), "127.0.0.1:3", None);
        assert_eq!(log.len(), 2, "bounded by max_len, oldest dropped");
        let Frame::Array(entries) = log.get(10) else { panic!() };
        let Frame::Array(newest) = &entries[0] else { panic!() };
        assert_eq!(newest[0], Frame::Integer(2), "ids count every logged command");
        assert_eq!(newest[2], Frame::Integer(7_000));
        let Frame::Array(logged) = &newest[3] else { panic!() };
        assert_eq!((logged.len(), &logged[31]), (32, &Frame::bulk("... (9 more arguments)")));
        let Frame::Array(older) = &entries[1] else { panic!() };
        let Frame::Array(long) = &older[3] else { panic!() };
        assert_eq!(long[0], Frame::Bulk(Bytes::from(format!("{}... (2 more bytes)", "x".repeat(128)))));
        assert_eq!((&older[4], &older[5]), (&Frame::bulk("127.0.0.1:2"), &Frame::bulk("worker")));
        assert_eq!(log.get(1), Frame::Array(vec![entries[0].clone()]));
        log.reset();
        assert!(log.is_empty());
        let off = SlowLog::new(-1, 128);
        off.record(&args(1), Duration::from_secs(1), "", None);
        assert!(off.is_empty(), "a negative threshold logs nothing");
    }
}
