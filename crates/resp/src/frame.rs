//! RESP2 values and everything that turns them into bytes.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Encoder;

use crate::lex::{put_int, put_len};

/// A RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+<text>\r\n`
    Simple(String),
    /// `-<text>\r\n`; by convention the text starts with an error code such as `ERR`.
    Error(String),
    /// `:<n>\r\n`
    Integer(i64),
    /// `$<len>\r\n<bytes>\r\n`
    Bulk(Bytes),
    /// The null bulk string, `$-1\r\n`.
    Null,
    /// The null array, `*-1\r\n`.
    NullArray,
    /// `*<n>\r\n` followed by `n` frames.
    Array(Vec<Frame>),
    /// Several replies to one command, written one after another with no
    /// header (SUBSCRIBE confirms each channel with a reply of its own).
    /// Only servers build it; the decoder never yields it.
    Replies(Vec<Frame>),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_owned())
    }

    /// A simple string reply.
    pub fn simple(text: impl Into<String>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error reply; `msg` should start with a code, e.g. `ERR wrong number of arguments`.
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    /// An integer reply.
    pub fn integer(n: i64) -> Frame {
        Frame::Integer(n)
    }

    /// A bulk string reply.
    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// An array reply.
    pub fn array(items: impl Into<Vec<Frame>>) -> Frame {
        Frame::Array(items.into())
    }

    /// Appends the exact RESP2 encoding of this frame to `dst`.
    ///
    /// Simple strings and errors cannot carry CR or LF on the wire, so any
    /// such byte is written as a space (as Redis does for error replies)
    /// rather than emitting a stream the peer would misparse.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Frame::Simple(s) => put_line(dst, b'+', s),
            Frame::Error(s) => put_line(dst, b'-', s),
            Frame::Integer(n) => {
                dst.put_u8(b':');
                put_int(dst, *n);
                dst.extend_from_slice(b"\r\n");
            }
            Frame::Bulk(b) => put_bulk(dst, b),
            Frame::Null => dst.extend_from_slice(b"$-1\r\n"),
            Frame::NullArray => dst.extend_from_slice(b"*-1\r\n"),
            Frame::Array(items) => {
                put_header(dst, b'*', items.len());
                for item in items {
                    item.encode(dst);
                }
            }
            Frame::Replies(replies) => {
                for reply in replies {
                    reply.encode(dst);
                }
            }
        }
    }

    /// The RESP2 encoding of this frame as a fresh buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::new();
        self.encode(&mut dst);
        dst.freeze()
    }
}

/// Writes `<marker><len>\r\n`.
fn put_header(dst: &mut BytesMut, marker: u8, len: usize) {
    dst.put_u8(marker);
    put_len(dst, len);
    dst.extend_from_slice(b"\r\n");
}

/// Writes a bulk string, reserving room for the payload up front.
fn put_bulk(dst: &mut BytesMut, payload: &[u8]) {
    dst.reserve(payload.len() + 16);
    put_header(dst, b'$', payload.len());
    dst.extend_from_slice(payload);
    dst.extend_from_slice(b"\r\n");
}

/// Writes a simple-string or error line, mapping CR and LF to spaces.
fn put_line(dst: &mut BytesMut, marker: u8, text: &str) {
    dst.reserve(text.len() + 3);
    dst.put_u8(marker);
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        dst.extend(bytes.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            other => other,
        }));
    } else {
        dst.extend_from_slice(bytes);
    }
    dst.extend_from_slice(b"\r\n");
}

/// Encodes a command as an array of bulk strings, the form every RESP2
/// server accepts, and appends it to `dst`.
pub fn encode_command(args: &[&[u8]], dst: &mut BytesMut) {
    let payload: usize = args.iter().map(|a| a.len() + 16).sum();
    dst.reserve(payload + 16);
    put_header(dst, b'*', args.len());
    for arg in args {
        put_bulk(dst, arg);
    }
}

/// Server-side encoder for replies; stateless.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplyEncoder;

impl Encoder<Frame> for ReplyEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        item.encode(dst);
        Ok(())
    }
}

impl Encoder<&Frame> for ReplyEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        item.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(frame: &Frame) -> Vec<u8> {
        frame.to_bytes().to_vec()
    }

    #[test]
    fn encodes_every_variant() {
        assert_eq!(enc(&Frame::ok()), b"+OK\r\n");
        assert_eq!(enc(&Frame::error("ERR nope")), b"-ERR nope\r\n");
        assert_eq!(enc(&Frame::integer(-42)), b":-42\r\n");
        assert_eq!(enc(&Frame::integer(i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(enc(&Frame::bulk("hi")), b"$2\r\nhi\r\n");
        assert_eq!(enc(&Frame::bulk("")), b"$0\r\n\r\n");
        assert_eq!(enc(&Frame::bulk(&b"a\r\n\0b"[..])), b"$5\r\na\r\n\0b\r\n");
        assert_eq!(enc(&Frame::Null), b"$-1\r\n");
        assert_eq!(enc(&Frame::NullArray), b"*-1\r\n");
        assert_eq!(enc(&Frame::array(vec![])), b"*0\r\n");
        let nested = Frame::array(vec![Frame::integer(1), Frame::array(vec![Frame::Null])]);
        assert_eq!(enc(&nested), b"*2\r\n:1\r\n*1\r\n$-1\r\n");
    }

    #[test]
    fn line_breaks_in_simple_strings_become_spaces() {
        assert_eq!(enc(&Frame::error("ERR a\r\nb")), b"-ERR a  b\r\n");
        assert_eq!(enc(&Frame::simple("x\ny")), b"+x y\r\n");
    }

    #[test]
    fn encodes_commands() {
        let mut dst = BytesMut::new();
        encode_command(&[b"SET", b"k", b""], &mut dst);
        assert_eq!(&dst[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn reply_encoder_accepts_owned_and_borrowed() {
        let mut dst = BytesMut::new();
        let frame = Frame::integer(5);
        Encoder::<&Frame>::encode(&mut ReplyEncoder, &frame, &mut dst).unwrap();
        Encoder::<Frame>::encode(&mut ReplyEncoder, frame, &mut dst).unwrap();
        assert_eq!(&dst[..], b":5\r\n:5\r\n");
    }
}
