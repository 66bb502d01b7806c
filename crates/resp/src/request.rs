//! Server-side request decoding with the semantics of Redis 7's
//! `processMultibulkBuffer` and `processInlineBuffer`.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::Limits;
use crate::error::ProtocolError;
use crate::inline::split_args;
use crate::lex::{Search, parse_ll, search, search_cr};

/// Upper bound on the argument vector capacity reserved from a client's
/// `*<n>` header; anything beyond grows as arguments actually arrive, so a
/// bare `*1000000\r\n` costs nothing.
const MAX_PREALLOCATED_ARGS: usize = 1024;

/// Decodes client requests (multibulk or inline) into argument vectors.
///
/// The decoder keeps the arguments of a partially received multibulk request
/// between calls, so a huge request spread over many reads is parsed once in
/// total rather than once per read. Arguments are split off the read buffer
/// without copying.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    /// The multibulk request being assembled, if one has started.
    pending: Option<Multibulk>,
    /// How many bytes at the head of the buffer are already known not to
    /// contain the terminator of the line being waited for.
    scanned: usize,
}

/// State of a multibulk request whose header has been consumed.
#[derive(Debug)]
struct Multibulk {
    /// Arguments still to be read.
    remaining: usize,
    /// Arguments read so far.
    args: Vec<Bytes>,
    /// Length of the next argument once its `$<len>` line has been consumed.
    bulk_len: Option<usize>,
}

/// What one parsing step achieved.
enum Step {
    /// More bytes are needed.
    NeedMore,
    /// Bytes were consumed without producing a command; keep going.
    Progress,
    /// A complete command.
    Command(Vec<Bytes>),
}

impl RequestDecoder {
    /// Creates a decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            pending: None,
            scanned: 0,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Drops `n` bytes from the head of the buffer and resets the line search.
    fn consume(&mut self, src: &mut BytesMut, n: usize) {
        src.advance(n);
        self.scanned = 0;
    }

    /// Waits for a complete header line and returns the index of its CR.
    /// Header lines share the inline size limit, as in Redis.
    fn header_line(
        &mut self,
        src: &[u8],
        too_long: ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        match search_cr(src, self.scanned, self.limits.max_inline_len) {
            Search::Found(cr) => Ok(Some(cr)),
            Search::Incomplete(scanned) => {
                self.scanned = scanned;
                Ok(None)
            }
            Search::TooLong => Err(too_long),
        }
    }

    /// Reads a `*<n>` header and sets up the argument vector.
    fn start_multibulk(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        let Some(cr) = self.header_line(src, ProtocolError::TooBigMultibulkCount)? else {
            return Ok(Step::NeedMore);
        };
        let count = parse_ll(&src[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if src[cr + 1] != b'\n' {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        // Like Redis, a zero or negative count is an empty request, not an error.
        let Ok(count) = usize::try_from(count) else {
            self.consume(src, cr + 2);
            return Ok(Step::Progress);
        };
        if count > self.limits.max_args {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        self.consume(src, cr + 2);
        if count > 0 {
            self.pending = Some(Multibulk {
                remaining: count,
                args: Vec::with_capacity(count.min(MAX_PREALLOCATED_ARGS)),
                bulk_len: None,
            });
        }
        Ok(Step::Progress)
    }

    /// Reads a `$<len>` line, enforcing the length limit before any payload
    /// is buffered.
    fn bulk_header(&mut self, src: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
        let Some(cr) = self.header_line(src, ProtocolError::TooBigBulkCount)? else {
            return Ok(None);
        };
        if src[0] != b'$' {
            return Err(ProtocolError::ExpectedBulk(src[0]));
        }
        let len = parse_ll(&src[1..cr])
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.limits.max_bulk_len)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        if src[cr + 1] != b'\n' {
            return Err(ProtocolError::InvalidBulkLength);
        }
        self.consume(src, cr + 2);
        Ok(Some(len))
    }

    /// Splits a bulk payload of `len` bytes plus its CRLF off the buffer,
    /// failing as soon as a byte where the CRLF belongs is wrong.
    fn bulk_payload(
        &mut self,
        src: &mut BytesMut,
        len: usize,
    ) -> Result<Option<Bytes>, ProtocolError> {
        if src.get(len).is_some_and(|&b| b != b'\r') {
            return Err(ProtocolError::UnterminatedBulk);
        }
        match src.get(len.saturating_add(1)) {
            None => Ok(None),
            Some(b'\n') => {
                let arg = src.split_to(len).freeze();
                self.consume(src, 2);
                Ok(Some(arg))
            }
            Some(_) => Err(ProtocolError::UnterminatedBulk),
        }
    }

    /// Reads as many arguments of the pending request as the buffer holds.
    fn continue_multibulk(
        &mut self,
        src: &mut BytesMut,
        mb: &mut Multibulk,
    ) -> Result<Step, ProtocolError> {
        while mb.remaining > 0 {
            let len = match mb.bulk_len {
                Some(len) => len,
                None => match self.bulk_header(src)? {
                    Some(len) => len,
                    None => return Ok(Step::NeedMore),
                },
            };
            mb.bulk_len = Some(len);
            let Some(arg) = self.bulk_payload(src, len)? else {
                return Ok(Step::NeedMore);
            };
            mb.args.push(arg);
            mb.remaining -= 1;
            mb.bulk_len = None;
        }
        Ok(Step::Command(std::mem::take(&mut mb.args)))
    }

    /// Reads one inline request line.
    fn inline(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        let newline = match search(src, self.scanned, b'\n', self.limits.max_inline_len) {
            Search::Found(i) => i,
            Search::Incomplete(scanned) => {
                self.scanned = scanned;
                return Ok(Step::NeedMore);
            }
            Search::TooLong => return Err(ProtocolError::TooBigInlineRequest),
        };
        let end = match newline.checked_sub(1) {
            Some(before) if src[before] == b'\r' => before,
            _ => newline,
        };
        let args = split_args(&src[..end]).ok_or(ProtocolError::UnbalancedQuotes)?;
        self.consume(src, newline + 1);
        if args.is_empty() {
            Ok(Step::Progress)
        } else {
            Ok(Step::Command(args))
        }
    }

    /// Runs one parsing step from wherever the decoder left off.
    fn step(&mut self, src: &mut BytesMut) -> Result<Step, ProtocolError> {
        if let Some(mut mb) = self.pending.take() {
            let result = self.continue_multibulk(src, &mut mb);
            // Keep the partial request unless it completed, so that more
            // bytes resume it and a repeated call repeats any error.
            if !matches!(result, Ok(Step::Command(_))) {
                self.pending = Some(mb);
            }
            return result;
        }
        match src.first() {
            None => Ok(Step::NeedMore),
            Some(b'*') => self.start_multibulk(src),
            Some(_) => self.inline(src),
        }
    }
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(Limits::default())
    }
}

impl Decoder for RequestDecoder {
    type Item = Vec<Bytes>;
    type Error = ProtocolError;

    /// Returns the next non-empty command. Empty requests (`*0`, `*-1`, blank
    /// inline lines) are consumed silently, as Redis does. Errors leave the
    /// buffer untouched, so calling again reports the same error.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match self.step(src)? {
                Step::NeedMore => return Ok(None),
                Step::Progress => {}
                Step::Command(args) => return Ok(Some(args)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Commands = Vec<Vec<Vec<u8>>>;

    fn small() -> Limits {
        Limits {
            max_bulk_len: 16,
            max_args: 4,
            max_inline_len: 32,
        }
    }

    /// Decodes everything currently in `buf`; stops at the first error.
    fn drain(
        dec: &mut RequestDecoder,
        buf: &mut BytesMut,
        out: &mut Commands,
    ) -> Result<(), ProtocolError> {
        while let Some(args) = dec.decode(buf)? {
            out.push(args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(())
    }

    fn decode_whole(limits: Limits, input: &[u8]) -> (Commands, Result<(), ProtocolError>) {
        let mut dec = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        let res = drain(&mut dec, &mut buf, &mut out);
        (out, res)
    }

    fn decode_bytewise(limits: Limits, input: &[u8]) -> (Commands, Result<(), ProtocolError>) {
        let mut dec = RequestDecoder::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            if let Err(e) = drain(&mut dec, &mut buf, &mut out) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    fn cmds(list: &[&[&[u8]]]) -> Commands {
        list.iter()
            .map(|c| c.iter().map(|a| a.to_vec()).collect())
            .collect()
    }

    /// Asserts that `input` decodes to `expected` both at once and byte by byte.
    fn assert_decodes(limits: Limits, input: &[u8], expected: &[&[&[u8]]]) {
        for (out, res) in [decode_whole(limits, input), decode_bytewise(limits, input)] {
            assert!(res.is_ok(), "unexpected error {res:?}");
            assert_eq!(out, cmds(expected));
        }
    }

    /// Asserts that `input` fails with `text`, both at once and byte by byte.
    fn assert_fails(limits: Limits, input: &[u8], text: &str) {
        for (_, res) in [decode_whole(limits, input), decode_bytewise(limits, input)] {
            match res {
                Err(e) => assert_eq!(e.reply_text(), text),
                Ok(()) => panic!("expected {text:?} for {:?}", String::from_utf8_lossy(input)),
            }
        }
    }

    const INVALID_MBULK: &str = "ERR Protocol error: invalid multibulk length";
    const INVALID_BULK: &str = "ERR Protocol error: invalid bulk length";

    #[test]
    fn decodes_a_multibulk_command() {
        assert_decodes(
            Limits::default(),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            &[&[b"GET", b"k"]],
        );
    }

    #[test]
    fn decodes_pipelined_commands_of_both_kinds() {
        let input = b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nQUIT\n";
        assert_decodes(
            Limits::default(),
            input,
            &[&[b"PING"], &[b"ECHO", b"hi"], &[b"GET", b"k"], &[b"QUIT"]],
        );
    }

    #[test]
    fn decodes_empty_strings_and_binary_values() {
        assert_decodes(
            Limits::default(),
            b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$6\r\n\r\n\0\xff*$\r\n",
            &[&[b"SET", b"", b"\r\n\0\xff*$"]],
        );
    }

    #[test]
    fn empty_requests_are_skipped() {
        assert_decodes(
            Limits::default(),
            b"*0\r\n*-1\r\n*-7\r\n\r\n\n   \r\n*1\r\n$4\r\nPING\r\n",
            &[&[b"PING"]],
        );
    }

    #[test]
    fn inline_commands_follow_sdssplitargs() {
        assert_decodes(
            Limits::default(),
            b"SET k \"a b\\x41\\n\"\r\nSET 'it\\'s' \"\"\nGET k\r\n",
            &[
                &[b"SET", b"k", b"a bA\n"],
                &[b"SET", b"it's", b""],
                &[b"GET", b"k"],
            ],
        );
    }

    #[test]
    fn invalid_multibulk_lengths() {
        for input in [
            &b"*abc\r\n"[..],
            b"*\r\n",
            b"*5\r\n",
            b"*+1\r\n",
            b"*01\r\n",
            b"*1 \r\n",
            b"*1\rX",
        ] {
            assert_fails(small(), input, INVALID_MBULK);
        }
        // The default limit is enforced exactly.
        assert_fails(Limits::default(), b"*1048577\r\n", INVALID_MBULK);
        assert_eq!(decode_whole(Limits::default(), b"*1048576\r\n").0.len(), 0);
    }

    #[test]
    fn too_big_mbulk_count_string() {
        let mut input = b"*".to_vec();
        // The line limit counts the `*` too: 64 KiB in total is still fine.
        input.extend(std::iter::repeat_n(b'1', 64 * 1024 - 1));
        assert!(decode_whole(Limits::default(), &input).1.is_ok());
        input.push(b'1');
        assert_fails(
            Limits::default(),
            &input,
            "ERR Protocol error: too big mbulk count string",
        );
    }

    #[test]
    fn expected_dollar() {
        assert_fails(
            small(),
            b"*1\r\nX3\r\n",
            "ERR Protocol error: expected '$', got 'X'",
        );
        assert_fails(
            small(),
            b"*1\r\n:1\r\n",
            "ERR Protocol error: expected '$', got ':'",
        );
        assert_fails(
            small(),
            b"*1\r\n\r\n",
            "ERR Protocol error: expected '$', got ' '",
        );
    }

    #[test]
    fn invalid_bulk_lengths() {
        for input in [
            &b"*1\r\n$abc\r\n"[..],
            b"*1\r\n$\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$17\r\n",
            b"*1\r\n$3\rX",
        ] {
            assert_fails(small(), input, INVALID_BULK);
        }
        assert_fails(Limits::default(), b"*1\r\n$67108865\r\n", INVALID_BULK);
    }

    #[test]
    fn huge_bulk_length_fails_before_any_payload() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$999999999999\r\n"[..]);
        let capacity = buf.capacity();
        let err = dec.decode(&mut buf).unwrap_err();
        assert_eq!(err.reply_text(), INVALID_BULK);
        assert!(buf.capacity() <= capacity);
    }

    #[test]
    fn too_big_bulk_count_string() {
        let mut input = b"*1\r\n$".to_vec();
        input.extend(std::iter::repeat_n(b'1', 32));
        assert_fails(
            small(),
            &input,
            "ERR Protocol error: too big bulk count string",
        );
    }

    #[test]
    fn bulk_payload_must_end_with_crlf() {
        let text = "ERR Protocol error: bulk string not terminated by CRLF";
        assert_fails(small(), b"*1\r\n$3\r\nabcX", text);
        assert_fails(small(), b"*1\r\n$3\r\nabc\rX", text);
        assert_fails(small(), b"*1\r\n$3\r\nabc\n\r", text);
    }

    #[test]
    fn too_big_inline_request() {
        let line = vec![b'a'; 32];
        let mut input = line.clone();
        input.push(b'\n');
        assert_decodes(small(), &input, &[&[&line]]);
        let mut input = vec![b'a'; 33];
        assert_fails(
            small(),
            &input,
            "ERR Protocol error: too big inline request",
        );
        input.push(b'\n');
        assert_fails(
            small(),
            &input,
            "ERR Protocol error: too big inline request",
        );
        assert_fails(
            Limits::default(),
            &[b'x'; 64 * 1024 + 1],
            "ERR Protocol error: too big inline request",
        );
    }

    #[test]
    fn unbalanced_quotes() {
        let text = "ERR Protocol error: unbalanced quotes in request";
        assert_fails(small(), b"SET \"abc\r\n", text);
        assert_fails(small(), b"SET 'abc\r\n", text);
        assert_fails(small(), b"SET \"a\"b\r\n", text);
    }

    #[test]
    fn errors_repeat_and_leave_the_buffer_alone() {
        let mut dec = RequestDecoder::new(small());
        let mut buf = BytesMut::from(&b"*2\r\n$1\r\na\r\nX\r\n"[..]);
        let first = dec.decode(&mut buf).unwrap_err().reply_text();
        let second = dec.decode(&mut buf).unwrap_err().reply_text();
        assert_eq!(first, second);
        assert_eq!(&buf[..], b"X\r\n");
    }

    #[test]
    fn huge_counts_preallocate_little() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1000000\r\n"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        let pending = dec.pending.as_ref().unwrap();
        assert_eq!(pending.remaining, 1_000_000);
        assert!(pending.args.capacity() <= MAX_PREALLOCATED_ARGS);
    }

    #[test]
    fn partial_requests_are_not_reparsed() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$4\r\nc"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        // Everything but the incomplete payload has been consumed.
        assert_eq!(&buf[..], b"c");
        assert_eq!(dec.pending.as_ref().unwrap().bulk_len, Some(4));
        buf.extend_from_slice(b"ccc\r\n");
        let args = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(args, [&b"a"[..], b"b", b"cccc"]);
    }

    #[test]
    fn line_search_resumes_where_it_stopped() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*12"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.scanned, 3);
        buf.extend_from_slice(b"3\r");
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.scanned, 4);
        buf.extend_from_slice(b"\n");
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.scanned, 0);
        assert_eq!(dec.pending.as_ref().unwrap().remaining, 123);
    }

    #[test]
    fn arguments_are_split_off_without_copying() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]);
        let range = buf.as_ptr_range();
        let args = dec.decode(&mut buf).unwrap().unwrap();
        assert!(range.contains(&args[0].as_ptr()));
    }

    #[test]
    fn a_large_request_in_many_reads() {
        let n = 50_000;
        let args: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut wire = BytesMut::new();
        crate::encode_command(&refs, &mut wire);
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut result = None;
        for chunk in wire.chunks(7) {
            buf.extend_from_slice(chunk);
            if let Some(cmd) = dec.decode(&mut buf).unwrap() {
                result = Some(cmd);
            }
        }
        assert_eq!(result.unwrap(), refs);
        assert!(buf.is_empty());
    }
}
