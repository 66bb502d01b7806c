//! HyperLogLog, byte for byte as Redis 7.0 keeps one in a string value:
//! PFADD, PFCOUNT and PFMERGE over the same representation, so a value
//! written here reads the same in Redis (GET, DUMP) and the other way
//! round.
//!
//! The value is a 16-byte header (`HYLL`, the encoding, three zero bytes,
//! the cached cardinality little-endian, its top bit set when stale) and
//! 16,384 six-bit registers, either dense (12,288 bytes) or sparse: a run
//! length code of ZERO (`00xxxxxx`, 1-64 zeros), XZERO (`01xxxxxx
//! yyyyyyyy`, up to 16,384 zeros) and VAL (`1vvvvvxx`, a value of 1-32
//! repeated 1-4 times). A sparse value turns dense when a register needs a
//! value over 32 or the value would pass 3,000 bytes (Redis's
//! `hll-sparse-max-bytes`). Elements are hashed with MurmurHash64A (seed
//! `0xadc83b19`); the count is Ertl's improved estimator, as Redis's.

const HEADER: usize = 16;
const P: u32 = 14;
const Q: u32 = 64 - P;
const REGISTERS: usize = 1 << P;
const DENSE_SIZE: usize = HEADER + (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// Redis's default `hll-sparse-max-bytes`.
pub const SPARSE_MAX_BYTES: usize = 3000;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;

/// Why a value cannot be used as a HyperLogLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// A string that is not a HyperLogLog (`WRONGTYPE Key is not a valid
    /// HyperLogLog string value.`).
    NotHll,
    /// A HyperLogLog whose sparse registers do not add up (`INVALIDOBJ
    /// Corrupted HLL object detected`).
    Corrupt,
}

impl HllError {
    /// The error line Redis answers.
    pub fn message(self) -> &'static str {
        match self {
            HllError::NotHll => "WRONGTYPE Key is not a valid HyperLogLog string value.",
            HllError::Corrupt => "INVALIDOBJ Corrupted HLL object detected",
        }
    }
}

/// A new, empty HyperLogLog: sparse, one XZERO of all registers (Redis's
/// `createHLLObject`).
pub fn empty() -> Vec<u8> {
    let mut v = vec![0u8; HEADER];
    v[..4].copy_from_slice(b"HYLL");
    v[4] = SPARSE;
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        v.extend_from_slice(&xzero(run));
        left -= run;
    }
    v
}

/// Checks `value` as Redis's `isHLLObjectOrReply` does.
pub fn check(value: &[u8]) -> Result<(), HllError> {
    if value.len() < HEADER || &value[..4] != b"HYLL" || value[4] > SPARSE || (value[4] == DENSE && value.len() != DENSE_SIZE) {
        return Err(HllError::NotHll);
    }
    Ok(())
}

/// PFADD: adds `elements` to the HyperLogLog in `value` (None: a new
/// one). Returns the value to store, if it changed (a new key always is),
/// and whether it did (PFADD's 1 or 0).
pub fn add(value: Option<&[u8]>, elements: &[impl AsRef<[u8]>]) -> Result<Option<Vec<u8>>, HllError> {
    let (mut hll, mut updated) = match value {
        None => (empty(), true),
        Some(v) => {
            check(v)?;
            (v.to_vec(), false)
        }
    };
    for e in elements {
        let (index, count) = pattern(e.as_ref());
        updated |= set(&mut hll, index, count)?;
    }
    if updated {
        invalidate(&mut hll);
        return Ok(Some(hll));
    }
    Ok(None)
}

/// PFCOUNT of one key: the cardinality, and the value to store when the
/// cached one was stale (Redis writes the fresh count back).
pub fn count(value: &[u8]) -> Result<(u64, Option<Vec<u8>>), HllError> {
    check(value)?;
    if value[15] & 0x80 == 0 {
        return Ok((u64::from_le_bytes(value[8..16].try_into().expect("8 bytes")), None));
    }
    let card = estimate(&histogram(value)?);
    let mut fresh = value.to_vec();
    fresh[8..16].copy_from_slice(&card.to_le_bytes());
    Ok((card, Some(fresh)))
}

/// PFCOUNT of several keys: the cardinality of their union (None: no
/// key). The values are checked in order; the first bad one answers.
pub fn count_union<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> Result<u64, HllError> {
    let mut max = [0u8; REGISTERS];
    for v in values.into_iter().flatten() {
        check(v)?;
        merge_into(&mut max, v)?;
    }
    let mut histo = [0u32; 64];
    for r in max {
        histo[r as usize] += 1;
    }
    Ok(estimate(&histo))
}

/// PFMERGE: the union of `sources` (None: no key; the target is one of
/// them when it exists) written into `target` (None: a new key). Dense if
/// any source is.
pub fn merge<'a>(target: Option<&[u8]>, sources: impl IntoIterator<Item = Option<&'a [u8]>>) -> Result<Vec<u8>, HllError> {
    let mut max = [0u8; REGISTERS];
    let mut dense = false;
    for v in sources.into_iter().flatten() {
        check(v)?;
        dense |= v[4] == DENSE;
        merge_into(&mut max, v)?;
    }
    let mut hll = target.map_or_else(empty, <[u8]>::to_vec);
    if dense && hll[4] == SPARSE {
        hll = to_dense(&hll)?;
    }
    for (index, &value) in max.iter().enumerate() {
        if value > 0 {
            set(&mut hll, index, value)?;
        }
    }
    invalidate(&mut hll);
    Ok(hll)
}

/// Whether `value` (a checked HyperLogLog) is dense; for OBJECT-like
/// reporting (PFDEBUG ENCODING).
pub fn is_dense(value: &[u8]) -> bool {
    value.get(4) == Some(&DENSE)
}

/// What PFDEBUG answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debug {
    /// GETREG: every register's value.
    Registers(Vec<u8>),
    /// DECODE: the sparse runs as `Z:n z:n v:value,n`.
    Decoded(String),
    /// ENCODING: `sparse` or `dense`.
    Encoding(&'static str),
    /// TODENSE: whether it converted.
    Converted(bool),
}

/// PFDEBUG `sub` over a checked HyperLogLog (`pfdebugCommand`): the
/// answer, and the value to store when GETREG or TODENSE made a sparse
/// one dense. Errors are Redis's lines.
pub fn debug(sub: &[u8], value: &[u8]) -> Result<(Debug, Option<Vec<u8>>), String> {
    check(value).map_err(|e| e.message().to_string())?;
    let corrupt = |e: HllError| e.message().to_string();
    match &sub.to_ascii_lowercase()[..] {
        b"getreg" => {
            let dense = if value[4] == SPARSE { Some(to_dense(value).map_err(corrupt)?) } else { None };
            let registers = &dense.as_deref().unwrap_or(value)[HEADER..];
            Ok((Debug::Registers((0..REGISTERS).map(|i| dense_get(registers, i)).collect()), dense))
        }
        b"decode" => {
            if value[4] != SPARSE {
                return Err("ERR HLL encoding is not sparse".to_string());
            }
            let mut runs = Vec::new();
            let mut p = HEADER;
            while p < value.len() {
                let (op, len) = opcode(value, p);
                runs.push(match op {
                    Op::Zero(n) => format!("z:{n}"),
                    Op::XZero(n) => format!("Z:{n}"),
                    Op::Val(v, n) => format!("v:{v},{n}"),
                });
                p += len;
            }
            Ok((Debug::Decoded(runs.join(" ")), None))
        }
        b"encoding" => Ok((Debug::Encoding(if value[4] == DENSE { "dense" } else { "sparse" }), None)),
        b"todense" => match value[4] {
            SPARSE => Ok((Debug::Converted(true), Some(to_dense(value).map_err(corrupt)?))),
            _ => Ok((Debug::Converted(false), None)),
        },
        _ => Err(format!("ERR Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(sub))),
    }
}

/// PFSELFTEST: dense registers read back what was written without
/// touching their neighbours, a sparse value and its dense form hold the
/// same registers and count the same, and counts stay within the error
/// Redis's test allows. Err names the first failure.
pub fn self_test() -> Result<(), String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut registers = vec![0u8; DENSE_SIZE - HEADER];
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..100 {
        for (i, e) in expected.iter_mut().enumerate() {
            *e = (next() & 63) as u8;
            dense_set(&mut registers, i, *e);
        }
        if let Some(i) = (0..REGISTERS).find(|&i| dense_get(&registers, i) != expected[i]) {
            return Err(format!("TESTFAILED Register {i} should be {} but is {}", expected[i], dense_get(&registers, i)));
        }
    }
    let mut hll = empty();
    let mut checked = 0;
    for n in 1..=20_000u64 {
        let element = next().to_le_bytes();
        if let Some(v) = add(Some(&hll), &[element]).map_err(|e| format!("TESTFAILED {}", e.message()))? {
            hll = v;
        }
        if n.is_power_of_two() || n % 1000 == 0 {
            let (card, _) = count(&hll).map_err(|e| format!("TESTFAILED {}", e.message()))?;
            if hll[4] == SPARSE && count(&to_dense(&hll).map_err(|e| format!("TESTFAILED {}", e.message()))?).map(|c| c.0) != Ok(card) {
                return Err(format!("TESTFAILED sparse and dense forms count apart at {n} elements"));
            }
            // Redis's bound: 5 standard errors (1.04/sqrt(m) each), and
            // an absolute one for tiny sets.
            let allowed = (n as f64 * 5.0 * 1.04 / (REGISTERS as f64).sqrt()).max(2.0);
            if (card as f64 - n as f64).abs() > allowed {
                return Err(format!("TESTFAILED Too big error. card:{card} abserr:{}", (card as f64 - n as f64).abs()));
            }
            checked += 1;
        }
    }
    debug_assert!(checked > 0);
    Ok(())
}

fn invalidate(hll: &mut [u8]) {
    hll[15] |= 0x80;
}

/// The register an element goes to and the length of its hash's
/// `000...1` run (`hllPatLen`).
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash_64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// MurmurHash2, 64-bit (`MurmurHash64A`), reading blocks little-endian as
/// Redis does on every platform.
pub fn murmur_hash_64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for block in &mut chunks {
        let mut k = u64::from_le_bytes(block.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

fn dense_get(registers: &[u8], index: usize) -> u8 {
    let byte = index * 6 / 8;
    let fb = (index * 6) & 7;
    let b0 = registers[byte] as u32;
    let b1 = registers.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

fn dense_set(registers: &mut [u8], index: usize, value: u8) {
    let byte = index * 6 / 8;
    let fb = (index * 6) & 7;
    let v = value as u32;
    registers[byte] &= !((63u32 << fb) as u8);
    registers[byte] |= (v << fb) as u8;
    if byte + 1 < registers.len() {
        registers[byte + 1] &= !((63u32 >> (8 - fb)) as u8);
        registers[byte + 1] |= (v >> (8 - fb)) as u8;
    }
}

enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

/// The opcode at `p` and its length in bytes.
fn opcode(sparse: &[u8], p: usize) -> (Op, usize) {
    let b = sparse[p];
    if b & 0xc0 == 0 {
        (Op::Zero((b & 0x3f) as usize + 1), 1)
    } else if b & 0x80 != 0 {
        (Op::Val(((b >> 2) & 0x1f) + 1, (b & 3) as usize + 1), 1)
    } else {
        let low = sparse.get(p + 1).copied().unwrap_or(0) as usize;
        (Op::XZero((((b & 0x3f) as usize) << 8 | low) + 1), 2)
    }
}

fn val(value: u8, len: usize) -> u8 {
    ((value - 1) << 2 | (len as u8 - 1)) | 0x80
}

fn xzero(len: usize) -> [u8; 2] {
    let l = len - 1;
    [(l >> 8) as u8 | 0x40, (l & 0xff) as u8]
}

/// Zeros as one ZERO or XZERO opcode, as Redis splits them.
fn zeros(len: usize, out: &mut Vec<u8>) {
    if len > ZERO_MAX_LEN {
        out.extend_from_slice(&xzero(len));
    } else {
        out.push(len as u8 - 1);
    }
}

/// Raises register `index` to `count` if below it; true if it changed.
fn set(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    if hll[4] == DENSE {
        let registers = &mut hll[HEADER..];
        if dense_get(registers, index) >= count {
            return Ok(false);
        }
        dense_set(registers, index, count);
        return Ok(true);
    }
    sparse_set(hll, index, count)
}

/// `hllSparseSet`: updates the run-length code in place, splitting the
/// opcode that covers the register and merging equal VALs after, or
/// turns the value dense.
fn sparse_set(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    if count > VAL_MAX_VALUE {
        return promote(hll, index, count);
    }
    let end = hll.len();
    let (mut p, mut first, mut prev) = (HEADER, 0usize, None);
    let mut found = None;
    while p < end {
        let (op, oplen) = opcode(hll, p);
        let span = match op {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        };
        if index < first + span {
            found = Some((op, oplen, span));
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    let Some((op, oplen, span)) = found else { return Err(HllError::Corrupt) };
    let last = first + span - 1;
    let mut seq: Vec<u8> = Vec::with_capacity(5);
    match op {
        Op::Val(old, _) if old >= count => return Ok(false),
        Op::Val(_, 1) | Op::Zero(1) => seq.push(val(count, 1)),
        Op::Zero(_) | Op::XZero(_) => {
            if index != first {
                zeros(index - first, &mut seq);
            }
            seq.push(val(count, 1));
            if index != last {
                zeros(last - index, &mut seq);
            }
        }
        Op::Val(current, _) => {
            if index != first {
                seq.push(val(current, index - first));
            }
            seq.push(val(count, 1));
            if index != last {
                seq.push(val(current, last - index));
            }
        }
    }
    if seq.len() > oplen && hll.len() + seq.len() - oplen > SPARSE_MAX_BYTES {
        return promote(hll, index, count);
    }
    hll.splice(p..p + oplen, seq);
    // Merge adjacent VALs of one value, up to 5 opcodes from the previous.
    let mut q = prev.unwrap_or(HEADER);
    let mut scan = 5;
    while q < hll.len() && scan > 0 {
        scan -= 1;
        let b = hll[q];
        if b & 0xc0 == 0x40 {
            q += 2;
            continue;
        }
        if b & 0xc0 == 0 {
            q += 1;
            continue;
        }
        if q + 1 < hll.len() && hll[q + 1] & 0x80 != 0 {
            let (Op::Val(v1, l1), _) = opcode(hll, q) else { unreachable!("a VAL") };
            let (Op::Val(v2, l2), _) = opcode(hll, q + 1) else { unreachable!("a VAL") };
            if v1 == v2 && l1 + l2 <= VAL_MAX_LEN {
                hll[q + 1] = val(v1, l1 + l2);
                hll.remove(q);
                continue;
            }
        }
        q += 1;
    }
    Ok(true)
}

fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    *hll = to_dense(hll)?;
    let registers = &mut hll[HEADER..];
    debug_assert!(dense_get(registers, index) < count, "a promotion is for a register that grows");
    dense_set(registers, index, count);
    Ok(true)
}

/// Calls `f(first, len, value)` for each run of a sparse value's
/// registers in order (zeros too); Corrupt unless the runs cover exactly
/// the 16,384 registers.
fn for_each_run(sparse: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), HllError> {
    let (mut idx, mut p) = (0usize, HEADER);
    while p < sparse.len() {
        let (op, len) = opcode(sparse, p);
        let (n, value) = match op {
            Op::Zero(n) | Op::XZero(n) => (n, 0),
            Op::Val(value, n) => (n, value),
        };
        if idx + n > REGISTERS {
            return Err(HllError::Corrupt);
        }
        f(idx, n, value);
        idx += n;
        p += len;
    }
    if idx != REGISTERS {
        return Err(HllError::Corrupt);
    }
    Ok(())
}

/// The dense form of a sparse value (`hllSparseToDense`): the header kept,
/// the registers set from the runs.
fn to_dense(sparse: &[u8]) -> Result<Vec<u8>, HllError> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HEADER].copy_from_slice(&sparse[..HEADER]);
    dense[4] = DENSE;
    for_each_run(sparse, |first, n, value| {
        if value > 0 {
            for idx in first..first + n {
                dense_set(&mut dense[HEADER..], idx, value);
            }
        }
    })?;
    Ok(dense)
}

/// Raises `max` to each register of a checked value (`hllMerge`).
fn merge_into(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), HllError> {
    if v[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(&v[HEADER..], i));
        }
        return Ok(());
    }
    for_each_run(v, |first, n, value| {
        for m in &mut max[first..first + n] {
            *m = (*m).max(value);
        }
    })
}

/// Register values counted, of a checked value (sparse runs must cover
/// every register).
fn histogram(v: &[u8]) -> Result<[u32; 64], HllError> {
    let mut histo = [0u32; 64];
    if v[4] == DENSE {
        for i in 0..REGISTERS {
            histo[dense_get(&v[HEADER..], i) as usize] += 1;
        }
        return Ok(histo);
    }
    for_each_run(v, |_, n, value| histo[value as usize] += n as u32)?;
    Ok(histo)
}

/// Ertl's estimator over the register histogram (`hllCount`).
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    #[allow(clippy::excessive_precision)]
    let alpha_inf = 0.721_347_520_444_481_703_680_f64;
    (alpha_inf * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_bytes_redis_7_0_writes() {
        // GET after `PFADD k a` on redis-server 7.0.15: XZERO 12711, VAL
        // 2 once, XZERO 3672; the cached count stale.
        let a = add(None, &["a"]).unwrap().unwrap();
        assert_eq!(a, b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80q\xa6\x84NW");
        // `PFADD k hello world` then `PFCOUNT k` (the count, 2, cached).
        let hw = add(None, &["hello", "world"]).unwrap().unwrap();
        let (card, cached) = count(&hw).unwrap();
        assert_eq!(card, 2);
        assert_eq!(cached.unwrap(), b"HYLL\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00J\xb5\x88YH\x80[\xfe");
    }

    #[test]
    fn a_new_value_is_sparse_and_counts_zero() {
        let v = empty();
        assert_eq!(v.len(), HEADER + 2);
        assert_eq!(count(&v).unwrap().0, 0);
        assert_eq!(check(b"HYLL\x00"), Err(HllError::NotHll), "shorter than a header");
    }

    #[test]
    fn sparse_and_dense_count_alike_and_the_switch_happens_past_the_limits() {
        let elements: Vec<String> = (0..5000).map(|i| format!("e{i}")).collect();
        let mut sparse = add(None, &elements[..100]).unwrap().unwrap();
        assert!(!is_dense(&sparse));
        let small = count(&sparse).unwrap().0;
        assert!((95..=105).contains(&small), "{small}");
        let dense = to_dense(&sparse).unwrap();
        assert_eq!(count(&dense).unwrap().0, small, "both forms count the same");
        sparse = add(Some(&sparse), &elements[100..]).unwrap().unwrap();
        assert!(is_dense(&sparse), "5,000 elements pass 3,000 bytes of runs");
        let big = count(&sparse).unwrap().0;
        assert!((4900..=5100).contains(&big), "{big}");
        assert_eq!(add(Some(&sparse), &elements[..10]).unwrap(), None, "nothing new");
    }

    #[test]
    fn the_self_test_passes_and_debug_shows_the_encoding() {
        assert_eq!(self_test(), Ok(()));
        let a = add(None, &["a"]).unwrap().unwrap();
        assert_eq!(debug(b"DECODE", &a).unwrap().0, Debug::Decoded("Z:12711 v:2,1 Z:3672".into()));
        assert_eq!(debug(b"encoding", &a).unwrap().0, Debug::Encoding("sparse"));
        let (registers, dense) = debug(b"getreg", &a).unwrap();
        let Debug::Registers(r) = registers else { panic!() };
        assert_eq!((r.len(), r[12711], r.iter().filter(|v| **v > 0).count()), (REGISTERS, 2, 1));
        let dense = dense.expect("GETREG makes it dense, as Redis");
        assert_eq!(debug(b"todense", &dense).unwrap(), (Debug::Converted(false), None));
        assert_eq!(debug(b"decode", &dense).unwrap_err(), "ERR HLL encoding is not sparse");
        assert_eq!(debug(b"nope", &a).unwrap_err(), "ERR Unknown PFDEBUG subcommand 'nope'");
    }

    #[test]
    fn merge_and_union_agree() {
        let a = add(None, &["a", "b", "c"]).unwrap().unwrap();
        let b = add(None, &["c", "d"]).unwrap().unwrap();
        let merged = merge(None, [Some(&a[..]), Some(&b[..])]).unwrap();
        assert_eq!(count(&merged).unwrap().0, 4);
        assert_eq!(count_union([Some(&a[..]), None, Some(&b[..])]).unwrap(), 4);
        let mut corrupt = a.clone();
        corrupt.push(0x3f);
        assert_eq!(count(&corrupt).map(|c| c.0), Err(HllError::Corrupt));
    }
}
