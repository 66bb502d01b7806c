use super::*;
use crate::stream::{StreamId, Trim};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Payloads redis-server 7.0.15 answered DUMP with.
const REDIS_STRING: &str = "000568656c6c6f0a006372df766534200a"; // "hello"
const REDIS_INT16: &str = "00c139300a009d94ea2793fc08b9"; // "12345"
const REDIS_INT32: &str = "00c290eefeff0a002875de7b13eb2800"; // "-70000"
const REDIS_LZF: &str = "00c3094064016161e057000161610a00e8a3b507b06df271"; // 100 x "a"
const REDIS_HASH: &str = "10151500000004008266310382763103826632031601ff0a00794ee62e9c48a90c"; // f1 v1 f2 22
const REDIS_INTSET: &str = "0b0e02000000030000000100020003000a00a5025ce26d6e4d1b"; // SADD 3 1 2
const REDIS_SET: &str = "0202016201610a0075d99d835ef85f65"; // b, a (its hash table's order)
const REDIS_LIST: &str = "12010210100000000300816102010182626203ff0a00df0af310be9d9e9d"; // a 1 bb
const REDIS_ZSET: &str = "1114140000000400816102010181620283322e3504ff0a00d44c6ea4f644d9d7"; // a 1, b 2.5
/// XADD x 1-1 f v, 1-2 f w, 2-0 g 1; XGROUP CREATE x grp 0; XREADGROUP
/// GROUP grp c1 COUNT 1 (1-1 pending for c1); XDEL x 1-2.
const REDIS_STREAM: &str = "130110000000000000000100000000000000013838000000160002010101010181660200010201000100018176020401030100010101817702040100010101dfff02010181670201010601ff020200010101020301036772700101010100000000000000010000000000000001ecdfa64ea20100000101026331ecdfa64ea201000001000000000000000100000000000000010a00ac2e3ad1bd456415";

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn reads_what_redis_7_dumps() {
    assert_eq!(restore(&hex(REDIS_STRING)).unwrap(), (ValueType::String, b("hello")));
    assert_eq!(restore(&hex(REDIS_INT16)).unwrap(), (ValueType::String, b("12345")));
    assert_eq!(restore(&hex(REDIS_INT32)).unwrap(), (ValueType::String, b("-70000")));
    assert_eq!(restore(&hex(REDIS_LZF)).unwrap(), (ValueType::String, Bytes::from(vec![b'a'; 100])));

    let (ty, v) = restore(&hex(REDIS_HASH)).unwrap();
    assert_eq!(ty, ValueType::Hash);
    let h = Hash::decode(&v).unwrap();
    assert_eq!(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect::<Vec<_>>(), vec![(b("f1"), b("v1")), (b("f2"), b("22"))]);

    let (ty, v) = restore(&hex(REDIS_INTSET)).unwrap();
    assert_eq!(ty, ValueType::Set);
    assert_eq!(Set::decode(&v).unwrap().members().cloned().collect::<Vec<_>>(), vec![b("1"), b("2"), b("3")]);
    let (_, v) = restore(&hex(REDIS_SET)).unwrap();
    assert_eq!(Set::decode(&v).unwrap().members().cloned().collect::<Vec<_>>(), vec![b("b"), b("a")]);

    let (ty, v) = restore(&hex(REDIS_LIST)).unwrap();
    assert_eq!(ty, ValueType::List);
    assert_eq!(List::decode(&v).unwrap().0, vec![b("a"), b("1"), b("bb")]);

    let (ty, v) = restore(&hex(REDIS_ZSET)).unwrap();
    assert_eq!(ty, ValueType::ZSet);
    assert_eq!(ZSet::decode(&v).unwrap().iter().map(|(m, s)| (m.clone(), s)).collect::<Vec<_>>(), vec![(b("a"), 1.0), (b("b"), 2.5)]);
}

#[test]
fn reads_a_redis_stream_with_its_group_and_deleted_entry() {
    let (ty, v) = restore(&hex(REDIS_STREAM)).unwrap();
    assert_eq!(ty, ValueType::Stream);
    let s = crate::stream::Stream::decode(&v).unwrap();
    let ids: Vec<StreamId> = s.range(StreamId::ZERO, StreamId::MAX, false).map(|e| e.id).collect();
    assert_eq!(ids, vec![StreamId::new(1, 1), StreamId::new(2, 0)]);
    let items: Vec<Bytes> = s.get(&StreamId::new(2, 0)).unwrap().items().collect();
    assert_eq!(items, vec![b("g"), b("1")]);
    assert_eq!((s.last_id, s.max_deleted, s.entries_added), (StreamId::new(2, 0), StreamId::new(1, 2), 3));
    // One node of three appended entries, one deleted.
    assert_eq!(s.nodes(), &[Node { first: StreamId::new(1, 1), last: StreamId::new(2, 0), total: 3, live: 2 }]);
    let g = &s.groups[&b("grp")];
    assert_eq!((g.last_id, g.entries_read), (StreamId::new(1, 1), 1));
    let p = &g.pel[&StreamId::new(1, 1)];
    assert_eq!((p.consumer.clone(), p.delivery_count), (b("c1"), 1));
    assert!(p.delivery_ms > 1_600_000_000_000);
    assert!(g.consumers.contains_key(&b("c1")));
}

use crate::stream::Node;

/// For strings and Redis's compact encodings DUMP writes what Redis 7.0
/// writes, byte for byte, but for LZF: Redis's compressor never refers
/// back to the string's first byte, lzf-rust's does, so the same string
/// compresses to other (equally valid) bytes.
#[test]
fn dumps_compact_values_as_redis_7_does() {
    for golden in [REDIS_STRING, REDIS_INT16, REDIS_INT32, REDIS_HASH, REDIS_INTSET, REDIS_SET, REDIS_LIST, REDIS_ZSET] {
        let (ty, v) = restore(&hex(golden)).unwrap();
        assert_eq!(dump(ty, &v).unwrap().to_vec(), hex(golden), "{golden}");
    }
    let (ty, v) = restore(&hex(REDIS_LZF)).unwrap();
    let ours = dump(ty, &v).unwrap();
    assert_eq!(ours[1], 0xC3, "compressed");
    assert_eq!(restore(&ours).unwrap(), (ty, v));
}

#[test]
fn refuses_bad_footers_and_bad_objects() {
    let good = hex(REDIS_STRING);
    assert_eq!(restore(&good[..9]), Err(PayloadError::VersionOrChecksum));
    let mut crc = good.clone();
    *crc.last_mut().unwrap() ^= 1;
    assert_eq!(restore(&crc), Err(PayloadError::VersionOrChecksum));
    let reframe = |body: &[u8], version: u16| {
        let mut p = body.to_vec();
        p.extend_from_slice(&version.to_le_bytes());
        let crc = CRC.checksum(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    let body = &good[..good.len() - 10];
    assert!(restore(&reframe(body, 11)).is_ok());
    assert_eq!(restore(&reframe(body, 12)), Err(PayloadError::VersionOrChecksum));
    // Trailing bytes are ignored, as Redis ignores them.
    assert_eq!(restore(&reframe(&[body, &[0]].concat(), 10)).unwrap(), (ValueType::String, b("hello")));
    // An unknown type, a module value, an empty list.
    assert!(matches!(restore(&reframe(&[99, 0], 10)), Err(PayloadError::BadFormat(_))));
    assert!(matches!(restore(&reframe(&[7, 0], 10)), Err(PayloadError::BadFormat(_))));
    assert!(matches!(restore(&reframe(&[T_LIST, 0], 10)), Err(PayloadError::BadFormat(_))));
    // A set member twice; a hash field twice.
    assert!(matches!(restore(&reframe(&[T_SET, 2, 1, b'a', 1, b'a'], 10)), Err(PayloadError::BadFormat(_))));
    assert!(matches!(restore(&reframe(&[T_HASH, 2, 1, b'a', 1, b'1', 1, b'a', 1, b'2'], 10)), Err(PayloadError::BadFormat(_))));
    // A count far larger than the payload allocates nothing.
    assert!(matches!(restore(&reframe(&[T_LIST, 0x80, 0xff, 0xff, 0xff, 0xff], 10)), Err(PayloadError::BadFormat(_))));
    // An LZF string claiming to expand past what LZF can.
    assert!(matches!(restore(&reframe(&[T_STRING, 0xC3, 1, 0x80, 0x10, 0, 0, 0, 0], 10)), Err(PayloadError::BadFormat(_))));
}

/// The older forms Redis 7.0 still reads: a linked list, a ziplist, the
/// text-score sorted set.
#[test]
fn reads_pre_7_encodings() {
    let reframe = |body: &[u8]| {
        let mut p = body.to_vec();
        p.extend_from_slice(&9u16.to_le_bytes());
        let crc = CRC.checksum(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    // RDB_TYPE_LIST: "x", 7 (int8).
    let (_, v) = restore(&reframe(&[T_LIST, 2, 1, b'x', 0xC0, 7])).unwrap();
    assert_eq!(List::decode(&v).unwrap().0, vec![b("x"), b("7")]);
    // A ziplist of "a", 1024 (int16), -5 (int8), 12 (immediate), 300000 (int24).
    let mut zl = vec![0u8; 10];
    zl.extend_from_slice(&[0, 0x01, b'a']);
    zl.extend_from_slice(&[3, 0xC0, 0x00, 0x04]);
    zl.extend_from_slice(&[4, 0xFE, 0xFB]);
    zl.extend_from_slice(&[3, 0xFD]);
    zl.extend_from_slice(&[2, 0xF0, 0xE0, 0x93, 0x04]);
    zl.push(0xFF);
    let n = zl.len() as u32;
    zl[..4].copy_from_slice(&n.to_le_bytes());
    zl[8..10].copy_from_slice(&5u16.to_le_bytes());
    assert_eq!(listpack::ziplist(&zl).unwrap(), vec![b("a"), b("1024"), b("-5"), b("12"), b("300000")]);
    let mut payload = vec![T_LIST_ZIPLIST, zl.len() as u8];
    payload.extend_from_slice(&zl);
    let (_, v) = restore(&reframe(&payload)).unwrap();
    assert_eq!(List::decode(&v).unwrap().0.len(), 5);
    // RDB_TYPE_ZSET: "m" scored "1.5", "n" scored +inf.
    let (_, v) = restore(&reframe(&[T_ZSET, 2, 1, b'm', 3, b'1', b'.', b'5', 1, b'n', 254])).unwrap();
    assert_eq!(ZSet::decode(&v).unwrap().iter().map(|(_, s)| s).collect::<Vec<_>>(), vec![1.5, f64::INFINITY]);
}

/// A ziplist of short strings (as Redis 6 wrote small hashes, sorted sets
/// and list nodes).
fn ziplist_of(items: &[&str]) -> Vec<u8> {
    let mut zl = vec![0u8; 10];
    let mut prev = 0u8;
    for item in items {
        zl.extend_from_slice(&[prev, item.len() as u8]);
        zl.extend_from_slice(item.as_bytes());
        prev = 2 + item.len() as u8;
    }
    zl.push(0xFF);
    let n = zl.len() as u32;
    zl[..4].copy_from_slice(&n.to_le_bytes());
    zl[8..10].copy_from_slice(&(items.len() as u16).to_le_bytes());
    zl
}

/// `body` framed as a payload of RDB `version`.
fn framed(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = CRC.checksum(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// The other encodings Redis 6 (ziplists, quicklist v1, stream v1) and
/// Redis 7.2 (listpack sets, stream v3) write.
#[test]
fn reads_the_encodings_of_redis_6_and_7_2() {
    let blob = |ty: u8, zl: &[u8]| {
        let mut body = BytesMut::new();
        body.put_u8(ty);
        put_string(&mut body, zl);
        body.to_vec()
    };
    let (ty, v) = restore(&framed(&blob(T_ZSET_ZIPLIST, &ziplist_of(&["m", "1.5", "n", "2"])), 9)).unwrap();
    assert_eq!(ty, ValueType::ZSet);
    assert_eq!(ZSet::decode(&v).unwrap().iter().map(|(m, s)| (m.clone(), s)).collect::<Vec<_>>(), vec![(b("m"), 1.5), (b("n"), 2.0)]);
    let (ty, v) = restore(&framed(&blob(T_HASH_ZIPLIST, &ziplist_of(&["f", "v", "g", "12"])), 9)).unwrap();
    assert_eq!(ty, ValueType::Hash);
    assert_eq!(Hash::decode(&v).unwrap().get(b"g"), Some(&b("12")));
    assert!(matches!(restore(&framed(&blob(T_HASH_ZIPLIST, &ziplist_of(&["f", "v", "g"])), 9)), Err(PayloadError::BadFormat(_))), "a field without a value");
    // Quicklist v1: two ziplist nodes.
    let mut body = BytesMut::new();
    body.put_u8(T_LIST_QUICKLIST);
    put_len(&mut body, 2);
    put_string(&mut body, &ziplist_of(&["a", "b"]));
    put_string(&mut body, &ziplist_of(&["c"]));
    let (ty, v) = restore(&framed(&body, 9)).unwrap();
    assert_eq!((ty, List::decode(&v).unwrap().0), (ValueType::List, vec![b("a"), b("b"), b("c")].into()));
    // Redis 7.2's listpack set.
    let mut lp = listpack::Writer::default();
    lp.string(b"a");
    lp.string(b"5");
    let (ty, v) = restore(&framed(&blob(T_SET_LISTPACK, &lp.finish()), 11)).unwrap();
    assert_eq!((ty, Set::decode(&v).unwrap().members().cloned().collect::<Vec<_>>()), (ValueType::Set, vec![b("a"), b("5")]));
    // Redis 7.2's stream (v3): no entries, a group with a consumer that
    // has a seen and an active time.
    let mut body = BytesMut::new();
    body.put_u8(T_STREAM_LISTPACKS_3);
    for n in [0, 0, 5, 5, 0, 0, 0, 0, 7, 1] {
        put_len(&mut body, n); // nodes, length, last ID, first ID, max deleted, added, groups
    }
    put_string(&mut body, b"g");
    for n in [5, 5, 7, 0, 1] {
        put_len(&mut body, n); // last ID, entries read, pending, consumers
    }
    put_string(&mut body, b"c");
    body.put_u64_le(1000);
    body.put_u64_le(2000);
    put_len(&mut body, 0);
    let (ty, v) = restore(&framed(&body, 11)).unwrap();
    let s = crate::stream::Stream::decode(&v).unwrap();
    assert_eq!((ty, s.last_id, s.entries_added, s.is_empty()), (ValueType::Stream, StreamId::new(5, 5), 7, true));
    let g = &s.groups[&b("g")];
    assert_eq!((g.last_id, g.entries_read, g.consumers[&b("c")].seen_ms), (StreamId::new(5, 5), 7, 1000));
    // Redis 6's stream (v1): no first ID, deleted ID, entries added or
    // entries read; those are derived.
    let mut body = BytesMut::new();
    body.put_u8(T_STREAM_LISTPACKS);
    for n in [0, 0, 3, 0, 1] {
        put_len(&mut body, n); // nodes, length, last ID, groups
    }
    put_string(&mut body, b"g");
    for n in [3, 0, 0, 0] {
        put_len(&mut body, n); // last ID, pending, consumers
    }
    let (_, v) = restore(&framed(&body, 9)).unwrap();
    let s = crate::stream::Stream::decode(&v).unwrap();
    assert_eq!((s.last_id, s.entries_added, s.groups[&b("g")].entries_read), (StreamId::new(3, 0), 0, 0));
}

/// Values past Redis's compact limits take its general encodings, and
/// come back the same.
#[test]
fn large_values_round_trip() {
    let hash: Hash = {
        let mut h = Hash::default();
        for i in 0..600 {
            h.set(Bytes::from(format!("f{i}")), Bytes::from(format!("{i}")));
        }
        h
    };
    let payload = dump(ValueType::Hash, &hash.encode()).unwrap();
    assert_eq!(payload[0], T_HASH);
    assert_eq!(Hash::decode(&restore(&payload).unwrap().1).unwrap(), hash);

    let set: Set = (0..600).map(|i| Bytes::from(i.to_string())).collect();
    let payload = dump(ValueType::Set, &set.encode()).unwrap();
    assert_eq!(payload[0], T_SET);
    assert_eq!(Set::decode(&restore(&payload).unwrap().1).unwrap(), set);

    let z: ZSet = (0..200).map(|i| (Bytes::from(format!("m{i}")), i as f64 / 3.0)).collect();
    let payload = dump(ValueType::ZSet, &z.encode()).unwrap();
    assert_eq!(payload[0], T_ZSET_2);
    assert_eq!(ZSet::decode(&restore(&payload).unwrap().1).unwrap(), z);

    let list = List((0..5000).map(|i| Bytes::from(format!("element-{i}"))).collect());
    let payload = dump(ValueType::List, &list.encode()).unwrap();
    let (_, v) = restore(&payload).unwrap();
    assert_eq!(List::decode(&v).unwrap(), list);
    // Several quicklist nodes, none over 8 KiB.
    assert!(payload[1] > 5, "nodes: {}", payload[1]);

    let mut s = crate::stream::Stream::default();
    for i in 1..=350u64 {
        s.append(StreamId::new(i, 0), &[b("field"), Bytes::from(i.to_string()), Bytes::from(format!("f{}", i % 3)), b("x")]);
    }
    s.remove(&StreamId::new(5, 0));
    s.trim(Trim::MaxLen(300), true, 0);
    let mut g = Group::new(StreamId::new(10, 0), 9);
    g.consumers.insert(b("alice"), Consumer { seen_ms: 42 });
    g.consumers.insert(b("bob"), Consumer { seen_ms: 43 });
    g.pel.insert(StreamId::new(101, 0), Pending { consumer: b("bob"), delivery_ms: 7, delivery_count: 2 });
    g.pel.insert(StreamId::new(102, 0), Pending { consumer: b("alice"), delivery_ms: 8, delivery_count: 1 });
    s.groups.insert(b("g"), g);
    let payload = dump(ValueType::Stream, &s.encode()).unwrap();
    let back = crate::stream::Stream::decode(&restore(&payload).unwrap().1).unwrap();
    assert_eq!(back.len(), s.len());
    assert_eq!(back.groups, s.groups);
    assert_eq!((back.last_id, back.max_deleted, back.entries_added), (s.last_id, s.max_deleted, s.entries_added));
    // Node boundaries are kept (a node's deleted entries are not written).
    assert_eq!(back.nodes().iter().map(|n| (n.first, n.last, n.live)).collect::<Vec<_>>(), s.nodes().iter().map(|n| (n.first, n.last, n.live)).collect::<Vec<_>>());
    assert!(back.range(StreamId::ZERO, StreamId::MAX, false).zip(s.range(StreamId::ZERO, StreamId::MAX, false)).all(|(a, b)| a == b));
}

use crate::stream::{Consumer, Group, Pending};

fn bytes_strategy() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(Bytes::from),
        any::<i64>().prop_map(|v| Bytes::from(v.to_string())),
        (0i64..200).prop_map(|v| Bytes::from(v.to_string())),
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..5000).prop_map(Bytes::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_value_round_trips(ty in 0u8..5, items in proptest::collection::vec(bytes_strategy(), 1..40), scores in proptest::collection::vec(-1e6f64..1e6, 40)) {
        let (vt, value) = match ty {
            0 => (ValueType::String, items[0].clone()),
            1 => {
                let mut h = Hash::default();
                for pair in items.chunks(2) {
                    h.set(pair[0].clone(), pair.get(1).cloned().unwrap_or_default());
                }
                (ValueType::Hash, h.encode())
            }
            2 => (ValueType::Set, items.iter().cloned().collect::<Set>().encode()),
            3 => (ValueType::List, List(items.iter().cloned().collect()).encode()),
            _ => (ValueType::ZSet, items.iter().cloned().zip(scores.iter().copied()).collect::<ZSet>().encode()),
        };
        let payload = dump(vt, &value).unwrap();
        let (back_ty, back) = restore(&payload).unwrap();
        prop_assert_eq!(back_ty, vt);
        match vt {
            // A set of integers comes back in intset (ascending) order.
            ValueType::Set => {
                let mut a: Vec<Bytes> = Set::decode(&back).unwrap().members().cloned().collect();
                let mut e: Vec<Bytes> = Set::decode(&value).unwrap().members().cloned().collect();
                a.sort();
                e.sort();
                prop_assert_eq!(a, e);
            }
            _ => prop_assert_eq!(back, value),
        }
    }

    /// Whatever a payload holds, reading it answers, never panics.
    #[test]
    fn restore_never_panics(ty in 0u8..24, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut p = vec![ty];
        p.extend_from_slice(&body);
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = CRC.checksum(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        let _ = restore(&p);
    }

    /// Nor does a real payload with bytes changed (its CRC fixed up).
    #[test]
    fn damaged_payloads_never_panic(which in 0usize..3, at in any::<prop::sample::Index>(), to: u8) {
        let mut p = hex([REDIS_STREAM, REDIS_HASH, REDIS_LIST][which]);
        let body = p.len() - 10;
        p[at.index(body)] = to;
        let crc = CRC.checksum(&p[..p.len() - 8]);
        let n = p.len();
        p[n - 8..].copy_from_slice(&crc.to_le_bytes());
        let _ = restore(&p);
    }
}
