//! SORT and SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern
//! ...] [ASC|DESC] [ALPHA] [STORE destination].
//!
//! The ordering is `evenkeel_types::sort`'s, Redis 7.0's. SORT_RO and
//! SORT without STORE GET the key and sort here; SORT ... STORE is one
//! node step over the key and the destination (one hash slot), which
//! sorts and stores as Redis does in one go. BY and GET patterns that
//! name other keys (those with a `*`) are refused: they would read keys
//! of any slot, which Redis Cluster refuses too unless they share the
//! key's. `BY` a constant keeps the stored order; `GET #` is the element,
//! `GET` a constant a null (Redis never reads a key without `*`).

use super::int_arg;
use super::plan::{Planned, Shape};
use super::syntax_error;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::sort::{SortSpec, sort};

/// A SORT read: its ordering and its GETs (true: `#`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortRead {
    spec: SortSpec,
    gets: Vec<bool>,
}

fn patterns_refused() -> Frame {
    Frame::error("ERR SORT's BY and GET patterns with '*' read other keys, which evenkeel does not support")
}

pub fn sort_command(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let (mut spec, mut gets, mut store) = (SortSpec::default(), Vec::new(), None);
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        match a[j].to_ascii_lowercase().as_slice() {
            b"asc" => spec.desc = false,
            b"desc" => spec.desc = true,
            b"alpha" => spec.alpha = true,
            b"limit" if left >= 2 => {
                spec.limit = Some((int_arg(&a[j + 1])?, int_arg(&a[j + 2])?));
                j += 2;
            }
            b"store" if name == "sort" && left >= 1 => {
                store = Some(a[j + 1].clone());
                j += 1;
            }
            b"by" if left >= 1 => {
                if a[j + 1].contains(&b'*') {
                    return Err(patterns_refused());
                }
                spec.dont_sort = true;
                j += 1;
            }
            b"get" if left >= 1 => {
                if a[j + 1].contains(&b'*') {
                    return Err(patterns_refused());
                }
                gets.push(&a[j + 1][..] == b"#");
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    let Some(target) = store else {
        return Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::Sort(Box::new(SortRead { spec, gets }))));
    };
    super::keys::one_slot([&target, &a[1]].into_iter())?;
    let op = pb::SortStore {
        source: a[1].clone(),
        desc: spec.desc,
        alpha: spec.alpha,
        dont_sort: spec.dont_sort,
        offset: spec.limit.map(|l| l.0),
        count: spec.limit.map_or(0, |l| l.1),
        gets,
    };
    Ok(Planned::one(&target, Kind::SortStore(op), Shape::Integer))
}

/// The elements of a list, set or sorted set a GET found, in their stored
/// order.
fn elements(v: &pb::Value) -> Result<Vec<Bytes>, Frame> {
    use evenkeel_types::ValueType;
    let ty = evenkeel_rpc::value_type_from(v.value_type).filter(|t| matches!(t, ValueType::List | ValueType::Set | ValueType::ZSet));
    match ty.and_then(|ty| evenkeel_types::sort::elements(ty, &v.value)) {
        None => Err(super::wrong_type()),
        Some(Ok(found)) => Ok(found),
        Some(Err(e)) => Err(super::corrupt_value(e)),
    }
}

/// SORT's reply from the key's GET.
pub(crate) fn answer(read: &SortRead, r: R) -> Frame {
    let found = match r {
        R::Value(v) => match elements(&v) {
            Ok(found) => found,
            Err(e) => return e,
        },
        R::Nil(_) => Vec::new(),
        other => return super::unexpected(&other),
    };
    let sorted = match sort(found, read.spec) {
        Ok(sorted) => sorted,
        Err(_) => return Frame::error("ERR One or more scores can't be converted into double"),
    };
    if read.gets.is_empty() {
        return Frame::Array(sorted.into_iter().map(Frame::Bulk).collect());
    }
    Frame::Array(sorted.iter().flat_map(|e| read.gets.iter().map(move |&hash| if hash { Frame::Bulk(e.clone()) } else { Frame::Null })).collect())
}
