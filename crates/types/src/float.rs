//! Floats as Redis's INCRBYFLOAT reads, adds and prints them.
//!
//! Redis does this in C's `long double`: on x86-64 Linux, where the Redis
//! clients compare against runs, the x87 80-bit format (64-bit significand).
//! A number is read with `strtold` (`string2ld`), the sum is rounded to
//! that format, and the result is printed with `"%.17Lf"`, trailing zeros
//! and a bare point removed (`ld2string`'s human mode). So "0.1" plus
//! nothing prints as "0.1", where an f64 would print 0.10000000000000001,
//! and 1e20 + 0.1 prints as 100000000000000000000, the 0.1 being below the
//! format's precision there. The format's arithmetic is rustc_apfloat's
//! (software, correctly rounded); printing is exact, with num-bigint.
//!
//! Sorted set scores are C `double`s: read with `strtod` ([`parse_double`],
//! [`parse_range_double`]) and printed with `"%.17g"` ([`format_double`]).

use num_bigint::BigUint;
use rustc_apfloat::ieee::{Double, X87DoubleExtended as F80};
use rustc_apfloat::{Float, FloatConvert, Round, Status};

/// An 80-bit extended-precision number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongDouble(F80);

/// What can go wrong adding two of them, with Redis's reply texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatError {
    /// "value is not a valid float": not a number `string2ld` takes.
    NotFloat,
    /// "increment would produce NaN or Infinity".
    NanOrInfinity,
}

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer input is not a float.
const MAX_CHARS: usize = 5 * 1024;

impl LongDouble {
    /// Reads `raw` as Redis's `string2ld` does: `strtold`'s grammar over
    /// the whole input (up to a NUL byte, where C's string ends), no
    /// leading space, no NaN, and nothing that overflows to infinity or
    /// underflows to zero (a literal `inf` is taken: it is not a range
    /// error).
    pub fn parse(raw: &[u8]) -> Option<LongDouble> {
        if raw.is_empty() || raw.len() >= MAX_CHARS {
            return None;
        }
        let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        match strto::<F80>(std::str::from_utf8(raw).ok()?)? {
            (value, false) => Some(LongDouble(value)),
            (_, true) => None,
        }
    }

    /// The nearest `f64` (blocking commands' timeouts, which Redis reads
    /// as a `long double`).
    pub fn to_f64(self) -> f64 {
        let mut loses_info = false;
        let double: Double = self.0.convert_r(Round::NearestTiesToEven, &mut loses_info).value;
        to_f64(double)
    }

    pub fn zero() -> LongDouble {
        LongDouble(F80::ZERO)
    }

    /// The sum, rounded to nearest (ties to even) as the x87 unit does.
    pub fn checked_add(self, other: LongDouble) -> Result<LongDouble, FloatError> {
        let sum = self.0.add_r(other.0, Round::NearestTiesToEven).value;
        if sum.is_nan() || sum.is_infinite() { Err(FloatError::NanOrInfinity) } else { Ok(LongDouble(sum)) }
    }

    /// `"%.17Lf"` with trailing zeros (and then a bare point) removed, and
    /// "-0" written "0": Redis's `ld2string` in human mode. Finite only.
    pub fn to_human(self) -> String {
        let bits = self.0.to_bits();
        let negative = bits >> 79 & 1 == 1;
        let biased = (bits >> 64 & 0x7fff) as i64;
        let significand = BigUint::from(bits as u64);
        // value = significand * 2^exp (the integer bit is explicit).
        let exp = if biased == 0 { 1 - 16383 - 63 } else { biased - 16383 - 63 };
        let scaled = significand * BigUint::from(10u32).pow(17);
        let digits = if exp >= 0 {
            scaled << exp as usize
        } else {
            // Round to nearest, ties to even, as glibc's printf does.
            let shift = (-exp) as usize;
            let quotient = &scaled >> shift;
            let remainder = &scaled - (&quotient << shift);
            let half = BigUint::from(1u32) << (shift - 1);
            let odd = quotient.bit(0);
            if remainder > half || (remainder == half && odd) { quotient + 1u32 } else { quotient }
        };
        let mut text = format!("{digits:0>18}");
        text.insert(text.len() - 17, '.');
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if negative && text != "0" { format!("-{text}") } else { text.to_string() }
    }
}

/// `text`, all of it, read in `strtod`'s grammar and rounded to `F`
/// (nearest, ties to even, as glibc does): the value and whether reading
/// it was a range error (it overflowed to infinity or underflowed to zero;
/// a literal `inf` is not one). None: not a number, or NaN.
fn strto<F: Float>(text: &str) -> Option<(F, bool)> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let sign = if negative { "-" } else { "" };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some((if negative { -F::INFINITY } else { F::INFINITY }, false));
    }
    let canonical = if let Some(hex) = lower.strip_prefix("0x") {
        format!("{sign}0x{}", hex_literal(hex)?)
    } else {
        decimal_literal(body)?;
        format!("{sign}{body}")
    };
    let parsed = F::from_str_r(&canonical, Round::NearestTiesToEven).ok()?;
    let range_error = parsed.status.contains(Status::OVERFLOW) || (parsed.status.contains(Status::UNDERFLOW) && parsed.value.is_zero());
    (!parsed.value.is_nan()).then_some((parsed.value, range_error))
}

fn to_f64(value: Double) -> f64 {
    f64::from_bits(value.to_bits() as u64)
}

/// Reads `raw` as Redis's `getDoubleFromObject` does (ZADD's scores,
/// ZINCRBY's increment, WEIGHTS): `strtod` over the whole input (a NUL
/// byte ends C's string early, so it is refused), no leading space, no
/// NaN, no range error.
pub fn parse_double(raw: &[u8]) -> Option<f64> {
    if raw.contains(&0) {
        return None;
    }
    match strto::<Double>(std::str::from_utf8(raw).ok()?)? {
        (value, false) => Some(to_f64(value)),
        (_, true) => None,
    }
}

/// Reads a score range bound's number as Redis's `zslParseRange` does:
/// `strtod` up to the first NUL byte, leading white space skipped, an
/// overflow taken as infinity and an underflow as zero, and an empty
/// input read as 0 (strtod reads nothing there, and Redis only checks
/// that it stopped at the end). None: not a number, or NaN.
pub fn parse_range_double(raw: &[u8]) -> Option<f64> {
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    if raw.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(raw).ok()?;
    let number = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    strto::<Double>(number).map(|(value, _)| to_f64(value))
}

/// `v` as C's `printf("%.17g", v)` writes it, which is how Redis 7.0
/// answers a sorted set's scores (and turns a script's numbers into
/// arguments): 17 significant digits, trailing zeros dropped, in exponent
/// form when the exponent is below -4 or at least 17; `inf`, `-inf`.
pub fn format_double(v: f64) -> String {
    format_g(v, 17)
}

/// `v` as C's `printf("%.<precision>g", v)` writes it (glibc): `precision`
/// significant digits (at least 1), trailing zeros dropped, in exponent
/// form when the exponent is below -4 or at least `precision`; `inf`,
/// `-inf`, and `nan` or `-nan` by the sign bit.
pub fn format_g(v: f64, precision: usize) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    let precision = precision.max(1);
    // A whole number with no more digits than the precision prints as
    // itself: most scores (counters, timestamps, ranks), and the exact
    // expansion below costs far more (ZRANGE ... WITHSCORES of 100,000
    // members spent most of its time here).
    if v.fract() == 0.0 && precision <= 18 && v.abs() < 10f64.powi(precision as i32) {
        return if v == 0.0 && v.is_sign_negative() { "-0".into() } else { (v as i64).to_string() };
    }
    exact_g(v, precision)
}

/// [`format_g`] by the exact decimal expansion, for any finite `v`.
fn exact_g(v: f64, precision: usize) -> String {
    // Rust's exponent form is exact and rounds ties to even, as glibc's
    // printf does.
    let scientific = format!("{v:.*e}", precision - 1);
    let (mantissa, exponent) = scientific.split_once('e').expect("exponent form");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let trim = |s: &str| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() };
    if (-4..precision as i32).contains(&exponent) {
        trim(&format!("{v:.*}", (precision as i32 - 1 - exponent) as usize))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    }
}

/// Checks a decimal body (after the sign) against `strtold`'s grammar:
/// digits with an optional point (at least one digit on either side),
/// then an optional exponent with at least one digit.
fn decimal_literal(body: &str) -> Option<()> {
    let b = body.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    (i == b.len()).then_some(())
}

/// A hex body (after `0x`, lowercased) in `strtold`'s grammar, with the
/// binary exponent APFloat requires added when it has none.
fn hex_literal(hex: &str) -> Option<String> {
    let (mantissa, exponent) = match hex.split_once('p') {
        Some((m, e)) => (m, Some(e)),
        None => (hex, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let hex_digits = |s: &str| s.bytes().all(|c| c.is_ascii_hexdigit());
    if int.len() + frac.len() == 0 || !hex_digits(int) || !hex_digits(frac) {
        return None;
    }
    let exponent = match exponent {
        None => "0",
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            e
        }
    };
    Some(format!("{mantissa}p{exponent}"))
}

/// INCRBYFLOAT: `current` (absent: 0) plus `increment`, printed as Redis
/// stores and answers it. The current value is checked first.
pub fn incr_by_float(current: Option<&[u8]>, increment: &[u8]) -> Result<String, FloatError> {
    let value = match current {
        None => LongDouble::zero(),
        Some(c) => LongDouble::parse(c).ok_or(FloatError::NotFloat)?,
    };
    let increment = LongDouble::parse(increment).ok_or(FloatError::NotFloat)?;
    Ok(value.checked_add(increment)?.to_human())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The whole-number shortcut prints what the exact expansion does.
        #[test]
        fn whole_numbers_print_as_the_exact_expansion_does(n in -(10i64.pow(17))..10i64.pow(17), precision in 1usize..19, shift in 0u32..40) {
            for v in [n as f64, (n >> shift) as f64, -0.0, 1e17 - 16.0] {
                proptest::prop_assert_eq!(format_g(v, precision), exact_g(v, precision), "{} at {}", v, precision);
            }
        }
    }

    fn incr(current: Option<&str>, by: &str) -> Result<String, FloatError> {
        incr_by_float(current.map(str::as_bytes), by.as_bytes())
    }

    #[test]
    fn sums_print_as_redis_on_x86_64_prints_them() {
        assert_eq!(incr(None, "0.1").unwrap(), "0.1");
        assert_eq!(incr(Some("10.50"), "0.1").unwrap(), "10.6");
        assert_eq!(incr(Some("5.0e3"), "2.0e2").unwrap(), "5200");
        assert_eq!(incr(Some("3"), "-3").unwrap(), "0");
        assert_eq!(incr(Some("-1"), "0.5").unwrap(), "-0.5");
        assert_eq!(incr(Some("1e20"), "0.1").unwrap(), "100000000000000000000", "below the 64-bit significand");
        assert_eq!(incr(Some("0.1"), "0.2").unwrap(), "0.3");
        assert_eq!(incr(None, "1e-20").unwrap(), "0", "17 decimals");
        assert_eq!(incr(None, "-1e-20").unwrap(), "0", "-0 is written 0");
        assert_eq!(incr(None, "0x1p-18").unwrap(), "0.00000381469726562", "a tie at the 17th decimal rounds to even");
        assert_eq!(incr(None, "0x3p-18").unwrap(), "0.00001144409179688");
        assert_eq!(incr(None, "0x1.8").unwrap(), "1.5");
        assert_eq!(incr(None, "+.5").unwrap(), "0.5");
        assert_eq!(incr(None, "5.").unwrap(), "5");
        assert_eq!(incr(Some("1.5\0junk"), "1").unwrap(), "2.5", "C reads up to the NUL");
        let huge = incr(None, "1e4000").unwrap();
        assert!(huge.len() >= 4000 && huge.bytes().all(|c| c.is_ascii_digit()), "every integer digit, no point");
    }

    #[test]
    fn what_strtold_or_redis_refuses() {
        for bad in ["", " 1", "1 ", "abc", "1e", "1e+", ".", "-", "nan", "NaN", "1e5000", "1e-5000", "0x", "0xg", "0x1p", "1.2.3", "--1"] {
            assert_eq!(incr(None, bad), Err(FloatError::NotFloat), "{bad:?}");
        }
        assert_eq!(incr(Some("abc"), "1"), Err(FloatError::NotFloat));
        assert_eq!(incr(None, &"1".repeat(MAX_CHARS)), Err(FloatError::NotFloat));
        assert_eq!(incr(None, "inf"), Err(FloatError::NanOrInfinity), "inf is a float, but the sum is infinite");
        assert_eq!(incr(Some("-Infinity"), "1"), Err(FloatError::NanOrInfinity));
        assert_eq!(incr(Some("inf"), "-inf"), Err(FloatError::NanOrInfinity));
        assert_eq!(incr(Some("1e4932"), "1e4932"), Err(FloatError::NanOrInfinity));
        assert!(incr(None, "1e-4940").is_ok(), "a denormal is not a range error to Redis");
    }
    #[test]
    fn scores_read_and_print_as_redis_7_0_does() {
        for (raw, want) in [("1.1", 1.1), ("0x10", 16.0), ("-inf", f64::NEG_INFINITY), ("+Infinity", f64::INFINITY), ("1e308", 1e308), ("5.", 5.0), ("-0", 0.0)] {
            assert_eq!(parse_double(raw.as_bytes()), Some(want), "{raw}");
        }
        for bad in ["", " 1", "1 ", "nan", "1e400", "1e-400", "1\0", "abc", "0x"] {
            assert_eq!(parse_double(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_range_double(b""), Some(0.0), "strtod reads nothing and stops at the end");
        assert_eq!(parse_range_double(b" \t1"), Some(1.0));
        assert_eq!(parse_range_double(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_range_double(b"2\0junk"), Some(2.0));
        assert_eq!((parse_range_double(b"  "), parse_range_double(b"x"), parse_range_double(b"nan")), (None, None, None));
        for (v, shown) in [(1.1, "1.1000000000000001"), (2.0, "2"), (1e20, "1e+20"), (0.000001, "9.9999999999999995e-07"), (1e-5, "1.0000000000000001e-05"),
            (123456789012345678.0, "1.2345678901234568e+17"), (0.0001, "0.0001"), (-2.5, "-2.5"), (1e16, "10000000000000000"), (1e17, "1e+17"),
            (f64::INFINITY, "inf"), (f64::NEG_INFINITY, "-inf"), (0.0, "0"), (-0.0, "-0"), (1.5e-300, "1.5000000000000001e-300")] {
            assert_eq!(format_double(v), shown, "{v:e}");
        }
        // Other precisions (cjson's 14), and NaN's sign, as glibc prints.
        for (v, shown) in [(123456789012345.0, "1.2345678901234e+14"), (1e-5, "1e-05"), (0.1, "0.1"), (-0.0, "-0"), (1e14, "1e+14"), (12345678901234.0, "12345678901234")] {
            assert_eq!(format_g(v, 14), shown, "{v:e}");
        }
        assert_eq!((format_double(f64::NAN), format_double(-f64::NAN)), ("nan".to_string(), "-nan".to_string()));
    }
}
