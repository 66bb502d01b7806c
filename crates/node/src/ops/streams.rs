//! Stream commands: every one runs here, on the owner, as
//! `evenkeel_types::stream::command` runs it; this side decodes what is
//! stored at the command's keys and encodes what it changed.

use super::{AppliedMulti, OpLimits, error};
use evenkeel_rpc::pb::{self, op_result::Result as R};
use evenkeel_types::stream::Stream;
use evenkeel_types::stream::command::{self, Key, Reply, Value};
use evenkeel_types::{Record, ValueType, Version};

/// Runs `st` over the live records of its keys (`live(i)` for
/// `st.keys[i]`); the i-th key's write gets `versions[i]`.
pub(super) fn run<'a>(st: &pb::Stream, live: &dyn Fn(usize) -> Option<&'a Record>, now_ms: u64, versions: &[Version], limits: OpLimits) -> AppliedMulti {
    let none = |reply| AppliedMulti { writes: vec![], reply };
    if st.args.len() < 2 || st.keys.is_empty() || versions.len() < st.keys.len() {
        return none(error(pb::op_error::Kind::Internal, "malformed stream op: a command and its keys"));
    }
    let mut keys = Vec::with_capacity(st.keys.len());
    for (i, name) in st.keys.iter().enumerate() {
        let value = match live(i) {
            None => Value::Absent,
            Some(r) if r.ty != ValueType::Stream => Value::Other,
            Some(r) => match Stream::decode(r.value.as_ref().expect("a live record has a value")) {
                Ok(s) => Value::Stream(s),
                Err(e) => return none(error(pb::op_error::Kind::Internal, &format!("corrupt stream: {}", e.0))),
            },
        };
        keys.push(Key::new(name.clone(), value));
    }
    let reply = command::run(&st.args, &mut keys, now_ms, limits.max_value_bytes);
    let writes = keys
        .into_iter()
        .enumerate()
        .filter(|(_, k)| k.changed)
        .filter_map(|(i, k)| match k.value {
            Value::Stream(s) => Some((i, Record::typed(ValueType::Stream, s.encode(), live(i).and_then(|r| r.expire_at_ms), versions[i]))),
            _ => None,
        })
        .collect();
    let reading = st.args[0].eq_ignore_ascii_case(b"xread") || st.args[0].eq_ignore_ascii_case(b"xreadgroup");
    let reply = match reply {
        // Nothing for a read: what a blocked read waits on.
        Reply::NilArray if reading => R::Nil(pb::Nil {}),
        other => R::Reply(to_pb(other)),
    };
    AppliedMulti { writes, reply }
}

/// A map's keys and values, alternating.
fn alternating(entries: Vec<(Reply, Reply)>) -> pb::ReplyArray {
    pb::ReplyArray { items: entries.into_iter().flat_map(|(k, v)| [to_pb(k), to_pb(v)]).collect() }
}

/// A reply as the wire carries it.
pub fn to_pb(reply: Reply) -> pb::Reply {
    use pb::reply::Kind as K;
    let kind = match reply {
        Reply::Bulk(b) => K::Bulk(b),
        Reply::Int(n) => K::Integer(n),
        Reply::Ok => K::Simple("OK".into()),
        Reply::Nil => K::Null(pb::Nil {}),
        Reply::NilArray => K::NullArray(pb::Nil {}),
        Reply::Array(items) => K::Array(pb::ReplyArray { items: items.into_iter().map(to_pb).collect() }),
        Reply::Map(entries) => K::Map(alternating(entries)),
        Reply::NestedMap(entries) => K::NestedMap(alternating(entries)),
        Reply::Error(e) => K::Error(e),
    };
    pb::Reply { kind: Some(kind) }
}
