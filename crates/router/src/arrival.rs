//! When a request's bytes reached this host, from the kernel.
//!
//! A router's command latency starts once a request has been decoded. The
//! time before that, while the bytes sit in the socket until a worker gets
//! to them, is part of what the client feels and none of what the router
//! measured: in the rebalance acceptance runs the bench's per-second p99
//! rose by a quarter while a move copied and the router's stayed flat, on
//! a host where the copy's threads only ran when a core was otherwise idle.
//! The wake-up of a worker whose core a background thread is using is
//! where that time goes.
//!
//! [`Stamped`] reads a connection with `recvmsg` and `SO_TIMESTAMPNS`, so
//! each read also returns when the kernel received its last segment; the
//! session measures a request's latency *from arrival* from there (see
//! `Router::arrival`). The decoder reads again only once the buffer holds
//! no complete request, so the latest read is the one that completed the
//! request; one split over several reads counts from its last segment,
//! which can only understate its wait. Where the kernel gives no timestamp, a read counts
//! as arriving when it was read: Linux stamps every received segment once
//! any socket has asked, but turns that on in deferred work, so segments
//! that arrive just after the first request go unstamped.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A reader that remembers when the data of its latest read arrived.
pub(crate) struct Stamped<R> {
    inner: R,
    arrived: Option<Instant>,
}

impl<R: AsRef<TcpStream>> Stamped<R> {
    /// Wraps `inner` and asks the kernel to timestamp what it receives. If
    /// the socket refuses, reads count as arriving when they are read.
    pub fn new(inner: R) -> Self {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor owned by `inner`, and a pointer
        // to a c_int that lives across the call, with its exact length.
        let rc = unsafe {
            libc::setsockopt(
                inner.as_ref().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "no receive timestamps on this connection");
        }
        Stamped { inner, arrived: None }
    }

}

/// A reader that knows when the data of its latest read arrived: what a
/// session reads requests from.
pub(crate) trait Arrivals: AsyncRead + Unpin {
    /// When the data of the latest read arrived (None: nothing read yet).
    fn arrived(&self) -> Option<Instant>;
}

impl<R: AsRef<TcpStream> + Unpin> Arrivals for Stamped<R> {
    fn arrived(&self) -> Option<Instant> {
        self.arrived
    }
}

/// A reader whose socket is out of reach, under TLS (the kernel's
/// timestamps are on the encrypted bytes, read by the TLS layer): data
/// counts as arriving when a read returns it, so the time it waited in
/// the socket's queue before the router read it is not counted.
pub(crate) struct ReadTimed<R> {
    inner: R,
    arrived: Option<Instant>,
}

impl<R> ReadTimed<R> {
    pub fn new(inner: R) -> Self {
        ReadTimed { inner, arrived: None }
    }
}

impl<R: AsyncRead + Unpin> Arrivals for ReadTimed<R> {
    fn arrived(&self) -> Option<Instant> {
        self.arrived
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadTimed<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.arrived = Some(Instant::now());
        }
        polled
    }
}

impl<R: AsRef<TcpStream> + Unpin> AsyncRead for Stamped<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stream = this.inner.as_ref();
        loop {
            ready!(stream.poll_read_ready(cx))?;
            // SAFETY: recvmsg only writes into the unfilled part, and
            // exactly the `n` bytes it reports are marked initialized.
            let unfilled = unsafe { buf.unfilled_mut() };
            let len = unfilled.len();
            let mut read = None;
            let tried = stream.try_io(Interest::READABLE, || {
                let got = recv_stamped(stream.as_raw_fd(), unfilled.as_mut_ptr().cast(), len)?;
                read = Some(got);
                // A stream socket's read that fills less than it was offered
                // has emptied the receive queue: say so (WouldBlock), and
                // tokio clears the socket's readiness, as its own
                // `TcpStream` does (tokio issue 5866). Otherwise the next
                // read is a `recvmsg` that can only fail with EAGAIN: one
                // wasted system call per request on a connection that sends
                // one request at a time (10,000 a second in the acceptance
                // load). Data arriving meanwhile is not lost: tokio clears
                // only the readiness it saw before this call.
                if 0 < got.0 && got.0 < len { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(()) }
            });
            let done = match read {
                Some(got) => Ok(got),
                None => Err(tried.expect_err("a read that succeeded recorded what it read")),
            };
            match done {
                Ok((n, age)) => {
                    let now = Instant::now();
                    this.arrived = Some(age.and_then(|a| now.checked_sub(a)).unwrap_or(now));
                    // SAFETY: recvmsg wrote these `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// One `recvmsg` into the `len` bytes at `buf`: the bytes read and how
/// long ago the kernel received them (None without a timestamp).
fn recv_stamped(fd: libc::c_int, buf: *mut libc::c_void, len: usize) -> io::Result<(usize, Option<Duration>)> {
    let mut iov = libc::iovec { iov_base: buf, iov_len: len };
    // Room for one timespec control message, aligned as cmsghdr needs.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (which points at the caller's `len`
    // writable bytes) and at `control`, all alive for the whole call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes
    // of well-formed control messages; CMSG_* walk exactly those.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                stamp = Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>()));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp.and_then(age)))
}

/// How long ago the CLOCK_REALTIME instant `ts` was (None if in the
/// future: a clock step).
fn age(ts: libc::timespec) -> Option<Duration> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    let then = Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?);
    now.checked_sub(then)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    /// A loopback connection: the client's end, and the server's read half
    /// stamped (with its write half, to keep the connection open).
    async fn connected() -> (TcpStream, Stamped<OwnedReadHalf>, OwnedWriteHalf) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, write) = server.into_split();
        (client, Stamped::new(read), write)
    }

    /// Bytes that waited in the socket before being read count from when
    /// they arrived, not from the read; a later segment moves the mark.
    #[tokio::test]
    async fn a_read_knows_how_long_its_bytes_waited_in_the_socket() {
        let (mut client, mut stamped, _write) = connected().await;
        assert_eq!(stamped.arrived(), None);
        // The first socket to ask turns receive timestamps on for the host
        // in a deferred kernel work item: a segment that arrives before it
        // ran has none (and counts as arriving when read).
        tokio::time::sleep(Duration::from_millis(20)).await;

        client.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 64];
        let n = stamped.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"*1\r\n$4\r\nPING\r\n");
        let waited = stamped.arrived().unwrap().elapsed();
        assert!(waited >= Duration::from_millis(40), "the bytes waited ~50 ms in the socket, measured {waited:?}");

        client.write_all(b"x").await.unwrap();
        assert_eq!(stamped.read(&mut buf).await.unwrap(), 1);
        let waited = stamped.arrived().unwrap().elapsed();
        assert!(waited < Duration::from_millis(40), "read at once: {waited:?}");

        drop(client);
        assert_eq!(stamped.read(&mut buf).await.unwrap(), 0, "end of stream reads as 0");
    }

    /// A read that empties the socket leaves it marked not readable, so
    /// the next read waits for data instead of first failing a system
    /// call; a read that fills its buffer leaves it readable, and nothing
    /// sent in between is lost.
    #[tokio::test]
    async fn a_read_that_empties_the_socket_waits_for_more_without_a_failed_call() {
        let (mut client, mut stamped, _write) = connected().await;
        // Tokio calls the closure only while it believes the socket readable.
        let believed_readable = |s: &Stamped<OwnedReadHalf>| s.inner.as_ref().try_io(Interest::READABLE, || Ok(())).is_ok();

        client.write_all(&[7u8; 100]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut small = [0u8; 40];
        assert_eq!(stamped.read(&mut small).await.unwrap(), 40);
        assert!(believed_readable(&stamped), "a full buffer says nothing about what is left");
        assert_eq!(stamped.read(&mut small).await.unwrap(), 40);
        let mut big = [0u8; 64];
        assert_eq!(stamped.read(&mut big).await.unwrap(), 20, "the rest");
        assert!(!believed_readable(&stamped), "a short read emptied the socket");

        client.write_all(b"more").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), stamped.read(&mut big)).await.expect("data sent after the short read wakes the reader").unwrap();
        assert_eq!(&big[..n], b"more");
    }
}
