//! Low-level helpers shared by the decoders and encoders: bounded line
//! searches and Redis-compatible decimal parsing and formatting.

use bytes::{BufMut, BytesMut};

/// Outcome of looking for a line terminator at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Search {
    /// The terminator sits at this index (relative to the searched slice).
    Found(usize),
    /// No terminator yet; this many leading bytes are known not to hold one,
    /// so the next search can resume there instead of starting over.
    Incomplete(usize),
    /// The line already exceeds the limit without a terminator.
    TooLong,
}

/// Looks for `delim` within the first `max + 1` bytes of `line`, skipping the
/// first `from` bytes that an earlier call already searched.
///
/// Bounding the window makes the outcome independent of how the bytes were
/// split across reads: a line of at most `max` bytes is always accepted, and
/// a longer one is always rejected once `max + 1` bytes have arrived.
pub(crate) fn search(line: &[u8], from: usize, delim: u8, max: usize) -> Search {
    let end = line.len().min(max.saturating_add(1));
    let start = from.min(end);
    match line[start..end].iter().position(|&b| b == delim) {
        Some(i) => Search::Found(start + i),
        None if line.len() > max => Search::TooLong,
        None => Search::Incomplete(end),
    }
}

/// Like [`search`] for `\r`, but also waits until the byte after the CR has
/// arrived, because callers need it to check for the LF.
pub(crate) fn search_cr(line: &[u8], from: usize, max: usize) -> Search {
    match search(line, from, b'\r', max) {
        Search::Found(cr) if cr + 1 >= line.len() => Search::Incomplete(cr),
        other => other,
    }
}

/// Parses a decimal integer with the exact rules of Redis's `string2ll`: an
/// optional `-`, no `+`, no leading zeros (so `-0` is rejected), no spaces,
/// and no overflow.
pub(crate) fn parse_ll(s: &[u8]) -> Option<i64> {
    // Redis rejects anything of LONG_STR_SIZE (21) bytes or more outright.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// Appends the decimal form of `n` without allocating.
pub(crate) fn put_int(dst: &mut BytesMut, n: i64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        pos -= 1;
        // `v % 10` is below 10, so the narrowing cannot lose information.
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        dst.put_u8(b'-');
    }
    dst.extend_from_slice(&buf[pos..]);
}

/// Appends `n` as a decimal number (used for lengths).
pub(crate) fn put_len(dst: &mut BytesMut, n: usize) {
    match i64::try_from(n) {
        Ok(n) => put_int(dst, n),
        // No buffer can be this large; fall back to the slow path anyway.
        Err(_) => dst.extend_from_slice(n.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ll_follows_string2ll() {
        assert_eq!(parse_ll(b"0"), Some(0));
        assert_eq!(parse_ll(b"12"), Some(12));
        assert_eq!(parse_ll(b"-12"), Some(-12));
        assert_eq!(parse_ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"007",
            b"+5",
            b" 5",
            b"5 ",
            b"1x",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"000000000000000000001",
        ] {
            assert_eq!(parse_ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn put_int_formats_extremes() {
        for n in [0, 7, -7, 10, i64::MAX, i64::MIN] {
            let mut dst = BytesMut::new();
            put_int(&mut dst, n);
            assert_eq!(&dst[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn search_is_bounded() {
        assert_eq!(search(b"abc\r", 0, b'\r', 3), Search::Found(3));
        assert_eq!(search(b"abcd\r", 0, b'\r', 3), Search::TooLong);
        assert_eq!(search(b"abc", 0, b'\r', 3), Search::Incomplete(3));
        assert_eq!(search(b"abc\r", 3, b'\r', 3), Search::Found(3));
        assert_eq!(search_cr(b"ab\r", 0, 8), Search::Incomplete(2));
        assert_eq!(search_cr(b"ab\r\n", 2, 8), Search::Found(2));
    }
}
