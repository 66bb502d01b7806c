//! What the load sends: which command, on which key, writing which value.
//!
//! Every SET writes a value that names its writer and sequence number,
//! `RUN:CLIENT:SEQ:` padded with dots to `--value-size`, so the checker can
//! tell which write any read returned. `RUN` is a random id per run; values
//! of other runs read back as [`Val::Foreign`].

use crate::config::{Cmd, Dist, Mix};
use crate::history::{Key, Val, ValueId};
use bytes::BytesMut;
use evenkeel_resp::encode_command;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// One request of the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Get(u32),
    Set(u32, ValueId),
    Incr(u32),
    Del(u32),
    Mget(Vec<u32>),
    /// EVAL of [`EVAL_INCR`] on a counter key.
    Eval(u32),
}

/// The script `--mix eval=N` runs: an INCR of its key, so the checker
/// treats its replies as INCR's (each value once, in order).
pub const EVAL_INCR: &str = "return redis.call('incr', KEYS[1])";

impl Request {
    pub fn cmd(&self) -> Cmd {
        match self {
            Request::Get(_) => Cmd::Get,
            Request::Set(..) => Cmd::Set,
            Request::Incr(_) => Cmd::Incr,
            Request::Del(_) => Cmd::Del,
            Request::Mget(_) => Cmd::Mget,
            Request::Eval(_) => Cmd::Eval,
        }
    }

    /// The (first) key it names.
    pub fn first_key(&self) -> Key {
        match self {
            Request::Get(k) | Request::Set(k, _) | Request::Del(k) => Key::Data(*k),
            Request::Incr(k) | Request::Eval(k) => Key::Counter(*k),
            Request::Mget(keys) => Key::Data(keys.first().copied().unwrap_or(0)),
        }
    }

    /// Appends the RESP encoding to `out`; `scratch` is reused for the value.
    pub fn encode(&self, values: &ValueCodec, scratch: &mut Vec<u8>, out: &mut BytesMut) {
        match self {
            Request::Get(k) => encode_command(&[b"GET", Key::Data(*k).name().as_bytes()], out),
            Request::Set(k, id) => {
                values.written(*id, scratch);
                encode_command(&[b"SET", Key::Data(*k).name().as_bytes(), scratch], out);
            }
            Request::Incr(k) => encode_command(&[b"INCR", Key::Counter(*k).name().as_bytes()], out),
            Request::Del(k) => encode_command(&[b"DEL", Key::Data(*k).name().as_bytes()], out),
            Request::Mget(keys) => encode_mget(keys.iter().map(|k| Key::Data(*k)), out),
            Request::Eval(k) => encode_command(&[b"EVAL", EVAL_INCR.as_bytes(), b"1", Key::Counter(*k).name().as_bytes()], out),
        }
    }
}

/// `MGET` of `keys`.
pub fn encode_mget(keys: impl Iterator<Item = Key>, out: &mut BytesMut) {
    let names: Vec<String> = keys.map(|k| k.name()).collect();
    let mut args: Vec<&[u8]> = Vec::with_capacity(names.len() + 1);
    args.push(b"MGET");
    args.extend(names.iter().map(|n| n.as_bytes()));
    encode_command(&args, out);
}

/// Writes and recognises this run's values.
#[derive(Debug, Clone, Copy)]
pub struct ValueCodec {
    pub run: u32,
    pub size: usize,
}

impl ValueCodec {
    /// The value of SET `id`, into `out` (cleared first).
    pub fn written(&self, id: ValueId, out: &mut Vec<u8>) {
        use std::io::Write;
        out.clear();
        let _ = write!(out, "{:08x}:{}:{}:", self.run, id.client, id.seq);
        self.pad(out);
    }

    /// The preload value of data key `index`.
    pub fn preload(&self, index: u32, out: &mut Vec<u8>) {
        use std::io::Write;
        out.clear();
        let _ = write!(out, "{:08x}:p:{index}:", self.run);
        self.pad(out);
    }

    fn pad(&self, out: &mut Vec<u8>) {
        if out.len() < self.size {
            out.resize(self.size, b'.');
        }
    }

    /// Decodes a data key's value (`None` is nil).
    pub fn parse(&self, bytes: Option<&[u8]>) -> Val {
        let Some(bytes) = bytes else { return Val::Nil };
        self.parse_ours(bytes).unwrap_or_else(|| Val::Foreign(bytes[..bytes.len().min(48)].into()))
    }

    fn parse_ours(&self, bytes: &[u8]) -> Option<Val> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(4, ':');
        let run = u32::from_str_radix(parts.next()?, 16).ok()?;
        let (who, num, rest) = (parts.next()?, parts.next()?, parts.next()?);
        if run != self.run || rest.bytes().any(|b| b != b'.') {
            return None;
        }
        match who {
            "p" => Some(Val::Preload(num.parse().ok()?)),
            client => Some(Val::Written(ValueId { client: client.parse().ok()?, seq: num.parse().ok()? })),
        }
    }
}

/// Decodes a counter key's value.
pub fn parse_counter(bytes: Option<&[u8]>) -> Val {
    match bytes {
        None => Val::Nil,
        Some(b) => match std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()) {
            Some(n) => Val::Int(n),
            None => Val::Foreign(b[..b.len().min(48)].into()),
        },
    }
}

/// Draws key indices in `0..n` with the configured popularity.
#[derive(Debug, Clone)]
pub enum KeyPicker {
    Uniform(u32),
    /// Rank 1 (index 0) is the most popular key.
    Zipf(Zipf<f64>),
}

impl KeyPicker {
    pub fn new(dist: Dist, n: u32) -> KeyPicker {
        match dist {
            Dist::Uniform => KeyPicker::Uniform(n.max(1)),
            // n ≥ 1 and s > 0 were validated, so this cannot fail.
            Dist::Zipf(s) => KeyPicker::Zipf(Zipf::new(f64::from(n.max(1)), s).expect("valid zipf parameters")),
        }
    }

    pub fn pick(&self, rng: &mut SmallRng) -> u32 {
        match self {
            KeyPicker::Uniform(n) => rng.random_range(0..*n),
            KeyPicker::Zipf(z) => (z.sample(rng) as u32).saturating_sub(1),
        }
    }
}

/// One connection's request generator: deterministic for a given seed.
pub struct Generator {
    rng: SmallRng,
    client: u32,
    seq: u64,
    mix: Mix,
    mget_keys: usize,
    data: KeyPicker,
    counters: KeyPicker,
}

impl Generator {
    pub fn new(seed: u64, client: u32, mix: Mix, mget_keys: usize, data: KeyPicker, counters: KeyPicker) -> Generator {
        let rng = SmallRng::seed_from_u64(seed ^ (u64::from(client) << 32 | u64::from(client)).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Generator { rng, client, seq: 0, mix, mget_keys, data, counters }
    }

    pub fn next_request(&mut self) -> Request {
        let cmd = self.mix.pick(self.rng.random_range(0..self.mix.total()));
        match cmd {
            Cmd::Get => Request::Get(self.data.pick(&mut self.rng)),
            Cmd::Set => {
                self.seq += 1;
                Request::Set(self.data.pick(&mut self.rng), ValueId { client: self.client, seq: self.seq })
            }
            Cmd::Incr => Request::Incr(self.counters.pick(&mut self.rng)),
            Cmd::Eval => Request::Eval(self.counters.pick(&mut self.rng)),
            Cmd::Del => Request::Del(self.data.pick(&mut self.rng)),
            Cmd::Mget => Request::Mget((0..self.mget_keys).map(|_| self.data.pick(&mut self.rng)).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_are_padded() {
        let codec = ValueCodec { run: 0xabc, size: 40 };
        let mut buf = Vec::new();
        let id = ValueId { client: 3, seq: 12345 };
        codec.written(id, &mut buf);
        assert_eq!(buf.len(), 40);
        assert!(buf.starts_with(b"00000abc:3:12345:...."));
        assert_eq!(codec.parse(Some(&buf)), Val::Written(id));
        codec.preload(77, &mut buf);
        assert_eq!(codec.parse(Some(&buf)), Val::Preload(77));
        // Shorter than the id: the id wins over the size.
        let tiny = ValueCodec { run: 1, size: 2 };
        tiny.written(id, &mut buf);
        assert_eq!(tiny.parse(Some(&buf)), Val::Written(id));
        // Another run's value, nil and garbage.
        assert!(matches!(tiny.parse(Some(b"00000abc:3:12345:")), Val::Foreign(_)));
        assert_eq!(codec.parse(None), Val::Nil);
        assert!(matches!(codec.parse(Some(b"00000abc:3:12345:..x")), Val::Foreign(_)));
        assert!(matches!(codec.parse(Some(&[0xff, b':'])), Val::Foreign(_)));
        assert_eq!(parse_counter(Some(b"42")), Val::Int(42));
        assert_eq!(parse_counter(None), Val::Nil);
        assert!(matches!(parse_counter(Some(b"4x")), Val::Foreign(_)));
    }

    #[test]
    fn requests_encode_as_resp() {
        let codec = ValueCodec { run: 1, size: 0 };
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        Request::Set(5, ValueId { client: 2, seq: 9 }).encode(&codec, &mut scratch, &mut out);
        Request::Mget(vec![1, 2]).encode(&codec, &mut scratch, &mut out);
        Request::Incr(0).encode(&codec, &mut scratch, &mut out);
        Request::Eval(3).encode(&codec, &mut scratch, &mut out);
        let expected = "*3\r\n$3\r\nSET\r\n$4\r\nek:5\r\n$13\r\n00000001:2:9:\r\n".to_string()
            + "*3\r\n$4\r\nMGET\r\n$4\r\nek:1\r\n$4\r\nek:2\r\n*2\r\n$4\r\nINCR\r\n$5\r\nekc:0\r\n"
            + &format!("*4\r\n$4\r\nEVAL\r\n${}\r\n{EVAL_INCR}\r\n$1\r\n1\r\n$5\r\nekc:3\r\n", EVAL_INCR.len());
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    }

    fn counts(picker: &KeyPicker, n: usize, draws: usize) -> Vec<usize> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut c = vec![0; n];
        for _ in 0..draws {
            c[picker.pick(&mut rng) as usize] += 1;
        }
        c
    }

    #[test]
    fn zipf_follows_its_law() {
        let (n, s, draws) = (1000usize, 0.99, 200_000);
        let c = counts(&KeyPicker::new(Dist::Zipf(s), n as u32), n, draws);
        let h: f64 = (1..=n).map(|r| 1.0 / (r as f64).powf(s)).sum();
        for rank in [1usize, 2, 10, 100] {
            let expected = draws as f64 / (rank as f64).powf(s) / h;
            let got = c[rank - 1] as f64;
            assert!((got - expected).abs() < expected * 0.1 + 30.0, "rank {rank}: expected ~{expected:.0}, got {got}");
        }
        assert!(c[0] > c[1] && c[1] > c[9] && c[9] > c[99]);
    }

    #[test]
    fn uniform_is_flat() {
        let c = counts(&KeyPicker::new(Dist::Uniform, 10), 10, 100_000);
        assert!(c.iter().all(|&x| (9_000..11_000).contains(&x)), "{c:?}");
    }

    #[test]
    fn generator_follows_the_mix_and_numbers_its_sets() {
        let mix = Mix::parse("get=1,set=1").unwrap();
        let mut g = Generator::new(1, 4, mix, 3, KeyPicker::new(Dist::Uniform, 100), KeyPicker::new(Dist::Uniform, 1));
        let reqs: Vec<Request> = (0..1000).map(|_| g.next_request()).collect();
        let sets: Vec<u64> = reqs.iter().filter_map(|r| if let Request::Set(_, id) = r { Some(id.seq) } else { None }).collect();
        assert!((400..600).contains(&sets.len()));
        assert_eq!(sets, (1..=sets.len() as u64).collect::<Vec<_>>());
        assert!(reqs.iter().all(|r| matches!(r, Request::Get(k) | Request::Set(k, _) if *k < 100)));
    }
}
