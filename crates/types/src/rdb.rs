//! DUMP's and RESTORE's payload: one value in Redis's RDB serialization,
//! so values move between evenkeel and Redis (and the tools built on
//! DUMP/RESTORE: redis-shake, RIOT, `redis-cli --cluster import`'s
//! MIGRATE) in both directions.
//!
//! A payload is `type:u8 | object | rdb_version:u16 | crc64:u64`, both
//! trailing numbers little-endian, the CRC (Redis's CRC-64/Jones) over
//! everything before it. [`dump`] writes RDB version 10 (Redis 7.0's) in
//! the encodings Redis 7.0 itself would pick for the value (a listpack for
//! a small hash or sorted set, an intset for a small set of integers,
//! listpack quicklist nodes for a list, listpack nodes for a stream, LZF
//! for strings over 20 bytes that shrink), so Redis 7.0 and later restore
//! it. [`restore`] reads payloads of RDB versions up to 11 (Redis 7.2)
//! in every encoding those versions write for strings, lists, sets,
//! sorted sets, hashes and streams, including the older ziplist,
//! zipmap-free forms Redis 7.0 still reads (ziplists, quicklist v1,
//! linked lists, the text-score sorted set). Module values, and the
//! zipmap hash of RDB versions before 4 (never seen in a DUMP payload:
//! DUMP came with 2.6, which wrote ziplists), answer "Bad data format",
//! as anything malformed does.
//!
//! Nothing in a payload is trusted for allocation: counts are checked
//! against the bytes left, and an LZF string may not claim to expand more
//! than LZF can.

pub mod file;
mod listpack;
mod stream;

use crate::hash::Hash;
use crate::int::parse_i64;
use crate::list::List;
use crate::record::{CorruptRecord, ValueType};
use crate::set::Set;
use crate::zset::ZSet;
use bytes::{BufMut, Bytes, BytesMut};

/// The RDB version [`dump`] writes (Redis 7.0's).
pub const DUMP_VERSION: u16 = 10;
/// The newest RDB version [`restore`] reads (Redis 7.2's).
pub const MAX_RESTORE_VERSION: u16 = 11;

const CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

// Object types (Redis's rdb.h).
const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET_2: u8 = 5;
const T_LIST_ZIPLIST: u8 = 10;
const T_SET_INTSET: u8 = 11;
const T_ZSET_ZIPLIST: u8 = 12;
const T_HASH_ZIPLIST: u8 = 13;
const T_LIST_QUICKLIST: u8 = 14;
const T_STREAM_LISTPACKS: u8 = 15;
const T_HASH_LISTPACK: u8 = 16;
const T_ZSET_LISTPACK: u8 = 17;
const T_LIST_QUICKLIST_2: u8 = 18;
const T_STREAM_LISTPACKS_2: u8 = 19;
const T_SET_LISTPACK: u8 = 20;
const T_STREAM_LISTPACKS_3: u8 = 21;

/// A list's quicklist node closes at 8 KiB (`list-max-listpack-size -2`).
const QUICKLIST_NODE_BYTES: usize = 8 * 1024;
/// The most bytes the strings [`restore`] reads may add up to, the
/// largest value a node stores (`proto-max-bulk-len`).
const MAX_STRING: usize = 512 * 1024 * 1024;

/// Why a payload was refused; the texts are Redis's replies.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, from a newer RDB version, or its CRC does not match.
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    /// The object does not decode; the detail is for logs.
    #[error("Bad data format")]
    BadFormat(&'static str),
}

/// The detail of an object that runs past the bytes given: in a file
/// read in pieces, a sign to read more.
const CUT_SHORT: &str = "payload cut short";

fn bad<T>(what: &'static str) -> Result<T, PayloadError> {
    Err(PayloadError::BadFormat(what))
}

/// The payload DUMP answers for a stored value of type `ty` (its record's
/// value bytes).
pub fn dump(ty: ValueType, value: &Bytes) -> Result<Bytes, CorruptRecord> {
    let mut out = BytesMut::with_capacity(value.len() + 32);
    match ty {
        ValueType::String => {
            out.put_u8(T_STRING);
            put_string(&mut out, value);
        }
        ValueType::Hash => {
            let hash = Hash::decode(value)?;
            if crate::encoding::hash_is_listpack(&hash) {
                out.put_u8(T_HASH_LISTPACK);
                let mut lp = listpack::Writer::default();
                for (f, v) in hash.iter() {
                    lp.string(f);
                    lp.string(v);
                }
                put_string(&mut out, &lp.finish());
            } else {
                out.put_u8(T_HASH);
                put_len(&mut out, hash.len() as u64);
                for (f, v) in hash.iter() {
                    put_string(&mut out, f);
                    put_string(&mut out, v);
                }
            }
        }
        ValueType::Set => {
            let set = Set::decode(value)?;
            match crate::encoding::set_as_intset(&set) {
                Some(mut ints) => {
                    ints.sort_unstable();
                    out.put_u8(T_SET_INTSET);
                    put_string(&mut out, &listpack::intset(&ints));
                }
                None => {
                    out.put_u8(T_SET);
                    put_len(&mut out, set.len() as u64);
                    for m in set.members() {
                        put_string(&mut out, m);
                    }
                }
            }
        }
        ValueType::List => {
            let list = List::decode(value)?;
            let mut nodes = Vec::new();
            let mut lp = listpack::Writer::default();
            for item in &list.0 {
                if lp.len() > 0 && lp.bytes() + item.len() + 11 > QUICKLIST_NODE_BYTES {
                    nodes.push(std::mem::take(&mut lp).finish());
                }
                lp.string(item);
            }
            if lp.len() > 0 {
                nodes.push(lp.finish());
            }
            out.put_u8(T_LIST_QUICKLIST_2);
            put_len(&mut out, nodes.len() as u64);
            for node in nodes {
                put_len(&mut out, 2); // a packed (listpack) node
                put_string(&mut out, &node);
            }
        }
        ValueType::ZSet => {
            let z = ZSet::decode(value)?;
            if crate::encoding::zset_is_listpack(&z) {
                out.put_u8(T_ZSET_LISTPACK);
                let mut lp = listpack::Writer::default();
                for (m, score) in z.iter() {
                    lp.string(m);
                    lp.string(score_text(score).as_bytes());
                }
                put_string(&mut out, &lp.finish());
            } else {
                // Redis writes its skiplist from the greatest member down.
                out.put_u8(T_ZSET_2);
                put_len(&mut out, z.len() as u64);
                for (m, score) in z.iter().rev() {
                    put_string(&mut out, m);
                    out.put_f64_le(score);
                }
            }
        }
        ValueType::Stream => {
            out.put_u8(T_STREAM_LISTPACKS_2);
            stream::dump(&mut out, &crate::stream::Stream::decode(value)?);
        }
    }
    out.put_u16_le(DUMP_VERSION);
    let crc = CRC.checksum(&out);
    out.put_u64_le(crc);
    Ok(out.freeze())
}

/// Reads a DUMP payload: the value's type and its record value bytes.
pub fn restore(payload: &[u8]) -> Result<(ValueType, Bytes), PayloadError> {
    if payload.len() < 10 {
        return Err(PayloadError::VersionOrChecksum);
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if version > MAX_RESTORE_VERSION || CRC.checksum(&payload[..payload.len() - 8]) != crc {
        return Err(PayloadError::VersionOrChecksum);
    }
    // Redis reads the object from the whole payload, footer included: a
    // malformed object may run into the footer, and bytes after it are
    // ignored (the CRC covers them all the same). So does this.
    let mut r = Reader { raw: payload, at: 0, budget: MAX_STRING };
    let ty = r.u8()?;
    object(ty, &mut r)
}

fn object(ty: u8, r: &mut Reader<'_>) -> Result<(ValueType, Bytes), PayloadError> {
    Ok(match ty {
        T_STRING => (ValueType::String, r.string()?),
        T_LIST => {
            let n = r.count(1)?;
            let mut list = List::default();
            for _ in 0..n {
                list.0.push_back(r.string()?);
            }
            list_value(list)?
        }
        T_LIST_ZIPLIST => list_value(List(listpack::ziplist(&r.string()?)?.into()))?,
        T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
            let n = r.count(2)?;
            let mut list = List::default();
            for _ in 0..n {
                let packed = ty == T_LIST_QUICKLIST || match r.len()? {
                    1 => false,
                    2 => true,
                    _ => return bad("unknown quicklist container"),
                };
                let blob = r.string()?;
                if !packed {
                    list.0.push_back(blob);
                    continue;
                }
                let items = if ty == T_LIST_QUICKLIST { listpack::ziplist(&blob)? } else { listpack::read(&blob)? };
                if items.is_empty() {
                    return bad("empty quicklist node");
                }
                list.0.extend(items);
            }
            list_value(list)?
        }
        T_SET => {
            let n = r.count(1)?;
            set_value((0..n).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?)?
        }
        T_SET_INTSET => set_value(listpack::read_intset(&r.string()?)?)?,
        T_SET_LISTPACK => set_value(listpack::read(&r.string()?)?)?,
        T_HASH => {
            let n = r.count(2)?;
            let mut items = Vec::with_capacity(n * 2);
            for _ in 0..n * 2 {
                items.push(r.string()?);
            }
            hash_value(items)?
        }
        T_HASH_ZIPLIST => hash_value(listpack::ziplist(&r.string()?)?)?,
        T_HASH_LISTPACK => hash_value(listpack::read(&r.string()?)?)?,
        T_ZSET | T_ZSET_2 => {
            let n = r.count(2)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let member = r.string()?;
                let score = if ty == T_ZSET_2 { f64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")) } else { r.text_double()? };
                pairs.push((member, score));
            }
            zset_value(pairs)?
        }
        T_ZSET_ZIPLIST | T_ZSET_LISTPACK => {
            let items = if ty == T_ZSET_ZIPLIST { listpack::ziplist(&r.string()?)? } else { listpack::read(&r.string()?)? };
            if !items.len().is_multiple_of(2) {
                return bad("sorted set listpack of odd length");
            }
            let mut pairs = Vec::with_capacity(items.len() / 2);
            for pair in items.chunks(2) {
                let score = crate::float::parse_double(&pair[1]).or_else(|| infinity(&pair[1])).ok_or(PayloadError::BadFormat("sorted set score not a number"))?;
                pairs.push((pair[0].clone(), score));
            }
            zset_value(pairs)?
        }
        T_STREAM_LISTPACKS | T_STREAM_LISTPACKS_2 | T_STREAM_LISTPACKS_3 => {
            let version = match ty {
                T_STREAM_LISTPACKS => 1,
                T_STREAM_LISTPACKS_2 => 2,
                _ => 3,
            };
            (ValueType::Stream, stream::restore(r, version)?.encode())
        }
        6 | 7 => return bad("module values are not supported"),
        9 => return bad("zipmap hashes (RDB version 3 and older) are not supported"),
        _ => return bad("unknown object type"),
    })
}

/// `inf` and `-inf` as a listpack score (strtod's spellings).
fn infinity(raw: &[u8]) -> Option<f64> {
    match raw.to_ascii_lowercase().as_slice() {
        b"inf" | b"+inf" | b"infinity" | b"+infinity" => Some(f64::INFINITY),
        b"-inf" | b"-infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn list_value(list: List) -> Result<(ValueType, Bytes), PayloadError> {
    if list.0.is_empty() {
        return bad("empty list");
    }
    Ok((ValueType::List, list.encode()))
}

fn set_value(members: Vec<Bytes>) -> Result<(ValueType, Bytes), PayloadError> {
    let n = members.len();
    let set: Set = members.into_iter().collect();
    if n == 0 || set.len() != n {
        return bad("empty set or a member twice");
    }
    Ok((ValueType::Set, set.encode()))
}

fn hash_value(items: Vec<Bytes>) -> Result<(ValueType, Bytes), PayloadError> {
    if items.is_empty() || !items.len().is_multiple_of(2) {
        return bad("empty hash or a field without a value");
    }
    let mut hash = Hash::default();
    for pair in items.chunks(2) {
        if !hash.set(pair[0].clone(), pair[1].clone()) {
            return bad("hash field twice");
        }
    }
    Ok((ValueType::Hash, hash.encode()))
}

fn zset_value(pairs: Vec<(Bytes, f64)>) -> Result<(ValueType, Bytes), PayloadError> {
    if pairs.is_empty() {
        return bad("empty sorted set");
    }
    let mut z = ZSet::default();
    for (member, score) in pairs {
        if score.is_nan() {
            return bad("sorted set score NaN");
        }
        if z.insert(member, score).is_some() {
            return bad("sorted set member twice");
        }
    }
    Ok((ValueType::ZSet, z.encode()))
}

/// A score as Redis 7.0's `d2string` writes it into a listpack: an
/// integral value within 2^52 as an integer, else `%.17g`.
fn score_text(score: f64) -> String {
    if score == score.trunc() && score.abs() < 4_503_599_627_370_496.0 {
        format!("{}", score as i64)
    } else {
        crate::float::format_double(score)
    }
}

// ------------------------------------------------------------ writing

/// An RDB length: 6 bits, 14 bits, or a 32- or 64-bit big-endian number
/// after a marker byte.
fn put_len(out: &mut BytesMut, len: u64) {
    if len < 1 << 6 {
        out.put_u8(len as u8);
    } else if len < 1 << 14 {
        out.put_u8(0x40 | (len >> 8) as u8);
        out.put_u8(len as u8);
    } else if len <= u32::MAX as u64 {
        out.put_u8(0x80);
        out.put_u32(len as u32);
    } else {
        out.put_u8(0x81);
        out.put_u64(len);
    }
}

/// A string as Redis's `rdbSaveRawString` writes it: an integer of up to
/// 32 bits in its integer encoding, LZF when it is over 20 bytes and
/// shrinks by at least 4, else raw.
fn put_string(out: &mut BytesMut, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = parse_i64(s)
    {
        if let Ok(v) = i8::try_from(v) {
            out.put_u8(0xC0);
            out.put_i8(v);
            return;
        } else if let Ok(v) = i16::try_from(v) {
            out.put_u8(0xC1);
            out.put_i16_le(v);
            return;
        } else if let Ok(v) = i32::try_from(v) {
            out.put_u8(0xC2);
            out.put_i32_le(v);
            return;
        }
    }
    if s.len() > 20 {
        let mut packed = vec![0u8; s.len() - 4];
        if let Ok(n) = lzf_rust::compress(s, &mut packed) {
            out.put_u8(0xC3);
            put_len(out, n as u64);
            put_len(out, s.len() as u64);
            out.put_slice(&packed[..n]);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.put_slice(s);
}

// ------------------------------------------------------------ reading

struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
    /// Bytes the strings read so far may still add up to: a payload's
    /// value is bounded as a stored value is (512 MiB), whatever LZF
    /// strings claim to expand to.
    budget: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.raw.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if n > self.left() {
            return bad(CUT_SHORT);
        }
        self.at += n;
        Ok(&self.raw[self.at - n..self.at])
    }

    fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.take(1)?[0])
    }

    /// A length, or the marker of a specially encoded string
    /// (`Err(Ok(kind))`).
    fn len_or_special(&mut self) -> Result<Result<u64, u8>, PayloadError> {
        let first = self.u8()?;
        Ok(match first >> 6 {
            0 => Ok((first & 0x3f) as u64),
            1 => Ok((((first & 0x3f) as u64) << 8) | self.u8()? as u64),
            2 => match first {
                0x80 => Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64),
                0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"))),
                _ => return bad("unknown length encoding"),
            },
            _ => Err(first & 0x3f),
        })
    }

    fn len(&mut self) -> Result<u64, PayloadError> {
        self.len_or_special()?.or_else(|_| bad("a string encoding where a length belongs"))
    }

    /// A count of things each taking at least `min_bytes`, checked against
    /// the bytes left before anything is allocated for them.
    fn count(&mut self, min_bytes: usize) -> Result<usize, PayloadError> {
        let n = self.len()?;
        if n > (self.left() / min_bytes) as u64 {
            return bad(CUT_SHORT);
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<Bytes, PayloadError> {
        let s = self.one_string()?;
        self.budget = self.budget.checked_sub(s.len()).ok_or(PayloadError::BadFormat("value larger than 512 MiB"))?;
        Ok(s)
    }

    fn one_string(&mut self) -> Result<Bytes, PayloadError> {
        match self.len_or_special()? {
            Ok(len) => {
                let len = usize::try_from(len).ok().filter(|&l| l <= self.left()).ok_or(PayloadError::BadFormat(CUT_SHORT))?;
                Ok(Bytes::copy_from_slice(self.take(len)?))
            }
            Err(0) => Ok(Bytes::from((self.u8()? as i8).to_string())),
            Err(1) => Ok(Bytes::from(i16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")).to_string())),
            Err(2) => Ok(Bytes::from(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")).to_string())),
            Err(3) => {
                let packed = self.len()?;
                let len = self.len()?;
                let packed = usize::try_from(packed).ok().filter(|&l| l <= self.left()).ok_or(PayloadError::BadFormat(CUT_SHORT))?;
                // LZF expands at most 264 bytes from 2 (a back reference).
                let len = usize::try_from(len).ok().filter(|&l| l <= self.budget && l <= packed.saturating_mul(133) + 1).ok_or(PayloadError::BadFormat("LZF string longer than it can expand to"))?;
                let packed = self.take(packed)?;
                lzf_rust::decompress_into_vec(packed, len).map(Bytes::from).or_else(|_| bad("LZF string does not decompress"))
            }
            Err(_) => bad("unknown string encoding"),
        }
    }

    /// A score as RDB versions before 8 wrote it: a length byte (253 NaN,
    /// 254 +inf, 255 -inf) and that many characters of `%.17g`.
    fn text_double(&mut self) -> Result<f64, PayloadError> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.take(n as usize)?;
                std::str::from_utf8(text).ok().and_then(|t| t.parse::<f64>().ok()).ok_or(PayloadError::BadFormat("score not a number"))
            }
        }
    }

    /// A time in milliseconds: 8 bytes, little-endian.
    fn millis(&mut self) -> Result<u64, PayloadError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests;
