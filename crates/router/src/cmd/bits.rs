//! Bit commands on string values: GETBIT, SETBIT, BITCOUNT, BITPOS, BITOP.
//!
//! SETBIT is a node operation (a read-modify-write of the value), BITOP a
//! multi-key step over keys of one hash slot, as RENAME; GETBIT,
//! BITCOUNT and BITPOS read the value and compute here. Redis checks
//! GETBIT's and SETBIT's arguments (and BITPOS's bit) before the key, and
//! BITCOUNT's and BITPOS's range only once the key is found (a missing key
//! answers whatever the range), so those errors travel in the reply shape.

use super::plan::{Planned, Shape};
use super::{int_arg, syntax_error};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};

/// Redis's default `proto-max-bulk-len`: a bit offset must address a byte
/// below it.
const MAX_VALUE_BYTES: u64 = 512 * 1024 * 1024;

/// A bit offset as Redis's `getBitOffsetFromArgument` takes it.
fn bit_offset(raw: &[u8]) -> Result<u64, Frame> {
    let error = || Frame::error("ERR bit offset is not an integer or out of range");
    let offset = evenkeel_types::int::parse_i64(raw).ok_or_else(error)?;
    u64::try_from(offset).ok().filter(|o| o >> 3 < MAX_VALUE_BYTES).ok_or_else(error)
}

pub fn getbit(a: &[Bytes]) -> Result<Planned, Frame> {
    let offset = bit_offset(&a[2])?;
    Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::Bit { offset }))
}

pub fn setbit(a: &[Bytes]) -> Result<Planned, Frame> {
    let offset = bit_offset(&a[2])?;
    let on = match evenkeel_types::int::parse_i64(&a[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(Frame::error("ERR bit is not an integer or out of range")),
    };
    Ok(Planned::one(&a[1], Kind::SetBit(pb::SetBit { offset, on }), Shape::Integer))
}

/// BITOP AND|OR|XOR|NOT destkey srckey [srckey ...].
/// BITFIELD and BITFIELD_RO: arguments checked first, as Redis does.
/// Only GETs: a read, answered from the key's GET; else (BITFIELD only)
/// one op on the owner carrying the subcommands, which it checks again
/// with the same parser (`evenkeel_types::bitfield`).
pub fn bitfield(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    let fields = evenkeel_types::bitfield::parse(&a[2..], MAX_VALUE_BYTES).map_err(|e| Frame::error(e.message()))?;
    if evenkeel_types::bitfield::read_only(&fields) {
        return Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::BitField(fields)));
    }
    if name == "bitfield_ro" {
        return Err(Frame::error("ERR BITFIELD_RO only supports the GET subcommand"));
    }
    Ok(Planned::one(&a[1], Kind::BitField(pb::BitField { args: a[2..].to_vec() }), Shape::Reply))
}

/// A read-only BITFIELD's answer from the key's GET (absent: zeros).
pub(crate) fn bitfield_read(fields: &[evenkeel_types::bitfield::Field], r: evenkeel_rpc::pb::op_result::Result) -> Frame {
    use evenkeel_rpc::pb::op_result::Result as R;
    let value = match r {
        R::Value(v) if v.value_type != pb::ValueType::String as i32 => return super::wrong_type(),
        R::Value(v) => v.value,
        R::Nil(_) => Bytes::new(),
        other => return super::unexpected(&other),
    };
    Frame::Array(fields.iter().map(|f| Frame::Integer(evenkeel_types::bitfield::get(&value, f))).collect())
}

pub fn bitop(a: &[Bytes]) -> Result<Planned, Frame> {
    let op = match a[1].to_ascii_lowercase().as_slice() {
        b"and" => pb::bit_op::Op::And,
        b"or" => pb::bit_op::Op::Or,
        b"xor" => pb::bit_op::Op::Xor,
        b"not" => pb::bit_op::Op::Not,
        _ => return Err(syntax_error()),
    };
    if op == pb::bit_op::Op::Not && a.len() != 4 {
        return Err(Frame::error("ERR BITOP NOT must be called with a single source key."));
    }
    super::keys::one_slot(a[2..].iter())?;
    Ok(Planned::one(&a[2], Kind::BitOp(pb::BitOp { op: op as i32, sources: a[3..].to_vec() }), Shape::Integer))
}

/// BITCOUNT's arguments as parsed, their errors kept for a key that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitCountArgs {
    Whole,
    Range { start: i64, end: i64, unit: Unit },
    NotInteger,
    Syntax,
}

/// BITCOUNT's range unit; `Invalid` is a syntax error unless the range is
/// empty first (Redis answers 0 for start > end < 0 before reading it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Byte,
    Bit,
    Invalid,
}

pub fn bitcount(a: &[Bytes]) -> Result<Planned, Frame> {
    let args = match a.len() {
        2 => BitCountArgs::Whole,
        4 | 5 => match (int_arg(&a[2]), int_arg(&a[3])) {
            (Ok(start), Ok(end)) => {
                let unit = match a.get(4) {
                    None => Unit::Byte,
                    Some(u) if u.eq_ignore_ascii_case(b"byte") => Unit::Byte,
                    Some(u) if u.eq_ignore_ascii_case(b"bit") => Unit::Bit,
                    Some(_) => Unit::Invalid,
                };
                BitCountArgs::Range { start, end, unit }
            }
            _ => BitCountArgs::NotInteger,
        },
        _ => BitCountArgs::Syntax,
    };
    Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::BitCount(args)))
}

/// BITPOS's arguments: the bit sought (checked at once) and the range,
/// whose errors wait for a key that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitPosArgs {
    pub bit: bool,
    pub range: BitPosRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitPosRange {
    Whole,
    /// `end` None: to the end of the value, which then counts as followed
    /// by zero bits. `bits`: positions in bits rather than bytes.
    From { start: i64, end: Option<i64>, bits: bool },
    NotInteger,
    Syntax,
}

pub fn bitpos(a: &[Bytes]) -> Result<Planned, Frame> {
    let bit = match int_arg(&a[2])? {
        0 => false,
        1 => true,
        _ => return Err(Frame::error("ERR The bit argument must be 1 or 0.")),
    };
    // In Redis's order: start, then the unit, then end.
    let range = match a.len() {
        3 => BitPosRange::Whole,
        4..=6 => match int_arg(&a[3]) {
            Err(_) => BitPosRange::NotInteger,
            Ok(start) => {
                let bits = match a.get(5) {
                    None => Some(false),
                    Some(u) if u.eq_ignore_ascii_case(b"byte") => Some(false),
                    Some(u) if u.eq_ignore_ascii_case(b"bit") => Some(true),
                    Some(_) => None,
                };
                match (bits, a.get(4).map(|e| int_arg(e))) {
                    (None, _) => BitPosRange::Syntax,
                    (Some(_), Some(Err(_))) => BitPosRange::NotInteger,
                    (Some(bits), end) => BitPosRange::From { start, end: end.map(|e| e.expect("checked above")), bits },
                }
            }
        },
        _ => BitPosRange::Syntax,
    };
    Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::BitPos(BitPosArgs { bit, range })))
}

/// BITPOS's answer for `value`, by Redis 7's `bitposCommand`: the first
/// position of the bit in the range, or -1. Looking for a 0 with no end
/// given finds the first bit past the value when all are 1s.
pub(crate) fn bit_position(value: &[u8], args: BitPosArgs) -> Frame {
    let len = value.len() as i64;
    let (start, end, bits, end_given) = match args.range {
        BitPosRange::Whole => (0, len - 1, false, false),
        BitPosRange::NotInteger => return super::not_integer(),
        BitPosRange::Syntax => return syntax_error(),
        BitPosRange::From { start, end, bits } => {
            let total = if bits { len * 8 } else { len };
            let clamp = |i: i64| if i < 0 { (total.saturating_add(i)).max(0) } else { i };
            (clamp(start), clamp(end.unwrap_or(total - 1)).min(total - 1), bits, end.is_some())
        }
    };
    if start > end {
        return Frame::Integer(-1);
    }
    // The range in bits.
    let (first, last) = if bits { (start, end) } else { (start * 8, end * 8 + 7) };
    let at = |i: i64| (value[(i >> 3) as usize] >> (7 - (i & 7))) & 1 == 1;
    let mut i = first;
    while i <= last {
        // Whole bytes that cannot hold the bit are skipped at once.
        if i & 7 == 0 && i + 7 <= last && value[(i >> 3) as usize] == if args.bit { 0 } else { 0xff } {
            i += 8;
            continue;
        }
        if at(i) == args.bit {
            return Frame::Integer(i);
        }
        i += 1;
    }
    Frame::Integer(if !args.bit && !end_given && !bits { last + 1 } else { -1 })
}

/// GETBIT's answer for `value`.
pub(crate) fn bit_at(value: &[u8], offset: u64) -> i64 {
    let byte = (offset >> 3) as usize;
    value.get(byte).map_or(0, |b| (b >> (7 - (offset & 7)) & 1) as i64)
}

/// BITCOUNT's answer for `value`, by Redis 7's `bitcountCommand`.
pub(crate) fn count_bits(value: &[u8], args: BitCountArgs) -> Frame {
    let (start, end, unit) = match args {
        BitCountArgs::Whole => return Frame::Integer(value.iter().map(|b| b.count_ones() as i64).sum()),
        BitCountArgs::NotInteger => return super::not_integer(),
        BitCountArgs::Syntax => return syntax_error(),
        BitCountArgs::Range { start, end, unit } => (start, end, unit),
    };
    if start < 0 && end < 0 && start > end {
        return Frame::Integer(0);
    }
    let bits = match unit {
        Unit::Invalid => return syntax_error(),
        Unit::Bit => true,
        Unit::Byte => false,
    };
    let total = if bits { value.len() as i64 * 8 } else { value.len() as i64 };
    let clamp = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (start, end) = (clamp(start), clamp(end).min(total - 1));
    if start > end {
        return Frame::Integer(0);
    }
    let popcount = |bytes: &[u8]| bytes.iter().map(|b| b.count_ones() as i64).sum::<i64>();
    if !bits {
        return Frame::Integer(popcount(&value[start as usize..=end as usize]));
    }
    // Whole bytes, less the bits of the first before `start` and of the
    // last after `end`.
    let (first, last) = ((start >> 3) as usize, (end >> 3) as usize);
    let before = !((1u16 << (8 - (start & 7))) - 1) as u8;
    let after = ((1u16 << (7 - (end & 7))) - 1) as u8;
    Frame::Integer(popcount(&value[first..=last]) - popcount(&[value[first] & before, value[last] & after]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcount_ranges_like_redis() {
        let range = |start, end, unit| BitCountArgs::Range { start, end, unit };
        let v = b"foobar";
        assert_eq!(count_bits(v, BitCountArgs::Whole), Frame::Integer(26));
        assert_eq!(count_bits(v, range(0, 0, Unit::Byte)), Frame::Integer(4));
        assert_eq!(count_bits(v, range(1, 1, Unit::Byte)), Frame::Integer(6));
        assert_eq!(count_bits(v, range(1, 1, Unit::Bit)), Frame::Integer(1));
        assert_eq!(count_bits(v, range(5, 30, Unit::Bit)), Frame::Integer(17));
        assert_eq!(count_bits(v, range(-2, -1, Unit::Byte)), Frame::Integer(7));
        assert_eq!(count_bits(v, range(-1, -5, Unit::Invalid)), Frame::Integer(0), "empty before the unit is read");
        assert_eq!(count_bits(v, range(0, 1, Unit::Invalid)), syntax_error());
        assert_eq!(count_bits(b"", range(0, -1, Unit::Byte)), Frame::Integer(0));
        assert_eq!(count_bits(v, range(i64::MIN, i64::MAX, Unit::Bit)), Frame::Integer(26));
    }

    #[test]
    fn bitpos_like_redis() {
        let whole = |bit| BitPosArgs { bit, range: BitPosRange::Whole };
        let from = |bit, start, end, bits| BitPosArgs { bit, range: BitPosRange::From { start, end, bits } };
        assert_eq!(bit_position(b"\xff\xf0\x00", whole(false)), Frame::Integer(12));
        assert_eq!(bit_position(b"\x00\x0f", whole(true)), Frame::Integer(12));
        assert_eq!(bit_position(b"\x00\x00", whole(true)), Frame::Integer(-1));
        assert_eq!(bit_position(b"\xff\xff", whole(false)), Frame::Integer(16), "past the end: zero padding");
        assert_eq!(bit_position(b"\xff\xff", from(false, 0, Some(-1), false)), Frame::Integer(-1), "an explicit end has no padding");
        assert_eq!(bit_position(b"\xff\xff", from(false, 1, None, false)), Frame::Integer(16));
        assert_eq!(bit_position(b"", whole(false)), Frame::Integer(-1), "an empty range holds no bit");
        assert_eq!(bit_position(b"\x00\xff\x00", from(true, 2, Some(-1), false)), Frame::Integer(-1));
        assert_eq!(bit_position(b"\x00\xff\x00", from(true, 7, Some(15), true)), Frame::Integer(8));
        assert_eq!(bit_position(b"\x00\xff\x00", from(true, 9, Some(15), true)), Frame::Integer(9));
        assert_eq!(bit_position(b"\x00\xff\x00", from(false, 8, Some(15), true)), Frame::Integer(-1));
        assert_eq!(bit_position(b"\x00\xff\x00", from(true, -100, Some(i64::MAX), false)), Frame::Integer(8));
        assert_eq!(bit_position(b"\x00", from(true, i64::MIN, Some(i64::MIN), true)), Frame::Integer(-1));
    }

    #[test]
    fn offsets_and_bits() {
        assert_eq!(bit_at(&[0x80], 0), 1);
        assert_eq!(bit_at(&[0x80], 7), 0);
        assert_eq!(bit_at(&[0x01], 7), 1);
        assert_eq!(bit_at(&[0x01], 100), 0);
        assert!(bit_offset(b"-1").is_err() && bit_offset(b"4294967296").is_err() && bit_offset(b"x").is_err());
        assert_eq!(bit_offset(b"4294967295"), Ok(4294967295));
    }
}
