//! One client connection.
//!
//! Requests are decoded as they arrive and answered strictly in order (so a
//! pipelined `SET k 1` / `GET k` behaves as in Redis). When several data
//! commands are already decoded or readable, the consecutive ones run as
//! one [`Batch`]: one `Execute` per owner node instead of one round-trip per
//! command. Every other command (AUTH, HELLO, CLIENT, SCAN, unknown or
//! wrong-arity commands, anything while unauthenticated) is a barrier: the
//! batch before it is answered first, then it runs alone. Replies accumulate
//! in a buffer that is written out when no further complete request is
//! already waiting, or when it grows past a bound: a pipeline of N commands
//! costs one write, and a lone command is answered at once. A protocol error
//! gets the Redis error reply and closes the connection.

use crate::Router;
use crate::arrival::{Arrivals, ReadTimed, Stamped};
use crate::batch::{Batch, BatchLimits};
use crate::cmd::{self, Flow};
use bytes::{Bytes, BytesMut};
use evenkeel_resp::{Frame, Protocol, ProtocolError, RequestDecoder};
use futures::{FutureExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// Replies buffered beyond this are written even mid-pipeline.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

type Requests<R> = FramedRead<R, RequestDecoder>;
/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// What the decoder yields: a request, an error, or `None` at end of input.
type Next = Option<Result<Vec<Bytes>, ProtocolError>>;

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    /// What CLIENT LIST shows of this connection (its address and name
    /// among them), and CLIENT KILL's token for it.
    pub client: std::sync::Arc<crate::clients::Client>,
    pub authenticated: bool,
    /// The ACL user it runs as: `default` until AUTH says otherwise
    /// (see [`crate::acl`]).
    pub user: std::sync::Arc<crate::acl::User>,
    /// Changes when the cluster's users do, so `user` is looked up again.
    pub acl_changes: tokio::sync::watch::Receiver<evenkeel_meta::follow::Snapshot>,
    /// Between MULTI and EXEC or DISCARD: the commands queued.
    pub multi: Option<crate::cmd::multi::Multi>,
    /// The keys WATCHed since the last EXEC, DISCARD or UNWATCH.
    pub watched: crate::cmd::multi::Watched,
    /// Its Pub/Sub subscriptions and the messages waiting for it; from
    /// the first (UN)SUBSCRIBE on, until RESET or the end.
    pub subscriber: Option<crate::pubsub::Subscriber>,
    /// CLIENT REPLY: which replies are sent.
    pub replies: Replies,
    /// After MONITOR: the lines of this router's commands, written between
    /// replies.
    pub monitor: Option<crate::monitor::Watch>,
    /// RESP2, or RESP3 after `HELLO 3`: how its replies are written.
    pub protocol: Protocol,
    /// CLIENT TRACKING's options while it is on.
    pub tracking: Option<crate::tracking::Mode>,
    /// CLIENT CACHING's flag for the next command, and the command
    /// running's.
    pub caching: Option<bool>,
    pub caching_now: Option<bool>,
}

/// CLIENT REPLY's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replies {
    #[default]
    On,
    Off,
    /// The next this many replies are not sent (SKIP's own and the next
    /// command's), then On.
    Skip(u8),
}

impl Session {
    /// Whether the reply of the command just run is sent (and, under
    /// SKIP, counts it).
    fn sends_reply(&mut self) -> bool {
        match self.replies {
            Replies::On => true,
            Replies::Off => false,
            Replies::Skip(n) => {
                self.replies = if n <= 1 { Replies::On } else { Replies::Skip(n - 1) };
                false
            }
        }
    }
}

pub(crate) async fn run(router: &Router, socket: TcpStream, id: u64, over_limit: bool) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let shown = |a: std::io::Result<std::net::SocketAddr>| a.map_or_else(|_| "?:0".to_string(), |a| a.to_string());
    let client = std::sync::Arc::new(crate::clients::Client::new(id, shown(socket.peer_addr()), shown(socket.local_addr()), std::os::fd::AsRawFd::as_raw_fd(&socket)));
    let _registered = router.registry.register(client.clone());
    match &router.tls {
        None => {
            let (reader, writer) = socket.into_split();
            serve(router, client, Stamped::new(reader), writer, id, over_limit).await
        }
        Some(acceptor) => {
            let failed = |reason: &'static str, e: std::io::Error| {
                metrics::counter!("evenkeel_router_tls_handshake_failures_total", "reason" => reason).increment(1);
                e
            };
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(failed("refused", e)),
                Err(_) => return Err(failed("timeout", std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake not finished in time"))),
            };
            let (reader, writer) = tokio::io::split(stream);
            serve(router, client, ReadTimed::new(reader), writer, id, over_limit).await
        }
    }
}

/// The session of one connection, once its stream is ready: requests read
/// from `reader`, replies written to `writer`.
async fn serve<R: Arrivals, W: AsyncWrite + Unpin>(router: &Router, client: std::sync::Arc<crate::clients::Client>, reader: R, mut writer: W, id: u64, over_limit: bool) -> std::io::Result<()> {
    if over_limit {
        writer.write_all(b"-ERR max number of clients reached\r\n").await?;
        return Ok(());
    }
    let user = router.acl.default_user();
    let mut session = Session { id, client, authenticated: user.needs_no_password(), user, acl_changes: router.acl.changes(), multi: None, watched: Default::default(), subscriber: None, replies: Replies::On, monitor: None, protocol: Protocol::Resp2, tracking: None, caching: None, caching_now: None };
    let mut requests = FramedRead::new(reader, RequestDecoder::new(router.config.limits));
    let mut out = BytesMut::with_capacity(4096);
    // A request taken while gathering a batch that did not join it.
    let mut carried: Option<Next> = None;
    'session: loop {
        // Take the next request without waiting if one is already decoded or
        // readable; otherwise flush what we owe before waiting.
        let next = match carried.take().or_else(|| requests.next().now_or_never()) {
            Some(n) => n,
            None => loop {
                // A client that stops reading must not hold the session
                // past CLIENT KILL (or its Pub/Sub backlog limit).
                tokio::select! {
                    flushed = flush(&mut writer, &mut out) => flushed?,
                    _ = session.client.kill.cancelled() => return Ok(()),
                }
                tokio::select! {
                    next = requests.next() => break next,
                    // Shutdown and CLIENT KILL close idle connections; a
                    // command in progress is answered first.
                    _ = router.stop.cancelled() => break 'session,
                    _ = session.client.kill.cancelled() => break 'session,
                    // Pub/Sub messages are written between replies, as
                    // they come: those waiting go out together.
                    Some(message) = pushed(&mut session.subscriber) => {
                        put_message(&mut out, &message, session.protocol);
                        while out.len() < WRITE_BATCH_BYTES && let Some(more) = session.subscriber.as_mut().and_then(|s| s.try_next()) {
                            put_message(&mut out, &more, session.protocol);
                        }
                    }
                    // A deleted user's idle connections close now, and so
                    // do subscribers to channels their user may no longer
                    // use, on every router (as Redis does on its own).
                    Ok(()) = session.acl_changes.changed() => if !refresh_user(router, &mut session) {
                        break 'session;
                    },
                    line = monitored(&mut session.monitor) => match line {
                        Ok(line) => out.extend_from_slice(&line),
                        Err(behind) => {
                            tracing::warn!(session = id, behind, "MONITOR client fell too far behind; disconnecting it");
                            return Ok(());
                        }
                    },
                }
            },
        };
        let Some(args) = request_or_end(id, next, &mut out) else { break };
        // A changed user takes effect from its next command.
        if session.acl_changes.has_changed().unwrap_or(false) && !refresh_user(router, &mut session) {
            break;
        }
        router.monitor.feed(&session.client.addr, &args);
        // When the read that completed this request arrived (see
        // `arrival`).
        let arrived = requests.get_ref().arrived().unwrap_or_else(Instant::now);
        session.client.started(&args);
        if let Some((name, planned)) = cmd::batchable(&session, &args) {
            let mut batch = Batch::new(BatchLimits::default());
            batch.push(name, args, planned);
            carried = gather(router, &mut requests, &session, &mut batch);
            let replies = batch.run(router, &session).await;
            router.arrival.record_n(arrived.elapsed().as_micros() as u64, replies.len() as u64, 0, evenkeel_types::unix_ms());
            for reply in replies {
                if session.sends_reply() {
                    reply.encode_as(session.protocol, &mut out);
                }
            }
        } else if session.multi.is_none() && cmd::blocking::is_blocking(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase(), &args) {
            // The client sees the replies it is owed before this one
            // blocks. A request pipelined behind it waits its turn; the
            // end of the connection gives up the wait.
            flush(&mut writer, &mut out).await?;
            let client = session.client.clone();
            client.set_blocked(true);
            // A RESP3 client's pushes (Pub/Sub messages, CLIENT TRACKING's
            // invalidations) reach it while it waits, as in Redis: a
            // cache must not wait for a BLPOP to end to hear of a write.
            // (A RESP2 subscriber runs no blocking command.)
            let protocol = session.protocol;
            let mut pushes = if protocol == Protocol::Resp3 { session.subscriber.take() } else { None };
            let reply = {
                let run = cmd::execute(router, &mut session, args);
                tokio::pin!(run);
                let reply = loop {
                    tokio::select! {
                        reply = &mut run => break Some(reply),
                        next = requests.next(), if carried.is_none() => match next {
                            None => break None,
                            next => carried = Some(next),
                        },
                        Some(message) = pushed(&mut pushes) => {
                            put_message(&mut out, &message, protocol);
                            flush(&mut writer, &mut out).await?;
                        }
                        _ = router.stop.cancelled() => break None,
                        _ = client.kill.cancelled() => break None,
                    }
                };
                if reply.is_none() {
                    // The client is gone (or going): its wait on the node
                    // is cancelled and the command let finish, rather than
                    // dropped, so the node pops nothing for a client no
                    // longer there (dropped mid-request, a pop could be
                    // done and its answer lost). Bounded all the same.
                    // Marked as CLIENT UNBLOCK marks it, so the command
                    // ends with this wait rather than start another.
                    cmd::blocking::unblock(router, client.id, crate::clients::Unblock::Timeout).await;
                    let _ = tokio::time::timeout(cmd::blocking::CHUNK + Duration::from_secs(1), &mut run).await;
                }
                reply
            };
            if pushes.is_some() {
                session.subscriber = pushes;
            }
            client.set_blocked(false);
            // Not in the arrival latency: a wait the client asked for is
            // not a delay the throttle should see.
            let Some((reply, _)) = reply else { break };
            if session.sends_reply() {
                reply.encode_as(session.protocol, &mut out);
            }
        } else {
            let (reply, flow) = cmd::execute(router, &mut session, args).await;
            router.arrival.record(arrived.elapsed().as_micros() as u64, false, evenkeel_types::unix_ms());
            if session.sends_reply() {
                reply.encode_as(session.protocol, &mut out);
            }
            if flow == Flow::Close {
                break;
            }
        }
        session.client.ended(session.multi.as_ref().map(|m| m.len()));
        if session.client.kill.is_cancelled() {
            break;
        }
        if out.len() >= WRITE_BATCH_BYTES {
            flush(&mut writer, &mut out).await?;
        }
    }
    // What is owed goes out (a QUIT's OK, replies before the end of
    // input). A killed connection (CLIENT KILL, or a Pub/Sub client past
    // its backlog, which may not be reading at all) gets what the socket
    // takes without waiting: the reply to a command it was running when
    // killed, as a rule. A client slow to take the rest is bounded by the
    // router's stop.
    if session.client.kill.is_cancelled() {
        // One write attempt, without waiting.
        let _ = writer.write(&out).now_or_never();
        return Ok(());
    }
    tokio::select! {
        flushed = flush(&mut writer, &mut out) => flushed?,
        _ = session.client.kill.cancelled() => return Ok(()),
    }
    writer.shutdown().await
}

impl Session {
    /// Whether a command other than AUTH, HELLO, QUIT or RESET must wait
    /// for AUTH: the connection has not authenticated and `default` (the
    /// user of every unauthenticated session, looked up again on every
    /// change) is not on with `nopass` now. As Redis's `authRequired`: a
    /// connection opened while `default` needed a password may run
    /// commands once it no longer does, and needs AUTH again if it does
    /// again; one that started authenticated stays so.
    pub fn auth_required(&self) -> bool {
        !self.authenticated && !self.user.needs_no_password()
    }
}

/// Looks the session's user up again after the cluster's users changed.
/// False if the connection must close: its user was deleted, or it
/// subscribes to a channel its user may no longer use.
fn refresh_user(router: &Router, session: &mut Session) -> bool {
    session.acl_changes.mark_unchanged();
    let Some(user) = router.acl.user(&session.user.name) else { return false };
    if session.subscriber.as_ref().is_some_and(|s| !s.allowed_by(&user)) {
        return false;
    }
    session.user = user;
    true
}

/// The next MONITOR line for a monitoring session (Err: how many lines it
/// fell behind by); never, for others.
async fn monitored(watch: &mut Option<crate::monitor::Watch>) -> Result<Bytes, u64> {
    let Some(w) = watch else { return std::future::pending().await };
    loop {
        match w.lines.recv().await {
            Ok(line) => return Ok(line),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => return Err(n),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Writes a Pub/Sub message, encoded once for every subscriber as a RESP2
/// array (`*`), as a RESP3 connection takes it: a push (`>`), the same
/// bytes after the marker.
fn put_message(out: &mut BytesMut, message: &[u8], protocol: Protocol) {
    match (protocol, message.split_first()) {
        (Protocol::Resp3, Some((b'*', rest))) => {
            out.extend_from_slice(b">");
            out.extend_from_slice(rest);
        }
        _ => out.extend_from_slice(message),
    }
}

/// The next Pub/Sub message for a subscribed session; never, for others.
async fn pushed(subscriber: &mut Option<crate::pubsub::Subscriber>) -> Option<Bytes> {
    match subscriber {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Adds to `batch` the data commands that are already decoded or readable,
/// without waiting, while they fit. Returns the first request (or error, or
/// end of input) that did not join, to be handled after the batch. Session
/// state cannot change while gathering: only barrier commands change it,
/// and a barrier ends the batch.
fn gather<R: Arrivals>(router: &Router, requests: &mut Requests<R>, session: &Session, batch: &mut Batch) -> Option<Next> {
    loop {
        let next = requests.next().now_or_never()?;
        let Some(Ok(args)) = next else { return Some(next) };
        if !batch.fits(&args) {
            return Some(Some(Ok(args)));
        }
        match cmd::batchable(session, &args) {
            Some((name, planned)) => {
                router.monitor.feed(&session.client.addr, &args);
                batch.push(name, args, planned);
            }
            None => return Some(Some(Ok(args))),
        }
    }
}

/// The request in `next`, or `None` when the connection should close
/// (after encoding the reply a protocol error is owed).
fn request_or_end(id: u64, next: Next, out: &mut BytesMut) -> Option<Vec<Bytes>> {
    match next? {
        Ok(args) => Some(args),
        // An I/O error is the transport failing, not the client breaking
        // the protocol: a read error, or (from `FramedRead::decode_eof`)
        // the client closing mid-request. Redis closes silently then;
        // answering "ERR I/O error: bytes remaining on stream" would send
        // a bogus reply to a half-closed client and count as a protocol
        // error. The replies owed for earlier commands are still flushed.
        Err(ProtocolError::Io(e)) => {
            tracing::debug!(session = id, error = %e, "client connection ended mid-request");
            None
        }
        Err(e) => {
            metrics::counter!("evenkeel_router_protocol_errors_total").increment(1);
            Frame::error(e.reply_text()).encode(out);
            None
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(writer: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    if !out.is_empty() {
        writer.write_all(out).await?;
        out.clear();
    }
    Ok(())
}
