//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest
//! common subsequence of two strings, computed here from a GET of each
//! (each key read atomically, as MGET reads; the pair only inside MULTI).
//!
//! Redis 7.0's algorithm, kept exactly, since IDX's ranges depend on it:
//! the dynamic-programming table of LCS lengths, then a walk back from the
//! end that collects the subsequence and the matching ranges (ranges are
//! emitted as the walk leaves them, last first). Redis looks the keys up
//! before it reads the options, so an option error answers only when both
//! keys hold strings (or nothing).
//!
//! The table takes (len1 + 1) x (len2 + 1) cells; Redis allocates any
//! size (a 4-byte cell each) and blocks while it fills it. Here the reply
//! is computed on the router's async workers, so a table past
//! [`MAX_CELLS`] is refused.

use super::plan::{Planned, Shape};
use super::{int_arg, syntax_error};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};

/// The largest table LCS fills: 16 Mi cells (64 MiB), two strings of
/// 4 KiB each.
pub const MAX_CELLS: u64 = 16 * 1024 * 1024;

/// LCS's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LcsArgs {
    len: bool,
    idx: bool,
    min_match_len: u64,
    with_match_len: bool,
}

fn options(args: &[Bytes]) -> Result<LcsArgs, Frame> {
    let mut o = LcsArgs::default();
    let mut j = 0;
    while j < args.len() {
        match args[j].to_ascii_lowercase().as_slice() {
            b"idx" => o.idx = true,
            b"len" => o.len = true,
            b"withmatchlen" => o.with_match_len = true,
            b"minmatchlen" if j + 1 < args.len() => {
                // Any integer; a negative one counts as 0.
                o.min_match_len = int_arg(&args[j + 1])?.max(0) as u64;
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    if o.idx && o.len {
        return Err(Frame::error("ERR If you want both the length and indexes, please just use IDX."));
    }
    Ok(o)
}

pub fn lcs(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::per_key(&a[1..3], Kind::Get(pb::Get::default()), Shape::Lcs(Box::new(options(&a[3..])))))
}

/// LCS's reply from the two keys' GETs.
pub(crate) fn reply(args: &Result<LcsArgs, Frame>, results: Vec<R>) -> Frame {
    let mut strings = Vec::with_capacity(2);
    for r in results {
        match r {
            R::Nil(_) => strings.push(Bytes::new()),
            R::Value(v) if v.value_type == pb::ValueType::String as i32 => strings.push(v.value),
            R::Value(_) => return Frame::error("ERR The specified keys must contain string values"),
            other => return super::unexpected(&other),
        }
    }
    let args = match args {
        Ok(args) => *args,
        Err(e) => return e.clone(),
    };
    let (a, b) = (&strings[0][..], &strings[1][..]);
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells > MAX_CELLS {
        return Frame::error(format!("ERR LCS of strings of {} and {} bytes needs {cells} table cells; at most {MAX_CELLS} are allowed", a.len(), b.len()));
    }
    answer(a, b, args)
}

fn answer(a: &[u8], b: &[u8], args: LcsArgs) -> Frame {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] { table[(i - 1) * width + j - 1] + 1 } else { table[(i - 1) * width + j].max(table[i * width + j - 1]) };
        }
    }
    let lcs = |i: usize, j: usize| table[i * width + j];
    let total = lcs(a.len(), b.len());
    if args.len {
        return Frame::Integer(total as i64);
    }
    let mut result = vec![0u8; total as usize];
    let mut ranges = Vec::new();
    // `start == None`: no range open (Redis's `arange_start == alen`).
    let (mut start, mut a_end, mut b_start, mut b_end): (Option<usize>, usize, usize, usize) = (None, 0, 0, 0);
    let (mut i, mut j, mut at) = (a.len(), b.len(), total as usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[at - 1] = a[i - 1];
            match start {
                None => (start, a_end, b_start, b_end) = (Some(i - 1), i - 1, j - 1, j - 1),
                // Contiguous with the open range: extend it backward.
                Some(s) if s == i && b_start == j => (start, b_start) = (Some(s - 1), b_start - 1),
                Some(_) => emit = true,
            }
            if start == Some(0) || b_start == 0 {
                emit = true;
            }
            at -= 1;
            i -= 1;
            j -= 1;
        } else {
            if lcs(i - 1, j) > lcs(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = start.is_some();
        }
        if emit && let Some(s) = start {
            let match_len = a_end - s + 1;
            if args.min_match_len == 0 || match_len as u64 >= args.min_match_len {
                let pair = |x: usize, y: usize| Frame::Array(vec![Frame::Integer(x as i64), Frame::Integer(y as i64)]);
                let mut range = vec![pair(s, a_end), pair(b_start, b_end)];
                if args.with_match_len {
                    range.push(Frame::Integer(match_len as i64));
                }
                ranges.push(Frame::Array(range));
            }
            start = None;
        }
    }
    if args.idx {
        return Frame::Map(vec![(Frame::bulk("matches"), Frame::Array(ranges)), (Frame::bulk("len"), Frame::Integer(total as i64))]);
    }
    Frame::Bulk(Bytes::from(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: &str, b: &str, args: LcsArgs) -> Frame {
        answer(a.as_bytes(), b.as_bytes(), args)
    }

    fn pair(x: i64, y: i64) -> Frame {
        Frame::Array(vec![Frame::Integer(x), Frame::Integer(y)])
    }

    #[test]
    fn answers_as_redis_7_0_does() {
        assert_eq!(run("ohmytext", "mynewtext", LcsArgs::default()), Frame::bulk("mytext"));
        assert_eq!(run("ohmytext", "mynewtext", LcsArgs { len: true, ..Default::default() }), Frame::Integer(6));
        let idx = run("ohmytext", "mynewtext", LcsArgs { idx: true, ..Default::default() });
        let matches = Frame::Array(vec![Frame::Array(vec![pair(4, 7), pair(5, 8)]), Frame::Array(vec![pair(2, 3), pair(0, 1)])]);
        assert_eq!(idx, Frame::Map(vec![(Frame::bulk("matches"), matches), (Frame::bulk("len"), Frame::Integer(6))]));
        let long = run("ohmytext", "mynewtext", LcsArgs { idx: true, min_match_len: 4, with_match_len: true, ..Default::default() });
        let matches = Frame::Array(vec![Frame::Array(vec![pair(4, 7), pair(5, 8), Frame::Integer(4)])]);
        assert_eq!(long, Frame::Map(vec![(Frame::bulk("matches"), matches), (Frame::bulk("len"), Frame::Integer(6))]));
        assert_eq!(run("", "abc", LcsArgs::default()), Frame::bulk(""));
    }

    #[test]
    fn options_and_types_answer_in_redis_order() {
        let args = |s: &[&str]| s.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect::<Vec<_>>();
        assert_eq!(options(&args(&["IDX", "LEN"])), Err(Frame::error("ERR If you want both the length and indexes, please just use IDX.")));
        assert_eq!(options(&args(&["MINMATCHLEN"])), Err(syntax_error()));
        assert_eq!(options(&args(&["minmatchlen", "-3"])).unwrap().min_match_len, 0);
        let list = R::Value(pb::Value { value_type: pb::ValueType::List as i32, ..Default::default() });
        assert_eq!(reply(&Err(syntax_error()), vec![R::Nil(pb::Nil {}), list]), Frame::error("ERR The specified keys must contain string values"));
        let big = R::Value(pb::Value { value: Bytes::from(vec![b'x'; 5000]), ..Default::default() });
        assert!(matches!(reply(&Ok(LcsArgs::default()), vec![big.clone(), big]), Frame::Error(e) if e.contains("table cells")));
    }
}
