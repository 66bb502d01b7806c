//! Byte-level formats of the embedded store: CRC-checked frames and the
//! compact little-endian encoding of log records and snapshots.
//!
//! Frame: `len u32 | crc32(len bytes) u32 | crc32(payload) u32 | payload`.
//! The header has its own checksum so a damaged length is reported as
//! corruption instead of being mistaken for a torn (truncated) tail.

use crate::store::{KeyValue, LeaseId, Revision};

pub(crate) const FRAME_HEADER_LEN: usize = 12;

/// CRC-32 (IEEE, as zlib/gzip). Hand-rolled: 20 lines beat a dependency.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

pub(crate) fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame payload below 4 GiB");
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(&len.to_le_bytes()).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Result of scanning a buffer of frames.
#[derive(Debug)]
pub(crate) struct Frames<'a> {
    /// (offset of the frame in the buffer, payload)
    pub payloads: Vec<(usize, &'a [u8])>,
    /// Bytes covered by intact frames; everything after is a torn tail.
    pub valid_len: usize,
}

/// Splits `buf` into frame payloads. A damaged final frame that a crash
/// mid-append can explain (short header, payload running past the end, bad
/// payload checksum on the very last frame, or an all-zero tail) is dropped;
/// any other damage is an error describing where it is. Scanning starts at
/// `start` (past any file header) so offsets are file offsets.
pub(crate) fn parse_frames(buf: &[u8], start: usize) -> Result<Frames<'_>, String> {
    let mut payloads = Vec::new();
    let mut pos = start;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let torn = Frames {
            payloads: Vec::new(),
            valid_len: pos,
        };
        if rest.len() < FRAME_HEADER_LEN || rest.iter().all(|&b| b == 0) {
            return Ok(Frames { payloads, ..torn });
        }
        let len_bytes: [u8; 4] = rest[0..4].try_into().expect("4 bytes");
        let header_crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if crc32(&len_bytes) != header_crc {
            return Err(format!("frame header checksum mismatch at offset {pos}"));
        }
        let len = u32::from_le_bytes(len_bytes) as usize;
        let payload_crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
        let end = FRAME_HEADER_LEN + len;
        if rest.len() < end {
            return Ok(Frames { payloads, ..torn });
        }
        let payload = &rest[FRAME_HEADER_LEN..end];
        if crc32(payload) != payload_crc {
            if rest.len() == end {
                return Ok(Frames { payloads, ..torn });
            }
            return Err(format!("frame payload checksum mismatch at offset {pos}"));
        }
        payloads.push((pos, payload));
        pos += end;
    }
    Ok(Frames {
        payloads,
        valid_len: pos,
    })
}

/// One durable mutation. Records carry their revisions so replay can check
/// that the log is gap-free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Put {
        revision: Revision,
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        revision: Revision,
        key: String,
    },
    GrantLease {
        id: LeaseId,
        ttl_ms: u64,
    },
    /// Revocation or expiry: `keys` (sorted) are deleted at `first_revision`,
    /// `first_revision + 1`, ... in one atomic record.
    RevokeLease {
        id: LeaseId,
        first_revision: Revision,
        keys: Vec<String>,
    },
}

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_GRANT: u8 = 3;
const TAG_REVOKE: u8 = 4;

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        match self {
            Record::Put {
                revision,
                key,
                value,
                lease,
            } => {
                e.u8(TAG_PUT)
                    .u64(*revision)
                    .str(key)
                    .bytes(value)
                    .lease(*lease);
            }
            Record::Delete { revision, key } => {
                e.u8(TAG_DELETE).u64(*revision).str(key);
            }
            Record::GrantLease { id, ttl_ms } => {
                e.u8(TAG_GRANT).i64(*id).u64(*ttl_ms);
            }
            Record::RevokeLease {
                id,
                first_revision,
                keys,
            } => {
                e.u8(TAG_REVOKE)
                    .i64(*id)
                    .u64(*first_revision)
                    .u32(keys.len());
                for key in keys {
                    e.str(key);
                }
            }
        }
        e.0
    }

    /// Decodes one commit's frame payload: its records back to back (one,
    /// or several when concurrent writers shared an fsync).
    pub(crate) fn decode_commit(buf: &[u8]) -> Result<Vec<Record>, String> {
        let mut d = Decoder(buf);
        let mut records = Vec::with_capacity(1);
        loop {
            records.push(Record::decode_next(&mut d)?);
            if d.0.is_empty() {
                return Ok(records);
            }
        }
    }

    /// Encodes one commit's frame payload (`decode_commit`'s inverse).
    pub(crate) fn encode_commit<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
        records.into_iter().flat_map(Record::encode).collect()
    }

    fn decode_next(d: &mut Decoder<'_>) -> Result<Record, String> {
        let record = match d.u8()? {
            TAG_PUT => Record::Put {
                revision: d.u64()?,
                key: d.str()?,
                value: d.bytes()?,
                lease: d.lease()?,
            },
            TAG_DELETE => Record::Delete {
                revision: d.u64()?,
                key: d.str()?,
            },
            TAG_GRANT => Record::GrantLease {
                id: d.i64()?,
                ttl_ms: d.u64()?,
            },
            TAG_REVOKE => {
                let (id, first_revision) = (d.i64()?, d.u64()?);
                let count = d.u32()?;
                let keys = (0..count).map(|_| d.str()).collect::<Result<_, _>>()?;
                Record::RevokeLease {
                    id,
                    first_revision,
                    keys,
                }
            }
            tag => return Err(format!("unknown record tag {tag}")),
        };
        Ok(record)
    }
}

/// Full state at one revision; the log that follows it is `wal-{generation}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub generation: u64,
    pub revision: Revision,
    pub next_lease_id: LeaseId,
    /// (lease, ttl in ms); deadlines are not durable.
    pub leases: Vec<(LeaseId, u64)>,
    pub kvs: Vec<KeyValue>,
}

impl Snapshot {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u64(self.generation)
            .u64(self.revision)
            .i64(self.next_lease_id);
        e.u32(self.leases.len());
        for (id, ttl_ms) in &self.leases {
            e.i64(*id).u64(*ttl_ms);
        }
        e.u32(self.kvs.len());
        for kv in &self.kvs {
            e.str(&kv.key)
                .bytes(&kv.value)
                .u64(kv.create_revision)
                .u64(kv.mod_revision);
            e.lease(kv.lease);
        }
        e.0
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Snapshot, String> {
        let mut d = Decoder(buf);
        let (generation, revision, next_lease_id) = (d.u64()?, d.u64()?, d.i64()?);
        let lease_count = d.u32()?;
        let leases = (0..lease_count)
            .map(|_| Ok((d.i64()?, d.u64()?)))
            .collect::<Result<_, String>>()?;
        let kv_count = d.u32()?;
        let kvs = (0..kv_count)
            .map(|_| {
                Ok(KeyValue {
                    key: d.str()?,
                    value: d.bytes()?,
                    create_revision: d.u64()?,
                    mod_revision: d.u64()?,
                    lease: d.lease()?,
                })
            })
            .collect::<Result<_, String>>()?;
        d.finish()?;
        Ok(Snapshot {
            generation,
            revision,
            next_lease_id,
            leases,
            kvs,
        })
    }
}

#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: usize) -> &mut Self {
        let v = u32::try_from(v).expect("count below 4 Gi");
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len());
        self.0.extend_from_slice(v);
        self
    }
    fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// 0 encodes "no lease": backends never issue lease 0.
    fn lease(&mut self, v: Option<LeaseId>) -> &mut Self {
        self.i64(v.unwrap_or(0))
    }
}

struct Decoder<'a>(&'a [u8]);

impl Decoder<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("record truncated".into());
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return Err("record truncated".into());
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head.to_vec())
    }
    fn str(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?).map_err(|_| "key is not UTF-8".to_string())
    }
    fn lease(&mut self) -> Result<Option<LeaseId>, String> {
        Ok(match self.i64()? {
            0 => None,
            id => Some(id),
        })
    }
    fn finish(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes after record", self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records() -> Vec<Record> {
        vec![
            Record::Put {
                revision: 2,
                key: "a".into(),
                value: b"x".to_vec(),
                lease: None,
            },
            Record::Put {
                revision: 3,
                key: "ü/b".into(),
                value: vec![],
                lease: Some(7),
            },
            Record::Delete {
                revision: 4,
                key: "a".into(),
            },
            Record::GrantLease {
                id: 7,
                ttl_ms: 1500,
            },
            Record::RevokeLease {
                id: 7,
                first_revision: 5,
                keys: vec!["k1".into(), "k2".into()],
            },
        ]
    }

    fn framed(records: &[Record]) -> Vec<u8> {
        records
            .iter()
            .flat_map(|r| encode_frame(&r.encode()))
            .collect()
    }

    #[test]
    fn crc32_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn records_round_trip() {
        for record in sample_records() {
            assert_eq!(Record::decode_commit(&record.encode()).unwrap(), vec![record]);
        }
        // A commit of several records (writers that shared an fsync).
        let all = sample_records();
        assert_eq!(Record::decode_commit(&Record::encode_commit(&all)).unwrap(), all);
    }

    #[test]
    fn snapshot_round_trip() {
        let snap = Snapshot {
            generation: 3,
            revision: 42,
            next_lease_id: 9,
            leases: vec![(7, 1000), (8, 20)],
            kvs: vec![KeyValue {
                key: "k".into(),
                value: b"v".to_vec(),
                create_revision: 5,
                mod_revision: 40,
                lease: Some(7),
            }],
        };
        assert_eq!(Snapshot::decode(&snap.encode()).unwrap(), snap);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(Record::decode_commit(&[99]).is_err());
        assert!(Record::decode_commit(&[]).unwrap_err().contains("truncated"), "a commit holds a record");
        let mut bytes = sample_records()[0].encode();
        bytes.push(0);
        assert!(Record::decode_commit(&bytes).unwrap_err().contains("unknown record tag 0"));
        assert!(
            Record::decode_commit(&bytes[..5])
                .unwrap_err()
                .contains("truncated")
        );
    }

    #[test]
    fn every_truncation_is_a_torn_tail() {
        let records = sample_records();
        let buf = framed(&records);
        let boundaries: Vec<usize> = records
            .iter()
            .scan(0, |pos, r| {
                *pos += FRAME_HEADER_LEN + r.encode().len();
                Some(*pos)
            })
            .collect();
        for cut in 0..buf.len() {
            let frames = parse_frames(&buf[..cut], 0).unwrap();
            let whole = boundaries.iter().filter(|&&b| b <= cut).count();
            assert_eq!(frames.payloads.len(), whole, "cut at {cut}");
            assert_eq!(
                frames.valid_len,
                if whole == 0 { 0 } else { boundaries[whole - 1] }
            );
        }
        assert_eq!(parse_frames(&buf, 0).unwrap().payloads.len(), records.len());
    }

    #[test]
    fn zeroed_tail_is_torn() {
        let mut buf = framed(&sample_records()[..2]);
        let valid = buf.len();
        buf.extend_from_slice(&[0; 100]);
        let frames = parse_frames(&buf, 0).unwrap();
        assert_eq!((frames.payloads.len(), frames.valid_len), (2, valid));
    }

    #[test]
    fn damage_before_the_last_frame_is_corruption() {
        let records = sample_records();
        let buf = framed(&records);
        let mut start = 0;
        // Flipping any byte of any frame but the last must be reported, at that frame.
        for record in &records[..records.len() - 1] {
            let end = start + FRAME_HEADER_LEN + record.encode().len();
            for pos in start..end {
                let mut bad = buf.clone();
                bad[pos] ^= 0x40;
                let err = parse_frames(&bad, 0).expect_err(&format!("flip at {pos}"));
                assert!(err.ends_with(&format!("at offset {start}")), "{err}");
            }
            start = end;
        }
    }

    #[test]
    fn damaged_last_payload_is_torn() {
        let mut buf = framed(&sample_records());
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(parse_frames(&buf, 0).unwrap().payloads.len(), 4);
    }
}
