//! Client-side decoding of arbitrary reply frames, RESP2's and RESP3's.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::Limits;
use crate::error::ProtocolError;
use crate::frame::Frame;
use crate::lex::{Search, parse_ll, search_cr};

/// Deepest array nesting [`FrameDecoder`] accepts; a top-level array is depth 1.
pub const MAX_FRAME_DEPTH: usize = 64;

/// Decodes any RESP2 or RESP3 frame; used by clients, load generators and
/// tests. RESP3's null is [`Frame::Null`], its blob error an
/// [`Frame::Error`]; an attribute (`|`) is read and dropped with the
/// frame it annotates returned.
///
/// It enforces [`Limits::default`] on bulk and array lengths and on line
/// lengths, and [`MAX_FRAME_DEPTH`] on nesting. It is stateless: each call
/// first checks, without allocating, that a whole frame has arrived, then
/// builds it with bulk payloads sliced out of the buffer without copying.
/// The check restarts from the beginning of the frame on every call, which is
/// cheap for the small replies clients usually receive.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameDecoder;

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let limits = Limits::default();
        let scan = Parser {
            buf: src,
            source: None,
            limits: &limits,
        };
        let Some((_, len)) = scan.frame(0, 1)? else {
            return Ok(None);
        };
        let bytes = src.split_to(len).freeze();
        let build = Parser {
            buf: &bytes,
            source: Some(&bytes),
            limits: &limits,
        };
        match build.frame(0, 1)? {
            Some((frame, _)) => Ok(Some(frame)),
            // The bytes were just validated, so this cannot happen; report it
            // rather than silently losing the frame.
            None => Err(std::io::Error::other("reply frame vanished between scans").into()),
        }
    }
}

/// A frame and the index just past it.
type Parsed = Option<(Frame, usize)>;

/// Recursive-descent parser over a buffer.
///
/// With `source` unset it only validates and measures: the frames it returns
/// are placeholders and nothing is allocated. With `source` set (the same
/// bytes as `buf`, already known to hold a whole frame) it builds the frame.
struct Parser<'a> {
    buf: &'a [u8],
    source: Option<&'a Bytes>,
    limits: &'a Limits,
}

impl Parser<'_> {
    /// Parses the frame starting at `pos`, which is nested at `depth`.
    fn frame(&self, pos: usize, depth: usize) -> Result<Parsed, ProtocolError> {
        let Some(&marker) = self.buf.get(pos) else {
            return Ok(None);
        };
        match marker {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => self.line_frame(marker, pos),
            b'$' | b'!' | b'=' => self.bulk(marker, pos),
            b'*' | b'~' | b'>' => self.array(marker, pos, depth),
            b'%' => self.map(pos, depth),
            b'|' => {
                let Some((_, after)) = self.map(pos, depth)? else {
                    return Ok(None);
                };
                self.frame(after, depth)
            }
            other => Err(ProtocolError::InvalidFrameType(other)),
        }
    }

    /// Finds the CRLF ending the line that starts at `pos`; returns the
    /// index of the CR and the index after the LF.
    fn line(
        &self,
        pos: usize,
        too_long: ProtocolError,
    ) -> Result<Option<(usize, usize)>, ProtocolError> {
        let rest = &self.buf[pos..];
        match search_cr(rest, 0, self.limits.max_inline_len) {
            Search::Found(cr) if rest[cr + 1] == b'\n' => Ok(Some((pos + cr, pos + cr + 2))),
            Search::Found(_) => Err(ProtocolError::ExpectedLineFeed),
            Search::Incomplete(_) => Ok(None),
            Search::TooLong => Err(too_long),
        }
    }

    /// Parses a simple string, error or integer.
    fn line_frame(&self, marker: u8, pos: usize) -> Result<Parsed, ProtocolError> {
        let Some((cr, next)) = self.line(pos, ProtocolError::LineTooLong)? else {
            return Ok(None);
        };
        let text = &self.buf[pos + 1..cr];
        let lossy = || String::from_utf8_lossy(text).into_owned();
        let frame = match marker {
            b':' => Frame::Integer(parse_ll(text).ok_or(ProtocolError::InvalidInteger)?),
            b'_' if text.is_empty() => Frame::Null,
            b'#' if text == b"t" => Frame::Boolean(true),
            b'#' if text == b"f" => Frame::Boolean(false),
            b'_' | b'#' => return Err(ProtocolError::InvalidLine(marker)),
            _ if self.source.is_none() => Frame::Null,
            b'+' => Frame::Simple(lossy()),
            b',' => Frame::Double(lossy()),
            b'(' => Frame::BigNumber(lossy()),
            _ => Frame::Error(lossy()),
        };
        Ok(Some((frame, next)))
    }

    /// Parses a `$` or `*` header: `Some(None)` for the `-1` null form.
    fn length(
        &self,
        pos: usize,
        too_long: ProtocolError,
        invalid: ProtocolError,
        max: usize,
    ) -> Result<Option<(Option<usize>, usize)>, ProtocolError> {
        let Some((cr, next)) = self.line(pos, too_long)? else {
            return Ok(None);
        };
        match parse_ll(&self.buf[pos + 1..cr]) {
            Some(-1) => Ok(Some((None, next))),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= max => Ok(Some((Some(n), next))),
                _ => Err(invalid),
            },
            None => Err(invalid),
        }
    }

    /// Parses a bulk string or the null bulk string, or RESP3's blob
    /// error (`!`) or verbatim string (`=`, its format first: `txt:`).
    fn bulk(&self, marker: u8, pos: usize) -> Result<Parsed, ProtocolError> {
        let header = self.length(
            pos,
            ProtocolError::TooBigBulkCount,
            ProtocolError::InvalidBulkLength,
            self.limits.max_bulk_len,
        )?;
        let Some((len, start)) = header else {
            return Ok(None);
        };
        let Some(len) = len else {
            return Ok(Some((Frame::Null, start)));
        };
        let end = start.saturating_add(len);
        match (self.buf.get(end), self.buf.get(end.saturating_add(1))) {
            (Some(b'\r'), Some(b'\n')) => {}
            (None, _) | (Some(b'\r'), None) => return Ok(None),
            _ => return Err(ProtocolError::UnterminatedBulk),
        }
        let frame = match (self.source, marker) {
            (None, _) => Frame::Null,
            (Some(bytes), b'!') => Frame::Error(String::from_utf8_lossy(&bytes[start..end]).into_owned()),
            (Some(bytes), b'=') => match &bytes[start..end] {
                [a, b, c, b':', ..] => Frame::Verbatim { format: [*a, *b, *c], text: bytes.slice(start + 4..end) },
                _ => return Err(ProtocolError::InvalidLine(marker)),
            },
            (Some(bytes), _) => Frame::Bulk(bytes.slice(start..end)),
        };
        Ok(Some((frame, end + 2)))
    }

    /// Parses an array or the null array, or RESP3's set (`~`) or push
    /// (`>`).
    fn array(&self, marker: u8, pos: usize, depth: usize) -> Result<Parsed, ProtocolError> {
        let Some((items, next)) = self.items(pos, depth, 1)? else {
            return Ok(None);
        };
        let frame = match (items, marker) {
            (None, _) => Frame::NullArray,
            (Some(items), b'~') => Frame::Set(items),
            (Some(items), b'>') => Frame::Push(items),
            (Some(items), _) => Frame::Array(items),
        };
        Ok(Some((frame, next)))
    }

    /// Parses RESP3's map (`%`, also an attribute's body).
    fn map(&self, pos: usize, depth: usize) -> Result<Parsed, ProtocolError> {
        let Some((items, next)) = self.items(pos, depth, 2)? else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        let mut items = items.unwrap_or_default().into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            entries.push((key, value));
        }
        Ok(Some((Frame::Map(entries), next)))
    }

    /// Parses an aggregate's header (`None` for `-1`) and its count times
    /// `per` frames (collected only when building).
    #[allow(clippy::type_complexity)]
    fn items(&self, pos: usize, depth: usize, per: usize) -> Result<Option<(Option<Vec<Frame>>, usize)>, ProtocolError> {
        let header = self.length(
            pos,
            ProtocolError::TooBigMultibulkCount,
            ProtocolError::InvalidMultibulkLength,
            self.limits.max_args,
        )?;
        let Some((count, mut next)) = header else {
            return Ok(None);
        };
        let Some(count) = count else {
            return Ok(Some((None, next)));
        };
        let count = count.checked_mul(per).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if depth > MAX_FRAME_DEPTH {
            return Err(ProtocolError::NestingTooDeep);
        }
        // Only the build pass collects items, and it runs on bytes known to
        // hold all of them, so the capacity is backed by real input.
        let capacity = if self.source.is_some() {
            count.min(self.buf.len())
        } else {
            0
        };
        let mut items = Vec::with_capacity(capacity);
        for _ in 0..count {
            let Some((item, after)) = self.frame(next, depth + 1)? else {
                return Ok(None);
            };
            if self.source.is_some() {
                items.push(item);
            }
            next = after;
        }
        Ok(Some((Some(items), next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes all frames from `input`, fed one byte at a time.
    fn bytewise(input: &[u8]) -> Result<Vec<Frame>, ProtocolError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            while let Some(frame) = FrameDecoder.decode(&mut buf)? {
                out.push(frame);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    fn one(input: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        FrameDecoder.decode(&mut BytesMut::from(input))
    }

    #[test]
    fn decodes_every_type() {
        let input = b"+OK\r\n-ERR bad\r\n:-12\r\n$3\r\na\r\n\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n:1\r\n*1\r\n+x\r\n";
        let expected = vec![
            Frame::ok(),
            Frame::error("ERR bad"),
            Frame::Integer(-12),
            Frame::bulk(&b"a\r\n"[..]),
            Frame::bulk(""),
            Frame::Null,
            Frame::NullArray,
            Frame::array(vec![]),
            Frame::array(vec![
                Frame::Integer(1),
                Frame::array(vec![Frame::simple("x")]),
            ]),
        ];
        assert_eq!(bytewise(input).unwrap(), expected);
    }

    #[test]
    fn decodes_resp3_types() {
        let input = b"_\r\n,1.5\r\n,-inf\r\n#t\r\n#f\r\n(3492890328409238509324850943850943825024385\r\n!8\r\nERR oops\r\n=8\r\ntxt:a\r\nb\r\n%2\r\n+a\r\n:1\r\n$1\r\nb\r\n~1\r\n:2\r\n>2\r\n+message\r\n_\r\n~0\r\n|1\r\n+ttl\r\n:3\r\n:7\r\n";
        let expected = vec![
            Frame::Null,
            Frame::Double("1.5".into()),
            Frame::Double("-inf".into()),
            Frame::Boolean(true),
            Frame::Boolean(false),
            Frame::BigNumber("3492890328409238509324850943850943825024385".into()),
            Frame::error("ERR oops"),
            Frame::Verbatim { format: *b"txt", text: bytes::Bytes::from_static(b"a\r\nb") },
            Frame::Map(vec![(Frame::simple("a"), Frame::Integer(1)), (Frame::bulk("b"), Frame::Set(vec![Frame::Integer(2)]))]),
            Frame::Push(vec![Frame::simple("message"), Frame::Null]),
            Frame::Set(vec![]),
            // The attribute is dropped; the frame after it is the reply.
            Frame::Integer(7),
        ];
        assert_eq!(bytewise(input).unwrap(), expected);
        assert!(one(b"%2\r\n+a\r\n:1\r\n+b\r\n").unwrap().is_none(), "a map waits for its last value");
        assert!(matches!(one(b"#x\r\n"), Err(ProtocolError::InvalidLine(b'#'))));
        assert!(matches!(one(b"_x\r\n"), Err(ProtocolError::InvalidLine(b'_'))));
        assert!(matches!(one(b"=2\r\nab\r\n"), Err(ProtocolError::InvalidLine(b'='))));
    }

    #[test]
    fn incomplete_input_waits() {
        for input in [
            &b""[..],
            b"+OK",
            b"+OK\r",
            b"$3\r\nab",
            b"$3\r\nabc\r",
            b"*2\r\n:1\r\n",
        ] {
            assert!(one(input).unwrap().is_none());
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut ok = b"*1\r\n".repeat(MAX_FRAME_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert!(one(&ok).unwrap().is_some());
        let mut deep = b"*1\r\n".repeat(MAX_FRAME_DEPTH + 1);
        deep.extend_from_slice(b":1\r\n");
        assert!(matches!(one(&deep), Err(ProtocolError::NestingTooDeep)));
    }

    #[test]
    fn lengths_are_bounded_before_payload_arrives() {
        assert!(matches!(
            one(b"$67108865\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        ));
        assert!(matches!(
            one(b"$-2\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        ));
        assert!(matches!(
            one(b"*1048577\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        ));
        assert!(matches!(
            one(b"*-2\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        ));
        assert!(one(b"*1048576\r\n").unwrap().is_none());
        let mut long = b"$".to_vec();
        long.extend(std::iter::repeat_n(b'1', 64 * 1024));
        assert!(matches!(one(&long), Err(ProtocolError::TooBigBulkCount)));
    }

    #[test]
    fn malformed_frames_are_rejected() {
        assert!(matches!(
            one(b"?x\r\n"),
            Err(ProtocolError::InvalidFrameType(b'?'))
        ));
        assert!(matches!(
            one(b":12a\r\n"),
            Err(ProtocolError::InvalidInteger)
        ));
        assert!(matches!(one(b":\r\n"), Err(ProtocolError::InvalidInteger)));
        assert!(matches!(
            one(b"+OK\rX"),
            Err(ProtocolError::ExpectedLineFeed)
        ));
        assert!(matches!(
            one(b"$1\r\nab"),
            Err(ProtocolError::UnterminatedBulk)
        ));
        assert!(matches!(
            one(b"$1\r\na\rb"),
            Err(ProtocolError::UnterminatedBulk)
        ));
        let long = vec![b'+'; 64 * 1024 + 1];
        assert!(matches!(one(&long), Err(ProtocolError::LineTooLong)));
    }

    #[test]
    fn invalid_utf8_in_lines_is_replaced() {
        assert_eq!(
            one(b"-ERR \xff\r\n").unwrap(),
            Some(Frame::error("ERR \u{fffd}"))
        );
    }

    #[test]
    fn bulk_payloads_are_not_copied() {
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        let range = buf.as_ptr_range();
        let Some(Frame::Array(items)) = FrameDecoder.decode(&mut buf).unwrap() else {
            panic!("expected an array");
        };
        let Frame::Bulk(payload) = &items[0] else {
            panic!("expected a bulk string");
        };
        assert!(range.contains(&payload.as_ptr()));
    }
}
