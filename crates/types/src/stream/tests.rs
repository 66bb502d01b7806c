use super::*;
use proptest::prelude::*;

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

fn filled(n: u64) -> Stream {
    let mut s = Stream::default();
    for i in 1..=n {
        s.append(id(i, 0), &[Bytes::from_static(b"f"), Bytes::from(i.to_string())]);
    }
    s
}

#[test]
fn ids_parse_as_redis_reads_them() {
    assert_eq!(parse_id(b"5", 0, true, false), Some((id(5, 0), Some(0))));
    assert_eq!(parse_id(b"5", u64::MAX, false, false), Some((id(5, u64::MAX), Some(u64::MAX))), "a missing sequence is the caller's");
    assert_eq!(parse_id(b"5-3", 0, true, false), Some((id(5, 3), Some(3))));
    assert_eq!(parse_id(b"5-*", 0, true, true), Some((id(5, 0), None)), "XADD's ms-*");
    assert_eq!(parse_id(b"5-*", 0, true, false), None);
    assert_eq!(parse_id(b"-", 0, false, false), Some((StreamId::ZERO, Some(0))));
    assert_eq!(parse_id(b"+", 0, false, false), Some((StreamId::MAX, Some(u64::MAX))));
    assert_eq!(parse_id(b"+", 0, true, false), None, "strict refuses - and +");
    assert_eq!(parse_id(b"18446744073709551615-18446744073709551615", 0, true, false), Some((StreamId::MAX, Some(u64::MAX))));
    for bad in [&b""[..], b"x", b"-5", b"5-", b"5-x", b"18446744073709551616", b"1-2-3", b"5 "] {
        assert_eq!(parse_id(bad, 0, true, false), None, "{bad:?}");
    }
    // strtoull's leniency, which string2ull falls back to.
    assert_eq!(parse_id(b" 7", 0, true, false), Some((id(7, 0), Some(0))));
    assert_eq!(parse_id(b"+7-01", 0, true, false), Some((id(7, 1), Some(1))));
    assert_eq!(parse_id(&[b'1'; 128], 0, true, false), None, "longer than Redis's buffer");
}

#[test]
fn next_and_prev_carry_between_ms_and_seq() {
    assert_eq!(id(1, u64::MAX).next(), Some(id(2, 0)));
    assert_eq!(StreamId::MAX.next(), None);
    assert_eq!(id(2, 0).prev(), Some(id(1, u64::MAX)));
    assert_eq!(StreamId::ZERO.prev(), None);
}

#[test]
fn entries_fill_nodes_of_a_hundred_counting_deleted_ones() {
    let mut s = filled(250);
    assert_eq!(s.nodes().iter().map(|n| (n.total, n.live)).collect::<Vec<_>>(), vec![(100, 100), (100, 100), (50, 50)]);
    assert!(s.remove(&id(250, 0)));
    assert!(!s.remove(&id(250, 0)), "once");
    s.append(id(251, 0), &[]);
    assert_eq!(s.nodes()[2].total, 51, "a deleted entry still takes its place in the node");
    for i in 1..=100 {
        s.remove(&id(i, 0));
    }
    assert_eq!(s.nodes().len(), 2, "an emptied node goes");
    assert_eq!(s.first_id(), id(101, 0));
}

#[test]
fn approximate_trimming_removes_whole_nodes_only() {
    let mut s = filled(250);
    assert_eq!(s.trim(Trim::MaxLen(200), true, 10_000), 0, "removing the first node would leave 150");
    assert_eq!(s.trim(Trim::MaxLen(120), true, 10_000), 100);
    assert_eq!(s.len(), 150);
    assert_eq!(s.trim(Trim::MaxLen(0), true, 60), 0, "the next node is past the limit");
    assert_eq!(s.trim(Trim::MinId(id(240, 0)), true, 0), 100, "the node ending at 200 is wholly below 240");
    assert_eq!(s.len(), 50);
}

#[test]
fn exact_trimming_goes_into_the_node() {
    let mut s = filled(250);
    assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 130);
    assert_eq!(s.len(), 120);
    assert_eq!(s.first_id(), id(131, 0));
    assert_eq!((s.nodes()[0].total, s.nodes()[0].live), (100, 70), "the partly trimmed node keeps its count");
    assert_eq!(s.trim(Trim::MinId(id(200, 0)), false, 0), 69);
    assert_eq!(s.first_id(), id(200, 0));
    assert_eq!(s.trim(Trim::MaxLen(0), false, 0), 51);
    assert!(s.is_empty() && s.nodes().is_empty());
    assert_eq!(s.last_id, id(250, 0), "trimming keeps the last ID");
}

#[test]
fn read_counters_are_estimated_as_redis_does() {
    let mut s = filled(5);
    assert_eq!(s.estimate_entries_read(id(5, 0)), 5, "the last entry");
    assert_eq!(s.estimate_entries_read(id(1, 0)), 1, "the first");
    assert_eq!(s.estimate_entries_read(id(0, 5)), 0, "before the first");
    assert_eq!(s.estimate_entries_read(id(3, 0)), -1, "in the middle: unknowable");
    assert_eq!(s.estimate_entries_read(id(9, 0)), -1, "in the future");
    s.remove(&id(3, 0));
    s.max_deleted = id(3, 0);
    assert!(s.has_tombstones_from(id(2, 0)) && !s.has_tombstones_from(id(4, 0)));
    let g = Group::new(id(2, 0), 2);
    assert_eq!(s.lag(&g), None, "a deletion ahead makes the lag unknown");
    let g = Group::new(id(4, 0), 4);
    assert_eq!(s.lag(&g), Some(1));
}

#[test]
fn a_corrupt_encoding_is_refused() {
    let mut s = filled(3);
    let mut g = Group::new(id(2, 0), 2);
    g.consumers.insert(Bytes::from_static(b"c"), Consumer { seen_ms: 7 });
    g.pel.insert(id(1, 0), Pending { consumer: Bytes::from_static(b"c"), delivery_ms: 5, delivery_count: 1 });
    s.groups.insert(Bytes::from_static(b"g"), g);
    let raw = s.encode();
    assert_eq!(Stream::decode(&raw).unwrap(), s);
    assert_eq!(Stream::encoded_last_id(&raw).unwrap(), id(3, 0));
    for cut in 0..raw.len() {
        assert!(Stream::decode(&raw.slice(..cut)).is_err(), "cut at {cut}");
    }
    let mut longer = raw.to_vec();
    longer.push(0);
    assert!(Stream::decode(&Bytes::from(longer)).is_err());
}

proptest! {
    #[test]
    fn round_trips(ops in proptest::collection::vec((0u8..4, 1u64..400, proptest::collection::vec(any::<u8>(), 0..6)), 0..300)) {
        let mut s = Stream::default();
        for (op, n, bytes) in ops {
            match op {
                0 | 1 => {
                    s.append(StreamId::new(s.last_id.ms + 1 + n % 3, n % 2), &[Bytes::from(bytes), Bytes::from_static(b"v")]);
                }
                2 => {
                    let target = s.range(StreamId::ZERO, StreamId::MAX, false).nth(n as usize % 7).map(|e| e.id);
                    if let Some(t) = target {
                        s.remove(&t);
                    }
                }
                _ => {
                    s.trim(Trim::MaxLen(n), n % 2 == 0, 0);
                }
            }
            let live: u32 = s.nodes().iter().map(|n| n.live).sum();
            prop_assert_eq!(live as usize, s.len());
        }
        let raw = s.encode();
        prop_assert_eq!(raw.len(), s.encoded_len());
        prop_assert_eq!(Stream::decode(&raw).unwrap(), s);
    }

    #[test]
    fn decoding_garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Stream::decode(&Bytes::from(raw));
    }
}
