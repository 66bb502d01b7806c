//! RESP values and everything that turns them into bytes, in either
//! protocol a connection may speak (RESP2, or RESP3 after `HELLO 3`).

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Encoder;

use crate::lex::{put_int, put_len};

/// The protocol a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// HELLO's `proto` number.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply value. The RESP2 types, plus RESP3's, each of which also has
/// the RESP2 form Redis gives it, so a server builds one frame and
/// [`Frame::encode_as`] writes it in the connection's protocol.
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
    /// The null bulk string, `$-1\r\n` (RESP3: `_\r\n`).
    Null,
    /// The null array, `*-1\r\n` (RESP3: `_\r\n`).
    NullArray,
    /// `*<n>\r\n` followed by `n` frames.
    Array(Vec<Frame>),
    /// RESP3's map, `%<n>\r\n` then each key and its value (HGETALL,
    /// CONFIG GET); in RESP2 one array of keys and values alternating.
    Map(Vec<(Frame, Frame)>),
    /// A map in RESP3 that RESP2 shows as an array of `[key, value]`
    /// arrays (XREAD's streams) rather than flattened. Only servers build
    /// it; a decoder sees a map or the arrays.
    NestedMap(Vec<(Frame, Frame)>),
    /// RESP3's set, `~<n>\r\n` (SMEMBERS); an array in RESP2.
    Set(Vec<Frame>),
    /// Pairs such as a member and its score (ZRANGE WITHSCORES,
    /// HRANDFIELD WITHVALUES): in RESP3 an array of two-element arrays,
    /// in RESP2 one flat array. Only servers build it; a decoder sees
    /// the arrays.
    Pairs(Vec<(Frame, Frame)>),
    /// RESP3's double, `,<text>\r\n`, held as the text Redis writes
    /// (`1.5`, `0.10000000000000001`, `inf`); a bulk string of that text
    /// in RESP2.
    Double(String),
    /// RESP3's boolean, `#t\r\n` or `#f\r\n`; the integer 1 or 0 in RESP2.
    Boolean(bool),
    /// RESP3's big number, `(<digits>\r\n`; a bulk string in RESP2.
    BigNumber(String),
    /// RESP3's verbatim string, `=<len>\r\n<format>:<text>\r\n` (INFO's
    /// `txt`); a bulk string of the text in RESP2.
    Verbatim { format: [u8; 3], text: Bytes },
    /// RESP3's push, `><n>\r\n` (Pub/Sub's messages and confirmations);
    /// an array in RESP2.
    Push(Vec<Frame>),
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

    /// A verbatim text reply (INFO, CLIENT LIST): `txt` in RESP3, a bulk
    /// string in RESP2.
    pub fn verbatim(text: impl Into<Bytes>) -> Frame {
        Frame::Verbatim { format: *b"txt", text: text.into() }
    }

    /// Appends the exact RESP2 encoding of this frame to `dst`.
    ///
    /// Simple strings and errors cannot carry CR or LF on the wire, so any
    /// such byte is written as a space (as Redis does for error replies)
    /// rather than emitting a stream the peer would misparse.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.encode_as(Protocol::Resp2, dst);
    }

    /// Appends this frame's encoding in `protocol` to `dst`: RESP3's types
    /// as themselves, or as RESP2 shows them (as [`Frame::encode`]).
    pub fn encode_as(&self, protocol: Protocol, dst: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Frame::Simple(s) => put_line(dst, b'+', s),
            Frame::Error(s) => put_line(dst, b'-', s),
            Frame::Integer(n) => {
                dst.put_u8(b':');
                put_int(dst, *n);
                dst.extend_from_slice(b"\r\n");
            }
            Frame::Bulk(b) => put_bulk(dst, b),
            Frame::Null | Frame::NullArray if resp3 => dst.extend_from_slice(b"_\r\n"),
            Frame::Null => dst.extend_from_slice(b"$-1\r\n"),
            Frame::NullArray => dst.extend_from_slice(b"*-1\r\n"),
            Frame::Array(items) => put_items(dst, b'*', items, protocol),
            Frame::Set(items) => put_items(dst, if resp3 { b'~' } else { b'*' }, items, protocol),
            Frame::Push(items) => put_items(dst, if resp3 { b'>' } else { b'*' }, items, protocol),
            Frame::Map(pairs) => put_pairs(dst, pairs, if resp3 { PairsAs::Map } else { PairsAs::Flat }, protocol),
            Frame::Pairs(pairs) => put_pairs(dst, pairs, if resp3 { PairsAs::Nested } else { PairsAs::Flat }, protocol),
            Frame::NestedMap(pairs) => put_pairs(dst, pairs, if resp3 { PairsAs::Map } else { PairsAs::Nested }, protocol),
            Frame::Double(text) if resp3 => put_line(dst, b',', text),
            Frame::BigNumber(digits) if resp3 => put_line(dst, b'(', digits),
            Frame::Double(text) | Frame::BigNumber(text) => put_bulk(dst, text.as_bytes()),
            Frame::Boolean(b) if resp3 => dst.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Boolean(b) => dst.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Frame::Verbatim { format, text } if resp3 => {
                dst.reserve(text.len() + 20);
                put_header(dst, b'=', text.len() + 4);
                dst.extend_from_slice(format);
                dst.put_u8(b':');
                dst.extend_from_slice(text);
                dst.extend_from_slice(b"\r\n");
            }
            Frame::Verbatim { text, .. } => put_bulk(dst, text),
            Frame::Replies(replies) => {
                for reply in replies {
                    reply.encode_as(protocol, dst);
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

    /// This frame as RESP2 shows it, built of RESP2's types only (what a
    /// Lua script sees of a command's reply): maps and pairs flattened,
    /// sets and pushes as arrays, doubles, big numbers and verbatim text
    /// as bulk strings, booleans as 1 or 0.
    pub fn into_resp2(self) -> Frame {
        let flat = |pairs: Vec<(Frame, Frame)>| Frame::Array(pairs.into_iter().flat_map(|(a, b)| [a.into_resp2(), b.into_resp2()]).collect());
        match self {
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => Frame::Array(items.into_iter().map(Frame::into_resp2).collect()),
            Frame::Replies(items) => Frame::Replies(items.into_iter().map(Frame::into_resp2).collect()),
            Frame::Map(pairs) | Frame::Pairs(pairs) => flat(pairs),
            Frame::NestedMap(pairs) => Frame::Array(pairs.into_iter().map(|(a, b)| Frame::Array(vec![a.into_resp2(), b.into_resp2()])).collect()),
            Frame::Double(text) | Frame::BigNumber(text) => Frame::Bulk(text.into()),
            Frame::Boolean(b) => Frame::Integer(b as i64),
            Frame::Verbatim { text, .. } => Frame::Bulk(text),
            other => other,
        }
    }
}

/// How [`put_pairs`] writes pairs.
enum PairsAs {
    /// RESP3's map: `%<n>`, then each key and value.
    Map,
    /// One array of keys and values alternating.
    Flat,
    /// An array of two-element arrays.
    Nested,
}

fn put_pairs(dst: &mut BytesMut, pairs: &[(Frame, Frame)], how: PairsAs, protocol: Protocol) {
    match how {
        PairsAs::Map => put_header(dst, b'%', pairs.len()),
        PairsAs::Flat => put_header(dst, b'*', pairs.len() * 2),
        PairsAs::Nested => put_header(dst, b'*', pairs.len()),
    }
    for (first, second) in pairs {
        if matches!(how, PairsAs::Nested) {
            put_header(dst, b'*', 2);
        }
        first.encode_as(protocol, dst);
        second.encode_as(protocol, dst);
    }
}

/// Writes an aggregate's header and its items.
fn put_items(dst: &mut BytesMut, marker: u8, items: &[Frame], protocol: Protocol) {
    put_header(dst, marker, items.len());
    for item in items {
        item.encode_as(protocol, dst);
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
    fn resp3_types_have_their_resp2_forms() {
        let resp3 = |frame: &Frame| {
            let mut dst = BytesMut::new();
            frame.encode_as(Protocol::Resp3, &mut dst);
            dst.to_vec()
        };
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1)), (Frame::bulk("b"), Frame::Null)]);
        assert_eq!(resp3(&map), b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n");
        assert_eq!(enc(&map), b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n");
        let pairs = Frame::Pairs(vec![(Frame::bulk("m"), Frame::Double("1.5".into()))]);
        assert_eq!(resp3(&pairs), b"*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n");
        assert_eq!(enc(&pairs), b"*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n");
        let streams = Frame::NestedMap(vec![(Frame::bulk("s"), Frame::Array(vec![]))]);
        assert_eq!(resp3(&streams), b"%1\r\n$1\r\ns\r\n*0\r\n");
        assert_eq!(enc(&streams), b"*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
        assert_eq!(streams.clone().into_resp2().to_bytes(), streams.to_bytes());
        assert_eq!(resp3(&Frame::Set(vec![Frame::Integer(1)])), b"~1\r\n:1\r\n");
        assert_eq!(enc(&Frame::Set(vec![Frame::Integer(1)])), b"*1\r\n:1\r\n");
        assert_eq!(resp3(&Frame::Push(vec![])), b">0\r\n");
        assert_eq!(enc(&Frame::Push(vec![])), b"*0\r\n");
        assert_eq!(resp3(&Frame::NullArray), b"_\r\n");
        assert_eq!(resp3(&Frame::Boolean(true)), b"#t\r\n");
        assert_eq!(enc(&Frame::Boolean(false)), b":0\r\n");
        assert_eq!(resp3(&Frame::BigNumber("12".into())), b"(12\r\n");
        assert_eq!(enc(&Frame::BigNumber("12".into())), b"$2\r\n12\r\n");
        assert_eq!(resp3(&Frame::verbatim("a\r\nb")), b"=8\r\ntxt:a\r\nb\r\n");
        assert_eq!(enc(&Frame::verbatim("a\r\nb")), b"$4\r\na\r\nb\r\n");
        let nested = Frame::Array(vec![Frame::Map(vec![(Frame::bulk("k"), Frame::Set(vec![]))]), Frame::Double("inf".into())]);
        assert_eq!(nested.clone().into_resp2(), Frame::Array(vec![Frame::Array(vec![Frame::bulk("k"), Frame::Array(vec![])]), Frame::bulk("inf")]));
        assert_eq!(nested.clone().into_resp2().to_bytes(), nested.to_bytes(), "into_resp2 writes as the RESP2 encoding does");
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
