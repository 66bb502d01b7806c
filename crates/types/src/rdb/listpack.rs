//! Redis's packed blobs inside RDB strings: the listpack (Redis 7's small
//! hashes, sorted sets, list nodes and stream nodes), the ziplist that
//! preceded it (read only: RDB versions before 10), and the intset.
//!
//! A listpack is `total_bytes:u32 | count:u16 | entries | 0xFF`, each
//! entry its encoding (a small integer, an integer of 13, 16, 24, 32 or 64
//! bits, or a string of 6-, 12- or 32-bit length) followed by its
//! "backlen", the entry's size written so it can be read backwards. A
//! string that is an integer in Redis's canonical form is stored as the
//! integer, as Redis's `lpAppend` does.

use super::{PayloadError, bad};
use crate::int::parse_i64;
use bytes::{BufMut, Bytes, BytesMut};

/// One listpack entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Int(i64),
    Str(Bytes),
}

impl Item {
    /// The entry as the string Redis hands out for it.
    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            Item::Int(v) => Bytes::from(v.to_string()),
            Item::Str(s) => s,
        }
    }

    pub(super) fn int(&self) -> Result<i64, PayloadError> {
        match self {
            Item::Int(v) => Ok(*v),
            Item::Str(s) => parse_i64(s).ok_or(PayloadError::BadFormat("listpack entry not an integer")),
        }
    }
}

/// Builds a listpack.
#[derive(Default)]
pub(super) struct Writer {
    entries: BytesMut,
    count: usize,
}

impl Writer {
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Bytes of the entries so far.
    pub(super) fn bytes(&self) -> usize {
        self.entries.len()
    }

    /// Appends a string, as an integer when it is one.
    pub(super) fn string(&mut self, s: &[u8]) {
        match parse_i64(s) {
            Some(v) => self.int(v),
            None => {
                let start = self.entries.len();
                let len = s.len();
                if len < 64 {
                    self.entries.put_u8(0x80 | len as u8);
                } else if len < 4096 {
                    self.entries.put_u8(0xE0 | (len >> 8) as u8);
                    self.entries.put_u8(len as u8);
                } else {
                    self.entries.put_u8(0xF0);
                    self.entries.put_u32_le(len as u32);
                }
                self.entries.put_slice(s);
                self.close(start);
            }
        }
    }

    pub(super) fn int(&mut self, v: i64) {
        let start = self.entries.len();
        let e = &mut self.entries;
        if (0..=127).contains(&v) {
            e.put_u8(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { v + (1 << 13) } else { v } as u16;
            e.put_u8(0xC0 | (u >> 8) as u8);
            e.put_u8(u as u8);
        } else if let Ok(v) = i16::try_from(v) {
            e.put_u8(0xF1);
            e.put_i16_le(v);
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            e.put_u8(0xF2);
            e.put_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            e.put_u8(0xF3);
            e.put_i32_le(v);
        } else {
            e.put_u8(0xF4);
            e.put_i64_le(v);
        }
        self.close(start);
    }

    fn close(&mut self, start: usize) {
        let (buf, n) = backlen(self.entries.len() - start);
        self.entries.put_slice(&buf[..n]);
        self.count += 1;
    }

    pub(super) fn finish(self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.entries.len() + 7);
        out.put_u32_le((self.entries.len() + 7) as u32);
        out.put_u16_le(self.count.min(u16::MAX as usize) as u16);
        out.put_slice(&self.entries);
        out.put_u8(0xFF);
        out.freeze()
    }
}

/// An entry's size as its trailing "backlen" writes it: 7 bits a byte,
/// most significant first, every byte but the first with its top bit set.
fn backlen(len: usize) -> ([u8; 5], usize) {
    let n = match len {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        2097151..268435455 => 4,
        _ => 5,
    };
    let mut buf = [0u8; 5];
    for (i, b) in buf[..n].iter_mut().enumerate() {
        let shift = 7 * (n - 1 - i);
        *b = ((len >> shift) & 127) as u8 | if i == 0 { 0 } else { 128 };
    }
    (buf, n)
}

/// Checks the frame listpacks and ziplists share: a header of `header`
/// bytes whose first four are the blob's size and whose last two count its
/// entries (65535: too many to count), then the entries and an end byte
/// 0xFF. Returns the count and where the end byte is.
fn frame(blob: &[u8], header: usize, what: &'static str) -> Result<(u16, usize), PayloadError> {
    if blob.len() <= header || u32::from_le_bytes(blob[..4].try_into().expect("4 bytes")) as usize != blob.len() || blob[blob.len() - 1] != 0xFF {
        return bad(what);
    }
    Ok((u16::from_le_bytes([blob[header - 2], blob[header - 1]]), blob.len() - 1))
}

/// Whether `found` entries are what a frame's count says.
fn counted(declared: u16, found: usize) -> bool {
    declared == u16::MAX || declared as usize == found
}

/// A listpack's entries.
pub(super) fn items(blob: &[u8]) -> Result<Vec<Item>, PayloadError> {
    let (declared, end) = frame(blob, 6, "listpack header does not match its size")?;
    let mut at = 6;
    let mut out = Vec::new();
    while at < end {
        let b = blob[at];
        let need = |n: usize| if at + n <= end { Ok(&blob[at..at + n]) } else { bad("listpack entry cut short") };
        let (item, size) = if b & 0x80 == 0 {
            (Item::Int(b as i64), 1)
        } else if b & 0xC0 == 0x80 {
            let len = (b & 0x3f) as usize;
            (Item::Str(Bytes::copy_from_slice(&need(1 + len)?[1..])), 1 + len)
        } else if b & 0xE0 == 0xC0 {
            let e = need(2)?;
            let u = (((e[0] & 0x1f) as i64) << 8) | e[1] as i64;
            (Item::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
        } else if b & 0xF0 == 0xE0 {
            let e = need(2)?;
            let len = (((e[0] & 0x0f) as usize) << 8) | e[1] as usize;
            (Item::Str(Bytes::copy_from_slice(&need(2 + len)?[2..])), 2 + len)
        } else {
            match b {
                0xF0 => {
                    let len = u32::from_le_bytes(need(5)?[1..5].try_into().expect("4 bytes")) as usize;
                    let size = len.checked_add(5).ok_or(PayloadError::BadFormat("listpack string too long"))?;
                    (Item::Str(Bytes::copy_from_slice(&need(size)?[5..])), size)
                }
                0xF1 => (Item::Int(i16::from_le_bytes(need(3)?[1..3].try_into().expect("2 bytes")) as i64), 3),
                0xF2 => {
                    let e = need(4)?;
                    (Item::Int((i32::from_le_bytes([0, e[1], e[2], e[3]]) >> 8) as i64), 4)
                }
                0xF3 => (Item::Int(i32::from_le_bytes(need(5)?[1..5].try_into().expect("4 bytes")) as i64), 5),
                0xF4 => (Item::Int(i64::from_le_bytes(need(9)?[1..9].try_into().expect("8 bytes"))), 9),
                _ => return bad("unknown listpack encoding"),
            }
        };
        let (expect, n) = backlen(size);
        if blob.get(at + size..at + size + n) != Some(&expect[..n]) || at + size + n > end {
            return bad("listpack entry's backlen does not match it");
        }
        at += size + n;
        out.push(item);
    }
    if !counted(declared, out.len()) {
        return bad("listpack count does not match its entries");
    }
    Ok(out)
}

/// A listpack's entries as strings.
pub(super) fn read(blob: &[u8]) -> Result<Vec<Bytes>, PayloadError> {
    Ok(items(blob)?.into_iter().map(Item::into_bytes).collect())
}

/// A ziplist's entries as strings (RDB versions before 10): `zlbytes:u32 |
/// zltail:u32 | zllen:u16 | entries | 0xFF`, each entry the previous
/// entry's length (1 byte, or 0xFE and 4 bytes), its encoding and data.
pub(super) fn ziplist(blob: &[u8]) -> Result<Vec<Bytes>, PayloadError> {
    let (declared, end) = frame(blob, 10, "ziplist header does not match its size")?;
    let mut at = 10;
    let mut out = Vec::new();
    while at < end {
        let need = |from: usize, n: usize| if from + n <= end { Ok(&blob[from..from + n]) } else { bad("ziplist entry cut short") };
        at += if blob[at] == 0xFE { 5 } else { 1 };
        let e = need(at, 1)?[0];
        let (header, data) = match e >> 6 {
            0 => (1, (e & 0x3f) as usize),
            1 => (2, (((e & 0x3f) as usize) << 8) | need(at + 1, 1)?[0] as usize),
            2 if e == 0x80 => (5, u32::from_be_bytes(need(at + 1, 4)?.try_into().expect("4 bytes")) as usize),
            2 => return bad("unknown ziplist encoding"),
            _ => {
                let int = |n: usize| -> Result<i64, PayloadError> {
                    let raw = need(at + 1, n)?;
                    let mut b = [0u8; 8];
                    b[8 - n..].copy_from_slice(raw);
                    Ok(i64::from_le_bytes(b) >> (8 * (8 - n)))
                };
                let (v, n) = match e {
                    0xC0 => (int(2)?, 2),
                    0xD0 => (int(4)?, 4),
                    0xE0 => (int(8)?, 8),
                    0xF0 => (int(3)?, 3),
                    0xFE => (int(1)?, 1),
                    0xF1..=0xFD => ((e & 0x0f) as i64 - 1, 0),
                    _ => return bad("unknown ziplist encoding"),
                };
                out.push(Bytes::from(v.to_string()));
                at += 1 + n;
                continue;
            }
        };
        out.push(Bytes::copy_from_slice(need(at + header, data)?));
        at += header + data;
    }
    if at != end || !counted(declared, out.len()) {
        return bad("ziplist count does not match its entries");
    }
    Ok(out)
}

/// An intset of `ints` (sorted, distinct): `encoding:u32` (2, 4 or 8
/// bytes an integer, the smallest that holds them all) `| length:u32 |`
/// the integers, little-endian.
pub(super) fn intset(ints: &[i64]) -> Bytes {
    let width = if ints.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if ints.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = BytesMut::with_capacity(8 + ints.len() * width);
    out.put_u32_le(width as u32);
    out.put_u32_le(ints.len() as u32);
    for &v in ints {
        out.put_slice(&v.to_le_bytes()[..width]);
    }
    out.freeze()
}

/// An intset's members as strings.
pub(super) fn read_intset(blob: &[u8]) -> Result<Vec<Bytes>, PayloadError> {
    if blob.len() < 8 {
        return bad("intset shorter than its header");
    }
    let width = u32::from_le_bytes(blob[..4].try_into().expect("4 bytes")) as usize;
    let len = u32::from_le_bytes(blob[4..8].try_into().expect("4 bytes")) as usize;
    if !matches!(width, 2 | 4 | 8) || len.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return bad("intset size does not match its header");
    }
    let mut prev = None;
    let mut out = Vec::with_capacity(len);
    for chunk in blob[8..].chunks(width) {
        let mut b = [0u8; 8];
        b[8 - width..].copy_from_slice(chunk);
        let v = i64::from_le_bytes(b) >> (8 * (8 - width));
        if prev.is_some_and(|p| p >= v) {
            return bad("intset out of order");
        }
        prev = Some(v);
        out.push(Bytes::from(v.to_string()));
    }
    Ok(out)
}
