//! RESP, the Redis wire protocol, for evenkeel: RESP2, and RESP3 for
//! connections that ask for it with `HELLO 3`.
//!
//! - [`Frame`] is one reply value; [`Frame::encode_as`] writes its exact
//!   bytes in a connection's [`Protocol`] (RESP3's types in their RESP2
//!   form for a RESP2 connection, as Redis does).
//! - On the server, [`RequestDecoder`] turns client bytes into argument
//!   vectors (`Vec<Bytes>`), accepting both multibulk and inline requests with
//!   the same rules and error texts as Redis 7, bounded by [`Limits`].
//!   [`ReplyEncoder`] writes [`Frame`] replies back.
//! - On the client, [`encode_command`] writes a request and [`FrameDecoder`]
//!   reads any reply [`Frame`].
//! - Every decoding failure is a [`ProtocolError`]; a server answers it with
//!   [`ProtocolError::reply_text`] and closes the connection.
//!
//! The decoders and encoders implement the `tokio_util::codec` traits, so they
//! plug into `FramedRead` / `FramedWrite`.
//!
//! ```
//! use bytes::BytesMut;
//! use evenkeel_resp::{Frame, RequestDecoder, encode_command};
//! use tokio_util::codec::Decoder;
//!
//! let mut buf = BytesMut::new();
//! encode_command(&[b"GET", b"key"], &mut buf);
//! let args = RequestDecoder::default().decode(&mut buf)?;
//! assert_eq!(args, Some(vec![bytes::Bytes::from("GET"), bytes::Bytes::from("key")]));
//!
//! let mut out = BytesMut::new();
//! Frame::bulk("value").encode(&mut out);
//! assert_eq!(&out[..], b"$5\r\nvalue\r\n");
//! # Ok::<(), evenkeel_resp::ProtocolError>(())
//! ```

mod error;
mod frame;
mod inline;
mod lex;
mod reply;
mod request;

pub use error::ProtocolError;
pub use frame::{Frame, Protocol, ReplyEncoder, encode_command};
pub use reply::{FrameDecoder, MAX_FRAME_DEPTH};
pub use request::RequestDecoder;

/// Size limits that protect a server from hostile or broken clients.
///
/// Every limit is checked as soon as the header that declares a size has been
/// read, before any of the declared data is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted bulk string (`$<len>`), in bytes. Default 64 MiB.
    pub max_bulk_len: usize,
    /// Largest accepted argument count (`*<n>`). Default 1,048,576.
    pub max_args: usize,
    /// Longest accepted inline request line, in bytes, excluding the newline.
    /// Default 64 KiB. As in Redis, the same bound applies to `*<n>` and
    /// `$<len>` header lines.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 64 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}
