//! What the hash, set, list and sorted set commands share: reading a value
//! of one type from a GET, HSCAN/SSCAN/ZSCAN's options and reply, the
//! random picks of HRANDFIELD, SRANDMEMBER and ZRANDMEMBER, and LMPOP's
//! and ZMPOP's arguments and reply.

use super::{int_arg, syntax_error, wrong_type};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};
use rand::RngExt;

/// A GET of only the `names` of a collection (hash fields, set or sorted
/// set members; none: only its count), as `evenkeel_types::project` cuts
/// it on the node: a point read of a big collection ships and decodes a
/// few entries, not the whole value.
pub(crate) fn get_entries(names: Vec<Bytes>) -> Kind {
    Kind::Get(pb::Get { meta_only: false, project: Some(pb::Projection { entries: names, ..Default::default() }), ..Default::default() })
}

/// A GET of a list's elements, or a sorted set's members by rank, at
/// positions `start..=stop` as LRANGE reads them (`rev`: from the end).
pub(crate) fn get_window(start: i64, stop: i64, rev: bool) -> Kind {
    Kind::Get(pb::Get { meta_only: false, project: Some(pb::Projection { window: Some(pb::Window { start, stop, rev }), ..Default::default() }), ..Default::default() })
}

/// A GET of the members of a sorted set a range by score and its LIMIT
/// select (`range` as the node reads it).
pub(crate) fn get_scores(range: pb::ZRange) -> Kind {
    Kind::Get(pb::Get { meta_only: false, project: Some(pb::Projection { scores: Some(range), ..Default::default() }), ..Default::default() })
}

/// A GET of the members of a sorted set a range (by score or lex, LIMIT
/// and REV included) selects, or with `count_only` of how many they are
/// (ZCOUNT, ZLEXCOUNT); a node from before `select` answers the whole.
pub(crate) fn get_selection(range: pb::ZRange, count_only: bool) -> Kind {
    Kind::Get(pb::Get { select: Some(pb::Selection { range: Some(range), count_only }), ..Default::default() })
}

/// Whether a GET's value is a part of its collection (see
/// [`get_entries`]); a node from before projections answers the whole.
pub(crate) fn is_part(value: Option<&pb::Value>) -> bool {
    value.is_some_and(|v| v.elements.is_some())
}

/// The collection's element count: the part's note of it, or the count
/// of the whole value decoded (`whole`).
pub(crate) fn elements(value: Option<&pb::Value>, whole: usize) -> i64 {
    value.and_then(|v| v.elements).map_or(whole as i64, |n| n as i64)
}

/// The value of type `ty` a GET found (None: no key), decoded by
/// `decode`, or the reply for a value of another type (WRONGTYPE) or one
/// that does not decode (logged: a node sent a corrupt value).
pub(crate) fn typed_value<T, E: std::fmt::Display>(value: Option<&pb::Value>, ty: pb::ValueType, decode: impl FnOnce(&Bytes) -> Result<T, E>) -> Result<Option<T>, Frame> {
    let Some(v) = value else { return Ok(None) };
    if v.value_type != ty as i32 {
        return Err(wrong_type());
    }
    decode(&v.value).map(Some).map_err(|e| {
        tracing::error!(error = %e, value_type = ?ty, "a node sent a value that does not decode");
        Frame::error(format!("ERR internal error: corrupt {} value", ty.as_str_name().to_ascii_lowercase()))
    })
}

/// HRANDFIELD's and SRANDMEMBER's count, as Redis reads it: any integer
/// but the most negative.
pub(crate) fn rand_count(raw: &[u8]) -> Result<i64, Frame> {
    match int_arg(raw)? {
        i64::MIN => Err(Frame::error(format!("ERR value is out of range, value must between {} and {}", -i64::MAX, i64::MAX))),
        count => Ok(count),
    }
}

/// HRANDFIELD's and ZRANDMEMBER's count and its `with` word (WITHVALUES,
/// WITHSCORES), checked before the key as in Redis: no count, or a count
/// and whether the word follows it (a count past +-i64::MAX/2 is out of
/// range with it, as each pick doubles the reply).
pub(crate) fn rand_args(a: &[Bytes], with: &[u8]) -> Result<(Option<i64>, bool), Frame> {
    let Some(raw) = a.get(2) else { return Ok((None, false)) };
    let count = rand_count(raw)?;
    let paired = match a.get(3) {
        None => false,
        Some(w) if a.len() == 4 && w.eq_ignore_ascii_case(with) => true,
        Some(_) => return Err(syntax_error()),
    };
    if paired && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err(Frame::error("ERR value is out of range"));
    }
    Ok((Some(count), paired))
}

/// Redis's COUNT when a SCAN gives none.
pub(crate) const SCAN_COUNT: u64 = 10;

/// HSCAN's, SSCAN's and ZSCAN's options: MATCH's pattern and COUNT; an
/// error among them answers only for a key that exists.
pub(crate) fn scan_options(args: &[Bytes]) -> Result<(Option<Bytes>, u64), Frame> {
    let (mut pattern, mut count) = (None, SCAN_COUNT);
    for pair in args.chunks(2) {
        let [option, value] = pair else { return Err(syntax_error()) };
        match String::from_utf8_lossy(option).to_ascii_uppercase().as_str() {
            "COUNT" => match int_arg(value)? {
                n if n < 1 => return Err(syntax_error()),
                n => count = n as u64,
            },
            "MATCH" => pattern = Some(value.clone()).filter(|p| &p[..] != b"*"),
            _ => return Err(syntax_error()),
        }
    }
    Ok((pattern, count))
}

/// HSCAN's, SSCAN's and ZSCAN's `key cursor [options]`: MATCH's pattern
/// (or the options' error, which answers only for a key that exists) and
/// the GET of the page ([`get_scan`]; of the whole value when the options
/// do not read).
pub(crate) fn scan_args(a: &[Bytes]) -> Result<(Result<Option<Bytes>, Frame>, Kind), Frame> {
    let cursor = super::keys::parse_cursor(&a[2]).ok_or_else(|| Frame::error("ERR invalid cursor"))?;
    let options = scan_options(&a[3..]);
    let get = match &options {
        Ok((_, count)) => get_scan(cursor, *count),
        Err(_) => Kind::Get(pb::Get::default()),
    };
    Ok((options.map(|(pattern, _)| pattern), get))
}

/// A GET of HSCAN's, SSCAN's or ZSCAN's page from `cursor`, cut on the
/// node (`evenkeel_types::project::scan`): a big collection pages as
/// Redis's hash table does; a small one comes whole with cursor 0.
pub(crate) fn get_scan(cursor: u64, count: u64) -> Kind {
    Kind::Get(pb::Get { scan: Some(pb::ScanPage { cursor, count }), ..Default::default() })
}

/// The cursor to answer a scan with: the node's next, or 0 for a whole
/// value (a node from before `Get.scan`) or no key.
pub(crate) fn next_cursor(value: Option<&pb::Value>) -> u64 {
    value.and_then(|v| v.cursor).unwrap_or(0)
}


/// Most picks a negative HRANDFIELD, SRANDMEMBER or ZRANDMEMBER count
/// may ask for (see [`evenkeel_types::project::RANDOM_REPEATS_MAX`]).
pub(crate) const RANDOM_REPEATS_MAX: u64 = evenkeel_types::project::RANDOM_REPEATS_MAX;

/// A GET of HRANDFIELD's, SRANDMEMBER's or ZRANDMEMBER's picks, drawn on
/// the node from a seed drawn here, so a pick from a big collection ships
/// the picks, not the value. None for a negative count past
/// [`RANDOM_REPEATS_MAX`] (the whole value is read, and the count refused
/// if the key holds anything, as before).
pub(crate) fn get_random(count: Option<i64>) -> Option<Kind> {
    if count.is_some_and(|c| c < 0 && c.unsigned_abs() > RANDOM_REPEATS_MAX) {
        return None;
    }
    let random = pb::Random { count, seed: rand::rng().random() };
    Some(Kind::Get(pb::Get { random: Some(random), ..Default::default() }))
}

/// HRANDFIELD and SRANDMEMBER by Redis 7's cases, over `entries` (fields
/// and values, or members twice): no count, one (null for none); a
/// negative count, that many picks that may repeat (at most
/// [`RANDOM_REPEATS_MAX`]); a count at least the size, all of them in
/// order; a smaller one, distinct picks in order.
pub(crate) fn random_entries(entries: &[(&Bytes, &Frame)], count: Option<i64>, with_values: bool) -> Frame {
    let mut rng = rand::rng();
    let Some(count) = count else {
        return if entries.is_empty() { Frame::Null } else { Frame::Bulk(entries[rng.random_range(0..entries.len())].0.clone()) };
    };
    if entries.is_empty() || count == 0 {
        return Frame::Array(Vec::new());
    }
    if count < 0 && count.unsigned_abs() > RANDOM_REPEATS_MAX {
        return Frame::error(format!("ERR count is too large: a negative count asks for at most {RANDOM_REPEATS_MAX} picks"));
    }
    let picked: Vec<(&Bytes, &Frame)> = if count < 0 {
        (0..count.unsigned_abs()).map(|_| entries[rng.random_range(0..entries.len())]).collect()
    } else if count as u64 >= entries.len() as u64 {
        entries.to_vec()
    } else {
        let mut chosen = rand::seq::index::sample(&mut rng, entries.len(), count as usize).into_vec();
        chosen.sort_unstable();
        chosen.into_iter().map(|i| entries[i]).collect()
    };
    picks_reply(picked, Some(count), with_values)
}

/// The reply to HRANDFIELD, SRANDMEMBER or ZRANDMEMBER from its picks as
/// listed (the node's, [`get_random`], or [`random_entries`]'): no count,
/// the one pick (null for none); else every pick, with its value (RESP3
/// pairs, as Redis 7.0 answers) for `with_values`.
pub(crate) fn picks_reply(picked: Vec<(&Bytes, &Frame)>, count: Option<i64>, with_values: bool) -> Frame {
    if count.is_none() {
        return picked.first().map_or(Frame::Null, |(f, _)| Frame::Bulk((*f).clone()));
    }
    if with_values {
        Frame::Pairs(picked.into_iter().map(|(f, v)| (Frame::Bulk(f.clone()), v.clone())).collect())
    } else {
        Frame::Array(picked.into_iter().map(|(f, _)| Frame::Bulk(f.clone())).collect())
    }
}

/// LMPOP's and ZMPOP's arguments (and their blocking forms'): the keys,
/// which end they pop from (true: the first word, LEFT or MIN) and how
/// many.
pub(crate) struct MPopArgs<'a> {
    pub keys: &'a [Bytes],
    pub first_end: bool,
    pub count: u64,
}

/// A number argument in 1..=i64::MAX, or `message`.
fn positive(raw: &[u8], message: &str) -> Result<u64, Frame> {
    int_arg(raw).ok().filter(|n| *n >= 1).map(|n| n as u64).ok_or_else(|| Frame::error(format!("ERR {message}")))
}

/// `numkeys key [key ...] FIRST|SECOND [COUNT count]` from `a[at]`, read
/// as Redis 7.0 reads LMPOP and ZMPOP (`first`, `second`: LEFT/RIGHT or
/// MIN/MAX), keys in one hash slot.
pub(crate) fn mpop_args<'a>(a: &'a [Bytes], at: usize, first: &[u8], second: &[u8]) -> Result<MPopArgs<'a>, Frame> {
    let numkeys = positive(&a[at], "numkeys should be greater than 0")?;
    let end_at = numkeys.checked_add(at as u64 + 1).filter(|&w| w < a.len() as u64).ok_or_else(syntax_error)? as usize;
    let first_end = if a[end_at].eq_ignore_ascii_case(first) {
        true
    } else if a[end_at].eq_ignore_ascii_case(second) {
        false
    } else {
        return Err(syntax_error());
    };
    let mut count = None;
    let mut j = end_at + 1;
    while j < a.len() {
        match a.get(j + 1) {
            Some(value) if count.is_none() && a[j].eq_ignore_ascii_case(b"count") => {
                count = Some(positive(value, "count should be greater than 0")?);
                j += 2;
            }
            _ => return Err(syntax_error()),
        }
    }
    let keys = &a[at + 1..end_at];
    super::keys::one_slot(keys.iter())?;
    Ok(MPopArgs { keys, first_end, count: count.unwrap_or(1) })
}

/// LMPOP's and ZMPOP's reply from the node's Members (the key, then what
/// was popped): `[key, [element, ...]]`, or with `pairs` (a sorted set's
/// member and score) `[key, [[member, score], ...]]`.
pub(crate) fn mpopped(members: Vec<Bytes>, pairs: bool) -> Frame {
    let mut items = members.into_iter();
    let Some(key) = items.next() else { return Frame::NullArray };
    let rest: Vec<Bytes> = items.collect();
    let popped = if pairs {
        super::zsets::mpopped_pairs(rest)
    } else {
        rest.into_iter().map(Frame::Bulk).collect()
    };
    Frame::Array(vec![Frame::Bulk(key), Frame::Array(popped)])
}

/// What a node answers a random GET with when it drew `positions` from
/// `whole` (tests of the answers).
#[cfg(test)]
pub(crate) fn picked_part(whole: &pb::Value, positions: &[usize]) -> pb::Value {
    let ty = evenkeel_rpc::value_type_from(whole.value_type).expect("a value type");
    let part = evenkeel_types::project::picks(ty, &whole.value, positions).unwrap().unwrap();
    pb::Value { len: part.value.len() as u64, value: part.value, elements: Some(part.elements), ..whole.clone() }
}
