//! Keys and arguments shown to people: Redis's `sdscatrepr` quoting, as
//! MONITOR and redis-cli print them.

/// `arg` in double quotes, with `\"`, `\\`, `\n`, `\r`, `\t`, `\a`, `\b`
/// escaped and other unprintable bytes as `\xhh`.
pub fn quote(arg: &[u8]) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for &b in arg {
        match b {
            b'\\' | b'"' => {
                out.push('\\');
                out.push(b as char);
            }
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_redis_does() {
        assert_eq!(quote(b"k \"q\"\\"), r#""k \"q\"\\""#);
        assert_eq!(quote(b"\n\r\t\x07\x08\x00\xff"), r#""\n\r\t\a\b\x00\xff""#);
        assert_eq!(quote(b""), r#""""#);
    }
}
