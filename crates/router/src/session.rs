//! One client connection.
//!
//! Requests are decoded as they arrive and executed strictly in order (so a
//! pipelined `SET k 1` / `GET k` behaves as in Redis). Replies accumulate in
//! a buffer that is written out when no further complete request is already
//! waiting, or when it grows past a bound: a pipeline of N commands costs one
//! write, and a lone command is answered at once. A protocol error gets the
//! Redis error reply and closes the connection.

use crate::Router;
use crate::cmd::{self, Flow};
use bytes::BytesMut;
use evenkeel_resp::{Frame, ProtocolError, RequestDecoder};
use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// Replies buffered beyond this are written even mid-pipeline.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub authenticated: bool,
    pub name: Option<bytes::Bytes>,
}

pub(crate) async fn run(router: &Router, socket: TcpStream, id: u64, over_limit: bool) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let (reader, mut writer) = socket.into_split();
    if over_limit {
        writer.write_all(b"-ERR max number of clients reached\r\n").await?;
        return Ok(());
    }
    let mut session = Session { id, authenticated: router.config.requirepass.is_none(), name: None };
    let mut requests = FramedRead::new(reader, RequestDecoder::new(router.config.limits));
    let mut out = BytesMut::with_capacity(4096);
    loop {
        // Take the next request without waiting if one is already decoded or
        // readable; otherwise flush what we owe before waiting.
        let next = match requests.next().now_or_never() {
            Some(n) => n,
            None => {
                flush(&mut writer, &mut out).await?;
                tokio::select! {
                    next = requests.next() => next,
                    // Shutdown closes idle connections; a command in progress
                    // is answered first.
                    _ = router.stop.cancelled() => break,
                }
            }
        };
        let args = match next {
            None => break,
            Some(Ok(args)) => args,
            // An I/O error is the transport failing, not the client breaking
            // the protocol: a read error, or (from `FramedRead::decode_eof`)
            // the client closing mid-request. Redis closes silently then;
            // answering "ERR I/O error: bytes remaining on stream" would send
            // a bogus reply to a half-closed client and count as a protocol
            // error. The replies owed for earlier commands are still flushed.
            Some(Err(ProtocolError::Io(e))) => {
                tracing::debug!(session = id, error = %e, "client connection ended mid-request");
                break;
            }
            Some(Err(e)) => {
                metrics::counter!("evenkeel_router_protocol_errors_total").increment(1);
                Frame::error(e.reply_text()).encode(&mut out);
                break;
            }
        };
        let (reply, flow) = cmd::execute(router, &mut session, args).await;
        reply.encode(&mut out);
        if flow == Flow::Close {
            break;
        }
        if out.len() >= WRITE_BATCH_BYTES {
            flush(&mut writer, &mut out).await?;
        }
    }
    flush(&mut writer, &mut out).await?;
    writer.shutdown().await
}

async fn flush(writer: &mut tokio::net::tcp::OwnedWriteHalf, out: &mut BytesMut) -> std::io::Result<()> {
    if !out.is_empty() {
        writer.write_all(out).await?;
        out.clear();
    }
    Ok(())
}
