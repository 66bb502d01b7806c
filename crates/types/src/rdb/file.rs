//! An RDB file (what Redis's SAVE and BGSAVE write, `dump.rdb`), read
//! entry by entry from the bytes as they come, so a file of any size is
//! read in pieces.
//!
//! A file is `REDIS` and a four-digit version, then opcodes and keys:
//! auxiliary fields (`AUX`), the database a run of keys belongs to
//! (`SELECTDB`) and its size hint (`RESIZEDB`), a key's expiry in seconds
//! or milliseconds and its LRU or LFU hint, which come before the key they
//! belong to, function libraries (`FUNCTION2`, Redis 7), module data, and
//! each key as its object type, its name and the object, as a DUMP payload
//! holds it. `EOF` ends the file, with a CRC-64 of everything before it
//! (0: not computed). Each key comes out as a DUMP payload framed for
//! [`super::restore`] (RESTORE takes it as it is), with its absolute
//! expiry; a library as its code, for FUNCTION LOAD. Module data cannot be
//! read past (its length is the module's to know): it stops the read.

use super::{CUT_SHORT, MAX_RESTORE_VERSION, MAX_STRING, PayloadError, Reader, object};
use bytes::{BufMut, Bytes, BytesMut};

/// The newest file version read (Redis 7.4's). Keys of the types Redis
/// 7.0 knows are framed as RDB 11 payloads: their encodings did not
/// change.
pub const MAX_FILE_VERSION: u16 = 12;

static FILE_CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

const OP_FUNCTION_PRE_GA: u8 = 246;
const OP_FUNCTION2: u8 = 245;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_EXPIRETIME: u8 = 253;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("not an RDB file: it does not start with REDIS and a version")]
    NotRdb,
    #[error("RDB version {0} is newer than this build reads ({MAX_FILE_VERSION})")]
    Version(u16),
    #[error("the file ends before its EOF marker: it is cut short")]
    Truncated,
    #[error("the file's checksum does not match its contents: it is damaged")]
    Checksum,
    #[error("{0} at byte {1}")]
    Bad(&'static str, u64),
}

/// One entry of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The header, with the file's RDB version.
    Header(u16),
    /// A key of database `db`, its value as a DUMP payload, and its
    /// absolute expiry (Unix ms).
    Key { db: u64, key: Bytes, expire_at_ms: Option<u64>, payload: Bytes },
    /// A function library's code.
    Function(Bytes),
    /// The end of the file (its checksum, if it had one, matched).
    End,
}

/// Reads a file's entries; see the module docs.
pub struct FileReader {
    version: Option<u16>,
    db: u64,
    /// Bytes consumed so far, for error positions.
    offset: u64,
    digest: crc::Digest<'static, u64>,
}

impl Default for FileReader {
    fn default() -> Self {
        FileReader { version: None, db: 0, offset: 0, digest: FILE_CRC.digest() }
    }
}

impl FileReader {
    /// The file's RDB version, once its header was read.
    pub fn version(&self) -> Option<u16> {
        self.version
    }

    /// The next entry in `buf`, the bytes after those consumed so far,
    /// and how many bytes it took: None when `buf` does not hold all of
    /// it yet (give it more bytes; `eof` says no more will come).
    pub fn next(&mut self, buf: &[u8], eof: bool) -> Result<Option<(Entry, usize)>, FileError> {
        let Some(version) = self.version else {
            if buf.len() < 9 {
                return if eof { Err(FileError::NotRdb) } else { Ok(None) };
            }
            let digits = std::str::from_utf8(&buf[5..9]).ok().filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
            let version = match (&buf[..5], digits.and_then(|d| d.parse::<u16>().ok())) {
                (b"REDIS", Some(v)) => v,
                _ => return Err(FileError::NotRdb),
            };
            if version > MAX_FILE_VERSION {
                return Err(FileError::Version(version));
            }
            self.consume(&buf[..9]);
            self.version = Some(version);
            return Ok(Some((Entry::Header(version), 9)));
        };
        let (mut db, mut expire, mut checksum) = (self.db, None, None);
        let mut r = Reader { raw: buf, at: 0, budget: MAX_STRING };
        let cut = |e: PayloadError, offset: u64| match e {
            PayloadError::BadFormat(why) if why == CUT_SHORT => if eof { Err(FileError::Truncated) } else { Ok(None) },
            PayloadError::BadFormat(why) => Err(FileError::Bad(why, offset)),
            PayloadError::VersionOrChecksum => Err(FileError::Bad("a value that does not decode", offset)),
        };
        loop {
            let start = r.at;
            let offset = self.offset + start as u64;
            let step = (|| -> Result<Option<Entry>, PayloadError> {
                let op = r.u8()?;
                Ok(match op {
                    OP_EOF => {
                        if version >= 5 {
                            checksum = Some(u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")));
                        }
                        Some(Entry::End)
                    }
                    OP_SELECTDB => {
                        db = r.len()?;
                        None
                    }
                    OP_RESIZEDB => {
                        r.len()?;
                        r.len()?;
                        None
                    }
                    OP_AUX => {
                        r.string()?;
                        r.string()?;
                        None
                    }
                    OP_EXPIRETIME_MS => {
                        expire = Some(r.millis()?);
                        None
                    }
                    OP_EXPIRETIME => {
                        expire = Some(u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")) as u64 * 1000);
                        None
                    }
                    OP_FREQ => {
                        r.u8()?;
                        None
                    }
                    OP_IDLE => {
                        r.len()?;
                        None
                    }
                    OP_FUNCTION2 => Some(Entry::Function(r.string()?)),
                    OP_MODULE_AUX => return Err(PayloadError::BadFormat("module data (a module's auxiliary fields), which only that module reads")),
                    OP_FUNCTION_PRE_GA => return Err(PayloadError::BadFormat("functions in Redis 7.0's release-candidate format")),
                    ty => {
                        let key = r.string()?;
                        let object_at = r.at;
                        object(ty, &mut r)?;
                        let mut payload = BytesMut::with_capacity(r.at - object_at + 11);
                        payload.put_u8(ty);
                        payload.put_slice(&buf[object_at..r.at]);
                        payload.put_u16_le(version.min(MAX_RESTORE_VERSION));
                        let crc = super::CRC.checksum(&payload);
                        payload.put_u64_le(crc);
                        Some(Entry::Key { db, key, expire_at_ms: expire.take(), payload: payload.freeze() })
                    }
                })
            })();
            match step {
                Ok(Some(entry)) => {
                    // The checksum covers every byte before it (0: none).
                    if let Some(sum) = checksum.filter(|&sum| sum != 0) {
                        let mut digest = self.digest.clone();
                        digest.update(&buf[..r.at - 8]);
                        if sum != digest.finalize() {
                            return Err(FileError::Checksum);
                        }
                    }
                    self.consume(&buf[..r.at]);
                    self.db = db;
                    return Ok(Some((entry, r.at)));
                }
                Ok(None) => continue,
                // Nothing of this attempt is kept: it starts again with
                // more bytes.
                Err(e) => return cut(e, offset),
            }
        }
    }

    fn consume(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
        self.offset += bytes.len() as u64;
    }
}

/// Writes an RDB file (version 10, Redis 7.0's) that Redis 7.0 and later
/// load at startup and [`FileReader`] reads: a header with Redis's usual
/// auxiliary fields, the function libraries, database 0's keys (each from
/// its DUMP payload, with its expiry), and the EOF marker with the CRC-64
/// of everything before it. Each method appends to `out`, which the
/// caller writes out as it likes.
pub struct FileWriter {
    digest: crc::Digest<'static, u64>,
}

impl FileWriter {
    /// Starts a file: its header and auxiliary fields (`redis-ver` names
    /// the Redis whose format the file has).
    pub fn start(out: &mut BytesMut, ctime_s: u64) -> FileWriter {
        let mut w = FileWriter { digest: FILE_CRC.digest() };
        let from = out.len();
        out.put_slice(format!("REDIS{:04}", super::DUMP_VERSION).as_bytes());
        for (k, v) in [("redis-ver", "7.0.15".to_string()), ("redis-bits", "64".into()), ("ctime", ctime_s.to_string()), ("used-mem", "0".into()), ("aof-base", "0".into())] {
            out.put_u8(OP_AUX);
            super::put_string(out, k.as_bytes());
            super::put_string(out, v.as_bytes());
        }
        w.seal(out, from);
        w
    }

    /// A function library, by its code (Redis writes libraries before the
    /// keys).
    pub fn function(&mut self, out: &mut BytesMut, code: &[u8]) {
        let from = out.len();
        out.put_u8(OP_FUNCTION2);
        super::put_string(out, code);
        self.seal(out, from);
    }

    /// Database 0's section, with a hint of its keys and of those that
    /// expire (Redis sizes its tables by it).
    pub fn select_db(&mut self, out: &mut BytesMut, keys: u64, expiring: u64) {
        let from = out.len();
        out.put_u8(OP_SELECTDB);
        super::put_len(out, 0);
        out.put_u8(OP_RESIZEDB);
        super::put_len(out, keys);
        super::put_len(out, expiring);
        self.seal(out, from);
    }

    /// A key, from the DUMP payload of its value (of RDB version 10 or
    /// older, its CRC checked), expiring at `expire_at_ms`.
    pub fn key(&mut self, out: &mut BytesMut, key: &[u8], expire_at_ms: Option<u64>, payload: &[u8]) -> Result<(), PayloadError> {
        if payload.len() < 11 {
            return Err(PayloadError::VersionOrChecksum);
        }
        let (body, footer) = payload.split_at(payload.len() - 10);
        let version = u16::from_le_bytes([footer[0], footer[1]]);
        if version > super::DUMP_VERSION || super::CRC.checksum(&payload[..payload.len() - 8]) != u64::from_le_bytes(footer[2..].try_into().expect("8 bytes")) {
            return Err(PayloadError::VersionOrChecksum);
        }
        let from = out.len();
        if let Some(at) = expire_at_ms {
            out.put_u8(OP_EXPIRETIME_MS);
            out.put_u64_le(at);
        }
        out.put_u8(body[0]);
        super::put_string(out, key);
        out.put_slice(&body[1..]);
        self.seal(out, from);
        Ok(())
    }

    /// Ends the file: the EOF marker and the checksum.
    pub fn end(mut self, out: &mut BytesMut) {
        let from = out.len();
        out.put_u8(OP_EOF);
        self.digest.update(&out[from..]);
        out.put_u64_le(self.digest.finalize());
    }

    fn seal(&mut self, out: &BytesMut, from: usize) {
        self.digest.update(&out[from..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-server 7.0.15's SAVE wrote for: SET s hello, SET n 42,
    /// SET ttl v PXAT 4102444800000, HSET h f v, RPUSH l a b, XADD x 1-1 f
    /// v, and in database 1 SET other db1; and a function library `lib`.
    const REDIS_FILE: &str = "524544495330303130fa0972656469732d76657206372e302e3135fa0a72656469732d62697473c040fa056374696d65c20f36166bfa08757365642d6d656dc2604b1000fa08616f662d62617365c000f5404423216c7561206e616d653d6c69620a72656469732e72656769737465725f66756e6374696f6e282766272c2066756e6374696f6e28292072657475726e203120656e6429fe00fb06010001730568656c6c6f1001680d0d0000000200816602817602ff00016ec02afc00d8c32cbb030000000374746c01761301780110000000000000000100000000000000011d1d0000000a0001010001010181660200010201000100018176020401ff01010101010000010012016c01020d0d0000000200816102816202fffe01fb010000056f7468657203646231ff7252b8e93fb3202c";

    fn file() -> Vec<u8> {
        (0..REDIS_FILE.len()).step_by(2).map(|i| u8::from_str_radix(&REDIS_FILE[i..i + 2], 16).unwrap()).collect()
    }

    /// Reads every entry, feeding the bytes `piece` at a time.
    fn read_all(bytes: &[u8], piece: usize) -> Result<Vec<Entry>, FileError> {
        let (mut reader, mut entries, mut at, mut have) = (FileReader::default(), Vec::new(), 0, 0);
        loop {
            let eof = have == bytes.len();
            match reader.next(&bytes[at..have], eof)? {
                Some((Entry::End, _)) => {
                    entries.push(Entry::End);
                    return Ok(entries);
                }
                Some((entry, n)) => {
                    entries.push(entry);
                    at += n;
                }
                None => have = (have + piece).min(bytes.len()),
            }
        }
    }

    fn keys(entries: &[Entry]) -> Vec<(u64, String, Option<u64>, ValueType)> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Key { db, key, expire_at_ms, payload } => Some((*db, String::from_utf8_lossy(key).into_owned(), *expire_at_ms, super::super::restore(payload).expect("a payload RESTORE reads").0)),
                _ => None,
            })
            .collect()
    }

    use crate::ValueType;

    #[test]
    fn reads_a_redis_7_file_in_pieces_of_any_size() {
        let bytes = file();
        let whole = read_all(&bytes, bytes.len()).unwrap();
        assert_eq!(whole[0], Entry::Header(10));
        assert!(matches!(&whole[1], Entry::Function(code) if code.starts_with(b"#!lua name=lib")));
        assert_eq!(
            keys(&whole),
            vec![
                (0, "s".into(), None, ValueType::String),
                (0, "h".into(), None, ValueType::Hash),
                (0, "n".into(), None, ValueType::String),
                (0, "ttl".into(), Some(4_102_444_800_000), ValueType::String),
                (0, "x".into(), None, ValueType::Stream),
                (0, "l".into(), None, ValueType::List),
                (1, "other".into(), None, ValueType::String),
            ]
        );
        assert_eq!(whole.last(), Some(&Entry::End));
        for piece in [1, 2, 7, 64] {
            assert_eq!(read_all(&bytes, piece).unwrap(), whole, "in pieces of {piece}");
        }
    }

    /// What the writer writes, the reader reads back the same, in pieces.
    #[test]
    fn written_files_read_back() {
        let hash = {
            let mut h = crate::hash::Hash::default();
            h.set(Bytes::from("f"), Bytes::from("v".repeat(100)));
            h.encode()
        };
        let dumps = [(b"a".to_vec(), None, super::super::dump(ValueType::String, &Bytes::from("x".repeat(300))).unwrap()), (b"h".to_vec(), Some(4_102_444_800_123), super::super::dump(ValueType::Hash, &hash).unwrap())];
        let mut out = BytesMut::new();
        let mut w = FileWriter::start(&mut out, 1_700_000_000);
        w.function(&mut out, b"#!lua name=l\nredis.register_function('f', function() return 1 end)");
        w.select_db(&mut out, 2, 1);
        for (key, at, payload) in &dumps {
            w.key(&mut out, key, *at, payload).unwrap();
        }
        assert_eq!(w.key(&mut out, b"bad", None, b"\x00\x01x\x0b\x00junkjunk"), Err(PayloadError::VersionOrChecksum), "a payload of RDB 11 is not written into a version 10 file");
        w.end(&mut out);
        for piece in [3, 1000] {
            let entries = read_all(&out, piece).unwrap();
            assert_eq!(entries[0], Entry::Header(10));
            assert!(matches!(&entries[1], Entry::Function(code) if code.starts_with(b"#!lua name=l")));
            let keys: Vec<_> = entries.iter().filter_map(|e| if let Entry::Key { db, key, expire_at_ms, payload } = e { Some((*db, key.to_vec(), *expire_at_ms, payload.clone())) } else { None }).collect();
            assert_eq!(keys, dumps.iter().map(|(k, at, p)| (0, k.clone(), *at, p.clone())).collect::<Vec<_>>(), "each key's payload as DUMP wrote it");
            assert_eq!(entries.last(), Some(&Entry::End));
        }
    }

    #[test]
    fn refuses_damaged_cut_and_foreign_files() {
        let bytes = file();
        let n = bytes.len();
        let mut damaged = bytes.clone();
        let hello = bytes.windows(5).position(|w| w == b"hello").unwrap();
        damaged[hello] ^= 1;
        assert_eq!(read_all(&damaged, 1000), Err(FileError::Checksum), "a value's byte changed");
        let mut checksum = bytes.clone();
        checksum[n - 1] ^= 1;
        assert_eq!(read_all(&checksum, 1000), Err(FileError::Checksum));
        assert_eq!(read_all(&bytes[..n - 30], 16), Err(FileError::Truncated));
        assert_eq!(read_all(b"PK\x03\x04 not an rdb", 100), Err(FileError::NotRdb));
        assert_eq!(read_all(b"REDIS0099", 100), Err(FileError::Version(99)));
        // A checksum of 0 is not checked (rdbchecksum no).
        let mut unchecked = bytes.clone();
        unchecked[n - 8..].fill(0);
        assert!(read_all(&unchecked, 1000).is_ok());
    }
}
