//! Redis's glob matching (`stringmatchlen`) for SCAN MATCH, KEYS and Pub/Sub patterns.
//!
//! `*` any run, `?` one byte, `[abc]` / `[^abc]` / `[a-z]` classes, `\x`
//! escapes. Bytes, not characters, as in Redis.

/// Whether `key` matches `pattern`.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    matches(pattern, key)
}

/// Two-pointer matching that backtracks only to the most recent `*`, so any
/// pattern runs in O(pattern × key) time: a hostile `*a*a*a…b` cannot make
/// it exponential.
fn matches(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            star = Some((pi, si));
            continue;
        }
        if let Some(next) = single(p, pi, s[si]) {
            pi = next;
            si += 1;
            continue;
        }
        match star {
            Some((after_star, from)) => {
                pi = after_star;
                si = from + 1;
                star = Some((after_star, from + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches the single-byte token at `p[pi]` against `b`; returns the index
/// after the token when it matches.
fn single(p: &[u8], pi: usize, b: u8) -> Option<usize> {
    let c = *p.get(pi)?;
    match c {
        b'?' => Some(pi + 1),
        b'[' => {
            let (hit, rest) = class(&p[pi + 1..], b);
            hit.then(|| p.len() - rest.len())
        }
        b'\\' if pi + 1 < p.len() => (p[pi + 1] == b).then_some(pi + 2),
        _ => (c == b).then_some(pi + 1),
    }
}

/// Matches `b` against the class body after `[`; returns whether it matched
/// and the pattern after the closing `]` (or the end if unclosed, as Redis).
fn class(mut p: &[u8], b: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut hit = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', e, rest @ ..] => {
                hit |= *e == b;
                p = rest;
            }
            // As in Redis, `]` right after `-` ends a range, not the class.
            [lo, b'-', hi, rest @ ..] => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                hit |= (lo..=hi).contains(&b);
                p = rest;
            }
            [c, rest @ ..] => {
                hit |= *c == b;
                p = rest;
            }
        }
    }
    (hit != negate, p)
}

#[cfg(test)]
mod tests {
    use super::glob_match as g;

    #[test]
    fn redis_glob_cases() {
        assert!(g(b"*", b""));
        assert!(g(b"h?llo", b"hello"));
        assert!(!g(b"h?llo", b"hllo"));
        assert!(g(b"h*llo", b"heeeello"));
        assert!(g(b"h[ae]llo", b"hallo"));
        assert!(!g(b"h[ae]llo", b"hillo"));
        assert!(g(b"h[^e]llo", b"hallo"));
        assert!(!g(b"h[^e]llo", b"hello"));
        assert!(g(b"h[a-b]llo", b"hbllo"));
        assert!(g(b"h[b-a]llo", b"hallo"));
        // `[a-]` is the range `]`..`a`, and the class is left open.
        assert!(g(b"h[a-]", b"h^"));
        assert!(!g(b"h[a-]", b"h-"));
        assert!(g(b"h[a-]xy", b"hy"));
        assert!(g(b"h[-]llo", b"h-llo"));
        assert!(g(b"key\\*", b"key*"));
        assert!(!g(b"key\\*", b"keyx"));
        assert!(g(b"user:*:name", b"user:42:name"));
        assert!(!g(b"user:*:name", b"user:42:age"));
        assert!(g(b"a*b*c", b"aXXbYYc"));
        assert!(!g(b"abc", b"abcd"));
    }

    #[test]
    fn hostile_patterns_terminate() {
        let p = vec![b'*'; 5000];
        assert!(g(&p, b"anything"));
        let mut q = b"*a".repeat(30);
        q.push(b'b');
        assert!(!g(&q, &[b'a'; 40]));
    }
}
