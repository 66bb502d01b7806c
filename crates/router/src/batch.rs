//! Consecutive pipelined data commands, run as one dispatch.
//!
//! A [`Batch`] collects planned data commands in connection order and
//! concatenates their ops, so [`Dispatcher::run`](crate::dispatch::Dispatcher::run)
//! sends one `Execute` per owner node for the whole batch (ops in connection
//! order, which a node executes in order) and retries refused ops exactly as
//! it does for one command. Each command's reply is then built from its own
//! slice of the results. A command whose arguments were invalid keeps its
//! ready error reply at its position. Bounds on commands, ops and argument
//! bytes keep a batch's memory and latency in check; a batch always takes
//! its first command, however large.

use crate::Router;
use crate::cmd::plan::{self, Planned, Shape};
use crate::dispatch::{DispatchError, KeyOp};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::op_result::Result as R;
use std::ops::Range;
use std::time::Instant;

/// How much one batch may hold.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub commands_max: usize,
    /// Kept well under a node's 10,000 ops per `Execute`.
    pub ops_max: usize,
    pub arg_bytes_max: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits { commands_max: 512, ops_max: 4096, arg_bytes_max: 1 << 20 }
    }
}

/// Planned commands waiting to run together.
pub struct Batch {
    limits: BatchLimits,
    entries: Vec<Entry>,
    ops: Vec<KeyOp>,
    arg_bytes: usize,
}

struct Entry {
    name: &'static str,
    /// For SLOWLOG.
    args: Vec<Bytes>,
    /// The command's ops in `Batch::ops`, or its ready error reply.
    work: Result<(Shape, Range<usize>), Frame>,
}

impl Batch {
    pub fn new(limits: BatchLimits) -> Batch {
        Batch { limits, entries: Vec::new(), ops: Vec::new(), arg_bytes: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request with these arguments may still join. It is checked
    /// before planning, so the argument count stands in for the op count
    /// (a command never has more ops than arguments).
    pub fn fits(&self, args: &[Bytes]) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        self.entries.len() < self.limits.commands_max
            && self.ops.len() + args.len() <= self.limits.ops_max
            && self.arg_bytes + arg_bytes(args) <= self.limits.arg_bytes_max
    }

    /// Adds a command after those already in the batch.
    pub fn push(&mut self, name: &'static str, args: Vec<Bytes>, planned: Result<Planned, Frame>) {
        self.arg_bytes += arg_bytes(&args);
        let work = planned.map(|p| {
            let start = self.ops.len();
            self.ops.extend(p.ops);
            (p.shape, start..self.ops.len())
        });
        self.entries.push(Entry { name, args, work });
    }

    /// Runs every op and returns the replies in command order; `session`
    /// is the client's, for SLOWLOG.
    pub async fn run(mut self, router: &Router, session: &crate::Session) -> Vec<Frame> {
        let started = Instant::now();
        let outcomes = if self.ops.is_empty() { Vec::new() } else { router.dispatcher.run(&self.ops).await };
        let commands: Vec<(&'static str, Vec<Bytes>)> = self.entries.iter_mut().map(|e| (e.name, std::mem::take(&mut e.args))).collect();
        let replies = self.replies(outcomes);
        for ((name, args), reply) in commands.into_iter().zip(&replies) {
            crate::cmd::record(router, name, false, started, reply);
            crate::cmd::slowlog(router, session, name, &args, started);
        }
        replies
    }

    /// Splits the batch's outcomes (one per op, in op order) into one reply
    /// per command.
    fn replies(self, outcomes: Vec<Result<R, DispatchError>>) -> Vec<Frame> {
        assert_eq!(outcomes.len(), self.ops.len(), "one outcome per op");
        let mut outcomes = outcomes.into_iter();
        self.entries
            .into_iter()
            .map(|e| match e.work {
                // Ranges are consecutive and in order, so each command takes
                // the next `len` outcomes.
                Ok((shape, range)) => plan::reply(shape, outcomes.by_ref().take(range.len()).collect()),
                Err(ready) => ready,
            })
            .collect()
    }
}

fn arg_bytes(args: &[Bytes]) -> usize {
    args.iter().map(Bytes::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use evenkeel_rpc::pb::{self, op::Kind};

    fn args(words: &str) -> Vec<Bytes> {
        words.split_whitespace().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn planned(keys: &[&str], shape: Shape) -> Result<Planned, Frame> {
        let ops = keys.iter().map(|k| KeyOp::new(Bytes::from(k.to_string()), Kind::Get(pb::Get::default()))).collect();
        Ok(Planned { ops, shape })
    }

    fn value(v: &str) -> Result<R, DispatchError> {
        Ok(R::Value(pb::Value { value: Bytes::from(v.to_string()), ..Default::default() }))
    }

    #[test]
    fn ops_are_concatenated_in_command_order() {
        let mut b = Batch::new(BatchLimits::default());
        b.push("get", args("GET a"), planned(&["a"], Shape::Value));
        b.push("set", args("SET k v EX 0"), Err(Frame::error("ERR invalid expire time in 'set' command")));
        b.push("mget", args("MGET b c d"), planned(&["b", "c", "d"], Shape::Values));
        b.push("get", args("GET e"), planned(&["e"], Shape::Value));
        let keys: Vec<&[u8]> = b.ops.iter().map(|o| &o.key[..]).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c", b"d", b"e"]);
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn replies_keep_positions_and_per_command_failures() {
        let mut b = Batch::new(BatchLimits::default());
        b.push("get", args("GET a"), planned(&["a"], Shape::Value));
        b.push("set", args("SET k v XX NX"), Err(crate::cmd::syntax_error()));
        b.push("mget", args("MGET b c"), planned(&["b", "c"], Shape::Values));
        b.push("get", args("GET d"), planned(&["d"], Shape::Value));
        let nil = Ok(R::Nil(pb::Nil {}));
        let outcomes = vec![value("1"), nil, Err(DispatchError::TryAgain(7)), value("4")];
        let replies = b.replies(outcomes);
        assert_eq!(
            replies,
            vec![
                Frame::Bulk("1".into()),
                crate::cmd::syntax_error(),
                Frame::error("TRYAGAIN partition is moving; retry budget of 7 ms spent"),
                Frame::Bulk("4".into()),
            ]
        );
    }

    #[test]
    fn limits_bound_commands_ops_and_bytes_but_never_the_first() {
        let limits = BatchLimits { commands_max: 3, ops_max: 4, arg_bytes_max: 20 };
        let mut b = Batch::new(limits);
        let huge = args(&format!("MSET {} v", "k".repeat(100)));
        assert!(b.fits(&huge), "an empty batch takes anything");
        b.push("get", args("GET a"), planned(&["a"], Shape::Value));
        assert!(b.fits(&args("GET b")));
        assert!(!b.fits(&args("MGET b c d")), "ops would exceed 4");
        assert!(!b.fits(&args("GET bbbbbbbbbbbbbbbbbbbb")), "bytes would exceed 20");
        b.push("get", args("GET b"), planned(&["b"], Shape::Value));
        b.push("get", args("GET c"), planned(&["c"], Shape::Value));
        assert!(!b.fits(&args("GET d")), "three commands is the maximum");
    }
}
