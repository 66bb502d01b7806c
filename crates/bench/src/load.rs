//! The open-loop load: one writer and one reader task per pipelined
//! connection.
//!
//! The writer sends every request that the pacer ([`pace`](crate::schedule::pace))
//! has released for its connection, without waiting for replies. Before a
//! request's bytes are written, its [`Pending`] record goes into a bounded
//! channel (the in-flight window) that the reader consumes in order, one
//! record per reply; when the window is full, the request is counted as
//! behind schedule and waits (its latency still runs from its intended time).
//!
//! A connection that breaks or stops answering (no reply within the op
//! timeout) fails everything in flight as a timeout, which the checker treats
//! as indeterminate, and is reopened; requests that fall due while no
//! connection can be made fail as errors.

use crate::config::Target;
use crate::history::{Key, Micros, Op, OpKind, Outcome, Val};
use crate::recorder::{ConnLog, Live, Sample};
use crate::schedule::{Clock, PacerShared, Schedule};
use crate::workload::{Generator, Request, ValueCodec, parse_counter};
use bytes::BytesMut;
use evenkeel_resp::{Frame, FrameDecoder, encode_command};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Everything the connections share.
pub struct LoadShared {
    pub clock: Clock,
    pub schedule: Schedule,
    pub pacer: Arc<PacerShared>,
    pub live: Live,
    pub codec: ValueCodec,
    pub target: Target,
    pub window: usize,
    pub op_timeout: Duration,
}

/// A request in flight.
struct Pending {
    conn: u16,
    request: Request,
    intended: Micros,
    invoke: Micros,
}

/// Requests written per socket write at most, so catching up after a stall
/// neither builds huge buffers nor starves the reader of CPU for long.
const MAX_BATCH: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a plain connection, with TCP_NODELAY, and authenticates if the
/// target carries credentials. The bench opens its plain connections so,
/// before the load starts, and moves them to the load's own runtime as
/// sockets (a TLS session cannot move: [`connect_conn`] opens those there).
pub async fn connect(target: &Target) -> Result<TcpStream, String> {
    debug_assert!(!target.tls, "a TLS target is opened with connect_conn");
    authenticate(tcp_connect(target).await?, target).await
}

/// A connection of either kind: plain, or TLS for a `rediss://` target.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens a connection, over TLS for a `rediss://` target, and
/// authenticates if the target carries credentials.
pub async fn connect_conn(target: &Target) -> Result<Conn, String> {
    let tcp = tcp_connect(target).await?;
    if !target.tls {
        return Ok(Conn::Plain(authenticate(tcp, target).await?));
    }
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, crate::tls::connect(tcp, target)).await.map_err(|_| format!("no TLS handshake within {CONNECT_TIMEOUT:?}"))??;
    Ok(Conn::Tls(Box::new(authenticate(tls, target).await?)))
}

impl AsyncRead for Conn {
    fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn tcp_connect(target: &Target) -> Result<TcpStream, String> {
    let addr = (target.host.as_str(), target.port);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    };
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// AUTH on `stream` if the target carries credentials.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(stream: S, target: &Target) -> Result<S, String> {
    let Some(password) = &target.password else { return Ok(stream) };
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    if let Some(user) = &target.username {
        args.push(user.as_bytes());
    }
    args.push(password.as_bytes());
    let (stream, reply) = round_trip(stream, &args).await?;
    match reply {
        Frame::Simple(_) => Ok(stream),
        other => Err(format!("AUTH failed: {}", describe(&other))),
    }
}

/// Sends one command and reads one reply.
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: S, args: &[&[u8]]) -> Result<(S, Frame), String> {
    let mut buf = BytesMut::new();
    encode_command(args, &mut buf);
    let mut framed = tokio_util::codec::Framed::new(stream, FrameDecoder);
    framed.get_mut().write_all(&buf).await.map_err(|e| e.to_string())?;
    let reply = match tokio::time::timeout(CONNECT_TIMEOUT, framed.next()).await {
        Ok(Some(Ok(frame))) => frame,
        Ok(Some(Err(e))) => return Err(e.to_string()),
        Ok(None) => return Err("connection closed".to_string()),
        Err(_) => return Err(format!("no reply within {CONNECT_TIMEOUT:?}")),
    };
    let parts = framed.into_parts();
    if !parts.read_buf.is_empty() {
        return Err("unexpected extra reply data".to_string());
    }
    Ok((parts.io, reply))
}

/// A reply frame for error messages.
pub fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Error(e) => e.clone(),
        other => format!("unexpected reply {other:?}"),
    }
}

/// Where one connection is in the schedule.
struct ConnState {
    conn: usize,
    next_k: u64,
    generator: Generator,
}

/// Runs connection `conn` until the pacer has finished and every reply is
/// in (or timed out). `first` is the already-open connection, if any (a
/// TLS target's are opened here).
pub async fn drive(conn: usize, first: Option<Conn>, generator: Generator, shared: Arc<LoadShared>) -> ConnLog {
    let mut st = ConnState { conn, next_k: conn as u64, generator };
    let mut log = ConnLog::default();
    let mut stream = first;
    let mut opened = stream.is_some();
    let mut backoff = Duration::from_millis(20);
    loop {
        let s = match stream.take() {
            Some(s) => s,
            None => match connect_conn(&shared.target).await {
                Ok(s) => {
                    // A TLS target's first connection is no reconnect.
                    log.reconnects += u64::from(opened);
                    opened = true;
                    backoff = Duration::from_millis(20);
                    s
                }
                Err(e) => {
                    fail_due(&mut st, &shared, &mut log, &format!("connect: {e}"));
                    if all_sent(&st, &shared) {
                        break;
                    }
                    // Retry pacing, not synchronisation: the server is down.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        if session(s, &mut st, &shared, &mut log).await == SessionEnd::Finished {
            break;
        }
    }
    log
}

fn all_sent(st: &ConnState, shared: &LoadShared) -> bool {
    shared.pacer.finished() && st.next_k >= shared.pacer.due()
}

/// Requests due while no connection can be opened fail at once, as a real
/// client's would.
fn fail_due(st: &mut ConnState, shared: &LoadShared, log: &mut ConnLog, why: &str) {
    let now = shared.clock.now_us();
    while st.next_k < shared.pacer.due() {
        let request = st.generator.next_request();
        let intended = shared.schedule.intended_us(st.next_k);
        st.next_k += shared.schedule.connections as u64;
        log.samples.push(Sample { intended, invoke: now, complete: now, cmd: request.cmd(), outcome: Outcome::Error, conn: st.conn as u16, key: request.first_key() });
        log.note_error(why);
        shared.live.error();
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SessionEnd {
    Finished,
    Broken,
}

/// One connection's lifetime: a reader task plus this task as the writer.
/// A plain socket splits into owned halves (no lock between them), a TLS
/// session through tokio's `split`.
async fn session(stream: Conn, st: &mut ConnState, shared: &Arc<LoadShared>, log: &mut ConnLog) -> SessionEnd {
    match stream {
        Conn::Plain(s) => {
            let (rd, wr) = s.into_split();
            run_session(rd, wr, st, shared, log).await
        }
        Conn::Tls(s) => {
            let (rd, wr) = tokio::io::split(*s);
            run_session(rd, wr, st, shared, log).await
        }
    }
}

async fn run_session<R: AsyncRead + Unpin + Send + 'static, W: AsyncWrite + Unpin>(rd: R, wr: W, st: &mut ConnState, shared: &Arc<LoadShared>, log: &mut ConnLog) -> SessionEnd {
    let (tx, rx) = mpsc::channel(shared.window);
    let abort = CancellationToken::new();
    let reader = tokio::spawn(read_replies(rd, rx, shared.clone(), abort.clone()));
    let end = write_requests(wr, tx, st, shared, log).await;
    if end == SessionEnd::Broken {
        abort.cancel();
    }
    match reader.await {
        Ok(part) => log.absorb(part),
        // The reader only panics on a bug; let it surface.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    end
}

async fn write_requests<W: AsyncWrite + Unpin>(mut wr: W, tx: mpsc::Sender<Pending>, st: &mut ConnState, shared: &LoadShared, log: &mut ConnLog) -> SessionEnd {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut scratch = Vec::with_capacity(shared.codec.size + 32);
    let step = shared.schedule.connections as u64;
    loop {
        let mut batch = 0;
        while st.next_k < shared.pacer.due() {
            let permit = match tx.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Full(())) => {
                    log.behind_schedule += 1;
                    if flush(&mut wr, &mut buf).await.is_err() {
                        return SessionEnd::Broken;
                    }
                    match tx.reserve().await {
                        Ok(permit) => permit,
                        Err(_) => return SessionEnd::Broken,
                    }
                }
                Err(mpsc::error::TrySendError::Closed(())) => return SessionEnd::Broken,
            };
            let request = st.generator.next_request();
            let intended = shared.schedule.intended_us(st.next_k);
            st.next_k += step;
            request.encode(&shared.codec, &mut scratch, &mut buf);
            permit.send(Pending { conn: st.conn as u16, request, intended, invoke: shared.clock.now_us() });
            shared.live.sent();
            batch += 1;
            if batch >= MAX_BATCH {
                if flush(&mut wr, &mut buf).await.is_err() {
                    return SessionEnd::Broken;
                }
                batch = 0;
            }
        }
        if flush(&mut wr, &mut buf).await.is_err() {
            return SessionEnd::Broken;
        }
        if all_sent(st, shared) {
            return SessionEnd::Finished;
        }
        if tx.is_closed() {
            return SessionEnd::Broken;
        }
        shared.pacer.wait(st.conn).await;
    }
}

async fn flush<W: AsyncWrite + Unpin>(wr: &mut W, buf: &mut BytesMut) -> std::io::Result<()> {
    if !buf.is_empty() {
        wr.write_all(buf).await?;
        buf.clear();
    }
    Ok(())
}

/// Reads replies in order and records each against its [`Pending`]; on a
/// broken or silent connection, fails everything still in flight.
async fn read_replies<R: AsyncRead + Unpin>(rd: R, mut rx: mpsc::Receiver<Pending>, shared: Arc<LoadShared>, abort: CancellationToken) -> ConnLog {
    let mut frames = FramedRead::new(rd, FrameDecoder);
    let mut log = ConnLog::default();
    let failure = loop {
        let Some(p) = rx.recv().await else { break None };
        let deadline = shared.clock.instant(p.invoke) + shared.op_timeout;
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline.into(), frames.next()) => next,
            _ = abort.cancelled() => {
                fail(&shared, &mut log, p, "connection lost");
                break Some("connection lost".to_string());
            }
        };
        match next {
            Ok(Some(Ok(frame))) => record(&shared, &mut log, p, frame),
            Ok(Some(Err(e))) => {
                let why = format!("protocol error: {e}");
                fail(&shared, &mut log, p, &why);
                break Some(why);
            }
            Ok(None) => {
                fail(&shared, &mut log, p, "connection closed by the server");
                break Some("connection closed by the server".to_string());
            }
            Err(_) => {
                let why = format!("no reply within {:?}", shared.op_timeout);
                fail(&shared, &mut log, p, &why);
                break Some(why);
            }
        }
    };
    if let Some(why) = failure {
        // Stop the writer, then fail whatever it had already queued.
        rx.close();
        while let Some(p) = rx.recv().await {
            fail(&shared, &mut log, p, &why);
        }
    }
    log
}

/// Records a request that got no reply: indeterminate.
fn fail(shared: &LoadShared, log: &mut ConnLog, p: Pending, why: &str) {
    let complete = shared.clock.now_us();
    log.note_error(why);
    shared.live.timeout();
    log.samples.push(Sample { intended: p.intended, invoke: p.invoke, complete, cmd: p.request.cmd(), outcome: Outcome::Timeout, conn: p.conn, key: p.request.first_key() });
    push_ops(log, &p, complete, Outcome::Timeout, None);
}

/// Records a reply.
fn record(shared: &LoadShared, log: &mut ConnLog, p: Pending, frame: Frame) {
    let complete = shared.clock.now_us();
    let outcome = match (&p.request, &frame) {
        (_, Frame::Error(e)) => {
            log.note_error(e);
            Outcome::Error
        }
        (Request::Get(_), Frame::Bulk(_) | Frame::Null)
        | (Request::Set(..), Frame::Simple(_))
        | (Request::Incr(_) | Request::Eval(_) | Request::Del(_), Frame::Integer(_)) => Outcome::Ok,
        (Request::Mget(keys), Frame::Array(items)) if items.len() == keys.len() => Outcome::Ok,
        (_, other) => {
            log.note_error(&format!("unexpected reply to {}: {other:?}", p.request.cmd().name()));
            Outcome::Error
        }
    };
    match outcome {
        Outcome::Ok => shared.live.ok(),
        _ => shared.live.error(),
    }
    log.samples.push(Sample { intended: p.intended, invoke: p.invoke, complete, cmd: p.request.cmd(), outcome, conn: p.conn, key: p.request.first_key() });
    let reply = (outcome == Outcome::Ok).then_some(&frame);
    push_ops(log, &p, complete, outcome, reply.map(|f| (f, &shared.codec)));
}

/// The history entries of one request. Failed reads say nothing and are
/// left out; failed writes are kept as indeterminate.
fn push_ops(log: &mut ConnLog, p: &Pending, complete: Micros, outcome: Outcome, reply: Option<(&Frame, &ValueCodec)>) {
    let op = |key, kind| Op { key, kind, invoke: p.invoke, complete, outcome };
    match (&p.request, reply) {
        (Request::Set(k, id), _) => log.ops.push(op(Key::Data(*k), OpKind::Write(Val::Written(*id)))),
        (Request::Del(k), _) => log.ops.push(op(Key::Data(*k), OpKind::Write(Val::Nil))),
        (Request::Incr(k) | Request::Eval(k), reply) => {
            let n = match reply {
                Some((Frame::Integer(n), _)) => Some(*n),
                _ => None,
            };
            log.ops.push(op(Key::Counter(*k), OpKind::Incr(n)));
        }
        (Request::Get(k), Some((frame, codec))) => log.ops.push(op(Key::Data(*k), OpKind::Read(codec.parse(bulk(frame))))),
        (Request::Mget(keys), Some((Frame::Array(items), codec))) => {
            for (k, item) in keys.iter().zip(items) {
                log.ops.push(op(Key::Data(*k), OpKind::Read(codec.parse(bulk(item)))));
            }
        }
        _ => {}
    }
}

/// The bytes of a bulk reply, `None` for nil (or anything else).
pub fn bulk(frame: &Frame) -> Option<&[u8]> {
    match frame {
        Frame::Bulk(b) => Some(b),
        _ => None,
    }
}

/// Decodes one read-back reply item for `key`.
pub fn read_back_value(key: Key, item: &Frame, codec: &ValueCodec) -> Val {
    match key {
        Key::Data(_) => codec.parse(bulk(item)),
        Key::Counter(_) => parse_counter(bulk(item)),
    }
}

