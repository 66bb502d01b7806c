use super::*;

/// One key, run command after command against it.
struct One(Key);

impl One {
    fn new() -> One {
        One(Key::new(Bytes::from_static(b"s"), Value::Absent))
    }

    fn run_at(&mut self, now_ms: u64, line: &str) -> Reply {
        let args: Vec<Bytes> = line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        self.0.changed = false;
        run(&args, std::slice::from_mut(&mut self.0), now_ms, 1 << 20)
    }

    fn run(&mut self, line: &str) -> Reply {
        self.run_at(1_000, line)
    }

    fn stream(&self) -> &Stream {
        let Value::Stream(s) = &self.0.value else { panic!("no stream") };
        s
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn ids(r: &Reply) -> Vec<String> {
    let Reply::Array(items) = r else { panic!("{r:?}") };
    items
        .iter()
        .map(|e| match e {
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Array(pair) => match &pair[0] {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn xadd_makes_ids_that_only_grow() {
    let mut s = One::new();
    assert_eq!(s.run_at(500, "XADD s * a 1"), bulk("500-0"));
    assert_eq!(s.run_at(400, "XADD s * a 1"), bulk("500-1"), "a clock behind the last ID adds to its sequence");
    assert_eq!(s.run("XADD s 500-* a 1"), bulk("500-2"));
    assert_eq!(s.run("XADD s 600-* a 1"), bulk("600-0"));
    assert_eq!(s.run("XADD s 600 a 1"), err("The ID specified in XADD is equal or smaller than the target stream top item"));
    assert_eq!(s.run("XADD s 0-0 a 1"), err("The ID specified in XADD must be greater than 0-0"));
    assert_eq!(s.run("XADD s 700 a"), wrong_arity("xadd"));
    assert_eq!(s.run("XADD s MAXLEN 1"), wrong_arity("xadd"), "no ID: the fields are missing");
    assert_eq!(s.run("XADD s LIMIT 5 700 a 1"), err("syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    assert_eq!(s.run("XADD s MAXLEN = 1 LIMIT 5 700 a 1"), err("syntax error, LIMIT cannot be used without the special ~ option"));
    assert!(!s.0.changed, "errors write nothing");
    assert_eq!(s.run("XADD s MAXLEN = 2 700 a 1"), bulk("700-0"));
    assert_eq!(ids(&s.run("XRANGE s - +")), ["600-0", "700-0"]);
    let mut missing = One::new();
    assert_eq!(missing.run("XADD s NOMKSTREAM 1 a 1"), Reply::Nil);
    assert_eq!(missing.0.value, Value::Absent);
    missing.0.value = Value::Other;
    assert_eq!(missing.run("XADD s 1 a 1"), wrong_type());
}

#[test]
fn xrange_bounds_count_and_direction() {
    let mut s = One::new();
    for i in 1..=5 {
        s.run(&format!("XADD s {i}-1 f {i}"));
    }
    assert_eq!(ids(&s.run("XRANGE s (2-1 4")), ["3-1", "4-1"], "an incomplete end takes every sequence");
    assert_eq!(ids(&s.run("XREVRANGE s + - COUNT 2")), ["5-1", "4-1"]);
    assert_eq!(s.run("XRANGE s - + COUNT 0"), Reply::NilArray);
    assert_eq!(s.run("XRANGE s (- +"), invalid_id(), "an exclusive bound must be an ID");
    assert_eq!(s.run("XRANGE s (18446744073709551615-18446744073709551615 +"), err("invalid start ID for the interval"));
    assert_eq!(s.run("XRANGE s - + LIMIT 1"), syntax_error());
    let mut missing = One::new();
    assert_eq!(missing.run("XRANGE s - + COUNT 0"), Reply::Array(vec![]), "a missing key answers before COUNT 0 does");
}

#[test]
fn a_group_delivers_each_entry_once_and_tracks_what_is_pending() {
    let mut s = One::new();
    assert_eq!(s.run("XGROUP CREATE s g $"), err("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
    assert_eq!(s.run("XGROUP CREATE s g $ MKSTREAM"), Reply::Ok);
    assert_eq!(s.run("XGROUP CREATE s g $"), Reply::Error("BUSYGROUP Consumer Group name already exists".into()));
    for i in 1..=3 {
        s.run(&format!("XADD s {i} f {i}"));
    }
    let Reply::NestedMap(streams) = s.run_at(2_000, "XREADGROUP GROUP g alice COUNT 2 STREAMS s >") else { panic!() };
    assert_eq!(ids(&streams[0].1), ["1-0", "2-0"]);
    assert!(s.0.changed);
    let Reply::NestedMap(streams) = s.run_at(2_000, "XREADGROUP GROUP g bob STREAMS s >") else { panic!() };
    assert_eq!(ids(&streams[0].1), ["3-0"]);
    assert_eq!(s.run("XREADGROUP GROUP g bob STREAMS s >"), Reply::NilArray, "nothing new: the null a blocked read waits on");
    let g = &s.stream().groups[&Bytes::from_static(b"g")];
    assert_eq!((g.last_id, g.entries_read, g.pel.len()), (StreamId::new(3, 0), 3, 3));
    assert_eq!(s.run("XACK s g 1 9"), Reply::Int(1));
    assert_eq!(s.run("XACK s g 1 x"), invalid_id());
    // alice's history: 2-0 only, now delivered twice.
    let Reply::NestedMap(streams) = s.run("XREADGROUP GROUP g alice STREAMS s 0") else { panic!() };
    assert_eq!(ids(&streams[0].1), ["2-0"]);
    assert_eq!(s.stream().groups[&Bytes::from_static(b"g")].pel[&StreamId::new(2, 0)].delivery_count, 2);
    // Claims: 3-0 idle 1 s at 3 000 is claimable with min-idle 1 000.
    assert_eq!(ids(&s.run_at(3_000, "XCLAIM s g alice 1000 3 JUSTID")), ["3-0"]);
    assert_eq!(ids(&s.run_at(3_000, "XCLAIM s g bob 1000 3")), Vec::<String>::new(), "just claimed: not idle");
    s.run("XDEL s 2");
    let Reply::Array(auto) = s.run_at(9_000, "XAUTOCLAIM s g carol 0 0") else { panic!() };
    assert_eq!(auto[0], bulk("0-0"), "the whole PEL was scanned");
    assert_eq!(ids(&auto[1]), ["3-0"]);
    assert_eq!(ids(&auto[2]), ["2-0"], "a deleted entry leaves the PEL");
    assert_eq!(s.run("XPENDING s g"), Reply::Array(vec![Reply::Int(1), bulk("3-0"), bulk("3-0"), Reply::Array(vec![Reply::Array(vec![bulk("carol"), bulk("1")])])]));
    assert_eq!(s.run("XGROUP DELCONSUMER s g carol"), Reply::Int(1));
    assert_eq!(s.run("XPENDING s g"), Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
    assert_eq!(s.run("XPENDING s nog"), Reply::Error("NOGROUP No such key 's' or consumer group 'nog'".into()));
}

#[test]
fn xread_checks_each_stream_in_turn() {
    let mut keys = vec![Key::new(Bytes::from_static(b"a"), Value::Absent), Key::new(Bytes::from_static(b"b"), Value::Other)];
    let args = |line: &str| line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect::<Vec<_>>();
    assert_eq!(run(&args("XREAD STREAMS a b 0 0"), &mut keys, 1, 1 << 20), wrong_type());
    assert_eq!(run(&args("XREAD STREAMS a 0"), &mut keys, 1, 1 << 20), Reply::NilArray);
    assert_eq!(run(&args("XREAD STREAMS a >"), &mut keys, 1, 1 << 20), err("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
    assert_eq!(run(&args("XREADGROUP GROUP g c STREAMS a >"), &mut keys, 1, 1 << 20), Reply::Error("NOGROUP No such key 'a' or consumer group 'g' in XREADGROUP with GROUP option".into()));
    assert_eq!(super::keys(&args("XREAD COUNT 1 STREAMS a b a 0 0 0"), 1).unwrap(), vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")], "each key once");
    assert_eq!(super::keys(&args("XREAD STREAMS a b 0"), 1), Err(err("Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.")));
    assert_eq!(ReadArgs::parse(&args("XREAD BLOCK -1 STREAMS a 0"), 1), Err(err("timeout is negative")));
    assert_eq!(ReadArgs::parse(&args("XREAD BLOCK 0 STREAMS a 0"), 1).unwrap().block_ms, Some(0));
    assert_eq!(ReadArgs::parse(&args("XREADGROUP STREAMS a 0"), 1), Err(err("Missing GROUP option for XREADGROUP")));
}

#[test]
fn xsetid_keeps_ids_growing() {
    let mut s = One::new();
    assert_eq!(s.run("XSETID s 5"), err("no such key"));
    s.run("XADD s 3 f v");
    assert_eq!(s.run("XSETID s 2"), err("The ID specified in XSETID is smaller than the target stream top item"));
    assert_eq!(s.run("XSETID s 9 ENTRIESADDED 0"), err("The entries_added specified in XSETID is smaller than the target stream length"));
    assert_eq!(s.run("XSETID s 9 MAXDELETEDID 10"), err("The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
    assert_eq!(s.run("XSETID s 9 ENTRIESADDED 7 MAXDELETEDID 2"), Reply::Ok);
    assert_eq!((s.stream().last_id, s.stream().entries_added, s.stream().max_deleted), (StreamId::new(9, 0), 7, StreamId::new(2, 0)));
    assert_eq!(s.run("XADD s 9 f v"), err("The ID specified in XADD is equal or smaller than the target stream top item"));
}

#[test]
fn a_malformed_command_is_refused_not_run() {
    let mut s = One::new();
    assert_eq!(s.run("XRANGE s"), err("wrong number of arguments for 'xrange' command"));
    assert_eq!(s.run("XGROUP CREATE s"), err("wrong number of arguments for 'xgroup|create' command"));
    assert_eq!(s.run("XGROUP NOPE s g"), err("wrong number of arguments for 'xgroup' command"));
    assert_eq!(run(&[], &mut [], 0, 1), err("empty stream command"));
    let args = |line: &str| line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect::<Vec<_>>();
    assert_eq!(run(&args("XLEN s"), &mut [], 0, 1), err("a stream command without its keys"));
    assert!(super::keys(&args("XADD s"), 1).is_err());
    assert_eq!(check_arity(&args("XINFO HELP")), Ok("xinfo|help".to_string()));
}
