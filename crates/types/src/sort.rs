//! SORT's ordering of a list's, set's or sorted set's elements, as Redis
//! 7.0's `sortCommandGeneric` orders them: by each element read as a
//! double (`strtod`: leading space taken, an empty element is 0; one that
//! does not read, overflows or is NaN is an error), or with ALPHA by its
//! bytes; ties by bytes; DESC reverses; with `BY <constant>` not sorted at
//! all (the elements as stored, reversed for DESC). LIMIT then takes its
//! window. Shared by the router (SORT, SORT_RO) and the node (SORT ...
//! STORE, a step that reads and writes in one go).

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SortSpec {
    pub desc: bool,
    pub alpha: bool,
    /// `BY` a pattern without `*`: keep the stored order.
    pub dont_sort: bool,
    /// LIMIT offset count, if given.
    pub limit: Option<(i64, i64)>,
}

/// An element that does not read as a double (Redis: "One or more scores
/// can't be converted into double").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDouble;

fn score(element: &[u8]) -> Result<f64, NotDouble> {
    let text = std::str::from_utf8(element).map_err(|_| NotDouble)?;
    let number = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if text.is_empty() {
        return Ok(0.0);
    }
    // strtod reading nothing leaves its end at the start: not at the end
    // of a non-empty element, so an error.
    match crate::float::parse_double(number.as_bytes()) {
        Some(v) if !number.is_empty() => Ok(v),
        _ => Err(NotDouble),
    }
}

/// `elements` (in their stored order) sorted and windowed by `spec`.
/// The elements SORT reads from a value of type `ty` (its encoding
/// `raw`): a list's in order, a set's or a sorted set's members in their
/// listing order. None for a type SORT refuses (WRONGTYPE).
pub fn elements(ty: crate::ValueType, raw: &Bytes) -> Option<Result<Vec<Bytes>, crate::record::CorruptRecord>> {
    use crate::ValueType;
    Some(match ty {
        ValueType::List => crate::list::List::decode(raw).map(|l| l.0.into()),
        ValueType::Set => crate::set::Set::decode(raw).map(|s| s.members().cloned().collect()),
        ValueType::ZSet => crate::zset::ZSet::decode(raw).map(|z| z.iter().map(|(m, _)| m.clone()).collect()),
        _ => return None,
    })
}

pub fn sort(mut elements: Vec<Bytes>, spec: SortSpec) -> Result<Vec<Bytes>, NotDouble> {
    if spec.dont_sort {
        if spec.desc {
            elements.reverse();
        }
    } else if spec.alpha {
        elements.sort();
        if spec.desc {
            elements.reverse();
        }
    } else {
        let mut scored = elements.into_iter().map(|e| score(&e).map(|s| (s, e))).collect::<Result<Vec<_>, _>>()?;
        scored.sort_by(|(a, x), (b, y)| a.partial_cmp(b).expect("no NaN").then_with(|| x.cmp(y)));
        if spec.desc {
            scored.reverse();
        }
        elements = scored.into_iter().map(|(_, e)| e).collect();
    }
    let Some((offset, count)) = spec.limit else { return Ok(elements) };
    let len = elements.len() as i64;
    let mut start = offset.max(0);
    let mut end = if count < 0 { len - 1 } else { start.saturating_add(count) - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);
    if start > end || len == 0 {
        return Ok(Vec::new());
    }
    Ok(elements.drain(start as usize..=end as usize).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &[&str]) -> Vec<Bytes> {
        s.iter().map(|e| Bytes::copy_from_slice(e.as_bytes())).collect()
    }

    #[test]
    fn sorts_as_redis_7_0_does() {
        let l = || items(&["3", "1", "2", "10", "1.5", "-1"]);
        let sorted = |spec| sort(l(), spec).unwrap();
        assert_eq!(sorted(SortSpec::default()), items(&["-1", "1", "1.5", "2", "3", "10"]));
        assert_eq!(sorted(SortSpec { desc: true, limit: Some((1, 2)), ..Default::default() }), items(&["3", "2"]));
        assert_eq!(sorted(SortSpec { alpha: true, ..Default::default() }), items(&["-1", "1", "1.5", "10", "2", "3"]));
        assert_eq!(sorted(SortSpec { limit: Some((-1, 2)), ..Default::default() }), items(&["-1", "1"]));
        assert!(sorted(SortSpec { limit: Some((10, 2)), ..Default::default() }).is_empty());
        assert_eq!(sorted(SortSpec { limit: Some((0, -1)), ..Default::default() }).len(), 6);
        assert_eq!(sorted(SortSpec { dont_sort: true, desc: true, ..Default::default() }), items(&["-1", "1.5", "10", "2", "1", "3"]));
        assert_eq!(sort(items(&["a", "1"]), SortSpec::default()), Err(NotDouble));
        assert_eq!(sort(items(&["2", " 2", ""]), SortSpec::default()).unwrap(), items(&["", " 2", "2"]), "empty is 0; ties by bytes");
        assert_eq!(sort(items(&["1e400"]), SortSpec::default()), Err(NotDouble));
        assert_eq!(sort(items(&[" "]), SortSpec::default()), Err(NotDouble));
        assert!(sort(Vec::new(), SortSpec { limit: Some((0, 5)), ..Default::default() }).unwrap().is_empty());
    }
}
