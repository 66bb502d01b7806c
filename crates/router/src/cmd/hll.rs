//! HyperLogLog: PFADD, PFCOUNT, PFMERGE, PFDEBUG (PFSELFTEST runs in the
//! router: it tests the representation's code, not a key). Each is one op on the owner
//! (`pb::PfAdd`, `PfCount`, `PfMerge`), which keeps the value in Redis's
//! representation (`evenkeel_types::hll`). PFCOUNT over several keys and
//! PFMERGE are multi-key steps, so their keys share a hash slot
//! (`CROSSSLOT` otherwise), as in Redis Cluster.

use super::keys::one_slot;
use super::plan::{Planned, Shape};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind};

pub fn pfadd(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::PfAdd(pb::PfAdd { elements: a[2..].to_vec() }), Shape::Integer))
}

pub fn pfcount(a: &[Bytes]) -> Result<Planned, Frame> {
    one_slot(a[1..].iter())?;
    Ok(Planned::one(&a[1], Kind::PfCount(pb::PfCount { keys: a[1..].to_vec() }), Shape::Integer))
}

pub fn pfmerge(a: &[Bytes]) -> Result<Planned, Frame> {
    one_slot(a[1..].iter())?;
    Ok(Planned::one(&a[1], Kind::PfMerge(pb::PfMerge { sources: a[2..].to_vec() }), Shape::Ok))
}

pub fn pfdebug(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[2], Kind::PfDebug(pb::PfDebug { subcommand: a[1].clone() }), Shape::Reply))
}

/// PFSELFTEST: the representation's self-test (`hll::self_test`).
pub fn pfselftest() -> Frame {
    match evenkeel_types::hll::self_test() {
        Ok(()) => Frame::ok(),
        Err(line) => Frame::Error(line),
    }
}
