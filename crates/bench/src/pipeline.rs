//! Closed-loop pipelined batches, for the work around the timed load:
//! resetting the counter keys, `--preload`, and the final read-back. Each
//! connection writes up to `depth` commands, then reads their replies.
//!
//! Every batch here is idempotent (SETs of fixed values, MGETs), so a
//! command answered `TRYAGAIN` (certainly not executed: its partition was
//! moving, or its node too busy to start it before its deadline) is sent
//! again after a pause, as a Redis Cluster client does, for a bounded number
//! of rounds ([`TryAgain`]). Any other error stops the batch.

use crate::config::Target;
use crate::history::Micros;
use crate::load::{connect_conn, describe};
use crate::schedule::Clock;
use bytes::BytesMut;
use evenkeel_resp::{Frame, FrameDecoder};
use futures::StreamExt;
use indicatif::ProgressBar;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Framed;

/// How long one reply may take before a batch gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how wide a batch runs.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub target: &'a Target,
    pub clock: Clock,
    pub connections: usize,
    /// Commands in flight per connection.
    pub depth: usize,
    pub tryagain: TryAgain,
}

/// How commands answered `TRYAGAIN` are sent again: up to `rounds` more
/// times, pausing `first_pause` before the first and twice as long before
/// each next one, at most `max_pause`.
#[derive(Debug, Clone, Copy)]
pub struct TryAgain {
    pub rounds: u32,
    pub first_pause: Duration,
    pub max_pause: Duration,
}

/// About 40 s of retrying: longer than any migration's cutover, or a
/// router's 5 s retry budget many times over.
pub const TRYAGAIN: TryAgain = TryAgain { rounds: 25, first_pause: Duration::from_millis(50), max_pause: Duration::from_secs(2) };

impl<'a> Pipeline<'a> {
    /// A pipeline with [`TRYAGAIN`]'s retries.
    pub fn new(target: &'a Target, clock: Clock, connections: usize, depth: usize) -> Self {
        Pipeline { target, clock, connections, depth, tryagain: TRYAGAIN }
    }

    /// Runs one command per item and hands every reply to
    /// `on_reply(item, reply, invoke, complete)`, collecting what it returns.
    /// The first failure (I/O or `on_reply`'s error) stops the batch.
    pub async fn run<T, R, E, F>(&self, items: Vec<T>, encode: E, on_reply: F, progress: ProgressBar) -> Result<Vec<R>, String>
    where
        T: Send + 'static,
        R: Send + 'static,
        E: Fn(&T, &mut BytesMut) + Send + Sync + 'static,
        F: Fn(T, Frame, Micros, Micros) -> Result<Option<R>, String> + Send + Sync + 'static,
    {
        let (depth, clock, tryagain) = (self.depth.max(1), self.clock, self.tryagain);
        let connections = self.connections.clamp(1, items.len().max(1));
        let mut shares: Vec<Vec<T>> = (0..connections).map(|_| Vec::new()).collect();
        for (i, item) in items.into_iter().enumerate() {
            shares[(i / depth) % connections].push(item);
        }
        let (encode, on_reply) = (Arc::new(encode), Arc::new(on_reply));
        let mut tasks = tokio::task::JoinSet::new();
        for share in shares.into_iter().filter(|s| !s.is_empty()) {
            let (target, encode, on_reply, progress) = (self.target.clone(), encode.clone(), on_reply.clone(), progress.clone());
            tasks.spawn(async move { one_connection(&target, clock, share, depth, tryagain, &*encode, &*on_reply, &progress).await });
        }
        let mut out = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(part)) => out.extend(part),
                Ok(Err(e)) => return Err(e),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        progress.finish_and_clear();
        Ok(out)
    }
}

#[allow(clippy::too_many_arguments)]
async fn one_connection<T, R>(
    target: &Target,
    clock: Clock,
    items: Vec<T>,
    depth: usize,
    tryagain: TryAgain,
    encode: &(dyn Fn(&T, &mut BytesMut) + Send + Sync),
    on_reply: &(dyn Fn(T, Frame, Micros, Micros) -> Result<Option<R>, String> + Send + Sync),
    progress: &ProgressBar,
) -> Result<Vec<R>, String> {
    let stream = connect_conn(target).await?;
    let mut framed = Framed::new(stream, FrameDecoder);
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let (mut items, mut again) = (items, Vec::new());
    let (mut round, mut pause) = (0, tryagain.first_pause);
    loop {
        let mut pending = items.into_iter().peekable();
        while pending.peek().is_some() {
            let chunk: Vec<T> = pending.by_ref().take(depth).collect();
            buf.clear();
            chunk.iter().for_each(|item| encode(item, &mut buf));
            let invoke = clock.now_us();
            framed.get_mut().write_all(&buf).await.map_err(|e| e.to_string())?;
            let mut settled = 0;
            for item in chunk {
                let frame = match tokio::time::timeout(REPLY_TIMEOUT, framed.next()).await {
                    Ok(Some(Ok(frame))) => frame,
                    Ok(Some(Err(e))) => return Err(e.to_string()),
                    Ok(None) => return Err("connection closed by the server".to_string()),
                    Err(_) => return Err(format!("no reply within {REPLY_TIMEOUT:?}")),
                };
                if is_tryagain(&frame) && round < tryagain.rounds {
                    again.push(item);
                    continue;
                }
                out.extend(on_reply(item, frame, invoke, clock.now_us())?);
                settled += 1;
            }
            progress.inc(settled);
        }
        if again.is_empty() {
            return Ok(out);
        }
        // Not executed: send them again once the cluster has had a moment.
        tokio::time::sleep(pause).await;
        (round, pause) = (round + 1, (pause * 2).min(tryagain.max_pause));
        items = std::mem::take(&mut again);
    }
}

fn is_tryagain(frame: &Frame) -> bool {
    matches!(frame, Frame::Error(e) if e.starts_with("TRYAGAIN"))
}

/// An `on_reply` for commands that must simply succeed.
pub fn expect_ok<T>(what: &'static str) -> impl Fn(T, Frame, Micros, Micros) -> Result<Option<()>, String> + Send + Sync + 'static {
    move |_, frame, _, _| match frame {
        Frame::Simple(_) | Frame::Integer(_) => Ok(None),
        other => Err(format!("{what}: {}", describe(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Per key: SETs received, and the value stored.
    type Seen = Arc<Mutex<HashMap<Bytes, (usize, Option<Bytes>)>>>;

    /// A server that stores SETs, but answers each key's first `refusals`
    /// SETs `TRYAGAIN` without storing; counts every SET per key.
    async fn reluctant_server(refusals: usize) -> (Target, Seen) {
        let seen: Seen = Arc::default();
        let state = seen.clone();
        let (addr, _) = crate::testing::serve(move |args| {
            let mut seen = state.lock().unwrap();
            let entry = seen.entry(args[1].clone()).or_default();
            entry.0 += 1;
            if entry.0 > refusals {
                entry.1 = Some(args[2].clone());
                Frame::ok()
            } else {
                Frame::Error("TRYAGAIN node 1 is overloaded: the operation was not executed".into())
            }
        })
        .await;
        (Target { host: "127.0.0.1".into(), port: addr.port(), username: None, password: None, tls: false, tls_ca: None, client_cert: None }, seen)
    }

    fn set(k: &u32, buf: &mut BytesMut) {
        evenkeel_resp::encode_command(&[b"SET", format!("k{k}").as_bytes(), b"v"], buf);
    }

    const QUICK: TryAgain = TryAgain { rounds: 3, first_pause: Duration::from_millis(1), max_pause: Duration::from_millis(4) };

    #[tokio::test]
    async fn commands_answered_tryagain_are_sent_again_until_they_succeed() {
        let (target, seen) = reluctant_server(2).await;
        let pipeline = Pipeline { tryagain: QUICK, ..Pipeline::new(&target, Clock { start: std::time::Instant::now() }, 3, 4) };
        let bar = ProgressBar::hidden();
        pipeline.run((0..40).collect(), set, expect_ok("SET"), bar.clone()).await.expect("every SET succeeds on its third try");
        assert_eq!(bar.position(), 40, "each item counted once");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 40);
        assert!(seen.values().all(|(sets, stored)| *sets == 3 && stored.as_deref() == Some(&b"v"[..])), "{seen:?}");
    }

    #[tokio::test]
    async fn a_command_still_refused_after_the_last_round_stops_the_batch() {
        let (target, seen) = reluctant_server(usize::MAX).await;
        let pipeline = Pipeline { tryagain: QUICK, ..Pipeline::new(&target, Clock { start: std::time::Instant::now() }, 1, 4) };
        let err = pipeline.run(vec![7], set, expect_ok("SET"), ProgressBar::hidden()).await.unwrap_err();
        assert!(err.starts_with("SET: TRYAGAIN"), "{err}");
        assert_eq!(seen.lock().unwrap()[&Bytes::from_static(b"k7")].0, 1 + QUICK.rounds as usize, "sent once and retried `rounds` times");
    }
}
