//! Closed-loop pipelined batches, for the work around the timed load:
//! resetting the counter keys, `--preload`, and the final read-back. Each
//! connection writes up to `depth` commands, then reads their replies.

use crate::config::Target;
use crate::history::Micros;
use crate::load::{connect, describe};
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
}

impl Pipeline<'_> {
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
        let (depth, clock) = (self.depth.max(1), self.clock);
        let connections = self.connections.clamp(1, items.len().max(1));
        let mut shares: Vec<Vec<T>> = (0..connections).map(|_| Vec::new()).collect();
        for (i, item) in items.into_iter().enumerate() {
            shares[(i / depth) % connections].push(item);
        }
        let (encode, on_reply) = (Arc::new(encode), Arc::new(on_reply));
        let mut tasks = tokio::task::JoinSet::new();
        for share in shares.into_iter().filter(|s| !s.is_empty()) {
            let (target, encode, on_reply, progress) = (self.target.clone(), encode.clone(), on_reply.clone(), progress.clone());
            tasks.spawn(async move { one_connection(&target, clock, share, depth, &*encode, &*on_reply, &progress).await });
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

async fn one_connection<T, R>(
    target: &Target,
    clock: Clock,
    items: Vec<T>,
    depth: usize,
    encode: &(dyn Fn(&T, &mut BytesMut) + Send + Sync),
    on_reply: &(dyn Fn(T, Frame, Micros, Micros) -> Result<Option<R>, String> + Send + Sync),
    progress: &ProgressBar,
) -> Result<Vec<R>, String> {
    let stream = connect(target).await?;
    let mut framed = Framed::new(stream, FrameDecoder);
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<T> = items.by_ref().take(depth).collect();
        buf.clear();
        chunk.iter().for_each(|item| encode(item, &mut buf));
        let invoke = clock.now_us();
        framed.get_mut().write_all(&buf).await.map_err(|e| e.to_string())?;
        let n = chunk.len() as u64;
        for item in chunk {
            let frame = match tokio::time::timeout(REPLY_TIMEOUT, framed.next()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) => return Err("connection closed by the server".to_string()),
                Err(_) => return Err(format!("no reply within {REPLY_TIMEOUT:?}")),
            };
            out.extend(on_reply(item, frame, invoke, clock.now_us())?);
        }
        progress.inc(n);
    }
    Ok(out)
}

/// An `on_reply` for commands that must simply succeed.
pub fn expect_ok<T>(what: &'static str) -> impl Fn(T, Frame, Micros, Micros) -> Result<Option<()>, String> + Send + Sync + 'static {
    move |_, frame, _, _| match frame {
        Frame::Simple(_) | Frame::Integer(_) => Ok(None),
        other => Err(format!("{what}: {}", describe(&other))),
    }
}
