//! The error type shared by both decoders.

/// A violation of the RESP2 protocol, or an I/O failure underneath a codec.
///
/// Every protocol variant is fatal for the connection: the server replies with
/// [`ProtocolError::reply_text`] as an error frame and then closes, exactly as
/// Redis does in `setProtocolError`.
#[derive(thiserror::Error, Debug)]
pub enum ProtocolError {
    /// The `*<n>` count of a multibulk request is not a number, or exceeds
    /// [`Limits::max_args`](crate::Limits::max_args).
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `*` count line grew past the line limit without a CR.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// An element of a multibulk request did not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    /// A `$<len>` length is not a number, is negative, or exceeds
    /// [`Limits::max_bulk_len`](crate::Limits::max_bulk_len).
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A `$` length line grew past the line limit without a CR.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// The payload of a bulk string was not followed by CRLF.
    ///
    /// Redis silently skips the two bytes after the payload; evenkeel is
    /// stricter because a missing terminator means the peer and the server
    /// disagree about where arguments end.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    UnterminatedBulk,
    /// An inline request grew past
    /// [`Limits::max_inline_len`](crate::Limits::max_inline_len) without a newline.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline request has an unterminated quote, or a closing quote that
    /// is not followed by whitespace.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A reply frame starts with a byte that is not a RESP type marker.
    #[error("Protocol error: invalid frame type '{}'", char::from(*.0))]
    InvalidFrameType(u8),
    /// A RESP3 null (`_`) or boolean (`#`) line, or a verbatim string's
    /// format, that is not well formed.
    #[error("Protocol error: malformed '{}' frame", char::from(*.0))]
    InvalidLine(u8),
    /// An integer reply is not a valid signed 64-bit decimal number.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A simple-string, error or integer reply line is longer than the line limit.
    #[error("Protocol error: too big reply line")]
    LineTooLong,
    /// A line was terminated by CR followed by something other than LF.
    #[error("Protocol error: expected LF after CR")]
    ExpectedLineFeed,
    /// Reply arrays are nested deeper than [`MAX_FRAME_DEPTH`](crate::MAX_FRAME_DEPTH).
    #[error("Protocol error: arrays nested too deeply")]
    NestingTooDeep,
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// The exact error text Redis would send for this failure, without the
    /// leading `-` and trailing CRLF (for example
    /// `ERR Protocol error: invalid bulk length`).
    ///
    /// CR and LF are replaced by spaces, as Redis does in
    /// `addReplyErrorFormat`, so that an offending byte echoed back in the
    /// message cannot break the reply framing.
    pub fn reply_text(&self) -> String {
        let text = format!("ERR {self}");
        text.replace(['\r', '\n'], " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_texts_match_redis() {
        let cases = [
            (
                ProtocolError::InvalidMultibulkLength,
                "ERR Protocol error: invalid multibulk length",
            ),
            (
                ProtocolError::TooBigMultibulkCount,
                "ERR Protocol error: too big mbulk count string",
            ),
            (
                ProtocolError::ExpectedBulk(b'X'),
                "ERR Protocol error: expected '$', got 'X'",
            ),
            (
                ProtocolError::InvalidBulkLength,
                "ERR Protocol error: invalid bulk length",
            ),
            (
                ProtocolError::TooBigBulkCount,
                "ERR Protocol error: too big bulk count string",
            ),
            (
                ProtocolError::TooBigInlineRequest,
                "ERR Protocol error: too big inline request",
            ),
            (
                ProtocolError::UnbalancedQuotes,
                "ERR Protocol error: unbalanced quotes in request",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.reply_text(), text);
        }
    }

    #[test]
    fn reply_text_never_contains_line_breaks() {
        assert_eq!(
            ProtocolError::ExpectedBulk(b'\r').reply_text(),
            "ERR Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            ProtocolError::ExpectedBulk(b'\n').reply_text(),
            "ERR Protocol error: expected '$', got ' '"
        );
    }

    #[test]
    fn io_errors_convert() {
        let err: ProtocolError = std::io::Error::other("boom").into();
        assert!(matches!(err, ProtocolError::Io(_)));
        assert_eq!(err.reply_text(), "ERR I/O error: boom");
    }
}
