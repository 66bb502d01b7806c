use super::*;
use evenkeel_types::hash::Hash;
use evenkeel_types::list::List;
use evenkeel_types::set::Set;
use evenkeel_types::zset::ZSet;
use pb::{Condition, ExpireCondition};

const NOW: u64 = 1_000_000;
const V: Version = 77;

fn run(kind: Kind, stored: Option<Record>) -> Applied {
    apply(&kind, stored.as_ref(), NOW, V, OpLimits { max_value_bytes: 16 })
}

fn live(v: &str) -> Option<Record> {
    Some(Record::value(Bytes::from(v.to_string()), None, 1))
}

fn set(value: &str, condition: Condition, get: bool, expiry: Option<pb::set::Expiry>) -> Kind {
    Kind::Set(pb::Set { value: Bytes::from(value.to_string()), expiry, condition: condition as i32, get })
}

fn written(applied: bool, previous: Option<&str>) -> R {
    R::Written(pb::Written { applied, previous: previous.map(|p| Bytes::from(p.to_string())) })
}

#[test]
fn set_conditions_and_get() {
    let a = run(set("x", Condition::IfAbsent, false, None), live("old"));
    assert_eq!(a, Applied { write: None, reply: written(false, None) });
    let a = run(set("x", Condition::IfPresent, true, None), None);
    assert_eq!(a, Applied { write: None, reply: written(false, None) });
    let a = run(set("x", Condition::Always, true, None), live("old"));
    assert_eq!(a.reply, written(true, Some("old")));
    assert_eq!(a.write, Some(Record::value("x", None, V)));
    // NX blocked but GET still returns the old value, as in Redis 7.
    let a = run(set("x", Condition::IfAbsent, true, None), live("old"));
    assert_eq!(a.reply, written(false, Some("old")));
}

#[test]
fn set_keepttl_and_past_expiry() {
    let stored = Some(Record::value("v", Some(NOW + 50), 1));
    let a = run(set("x", Condition::Always, false, Some(pb::set::Expiry::KeepTtl(true))), stored.clone());
    assert_eq!(a.write.unwrap().expire_at_ms, Some(NOW + 50));
    let a = run(set("x", Condition::Always, false, None), stored);
    assert_eq!(a.write.unwrap().expire_at_ms, None);
    let a = run(set("x", Condition::Always, false, Some(pb::set::Expiry::ExpireAtMs(NOW))), None);
    assert_eq!(a.write, Some(Record::tombstone(V)));
}

#[test]
fn expired_records_read_as_absent() {
    let expired = Some(Record::value("v", Some(NOW), 1));
    assert_eq!(run(Kind::Get(pb::Get::default()), expired.clone()).reply, R::Nil(pb::Nil {}));
    assert_eq!(run(Kind::Del(pb::Del::default()), expired.clone()), Applied { write: None, reply: R::Integer(0) });
    assert_eq!(run(Kind::IncrBy(pb::IncrBy { delta: 1 }), expired).reply, R::Integer(1));
}

#[test]
fn incr_semantics() {
    let a = run(Kind::IncrBy(pb::IncrBy { delta: -5 }), Some(Record::value("10", Some(NOW + 9), 1)));
    assert_eq!(a.reply, R::Integer(5));
    assert_eq!(a.write, Some(Record::value("5", Some(NOW + 9), V)));
    let e = run(Kind::IncrBy(pb::IncrBy { delta: 1 }), live("abc")).reply;
    assert!(matches!(e, R::Error(ref x) if x.kind == pb::op_error::Kind::NotInteger as i32));
    let e = run(Kind::IncrBy(pb::IncrBy { delta: 1 }), live("9223372036854775807")).reply;
    assert!(matches!(e, R::Error(ref x) if x.message == "increment or decrement would overflow"));
}

#[test]
fn append_and_limits() {
    let a = run(Kind::Append(pb::Append { value: Bytes::from_static(b"def") }), live("abc"));
    assert_eq!(a.reply, R::Integer(6));
    assert_eq!(a.write.unwrap().value.unwrap(), Bytes::from_static(b"abcdef"));
    let big = Bytes::from(vec![b'x'; 14]);
    let a = run(Kind::Append(pb::Append { value: big }), live("abc"));
    assert_eq!(a.write, None);
    assert!(matches!(a.reply, R::Error(_)));
}

#[test]
fn expire_conditions() {
    let with_ttl = Some(Record::value("v", Some(NOW + 100), 1));
    let no_ttl = live("v");
    let exp = |at: u64, c: ExpireCondition| Kind::Expire(pb::Expire { at_ms: at as i64, condition: c as i32 });
    assert_eq!(run(exp(NOW + 10, ExpireCondition::ExpireNx), with_ttl.clone()).reply, R::Integer(0));
    assert_eq!(run(exp(NOW + 10, ExpireCondition::ExpireXx), no_ttl.clone()).reply, R::Integer(0));
    assert_eq!(run(exp(NOW + 10, ExpireCondition::ExpireGt), with_ttl.clone()).reply, R::Integer(0));
    assert_eq!(run(exp(NOW + 10, ExpireCondition::ExpireGt), no_ttl.clone()).reply, R::Integer(0));
    assert_eq!(run(exp(NOW + 10, ExpireCondition::ExpireLt), no_ttl.clone()).reply, R::Integer(1));
    assert_eq!(run(exp(NOW + 10, ExpireCondition::ExpireLt), with_ttl).reply, R::Integer(1));
    let a = run(exp(NOW, ExpireCondition::ExpireAlways), no_ttl.clone());
    assert_eq!(a, Applied { write: Some(Record::tombstone(V)), reply: R::Integer(1) });
    assert_eq!(run(exp(NOW + 1, ExpireCondition::ExpireAlways), None).reply, R::Integer(0));
}

#[test]
fn persist_and_getdel() {
    let a = run(Kind::Persist(pb::Persist {}), Some(Record::value("v", Some(NOW + 5), 1)));
    assert_eq!(a.write, Some(Record::value("v", None, V)));
    assert_eq!(run(Kind::Persist(pb::Persist {}), live("v")).reply, R::Integer(0));
    let a = run(Kind::GetDel(pb::GetDel {}), live("v"));
    assert_eq!(a.write, Some(Record::tombstone(V)));
    assert!(matches!(a.reply, R::Value(ref v) if v.value == Bytes::from_static(b"v")));
}

#[test]
fn getex_reads_then_changes_the_expiry() {
    use pb::get_ex::Change;
    let getex = |change| Kind::GetEx(pb::GetEx { change });
    let with_ttl = Some(Record::value("v", Some(NOW + 100), 1));
    let value = |at| R::Value(pb::Value { value: Bytes::from_static(b"v"), len: 1, expire_at_ms: at, value_type: 0, elements: None, first: 0, selected: None, cursor: None });
    assert_eq!(run(getex(None), with_ttl.clone()), Applied { write: None, reply: value(NOW + 100) });
    let a = run(getex(Some(Change::AtMs((NOW + 500) as i64))), live("v"));
    assert_eq!(a, Applied { write: Some(Record::value("v", Some(NOW + 500), V)), reply: value(0) });
    let a = run(getex(Some(Change::AtMs(NOW as i64))), with_ttl.clone());
    assert_eq!(a, Applied { write: Some(Record::tombstone(V)), reply: value(NOW + 100) }, "a past time deletes, after the read");
    let a = run(getex(Some(Change::Persist(true))), with_ttl.clone());
    assert_eq!(a.write, Some(Record::value("v", None, V)));
    assert_eq!(run(getex(Some(Change::Persist(true))), live("v")).write, None, "nothing to persist");
    let invalid = pb::OpError { kind: 0, message: "invalid expire time in 'getex' command".into() };
    assert_eq!(run(getex(Some(Change::Invalid(invalid.clone()))), with_ttl).reply, R::Error(invalid.clone()));
    assert_eq!(run(getex(Some(Change::Invalid(invalid))), None).reply, R::Nil(pb::Nil {}), "a missing key answers nil first");
}

#[test]
fn setrange_pads_overwrites_and_keeps_the_expiry() {
    let setrange = |offset, value: &'static str| Kind::SetRange(pb::SetRange { offset, value: Bytes::from_static(value.as_bytes()) });
    let a = run(setrange(6, "Redis"), Some(Record::value("Hello World", Some(NOW + 9), 1)));
    assert_eq!(a, Applied { write: Some(Record::value("Hello Redis", Some(NOW + 9), V)), reply: R::Integer(11) });
    let a = run(setrange(3, "ab"), None);
    assert_eq!(a, Applied { write: Some(Record::value(Bytes::from_static(b"\0\0\0ab"), None, V)), reply: R::Integer(5) });
    let a = run(setrange(1, "x"), live("abcd"));
    assert_eq!(a.write.unwrap().value.unwrap(), Bytes::from_static(b"axcd"));
    assert_eq!(run(setrange(100, ""), live("abc")), Applied { write: None, reply: R::Integer(3) }, "nothing to set");
    assert_eq!(run(setrange(0, ""), None), Applied { write: None, reply: R::Integer(0) });
    // OpLimits of 16 bytes here.
    assert_eq!(run(setrange(15, "xy"), None).reply, too_large());
    assert_eq!(run(setrange(u64::MAX, "x"), None).reply, too_large());
    assert_eq!(run(setrange(14, "xy"), None).reply, R::Integer(16));
}

#[test]
fn incrbyfloat_keeps_the_expiry_and_refuses_what_is_not_a_float() {
    let by = |increment: &'static str| Kind::IncrByFloat(pb::IncrByFloat { increment: Bytes::from_static(increment.as_bytes()) });
    let a = run(by("0.1"), Some(Record::value("10.5", Some(NOW + 9), 1)));
    assert_eq!(a.write, Some(Record::value("10.6", Some(NOW + 9), V)));
    assert!(matches!(a.reply, R::Value(ref v) if v.value == Bytes::from_static(b"10.6")));
    assert_eq!(run(by("1.5"), None).write, Some(Record::value("1.5", None, V)));
    let e = run(by("x"), live("1"));
    assert!(e.write.is_none() && matches!(e.reply, R::Error(ref x) if x.message == "value is not a valid float"));
    let e = run(by("1"), live("abc"));
    assert!(e.write.is_none() && matches!(e.reply, R::Error(ref x) if x.kind == pb::op_error::Kind::NotFloat as i32));
    let e = run(by("inf"), live("1"));
    assert!(e.write.is_none() && matches!(e.reply, R::Error(ref x) if x.message == "increment would produce NaN or Infinity"));
}

#[test]
fn rename_moves_value_and_expiry_or_refuses() {
    let rename = |nx| Kind::Rename(pb::Rename { to: Bytes::from_static(b"b"), nx });
    let source = Some(Record::value("v", Some(NOW + 9), 1));
    let a = apply_multi(&rename(false), &[source.clone(), live("old")], NOW, &[10, 11]);
    assert_eq!(a, AppliedMulti { writes: vec![(0, Record::tombstone(10)), (1, Record::value("v", Some(NOW + 9), 11))], reply: R::Integer(1) });
    assert_eq!(apply_multi(&rename(true), &[source.clone(), live("old")], NOW, &[10, 11]).writes, vec![], "NX: the target exists");
    assert_eq!(apply_multi(&rename(true), &[source.clone(), None], NOW, &[10, 11]).reply, R::Integer(1));
    let missing = apply_multi(&rename(false), &[Some(Record::value("v", Some(NOW), 1)), None], NOW, &[10, 11]);
    assert!(missing.writes.is_empty() && matches!(missing.reply, R::Error(ref e) if e.message == "no such key"), "an expired source is missing");
    // The same key: one record, nothing written.
    assert_eq!(apply_multi(&rename(false), std::slice::from_ref(&source), NOW, &[10]), AppliedMulti { writes: vec![], reply: R::Integer(1) });
    assert_eq!(apply_multi(&rename(true), &[source], NOW, &[10]).reply, R::Integer(0));
}

#[test]
fn copy_writes_value_and_expiry_unless_the_target_is_taken() {
    let copy = |replace| Kind::Copy(pb::Copy { to: Bytes::from_static(b"b"), replace });
    let source = Some(Record::value("v", Some(NOW + 9), 1));
    let a = apply_multi(&copy(false), &[source.clone(), None], NOW, &[10, 11]);
    assert_eq!(a, AppliedMulti { writes: vec![(1, Record::value("v", Some(NOW + 9), 11))], reply: R::Integer(1) });
    assert_eq!(apply_multi(&copy(false), &[source.clone(), live("old")], NOW, &[10, 11]), AppliedMulti { writes: vec![], reply: R::Integer(0) }, "the target exists");
    assert_eq!(apply_multi(&copy(true), &[source.clone(), live("old")], NOW, &[10, 11]).writes, vec![(1, Record::value("v", Some(NOW + 9), 11))], "REPLACE");
    let expired_target = Some(Record::value("old", Some(NOW), 1));
    assert_eq!(apply_multi(&copy(false), &[source.clone(), expired_target], NOW, &[10, 11]).reply, R::Integer(1), "an expired target is absent");
    let expired_source = Some(Record::value("v", Some(NOW), 1));
    assert_eq!(apply_multi(&copy(true), &[expired_source, None], NOW, &[10, 11]), AppliedMulti { writes: vec![], reply: R::Integer(0) }, "an expired source is missing");
    let same = apply_multi(&copy(true), &[source], NOW, &[10]);
    assert!(same.writes.is_empty() && matches!(same.reply, R::Error(_)), "one key: refused, not a panic");
}

#[test]
fn msetnx_sets_all_or_nothing_and_a_repeated_key_takes_its_last_value() {
    let msetnx = |pairs: &[(&'static str, &'static str)]| {
        Kind::MsetNx(pb::MsetNx { keys: pairs.iter().map(|p| Bytes::from_static(p.0.as_bytes())).collect(), values: pairs.iter().map(|p| Bytes::from_static(p.1.as_bytes())).collect() })
    };
    let a = apply_multi(&msetnx(&[("a", "1"), ("b", "2"), ("a", "3")]), &[None, None, None], NOW, &[10, 11, 12]);
    assert_eq!(a, AppliedMulti { writes: vec![(0, Record::value("3", None, 10)), (1, Record::value("2", None, 11))], reply: R::Integer(1) });
    let blocked = apply_multi(&msetnx(&[("a", "1"), ("b", "2")]), &[None, live("x")], NOW, &[10, 11]);
    assert_eq!(blocked, AppliedMulti { writes: vec![], reply: R::Integer(0) });
    let expired = Some(Record::value("x", Some(NOW), 1));
    assert_eq!(apply_multi(&msetnx(&[("a", "1")]), &[expired], NOW, &[10]).reply, R::Integer(1), "an expired key is absent");
    let malformed = Kind::MsetNx(pb::MsetNx { keys: vec![Bytes::from_static(b"a")], values: vec![] });
    let refused = apply_multi(&malformed, &[None], NOW, &[10]);
    assert!(refused.writes.is_empty() && matches!(refused.reply, R::Error(_)), "a request from a faulty router is refused, not a panic");
}

#[test]
fn setbit_grows_sets_clears_and_answers_the_old_bit() {
    let setbit = |offset, on| Kind::SetBit(pb::SetBit { offset, on });
    let a = run(setbit(7, true), None);
    assert_eq!(a, Applied { write: Some(Record::value(Bytes::from_static(&[1]), None, V)), reply: R::Integer(0) });
    let a = run(setbit(0, true), Some(Record::value(Bytes::from_static(&[1]), Some(NOW + 9), 1)));
    assert_eq!(a, Applied { write: Some(Record::value(Bytes::from_static(&[0x81]), Some(NOW + 9), V)), reply: R::Integer(0) });
    let a = run(setbit(7, false), live("\u{1}"));
    assert_eq!(a, Applied { write: Some(Record::value(Bytes::from_static(&[0]), None, V)), reply: R::Integer(1) });
    assert_eq!(run(setbit(7, true), live("\u{1}")), Applied { write: None, reply: R::Integer(1) }, "already set");
    let a = run(setbit(17, false), live("a"));
    assert_eq!(a.write.unwrap().value.unwrap(), Bytes::from_static(b"a\0\0"), "clearing past the end grows the value");
    assert_eq!(run(setbit(3, false), None).write.unwrap().value.unwrap(), Bytes::from_static(&[0]), "a missing key is created");
    // OpLimits of 16 bytes here.
    assert_eq!(run(setbit(16 * 8, true), None).reply, too_large());
    assert_eq!(run(setbit(u64::MAX, true), None).reply, too_large());
}

/// As [`run`], with room for a few small hash fields (an encoded field
/// takes 8 bytes besides its own).
fn hrun(kind: Kind, stored: Option<Record>) -> Applied {
    apply(&kind, stored.as_ref(), NOW, V, OpLimits { max_value_bytes: 64 })
}

fn hash_record(pairs: &[(&str, &str)], expire: Option<u64>) -> Option<Record> {
    let mut h = Hash::default();
    for (f, v) in pairs {
        h.set(Bytes::copy_from_slice(f.as_bytes()), Bytes::copy_from_slice(v.as_bytes()));
    }
    Some(Record::hash(h.encode(), expire, 1))
}

fn fields(write: &Option<Record>) -> Vec<(String, String)> {
    let record = write.as_ref().expect("a write");
    assert_eq!(record.ty, ValueType::Hash);
    let h = Hash::decode(record.value.as_ref().unwrap()).unwrap();
    h.iter().map(|(f, v)| (String::from_utf8_lossy(f).into_owned(), String::from_utf8_lossy(v).into_owned())).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect()
}

#[test]
fn hset_counts_new_fields_keeps_the_expiry_and_nx_skips_present_ones() {
    let hset = |fv: &[(&str, &str)], nx| {
        let (fields, values) = fv.iter().map(|(f, v)| (Bytes::copy_from_slice(f.as_bytes()), Bytes::copy_from_slice(v.as_bytes()))).unzip();
        Kind::HSet(pb::HSet { fields, values, nx })
    };
    let a = hrun(hset(&[("a", "1"), ("b", "2"), ("a", "3")], false), None);
    assert_eq!((a.reply, fields(&a.write)), (R::Integer(2), pairs(&[("a", "3"), ("b", "2")])));
    let a = hrun(hset(&[("b", "x"), ("c", "y")], false), hash_record(&[("a", "1"), ("b", "2")], Some(NOW + 5)));
    assert_eq!((a.reply, fields(&a.write)), (R::Integer(1), pairs(&[("a", "1"), ("b", "x"), ("c", "y")])));
    assert_eq!(a.write.unwrap().expire_at_ms, Some(NOW + 5), "the expiry stays");
    assert_eq!(hrun(hset(&[("a", "9")], true), hash_record(&[("a", "1")], None)), Applied { write: None, reply: R::Integer(0) }, "NX on a present field");
    let a = hrun(hset(&[("b", "9")], true), hash_record(&[("a", "1")], None));
    assert_eq!((a.reply, fields(&a.write)), (R::Integer(1), pairs(&[("a", "1"), ("b", "9")])));
    assert!(matches!(hrun(hset(&[("a", "1")], false), live("s")).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
    assert!(matches!(hrun(hset(&[("a", "this value is far too long for a hash of at most 64 bytes")], false), None).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::TooLarge as i32));
    let malformed = Kind::HSet(pb::HSet { fields: vec![Bytes::from_static(b"a")], values: vec![], nx: false });
    assert!(matches!(hrun(malformed, None), Applied { write: None, reply: R::Error(_) }), "refused, not a panic");
    let expired = Some(Record::hash(Bytes::from_static(b"corrupt but expired"), Some(NOW), 1));
    assert_eq!(hrun(hset(&[("a", "1")], false), expired).reply, R::Integer(1), "an expired hash is absent");
}

#[test]
fn hdel_removes_fields_and_the_hash_with_its_last() {
    let hdel = |f: &[&'static str]| Kind::HDel(pb::HDel { fields: f.iter().map(|f| Bytes::from_static(f.as_bytes())).collect() });
    let a = hrun(hdel(&["a", "x", "a"]), hash_record(&[("a", "1"), ("b", "2")], None));
    assert_eq!((a.reply, fields(&a.write)), (R::Integer(1), pairs(&[("b", "2")])));
    assert_eq!(hrun(hdel(&["b"]), hash_record(&[("b", "2")], None)), Applied { write: Some(Record::tombstone(V)), reply: R::Integer(1) });
    assert_eq!(hrun(hdel(&["x"]), hash_record(&[("b", "2")], None)), Applied { write: None, reply: R::Integer(0) });
    assert_eq!(hrun(hdel(&["x"]), None), Applied { write: None, reply: R::Integer(0) });
}

#[test]
fn hincrby_and_hincrbyfloat_check_in_redis_order() {
    let by = |delta| Kind::HIncrBy(pb::HIncrBy { field: Bytes::from_static(b"n"), delta });
    let a = hrun(by(5), hash_record(&[("n", "10")], None));
    assert_eq!((a.reply, fields(&a.write)), (R::Integer(15), pairs(&[("n", "15")])));
    assert!(matches!(hrun(by(1), hash_record(&[("n", "x")], None)).reply, R::Error(ref e) if e.message == "hash value is not an integer"));
    assert!(matches!(hrun(by(1), hash_record(&[("n", "9223372036854775807")], None)).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::Overflow as i32));
    let float = |inc: &'static str| Kind::HIncrByFloat(pb::HIncrByFloat { field: Bytes::from_static(b"n"), increment: Bytes::from_static(inc.as_bytes()) });
    let a = hrun(float("0.5"), hash_record(&[("n", "1")], None));
    assert!(matches!(a.reply, R::Value(ref v) if v.value == Bytes::from_static(b"1.5")));
    assert_eq!(fields(&a.write), pairs(&[("n", "1.5")]));
    // The increment is checked before the key's type, the field after it.
    assert!(matches!(hrun(float("x"), live("s")).reply, R::Error(ref e) if e.message == "value is not a valid float"));
    assert!(matches!(hrun(float("inf"), live("s")).reply, R::Error(ref e) if e.message == "value is NaN or Infinity"));
    assert!(matches!(hrun(float("1"), live("s")).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
    assert!(matches!(hrun(float("1"), hash_record(&[("n", "x")], None)).reply, R::Error(ref e) if e.message == "hash value is not a float"));
}

#[test]
fn string_commands_refuse_a_hash_and_key_commands_keep_its_type() {
    let h = hash_record(&[("a", "1")], Some(NOW + 9));
    for kind in [
        Kind::IncrBy(pb::IncrBy { delta: 1 }),
        Kind::Append(pb::Append { value: Bytes::from_static(b"x") }),
        Kind::GetDel(pb::GetDel {}),
        set("x", Condition::Always, true, None),
    ] {
        assert!(matches!(hrun(kind.clone(), h.clone()), Applied { write: None, reply: R::Error(ref e) } if e.kind == pb::op_error::Kind::WrongType as i32), "{kind:?}");
    }
    assert_eq!(hrun(set("x", Condition::Always, false, None), h.clone()).write, Some(Record::value("x", None, V)), "SET replaces a hash");
    let persisted = hrun(Kind::Persist(pb::Persist {}), h.clone()).write.unwrap();
    assert_eq!((persisted.ty, persisted.expire_at_ms), (ValueType::Hash, None));
    let renamed = apply_multi(&Kind::Rename(pb::Rename { to: Bytes::from_static(b"b"), nx: false }), &[h.clone(), None], NOW, &[10, 11]);
    assert_eq!(renamed.writes[1].1.ty, ValueType::Hash);
    assert!(matches!(hrun(Kind::Get(pb::Get { meta_only: true, ..Default::default() }), h).reply, R::Value(ref v) if v.value_type == pb::ValueType::Hash as i32));
}

#[test]
fn a_projected_get_answers_the_part_the_read_needs() {
    let project = |names: &[&str]| Kind::Get(pb::Get { meta_only: false, project: Some(pb::Projection { entries: names.iter().map(|n| Bytes::copy_from_slice(n.as_bytes())).collect(), ..Default::default() }), ..Default::default() });
    let h = hash_record(&[("a", "1"), ("b", "2"), ("c", "3")], Some(NOW + 9));
    let R::Value(v) = hrun(project(&["c"]), h.clone()).reply else { panic!("a value") };
    assert_eq!(Hash::decode(&v.value).unwrap().get(b"c"), Some(&Bytes::from_static(b"3")));
    assert_eq!((v.elements, v.first, v.expire_at_ms, v.value_type), (Some(3), 2, NOW + 9, pb::ValueType::Hash as i32));
    assert_eq!(hrun(project(&["a"]), None).reply, R::Nil(pb::Nil {}), "no key: nil");
    let expired = hash_record(&[("a", "1")], Some(NOW - 1));
    assert_eq!(hrun(project(&["a"]), expired).reply, R::Nil(pb::Nil {}), "an expired key: nil");
    let R::Value(s) = hrun(project(&["a"]), live("a string")).reply else { panic!("a value") };
    assert_eq!((s.value.len(), s.elements, s.value_type), (0, None, pb::ValueType::String as i32), "another type: its metadata, for WRONGTYPE");
    let corrupt = Some(Record::typed(ValueType::Hash, Bytes::from_static(b"\x05\0\0\0\x01"), None, 1));
    assert!(matches!(hrun(project(&["a"]), corrupt).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::Internal as i32), "a corrupt value: an error, not a panic");
}

#[test]
fn a_selecting_get_answers_the_members_a_range_selects_or_how_many() {
    let select = |by: pb::z_range::By, min: &'static str, max: &'static str, rev: bool, limit: Option<(i64, i64)>, count_only: bool| {
        let range = pb::ZRange { by: by as i32, min: Bytes::from_static(min.as_bytes()), max: Bytes::from_static(max.as_bytes()), rev, offset: limit.map(|l| l.0), count: limit.map_or(0, |l| l.1) };
        Kind::Get(pb::Get { meta_only: false, project: Some(pb::Projection { entries: vec![Bytes::from_static(b"a")], ..Default::default() }), select: Some(pb::Selection { range: Some(range), count_only }), ..Default::default() })
    };
    use pb::z_range::By;
    let z = zset_record(&[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0), ("e", 0.0)]);
    let R::Value(v) = hrun(select(By::Lex, "[b", "(e", false, None, true), z.clone()).reply else { panic!("a value") };
    assert_eq!((v.selected, v.elements, ZSet::decode(&v.value).unwrap().len(), v.expire_at_ms), (Some(3), Some(5), 0, NOW + 9), "counted only; project is ignored");
    let R::Value(v) = hrun(select(By::Lex, "[b", "(e", false, Some((1, 1)), false), z.clone()).reply else { panic!("a value") };
    let part = ZSet::decode(&v.value).unwrap();
    assert_eq!((part.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(), v.first, v.selected), (vec![Bytes::from_static(b"c")], 2, Some(1)));
    let R::Value(v) = hrun(select(By::Score, "(0", "+inf", false, None, true), z.clone()).reply else { panic!("a value") };
    assert_eq!(v.selected, Some(0));
    assert_eq!(hrun(select(By::Lex, "-", "+", false, None, true), None).reply, R::Nil(pb::Nil {}), "no key: nil");
    let R::Value(s) = hrun(select(By::Lex, "-", "+", false, None, true), live("a string")).reply else { panic!("a value") };
    assert_eq!((s.value.len(), s.elements, s.selected, s.value_type), (0, None, None, pb::ValueType::String as i32), "another type: its metadata, for WRONGTYPE");
    assert!(matches!(hrun(select(By::Lex, "b", "+", false, None, true), z.clone()).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::Internal as i32), "a malformed range: an error");
    let corrupt = Some(Record::typed(ValueType::ZSet, Bytes::from_static(b"\x05\0\0\0\x01"), None, 1));
    assert!(matches!(hrun(select(By::Lex, "-", "+", false, None, true), corrupt).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::Internal as i32), "a corrupt value: an error, not a panic");
}

#[test]
fn a_random_get_answers_the_picks_drawn_from_its_seed() {
    let random = |count: Option<i64>, seed: u64| Kind::Get(pb::Get { random: Some(pb::Random { count, seed }), ..Default::default() });
    let names: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let s = set_record(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let picks = |count, seed| {
        let R::Value(v) = hrun(random(count, seed), s.clone()).reply else { panic!("a value") };
        assert_eq!((v.elements, v.value_type), (Some(50), pb::ValueType::Set as i32));
        Hash::pairs(&v.value).unwrap().into_iter().map(|(m, _)| String::from_utf8(m.to_vec()).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(picks(None, 7), picks(None, 7), "the seed decides");
    assert_eq!(picks(None, 7).len(), 1);
    let distinct = picks(Some(10), 3);
    let mut sorted: Vec<usize> = distinct.iter().map(|m| names.iter().position(|n| n == m).unwrap()).collect();
    assert!(sorted.windows(2).all(|w| w[0] < w[1]), "distinct, in stored order: {distinct:?}");
    sorted.dedup();
    assert_eq!(sorted.len(), 10);
    assert_eq!(picks(Some(50), 1), names, "a count at least the size: the whole, in order");
    assert_eq!(picks(Some(i64::MAX), 1), names);
    let repeated = picks(Some(-200), 5);
    assert_eq!(repeated.len(), 200);
    assert!(repeated.iter().collect::<std::collections::HashSet<_>>().len() < 200, "200 picks of 50 repeat");
    assert!(picks(Some(0), 5).is_empty());
    assert!(matches!(hrun(random(Some(-1_000_001), 1), s.clone()).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::Internal as i32), "past the most picks");
    assert_eq!(hrun(random(None, 1), None).reply, R::Nil(pb::Nil {}), "no key: nil");
    let R::Value(v) = hrun(random(None, 1), live("a string")).reply else { panic!("a value") };
    assert_eq!((v.value.len(), v.elements, v.value_type), (0, None, pb::ValueType::String as i32), "another type: its metadata, for WRONGTYPE");
    let R::Value(v) = hrun(random(Some(2), 9), zset_record(&[("a", 1.0), ("b", 2.0), ("c", 3.0)])).reply else { panic!("a value") };
    assert_eq!((ZSet::decode(&v.value).unwrap().len(), v.elements), (2, Some(3)));
}

#[test]
fn a_scanning_get_answers_a_page_and_the_next_cursor() {
    let scan = |cursor: u64, count: u64| Kind::Get(pb::Get { scan: Some(pb::ScanPage { cursor, count }), ..Default::default() });
    let names: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let s = set_record(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let (mut cursor, mut seen) = (0, Vec::new());
    loop {
        let R::Value(v) = hrun(scan(cursor, 30), s.clone()).reply else { panic!("a value") };
        assert_eq!((v.elements, v.value_type), (Some(200), pb::ValueType::Set as i32));
        seen.extend(Hash::pairs(&v.value).unwrap().into_iter().map(|(m, _)| String::from_utf8(m.to_vec()).unwrap()));
        cursor = v.cursor.expect("a next cursor");
        if cursor == 0 {
            break;
        }
    }
    seen.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(seen, want, "every member once, with no writes between the calls");
    let R::Value(v) = hrun(scan(0, 500), s.clone()).reply else { panic!("a value") };
    assert_eq!((v.cursor, v.value.len()), (Some(0), s.as_ref().unwrap().value.as_ref().unwrap().len()), "COUNT past the size: whole");
    assert_eq!(hrun(scan(0, 10), None).reply, R::Nil(pb::Nil {}), "no key: nil");
    let R::Value(v) = hrun(scan(0, 10), list_record(&["a"])).reply else { panic!("a value") };
    assert_eq!((v.value.len(), v.elements, v.cursor), (0, None, None), "a list: its metadata, for WRONGTYPE");
}

#[test]
fn a_geo_get_answers_the_matches_and_the_centre_member() {
    use evenkeel_types::geo::score;
    let geo = |line: &str| Kind::Get(pb::Get { geo: Some(pb::GeoSearch { args: line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect() }), ..Default::default() });
    let z = zset_record(&[("rome", score(12.5, 41.9)), ("naples", score(14.25, 40.85)), ("paris", score(2.35, 48.85)), ("berlin", score(13.4, 52.5))]);
    let members = |reply: R| {
        let R::Value(v) = reply else { panic!("a value") };
        assert_eq!(v.elements, Some(4));
        ZSet::decode(&v.value).unwrap().iter().map(|(m, _)| String::from_utf8(m.to_vec()).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(members(hrun(geo("GEOSEARCH k FROMMEMBER rome BYRADIUS 300 km"), z.clone()).reply), ["rome", "naples"], "in the set's order");
    assert_eq!(members(hrun(geo("GEOSEARCH k FROMMEMBER paris BYRADIUS 2000 km ASC COUNT 1"), z.clone()).reply), ["paris"], "COUNT 1: the centre itself");
    assert_eq!(members(hrun(geo("GEORADIUSBYMEMBER k berlin 1 km COUNT 1 ANY"), z.clone()).reply), ["berlin"]);
    assert_eq!(members(hrun(geo("GEOSEARCH k FROMLONLAT 12 42 BYRADIUS 10 km"), z.clone()).reply), Vec::<String>::new());
    let R::Value(v) = hrun(geo("GEOSEARCH k FROMMEMBER nowhere BYRADIUS 10 km"), z.clone()).reply else { panic!("a value") };
    assert_eq!((v.elements, v.value.len()), (None, z.as_ref().unwrap().value.as_ref().unwrap().len()), "a failing search: the whole value, for the router's error");
    assert_eq!(hrun(geo("GEOSEARCH k FROMLONLAT 1 1 BYRADIUS 1 km"), None).reply, R::Nil(pb::Nil {}));
    let R::Value(v) = hrun(geo("GEOSEARCH k FROMLONLAT 1 1 BYRADIUS 1 km"), live("a string")).reply else { panic!("a value") };
    assert_eq!((v.value.len(), v.elements, v.value_type), (0, None, pb::ValueType::String as i32), "another type: its metadata, for WRONGTYPE");
}

fn set_record(members: &[&str]) -> Option<Record> {
    let set: Set = members.iter().map(|m| Bytes::copy_from_slice(m.as_bytes())).collect();
    Some(Record::typed(ValueType::Set, set.encode(), None, 1))
}

fn members(write: &Option<Record>) -> Vec<String> {
    let record = write.as_ref().expect("a write");
    assert_eq!(record.ty, ValueType::Set);
    Set::decode(record.value.as_ref().unwrap()).unwrap().members().map(|m| String::from_utf8_lossy(m).into_owned()).collect()
}

fn strings(m: &[&str]) -> Vec<String> {
    m.iter().map(|s| s.to_string()).collect()
}

fn byte_list(m: &[&'static str]) -> Vec<Bytes> {
    m.iter().map(|s| Bytes::from_static(s.as_bytes())).collect()
}

#[test]
fn sadd_srem_and_spop_change_the_set_and_drop_it_when_empty() {
    let a = hrun(Kind::SAdd(pb::SAdd { members: byte_list(&["a", "b", "a"]) }), None);
    assert_eq!((a.reply, members(&a.write)), (R::Integer(2), strings(&["a", "b"])));
    assert_eq!(hrun(Kind::SAdd(pb::SAdd { members: byte_list(&["a"]) }), set_record(&["a"])), Applied { write: None, reply: R::Integer(0) });
    let a = hrun(Kind::SRem(pb::SRem { members: byte_list(&["a", "x"]) }), set_record(&["a", "b"]));
    assert_eq!((a.reply, members(&a.write)), (R::Integer(1), strings(&["b"])));
    assert_eq!(hrun(Kind::SRem(pb::SRem { members: byte_list(&["b"]) }), set_record(&["b"])).write, Some(Record::tombstone(V)));
    assert!(matches!(hrun(Kind::SAdd(pb::SAdd { members: byte_list(&["a"]) }), live("s")).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
    let pop = |count, seed| Kind::SPop(pb::SPop { count, seed });
    let a = hrun(pop(Some(2), 7), set_record(&["a", "b", "c"]));
    let R::Members(popped) = &a.reply else { panic!("{:?}", a.reply) };
    let left = members(&a.write);
    assert_eq!((popped.members.len(), left.len()), (2, 1));
    assert!(popped.members.iter().all(|m| !left.contains(&String::from_utf8_lossy(m).into_owned())), "popped members are gone");
    assert_eq!(hrun(pop(Some(2), 7), set_record(&["a", "b", "c"])), a, "the seed decides");
    assert_eq!(hrun(pop(Some(9), 1), set_record(&["a"])).write, Some(Record::tombstone(V)), "the last member takes the key");
    assert_eq!(hrun(pop(None, 1), None).reply, R::Nil(pb::Nil {}));
    assert_eq!(hrun(pop(Some(0), 1), set_record(&["a"])), Applied { write: None, reply: R::Members(pb::Members { members: vec![] }) });
}

#[test]
fn smove_and_set_store_follow_redis() {
    let smove = |member: &'static str| Kind::SMove(pb::SMove { to: Bytes::from_static(b"t"), member: Bytes::from_static(member.as_bytes()) });
    let a = apply_multi(&smove("a"), &[set_record(&["a", "b"]), None], NOW, &[10, 11]);
    assert_eq!((a.reply, a.writes.len()), (R::Integer(1), 2));
    assert_eq!((members(&Some(a.writes[0].1.clone())), members(&Some(a.writes[1].1.clone()))), (strings(&["b"]), strings(&["a"])));
    assert_eq!(apply_multi(&smove("x"), &[set_record(&["a"]), None], NOW, &[10, 11]).reply, R::Integer(0));
    assert_eq!(apply_multi(&smove("a"), &[None, live("s")], NOW, &[10, 11]).reply, R::Integer(0), "a missing source answers before the type check");
    assert!(matches!(apply_multi(&smove("x"), &[set_record(&["a"]), live("s")], NOW, &[10, 11]).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
    assert_eq!(apply_multi(&smove("a"), &[set_record(&["a"])], NOW, &[10]), AppliedMulti { writes: vec![], reply: R::Integer(1) }, "one key: a membership test");
    let store = |op: pb::set_store::Op| Kind::SetStore(pb::SetStore { op: op as i32, sources: byte_list(&["x", "y"]) });
    let sources = [live("old"), set_record(&["a", "b"]), set_record(&["b", "c"])];
    let union = apply_multi(&store(pb::set_store::Op::Union), &sources, NOW, &[10, 11, 12]);
    assert_eq!((union.reply, members(&Some(union.writes[0].1.clone()))), (R::Integer(3), strings(&["a", "b", "c"])));
    let inter = apply_multi(&store(pb::set_store::Op::Inter), &sources, NOW, &[10, 11, 12]);
    assert_eq!(members(&Some(inter.writes[0].1.clone())), strings(&["b"]));
    let empty = apply_multi(&store(pb::set_store::Op::Diff), &[live("old"), set_record(&["a"]), set_record(&["a"])], NOW, &[10, 11, 12]);
    assert_eq!(empty, AppliedMulti { writes: vec![(0, Record::tombstone(10))], reply: R::Integer(0) }, "an empty result deletes the target");
    let typed = apply_multi(&store(pb::set_store::Op::Union), &[None, set_record(&["a"]), live("s")], NOW, &[10, 11, 12]);
    assert!(matches!(typed.reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32) && typed.writes.is_empty());
}

fn list_record(items: &[&str]) -> Option<Record> {
    let list = List(items.iter().map(|i| Bytes::copy_from_slice(i.as_bytes())).collect());
    Some(Record::typed(ValueType::List, list.encode(), Some(NOW + 9), 1))
}

fn items(write: &Option<Record>) -> Vec<String> {
    let record = write.as_ref().expect("a write");
    assert_eq!((record.ty, record.expire_at_ms), (ValueType::List, Some(NOW + 9)), "a list keeps its expiry");
    List::decode(record.value.as_ref().unwrap()).unwrap().0.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect()
}

#[test]
fn list_writes_change_the_list_as_redis_does() {
    let push = |left, only_existing| Kind::LPush(pb::LPush { elements: byte_list(&["x", "y"]), left, only_existing });
    let a = hrun(push(true, false), list_record(&["a"]));
    assert_eq!((a.reply, items(&a.write)), (R::Integer(3), strings(&["y", "x", "a"])));
    assert_eq!(items(&hrun(push(false, true), list_record(&["a"])).write), strings(&["a", "x", "y"]));
    assert_eq!(hrun(push(false, true), None), Applied { write: None, reply: R::Integer(0) }, "PUSHX without a list");
    let pop = |left, count| Kind::LPop(pb::LPop { left, count });
    let a = hrun(pop(false, Some(2)), list_record(&["a", "b", "c"]));
    assert_eq!((a.reply, items(&a.write)), (R::Members(pb::Members { members: byte_list(&["c", "b"]) }), strings(&["a"])));
    assert_eq!(hrun(pop(true, None), list_record(&["a"])).write, Some(Record::tombstone(V)), "the last element takes the key");
    assert_eq!(hrun(pop(true, Some(0)), list_record(&["a"])), Applied { write: None, reply: R::Members(pb::Members { members: vec![] }) });
    assert_eq!(hrun(pop(true, Some(3)), None).reply, R::Nil(pb::Nil {}));
    let lset = |index: &'static str| Kind::LSet(pb::LSet { index: Bytes::from_static(index.as_bytes()), element: Bytes::from_static(b"z") });
    assert_eq!(items(&hrun(lset("-1"), list_record(&["a", "b"])).write), strings(&["a", "z"]));
    assert!(matches!(hrun(lset("x"), None).reply, R::Error(ref e) if e.message == "no such key"), "the key before the index");
    assert!(matches!(hrun(lset("x"), list_record(&["a"])).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::NotInteger as i32));
    assert!(matches!(hrun(lset("5"), list_record(&["a"])).reply, R::Error(ref e) if e.message == "index out of range"));
    let lrem = |count| Kind::LRem(pb::LRem { count, element: Bytes::from_static(b"a") });
    let a = hrun(lrem(-2), list_record(&["a", "b", "a", "c", "a"]));
    assert_eq!((a.reply, items(&a.write)), (R::Integer(2), strings(&["a", "b", "c"])));
    assert_eq!(items(&hrun(lrem(0), list_record(&["a", "b", "a"])).write), strings(&["b"]));
    assert_eq!(hrun(lrem(1), list_record(&["b"])).write, None);
    let trim = |start, stop| Kind::LTrim(pb::LTrim { start, stop });
    assert_eq!(items(&hrun(trim(1, -2), list_record(&["a", "b", "c", "d"])).write), strings(&["b", "c"]));
    assert_eq!(hrun(trim(3, 1), list_record(&["a"])).write, Some(Record::tombstone(V)));
    let insert = |before, pivot: &'static str| Kind::LInsert(pb::LInsert { before, pivot: Bytes::from_static(pivot.as_bytes()), element: Bytes::from_static(b"n") });
    assert_eq!(items(&hrun(insert(false, "a"), list_record(&["a", "b"])).write), strings(&["a", "n", "b"]));
    assert_eq!(hrun(insert(true, "x"), list_record(&["a"])), Applied { write: None, reply: R::Integer(-1) });
    assert!(matches!(hrun(push(true, false), live("s")).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
}

#[test]
fn lmove_pops_and_pushes_in_one_step() {
    let lmove = |from_left, to_left| Kind::LMove(pb::LMove { to: Bytes::from_static(b"t"), from_left, to_left, wait_ms: 0, blocked_since_us: 0 });
    let a = apply_multi(&lmove(false, true), &[list_record(&["a", "b"]), list_record(&["c"])], NOW, &[10, 11]);
    assert!(matches!(a.reply, R::Value(ref v) if v.value == Bytes::from_static(b"b")));
    assert_eq!((items(&Some(a.writes[0].1.clone())), items(&Some(a.writes[1].1.clone()))), (strings(&["a"]), strings(&["b", "c"])));
    let rotated = apply_multi(&lmove(true, false), &[list_record(&["a", "b", "c"])], NOW, &[10]);
    assert_eq!(items(&Some(rotated.writes[0].1.clone())), strings(&["b", "c", "a"]), "one key rotates");
    assert_eq!(apply_multi(&lmove(true, true), &[None, live("s")], NOW, &[10, 11]).reply, R::Nil(pb::Nil {}));
    assert!(matches!(apply_multi(&lmove(true, true), &[list_record(&["a"]), live("s")], NOW, &[10, 11]).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
}

fn zset_record(entries: &[(&str, f64)]) -> Option<Record> {
    let z: ZSet = entries.iter().map(|(m, s)| (Bytes::copy_from_slice(m.as_bytes()), *s)).collect();
    Some(Record::typed(ValueType::ZSet, z.encode(), Some(NOW + 9), 1))
}

fn scored(write: &Option<Record>) -> Vec<(String, f64)> {
    let record = write.as_ref().expect("a write");
    assert_eq!(record.ty, ValueType::ZSet);
    ZSet::decode(record.value.as_ref().unwrap()).unwrap().iter().map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s)).collect()
}

fn zadd(pairs: &[(f64, &'static str)], flags: &str) -> Kind {
    Kind::ZAdd(pb::ZAdd {
        scores: pairs.iter().map(|p| p.0).collect(),
        members: pairs.iter().map(|p| Bytes::from_static(p.1.as_bytes())).collect(),
        nx: flags.contains("nx"),
        xx: flags.contains("xx"),
        gt: flags.contains("gt"),
        lt: flags.contains("lt"),
        ch: flags.contains("ch"),
        incr: flags.contains("incr"),
    })
}

fn text(s: &str) -> R {
    R::Value(pb::Value { len: s.len() as u64, value: Bytes::from(s.to_string()), ..Default::default() })
}

fn zrun(kind: Kind, stored: Option<Record>) -> Applied {
    apply(&kind, stored.as_ref(), NOW, V, OpLimits::default())
}

#[test]
fn zadd_follows_its_options_as_redis_does() {
    let base = || zset_record(&[("a", 1.0), ("b", 2.0)]);
    let a = zrun(zadd(&[(3.0, "c"), (5.0, "a")], ""), base());
    assert_eq!(a.reply, R::Integer(1), "one added; a changed, which only CH counts");
    assert_eq!(scored(&a.write), vec![("b".into(), 2.0), ("c".into(), 3.0), ("a".into(), 5.0)]);
    assert_eq!(a.write.as_ref().unwrap().expire_at_ms, Some(NOW + 9), "the key keeps its expiry");
    assert_eq!(zrun(zadd(&[(3.0, "c"), (5.0, "a")], "ch"), base()).reply, R::Integer(2));
    assert_eq!(zrun(zadd(&[(9.0, "a"), (9.0, "n")], "nx"), base()).reply, R::Integer(1), "NX leaves a");
    assert_eq!(zrun(zadd(&[(9.0, "a"), (9.0, "n")], "xx ch"), base()).reply, R::Integer(1), "XX changes a, adds nothing");
    assert_eq!(zrun(zadd(&[(0.5, "a"), (3.0, "b")], "gt ch"), base()).reply, R::Integer(1), "GT: only b rises");
    assert_eq!(zrun(zadd(&[(0.5, "a"), (3.0, "b")], "lt ch"), base()).reply, R::Integer(1), "LT: only a falls");
    assert_eq!(zrun(zadd(&[(1.0, "a")], "xx"), None), Applied { write: None, reply: R::Integer(0) });
    assert_eq!(zrun(zadd(&[(1.0, "a")], "ch"), base()), Applied { write: None, reply: R::Integer(0) }, "the same score changes nothing");
    assert_eq!(zrun(zadd(&[(0.1, "a")], "incr"), base()).reply, text("1.1000000000000001"));
    assert_eq!(zrun(zadd(&[(-1.0, "b")], "incr gt"), base()).reply, R::Nil(pb::Nil {}), "GT compares the sum");
    assert_eq!(zrun(zadd(&[(1.0, "a")], "incr nx"), base()), Applied { write: None, reply: R::Nil(pb::Nil {}) });
    let nan = zrun(zadd(&[(f64::NEG_INFINITY, "i")], "incr"), zset_record(&[("i", f64::INFINITY)]));
    assert!(matches!(nan.reply, R::Error(ref e) if e.message == "resulting score is not a number (NaN)") && nan.write.is_none());
    assert!(matches!(zrun(zadd(&[(1.0, "a")], ""), live("s")).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
    assert!(matches!(zrun(zadd(&[(1.0, "a"), (2.0, "b")], "incr"), None).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::Internal as i32));
}

#[test]
fn zset_removals_and_pops_drop_the_key_with_its_last_member() {
    let base = || zset_record(&[("a", 1.0), ("b", 2.0), ("c", 3.5)]);
    let a = zrun(Kind::ZRem(pb::ZRem { members: byte_list(&["a", "x"]) }), base());
    assert_eq!((a.reply, scored(&a.write).len()), (R::Integer(1), 2));
    let pop = |max, count| Kind::ZPop(pb::ZPop { max, count });
    let bytes = |items: &[&'static str]| R::Members(pb::Members { members: byte_list(items) });
    assert_eq!(zrun(pop(true, Some(2)), base()).reply, bytes(&["c", "3.5", "b", "2"]));
    assert_eq!(zrun(pop(false, None), base()).reply, bytes(&["a", "1"]));
    assert_eq!(zrun(pop(false, Some(5)), base()).write, Some(Record::tombstone(V)));
    assert_eq!(zrun(pop(false, Some(0)), base()), Applied { write: None, reply: bytes(&[]) });
    assert!(matches!(zrun(pop(false, Some(0)), live("s")).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32), "the type before the count");
    assert_eq!(zrun(pop(false, None), None).reply, bytes(&[]));
    let by_score = |min: &'static str, max: &'static str| {
        let range = pb::ZRange { by: pb::z_range::By::Score as i32, min: Bytes::from_static(min.as_bytes()), max: Bytes::from_static(max.as_bytes()), ..Default::default() };
        Kind::ZRemRange(pb::ZRemRange { range: Some(range) })
    };
    let a = zrun(by_score("(1", "3"), base());
    assert_eq!((a.reply, scored(&a.write)), (R::Integer(1), vec![("a".into(), 1.0), ("c".into(), 3.5)]));
    assert_eq!(zrun(by_score("-inf", "+inf"), base()).write, Some(Record::tombstone(V)));
    assert_eq!(zrun(by_score("5", "9"), base()), Applied { write: None, reply: R::Integer(0) });
}

#[test]
fn zset_stores_and_zmpop_over_several_keys() {
    let store = |op: pb::z_store::Op, weights: Vec<f64>, aggregate: pb::z_store::Aggregate| {
        Kind::ZStore(pb::ZStore { op: op as i32, sources: byte_list(&["a", "b"]), weights, aggregate: aggregate as i32 })
    };
    let inputs = [live("old"), zset_record(&[("x", 1.0), ("y", 2.0)]), set_record(&["y", "z"])];
    let union = apply_multi(&store(pb::z_store::Op::Union, vec![2.0, 3.0], pb::z_store::Aggregate::Sum), &inputs, NOW, &[10, 11, 12]);
    assert_eq!(union.reply, R::Integer(3));
    let written = union.writes[0].1.clone();
    assert_eq!(written.expire_at_ms, None, "the target loses its expiry and type");
    assert_eq!(scored(&Some(written)), vec![("x".into(), 2.0), ("z".into(), 3.0), ("y".into(), 7.0)], "a set's members score 1");
    let inter = apply_multi(&store(pb::z_store::Op::Inter, vec![], pb::z_store::Aggregate::Min), &inputs, NOW, &[10, 11, 12]);
    assert_eq!(scored(&Some(inter.writes[0].1.clone())), vec![("y".into(), 1.0)]);
    let empty = apply_multi(&store(pb::z_store::Op::Diff, vec![], pb::z_store::Aggregate::Sum), &[live("old"), None, set_record(&["y"])], NOW, &[10, 11, 12]);
    assert_eq!(empty, AppliedMulti { writes: vec![(0, Record::tombstone(10))], reply: R::Integer(0) }, "an empty result deletes the target");
    let typed = apply_multi(&store(pb::z_store::Op::Union, vec![], pb::z_store::Aggregate::Sum), &[None, zset_record(&[("x", 1.0)]), live("s")], NOW, &[10, 11, 12]);
    assert!(matches!(typed.reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));

    let range = pb::ZRange { by: pb::z_range::By::Rank as i32, min: Bytes::from_static(b"0"), max: Bytes::from_static(b"0"), rev: true, ..Default::default() };
    let range_store = Kind::ZRangeStore(pb::ZRangeStore { source: Bytes::from_static(b"src"), range: Some(range) });
    let stored = apply_multi(&range_store, &[None, zset_record(&[("x", 1.0), ("y", 2.0)])], NOW, &[10, 11]);
    assert_eq!((stored.reply, scored(&Some(stored.writes[0].1.clone()))), (R::Integer(1), vec![("y".into(), 2.0)]));
    let same = apply_multi(&range_store, &[zset_record(&[("x", 1.0), ("y", 2.0)])], NOW, &[10]);
    assert_eq!(scored(&Some(same.writes[0].1.clone())), vec![("y".into(), 2.0)], "one key: source and target");

    let mpop = |count| Kind::ZMPop(pb::ZmPop { keys: byte_list(&["k0", "k1", "k2"]), max: false, count, wait_ms: 0, blocked_since_us: 0 });
    let popped = apply_multi(&mpop(5), &[None, zset_record(&[("x", 1.0), ("y", 2.0)]), live("s")], NOW, &[10, 11, 12]);
    assert_eq!(popped.reply, R::Members(pb::Members { members: byte_list(&["k1", "x", "1", "y", "2"]) }), "the first key that exists; the string after it is not looked at");
    assert_eq!(popped.writes, vec![(1, Record::tombstone(11))]);
    assert_eq!(apply_multi(&mpop(1), &[None, None, None], NOW, &[10, 11, 12]).reply, R::Nil(pb::Nil {}));
    assert!(matches!(apply_multi(&mpop(1), &[None, live("s"), zset_record(&[("x", 1.0)])], NOW, &[10, 11, 12]).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
}

#[test]
fn bitop_combines_strings_padded_with_zeros() {
    let bitop = |op: pb::bit_op::Op, n: usize| Kind::BitOp(pb::BitOp { op: op as i32, sources: byte_list(&["a", "b", "c"][..n]) });
    let stored = [Some(Record::value("old", Some(NOW + 9), 1)), live("\u{f0}\u{0f}"), live("\u{ff}"), None];
    // The characters above are two-byte UTF-8: compare with the bytes.
    let (a, b) = (stored[1].as_ref().unwrap().value.clone().unwrap(), stored[2].as_ref().unwrap().value.clone().unwrap());
    let written = |applied: AppliedMulti| applied.writes[0].1.value.clone().unwrap().to_vec();
    let and = apply_multi(&bitop(pb::bit_op::Op::And, 3), &stored, NOW, &[10, 11, 12, 13]);
    assert_eq!(and.reply, R::Integer(a.len().max(b.len()) as i64));
    assert_eq!(and.writes[0].1.expire_at_ms, None, "the target loses its expiry");
    assert!(written(and).iter().all(|&x| x == 0), "AND with a missing key is all zeros");
    let xor = apply_multi(&bitop(pb::bit_op::Op::Xor, 2), &stored, NOW, &[10, 11, 12]);
    let want: Vec<u8> = (0..a.len().max(b.len())).map(|i| a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)).collect();
    assert_eq!(written(xor), want);
    let not = apply_multi(&bitop(pb::bit_op::Op::Not, 1), &stored, NOW, &[10, 11]);
    assert_eq!(written(not), a.iter().map(|x| !x).collect::<Vec<_>>());
    let empty = apply_multi(&bitop(pb::bit_op::Op::Or, 1), &[live("x"), None], NOW, &[10, 11]);
    assert_eq!(empty, AppliedMulti { writes: vec![(0, Record::tombstone(10))], reply: R::Integer(0) }, "an empty result deletes the target");
    let typed = apply_multi(&bitop(pb::bit_op::Op::Or, 1), &[None, zset_record(&[("m", 1.0)])], NOW, &[10, 11]);
    assert!(matches!(typed.reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
}

#[test]
fn multi_key_steps_that_grow_a_value_keep_to_the_value_limit() {
    let limits = OpLimits { max_value_bytes: 24 };
    let too_large = |a: &AppliedMulti| a.writes.is_empty() && matches!(a.reply, R::Error(ref e) if e.kind == pb::op_error::Kind::TooLarge as i32);
    // Each set encodes in 4 + 2 x (8 + 1) = 22 bytes; their union in 40.
    let union = Kind::SetStore(pb::SetStore { op: pb::set_store::Op::Union as i32, sources: byte_list(&["a", "b"]) });
    let stored = [None, set_record(&["1", "2"]), set_record(&["3", "4"])];
    assert!(too_large(&apply_multi_within(&union, &stored, NOW, &[10, 11, 12], limits)), "a union past the limit is refused");
    assert_eq!(apply_multi_within(&union, &stored, NOW, &[10, 11, 12], OpLimits::default()).reply, R::Integer(4));
    let zunion = Kind::ZStore(pb::ZStore { op: pb::z_store::Op::Union as i32, sources: byte_list(&["a", "b"]), ..Default::default() });
    let zstored = [None, zset_record(&[("1", 1.0)]), zset_record(&[("2", 2.0), ("3", 3.0)])];
    assert!(too_large(&apply_multi_within(&zunion, &zstored, NOW, &[10, 11, 12], limits)));
    // The target list is at 4 + 2 x (4 + 5) = 22 bytes; one more element
    // takes it past 24, and nothing moves.
    let lmove = Kind::LMove(pb::LMove { to: Bytes::from_static(b"t"), from_left: true, to_left: true, wait_ms: 0, blocked_since_us: 0 });
    let lists = [list_record(&["a"]), list_record(&["12345", "12345"])];
    assert!(too_large(&apply_multi_within(&lmove, &lists, NOW, &[10, 11], limits)));
    let smove = Kind::SMove(pb::SMove { to: Bytes::from_static(b"t"), member: Bytes::from_static(b"x") });
    assert!(too_large(&apply_multi_within(&smove, &[set_record(&["x"]), set_record(&["1", "2"])], NOW, &[10, 11], limits)));
}

#[test]
fn sort_store_writes_the_sorted_list_in_one_step() {
    let sort = |gets: Vec<bool>, limit: Option<(i64, i64)>, alpha: bool, dont_sort: bool| {
        Kind::SortStore(pb::SortStore { source: Bytes::from_static(b"src"), alpha, dont_sort, offset: limit.map(|l| l.0), count: limit.map_or(0, |l| l.1), gets, ..Default::default() })
    };
    let stored_list = |a: &AppliedMulti| List::decode(a.writes.first().unwrap_or_else(|| panic!("no write: {:?}", a.reply)).1.value.as_ref().unwrap()).unwrap().0.into_iter().map(|e| String::from_utf8_lossy(&e).into_owned()).collect::<Vec<_>>();
    let target = Some(Record::value("old", Some(NOW + 9), 1));
    let a = apply_multi(&sort(vec![], None, false, false), &[target.clone(), list_record(&["3", "1", "2"])], NOW, &[10, 11]);
    assert_eq!((a.reply.clone(), stored_list(&a)), (R::Integer(3), strings(&["1", "2", "3"])));
    assert_eq!((a.writes[0].1.ty, a.writes[0].1.expire_at_ms), (ValueType::List, None), "a list, without the target's expiry");
    let a = apply_multi(&sort(vec![true, false], Some((0, 1)), true, false), &[None, zset_record(&[("b", 2.0), ("a", 1.0)])], NOW, &[10, 11]);
    assert_eq!(stored_list(&a), strings(&["a", ""]), "GET # and a constant (empty)");
    let a = apply_multi(&sort(vec![], None, false, true), &[None, set_record(&["b", "c", "a"])], NOW, &[10, 11]);
    assert_eq!(stored_list(&a), strings(&["a", "b", "c"]), "a set with BY <constant> is sorted ALPHA for STORE");
    let not_double = apply_multi(&sort(vec![], None, false, false), &[target.clone(), list_record(&["x"])], NOW, &[10, 11]);
    assert!(not_double.writes.is_empty() && matches!(not_double.reply, R::Error(ref e) if e.message == "One or more scores can't be converted into double"));
    assert_eq!(apply_multi(&sort(vec![], None, false, false), &[target, None], NOW, &[10, 11]).writes, vec![(0, Record::tombstone(10))], "nothing to sort deletes the target");
    assert!(matches!(apply_multi(&sort(vec![], None, false, false), &[None, live("s")], NOW, &[10, 11]).reply, R::Error(ref e) if e.kind == pb::op_error::Kind::WrongType as i32));
}

fn stream_op(line: &str, keys: &[&str]) -> Kind {
    let args = line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
    Kind::Stream(pb::Stream { args, keys: keys.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect(), wait_ms: 0, blocked_since_us: 0 })
}

fn reply_frame(r: &R) -> pb::reply::Kind {
    let R::Reply(pb::Reply { kind: Some(kind) }) = r else { panic!("{r:?}") };
    kind.clone()
}

#[test]
fn stream_commands_store_a_stream_record_and_keep_its_expiry() {
    let added = apply(&stream_op("XADD s 5-1 f v", &["s"]), None, NOW, V, OpLimits::default());
    assert_eq!(reply_frame(&added.reply), pb::reply::Kind::Bulk(Bytes::from_static(b"5-1")));
    let record = added.write.expect("XADD writes");
    assert_eq!((record.ty, record.version), (ValueType::Stream, V));
    let expiring = Record { expire_at_ms: Some(NOW + 9), ..record };
    let grouped = apply(&stream_op("XGROUP CREATE s g 0", &["s"]), Some(&expiring), NOW, V + 1, OpLimits::default());
    assert_eq!(grouped.write.as_ref().and_then(|r| r.expire_at_ms), Some(NOW + 9), "a stream write keeps the key's expiry");
    let read = apply(&stream_op("XRANGE s - +", &["s"]), Some(&expiring), NOW, V + 1, OpLimits::default());
    assert!(read.write.is_none(), "a read writes nothing");
    let too_big = apply(&stream_op("XADD s 6 f 0123456789abcdef", &["s"]), Some(&expiring), NOW, V + 1, OpLimits { max_value_bytes: 64 });
    assert_eq!(reply_frame(&too_big.reply), pb::reply::Kind::Error("ERR Elements are too large to be stored".into()));
    assert!(too_big.write.is_none());
    let wrong = apply(&stream_op("XLEN s", &["s"]), live("x").as_ref(), NOW, V, OpLimits::default());
    assert!(matches!(reply_frame(&wrong.reply), pb::reply::Kind::Error(e) if e.starts_with("WRONGTYPE")));
}

#[test]
fn a_read_of_several_streams_with_nothing_new_answers_nil() {
    let a = apply(&stream_op("XADD {t}a 1 f v", &["{t}a"]), None, NOW, V, OpLimits::default()).write;
    let read = stream_op("XREAD STREAMS {t}a {t}b 1 0", &["{t}a", "{t}b"]);
    assert_eq!(multi_keys(&read, b"{t}a").map(|k| k.len()), Some(2));
    assert_eq!(apply_multi(&read, &[a.clone(), None], NOW, &[10, 11]).reply, R::Nil(pb::Nil {}), "what a blocked read waits on");
    let group = apply(&stream_op("XGROUP CREATE {t}a g 0", &["{t}a"]), a.as_ref(), NOW, V + 1, OpLimits::default()).write;
    let consume = stream_op("XREADGROUP GROUP g c STREAMS {t}a {t}b > 0", &["{t}a", "{t}b"]);
    let served = apply_multi(&consume, &[group, None], NOW, &[10, 11]);
    assert!(matches!(reply_frame(&served.reply), pb::reply::Kind::Error(e) if e.starts_with("NOGROUP")), "{:?}", served.reply);
    assert!(served.writes.is_empty(), "an error writes nothing");
}

#[test]
fn pfcount_writes_a_stale_cached_count_back_and_then_only_reads() {
    let limits = OpLimits::default();
    let added = apply(&Kind::PfAdd(pb::PfAdd { elements: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")] }), None, NOW, V, limits);
    assert_eq!(added.reply, R::Integer(1));
    let stale = added.write.expect("a new HyperLogLog is written");
    let count = Kind::PfCount(pb::PfCount { keys: vec![Bytes::from_static(b"k")] });
    let first = apply(&count, Some(&stale), NOW, V + 1, limits);
    assert_eq!(first.reply, R::Integer(2));
    let cached = first.write.expect("the fresh count is stored, as Redis does");
    let second = apply(&count, Some(&cached), NOW, V + 2, limits);
    assert_eq!((second.reply, second.write), (R::Integer(2), None), "a valid cache is only read");
    let merge = Kind::PfMerge(pb::PfMerge { sources: vec![Bytes::from_static(b"s")] });
    assert!(adds_data(&merge) && adds_data(&Kind::PfAdd(pb::PfAdd::default())) && !adds_data(&count));
    let merged = apply_multi(&merge, &[None, Some(cached)], NOW, &[10, 11]);
    assert_eq!(merged.reply, R::Integer(1));
    let foreign = apply(&count, live("plain").as_ref(), NOW, V, limits);
    assert_eq!(foreign.reply, R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error("WRONGTYPE Key is not a valid HyperLogLog string value.".into())) }));
}

#[test]
fn restore_writes_any_type_once_or_with_replace() {
    let hash = Hash::default();
    let mut h = hash.clone();
    h.set(Bytes::from("f"), Bytes::from("v"));
    let restore = |expire_at_ms, replace| Kind::Restore(pb::Restore { value_type: pb::ValueType::Hash as i32, value: h.encode(), expire_at_ms, replace });
    let busy = R::Reply(pb::Reply { kind: Some(pb::reply::Kind::Error("BUSYKEY Target key name already exists.".into())) });
    let a = run(restore(0, false), None);
    assert_eq!(a, Applied { write: Some(Record::typed(ValueType::Hash, h.encode(), None, V)), reply: R::Integer(1) });
    assert_eq!(run(restore(0, false), live("old")), Applied { write: None, reply: busy.clone() });
    // An expired key does not count as there.
    let expired = Some(Record::value("old", Some(NOW - 1), 1));
    assert_eq!(run(restore(NOW + 5, false), expired).write, Some(Record::typed(ValueType::Hash, h.encode(), Some(NOW + 5), V)));
    assert_eq!(run(restore(0, true), live("old")).write.map(|r| r.ty), Some(ValueType::Hash));
    // A TTL already past: nothing stored; with REPLACE the old value goes.
    assert_eq!(run(restore(NOW, false), None), Applied { write: None, reply: R::Integer(1) });
    assert_eq!(run(restore(NOW, true), live("old")), Applied { write: Some(Record::tombstone(V)), reply: R::Integer(1) });
    assert_eq!(run(restore(NOW, false), live("old")).reply, busy);
    // Past the value limit (16 bytes in these tests).
    let big = Kind::Restore(pb::Restore { value_type: pb::ValueType::String as i32, value: Bytes::from(vec![b'x'; 17]), expire_at_ms: 0, replace: true });
    assert!(matches!(run(big, None).reply, R::Error(e) if e.kind == pb::op_error::Kind::TooLarge as i32));
}
