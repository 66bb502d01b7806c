//! BITFIELD: integer fields of 1 to 64 bits at any bit offset of a string,
//! read, set and incremented as Redis 7.0 does (`bitfieldGeneric`): the
//! same argument checks in the same order, the same two's complement
//! reads, and WRAP, SAT and FAIL overflow.

use crate::int::parse_i64;

/// What happens when a SET or INCRBY does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Keep the low bits (two's complement for signed fields).
    #[default]
    Wrap,
    /// Clamp to the field's minimum or maximum.
    Sat,
    /// Leave the field alone and answer null.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One subcommand: its action on a field of `bits` bits at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub action: Action,
    pub signed: bool,
    pub bits: u32,
    pub offset: u64,
    /// The OVERFLOW in force for it.
    pub overflow: Overflow,
}

/// An argument error, in the order Redis checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Syntax,
    BadOverflow,
    BadType,
    BadOffset,
    NotInteger,
}

impl ParseError {
    /// The error line Redis answers.
    pub fn message(self) -> &'static str {
        match self {
            ParseError::Syntax => "ERR syntax error",
            ParseError::BadOverflow => "ERR Invalid OVERFLOW type specified",
            ParseError::BadType => "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
            ParseError::BadOffset => "ERR bit offset is not an integer or out of range",
            ParseError::NotInteger => "ERR value is not an integer or out of range",
        }
    }
}

/// Parses the subcommands (the arguments after the key); offsets must
/// address a byte below `max_bytes` (proto-max-bulk-len).
pub fn parse(args: &[impl AsRef<[u8]>], max_bytes: u64) -> Result<Vec<Field>, ParseError> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 0;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let sub = args[j].as_ref().to_ascii_lowercase();
        let action = match &sub[..] {
            b"get" if remaining >= 2 => Action::Get,
            b"set" if remaining >= 3 => Action::Set(0),
            b"incrby" if remaining >= 3 => Action::IncrBy(0),
            b"overflow" if remaining >= 1 => {
                overflow = match &args[j + 1].as_ref().to_ascii_lowercase()[..] {
                    b"wrap" => Overflow::Wrap,
                    b"sat" => Overflow::Sat,
                    b"fail" => Overflow::Fail,
                    _ => return Err(ParseError::BadOverflow),
                };
                j += 2;
                continue;
            }
            _ => return Err(ParseError::Syntax),
        };
        let (signed, bits) = field_type(args[j + 1].as_ref())?;
        let offset = bit_offset(args[j + 2].as_ref(), bits, max_bytes)?;
        let action = match action {
            Action::Get => Action::Get,
            Action::Set(_) => Action::Set(parse_i64(args[j + 3].as_ref()).ok_or(ParseError::NotInteger)?),
            Action::IncrBy(_) => Action::IncrBy(parse_i64(args[j + 3].as_ref()).ok_or(ParseError::NotInteger)?),
        };
        fields.push(Field { action, signed, bits, offset, overflow });
        j += if action == Action::Get { 3 } else { 4 };
    }
    Ok(fields)
}

/// `i1`..`i64` or `u1`..`u63` (`getBitfieldTypeFromArgument`).
fn field_type(raw: &[u8]) -> Result<(bool, u32), ParseError> {
    let signed = match raw.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(ParseError::BadType),
    };
    match parse_i64(&raw[1..]) {
        Some(bits) if bits >= 1 && bits <= if signed { 64 } else { 63 } => Ok((signed, bits as u32)),
        _ => Err(ParseError::BadType),
    }
}

/// A bit offset, or `#n` for the n-th field of this width
/// (`getBitOffsetFromArgument`).
fn bit_offset(raw: &[u8], bits: u32, max_bytes: u64) -> Result<u64, ParseError> {
    let hash = raw.first() == Some(&b'#');
    let n = parse_i64(&raw[hash as usize..]).ok_or(ParseError::BadOffset)?;
    let offset = if hash { n.wrapping_mul(bits as i64) } else { n };
    if offset < 0 || (offset as u64 >> 3) >= max_bytes {
        return Err(ParseError::BadOffset);
    }
    Ok(offset as u64)
}

/// Whether every field only reads (then BITFIELD reads the key and
/// writes nothing, as Redis's read-only path).
pub fn read_only(fields: &[Field]) -> bool {
    fields.iter().all(|f| f.action == Action::Get)
}

/// The bytes a value needs to hold every write (Redis grows it with zero
/// bytes to that length first, even if every write then fails).
pub fn needed_len(fields: &[Field]) -> Option<usize> {
    fields.iter().filter(|f| f.action != Action::Get).map(|f| ((f.offset + f.bits as u64 - 1) >> 3) as usize + 1).max()
}

/// Runs `fields` in order over `value`, grown first to [`needed_len`];
/// each answers its integer, or None for a FAIL overflow.
pub fn run(value: &mut Vec<u8>, fields: &[Field]) -> Vec<Option<i64>> {
    if let Some(len) = needed_len(fields)
        && value.len() < len
    {
        value.resize(len, 0);
    }
    fields
        .iter()
        .map(|f| match f.action {
            Action::Get => Some(get(value, f)),
            Action::Set(_) | Action::IncrBy(_) => {
                let old = read(value, f.offset, f.bits);
                let (written, reply) = if f.signed { signed_write(old, f) } else { unsigned_write(old, f) };
                if let Some(bits) = written {
                    write(value, f.offset, f.bits, bits);
                }
                reply
            }
        })
        .collect()
}

/// A GET of one field; bits past the value read as zeros.
pub fn get(value: &[u8], f: &Field) -> i64 {
    let raw = read(value, f.offset, f.bits);
    if f.signed { sign_extend(raw, f.bits) } else { raw as i64 }
}

fn read(value: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        let at = offset + i;
        let byte = value.get((at >> 3) as usize).copied().unwrap_or(0);
        v = (v << 1) | ((byte >> (7 - (at & 7))) & 1) as u64;
    }
    v
}

fn write(value: &mut [u8], offset: u64, bits: u32, v: u64) {
    for i in 0..bits as u64 {
        let at = offset + i;
        let bit = (v >> (bits as u64 - 1 - i)) & 1;
        let byte = &mut value[(at >> 3) as usize];
        let shift = 7 - (at & 7);
        *byte = (*byte & !(1 << shift)) | ((bit as u8) << shift);
    }
}

fn sign_extend(raw: u64, bits: u32) -> i64 {
    if bits < 64 && raw & (1 << (bits - 1)) != 0 { (raw | (u64::MAX << bits)) as i64 } else { raw as i64 }
}

/// The bits to write (None: FAIL) and the reply: SET answers the old
/// value, INCRBY the new one (`checkSignedBitfieldOverflow`).
fn signed_write(old_raw: u64, f: &Field) -> (Option<u64>, Option<i64>) {
    let old = sign_extend(old_raw, f.bits);
    let (value, incr) = match f.action {
        Action::IncrBy(incr) => (old, incr),
        Action::Set(v) => (v, 0),
        Action::Get => unreachable!("a write"),
    };
    let max = if f.bits == 64 { i64::MAX } else { (1i64 << (f.bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let over = value > max || (f.bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr);
    let under = !over && (value < min || (f.bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr));
    let new = if over || under {
        match f.overflow {
            Overflow::Fail => return (None, None),
            Overflow::Sat if over => max,
            Overflow::Sat => min,
            Overflow::Wrap => {
                let sum = (value as u64).wrapping_add(incr as u64);
                sign_extend(if f.bits < 64 { sum & !(u64::MAX << f.bits) } else { sum }, f.bits)
            }
        }
    } else {
        value + incr
    };
    let reply = if matches!(f.action, Action::Set(_)) { old } else { new };
    (Some(new as u64 & mask(f.bits)), Some(reply))
}

/// As [`signed_write`] for unsigned fields (`checkUnsignedBitfieldOverflow`).
fn unsigned_write(old: u64, f: &Field) -> (Option<u64>, Option<i64>) {
    let (value, incr) = match f.action {
        Action::IncrBy(incr) => (old, incr),
        Action::Set(v) => (v as u64, 0),
        Action::Get => unreachable!("a write"),
    };
    let max = mask(f.bits);
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    let over = value > max || (incr > 0 && incr > max_incr);
    let under = !over && incr < 0 && incr < min_incr;
    let new = if over || under {
        match f.overflow {
            Overflow::Fail => return (None, None),
            Overflow::Sat if over => max,
            Overflow::Sat => 0,
            Overflow::Wrap => value.wrapping_add(incr as u64) & max,
        }
    } else {
        value.wrapping_add(incr as u64)
    };
    let reply = if matches!(f.action, Action::Set(_)) { old } else { new };
    (Some(new), Some(reply as i64))
}

fn mask(bits: u32) -> u64 {
    if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Vec<Field> {
        parse(&line.split(' ').collect::<Vec<_>>(), 512 << 20).unwrap()
    }

    #[test]
    fn arguments_are_checked_in_redis_order() {
        let err = |line: &str| parse(&line.split(' ').collect::<Vec<_>>(), 512 << 20).unwrap_err();
        assert_eq!(err("GET u8"), ParseError::Syntax, "too few arguments");
        assert_eq!(err("OVERFLOW BOUNCE GET u8 0"), ParseError::BadOverflow);
        assert_eq!(err("GET u64 0"), ParseError::BadType, "u64 is not supported");
        assert_eq!(err("GET I8 0"), ParseError::BadType, "lowercase only");
        assert_eq!(err("GET i8 -1"), ParseError::BadOffset);
        assert_eq!(err("GET i8 #-1"), ParseError::BadOffset);
        assert_eq!(err("GET i8 4294967296"), ParseError::BadOffset, "past 512 MiB");
        assert_eq!(err("SET i8 0 x"), ParseError::NotInteger);
        assert_eq!(fields("GET u4 #3")[0].offset, 12, "#n counts fields of the width");
    }

    #[test]
    fn fields_read_and_write_big_endian_bits_with_overflow_rules() {
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &fields("SET u8 0 255 GET u4 0 GET i4 4 GET u8 4")), vec![Some(0), Some(15), Some(-1), Some(240)]);
        assert_eq!(v, vec![255], "grown to hold the write only; GET reads zeros past it");
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &fields("INCRBY u2 100 1 INCRBY u2 100 1 INCRBY u2 100 1 INCRBY u2 100 1")), vec![Some(1), Some(2), Some(3), Some(0)], "WRAP");
        assert_eq!(run(&mut v, &fields("OVERFLOW SAT INCRBY i8 0 200 INCRBY i8 0 -300 OVERFLOW FAIL INCRBY i8 0 -1")), vec![Some(127), Some(-128), None]);
        assert_eq!(run(&mut v, &fields("SET i8 0 300 GET i8 0")), vec![Some(-128), Some(44)], "SET answers the old value; 300 wraps to 44");
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &fields("OVERFLOW FAIL SET u2 10 9")), vec![None]);
        assert_eq!(v, vec![0, 0], "grown even when the write fails, as Redis");
        let mut v = Vec::new();
        assert_eq!(run(&mut v, &fields("SET i64 0 -1 INCRBY i64 0 -9223372036854775807 OVERFLOW SAT INCRBY i64 0 -5 GET u63 1")), vec![Some(0), Some(i64::MIN), Some(i64::MIN), Some(0)]);
    }
}
