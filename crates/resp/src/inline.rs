//! Splitting of inline commands (`SET k "v 1"\r\n`), a port of Redis's
//! `sdssplitargs`.

use bytes::Bytes;

/// Whitespace as C's `isspace` sees it in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Splits an inline request line into arguments.
///
/// Returns `None` when quotes are unbalanced or a closing quote is glued to
/// the next character. `sdssplitargs` works on a C string, so a NUL byte ends
/// the line; this port treats it the same way to keep the rules identical.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let (arg, next) = split_one(line, p)?;
        args.push(Bytes::from(arg));
        p = next;
    }
}

/// Quoting mode of the token being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Reads one token starting at `p`; returns it with the index just past it.
///
/// The structure mirrors the C loop: every step looks at the byte at `p`
/// (0 past the end, standing in for the C terminator) and then advances.
fn split_one(line: &[u8], mut p: usize) -> Option<(Vec<u8>, usize)> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut cur = Vec::new();
    let mut quote = Quote::None;
    loop {
        let c = at(p);
        match quote {
            Quote::Double => {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3)))
                {
                    cur.push(hi * 16 + lo);
                    p += 4;
                    continue;
                }
                if c == b'\\' && at(p + 1) != 0 {
                    cur.push(unescape(at(p + 1)));
                    p += 2;
                    continue;
                }
                if c == b'"' {
                    return closing_quote(line, p, cur);
                }
                if c == 0 {
                    return None;
                }
                cur.push(c);
            }
            Quote::Single => {
                if c == b'\\' && at(p + 1) == b'\'' {
                    cur.push(b'\'');
                    p += 2;
                    continue;
                }
                if c == b'\'' {
                    return closing_quote(line, p, cur);
                }
                if c == 0 {
                    return None;
                }
                cur.push(c);
            }
            Quote::None => match c {
                0 => return Some((cur, p)),
                b' ' | b'\n' | b'\r' | b'\t' => return Some((cur, p + 1)),
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                other => cur.push(other),
            },
        }
        p += 1;
    }
}

/// A closing quote must be followed by whitespace or the end of the line.
fn closing_quote(line: &[u8], p: usize, cur: Vec<u8>) -> Option<(Vec<u8>, usize)> {
    match line.get(p + 1) {
        Some(&next) if !is_space(next) => None,
        _ => Some((cur, p + 1)),
    }
}

fn unescape(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        split_args(line).map(|v| v.into_iter().map(|b| b.to_vec()).collect())
    }

    fn ok(parts: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
        Some(parts.iter().map(|p| p.to_vec()).collect())
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(split(b"SET k v"), ok(&[b"SET", b"k", b"v"]));
        assert_eq!(split(b"  PING \t "), ok(&[b"PING"]));
        assert_eq!(split(b""), ok(&[]));
        assert_eq!(split(b" \x0b\x0c "), ok(&[]));
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(split(br#"SET "a b" "c""#), ok(&[b"SET", b"a b", b"c"]));
        assert_eq!(
            split(br#""\n\r\t\b\a\\\"\q""#),
            ok(&[b"\n\r\t\x08\x07\\\"q"])
        );
        assert_eq!(split(br#""\x41\x7a\xff""#), ok(&[b"Az\xff"]));
        // An invalid hex escape falls back to the generic escape rule.
        assert_eq!(split(br#""\xZZ""#), ok(&[b"xZZ"]));
        assert_eq!(split(br#""""#), ok(&[b""]));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(split(br"'a b' 'it\'s'"), ok(&[b"a b", b"it's"]));
        // Only \' is an escape inside single quotes.
        assert_eq!(split(br"'a\nb'"), ok(&[b"a\\nb"]));
    }

    #[test]
    fn quotes_inside_a_token_start_quoting() {
        assert_eq!(split(br#"foo"bar baz""#), ok(&[b"foobar baz"]));
    }

    #[test]
    fn unbalanced_quotes_are_rejected() {
        assert_eq!(split(br#"SET "abc"#), None);
        assert_eq!(split(br"SET 'abc"), None);
        assert_eq!(split(br#""abc"def"#), None);
        assert_eq!(split(br"'abc'def"), None);
        assert_eq!(split(br#""abc\"#), None);
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(split(b"GET a\0b c"), ok(&[b"GET", b"a"]));
        assert_eq!(split(b"GET \"a\0\""), None);
    }
}
